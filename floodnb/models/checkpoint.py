"""Model checkpoints: safetensors weights with a JSON spec embedded in the file header.

A checkpoint is one ``.safetensors`` file. Its tensors are the model's ``state_dict``; its
header metadata holds ``{"floodnb_spec": <JSON>}`` — a :class:`ModelSpec` recording the model
name and architecture, the inputs in channel order with the bands per role, the normaliser of
every input role (``Normalizer.to_dict()``), label conditioning, metadata conditioning, class
names, the training configuration, metrics and the floodnb version. Loading never unpickles
anything: weights come from safetensors, the spec from JSON. Training-state files written by
:mod:`floodnb.distill.engine` (``last.pt``) hold the same spec as a JSON string plus tensors and
plain numbers, and load with ``torch.load(weights_only=True)``; :func:`load_checkpoint` reads both.

Writes are atomic (temporary file in the same folder, then ``os.replace``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from floodnb import __version__
from floodnb.bands import CLASS_NAMES
from floodnb.io_utils import atomic_path, atomic_write_text  # noqa: F401  (re-exported for the engine)

FORMAT = "floodnb-checkpoint/1"
SPEC_KEY = "floodnb_spec"


@dataclass(frozen=True)
class ModelSpec:
    """Everything needed to feed data to a trained model and to read its output.

    * ``model_name`` / ``model_config``: ``build_model(model_name, **model_config)`` rebuilds it.
    * ``inputs``: input roles in channel order, e.g. ``("s2", "s1")``.
    * ``bands``: role -> band names used, in channel order (e.g. ``{"s1": ("VV", "VH")}``).
    * ``normalizers``: role -> ``Normalizer.to_dict()`` of the normaliser applied to that role.
    * ``label_conditioning``: the weak label is one extra last input channel (Garg et al. 2023).
    * ``meta_dim``: length of the metadata vector the model needs (0 = none).
    * ``classes``: class names in logit order.
    * ``config`` / ``metrics``: the training configuration and evaluation results (JSON-able).
    """

    model_name: str
    model_config: dict
    inputs: tuple[str, ...]
    bands: dict
    normalizers: dict
    label_conditioning: bool = False
    meta_dim: int = 0
    classes: tuple[str, ...] = CLASS_NAMES
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    floodnb_version: str = __version__
    format: str = FORMAT

    def __post_init__(self) -> None:
        missing = [r for r in self.inputs if r not in self.bands]
        if missing:
            raise ValueError(f"ModelSpec: inputs {missing} have no entry in bands {sorted(self.bands)}")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "classes", tuple(self.classes))
        object.__setattr__(self, "bands", {k: tuple(v) for k, v in self.bands.items()})

    def __getitem__(self, key: str):
        """Mapping-style read access (``spec["bands"]``) for code that treats the spec as a dict."""
        return getattr(self, key)

    @property
    def in_channels(self) -> int:
        """Input channels: bands of every input role, +1 with label conditioning."""
        return sum(len(self.bands[r]) for r in self.inputs) + int(self.label_conditioning)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["inputs"] = list(self.inputs)
        d["classes"] = list(self.classes)
        d["bands"] = {k: list(v) for k, v in self.bands.items()}
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True, default=_jsonable)

    @classmethod
    def from_dict(cls, d: Mapping, *, source: str = "spec") -> ModelSpec:
        required = ("model_name", "model_config", "inputs", "bands", "normalizers")
        missing = [k for k in required if k not in d]
        if missing:
            raise ValueError(f"{source}: checkpoint spec lacks {missing}")
        if "format" in d and d["format"] != FORMAT:
            raise ValueError(f"{source}: unsupported checkpoint format {d['format']!r}, expected {FORMAT!r}")
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in d.items() if k in known})


def _jsonable(o):
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, (tuple, set)):
        return list(o)
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"checkpoint spec value {o!r} of type {type(o).__name__} is not JSON-serialisable")


def _unwrap(model: nn.Module) -> nn.Module:
    """The network a checkpoint holds: a data-parallel wrapper's ``module``, then a training
    wrapper's ``packaged()`` (e.g. the S1 network of :class:`floodnb.distill.cromss_joint.SensorPair`).
    """
    m = model.module if hasattr(model, "module") and isinstance(model.module, nn.Module) else model
    return m.packaged() if hasattr(m, "packaged") else m  # type: ignore[operator]


def save_checkpoint(path: str | Path, model: nn.Module, *, spec: ModelSpec) -> Path:
    """Write ``model``'s weights and ``spec`` to ``path`` (``.safetensors``) atomically."""
    from safetensors.torch import save_file

    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"checkpoint path {path} must end with .safetensors")
    state = {k: v.detach().cpu().contiguous() for k, v in _unwrap(model).state_dict().items()}
    with atomic_path(path) as tmp:
        save_file(state, str(tmp), metadata={SPEC_KEY: spec.to_json(), "format": FORMAT})
    return path


def read_spec(path: str | Path) -> ModelSpec:
    """The :class:`ModelSpec` of a checkpoint (``.safetensors`` or engine ``.pt``) without building the model."""
    return _read(Path(path))[1]


def read_checkpoint(path: str | Path) -> tuple[dict, ModelSpec]:
    """``(state_dict, spec)`` of a checkpoint without building the model (tensors as stored)."""
    return _read(Path(path))


def _read(path: Path) -> tuple[dict, ModelSpec]:
    if path.is_dir():
        for name in ("best.safetensors", "model.safetensors"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise FileNotFoundError(f"{path} is a folder without best.safetensors or model.safetensors")
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} not found")
    if path.suffix == ".safetensors":
        from safetensors import safe_open

        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
                state = {k: f.get_tensor(k) for k in f.keys()}
        except Exception as exc:  # safetensors raises its own error types
            raise ValueError(f"checkpoint {path} is not a readable safetensors file: {exc}") from exc
        if SPEC_KEY not in meta:
            raise ValueError(f"checkpoint {path} has no floodnb spec in its header (key {SPEC_KEY!r})")
        spec_json = meta[SPEC_KEY]
    else:
        try:
            blob = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            raise ValueError(f"checkpoint {path} does not load with torch.load(weights_only=True): {exc}") from exc
        if not isinstance(blob, dict) or "model" not in blob or SPEC_KEY not in blob:
            raise ValueError(f"checkpoint {path} lacks 'model' weights or the {SPEC_KEY!r} JSON")
        state, spec_json = blob["model"], blob[SPEC_KEY]
    try:
        spec = ModelSpec.from_dict(json.loads(spec_json), source=str(path))
    except json.JSONDecodeError as exc:
        raise ValueError(f"checkpoint {path}: spec is not valid JSON ({exc})") from exc
    return state, spec


def load_checkpoint(path: str | Path, *, map_location: str = "cpu") -> tuple[nn.Module, ModelSpec]:
    """Rebuild the model of a checkpoint and load its weights; returns ``(model.eval(), spec)``.

    ``path``: a ``.safetensors`` file, an engine training-state ``.pt`` file, or a run folder
    (its ``best.safetensors`` or else ``model.safetensors``).
    """
    from floodnb.models.registry import build_model

    state, spec = _read(Path(path))
    model = build_model(spec.model_name, **_config_with_norm(spec.model_config, state))
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ValueError(f"checkpoint {path}: weights do not fit model {spec.model_name} "
                         f"{spec.model_config}: {exc}") from exc
    return model.to(map_location).eval(), spec


def _config_with_norm(config: Mapping, state: Mapping) -> dict:
    """``config`` with its ``norm``; a U-Net config without one gets the norm its weights show.

    floodnb specs record ``norm`` (``UNet.config()``), so a GroupNorm checkpoint rebuilds with
    GroupNorm even though BatchNorm is the default now. For a hand-written spec without it, BatchNorm
    layers leave ``running_mean`` buffers in the state dict and GroupNorm layers do not.
    """
    config = dict(config)
    if "norm" not in config and "width" in config and "depth" in config:
        config["norm"] = "batch" if any(k.endswith("running_mean") for k in state) else "group"
    return config


def check_compatible(spec: ModelSpec, *, bands: Mapping[str, tuple[str, ...]], normalizers: Mapping[str, Mapping],
                     source: str = "data") -> None:
    """Raise ``ValueError`` when the data's bands or normalisers differ from the checkpoint's.

    ``bands``/``normalizers``: role -> band names / ``Normalizer.to_dict()`` of the data about to
    be fed to the model (only the roles in ``spec.inputs`` are compared). The message names both
    sides so the user sees what the model expects and what the data has.
    """
    problems = []
    for role in spec.inputs:
        want_b = tuple(spec.bands[role])
        have_b = tuple(bands[role]) if role in bands else None
        if have_b != want_b:
            problems.append(f"role {role!r}: checkpoint bands {list(want_b)} but {source} bands "
                            f"{list(have_b) if have_b is not None else 'missing'}")
        want_n = spec.normalizers[role] if role in spec.normalizers else None
        have_n = dict(normalizers[role]) if role in normalizers else None
        if want_n is not None and not _same_norm(want_n, have_n):
            problems.append(f"role {role!r}: checkpoint normaliser {_short(want_n)} "
                            f"but {source} normaliser {_short(have_n)}")
    if problems:
        raise ValueError("checkpoint does not match the data: " + "; ".join(problems))


def _same_value(a, b) -> bool:
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return abs(float(a) - float(b)) <= 1e-6 * max(1.0, abs(float(a)))
    return a == b


def _same_norm(a: Mapping, b: Mapping | None) -> bool:
    """Normalisers agree on every field except their provenance (``name``, ``source``)."""
    if b is None:
        return False
    keys = (set(a) | set(b)) - {"source", "name"}
    return all(k in a and k in b and _same_value(a[k], b[k]) for k in keys)


def _short(n: Mapping | None) -> str:
    if n is None:
        return "missing"
    keys = [k for k in ("name", "kind", "mean", "std") if k in n]
    return "{" + ", ".join(f"{k}={n[k]!r}" for k in keys) + "}"
