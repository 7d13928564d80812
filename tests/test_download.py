"""floodnb.data.download / ``floodnb download`` against a local stand-in for the bucket.

The server (tests/_http_server.py) serves the real chips (../shared/data/sen1floods11, or the in-repo
fixture tests/data/sen1floods11 on a bare clone) in place under their official object names, plus
small generated weak-chip files, and injects faults (503s, dropped connections, wrong MD5s, 404s).
The resume tests need one multi-megabyte object (BIG): where the root's file is a small fixture
window, the server serves that window repeated into an uncompressed 512 px GeoTIFF under BIG's name.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from _real_data import repeat_to_scene

from floodnb.cli import main as cli_main
from floodnb.data import download as dl
from floodnb.data import layout as lay
from tests._http_server import SHARED, BucketServer, Faults, make_weak_objects, shared_bucket_objects

pytestmark = pytest.mark.timeout(120)

HAND_CHIPS = ["Ghana_53713", "Ghana_97059", "Mekong_333434", "Paraguay_34417", "Spain_7370579", "USA_905409"]
BIG = "v1.1/data/flood_events/HandLabeled/S1Hand/Ghana_53713_S1Hand.tif"  # >= 1.7 MB (see module docstring)
BIG_MIN_BYTES = 1_700_000  # the resume tests cut the body at up to 700 kB and throttle it to > 1 s
WEAK_CHIPS = ["Bolivia_1001", "Bolivia_1002", "India_2001", "India_2002", "India_2003"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def subset_splits(folder: Path, chips: list[str], *, extra_rows: tuple[str, ...] = ()) -> Path:
    """Real split CSVs cut down to ``chips`` (rows byte-identical, CRLF), plus ``extra_rows``."""
    folder.mkdir(parents=True, exist_ok=True)
    for split in lay.SPLIT_NAMES:
        rows = (SHARED / "splits" / lay.split_csv_name(split)).read_bytes().split(b"\r\n")
        kept = [r for r in rows if r and r.split(b",")[0].rsplit(b"_", 1)[0].decode() in chips]
        kept += [r.encode() for r in extra_rows] if split == "test" else []
        (folder / lay.split_csv_name(split)).write_bytes(b"".join(r + b"\r\n" for r in kept))
    return folder


def make_buckets(tmp_path: Path, *, chips: list[str] = HAND_CHIPS, extra_rows: tuple[str, ...] = (),
                 weak: bool = True) -> dict[str, dict[str, Path]]:
    objects = shared_bucket_objects(splits_dir=subset_splits(tmp_path / "srv_splits", chips, extra_rows=extra_rows))
    if objects[BIG].stat().st_size < BIG_MIN_BYTES:  # in-repo fixture: a 64 px window of the real chip
        objects[BIG] = repeat_to_scene(objects[BIG], tmp_path / "srv_big" / Path(BIG).name, compress=None)
        assert objects[BIG].stat().st_size >= BIG_MIN_BYTES
    v10: dict[str, Path] = {}
    if weak:
        objects.update(make_weak_objects(tmp_path / "srv_weak", WEAK_CHIPS,
                                         ["S1Weak", "S1OtsuLabelWeak", "S2IndexLabelWeak"]))
        s2 = make_weak_objects(tmp_path / "srv_v10", WEAK_CHIPS[:4], ["S2"], seed=1)
        v10 = {f"S2_NoQC/{p.name}": p for p in s2.values()}  # gs://cnn_chips/S2_NoQC/<chip>_S2.tif
    return {"sen1floods11": objects, "cnn_chips": v10}


def urls(srv: BucketServer) -> dict[str, str]:
    return dict(base_url=srv.base_url("sen1floods11"), listing_url=srv.listing_url("sen1floods11"),
                v10_base_url=srv.base_url("cnn_chips"), v10_listing_url=srv.listing_url("cnn_chips"))


FAST = dict(progress=False, workers=4, retries=3, timeout=10, backoff=0.01)


def dest_of(out: Path, name: str) -> Path:
    return out / name  # v1.1 object names are paths under the official-layout root


def no_part_files(root: Path) -> bool:
    return not list(root.rglob(f"*{dl.PART_SUFFIX}"))


# ------------------------------------------------------------------------------------------------


def test_complete_download_is_byte_identical_and_second_run_skips(tmp_path):
    buckets = make_buckets(tmp_path)
    out = tmp_path / "out"
    with BucketServer(buckets, page_size=4) as srv:
        report = dl.download(out, splits=("test",), layers=("S1Hand", "LabelHand", "S2Hand"), weak=True,
                             include_v10_s2=True, **urls(srv), **FAST)
        # S2Hand exists for Spain_7370579 only: the other S2Hand files are 404s, reported by name
        missing_s2 = {f.dest.name for f in report.failed}
        assert missing_s2 == {f"{c}_S2Hand.tif" for c in HAND_CHIPS if c != "Spain_7370579"}
        assert all("404" in f.reason for f in report.failed)

        expected: dict[Path, Path] = {}
        for name, src in buckets["sen1floods11"].items():
            if "/HandLabeled/" in name and name.rsplit("_", 1)[0].rsplit("/", 1)[-1] not in HAND_CHIPS:
                continue
            if "/splits/" in name and "flood_test_data.csv" not in name:
                continue
            expected[dest_of(out, name)] = src
        for name, src in buckets["cnn_chips"].items():
            expected[lay.layer_dir(out, "S2Weak") / name.split("/")[-1]] = src
        assert set(report.downloaded) == set(expected)
        for dest, src in expected.items():
            assert sha256(dest) == sha256(src), dest
        assert report.bytes_downloaded == sum(p.stat().st_size for p in expected.values())
        assert no_part_files(out)
        test_csv = out / "v1.1/splits/flood_handlabeled/flood_test_data.csv"
        assert test_csv.read_bytes().count(b"\r\n") == len(HAND_CHIPS)
        # paths are the layout's: weak S2 under v1.0 with the v1.0 object name <chip>_S2.tif
        assert (lay.layer_dir(out, "S2Weak") / lay.chip_file_name("India_2001", "S2Weak")).is_file()
        assert (lay.layer_dir(out, "S1Weak") / lay.chip_file_name("India_2003", "S1Weak")).is_file()

        # the catalog reads the result as an official-layout root
        from floodnb.data.catalog import build_catalog

        cat = build_catalog(out, with_center=False).set_index("chip_id")
        assert set(cat.index[cat["group"] == "hand"]) == set(HAND_CHIPS)
        assert set(cat.loc[HAND_CHIPS, "split"]) == {"test"}
        assert cat.loc["India_2001", "s2_path"] is not None and cat.loc["India_2003", "s2_path"] is None

        n_get_before = len([r for r in srv.log if r.method == "GET" and "/HandLabeled/" in r.path])
        again = dl.download(out, splits=("test",), layers=("S1Hand", "LabelHand"), weak=True,
                            include_v10_s2=True, **urls(srv), **FAST)
        assert again.downloaded == () and again.failed == ()
        assert set(again.skipped) == {d for d in expected if not d.name.endswith("_S2Hand.tif")}
        assert f"skipped {len(again.skipped)} already complete" in again.summary()
        n_get_after = len([r for r in srv.log if r.method == "GET" and "/HandLabeled/" in r.path])
        assert n_get_after == n_get_before  # complete files are not fetched again


def test_listing_pages_and_weak_subset_filters(tmp_path):
    with BucketServer(make_buckets(tmp_path), page_size=2) as srv:
        tasks = dl.plan(tmp_path / "out", splits=(), weak=True, weak_layers=("S1Weak", "S2IndexLabelWeak"),
                        include_v10_s2=True, events=("India",), max_weak_chips=2, **urls(srv))
        pages = [r for r in srv.log if "storage/v1/b/sen1floods11/o" in r.path]
        assert len(pages) >= 3 + 3  # metadata + 2 layers, 5 objects per layer in pages of 2
    names = sorted(t.dest.name for t in tasks)
    assert names == ["India_2001_S1Weak.tif", "India_2001_S2.tif", "India_2001_S2IndexLabelWeak.tif",
                     "India_2002_S1Weak.tif", "India_2002_S2.tif", "India_2002_S2IndexLabelWeak.tif",
                     "Sen1Floods11_Metadata.geojson"]
    for t in tasks:
        assert t.size is not None and t.size > 0 and t.md5 is not None
    assert not (tmp_path / "out").exists()  # planning writes nothing


def test_interrupted_download_resumes_with_range(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713", "USA_905409"], weak=False)
    out = tmp_path / "out"
    cut = 400_000
    faults = Faults(drop_after={BIG: (1, cut)})
    with BucketServer(buckets, faults=faults) as srv:
        # first run "dies" mid-file (no retries): the .part stays, nothing under the final name
        first = dl.download(out, splits=("test",), **urls(srv), **{**FAST, "retries": 0})
        dest = dest_of(out, BIG)
        assert [f.dest for f in first.failed] == [dest]
        assert "next run resumes" in first.failed[0].reason
        assert not dest.exists()
        part = dest.with_name(dest.name + dl.PART_SUFFIX)
        kept = part.stat().st_size  # what reached the disk before the drop (whole chunks)
        assert cut - 65536 <= kept <= cut
        # second run continues from byte `kept` with a Range request
        second = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert second.ok and second.resumed == (dest,)
        ranges = [r.range for r in srv.requests_for(BIG)]
        assert ranges == [None, f"bytes={kept}-"]
        assert sha256(dest) == sha256(buckets["sen1floods11"][BIG])
        assert second.bytes_downloaded == buckets["sen1floods11"][BIG].stat().st_size - kept
        assert no_part_files(out)


def test_killed_process_is_resumed_by_the_next_run(tmp_path):
    """SIGKILL a real ``floodnb download`` mid-file; the next run continues the .part with Range."""
    buckets = make_buckets(tmp_path, chips=["Ghana_53713"], weak=False)
    out = tmp_path / "out"
    dest = dest_of(out, BIG)
    part = dest.with_name(dest.name + dl.PART_SUFFIX)
    faults = Faults(throttle={BIG: 0.05})  # ~1.3 MB/s: the 1.7 MB file takes > 1 s
    with BucketServer(buckets, faults=faults) as srv:
        cmd = [sys.executable, "-m", "floodnb.cli", "download", str(out), "--splits", "test",
               "--base-url", srv.base_url("sen1floods11"), "--listing-url", srv.listing_url("sen1floods11"),
               "--workers", "1", "--no-progress"]
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 30
            while not (part.exists() and part.stat().st_size >= 3 * 65536):
                assert proc.poll() is None, "download finished before it could be killed"
                assert time.monotonic() < deadline, "no .part appeared"
                time.sleep(0.02)
            proc.kill()
        finally:
            proc.kill()
            proc.wait(timeout=10)
        assert not dest.exists()  # never a truncated file under the final name
        kept = part.stat().st_size
        faults.throttle.clear()
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert report.ok and dest in report.resumed
        assert srv.requests_for(BIG)[-1].range == f"bytes={kept}-"
    assert sha256(dest) == sha256(buckets["sen1floods11"][BIG])
    assert no_part_files(out)


def test_stale_part_with_wrong_bytes_is_redone_from_scratch(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713"], weak=False)
    out = tmp_path / "out"
    dest = dest_of(out, BIG)
    dest.parent.mkdir(parents=True)
    dest.with_name(dest.name + dl.PART_SUFFIX).write_bytes(b"\x00" * 100_000)  # not the object's bytes
    with BucketServer(buckets) as srv:
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert report.ok and dest in report.downloaded and report.resumed == ()
        assert [r.range for r in srv.requests_for(BIG)] == ["bytes=100000-", None]  # MD5 failed -> clean retry
    assert sha256(dest) == sha256(buckets["sen1floods11"][BIG]) and no_part_files(out)


def test_connection_drops_are_retried_by_resuming_within_one_run(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713"], weak=False)
    faults = Faults(drop_after={BIG: (2, 300_000)})
    with BucketServer(buckets, faults=faults) as srv:
        report = dl.download(tmp_path / "out", splits=("test",), **urls(srv), **FAST)
        assert report.ok and report.resumed == (dest_of(tmp_path / "out", BIG),)
        ranges = [r.range for r in srv.requests_for(BIG)]
        assert len(ranges) == 3 and ranges[0] is None
        starts = [int(r[len("bytes="):-1]) for r in ranges[1:]]  # each resume starts where the last stopped
        assert 300_000 - 65536 <= starts[0] <= 300_000
        assert starts[0] + 300_000 - 65536 <= starts[1] <= starts[0] + 300_000
    assert sha256(dest_of(tmp_path / "out", BIG)) == sha256(buckets["sen1floods11"][BIG])


def test_server_ignoring_range_restarts_the_file(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713"], weak=False)
    out = tmp_path / "out"
    faults = Faults(drop_after={BIG: (1, 700_000)})
    with BucketServer(buckets, faults=faults) as srv:
        assert not dl.download(out, splits=("test",), **urls(srv), **{**FAST, "retries": 0}).ok
        dest = dest_of(out, BIG)
        kept = dest.with_name(dest.name + dl.PART_SUFFIX).stat().st_size
        assert kept > 0
        faults.ignore_range = True
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert report.ok and report.resumed == ()
        last = srv.requests_for(BIG)[-1]
        assert last.range == f"bytes={kept}-" and last.status == 200  # asked to resume, got it all
    assert sha256(dest_of(out, BIG)) == sha256(buckets["sen1floods11"][BIG])


def test_missing_files_are_reported_by_name_and_the_rest_completes(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_97059", "USA_905409"],
                           extra_rows=("Ghana_999_S1Hand.tif,Ghana_999_LabelHand.tif",), weak=False)
    faults = Faults(missing={"v1.1/splits/flood_handlabeled/flood_valid_data.csv"})
    out = tmp_path / "out"
    with BucketServer(buckets, faults=faults) as srv:
        report = dl.download(out, splits=("test", "valid"), **urls(srv), **FAST)
    failed = sorted(str(f) for f in report.failed)
    assert len(failed) == 3
    assert "flood_valid_data.csv" in failed[2] and "404" in failed[2]
    assert "Ghana_999_LabelHand.tif" in failed[0] and "Ghana_999_S1Hand.tif" in failed[1]
    assert all("HTTP 404" in f for f in failed)
    assert {p.name for p in report.downloaded} == {
        "Ghana_97059_S1Hand.tif", "Ghana_97059_LabelHand.tif", "USA_905409_S1Hand.tif",
        "USA_905409_LabelHand.tif", "flood_test_data.csv", "Sen1Floods11_Metadata.geojson"}
    assert not (lay.layer_dir(out, "S1Hand") / "Ghana_999_S1Hand.tif").exists()
    assert "FAILED" in report.summary() and "Ghana_999_S1Hand.tif" in report.summary()
    assert no_part_files(out)


def test_checksum_mismatch_is_not_placed_under_the_final_name(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713", "USA_905409"], weak=False)
    label = "v1.1/data/flood_events/HandLabeled/LabelHand/USA_905409_LabelHand.tif"
    out = tmp_path / "out"
    with BucketServer(buckets, faults=Faults(wrong_md5_listing={BIG})) as srv:
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
    assert [f.dest for f in report.failed] == [dest_of(out, BIG)]
    assert "MD5 mismatch" in report.failed[0].reason
    assert not dest_of(out, BIG).exists() and no_part_files(out)
    assert sha256(dest_of(out, label)) == sha256(buckets["sen1floods11"][label])

    # without a listing, the x-goog-hash header is the checksum
    out2 = tmp_path / "out2"
    with BucketServer(buckets, faults=Faults(wrong_md5_header={label})) as srv:
        report = dl.download(out2, splits=("test",), **{**urls(srv), "listing_url": None}, **FAST)
    assert [f.dest for f in report.failed] == [dest_of(out2, label)]
    assert "MD5 mismatch" in report.failed[0].reason and not dest_of(out2, label).exists()
    assert sha256(dest_of(out2, BIG)) == sha256(buckets["sen1floods11"][BIG])


def test_transient_errors_are_retried_and_exhausted_retries_reported(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713", "USA_905409"], weak=False)
    label = "v1.1/data/flood_events/HandLabeled/LabelHand/USA_905409_LabelHand.tif"
    s1 = "v1.1/data/flood_events/HandLabeled/S1Hand/USA_905409_S1Hand.tif"
    faults = Faults(fail_first={BIG: (2, 503), label: (1, 429), s1: (99, 500)}, retry_after="0")
    out = tmp_path / "out"
    with BucketServer(buckets, faults=faults) as srv:
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert [r.status for r in srv.requests_for(BIG)] == [503, 503, 200]
        assert [r.status for r in srv.requests_for(label)] == [429, 200]
        assert len(srv.requests_for(s1)) == FAST["retries"] + 1
    assert sha256(dest_of(out, BIG)) == sha256(buckets["sen1floods11"][BIG])
    assert sha256(dest_of(out, label)) == sha256(buckets["sen1floods11"][label])
    assert [f.dest for f in report.failed] == [dest_of(out, s1)]
    assert "gave up after 4 attempt(s)" in report.failed[0].reason and "HTTP 500" in report.failed[0].reason


def test_nothing_preexisting_is_deleted_or_truncated(tmp_path):
    buckets = make_buckets(tmp_path, chips=["Ghana_53713", "USA_905409"], weak=False)
    out = tmp_path / "out"
    notes = out / "notes.txt"
    notes.parent.mkdir(parents=True)
    notes.write_text("mine")
    # a complete file already there (skipped, not rewritten) and a different one (left alone)
    label = "v1.1/data/flood_events/HandLabeled/LabelHand/USA_905409_LabelHand.tif"
    complete = dest_of(out, label)
    complete.parent.mkdir(parents=True)
    complete.write_bytes(buckets["sen1floods11"][label].read_bytes())
    os.utime(complete, (1_000_000, 1_000_000))
    mine = dest_of(out, BIG)
    mine.parent.mkdir(parents=True)
    mine.write_bytes(b"my own edited copy")
    with BucketServer(buckets) as srv:
        report = dl.download(out, splits=("test",), **urls(srv), **FAST)
        assert notes.read_text() == "mine"
        assert complete.stat().st_mtime == 1_000_000 and complete in report.skipped
        assert mine.read_bytes() == b"my own edited copy"
        assert [f.dest for f in report.failed] == [mine] and "left untouched" in report.failed[0].reason
        assert not srv.requests_for(BIG)  # never even fetched
        # overwrite=True replaces it, but only with a verified copy
        report = dl.download(out, splits=("test",), overwrite=True, **urls(srv), **FAST)
        assert report.ok and mine in report.downloaded
    assert sha256(mine) == sha256(buckets["sen1floods11"][BIG])
    assert notes.read_text() == "mine"


def test_bad_arguments_name_the_argument(tmp_path):
    with pytest.raises(ValueError, match="layers"):
        dl.plan(tmp_path, layers=("S1Weak",))
    with pytest.raises(ValueError, match="splits"):
        dl.plan(tmp_path, splits=("training",))
    with pytest.raises(ValueError, match="include_v10_s2"):
        dl.plan(tmp_path, weak_layers=("S2Weak",))
    with pytest.raises(ValueError, match="listing_url"):
        dl.plan(tmp_path, weak=True, listing_url=None)
    with pytest.raises(ValueError, match="base_url"):
        dl.plan(tmp_path, base_url="ftp://example.org/x")
    with pytest.raises(ValueError, match="workers"):
        dl.download(tmp_path, workers=0)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        dl.plan(tmp_path / "afile")
    with pytest.raises(ValueError, match="line 2"):
        dl._chips_from_split_csv("Ghana_1_S1Hand.tif,Ghana_1_LabelHand.tif\r\n../../x_S1Hand.tif,y\r\n", "t.csv")


def test_cli_exit_codes_and_dry_run(tmp_path, capsys):
    buckets = make_buckets(tmp_path, chips=["USA_905409"], extra_rows=("Ghana_999_S1Hand.tif,Ghana_999_LabelHand.tif",),
                           weak=False)
    out = tmp_path / "out"
    with BucketServer(buckets) as srv:
        u = srv.base_url("sen1floods11")
        lu = srv.listing_url("sen1floods11")
        common = ["--splits", "test", "--base-url", u, "--listing-url", lu, "--no-progress", "--backoff", "0.01"]
        assert cli_main(["download", str(out), "--dry-run", *common]) == 0
        printed = capsys.readouterr().out
        assert "Ghana_999_S1Hand.tif" in printed and "dry run, nothing written" in printed
        assert not out.exists()
        assert cli_main(["download", str(out), *common]) == 1  # Ghana_999 is not on the server
        printed = capsys.readouterr().out
        assert "FAILED" in printed and "Ghana_999_LabelHand.tif" in printed and "HTTP 404" in printed
        assert (lay.layer_dir(out, "S1Hand") / "USA_905409_S1Hand.tif").is_file()
        ok = ["--splits", "none", "--base-url", u, "--listing-url", lu, "--no-progress"]
        assert cli_main(["download", str(out), *ok]) == 0  # metadata only: already complete
        assert "skipped 1 already complete" in capsys.readouterr().out
    assert cli_main(["download", str(out), "--layers", "S1Weak", "--no-progress"]) == 2
    assert "layers" in capsys.readouterr().err
