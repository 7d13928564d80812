"""Plain-torch U-Net family (Ronneberger et al., MICCAI 2015) with optional FiLM conditioning.

Input channels follow the band list of the run (e.g. 2 for Sentinel-1 VV/VH, 13 for all
Sentinel-2 bands, 15 for S2+S1, +1 with label conditioning); teacher and student differ by
inputs, not by code.

* ``width`` — channels of the first level; level ``i`` has ``width * 2**i`` channels.
* ``depth`` — number of 2x down-samplings (``depth + 1`` resolution levels).
* ``norm`` — ``"batch"`` (BatchNorm2d, default; Ioffe & Szegedy, ICML 2015) or ``"group"``
  (GroupNorm with 8 groups, Wu & He, ECCV 2018). BatchNorm is the default because it keeps the
  chip's *absolute* backscatter level: in eval mode it normalises with running statistics of
  the training set, so a uniformly dark (-28 dB VH, open water) chip stays dark. GroupNorm after
  bias-free convolutions at widths 4-16 is (near) instance normalisation: every chip is
  re-centred per channel, which erases its level, and a level-blind radar model is worse than
  one threshold per event (measured with ``benchmarks/bench_norm_level.py``, the experiment's
  budget and seed: simulated test water IoU 0.736 with GroupNorm vs 0.821 with BatchNorm; a
  uniform -28 dB VH chip 4.8 % vs 100 % water). ``"group"`` stays available, and checkpoints
  record their norm, so old GroupNorm checkpoints rebuild as they were trained. Data-parallel
  training synchronises BatchNorm statistics over the ranks (``SyncBatchNorm`` on CUDA,
  :class:`floodnb.models.syncbn.DistBatchNorm2d` on CPU/gloo; :mod:`floodnb.distill.ddp`).
* ``meta_dim > 0`` — FiLM conditioning (Perez et al., AAAI 2018) on a per-chip metadata vector
  ``meta (B, meta_dim)`` (floodnb: cyclic day of year and position on the sphere); a small MLP
  maps it to a per-channel scale and shift applied after the bottleneck and after every decoder
  block: ``h <- h * (1 + gamma) + beta``. Used by the teacher only (metadata conditioning of
  Bernhard et al., ECAI 2024: the student never sees place and date).

Any input size works: inputs are zero-padded on the bottom/right to a multiple of
``2**depth`` and the logits cropped back, so ``forward(x (B,C,H,W)) -> (B,K,H,W)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

NORMS: tuple[str, ...] = ("batch", "group")
#: Norm of models built without ``norm=``.
DEFAULT_NORM: str = "batch"


def _norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "group":
        groups = 8 if channels % 8 == 0 else (4 if channels % 4 == 0 else 1)
        return nn.GroupNorm(groups, channels)
    raise ValueError(f"norm={kind!r}: expected one of {NORMS}")


class ConvBlock(nn.Sequential):
    """Two (3x3 conv -> norm -> ReLU) layers: ``(B, c_in, H, W) -> (B, c_out, H, W)``."""

    def __init__(self, c_in: int, c_out: int, *, norm: str) -> None:
        super().__init__(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.ReLU(inplace=True),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), _norm(norm, c_out), nn.ReLU(inplace=True),
        )


class FiLM(nn.Module):
    """Feature-wise linear modulation: ``meta (B, D)`` -> scale/shift for listed channel counts."""

    def __init__(self, meta_dim: int, channels: list[int], *, hidden: int = 64) -> None:
        super().__init__()
        self.channels = list(channels)
        self.mlp = nn.Sequential(nn.Linear(meta_dim, hidden), nn.ReLU(inplace=True),
                                 nn.Linear(hidden, 2 * sum(self.channels)))

    def forward(self, meta: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = self.mlp(meta)
        params, start = [], 0
        for c in self.channels:
            gamma = out[:, start:start + c, None, None]
            beta = out[:, start + c:start + 2 * c, None, None]
            params.append((gamma, beta))
            start += 2 * c
        return params


class UNet(nn.Module):
    """U-Net: ``forward(x (B, in_channels, H, W), meta (B, meta_dim) | None) -> logits (B, K, H, W)``."""

    def __init__(self, *, in_channels: int, num_classes: int = 2, width: int = 32, depth: int = 4,
                 meta_dim: int = 0, norm: str = DEFAULT_NORM, film_hidden: int = 64) -> None:
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if width < 1 or depth < 1:
            raise ValueError(f"width and depth must be >= 1, got width={width}, depth={depth}")
        if meta_dim < 0:
            raise ValueError(f"meta_dim must be >= 0, got {meta_dim}")
        if norm not in NORMS:
            raise ValueError(f"norm={norm!r}: expected one of {NORMS}")
        self.in_channels, self.num_classes, self.width, self.depth = in_channels, num_classes, width, depth
        self.meta_dim, self.norm = meta_dim, norm
        chans = [width * 2 ** i for i in range(depth + 1)]
        self.enc = nn.ModuleList([ConvBlock(in_channels, chans[0], norm=norm)])
        self.enc.extend(ConvBlock(chans[i - 1], chans[i], norm=norm) for i in range(1, depth + 1))
        self.up = nn.ModuleList(nn.ConvTranspose2d(chans[i], chans[i - 1], 2, stride=2) for i in range(depth, 0, -1))
        self.dec = nn.ModuleList(ConvBlock(2 * chans[i - 1], chans[i - 1], norm=norm) for i in range(depth, 0, -1))
        self.head = nn.Conv2d(chans[0], num_classes, 1)
        # FiLM after the bottleneck and after every decoder block
        self.film = FiLM(meta_dim, [chans[depth]] + [chans[i - 1] for i in range(depth, 0, -1)],
                         hidden=film_hidden) if meta_dim > 0 else None

    def forward(self, x: torch.Tensor, meta: torch.Tensor | None = None) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(f"input must have shape (B, {self.in_channels}, H, W), got {tuple(x.shape)}")
        film = None
        if self.film is not None:
            if meta is None:
                raise ValueError(f"this model is metadata-conditioned (meta_dim={self.meta_dim}): "
                                 f"pass meta (B, {self.meta_dim})")
            if meta.shape != (x.shape[0], self.meta_dim):
                raise ValueError(f"meta must have shape ({x.shape[0]}, {self.meta_dim}), got {tuple(meta.shape)}")
            film = self.film(meta.to(x.dtype))
        h, w = x.shape[-2:]
        m = 2 ** self.depth
        ph, pw = (-h) % m, (-w) % m
        if ph or pw:
            x = F.pad(x, (0, pw, 0, ph))
        skips = []
        for i, block in enumerate(self.enc):
            if i > 0:
                x = F.max_pool2d(x, 2)
            x = block(x)
            skips.append(x)
        x = skips.pop()
        if film is not None:
            g, b = film[0]
            x = x * (1 + g) + b
        for j, (up, dec) in enumerate(zip(self.up, self.dec, strict=True)):
            x = dec(torch.cat([up(x), skips.pop()], dim=1))
            if film is not None:
                g, b = film[j + 1]
                x = x * (1 + g) + b
        x = self.head(x)
        return x[..., :h, :w] if (ph or pw) else x

    def config(self) -> dict:
        """Keyword arguments that rebuild this architecture (stored in checkpoints)."""
        return {"in_channels": self.in_channels, "num_classes": self.num_classes, "width": self.width,
                "depth": self.depth, "meta_dim": self.meta_dim, "norm": self.norm}
