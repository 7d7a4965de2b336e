"""Soak run: the whole local stack through simulated weeks, watching memory, lag and latency.

    .venv/bin/python benchmarks/soak.py [--days 14] [--sources 2000] [--minutes-per-day 4]
                                        [--seed 20] [--out soak-result.json]

What runs: the project's own stack as `newsradar up` starts it (newsradar/cli/up.py: its Kafka
broker, `newsradar connect`, `newsradar pipeline` on Prism, `newsradar deliver`) in a fresh
NEWSRADAR_HOME, against

* a local feed server (benchmarks/soak_feeds.py, its own process) serving ``--sources``
  generated RSS feeds (benchmarks/soak_world.py: cadences from wire services to quiet blogs,
  day and night, recurring watched organizations, story copies, surges);
* a webhook receiver on 127.0.0.1 (in this process), the watchlist's only sink.

Event time is accelerated: a simulated day lasts ``--minutes-per-day`` of wall time, and items
carry published dates advancing with the simulated clock. The simulated weeks lie in the past
(they end about a day before the run starts), because the pipeline never lets an event time
run ahead of the fetch time. So that they are not taken for history, the watchlist's backfill
guard ``novelty.max_alert_age`` is set to the simulated span plus 3 days, and the pipeline's
dedupe windows, which run on the Kafka timestamps (wall time), are scaled by the acceleration
(``--repeat_window``, ``--story_window``). Poll intervals are the sources' simulated ones in
wall time, but at least ``--min-poll`` seconds.

Each simulated day: a few hostile records produced straight into news.raw (a quarter into
the day) and a restart of the pipeline (SIGTERM, wait for its clean stop, start; at mid-day).
Sampled throughout: the resident memory of every process tree (broker, connectors, pipeline,
deliver, and the feed server), the pipeline's consumer group lag on news.raw; at the webhook,
the latency from an alert's ``created_at`` to its arrival. At the end: news.raw, news.alerts
and news.dlq are read back, the same input (news.raw without the hostile records, in arrival
order) is replayed through `newsradar tag` without interruption, and the alert counts are set
side by side.

Output: ``--out`` (JSON) and the same name with ``.md`` (tables); exit 1 when a property that
must hold even in a short run does not (:func:`soak_report.problems`; also listed in the
result).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(HERE))

import soak_report  # noqa: E402
import yaml  # noqa: E402
from soak_world import DAY, Params, World, hostile_records, sources_yaml  # noqa: E402

GROUP = "newsradar-pipeline"
STOP_GRACE = 120.0  # the pipeline's own --stop_timeout is 60 s
DRAIN_TIMEOUT = 300.0
SETTLE_TIMEOUT = 300.0


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} soak: {message}", file=sys.stderr, flush=True)


# -- processes and their memory -------------------------------------------------------


def process_tree(root: int) -> set[int]:
    """``root`` and every process below it (from /proc: psutil is not a dependency)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(") ", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue  # the process ended while we looked
    found, frontier = {root}, {root}
    while frontier:
        frontier = {pid for pid, ppid in parents.items() if ppid in frontier} - found
        found |= frontier
    return found


def rss_bytes(pids: set[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
                    break
        except (OSError, ValueError):
            continue  # ended while we looked
    return total


# -- Kafka: lag, hostile records, reading back ------------------------------------------


class LagProbe:
    """The pipeline's consumer group lag on news.raw: end offsets minus committed offsets."""

    def __init__(self, bootstrap: str):
        from newsradar.kafka import make_admin, make_consumer

        self.admin = make_admin(bootstrap, client_id="soak-lag")
        self.consumer = make_consumer(bootstrap, enable_auto_commit=False, client_id="soak-lag")

    def ends_and_lag(self) -> tuple[int, int]:
        from kafka import TopicPartition

        from newsradar.records import TOPIC_RAW

        parts = [TopicPartition(TOPIC_RAW, p) for p in sorted(self.consumer.partitions_for_topic(TOPIC_RAW) or ())]
        ends = self.consumer.end_offsets(parts)
        committed = self.admin.list_group_offsets({GROUP: None}).get(GROUP) or {}
        lag = 0
        for tp in parts:
            done = committed.get(tp)
            lag += ends[tp] - (done.offset if done is not None and done.offset >= 0 else 0)
        return sum(ends.values()), lag

    def close(self) -> None:
        self.consumer.close()
        self.admin.close()


# -- the webhook receiver ----------------------------------------------------------------


class Webhook:
    """Receives the alerts `deliver` posts; remembers each one's id, created_at and arrival."""

    def __init__(self):
        received = self.received = []
        lock = self.lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                at = time.time()
                try:
                    # deliver posts one notification per story (issue 14): the full form lists
                    # its alerts, an update's follow-up their ids. created_at is the story's
                    # earliest alert's, so an update's latency is counted from the story's start.
                    doc = json.loads(body)
                    parts = doc["alerts"] if "alerts" in doc else [{"alert_id": a} for a in doc["alert_ids"]]
                    entries = [{"alert_id": p["alert_id"], "kind": p.get("kind"),
                                "created_at": doc.get("created_at"), "received": at} for p in parts]
                except (ValueError, KeyError, TypeError) as exc:
                    entries = [{"error": f"{type(exc).__name__}: {exc}", "received": at}]
                with lock:
                    received.extend(entries)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass  # one line per alert would drown the run's own log

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alerts"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook").start()

    def snapshot(self) -> list[dict]:
        with self.lock:
            return list(self.received)

    def close(self) -> None:
        self.server.shutdown()


# -- sampling --------------------------------------------------------------------------


class Sampler:
    """A thread that samples memory every ``every`` seconds and the lag every second."""

    def __init__(self, processes, probe: LagProbe, every: float):
        self.processes = processes  # () -> {name: pid or None}
        self.probe = probe
        self.every = every
        self.memory: list[dict] = []
        self.lag: list[dict] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="sampler")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        from kafka.errors import KafkaError

        next_memory = 0.0
        while not self._stop.wait(1.0):
            now = time.time()
            try:
                ends, lag = self.probe.ends_and_lag()
                self.lag.append({"t": now, "lag": lag, "ends": ends})
            except (KafkaError, OSError) as exc:  # a failed probe is recorded and reported, not fatal
                self.errors.append(f"lag at {now:.0f}: {type(exc).__name__}: {exc}")
            if now >= next_memory:
                next_memory = now + self.every
                sample = {"t": now}
                for name, pid in self.processes().items():
                    sample[name] = rss_bytes(process_tree(pid)) if pid else None
                self.memory.append(sample)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


# -- the run -----------------------------------------------------------------------------


def soak_watchlist(path: Path, webhook_url: str, days: int) -> Path:
    doc = yaml.safe_load((REPO / "config" / "watchlist.yaml").read_text(encoding="utf-8"))
    doc.setdefault("novelty", {})["max_alert_age"] = f"{days + 3}d"
    doc.setdefault("alerts", {})["sinks"] = [{"kind": "webhook", "url": webhook_url, "allow_private_networks": True}]
    path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), encoding="utf-8")
    return path


def start_feed_server(params: Params, work: Path, env: dict) -> tuple[subprocess.Popen, str]:
    from newsradar.procs import die_with_parent

    port_file = work / "feeds.port"
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "soak_feeds.py"), "--seed", str(params.seed), "--sources", str(params.sources),
         "--days", str(params.days), "--items-per-source-day", str(params.items_per_source_day),
         "--start", str(params.start), "--port-file", str(port_file)],
        stdout=open(work / "feeds.log", "ab"), stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, preexec_fn=die_with_parent, env=env,
    )
    deadline = time.monotonic() + 120
    while not port_file.exists():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the feed server did not start; log {work / 'feeds.log'}")
        time.sleep(0.2)
    time.sleep(0.1)  # the file is written in one call, but let the writer finish
    return proc, f"http://127.0.0.1:{json.loads(port_file.read_text())['port']}"


def post_json(url: str, doc: dict) -> dict:
    request = urllib.request.Request(url, data=json.dumps(doc).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback URL we built
        return json.load(resp)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as resp:  # noqa: S310 - loopback URL we built
        return json.load(resp)


def restart_pipeline(part, env: dict, probe: LagProbe, day: int) -> dict:
    """SIGTERM the pipeline, wait for it to stop, start it again; then wait until it has
    committed everything that was on news.raw when it was ready again."""
    from newsradar.cli.up import READY_TIMEOUT

    t = time.time()
    part.stop(grace=STOP_GRACE)
    stopped = time.time()
    code = part.proc.returncode
    part.start(env)
    part.wait_ready(READY_TIMEOUT)
    ready = time.time()
    ends_at_ready, lag_at_ready = probe.ends_and_lag()
    drained, zero, lowest = None, None, lag_at_ready
    deadline = time.monotonic() + DRAIN_TIMEOUT
    while time.monotonic() < deadline and (drained is None or zero is None):
        ends, lag = probe.ends_and_lag()
        lowest = min(lowest, lag)
        if drained is None and ends - lag >= ends_at_ready:
            drained = time.time() - ready
        if zero is None and lag == 0:
            zero = time.time() - ready
        if drained is not None and time.time() - ready > 30:
            break  # drained; a lag of exactly 0 under steady input may take long and is not needed
        time.sleep(0.5)
    info = {"day": day, "at": t, "ready_at": ready, "stop_s": round(stopped - t, 1), "exit_code": code, "start_s": round(ready - stopped, 1),
            "lag_at_ready": lag_at_ready, "drained_s": None if drained is None else round(drained, 1),
            "zero_lag_s": None if zero is None else round(zero, 1), "lowest_lag": lowest}
    log(f"day {day}: pipeline restarted: {info}")
    return info


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14, help="simulated days (default 14)")
    parser.add_argument("--sources", type=int, default=2000, help="RSS sources (default 2000)")
    parser.add_argument("--minutes-per-day", type=float, default=4.0, help="wall minutes per simulated day (default 4)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--items-per-source-day", type=float, default=2.0, help="mean items a source publishes a day")
    parser.add_argument("--min-poll", type=float, default=5.0, help="shortest poll interval, wall seconds")
    parser.add_argument("--sample-every", type=float, default=5.0, help="seconds between memory samples")
    parser.add_argument("--out", default="soak-result.json", help="result JSON (and the same name with .md)")
    parser.add_argument("--work-dir", help="keep everything here (default: a temporary directory, removed)")
    opts = parser.parse_args(argv)

    if opts.work_dir:
        Path(opts.work_dir).mkdir(parents=True, exist_ok=True)
        return run(opts, Path(opts.work_dir))
    with tempfile.TemporaryDirectory(prefix="nr-soak-") as tmp:
        return run(opts, Path(tmp))


def run(opts, work: Path) -> int:
    from newsradar import paths
    from newsradar.cli.up import Options, Stack
    from newsradar.kafka import make_producer, read_topic
    from newsradar.procs import free_port
    from newsradar.records import TOPIC_ALERTS, TOPIC_DLQ, TOPIC_RAW

    # The broker's jars stay in the real cache; everything else lives in the run's home.
    os.environ.setdefault("NEWSRADAR_CACHE", str(paths.cache_dir()))
    home = work / "home"
    os.environ["NEWSRADAR_HOME"] = str(home)
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    day_seconds = opts.minutes_per_day * 60
    accel = DAY / day_seconds
    start = (time.time() // DAY - opts.days - 1) * DAY  # midnight UTC; the weeks end before today
    params = Params(opts.seed, opts.sources, opts.days, opts.items_per_source_day, start)
    world = World(params)
    log(f"{opts.sources} sources, {len(world.items)} items over {opts.days} simulated days "
        f"from {time.strftime('%Y-%m-%d', time.gmtime(start))}; a day is {day_seconds:.0f}s (x{accel:.0f})")

    webhook = Webhook()
    feeds, base = start_feed_server(params, work, env)
    watchlist = soak_watchlist(work / "watchlist.yaml", webhook.url, opts.days)
    connect_port = free_port()
    sources = work / "sources.yaml"
    sources.write_text(yaml.safe_dump(sources_yaml(world, base, accel, connect_port, opts.min_poll), sort_keys=False))
    stack = Stack(Options(
        sources_file=str(sources), watchlist_file=str(watchlist), kafka_port=free_port(),
        connect_metrics_port=connect_port, pipeline_metrics_port=free_port(), deliver_metrics_port=free_port(),
        live=False,
        pipeline_args=(f"--repeat_window={3 * DAY / accel:.0f}s", f"--story_window={DAY / accel:.0f}s"),
    ), home=home, say=log)
    result: dict = {"command": "benchmarks/soak.py " + " ".join(sys.argv[1:]), "params": {
        "days": opts.days, "sources": opts.sources, "minutes_per_day": opts.minutes_per_day, "seed": opts.seed,
        "items_per_source_day": opts.items_per_source_day, "min_poll": opts.min_poll, "accel": round(accel, 1),
        "simulated_start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))}}
    sampler = probe = None
    restarts: list[dict] = []
    hostile: list[bytes] = []
    days: list[dict] = []
    dead: list[str] = []
    try:
        t_stack = time.time()
        stack.start()
        result["stack_start_s"] = round(time.time() - t_stack, 1)
        parts = {p.name: p for p in stack.parts}

        def processes() -> dict:
            out = {name: (p.proc.pid if p.proc is not None and p.proc.poll() is None else None)
                   for name, p in parts.items()}
            out["broker"] = stack.broker.pid() if stack.broker else None
            out["feed server"] = feeds.pid if feeds.poll() is None else None
            return out

        probe = LagProbe(stack.bootstrap)
        sampler = Sampler(processes, LagProbe(stack.bootstrap), opts.sample_every)
        producer = make_producer(stack.bootstrap, client_id="soak-hostile")
        t0 = time.time()
        post_json(f"{base}/clock", {"t0": t0, "accel": accel})
        sampler.start()
        for day in range(opts.days):
            day_start = t0 + day * day_seconds
            marks = {"hostile": day_start + 0.25 * day_seconds, "restart": day_start + 0.5 * day_seconds}
            done: set[str] = set()
            while time.time() < day_start + day_seconds:
                stack.check()
                if "hostile" not in done and time.time() >= marks["hostile"]:
                    for payload in hostile_records(day):
                        producer.send(TOPIC_RAW, value=payload)
                        hostile.append(payload)
                    producer.flush(30)
                    done.add("hostile")
                if "restart" not in done and time.time() >= marks["restart"]:
                    restarts.append(restart_pipeline(parts["pipeline"], env, probe, day))
                    done.add("restart")
                time.sleep(0.5)
            status = get_json(f"{base}/status")
            days.append({"day": day, "end": time.time(), "published": status["published"]})
            log(f"day {day} over: {status['published']} items published so far")
        result["settle"] = settle(stack, world, probe, webhook, len(hostile))
        result["wall_s"] = round(time.time() - t0, 1)
        sampler.stop()
        for name, pid in processes().items():
            if pid is None:
                dead.append(name)
        raw = read_topic(stack.bootstrap, TOPIC_RAW, timeout=300)
        alerts = read_topic(stack.bootstrap, TOPIC_ALERTS, timeout=300)
        dlq = read_topic(stack.bootstrap, TOPIC_DLQ, timeout=120)
        feed_status = get_json(f"{base}/status")
    finally:
        if sampler is not None:
            sampler.stop()
        if probe is not None:
            probe.close()
        stack.stop()
        feeds.terminate()
        feeds.wait(30)
        webhook.close()
    # What was sampled, kept before the figures are made (with --work-dir, the broker's data stays too).
    (work / "samples.json").write_text(json.dumps({
        "t0": t0, "day_seconds": day_seconds, "days": days, "memory": sampler.memory, "lag": sampler.lag,
        "restarts": restarts, "received": webhook.snapshot(), "dead": dead}), encoding="utf-8")
    replay = replay_with_tag(raw, watchlist, work)
    result.update(soak_report.summarize(
        world=world, days=days, t0=t0, day_seconds=day_seconds, memory=sampler.memory, lag=sampler.lag,
        restarts=restarts, received=webhook.snapshot(), raw=raw, alerts=alerts, dlq=dlq, hostile=hostile,
        replay=replay, dead=dead, sampler_errors=sampler.errors, feed_status=feed_status,
    ))
    result["problems"] = soak_report.problems(result)
    out = Path(opts.out)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    out.with_suffix(".md").write_text(soak_report.markdown(result), encoding="utf-8")
    log(f"result in {out} and {out.with_suffix('.md')}")
    for problem in result["problems"]:
        log(f"PROBLEM: {problem}")
    return 1 if result["problems"] else 0


def settle(stack, world: World, probe: LagProbe, webhook: Webhook, hostile: int) -> dict:
    """After the last simulated day (the feeds stand still): wait until every published item
    is on news.raw, the pipeline has committed everything, and no alert arrived for 10 s."""
    t = time.time()
    deadline = time.monotonic() + SETTLE_TIMEOUT
    last_count, quiet_since = -1, time.time()
    ends = lag = 0
    while time.monotonic() < deadline:
        stack.check()
        ends, lag = probe.ends_and_lag()
        count = len(webhook.snapshot())
        if count != last_count:
            last_count, quiet_since = count, time.time()
        if ends - hostile >= len(world.items) and lag == 0 and time.time() - quiet_since > 10:
            break
        time.sleep(1.0)
    info = {"seconds": round(time.time() - t, 1), "raw_records": ends, "lag": lag}
    log(f"settled: {info}")
    return info


def replay_with_tag(raw_records: list, watchlist: Path, work: Path) -> dict:
    """The same input through `newsradar tag` without interruption: news.raw's articles in
    arrival order (Kafka timestamp, then partition and offset), hostile records left out."""
    from newsradar.records import RecordError, decode_raw

    lines = []
    for rec in sorted(raw_records, key=lambda r: (r.timestamp, r.partition, r.offset)):
        try:
            a = decode_raw(rec.value)
        except RecordError:
            continue  # a hostile record: the stream dead-letters it, the replay has no line for it
        lines.append(json.dumps({"id": a.article_id, "title": a.title, "text": a.text, "url": a.url,
                                 "lang": a.lang_hint, "published_at": a.published_at, "source_id": a.source_id},
                                ensure_ascii=False))
    data = work / "replay.jsonl"
    data.write_text("\n".join(lines) + "\n", encoding="utf-8")
    alerts_file = work / "replay-alerts.jsonl"
    t = time.time()
    with open(work / "replay-tagged.jsonl", "wb") as out, open(work / "replay.log", "wb") as err:
        code = subprocess.call([sys.executable, "-m", "newsradar.cli", "tag", "--watchlist", str(watchlist),
                                "--alerts", str(alerts_file), str(data)], stdout=out, stderr=err)
    seconds = time.time() - t
    alerts = [json.loads(line) for line in alerts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    log(f"tag replay of {len(lines)} articles: exit {code}, {len(alerts)} alerts in {seconds:.0f}s")
    return {"articles": len(lines), "exit_code": code, "seconds": round(seconds, 1), "alerts": alerts}


if __name__ == "__main__":
    sys.exit(main())
