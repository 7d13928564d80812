"""Generative augmentation (DAKTer; Moon et al., arXiv 2412.08116): a denoising diffusion model over
the joint tensor (VV, VH in floodnb's normalisation, water soft label) that makes new radar chips
together with their per-pixel soft labels, so a segmenter can learn from them by soft-label KD.

Modules: :mod:`~floodnb.generate.schedule` (noise schedule, SNR, DAKTer balancing factor),
:mod:`~floodnb.generate.denoiser` (small U-Net with timestep embedding, registered as
``dakter_unet``), :mod:`~floodnb.generate.ema` (EMA of its weights, ``dakter_unet_ema``),
:mod:`~floodnb.generate.data` (joint training samples from hand-labelled chips),
:mod:`~floodnb.generate.train` (objective + :func:`train_generator` on the engine's ``fit``),
:mod:`~floodnb.generate.sample` (seeded DDIM sampler, :func:`load_generator`),
:mod:`~floodnb.generate.evaluate` (realism table and label consistency),
:mod:`~floodnb.generate.augment` (generated pairs as student samples),
:mod:`~floodnb.generate.workflow` (train / sample / report for the CLI and notebook 07).

Names below import lazily (``floodnb.generate.settings`` stays free of torch, for the CLI).
"""

from __future__ import annotations

import importlib

_LAZY: dict[str, str] = {
    "GeneratedPairs": "floodnb.generate.augment", "Generated": "floodnb.generate.sample",
    "Generator": "floodnb.generate.sample", "load_generator": "floodnb.generate.sample",
    "GeneratorConfig": "floodnb.generate.train", "train_generator": "floodnb.generate.train",
    "GenerateSettings": "floodnb.generate.settings",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'floodnb.generate' has no attribute {name!r}")
