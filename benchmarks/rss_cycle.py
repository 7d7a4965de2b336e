"""One poll cycle over 10,000 RSS feeds: feeds handled per second and parse cost per changed feed.

A local feed server (its own process, aiohttp) serves N feeds spread over 16 loopback
addresses (127.0.0.1 ... 127.0.0.16, so per-host politeness applies as with real sites).
After a priming cycle that gives every feed its validators, the measured cycle has:

* 90 % of the feeds answering 304 Not Modified to the conditional GET;
* 10 % answering 200 with a new version carrying 50 new items (~2 KB of HTML each, ~110 KB
  per body), which are parsed and produced to Kafka and acknowledged before state is saved.

The connector side is the real thing: RssPoller + Runner + SQLite state + one Kafka producer
(acks=all, idempotent) against a real local broker started for the run (or --bootstrap).

    .venv/bin/python benchmarks/rss_cycle.py [--feeds 10000] [--changed 0.1] [--items 50]
                                             [--bootstrap H:P] [--cycles 1]

Prints one line per measured cycle and the parse cost per changed feed, measured on its own
(median of repeated parse_feed calls on one changed body).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import socket
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.broker import local_broker  # noqa: E402

HOSTS = 16
ITEM_HTML = (
    "<p>Officials in the region confirmed on Tuesday that reservists had been called up, "
    "and families gathered outside the enlistment office to ask for details. </p>" * 10
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------
# the feed server (runs in its own process)


def feed_body(feed: int, version: int, items: int) -> bytes:
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?><rss version="2.0"><channel>',
        f"<title>Bench feed {feed}</title><link>https://bench.example.org/{feed}/</link><description>b</description>",
    ]
    for n in range(version * items, version * items + items):
        parts.append(
            f"<item><title>Feed {feed} item {n}</title><link>https://bench.example.org/{feed}/{n}</link>"
            f"<guid isPermaLink=\"false\">b{feed}-{n}</guid><pubDate>Tue, 24 Nov 2026 10:00:00 GMT</pubDate>"
            f"<description><![CDATA[{ITEM_HTML}]]></description></item>"
        )
    parts.append("</channel></rss>")
    return "".join(parts).encode()


def serve(port: int, changed_every: int, items: int, ready) -> None:
    from aiohttp import web

    versions: dict[int, int] = {}

    async def handle(request: web.Request) -> web.Response:
        feed = int(request.match_info["feed"])
        if feed % changed_every == 0:
            # A busy feed: every fetch finds a new version with `items` new entries.
            version = versions.get(feed, 0)
            versions[feed] = version + 1
            return web.Response(body=feed_body(feed, version, items), content_type="application/rss+xml",
                                headers={"ETag": f'"{feed}-{version}"'})
        etag = f'"static-{feed}"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        return web.Response(body=feed_body(feed, 0, 5), content_type="application/rss+xml", headers={"ETag": etag})

    async def main():
        app = web.Application()
        app.router.add_get("/f/{feed}.xml", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        for h in range(1, HOSTS + 1):
            await web.TCPSite(runner, f"127.0.0.{h}", port, backlog=1024).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


# ---------------------------------------------------------------------------
# the connector side


async def run_cycles(args, port: int, bootstrap: str, state_dir: Path) -> list:
    from prometheus_client import CollectorRegistry

    from connectors.http import FetchLimits, HttpClient
    from connectors.rss import RssPoller
    from connectors.runner import Runner, Schedule, Slot
    from connectors.state import StateStore
    from newsradar.config.sources import Defaults, RssSource
    from newsradar.kafka import make_producer
    from newsradar.metrics import ConnectorMetrics
    from newsradar.netguard import AddressPolicy

    clock_now = [time.time()]
    defaults = Defaults(per_host_concurrency=args.per_host, max_concurrent_polls=args.concurrency)
    http = HttpClient(FetchLimits(timeout=60), AddressPolicy(allow_private_networks=True), pool_size=args.concurrency)
    parse_pool = ThreadPoolExecutor(2, thread_name_prefix="parse")
    slots = []
    for feed in range(args.feeds):
        host = f"127.0.0.{feed % HOSTS + 1}"
        source = RssSource(id=f"bench-{feed}", kind="rss", url=f"http://{host}:{port}/f/{feed}.xml")
        slots.append(Slot(RssPoller(source, defaults, http, parse_in=parse_pool), Schedule.from_config(defaults)))
    producer = make_producer(bootstrap, client_id="bench")
    store = StateStore(state_dir)
    runner = Runner(slots, producer=producer, store=store, metrics=ConnectorMetrics(CollectorRegistry()),
                    clock=lambda: clock_now[0], max_concurrent_polls=args.concurrency,
                    per_host_concurrency=args.per_host)
    results = []
    try:
        for cycle in range(args.cycles + 1):
            cpu0, wall0 = time.process_time(), time.perf_counter()
            report = await runner.poll_due()
            wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
            label = "priming" if cycle == 0 else f"cycle {cycle}"
            print(f"{label}: {report.polled} feeds in {wall:.1f}s ({report.polled / wall:.0f} feeds/s), "
                  f"{report.not_modified} not modified, {report.changed} changed, {report.errors} errors, "
                  f"{report.new_items} new items produced; connector CPU {cpu:.1f}s", flush=True)
            if cycle:
                results.append((wall, cpu, report))
            clock_now[0] += 7 * 3600  # every feed due again
    finally:
        runner.close()
        await http.close()
        parse_pool.shutdown()
        producer.close(30)
        store.close()
    return results


def parse_cost(items: int, repeats: int = 20) -> float:
    from newsradar.feeds import parse_feed

    body = feed_body(0, 1, items)
    now = datetime.now(UTC)
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        parse_feed(body, {"content-type": "application/rss+xml"}, source_id="bench-0", fetched_at=now)
        times.append(time.perf_counter() - t)
    return statistics.median(times), len(body)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--feeds", type=int, default=10_000)
    parser.add_argument("--changed", type=float, default=0.1, help="share of feeds with new items")
    parser.add_argument("--items", type=int, default=50, help="new items per changed feed")
    parser.add_argument("--per-host", type=int, default=4)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--cycles", type=int, default=1, help="measured cycles after the priming one")
    parser.add_argument("--bootstrap", help="use this Kafka broker (topic news.raw must exist)")
    args = parser.parse_args()

    port = free_port()
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    server = ctx.Process(target=serve, args=(port, round(1 / args.changed), args.items, ready), daemon=True)
    server.start()
    try:
        if not ready.wait(30):
            raise SystemExit("feed server did not start")
        with tempfile.TemporaryDirectory(prefix="rss-bench-") as tmp, local_broker(Path(tmp), args.bootstrap) as bootstrap:
            print(f"{args.feeds} feeds on {HOSTS} loopback hosts, {args.changed:.0%} changed with {args.items} new "
                  f"items, per-host {args.per_host}, concurrency {args.concurrency}, Kafka {bootstrap}, "
                  f"{os.cpu_count()} CPUs", flush=True)
            results = asyncio.run(run_cycles(args, port, bootstrap, Path(tmp) / "state"))
    finally:
        server.terminate()
        server.join(10)
    median, size = parse_cost(args.items)
    print(f"parse cost per changed feed ({args.items} items, {size // 1024} KiB): {median * 1000:.1f} ms median")
    walls = [w for w, _, _ in results]
    print(f"RESULT: {args.feeds} feeds per cycle in {statistics.median(walls):.1f}s median "
          f"({args.feeds / statistics.median(walls):.0f} feeds/s); parse {median * 1000:.1f} ms per changed feed")


if __name__ == "__main__":
    main()
