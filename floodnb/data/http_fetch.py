"""A resumable, verifying HTTP(S) file fetcher, and the Google Cloud Storage JSON object listing.

Generic: nothing here knows Sen1Floods11 (its planning is :mod:`floodnb.data.download`).

* :func:`fetch_all` — fetch :class:`FileTask` s with a thread pool (one ``requests.Session``
  per thread). Each file streams into ``<final name>.part``; a transient error (connection
  error, timeout, HTTP 408/425/429/5xx) is retried with exponential backoff (at least the
  server's ``Retry-After``, at most 60 s) and resumes the ``.part`` with an HTTP ``Range``
  request (a server that ignores ``Range`` gets the file restarted from byte 0). A finished
  ``.part`` is checked against the expected size and MD5 (task or ``x-goog-hash`` header, base64)
  and its content (:func:`content_problem`), and only then ``os.replace`` d onto the final name.
  Complete files are skipped; a differing file is reported and kept unless ``overwrite``.
  Failures are collected by name in the :class:`DownloadReport`; the other files still finish.
* :func:`list_objects` — ``{name: (size, md5)}`` of the objects under a prefix (GCS JSON API).
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

import requests

from floodnb import __version__

__all__ = ["PART_SUFFIX", "TIFF_MAGIC", "DownloadReport", "Failure", "FileTask", "content_problem", "fetch_all",
           "human_bytes", "list_objects"]

PART_SUFFIX = ".part"

_CHUNK = 1 << 16  # 64 KiB: a dropped connection loses at most this much of the .part
_MAX_BACKOFF_S = 60.0
_TRANSIENT_STATUS = frozenset({408, 425, 429})


class FileTask(NamedTuple):
    """One file to fetch: ``url`` -> ``dest``; ``size`` in bytes and base64 ``md5`` when known."""

    url: str
    dest: Path
    size: int | None
    md5: str | None


@dataclass(frozen=True)
class Failure:
    """A file (or an index: split CSV, listing) that could not be fetched, and why."""

    url: str
    dest: Path | None
    reason: str

    def __str__(self) -> str:
        where = f" -> {self.dest}" if self.dest is not None else ""
        return f"{self.url}{where}: {self.reason}"


@dataclass(frozen=True)
class DownloadReport:
    """Outcome of :func:`download`: final paths per outcome, failures by name, bytes received."""

    downloaded: tuple[Path, ...]
    skipped: tuple[Path, ...]
    failed: tuple[Failure, ...]
    resumed: tuple[Path, ...]
    bytes_downloaded: int

    @property
    def ok(self) -> bool:
        return not self.failed

    def summary(self) -> str:
        lines = [
            f"downloaded {len(self.downloaded)} file(s) ({human_bytes(self.bytes_downloaded)}"
            + (f", {len(self.resumed)} resumed" if self.resumed else "")
            + f"), skipped {len(self.skipped)} already complete, failed {len(self.failed)}"
        ]
        lines += [f"  FAILED {f}" for f in sorted(self.failed, key=lambda f: f.url)]
        return "\n".join(lines)


# ----------------------------------------------------------------------------- errors / HTTP


class _Transient(Exception):
    def __init__(self, msg: str, retry_after: float | None = None):
        super().__init__(msg)
        self.retry_after = retry_after


class _Permanent(Exception):
    pass


class _Stopped(Exception):
    pass


def _is_transient_status(code: int) -> bool:
    return code in _TRANSIENT_STATUS or 500 <= code <= 599


def _retry_after(resp: requests.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    if value.strip().isdigit():
        return float(value.strip())
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _raise_for_status(resp: requests.Response, url: str) -> None:
    code = resp.status_code
    if code < 400:
        return
    msg = f"HTTP {code} {resp.reason or ''}".strip()
    if _is_transient_status(code):
        raise _Transient(msg, _retry_after(resp))
    raise _Permanent(msg)


def _sleep_before_retry(attempt: int, backoff: float, retry_after: float | None, stop: threading.Event) -> None:
    delay = min(_MAX_BACKOFF_S, backoff * (2**attempt))
    if retry_after is not None:
        delay = max(delay, min(_MAX_BACKOFF_S, retry_after))
    if stop.wait(delay):
        raise _Stopped()


def _with_retries(fn: Callable[[], object], *, retries: int, backoff: float, stop: threading.Event) -> object:
    """Call ``fn``; on a transient error wait ``backoff * 2**attempt`` s and retry, ``retries`` times."""
    attempt = 0
    while True:
        try:
            return fn()
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            err: _Transient = _Transient(f"{type(exc).__name__}: {exc}")
        except _Transient as exc:
            err = exc
        if attempt >= retries:
            raise _Permanent(f"gave up after {attempt + 1} attempt(s): {err}")
        _sleep_before_retry(attempt, backoff, err.retry_after, stop)
        attempt += 1


def _md5_b64_of_file(path: Path) -> str:
    h = hashlib.md5()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return base64.b64encode(h.digest()).decode("ascii")


def _goog_md5(resp: requests.Response) -> str | None:
    """base64 MD5 from ``x-goog-hash: crc32c=...,md5=...`` (None when absent)."""
    for header in resp.headers.get("x-goog-hash", "").split(","):
        key, _, value = header.strip().partition("=")
        if key.lower() == "md5" and value:
            return value.strip()
    return None


def _content_range_total(value: str) -> tuple[int, int | None]:
    """(first byte, total or None) from ``bytes a-b/total``; ValueError when malformed."""
    unit, _, spec = value.strip().partition(" ")
    if unit != "bytes" or "/" not in spec:
        raise ValueError(value)
    rng, _, total = spec.partition("/")
    first = int(rng.split("-", 1)[0])
    return first, (None if total == "*" else int(total))


#: first bytes of a TIFF (classic and BigTIFF, little and big endian)
TIFF_MAGIC: tuple[bytes, ...] = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")


def content_problem(path: Path, name: str, content_type: str | None = None) -> str | None:
    """Why the downloaded ``path`` cannot be the object ``name``, or None when it can.

    An HTML answer (``Content-Type: text/html``, e.g. a proxy's or portal's error page sent with
    status 200) is never an object of the bucket; a ``.tif``/``.tiff`` object must start with the
    TIFF magic bytes (:data:`TIFF_MAGIC`).
    """
    ctype = (content_type or "").split(";", 1)[0].strip().lower()
    if ctype in ("text/html", "application/xhtml+xml"):
        return f"the server sent an HTML page (Content-Type {content_type!r}), not the file"
    if name.lower().endswith((".tif", ".tiff")):
        with open(path, "rb") as f:
            head = f.read(4)
        if head not in TIFF_MAGIC:
            return (f"the server sent {path.stat().st_size} bytes that are not a TIFF (they start with {head!r}, "
                    "expected II*\\0 or MM\\0*)")
    return None


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"


def _object_url(base_url: str, name: str) -> str:
    return f"{base_url.rstrip('/')}/{quote(name, safe='/')}"


def _check_url(value: str, arg: str) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ValueError(f"{arg} must be an http(s):// URL, got {value!r}")
    return value


# ----------------------------------------------------------------------------- listing


def list_objects(
    prefix: str,
    *,
    listing_url: str,
    session: requests.Session | None = None,
    retries: int = 4,
    timeout: float = 60,
    backoff: float = 1.0,
) -> dict[str, tuple[int, str | None]]:
    """Objects under ``prefix`` from the GCS JSON listing API: ``{name: (size bytes, base64 md5 or None)}``.

    Follows ``nextPageToken`` pages. Transient errors are retried; a permanent one raises
    ``RuntimeError`` naming the listing URL and prefix.
    """
    own = session is None
    sess = session or _new_session()
    stop = threading.Event()
    out: dict[str, tuple[int, str | None]] = {}
    token: str | None = None
    try:
        while True:
            params = {"prefix": prefix, "maxResults": "1000", "fields": "items(name,size,md5Hash),nextPageToken"}
            if token:
                params["pageToken"] = token

            def _get(params: dict[str, str] = params) -> dict:
                resp = sess.get(listing_url, params=params, timeout=timeout)
                with resp:
                    _raise_for_status(resp, listing_url)
                    try:
                        return resp.json()
                    except ValueError as exc:
                        raise _Permanent(f"listing is not JSON: {exc}") from exc

            try:
                page = _with_retries(_get, retries=retries, backoff=backoff, stop=stop)
            except _Permanent as exc:
                raise RuntimeError(f"listing {listing_url}?prefix={prefix} failed: {exc}") from exc
            assert isinstance(page, dict)
            for item in page.get("items", []) or []:
                name = item["name"]
                if name.endswith("/"):
                    continue  # zero-byte folder marker objects
                out[name] = (int(item["size"]), item.get("md5Hash") or None)
            token = page.get("nextPageToken")
            if not token:
                return out
    finally:
        if own:
            sess.close()


def _new_session() -> requests.Session:
    s = requests.Session()
    s.headers["User-Agent"] = f"floodnb/{__version__} (Sen1Floods11 downloader)"
    # Byte-exact files: never let the server or requests transcode (Range offsets are raw bytes).
    s.headers["Accept-Encoding"] = "identity"
    return s


# ----------------------------------------------------------------------------- fetching


class _Progress:
    """Thread-safe byte counter over a tqdm bar; tracks bytes per file so restarts stay honest."""

    def __init__(self, total: int, enabled: bool, desc: str = "download"):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                         desc=desc, disable=not enabled, dynamic_ncols=True)
        self._lock = threading.Lock()

    def add(self, n: int) -> None:
        if n:
            with self._lock:
                self._bar.update(n)

    def grow_total(self, n: int) -> None:
        if n:
            with self._lock:
                self._bar.total = (self._bar.total or 0) + n
                self._bar.refresh()

    def close(self) -> None:
        self._bar.close()


@dataclass
class _Outcome:
    status: str  # "downloaded" | "skipped" | "failed"
    received: int = 0
    resumed: bool = False
    reason: str = ""


class _Fetcher:
    def __init__(self, *, retries: int, timeout: float, backoff: float, overwrite: bool,
                 progress: _Progress, stop: threading.Event):
        self.retries = retries
        self.timeout = timeout
        self.backoff = backoff
        self.overwrite = overwrite
        self.progress = progress
        self.stop = stop
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._lock = threading.Lock()

    def session(self) -> requests.Session:
        s = getattr(self._local, "session", None)
        if s is None:
            s = _new_session()
            self._local.session = s
            with self._lock:
                self._sessions.append(s)
        return s

    def close(self) -> None:
        for s in self._sessions:
            s.close()

    # -- one file ---------------------------------------------------------------------------

    def fetch(self, task: FileTask) -> _Outcome:
        try:
            return self._fetch(task)
        except _Permanent as exc:
            return _Outcome("failed", reason=str(exc))
        except OSError as exc:  # local disk trouble: name it, keep going with the others
            return _Outcome("failed", reason=f"local file error: {exc}")

    def _head(self, task: FileTask) -> tuple[int | None, str | None]:
        def _do() -> tuple[int | None, str | None]:
            resp = self.session().head(task.url, timeout=self.timeout, allow_redirects=True)
            with resp:
                _raise_for_status(resp, task.url)
                length = resp.headers.get("Content-Length")
                return (int(length) if length and length.isdigit() else None), _goog_md5(resp)

        out = _with_retries(_do, retries=self.retries, backoff=self.backoff, stop=self.stop)
        assert isinstance(out, tuple)
        return out

    def _fetch(self, task: FileTask) -> _Outcome:
        dest = task.dest
        size, md5 = task.size, task.md5
        if dest.exists() or dest.is_symlink():
            if not dest.is_file():
                raise _Permanent(f"{dest} exists and is not a regular file; left untouched")
            if size is None and md5 is None:
                size, md5 = self._head(task)
            local = dest.stat().st_size
            same = (size is None or local == size) and (md5 is None or _md5_b64_of_file(dest) == md5)
            if same:
                self.progress.grow_total(-(task.size or 0))
                return _Outcome("skipped")
            if not self.overwrite:
                what = f"{local} bytes, server has {size}" if size is not None and local != size else "MD5 differs"
                self.progress.grow_total(-(task.size or 0))
                raise _Permanent(f"{dest} exists and differs from the server copy ({what}); left untouched "
                                 "(move it away, or pass overwrite=True / --overwrite)")
        if task.size is None and size is not None:
            self.progress.grow_total(size)
        part = dest.with_name(dest.name + PART_SUFFIX)
        state: dict[str, Any] = {"counted": 0, "received": 0, "resumed": False, "known": size}
        attempt = 0
        fresh_retry_done = False
        while True:
            try:
                header_md5 = self._stream(task, part, state)
            except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
                err: _Transient | None = _Transient(f"{type(exc).__name__}: {exc}")
            except _Transient as exc:
                err = exc
            else:
                err = None
            if err is not None:
                if attempt >= self.retries:
                    raise _Permanent(f"gave up after {attempt + 1} attempt(s): {err} "
                                     f"({part.name} kept: the next run resumes it)")
                _sleep_before_retry(attempt, self.backoff, err.retry_after, self.stop)
                attempt += 1
                continue
            want_md5 = md5 or header_md5
            if want_md5 is not None:
                got = _md5_b64_of_file(part)
                if got != want_md5:
                    part.unlink(missing_ok=True)
                    self.progress.add(-state["counted"])
                    state["counted"] = 0
                    if state["resumed"] and not fresh_retry_done:
                        fresh_retry_done = True  # a resumed .part may hold stale bytes: one clean try
                        state["resumed"] = False
                        continue
                    raise _Permanent(f"MD5 mismatch (server {want_md5}, received {got}); "
                                     "the file was not kept under its final name")
            problem = content_problem(part, dest.name, state.get("content_type"))
            if problem is not None:
                part.unlink(missing_ok=True)
                self.progress.add(-state["counted"])
                raise _Permanent(f"{task.url}: {problem}; not kept under {dest.name} (check --base-url / "
                                 "--listing-url: the server answered with something other than the object)")
            os.replace(part, dest)
            return _Outcome("downloaded", received=state["received"], resumed=state["resumed"])

    def _stream(self, task: FileTask, part: Path, state: dict) -> str | None:
        """One GET of ``task`` into ``part`` (resuming it); returns the server's MD5 header if any."""
        known: int | None = state["known"]
        offset = part.stat().st_size if part.exists() else 0
        if known is not None and offset > known:
            offset = self._restart(part, state)
        if offset > state["counted"]:  # bytes left by an earlier run
            self.progress.add(offset - state["counted"])
            state["counted"] = offset
        if known is not None and offset == known and offset > 0:
            state["resumed"] = True
            return None  # complete .part from an earlier run: only verification is left
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        resp = self.session().get(task.url, headers=headers, stream=True, timeout=self.timeout)
        with resp:
            if resp.status_code == 416 and offset:
                self._restart(part, state)
                raise _Transient("HTTP 416 (range not satisfiable): restarting the file")
            _raise_for_status(resp, task.url)
            if resp.headers.get("Content-Encoding", "identity").lower() not in ("identity", ""):
                raise _Permanent(f"server sent Content-Encoding {resp.headers['Content-Encoding']!r}; "
                                 "expected the raw bytes")
            total: int | None
            if resp.status_code == 206 and offset:
                try:
                    first, total = _content_range_total(resp.headers.get("Content-Range", ""))
                except ValueError:
                    first, total = -1, None
                if first != offset:
                    self._restart(part, state)
                    raise _Transient(f"server answered Range {offset}- with Content-Range "
                                     f"{resp.headers.get('Content-Range')!r}: restarting the file")
                mode = "ab"
                state["resumed"] = True
            else:  # 200: the whole object (the server ignored or was not sent a Range)
                if offset:
                    self._restart(part, state)
                    offset = 0
                length = resp.headers.get("Content-Length")
                total = int(length) if length and length.isdigit() else None
                mode = "wb"
            if known is not None and total is not None and total != known:
                raise _Permanent(f"server object has {total} bytes but the listing says {known}")
            if known is None and total is not None:
                self.progress.grow_total(total)
                state["known"] = known = total
            header_md5 = _goog_md5(resp)
            state["content_type"] = resp.headers.get("Content-Type")
            part.parent.mkdir(parents=True, exist_ok=True)
            with open(part, mode) as f:
                for chunk in resp.iter_content(_CHUNK):
                    if self.stop.is_set():
                        raise _Stopped()
                    if chunk:
                        f.write(chunk)
                        state["received"] += len(chunk)
                        state["counted"] += len(chunk)
                        self.progress.add(len(chunk))
                f.flush()
                os.fsync(f.fileno())
        have = part.stat().st_size
        if known is not None and have != known:
            if have < known:
                raise _Transient(f"connection ended after {have} of {known} bytes")
            self._restart(part, state)
            raise _Transient(f"received {have} bytes, more than the expected {known}: restarting the file")
        return header_md5

    def _restart(self, part: Path, state: dict) -> int:
        """Empty our own ``.part`` (never a user file) and un-count its bytes; returns 0."""
        with open(part, "wb"):
            pass
        self.progress.add(-state["counted"])
        state["counted"] = 0
        state["resumed"] = False
        return 0


def fetch_all(tasks: Iterable[FileTask], *, workers: int, retries: int, timeout: float, backoff: float,
              overwrite: bool, progress: bool, known_bytes: int = 0, failed: Sequence[Failure] = (),
              desc: str = "download") -> DownloadReport:
    """Fetch every task with ``workers`` threads (see the module doc); ``failed``: failures known
    before fetching (reported too). ``known_bytes``: the progress bar's starting total. Failures do
    not raise (check ``report.ok``); Ctrl-C stops the workers and keeps the ``.part`` files.
    ``desc``: the progress bar's label.
    """
    bar = _Progress(known_bytes, progress, desc)
    stop = threading.Event()
    fetcher = _Fetcher(retries=retries, timeout=timeout, backoff=backoff, overwrite=overwrite,
                       progress=bar, stop=stop)
    downloaded: list[Path] = []
    skipped: list[Path] = []
    resumed: list[Path] = []
    failures: list[Failure] = list(failed)
    received = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floodnb-download")
    try:
        futures = {pool.submit(fetcher.fetch, t): t for t in tasks}
        for fut in as_completed(futures):
            task = futures[fut]
            out = fut.result()
            received += out.received
            if out.status == "downloaded":
                downloaded.append(task.dest)
                if out.resumed:
                    resumed.append(task.dest)
            elif out.status == "skipped":
                skipped.append(task.dest)
            else:
                failures.append(Failure(task.url, task.dest, out.reason))
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        fetcher.close()
        bar.close()
    return DownloadReport(tuple(sorted(downloaded)), tuple(sorted(skipped)), tuple(failures),
                          tuple(sorted(resumed)), received)
