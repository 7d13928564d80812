"""``run_experiment``: every row of the evidence table, per training seed, under one budget, resumable.

Seeds: each trained row is trained and scored once per training seed ``seed, seed+1, ...,
seed+seeds-1`` (model initialisation, crop/flip sampling and batch order). The simulated dataset
is the **same for every seed** (``SimSpec.seed``): the seeds measure training variance on a fixed
dataset, and the paired bootstrap over test chips (:mod:`floodnb.experiment.stats`) measures the
variance of the finite test sample; simulating a dataset per seed would confound the two, make
every paired comparison unpaired in its chips, and cost a simulation per seed. Threshold rows
(no training, deterministic) run once. Rows run one after the other and, within a row, seed after
seed, so every seed of both teachers is finished before any student: the students' teacher is
picked by mean validation water IoU over the seeds and the same kind serves every seed.

Out folder::

    <out>/data/                        simulated dataset (when no data root is given; reused when its
                                       manifest matches the requested SimSpec)
    <out>/stores/{hand,pool}/          packed chip stores (floodnb.data.store), reused
    <out>/rows/<row>-s<seed>-<hash>/   one run per row and seed (engine out folder, resumable),
                                       chip_counts.csv (per-chip confusion counts on the common mask),
                                       pool_probs.npy for teachers / partner models
    <out>/results.csv                  one line per row and seed: status, metrics, wall time, settings hash
    <out>/summary.csv                  one line per row: per-seed values, mean, sample std, n
    <out>/comparisons.csv              each student vs s1_weak / s1_hand: per-seed differences, bootstrap
    <out>/results.md, results.png, transfer*.csv/.md/.png

A rerun reuses every row and seed whose results.csv line says ``done`` with the same settings
hash, whose counts are on disk and (for students) whose teacher is still the one validation picks
(and says so); an interrupted training row resumes from its last checkpoint. results.csv is
rewritten atomically after every row and seed.
"""

from __future__ import annotations

import math
import os
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd

from floodnb.experiment.config import (
    DEFAULT_BUDGET,
    DEFAULT_SIM,
    Budget,
    SimSpec,
    estimate_pool_seconds,
    estimate_row_seconds,
    params_hash,
)
from floodnb.experiment.rows import (
    EVAL_SPLITS,
    ROWS,
    RUNNERS,
    SCORED_SPLITS,
    TEACHER_CHOICES,
    TRAINED,
    Context,
    resolve_rows,
    row_dir,
    score_row,
)
from floodnb.io_utils import atomic_path
from floodnb.runs.simulation import SimRequest, ensure_simulation

METRIC_KEYS: tuple[str, ...] = ("water_iou", "miou", "water_precision", "water_recall", "chips", "pixels",
                                 "no_input_pixels")
RESULT_COLUMNS: tuple[str, ...] = (
    "row", "seed", "group", "description", "status", "action",
    *(f"{s}_{k}" for s in SCORED_SPLITS for k in METRIC_KEYS),
    "teacher", "seconds", "cpu_s", "budget", "hash", "checkpoint", "error",
)
STORE_ROLES = {"hand": ("s1", "s2", "label", "s1_otsu", "truth_water"), "pool": ("s1", "s2", "s1_otsu", "truth_water")}


def _log(msg: str) -> None:
    print(f"[floodnb experiment] {msg}", file=sys.stderr, flush=True)


def load_average() -> str:
    """``"1-min/5-min/15-min"`` load average of the machine (shared machines: timings are noisy)."""
    try:
        a = os.getloadavg()
    except OSError:
        return "n/a"
    return f"{a[0]:.2f}/{a[1]:.2f}/{a[2]:.2f}"


# ---------------------------------------------------------------- data
def simulated_root(out_dir: Path, sim: SimSpec, *, progress: bool) -> Path:
    """``out_dir/data`` holding the simulated dataset of ``sim``: reused when its manifest matches ``sim``,
    refused (``ValueError``) when it holds another simulation, simulated now otherwise
    (:func:`floodnb.runs.simulation.ensure_simulation`).
    """
    want = SimRequest(n_hand=sim.n_hand, n_weak=sim.n_weak, size=sim.size, seed=sim.seed)
    return ensure_simulation(out_dir / "data", want, workers=2, progress=progress, hint="use another --out-dir",
                             log=lambda msg: _log(f"data: {msg}")).root


def _stores(out_dir: Path, catalog: pd.DataFrame, *, progress: bool):
    from floodnb.data.store import ChipStore, pack

    stores = {}
    for name, sel in (("hand", catalog["group"] == "hand"), ("pool", catalog["split"] == "weak")):
        part = catalog[sel].reset_index(drop=True)
        if len(part) == 0:
            raise ValueError(f"the data has no {name} chips (chips per split: "
                             f"{catalog['split'].value_counts().to_dict()})")
        path = out_dir / "stores" / name
        if (path / "store.json").exists():
            st = ChipStore.open(path)
            if sorted(st.chip_ids) == sorted(part["chip_id"]):
                stores[name] = st
                continue
            raise ValueError(f"{path} holds a store of other chips; use another --out-dir (nothing was changed)")
        roles = [r for r in STORE_ROLES[name] if f"{r}_path" in part.columns and part[f"{r}_path"].notna().any()]
        stores[name] = pack(part, path, roles=roles, progress=progress)
    return stores["hand"], stores["pool"]


def _check_data(catalog: pd.DataFrame, root) -> None:
    if "truth_water_path" not in catalog.columns or catalog["truth_water_path"].isna().all():
        raise ValueError(f"data root {root} has no true water masks (SimTruthWater); the experiment scores against "
                         "the simulator's truth — give a simulated data root or none")
    sizes = catalog["split"].value_counts().to_dict()
    missing = [s for s in ("train", "valid", *EVAL_SPLITS, "weak") if sizes.get(s, 0) == 0]
    if missing:
        raise ValueError(f"data root {root}: splits {missing} have no chips (chips per split: {sizes}); the "
                         "experiment needs train/valid/test/bolivia hand chips and a weak pool")


# ---------------------------------------------------------------- results.csv
Key = tuple[str, int]


def _read_results(path: Path) -> pd.DataFrame:
    if not path.exists():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    try:
        df = pd.read_csv(path, dtype={"row": str, "status": str, "hash": str, "teacher": str, "checkpoint": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, ValueError) as exc:
        raise ValueError(f"{path} is not a results table ({exc}); move it away or use another --out-dir") from exc
    if not {"row", "hash", "seed"} <= set(df.columns):
        raise ValueError(f"{path} lacks the 'row'/'seed'/'hash' columns of a results table (an experiment folder of "
                         "an older floodnb without seeds?); move it away or use another --out-dir")
    return df


def _write_results(path: Path, records: dict[Key, dict]) -> pd.DataFrame:
    names = list(ROWS) + sorted({r for r, _ in records if r not in ROWS})
    order = sorted(records, key=lambda k: (names.index(k[0]), k[1]))
    df = pd.DataFrame([records[k] for k in order], columns=list(RESULT_COLUMNS))
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False)
    return df


def _record(row: str, seed: int, res: dict | None, counts: pd.DataFrame | None, *, status: str, action: str,
            seconds: float, budget: Budget, h: str, error: str = "", cpu_s: float | None = None) -> dict:
    from floodnb.experiment.scoring import summary

    rec: dict[str, Any] = {c: None for c in RESULT_COLUMNS}
    rec.update(row=row, seed=seed, group=ROWS[row].group, description=ROWS[row].description, status=status,
               action=action, seconds=round(seconds, 1), cpu_s=None if cpu_s is None else round(cpu_s, 1),
               budget=budget.describe() if row in TRAINED else "no training", hash=h, error=error)
    if res is not None and counts is not None and len(counts):
        for s in SCORED_SPLITS:
            m = summary(counts[counts["split"] == s])
            for k in METRIC_KEYS:
                rec[f"{s}_{k}"] = m[k]
    if res is not None:
        rec.update(teacher=res["teacher"], checkpoint=res["checkpoint"])
    return rec


def _as_result(rec) -> dict:
    """A results.csv line back into the row-result form the later rows use."""
    def s(v) -> str:
        return "" if v is None or (isinstance(v, float) and math.isnan(v)) or pd.isna(v) else str(v)

    v = rec["valid_water_iou"]
    return {"valid_water_iou": float("nan") if v is None or pd.isna(v) else float(v),
            "checkpoint": s(rec["checkpoint"]), "teacher": s(rec["teacher"])}


def seed_list(seed: int, seeds: int) -> list[int]:
    """Training seeds ``seed .. seed + seeds - 1``; ``ValueError`` unless ``seeds >= 1``."""
    if int(seeds) < 1:
        raise ValueError(f"seeds must be >= 1 (the number of training seeds per row), got {seeds}")
    return [int(seed) + k for k in range(int(seeds))]


def row_seeds(row: str, seeds: list[int]) -> list[int]:
    """The seeds a row runs for: every seed for a trained row, the first only for a threshold row."""
    return list(seeds) if row in TRAINED else list(seeds[:1])


# ---------------------------------------------------------------- the experiment
def run_experiment(out_dir: str | Path, *, data_root: str | Path | None = None, sim: SimSpec = DEFAULT_SIM,
                   budget: Budget = DEFAULT_BUDGET, seed: int = 0, seeds: int = 3, rows=None,
                   real_root: str | Path | None = None, readme: str | Path | None = None, progress: bool = True,
                   command: str = "floodnb.experiment.run_experiment(...)", threads: int = 0,
                   n_boot: int = 2000) -> pd.DataFrame:
    """Run (or reuse) the experiment's rows for every seed and write the outputs; returns results.csv's table.

    ``data_root``: a simulated Sen1Floods11-layout root with truth layers (default: simulate
    ``sim`` into ``out_dir/data``). ``budget``: shared by every trained row. ``seed``/``seeds``:
    the training seeds are ``seed .. seed+seeds-1`` (module docstring: the data stay the same).
    ``rows``: names (or a comma-separated string) from :data:`floodnb.experiment.rows.ROWS`;
    their dependencies run too (default: all). ``real_root``: real Sen1Floods11 chips for the
    sim-to-real report of every seed's S1 rows (:func:`floodnb.experiment.real.transfer_report`).
    ``readme``: a README whose ``<!-- experiment:start/end -->`` block gets results.md.
    ``command``: how it was started (shown in results.md). ``threads``: torch intra-op threads
    while the experiment runs (default 0: ``$FLOODNB_THREADS``, else the CPUs available,
    :func:`floodnb.runtime.resolve_threads`; on a machine shared with other heavy jobs 1 is more
    robust: two spinning OpenMP threads per process slowed steps ~5x under load); the previous
    setting is restored afterwards. ``n_boot``: bootstrap draws of the paired comparisons. Rows that
    fail are recorded with their error (dependants of the same seed fail too); the others still run.
    """
    from floodnb.runtime import threads_set

    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    seeds_ = seed_list(seed, seeds)
    with threads_set(threads) as n:
        return _run(out_dir, data_root=data_root, sim=sim, budget=budget, seeds=seeds_, rows=rows,
                    real_root=real_root, readme=readme, progress=progress, command=command, threads=n,
                    n_boot=n_boot)


def _run(out_dir, *, data_root, sim: SimSpec, budget: Budget, seeds: list[int], rows, real_root, readme,
         progress: bool, command: str, threads: int, n_boot: int) -> pd.DataFrame:
    from floodnb.data.catalog import build_catalog

    order = resolve_rows(rows)
    _check_arguments(readme=readme, real_root=real_root)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results_path = out / "results.csv"
    prev = _read_results(results_path)  # an unreadable or pre-seed table is refused before any work
    t_start, load_start = time.perf_counter(), load_average()
    root = Path(data_root) if data_root is not None else simulated_root(out, sim, progress=progress)
    catalog = build_catalog(root)
    _check_data(catalog, root)
    hand, pool = _stores(out, catalog, progress=progress)
    base = Context(out_dir=out, catalog=catalog, hand=hand, pool=pool, budget=budget, seed=seeds[0],
                   progress=progress)
    ctxs = {s: base.for_seed(s) for s in seeds}
    data_key = {"data_root": str(root.resolve())} if data_root is not None else {"sim": sim.to_dict()}
    hashes = {s: _row_hashes(ctxs[s], data_key) for s in seeds}

    records: dict[Key, dict] = {(str(r["row"]), int(r["seed"])): {**r.to_dict(), "action": "earlier run"}
                                for _, r in prev.iterrows() if str(r["row"]) in ROWS}
    _project(order, seeds, hashes, records, base)
    failed: set[Key] = set()
    for row in order:
        for s in row_seeds(row, seeds):
            _run_row(ctxs[s], row, hashes[s][row], records=records, failed=failed, results_path=results_path)
    table = _write_results(results_path, records)
    _outputs(out, table, real_root=real_root, readme=readme, progress=progress, n_boot=n_boot,
             header=dict(command=command, sim=sim, data_root=data_root, root=root, catalog=catalog, budget=budget,
                         seeds=seeds, threads=threads, t_start=t_start, load_start=load_start))
    return table


def _outputs(out: Path, table: pd.DataFrame, *, real_root, readme, progress: bool, n_boot: int, header: dict) -> None:
    """summary.csv, comparisons.csv, transfer report, results.md/.png and the README block."""
    from floodnb.experiment.report import replace_readme_block, write_figure, write_markdown
    from floodnb.experiment.summary import comparisons, load_counts, seed_summary

    cur = table[table["action"] != "earlier run"]
    counts = load_counts(out, cur)
    summ = seed_summary(cur)
    comp = comparisons(cur, counts, n_boot=n_boot)
    for name, df in (("summary.csv", summ), ("comparisons.csv", comp)):
        with atomic_path(out / name) as tmp:
            df.to_csv(tmp, index=False)
    real = _transfer(out, cur, real_root, progress=progress) if real_root is not None else None
    wall = time.perf_counter() - header.pop("t_start")
    head = _header(**header, wall=wall, table=cur, counts=counts)
    md = write_markdown(out / "results.md", summ, comp, header=head, real_md=None if real is None else real)
    b = header["budget"]
    write_figure(out / "results.png", cur, title=f"water IoU vs truth, mean ± std over {len(header['seeds'])} "
                                                 f"seeds — {b.describe()}")
    if readme is not None:
        replace_readme_block(readme, md)
        _log(f"README block replaced in {readme}")
    _log(f"results: {out / 'results.md'} ({wall:.1f} s, load average {load_average()})")


def _check_arguments(*, readme, real_root) -> None:
    """Refuse a README without markers or a missing real root before hours of work."""
    from floodnb.experiment.report import END_MARKER, START_MARKER

    if readme is not None:
        if not Path(readme).is_file():
            raise FileNotFoundError(f"--readme {readme}: no such file")
        text = Path(readme).read_text(encoding="utf-8")
        if text.count(START_MARKER) != 1 or text.count(END_MARKER) != 1:
            raise ValueError(f"{readme}: expected exactly one '{START_MARKER}' and one '{END_MARKER}' marker")
    if real_root is not None and not Path(real_root).is_dir():
        raise FileNotFoundError(f"real_root {real_root} is not a folder")


def _row_hashes(ctx: Context, data_key: dict) -> dict[str, str]:
    """Every row's settings hash for ``ctx.seed`` (dependencies' hashes included); sets ``ctx.row_dirs``."""
    hashes: dict[str, str] = {}
    for r in ROWS:
        hashes[r] = params_hash({"row": r, **data_key, "budget": ctx.budget.to_dict() if r in TRAINED else None,
                                 "seed": ctx.seed if r in TRAINED else None,
                                 "deps": [hashes[d] for d in ROWS[r].deps], "revision": ROWS[r].revision,
                                 "scoring": "common-mask-1"})
        ctx.row_dirs[r] = row_dir(ctx.out_dir, r, ctx.seed, hashes[r])
    return hashes


def _reusable(ctx: Context, row: str, h: str, old: dict | None) -> bool:
    if old is None or old["status"] != "done" or old["hash"] != h:
        return False
    if row in TRAINED and not Path(str(old["checkpoint"])).exists():
        return False
    if ROWS[row].scored and not (ctx.row_dirs[row] / "chip_counts.csv").is_file():
        return False
    if ROWS[row].chooses_teacher and str(old["teacher"]) != ctx.distill_teacher():
        _log(f"{row} seed {ctx.seed}: rerun — validation now picks {ctx.distill_teacher()}, it distilled "
             f"from {old['teacher']}")
        return False
    return True


def _project(order: list[str], seeds: list[int], hashes: dict, records: dict, ctx: Context) -> None:
    """Print how many row x seed runs are reused / to run and the projected time before any work.

    Pool labelling: every row another row of ``order`` depends on labels the pool once per seed
    (of teacher_s2 / teacher_s2s1 only the one validation picks), when that row is to run.
    """
    todo = [(r, s) for r in order for s in row_seeds(r, seeds)
            if not ((r, s) in records and records[(r, s)]["status"] == "done" and records[(r, s)]["hash"] ==
                    hashes[s][r])]
    n_trained = sum(r in TRAINED for r, _ in todo)
    hand: Any = ctx.hand  # a ChipStore
    n_split = {s: int((hand.index["split"] == s).sum()) for s in SCORED_SPLITS}
    est = estimate_row_seconds(ctx.budget, valid_chips=n_split["valid"], scored_chips=sum(n_split.values()),
                               size=int(hand.height))
    labellers = {d for r in order for d in ROWS[r].deps}
    n_label = sum(d in labellers for d, _ in todo) - sum(d == TEACHER_CHOICES[1] for d, _ in todo
                                                         if set(TEACHER_CHOICES) <= labellers)
    pool: Any = ctx.pool  # a ChipStore
    per_label = estimate_pool_seconds(len(pool), int(pool.height))
    pool_s = max(n_label, 0) * per_label
    _log(f"{len(todo)} row x seed runs to do ({n_trained} trained) for seeds {seeds}, "
         f"{sum(len(row_seeds(r, seeds)) for r in order) - len(todo)} reusable; projected on an idle 2-core "
         f"machine: {(n_trained * est + pool_s) / 60:.1f} min = {n_trained} x ~{est:.0f} s training + "
         f"{max(n_label, 0)} pool labellings x ~{per_label:.0f} s "
         f"(config.estimate_*; set-up and the real-chip report come on top; load average now {load_average()})")


def _run_row(ctx: Context, row: str, h: str, *, records: dict[Key, dict], failed: set[Key],
             results_path: Path) -> None:
    """Reuse, skip (failed dependency) or run one row for ``ctx.seed``; updates ``records``/``failed``/results.csv."""
    import pandas as pd

    budget, key = ctx.budget, (row, ctx.seed)
    old = records[key] if key in records else None
    if old is not None and _reusable(ctx, row, h, old):
        _remember(ctx, row, _as_result(old))
        records[key] = {**old, "action": "reused"}
        _log(f"{row} seed {ctx.seed}: reused (finished earlier with the same settings, {float(old['seconds']):.1f} s)")
        return
    bad_deps = [d for d in ROWS[row].deps if (d, ctx.seed) in failed or d not in ctx.results]
    if bad_deps:
        failed.add(key)
        records[key] = _record(row, ctx.seed, None, None, status="failed", action="skipped", seconds=0.0,
                               budget=budget, h=h, error=f"dependency failed: {bad_deps}")
        _write_results(results_path, records)
        return
    _log(f"{row} seed {ctx.seed}: running ({ROWS[row].description}); load average {load_average()}")
    t0, c0 = time.perf_counter(), time.process_time()
    try:
        res = RUNNERS[row](ctx, ctx.row_dirs[row])
        counts = score_row(ctx, row, res)
    except (ValueError, FileNotFoundError, RuntimeError) as exc:
        dt = time.perf_counter() - t0
        failed.add(key)
        records[key] = _record(row, ctx.seed, None, None, status="failed", action="ran", seconds=dt, budget=budget,
                               h=h, error=f"{type(exc).__name__}: {exc}")
        _write_results(results_path, records)
        _log(f"{row} seed {ctx.seed}: FAILED after {dt:.1f} s: {exc}")
        return
    dt = time.perf_counter() - t0
    ctx.row_dirs[row].mkdir(parents=True, exist_ok=True)
    with atomic_path(ctx.row_dirs[row] / "chip_counts.csv") as tmp:
        pd.DataFrame(counts).to_csv(tmp, index=False)
    rec = _record(row, ctx.seed, res, counts, status="done", action="ran", seconds=dt, budget=budget, h=h,
                  cpu_s=time.process_time() - c0)
    records[key] = rec
    _remember(ctx, row, {**res, "valid_water_iou": float("nan") if rec["valid_water_iou"] is None
                         else float(rec["valid_water_iou"])})
    _write_results(results_path, records)
    scores = (f"test water IoU {float(rec['test_water_iou']):.3f}, held-out {float(rec['bolivia_water_iou']):.3f} "
              "(common mask)") if len(counts) else "not scored (scored=False)"
    _log(f"{row} seed {ctx.seed}: done in {dt:.1f} s ({rec['cpu_s']} CPU s) — {scores}; load average "
         f"{load_average()}")


def _remember(ctx: Context, row: str, res: dict) -> None:
    """Record a finished row for this seed and in the shared per-seed results (teacher choice)."""
    ctx.results[row] = res
    ctx.seed_results.setdefault(row, {})[ctx.seed] = res


def _header(*, command: str, sim: SimSpec, data_root, root: Path, catalog: pd.DataFrame, budget: Budget,
            seeds: list[int], threads: int, wall: float, table: pd.DataFrame, load_start: str,
            counts: dict) -> dict[str, str]:
    """The settings lines above results.md's table."""
    from floodnb.experiment.scoring import MASK_LINE

    n_chips = catalog["split"].value_counts().to_dict()
    px = _pixels_line(table)
    return {
        "command": f"`{command}`",
        "metric": "water IoU (primary) and mIoU — " + _metric_line(),
        "pixels": MASK_LINE + px,
        "reference": "the simulator's true water mask (`SimTruthWater`), not the noisy hand labels; validation "
                     "(selection only) against the hand labels",
        "splits": "`test` (hand-labelled test chips) and the held-out event (`bolivia` split, an event no model "
                  "trained on)",
        "dataset": (f"simulated, {sim.n_hand} hand + {sim.n_weak} weak chips of {sim.size} px, seed {sim.seed}"
                    if data_root is None else f"{root}") + f" (chips per split: {n_chips}); the same data for "
                                                           "every training seed",
        "budget (every trained row)": budget.describe(),
        "seeds": f"training seeds {seeds} (n = {len(seeds)} per trained row; threshold rows are deterministic and "
                 f"run once, n = 1); mean ± sample std (ddof 1) over seeds; torch threads {threads}",
        "selection": "best epoch by validation water IoU on hand labels; the students' teacher = the better of "
                     "teacher_s2 / teacher_s2s1 by mean validation water IoU over the seeds; the headline student "
                     "= the best mean validation water IoU over the seeds (test numbers reported after the choice)",
        "wall time": f"{wall / 60:.1f} min this invocation (set-up, rows, report); the row x seed runs' wall s add "
                     f"up to {table['seconds'].astype(float).sum() / 60:.1f} min (a reused run shows the time of the "
                     f"run that computed it); load average {load_start} at start, {load_average()} at end "
                     "(2 cores shared with other jobs: timings are noisy)",
    }


def _pixels_line(table: pd.DataFrame) -> str:
    done = table[table["status"] == "done"]
    if done.empty:
        return ""
    parts = []
    for s in SCORED_SPLITS:
        n = sorted({int(v) for v in done[f"{s}_pixels"].dropna()})
        parts.append(f"{s} {', '.join(f'{v:,}' for v in n)} px" + ("" if len(n) == 1 else " (NOT one pixel set)"))
    return " — pixels per split, identical for every row: " + "; ".join(parts)


def _transfer(out: Path, table: pd.DataFrame, real_root, *, progress: bool) -> str | None:
    """Sim-to-real report of every finished Sentinel-1 row and seed on the real chips (``transfer.*`` and
    ``transfer_seeds.csv`` in ``out``); returns its markdown section.
    """
    from floodnb.experiment.real import seed_markdown, seed_method, seed_table, transfer_report
    from floodnb.models import read_spec

    done = table[(table["status"] == "done") & table["checkpoint"].notna()]
    ckpts = {seed_method(str(r["row"]), int(r["seed"])): str(r["checkpoint"]) for _, r in done.iterrows()
             if Path(str(r["checkpoint"])).is_file() and tuple(read_spec(str(r["checkpoint"])).inputs) == ("s1",)}
    report = transfer_report(real_root, checkpoints=ckpts, progress=progress)
    report.write(out, prefix="transfer")
    with atomic_path(out / "transfer_seeds.csv") as tmp:
        seed_table(report).to_csv(tmp, index=False)
    return seed_markdown(report) if len(report.summary) else None


def _metric_line() -> str:
    from floodnb.experiment.report import METRIC_LINE

    return METRIC_LINE
