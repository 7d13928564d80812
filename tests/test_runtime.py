"""Precision and threads (floodnb.runtime) and the bfloat16 accuracy guard on tiny data (issue 17)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from floodnb import runtime
from floodnb.distill.baselines import train_baseline
from floodnb.distill.engine import TrainConfig
from floodnb.distill.evaluate import evaluate, iterate_predictions, plan_from_spec
from floodnb.models import load_checkpoint
from tests._distill_data import ToyChips

torch.set_num_threads(1)  # tiny convolutions: threads only add contention on the shared 2 cores


def test_check_precision_names_what_is_accepted():
    assert runtime.check_precision("bfloat16", "cpu") == "bfloat16"
    assert runtime.check_precision("float16", "cuda:1") == "float16"
    with pytest.raises(ValueError, match=r"--precision='half': expected one of float32, bfloat16, float16"):
        runtime.check_precision("half", name="--precision")
    with pytest.raises(ValueError, match=r"precision='float16' needs a CUDA device.*'bfloat16'"):
        runtime.check_precision("float16", "cpu")
    with pytest.raises(ValueError, match="precision='fp8'"):
        TrainConfig(precision="fp8")


def test_autocast_runs_convolutions_in_bfloat16_only_when_asked():
    conv = torch.nn.Conv2d(2, 3, 3)
    x = torch.randn(1, 2, 8, 8)
    with runtime.autocast("float32"):
        assert conv(x).dtype == torch.float32
    with runtime.autocast("bfloat16", "cpu"):
        assert conv(x).dtype == torch.bfloat16
    assert runtime.grad_scaler("bfloat16") is None  # bfloat16 has float32's range: no loss scaling
    assert runtime.to_channels_last(x, True).is_contiguous(memory_format=torch.channels_last)
    assert runtime.prefer_channels_last("bfloat16") and runtime.prefer_channels_last("float32")  # CPU: both
    assert runtime.prefer_channels_last("bfloat16", "cuda") and not runtime.prefer_channels_last("float32", "cuda")


def test_threads_from_argument_environment_and_cgroup(monkeypatch, tmp_path):
    monkeypatch.delenv(runtime.THREADS_ENV, raising=False)
    assert runtime.resolve_threads(3) == 3
    machine = runtime.machine_cpus()
    assert runtime.resolve_threads(0) == machine == runtime.resolve_threads(None) >= 1
    monkeypatch.setenv(runtime.THREADS_ENV, "5")
    assert runtime.resolve_threads(0) == 5 and runtime.resolve_threads(2) == 2
    monkeypatch.setenv(runtime.THREADS_ENV, "many")
    with pytest.raises(ValueError, match="FLOODNB_THREADS='many': expected an integer >= 1"):
        runtime.resolve_threads()
    with pytest.raises(ValueError, match="threads=-1"):
        runtime.resolve_threads(-1)
    (tmp_path / "cpu.max").write_text("50000 100000\n")  # half a CPU: at least one thread
    assert runtime.machine_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text("max 100000\n")  # no quota: the affinity set
    assert runtime.machine_cpus(tmp_path) == len(__import__("os").sched_getaffinity(0))
    monkeypatch.setenv(runtime.THREADS_ENV, "2")
    before = torch.get_num_threads()
    with runtime.threads_set(0) as n:
        assert n == 2 == torch.get_num_threads()
    assert torch.get_num_threads() == before


def _water_pred(model, data, spec, precision):
    plan = plan_from_spec(spec)
    out = [probs.argmax(1) for _, probs in iterate_predictions(model, data, plan, batch_size=4, precision=precision)]
    return torch.cat(out).numpy()


def test_bfloat16_accuracy_guard_on_tiny_data(tmp_path):
    """bfloat16 inference agrees with float32 on >= 99 % of pixels; bfloat16 training (same seed)
    gives a test water IoU within 0.05 of float32 training (0.01 on the simulated test split:
    benchmarks/bench_precision.py); the precision is recorded in the checkpoint spec.
    """
    train, valid, test = ToyChips(n=16, seed=1), ToyChips(n=2, seed=2), ToyChips(n=4, seed=3)
    runs = {}
    for precision in ("float32", "bfloat16"):
        cfg = TrainConfig(epochs=4, batch_size=4, lr=1e-2, seed=0, checkpoint_every=0, progress=False,
                          precision=precision)
        runs[precision] = train_baseline(kind="s1_hand", train=train, valid=valid, out_dir=tmp_path / precision,
                                         model="unet_tiny", config=cfg)
    spec = json.loads(load_checkpoint(tmp_path / "bfloat16" / "best.safetensors")[1].to_json())
    assert spec["config"]["train"]["precision"] == "bfloat16"
    model, spec32 = load_checkpoint(tmp_path / "float32" / "best.safetensors")
    exact, fast = _water_pred(model, test, spec32, "float32"), _water_pred(model, test, spec32, "bfloat16")
    assert (exact == fast).mean() >= 0.99
    m32, _ = evaluate(model, test, spec=spec32, reference="truth_water", progress=False)
    m16, _ = evaluate(model, test, spec=spec32, reference="truth_water", progress=False, precision="bfloat16")
    assert abs(m32["water_iou"] - m16["water_iou"]) <= 0.01
    trained16, spec16 = load_checkpoint(tmp_path / "bfloat16" / "best.safetensors")
    t16, _ = evaluate(trained16, test, spec=spec16, reference="truth_water", progress=False, precision="bfloat16")
    assert m32["water_iou"] > 0.7  # the guard compares models that learnt something (0.84 here)
    assert abs(t16["water_iou"] - m32["water_iou"]) <= 0.05
    with pytest.raises(ValueError, match="float16"):
        evaluate(model, test, spec=spec32, progress=False, precision="float16")
    assert np.isfinite(runs["bfloat16"].fit.losses).all()


def test_run_parameters_and_notebook_setup_resolve_precision_and_threads(tmp_path, monkeypatch):
    import argparse

    from floodnb import workflow
    from floodnb.commands import apply_speed_arguments
    from floodnb.pipeline import check_params, default_notebooks_dir, notebook_parameters
    from floodnb.runs.presets import DEFAULT, FAST

    known = notebook_parameters(default_notebooks_dir(), ())
    assert known["precision"] is None  # notebooks 03-05: None = the preset's
    check_params({"precision": "float32"}, known)
    with pytest.raises(ValueError, match="parameter precision='float16' needs a CUDA device"):
        check_params({"precision": "float16"}, known)
    with pytest.raises(ValueError, match="parameter precision=3: expected a string"):
        check_params({"precision": 3}, known)
    check_params({"precision": "auto"}, known)
    assert DEFAULT.train.precision == FAST.train.precision == "auto"
    from floodnb import precision_probe

    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu", **_: True)  # a CPU with AVX-512 BF16
    monkeypatch.setattr(precision_probe, "bf16_speedup", lambda **_: {"speedup": 2.5})  # measured faster
    monkeypatch.setenv(runtime.THREADS_ENV, "1")
    data = tmp_path / "data"
    data.mkdir()
    s = workflow.setup("03_train_teacher", data_root=data, run_dir=tmp_path / "run", out_dir=None, seed=0,
                       epochs=1, fast=True, progress=False)
    assert (s.precision, s.threads, s.train_config().precision) == ("bfloat16", 1, "bfloat16")
    s32 = workflow.setup("03_train_teacher", data_root=data, run_dir=tmp_path / "run", out_dir=None, seed=0,
                         epochs=1, fast=True, progress=False, precision="float32")
    assert workflow.model_dir(s32, "teacher") != workflow.model_dir(s, "teacher")  # other precision, other folder
    with pytest.raises(ValueError, match="precision='float16' needs a CUDA device"):
        workflow.setup("03_train_teacher", data_root=data, run_dir=tmp_path / "run", out_dir=None, seed=0,
                       epochs=1, fast=True, progress=False, precision="float16")
    with pytest.raises(ValueError, match="--precision='float16' needs a CUDA device"):
        apply_speed_arguments(argparse.Namespace(precision="float16", threads=0))
    with pytest.raises(ValueError, match="--threads -2"):
        apply_speed_arguments(argparse.Namespace(precision="float32", threads=-2))
    assert apply_speed_arguments(argparse.Namespace(precision="bfloat16", threads=1)) == ("bfloat16", 1)
    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu", **_: False)  # AVX2 only: bfloat16 emulated
    assert apply_speed_arguments(argparse.Namespace(precision="auto", threads=1)) == ("float32", 1)
    s_avx2 = workflow.setup("03_train_teacher", data_root=data, run_dir=tmp_path / "run", out_dir=None, seed=0,
                            epochs=1, fast=True, progress=False)
    assert s_avx2.precision == "float32"


def test_auto_precision_follows_the_cpu_flags(tmp_path):
    """"auto" is bfloat16 only on CPUs that compute it natively (AVX-512 BF16 / AMX), float32 elsewhere."""
    def cpuinfo(flags: str):
        p = tmp_path / f"cpuinfo_{len(list(tmp_path.iterdir()))}"
        p.write_text(f"processor\t: 0\nmodel name\t: AMD EPYC\nflags\t\t: {flags}\n\nprocessor\t: 1\n")
        return p
    sapphire = cpuinfo("fpu sse4_2 avx2 avx512f avx512bw avx512_bf16 amx_bf16 amx_tile")
    zen3 = cpuinfo("fpu sse4_2 fma avx avx2")
    skylake = cpuinfo("fpu avx2 avx512f avx512bw avx512vl")  # AVX-512 without BF16: emulated
    assert "avx512_bf16" in runtime.cpu_flags(sapphire) and runtime.cpu_flags(tmp_path / "missing") == frozenset()
    assert runtime.native_bf16("cpu", cpuinfo=sapphire)
    assert not runtime.native_bf16("cpu", cpuinfo=zen3) and not runtime.native_bf16("cpu", cpuinfo=skylake)
    assert not runtime.native_bf16("cpu", cpuinfo=tmp_path / "missing")  # unknown: the exact default
    from floodnb.precision_probe import auto_cpu_precision

    assert runtime.resolve_precision("auto") == auto_cpu_precision()  # this machine: flags, then measured
    assert runtime.resolve_precision("float32") == "float32" and runtime.resolve_precision("bfloat16") == "bfloat16"
    with pytest.raises(ValueError, match=r"--precision='fp8': expected auto or one of float32, bfloat16, float16"):
        runtime.resolve_precision("fp8", name="--precision")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        runtime.resolve_precision("float16", "cpu")


def test_predictor_precision_keeps_float32_probabilities_close():
    from floodnb.data.normalize import get_preset
    from floodnb.models import build_model
    from floodnb.predict import resolve_predictor

    torch.manual_seed(0)
    norms = {"s1": get_preset("sen1floods11_s1")}
    x = np.random.default_rng(0).normal(size=(2, 2, 32, 32)).astype(np.float32)
    exact = resolve_predictor(build_model("unet_tiny", in_channels=2).eval(), normalizers=norms)
    fast = resolve_predictor(exact, precision="bfloat16")
    assert (exact.precision, exact.channels_last) == ("float32", True)  # channels-last on CPU (faster)
    assert resolve_predictor(exact, channels_last=False).forward(np.zeros((1, 2, 32, 32), np.float32)).shape[0] == 1
    assert (fast.precision, fast.channels_last) == ("bfloat16", True) and resolve_predictor(fast) is fast
    p32, p16 = exact.forward(x), fast.forward(x)
    assert p16.dtype == np.float32 and np.abs(p32 - p16).max() < 0.05
    assert ((p32 > 0.5) == (p16 > 0.5)).mean() >= 0.99
    with pytest.raises(ValueError, match="Predictor.precision='float16' needs a CUDA device"):
        resolve_predictor(exact, precision="float16")


def test_experiment_threads_come_from_the_runtime(tmp_path, monkeypatch):
    from floodnb.experiment.run import run_experiment

    with pytest.raises(ValueError, match="threads=-1: expected an integer >= 1"):
        run_experiment(tmp_path / "exp", threads=-1)
    monkeypatch.setenv(runtime.THREADS_ENV, "0")
    with pytest.raises(ValueError, match="FLOODNB_THREADS='0'"):
        run_experiment(tmp_path / "exp", threads=0)
    assert not (tmp_path / "exp").exists()  # refused before any work


def test_auto_precision_is_bfloat16_only_where_measured_faster(monkeypatch):
    """Native bfloat16 flags are necessary, not sufficient: the measured speed-up decides (>= MIN_SPEEDUP)."""
    from floodnb import precision_probe as probe

    calls: list[int] = []
    monkeypatch.setattr(probe, "bf16_speedup", lambda **_: calls.append(1) or {"speedup": speed})
    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu", **_: False)
    speed = 3.0
    assert runtime.resolve_precision("auto") == "float32" and calls == []  # emulated: not even measured
    monkeypatch.setattr(runtime, "native_bf16", lambda device="cpu", **_: True)
    speed = 0.87  # measured: an AVX-512 BF16 Xeon without AMX trains slower in bfloat16
    assert runtime.resolve_precision("auto") == "float32"
    speed = probe.MIN_SPEEDUP  # at the threshold (an AVX-512 BF16 EPYC measured 2.5x)
    assert runtime.resolve_precision("auto") == "bfloat16" and len(calls) == 2
    assert runtime.resolve_precision("float32") == "float32" and len(calls) == 2  # explicit: no probe


def test_precision_probe_measures_once_per_machine_and_survives_a_bad_cache(monkeypatch, tmp_path):
    from floodnb import precision_probe as probe

    monkeypatch.setenv(probe.CACHE_ENV, str(tmp_path / "cache"))
    measured: list[int] = []

    def fake(*, rounds=5):
        measured.append(rounds)
        return {"float32_s": 0.2, "bfloat16_s": 0.1, "speedup": 2.0}

    monkeypatch.setattr(probe, "measure", fake)
    first = probe.bf16_speedup(threads=1)
    assert first["speedup"] == 2.0 and first["cached"] == 0.0 and measured == [5]
    again = probe.bf16_speedup(threads=1)
    assert again["speedup"] == 2.0 and again["cached"] == 1.0 and measured == [5]  # read, not measured
    assert probe.bf16_speedup(threads=2)["cached"] == 0.0 and len(measured) == 2  # other threads: other key
    cache = tmp_path / "cache" / probe.CACHE_FILE
    assert len(json.loads(cache.read_text())) == 2
    cache.write_text("{not json")  # a corrupt cache is measured again and rewritten whole
    assert probe.bf16_speedup(threads=1)["cached"] == 0.0 and len(measured) == 3
    assert len(json.loads(cache.read_text())) == 1
    assert not [p for p in cache.parent.iterdir() if p.name.endswith(".tmp")]  # atomic write left nothing
    blocker = tmp_path / "file"
    blocker.write_text("x")
    monkeypatch.setenv(probe.CACHE_ENV, str(blocker / "sub"))  # cannot be created: measured, not cached
    assert probe.bf16_speedup(threads=1)["speedup"] == 2.0 and len(measured) == 4


def test_precision_probe_times_a_real_training_step():
    from floodnb import precision_probe as probe

    before = torch.random.get_rng_state()
    r = probe.measure(rounds=1, batch=1, size=32)
    assert r["float32_s"] > 0 and r["bfloat16_s"] > 0
    assert r["speedup"] == pytest.approx(r["float32_s"] / r["bfloat16_s"])
    assert torch.equal(before, torch.random.get_rng_state())  # the global RNG is left as it was
    with pytest.raises(ValueError, match="rounds must be >= 1"):
        probe.measure(rounds=0)


def test_cpu_inference_runs_passes_of_at_most_512_squared_pixels(monkeypatch):
    """Chip evaluation on a CPU splits a batch into forward passes of <= CPU_PIXELS_PER_FORWARD pixels
    (bigger passes run slower per pixel there: benchmarks/bench_batch.py); the probabilities do not change.
    """
    from floodnb.distill.evaluate import InputPlan
    from floodnb.models import build_model

    assert runtime.cpu_forward_chunk(512, 512) == 1 and runtime.cpu_forward_chunk(256, 256) == 4
    assert runtime.cpu_forward_chunk(1024, 1024) == 1 and runtime.cpu_forward_chunk(100, 100) == 26
    torch.manual_seed(0)
    model = build_model("unet_tiny", in_channels=2)
    data, plan = ToyChips(n=7, size=32), InputPlan(inputs=("s1",))
    passes: list[int] = []
    model.register_forward_hook(lambda _m, args, _out: passes.append(args[0].shape[0]))
    whole = torch.cat([p for _, p in iterate_predictions(model, data, plan, batch_size=7)])
    assert passes == [7]  # 7 x 32² px: one pass
    passes.clear()
    monkeypatch.setattr(runtime, "CPU_PIXELS_PER_FORWARD", 3 * 32 * 32)
    split = torch.cat([p for _, p in iterate_predictions(model, data, plan, batch_size=7)])
    assert passes == [3, 3, 1]
    torch.testing.assert_close(split, whole, atol=1e-5, rtol=0)
