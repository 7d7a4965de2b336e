"""Does `newsradar connect` grow? The connectors alone against the soak's feed server, watched
from inside with tracemalloc and from outside with RSS (issue 20's +10.7 % connectors growth).

    nice -n 10 .venv/bin/python benchmarks/connectors_memory.py [--minutes 18] [--sources 2000]
        [--minutes-per-day 1.2] [--min-poll 5] [--prefill-days 0] [--frames 8]
        [--kafka fake|HOST:PORT] [--out F.json]

What runs: :func:`connectors.app.run`, the function `newsradar connect` calls, in this process
(main thread), state in a temporary directory, against benchmarks/soak_feeds.py serving the
soak's world (benchmarks/soak_world.py) with the soak's sources file (its cadences in wall
time, never below ``--min-poll``). A feed shows its latest 20 items, so in a fresh world the
feeds fill for weeks (a quiet source publishes ~0.3 items a day); ``--prefill-days`` starts
the feeds that far into the world, full, as after months of running. ``--kafka fake``
replaces the Kafka producer with one that acknowledges every send at once and keeps nothing
(no broker to start; what is measured is the connectors, not kafka-python); ``--kafka
HOST:PORT`` produces to a real broker (start one with ``newsradar kafka start --port P
--data-dir D``). After ``--minutes`` the process sends itself SIGTERM, which stops the
connectors as a real stop does.

Sampled every ``--sample-every`` seconds by a thread: this process's VmRSS, what tracemalloc
traces (Python allocations still alive; ``--frames 0`` turns tracing off, to see the RSS
without its overhead, which is large: tracing slows the connectors several-fold), glibc's
malloc totals (mallinfo2: bytes in use and free inside the heaps, for allocator
fragmentation), pymalloc's arenas (only without tracing: tracemalloc hooks the allocator),
the count of gc-tracked objects per type, and the feed server's request counts; at the end,
the RSS before and after ``malloc_trim(0)``. The snapshot taken after ``--warmup`` minutes is
compared with the last one: the tracebacks whose live memory grew most, which is where a leak
shows, and the gc types whose counts grew. Output: ``--out`` (JSON) and a summary on stderr.
Results and what they showed: docs/benchmarks.md, "Connectors memory".
"""

from __future__ import annotations

import argparse
import collections
import ctypes
import ctypes.util
import gc
import json
import logging
import os
import signal
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import yaml  # noqa: E402
from soak import get_json, post_json, start_feed_server  # noqa: E402
from soak_world import DAY, Params, World, sources_yaml  # noqa: E402

MIB = 1024 * 1024


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} connectors_memory: {message}", file=sys.stderr, flush=True)


# -- a producer that acknowledges at once -------------------------------------------------


class _Acked:
    """A send that Kafka "acknowledged" already: callbacks run when they are added."""

    def add_callback(self, fn):
        fn(None)
        return self

    def add_errback(self, _fn):
        return self


class FakeProducer:
    """What the connectors use of KafkaProducer, acknowledging everything and keeping nothing."""

    def __init__(self):
        self.sent = 0

    def send(self, topic, key=None, value=None):
        self.sent += 1
        return _Acked()

    def partitions_for(self, topic):
        return {0}

    def flush(self, timeout=None):
        return None

    def close(self, timeout=None):
        return None


# -- what the sampler reads -----------------------------------------------------------------


def vm_rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in
                ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks", "fordblks",
                 "keepcost")]


def _libc():
    path = ctypes.util.find_library("c")
    if path is None:
        return None
    libc = ctypes.CDLL(path)
    if not hasattr(libc, "mallinfo2"):
        return None
    libc.mallinfo2.restype = _Mallinfo2
    return libc


_LIBC = _libc()


def malloc_totals() -> dict | None:
    """glibc's heaps, every arena summed: ``in_use`` what malloc handed out and still counts,
    ``free`` what it holds inside its heaps unused (fragmentation), ``mmapped`` big blocks."""
    if _LIBC is None:
        return None
    info = _LIBC.mallinfo2()
    return {"heap": info.arena, "in_use": info.uordblks, "free": info.fordblks, "mmapped": info.hblkhd}


def trimmed_rss() -> dict | None:
    """RSS before and after glibc's malloc_trim(0), which gives back the free pages inside every
    heap: how much of the RSS is memory the allocator holds but nothing uses."""
    if _LIBC is None:
        return None
    before = vm_rss()
    _LIBC.malloc_trim(0)
    return {"rss_before": before, "rss_after": vm_rss()}


def pymalloc_arenas() -> dict:
    """pymalloc's arena counts from sys._debugmallocstats (it writes to fd 2 only)."""
    with tempfile.TemporaryFile() as out:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(out.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        out.seek(0)
        text = out.read().decode("ascii", "replace")
    stats = {}
    for line in text.splitlines():
        for key, name in (("# arenas allocated current", "arenas_current"), ("# arenas highwater mark", "arenas_high"),
                          ("Total", "total_bytes")):
            if line.startswith(key):
                stats[name] = int(line.rsplit("=", 1)[1].strip().replace(",", ""))
    return stats


def gc_types() -> dict[str, int]:
    # A plain dict made here: its memory is filtered out as the sampler's (the Counter is freed).
    return dict(collections.Counter(type(o).__qualname__ for o in gc.get_objects()))


class Sampler:
    def __init__(self, every: float, warmup: float, feeds_url: str, frames: int, deadline: float):
        self.every, self.warmup, self.feeds_url, self.frames = every, warmup, feeds_url, frames
        self.deadline = deadline
        self.samples: list[dict] = []
        self.types: list[tuple[float, dict[str, int]]] = []
        self.warm_snapshot = None
        self.last_snapshot = None
        self.trimmed: dict | None = None
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="memory-sampler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(60)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            elapsed = time.monotonic() - self.t0
            self.sample(elapsed)
            if elapsed >= self.deadline:
                self.trimmed = trimmed_rss()
                log("time is up: SIGTERM to this process (the connectors' clean stop)")
                os.kill(os.getpid(), signal.SIGTERM)
                return

    def sample(self, elapsed: float) -> None:
        row: dict = {"t": round(elapsed, 1), "rss": vm_rss(), "malloc": malloc_totals(), "pymalloc": pymalloc_arenas()}
        if tracemalloc.is_tracing():
            row["traced"], row["traced_peak"] = tracemalloc.get_traced_memory()
            row["tracemalloc_own"] = tracemalloc.get_tracemalloc_memory()
            snapshot = tracemalloc.take_snapshot().filter_traces(_NOT_OURS)
            if self.warm_snapshot is None and elapsed >= self.warmup:
                self.warm_snapshot = snapshot
            self.last_snapshot = snapshot
        types = gc_types()
        row["gc_objects"] = sum(types.values())
        if elapsed >= self.warmup:
            self.types[1 if self.types else 0:] = [(elapsed, types)]
        try:
            row["feeds"] = get_json(f"{self.feeds_url}/status")
        except OSError as exc:
            row["feeds"] = {"error": str(exc)}
        self.samples.append(row)
        traced = f", traced {row['traced'] / MIB:.1f} MiB" if "traced" in row else ""
        malloc = row["malloc"] or {}
        log(f"t={elapsed:.0f}s rss {row['rss'] / MIB:.1f} MiB{traced}, malloc in use "
            f"{malloc.get('in_use', 0) / MIB:.1f} / free {malloc.get('free', 0) / MIB:.1f} MiB, "
            f"pymalloc arenas {row['pymalloc'].get('arenas_current')}, gc objects {row['gc_objects']}, "
            f"served {row['feeds'].get('served')}")


# The sampler's own allocations are not the connectors'.
_NOT_OURS = (
    tracemalloc.Filter(False, tracemalloc.__file__),
    tracemalloc.Filter(False, __file__),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap>"),
    tracemalloc.Filter(False, "<frozen importlib._bootstrap_external>"),
)


def growth(sampler: Sampler, top: int) -> dict:
    out: dict = {}
    if sampler.warm_snapshot is not None and sampler.last_snapshot is not None:
        for key in ("traceback", "lineno"):
            stats = sampler.last_snapshot.compare_to(sampler.warm_snapshot, key)
            out[f"by_{key}"] = [
                {"size_diff": s.size_diff, "size": s.size, "count_diff": s.count_diff, "count": s.count,
                 "where": [f"{f.filename}:{f.lineno}" for f in s.traceback]}
                for s in stats[:top]
            ]
    if len(sampler.types) >= 2:
        (t1, first), (t2, last) = sampler.types[0], sampler.types[-1]
        diff = {name: last.get(name, 0) - first.get(name, 0) for name in set(first) | set(last)}
        out["gc_types"] = {"from_t": round(t1), "to_t": round(t2), "grew": [
            {"type": name, "diff": d, "count": last.get(name, 0)}
            for name, d in sorted(diff.items(), key=lambda kv: -kv[1])[:top] if d > 0]}
    return out


def summarize(samples: list[dict], warmup: float) -> dict:
    warm = next((s for s in samples if s["t"] >= warmup), None)
    if warm is None or not samples:
        return {}
    end = samples[-1]
    out = {"warm_t": warm["t"], "end_t": end["t"], "rss_warm": warm["rss"], "rss_end": end["rss"],
           "rss_growth_pct": round(100.0 * (end["rss"] - warm["rss"]) / warm["rss"], 2)}
    for key in ("traced",):
        if key in warm:
            out[f"{key}_warm"], out[f"{key}_end"] = warm[key], end[key]
    if warm.get("malloc") and end.get("malloc"):
        out["malloc_warm"], out["malloc_end"] = warm["malloc"], end["malloc"]
    out["pymalloc_warm"], out["pymalloc_end"] = warm["pymalloc"], end["pymalloc"]
    served = [s["feeds"].get("served") for s in (warm, end)]
    if all(served):
        out["requests_after_warmup"] = sum(served[1].values()) - sum(served[0].values())
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=18.0, help="wall minutes the connectors run")
    parser.add_argument("--warmup", type=float, default=4.0, help="minutes before the reference snapshot")
    parser.add_argument("--sources", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--minutes-per-day", type=float, default=1.2, help="wall minutes of a simulated day")
    parser.add_argument("--items-per-source-day", type=float, default=Params.items_per_source_day)
    parser.add_argument("--min-poll", type=float, default=5.0, help="shortest poll interval, wall seconds")
    parser.add_argument("--prefill-days", type=float, default=0.0,
                        help="start the feeds this many simulated days into the world (feeds already full)")
    parser.add_argument("--sample-every", type=float, default=60.0, help="seconds between samples")
    parser.add_argument("--frames", type=int, default=8, help="tracemalloc traceback depth (0: no tracing)")
    parser.add_argument("--top", type=int, default=25, help="growth entries kept per grouping")
    parser.add_argument("--kafka", default="fake", help="'fake' (acknowledges at once) or a bootstrap HOST:PORT")
    parser.add_argument("--max-polls-in-flight", type=int, default=None,
                        help="the sources file's max_polls_in_flight (default: the connectors' own)")
    parser.add_argument("--out", default="connectors-memory.json")
    opts = parser.parse_args(argv)

    from connectors import app
    from newsradar import kafka
    from newsradar.procs import free_port

    day_seconds = opts.minutes_per_day * 60
    accel = DAY / day_seconds
    days = int(opts.prefill_days + opts.minutes / opts.minutes_per_day) + 2
    start = (time.time() // DAY - days - 1) * DAY
    params = Params(opts.seed, opts.sources, days, opts.items_per_source_day, start)
    world = World(params)
    items = len(world.items)
    log(f"{opts.sources} sources, {items} items over {days} simulated days of {day_seconds:.0f}s "
        f"(x{accel:.0f}, feeds from day {opts.prefill_days:g}); connectors for {opts.minutes:g} min, kafka {opts.kafka}, tracemalloc frames {opts.frames}, "
        f"MALLOC_ARENA_MAX={os.environ.get('MALLOC_ARENA_MAX', 'unset')}, load {os.getloadavg()}")
    with tempfile.TemporaryDirectory(prefix="connectors-memory-") as tmp:
        work = Path(tmp)
        feeds, base = start_feed_server(params, work, dict(os.environ))
        try:
            sources = work / "sources.yaml"
            config = sources_yaml(world, base, accel, free_port(), opts.min_poll)
            if opts.max_polls_in_flight is not None:
                config["defaults"]["max_polls_in_flight"] = opts.max_polls_in_flight
            sources.write_text(yaml.safe_dump(config, sort_keys=False))
            del world  # the feed server has its own; here it would only weigh on the RSS measured
            gc.collect()
            handler = logging.FileHandler(work / "connect.log")
            handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
            logging.getLogger().handlers[:] = [handler]
            logging.getLogger().setLevel(logging.INFO)
            logging.getLogger("kafka").setLevel(logging.WARNING)
            if opts.kafka == "fake":
                producer = FakeProducer()
                kafka.broker_answers = lambda *_a, **_k: True
                kafka.make_producer = lambda *_a, **_k: producer
                bootstrap = "fake:0"
            else:
                producer, bootstrap = None, opts.kafka
            if opts.frames:
                tracemalloc.start(opts.frames)
            sampler = Sampler(opts.sample_every, opts.warmup * 60, base, opts.frames, opts.minutes * 60)
            post_json(f"{base}/clock", {"t0": time.time() - opts.prefill_days * day_seconds, "accel": accel})
            sampler.start()
            t0 = time.time()
            code = app.run(str(sources), state_dir=str(work / "state"), bootstrap_servers=bootstrap)
            wall = time.time() - t0
            sampler.stop()
            result = {
                "command": "benchmarks/connectors_memory.py " + " ".join(sys.argv[1:] if argv is None else argv),
                "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t0)), "load_end": os.getloadavg(),
                "exit_code": code, "wall_s": round(wall, 1), "accel": round(accel, 1), "days": days,
                "malloc_arena_max": os.environ.get("MALLOC_ARENA_MAX"),
                "sent": producer.sent if producer is not None else None,
                "summary": summarize(sampler.samples, opts.warmup * 60), "malloc_trim": sampler.trimmed,
                "growth": growth(sampler, opts.top), "samples": sampler.samples,
            }
            tail = (work / "connect.log").read_text(encoding="utf-8", errors="replace").splitlines()
            result["log_warnings"] = sum(1 for line in tail if " WARNING " in line or " ERROR " in line)
            result["log_tail"] = tail[-5:]
        finally:
            feeds.terminate()
            feeds.wait(30)
    Path(opts.out).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    s = result["summary"]
    if s:
        log(f"after warm-up (t={s['warm_t']:.0f}s -> {s['end_t']:.0f}s): RSS {s['rss_warm'] / MIB:.1f} -> "
            f"{s['rss_end'] / MIB:.1f} MiB ({s['rss_growth_pct']:+.1f} %)"
            + (f", traced {s['traced_warm'] / MIB:.2f} -> {s['traced_end'] / MIB:.2f} MiB" if "traced_warm" in s else ""))
    for row in result["growth"].get("by_traceback", [])[:8]:
        log(f"{row['size_diff'] / 1024:+.0f} KiB ({row['count_diff']:+d} blocks): {' <- '.join(reversed(row['where'][-3:]))}")
    if sampler.trimmed:
        log(f"malloc_trim(0) at the end: RSS {sampler.trimmed['rss_before'] / MIB:.1f} -> "
            f"{sampler.trimmed['rss_after'] / MIB:.1f} MiB")
    log(f"result in {opts.out}")
    return code


if __name__ == "__main__":
    sys.exit(main())
