"""Chip arrays and packed map-layer images of a run, shared by dashboard sessions: a bounded LRU with prefetch.

A chip switch in the dashboard (:mod:`floodnb.viz.dashboard`) needs the chip's arrays (GeoTIFFs
read by :func:`floodnb.viz.chip_arrays.load_chip_arrays`, about 0.15-0.3 s for a 512 x 512
Sen1Floods11 chip) and every visible layer as a packed ``uint32 (H, W)`` image
(:func:`floodnb.viz.maplayers.chip_layers` then :func:`~floodnb.viz.maplayers.rgba_to_uint32`,
bottom-up rows as Bokeh's ``image_rgba`` wants). :class:`LayerCache` keeps both, least recently
used first out:

* chips keyed by (run, chip id, model), at most ``max_chips`` (a 512 x 512 chip with its 13
  Sentinel-2 bands is about 20 MB);
* images keyed by (run, chip id, layer), plus the model for the model's layers (prediction,
  probability, disagreement) and the threshold for the probability layer, at most
  ``max_images`` (1 MB each at 512 x 512). A new model or threshold is a new key, so nothing
  stale is ever served; ``None`` (layer not available for the chip) is cached too.

Images are read-only arrays handed to every session as they are (the served dashboard shares one
cache among its sessions: chips a reviewer opened are ready for the next one).
:meth:`LayerCache.prefetch` fills the cache for the chips a reviewer is likely to open next (the
table's neighbouring rows) on one background thread, newest request first, and only while the
foreground has asked for nothing for ``quiet_s`` seconds (prefetching shares the interpreter
with the server, so it waits out chip switches); a chip asked for in the foreground while the
thread is loading it is waited for, not loaded twice.
"""

from __future__ import annotations

import functools
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Hashable, Sequence
from typing import Any

import numpy as np

from floodnb.viz import maplayers as ml
from floodnb.viz.chip_arrays import ChipArrays, load_chip_arrays
from floodnb.viz.run_data import RunData

#: layers whose image depends on the selected model's prediction files
MODEL_LAYERS: frozenset[str] = frozenset({"prediction", "probability", "disagreement"})


#: seconds the prefetch thread waits for work before it ends (a cache that is no longer used holds no thread)
IDLE_EXIT_S = 30.0


def _run_key(run: RunData) -> tuple[str, str]:
    return str(run.run_dir), str(run.data_root)


class LayerCache:
    """Thread-safe LRU of :class:`~floodnb.viz.chip_arrays.ChipArrays` and packed layer images.

    ``max_chips`` / ``max_images``: how many chips and images are kept (each >= 1); ``max_jobs``:
    prefetch requests waiting at most (older ones are dropped when a newer one arrives);
    ``quiet_s``: seconds without a foreground request before the prefetch thread loads a chip.
    """

    def __init__(self, *, max_chips: int = 8, max_images: int = 48, max_jobs: int = 4, quiet_s: float = 0.3):
        for name, v in (("max_chips", max_chips), ("max_images", max_images), ("max_jobs", max_jobs)):
            if int(v) < 1:
                raise ValueError(f"{name} must be >= 1, got {v}")
        self.max_chips, self.max_images = int(max_chips), int(max_images)
        self._chips: OrderedDict[Hashable, ChipArrays] = OrderedDict()
        self._images: OrderedDict[Hashable, np.ndarray | None] = OrderedDict()
        self._lock = threading.Lock()
        self._inflight: dict[Hashable, threading.Event] = {}
        self._jobs: deque[tuple] = deque(maxlen=int(max_jobs))
        self._wake = threading.Condition(self._lock)
        self._busy = False
        self._worker: threading.Thread | None = None
        self.quiet_s = float(quiet_s)
        self._foreground_at = 0.0  # time.monotonic() of the last request from another thread than the worker

    # ------------------------------------------------------------------ sizes (for tests and logs)
    @property
    def n_chips(self) -> int:
        return len(self._chips)

    @property
    def n_images(self) -> int:
        return len(self._images)

    def cached(self, run: RunData, chip_id: str, method: str | None) -> bool:
        """Whether chip ``chip_id`` of model ``method`` is in the cache (no loading)."""
        return (_run_key(run), chip_id, method) in self._chips

    # ------------------------------------------------------------------ lookups
    def _get(self, store: OrderedDict, limit: int, key: Hashable, make: Callable[[], Any]) -> Any:
        """``store[key]``, made by ``make()`` once even when several threads ask at the same time."""
        while True:
            with self._lock:
                if key in store:
                    store.move_to_end(key)
                    return store[key]
                event = self._inflight.get(key)
                if event is None:
                    event = self._inflight[key] = threading.Event()
                    break
            event.wait()  # another thread is making it: use its result (or retry after its error)
        try:
            value = make()
        except BaseException:
            with self._lock:
                self._inflight.pop(key).set()
            raise
        with self._lock:
            store[key] = value
            store.move_to_end(key)
            while len(store) > limit:
                store.popitem(last=False)
            self._inflight.pop(key).set()
        return value

    def chip(self, run: RunData, chip_id: str, method: str | None) -> ChipArrays:
        """Arrays of chip ``chip_id`` with ``method``'s prediction (loaded on a miss; errors as
        :func:`~floodnb.viz.chip_arrays.load_chip_arrays`). Treat the result as read-only.
        """
        if threading.current_thread() is not self._worker:
            self._foreground_at = time.monotonic()
        return self._get(self._chips, self.max_chips, (_run_key(run), chip_id, method),
                         lambda: load_chip_arrays(run, chip_id, method=method))

    def images(self, run: RunData, chip_id: str, method: str | None, keys: Sequence[str], *,
               threshold: float = 0.5) -> dict[str, np.ndarray | None]:
        """Packed read-only ``uint32 (H, W)`` images (bottom-up rows) of layers ``keys``; ``None``
        where the chip lacks a layer. ``threshold`` applies to the probability layer.
        """
        unknown = [k for k in keys if k not in ml.LAYER_KEYS]
        if unknown:
            raise ValueError(f"unknown layer keys {unknown}; expected names from {ml.LAYER_KEYS}")
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must lie in [0, 1], got {threshold}")
        if threading.current_thread() is not self._worker:
            self._foreground_at = time.monotonic()
        out = {}
        for key in keys:
            ikey = (_run_key(run), chip_id, key, method if key in MODEL_LAYERS else None,
                    float(threshold) if key == "probability" else None)
            make = functools.partial(self._make_image, run, chip_id, method, key, float(threshold))
            out[key] = self._get(self._images, self.max_images, ikey, make)
        return out

    def _make_image(self, run: RunData, chip_id: str, method: str | None, key: str,
                    threshold: float) -> np.ndarray | None:
        entry = self.chip(run, chip_id, method)
        rgba = ml.chip_layers(entry.chip, pred=entry.pred, noise=entry.noise, prob=entry.prob,
                              threshold=threshold, keys=(key,))[key]
        if rgba is None:
            return None
        img = ml.rgba_to_uint32(rgba)
        img.flags.writeable = False
        return img

    # ------------------------------------------------------------------ background prefetch
    def prefetch(self, run: RunData, chip_ids: Sequence[str], method: str | None, keys: Sequence[str], *,
                 threshold: float = 0.5) -> None:
        """Load chips ``chip_ids`` (in order) and their layers ``keys`` on the background thread.

        Returns at once. Chips that fail to load are skipped (the foreground reports the error
        when the chip is opened), so the thread never dies.
        """
        if not chip_ids:
            return
        with self._wake:
            self._jobs.append((run, tuple(chip_ids), method, tuple(keys), float(threshold)))
            if self._worker is None or not self._worker.is_alive():
                self._worker = threading.Thread(target=self._work, name="floodnb-layer-prefetch", daemon=True)
                self._worker.start()
            self._wake.notify_all()

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._jobs:
                    self._busy = False
                    self._wake.notify_all()
                    if not self._wake.wait(timeout=IDLE_EXIT_S) and not self._jobs:
                        self._worker = None  # idle: end the thread (prefetch starts a new one)
                        return
                run, chip_ids, method, keys, threshold = self._jobs.pop()  # newest request first
                self._busy = True
            for cid in chip_ids:
                while (wait := self._foreground_at + self.quiet_s - time.monotonic()) > 0:
                    time.sleep(wait)
                try:
                    self.images(run, cid, method, keys, threshold=threshold)
                except Exception:  # noqa: BLE001  (reported by the foreground when the chip is opened)
                    continue

    def wait_idle(self, timeout: float = 60.0) -> bool:
        """Block until no prefetch is waiting or running (``True``), or ``timeout`` seconds passed."""
        with self._wake:
            return self._wake.wait_for(lambda: not self._jobs and not self._busy, timeout=timeout)
