"""Training of the DAKTer generator on the engine's resumable, deterministic :func:`~floodnb.distill.engine.fit`.

:class:`DiffusionObjective` is an engine objective: it scales the label channel of the joint
tensor by the balancing factor ``b`` (:mod:`floodnb.generate.schedule`), draws a step ``t`` and
noise per sample from the *CPU* global torch RNG (which the engine checkpoints, so a resumed run
draws the same numbers; tensors then move to the model's device), and returns the masked mean
squared error of the predicted velocity ``v = sqrt(abar) eps - sqrt(1 - abar) x_0`` (v-prediction,
Salimans & Ho, ICLR 2022: well conditioned at every noise level, where noise prediction makes the
few-step sampler divide the noise error by ``sqrt(abar) ~ 0.003`` at the first step and saturate)
with the image and label terms for the log. With an EMA denoiser (:mod:`floodnb.generate.ema`) it first folds
the previous step's weights into the average. :func:`train_generator` measures ``b`` on the training chips,
builds the denoiser and its spec (safetensors + JSON, :mod:`floodnb.models.checkpoint`) and calls ``fit``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from floodnb.bands import CLASS_NAMES, S1_BANDS
from floodnb.distill.engine import FitResult, TrainConfig, fit, seed_everything
from floodnb.generate.data import JointChips, stack_samples
from floodnb.generate.denoiser import MODEL_NAME, DenoiserUNet
from floodnb.generate.ema import EMA_MODEL_NAME, EMADenoiser
from floodnb.generate.schedule import TIMESTEPS, balancing_factor, cosine_alpha_bar, q_sample
from floodnb.models.checkpoint import ModelSpec

METHOD = "dakter_generator"
PAPER = "DAKTer: Moon et al., arXiv 2412.08116 (joint SAR image + soft label diffusion, SNR-based balancing)"


@dataclass(frozen=True)
class GeneratorConfig:
    """Denoiser and diffusion settings (stored in the checkpoint spec).

    ``width`` / ``depth``: :class:`~floodnb.generate.denoiser.DenoiserUNet`; ``timesteps``: training
    diffusion steps (cosine schedule); ``balance``: ``"snr"`` (DAKTer factor measured on
    ``balance_chips`` training chips), ``"none"`` (b = 1) or a number (b given); ``ema_decay``:
    0 samples with the raw trained weights (model ``dakter_unet``), a decay in (0, 1) keeps and
    samples with their exponential moving average (:class:`~floodnb.generate.ema.EMADenoiser`);
    ``fill_unknown``: unknown label pixels of the training input take the nearest label
    (:class:`~floodnb.generate.data.JointChips`; they stay out of the loss either way).
    """

    width: int = 16
    depth: int = 2
    timesteps: int = TIMESTEPS
    balance: str | float = "snr"
    balance_chips: int = 64
    ema_decay: float = 0.0
    fill_unknown: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.balance, str) and self.balance not in ("snr", "none"):
            raise ValueError(f"GeneratorConfig.balance={self.balance!r}: expected 'snr', 'none' or a number > 0")
        if not isinstance(self.balance, str) and not float(self.balance) > 0:
            raise ValueError(f"GeneratorConfig.balance must be > 0, got {self.balance!r}")
        for name in ("width", "depth", "balance_chips"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"GeneratorConfig.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.timesteps < 2:
            raise ValueError(f"GeneratorConfig.timesteps must be >= 2, got {self.timesteps}")
        if not 0.0 <= float(self.ema_decay) < 1.0:
            raise ValueError(f"GeneratorConfig.ema_decay must lie in [0, 1), got {self.ema_decay!r}")

    def build_model(self) -> DenoiserUNet | EMADenoiser:
        """The denoiser of these settings (with its EMA copy when ``ema_decay > 0``), 3 channels."""
        if self.ema_decay > 0:
            return EMADenoiser(in_channels=3, width=self.width, depth=self.depth, ema_decay=self.ema_decay)
        return DenoiserUNet(in_channels=3, width=self.width, depth=self.depth)


@dataclass(frozen=True)
class DiffusionObjective:
    """Engine objective ``(model, batch) -> (loss, terms)`` of the joint diffusion; see the module doc."""

    balance: float
    timesteps: int = TIMESTEPS

    def __call__(self, model: nn.Module, batch: Mapping) -> tuple[torch.Tensor, dict]:
        x0 = batch["x"].float()
        device = x0.device
        scale = torch.tensor([1.0, 1.0, self.balance], device=device).view(1, 3, 1, 1)
        x0 = x0 * scale
        mask = batch["mask"].float()
        core = getattr(model, "module", model)  # DistributedDataParallel wraps the denoiser
        if isinstance(core, EMADenoiser):
            core.update_ema()  # folds in the previous optimizer step (floodnb.generate.ema)
        n = x0.shape[0]
        t = torch.randint(0, self.timesteps, (n,))  # CPU global RNG: checkpointed by the engine
        noise = torch.randn(x0.shape).to(device)
        t = t.to(device)
        alpha_bar = cosine_alpha_bar(self.timesteps)
        xt = q_sample(x0, t, noise, alpha_bar)
        a = alpha_bar.to(device, x0.dtype)[t].view(-1, 1, 1, 1)
        target = a.sqrt() * noise - (1 - a).sqrt() * x0
        err = (model(xt, t) - target) ** 2 * mask
        img = err[:, :2].sum() / mask[:, :2].sum().clamp_min(1.0)
        lab = err[:, 2].sum() / mask[:, 2].sum().clamp_min(1.0)
        loss = err.sum() / mask.sum().clamp_min(1.0)
        return loss, {"mse_image": img.detach(), "mse_label": lab.detach()}


def measure_balance(data: JointChips, gen: GeneratorConfig) -> float:
    """The balancing factor ``b`` of ``gen.balance`` on the first ``gen.balance_chips`` chips of ``data``."""
    if gen.balance == "none":
        return 1.0
    if not isinstance(gen.balance, str):
        return float(gen.balance)
    s = stack_samples(data, gen.balance_chips)
    return balancing_factor(s["x"][:, :2], s["x"][:, 2], image_mask=s["mask"][:, :2], label_mask=s["mask"][:, 2])


@dataclass
class TrainedGenerator:
    """Result of :func:`train_generator`: the out folder, the fit history and the spec."""

    out_dir: Path
    fit: FitResult
    spec: ModelSpec
    balance: float


def generator_spec(model: DenoiserUNet | EMADenoiser, *, normalizer: dict, gen: GeneratorConfig, balance: float,
                   extra: Mapping | None = None) -> ModelSpec:
    """The checkpoint spec of a generator (inputs ``s1`` VV/VH with ``normalizer``; label x ``balance``)."""
    name = EMA_MODEL_NAME if isinstance(model, EMADenoiser) else MODEL_NAME
    return ModelSpec(model_name=name, model_config=model.config(), inputs=("s1",), bands={"s1": S1_BANDS},
                     normalizers={"s1": normalizer}, classes=CLASS_NAMES,
                     config={"method": METHOD, "paper": PAPER, "generator": asdict(gen), "balance": balance,
                             "schedule": "cosine", "prediction": "v",
                             "channels": ["VV", "VH", "label (2 p_water - 1) x balance"],
                             **dict(extra or {})})


def train_generator(train: Dataset, *, out_dir: str | Path, config: TrainConfig | None = None,
                    gen: GeneratorConfig | None = None, resume: bool = True,
                    settings: Mapping | None = None, step_callback=None) -> TrainedGenerator:
    """Train the DAKTer generator on ``train`` (S1 chips with hand labels, e.g. the hand training
    split as a ``ChipDataset`` with a random ``crop``) into ``out_dir`` (engine files:
    ``best.safetensors``, ``model.safetensors``, ``last.pt``, logs; resumable). Returns
    :class:`TrainedGenerator`. ``settings``: data settings recorded for resume checks;
    ``step_callback``: passed to ``fit`` (an exception in it stops training like a kill).
    """
    config = TrainConfig() if config is None else config
    gen = GeneratorConfig() if gen is None else gen
    joint = train if isinstance(train, JointChips) else JointChips(train, fill_unknown=gen.fill_unknown)
    norm = joint.normalizers["s1"]
    norm_dict = norm.to_dict() if hasattr(norm, "to_dict") else dict(norm)
    balance = measure_balance(joint, gen)
    seed_everything(config.seed)
    model = gen.build_model()
    spec = generator_spec(model, normalizer=norm_dict, gen=gen, balance=balance)
    objective = DiffusionObjective(balance=balance, timesteps=gen.timesteps)
    from floodnb.distill.runner import data_settings

    result = fit(model, objective, joint, config=config, out_dir=out_dir, spec=spec, validate=None, resume=resume,
                 settings={**data_settings(joint), **dict(settings or {})}, step_callback=step_callback)
    return TrainedGenerator(out_dir=Path(out_dir), fit=result, spec=spec, balance=balance)
