"""Settings of a generator run (no torch import: the CLI reads the defaults for ``--help``).

:class:`GenerateSettings`: the default generator budget (64 px crops, ``epochs x steps_per_epoch``
steps of ``batch_size`` crops, AdamW ``lr``, denoiser ``width`` / ``depth``, balancing, EMA decay of the
sampled weights, nearest-label fill of unknown label pixels) and the sampling settings
(``sample_steps`` DDIM steps with stochasticity ``eta``, ``n_samples`` chips, ``device``).

The defaults (2000 steps, width 16, depth 3, EMA 0.995, fill, 50 steps at eta 0.5) were chosen on
the realism table (README, DAKTer section: 22 of 22 statistics within the simulator report's
tolerances, seed 0); the earlier default (400 steps, depth 2, raw weights, 20 deterministic
steps) met 16 of 22.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class GenerateSettings:
    """Generator budget and sampling settings (defaults: the benchmark's and ``floodnb generate``'s)."""

    crop: int = 64
    epochs: int = 20
    steps_per_epoch: int = 100
    batch_size: int = 8
    lr: float = 2e-3
    seed: int = 0
    width: int = 16
    depth: int = 3
    balance: str | float = "snr"
    ema_decay: float = 0.995
    fill_unknown: bool = True
    sample_steps: int = 50
    eta: float = 0.5
    n_samples: int = 64
    device: str = "cpu"

    def __post_init__(self) -> None:
        for name in ("crop", "epochs", "steps_per_epoch", "batch_size", "sample_steps", "n_samples"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GenerateSettings.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.crop < 16:
            raise ValueError(f"GenerateSettings.crop must be >= 16 px, got {self.crop}")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"GenerateSettings.ema_decay must lie in [0, 1), got {self.ema_decay!r}")
        if not 0.0 <= float(self.eta) <= 1.0:
            raise ValueError(f"GenerateSettings.eta must lie in [0, 1], got {self.eta!r}")
        resolve_device(self.device)

    def train_config(self, *, progress: bool = True):
        """The engine's :class:`~floodnb.distill.engine.TrainConfig` of this budget."""
        from floodnb.distill.engine import TrainConfig

        return TrainConfig(epochs=self.epochs, batch_size=self.batch_size, lr=self.lr, seed=self.seed,
                           progress=progress, device=resolve_device(self.device), checkpoint_every=50)

    def generator_config(self):
        """The :class:`~floodnb.generate.train.GeneratorConfig` of these settings."""
        from floodnb.generate.train import GeneratorConfig

        return GeneratorConfig(width=self.width, depth=self.depth, balance=self.balance, ema_decay=self.ema_decay,
                               fill_unknown=self.fill_unknown)

    def to_dict(self) -> dict:
        return asdict(self)


def resolve_device(name: str) -> str:
    """``cpu`` | ``cuda`` | ``cuda:N`` as given; ``auto`` -> ``cuda`` when available else ``cpu``.
    Anything else is a ValueError naming the argument.
    """
    if name == "auto":
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"
    if name in ("cpu", "cuda") or (name.startswith("cuda:") and name[5:].isdigit()):
        return name
    raise ValueError(f"device {name!r}: expected cpu, cuda, cuda:N or auto")


