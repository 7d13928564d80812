"""Atomic file writes shared by every floodnb writer, and the short hash of a JSON-able dict.

A reader never sees a half-written file under its final name: everything is written to a
temporary file (or folder) next to the target, then moved into place with ``os.replace``
(atomic on POSIX and Windows within one file system). On error the temporary is removed and
an existing target is left untouched.

Temporary names start with ``.`` and end with ``.tmp<suffix>`` (e.g. ``.chip.k3j2.tmp.tif``)
so that format-sniffing tools still see the right extension and catalog scans skip them.

* :func:`atomic_path` — a temporary file (existing, empty) for Python writers;
* :func:`atomic_gdal_path` — the same for GDAL/OGR drivers: the temporary does not exist yet
  and a failed write's ``.aux.xml`` sidecar is removed;
* :func:`atomic_dir`, :func:`atomic_write_bytes` / ``_text`` / ``_json``;
* :func:`json_hash` — first ``length`` hex characters of the hash of a dict's sorted JSON
  (run folders, reuse checks, prepared-array digests).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "atomic_gdal_path",
    "atomic_path",
    "atomic_dir",
    "atomic_write_bytes",
    "atomic_write_text",
    "atomic_write_json",
    "is_temporary_name",
    "json_hash",
]

_TMP_MARK = ".tmp"


def _umask_mode(mode: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return mode & ~umask


def is_temporary_name(name: str) -> bool:
    """True for names produced by :func:`atomic_path` / :func:`atomic_dir` (hidden + ``.tmp``)."""
    return name.startswith(".") and _TMP_MARK in name


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary file path in ``path``'s folder; on success ``os.replace`` it onto ``path``.

    The parent folder is created if needed. The temporary file exists (empty) when the block
    starts; the caller may overwrite or replace it. On any exception the temporary file is
    removed, the exception propagates and ``path`` (if it existed) is unchanged. The final
    file gets the usual permissions (0o666 minus the umask), not ``mkstemp``'s 0o600.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f"{_TMP_MARK}{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, _umask_mode(0o666))
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_path)
        raise


@contextlib.contextmanager
def atomic_gdal_path(path: str | Path) -> Iterator[Path]:
    """:func:`atomic_path` for GDAL/OGR writers: the temporary name keeps the target's suffix (so
    drivers tell the format) and does not exist when the block starts (some drivers refuse an
    existing empty file); a GDAL ``.aux.xml`` sidecar left by a failed write is removed too.
    Raises ``FileNotFoundError`` when the block wrote no file.
    """
    with atomic_path(path) as tmp:
        tmp.unlink()
        try:
            yield tmp
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(str(tmp) + ".aux.xml")
            raise
        if not tmp.exists():
            raise FileNotFoundError(f"writer produced no file for {path}")


@contextlib.contextmanager
def atomic_dir(path: str | Path, *, overwrite: bool = False) -> Iterator[Path]:
    """Yield an empty temporary folder next to ``path``; on success rename it to ``path``.

    ``overwrite=False`` refuses (``FileExistsError`` naming ``path``) when ``path`` exists,
    before anything is written. With ``overwrite=True`` an existing folder is replaced only
    after the new one is complete (old one moved aside, new one renamed in, old one deleted).
    On error the temporary folder is removed and ``path`` is unchanged.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{str(path)!r} already exists; pass overwrite=True to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=_TMP_MARK, dir=path.parent))
    try:
        yield tmp
        os.chmod(tmp, _umask_mode(0o777))
        if path.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", suffix=_TMP_MARK, dir=path.parent))
            os.rmdir(old)
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns ``Path(path)``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str, *, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically; returns ``Path(path)``."""
    return atomic_write_bytes(path, text.encode(encoding))


def atomic_write_json(path: str | Path, obj: Any, *, indent: int = 2) -> Path:
    """Serialise ``obj`` as JSON (sorted keys off, ``indent`` spaces) and write it atomically.

    Numpy scalars/arrays, tuples and paths are converted; anything else non-serialisable
    raises ``TypeError`` before ``path`` is touched.
    """
    text = json.dumps(obj, indent=indent, default=_json_default) + "\n"
    return atomic_write_text(path, text)


def _json_default(o: Any) -> Any:
    if hasattr(o, "tolist"):  # numpy arrays and scalars
        return o.tolist()
    if isinstance(o, (tuple, set, frozenset)):
        return list(o)
    if isinstance(o, os.PathLike):
        return os.fspath(o)
    raise TypeError(f"value {o!r} of type {type(o).__name__} is not JSON-serialisable")


def json_hash(obj: Any, length: int, *, algorithm: str = "sha256") -> str:
    """First ``length`` hex characters of ``algorithm`` (a :mod:`hashlib` name) over ``obj`` as JSON
    with sorted keys (non-JSON values via ``str``): a short, stable name for a dict of settings.

    The same dict gives the same hash in every process; any changed value changes it. Raises
    ValueError for a ``length`` outside 1..the digest's hex length.
    """
    digest = hashlib.new(algorithm, json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
    if not 1 <= length <= len(digest):
        raise ValueError(f"length {length} is outside 1..{len(digest)} for {algorithm}")
    return digest[:length]
