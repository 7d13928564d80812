"""Noise schedule of the generator and DAKTer's SNR-based balancing of image and label channels.

Forward process (Ho et al., NeurIPS 2020): ``x_t = sqrt(abar_t) x_0 + sqrt(1 - abar_t) eps`` with
the cosine schedule of Nichol & Dhariwal (ICML 2021), ``abar_t = f(t) / f(0)``,
``f(t) = cos^2(((t / T) + s) / (1 + s) * pi / 2)``, ``s = 0.008``, clipped to ``[1e-5, 0.9999]``.

Balancing (DAKTer, Moon et al., arXiv 2412.08116v2, "SNR-based balancing factor aligning the noise
corruption process of both modalities"): the signal-to-noise ratio of channel group ``m`` at step
``t`` is ``SNR_m(t) = abar_t * P_m / (1 - abar_t)`` with ``P_m`` the power of its (centred) signal.
A water label in ``[-1, 1]`` and speckled normalised backscatter carry different power, so with
one schedule one modality is destroyed earlier than the other. floodnb multiplies the label
channel by ``b = sqrt(P_image / P_label)`` (powers measured on the training chips:
:func:`balancing_factor`), which makes ``SNR_label(t) = SNR_image(t)`` at every ``t``; the sampler
divides by ``b`` again. This is our reading of the paper's factor (we could consult its abstract
and summary, not its equations); ``balance="none"`` gives ``b = 1`` (plain joint diffusion) for
comparison.
"""

from __future__ import annotations

import math

import torch

#: diffusion steps of training (the DDIM sampler uses a subset)
TIMESTEPS: int = 1000
_COSINE_S: float = 0.008


def cosine_alpha_bar(timesteps: int = TIMESTEPS) -> torch.Tensor:
    """``abar_t`` for ``t = 0..timesteps-1`` (float64, decreasing, in [1e-5, 0.9999]); Nichol & Dhariwal 2021."""
    if timesteps < 2:
        raise ValueError(f"timesteps must be >= 2, got {timesteps}")
    t = torch.arange(timesteps + 1, dtype=torch.float64) / timesteps
    f = torch.cos((t + _COSINE_S) / (1 + _COSINE_S) * math.pi / 2) ** 2
    return (f[1:] / f[0]).clamp(1e-5, 0.9999)


def snr(alpha_bar: torch.Tensor, power: float = 1.0) -> torch.Tensor:
    """Signal-to-noise ratio ``abar * power / (1 - abar)`` of a signal of mean power ``power``."""
    return alpha_bar * power / (1.0 - alpha_bar)


def q_sample(x0: torch.Tensor, t: torch.Tensor, noise: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
    """``x_t`` of the forward process: ``x0, noise`` (B, C, H, W), ``t`` (B,) int64 step indices."""
    a = alpha_bar.to(x0.device, x0.dtype)[t].view(-1, 1, 1, 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * noise


def signal_power(x: torch.Tensor, mask: torch.Tensor | None = None) -> float:
    """Mean power of ``x`` around its mean (its variance), over ``mask`` pixels when given."""
    v = x[mask] if mask is not None else x.reshape(-1)
    if v.numel() < 2:
        raise ValueError("signal_power: fewer than 2 pixels to measure")
    return float(v.double().var())


def balancing_factor(images: torch.Tensor, labels: torch.Tensor, *, image_mask: torch.Tensor | None = None,
                     label_mask: torch.Tensor | None = None) -> float:
    """DAKTer balancing factor ``b = sqrt(P_image / P_label)`` (see the module doc).

    ``images``: normalised backscatter ``(N, 2, H, W)``; ``labels``: label channel ``(N, H, W)`` in
    ``[-1, 1]`` (2 p_water - 1); masks ``(N, 2, H, W)`` / ``(N, H, W)`` bool select measured pixels.
    A label without variance (one class only) gives ``b = 1``.
    """
    p_img = signal_power(images, image_mask)
    p_lab = signal_power(labels, label_mask)
    if p_lab <= 1e-8:
        return 1.0
    return float(math.sqrt(p_img / p_lab))
