"""Seeded DDIM sampling of the DAKTer generator (Song et al., ICLR 2021; ``eta = 0`` deterministic,
``eta > 0`` adds fresh noise of std ``eta * sqrt((1 - abar') / (1 - abar) * (1 - abar / abar')``
at every step, ``eta = 1`` being DDPM's ancestral sampler on the step subsequence).

:func:`load_generator` reads a generator checkpoint (safetensors + JSON spec) into a
:class:`Generator`; :meth:`Generator.sample` draws ``n`` chips of ``size`` px with ``steps``
denoising steps (a subsequence of the training steps: the fast sampler). Chip ``k``'s starting
noise comes from its own CPU generator seeded with ``(seed, k)`` (its step noise from one seeded
with ``(seed, k, 1)``), so the output depends only on ``(checkpoint, n, size, steps, eta, seed)``:
bit-identical on CPU for the same ``batch_size``, and equal up to float rounding (about 1e-4) for
another batch size (CPU convolutions sum in batch-dependent order).
Predicted clean samples are clipped to the data range at every step (image: the normaliser's dB
clip mapped to normalised units, e.g. [-50, 1] dB for ``sen1floods11_s1``, else ``±IMAGE_CLIP``;
label: ``±b``). The result (:class:`Generated`) holds VV/VH in the checkpoint's normalisation and the
soft label ``(N, 2, H, W)`` ``[p_dry, p_water]`` with ``p_water = (label / b + 1) / 2``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from floodnb.generate.schedule import cosine_alpha_bar
from floodnb.models.checkpoint import ModelSpec

#: clip of predicted normalised backscatter when the normaliser has no dB clip of its own
IMAGE_CLIP: float = 8.0


def denormalize(y: np.ndarray, normalizer) -> np.ndarray:
    """Inverse of :class:`floodnb.data.normalize.Normalizer` (``y = clip(x) k + c``): dB ``(..., C, H, W)`` float32.

    ``normalizer``: a Normalizer or its ``to_dict()``. Values the clip cut off come back at the clip bound.
    """
    from floodnb.data.normalize import Normalizer

    n = normalizer if isinstance(normalizer, Normalizer) else Normalizer.from_dict(normalizer)
    k, c = n.affine()
    return ((np.asarray(y, np.float32) - c) / k).astype(np.float32)


@dataclass
class Generated:
    """Generated pairs: ``s1`` (N, 2, H, W) normalised VV/VH, ``soft`` (N, 2, H, W) [p_dry, p_water], the
    normaliser dict of ``s1`` and the sampling settings.
    """

    s1: np.ndarray
    soft: np.ndarray
    normalizer: dict
    settings: dict

    def __len__(self) -> int:
        return int(self.s1.shape[0])

    def s1_db(self) -> np.ndarray:
        """VV/VH in dB (N, 2, H, W)."""
        return denormalize(self.s1, self.normalizer)

    def label(self, threshold: float = 0.5) -> np.ndarray:
        """Hard label (N, H, W) int16: 1 where ``p_water > threshold``, else 0."""
        return (self.soft[:, 1] > threshold).astype(np.int16)

    def save(self, path: str | Path) -> Path:
        """Write ``s1``, ``soft`` and the settings to one ``.npz`` atomically."""
        import json

        from floodnb.io_utils import atomic_path

        path = Path(path)
        if path.suffix != ".npz":
            raise ValueError(f"Generated.save: {path} must end with .npz")
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, s1=self.s1, soft=self.soft, normalizer=json.dumps(self.normalizer),
                     settings=json.dumps(self.settings))
        return path

    @classmethod
    def load(cls, path: str | Path) -> Generated:
        import json

        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"generated pairs {path} not found")
        with np.load(path) as z:
            missing = [k for k in ("s1", "soft", "normalizer", "settings") if k not in z]
            if missing:
                raise ValueError(f"{path}: not a floodnb generated-pairs file (lacks {missing})")
            return cls(s1=z["s1"], soft=z["soft"], normalizer=json.loads(str(z["normalizer"])),
                       settings=json.loads(str(z["settings"])))


def ddim_timesteps(steps: int, timesteps: int) -> list[int]:
    """``steps`` distinct training steps from ``timesteps - 1`` down to 0 (evenly spaced)."""
    if not 1 <= steps <= timesteps:
        raise ValueError(f"steps must lie in 1..{timesteps}, got {steps}")
    seq = np.unique(np.linspace(0, timesteps - 1, steps).round().astype(int))[::-1]
    return [int(s) for s in seq]


def chip_generator(seed: int, k: int, stream: int = 0) -> torch.Generator:
    """CPU generator of chip ``k``: stream 0 its starting noise (seeded by ``(seed, k)``), stream 1
    the fresh noise of the stochastic (``eta > 0``) steps (seeded by ``(seed, k, 1)``).
    """
    key = [seed, k] if stream == 0 else [seed, k, stream]
    return torch.Generator().manual_seed(int(np.random.SeedSequence(key).generate_state(1)[0]))


def chip_noise(n: int, size: int, seed: int, start: int = 0) -> torch.Tensor:
    """Starting noise (n, 3, size, size) of chips ``start .. start + n - 1``: chip k seeded by ``(seed, k)``."""
    return torch.stack([torch.randn(3, size, size, generator=chip_generator(seed, k))
                        for k in range(start, start + n)])


@dataclass
class Generator:
    """A trained denoiser with its spec; :meth:`sample` draws generated pairs."""

    model: nn.Module
    spec: ModelSpec

    @property
    def balance(self) -> float:
        return float(self.spec.config["balance"])

    @property
    def timesteps(self) -> int:
        return int(self.spec.config["generator"]["timesteps"])

    def bounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-channel ``(lo, hi)`` (1, 3, 1, 1) of clean samples: the normaliser's clip, label ``±b``."""
        from floodnb.data.normalize import Normalizer

        norm = Normalizer.from_dict(self.spec.normalizers["s1"])
        if norm.clip is None:
            lo, hi = [-IMAGE_CLIP] * 2, [IMAGE_CLIP] * 2
        else:
            k, c = norm.affine()
            lo = list((norm.clip[0] * k + c).ravel().astype(float))
            hi = list((norm.clip[1] * k + c).ravel().astype(float))
        return (torch.tensor([*lo, -self.balance], dtype=torch.float32).view(1, 3, 1, 1),
                torch.tensor([*hi, self.balance], dtype=torch.float32).view(1, 3, 1, 1))

    @torch.inference_mode()
    def _denoise(self, x: torch.Tensor, seq: list[int], alpha_bar: torch.Tensor, *, eta: float = 0.0,
                 gens: list[torch.Generator] | None = None) -> torch.Tensor:
        device = x.device
        lo, hi = (b.to(device) for b in self.bounds())
        for i, t in enumerate(seq):
            a = alpha_bar[t]
            a_prev = alpha_bar[seq[i + 1]] if i + 1 < len(seq) else torch.tensor(1.0, dtype=alpha_bar.dtype)
            tt = torch.full((x.shape[0],), t, dtype=torch.long, device=device)
            v = self.model(x, tt)  # v-prediction (floodnb.generate.train)
            x0 = a.sqrt().float() * x - (1 - a).sqrt().float() * v
            x0 = torch.maximum(torch.minimum(x0, hi), lo)
            eps = (x - a.sqrt().float() * x0) / (1 - a).sqrt().float()
            sigma = eta * ((1 - a_prev) / (1 - a) * (1 - a / a_prev)).clamp_min(0).sqrt()
            x = a_prev.sqrt().float() * x0 + (1 - a_prev - sigma ** 2).clamp_min(0).sqrt().float() * eps
            if float(sigma) > 0 and gens is not None:
                z = torch.stack([torch.randn(x.shape[1:], generator=g) for g in gens]).to(device)
                x = x + sigma.float() * z
        return x

    def sample(self, n: int, *, size: int = 64, steps: int = 20, seed: int = 0, batch_size: int = 16,
               device: str = "cpu", eta: float = 0.0, progress: bool = False) -> Generated:
        """``n`` generated pairs of ``size`` x ``size`` px with ``steps`` DDIM steps and stochasticity
        ``eta`` (0: deterministic DDIM, 1: DDPM-like ancestral steps); see the module doc.
        """
        from tqdm.auto import tqdm

        if n < 1 or size < 8 or batch_size < 1:
            raise ValueError(f"sample: need n >= 1, size >= 8 and batch_size >= 1, got n={n}, size={size}, "
                             f"batch_size={batch_size}")
        if not 0.0 <= eta <= 1.0:
            raise ValueError(f"sample: eta must lie in [0, 1], got {eta!r}")
        seq = ddim_timesteps(steps, self.timesteps)
        alpha_bar = cosine_alpha_bar(self.timesteps)
        model = self.model.to(device).eval()
        self.model = model
        parts = []
        for start in tqdm(range(0, n, batch_size), desc="sampling", disable=not progress, leave=False):
            x = chip_noise(min(batch_size, n - start), size, seed, start).to(device)
            gens = [chip_generator(seed, k, stream=1) for k in range(start, start + x.shape[0])] if eta > 0 else None
            parts.append(self._denoise(x, seq, alpha_bar, eta=eta, gens=gens).cpu())
        arr = torch.cat(parts).numpy()
        p = np.clip((arr[:, 2] / self.balance + 1.0) / 2.0, 0.0, 1.0)
        soft = np.stack([1.0 - p, p], axis=1).astype(np.float32)
        return Generated(s1=np.ascontiguousarray(arr[:, :2], dtype=np.float32), soft=soft,
                         normalizer=dict(self.spec.normalizers["s1"]),
                         settings={"n": n, "size": size, "steps": steps, "seed": seed, "eta": eta})


def load_generator(path: str | Path, *, device: str = "cpu") -> Generator:
    """The generator of a checkpoint (``.safetensors``, engine ``last.pt`` or a run folder)."""
    import floodnb.generate.denoiser  # noqa: F401  (registers the denoiser's model names)
    import floodnb.generate.ema  # noqa: F401
    from floodnb.models.checkpoint import load_checkpoint, read_spec

    spec = read_spec(path)
    if spec.config.get("method") != "dakter_generator":
        raise ValueError(f"{path}: not a DAKTer generator checkpoint (method {spec.config.get('method')!r})")
    model, spec = load_checkpoint(path, map_location=device)
    return Generator(model=model, spec=spec)

