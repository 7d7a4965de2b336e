"""A long fuzzing campaign over the pipeline's record steps: hostile news.raw payloads through
``build(ordered=True)`` in batches, with the checks of tests/pipelines/test_hostile_input.py.

The payloads come from the same builders as the property test (tests/pipelines/hostile.py),
their parameters drawn from a seeded ``random.Random``, so a finding is rebuilt from the seed,
the batch and the position alone. A batch whose run raises, or that loses, duplicates or
oversizes a record, is a finding; the campaign goes on and prints each one with its
parameters. Exit code 1 when there was any finding.

    .venv/bin/python benchmarks/fuzz.py [--inputs 100000] [--batch 2000] [--seed 12] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from newsradar.config import load_watchlist  # noqa: E402
from newsradar.records import (  # noqa: E402
    MAX_OUTPUT_RECORD_BYTES,
    RecordError,
    decode_dead_letter,
    decode_raw,
    decode_tagged,
)
from pipelines.run import run_bounded  # noqa: E402
from tests.pipelines import hostile  # noqa: E402

# How often each size class is drawn: mostly small, some medium, a few giants.
SIZE_CLASSES = ((0.70, (0, 64)), (0.25, (65, 5_000)), (0.05, (20_000, 800_000)))


def draw(rng: random.Random) -> tuple:
    r, acc = rng.random(), 0.0
    lo, hi = SIZE_CLASSES[-1][1]  # r above the weights' float sum: the last class
    for weight, bounds in SIZE_CLASSES:
        acc += weight
        if r <= acc:
            lo, hi = bounds
            break
    return (rng.choice(hostile.KINDS), rng.choice(hostile.FIELDS), rng.randint(lo, hi),
            rng.randrange(2**20), rng.randrange(256))


def _repeated_id(payload: bytes, ids: set[str]) -> bool:
    try:
        return decode_raw(payload).article_id in ids
    except RecordError:
        return False


def run_batch(params: list[tuple], watchlist, now: float) -> tuple[Counter, list[str]]:
    """Outcome counts of one batch, and its findings (empty when every check held)."""
    payloads = [hostile.build(n, *p) for n, p in enumerate(params)]
    try:
        result = run_bounded([(p, now) for p in payloads], watchlist)
    except Exception as exc:  # noqa: BLE001 - a raising run is exactly what the campaign looks for
        return Counter(), [f"the run raised {type(exc).__name__}: {str(exc)[:300]}"]
    findings, outcome = [], Counter()
    ids_so_far: set[str] = set()
    for i, p in enumerate(params):
        where = [name for name, got in (("tagged", result.tagged), ("dlq", result.dead)) if i in got]
        if where == ["tagged"]:
            ids_so_far.add(result.tagged[i].article.article_id)
        if not where and _repeated_id(payloads[i], ids_so_far):
            outcome["dropped as a repeat id"] += 1  # Dedupe's contract, not a loss
            continue
        if len(where) != 1:
            findings.append(f"input {i} {p}: in {where or 'neither output'}")
            continue
        if where == ["dlq"]:
            letter = result.dead[i]
            outcome[f"dlq:{letter.step}"] += 1
            encoded = letter.encode()
            if len(encoded) > MAX_OUTPUT_RECORD_BYTES:
                findings.append(f"input {i} {p}: dead letter of {len(encoded)} bytes")
            elif decode_dead_letter(encoded).original_bytes() != letter.original_bytes():
                findings.append(f"input {i} {p}: dead letter does not decode to itself")
        else:
            article = result.tagged[i]
            outcome["tagged" + ("(flagged)" if article.article.flags else "")] += 1
            encoded = article.encode()
            if len(encoded) > MAX_OUTPUT_RECORD_BYTES:
                findings.append(f"input {i} {p}: tagged record of {len(encoded)} bytes")
            else:
                decode_tagged(encoded)
    return outcome, findings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--seed", type=int, default=12)
    parser.add_argument("--watchlist", type=Path, default=REPO / "config" / "watchlist.yaml")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)

    watchlist = load_watchlist(args.watchlist)
    rng = random.Random(args.seed)
    totals, findings, done, started = Counter(), [], 0, time.monotonic()
    batch_no = 0
    while done < args.inputs:
        params = [draw(rng) for _ in range(min(args.batch, args.inputs - done))]
        outcome, found = run_batch(params, watchlist, time.time())
        totals.update(outcome)
        findings += [f"seed {args.seed} batch {batch_no}: {f}" for f in found]
        done += len(params)
        batch_no += 1
        elapsed = time.monotonic() - started
        print(f"fuzz: {done}/{args.inputs} inputs, {len(findings)} findings, {elapsed:.0f}s "
              f"({done / elapsed:.0f} inputs/s)", file=sys.stderr, flush=True)
    summary = {"inputs": done, "seed": args.seed, "batch": args.batch, "seconds": round(time.monotonic() - started),
               "outcomes": dict(sorted(totals.items())), "findings": findings}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(f"inputs: {done} (seed {args.seed}, batches of {args.batch}) in {summary['seconds']} s")
        for name, count in sorted(totals.items()):
            print(f"  {name}: {count}")
        print(f"findings: {len(findings)}")
        for line in findings:
            print(f"  {line}")
    return 1 if findings else 0


if __name__ == "__main__":
    sys.exit(main())
