"""The generator's denoiser: a small plain-torch U-Net with a sinusoidal timestep embedding.

``forward(x (B, C, H, W), t (B,) int64) -> v (B, C, H, W)``: predicts the velocity of ``x_t``
(v-prediction, Salimans & Ho, ICLR 2022; :mod:`floodnb.generate.train`) of the denoising diffusion
model (Ho et al., NeurIPS 2020). Residual blocks with GroupNorm and SiLU; the embedding of ``t``
(Vaswani et al. 2017 sinusoids -> MLP) is added to every block's features. ``width`` channels at
full resolution, ``width * 2**i`` at level ``i``, ``depth`` 2x down-samplings; inputs are padded
to a multiple of ``2**depth`` and the output cropped back, so any chip size works (the model is
fully convolutional: a generator trained on 64 px crops can sample 128 px chips).

Registered as ``dakter_unet`` in :mod:`floodnb.models.registry`, so :func:`floodnb.models.load_checkpoint`
rebuilds it from its spec (import :mod:`floodnb.generate` first).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from floodnb.models.registry import model_names, register_model

MODEL_NAME = "dakter_unet"


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding ``(B, dim)`` of integer steps ``t (B,)`` (Vaswani et al. 2017)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = t.float()[:, None] * freqs[None]
    return torch.cat([torch.sin(args), torch.cos(args)], dim=1)


def _groups(c: int) -> int:
    return math.gcd(8, c)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, timestep embedding added in between, residual connection."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int) -> None:
        super().__init__()
        self.norm1, self.conv1 = nn.GroupNorm(_groups(c_in), c_in), nn.Conv2d(c_in, c_out, 3, padding=1)
        self.emb = nn.Linear(emb_dim, c_out)
        self.norm2, self.conv2 = nn.GroupNorm(_groups(c_out), c_out), nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb(emb)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return h + self.skip(x)


class DenoiserUNet(nn.Module):
    """Velocity predictor of the joint (VV, VH, label) tensor; see the module doc.

    ``in_channels``: channels of ``x`` (3: VV, VH, balanced label); ``num_classes``: kept for the
    registry's factory signature (the output has ``in_channels`` channels); ``meta_dim`` must be 0;
    ``norm`` is always ``"group"`` (recorded so checkpoint loading does not guess one).
    """

    def __init__(self, *, in_channels: int = 3, num_classes: int = 2, meta_dim: int = 0, width: int = 16,
                 depth: int = 2, norm: str = "group") -> None:
        super().__init__()
        if norm != "group":
            raise ValueError(f"{MODEL_NAME}: norm must be 'group' (GroupNorm), got {norm!r}")
        if meta_dim:
            raise ValueError(f"{MODEL_NAME}: metadata conditioning is not supported (meta_dim={meta_dim})")
        if in_channels < 1 or width < 1 or depth < 1:
            raise ValueError(f"{MODEL_NAME}: in_channels, width and depth must be >= 1, got "
                             f"{in_channels}, {width}, {depth}")
        self.in_channels, self.num_classes, self.width, self.depth = in_channels, num_classes, width, depth
        emb = 4 * width
        self.emb_dim = emb
        self.t_mlp = nn.Sequential(nn.Linear(width, emb), nn.SiLU(), nn.Linear(emb, emb))
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.inc = nn.Conv2d(in_channels, width, 3, padding=1)
        self.down = nn.ModuleList(ResBlock(chans[i], chans[i + 1], emb) for i in range(depth))
        self.mid = ResBlock(chans[-1], chans[-1], emb)
        self.up = nn.ModuleList(ResBlock(chans[i + 1] + chans[i + 1], chans[i], emb) for i in reversed(range(depth)))
        self.top = ResBlock(width + width, width, emb)
        self.out = nn.Sequential(nn.GroupNorm(_groups(width), width), nn.SiLU(), nn.Conv2d(width, in_channels, 3,
                                                                                         padding=1))

    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture (stored in checkpoints)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "width": self.width,
                "depth": self.depth, "norm": "group"}

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        h0, w0 = x.shape[-2:]
        m = 2 ** self.depth
        x = F.pad(x, (0, (-w0) % m, 0, (-h0) % m))
        emb = self.t_mlp(timestep_embedding(t, self.width))
        h = self.inc(x)
        skips = [h]
        for block in self.down:  # level i -> i + 1: halve the size, chans[i] -> chans[i + 1]
            h = block(F.avg_pool2d(h, 2), emb)
            skips.append(h)
        h = self.mid(h, emb)
        for block in self.up:  # level i + 1 -> i: merge the skip, chans[i + 1] -> chans[i], double the size
            h = block(torch.cat([h, skips.pop()], dim=1), emb)
            h = F.interpolate(h, scale_factor=2, mode="nearest")
        h = self.top(torch.cat([h, skips.pop()], dim=1), emb)
        return self.out(h)[..., :h0, :w0]


if MODEL_NAME not in model_names():
    register_model(MODEL_NAME, DenoiserUNet)
