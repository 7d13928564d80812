"""The dashboard's Export tab: download the selected chip's or event's prediction and the chip table.

Buttons (Panel ``FileDownload``, bytes made when clicked, nothing written beside the run):

* prediction GeoTIFF — the selected model's class raster (1 water, 0 dry, -1 nodata) of the chip,
  or of every chip of its event that has one, mosaicked (:func:`floodnb.viz.exports.prediction_geotiff_bytes`);
* flood polygons as GeoJSON (EPSG:4326) or GeoPackage (native CRS) — water polygons tagged
  ``flood``/``permanent`` when the chips have the JRC permanent-water layer (``JRCWaterHand``),
  else ``water``, with areas (:func:`floodnb.viz.exports.polygons_bytes`);
* table CSV — the chip table as filtered on screen, every column (:func:`floodnb.viz.exports.table_csv_bytes`).

Files are found by chip id and model through :func:`floodnb.viz.run_data.prediction_files`.
"""

from __future__ import annotations

import html
import io
from pathlib import Path
from typing import TYPE_CHECKING

import panel as pn

from floodnb.runs import layout as run_layout
from floodnb.viz import exports
from floodnb.viz.run_data import prediction_files

if TYPE_CHECKING:
    from floodnb.viz.dashboard import Dashboard

SCOPES = ("chip", "event")


class ExportPanel:
    """Download buttons for one dashboard session; :meth:`update` after a chip, model or filter change."""

    def __init__(self, dash: Dashboard, *, width: int = 420):
        self.dash = dash
        self.scope = pn.widgets.RadioButtonGroup(options=list(SCOPES), value="chip", width=160)
        self.scope.param.watch(lambda e: self.update(), "value")
        self.note = pn.pane.HTML("", width=width - 10)
        self.buttons = {
            "tif": pn.widgets.FileDownload(callback=self._tif, filename="prediction.tif", label="Prediction GeoTIFF",
                                           width=190, color="primary"),
            "geojson": pn.widgets.FileDownload(callback=lambda: self._polygons("geojson"), filename="flood.geojson",
                                               label="Flood polygons GeoJSON", width=190),
            "gpkg": pn.widgets.FileDownload(callback=lambda: self._polygons("gpkg"), filename="flood.gpkg",
                                            label="Flood polygons GeoPackage", width=190),
            "csv": pn.widgets.FileDownload(callback=self._csv, filename="chips.csv", label="Table CSV", width=190),
        }
        self.view = pn.Column(
            pn.Row(pn.pane.HTML("<small>prediction of the</small>", margin=(10, 5)), self.scope),
            pn.Row(self.buttons["tif"], self.buttons["geojson"]), pn.Row(self.buttons["gpkg"], self.buttons["csv"]),
            self.note, name="exports")

    # ------------------------------------------------------------------ what to export
    def chip_ids(self) -> list[str]:
        """Chips of the current scope that have a saved prediction of the selected model."""
        d = self.dash
        if d.chip_id is None:
            return []
        ids = [d.chip_id]
        if self.scope.value == "event":
            event = d.full_table.loc[d.full_table["chip_id"] == d.chip_id, "event"].iloc[0]
            ids = [str(c) for c in d.full_table.loc[d.full_table["event"] == event, "chip_id"]]
        return [c for c in ids if "pred" in prediction_files(d.run, d.method, c)]

    def _stem(self) -> str:
        d = self.dash
        model = d.method or run_layout.PREDICTIONS_DEFAULT_METHOD
        if self.scope.value == "event" and d.chip_id is not None:
            event = d.full_table.loc[d.full_table["chip_id"] == d.chip_id, "event"].iloc[0]
            return f"{event}_{model}"
        return f"{d.chip_id}_{model}"

    def _pred_paths(self) -> list[Path]:
        d = self.dash
        return [prediction_files(d.run, d.method, c)["pred"] for c in self.chip_ids()]

    def _permanent(self, ids: list[str]) -> list[Path] | None:
        cat = self.dash.run.catalog
        if "jrc_path" not in cat.columns:
            return None
        paths = [cat.loc[c, "jrc_path"] for c in ids]
        if not all(isinstance(p, str) and p and Path(p).is_file() for p in paths):
            return None
        return [Path(p) for p in paths]

    # ------------------------------------------------------------------ callbacks (bytes on click)
    def _tif(self) -> io.BytesIO:
        return io.BytesIO(exports.prediction_geotiff_bytes(self._pred_paths()))

    def _polygons(self, fmt: str) -> io.BytesIO:
        ids = self.chip_ids()
        return io.BytesIO(exports.polygons_bytes(self._pred_paths(), fmt=fmt, permanent=self._permanent(ids)))

    def _csv(self) -> io.BytesIO:
        return io.BytesIO(exports.table_csv_bytes(self.dash.table.value))

    def update(self) -> None:
        """File names and availability for the current chip, model, scope and filters."""
        ids = self.chip_ids()
        stem = self._stem()
        self.buttons["tif"].filename = f"{stem}_prediction.tif"
        self.buttons["geojson"].filename = f"{stem}_flood.geojson"
        self.buttons["gpkg"].filename = f"{stem}_flood.gpkg"
        self.buttons["csv"].filename = f"{self.dash.run.name}_chips.csv"
        for key in ("tif", "geojson", "gpkg"):
            self.buttons[key].disabled = not ids
        model = html.escape(self.dash.method or run_layout.PREDICTIONS_DEFAULT_METHOD)
        if not ids:
            self.note.object = f"<small>No saved prediction of <b>{model}</b> for this {self.scope.value}.</small>"
        else:
            kinds = "flood / permanent (JRC)" if self._permanent(ids) else "water (no JRC layer)"
            self.note.object = (f"<small>{len(ids)} chip(s), model <b>{model}</b>; polygons tagged {kinds}. "
                                f"CSV: the {len(self.dash.table.value)} rows of the table as filtered.</small>")
