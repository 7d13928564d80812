"""The teacher's pool targets, built one way everywhere the distillation recipe runs.

:func:`teacher_pool_targets` reads the unlabelled pool chips as the teacher's checkpoint needs
them — its inputs, metadata, weak label and its own normalisers
(:func:`floodnb.distill.datasets.model_dataset`) — and streams the teacher's class probabilities
to a ``.npy`` with :func:`floodnb.distill.teacher.label_pool`. ``floodnb train student``, the
experiment's rows and notebook 03 call it, so a teacher trained with fitted (non-preset)
normalisers labels the pool with the statistics it was trained on.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from floodnb.distill.datasets import model_dataset
from floodnb.distill.teacher import label_pool
from floodnb.models import read_spec


def teacher_spec(teacher):
    """The :class:`~floodnb.models.ModelSpec` of a :class:`~floodnb.distill.runner.TrainedRun`, a
    ``(model, spec)`` pair or a checkpoint path (read without loading the weights).
    """
    if isinstance(teacher, tuple):
        return teacher[1]
    if hasattr(teacher, "spec"):
        return teacher.spec
    return read_spec(teacher)


def teacher_pool_targets(teacher, pool_chips, *, out_path: str | Path, weak_role: str | None = "s1_otsu",
                         s1_units: str = "auto", batch_size: int = 8, device: str = "cpu", progress: bool = True,
                         mask_clouds: bool = True, shuffle_meta: int | None = None,
                         precision: str = "float32") -> np.memmap:
    """Teacher probabilities ``(N, K, H, W)`` float16 (read-only memmap) of every chip of ``pool_chips``.

    ``teacher``: checkpoint path, ``TrainedRun`` or ``(model, spec)``. ``pool_chips``: catalog
    rows of the pool (:func:`floodnb.distill.datasets.pool_source`) or a packed
    :class:`~floodnb.data.store.ChipStore` of them (row ``i`` <-> output row ``i``), read with
    the teacher's inputs and normalisers; ``weak_role`` is read only for a label-conditioned
    teacher; ``s1_units`` and ``shuffle_meta`` (a metadata-conditioned teacher trained with its
    metadata shuffled labels the pool with the pool's metadata shuffled too) as in
    :class:`~floodnb.data.torch.ChipDataset`. The rest (``out_path``
    and its ``.json`` sidecar, cloud masking, NaN where inputs lack data, ``precision``) is
    :func:`~floodnb.distill.teacher.label_pool`'s.
    """
    spec = teacher_spec(teacher)
    extra = {} if shuffle_meta is None else {"shuffle_meta": shuffle_meta}
    pool = model_dataset(pool_chips, spec, target=None, weak_role=weak_role, s1_units=s1_units, **extra)
    return label_pool(teacher, pool, out_path=out_path, batch_size=batch_size, device=device, progress=progress,
                      mask_clouds=mask_clouds, precision=precision)
