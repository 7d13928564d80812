"""The rows of the evidence experiment: what each trains or thresholds, and how it is scored.

Every row returns ``{"test": summary, "bolivia": summary}`` scored against the simulator's
true water mask (reference ``truth_water``; water IoU from a global confusion matrix,
:mod:`floodnb.metrics`) plus its validation water IoU against *hand labels* (used to pick the
distillation teacher and the best student, never the test split).

Methods: Otsu (Bonafilia et al. 2020), S1 on weak labels (the Sen1Floods11 baseline that Garg
et al. 2023 beat), S1 on hand labels, S2 / S2+S1 / S2+metadata teachers and soft / hard /
edge-weighted students (Garg et al. 2023, arXiv 2302.08180; metadata only in the teacher:
Bernhard et al., ECAI 2024), CromSS joint S1+S2 training with selection and consistency (Liu et al., TGRS 2025) and its
fixed-partner simplifications (named ``*_fixed_partner``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from floodnb.experiment.config import Budget

#: Splits scored for every row: the test split and the held-out event (Sen1Floods11's "bolivia").
EVAL_SPLITS: tuple[str, ...] = ("test", "bolivia")


@dataclass(frozen=True)
class Row:
    """One row of the table: a name, a group, a description and the rows it needs first."""

    name: str
    group: str
    description: str
    deps: tuple[str, ...] = ()
    #: bumped when the row's method changes, so results of the old method are not reused
    revision: int = 0


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
        "same distribution, link to the chip broken)"),
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
)}
TRAINED: frozenset[str] = frozenset(n for n in ROWS if not n.startswith("otsu"))


@dataclass
class Context:
    """What rows share: data (catalog + packed stores), budget, seed, finished rows' results."""

    out_dir: Path
    catalog: pd.DataFrame
    hand: object  # ChipStore of the hand-labelled chips
    pool: object  # ChipStore of the weak pool chips
    budget: Budget
    seed: int
    progress: bool
    results: dict[str, dict] = field(default_factory=dict)  # row -> result dict (metrics, checkpoint, ...)
    row_dirs: dict[str, Path] = field(default_factory=dict)

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
        return {s: self.hand_split(s, inputs=inputs, meta=meta, shuffle_meta=shuffle_meta) for s in EVAL_SPLITS}

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
        """The teacher (teacher_s2 or teacher_s2s1) with the higher validation water IoU on hand labels."""
        cands = [t for t in ("teacher_s2", "teacher_s2s1") if t in self.results]
        if not cands:
            raise ValueError("no distillation teacher finished (teacher_s2, teacher_s2s1)")
        return max(cands, key=lambda t: (self.results[t]["valid_water_iou"], t == "teacher_s2"))

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
    return {"splits": {s: run.metrics["splits"][s] for s in EVAL_SPLITS},
            "valid_water_iou": float(run.fit.best_metrics["water_iou"]) if "water_iou" in run.fit.best_metrics
            else float("nan"),
            "checkpoint": str(run.out_dir / "best.safetensors"), "teacher": ""}


# ---------------------------------------------------------------- row implementations
def _otsu(ctx: Context, out: Path, mode: str) -> dict:
    """Otsu rows; ``otsu_event`` writes ``event_thresholds.csv`` (split, event, threshold, source) into ``out``."""
    from floodnb.distill.baselines import otsu_baseline
    from floodnb.io_utils import atomic_path

    cat = ctx.catalog
    splits, rows = {}, []
    for s in EVAL_SPLITS:
        chips = cat[(cat["split"] == s) & cat["s1_path"].notna() & cat["truth_water_path"].notna()]
        if len(chips) == 0:
            raise ValueError(f"split {s!r} has no chips with S1 and truth in the catalog")
        splits[s], _ = otsu_baseline(chips, mode=mode, reference="truth_water", split=s)
        rows += _threshold_rows(s, splits[s])
    val = cat[(cat["split"] == "valid") & cat["s1_path"].notna() & cat["label_path"].notna()]
    vm, _ = otsu_baseline(val, mode=mode, reference="label", split="valid")
    rows += _threshold_rows("valid", vm)
    if mode == "event":
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(out / "event_thresholds.csv") as tmp:
            pd.DataFrame(rows, columns=["split", "event", "vh_threshold_db", "source"]).to_csv(tmp, index=False)
    return {"splits": splits, "valid_water_iou": float(vm["water_iou"]), "checkpoint": "", "teacher": ""}


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
}
assert set(RUNNERS) == set(ROWS)


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
