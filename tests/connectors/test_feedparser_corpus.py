"""feedparser's own test corpus (about 2,000 feed files) through our parse step: 0 uncaught exceptions.

The corpus ships in feedparser's source distribution on PyPI. The test set-up downloads the
sdist of the installed feedparser version with pip (once) and caches the extracted files under
``$NEWSRADAR_CACHE`` (``~/.newsradar/cache``). Headers that a corpus file declares in its
``Header:`` comment lines are passed as the response headers, as a server would have sent them.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tarfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import feedparser
import pytest

from newsradar import paths
from newsradar.feeds import FeedError, parse_feed

pytestmark = pytest.mark.slow

_HEADER = re.compile(rb"^Header:\s*([A-Za-z-]+):\s*(.*?)\s*$", re.MULTILINE)
FEED_SUFFIXES = {".xml", ".rdf", ".atom", ".rss", ".gz", ".z", ".zz", ".bz2", ".br", ".deflate"}


def corpus_dir() -> Path:
    version = feedparser.__version__
    root = paths.cache_dir() / f"feedparser-{version}-corpus"
    done = root / ".complete"
    if done.exists():
        return root / "tests"
    download = paths.cache_dir() / "feedparser-sdist"
    download.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", f"feedparser=={version}",
         "-d", str(download), "--quiet"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, f"could not download the feedparser {version} sdist from PyPI:\n{result.stderr}"
    [sdist] = download.glob(f"feedparser-{version}.tar.gz")
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers() if m.isfile() and "/tests/" in m.name]
        for member in members:
            member.name = member.name.split("/", 1)[1]  # drop the top-level feedparser-x.y.z/
        tar.extractall(staging, members=members, filter="data")
    shutil.rmtree(root, ignore_errors=True)
    staging.rename(root)
    done.touch()
    return root / "tests"


def declared_headers(body: bytes) -> dict[str, str]:
    return {name.decode().lower(): value.decode("latin-1") for name, value in _HEADER.findall(body[:4096])}


def test_every_corpus_file_parses_or_is_a_counted_error():
    files = sorted(p for p in corpus_dir().rglob("*") if p.is_file() and p.suffix.lower() in FEED_SUFFIXES)
    assert len(files) > 1500, f"expected the ~2,000-file corpus, found {len(files)}"
    fetched = datetime(2026, 11, 25, tzinfo=UTC)
    outcomes: Counter = Counter()
    records = 0
    for path in files:
        body = path.read_bytes()
        # Any exception other than FeedError propagates and fails the test, naming ``path``.
        try:
            parsed = parse_feed(body, declared_headers(body), source_id="corpus", fetched_at=fetched,
                                base_url="http://example.com/feed.xml")
        except FeedError as exc:
            outcomes[f"error: {str(exc)[:40]}"] += 1
            continue
        outcomes["ok"] += 1
        records += len(parsed.records)
        for record in parsed.records:
            assert "<script" not in record.text.lower(), path
    assert sum(outcomes.values()) == len(files)
    assert outcomes["ok"] > 0.9 * len(files), outcomes
    print(f"feedparser corpus: {len(files)} files, {records} records, outcomes {dict(outcomes)}")
