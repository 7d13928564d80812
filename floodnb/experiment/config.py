"""Run-edge settings of the evidence experiment: the simulated dataset and the shared training budget.

Every trained row of :func:`floodnb.experiment.run_experiment` gets the *same budget*:
``epochs x steps_per_epoch`` optimisation steps of ``batch_size`` random ``crop x crop`` px
crops, the same model (``model`` with ``width``), optimiser (AdamW, cosine schedule, ``lr``) and
seed. Only the data each sample is drawn from and the loss differ between rows.

**How the default was chosen** (target: the whole experiment, ~20 trained rows x 3 seeds, in
<= 45 min on an idle 2-core machine, one torch thread). Measured 2026-12-02 under a load average
of 11-19 on the shared 2 cores (wall times 3-8x inflated), so the estimate uses each row's process
**CPU** time (``cpu_s`` in results.csv; with one thread it is the wall time of an idle machine).

* Previous default (240 hand + 1000 weak chips of 256 px; 150 steps x 8 x 128^2 px, unet_small
  width 8), ``floodnb experiment --out-dir X --rows s1_weak,student_soft --seeds 1``: s1_weak
  42.3 CPU s (298 s wall), teacher_s2 39.0 (325), teacher_s2s1 39.6 (260), student_soft 85.0
  (325), of which ~43 s label the 1000-chip pool with the teacher.
* Cost model fitted to it: 1.42 CPU s per million training-crop pixels (19.7 Mpx in 150 steps)
  + 0.8 s per million evaluated pixels (validation of 45 chips every epoch + scoring 114 chips on
  the common mask: 16.3 Mpx, ~13 s) + 0.043 s per 256 px pool chip a teacher labels.
* That default projects to 60 runs x 41 s + 12 pool labellings (4 labelling models — the chosen
  teacher, teacher_s2_meta, s2_weak, a shuffled-metadata teacher — x 3 seeds) x 43 s + simulation
  ~110 s + packing and real-chip report ~80 s = 53 min: over the target.
* The default therefore (a) halves the weak pool to 500 chips — a student draws 4 pool crops per
  step, 480 in its run, so a 1000-chip pool was not even seen once per chip — halving pool
  labelling and pool simulation, and (b) trains 120 steps (3 x 40) instead of 150; model, crop,
  batch and optimiser unchanged. Projection: 60 x (1.42 x 15.7 + 0.8 x 16.3) = 60 x 35 s = 35.0 min
  + 12 x 21.5 s = 4.3 min + simulation ~1.1 min + packing ~0.3 min + real-chip report ~1 min =
  **41.7 min**; rows other branches add beyond ~20 (e.g. a generator per seed) must fit in the
  remaining ~3 min, or lower ``steps_per_epoch``.
* Check on the new default: s1_hand 32.3 CPU s (estimate 35 s; 108 s wall at load average 14-17;
  ``floodnb experiment --out-dir X --rows s1_hand --seeds 1``).

The run prints its own projection before the first row (:func:`estimate_row_seconds`,
:func:`estimate_pool_seconds`); ``python benchmarks/bench_experiment.py`` measures the whole run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from floodnb.io_utils import json_hash


@dataclass(frozen=True)
class SimSpec:
    """The simulated dataset (``floodnb.simulate.simulate_dataset``) the experiment runs on.

    The default keeps the simulator's 240 hand-labelled chips and a 500-chip weak pool (module
    docstring: a student's run draws ~480 pool crops) and writes 256 px chips instead of 512 px:
    training uses 128 px crops anyway, so the smaller chips carry the same information per
    training sample while simulating, packing, labelling the pool and evaluating cost a quarter
    (the experiment with 3 seeds must fit in 45 minutes on 2 cores).
    """

    n_hand: int = 240
    n_weak: int = 500
    size: int = 256
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_hand < 8:
            raise ValueError(f"SimSpec.n_hand must be >= 8 (train/valid/test/held-out splits), got {self.n_hand}")
        if self.n_weak < 1:
            raise ValueError(f"SimSpec.n_weak must be >= 1 (the pool), got {self.n_weak}")

    def to_dict(self) -> dict:
        return asdict(self)


#: ``floodnb.models.unet.NORMS`` without importing torch here (a test checks they agree).
BUDGET_NORMS: tuple[str, ...] = ("batch", "group")


@dataclass(frozen=True)
class Budget:
    """Training budget shared by every trained row, plus the method hyper-parameters.

    ``hand_fraction``: share of every student batch drawn from hand-labelled chips (the rest
    from the teacher-labelled pool): ``round(hand_fraction * batch_size)`` hand chips, at least
    1, in *every* batch (:class:`floodnb.distill.mixing.HandPoolData`). ``hand_weight`` /
    ``distill_weight``: weight of one hand-labelled pixel / one pool pixel in the student's
    per-pixel loss (one weighted mean over the batch's pixels,
    :func:`floodnb.distill.losses.hand_pool_loss`). ``temperature`` / ``threshold``: soft / hard distillation
    (Hinton et al. 2015; Garg et al. 2023). ``edge_width`` / ``edge_weight``: edge weighting
    (Garg et al. 2023). ``cromss_end_ratio``: CromSS class-balanced selection ratio reached at
    the last epoch (ramp from 1, Liu et al. TGRS 2025); ``consistency_weight``: weight of the
    CromSS cross-sensor consistency term (fixed-partner baseline and the joint S1+S2 training).
    """

    epochs: int = 3
    steps_per_epoch: int = 40
    batch_size: int = 8
    crop: int = 128
    model: str = "unet_small"
    width: int = 8
    norm: str = "batch"
    pool_cloud_mask: bool = True
    lr: float = 2e-3
    hand_fraction: float = 0.5
    hand_weight: float = 1.0
    distill_weight: float = 1.0
    temperature: float = 2.0
    threshold: float = 0.9
    edge_width: int = 2
    edge_weight: float = 1.0
    cromss_end_ratio: float = 0.5
    consistency_weight: float = 1.0

    def __post_init__(self) -> None:
        for name in ("epochs", "steps_per_epoch", "batch_size", "crop", "width"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"Budget.{name} must be >= 1, got {getattr(self, name)!r}")
        if self.norm not in BUDGET_NORMS:
            raise ValueError(f"Budget.norm must be one of {BUDGET_NORMS}, got {self.norm!r}")
        if not 0.0 < self.hand_fraction < 1.0:
            raise ValueError(f"Budget.hand_fraction must lie in (0, 1), got {self.hand_fraction!r}")
        for name in ("hand_weight", "distill_weight"):
            if not float(getattr(self, name)) >= 0.0:
                raise ValueError(f"Budget.{name} must be >= 0, got {getattr(self, name)!r}")
        if not 0.0 < self.cromss_end_ratio <= 1.0:
            raise ValueError(f"Budget.cromss_end_ratio must lie in (0, 1], got {self.cromss_end_ratio!r}")

    @property
    def steps(self) -> int:
        return self.epochs * self.steps_per_epoch

    @property
    def samples_per_epoch(self) -> int:
        return self.steps_per_epoch * self.batch_size

    def describe(self) -> str:
        """One line for tables: steps x batch x crop and the model."""
        return (f"{self.steps} steps ({self.epochs} epochs x {self.steps_per_epoch}) x batch {self.batch_size} "
                f"x {self.crop}x{self.crop} px crops, {self.model} width {self.width} {self.norm}norm, "
                f"AdamW lr {self.lr:g} cosine")

    def to_dict(self) -> dict:
        return asdict(self)


#: The default experiment (README table).
DEFAULT_SIM = SimSpec()
DEFAULT_BUDGET = Budget()
#: ``--fast``: a smoke run of every row in about a minute (tiny chips, a few steps).
FAST_SIM = SimSpec(n_hand=24, n_weak=24, size=64, seed=0)
FAST_BUDGET = Budget(epochs=1, steps_per_epoch=3, batch_size=4, crop=32, model="unet_tiny", width=4)


#: Idle-machine cost model of one trained row and seed (one torch thread): CPU seconds per million
#: training-crop pixels (steps x batch x crop^2) of ``unet_small`` width 8, and the fixed part (validation
#: every epoch, pool labelling by a teacher, scoring on the common mask). Measured as process CPU time
#: (``cpu_s`` in results.csv), which on an idle machine with one thread is the wall time; see the module
#: docstring for the measurement.
CPU_S_PER_MPX: float = 1.42
#: ... and per million evaluated pixels (validation every epoch + scoring valid/test/held-out once):
#: ~13 s for the default's 45 x 3 + 114 chips of 256 px (16.3 Mpx).
CPU_S_PER_EVAL_MPX: float = 0.8
#: CPU seconds to label one 256 x 256 px pool chip with a teacher (inference, float16 probabilities).
CPU_S_PER_POOL_CHIP: float = 0.043


def estimate_row_seconds(budget: Budget, *, valid_chips: int = 45, scored_chips: int = 114,
                         size: int = 256) -> float:
    """Projected wall seconds of one trained row and seed on an idle 2-core machine (one torch thread).

    :data:`CPU_S_PER_MPX` x training-crop megapixels + :data:`CPU_S_PER_EVAL_MPX` x evaluated
    megapixels (``valid_chips`` every epoch + ``scored_chips`` once, ``size`` px chips), scaled by
    the model's width squared relative to ``unet_small`` width 8 (``unet_tiny``: a quarter). A
    rough guide printed before a run, not a guarantee: other machines and rows differ.
    """
    mpx = budget.steps * budget.batch_size * budget.crop ** 2 / 1e6
    eval_mpx = (valid_chips * budget.epochs + scored_chips) * size ** 2 / 1e6
    width = (budget.width / 8.0) ** 2 if budget.model == "unet_small" else 0.25 * (budget.width / 8.0) ** 2
    return (CPU_S_PER_MPX * mpx + CPU_S_PER_EVAL_MPX * eval_mpx) * width


def estimate_pool_seconds(n_chips: int, size: int) -> float:
    """Projected seconds for one model to label a pool of ``n_chips`` chips of ``size`` px (idle, one thread)."""
    return CPU_S_PER_POOL_CHIP * n_chips * (size / 256.0) ** 2


def params_hash(obj: dict) -> str:
    """Short stable hash of a JSON-able dict (row folders and reuse checks)."""
    return json_hash(obj, 10)
