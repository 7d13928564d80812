"""The model side of prediction: which bands a model eats, how they are normalised, and
``normalised tiles (B, C, h, w) -> water probability (B, h, w)``.

:func:`resolve_predictor` accepts

* a checkpoint path (``.safetensors``, engine ``.pt`` or a run folder) — loaded with
  :func:`floodnb.models.load_checkpoint`; its :class:`~floodnb.models.ModelSpec` names the
  inputs, the bands per input and the normaliser of every input;
* a ``(model, spec)`` pair as returned by ``load_checkpoint``;
* a bare ``torch.nn.Module`` with explicit ``inputs=``, ``normalizers=`` (and optionally
  ``bands=``) keyword arguments.

The result, a :class:`Predictor`, is what :mod:`floodnb.predict.chip` and
:mod:`floodnb.predict.raster` run; it is picklable (model weights included), so it can be
shipped to dask.distributed workers as one task argument.

The inputs side is the checkpoint's :class:`~floodnb.models.inputs.InputPlan` (the one spec ->
input adapter training and evaluation use too); normalisers are per-pixel callables
``(C, H, W) float32 -> (C, H, W) float32`` (the floodnb presets of :mod:`floodnb.data.normalize`
are: clip, affine, NaN -> 0); being per-pixel they can be applied to a whole strip of rows before
cutting it into tiles.

``precision`` (:mod:`floodnb.runtime`): ``"float32"`` or ``"bfloat16"`` (the forward pass under CPU
autocast, channels-last tiles unless told otherwise); probabilities are float32 either way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import nn

from floodnb import runtime
from floodnb.bands import CLASS_NAMES, S1_BANDS, S2_BANDS
from floodnb.models import load_checkpoint
from floodnb.models.inputs import InputPlan, NormalizerFn, plan_from_spec

#: default band order of each input role when neither a checkpoint nor the normaliser says
DEFAULT_BANDS: dict[str, tuple[str, ...]] = {"s1": S1_BANDS, "s2": S2_BANDS}

#: per-pixel normaliser callable (kept under its old name for callers of this module)
Normalizer = NormalizerFn


@dataclass(frozen=True, eq=False)
class Predictor:
    """A model ready to predict water probability.

    * ``plan``: the model's :class:`~floodnb.models.inputs.InputPlan` with ``bands`` and
      ``normalizers`` (callables) set; ``inputs``, ``bands``, ``normalizers`` read from it.
    * ``meta``: metadata vector ``(meta_dim,)`` for FiLM-conditioned models, else ``None``.
    * ``water_index``: index of the water class among the model's logits.
    * ``name`` / ``source``: model name and where it came from (checkpoint path or
      ``"in-memory model"``), copied into output attributes.
    * ``channels_last`` / ``precision``: memory format of the tiles and precision of the forward
      pass (:mod:`floodnb.runtime`; float16 is refused: predictors run on CPU).
    """

    model: nn.Module
    plan: InputPlan
    meta: np.ndarray | None
    water_index: int
    name: str
    source: str
    channels_last: bool = False
    precision: str = "float32"

    def __post_init__(self) -> None:
        runtime.check_precision(self.precision, "cpu", name="Predictor.precision")

    @property
    def inputs(self) -> tuple[str, ...]:
        """Input roles in channel order (e.g. ``("s1",)``)."""
        return self.plan.inputs

    @property
    def bands(self) -> dict[str, tuple[str, ...]]:
        """Role -> band names in channel order (e.g. ``{"s1": ("VV", "VH")}``)."""
        return cast("dict[str, tuple[str, ...]]", self.plan.bands)  # resolve_predictor's plans record them

    @property
    def normalizers(self) -> dict[str, Normalizer]:
        """Role -> per-pixel normaliser of that role's bands."""
        return cast("dict[str, Normalizer]", self.plan.normalizers)  # resolve_predictor's plans hold callables

    @property
    def in_channels(self) -> int:
        return self.plan.in_channels

    @property
    def band_list(self) -> tuple[str, ...]:
        """All input bands in channel order, e.g. ``("VV", "VH")``."""
        return self.plan.band_list

    def prepare(self, raw: np.ndarray, *, inplace: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Normalise raw input ``(C, h, w)`` (bands in :attr:`band_list` order, NaN = nodata):
        ``(x (C, h, w) float32, valid (h, w) bool)``, see :meth:`InputPlan.prepare` (``inplace``: in
        ``raw``'s memory, for an array the caller owns and no longer needs).
        """
        return self.plan.prepare(raw, inplace=inplace)

    @torch.inference_mode()
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Water probability ``(B, h, w)`` float32 in [0, 1] of normalised tiles ``x (B, C, h, w)``
        (softmax over the model's classes, the water class kept).
        """
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
        with runtime.autocast(self.precision, "cpu"):
            if self.meta is not None:
                meta = torch.from_numpy(np.broadcast_to(self.meta, (t.shape[0], self.meta.shape[0])).copy())
                logits = self.model(t, meta)
            else:
                logits = self.model(t)
        if logits.ndim != 4 or logits.shape[0] != t.shape[0] or logits.shape[-2:] != t.shape[-2:]:
            raise ValueError(f"model {self.name} returned logits of shape {tuple(logits.shape)} for input "
                             f"{tuple(t.shape)}; expected (B, K, H, W)")
        prob = torch.softmax(logits.float(), dim=1)[:, self.water_index]
        return prob.contiguous().numpy()


def _bands_of(role: str, norm: object, bands: Mapping[str, Sequence[str]] | None) -> tuple[str, ...]:
    if bands is not None and role in bands:
        return tuple(bands[role])
    if hasattr(norm, "bands") and norm.bands:
        return tuple(norm.bands)
    if role in DEFAULT_BANDS:
        return DEFAULT_BANDS[role]
    raise ValueError(f"bands of input role {role!r} unknown: pass bands={{{role!r}: (...)}}")


def _unpack(model) -> tuple[nn.Module, object, str]:
    """``(module, spec or None, source)`` of a checkpoint path, a ``(model, spec)`` pair or a module."""
    source, spec = "in-memory model", None
    if isinstance(model, (str, Path)):
        source = str(model)
        model, spec = load_checkpoint(model)
    elif isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[0], nn.Module):
            raise ValueError("model: expected an nn.Module, a checkpoint path or a (model, spec) pair, "
                             f"got a tuple of {[type(m).__name__ for m in model]}")
        model, spec = model
    if not isinstance(model, nn.Module):
        raise ValueError("model: expected an nn.Module, a checkpoint path or a (model, spec) pair, "
                         f"got {type(model).__name__}")
    return model, spec, source


def _spec_plan(spec, source: str) -> tuple[InputPlan, tuple[str, ...], int, str]:
    """``(plan with normaliser callables, classes, meta_dim, name)`` of a checkpoint spec."""
    if spec.label_conditioning:
        raise ValueError(f"{source}: this model is label-conditioned (it needs the weak label as an extra input "
                         "channel); floodnb.predict runs models whose inputs are imagery only (e.g. the student)")
    plan = plan_from_spec(spec)
    missing = [r for r in plan.inputs if r not in spec.normalizers]
    if missing:
        raise ValueError(f"{source}: the checkpoint spec has no normaliser for inputs {missing}")
    plan = replace(plan, normalizers=plan.normalizer_map())
    return plan, tuple(spec.classes), int(spec.meta_dim), spec.model_name


def _module_plan(model: nn.Module, inputs, bands, normalizers) -> tuple[InputPlan, tuple[str, ...], int, str]:
    """``(plan, classes, meta_dim, name)`` of a bare module and explicit inputs / bands / normalisers."""
    inputs = ("s1",) if inputs is None else tuple(inputs)
    if normalizers is None:
        raise ValueError("normalizers: a bare model needs normalizers={role: callable} for inputs "
                         f"{list(inputs)} (or pass a checkpoint, which records them)")
    missing = [r for r in inputs if r not in normalizers]
    if missing:
        raise ValueError(f"normalizers: no normaliser for inputs {missing} (have {sorted(normalizers)})")
    norms = {r: normalizers[r] for r in inputs}
    plan = InputPlan(inputs=inputs, bands={r: _bands_of(r, norms[r], bands) for r in inputs}, normalizers=norms)
    meta_dim = int(getattr(model, "meta_dim", 0) or 0)
    return plan, CLASS_NAMES, meta_dim, str(getattr(model, "model_name", type(model).__name__))


def _meta_vector(meta, meta_dim: int, name: str, source: str) -> np.ndarray | None:
    """The metadata vector ``(meta_dim,)`` float32 a conditioned model needs, else ``None`` (checked)."""
    if meta_dim <= 0:
        if meta is not None:
            raise ValueError(f"meta: model {name} is not metadata-conditioned; do not pass meta=")
        return None
    if meta is None:
        raise ValueError(f"{source}: model {name} is metadata-conditioned (meta_dim={meta_dim}); pass meta= "
                         f"a vector of {meta_dim} floats")
    meta_arr = np.asarray(meta, dtype=np.float32).reshape(-1)
    if meta_arr.shape != (meta_dim,):
        raise ValueError(f"meta: expected {meta_dim} values for model {name}, got shape {np.shape(meta)}")
    return meta_arr


def resolve_predictor(
    model: nn.Module | str | Path | tuple,
    *,
    inputs: Sequence[str] | None = None,
    bands: Mapping[str, Sequence[str]] | None = None,
    normalizers: Mapping[str, Normalizer] | None = None,
    meta: Sequence[float] | np.ndarray | None = None,
    channels_last: bool | None = None,
    precision: str | None = None,
) -> Predictor:
    """Build a :class:`Predictor` from a checkpoint path, a ``(model, spec)`` pair or a bare module.

    With a checkpoint (path or pair) ``inputs``/``bands``/``normalizers`` come from its spec
    (:func:`~floodnb.models.inputs.plan_from_spec`) and must not be passed. With a bare module,
    ``normalizers`` (role -> callable) is required and ``inputs`` defaults to ``("s1",)``.
    ``meta`` is required exactly when the model is metadata-conditioned (``meta_dim > 0``).
    ``precision``: ``"float32"`` (default) or ``"bfloat16"``; ``channels_last`` None: on (CPU,
    :func:`floodnb.runtime.prefer_channels_last`). A :class:`Predictor` is returned as it is, or
    with the given ``precision`` / ``channels_last``.
    """
    if isinstance(model, Predictor):
        if precision is None and channels_last is None:
            return model
        if channels_last is None:
            channels_last = runtime.prefer_channels_last(precision) if precision is not None else model.channels_last
        precision = model.precision if precision is None else precision
        if channels_last:
            model.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        return replace(model, precision=precision, channels_last=channels_last)
    module, spec, source = _unpack(model)
    if spec is not None:
        if inputs is not None or bands is not None or normalizers is not None:
            raise ValueError(f"{source}: the checkpoint records its inputs, bands and normalisers; "
                             "do not pass inputs=, bands= or normalizers= with it")
        plan, classes, meta_dim, name = _spec_plan(spec, source)
    else:
        plan, classes, meta_dim, name = _module_plan(module, inputs, bands, normalizers)
    if not plan.inputs:
        raise ValueError("inputs: at least one input role is needed")
    have_c = getattr(module, "in_channels", None)
    if isinstance(have_c, int) and have_c != plan.in_channels:
        raise ValueError(f"{source}: model {name} takes {have_c} input channels but inputs {list(plan.inputs)} "
                         f"give {plan.in_channels} bands {list(plan.band_list)}")
    if "water" not in classes:
        raise ValueError(f"{source}: model classes {list(classes)} have no 'water' class")
    meta_arr = _meta_vector(meta, meta_dim, name, source)
    precision = runtime.check_precision(precision or "float32", "cpu")
    if channels_last is None:
        channels_last = runtime.prefer_channels_last(precision)
    module = module.eval()
    if channels_last:
        # Module.to's stub lists no memory_format keyword; torch accepts it
        module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    return Predictor(model=module, plan=plan, meta=meta_arr, water_index=classes.index("water"), name=name,
                     source=source, channels_last=channels_last, precision=precision)
