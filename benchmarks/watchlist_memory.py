"""Memory of the tagger per 10k watched organizations (docs/operations.md, sizing).

    PYTHONPATH=. python benchmarks/watchlist_memory.py [--orgs 10000]

Builds a watchlist of synthetic organizations (an English and a Russian alias each), builds
the Tagger every worker holds, and prints the growth of this process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
from pathlib import Path

import yaml

from newsradar.config import load_watchlist
from transforms.tagging import Tagger


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--orgs", type=int, default=10_000)
    args = parser.parse_args()
    orgs = [{"id": f"org-{n}", "name": f"Union number {n}",
             "aliases": {"en": [f"Union of Weavers {n}"], "ru": [f"Союз ткачей {n}"]}} for n in range(args.orgs)]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp, "watchlist.yaml")
        path.write_text(yaml.safe_dump({"version": 1, "organizations": orgs}, allow_unicode=True), encoding="utf-8")
        watchlist = load_watchlist(path)
    # the language pipelines first, with a tiny watchlist: what remains is the watchlist's cost
    small = Tagger(load_watchlist(Path(__file__).resolve().parent.parent / "tests/fixtures/pipeline/watchlist.yaml"))
    before = _peak_mib()
    Tagger(watchlist, pipelines=small.pipelines)
    after = _peak_mib()
    print(f"{args.orgs} organizations: peak RSS +{after - before:.0f} MiB (from {before:.0f} to {after:.0f} MiB)")


if __name__ == "__main__":
    main()
