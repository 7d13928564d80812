"""Chip ids: the one rule for what a chip id is, its event, and the split CSVs that list chips.

Sen1Floods11 names every file ``<Event>_<id>_<Layer>.tif`` (``Bolivia_103757_S1Hand.tif``,
``Sri-Lanka_101973_LabelHand.tif``): the chip id is ``<Event>_<id>`` and the event is what
precedes its last ``_``. No real name has a ``.`` in its id (the ``.`` starts the file suffix),
and ids become file names (``<chip>_noise.tif``, ``<chip>_prob.tif``, dashboard lookups), so:

* :data:`CHIP_ID_RE` / :func:`is_chip_id` — a chip id safe as a file name: a letter or digit,
  then letters, digits, ``_`` and ``-`` only (no ``.``, no ``/``: ``../x`` is refused);
* :data:`SEN1FLOODS11_ID_RE` — the stricter ``<Event>_<id>`` shape of the public bucket's ids
  (event: a letter then letters, digits, ``-``; id: letters and digits), used for names read
  from the network before they become paths;
* :func:`chip_event` — ``Bolivia_103757`` -> ``Bolivia``;
* :func:`split_csv_chips` — the chip ids of a split CSV's text (``<chip>_S1Hand.tif,<chip>_LabelHand.tif``
  rows, CRLF, no header); :func:`decode_split_csv` — its bytes -> text with named errors.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

__all__ = ["CHIP_ID_RE", "SEN1FLOODS11_ID_RE", "chip_event", "decode_split_csv", "is_chip_id", "split_csv_chips"]

#: a chip id usable as a file name: no ``.`` (Sen1Floods11 ids have none), no path separators
CHIP_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-]*$")
#: ``<Event>_<id>`` of the public bucket (events like ``Sri-Lanka``); anything else (paths, dots) is refused
SEN1FLOODS11_ID_RE = re.compile(r"^[A-Za-z][A-Za-z0-9-]*_[A-Za-z0-9]+$")

_SPLIT_CSV_EXPECTED = "expected a text CSV of '<Event>_<id>_S1Hand.tif,<Event>_<id>_LabelHand.tif' rows"


def is_chip_id(chip_id: object) -> bool:
    """True when ``chip_id`` is a string matching :data:`CHIP_ID_RE` (safe as a file name)."""
    return isinstance(chip_id, str) and CHIP_ID_RE.match(chip_id) is not None


def chip_event(chip_id: str) -> str:
    """Event prefix of a chip id ``<Event>_<id>`` (everything before the last ``_``).

    Raises ValueError for an id without ``_``.
    """
    if "_" not in chip_id:
        raise ValueError(f"chip id {chip_id!r} is not of the form '<Event>_<id>'")
    return chip_id.rsplit("_", 1)[0]


def decode_split_csv(data: bytes, source: str) -> str:
    """Bytes of a split CSV -> text (UTF-8, a BOM dropped).

    Raises ValueError naming ``source`` for a binary file (NUL bytes) or one that is not UTF-8.
    """
    if b"\x00" in data:
        raise ValueError(f"split CSV {source!r} is a binary file (NUL bytes); {_SPLIT_CSV_EXPECTED}")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"split CSV {source!r} is not UTF-8 text (byte {exc.start}: "
                         f"{data[exc.start:exc.start + 1]!r}); {_SPLIT_CSV_EXPECTED}") from None


def split_csv_chips(text: str, source: str) -> list[str]:
    r"""Chip ids named by a split CSV's rows, in file order (duplicates kept).

    The first column's file name (any folder part and ``\`` separators dropped) minus its
    ``_<Layer>.tif``/``.tiff`` suffix is the chip id, which must match :data:`SEN1FLOODS11_ID_RE`.
    Blank lines are skipped; raises ValueError naming ``source`` and the line otherwise.
    """
    chips: list[str] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line:
            continue
        first = PurePosixPath(line.split(",", 1)[0].strip().replace("\\", "/")).name
        stem = first.rsplit(".", 1)[0] if first.lower().endswith((".tif", ".tiff")) else ""
        chip = stem.rsplit("_", 1)[0] if "_" in stem else ""
        if not SEN1FLOODS11_ID_RE.match(chip):
            raise ValueError(f"split CSV {source} line {lineno}: {line!r} is not '<Event>_<id>_<Layer>.tif,...'")
        chips.append(chip)
    return chips
