"""Bundled demo content and the local server that plays it for `newsradar up --demo`."""
