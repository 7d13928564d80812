"""Run-edge configuration of the scene simulator (one frozen dataclass, documented defaults).

Every confusion rate is an *area fraction*, so a rate of 0 switches the effect off and a larger
rate makes it cover proportionally more pixels of the affected surface, with all other random
draws unchanged (the masks are drawn whatever the rate, then thresholded at the rate's
quantile). Defaults were calibrated against the real Sen1Floods11 chips in
``../shared/data/sen1floods11`` by matching radar and water-shape *statistics*
(:mod:`floodnb.simulate.stats`, the realism table of :mod:`floodnb.simulate.report`), never a
model's score on the real labels. Each realism setting can be switched off to show its effect.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

COMPRESSIONS: tuple[str, ...] = ("zstd", "deflate", "lzw", "none")
OTSU_SCOPES: tuple[str, ...] = ("event", "chip")
#: Version of what the simulator writes for given settings; bumped whenever the same seed and
#: settings give other chips (2: per-chip dates and positions, recession and floodplain position),
#: recorded in the manifest so that cached simulations of an older version are not reused.
SIM_VERSION: int = 2


@dataclass(frozen=True)
class SimConfig:
    """Physical and output settings of :func:`floodnb.simulate.simulate_dataset`.

    Sizes: ``size`` px square chips (10 m pixels, 8.983e-05 deg in EPSG:4326 as Sen1Floods11).

    Sentinel-1:
      ``enl``: equivalent number of looks of the multiplicative gamma speckle over land. ESA gives
        ENL ~4.4 for IW GRDH (Sentinel-1 Product Definition); the speckle is drawn at the ~20 m
        resolution cell and shared by 2x2 pixels (10 m spacing, spatially correlated). 6.0 makes
        the 7x7-window ENL of VH over dry land match the real chips (5.6; texture included).
      ``water_enl``: looks of the speckle over open water (the real chips' 7x7 ENL over water is
        about 2, with the noise-removal residual below doing most of that). ``water_enl = enl``
        switches the per-class looks off.
      ``texture_coupling``: correlation of the VV and VH texture fields (1 = one shared texture,
        the old model; real within-chip corr(VV, VH) over dry land is only ~0.46, 0.61 over 5x5
        means). Texture amplitudes are per band (water texture is mostly VV: wind and waves).
      ``ratio_spread``: multiplier of the per-class spread of VV - VH around the class gap
        (``sar.RATIO_SPREAD_DB``; 0 = a fixed gap per class). Class gaps differ too: bare soil
        (surface scattering) has a high VV/VH ratio, forest (volume scattering) a low one.
      ``nesz_db``: residual noise-equivalent sigma nought added before speckle (a small floor).
      ``noise_floor_db``: level of the thermal noise that the product's noise removal subtracted;
        the zero-mean residual of that subtraction dominates dark water, giving the deep VH tail
        of real water (5th percentile about -37 dB). None switches it off.
      ``calibration_std_db``: std of an independent per-chip offset of each band (calibration,
        processing and season differences: domain randomisation; event VH thresholds in the real
        metadata differ by several dB). 0 switches it off; the incidence angle varies per chip
        (30-46 deg) whatever this setting.
      ``wind_rate``: fraction of open water that is wind-roughened (Bragg scattering raises
        water backscatter towards land values in both bands) -> S1 misses water.
      ``shadow_rate``: fraction of the chip area that is steep terrain; its back-slopes
        (facing away from the radar) fall in radar shadow / grazing incidence and are as dark
        as water -> S1 false water.
      ``smooth_rate``: fraction of dry land covered by radar-smooth surfaces (sand, tarmac;
        specular, so dark like water) -> S1 false water; optically bright, so S2 gets them right.
      ``flooded_vegetation_rate``: fraction of flooded vegetated land whose canopy stays
        emergent; trunk-water double bounce makes it bright in VV -> S1 misses water.
      ``urban_flood_rate``: fraction of low-lying urban land that floods; wall-water double
        bounce makes it brighter still -> S1 misses water.
    Scene:
      ``fragmentation`` (0..1): microtopography that makes flood edges ragged, emergent ground that
        splits flood water into many bodies, and pluvial ponding (many small water bodies).
        0 = the old compact bathtub flood (one connected body per river).
      ``low_water_chip_rate``: probability that a chip is not flooded (at most a river, less
        often than in flooded chips, and a little ponding): real chips often hold little or no water.
      ``organic_parcels``: field parcels as warped Voronoi cells (False = the old square grid,
        which shows as square blocks in land cover and Sentinel-2).
    Acquisition (:mod:`floodnb.simulate.acquisition`; the per-chip metadata):
      ``days_before_peak`` / ``days_after_peak``: each chip's date is drawn uniformly from this
        window (days) around its event's flood peak (0 / 0 = every chip on the event's date).
      ``recession_days``: e-folding time (days) of the flood level away from the peak; None =
        the flood does not depend on the date.
      ``event_extent_km``: side (km) of the square over which an event's chip centres spread.
      ``floodplain_width_km``: width (std, km) of the flood band along the event's river axis;
        None = the flood does not depend on the position.
    Sentinel-2:
      ``cloud_scale``: multiplies every event's cloud cover (0 = cloud-free S2).
    Labels:
      ``hand_edge_px``: blur (px) of the hand-label edges; hand labels also carry a smooth
        random edge shift of about one pixel and mark clouds -1.
      ``otsu_scope``: "event" (one Otsu threshold per event, computed over pilot scenes of the
        event and recorded as ``VH_thresh``, as Sen1Floods11's metadata does) or "chip".
    Dataset:
      ``heldout_fraction``: share of hand chips from the held-out event (the Bolivia role).
      ``s1_nodata_rate``: probability that a chip touches the S1 swath edge (NaN wedge).
      ``compress``: GeoTIFF compression. Real Sen1Floods11 files are DEFLATE, untiled; floodnb
        writes ZSTD (predictor, 256 px tiles) by default because it is 2-3x faster to write;
        "deflate" reproduces the original codec.
    """

    size: int = 512
    enl: float = 6.0
    nesz_db: float = -40.0
    wind_rate: float = 0.1
    shadow_rate: float = 0.01
    smooth_rate: float = 0.012
    flooded_vegetation_rate: float = 0.2
    urban_flood_rate: float = 0.5
    cloud_scale: float = 1.0
    water_enl: float = 4.0
    texture_coupling: float = 0.1
    ratio_spread: float = 0.3
    noise_floor_db: float | None = -36.0
    calibration_std_db: float = 1.0
    fragmentation: float = 1.0
    low_water_chip_rate: float = 0.65
    organic_parcels: bool = True
    hand_edge_px: float = 1.0
    otsu_scope: str = "event"
    heldout_fraction: float = 0.1
    s1_nodata_rate: float = 0.03
    compress: str = "zstd"
    days_before_peak: int = 7
    days_after_peak: int = 28
    recession_days: float | None = 12.0
    event_extent_km: float = 40.0
    floodplain_width_km: float | None = 10.0

    def __post_init__(self) -> None:
        if not (isinstance(self.size, int) and 32 <= self.size <= 4096 and self.size % 16 == 0):
            raise ValueError(f"size must be an int in [32, 4096] divisible by 16, got {self.size!r}")
        for name in ("wind_rate", "shadow_rate", "smooth_rate", "flooded_vegetation_rate",
                     "urban_flood_rate", "heldout_fraction", "s1_nodata_rate", "texture_coupling",
                     "fragmentation", "low_water_chip_rate"):
            v = getattr(self, name)
            if not (0.0 <= float(v) <= 1.0):
                raise ValueError(f"{name} must be a fraction in [0, 1], got {v!r}")
        for name in ("enl", "water_enl"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        for name in ("ratio_spread", "calibration_std_db"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")
        if self.noise_floor_db is not None and not -60.0 <= self.noise_floor_db <= -10.0:
            raise ValueError(f"noise_floor_db must be None or in [-60, -10] dB, got {self.noise_floor_db!r}")
        if not isinstance(self.organic_parcels, bool):
            raise ValueError(f"organic_parcels must be a bool, got {self.organic_parcels!r}")
        if not self.cloud_scale >= 0:
            raise ValueError(f"cloud_scale must be >= 0, got {self.cloud_scale!r}")
        if not self.hand_edge_px >= 0:
            raise ValueError(f"hand_edge_px must be >= 0, got {self.hand_edge_px!r}")
        if self.otsu_scope not in OTSU_SCOPES:
            raise ValueError(f"otsu_scope must be one of {OTSU_SCOPES}, got {self.otsu_scope!r}")
        for name in ("days_before_peak", "days_after_peak"):
            v = getattr(self, name)
            if not (isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 366):
                raise ValueError(f"{name} must be an int number of days in [0, 366], got {v!r}")
        for name in ("recession_days", "floodplain_width_km"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise ValueError(f"{name} must be None (effect off) or > 0, got {v!r}")
        if not 0 <= self.event_extent_km <= 1000:
            raise ValueError(f"event_extent_km must be in [0, 1000] km, got {self.event_extent_km!r}")
        if self.compress not in COMPRESSIONS:
            raise ValueError(f"compress must be one of {COMPRESSIONS}, got {self.compress!r}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
