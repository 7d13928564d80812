"""Datasets for the training methods from a data root, catalog or packed store.

Thin glue over :class:`floodnb.data.torch.ChipDataset`, used by ``floodnb train`` /
``floodnb evaluate`` and the notebooks: :func:`load_source` opens a data root (catalog) or a
packed store, :func:`split_dataset` makes one split's dataset and refuses an empty split by
name, :func:`pool_source` selects the unlabelled pool (weak chips) with rows aligned to
:func:`floodnb.distill.teacher.label_pool`'s output. :func:`model_dataset` is the one way to read
chips for a trained checkpoint: its inputs, metadata and weak label as its spec records them and,
always, the checkpoint's own normalisers (:func:`checkpoint_inputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from floodnb.models.inputs import plan_from_spec

#: Splits scored after training (those with chips); "bolivia" is the held-out event.
EVAL_SPLITS: tuple[str, ...] = ("valid", "test", "bolivia")


def load_source(data_root: str | Path | None = None, *, store: str | Path | None = None):
    """A catalog DataFrame of ``data_root`` or an opened :class:`~floodnb.data.store.ChipStore`."""
    if store is not None:
        from floodnb.data.store import ChipStore

        return ChipStore.open(store)
    if data_root is None:
        raise ValueError("give a data root (--data-root) or a packed store (--store)")
    from floodnb.data.catalog import build_catalog

    return build_catalog(data_root)


def _table(source) -> pd.DataFrame:
    return source if isinstance(source, pd.DataFrame) else source.index


def split_sizes(source) -> dict[str, int]:
    """Chips per split of a source."""
    return {str(k): int(v) for k, v in _table(source)["split"].value_counts().items()}


def split_dataset(source, split: str, *, inputs: Sequence[str], normalizers: Mapping | None = None,
                  weak: str | None = "s1_otsu", with_meta: bool = False, crop: int | None = None,
                  augment: bool = False, seed: int = 0, s1_units: str = "auto", missing_inputs: str = "error"):
    """``ChipDataset`` of one split; ``ValueError`` naming the split and the sizes of all splits when empty.

    ``s1_units`` / ``missing_inputs``: see :class:`floodnb.data.torch.ChipDataset`; with "skip",
    a split whose chips all lack an input is a ValueError naming them.
    """
    from floodnb.data.torch import ChipDataset

    sizes = split_sizes(source)
    if split not in sizes or sizes[split] == 0:
        raise ValueError(f"split {split!r} has no chips in this data (chips per split: {sizes})")
    data = ChipDataset(source, inputs=tuple(inputs), target="label", weak=weak, normalizers=normalizers,
                       crop=crop, augment=augment, with_meta=with_meta, split=split, seed=seed, s1_units=s1_units,
                       missing_inputs=missing_inputs)
    if len(data) == 0:
        raise ValueError(f"split {split!r}: all {len(data.skipped)} chips lack the model's inputs {tuple(inputs)} "
                         f"({skipped_text(data.skipped)})")
    return data


def skipped_text(skipped: Mapping[str, Sequence[str]]) -> str:
    """``"USA_430764 (no s1), ..."`` for a dataset's :attr:`~floodnb.data.torch.ChipDataset.skipped`."""
    return ", ".join(f"{cid} (no {', '.join(roles)})" for cid, roles in skipped.items())


def eval_datasets(source, *, inputs: Sequence[str], normalizers: Mapping | None = None, weak: str | None = "s1_otsu",
                  with_meta: bool = False, splits: Sequence[str] = EVAL_SPLITS, s1_units: str = "auto") -> dict:
    """``{split: ChipDataset}`` for the evaluation splits that have chips (no crop, no augmentation).

    Chips lacking one of ``inputs`` are skipped (not an error) and listed in each dataset's
    ``skipped``; the evaluation reports them by name.
    """
    sizes = split_sizes(source)
    return {s: split_dataset(source, s, inputs=inputs, normalizers=normalizers, weak=weak, with_meta=with_meta,
                             s1_units=s1_units, missing_inputs="skip")
            for s in splits if s in sizes and sizes[s] > 0}


def checkpoint_inputs(spec, *, weak_role: str | None = "s1_otsu") -> dict:
    """``ChipDataset`` keyword arguments that feed checkpoint ``spec`` (a :class:`~floodnb.models.ModelSpec`).

    ``inputs`` (roles in the model's order), ``normalizers`` (role -> the checkpoint's own
    :class:`~floodnb.data.normalize.Normalizer`, never the presets), ``weak`` (``weak_role`` for a
    label-conditioned model, else None) and ``with_meta`` (metadata-conditioned model).
    """
    plan = plan_from_spec(spec)
    return {"inputs": plan.inputs, "normalizers": plan.normalizer_map(),
            "weak": weak_role if plan.label_conditioning else None, "with_meta": plan.use_meta}


def model_dataset(source, spec, *, target: str | None = "label", weak_role: str | None = "s1_otsu", **kwargs):
    """``ChipDataset`` of ``source`` (catalog rows or a store) read as checkpoint ``spec`` needs it.

    Inputs, metadata, weak label and normalisers come from :func:`checkpoint_inputs`; ``kwargs``
    (``s1_units``, ``crop``, ``missing_inputs``, ..., or ``normalizers`` to check another set
    against the checkpoint) go to :class:`~floodnb.data.torch.ChipDataset`. ``target=None`` for
    unlabelled chips such as the teacher's pool.
    """
    from floodnb.data.torch import ChipDataset

    return ChipDataset(source, target=target, **{**checkpoint_inputs(spec, weak_role=weak_role), **kwargs})


def pool_source(source, *, split: str = "weak") -> pd.DataFrame:
    """Catalog rows of the pool split, re-indexed 0..N-1 (row i <-> ``label_pool`` row i)."""
    if not isinstance(source, pd.DataFrame):
        raise ValueError("the pool needs a catalog source (--data-root), not a packed store")
    pool = source[source["split"] == split].reset_index(drop=True)
    if len(pool) == 0:
        raise ValueError(f"pool split {split!r} has no chips (chips per split: {split_sizes(source)})")
    return pool
