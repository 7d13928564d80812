"""Sen1Floods11 data layer: layout, catalog, chip I/O, normalisation, download, torch datasets."""
