"""floodnb.data.http_fetch on its own: generic tasks (no Sen1Floods11 planning) against the local bucket server."""

from __future__ import annotations

from pathlib import Path

import pytest
from _http_server import BucketServer, Faults, make_weak_objects, md5_b64

from floodnb.data.http_fetch import PART_SUFFIX, FileTask, content_problem, fetch_all, human_bytes, list_objects

KW = dict(workers=2, retries=3, timeout=10, backoff=0.0, overwrite=False, progress=False)


@pytest.fixture()
def objects(tmp_path) -> dict[str, Path]:
    return make_weak_objects(tmp_path / "src", ["Ghana_1", "Ghana_2", "USA_3"], ["S1Weak"], nbytes=200_000)


def _tasks(srv: BucketServer, objects: dict[str, Path], out: Path, *, listed: bool) -> list[FileTask]:
    return [FileTask(f"{srv.base_url('b')}/{name}", out / Path(name).name,
                     f.stat().st_size if listed else None, md5_b64(f.read_bytes()) if listed else None)
            for name, f in objects.items()]


def test_listing_pages_and_fetch_with_faults_resumes(tmp_path, objects):
    names = sorted(objects)
    faults = Faults(fail_first={names[0]: (2, 503)}, drop_after={names[1]: (1, 70_000)})
    with BucketServer({"b": objects}, faults=faults, page_size=2) as srv:
        index = list_objects("v1.1/data/", listing_url=srv.listing_url("b"), retries=1, backoff=0.0)
        assert set(index) == set(objects)
        assert all(index[n] == (f.stat().st_size, md5_b64(f.read_bytes())) for n, f in objects.items())
        out = tmp_path / "out"
        report = fetch_all(_tasks(srv, objects, out, listed=True), known_bytes=1, **KW)
        assert report.ok and len(report.downloaded) == 3 and not report.skipped
        assert out / Path(names[1]).name in report.resumed  # the dropped body was continued with Range
        assert any(r.range and r.status == 206 for r in srv.requests_for(names[1]))
        for name, f in objects.items():
            assert (out / Path(name).name).read_bytes() == f.read_bytes()
        assert not list(out.glob(f"*{PART_SUFFIX}"))
        again = fetch_all(_tasks(srv, objects, out, listed=False), **KW)  # sizes/MD5 from HEAD
        assert again.ok and len(again.skipped) == 3 and not again.downloaded and again.bytes_downloaded == 0


def test_failures_are_named_and_never_reach_final_names(tmp_path, objects):
    names = sorted(objects)
    faults = Faults(missing={names[0]}, wrong_md5_listing={names[1]})
    with BucketServer({"b": objects}, faults=faults) as srv:
        out = tmp_path / "out"
        index = list_objects("v1.1/", listing_url=srv.listing_url("b"), backoff=0.0)
        tasks = [FileTask(f"{srv.base_url('b')}/{n}", out / Path(n).name, *index[n]) for n in names]
        report = fetch_all(tasks, **KW)
        reasons = {Path(f.dest).name: f.reason for f in report.failed}
        assert "HTTP 404" in reasons[Path(names[0]).name] and "MD5 mismatch" in reasons[Path(names[1]).name]
        assert not (out / Path(names[0]).name).exists() and not (out / Path(names[1]).name).exists()
        assert (out / Path(names[2]).name).read_bytes() == objects[names[2]].read_bytes()
        assert not report.ok and "FAILED" in report.summary()
        (out / Path(names[2]).name).write_bytes(b"II*\x00local edit")
        kept = fetch_all(tasks[2:], **KW)
        assert "differs from the server copy" in kept.failed[0].reason
        assert (out / Path(names[2]).name).read_bytes() == b"II*\x00local edit"


def test_content_problem_and_human_bytes(tmp_path):
    page = tmp_path / "x.tif"
    page.write_bytes(b"<html>error</html>")
    assert "HTML page" in content_problem(page, "x.tif", "text/html; charset=utf-8")
    assert "not a TIFF" in content_problem(page, "x.tif")
    assert content_problem(page, "x.csv") is None
    page.write_bytes(b"MM\x00*rest")
    assert content_problem(page, "x.tif") is None
    assert human_bytes(512) == "512 B" and human_bytes(3 * 1024 * 1024) == "3.0 MiB"
