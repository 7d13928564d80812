"""Measure, once per machine, whether bfloat16 is worth it here: what ``precision="auto"`` decides on a CPU.

Having bfloat16 instructions (``avx512_bf16``) does not make bfloat16 faster. Measured on this
project's ``unet_small`` (2 threads, channels-last, ``benchmarks/bench_speed.py`` and the probe
below): on an AMD EPYC with AVX-512 BF16, bfloat16 inference ran 2.5x float32; on an Intel Xeon
with AVX-512 BF16 but no AMX exposed, bfloat16 ran at 0.95x float32 for inference and 0.87x for
training — slower, and less exact. On such CPUs "auto" must stay float32. An Intel Xeon with AMX
(``amx_bf16``) measured a 4.0x faster bfloat16 training step, so "auto" runs bfloat16 there.

:func:`bf16_speedup` therefore times the real model: a training step (forward, backward, AdamW)
of ``unet_small`` on 4 x 2 x 128 x 128 inputs in channels-last, float32 and bfloat16 alternated
over ``rounds`` rounds (after one warm-up step each, which also JIT-compiles oneDNN kernels), and
returns the ratio of the median step times. The result is kept in a small JSON cache keyed by the
CPU model, its flags, the torch version and the thread count, so every later run on the machine
reads the same decision (a run's parameters, and so its folder, do not flip between
invocations); the probe costs a few seconds once. Cache folder: ``$FLOODNB_CACHE_DIR``, else
``$XDG_CACHE_HOME/floodnb``, else ``~/.cache/floodnb``. A corrupt or unreadable cache is measured
again and rewritten atomically (temporary file, then rename); an unwritable one is only skipped.
"""

from __future__ import annotations

import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

#: "auto" runs bfloat16 on a CPU only when a training step is at least this much faster than float32
#: (bfloat16 costs a little accuracy, so it must earn its place; the measured cases are 0.87x and 2.5x)
MIN_SPEEDUP = 1.25
#: environment variable naming the probe's cache folder
CACHE_ENV = "FLOODNB_CACHE_DIR"
CACHE_FILE = "precision_probe.json"


def cache_dir() -> Path:
    """Folder of the probe cache (see the module doc)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "floodnb"


def machine_key(threads: int, cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """Cache key of this machine for the probe: CPU model, flags, torch version, threads (hashed)."""
    import torch

    model = ""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    from floodnb.runtime import cpu_flags

    text = "|".join([model, " ".join(sorted(cpu_flags(cpuinfo))), torch.__version__, str(threads)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def measure(*, rounds: int = 5, batch: int = 4, size: int = 128) -> dict[str, float]:
    """Median seconds of one ``unet_small`` training step in float32 and bfloat16, and their ratio.

    Returns ``{"float32_s", "bfloat16_s", "speedup"}`` (speedup = float32_s / bfloat16_s). Uses
    torch's current thread count; seeds its own generator, leaves the global RNG untouched.
    """
    import torch
    import torch.nn.functional as F

    from floodnb.models import build_model
    from floodnb.runtime import autocast

    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds}")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 2, size, size, generator=g).contiguous(memory_format=torch.channels_last)
    y = torch.randint(0, 2, (batch, size, size), generator=g)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        model = build_model("unet_small", in_channels=2, num_classes=2)
    model = model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step(precision: str) -> float:
        t0 = time.perf_counter()
        with autocast(precision):
            loss = F.cross_entropy(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.float().backward()
        opt.step()
        return time.perf_counter() - t0

    times: dict[str, list[float]] = {"float32": [], "bfloat16": []}
    for p in times:
        step(p)  # warm-up (kernel selection / JIT)
    for _ in range(rounds):
        for p in times:
            times[p].append(step(p))
    f32, bf16 = statistics.median(times["float32"]), statistics.median(times["bfloat16"])
    return {"float32_s": f32, "bfloat16_s": bf16, "speedup": f32 / bf16}


def bf16_speedup(*, threads: int | None = None, rounds: int = 5) -> dict[str, float]:
    """:func:`measure` for this machine, read from the cache when it holds this machine's key.

    ``threads``: torch threads for the probe (None: :func:`floodnb.runtime.resolve_threads`). The
    returned dict adds ``"cached"`` (1.0 when read from the cache, else 0.0).
    """
    from floodnb.runtime import resolve_threads, threads_set

    n = resolve_threads(threads)
    key = machine_key(n)
    path = cache_dir() / CACHE_FILE
    entries: dict = {}
    try:
        entries = json.loads(path.read_text())
        hit = entries.get(key) if isinstance(entries, dict) else None
        if isinstance(hit, dict) and isinstance(hit.get("speedup"), (int, float)) and hit["speedup"] > 0:
            return {**{k: float(v) for k, v in hit.items()}, "cached": 1.0}
    except (OSError, ValueError):
        entries = {}
    if not isinstance(entries, dict):
        entries = {}
    with threads_set(n):
        result = measure(rounds=rounds)
    entries[key] = result
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".precision_probe.", suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(entries, f, indent=1)
        os.replace(tmp, path)
    except OSError:
        pass  # a read-only home: measured again next time, nothing else changes
    return {**result, "cached": 0.0}


def auto_cpu_precision(*, min_speedup: float = MIN_SPEEDUP) -> str:
    """``"bfloat16"`` when this CPU has native bfloat16 instructions *and* :func:`bf16_speedup`
    measures a training step at least ``min_speedup`` times faster than float32; else ``"float32"``.
    """
    from floodnb.runtime import native_bf16

    if not native_bf16("cpu"):
        return "float32"  # emulated bfloat16 is many times slower: nothing to measure
    return "bfloat16" if bf16_speedup()["speedup"] >= min_speedup else "float32"
