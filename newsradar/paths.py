"""Where newsradar keeps local state and caches.

``NEWSRADAR_HOME`` (default ``~/.newsradar``) holds connector state, the local broker's data
and the download caches (Kafka jars, the Prism binary). Every path can be overridden on the
command line; this module only supplies defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

# The repository root: the deploy recipes (deploy/kafka, deploy/prism) live beside the packages.
REPO_ROOT = Path(__file__).resolve().parent.parent
DEPLOY_DIR = REPO_ROOT / "deploy"


def home() -> Path:
    return Path(os.environ.get("NEWSRADAR_HOME") or Path.home() / ".newsradar").expanduser()


def cache_dir() -> Path:
    """Download caches (Kafka jars, Prism); ``NEWSRADAR_CACHE`` moves them on their own."""
    override = os.environ.get("NEWSRADAR_CACHE")
    return Path(override).expanduser() if override else home() / "cache"


def state_dir() -> Path:
    return home() / "state"


def kafka_data_dir() -> Path:
    return home() / "kafka"
