"""Exponential moving average (EMA) of the denoiser's weights, kept inside the model.

Diffusion models sample from an EMA of their training weights (Ho et al., NeurIPS 2020, decay
0.9999; Nichol & Dhariwal, ICML 2021): the raw weights of the last optimizer steps carry the
step-to-step noise of small batches, which shows as wrong fine texture (speckle) in the samples.

:class:`EMADenoiser` holds the trained network ``net`` and its average ``ema`` (same architecture,
no gradients) as submodules, so the engine's ``last.pt`` and the safetensors checkpoints carry
both and a resumed run continues the average exactly. :meth:`EMADenoiser.update_ema` is called
by the training objective *before* each training forward, so it folds in the weights of the
previous optimizer step (the average lags one step; deterministic and resume-exact because the
checkpoint of step ``k`` holds ``net_k`` and the average of ``net_0 .. net_{k-1}``). The decay
ramps up as ``min(decay, (1 + n) / (10 + n))`` after ``n`` updates (the warm-up of
TensorFlow's ``ExponentialMovingAverage(num_updates=...)``), so short runs are not dominated by
the random initial weights. ``forward`` uses ``net`` in training mode and ``ema`` in eval mode
(the sampler calls ``eval()``).

Registered as ``dakter_unet_ema`` in :mod:`floodnb.models.registry`.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from floodnb.generate.denoiser import DenoiserUNet
from floodnb.models.registry import model_names, register_model

EMA_MODEL_NAME = "dakter_unet_ema"


class EMADenoiser(nn.Module):
    """:class:`~floodnb.generate.denoiser.DenoiserUNet` (``net``) plus the EMA of its weights (``ema``).

    Keyword arguments: those of ``DenoiserUNet`` plus ``ema_decay`` in (0, 1). ``forward(x (B, C, H, W),
    t (B,)) -> v (B, C, H, W)`` with ``net`` while training, ``ema`` in eval mode.
    """

    def __init__(self, *, ema_decay: float = 0.999, **unet_kw) -> None:
        super().__init__()
        if not 0.0 < float(ema_decay) < 1.0:
            raise ValueError(f"{EMA_MODEL_NAME}: ema_decay must lie in (0, 1), got {ema_decay!r}")
        self.ema_decay = float(ema_decay)
        self.net = DenoiserUNet(**unet_kw)
        self.ema = copy.deepcopy(self.net)
        self.ema.requires_grad_(False)
        self.ema_updates: torch.Tensor
        self.register_buffer("ema_updates", torch.zeros((), dtype=torch.int64))

    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture (stored in checkpoints)."""
        return {**self.net.config(), "ema_decay": self.ema_decay}

    @torch.no_grad()
    def update_ema(self) -> None:
        """Fold the current ``net`` weights into ``ema`` (ramped decay, see the module doc)."""
        n = int(self.ema_updates)
        d = min(self.ema_decay, (1.0 + n) / (10.0 + n))
        for e, p in zip(self.ema.parameters(), self.net.parameters(), strict=True):
            e.mul_(d).add_(p.detach(), alpha=1.0 - d)
        for eb, b in zip(self.ema.buffers(), self.net.buffers(), strict=True):
            eb.copy_(b)
        self.ema_updates.add_(1)

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.net(x, t) if self.training else self.ema(x, t)


if EMA_MODEL_NAME not in model_names():
    register_model(EMA_MODEL_NAME, EMADenoiser)
