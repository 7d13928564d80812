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

Normalisers are per-pixel callables ``(C, H, W) float32 -> (C, H, W) float32`` (the floodnb
presets of :mod:`floodnb.data.normalize` are: clip, affine, NaN -> 0); being per-pixel they can
be applied to a whole strip of rows before cutting it into tiles.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from floodnb.bands import CLASS_NAMES, S1_BANDS, S2_BANDS

#: default band order of each input role when neither a checkpoint nor the normaliser says
DEFAULT_BANDS: dict[str, tuple[str, ...]] = {"s1": S1_BANDS, "s2": S2_BANDS}

Normalizer = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True, eq=False)
class Predictor:
    """A model ready to predict water probability.

    * ``inputs``: input roles in channel order (e.g. ``("s1",)``).
    * ``bands``: role -> band names in channel order (e.g. ``{"s1": ("VV", "VH")}``).
    * ``normalizers``: role -> per-pixel normaliser of that role's bands.
    * ``meta``: metadata vector ``(meta_dim,)`` for FiLM-conditioned models, else ``None``.
    * ``water_index``: index of the water class among the model's logits.
    * ``name`` / ``source``: model name and where it came from (checkpoint path or
      ``"in-memory model"``), copied into output attributes.
    """

    model: nn.Module
    inputs: tuple[str, ...]
    bands: dict[str, tuple[str, ...]]
    normalizers: dict[str, Normalizer]
    meta: np.ndarray | None
    water_index: int
    name: str
    source: str
    channels_last: bool = False

    @property
    def in_channels(self) -> int:
        return sum(len(self.bands[r]) for r in self.inputs)

    @property
    def band_list(self) -> tuple[str, ...]:
        """All input bands in channel order, e.g. ``("VV", "VH")``."""
        return tuple(b for r in self.inputs for b in self.bands[r])

    def prepare(self, raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normalise raw input ``(C, h, w)`` (bands in :attr:`band_list` order, NaN = nodata).

        Returns ``(x (C, h, w) float32 normalised with NaN -> 0, valid (h, w) bool)`` where
        ``valid`` marks pixels whose every input band is finite.
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim != 3 or raw.shape[0] != self.in_channels:
            raise ValueError(f"expected raw input (C={self.in_channels}, h, w) for bands {list(self.band_list)}, "
                             f"got shape {raw.shape}")
        valid = np.isfinite(raw).all(axis=0)
        parts, c = [], 0
        for role in self.inputs:
            n = len(self.bands[role])
            parts.append(np.asarray(self.normalizers[role](raw[c:c + n]), dtype=np.float32))
            c += n
        x = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        x = np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0, copy=False)
        x[:, ~valid] = 0.0
        return x, valid

    @torch.inference_mode()
    def forward(self, x: np.ndarray) -> np.ndarray:
        """Water probability ``(B, h, w)`` float32 in [0, 1] of normalised tiles ``x (B, C, h, w)``
        (softmax over the model's classes, the water class kept)."""
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        if self.channels_last:
            t = t.contiguous(memory_format=torch.channels_last)
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


def _normalizer_from_dict(d: Mapping, *, role: str, source: str) -> Normalizer:
    try:
        from floodnb.data.normalize import Normalizer as _Normalizer
    except ImportError as exc:  # the data layer is part of floodnb; this guards partial installs
        raise ImportError(f"{source}: rebuilding the {role!r} normaliser needs floodnb.data.normalize ({exc})") from exc
    return _Normalizer.from_dict(dict(d))


def resolve_predictor(
    model: nn.Module | str | Path | tuple,
    *,
    inputs: Sequence[str] | None = None,
    bands: Mapping[str, Sequence[str]] | None = None,
    normalizers: Mapping[str, Normalizer] | None = None,
    meta: Sequence[float] | np.ndarray | None = None,
    channels_last: bool = False,
) -> Predictor:
    """Build a :class:`Predictor` from a checkpoint path, a ``(model, spec)`` pair or a bare module.

    With a checkpoint (path or pair) ``inputs``/``bands``/``normalizers`` come from its spec and
    must not be passed. With a bare module, ``normalizers`` (role -> callable) is required and
    ``inputs`` defaults to ``("s1",)``. ``meta`` is required exactly when the model is
    metadata-conditioned (``meta_dim > 0``).
    """
    if isinstance(model, Predictor):
        return model
    source = "in-memory model"
    spec = None
    if isinstance(model, (str, Path)):
        from floodnb.models import load_checkpoint

        source = str(model)
        model, spec = load_checkpoint(model)
    elif isinstance(model, tuple):
        if len(model) != 2 or not isinstance(model[0], nn.Module):
            raise ValueError("model: expected an nn.Module, a checkpoint path or a (model, spec) pair, "
                             f"got a tuple of {[type(m).__name__ for m in model]}")
        model, spec = model
    if not isinstance(model, nn.Module):
        raise ValueError(f"model: expected an nn.Module, a checkpoint path or a (model, spec) pair, got {type(model).__name__}")

    if spec is not None:
        if inputs is not None or bands is not None or normalizers is not None:
            raise ValueError(f"{source}: the checkpoint records its inputs, bands and normalisers; "
                             "do not pass inputs=, bands= or normalizers= with it")
        if spec.label_conditioning:
            raise ValueError(f"{source}: this model is label-conditioned (it needs the weak label as an extra input "
                             "channel); floodnb.predict runs models whose inputs are imagery only (e.g. the student)")
        inputs = tuple(spec.inputs)
        bands_r = {r: tuple(spec.bands[r]) for r in inputs}
        missing = [r for r in inputs if r not in spec.normalizers]
        if missing:
            raise ValueError(f"{source}: the checkpoint spec has no normaliser for inputs {missing}")
        norms = {r: _normalizer_from_dict(spec.normalizers[r], role=r, source=source) for r in inputs}
        classes = tuple(spec.classes)
        meta_dim = int(spec.meta_dim)
        name = spec.model_name
    else:
        inputs = ("s1",) if inputs is None else tuple(inputs)
        if normalizers is None:
            raise ValueError("normalizers: a bare model needs normalizers={role: callable} for inputs "
                             f"{list(inputs)} (or pass a checkpoint, which records them)")
        missing = [r for r in inputs if r not in normalizers]
        if missing:
            raise ValueError(f"normalizers: no normaliser for inputs {missing} (have {sorted(normalizers)})")
        norms = {r: normalizers[r] for r in inputs}
        bands_r = {r: _bands_of(r, norms[r], bands) for r in inputs}
        classes = CLASS_NAMES
        meta_dim = int(getattr(model, "meta_dim", 0) or 0)
        name = str(getattr(model, "model_name", type(model).__name__))
    if not inputs:
        raise ValueError("inputs: at least one input role is needed")
    want_c = sum(len(bands_r[r]) for r in inputs)
    have_c = getattr(model, "in_channels", None)
    if isinstance(have_c, int) and have_c != want_c:
        raise ValueError(f"{source}: model {name} takes {have_c} input channels but inputs {list(inputs)} give "
                         f"{want_c} bands {[b for r in inputs for b in bands_r[r]]}")
    if "water" not in classes:
        raise ValueError(f"{source}: model classes {list(classes)} have no 'water' class")
    meta_arr = None
    if meta_dim > 0:
        if meta is None:
            raise ValueError(f"{source}: model {name} is metadata-conditioned (meta_dim={meta_dim}); pass meta= "
                             f"a vector of {meta_dim} floats")
        meta_arr = np.asarray(meta, dtype=np.float32).reshape(-1)
        if meta_arr.shape != (meta_dim,):
            raise ValueError(f"meta: expected {meta_dim} values for model {name}, got shape {np.shape(meta)}")
    elif meta is not None:
        raise ValueError(f"meta: model {name} is not metadata-conditioned; do not pass meta=")
    model = model.eval()
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    return Predictor(model=model, inputs=tuple(inputs), bands=bands_r, normalizers=norms, meta=meta_arr,
                     water_index=classes.index("water"), name=name, source=source, channels_last=channels_last)
