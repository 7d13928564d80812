"""Checkpoints shipped inside the package, so a real Sentinel-1 scene can be mapped without training first.

Each shipped model is a floodnb checkpoint (safetensors + JSON spec, see
:mod:`floodnb.models.checkpoint`) in ``floodnb/models/pretrained/<name>.safetensors`` whose spec
carries a ``card`` under ``spec.config["card"]``: what it was trained on, the command that made it,
and how it scores on real hand-labelled chips beside the thresholds measured in the same run.
``MODEL_CARD.md`` beside the files says the same for people.

* :func:`available` — name -> path of every shipped checkpoint;
* :func:`pretrained_path` / :func:`load_pretrained` — one by name (default :data:`DEFAULT`);
* :func:`package_checkpoint` — write a trained checkpoint as a compact shipped one (weights in
  float16 — half the bytes; loading casts them back to the model's float32 parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from floodnb.io_utils import atomic_path

PRETRAINED_DIR = Path(__file__).resolve().parent / "pretrained"
#: the model ``floodnb predict SCENE`` uses when no checkpoint is given
DEFAULT = "s1_sim_student"


def available() -> dict[str, Path]:
    """Name -> path of every checkpoint shipped in :data:`PRETRAINED_DIR` (sorted by name)."""
    if not PRETRAINED_DIR.is_dir():
        return {}
    return {p.stem: p for p in sorted(PRETRAINED_DIR.glob("*.safetensors"))}


def pretrained_path(name: str = DEFAULT) -> Path:
    """Path of the shipped checkpoint ``name``; ValueError naming the choices when it does not exist."""
    models = available()
    if name not in models:
        raise ValueError(f"no shipped model named {name!r}; shipped: {sorted(models) or 'none'} "
                         f"(in {PRETRAINED_DIR})")
    return models[name]


def load_pretrained(name: str = DEFAULT):
    """``(model.eval(), spec)`` of the shipped checkpoint ``name`` (float32 weights)."""
    from floodnb.models.checkpoint import load_checkpoint

    return load_checkpoint(pretrained_path(name))


def package_checkpoint(src: str | Path, dest: str | Path, *, card: Mapping) -> Path:
    """Copy checkpoint ``src`` to ``dest`` with float16 weights and ``card`` in ``spec.config["card"]``.

    Floating-point tensors are stored as float16 (integer buffers unchanged); the spec (bands,
    normalisers, classes, training configuration, metrics) is kept. ``card``: JSON-able facts
    about the model (training data, command, real-chip scores). Written atomically.
    """
    from dataclasses import replace

    from safetensors.torch import save_file

    from floodnb.models.checkpoint import FORMAT, SPEC_KEY, read_checkpoint

    state, spec = read_checkpoint(src)
    spec = replace(spec, config={**spec.config, "card": dict(card)})
    half = {k: (v.to(torch.float16) if v.is_floating_point() else v).contiguous() for k, v in state.items()}
    dest = Path(dest)
    if dest.suffix != ".safetensors":
        raise ValueError(f"shipped checkpoint {dest} must end with .safetensors")
    dest.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(dest) as tmp:
        save_file(half, str(tmp), metadata={SPEC_KEY: spec.to_json(), "format": FORMAT})
    return dest
