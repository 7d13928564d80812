"""The ``run.json`` schema of a run folder, read and written here only.

``run.json`` holds the run's name, data root, the parameters every notebook received and their
hash, and one :class:`StageState` per stage (status ``running`` / ``done`` / ``failed``, the
parameters hash it ran with, wall time in seconds, the error of a failed notebook). A notebook
run stand-alone writes a minimal one (:func:`record_standalone_run`) so the dashboard can open it.
Keys this schema does not know are kept as they are.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from floodnb.io_utils import atomic_write_json, json_hash
from floodnb.runs.layout import run_json_path

STATUSES: tuple[str, ...] = ("running", "done", "failed")


class RunStateError(ValueError):
    """``run.json`` exists but is not a run state (invalid JSON or not an object)."""


def params_hash(params: dict[str, Any]) -> str:
    """16 hex characters of the SHA-256 of ``params`` as sorted JSON (non-JSON values by ``str``)."""
    return json_hash(params, 16)


@dataclass
class StageState:
    """One stage's entry in ``run.json["stages"]``; times are seconds (``started``/``finished``: epoch time)."""

    status: str
    params_hash: str = ""
    seconds: float | None = None
    started: float | None = None
    finished: float | None = None
    error: str | None = None
    cell_index: int | None = None
    params: dict[str, Any] | None = None
    data_root: str | None = None

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise RunStateError(f"stage status {self.status!r}: expected one of {', '.join(STATUSES)}")

    @property
    def done(self) -> bool:
        return self.status == "done"

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> StageState:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


@dataclass
class RunState:
    """Contents of ``run.json``; ``extra``: keys this schema does not know (kept on write)."""

    name: str | None = None
    data_root: str | None = None
    params: dict[str, Any] = field(default_factory=dict)
    params_hash: str | None = None
    stages: dict[str, StageState] = field(default_factory=dict)
    created_by: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def stage(self, name: str) -> StageState | None:
        """The entry of stage ``name``, None when it never started."""
        return self.stages.get(name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "data_root": self.data_root, "params": self.params,
                               "params_hash": self.params_hash,
                               "stages": {k: v.to_dict() for k, v in self.stages.items()},
                               "created_by": self.created_by}
        return {**{k: v for k, v in out.items() if v is not None}, **self.extra}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RunState:
        known = {f.name for f in fields(cls)} - {"extra"}
        stages = {k: StageState.from_dict(v) for k, v in (d.get("stages") or {}).items()}
        return cls(name=d.get("name"), data_root=d.get("data_root"), params=dict(d.get("params") or {}),
                   params_hash=d.get("params_hash"), stages=stages, created_by=d.get("created_by"),
                   extra={k: v for k, v in d.items() if k not in known})


def read_run_state(run_dir: str | Path) -> RunState:
    """The state in ``<run_dir>/run.json``; an empty :class:`RunState` when there is none.

    Raises :class:`RunStateError` naming the file when it is not valid JSON or not an object.
    """
    path = run_json_path(run_dir)
    if not path.exists():
        return RunState()
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise RunStateError(f"{path} is not valid JSON ({exc}); move it away or use a new run name") from exc
    if not isinstance(data, dict):
        raise RunStateError(f"{path} holds {type(data).__name__}, not a run state object; move it away")
    return RunState.from_dict(data)


def write_run_state(run_dir: str | Path, state: RunState) -> Path:
    """Write ``state`` to ``<run_dir>/run.json`` atomically; returns the path."""
    path = run_json_path(run_dir)
    atomic_write_json(path, state.to_dict())
    return path


def record_standalone_run(run_dir: str | Path, *, stage: str, data_root: str | Path, seed: int, epochs: int,
                          fast: bool) -> Path:
    """Write a minimal ``run.json`` (name, data root, params) for a stand-alone notebook if absent.

    An existing ``run.json`` (written by ``floodnb run``) is never touched. Returns its path.
    """
    path = run_json_path(run_dir)
    if not path.exists():
        write_run_state(run_dir, RunState(name=Path(run_dir).name, data_root=str(data_root),
                                          params={"seed": seed, "epochs": epochs, "fast": fast},
                                          created_by=f"notebook {stage} (stand-alone)"))
    return path
