"""Which real Sen1Floods11 chips the tests read, and facts computed from that root's own files.

``REAL_ROOT`` is, in order: the folder named by ``$FLOODNB_TEST_REAL_ROOT``; the shared developer
sample ``../shared/data/sen1floods11`` next to the repository (9 full 512 x 512 chips) when it
exists; else the in-repo fixture ``tests/data/sen1floods11`` (64 x 64 px windows of 8 of those
chips, see its PROVENANCE.md). Both use the short layout (``HandLabeled/<Layer>/``, ``splits/``).
Tests read the root in place and never write to it; their expectations come from the helpers
below (the root's own files), so the same assertions hold on either root.
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
from pathlib import Path

import numpy as np

TESTS = Path(__file__).resolve().parent
SHARED_SAMPLE = TESTS.parents[1] / "shared" / "data" / "sen1floods11"
FIXTURE = TESTS / "data" / "sen1floods11"
ENV = "FLOODNB_TEST_REAL_ROOT"
FULL_SIZE = 512  # Sen1Floods11 chips are 512 x 512 px
ROLE_LAYERS = {"s1": "S1Hand", "s2": "S2Hand", "label": "LabelHand"}


def resolve_real_root() -> Path:
    """The real-chip root for this test run (see the module docstring)."""
    env = os.environ.get(ENV)
    if env:
        root = Path(env).resolve()
        if not (root / "HandLabeled").is_dir():
            raise RuntimeError(f"${ENV}={env}: expected a Sen1Floods11 short-layout folder with HandLabeled/")
        return root
    return SHARED_SAMPLE if SHARED_SAMPLE.is_dir() else FIXTURE


REAL_ROOT = resolve_real_root()


def chip_file(root: Path, chip: str, role: str) -> Path:
    """Path of ``chip``'s layer for ``role`` (s1, s2, label) under a short-layout ``root``."""
    layer = ROLE_LAYERS[role]
    return root / "HandLabeled" / layer / f"{chip}_{layer}.tif"


def chip_roles(root: Path) -> dict[str, set[str]]:
    """Chip id -> roles (s1, s2, label) with a file under ``root``."""
    out: dict[str, set[str]] = {}
    for role, layer in ROLE_LAYERS.items():
        for p in (root / "HandLabeled" / layer).glob(f"*_{layer}.tif"):
            out.setdefault(p.name[: -len(f"_{layer}.tif")], set()).add(role)
    return out


def label_counts(root: Path, chip: str) -> dict[int, int]:
    """LabelHand value -> pixel count of ``chip``, read with rasterio."""
    import rasterio

    with rasterio.open(chip_file(root, chip, "label")) as f:
        vals, counts = np.unique(f.read(1), return_counts=True)
    return dict(zip(vals.tolist(), counts.tolist()))


def split_chips(root: Path, split: str) -> list[str]:
    """Chip ids in ``root``'s split CSV (first column minus ``_S1Hand.tif``), in file order."""
    rows = (root / "splits" / f"flood_{split}_data.csv").read_bytes().split(b"\r\n")
    return [r.split(b",")[0].decode()[: -len("_S1Hand.tif")] for r in rows if r]


def chip_size(root: Path) -> int:
    """Side in pixels of ``root``'s chips; RuntimeError when they are not all one square size."""
    import rasterio

    sizes = set()
    for p in sorted((root / "HandLabeled").glob("*/*.tif")):
        with rasterio.open(p) as f:
            sizes.add((f.height, f.width))
    if len(sizes) != 1 or len(set(next(iter(sizes)))) != 1:
        raise RuntimeError(f"{root}: chips of several sizes {sorted(sizes)}; expected one square size")
    return next(iter(sizes))[0]


@functools.cache
def is_shared_sample(root: Path) -> bool:
    """True when ``root`` holds the shared developer sample's files themselves: every source file named in
    the fixture's PROVENANCE.md is there with the sha256 listed. Figures measured on that sample (the S2
    preset, the realism report's Otsu IoU) are asserted only then; the fixture's windows give others.
    """
    text = (FIXTURE / "PROVENANCE.md").read_text()
    listed = re.findall(r"^\| `[^`]+` \| `([^`]+)` \| `([0-9a-f]{64})` \|", text, flags=re.M)
    if not listed:
        raise RuntimeError(f"{FIXTURE / 'PROVENANCE.md'}: no '| file | source | sha256 |' rows")
    return all((root / rel).is_file() and hashlib.sha256((root / rel).read_bytes()).hexdigest() == sha
               for rel, sha in listed)


def repeat_to_scene(src: Path, dst: Path, *, size: int = FULL_SIZE, compress: str | None = "deflate") -> Path:
    """Write ``src`` (a real chip GeoTIFF) repeated into a ``size`` x ``size`` px GeoTIFF at ``dst``.

    Same origin, pixel size, CRS, bands, dtype, nodata, tags and descriptions as ``src``; pixel values are
    the chip's, tiled (``np.tile``) and cut to ``size``. For tests that need a scene larger than the
    in-repo fixture's 64 px windows (tiling, COG overviews, multi-megabyte downloads);
    ``compress=None`` writes it uncompressed (``size**2 * bands * itemsize`` bytes of pixels).
    """
    import rasterio

    with rasterio.open(src) as f:
        data, profile, desc, tags = f.read(), f.profile, f.descriptions, f.tags()
    reps = -(-size // min(data.shape[1:]))
    profile.update(width=size, height=size, blockysize=min(size, profile.get("blockysize", size)))
    profile.pop("compress", None)
    if compress:
        profile["compress"] = compress
    dst.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(dst, "w", **profile) as out:
        out.write(np.tile(data, (1, reps, reps))[:, :size, :size])
        out.update_tags(**tags)
        if any(d is not None for d in desc):
            out.descriptions = desc
    return dst
