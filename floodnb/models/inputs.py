"""One way from a checkpoint's :class:`~floodnb.models.ModelSpec` to what its model eats.

:class:`InputPlan` is the single spec -> input adapter of floodnb:

* training, evaluation and pool labelling call it on a batch dict of normalised sample tensors
  (``plan(batch) -> (x (B, C, H, W) float32, meta (B, M) | None)``, see
  :func:`floodnb.distill.inputs.assemble_inputs`);
* prediction (:class:`floodnb.predict.model.Predictor`) calls :meth:`InputPlan.prepare` on raw
  imagery ``(C, h, w)`` in the model's band order (NaN = nodata) -> normalised ``(C, h, w)``;
* datasets that must feed a checkpoint read its normalisers from :meth:`InputPlan.normalizer_map`.

:func:`plan_from_spec` builds the plan a checkpoint records: input roles in channel order, the
bands of each role (and, for a band subset, their indices into the dataset's full band order),
label conditioning, metadata conditioning and the per-role normalisers.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import torch

from floodnb.data.normalize import Normalizer
from floodnb.distill.inputs import assemble_inputs, chip_ids

#: per-pixel normaliser ``(C, H, W) float32 -> (C, H, W) float32`` (a :class:`Normalizer` or any callable)
NormalizerFn = Callable[[np.ndarray], np.ndarray]


@dataclass(frozen=True)
class InputPlan:
    """How data becomes model input.

    * ``inputs``: input roles in channel order (e.g. ``("s2", "s1")``).
    * ``band_index``: role -> channel indices kept from that role's dataset tensor (a band subset),
      ``None`` / roles not listed: whole.
    * ``label_conditioning``: one extra last channel from the weak label (+1 water, -1 dry, 0 unknown).
    * ``use_meta``: the model takes the metadata vector ``batch["meta"] (B, M)``.
    * ``bands``: role -> band names the model eats, in channel order (``None``: not known).
    * ``normalizers``: role -> per-pixel normaliser of that role, a callable or a
      ``Normalizer.to_dict()`` dict as a spec records it (``None``: not known; a plan built for
      already-normalised batches needs none).
    """

    inputs: tuple[str, ...]
    band_index: dict | None = None
    label_conditioning: bool = False
    use_meta: bool = False
    bands: dict[str, tuple[str, ...]] | None = None
    normalizers: Mapping[str, NormalizerFn | Mapping] | None = None

    def __call__(self, batch: Mapping) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``(x (B, C, H, W) float32, meta (B, M) float32 | None)`` of a batch dict of normalised tensors."""
        x = assemble_inputs(batch, inputs=self.inputs, band_index=self.band_index,
                            label_conditioning=self.label_conditioning)
        meta = None
        if self.use_meta:
            if "meta" not in batch:
                raise ValueError(f"the model is metadata-conditioned but the batch has no 'meta' "
                                 f"(chips {chip_ids(batch)}); build the dataset with with_meta=True")
            meta = batch["meta"].float()
        return x, meta

    @property
    def in_channels(self) -> int:
        """Imagery channels the model eats (bands of every input role; label channel not counted)."""
        return len(self.band_list)

    @property
    def band_list(self) -> tuple[str, ...]:
        """All input bands in channel order, e.g. ``("VV", "VH")``; ``ValueError`` when bands are unknown."""
        if self.bands is None or any(r not in self.bands for r in self.inputs):
            raise ValueError(f"this input plan does not record the bands of its inputs {list(self.inputs)}")
        return tuple(b for r in self.inputs for b in self.bands[r])

    def normalizer_map(self) -> dict[str, NormalizerFn]:
        """Role -> normaliser callable for every input role (spec dicts rebuilt with
        :meth:`Normalizer.from_dict`); ``ValueError`` naming the roles without one.
        """
        have = self.normalizers or {}
        missing = [r for r in self.inputs if r not in have]
        if missing:
            raise ValueError(f"no normaliser for inputs {missing} (have {sorted(have)})")
        out: dict[str, NormalizerFn] = {}
        for r in self.inputs:
            n = have[r]
            out[r] = Normalizer.from_dict(dict(n)) if isinstance(n, Mapping) else n
        return out

    def prepare(self, raw: np.ndarray, *, inplace: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """Normalise raw input ``(C, h, w)`` (bands in :attr:`band_list` order, NaN = nodata).

        Returns ``(x (C, h, w) float32 normalised with NaN -> 0, valid (h, w) bool)`` where
        ``valid`` marks pixels whose every input band is finite; ``x`` is 0 where not valid.
        ``inplace=True`` lets floodnb's :class:`~floodnb.data.normalize.Normalizer` work in
        ``raw``'s own memory (for a writable C-contiguous float32 array the caller owns and no longer
        needs, e.g. a strip just read from a file: one pass less per strip); ``raw`` is never
        modified otherwise.
        """
        raw = np.asarray(raw, dtype=np.float32)
        if raw.ndim != 3 or raw.shape[0] != self.in_channels:
            raise ValueError(f"expected raw input (C={self.in_channels}, h, w) for bands {list(self.band_list)}, "
                             f"got shape {raw.shape}")
        norms = self.normalizer_map()
        bands = self.bands or {}  # not None: in_channels above raises when bands are unknown
        valid = np.isfinite(raw).all(axis=0)
        own = inplace and raw.flags.writeable and raw.flags.c_contiguous
        parts, c = [], 0
        for role in self.inputs:
            n, fn = len(bands[role]), norms[role]
            if isinstance(fn, Normalizer):  # float32 out, NaN/inf already 0
                parts.append(fn(raw[c:c + n], inplace=own))
            else:  # any callable: its output may be its input, so copy before zeroing then
                y = np.asarray(fn(raw[c:c + n]), dtype=np.float32)
                parts.append(np.nan_to_num(y, nan=0.0, posinf=0.0, neginf=0.0,
                                           copy=not own and np.may_share_memory(y, raw)))
            c += n
        x = np.concatenate(parts, axis=0) if len(parts) > 1 else parts[0]
        if not valid.all():  # a band with data beside a band without: the pixel is nodata, all bands 0
            x *= valid
        return x, valid


def plan_from_spec(spec) -> InputPlan:
    """The :class:`InputPlan` a checkpoint's :class:`~floodnb.models.ModelSpec` records.

    The plan keeps the spec's normaliser dicts; :meth:`InputPlan.normalizer_map` rebuilds them
    (and names any input role without one).
    """
    band_index = spec.config["band_index"] if "band_index" in spec.config else None
    norms = {r: dict(spec.normalizers[r]) for r in spec.inputs if r in spec.normalizers}
    return InputPlan(inputs=tuple(spec.inputs), band_index=band_index,
                     label_conditioning=bool(spec.label_conditioning), use_meta=spec.meta_dim > 0,
                     bands={r: tuple(spec.bands[r]) for r in spec.inputs}, normalizers=norms)
