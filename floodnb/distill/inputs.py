"""From a batch dict (``floodnb.data.torch`` sample vocabulary) to the model's input tensor.

A batch is the collated sample dicts: ``"s1" (B,2,H,W)``, ``"s2" (B,C,H,W)`` normalised inputs
with NaN already replaced, ``"valid" (B,H,W)`` bool, ``"label"``/``"weak"`` int64 ``(B,H,W)``
with IGNORE_INDEX, ``"meta" (B,5)``, ``"soft" (B,K,H,W)``, ``"weight" (B,H,W)``, ``"index"``,
``"chip_id"`` (list of str).

:func:`assemble_inputs` concatenates the roles in ``inputs`` order (optionally a subset of each
role's bands) and, with label conditioning (Garg et al. 2023), one channel encoding the weak
label as +1 water, -1 dry, 0 unknown. :func:`collate` stacks samples and fills supervision keys
a sample lacks (a hand chip has no teacher probabilities, a pool chip no hand label) with
"no supervision" values, but refuses batches whose *input* keys differ, naming the chips.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch.utils.data import Dataset

from floodnb.bands import DRY, IGNORE_INDEX, WATER

#: Keys that are inputs: every sample of a batch must have them.
INPUT_KEYS: tuple[str, ...] = ("s1", "s2", "meta", "valid")
#: Supervision keys and how a sample lacking one is filled (no supervision from that source).
FILL: dict[str, str] = {"label": "ignore", "weak": "ignore", "truth": "ignore", "soft": "nan", "weight": "zero",
                        "soft_weight": "one"}


def dataset_len(data: Dataset) -> int:
    """``len(data)`` of a map-style dataset."""
    return len(data)  # type: ignore[arg-type]  # torch's Dataset type declares no __len__; map-style ones define it


def chip_ids(batch: Mapping) -> list[str]:
    """Chip ids of a batch (``"chip_id"`` list), or ``index`` numbers when absent."""
    if "chip_id" in batch:
        ids = batch["chip_id"]
        return [str(c) for c in ids] if isinstance(ids, (list, tuple)) else [str(ids)]
    if "index" in batch:
        return [f"index {int(i)}" for i in torch.as_tensor(batch["index"]).reshape(-1)]
    return ["<no chip ids>"]


def collate(samples: Sequence[Mapping]) -> dict:
    """Stack sample dicts into a batch dict (tensors stacked on a new dim 0, ``chip_id`` as list).

    Input keys (:data:`INPUT_KEYS`) must be present in all samples or in none; otherwise
    ``ValueError`` names the chips lacking them. Supervision keys (:data:`FILL`) absent from some
    samples are filled: labels with IGNORE_INDEX, ``soft`` with NaN, ``weight`` with 0,
    ``soft_weight`` (per-sample pool weight of the student) with 1.
    """
    if not samples:
        raise ValueError("collate: empty list of samples")
    keys = set().union(*(s.keys() for s in samples))
    out: dict = {}
    for key in sorted(keys):
        have = [key in s for s in samples]
        if key == "chip_id":
            out[key] = [str(s["chip_id"]) if "chip_id" in s else f"index {int(s['index'])}" for s in samples]
            continue
        if not all(have):
            if key not in FILL:
                lacking = [str(s["chip_id"]) if "chip_id" in s else "?"
                           for s, h in zip(samples, have, strict=True) if not h]
                raise ValueError(f"samples differ in input key {key!r}: chips {lacking} have no {key!r} "
                                 f"(every chip of a run needs the same inputs)")
            ref = next(s[key] for s in samples if key in s)
            vals = [s[key] if key in s else _fill(ref, FILL[key]) for s in samples]
        else:
            vals = [s[key] for s in samples]
        out[key] = torch.stack([torch.as_tensor(v) for v in vals])
    return out


def _fill(ref, how: str) -> torch.Tensor:
    ref = torch.as_tensor(ref)
    if how == "ignore":
        return torch.full_like(ref, IGNORE_INDEX)
    if how == "nan":
        return torch.full_like(ref, float("nan"))
    if how == "one":
        return torch.ones_like(ref)
    return torch.zeros_like(ref)


def weak_channel(weak: torch.Tensor) -> torch.Tensor:
    """Label-conditioning channel ``(B,1,H,W)`` float32: +1 water, -1 dry, 0 unknown/nodata."""
    return ((weak == WATER).float() - (weak == DRY).float())[:, None]


def assemble_inputs(batch: Mapping, *, inputs: Sequence[str], band_index: Mapping[str, Sequence[int]] | None = None,
                    label_conditioning: bool = False) -> torch.Tensor:
    """Model input ``(B, C, H, W)`` float32: roles of ``inputs`` concatenated in that order.

    ``band_index``: role -> channel indices to keep from that role's tensor (e.g. a subset of the
    13 Sentinel-2 bands); roles not listed are used whole. ``label_conditioning`` appends
    :func:`weak_channel` of ``batch["weak"]``. Missing roles raise ``ValueError`` naming the
    role and the batch's chips.
    """
    parts = []
    for role in inputs:
        if role not in batch:
            raise ValueError(f"batch has no {role!r} input (chips {chip_ids(batch)}); model inputs are {tuple(inputs)}")
        x = batch[role]
        if band_index is not None and role in band_index:
            idx = list(band_index[role])
            x = x[:, idx] if idx != list(range(x.shape[1])) else x
        parts.append(x.float())
    if label_conditioning:
        if "weak" not in batch:
            raise ValueError(f"label conditioning needs the weak label 'weak' in the batch (chips {chip_ids(batch)})")
        parts.append(weak_channel(batch["weak"]))
    return parts[0] if len(parts) == 1 else torch.cat(parts, dim=1)


def valid_mask(batch: Mapping) -> torch.Tensor | None:
    """``batch["valid"]`` as bool ``(B,H,W)`` or None when the batch has no validity mask."""
    return batch["valid"].bool() if "valid" in batch else None


def masked_target(batch: Mapping, key: str = "label") -> torch.Tensor:
    """Target ``(B,H,W)`` int64 of ``batch[key]`` with IGNORE_INDEX where the inputs have no data."""
    t = batch[key].long()
    v = valid_mask(batch)
    return t if v is None else torch.where(v, t, torch.full_like(t, IGNORE_INDEX))


def to_device(batch: Mapping, device: torch.device | str) -> dict:
    """Move every tensor of ``batch`` to ``device`` (other values unchanged)."""
    return {k: (v.to(device, non_blocking=True) if isinstance(v, torch.Tensor) else v) for k, v in batch.items()}


class SelectKeys(torch.utils.data.Dataset):
    """View of a sample-dict dataset keeping only ``keys`` (those present) of every sample.

    Lets hand-labelled chips (with ``s2``) and pool chips (without) share a batch when the model
    only reads ``s1``, and avoids collating tensors nobody uses.
    """

    def __init__(self, data, keys: Sequence[str]) -> None:
        self.data, self.keys = data, tuple(keys)

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        s = self.data[i]
        return {k: s[k] for k in self.keys if k in s}


class WithArrays(torch.utils.data.Dataset):
    """Adds per-chip arrays to a dataset's samples by position: ``sample[key] = arrays[key][i]``.

    E.g. ``soft`` teacher probabilities ``(N, K, H, W)`` from :func:`floodnb.distill.teacher.label_pool`
    or CromSS ``weight`` maps ``(N, H, W)``. The arrays must be aligned with ``data`` (same order,
    same chips, no random crop/flip in ``data``); lengths and spatial sizes are checked.
    """

    def __init__(self, data, **arrays) -> None:
        for key, arr in arrays.items():
            if len(arr) != len(data):
                raise ValueError(f"{key}: {len(arr)} chips but the dataset has {len(data)}; they must be aligned")
        self.data, self.arrays = data, arrays

    def __len__(self) -> int:
        return len(self.data)

    def __getitem__(self, i: int) -> dict:
        s = dict(self.data[i])
        hw = None
        for k in ("s1", "s2", "label", "valid"):
            if k in s:
                hw = tuple(torch.as_tensor(s[k]).shape[-2:])
                break
        for key, arr in self.arrays.items():
            a = torch.from_numpy(np_float32(arr[i]))
            if hw is not None and tuple(a.shape[-2:]) != hw:
                raise ValueError(f"{key}[{i}] has size {tuple(a.shape[-2:])} but chip "
                                 f"{s['chip_id'] if 'chip_id' in s else i} is {hw}: the dataset must not crop")
            s[key] = a
        return s


def np_float32(a):
    import numpy as np

    return np.ascontiguousarray(np.asarray(a, dtype=np.float32))


def chips_lacking(data, role: str) -> list[str] | None:
    """Chip ids of ``data`` without the ``role`` layer, read from its catalog without loading chips.

    Uses ``data.catalog`` (a DataFrame with ``chip_id`` and ``<role>_path``) when the dataset has
    one; returns None when it cannot tell (the check then happens batch by batch).
    """
    cat = data.catalog if hasattr(data, "catalog") else None
    if cat is None or f"{role}_path" not in cat.columns or "chip_id" not in cat.columns:
        return None
    col = cat[f"{role}_path"]
    missing = col.isna() | (col.astype("string").fillna("") == "")
    return [str(c) for c in cat.loc[missing, "chip_id"]]
