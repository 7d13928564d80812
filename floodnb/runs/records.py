"""Typed stage records: what each notebook stage hands to the later ones, through one pair of functions.

:func:`write_stage_record` writes a record to ``<run_dir>/<stage>/metrics.json`` and
:func:`read_stage_record` reads it back as the stage's record type:

* ``03_train_teacher`` -> :class:`TeacherRecord` (checkpoint, pool targets, scores);
* ``04_distill_student`` -> :class:`StudentRecord` (the student and the S1-weak baseline);
* any other stage -> :class:`MetricsRecord` (its metrics as a plain mapping).

Paths inside records (``checkpoint``, ``pool_probs``) are relative to the stage folder, so a run
folder can be moved; :meth:`TeacherRecord.file` and friends turn them into existing paths.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, ClassVar

from floodnb.io_utils import atomic_write_json
from floodnb.runs.layout import RECORD_FILE, STUDENT, TEACHER, stage_dir


def stage_file(run_dir: str | Path, stage: str, name: str | Path) -> Path:
    """Path of file ``name`` written by stage ``stage`` of the run in ``run_dir``.

    Raises ``FileNotFoundError`` naming the file and the notebook that writes it.
    """
    path = stage_dir(run_dir, stage) / name
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run notebook {stage}.ipynb first with run_dir="
                                f"{str(run_dir)!r} (or 'floodnb run')")
    return path


def _from_dict(cls, d: dict[str, Any], stage: str):
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in d]
    if missing:
        raise ValueError(f"the {stage} record lacks {missing}; rerun notebook {stage}.ipynb")
    return cls(**{n: d[n] for n in names})


class _StageFiles:
    """Shared by the typed records: the stage they belong to, their files and their JSON form."""

    stage: ClassVar[str]
    __dataclass_fields__: ClassVar[dict[str, Any]]  # every record type is a dataclass (for asdict)

    def file(self, run_dir: str | Path, name: str) -> Path:
        """Existing path of the stage file ``name`` (e.g. a record's ``checkpoint``) in run ``run_dir``."""
        return stage_file(run_dir, self.stage, name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TeacherRecord(_StageFiles):
    """The S2 (or multi-sensor) teacher of ``03_train_teacher`` and the pool targets it wrote.

    ``checkpoint`` / ``pool_probs``: paths relative to the stage folder (``best.safetensors``,
    ``pool_probs.npy`` of shape (chips, 2, H, W)); ``splits``: scores per evaluation split.
    """

    stage: ClassVar[str] = TEACHER
    method: str
    inputs: list[str]
    metadata: bool
    model: str
    epochs: int
    crop: int | None
    checkpoint: str
    pool_probs: str
    pool_chips: int
    pool_cloud_mask: dict[str, Any]
    pool_quality: list[dict[str, Any]] | None
    best_epoch: int
    reference: str
    metric: str
    splits: dict[str, Any]

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TeacherRecord:
        return _from_dict(cls, d, cls.stage)


@dataclass(frozen=True)
class StudentModel:
    """The distilled S1 student of ``04_distill_student`` (``checkpoint`` relative to the stage folder)."""

    mode: str
    temperature: float
    distill_weight: float
    checkpoint: str
    best_epoch: int
    pool_cloud_mask: dict[str, Any]
    splits: dict[str, Any]


@dataclass(frozen=True)
class BaselineModel:
    """The S1 baseline trained on weak labels only (``checkpoint`` relative to the stage folder)."""

    checkpoint: str
    best_epoch: int
    splits: dict[str, Any]


@dataclass(frozen=True)
class StudentRecord(_StageFiles):
    """What ``04_distill_student`` trained: the student and the ``s1_weak`` baseline, same budget."""

    stage: ClassVar[str] = STUDENT
    reference: str
    metric: str
    epochs: int
    crop: int | None
    model: str
    chips_per_epoch: int
    student: StudentModel
    s1_weak: BaselineModel

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StudentRecord:
        rec = _from_dict(cls, d, cls.stage)
        try:
            student = StudentModel(**rec.student)
            s1_weak = BaselineModel(**rec.s1_weak)
        except TypeError as exc:
            raise ValueError(f"the {cls.stage} record's models do not match ({exc}); rerun notebook "
                             f"{cls.stage}.ipynb") from exc
        return cls(**{**{f.name: getattr(rec, f.name) for f in fields(cls)}, "student": student,
                      "s1_weak": s1_weak})


@dataclass(frozen=True)
class MetricsRecord:
    """Record of a stage without a typed schema (explore, noise, evaluate): its metrics mapping."""

    values: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return dict(self.values)


StageRecord = TeacherRecord | StudentRecord | MetricsRecord
RECORD_TYPES: dict[str, type[TeacherRecord] | type[StudentRecord]] = {TEACHER: TeacherRecord, STUDENT: StudentRecord}


def write_stage_record(run_dir: str | Path, stage: str, record: StageRecord) -> Path:
    """Write ``record`` to ``<run_dir>/<stage>/metrics.json`` atomically; returns the path.

    Raises ``TypeError`` when ``record`` is not the record type of ``stage``.
    """
    want = RECORD_TYPES.get(stage, MetricsRecord)
    if not isinstance(record, want):
        raise TypeError(f"stage {stage} records a {want.__name__}, got {type(record).__name__}")
    path = stage_dir(run_dir, stage) / RECORD_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, record.to_dict())
    return path


def read_stage_record(run_dir: str | Path, stage: str) -> StageRecord:
    """The record ``stage`` wrote in run ``run_dir``, as its record type.

    Raises ``FileNotFoundError`` naming the notebook to run when the stage has not written it,
    ``ValueError`` when it lacks a field of its type.
    """
    data = json.loads(stage_file(run_dir, stage, RECORD_FILE).read_text())
    typ = RECORD_TYPES.get(stage)
    return typ.from_dict(data) if typ is not None else MetricsRecord(values=data)
