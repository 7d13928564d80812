"""A local stand-in for the public Sen1Floods11 bucket(s), for download tests.

:class:`BucketServer` is a threaded HTTP server bound to ``127.0.0.1`` on a free port. It serves
objects of named buckets at ``/<bucket>/<object name>`` (like ``storage.googleapis.com``) from
files *in place* (nothing is copied), emulates the GCS JSON listing API at
``/storage/v1/b/<bucket>/o?prefix=...&pageToken=...`` (items with ``name``, ``size`` as a string,
base64 ``md5Hash``; small pages so paging is exercised), honours ``Range: bytes=a-`` / ``a-b``
with 206 + ``Content-Range`` (416 past the end), sends ``x-goog-hash: crc32c=...,md5=...`` like
GCS, and can inject faults per object: the first N requests answer a status (503, 429, ...), the
first N bodies stop after K bytes and drop the connection, a slow body, a wrong MD5 in the listing or header,
Range ignored, 404. Every request is logged (method, path, Range header, status).

Use as a context manager (the fixture's ``with`` ends it; the serving thread is a daemon)::

    with BucketServer({"sen1floods11": objects}) as srv:
        download(out, base_url=srv.base_url("sen1floods11"), listing_url=srv.listing_url("sen1floods11"))

:func:`shared_bucket_objects` maps the real chips (``../shared/data/sen1floods11`` or the in-repo
fixture ``tests/data/sen1floods11``; short layout) to official
object names; :func:`make_weak_objects` writes small weak-chip files into a temporary folder.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time
import zlib
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

import numpy as np
from _real_data import REAL_ROOT as SHARED  # shared sample, or the in-repo fixture on a bare clone


def shared_bucket_objects(shared: Path = SHARED, *, splits_dir: Path | None = None) -> dict[str, Path]:
    """Bucket object name -> real file for the developer sample (short layout -> official names).

    ``HandLabeled/<Layer>/<f>`` -> ``v1.1/data/flood_events/HandLabeled/<Layer>/<f>``,
    ``splits/<csv>`` -> ``v1.1/splits/flood_handlabeled/<csv>`` (from ``splits_dir`` when given),
    ``Sen1Floods11_Metadata.geojson`` -> ``v1.1/Sen1Floods11_Metadata.geojson``.
    """
    objects: dict[str, Path] = {}
    for f in sorted((shared / "HandLabeled").glob("*/*.tif")):
        objects[f"v1.1/data/flood_events/HandLabeled/{f.parent.name}/{f.name}"] = f
    for f in sorted((splits_dir or shared / "splits").glob("flood_*_data.csv")):
        objects[f"v1.1/splits/flood_handlabeled/{f.name}"] = f
    objects["v1.1/Sen1Floods11_Metadata.geojson"] = shared / "Sen1Floods11_Metadata.geojson"
    return objects


def make_weak_objects(folder: Path, chips: list[str], layers: list[str], *, nbytes: int = 3000,
                      seed: int = 0) -> dict[str, Path]:
    """Write small random weak-chip files ``<chip>_<Layer>.tif`` (TIFF magic bytes, then random bytes;
    the downloader checks the magic) and return their object names.
    """
    rng = np.random.default_rng(seed)
    objects: dict[str, Path] = {}
    for layer in layers:
        d = folder / "WeaklyLabeled" / layer
        d.mkdir(parents=True, exist_ok=True)
        for chip in chips:
            f = d / f"{chip}_{layer}.tif"
            body = rng.integers(0, 256, nbytes + int(rng.integers(0, 500)), dtype=np.uint8).tobytes()
            f.write_bytes(b"II*\x00" + body[4:])
            objects[f"v1.1/data/flood_events/WeaklyLabeled/{layer}/{f.name}"] = f
    return objects


def md5_b64(data: bytes) -> str:
    return base64.b64encode(hashlib.md5(data).digest()).decode("ascii")


@dataclass
class Faults:
    """Per-object fault injection (keys are bucket object names)."""

    fail_first: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (count, status)
    drop_after: dict[str, tuple[int, int]] = field(default_factory=dict)  # name -> (count, body bytes)
    missing: set[str] = field(default_factory=set)  # 404 although the object exists
    wrong_md5_listing: set[str] = field(default_factory=set)
    wrong_md5_header: set[str] = field(default_factory=set)
    ignore_range: bool = False
    md5_header: bool = True
    retry_after: str | None = None  # Retry-After value sent with injected failures
    throttle: dict[str, float] = field(default_factory=dict)  # name -> seconds per 64 KiB of body


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    range: str | None
    status: int


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: object, client_address: object) -> None:
        import sys

        if isinstance(sys.exc_info()[1], (ConnectionError, TimeoutError)):
            return  # a client that hung up (killed, or gave up mid-body) is part of the tests
        super().handle_error(request, client_address)


class BucketServer:
    """Threaded HTTP server for ``{bucket: {object name: file}}``; see the module docstring."""

    def __init__(self, buckets: dict[str, dict[str, Path]], *, faults: Faults | None = None, page_size: int = 4):
        self.buckets = buckets
        self.faults = faults or Faults()
        self.page_size = page_size
        self.log: list[Request] = []
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:  # quiet
                pass

            def do_HEAD(self) -> None:
                server._handle(self, head=True)

            def do_GET(self) -> None:
                server._handle(self, head=False)

        self._httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="bucket-server", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def root(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def base_url(self, bucket: str) -> str:
        return f"{self.root}/{bucket}"

    def listing_url(self, bucket: str) -> str:
        return f"{self.root}/storage/v1/b/{bucket}/o"

    def __enter__(self) -> BucketServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)

    # -- helpers for tests -------------------------------------------------------------------

    def requests_for(self, name: str, method: str = "GET") -> list[Request]:
        """Logged requests for an object name (any bucket)."""
        with self._lock:
            return [r for r in self.log if r.method == method and r.path.split("/", 1)[-1] == name]

    def _count(self, kind: str, name: str) -> int:
        with self._lock:
            n = self._counts.get((kind, name), 0)
            self._counts[(kind, name)] = n + 1
            return n

    def _record(self, h: BaseHTTPRequestHandler, status: int) -> None:
        with self._lock:
            self.log.append(Request(h.command, unquote(urlsplit(h.path).path).lstrip("/"),
                                    h.headers.get("Range"), status))

    # -- handling ----------------------------------------------------------------------------

    def _start(self, h: BaseHTTPRequestHandler, status: int, headers: dict[str, str], length: int) -> None:
        """Log the request and send the status line and headers (Content-Length = ``length``)."""
        self._record(h, status)
        h.send_response(status)
        for k, v in headers.items():
            h.send_header(k, v)
        h.send_header("Content-Length", str(length))
        h.end_headers()

    def _send(self, h: BaseHTTPRequestHandler, status: int, body: bytes, headers: dict[str, str],
              head: bool, *, delay: float = 0.0) -> None:
        self._start(h, status, headers, len(body))
        if head:
            return
        if not delay:
            h.wfile.write(body)
            return
        for i in range(0, len(body), 65536):  # a slow link: lets a test kill the client mid-file
            try:
                h.wfile.write(body[i : i + 65536])
                h.wfile.flush()
            except OSError:  # client went away
                h.close_connection = True
                return
            time.sleep(delay)

    def _handle(self, h: BaseHTTPRequestHandler, *, head: bool) -> None:
        url = urlsplit(h.path)
        path = unquote(url.path).lstrip("/")
        parts = path.split("/")
        if len(parts) == 5 and parts[:3] == ["storage", "v1", "b"] and parts[4] == "o":
            return self._listing(h, parts[3], parse_qs(url.query), head)
        bucket, _, name = path.partition("/")
        files = self.buckets.get(bucket)
        if files is None or name not in files or name in self.faults.missing:
            return self._send(h, 404, b"No such object", {"Content-Type": "text/plain"}, head)
        f = self.faults
        if name in f.fail_first:
            count, status = f.fail_first[name]
            if self._count("fail", name) < count:
                extra = {"Retry-After": f.retry_after} if f.retry_after else {}
                return self._send(h, status, b"injected failure", {"Content-Type": "text/plain", **extra}, head)
        data = files[name].read_bytes()
        headers = {"Content-Type": "application/octet-stream", "Accept-Ranges": "bytes"}
        if f.md5_header:
            md5 = md5_b64(b"not the data") if name in f.wrong_md5_header else md5_b64(data)
            crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
            headers["x-goog-hash"] = f"crc32c={crc},md5={md5}"
        status, body = 200, data
        rng = h.headers.get("Range")
        if rng and not f.ignore_range and rng.startswith("bytes="):
            a_s, _, b_s = rng[len("bytes="):].partition("-")
            a = int(a_s)
            b = int(b_s) if b_s else len(data) - 1
            if a >= len(data):
                headers["Content-Range"] = f"bytes */{len(data)}"
                return self._send(h, 416, b"", headers, head)
            b = min(b, len(data) - 1)
            status, body = 206, data[a : b + 1]
            headers["Content-Range"] = f"bytes {a}-{b}/{len(data)}"
        if not head and name in f.drop_after:
            count, nbytes = f.drop_after[name]
            if self._count("drop", name) < count and nbytes < len(body):
                self._start(h, status, headers, len(body))
                h.wfile.write(body[:nbytes])
                h.wfile.flush()
                h.close_connection = True
                try:
                    h.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return None
        return self._send(h, status, body, headers, head, delay=f.throttle.get(name, 0.0))

    def _listing(self, h: BaseHTTPRequestHandler, bucket: str, query: dict[str, list[str]], head: bool) -> None:
        files = self.buckets.get(bucket)
        if files is None:
            return self._send(h, 404, b'{"error": "no such bucket"}', {"Content-Type": "application/json"}, head)
        prefix = query.get("prefix", [""])[0]
        start = int(query.get("pageToken", ["0"])[0])
        names = sorted(n for n in files if n.startswith(prefix))
        page = names[start : start + self.page_size]
        items = []
        for n in page:
            data = files[n].read_bytes()
            md5 = md5_b64(b"not the data") if n in self.faults.wrong_md5_listing else md5_b64(data)
            items.append({"kind": "storage#object", "name": n, "bucket": bucket, "size": str(len(data)),
                          "md5Hash": md5})
        doc: dict[str, object] = {"kind": "storage#objects"}
        if items:
            doc["items"] = items
        if start + self.page_size < len(names):
            doc["nextPageToken"] = str(start + self.page_size)
        return self._send(h, 200, json.dumps(doc).encode(), {"Content-Type": "application/json"}, head)
