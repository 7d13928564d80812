"""The two run presets, ``DEFAULT`` and ``FAST`` (``--fast`` / ``fast=True``), as frozen dataclasses.

The default run (simulate + five notebooks, unet_small on 128 px crops, 4 epochs) is sized to
finish in under 10 minutes on 2 CPU cores (``benchmarks/bench_run.py``); the fast one (tests,
smoke runs) trains unet_tiny for 1 epoch on 64 px chips. Both train and evaluate in bfloat16 mixed
precision (:mod:`floodnb.runtime`): the fastest setting on CPU that keeps water IoU within 0.01 of
float32 (``benchmarks/bench_precision.py``); ``precision="float32"`` gives the exact reference.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimSizes:
    """Simulated dataset of a run without a data root: ``hand`` + ``weak`` chips of ``size`` x ``size`` px."""

    hand: int
    weak: int
    size: int

    def params(self) -> dict[str, int]:
        """The sizes as the pipeline's parameters ``{"sim_hand", "sim_weak", "sim_size"}``."""
        return {"sim_hand": self.hand, "sim_weak": self.weak, "sim_size": self.size}

    @classmethod
    def from_params(cls, params: dict[str, int]) -> SimSizes:
        """Inverse of :meth:`params` (all three keys required)."""
        return cls(hand=int(params["sim_hand"]), weak=int(params["sim_weak"]), size=int(params["sim_size"]))


@dataclass(frozen=True)
class TrainDefaults:
    """What a notebook trains when its ``epochs`` / ``model`` / ``crop`` / ``precision`` parameters are None
    (crop in px; precision one of :data:`floodnb.runtime.PRECISIONS`).
    """

    epochs: int
    model: str
    crop: int
    precision: str = "auto"


@dataclass(frozen=True)
class Preset:
    """Training defaults and simulated-data sizes of one mode."""

    train: TrainDefaults
    sim: SimSizes


DEFAULT = Preset(train=TrainDefaults(epochs=4, model="unet_small", crop=128, precision="auto"),
                 sim=SimSizes(hand=120, weak=120, size=256))
FAST = Preset(train=TrainDefaults(epochs=1, model="unet_tiny", crop=64, precision="auto"),
              sim=SimSizes(hand=16, weak=24, size=64))
#: names of the simulation-size parameters ``floodnb run`` accepts besides the notebooks' own
SIM_PARAMS: tuple[str, ...] = tuple(DEFAULT.sim.params())


def preset(fast: bool) -> Preset:
    """:data:`FAST` when ``fast`` else :data:`DEFAULT`."""
    return FAST if fast else DEFAULT
