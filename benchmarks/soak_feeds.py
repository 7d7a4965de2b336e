"""The soak run's feed server: every source of the simulated world (benchmarks/soak_world.py)
as an RSS feed on 127.0.0.1, showing what was published by the simulated clock's now.

    python benchmarks/soak_feeds.py --port-file F [world parameters]

Until the driver sets the clock (``POST /clock`` with ``{"t0": wall, "accel": x}``) the
simulated time stands at the world's start, so feeds are empty. Then simulated time is
``start + (wall - t0) * accel``, stopping at the world's end. Each feed answers a conditional
GET whose ETag still matches with 304, as a polite server does.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from soak_world import Params, World  # noqa: E402


def world_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seed", type=int, default=Params.seed)
    parser.add_argument("--sources", type=int, default=Params.sources)
    parser.add_argument("--days", type=int, default=Params.days)
    parser.add_argument("--items-per-source-day", type=float, default=Params.items_per_source_day)


class Clock:
    def __init__(self, world: World):
        self.world = world
        self.t0: float | None = None
        self.accel = 1.0

    def now(self) -> float:
        if self.t0 is None:
            return self.world.params.start
        return min(self.world.end, self.world.params.start + (time.time() - self.t0) * self.accel)


def main() -> None:
    from aiohttp import web

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    world_args(parser)
    parser.add_argument("--start", type=float, required=True, help="simulated start, unix seconds")
    parser.add_argument("--port-file", required=True)
    opts = parser.parse_args()
    world = World(Params(opts.seed, opts.sources, opts.days, opts.items_per_source_day, opts.start))
    clock = Clock(world)
    served = {"200": 0, "304": 0}

    async def feed(request: web.Request) -> web.Response:
        try:
            source = int(request.match_info["source"])
            world.sources[source]
        except (ValueError, IndexError):
            return web.Response(status=404)
        etag, body = world.feed(source, clock.now())
        if request.headers.get("If-None-Match") == etag:
            served["304"] += 1
            return web.Response(status=304, headers={"ETag": etag})
        served["200"] += 1
        return web.Response(body=body, content_type="application/rss+xml", headers={"ETag": etag})

    async def set_clock(request: web.Request) -> web.Response:
        doc = await request.json()
        clock.t0, clock.accel = float(doc["t0"]), float(doc["accel"])
        return web.json_response({"now": clock.now()})

    async def status(_request: web.Request) -> web.Response:
        now = clock.now()
        return web.json_response({"now": now, "published": world.published_by(now), "items": len(world.items),
                                  "served": served})

    async def main_loop() -> None:
        app = web.Application()
        app.router.add_get("/f/{source}.xml", feed)
        app.router.add_post("/clock", set_clock)
        app.router.add_get("/status", status)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        Path(opts.port_file).write_text(json.dumps({"port": port, "items": len(world.items)}))
        await asyncio.Event().wait()

    asyncio.run(main_loop())


if __name__ == "__main__":
    main()
