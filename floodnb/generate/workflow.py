"""The generator's run edge for the CLI, the notebook and the benchmark: train on a data root's hand
training split, sample, evaluate and write the results.

:class:`~floodnb.generate.settings.GenerateSettings` holds the budget and sampling settings. Output files of
:func:`write_report`: ``generated.npz`` (:meth:`~floodnb.generate.sample.Generated.save`),
``realism_table.csv``, ``consistency.csv``, ``gallery.png`` and ``generator_report.md``.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from floodnb.generate.settings import GenerateSettings, resolve_device
from floodnb.generate.train import TrainedGenerator, train_generator


def hand_training_data(source, settings: GenerateSettings):
    """The hand ``train`` split of ``source`` (catalog or ChipStore) as random ``crop`` px crops,
    ``steps_per_epoch x batch_size`` samples per epoch (:class:`floodnb.experiment.training.FixedLength`).
    """
    from floodnb.distill.datasets import split_dataset
    from floodnb.experiment.training import FixedLength

    data = split_dataset(source, "train", inputs=("s1",), crop=settings.crop, augment=True, seed=settings.seed)
    return FixedLength(data, settings.steps_per_epoch * settings.batch_size, seed=settings.seed)


def train_on(source, out_dir: str | Path, settings: GenerateSettings, *, progress: bool = True,
             resume: bool = True) -> TrainedGenerator:
    """Train the generator on the hand training split of ``source`` into ``out_dir`` (resumable)."""
    return train_generator(hand_training_data(source, settings), out_dir=out_dir,
                           config=settings.train_config(progress=progress), gen=settings.generator_config(),
                           resume=resume, settings={"generate": settings.to_dict()})


def write_report(checkpoint: str | Path, source, out_dir: str | Path, settings: GenerateSettings, *,
                 segmenter: str | Path | None = None, real_chips_max: int | None = None, real_crop_draws: int = 4,
                 progress: bool = True) -> dict:
    """Sample ``settings.n_samples`` chips of ``settings.crop`` px, compare them with training crops of
    ``source`` (realism table, label consistency), write the files of the module doc to ``out_dir``
    and return ``{"generated", "realism", "consistency", "paths"}``.

    The real side: ``real_crop_draws`` random ``settings.crop`` px crops of each of the first
    ``real_chips_max`` (default: all) hand training chips, i.e. the distribution the generator
    learned from. One crop of 64 of the 126 default training chips was too small a reference: over
    crop seeds its ``vv_minus_vh_mean_water`` alone ranged 7.25 .. 8.98 dB (tolerance 1.0).
    """
    from floodnb.distill.datasets import split_dataset
    from floodnb.generate.evaluate import generator_evaluation, real_chips
    from floodnb.generate.figures import gallery_figure
    from floodnb.generate.sample import load_generator
    from floodnb.io_utils import atomic_path, atomic_write_text

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    gen = load_generator(checkpoint, device=resolve_device(settings.device))
    generated = gen.sample(settings.n_samples, size=settings.crop, steps=settings.sample_steps, seed=settings.seed,
                           device=resolve_device(settings.device), eta=settings.eta, progress=progress)
    crops = split_dataset(source, "train", inputs=("s1",), crop=settings.crop, augment=True, seed=settings.seed)
    real_db, real_label = real_chips(crops, real_chips_max, draws=real_crop_draws)
    ev = generator_evaluation(generated, real_db, real_label, segmenter=segmenter)
    paths = {"generated": generated.save(out / "generated.npz"), "realism": out / "realism_table.csv",
             "consistency": out / "consistency.csv", "gallery": out / "gallery.png", "md": out / "generator_report.md"}
    for key in ("realism", "consistency"):
        with atomic_path(paths[key]) as tmp:
            ev[key].to_csv(tmp, index=False, float_format="%.4f")
    gallery_figure(generated, real_db, real_label, path=paths["gallery"])
    atomic_write_text(paths["md"], report_markdown(ev["realism"], ev["consistency"], checkpoint=checkpoint,
                                                   settings=settings))
    return {"generated": generated, "realism": ev["realism"], "consistency": ev["consistency"], "paths": paths}


def report_markdown(realism: pd.DataFrame, consistency: pd.DataFrame, *, checkpoint, settings: GenerateSettings) -> str:
    """The generator report: realism rows within tolerance, the table and label consistency."""
    passed = f"{int(realism.passed.sum())}/{len(realism)}"
    return "\n".join([
        "# DAKTer generator report", "", f"Checkpoint: `{checkpoint}`; {settings.n_samples} generated chips of "
        f"{settings.crop} px, {settings.sample_steps} DDIM steps (eta {settings.eta:g}), seed {settings.seed}.", "",
        f"## Realism (generated vs the training crops; the simulator report's tolerances): {passed} within tolerance",
        "", _markdown(realism.round(3)), "",
        "## Label consistency (water IoU vs the chips' own labels, global confusion matrix)", "",
        _markdown(consistency.round(3)), ""])


def _markdown(tab: pd.DataFrame) -> str:
    try:
        return tab.to_markdown(index=False)
    except ImportError:  # tabulate is optional
        return tab.to_string(index=False)
