"""Download a chosen subset of the public Sen1Floods11 bucket over HTTPS into the official layout.

Dataset: Bonafilia et al. 2020, *Sen1Floods11* (CVPR Workshops), bucket ``gs://sen1floods11``
(served over HTTPS at ``https://storage.googleapis.com/sen1floods11``). Files land under
``out_root`` exactly where :mod:`floodnb.data.layout` puts them (``<out_root>/v1.1/...``), so
:func:`floodnb.data.catalog.build_catalog` reads the result directly.

Which files:

* ``v1.1/Sen1Floods11_Metadata.geojson`` (event metadata), always;
* the split CSVs ``v1.1/splits/flood_handlabeled/flood_<split>_data.csv`` of the chosen splits,
  and for every hand-labelled chip they name, the chosen hand layers (``S1Hand``, ``LabelHand``, ...);
* with ``weak=True``, the chosen weak layers of every weak chip. Weak chips have no CSV: they are
  found with the Google Cloud Storage JSON listing API
  (``<listing_url>?prefix=v1.1/data/flood_events/WeaklyLabeled/<Layer>/&pageToken=...``);
* with ``include_v10_s2=True``, weak-chip Sentinel-2, which exists only in the v1.0 release
  (bucket ``gs://cnn_chips``, folder ``S2_NoQC/``, objects ``<Event>_<id>_S2.tif``), listed the
  same way and stored under ``<out_root>/v1.0/data/flood_events/WeaklyLabeled/S2_NoQC/``.

How: a thread pool (one ``requests.Session`` per thread) streams each file into
``<final name>.part``; a transient error (connection error, timeout, HTTP 408/429/5xx) is retried
with exponential backoff and the retry resumes the ``.part`` with an HTTP ``Range`` request (a
server that ignores ``Range`` gets the file restarted from byte 0). A killed run leaves its
``.part`` files and the next run continues them the same way. A finished ``.part`` is checked
against the expected size (listing ``size`` or ``Content-Length``) and, where the server gives one,
the MD5 (listing ``md5Hash`` or the ``x-goog-hash: md5=...`` header, both base64) and its content
(:func:`content_problem`: no HTML page, TIFF magic bytes for ``.tif``), and only then
moved onto the final name with ``os.replace`` -- a truncated or corrupt file never appears under a
final name. Files already complete (same size and MD5) are skipped. A file that exists but differs
from the server copy is reported and left untouched unless ``overwrite=True``. Permanent errors
(404, 403, checksum mismatch) are collected by name in the :class:`DownloadReport`; the other files
still finish.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import NamedTuple
from urllib.parse import quote

import requests

from floodnb import __version__
from floodnb.bands import LAYERS
from floodnb.chip_ids import SEN1FLOODS11_ID_RE, chip_event, split_csv_chips
from floodnb.data import layout as lay

__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_LISTING_URL",
    "DEFAULT_V10_BASE_URL",
    "DEFAULT_V10_LISTING_URL",
    "HAND_LAYERS",
    "WEAK_LAYERS",
    "PART_SUFFIX",
    "FileTask",
    "Failure",
    "Plan",
    "DownloadReport",
    "list_objects",
    "human_bytes",
    "plan",
    "download",
]

DEFAULT_BASE_URL = "https://storage.googleapis.com/sen1floods11"
DEFAULT_LISTING_URL = "https://storage.googleapis.com/storage/v1/b/sen1floods11/o"
#: v1.0 release bucket: the only public home of weak-chip Sentinel-2 (``S2_NoQC/``).
DEFAULT_V10_BASE_URL = "https://storage.googleapis.com/cnn_chips"
DEFAULT_V10_LISTING_URL = "https://storage.googleapis.com/storage/v1/b/cnn_chips/o"
V10_S2_PREFIX = f"{lay.V10_WEAK_S2_FOLDER}/"

HAND_LAYERS: tuple[str, ...] = tuple(n for n, s in LAYERS.items() if s.group == "hand")
#: Weak layers in the v1.1 bucket (weak-chip S2 is ``include_v10_s2``, not a v1.1 layer).
WEAK_LAYERS: tuple[str, ...] = tuple(n for n, s in LAYERS.items() if s.group == "weak" and n != "S2Weak")
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
class Plan:
    """The files a download would fetch (iterable like a list of :class:`FileTask`).

    ``failed`` holds index files that could not be read while planning (a split CSV that is
    missing on the server, a listing that failed); the chips they would have named are absent.
    """

    tasks: tuple[FileTask, ...]
    failed: tuple[Failure, ...]

    def __iter__(self) -> Iterator[FileTask]:
        return iter(self.tasks)

    def __len__(self) -> int:
        return len(self.tasks)

    @property
    def known_bytes(self) -> int:
        """Sum of the sizes known from the listing (files of unknown size count 0)."""
        return sum(t.size or 0 for t in self.tasks)


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
    TIFF magic bytes (:data:`TIFF_MAGIC`)."""
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
    listing_url: str = DEFAULT_LISTING_URL,
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


# ----------------------------------------------------------------------------- planning


def _tuple_of_str(value: Sequence[str] | str, arg: str) -> tuple[str, ...]:
    if isinstance(value, str):
        raise ValueError(f"{arg} must be a sequence of names, not the string {value!r}")
    return tuple(value)


def _chips_from_split_csv(text: str, source: str) -> list[str]:
    """Chip ids of a split CSV (``<chip>_S1Hand.tif,<chip>_LabelHand.tif`` rows, CRLF, no header)."""
    return split_csv_chips(text, source)


def _v11_object(rel: Path) -> str:
    """Bucket object name of a path relative to the official-layout root (the bucket mirror)."""
    return PurePosixPath(*rel.parts).as_posix()


def plan(
    out_root: str | Path,
    *,
    splits: Sequence[str] = lay.SPLIT_NAMES,
    layers: Sequence[str] = ("S1Hand", "LabelHand"),
    weak: bool = False,
    weak_layers: Sequence[str] = WEAK_LAYERS,
    include_v10_s2: bool = False,
    events: Sequence[str] | None = None,
    max_weak_chips: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    listing_url: str | None = DEFAULT_LISTING_URL,
    v10_base_url: str = DEFAULT_V10_BASE_URL,
    v10_listing_url: str = DEFAULT_V10_LISTING_URL,
    retries: int = 4,
    timeout: float = 60,
    backoff: float = 1.0,
) -> Plan:
    """Which files :func:`download` would fetch, with sizes/MD5s from the listing; writes nothing.

    Reads the split CSVs over HTTP (small) to learn the hand-labelled chips, and the bucket
    listing for sizes, MD5s and the weak chips. ``splits=()`` fetches no hand-labelled chips;
    ``events`` (e.g. ``("Bolivia",)``) keeps only chips of those events; ``max_weak_chips`` keeps
    the first N weak chips in name order. ``listing_url=None`` skips the listing for hand files
    (sizes/MD5 then come from each response) and is an error together with ``weak`` or
    ``include_v10_s2``. Raises ValueError naming a bad argument.
    """
    out_root = Path(out_root)
    if out_root.exists() and not out_root.is_dir():
        raise ValueError(f"out_root {str(out_root)!r} exists and is not a folder")
    splits = _tuple_of_str(splits, "splits")
    layers = _tuple_of_str(layers, "layers")
    weak_layers = _tuple_of_str(weak_layers, "weak_layers")
    bad = [s for s in splits if s not in lay.SPLIT_NAMES]
    if bad:
        raise ValueError(f"splits: unknown {bad}; expected a subset of {lay.SPLIT_NAMES}")
    bad = [x for x in layers if x not in HAND_LAYERS]
    if bad:
        raise ValueError(f"layers: unknown hand layer(s) {bad}; expected a subset of {HAND_LAYERS}")
    bad = [x for x in weak_layers if x not in WEAK_LAYERS]
    if bad:
        hint = " (weak-chip Sentinel-2 is include_v10_s2=True)" if "S2Weak" in bad else ""
        raise ValueError(f"weak_layers: unknown weak layer(s) {bad}; expected a subset of {WEAK_LAYERS}{hint}")
    if weak and not weak_layers:
        raise ValueError("weak=True needs at least one of weak_layers")
    if events is not None:
        events = _tuple_of_str(events, "events")
        if not events or any(not e for e in events):
            raise ValueError(f"events must be non-empty event names (e.g. 'Bolivia'), got {events!r}")
    if max_weak_chips is not None and max_weak_chips < 1:
        raise ValueError(f"max_weak_chips must be >= 1, got {max_weak_chips}")
    if retries < 0 or timeout <= 0 or backoff < 0:
        raise ValueError(f"retries must be >= 0, timeout > 0 and backoff >= 0 (got {retries}, {timeout}, {backoff})")
    _check_url(base_url, "base_url")
    _check_url(v10_base_url, "v10_base_url")
    if listing_url is not None:
        _check_url(listing_url, "listing_url")
    elif weak or include_v10_s2:
        raise ValueError("weak chips have no split CSV: weak=True / include_v10_s2=True need a listing_url")
    if include_v10_s2:
        _check_url(v10_listing_url, "v10_listing_url")

    keep_event = (lambda chip: True) if events is None else (lambda chip: chip_event(chip) in events)
    stop = threading.Event()
    session = _new_session()
    tasks: dict[Path, FileTask] = {}
    failed: list[Failure] = []
    try:

        def listing(prefix: str, url: str | None = listing_url) -> dict[str, tuple[int, str | None]] | None:
            if url is None:
                return {}
            try:
                return list_objects(prefix, listing_url=url, session=session, retries=retries,
                                    timeout=timeout, backoff=backoff)
            except RuntimeError as exc:
                failed.append(Failure(f"{url}?prefix={prefix}", None,
                                      f"{exc} (files under this prefix are fetched without listing sizes/MD5s; "
                                      "weak chips under it are not found)"))
                return None

        def add(rel: Path, index: dict[str, tuple[int, str | None]] | None, *, base: str = base_url,
                name: str | None = None) -> None:
            obj = name if name is not None else _v11_object(rel)
            size, md5 = (index or {}).get(obj, (None, None))
            dest = out_root / rel
            tasks.setdefault(dest, FileTask(_object_url(base, obj), dest, size, md5))

        meta_rel = lay.metadata_path(Path())
        add(meta_rel, listing(_v11_object(meta_rel)))

        hand_chips: list[str] = []
        if splits:
            splits_rel = lay.splits_dir(Path())
            split_index = listing(_v11_object(splits_rel) + "/")
            for split in splits:
                rel = splits_rel / lay.split_csv_name(split)
                add(rel, split_index)
                url = _object_url(base_url, _v11_object(rel))

                def _get_csv(url: str = url) -> str:
                    resp = session.get(url, timeout=timeout)
                    with resp:
                        _raise_for_status(resp, url)
                        return resp.content.decode("utf-8-sig")

                try:
                    text = _with_retries(_get_csv, retries=retries, backoff=backoff, stop=stop)
                    assert isinstance(text, str)
                    chips = _chips_from_split_csv(text, url)
                except (_Permanent, ValueError) as exc:
                    failed.append(Failure(url, out_root / rel, f"cannot read split CSV: {exc}"))
                    tasks.pop(out_root / rel, None)
                    continue
                hand_chips.extend(c for c in chips if c not in hand_chips and keep_event(c))
            for layer in layers:
                layer_rel = lay.layer_dir(Path(), layer)
                index = listing(_v11_object(layer_rel) + "/")
                for chip in hand_chips:
                    add(layer_rel / lay.chip_file_name(chip, layer), index)

        weak_chips: list[str] | None = None
        if weak:
            indexes: dict[str, dict[str, tuple[int, str | None]]] = {}
            for layer in weak_layers:
                index = listing(_v11_object(lay.layer_dir(Path(), layer)) + "/")
                if index is not None:
                    indexes[layer] = index
            found: dict[tuple[str, str], str] = {}
            for layer, index in indexes.items():
                suffix = "_" + lay.chip_file_name("X", layer).split("_", 1)[1]  # "_<Layer>.tif"
                for name in index:
                    base = name.rsplit("/", 1)[-1]
                    if base.endswith(suffix) and SEN1FLOODS11_ID_RE.match(base[: -len(suffix)]):
                        found[(base[: -len(suffix)], layer)] = name
            weak_chips = sorted({c for c, _ in found if keep_event(c)})
            if max_weak_chips is not None:
                weak_chips = weak_chips[:max_weak_chips]
            for chip in weak_chips:
                for layer in weak_layers:
                    if (chip, layer) in found:
                        add(lay.layer_dir(Path(), layer) / lay.chip_file_name(chip, layer), indexes[layer])

        if include_v10_s2:
            index = listing(V10_S2_PREFIX, v10_listing_url)
            s2_by_chip: dict[str, str] = {}
            for name in sorted(index or {}):
                stem = name.rsplit("/", 1)[-1]
                if not stem.lower().endswith((".tif", ".tiff")):
                    continue
                parts = stem.rsplit(".", 1)[0].split("_")
                if len(parts) >= 2 and SEN1FLOODS11_ID_RE.match(f"{parts[0]}_{parts[1]}"):
                    s2_by_chip.setdefault(f"{parts[0]}_{parts[1]}", name)
            if weak_chips is not None:
                s2_chips = [c for c in weak_chips if c in s2_by_chip]
            else:
                s2_chips = sorted(c for c in s2_by_chip if keep_event(c))
                if max_weak_chips is not None:
                    s2_chips = s2_chips[:max_weak_chips]
            s2_dir = lay.layer_dir(Path(), "S2Weak")
            for chip in s2_chips:
                add(s2_dir / lay.chip_file_name(chip, "S2Weak"), index, base=v10_base_url, name=s2_by_chip[chip])
    finally:
        session.close()
    return Plan(tuple(tasks.values()), tuple(failed))


# ----------------------------------------------------------------------------- fetching


class _Progress:
    """Thread-safe byte counter over a tqdm bar; tracks bytes per file so restarts stay honest."""

    def __init__(self, total: int, enabled: bool):
        from tqdm.auto import tqdm

        self._bar = tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024,
                         desc="Sen1Floods11", disable=not enabled, dynamic_ncols=True)
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
        state = {"counted": 0, "received": 0, "resumed": False, "known": size}
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


def download(
    out_root: str | Path,
    *,
    splits: Sequence[str] = lay.SPLIT_NAMES,
    layers: Sequence[str] = ("S1Hand", "LabelHand"),
    weak: bool = False,
    weak_layers: Sequence[str] = WEAK_LAYERS,
    include_v10_s2: bool = False,
    events: Sequence[str] | None = None,
    max_weak_chips: int | None = None,
    base_url: str = DEFAULT_BASE_URL,
    listing_url: str | None = DEFAULT_LISTING_URL,
    v10_base_url: str = DEFAULT_V10_BASE_URL,
    v10_listing_url: str = DEFAULT_V10_LISTING_URL,
    workers: int = 8,
    retries: int = 4,
    timeout: float = 60,
    backoff: float = 1.0,
    overwrite: bool = False,
    progress: bool = True,
) -> DownloadReport:
    """Fetch the files of :func:`plan` into ``out_root`` (official layout); see the module docstring.

    ``workers`` parallel downloads; ``retries`` retries per file after the first attempt, waiting
    ``backoff * 2**attempt`` seconds (at least the server's ``Retry-After``, at most 60 s);
    ``timeout`` seconds per connect/read. Nothing already in ``out_root`` is deleted or truncated:
    complete files are skipped, differing files are reported (replaced only with ``overwrite=True``,
    and then only once the new copy is verified). Returns a :class:`DownloadReport`; failures do
    not raise (check ``report.ok``). Ctrl-C stops the workers and keeps the ``.part`` files.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    the_plan = plan(out_root, splits=splits, layers=layers, weak=weak, weak_layers=weak_layers,
                    include_v10_s2=include_v10_s2, events=events, max_weak_chips=max_weak_chips,
                    base_url=base_url, listing_url=listing_url, v10_base_url=v10_base_url,
                    v10_listing_url=v10_listing_url, retries=retries, timeout=timeout, backoff=backoff)
    bar = _Progress(the_plan.known_bytes, progress)
    stop = threading.Event()
    fetcher = _Fetcher(retries=retries, timeout=timeout, backoff=backoff, overwrite=overwrite,
                       progress=bar, stop=stop)
    downloaded: list[Path] = []
    skipped: list[Path] = []
    resumed: list[Path] = []
    failed: list[Failure] = list(the_plan.failed)
    received = 0
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="floodnb-download")
    try:
        futures = {pool.submit(fetcher.fetch, t): t for t in the_plan.tasks}
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
                failed.append(Failure(task.url, task.dest, out.reason))
    except BaseException:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    finally:
        pool.shutdown(wait=True)
        fetcher.close()
        bar.close()
    return DownloadReport(tuple(sorted(downloaded)), tuple(sorted(skipped)), tuple(failed),
                          tuple(sorted(resumed)), received)
