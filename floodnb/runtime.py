"""How fast floodnb runs on this machine: numeric precision and CPU threads, resolved in one place.

* **Precision** (:data:`PRECISIONS`): ``"float32"`` (exact reference), ``"bfloat16"`` (CPU and
  CUDA; on CPUs with AVX-512 BF16 / AMX and on Ampere+ GPUs much faster) and ``"float16"``
  (CUDA only). Reduced precision is *mixed* precision: weights and optimizer state stay float32,
  convolutions run in the reduced type under :func:`torch.autocast` (Micikevicius et al. 2018,
  "Mixed Precision Training"), and float16 training scales the loss (:func:`grad_scaler`) so
  small gradients do not underflow. Outputs (probabilities, losses) are float32.
* **"auto"** (:func:`resolve_precision`, the default of ``floodnb run`` and the notebooks):
  on CUDA, bfloat16 where the device supports it; on a CPU, bfloat16 only where it has native
  bfloat16 instructions (flags ``avx512_bf16`` / ``amx_bf16``) *and* a measured training step of
  the U-Net runs at least 1.25x faster in bfloat16 (:mod:`floodnb.precision_probe`, measured once
  per machine and cached), else float32. Flags alone are not enough: an Intel Xeon with AVX-512
  BF16 but no AMX ran bfloat16 no faster than float32; without those instructions (AVX2 only)
  oneDNN emulates bfloat16 and is many times *slower*.
* **Threads** (:func:`resolve_threads`): torch intra-op threads; an explicit argument wins, then
  the environment variable :data:`THREADS_ENV` (``FLOODNB_THREADS``), then the CPUs this process
  may use (:func:`machine_cpus`: CPU affinity, capped by a cgroup CPU quota as in containers).
* **Memory format** (:func:`prefer_channels_last`): channels-last (NHWC) tensors let oneDNN's
  convolutions skip layout conversions. Measured on ``unet_small`` (2 threads; bare forward,
  ``benchmarks/bench_speed.py``'s memory-format row and interleaved repeats) float32 inference
  ran 1.17x (AVX2 EPYC), 1.55x (AVX-512 EPYC) and 1.49x (AVX-512 Xeon) faster in channels-last,
  float32 training 1.38x (Xeon), and bfloat16 gains more still: on for every precision on CPU.
  On CUDA it is used for reduced precision (tensor cores), not measured for float32 here.
* **Pixels per forward pass** (:data:`CPU_PIXELS_PER_FORWARD`, :func:`cpu_forward_chunk`): on a
  CPU a bigger forward pass runs *slower* per pixel once its activations outgrow the caches, so
  inference on CPU runs passes of at most 512² px (one 512² tile, four 256² chips); training
  batches are left as they are (their size is part of the recipe).

torch is imported inside the functions, so the constants here are cheap to import (the pipeline
checks parameters with them before any kernel starts).
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch

#: precisions floodnb accepts (exact first)
PRECISIONS: tuple[str, ...] = ("float32", "bfloat16", "float16")
#: what ``precision="auto"`` may resolve to is one of :data:`PRECISIONS`; this is the name of that choice
AUTO = "auto"
#: /proc/cpuinfo flags of CPU instructions that compute bfloat16 natively (AVX-512 BF16, AMX)
CPU_BF16_FLAGS: tuple[str, ...] = ("avx512_bf16", "amx_bf16")
#: environment variable overriding the number of torch threads
THREADS_ENV = "FLOODNB_THREADS"
#: pixels per inference forward pass on a CPU (:func:`cpu_forward_chunk`). Measured with
#: ``benchmarks/bench_batch.py`` (``unet_small``, 2 threads, channels-last, Intel Xeon with AMX):
#: 512² tiles at 1 vs 4 per pass ran 698 vs 350 km²/s in bfloat16 and 221 vs 153 km²/s in float32;
#: 256² chips at 4 vs 8 per pass 777 vs 536 (bfloat16) and 236 vs 187 (float32). The AMD EPYC's
#: speed table shows the same (bfloat16 8 x 256² chips 587 km²/s, 4 x 512² tiles 322 km²/s).
CPU_PIXELS_PER_FORWARD = 512 * 512


def device_type(device: str | torch.device) -> str:
    """``"cpu"`` or ``"cuda"`` (other accelerators by their type name) of ``device`` (``"cuda:1"`` -> ``"cuda"``)."""
    return str(device).split(":", 1)[0]


def check_precision(precision: str, device: str | torch.device = "cpu", *, name: str = "precision") -> str:
    """``precision`` checked for ``device``; ``ValueError`` naming ``name`` and what is accepted.

    float16 is refused off CUDA: CPU kernels for float16 convolutions are slow and its range
    needs loss scaling, so bfloat16 is the reduced precision for CPUs.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"{name}={precision!r}: expected one of {', '.join(PRECISIONS)}")
    if precision == "float16" and device_type(device) != "cuda":
        raise ValueError(f"{name}='float16' needs a CUDA device (got device {str(device)!r}); "
                         "use 'bfloat16' (or 'float32') on CPU")
    return precision


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> frozenset[str]:
    """The instruction-set flags of the first CPU in ``cpuinfo`` (Linux); empty where unreadable."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith(("flags", "Features")):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def native_bf16(device: str | torch.device = "cpu", *, cpuinfo: str | Path = "/proc/cpuinfo") -> bool:
    """Whether ``device`` computes bfloat16 natively: a CPU with one of :data:`CPU_BF16_FLAGS`, or a
    CUDA device for which ``torch.cuda.is_bf16_supported()`` holds. Unknown (no /proc/cpuinfo) is False.
    """
    if device_type(device) == "cuda":
        import torch

        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return bool(cpu_flags(cpuinfo) & set(CPU_BF16_FLAGS))


def resolve_precision(precision: str, device: str | torch.device = "cpu", *, name: str = "precision") -> str:
    """``precision`` checked (:func:`check_precision`), with ``"auto"`` resolved for ``device``:
    CUDA: ``"bfloat16"`` where :func:`native_bf16`; CPU:
    :func:`floodnb.precision_probe.auto_cpu_precision` (native instructions and measured faster);
    else ``"float32"``.
    """
    if precision == AUTO:
        if device_type(device) == "cpu":
            from floodnb.precision_probe import auto_cpu_precision

            return auto_cpu_precision()
        return "bfloat16" if native_bf16(device) else "float32"
    if precision not in PRECISIONS:
        raise ValueError(f"{name}={precision!r}: expected {AUTO} or one of {', '.join(PRECISIONS)}")
    return check_precision(precision, device, name=name)


def compute_dtype(precision: str) -> torch.dtype:
    """The torch dtype convolutions run in under ``precision``."""
    import torch

    return {"float32": torch.float32, "bfloat16": torch.bfloat16,
            "float16": torch.float16}[check_precision(precision, "cuda")]


def autocast(precision: str, device: str | torch.device = "cpu") -> contextlib.AbstractContextManager:
    """Context running ``device``'s matmuls/convolutions in ``precision`` (no-op for float32)."""
    import torch

    check_precision(precision, device)
    if precision == "float32":
        return contextlib.nullcontext()
    return torch.autocast(device_type(device), dtype=compute_dtype(precision))


def grad_scaler(precision: str, device: str | torch.device = "cpu") -> torch.amp.GradScaler | None:
    """A loss scaler for float16 training on CUDA (dynamic scale, float32 master weights), else None.

    bfloat16 has float32's exponent range and needs none.
    """
    import torch

    check_precision(precision, device)
    if precision != "float16":
        return None
    return torch.amp.GradScaler(device_type(device))


def prefer_channels_last(precision: str, device: str | torch.device = "cpu") -> bool:
    """Whether tensors should be channels-last for ``precision`` on ``device`` (see the module doc):
    always on CPU, for reduced precision on other devices.
    """
    return device_type(device) == "cpu" or precision != "float32"


def cpu_forward_chunk(height: int, width: int) -> int:
    """Inputs of ``height x width`` px per inference forward pass on a CPU: as many as fit in
    :data:`CPU_PIXELS_PER_FORWARD` pixels, at least 1.
    """
    return max(1, CPU_PIXELS_PER_FORWARD // max(1, height * width))


def to_channels_last(x: torch.Tensor, enabled: bool) -> torch.Tensor:
    """``x`` (4-D) in channels-last memory format when ``enabled``; values unchanged."""
    import torch

    if enabled and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


def _cgroup_quota(root: Path = Path("/sys/fs/cgroup")) -> int | None:
    """CPUs allowed by a cgroup CPU quota (v2 ``cpu.max`` or v1 ``cpu.cfs_quota_us``), None if unlimited."""
    try:
        quota, period = (root / "cpu.max").read_text().split()[:2]
        if quota != "max":
            return max(1, math.ceil(int(quota) / int(period)))
        return None
    except (OSError, ValueError):
        pass
    try:
        q = int((root / "cpu" / "cpu.cfs_quota_us").read_text())
        p = int((root / "cpu" / "cpu.cfs_period_us").read_text())
        return max(1, math.ceil(q / p)) if q > 0 and p > 0 else None
    except (OSError, ValueError):
        return None


def machine_cpus(cgroup_root: str | Path = "/sys/fs/cgroup") -> int:
    """CPUs this process may run on: its CPU affinity set, capped by a cgroup CPU quota (>= 1)."""
    try:
        n = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        n = os.cpu_count() or 1
    quota = _cgroup_quota(Path(cgroup_root))
    return max(1, min(n, quota) if quota else n)


def resolve_threads(threads: int | None = None, *, name: str = "threads") -> int:
    """Torch threads to use: ``threads`` when > 0, else ``$FLOODNB_THREADS``, else :func:`machine_cpus`.

    ``threads`` of 0 or None means "from the machine"; a negative value or a ``FLOODNB_THREADS``
    that is not a positive integer is a ``ValueError`` naming it.
    """
    if threads is not None:
        if not isinstance(threads, int) or isinstance(threads, bool) or threads < 0:
            raise ValueError(f"{name}={threads!r}: expected an integer >= 1 (0 or None: from the machine)")
        if threads > 0:
            return threads
    env = os.environ.get(THREADS_ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise ValueError(f"environment variable {THREADS_ENV}={env!r}: expected an integer >= 1")
        return int(env)
    return machine_cpus()


def apply_threads(threads: int | None = None) -> int:
    """Set torch's intra-op threads to :func:`resolve_threads` (``threads``) and return the number."""
    import torch

    n = resolve_threads(threads)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


@contextlib.contextmanager
def threads_set(threads: int | None) -> Iterator[int]:
    """Context with torch threads set by :func:`apply_threads`, restored afterwards."""
    import torch

    before = torch.get_num_threads()
    try:
        yield apply_threads(threads)
    finally:
        torch.set_num_threads(before)


def describe(precision: str, threads: int | None = None) -> dict[str, object]:
    """What a run records about its speed settings: ``{"precision", "threads", "channels_last"}``."""
    return {"precision": precision, "threads": resolve_threads(threads),
            "channels_last": prefer_channels_last(precision)}
