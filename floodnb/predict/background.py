"""Overlap a scene's reading and writing with the model's forward passes (one thread each side).

Streamed scene prediction (:func:`floodnb.predict.predict_raster`) has three stages per strip of
tile rows: read + normalise (GDAL, numpy), forward passes (torch), blend + encode + write (numpy,
GDAL). GDAL and most numpy work release the GIL, so a reader thread preparing strip ``i + 1`` and
a writer thread writing strip ``i - 1`` run while torch computes strip ``i``:

* :func:`prefetched` — iterate an iterable in a background thread, ``depth`` items ahead;
* :class:`BackgroundConsumer` — feed items to a function in a background thread through a
  bounded queue (``depth`` items in flight), re-raising its error in the caller.

Both bound memory by ``depth`` items, keep order, stop their thread on exit (also after an error
on either side) and re-raise a worker's exception in the calling thread with its traceback.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

_DONE = object()


def _check_depth(depth: int) -> int:
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
    return depth


def _put(q: queue.Queue, item: object, stop: threading.Event) -> bool:
    """Put ``item`` unless ``stop`` is set (checked every 0.1 s); True when it was put."""
    while not stop.is_set():
        try:
            q.put(item, timeout=0.1)
            return True
        except queue.Full:
            continue
    return False


def prefetched(items: Iterable[T], *, depth: int = 1, name: str = "floodnb-prefetch") -> Generator[T, None, None]:
    """Yield ``items`` in order while a background thread produces up to ``depth`` items ahead.

    The iterable is consumed in the thread (so a generator's body runs there). An exception
    raised while producing is re-raised here at the point it would have occurred; closing the
    generator early (``break``, an error in the caller) stops the thread.
    """
    _check_depth(depth)
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                if not _put(q, (True, item), stop):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread
            _put(q, (False, exc), stop)
            return
        _put(q, (True, _DONE), stop)

    worker = threading.Thread(target=run, name=name, daemon=True)
    worker.start()
    try:
        while True:
            ok, item = q.get()
            if not ok:
                raise item
            if item is _DONE:
                return
            yield item
    finally:
        stop.set()
        worker.join()


class BackgroundConsumer(Generic[T]):
    """Call ``fn(item)`` for every :meth:`put` item, in order, in one background thread.

    At most ``depth`` items wait in the queue (:meth:`put` blocks beyond that). The first
    exception ``fn`` raises is re-raised by the next :meth:`put` or by :meth:`close`; items put
    after it are dropped. Use as a context manager: leaving the block waits for the queue to
    drain (or, when the block raised, discards what is left) and joins the thread.
    """

    def __init__(self, fn: Callable[[T], object], *, depth: int = 2, name: str = "floodnb-writer") -> None:
        self._fn = fn
        self._q: queue.Queue = queue.Queue(maxsize=_check_depth(depth))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is _DONE:
                return
            if self._error is not None:
                continue
            try:
                self._fn(item)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the producer thread
                self._error = exc
                self._stop.set()

    def _raise_error(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: T) -> None:
        """Queue ``item`` for ``fn`` (blocks while ``depth`` items wait); raises ``fn``'s earlier error."""
        self._raise_error()
        if not _put(self._q, item, self._stop):
            self._raise_error()

    def close(self, *, discard: bool = False) -> None:
        """Wait for queued items (or drop them with ``discard``), join the thread, re-raise ``fn``'s error."""
        if discard:
            self._stop.set()
            while True:
                try:
                    self._q.get_nowait()
                except queue.Empty:
                    break
        self._q.put(_DONE)
        self._thread.join()
        if not discard:
            self._raise_error()

    def __enter__(self) -> BackgroundConsumer[T]:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self.close(discard=exc_type is not None)
