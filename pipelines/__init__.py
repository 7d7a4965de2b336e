"""Runnable pipelines assembled from transforms; options and entry points."""
