"""The evidence experiment: every method of the distillation and label-noise issues, same budget, one table.

:func:`run_experiment` (``floodnb experiment``) simulates the default dataset (or takes a
simulated data root), trains/thresholds every row of :data:`floodnb.experiment.rows.ROWS` under
one :class:`~floodnb.experiment.config.Budget` once per training seed (``seeds``, default 3),
scores water IoU against the simulator's true water mask on the test split and the held-out
event on one pixel set for every row, and writes ``results.csv`` (row x seed), ``summary.csv``
(mean ± std), ``comparisons.csv`` (paired per-seed differences and bootstrap), ``results.md``/
``.png`` (and optionally the README block and a real-chip report). Modules: :mod:`.config`,
:mod:`.rows`, :mod:`.training` (equal-budget datasets, CromSS objectives), :mod:`.scoring` (common
mask, per-chip counts), :mod:`.stats`, :mod:`.summary`, :mod:`.run`, :mod:`.report`, :mod:`.real`.
"""

from floodnb.experiment.config import DEFAULT_BUDGET, DEFAULT_SIM, FAST_BUDGET, FAST_SIM, Budget, SimSpec


def run_experiment(*args, **kwargs):
    """See :func:`floodnb.experiment.run.run_experiment` (imported lazily: torch)."""
    from floodnb.experiment.run import run_experiment as _run

    return _run(*args, **kwargs)


__all__ = ["Budget", "SimSpec", "DEFAULT_BUDGET", "DEFAULT_SIM", "FAST_BUDGET", "FAST_SIM", "run_experiment"]
