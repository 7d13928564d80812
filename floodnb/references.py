"""The one map naming evaluation references and where each lives in floodnb's two data vocabularies.

A reference is what predictions are scored against: ``"label"`` (hand labels), ``"truth_water"``
(alias ``"truth"``: the simulator's true water mask) or ``"weak"`` (the weak label a baseline
trained on). Its key differs by vocabulary: ``"sample"`` — a :class:`floodnb.data.torch.ChipDataset`
sample / batch dict (:mod:`floodnb.distill.evaluate`); ``"chip"`` — a variable of an ``xr.Dataset``
chip from :func:`floodnb.data.io.load_chip` (:func:`floodnb.distill.baselines.otsu_baseline`,
:mod:`floodnb.compare`). The weak label has no chip variable of that name (chips name weak roles
such as ``s1_otsu``).
"""

from __future__ import annotations

#: reference name -> {vocabulary: key}
REFERENCE_KEYS: dict[str, dict[str, str]] = {
    "label": {"sample": "label", "chip": "label"},
    "truth_water": {"sample": "truth", "chip": "truth_water"},
    "truth": {"sample": "truth", "chip": "truth_water"},
    "weak": {"sample": "weak"},
}
#: reference name -> sample key
REFERENCES: dict[str, str] = {name: keys["sample"] for name, keys in REFERENCE_KEYS.items()}


def reference_key(reference: str, vocabulary: str = "sample") -> str:
    """The key of ``reference`` in ``vocabulary`` (``"sample"`` or ``"chip"``, see :data:`REFERENCE_KEYS`);
    ``ValueError`` listing the references that vocabulary knows.
    """
    names = tuple(n for n, keys in REFERENCE_KEYS.items() if vocabulary in keys)
    if reference not in names:
        raise ValueError(f"reference={reference!r}: expected one of {names}")
    return REFERENCE_KEYS[reference][vocabulary]
