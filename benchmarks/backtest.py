"""The bounded batch path (`newsradar tag`, `newsradar backtest`): articles/s, per-core speed
against the bare chain in the same run, and peak memory of the whole process tree.

Input: the tagging benchmark's mix (benchmarks/tagging.py ``make_articles``: en/ru/uk, Telegram
posts to full articles) as a JSONL file, with what a month of news has besides: every tenth
article a rewritten copy of an earlier one, every 25th line an exact repeat of an earlier line,
every 500th line malformed; event times ``--spacing`` seconds apart (default: 1M articles in
30 days), so the larger inputs span many story and repeat windows.

Measured, for each ``--articles`` size, in one run:

* ``batch``  `newsradar tag --watchlist config/watchlist.yaml FILE > /dev/null` in a child
  process: wall time, CPU time of the whole process tree (the command and its workers), and
  peak memory of the tree (sum of RSS, and sum of PSS, which counts shared pages once),
  sampled every 0.2 s from /proc;
* ``bare``   the bare chain in this process over the same input's articles (all of them, or
  the first ``--bare``), before the batch run: ``Tagger.tag`` and the novelty functions
  (``events_of``, ``AlertRules.apply``) in a plain loop (CPU time), as in benchmarks/tagging.py.

The per-core ratio is (articles / CPU second of the batch tree) / (articles / CPU second of
the bare chain), articles being the input's lines less the malformed ones: the CPU seconds of
the tree are those of every core it used, so this is articles/s per core used. The batch
figure includes the command's start-up (imports, models), the bare one does not. Other work
on the machine slows both; the load average is recorded at each phase. ``--profile N``
instead prints where the time goes in the batch path's steps, all in this process (cProfile,
cumulative time of the steps' functions); ``--stages N`` the CPU time of each step's plain
function with plain timers (no profiler overhead); ``--profile-split N`` cProfile (CPU time)
in the parent and in each worker of a real two-worker run; ``--state-trace EVERY`` the
parent's RSS and the stateful rules' sizes every EVERY records of a two-worker run in this
process (what grows with the input, and where it stops).

    .venv/bin/python benchmarks/backtest.py [--articles 20000 200000] [--bare N]
    .venv/bin/python benchmarks/backtest.py --profile 3000 | --stages 3000 | --profile-split 5000
    .venv/bin/python benchmarks/backtest.py --articles 200000 --state-trace 25000
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.tagging import make_articles  # noqa: E402

T0 = datetime(2026, 3, 1, tzinfo=UTC)
MONTH_SPACING = 30 * 86400 / 1_000_000


def write_input(path: Path, n: int, seed: int, spacing: float) -> int:
    """``n`` articles (plus copies, repeats and malformed lines) as JSONL; returns the lines."""
    rng = random.Random(seed)
    articles = make_articles(n, seed)
    lines: list[str] = []
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        for i, (lang, title, text) in enumerate(articles):
            when = (T0 + timedelta(seconds=spacing * i)).isoformat().replace("+00:00", "Z")
            if i % 10 == 9 and i > 50:  # a rewritten copy of a recent article
                _l, ct, ctext = articles[i - rng.randint(1, 50)]
                title, text = ct, ctext + " Updated with comments from officials."
            line = json.dumps({"id": f"bench:{i}", "url": f"https://bench.example/{i}", "lang": lang, "title": title,
                               "text": text, "published_at": when}, ensure_ascii=False)
            fh.write(line + "\n")
            written += 1
            lines.append(line)
            if len(lines) > 200:
                lines.pop(0)
            if i % 25 == 24:
                fh.write(rng.choice(lines) + "\n")  # an exact repeat
                written += 1
            if i % 500 == 499:
                fh.write('{"title": "broken", "text": \n')
                written += 1
    return written


# ---------------------------------------------------------------------------
# memory of a process tree


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            with open(f"/proc/{p}/task/{p}/children", encoding="ascii") as fh:
                todo.extend(int(c) for c in fh.read().split())
        except OSError:
            pass
    return out


def _kb(path: str, key: str) -> int:
    try:
        with open(path, encoding="ascii") as fh:
            for line in fh:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (0 when it is gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class TreeMemory(threading.Thread):
    """Peak of the summed RSS and PSS of a process and its descendants, sampled."""

    def __init__(self, pid: int, every: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.peak_rss = self.peak_pss = 0
        self.peak_procs = 0
        self.peak_rss_of: dict[int, int] = {}  # pid → its own peak RSS (KB)
        self.cpu_of: dict[int, float] = {}  # pid → its CPU seconds at the last sample (balance of the workers)
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.wait(self.every):
            pids = _tree(self.pid)
            each = {p: _kb(f"/proc/{p}/status", "VmRSS:") for p in pids}
            for p, kb in each.items():
                self.peak_rss_of[p] = max(self.peak_rss_of.get(p, 0), kb)
                self.cpu_of[p] = max(self.cpu_of.get(p, 0.0), _cpu_s(p))
            rss = sum(each.values())
            pss = sum(_kb(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids)
            self.peak_rss, self.peak_pss = max(self.peak_rss, rss), max(self.peak_pss, pss)
            self.peak_procs = max(self.peak_procs, len(pids))

    def stop(self) -> None:
        self._halt.set()
        self.join()


def run_batch_child(path: Path) -> dict:
    """`newsradar tag` over ``path`` in a child process: wall and tree CPU time, peak memory."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t = time.monotonic()
    env = dict(os.environ, PYTHONPATH=str(REPO))
    with open(os.devnull, "wb") as devnull:
        proc = subprocess.Popen([sys.executable, "-m", "newsradar.cli", "tag", "--watchlist",
                                 str(REPO / "config" / "watchlist.yaml"), str(path)],
                                stdout=devnull, stderr=subprocess.PIPE, env=env)
        memory = TreeMemory(proc.pid)
        memory.start()
        _out, err = proc.communicate()
        memory.stop()
    wall = time.monotonic() - t
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    tail = err.decode("utf-8", "replace").strip().splitlines()[-3:]
    if proc.returncode not in (0, 2):  # 2: the malformed lines, reported
        raise RuntimeError(f"newsradar tag exited {proc.returncode}: {tail}")
    return {"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": memory.peak_rss / 1024,
            "peak_pss_mb": memory.peak_pss / 1024, "processes": memory.peak_procs,
            "peak_rss_parent_mb": memory.peak_rss_of.get(proc.pid, 0) / 1024,
            "peak_rss_workers_mb": sorted(kb / 1024 for p, kb in memory.peak_rss_of.items() if p != proc.pid),
            "cpu_s_parent": memory.cpu_of.get(proc.pid, 0.0),
            "cpu_s_workers": sorted(s for p, s in memory.cpu_of.items() if p != proc.pid),
            "stderr_tail": tail}


# ---------------------------------------------------------------------------
# the bare chain


def _tagged_inputs(path: Path, n: int):
    """The input's articles as the bare chain takes them (the first ``n``; 0: all), read as
    a stream."""
    from newsradar.records import RawArticle, TaggedArticle

    done = 0
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                obj = json.loads(line)
            except ValueError:
                continue
            raw = RawArticle(article_id=obj["id"], source_id="bench", source_kind="rss", url=obj["url"],
                             title=obj["title"], text=obj["text"], published_at=obj["published_at"],
                             fetched_at=obj["published_at"])
            yield TaggedArticle(article=raw, lang=obj["lang"], story_id=raw.article_id)
            done += 1
            if done == n:
                return


def bare_chain(path: Path, n: int, warm: int = 300) -> tuple[float, int]:
    """(articles per CPU second, articles) of Tagger.tag + events_of + AlertRules.apply in a
    plain loop over the input's articles (the first ``n``; 0: all of them, as the batch path
    gets them). The first ``warm`` articles are not timed (caches warm, as in a running worker);
    building the Tagger is not timed either, while the batch path's CPU time includes its
    start-up: the comparison leans against the batch path."""
    from newsradar.config import load_watchlist
    from transforms.alert_rules import AlertRules, OrgState, events_of
    from transforms.tagging import Tagger

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    tagger = Tagger(watchlist)
    rules = AlertRules(lambda: watchlist)
    states: dict[str, OrgState] = {}
    articles = _tagged_inputs(path, n)
    timed = 0
    spent = 0.0
    for i, article in enumerate(articles):
        t = time.process_time()
        out = tagger.tag(article)
        for org_id, event in events_of(out):
            rules.apply(states.setdefault(org_id, OrgState()), event)
        if i >= warm:
            spent += time.process_time() - t
            timed += 1
    return timed / spent, timed


# ---------------------------------------------------------------------------
# where the time goes


def profile(path: Path, n: int) -> None:
    import cProfile
    import pstats

    from newsradar.config import load_watchlist
    from pipelines import tag
    from pipelines.batch import BatchRun

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    now = datetime.now(UTC)

    def records():
        with open(path, "rb") as fh:
            for i, item in enumerate(tag.stream_items(fh, now, str(path))):
                if i >= n:
                    return
                if item.article is not None:
                    yield item.article.encode(), datetime.fromisoformat(item.article.published_at).timestamp()

    run = BatchRun(records(), watchlist, workers=0)
    profiler = cProfile.Profile()
    t = time.process_time()
    profiler.enable()
    done = 0
    for outcome in run:
        if outcome.tagged is not None:
            json.dumps(tag.output_object(outcome.tagged), ensure_ascii=False)
        done += 1
    profiler.disable()
    total = time.process_time() - t
    stats = pstats.Stats(profiler)
    steps = {
        "read input (JSON decode, RawArticle)": [("tag.py", "_jsonl_item")],
        "encode news.raw record": [("records.py", "encode")],
        "parse (decode news.raw)": [("parse.py", "parse_article")],
        "normalize (clean text)": [("normalize.py", "clean_article")],
        "language id (lingua)": [("normalize.py", "detect_language")],
        "dedupe sketches (MinHash)": [("dedupe.py", "story_keys")],
        "dedupe rules (repeat + story index)": [("dedupe_rules.py", "judge"), ("dedupe_rules.py", "assign")],
        "tagging (Tagger.tag)": [("tagging.py", "tag")],
        "novelty (events + rules)": [("batch.py", "_alerts")],
        "output JSON": [("tag.py", "output_object"), ("__init__.py", "dumps")],
    }
    by_name: dict[tuple[str, str], float] = {}
    for (file, _line, func), (_cc, _nc, _tt, ct, _callers) in stats.stats.items():
        key = (os.path.basename(file), func)
        by_name[key] = by_name.get(key, 0.0) + ct
    print(f"profile: {done} records in {total:.1f} s CPU ({done / total:.0f}/s) in one process, cProfile on")
    for label, keys in steps.items():
        ct = sum(by_name.get(key, 0.0) for key in keys)
        print(f"  {label:<38} {ct:7.2f} s  {100 * ct / stats.total_tt:5.1f} % of the profiled time")
    stats.sort_stats("cumulative").print_stats(25)


def stages(path: Path, n: int) -> None:
    """CPU time of each step's plain function over ``n`` records, in one process, with plain
    timers (cProfile's per-call cost inflates call-heavy steps such as the sketch several-fold)."""
    from newsradar.config import load_watchlist
    from pipelines import tag
    from transforms.alert_rules import AlertRules, ArrivalClock, OrgState, events_of
    from transforms.dedupe import DedupeSettings, story_keys
    from transforms.dedupe_rules import RepeatMemory, StoryMemory
    from transforms.normalize import clean_article, detect_language, shared_detector
    from transforms.parse import parse_article
    from transforms.tagging import Tagger

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    settings = DedupeSettings()
    tagger, detector = Tagger(watchlist), shared_detector()
    rules, clock, orgs = AlertRules(lambda: watchlist), ArrivalClock(), {}
    repeats, stories = RepeatMemory(settings), {}
    spent = dict.fromkeys(["read input (JSON, RawArticle, encode)", "parse (decode news.raw)", "normalize (clean text)",
                           "language id (lingua)", "dedupe sketch (MinHash)", "dedupe rules", "tagging (Tagger.tag)",
                           "novelty (events + rules)", "output JSON"], 0.0)
    names = list(spent)

    def timed(i, fn, *args):
        t = time.process_time()
        out = fn(*args)
        spent[names[i]] += time.process_time() - t
        return out

    now = datetime.now(UTC)
    done = 0
    with open(path, "rb") as fh:
        lines = [line.rstrip(b"\n") for _, line in zip(range(n), fh, strict=False)]
    for raw_line in lines:
        item = timed(0, lambda line: next(tag._jsonl_items([line], now)), raw_line)
        if item.article is None:
            continue
        payload = timed(0, item.article.encode)
        at = datetime.fromisoformat(item.article.published_at).timestamp()
        raw = timed(1, parse_article, payload)
        clean = timed(2, clean_article, raw)
        lang = timed(3, detect_language, f"{clean.title}\n{clean.text}", clean.lang_hint, detector)
        from newsradar.records import TaggedArticle

        normalized = TaggedArticle(article=clean, lang=lang, story_id=clean.article_id)
        keys = timed(4, story_keys, normalized, settings)
        ts = int(at * 1e6)

        def dedupe(normalized=normalized, ts=ts, keys=keys):
            repeats.advance(ts)
            passed, _ = repeats.judge(normalized, ts)
            if passed is None:
                return None
            return stories.setdefault(passed.lang, StoryMemory(settings)).assign(passed, ts, keys)[0]

        deduped = timed(5, dedupe)
        if deduped is None:
            continue
        tagged = timed(6, tagger.tag, deduped)

        def novelty(tagged=tagged, at=at):
            clock.saw(at)
            for org_id, event in events_of(tagged):
                rules.apply(orgs.setdefault(org_id, OrgState()), event, clock.at(event.event_time))

        timed(7, novelty)
        timed(8, lambda t: json.dumps(tag.output_object(t), ensure_ascii=False), tagged)
        done += 1
    total = sum(spent.values())
    print(f"stages: {done} articles of {len(lines)} lines, {total:.1f} s CPU in one process ({done / total:.0f}/s)")
    for name, seconds in spent.items():
        print(f"  {name:<40} {seconds:7.2f} s  {100 * seconds / total:5.1f} %  {1000 * seconds / max(done, 1):6.2f} ms/article")


def profile_split(path: Path, n: int, workdir: Path) -> None:
    """The batch path as it runs (two forked workers), with cProfile in each worker and in
    this process (the parent: reading, the stateful rules, the output): where each process's
    time goes, by function (tottime, CPU time), and the processes' CPU seconds."""
    import cProfile
    import multiprocessing.util
    import pstats

    from newsradar.config import load_watchlist
    from pipelines import batch, tag
    from transforms.reload import WatchlistSource

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    start = batch._start_worker

    def profiled_start(*args):
        profiler = cProfile.Profile(time.process_time)
        t = time.process_time()

        def dump():
            profiler.disable()
            profiler.dump_stats(workdir / f"worker-{os.getpid()}.prof")
            print(f"worker {os.getpid()}: {time.process_time() - t:.1f} s CPU from its start", flush=True)

        profiler.enable()
        start(*args)
        multiprocessing.util.Finalize(None, dump, exitpriority=10)

    batch._start_worker = profiled_start
    now = datetime.now(UTC)
    for old in workdir.glob("worker-*.prof"):
        old.unlink()
    out = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 -- for the run only
    profiler = cProfile.Profile(time.process_time)
    t = time.process_time()
    profiler.enable()
    with open(path, "rb") as fh:
        items = tag.stream_items(fh, now, str(path))
        pairs, run = tag.run_items(items, WatchlistSource.fixed(watchlist), n)
        for _item, text, _error, _outcome in tag.output_lines(pairs, run.rules.repeats.__contains__):
            out.write(text + "\n")
    profiler.disable()
    print(f"parent: {time.process_time() - t:.1f} s CPU (its threads included)")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(18)
    for prof in sorted(workdir.glob("worker-*.prof")):
        print(f"--- {prof.name}")
        pstats.Stats(str(prof)).sort_stats("tottime").print_stats(18)


def state_trace(path: Path, every: int) -> None:
    """The batch path (two workers) over ``path`` in this process, `tag`'s way: every
    ``every`` records, this process's RSS (the parent's share of the tree) and how much each
    stateful rule remembers (``_Rules.state_sizes``): what grows, and where it stops."""
    from newsradar.config import load_watchlist
    from pipelines import tag
    from transforms.reload import WatchlistSource

    def rss_mb() -> float:
        return _kb("/proc/self/status", "VmRSS:") / 1024

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    with open(path, "rb") as fh:
        items = tag.stream_items(fh, datetime.now(UTC), str(path))
        pairs, run = tag.run_items(items, WatchlistSource.fixed(watchlist), None)
        done = 0
        for _item, outcome in pairs:
            done += outcome is not None
            if outcome is not None and done % every == 0:
                print(json.dumps({"records": done, "parent_rss_mb": round(rss_mb()), **run.rules.state_sizes()}),
                      flush=True)
    print(json.dumps({"records": done, "parent_rss_mb": round(rss_mb()), **run.rules.state_sizes()}))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, nargs="+", default=[20_000, 200_000])
    parser.add_argument("--bare", type=int, default=0, help="articles of the bare chain (default 0: all of the input)")
    parser.add_argument("--spacing", type=float, default=MONTH_SPACING, help="seconds between articles")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, help="profile the steps over N records instead")
    parser.add_argument("--stages", type=int, default=0, help="CPU time per step over N records (plain timers)")
    parser.add_argument("--profile-split", type=int, default=0,
                        help="profile the parent and each of the two workers over N records")
    parser.add_argument("--state-trace", type=int, default=0, metavar="EVERY",
                        help="with one --articles size: the parent's RSS and the rules' state sizes every EVERY records")
    parser.add_argument("--workdir", default=None)
    parser.add_argument("--keep", action="store_true", help="keep the input files, and reuse them if there")
    args = parser.parse_args(argv)
    workdir = Path(args.workdir or tempfile.mkdtemp(prefix="newsradar-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)  # a --workdir that does not exist yet
    if args.profile or args.stages or args.profile_split:
        n = args.profile or args.stages or args.profile_split
        path = workdir / f"profile-{n}.jsonl"
        if not (path.exists() and args.keep):
            write_input(path, n, args.seed, args.spacing)
        if args.profile_split:
            profile_split(path, n, workdir)
        else:
            (profile if args.profile else stages)(path, n)
        return 0
    results = []
    for n in args.articles:
        path = workdir / f"input-{n}.jsonl"
        t = time.monotonic()
        if path.exists() and args.keep:  # the same seed and spacing: the same file
            lines = sum(1 for _ in open(path, "rb"))
        else:
            lines = write_input(path, n, args.seed, args.spacing)
        print(f"{n:,} articles ({lines:,} lines, {path.stat().st_size / 2**20:.0f} MiB) written in "
              f"{time.monotonic() - t:.0f} s", flush=True)
        if args.state_trace:
            state_trace(path, args.state_trace)
            continue
        load_before = os.getloadavg()[0]
        bare, bare_n = bare_chain(path, args.bare)
        print(f"bare chain: {bare:.0f} articles per CPU second over {bare_n:,} articles "
              f"(load average {load_before:.1f} at its start)", flush=True)
        load_batch = os.getloadavg()[0]
        batch = run_batch_child(path)
        row = {"articles": n, "lines": lines, **batch, "bare_per_cpu_s": bare, "bare_articles": bare_n,
               "load_at_bare": load_before, "load_at_batch": load_batch, "load_after": os.getloadavg()[0],
               "batch_per_s": lines / batch["wall_s"], "batch_per_cpu_s": (lines - n // 500) / batch["cpu_s"]}
        row["per_core_ratio"] = row["batch_per_cpu_s"] / bare
        results.append(row)
        print(json.dumps(row), flush=True)
        if not args.keep:
            path.unlink()
    if args.state_trace:
        return 0
    print(f"\ncores: {os.cpu_count()} (shared with other work: load average {os.getloadavg()[0]:.1f} at the end)")
    for r in results:
        print(f"  {r['articles']:>9,} articles: {r['batch_per_s']:6.0f} lines/s wall, "
              f"{r['batch_per_cpu_s']:6.0f}/CPU-s vs bare chain {r['bare_per_cpu_s']:6.0f}/CPU-s "
              f"(ratio {r['per_core_ratio']:.2f}); peak tree RSS {r['peak_rss_mb']:.0f} MB, PSS {r['peak_pss_mb']:.0f} MB")
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(f"  peak ratio {large['articles']:,}/{small['articles']:,}: RSS "
              f"{large['peak_rss_mb'] / small['peak_rss_mb']:.2f}, PSS {large['peak_pss_mb'] / small['peak_pss_mb']:.2f}")
        per_s = large["batch_per_s"]
        print(f"  1M projection at {per_s:.0f} lines/s wall: {1_000_000 * large['lines'] / large['articles'] / per_s / 60:.0f} min, "
              f"memory flat at the larger run's peak")
    return 0


if __name__ == "__main__":
    sys.exit(main())
