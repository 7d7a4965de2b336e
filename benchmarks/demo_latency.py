"""Latency of the whole stack: from a demo item appearing on the local server to its alert on Kafka.

Runs `newsradar up --demo` in a fresh temporary NEWSRADAR_HOME, waits until the demo schedule
has played and the alerts settled, then, for every demo item that raised an alert, takes

    latency = Kafka timestamp of its first alert record - the moment the item appeared

and prints each item and the p50/p95 over the demo.

    .venv/bin/python benchmarks/demo_latency.py [--speed 1] [--poll-interval 5]

Goal (issue 8): p95 <= poll interval + 5 s.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

from newsradar.kafka import read_topic
from newsradar.procs import free_port
from newsradar.records import TOPIC_ALERTS, TOPIC_RAW, TOPIC_TAGGED, decode_alert, decode_raw, decode_tagged


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=1.0)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--settle", type=float, default=30.0, help="Seconds to wait after the last item appeared.")
    opts = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="nr-latency-") as home:
        kafka_port = free_port()
        bootstrap = f"localhost:{kafka_port}"
        env = dict(os.environ, NEWSRADAR_HOME=home)
        proc = subprocess.Popen(
            [sys.executable, "-m", "newsradar.cli", "up", "--demo", "--no-live", "--demo-speed", str(opts.speed),
             "--poll-interval", str(opts.poll_interval), "--kafka-port", str(kafka_port),
             "--connect-metrics-port", str(free_port()), "--pipeline-metrics-port", str(free_port())],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        )
        lines: list[str] = []
        threading.Thread(target=lambda: lines.extend(line.rstrip() for line in proc.stdout), daemon=True).start()
        try:
            deadline = time.monotonic() + 300
            while not any(ln.startswith("newsradar is up") for ln in lines):
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("newsradar up did not come up:\n" + "\n".join(lines))
                time.sleep(0.5)
            base = re.search(r"demo server\s+(http://127\.0\.0\.1:\d+)", "\n".join(lines)).group(1)
            with urllib.request.urlopen(f"{base}/demo/items.json", timeout=5) as resp:
                demo = json.load(resp)
            # The backlog was there before the stack; only items that appear to the running stack count.
            items = [i for i in demo["items"] if i["appears_at"] is not None and i["appears_at"] >= demo["start"]]
            last = max(i["appears_at"] for i in items)
            print(f"stack up; demo plays until {time.strftime('%H:%M:%S', time.localtime(last))}, "
                  f"then {opts.settle:.0f}s to settle", flush=True)
            time.sleep(max(0.0, last - time.time()) + opts.settle)

            tagged = {t.article.article_id: t for t in (decode_tagged(r.value) for r in read_topic(bootstrap, TOPIC_TAGGED))}
            produced: dict[str, float] = {}
            for rec in read_topic(bootstrap, TOPIC_RAW):
                raw = decode_raw(rec.value)
                produced.setdefault(raw.article_id, rec.timestamp / 1000.0)
            first_alert: dict[str, float] = {}
            for rec in read_topic(bootstrap, TOPIC_ALERTS):
                alert = decode_alert(rec.value)
                ts = rec.timestamp / 1000.0
                first_alert[alert.article_id] = min(ts, first_alert.get(alert.article_id, ts))
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)

    appeared = {}
    for item in items:
        url = (f"https://t.me/{item['source']}/{item['message_id']}" if item["kind"] == "telegram"
               else f"{base}/articles/{item['key']}")
        appeared[url] = (item["key"], item["appears_at"])
    latencies, fetch, pipeline = [], [], []
    for article_id, ts in sorted(first_alert.items(), key=lambda kv: kv[1]):
        article = tagged.get(article_id)
        if article is None or article.article.url not in appeared:
            continue
        key, at = appeared[article.article.url]
        raw_ts = produced.get(article_id, at)
        latencies.append(ts - at)
        fetch.append(raw_ts - at)
        pipeline.append(ts - raw_ts)
        print(f"{key:24s} alert {ts - at:6.1f}s after it appeared "
              f"(on news.raw after {raw_ts - at:5.1f}s, pipeline {ts - raw_ts:5.1f}s)")
    if not latencies:
        raise SystemExit("no alert could be matched to a demo item")
    print(f"{len(latencies)} items with alerts, poll interval {opts.poll_interval:g}s: "
          f"p50 {statistics.median(latencies):.1f}s, p95 {percentile(latencies, 0.95):.1f}s, "
          f"max {max(latencies):.1f}s (goal p95 <= {opts.poll_interval + 5:g}s)")
    print(f"  appear -> news.raw: p50 {statistics.median(fetch):.1f}s, p95 {percentile(fetch, 0.95):.1f}s; "
          f"news.raw -> alert: p50 {statistics.median(pipeline):.1f}s, p95 {percentile(pipeline, 0.95):.1f}s")


if __name__ == "__main__":
    main()
