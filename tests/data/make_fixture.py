"""Regenerate ``tests/data/sen1floods11`` from the shared Sen1Floods11 developer sample.

The in-repo fixture lets the test suite run on a fresh clone with nothing beside it. It holds
small windows of real Sen1Floods11 chips (Bonafilia et al., *Sen1Floods11*, CVPR Workshops 2020)
cut from ``../shared/data/sen1floods11`` (short layout; see its PROVENANCE.md):

* every chip layer is cropped to the same ``SIZE`` x ``SIZE`` pixel window (:data:`WINDOWS`,
  row/column offsets in pixels of the 512 x 512 source chip), chosen so the window holds every
  label value the chip has (water and dry where both exist, plus some -1);
* each file keeps the source's byte layout (one deflate strip per band, band interleave, no
  predictor), dtype, band count, nodata tag, band descriptions, dataset tags and CRS; its
  geotransform is the source's shifted to the window (``rasterio.windows.transform``), so the
  float round-off that distinguishes LabelHand's pixel size from S1Hand's is kept;
* the split CSVs keep the source rows (bytes, CRLF) of the kept chips only; the metadata geojson
  keeps the source lines of the kept chips' events;
* ``PROVENANCE.md`` lists every file with its source file, the source's sha256 and the window.

Usage (from the repository root; ``--source`` defaults to ``../shared/data/sen1floods11``)::

    python tests/data/make_fixture.py [--source DIR] [--out DIR]

The output folder is rebuilt in a temporary folder and swapped in atomically; the source is
only read.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
DEFAULT_SOURCE = REPO.parent / "shared" / "data" / "sen1floods11"
DEFAULT_OUT = HERE / "sen1floods11"
SIZE = 64  # window side in pixels (the source chips are 512 x 512)
#: chip -> (row, col) offset of its window in the source chip, and why the chip is kept.
WINDOWS: dict[str, tuple[int, int, str]] = {
    "Ghana_53713": (0, 0, "label all dry (0): valid data, no warning"),
    "Ghana_83483": (0, 0, "label all -1 (entirely nodata)"),
    "Ghana_97059": (112, 320, "label -1 and dry only, no water"),
    "Mekong_333434": (48, 208, "water, dry and -1; LabelHand transform differs from S1Hand by round-off; "
                               "event name differs from the metadata location (Cambodia)"),
    "Paraguay_34417": (48, 192, "S1 entirely NaN while the label has water"),
    "Spain_7370579": (176, 240, "the one chip with S1Hand + S2Hand + LabelHand; water and dry"),
    "USA_430764": (224, 224, "S2Hand only (no S1, no label)"),
    "USA_905409": (208, 432, "water, dry and -1"),
}
LAYERS = ("S1Hand", "S2Hand", "LabelHand")
SPLITS = ("train", "valid", "test", "bolivia")
EVENT_LOCATION = {"Mekong": "Cambodia"}  # chip prefix -> metadata ``location`` where they differ
LICENCE = """\
- Licence: the official repository cloudtostreet/Sen1Floods11 contains no LICENSE file; its README only asks that
  the data be cited as above. Third-party redistributions and dataset cards (Hugging Face dataset cards, several
  public manifests) describe the data as CC BY 4.0; we could not confirm that from a primary Cloud to Street source.
  Treat as: attribution required (cite the paper), licence stated by third parties as CC BY 4.0. Underlying
  imagery: contains modified Copernicus Sentinel data. (Copied from the shared sample's PROVENANCE.md, which also
  names the public GitHub repositories each source file was copied from byte for byte.)
"""


def sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def crop_geotiff(src_path: Path, dst_path: Path, row: int, col: int, size: int = SIZE) -> dict:
    """Write the ``size`` x ``size`` window at (``row``, ``col``) px of ``src_path`` to ``dst_path``.

    Keeps dtype, band count, nodata, band descriptions, dataset tags, CRS and the strip/deflate/
    band-interleave layout; the transform is the source's shifted to the window. Returns the
    label-value counts (1-band int16 files) or per-band NaN counts for the provenance table.
    """
    import rasterio
    from rasterio.windows import Window
    from rasterio.windows import transform as window_transform

    with rasterio.open(src_path) as src:
        if src.width < col + size or src.height < row + size:
            raise ValueError(f"{src_path}: window ({row}, {col}) + {size} px exceeds {src.height}x{src.width}")
        win = Window(col, row, size, size)
        data = src.read(window=win)
        profile = dict(driver="GTiff", width=size, height=size, count=src.count, dtype=src.dtypes[0], crs=src.crs,
                       transform=window_transform(win, src.transform), nodata=src.nodata, compress="deflate",
                       interleave="band", tiled=False, blockysize=size)
        tags, descriptions = src.tags(), src.descriptions
    with rasterio.open(dst_path, "w", **profile) as dst:
        dst.write(data)
        dst.update_tags(**tags)
        if any(d is not None for d in descriptions):
            dst.descriptions = descriptions
    if data.dtype.kind == "f":
        return {"nan_px": int(np.isnan(data).any(axis=0).sum())}
    if data.shape[0] == 1:
        vals, counts = np.unique(data, return_counts=True)
        return {int(v): int(n) for v, n in zip(vals, counts)}
    return {"zero_px": int((data == 0).all(axis=0).sum())}


def kept_csv_rows(src: Path, chips: set[str]) -> bytes:
    """The CRLF rows of split CSV ``src`` whose first column names one of ``chips`` (bytes unchanged)."""
    rows = src.read_bytes().split(b"\r\n")
    kept = [r for r in rows if r and r.split(b",")[0].decode().rsplit("_", 1)[0] in chips]
    return b"".join(r + b"\r\n" for r in kept)


def kept_metadata(src: Path, locations: set[str]) -> bytes:
    """The source geojson (GDAL style: one feature per line) with only the features of ``locations``."""
    lines = src.read_bytes().split(b"\n")
    head, feats, tail = [], [], []
    for line in lines:
        if line.startswith(b'{ "type": "Feature"'):
            feats.append(line.rstrip(b","))
        else:
            (tail if feats else head).append(line)
    keep = [f for f in feats if json.loads(f)["properties"]["location"] in locations]
    missing = locations - {json.loads(f)["properties"]["location"] for f in keep}
    if missing:
        raise ValueError(f"{src}: no metadata feature for {sorted(missing)}")
    out = b"\n".join(head + [f + b"," for f in keep[:-1]] + keep[-1:] + tail)
    json.loads(out)  # still valid GeoJSON
    return out


def build(source: Path, out: Path) -> list[dict]:
    """Write the fixture into the (new, empty) folder ``out``; return one provenance row per file."""
    rows: list[dict] = []
    for cid, (r, c, _why) in WINDOWS.items():
        for layer in LAYERS:
            rel = Path("HandLabeled") / layer / f"{cid}_{layer}.tif"
            if not (source / rel).is_file():
                continue
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            content = crop_geotiff(source / rel, out / rel, r, c)
            rows.append(dict(file=rel.as_posix(), source=rel.as_posix(), sha=sha256(source / rel),
                             window=f"rows {r}:{r + SIZE}, cols {c}:{c + SIZE}", content=content))
    chips = set(WINDOWS)
    (out / "splits").mkdir()
    for split in SPLITS:
        rel = Path("splits") / f"flood_{split}_data.csv"
        (out / rel).write_bytes(kept_csv_rows(source / rel, chips))
        n = (out / rel).read_bytes().count(b"\r\n")
        rows.append(dict(file=rel.as_posix(), source=rel.as_posix(), sha=sha256(source / rel),
                         window=f"{n} rows of kept chips", content={}))
    locations = {EVENT_LOCATION.get(c.split("_")[0], c.split("_")[0]) for c in chips}
    meta = Path("Sen1Floods11_Metadata.geojson")
    (out / meta).write_bytes(kept_metadata(source / meta, locations))
    rows.append(dict(file=meta.as_posix(), source=meta.as_posix(), sha=sha256(source / meta),
                     window="features of " + ", ".join(sorted(locations)), content={}))
    return rows


def provenance(rows: list[dict]) -> str:
    """PROVENANCE.md text for the fixture."""
    chips = "\n".join(f"| {cid} | rows {r}:{r + SIZE}, cols {c}:{c + SIZE} | {why} |"
                      for cid, (r, c, why) in WINDOWS.items())
    files = "\n".join(f"| `{x['file']}` | `{x['source']}` | `{x['sha']}` | {x['window']} | "
                      f"{' '.join(f'{k}:{v}' for k, v in x['content'].items())} |" for x in rows)
    return f"""# Sen1Floods11 test fixture — provenance

Small windows of real Sen1Floods11 v1.1 hand-labelled chips, so the test suite runs on a fresh clone
with nothing beside it. Generated by `tests/data/make_fixture.py` from the shared developer sample
`../shared/data/sen1floods11` (short layout; its PROVENANCE.md names the public repository and commit each
source file was copied from). Do not edit by hand: rerun the script.

## Dataset, citation, licence

- Dataset: Sen1Floods11 v1.1 (Cloud to Street), official bucket `gs://sen1floods11/v1.1/`; short layout
  `HandLabeled/<Layer>/` and `splits/` as in the shared sample.
- Citation: Bonafilia, D., Tellman, B., Anderson, T., Issenberg, E. 2020. Sen1Floods11: a georeferenced dataset to
  train and test deep learning flood algorithms for Sentinel-1. The IEEE/CVF Conference on Computer Vision and
  Pattern Recognition (CVPR) Workshops, 2020, pp. 210-211.
{LICENCE}
## What was changed

Every raster is the {SIZE} x {SIZE} px window below of its 512 x 512 source, written with the source's dtype,
band count, nodata tag, band descriptions, tags, CRS and layout (one deflate strip per band, band interleave);
the geotransform is the source's shifted to the window (LabelHand's pixel size keeps its float round-off).
Split CSVs keep the source rows (CRLF, no header) of the kept chips only; the metadata geojson keeps the
source lines of the kept chips' events. Spain_6860600 of the shared sample is left out.

## Chips

| chip | window (px of the source chip) | why it is here |
|---|---|---|
{chips}

## Files

Paths are relative to this folder and to `../shared/data/sen1floods11`; sha256 is the **source** file's.
Content: LabelHand value:pixel count, S1Hand pixels with a NaN band, S2Hand pixels with all bands 0.

| file | source file | source sha256 | window / rows kept | content |
|---|---|---|---|---|
{files}
"""


def main(argv: list[str] | None = None) -> int:
    """Command line: rebuild the fixture; exit 2 with a message on bad input."""
    from floodnb.io_utils import atomic_dir

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", type=Path, default=DEFAULT_SOURCE, help="shared sample (short layout)")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT, help="fixture folder (replaced)")
    args = ap.parse_args(argv)
    need = [Path("splits") / f"flood_{s}_data.csv" for s in SPLITS] + [Path("Sen1Floods11_Metadata.geojson")]
    missing = [str(args.source / p) for p in need if not (args.source / p).is_file()]
    if missing:
        print(f"make_fixture: --source {args.source} is not a Sen1Floods11 short-layout sample; missing: "
              + ", ".join(missing), file=sys.stderr)
        return 2
    with atomic_dir(args.out, overwrite=True) as tmp:
        rows = build(args.source, tmp)
        (tmp / "PROVENANCE.md").write_text(provenance(rows))
    total = sum(p.stat().st_size for p in args.out.rglob("*") if p.is_file())
    print(f"wrote {len(rows)} files + PROVENANCE.md to {args.out} ({total / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
