"""The rows of the evidence experiment: what each trains or thresholds, and how it is scored.

A row's runner ``RUNNERS[name](ctx, out_dir)`` trains (or thresholds) for **one seed**
(``ctx.seed``) and returns ``{"checkpoint": path or "", "teacher": name or "", ...}``; a
threshold row returns ``"vh_threshold": f(split, chip_id) -> dB or None`` instead of a
checkpoint. :func:`score_row` then scores every row alike on the common pixel mask of
:mod:`floodnb.experiment.scoring` (``valid`` against hand labels, ``test``/``bolivia`` against the
simulator's true water mask), from the checkpoint's predictions on ``ctx.hand_split(split,
inputs=spec.inputs, meta=spec has metadata)`` or on ``Row.eval_data(ctx, split, spec)`` when a row
needs other evaluation inputs. Validation water IoU (hand labels) picks the distillation teacher
and the best student (mean over seeds), never the test split.

Methods: Otsu (Bonafilia et al. 2020), S1 on weak labels (the Sen1Floods11 baseline that Garg
et al. 2023 beat), S1 on hand labels, S2 / S2+S1 / S2+metadata teachers and soft / hard /
edge-weighted students (Garg et al. 2023, arXiv 2302.08180; metadata only in the teacher:
Bernhard et al., ECAI 2024), CromSS joint S1+S2 training with selection and consistency (Liu et al., TGRS 2025) and its
fixed-partner simplifications (named ``*_fixed_partner``),
generated (radar, soft label) pairs of a diffusion model trained per seed on the hand training
split (DAKTer, Moon et al., arXiv 2412.08116).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, cast

import pandas as pd

from floodnb.experiment.config import Budget

#: Splits scored for every row: the test split and the held-out event (Sen1Floods11's "bolivia").
EVAL_SPLITS: tuple[str, ...] = ("test", "bolivia")
#: Splits scored on the common mask: validation (hand labels; selection only) and the evaluation splits.
SCORED_SPLITS: tuple[str, ...] = ("valid", *EVAL_SPLITS)
#: The distillation teachers the students' teacher is chosen from (by mean validation water IoU over seeds).
TEACHER_CHOICES: tuple[str, ...] = ("teacher_s2", "teacher_s2s1")


@dataclass(frozen=True)
class Row:
    """One row of the table: a name, a group, a description and the rows it needs first."""

    name: str
    group: str
    description: str
    deps: tuple[str, ...] = ()
    #: bumped when the row's method changes, so results of the old method are not reused
    revision: int = 0
    #: evaluation data of a trained row, ``(ctx, split, spec) -> Dataset`` of full chips; None: the hand
    #: chips of ``split`` with the checkpoint's inputs (and metadata when the model takes it)
    eval_data: Callable[[Context, str, Any], Any] | None = None
    #: False for a row that trains something other rows use but that maps no water (e.g. a generator):
    #: it runs per seed and is listed, with no metrics and no comparison
    scored: bool = True

    @property
    def chooses_teacher(self) -> bool:
        """True when the row distils from the teacher picked on validation (teacher_s2 or teacher_s2s1)."""
        return set(TEACHER_CHOICES) <= set(self.deps)


ROWS: dict[str, Row] = {r.name: r for r in (
    Row("otsu_chip", "baseline", "Otsu threshold on each chip's VH (no training)"),
    Row("otsu_event", "baseline", "one VH threshold per event (metadata VH_thresh, no training)", revision=1),
    Row("s1_weak", "baseline", "S1 U-Net on the pool's S1-Otsu weak labels (Sen1Floods11 weak baseline)"),
    Row("s1_hand", "baseline", "S1 U-Net on hand labels only"),
    Row("s2_weak", "cromss", "S2 U-Net on the same weak labels (fixed partner of s1_weak_*_fixed_partner)"),
    Row("s1_weak_select_fixed_partner", "cromss", "s1_weak + CromSS-style class-balanced pixel selection (ratio 1 -> "
        "0.5) against a fixed, separately trained S2 partner (s2_weak)", ("s2_weak",), revision=1),
    Row("s1_weak_cons_fixed_partner", "cromss", "s1_weak_select_fixed_partner + consistency term towards the fixed "
        "S2 partner", ("s2_weak",), revision=1),
    Row("s1_weak_cromss_joint", "cromss", "CromSS (Liu et al. 2025): S1 and S2 U-Nets trained jointly on the weak "
        "labels, class-balanced selection + cross-sensor consistency; the S1 net is scored", revision=1),
    Row("teacher_s2", "teacher", "S2 teacher (13 bands) on hand labels"),
    Row("teacher_s2s1", "teacher", "S2+S1 teacher on hand labels"),
    Row("teacher_s2_meta", "teacher", "S2 teacher + FiLM metadata (day of year, position)"),
    Row("teacher_s2_meta_shuffled", "teacher", "teacher_s2_meta with metadata permuted across chips (ablation: "
        "same distribution, link to the chip broken)",
        eval_data=lambda ctx, split, spec: ctx.hand_split(split, inputs=tuple(spec.inputs), meta=True,
                                                          shuffle_meta=ctx.meta_shuffle_seed)),
    Row("student_soft", "student", "S1 student: hand CE + soft KL on the teacher-labelled pool",
        ("teacher_s2", "teacher_s2s1"), revision=1),
    Row("student_hard", "student", "S1 student: hand CE + CE on confident teacher labels",
        ("teacher_s2", "teacher_s2s1"), revision=1),
    Row("student_soft_edge", "student", "student_soft + edge weighting", ("teacher_s2", "teacher_s2s1"), revision=1),
    Row("student_meta", "student", "student_soft distilled from the metadata teacher", ("teacher_s2_meta",),
        revision=1),
    Row("student_meta_shuffled", "student", "student_soft distilled from the shuffled-metadata teacher",
        ("teacher_s2_meta_shuffled",)),
    Row("student_soft_select_fixed_partner", "cromss", "student_soft + CromSS-style selection of pool pixels "
        "(student vs the fixed teacher)", ("teacher_s2", "teacher_s2s1"), revision=1),
    Row("student_soft_confweight_fixed_partner", "cromss", "student_soft + pool pixels weighted by the fixed "
        "teacher's entangled confidence", ("teacher_s2", "teacher_s2s1"), revision=1),
    Row("s1_hand_gen", "generative", "s1_hand + DAKTer generated pairs: hand CE + soft KD on generated pairs only",
        revision=2),
    Row("student_soft_gen", "generative", "student_soft + DAKTer generated pairs (KD on pool and generated pairs)",
        ("teacher_s2", "teacher_s2s1"), revision=2),
)}
TRAINED: frozenset[str] = frozenset(n for n in ROWS if not n.startswith("otsu"))


@dataclass
class Context:
    """What rows share: data (catalog + packed stores), budget, the seed of this pass, finished rows' results.

    One Context per seed (:meth:`for_seed`); ``results`` holds this seed's finished rows,
    ``seed_results`` (shared by the seeds' contexts) ``row -> {seed: result}`` of every seed, and
    ``eval_sets`` (shared) the common-mask chips of each scored split.
    """

    out_dir: Path
    catalog: pd.DataFrame
    hand: object  # ChipStore of the hand-labelled chips
    pool: object  # ChipStore of the weak pool chips
    budget: Budget
    seed: int
    progress: bool
    results: dict[str, dict] = field(default_factory=dict)  # row -> result dict (metrics, checkpoint, ...)
    row_dirs: dict[str, Path] = field(default_factory=dict)
    seed_results: dict[str, dict[int, dict]] = field(default_factory=dict)
    eval_sets: dict[str, Any] = field(default_factory=dict)

    def for_seed(self, seed: int) -> Context:
        """A context for ``seed`` sharing data, ``seed_results`` and ``eval_sets`` (own results, row dirs)."""
        from dataclasses import replace

        return replace(self, seed=int(seed), results={}, row_dirs={})

    # ---------------------------------------------------------------- datasets
    def _ds(self, source, split: str | None, *, inputs, train: bool, meta: bool = False, weak=None, target="label",
            soft=None, shuffle_meta: int | None = None):
        from floodnb.data.torch import ChipDataset

        return ChipDataset(source, inputs=tuple(inputs), target=target, weak=weak, with_meta=meta, soft=soft,
                           split=split, crop=self.budget.crop if train else None, augment=train, seed=self.seed,
                           shuffle_meta=shuffle_meta)

    @property
    def meta_shuffle_seed(self) -> int:
        """Seed of the metadata permutation of the ``*_meta_shuffled`` rows (derived from the run seed)."""
        return self.seed + 1000

    def hand_split(self, split: str, *, inputs=("s1",), train: bool = False, meta: bool = False,
                   shuffle_meta: int | None = None):
        from floodnb.distill.datasets import split_sizes

        sizes = split_sizes(self.hand)
        if split not in sizes or sizes[split] == 0:
            raise ValueError(f"split {split!r} has no hand-labelled chips (chips per split: {sizes}); the experiment "
                             f"needs train, valid, test and bolivia chips")
        return self._ds(self.hand, split, inputs=inputs, train=train, meta=meta, shuffle_meta=shuffle_meta)

    def evaluate_on(self, *, inputs=("s1",), meta: bool = False, shuffle_meta: int | None = None) -> dict:
        """No split for the training engine: every row is scored afterwards by :func:`score_row` on the
        common mask (kept so runners can pass ``evaluate_on=ctx.evaluate_on(...)`` unchanged).
        """
        return {}

    def eval_chips(self, split: str):
        """The common-mask chips of ``split`` (:func:`floodnb.experiment.scoring.eval_chips`, cached)."""
        from floodnb.experiment.scoring import eval_chips

        if split not in self.eval_sets:
            self.eval_sets[split] = eval_chips(self.catalog, split)
        return self.eval_sets[split]

    def fixed(self, data, length: int | None = None):
        from floodnb.experiment.training import FixedLength

        return FixedLength(data, self.budget.samples_per_epoch if length is None else length, seed=self.seed)

    def pool_ds(self, *, inputs=("s1",), weak=None, soft=None):
        return self._ds(self.pool, None, inputs=inputs, train=True, weak=weak, target=None, soft=soft)

    def config(self):
        from floodnb.distill.engine import TrainConfig

        b = self.budget
        return TrainConfig(epochs=b.epochs, batch_size=b.batch_size, lr=b.lr, seed=self.seed,
                           checkpoint_every=25, progress=self.progress)

    @property
    def model_kw(self) -> dict:
        return {"width": self.budget.width, "norm": self.budget.norm}

    # ---------------------------------------------------------------- teachers and pools
    def checkpoint(self, row: str) -> Path:
        if row not in self.results or not self.results[row]["checkpoint"]:
            raise ValueError(f"row {row!r} has no checkpoint (did it finish?)")
        return Path(self.results[row]["checkpoint"])

    def distill_teacher(self) -> str:
        """The teacher of :data:`TEACHER_CHOICES` with the higher *mean* validation water IoU (hand labels)
        over the seeds finished so far (rows run seed after seed, so every seed's teachers come first);
        ties go to teacher_s2. The same teacher kind serves every seed; seed ``s`` distils from its seed-``s`` run.
        """
        cands = [t for t in TEACHER_CHOICES if t in self.results]
        if not cands:
            raise ValueError(f"no distillation teacher finished for seed {self.seed} ({', '.join(TEACHER_CHOICES)})")
        return max(cands, key=lambda t: (self.mean_valid(t), t == "teacher_s2"))

    def mean_valid(self, row: str) -> float:
        """Mean validation water IoU of ``row`` over its finished seeds (this seed's alone when none shared)."""
        import numpy as np

        runs = self.seed_results[row] if row in self.seed_results and self.seed_results[row] else \
            {self.seed: self.results[row]}
        return float(np.mean([float(r["valid_water_iou"]) for r in runs.values()]))

    def pool_probs(self, row: str):
        """Probabilities ``(N_pool, K, H, W)`` float16 memmap of ``row``'s model on the pool (cached).

        A distillation teacher's (``teacher_*``) targets are NaN under the pool's S2 cloud mask
        when ``budget.pool_cloud_mask``; the teacher's water IoU vs truth in clear vs cloud pixels
        is written beside them (``pool_probs.quality.csv``). The CromSS partner (``s2_weak``) is
        never masked: its probabilities weight pixels rather than supervise them. The pool is read
        with the checkpoint's own normalisers (:func:`~floodnb.distill.pool_targets.teacher_pool_targets`).
        """
        import numpy as np

        from floodnb.distill.pool_targets import teacher_pool_targets

        path = self.row_dirs[row] / "pool_probs.npy"
        if path.exists():
            return np.load(path, mmap_mode="r")
        return teacher_pool_targets(self.checkpoint(row), self.pool, out_path=path, weak_role=None,
                                    batch_size=self.budget.batch_size, progress=self.progress,
                                    mask_clouds=self.budget.pool_cloud_mask and row.startswith("teacher"),
                                    shuffle_meta=self.meta_shuffle_seed if row.endswith("_meta_shuffled") else None)


def _summaries(run) -> dict:
    """A trained row's result: its best checkpoint and the engine's validation water IoU (best epoch).

    The splits are scored afterwards by :func:`score_row` (the same pixels for every row).
    """
    return {"valid_water_iou": float(run.fit.best_metrics["water_iou"]) if "water_iou" in run.fit.best_metrics
            else float("nan"), "checkpoint": str(run.out_dir / "best.safetensors"), "teacher": ""}


def score_row(ctx: Context, row: str, res: dict) -> pd.DataFrame:
    """Per-chip confusion counts of one finished row on every scored split's common mask.

    Threshold rows (``res["vh_threshold"]``) threshold the chips' VH; trained rows predict with
    ``res["checkpoint"]`` on ``ROWS[row].eval_data`` or the hand chips with the checkpoint's inputs.
    Returns the :data:`floodnb.experiment.scoring.COUNT_COLUMNS` table of every split (empty for a
    row with ``scored=False``).
    """
    from floodnb.experiment.scoring import COUNT_COLUMNS, score_model, score_threshold
    from floodnb.models import read_spec

    if not ROWS[row].scored:
        return pd.DataFrame(columns=list(COUNT_COLUMNS))
    tables = []
    for split in SCORED_SPLITS:
        chips = ctx.eval_chips(split)
        if "vh_threshold" in res:
            tables.append(score_threshold(chips, partial(res["vh_threshold"], split)))
            continue
        spec = read_spec(res["checkpoint"])
        hook = ROWS[row].eval_data
        data = hook(ctx, split, spec) if hook is not None else ctx.hand_split(
            split, inputs=tuple(spec.inputs), meta=bool(spec.meta_dim))
        tables.append(score_model(res["checkpoint"], data, chips, batch_size=ctx.budget.batch_size,
                                  progress=ctx.progress))
    return pd.concat(tables, ignore_index=True)


# ---------------------------------------------------------------- row implementations
def _otsu(ctx: Context, out: Path, mode: str) -> dict:
    """Otsu rows; ``otsu_event`` writes ``event_thresholds.csv`` (split, event, threshold, source) into ``out``.

    Returns ``vh_threshold(split, chip_id)``: None (the chip's own Otsu) or the event's metadata threshold.
    """
    from floodnb.distill.baselines import otsu_baseline
    from floodnb.io_utils import atomic_path

    cat = ctx.catalog
    rows: list[dict] = []
    by_event: dict[str, dict[str, float]] = {}
    if mode == "event":
        for s in SCORED_SPLITS:
            ref = "label" if s == "valid" else "truth_water"
            chips = cat[(cat["split"] == s) & cat["s1_path"].notna() & cat[f"{ref}_path"].notna()]
            if len(chips) == 0:
                raise ValueError(f"split {s!r} has no chips with S1 and {ref} in the catalog")
            m, _ = otsu_baseline(chips, mode=mode, reference=ref, split=s)
            rows += _threshold_rows(s, m)
            by_event[s] = {ev: float(v["vh_threshold_db"]) for ev, v in m["event_thresholds"].items()}
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "event_thresholds.csv") as tmp:
            pd.DataFrame(rows, columns=["split", "event", "vh_threshold_db", "source"]).to_csv(tmp, index=False)
    event_of = dict(zip(cat["chip_id"].astype(str), cat["event"].astype(str), strict=True)) if "event" in cat else {}

    def vh_threshold(split: str, cid: str) -> float | None:
        return by_event[split][event_of[cid]] if mode == "event" else None

    return {"vh_threshold": vh_threshold, "checkpoint": "", "teacher": ""}


def _threshold_rows(split: str, metrics: dict) -> list[dict]:
    th = metrics["event_thresholds"] if "event_thresholds" in metrics else {}
    return [{"split": split, "event": ev, **v} for ev, v in th.items()]


def _baseline(ctx: Context, out: Path, kind: str) -> dict:
    from floodnb.distill.baselines import train_baseline

    train = ctx.fixed(ctx.pool_ds(weak="s1_otsu")) if kind == "s1_weak" else ctx.fixed(
        ctx.hand_split("train", train=True))
    run = train_baseline(kind=kind, train=train, valid=ctx.hand_split("valid"), out_dir=out, model=ctx.budget.model,
                         config=ctx.config(), evaluate_on=ctx.evaluate_on(), reference="truth_water",
                         model_kw=ctx.model_kw)
    return _summaries(run)


def _s2_weak(ctx: Context, out: Path) -> dict:
    from floodnb.bands import S2_BANDS
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.runner import SupervisedObjective, normalizer_dicts, train_method

    plan = InputPlan(inputs=("s2",))
    train = ctx.fixed(ctx.pool_ds(inputs=("s2",), weak="s1_otsu"))
    run = train_method(method="s2_weak", model_name=ctx.budget.model, plan=plan, bands={"s2": S2_BANDS},
                       normalizers=normalizer_dicts(None, ("s2",), train),
                       objective=SupervisedObjective(plan=plan, target="weak"), train=train,
                       valid=ctx.hand_split("valid", inputs=("s2",)), out_dir=out, config=ctx.config(),
                       evaluate_on=ctx.evaluate_on(inputs=("s2",)), reference="truth_water",
                       extra_config={"kind": "s2_weak", "role": "CromSS partner sensor"}, model_kw=ctx.model_kw)
    return _summaries(run)


def _s1_weak_fixed_partner(ctx: Context, out: Path, consistency: bool) -> dict:
    from floodnb.bands import S1_BANDS
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.runner import normalizer_dicts, train_method
    from floodnb.experiment.training import CromssSupervisedObjective, WithRatio

    b = ctx.budget
    plan = InputPlan(inputs=("s1",))
    base = ctx.fixed(ctx.pool_ds(weak="s1_otsu", soft=ctx.pool_probs("s2_weak")))
    train = WithRatio(base, epochs=b.epochs, end=b.cromss_end_ratio)
    obj = CromssSupervisedObjective(plan=plan, target="weak", select=True,
                                    consistency=b.consistency_weight if consistency else 0.0)
    name = "s1_weak_cons_fixed_partner" if consistency else "s1_weak_select_fixed_partner"
    run = train_method(method=name, model_name=b.model, plan=plan,
                       bands={"s1": S1_BANDS}, normalizers=normalizer_dicts(None, ("s1",), base), objective=obj,
                       train=train, valid=ctx.hand_split("valid"), out_dir=out, config=ctx.config(),
                       evaluate_on=ctx.evaluate_on(), reference="truth_water",
                       extra_config={"kind": "s1_weak", "cromss": {"select": True, "end_ratio": b.cromss_end_ratio,
                                                                    "consistency": obj.consistency,
                                                                    "partner": "s2_weak"}},
                       model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = "s2_weak (partner)"
    return res


def _teacher(ctx: Context, out: Path, inputs: tuple[str, ...], meta: bool, shuffle: bool = False) -> dict:
    """A teacher row; ``shuffle``: metadata permuted among the chips of each split (train, valid and
    the scored splits, seeded by :attr:`Context.meta_shuffle_seed`) — the metadata ablation.
    """
    from floodnb.distill.teacher import train_teacher

    sh = ctx.meta_shuffle_seed if shuffle else None
    train = ctx.fixed(ctx.hand_split("train", inputs=inputs, train=True, meta=meta, shuffle_meta=sh))
    run = train_teacher(train=train, valid=ctx.hand_split("valid", inputs=inputs, meta=meta, shuffle_meta=sh),
                        out_dir=out, inputs=inputs, model=ctx.budget.model, metadata=meta, config=ctx.config(),
                        evaluate_on=ctx.evaluate_on(inputs=inputs, meta=meta, shuffle_meta=sh),
                        reference="truth_water", model_kw=ctx.model_kw, shuffle_metadata=sh)
    return _summaries(run)


def _s1_weak_cromss_joint(ctx: Context, out: Path) -> dict:
    """CromSS joint training (:mod:`floodnb.distill.cromss_joint`); same steps/batch/crop, two networks per step."""
    from floodnb.distill.cromss_joint import train_cromss_joint
    from floodnb.experiment.training import WithRatio

    b = ctx.budget
    train = WithRatio(ctx.fixed(ctx.pool_ds(inputs=("s1", "s2"), weak="s1_otsu")), epochs=b.epochs,
                      end=b.cromss_end_ratio)
    run = train_cromss_joint(train=train, valid=ctx.hand_split("valid"), out_dir=out, consistency=b.consistency_weight,
                             end_ratio=b.cromss_end_ratio, model=b.model, config=ctx.config(),
                             evaluate_on=ctx.evaluate_on(), reference="truth_water", model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = "s2 (trained jointly)"
    return res


def _student_parts(ctx: Context, teacher: str):
    """Hand training chips and the teacher-labelled pool (the student's sampler mixes them per batch)."""
    return ctx.hand_split("train", train=True), ctx.pool_ds(soft=ctx.pool_probs(teacher))


def _student(ctx: Context, out: Path, *, mode: str, edge: bool = False, teacher: str | None = None) -> dict:
    from floodnb.distill.runner import EdgeOption
    from floodnb.distill.student import train_student

    b = ctx.budget
    teacher = teacher or ctx.distill_teacher()
    hand, pool = _student_parts(ctx, teacher)
    run = train_student(hand=hand, pool=pool, valid=ctx.hand_split("valid"), mode=mode, temperature=b.temperature,
                        threshold=b.threshold, hand_fraction=b.hand_fraction, steps_per_epoch=b.steps_per_epoch,
                        hand_weight=b.hand_weight, distill_weight=b.distill_weight, out_dir=out, model=b.model,
                        edge=EdgeOption(width=b.edge_width, inner=b.edge_weight, outer=b.edge_weight) if edge else None,
                        config=ctx.config(), evaluate_on=ctx.evaluate_on(), reference="truth_water",
                        model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = teacher
    return res


def _student_fixed_partner(ctx: Context, out: Path, *, select: bool) -> dict:
    from floodnb.bands import S1_BANDS
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.inputs import SelectKeys
    from floodnb.distill.mixing import HandPoolData, hand_count
    from floodnb.distill.runner import normalizer_dicts, train_method
    from floodnb.distill.student import STUDENT_KEYS
    from floodnb.experiment.training import CromssDistillObjective, WithRatio

    b = ctx.budget
    teacher = ctx.distill_teacher()
    hand, pool = _student_parts(ctx, teacher)
    train = HandPoolData(*(WithRatio(SelectKeys(d, STUDENT_KEYS), epochs=b.epochs, end=b.cromss_end_ratio)
                           for d in (hand, pool)),
                         hand_per_batch=hand_count(b.hand_fraction, b.batch_size), steps_per_epoch=b.steps_per_epoch)
    plan = InputPlan(inputs=("s1",))
    obj = CromssDistillObjective(plan=plan, temperature=b.temperature, hand_weight=b.hand_weight,
                                 distill_weight=b.distill_weight, select=select, consistency=not select)
    name = "student_soft_select_fixed_partner" if select else "student_soft_confweight_fixed_partner"
    run = train_method(method=name, model_name=b.model, plan=plan,
                       bands={"s1": S1_BANDS}, normalizers=normalizer_dicts(None, ("s1",), hand), objective=obj,
                       train=train, valid=ctx.hand_split("valid"), out_dir=out, config=ctx.config(),
                       evaluate_on=ctx.evaluate_on(), reference="truth_water",
                       extra_config={"mode": "soft", "temperature": b.temperature, "teacher": teacher,
                                     "hand_weight": b.hand_weight, "distill_weight": b.distill_weight,
                                     "hand_per_batch": train.hand_per_batch,
                                     "cromss": {"select": select, "confidence_weight": not select,
                                                "partner": "fixed teacher", "end_ratio": b.cromss_end_ratio}},
                       model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = teacher
    return res


#: DAKTer rows: KD weight of generated pairs and their share of a student's samples (``student_soft_gen``)
GEN_KD_WEIGHT: float = 1.0


def _gen_settings(ctx: Context):
    """The generator budget of the DAKTer rows, from the shared budget: ``budget.steps`` steps of
    ``batch_size`` crops of at most 64 px (about 2 min on 2 cores at the default budget), sampled
    at the training crop size with 10 deterministic DDIM steps, ``samples_per_epoch / 12`` pairs (at least
    4). Raw weights (no EMA), unknown labels as 0: the settings the rows were run with, pinned here so
    that the generator defaults (:class:`~floodnb.generate.settings.GenerateSettings`) can change.
    """
    from floodnb.generate.settings import GenerateSettings

    b = ctx.budget
    return GenerateSettings(crop=min(64, b.crop), epochs=1, steps_per_epoch=b.steps, batch_size=b.batch_size,
                            lr=2e-3, seed=ctx.seed, width=16, depth=2, ema_decay=0.0, fill_unknown=False,
                            sample_steps=10, eta=0.0, n_samples=max(4, b.samples_per_epoch // 12))


#: settings added to the generator after the DAKTer rows ran, pinned by :func:`_gen_settings` to the values
#: the rows used; left out of the generator cache key so existing generator folders stay valid
_GEN_KEY_PINNED: tuple[str, ...] = ("ema_decay", "eta", "fill_unknown")


def _generated(ctx: Context):
    """Generated pairs of this seed (generator trained once per seed and budget, cached under
    ``<out>/generators/``; shared by both DAKTer rows).
    """
    from floodnb.experiment.config import params_hash
    from floodnb.generate.sample import Generated, load_generator
    from floodnb.generate.workflow import train_on

    settings = _gen_settings(ctx)
    kept = {k: v for k, v in settings.to_dict().items() if k not in _GEN_KEY_PINNED}
    key = {"settings": kept, "crop": ctx.budget.crop, "hand": str(getattr(ctx.hand, "path", "")),
           "revision": ROWS["s1_hand_gen"].revision}
    folder = ctx.out_dir / "generators" / f"dakter-{params_hash(key)}"
    npz = folder / f"generated_{ctx.budget.crop}px.npz"
    if not npz.exists():
        train_on(ctx.hand, folder, settings, progress=ctx.progress)
        gen = load_generator(folder / "best.safetensors")
        gen.sample(settings.n_samples, size=ctx.budget.crop, steps=settings.sample_steps, seed=ctx.seed,
                   progress=ctx.progress).save(npz)
    return Generated.load(npz), folder


def _gen_row(ctx: Context, out: Path, *, with_pool: bool) -> dict:
    """``s1_hand_gen`` / ``student_soft_gen``: the student recipe with DAKTer's generated pairs as (part of) the pool.

    Hand chips and the "pool" are mixed per batch exactly as for the other students
    (:class:`~floodnb.distill.mixing.HandPoolData`, ``Budget.hand_fraction`` hand samples in every batch)
    and combined per pixel (:func:`~floodnb.distill.losses.hand_pool_loss`). The pool is the generated
    pairs alone (``s1_hand_gen``: hand CE + KD on generated soft labels) or the teacher-labelled pool and
    the generated pairs in equal shares (``student_soft_gen``); generated samples carry
    ``soft_weight = GEN_KD_WEIGHT``. What was generated is recorded in ``out/generated.json``.
    """
    from torch.utils.data import ConcatDataset, Dataset

    from floodnb.distill.inputs import dataset_len
    from floodnb.distill.student import train_student
    from floodnb.generate.augment import GeneratedPairs
    from floodnb.io_utils import atomic_write_json

    b = ctx.budget
    generated, folder = _generated(ctx)
    gen = GeneratedPairs(generated, soft_weight=GEN_KD_WEIGHT)
    teacher, pool = "", cast("Dataset", gen)
    if with_pool:
        teacher = ctx.distill_teacher()
        real_pool = ctx.pool_ds(soft=ctx.pool_probs(teacher))
        n = dataset_len(real_pool)
        pool = ConcatDataset([ctx.fixed(real_pool, n), ctx.fixed(gen, n)])
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "generated.json", {
        "generator": str(folder), "pairs": len(generated), "kd_weight": GEN_KD_WEIGHT, "teacher": teacher or None,
        "pool": "teacher pool + generated pairs, equal shares" if with_pool else "generated pairs only",
        "paper": "DAKTer, Moon et al., arXiv 2412.08116"})
    run = train_student(hand=ctx.hand_split("train", train=True), pool=pool, valid=ctx.hand_split("valid"),
                        mode="soft", temperature=b.temperature, hand_fraction=b.hand_fraction,
                        steps_per_epoch=b.steps_per_epoch, hand_weight=b.hand_weight, distill_weight=b.distill_weight,
                        out_dir=out, model=b.model, config=ctx.config(), evaluate_on=ctx.evaluate_on(),
                        reference="truth_water", model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = teacher
    return res


RUNNERS: dict[str, Callable[[Context, Path], dict]] = {
    "otsu_chip": lambda ctx, out: _otsu(ctx, out, "chip"),
    "otsu_event": lambda ctx, out: _otsu(ctx, out, "event"),
    "s1_weak": lambda ctx, out: _baseline(ctx, out, "s1_weak"),
    "s1_hand": lambda ctx, out: _baseline(ctx, out, "s1_hand"),
    "s2_weak": _s2_weak,
    "s1_weak_select_fixed_partner": lambda ctx, out: _s1_weak_fixed_partner(ctx, out, False),
    "s1_weak_cons_fixed_partner": lambda ctx, out: _s1_weak_fixed_partner(ctx, out, True),
    "s1_weak_cromss_joint": _s1_weak_cromss_joint,
    "teacher_s2": lambda ctx, out: _teacher(ctx, out, ("s2",), False),
    "teacher_s2s1": lambda ctx, out: _teacher(ctx, out, ("s2", "s1"), False),
    "teacher_s2_meta": lambda ctx, out: _teacher(ctx, out, ("s2",), True),
    "teacher_s2_meta_shuffled": lambda ctx, out: _teacher(ctx, out, ("s2",), True, shuffle=True),
    "student_soft": lambda ctx, out: _student(ctx, out, mode="soft"),
    "student_hard": lambda ctx, out: _student(ctx, out, mode="hard"),
    "student_soft_edge": lambda ctx, out: _student(ctx, out, mode="soft", edge=True),
    "student_meta": lambda ctx, out: _student(ctx, out, mode="soft", teacher="teacher_s2_meta"),
    "student_meta_shuffled": lambda ctx, out: _student(ctx, out, mode="soft", teacher="teacher_s2_meta_shuffled"),
    "student_soft_select_fixed_partner": lambda ctx, out: _student_fixed_partner(ctx, out, select=True),
    "student_soft_confweight_fixed_partner": lambda ctx, out: _student_fixed_partner(ctx, out, select=False),
    "s1_hand_gen": lambda ctx, out: _gen_row(ctx, out, with_pool=False),
    "student_soft_gen": lambda ctx, out: _gen_row(ctx, out, with_pool=True),
}
assert set(RUNNERS) == set(ROWS)


def row_dir(out: Path, row: str, seed: int, h: str) -> Path:
    """The folder of one row and seed: ``out/rows/<row>-s<seed>-<hash>``."""
    return Path(out) / "rows" / f"{row}-s{seed}-{h}"


def resolve_rows(rows) -> list[str]:
    """Requested rows plus their dependencies, in execution order; unknown names raise ``ValueError``."""
    if rows is None:
        return list(ROWS)
    if isinstance(rows, str):
        rows = [r.strip() for r in rows.split(",") if r.strip()]
    rows = list(rows)
    if not rows:
        raise ValueError(f"rows is empty; expected names from {list(ROWS)}")
    unknown = [r for r in rows if r not in ROWS]
    if unknown:
        raise ValueError(f"unknown experiment rows {unknown}; expected names from {list(ROWS)}")
    need: set[str] = set()

    def add(r: str) -> None:
        if r not in need:
            need.add(r)
            for d in ROWS[r].deps:
                add(d)

    for r in rows:
        add(r)
    return [r for r in ROWS if r in need]
