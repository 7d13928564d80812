"""Scene simulator: Sentinel-1/2 flood chips in the exact Sen1Floods11 layout, with known truth.

floodnb's embedded default dataset. :func:`simulate_dataset` writes hand-labelled chips
(S1Hand, S2Hand, LabelHand, S1OtsuLabelHand, JRCWaterHand), a weakly labelled pool (S1Weak, its
Sentinel-2 as the v1.0 bucket's S2_NoQC, S1OtsuLabelWeak, S2IndexLabelWeak), split CSVs with a
held-out event, and the event metadata geojson — plus the true water mask and class map in their
own layers (``SimTruthWater``, ``SimTruthClass``), which loaders expose only as truth.

Modules: :mod:`.terrain` (fractal terrain, rivers, water), :mod:`.landcover`, :mod:`.sar`
(Sentinel-1), :mod:`.spectra` (Sentinel-2), :mod:`.events`, :mod:`.acquisition` (each chip's own date
and position within its event, and their effect on its flood), :mod:`.scene` (one chip),
:mod:`.writer` (the dataset), :mod:`.report` (realism report), :mod:`.config`.
"""

from floodnb.simulate.config import SimConfig
from floodnb.simulate.events import EVENTS, Event
from floodnb.simulate.scene import Chip, simulate_chip
from floodnb.simulate.writer import simulate_dataset

__all__ = ["SimConfig", "EVENTS", "Event", "Chip", "simulate_chip", "simulate_dataset", "realism_report"]


def realism_report(*args, **kwargs):
    """See :func:`floodnb.simulate.report.realism_report` (imported lazily: matplotlib)."""
    from floodnb.simulate.report import realism_report as _rr

    return _rr(*args, **kwargs)
