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

How (:mod:`floodnb.data.http_fetch`, the generic fetcher): a thread pool (one ``requests.Session`` per
thread) streams each file into
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

import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from floodnb.bands import LAYERS
from floodnb.chip_ids import SEN1FLOODS11_ID_RE, chip_event, split_csv_chips
from floodnb.data import http_fetch
from floodnb.data import layout as lay
from floodnb.data.http_fetch import (  # noqa: F401  (FileTask, Failure, DownloadReport, PART_SUFFIX re-exported)
    PART_SUFFIX,
    TIFF_MAGIC,
    DownloadReport,
    Failure,
    FileTask,
    _check_url,
    _new_session,
    _object_url,
    _Permanent,
    _raise_for_status,
    _with_retries,
    content_problem,
    fetch_all,
    human_bytes,
)

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


def list_objects(prefix: str, *, listing_url: str = DEFAULT_LISTING_URL,
                 **kwargs) -> dict[str, tuple[int, str | None]]:
    """:func:`floodnb.data.http_fetch.list_objects` defaulting to the Sen1Floods11 bucket's listing."""
    return http_fetch.list_objects(prefix, listing_url=listing_url, **kwargs)


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
    splits, layers, weak_layers, events = _check_plan_arguments(
        splits=splits, layers=layers, weak=weak, weak_layers=weak_layers, include_v10_s2=include_v10_s2,
        events=events, max_weak_chips=max_weak_chips, base_url=base_url, listing_url=listing_url,
        v10_base_url=v10_base_url, v10_listing_url=v10_listing_url, retries=retries, timeout=timeout,
        backoff=backoff)
    planner = _Planner(out_root, base_url=base_url, listing_url=listing_url, retries=retries, timeout=timeout,
                       backoff=backoff, events=events)
    try:
        meta_rel = lay.metadata_path(Path())
        planner.add(meta_rel, planner.listing(_v11_object(meta_rel)))
        if splits:
            planner.add_hand(splits, layers)
        weak_chips = planner.add_weak(weak_layers, max_weak_chips=max_weak_chips) if weak else None
        if include_v10_s2:
            planner.add_v10_s2(weak_chips, max_weak_chips=max_weak_chips, base_url=v10_base_url,
                               listing_url=v10_listing_url)
    finally:
        planner.session.close()
    return Plan(tuple(planner.tasks.values()), tuple(planner.failed))


def _check_plan_arguments(*, splits, layers, weak: bool, weak_layers, include_v10_s2: bool, events,
                          max_weak_chips: int | None, base_url: str, listing_url: str | None, v10_base_url: str,
                          v10_listing_url: str, retries: int, timeout: float, backoff: float
                          ) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...], tuple[str, ...] | None]:
    """:func:`plan`'s arguments checked (ValueError naming the first bad one) and normalised:
    ``(splits, layers, weak_layers, events)`` as tuples (``events`` None = every event).
    """
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

    return splits, layers, weak_layers, events


class _Planner:
    """Collects the :class:`FileTask` s of a plan (one per destination, first wins) and the
    :class:`Failure` s of the index files (listings, split CSVs) read while planning.
    """

    def __init__(self, out_root: Path, *, base_url: str, listing_url: str | None, retries: int, timeout: float,
                 backoff: float, events: tuple[str, ...] | None) -> None:
        self.out_root, self.base_url, self.listing_url = out_root, base_url, listing_url
        self.retries, self.timeout, self.backoff = retries, timeout, backoff
        self.events = events
        self.stop = threading.Event()
        self.session = _new_session()
        self.tasks: dict[Path, FileTask] = {}
        self.failed: list[Failure] = []

    def keep_event(self, chip: str) -> bool:
        return self.events is None or chip_event(chip) in self.events

    def listing(self, prefix: str, url: str | None = None, *, default: bool = True
                ) -> dict[str, tuple[int, str | None]] | None:
        """Objects under ``prefix`` of listing ``url`` (the bucket's by default; ``{}`` when there is
        none); None, with a recorded failure, when the listing fails.
        """
        url = self.listing_url if default and url is None else url
        if url is None:
            return {}
        try:
            return list_objects(prefix, listing_url=url, session=self.session, retries=self.retries,
                                timeout=self.timeout, backoff=self.backoff)
        except RuntimeError as exc:
            self.failed.append(Failure(f"{url}?prefix={prefix}", None,
                                       f"{exc} (files under this prefix are fetched without listing sizes/MD5s; "
                                       "weak chips under it are not found)"))
            return None

    def add(self, rel: Path, index: dict[str, tuple[int, str | None]] | None, *, base: str | None = None,
            name: str | None = None) -> None:
        """Plan ``out_root / rel`` from object ``name`` (default: ``rel`` in the v1.1 bucket) of
        ``base`` (default: the bucket URL), with size/MD5 from ``index`` when listed.
        """
        obj = name if name is not None else _v11_object(rel)
        size, md5 = (index or {}).get(obj, (None, None))
        dest = self.out_root / rel
        self.tasks.setdefault(dest, FileTask(_object_url(base or self.base_url, obj), dest, size, md5))

    def _read_split_csv(self, url: str) -> list[str]:
        def _get_csv() -> str:
            resp = self.session.get(url, timeout=self.timeout)
            with resp:
                _raise_for_status(resp, url)
                return resp.content.decode("utf-8-sig")

        text = _with_retries(_get_csv, retries=self.retries, backoff=self.backoff, stop=self.stop)
        assert isinstance(text, str)
        return _chips_from_split_csv(text, url)

    def add_hand(self, splits: tuple[str, ...], layers: tuple[str, ...]) -> None:
        """The split CSVs and, for every chip they name (of the kept events), the hand ``layers``."""
        hand_chips: list[str] = []
        splits_rel = lay.splits_dir(Path())
        split_index = self.listing(_v11_object(splits_rel) + "/")
        for split in splits:
            rel = splits_rel / lay.split_csv_name(split)
            self.add(rel, split_index)
            url = _object_url(self.base_url, _v11_object(rel))
            try:
                chips = self._read_split_csv(url)
            except (_Permanent, ValueError) as exc:
                self.failed.append(Failure(url, self.out_root / rel, f"cannot read split CSV: {exc}"))
                self.tasks.pop(self.out_root / rel, None)
                continue
            hand_chips.extend(c for c in chips if c not in hand_chips and self.keep_event(c))
        for layer in layers:
            layer_rel = lay.layer_dir(Path(), layer)
            index = self.listing(_v11_object(layer_rel) + "/")
            for chip in hand_chips:
                self.add(layer_rel / lay.chip_file_name(chip, layer), index)

    def add_weak(self, weak_layers: tuple[str, ...], *, max_weak_chips: int | None) -> list[str]:
        """The weak ``weak_layers`` of every listed weak chip (kept events, first ``max_weak_chips``
        in name order); returns those chips.
        """
        indexes: dict[str, dict[str, tuple[int, str | None]]] = {}
        for layer in weak_layers:
            index = self.listing(_v11_object(lay.layer_dir(Path(), layer)) + "/")
            if index is not None:
                indexes[layer] = index
        found: dict[tuple[str, str], str] = {}
        for layer, index in indexes.items():
            suffix = "_" + lay.chip_file_name("X", layer).split("_", 1)[1]  # "_<Layer>.tif"
            for name in index:
                base = name.rsplit("/", 1)[-1]
                if base.endswith(suffix) and SEN1FLOODS11_ID_RE.match(base[: -len(suffix)]):
                    found[(base[: -len(suffix)], layer)] = name
        weak_chips = sorted({c for c, _ in found if self.keep_event(c)})
        if max_weak_chips is not None:
            weak_chips = weak_chips[:max_weak_chips]
        for chip in weak_chips:
            for layer in weak_layers:
                if (chip, layer) in found:
                    self.add(lay.layer_dir(Path(), layer) / lay.chip_file_name(chip, layer), indexes[layer])
        return weak_chips

    def add_v10_s2(self, weak_chips: list[str] | None, *, max_weak_chips: int | None, base_url: str,
                   listing_url: str) -> None:
        """Weak-chip Sentinel-2 of the v1.0 bucket: for ``weak_chips`` when given, else for every
        listed chip (kept events, first ``max_weak_chips``).
        """
        index = self.listing(V10_S2_PREFIX, listing_url, default=False)
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
            s2_chips = sorted(c for c in s2_by_chip if self.keep_event(c))
            if max_weak_chips is not None:
                s2_chips = s2_chips[:max_weak_chips]
        s2_dir = lay.layer_dir(Path(), "S2Weak")
        for chip in s2_chips:
            self.add(s2_dir / lay.chip_file_name(chip, "S2Weak"), index, base=base_url, name=s2_by_chip[chip])


# ----------------------------------------------------------------------------- fetching


def download(out_root: str | Path, *, workers: int = 8, retries: int = 4, timeout: float = 60, backoff: float = 1.0,
             overwrite: bool = False, progress: bool = True, **selection) -> DownloadReport:
    """Fetch the files of :func:`plan` into ``out_root`` (official layout); see the module docstring.

    ``selection``: the keyword arguments of :func:`plan` that choose the files (``splits``,
    ``layers``, ``weak``, ``weak_layers``, ``include_v10_s2``, ``events``, ``max_weak_chips``,
    ``base_url``, ``listing_url``, ``v10_base_url``, ``v10_listing_url``), with its defaults.
    ``workers`` parallel downloads; ``retries`` retries per file after the first attempt, waiting
    ``backoff * 2**attempt`` seconds (at least the server's ``Retry-After``, at most 60 s);
    ``timeout`` seconds per connect/read. Nothing already in ``out_root`` is deleted or truncated:
    complete files are skipped, differing files are reported (replaced only with ``overwrite=True``,
    and then only once the new copy is verified). Returns a :class:`DownloadReport`; failures do
    not raise (check ``report.ok``). Ctrl-C stops the workers and keeps the ``.part`` files.
    """
    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    the_plan = plan(out_root, retries=retries, timeout=timeout, backoff=backoff, **selection)
    return fetch_all(the_plan.tasks, workers=workers, retries=retries, timeout=timeout, backoff=backoff,
                     overwrite=overwrite, progress=progress, known_bytes=the_plan.known_bytes,
                     failed=the_plan.failed, desc="Sen1Floods11")
