"""The rows of the evidence experiment: what each trains or thresholds, and how it is scored.

Every row returns ``{"test": summary, "bolivia": summary}`` scored against the simulator's
true water mask (reference ``truth_water``; water IoU from a global confusion matrix,
:mod:`floodnb.metrics`) plus its validation water IoU against *hand labels* (used to pick the
distillation teacher and the best student, never the test split).

Methods: Otsu (Bonafilia et al. 2020), S1 on weak labels (the Sen1Floods11 baseline that Garg
et al. 2023 beat), S1 on hand labels, S2 / S2+S1 / S2+metadata teachers and soft / hard /
edge-weighted students (Garg et al. 2023, arXiv 2302.08180; metadata only in the teacher:
Bernhard et al., ECAI 2024), CromSS pixel selection and consistency (Liu et al., TGRS 2025),
generated (radar, soft label) pairs of a diffusion model trained per seed on the hand training
split (DAKTer, Moon et al., arXiv 2412.08116).
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
    Row("s2_weak", "cromss", "S2 U-Net on the same weak labels (CromSS partner sensor of s1_weak_cromss*)"),
    Row("s1_weak_cromss", "cromss", "s1_weak + CromSS class-balanced pixel selection (ratio 1 -> 0.5)",
        ("s2_weak",)),
    Row("s1_weak_cromss_cons", "cromss", "s1_weak + CromSS selection + cross-sensor consistency term",
        ("s2_weak",)),
    Row("teacher_s2", "teacher", "S2 teacher (13 bands) on hand labels"),
    Row("teacher_s2s1", "teacher", "S2+S1 teacher on hand labels"),
    Row("teacher_s2_meta", "teacher", "S2 teacher + FiLM metadata (day of year, position)"),
    Row("student_soft", "student", "S1 student: hand CE + soft KL on the teacher-labelled pool",
        ("teacher_s2", "teacher_s2s1")),
    Row("student_hard", "student", "S1 student: hand CE + CE on confident teacher labels",
        ("teacher_s2", "teacher_s2s1")),
    Row("student_soft_edge", "student", "student_soft + edge weighting", ("teacher_s2", "teacher_s2s1")),
    Row("student_meta", "student", "student_soft distilled from the metadata teacher", ("teacher_s2_meta",)),
    Row("student_soft_cromss", "cromss", "student_soft + CromSS selection of pool pixels",
        ("teacher_s2", "teacher_s2s1")),
    Row("student_soft_cons", "cromss", "student_soft + CromSS consistency weighting of pool pixels",
        ("teacher_s2", "teacher_s2s1")),
    Row("s1_hand_gen", "generative", "s1_hand + DAKTer generated pairs: hand CE + soft KD on generated pairs only",
        revision=1),
    Row("student_soft_gen", "generative", "student_soft + DAKTer generated pairs (KD on pool and generated pairs)",
        ("teacher_s2", "teacher_s2s1"), revision=1),
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
            soft=None):
        from floodnb.data.torch import ChipDataset

        return ChipDataset(source, inputs=tuple(inputs), target=target, weak=weak, with_meta=meta, soft=soft,
                           split=split, crop=self.budget.crop if train else None, augment=train, seed=self.seed)

    def hand_split(self, split: str, *, inputs=("s1",), train: bool = False, meta: bool = False):
        from floodnb.distill.datasets import split_sizes

        sizes = split_sizes(self.hand)
        if split not in sizes or sizes[split] == 0:
            raise ValueError(f"split {split!r} has no hand-labelled chips (chips per split: {sizes}); the experiment "
                             f"needs train, valid, test and bolivia chips")
        return self._ds(self.hand, split, inputs=inputs, train=train, meta=meta)

    def evaluate_on(self, *, inputs=("s1",), meta: bool = False) -> dict:
        return {s: self.hand_split(s, inputs=inputs, meta=meta) for s in EVAL_SPLITS}

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
                                    mask_clouds=self.budget.pool_cloud_mask and row.startswith("teacher"))


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


def _s1_weak_cromss(ctx: Context, out: Path, consistency: bool) -> dict:
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
    run = train_method(method="s1_weak_cromss" + ("_cons" if consistency else ""), model_name=b.model, plan=plan,
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


def _teacher(ctx: Context, out: Path, inputs: tuple[str, ...], meta: bool) -> dict:
    from floodnb.distill.teacher import train_teacher

    train = ctx.fixed(ctx.hand_split("train", inputs=inputs, train=True, meta=meta))
    run = train_teacher(train=train, valid=ctx.hand_split("valid", inputs=inputs, meta=meta), out_dir=out,
                        inputs=inputs, model=ctx.budget.model, metadata=meta, config=ctx.config(),
                        evaluate_on=ctx.evaluate_on(inputs=inputs, meta=meta), reference="truth_water",
                        model_kw=ctx.model_kw)
    return _summaries(run)


def _student_parts(ctx: Context, teacher: str):
    n = ctx.budget.samples_per_epoch
    n_hand = max(1, round(ctx.budget.hand_fraction * n))
    hand = ctx.fixed(ctx.hand_split("train", train=True), n_hand)
    pool = ctx.fixed(ctx.pool_ds(soft=ctx.pool_probs(teacher)), n - n_hand)
    return hand, pool


def _student(ctx: Context, out: Path, *, mode: str, edge: bool = False, teacher: str | None = None) -> dict:
    from floodnb.distill.runner import EdgeOption
    from floodnb.distill.student import train_student

    b = ctx.budget
    teacher = teacher or ctx.distill_teacher()
    hand, pool = _student_parts(ctx, teacher)
    run = train_student(hand=hand, pool=pool, valid=ctx.hand_split("valid"), mode=mode, temperature=b.temperature,
                        threshold=b.threshold, hand_repeat=1, out_dir=out, model=b.model,
                        edge=EdgeOption(width=b.edge_width, inner=b.edge_weight, outer=b.edge_weight) if edge else None,
                        config=ctx.config(), evaluate_on=ctx.evaluate_on(), reference="truth_water",
                        model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = teacher
    return res


def _student_cromss(ctx: Context, out: Path, *, select: bool) -> dict:
    from torch.utils.data import ConcatDataset

    from floodnb.bands import S1_BANDS
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.inputs import SelectKeys
    from floodnb.distill.runner import normalizer_dicts, train_method
    from floodnb.distill.student import STUDENT_KEYS
    from floodnb.experiment.training import CromssDistillObjective, WithRatio

    b = ctx.budget
    teacher = ctx.distill_teacher()
    hand, pool = _student_parts(ctx, teacher)
    train = WithRatio(ConcatDataset([SelectKeys(hand, STUDENT_KEYS), SelectKeys(pool, STUDENT_KEYS)]),
                      epochs=b.epochs, end=b.cromss_end_ratio)
    plan = InputPlan(inputs=("s1",))
    obj = CromssDistillObjective(plan=plan, temperature=b.temperature, select=select, consistency=not select)
    run = train_method(method="student_soft_cromss" if select else "student_soft_cons", model_name=b.model, plan=plan,
                       bands={"s1": S1_BANDS}, normalizers=normalizer_dicts(None, ("s1",), hand), objective=obj,
                       train=train, valid=ctx.hand_split("valid"), out_dir=out, config=ctx.config(),
                       evaluate_on=ctx.evaluate_on(), reference="truth_water",
                       extra_config={"mode": "soft", "temperature": b.temperature, "teacher": teacher,
                                     "cromss": {"select": select, "consistency": not select,
                                                "end_ratio": b.cromss_end_ratio}},
                       model_kw=ctx.model_kw)
    res = _summaries(run)
    res["teacher"] = teacher
    return res


#: DAKTer rows: KD weight of generated pairs and their share of a student's samples (``student_soft_gen``)
GEN_KD_WEIGHT: float = 1.0
GEN_FRACTION: float = 0.25


def _gen_settings(ctx: Context):
    """The generator budget of the DAKTer rows, from the shared budget: ``budget.steps`` steps of
    ``batch_size`` crops of at most 64 px (about 2 min on 2 cores at the default budget), sampled
    at the training crop size with 10 DDIM steps, ``samples_per_epoch / 12`` pairs (at least 4).
    """
    from floodnb.generate.settings import GenerateSettings

    b = ctx.budget
    return GenerateSettings(crop=min(64, b.crop), epochs=1, steps_per_epoch=b.steps, batch_size=b.batch_size,
                            lr=2e-3, seed=ctx.seed, width=16, depth=2, sample_steps=10,
                            n_samples=max(4, b.samples_per_epoch // 12))


def _generated(ctx: Context):
    """Generated pairs of this seed (generator trained once per seed and budget, cached under
    ``<out>/generators/``; shared by both DAKTer rows).
    """
    from floodnb.experiment.config import params_hash
    from floodnb.generate.sample import Generated, load_generator
    from floodnb.generate.workflow import train_on

    settings = _gen_settings(ctx)
    key = {"settings": settings.to_dict(), "crop": ctx.budget.crop, "hand": str(getattr(ctx.hand, "path", "")),
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
    from torch.utils.data import ConcatDataset

    from floodnb.bands import S1_BANDS
    from floodnb.distill.evaluate import InputPlan
    from floodnb.distill.inputs import SelectKeys
    from floodnb.distill.runner import DistillObjective, normalizer_dicts, train_method
    from floodnb.distill.student import STUDENT_KEYS
    from floodnb.generate.augment import GeneratedPairs, WithPixelWeight

    b = ctx.budget
    generated, folder = _generated(ctx)
    n = b.samples_per_epoch
    n_hand = max(1, round(b.hand_fraction * n))
    n_rest = max(1, n - n_hand)
    # with the pool: GEN_FRACTION of the samples, leaving the pool at least one (tiny budgets keep one of each)
    n_gen = max(1, min(round(GEN_FRACTION * n), n_rest - 1)) if with_pool else n_rest
    hand = ctx.fixed(ctx.hand_split("train", train=True), n_hand)
    parts = [SelectKeys(hand, STUDENT_KEYS),
             SelectKeys(WithPixelWeight(ctx.fixed(GeneratedPairs(generated, soft_weight=GEN_KD_WEIGHT), n_gen),
                                        GEN_KD_WEIGHT), STUDENT_KEYS)]
    teacher = ""
    if with_pool:
        teacher = ctx.distill_teacher()
        pool = ctx.fixed(ctx.pool_ds(soft=ctx.pool_probs(teacher)), max(1, n_rest - n_gen))
        parts.append(SelectKeys(WithPixelWeight(pool, 1.0), STUDENT_KEYS))
    plan = InputPlan(inputs=("s1",))
    run = train_method(method="student_soft_gen" if with_pool else "s1_hand_gen", model_name=b.model, plan=plan,
                       bands={"s1": S1_BANDS}, normalizers=normalizer_dicts(None, ("s1",), hand),
                       objective=DistillObjective(plan=plan, mode="soft", temperature=b.temperature, use_weight=True),
                       train=ConcatDataset(parts), valid=ctx.hand_split("valid"), out_dir=out, config=ctx.config(),
                       evaluate_on=ctx.evaluate_on(), reference="truth_water",
                       extra_config={"mode": "soft", "temperature": b.temperature, "teacher": teacher or None,
                                     "generated": {"generator": str(folder), "pairs": len(generated),
                                                   "samples_per_epoch": n_gen, "kd_weight": GEN_KD_WEIGHT,
                                                   "paper": "DAKTer, Moon et al., arXiv 2412.08116"}},
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
    "s1_weak_cromss": lambda ctx, out: _s1_weak_cromss(ctx, out, False),
    "s1_weak_cromss_cons": lambda ctx, out: _s1_weak_cromss(ctx, out, True),
    "teacher_s2": lambda ctx, out: _teacher(ctx, out, ("s2",), False),
    "teacher_s2s1": lambda ctx, out: _teacher(ctx, out, ("s2", "s1"), False),
    "teacher_s2_meta": lambda ctx, out: _teacher(ctx, out, ("s2",), True),
    "student_soft": lambda ctx, out: _student(ctx, out, mode="soft"),
    "student_hard": lambda ctx, out: _student(ctx, out, mode="hard"),
    "student_soft_edge": lambda ctx, out: _student(ctx, out, mode="soft", edge=True),
    "student_meta": lambda ctx, out: _student(ctx, out, mode="soft", teacher="teacher_s2_meta"),
    "student_soft_cromss": lambda ctx, out: _student_cromss(ctx, out, select=True),
    "student_soft_cons": lambda ctx, out: _student_cromss(ctx, out, select=False),
    "s1_hand_gen": lambda ctx, out: _gen_row(ctx, out, with_pool=False),
    "student_soft_gen": lambda ctx, out: _gen_row(ctx, out, with_pool=True),
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
