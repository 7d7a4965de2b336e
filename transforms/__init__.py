"""Beam PTransforms and the plain functions they wire."""
