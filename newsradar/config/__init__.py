"""Configuration files: safe YAML loading and the frozen models they validate into."""

from .loader import ConfigError, load_yaml, parse_duration, parse_size
from .sources import Sources, load_sources
from .watchlist import Watchlist, load_watchlist

__all__ = [
    "ConfigError", "Sources", "Watchlist", "load_sources", "load_watchlist", "load_yaml",
    "parse_duration", "parse_size",
]
