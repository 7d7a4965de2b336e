"""The restart fault run at full size (issue 13): a generated stream over simulated weeks runs
through `newsradar pipeline` on Prism once without interruption and, at the same time on other
topics, with clean stops (SIGTERM) and SIGKILLs at seeded random points, restarting each
time; then the two runs' alert ids, story ids, first_in_window alerts and tagged articles are
compared (tests/pipelines/restarts.py; the CI size is tests/pipelines/test_restarts.py).

    .venv/bin/python benchmarks/restarts.py [--articles 2000] [--stops 2] [--kills 2] [--seed 13]
                                            [--bootstrap-servers H:P]

Without --bootstrap-servers a broker is started with `newsradar kafka start` in a temporary
directory and stopped at the end. Prints one JSON object; exit 1 when the runs differ.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.conftest import LocalKafka, free_port, newsradar_cmd  # noqa: E402
from tests.pipelines import restarts  # noqa: E402


def run(bootstrap: str, workdir: Path, args) -> dict:
    stream = restarts.generate(args.articles, args.seed)
    watchlist = restarts.watchlist_copy(workdir / "watchlist.yaml")
    tag = f"b{uuid.uuid4().hex[:8]}"
    runs = {}
    for name in ("reference", "restarted"):
        prefix = f"{tag}.{name}."
        restarts.make_topics(bootstrap, prefix)
        runs[name] = restarts.Pipeline(bootstrap, prefix, watchlist, workdir / f"{name}.log", workdir / f"home-{name}",
                                       newsradar_cmd())
    plan = restarts.interruptions(random.Random(args.seed), len(stream.records), args.stops, args.kills)
    errors: list[BaseException] = []

    def in_thread(fn, *a):
        def body():
            try:
                fn(*a)
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
        t = threading.Thread(target=body)
        t.start()
        return t

    total = len(stream.records)
    timeout = 900.0
    started = time.monotonic()
    threads = [in_thread(restarts.run_to_end, runs["reference"], timeout, total),
               in_thread(restarts.produce_once_running, list(runs.values()), stream, timeout)]
    try:
        done = restarts.run_interrupted(runs["restarted"], plan, timeout=timeout, total=total)
    finally:
        for t in threads:
            t.join()
        for p in runs.values():
            if p.alive():
                p.stop("term")
    if errors:
        raise errors[0]
    ref = restarts.outcome(bootstrap, runs["reference"].prefix)
    got = restarts.outcome(bootstrap, runs["restarted"].prefix)
    log = runs["restarted"].log()
    return {
        "articles": total, "stories": stream.stories, "copies": stream.copies, "seed": args.seed,
        "interruptions": done,
        "rebuilds": [line.removeprefix("pipeline: ") for line in log.splitlines() if "state rebuilt in" in line],
        "reference_alerts": dict(ref.alerts_by_kind), "restarted_alerts": dict(got.alerts_by_kind),
        "tagged_records": {"reference": ref.tagged_records, "restarted": got.tagged_records},
        "differences": restarts.compare(ref, got),
        "seconds": round(time.monotonic() - started, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--stops", type=int, default=2)
    parser.add_argument("--kills", type=int, default=2)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--bootstrap-servers")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="newsradar-restarts-") as tmp:
        workdir = Path(tmp)
        broker = None
        if args.bootstrap_servers is None:
            broker = LocalKafka(free_port(), workdir / "kafka")
            broker.start()
        try:
            result = run(args.bootstrap_servers or broker.bootstrap, workdir, args)
        finally:
            if broker is not None:
                broker.stop()
    print(json.dumps(result, indent=1))
    return 1 if result["differences"] else 0


if __name__ == "__main__":
    sys.exit(main())
