"""The one "simulate if absent" routine of floodnb runs and experiments.

Rule: a folder holding a *finished* floodnb simulation (its manifest is written last) is reused
only when the manifest's settings match the requested ones; a mismatch is refused with a
message (or replaced when the caller asks to); an interrupted simulation is redone; an absent
one is simulated. ``floodnb run``, the notebooks' :func:`floodnb.workflow.setup` and
``floodnb experiment`` all call :func:`ensure_simulation`.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path


def _current_sim_version() -> int:
    from floodnb.simulate.config import SIM_VERSION

    return SIM_VERSION


@dataclass(frozen=True)
class SimRequest:
    """The simulated dataset asked for: ``n_hand`` + ``n_weak`` chips of ``size`` px, seeded by ``seed``,
    by simulator version ``sim_version`` (default: this floodnb's :data:`floodnb.simulate.config.SIM_VERSION`,
    so a simulation cached by an older simulator is not reused).
    """

    n_hand: int
    n_weak: int
    size: int
    seed: int
    sim_version: int = field(default_factory=_current_sim_version)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class SimResult:
    """Outcome of :func:`ensure_simulation`: the data root and whether it was simulated now (else reused)."""

    root: Path
    simulated: bool
    seconds: float


class SimulationMismatch(ValueError):
    """The folder holds a finished simulation with other settings than the requested ones."""


def manifest_settings(root: str | Path) -> SimRequest | None:
    """Settings of the finished floodnb simulation in ``root`` (from its manifest); None when there is none."""
    from floodnb.simulate.writer import MANIFEST  # written last by simulate_dataset

    path = Path(root) / MANIFEST
    if not path.is_file():
        return None
    m = json.loads(path.read_text())
    return SimRequest(n_hand=int(m["n_hand"]), n_weak=int(m["n_weak"]), size=int(m["config"]["size"]),
                      seed=int(m["seed"]), sim_version=int(m.get("sim_version", 1)))


def is_simulation(root: str | Path) -> bool:
    """Whether ``root`` holds a finished floodnb simulation (its manifest is present)."""
    return manifest_settings(root) is not None


def ensure_simulation(root: str | Path, want: SimRequest, *, replace: bool = False, workers: int = 2,
                      progress: bool = True, hint: str = "use another folder",
                      log: Callable[[str], None] | None = None) -> SimResult:
    """The simulated dataset ``want`` in ``root``: reused when its manifest matches, simulated otherwise.

    A finished simulation with other settings raises :class:`SimulationMismatch` (message ends with
    ``hint`` and says nothing was changed) unless ``replace`` (then it is simulated again in place).
    An interrupted simulation is redone and a folder holding data floodnb did not simulate is refused
    (both by :func:`floodnb.simulate.simulate_dataset`). ``log`` receives one line per decision.
    """
    from floodnb.simulate import simulate_dataset

    root = Path(root)
    say = log or (lambda _msg: None)
    have = manifest_settings(root)
    if have == want:
        say(f"reusing the simulated dataset in {root} ({have.to_dict()})")
        return SimResult(root=root, simulated=False, seconds=0.0)
    if have is not None and not replace:
        raise SimulationMismatch(f"{root} holds a simulation with {have.to_dict()}, not the requested "
                                 f"{want.to_dict()}; {hint} (nothing was changed)")
    t0 = time.perf_counter()
    say(f"simulating {want.to_dict()} into {root}")
    out = simulate_dataset(root, n_hand=want.n_hand, n_weak=want.n_weak, size=want.size, seed=want.seed,
                           workers=workers, overwrite=have is not None, progress=progress)
    dt = time.perf_counter() - t0
    say(f"simulated in {dt:.1f} s")
    return SimResult(root=Path(out), simulated=True, seconds=dt)
