"""Segmentation models by name and their checkpoints (plain torch; see :mod:`.unet`, :mod:`.checkpoint`)."""

from floodnb.models.checkpoint import (
    ModelSpec,
    check_compatible,
    load_checkpoint,
    read_spec,
    save_checkpoint,
)
from floodnb.models.registry import build_model, model_names, register_model
from floodnb.models.unet import UNet

__all__ = [
    "ModelSpec", "UNet", "build_model", "check_compatible", "load_checkpoint", "model_names",
    "read_spec", "register_model", "save_checkpoint",
]
