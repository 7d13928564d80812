"""Test helper: a tiny random Sentinel-1 checkpoint with the floodnb S1 preset normaliser."""

from __future__ import annotations

from pathlib import Path

import torch

from floodnb.data.normalize import get_preset
from floodnb.models import ModelSpec, build_model, save_checkpoint


def save_s1_checkpoint(path: Path, *, config: dict | None = None, **model_kw) -> Path:
    """Save a seeded random ``unet_tiny`` S1 model (``model_kw``: e.g. ``norm="group"``) to ``path``."""
    torch.manual_seed(0)
    model = build_model("unet_tiny", in_channels=2, **model_kw)
    norm = get_preset("sen1floods11_s1")
    spec = ModelSpec(model_name="unet_tiny", model_config=model.config(), inputs=("s1",),
                     bands={"s1": tuple(norm.bands)}, normalizers={"s1": norm.to_dict()}, config=dict(config or {}))
    return save_checkpoint(path, model, spec=spec)
