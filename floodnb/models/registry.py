"""Models by name: ``build_model("unet_small", in_channels=2)``.

=============  =====  =====  ===========================================
name           width  depth  use
=============  =====  =====  ===========================================
``unet_tiny``      4      2  unit tests (a few thousand parameters)
``unet_small``    16      4  ~1.9 M parameters: CPU training, default
``unet``          32      4  ~7.8 M parameters
=============  =====  =====  ===========================================

Any of ``width``, ``depth``, ``norm``, ``film_hidden`` can be overridden by keyword. Further
architectures can be added with :func:`register_model` (e.g. an adapter to
segmentation-models-pytorch where it imports; floodnb itself never requires it).
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from floodnb.models.unet import UNet

#: name -> (factory, default keyword arguments)
_REGISTRY: dict[str, tuple[Callable[..., nn.Module], dict]] = {
    "unet_tiny": (UNet, {"width": 4, "depth": 2}),
    "unet_small": (UNet, {"width": 16, "depth": 4}),
    "unet": (UNet, {"width": 32, "depth": 4}),
}


def model_names() -> tuple[str, ...]:
    """Names accepted by :func:`build_model`."""
    return tuple(_REGISTRY)


def register_model(name: str, factory: Callable[..., nn.Module], **defaults) -> None:
    """Register ``factory(*, in_channels, num_classes, meta_dim, **defaults)`` under ``name``.

    The factory's module must provide ``config() -> dict`` of keyword arguments that rebuild it
    (checkpoints store it) and ``forward(x (B,C,H,W), meta=None) -> logits (B,K,H,W)``.
    """
    if name in _REGISTRY:
        raise ValueError(f"model name {name!r} is already registered")
    _REGISTRY[name] = (factory, dict(defaults))


def build_model(name: str, *, in_channels: int, num_classes: int = 2, meta_dim: int = 0, **kw) -> nn.Module:
    """Build the model ``name`` for ``in_channels`` input bands -> ``num_classes`` logits.

    ``meta_dim > 0`` enables FiLM metadata conditioning (``forward(x, meta)``).
    Returns a module whose ``config()`` (plus ``name``) rebuilds it exactly.
    """
    if name not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {model_names()}")
    factory, defaults = _REGISTRY[name]
    model = factory(in_channels=in_channels, num_classes=num_classes, meta_dim=meta_dim, **{**defaults, **kw})
    model.model_name = name  # type: ignore[assignment]  # torch types Module.__setattr__ for tensors/modules only
    return model
