"""The demo news server: bundled sample feeds and a Telegram channel page on 127.0.0.1.

Serves the items of ``items.yaml`` as they "appear": each item has an ``at`` offset in
seconds after the server starts (divided by ``--speed``); a feed or channel page lists only
the items that have appeared. Feeds answer conditional GETs (ETag / Last-Modified) like a
well-behaved publisher, so the demo exercises the connectors' 304 path.

    python -m newsradar.cli.demo.server [--port 0] [--speed 1.0] [--port-file FILE] [--hold]

Endpoints:
  /feeds/<feed-id>.xml         RSS 2.0 or Atom 1.0
  /s/<channel>                 a page in the markup of Telegram's public preview (t.me/s)
  /demo/items.json             every item with its key, source and the time it appeared
  POST /demo/start             start the schedule (only with --hold; idempotent)
  /healthz                     "ok"
"""

from __future__ import annotations

import argparse
import hashlib
import html
import signal
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from importlib import resources
from pathlib import Path

import yaml
from aiohttp import web

CLOCK_KEY = web.AppKey("clock", object)
CATALOG_KEY = web.AppKey("catalog", object)


class Clock:
    """When the schedule started. With ``hold``, only the backlog (``at: 0``) is served until
    ``POST /demo/start``: `newsradar up` starts the clock once every part is ready, so new
    items appear to a running stack and their latency is the stack's, not its start-up."""

    def __init__(self, hold: bool, now: float | None = None):
        self.launched = time.time() if now is None else now
        self.start: float | None = None if hold else self.launched

    def origin(self) -> float:
        return self.launched if self.start is None else self.start

    def visible(self, catalog: Catalog, now: float) -> list[Item]:
        if self.start is None:
            return [i for i in catalog.items if i.at <= 0]
        return catalog.appeared(self.start, now)


@dataclass(frozen=True)
class Item:
    key: str
    source: str  # feed id or channel username
    kind: str  # rss | atom | telegram
    lang: str
    at: float
    title: str
    text: str
    message_id: int = 0


@dataclass(frozen=True)
class Catalog:
    feeds: dict
    channels: dict
    items: tuple[Item, ...]
    speed: float

    def appeared(self, start: float, now: float) -> list[Item]:
        return [i for i in self.items if start + i.at / self.speed <= now]

    def appear_time(self, start: float, item: Item) -> float:
        return start + item.at / self.speed


def load_catalog(speed: float = 1.0, path: Path | None = None) -> Catalog:
    if path is None:
        text = resources.files("newsradar.cli.demo").joinpath("items.yaml").read_text(encoding="utf-8")
    else:
        text = path.read_text(encoding="utf-8")
    data = yaml.safe_load(text)
    feeds = {f["id"]: f for f in data["feeds"]}
    channels = {c["id"]: c for c in data["channels"]}
    items = []
    per_channel: dict[str, int] = {}
    for n, raw in enumerate(data["items"]):
        if "feed" in raw:
            feed = feeds[raw["feed"]]
            items.append(Item(f"{raw['feed']}-{n}", raw["feed"], feed["kind"], feed["lang"], float(raw["at"]),
                              raw["title"], raw["text"]))
        else:
            channel = channels[raw["channel"]]
            per_channel[raw["channel"]] = per_channel.get(raw["channel"], 100) + 1
            mid = per_channel[raw["channel"]]
            items.append(Item(f"{raw['channel']}-{mid}", raw["channel"], "telegram", channel["lang"],
                              float(raw["at"]), "", raw["text"], mid))
    return Catalog(feeds, channels, tuple(items), speed)


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="seconds")


def _link(request: web.Request, item: Item) -> str:
    return f"http://{request.host}/articles/{item.key}"


def render_rss(request: web.Request, feed: dict, items: list[Item], times: dict[str, float]) -> str:
    entries = "".join(
        f"""
    <item>
      <title>{html.escape(i.title)}</title>
      <link>{_link(request, i)}</link>
      <guid isPermaLink="false">{i.key}</guid>
      <pubDate>{format_datetime(datetime.fromtimestamp(times[i.key], UTC))}</pubDate>
      <description>{html.escape(i.text)}</description>
    </item>"""
        for i in reversed(items)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0">
  <channel>
    <title>{html.escape(feed["title"])}</title>
    <link>http://{request.host}/</link>
    <description>newsradar demo feed</description>
    <language>{feed["lang"]}</language>{entries}
  </channel>
</rss>
"""


def render_atom(request: web.Request, feed: dict, items: list[Item], times: dict[str, float]) -> str:
    updated = _iso(max(times.values())) if times else _iso(time.time())
    entries = "".join(
        f"""
  <entry>
    <title>{html.escape(i.title)}</title>
    <link href="{_link(request, i)}"/>
    <id>urn:newsradar-demo:{i.key}</id>
    <updated>{_iso(times[i.key])}</updated>
    <published>{_iso(times[i.key])}</published>
    <content type="html">{html.escape(i.text)}</content>
  </entry>"""
        for i in reversed(items)
    )
    return f"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom" xml:lang="{feed["lang"]}">
  <title>{html.escape(feed["title"])}</title>
  <id>urn:newsradar-demo:{feed["id"]}</id>
  <updated>{updated}</updated>{entries}
</feed>
"""


def render_channel(channel: dict, items: list[Item], times: dict[str, float]) -> str:
    """A page in the markup of t.me/s/<channel> (the parts the connector reads)."""
    name = channel["id"]
    blocks = "".join(
        f"""
<div class="tgme_widget_message_wrap js-widget_message_wrap">
  <div class="tgme_widget_message text_not_supported_wrap js-widget_message" data-post="{name}/{i.message_id}">
    <div class="tgme_widget_message_bubble">
      <div class="tgme_widget_message_author accent_color"><a class="tgme_widget_message_owner_name" href="https://t.me/{name}"><span dir="auto">{html.escape(channel["title"])}</span></a></div>
      <div class="tgme_widget_message_text js-message_text" dir="auto">{html.escape(i.text)}</div>
      <div class="tgme_widget_message_footer compact js-message_footer">
        <div class="tgme_widget_message_info short js-message_info">
          <span class="tgme_widget_message_views">{10 + i.message_id}</span><span class="copyonly"> views</span>
          <span class="tgme_widget_message_meta"><a class="tgme_widget_message_date" href="https://t.me/{name}/{i.message_id}"><time datetime="{_iso(times[i.key])}" class="time">{datetime.fromtimestamp(times[i.key], UTC):%H:%M}</time></a></span>
        </div>
      </div>
    </div>
  </div>
</div>"""
        for i in items
    )
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(channel["title"])}</title></head>
<body class="widget_frame_base tgme_webpreview">
<div class="tgme_channel_info"><div class="tgme_channel_info_header_title"><span dir="auto">{html.escape(channel["title"])}</span></div></div>
<section class="tgme_channel_history js-message_history">{blocks}
</section>
</body></html>
"""


def _http_date(value: str | None) -> float | None:
    """An HTTP date as a timestamp; None when absent or malformed (no condition then)."""
    if not value:
        return None
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None


def _conditional(request: web.Request, body: str, content_type: str, last: float) -> web.Response:
    etag = '"' + hashlib.sha256(body.encode()).hexdigest()[:16] + '"'
    last_modified = format_datetime(datetime.fromtimestamp(int(last), UTC), usegmt=True)
    if request.headers.get("If-None-Match") == etag:
        return web.Response(status=304, headers={"ETag": etag, "Last-Modified": last_modified})
    since = _http_date(request.headers.get("If-Modified-Since"))
    if since is not None and "If-None-Match" not in request.headers and since >= int(last):
        return web.Response(status=304, headers={"ETag": etag, "Last-Modified": last_modified})
    return web.Response(
        text=body, content_type=content_type, charset="utf-8",
        headers={"ETag": etag, "Last-Modified": last_modified},
    )


def _visible_items(request: web.Request, kind: str, name: str) -> tuple[Catalog, dict, float, list[Item]]:
    """The catalog, the feed or channel ``name`` (404 if unknown), the schedule's start and the
    source's items visible now."""
    catalog: Catalog = request.app[CATALOG_KEY]
    clock: Clock = request.app[CLOCK_KEY]
    source = (catalog.feeds if kind == "feed" else catalog.channels).get(name)
    if source is None:
        raise web.HTTPNotFound(text=f"no demo {kind} {name!r}")
    return catalog, source, clock.origin(), [i for i in clock.visible(catalog, time.time()) if i.source == name]


async def feed_handler(request: web.Request) -> web.Response:
    catalog, feed, start, items = _visible_items(request, "feed", request.match_info["feed"])
    times = {i.key: catalog.appear_time(start, i) for i in items}
    last = max(times.values(), default=start)
    if feed["kind"] == "atom":
        return _conditional(request, render_atom(request, feed, items, times), "application/atom+xml", last)
    return _conditional(request, render_rss(request, feed, items, times), "application/rss+xml", last)


async def channel_handler(request: web.Request) -> web.Response:
    catalog, channel, start, items = _visible_items(request, "channel", request.match_info["channel"])
    before = request.query.get("before")
    if before and before.isdigit():
        items = [i for i in items if i.message_id < int(before)]
    items = items[-20:]  # t.me/s shows about twenty posts a page
    times = {i.key: catalog.appear_time(start, i) for i in items}
    return web.Response(text=render_channel(channel, items, times), content_type="text/html", charset="utf-8")


async def items_handler(request: web.Request) -> web.Response:
    catalog: Catalog = request.app[CATALOG_KEY]
    clock: Clock = request.app[CLOCK_KEY]
    start = clock.origin()
    now = time.time()
    visible = {i.key for i in clock.visible(catalog, now)}
    body = [
        {
            "key": i.key, "source": i.source, "kind": i.kind, "lang": i.lang, "title": i.title,
            "message_id": i.message_id or None,
            # None while the schedule is held: the item has no appearance time yet.
            "appears_at": catalog.appear_time(start, i) if (clock.start is not None or i.at <= 0) else None,
            "appeared": i.key in visible,
        }
        for i in catalog.items
    ]
    return web.json_response({"start": clock.start, "speed": catalog.speed, "items": body})


async def start_handler(request: web.Request) -> web.Response:
    clock: Clock = request.app[CLOCK_KEY]
    if clock.start is None:
        clock.start = time.time()
    return web.json_response({"start": clock.start})


async def article_handler(request: web.Request) -> web.Response:
    return web.Response(text="<html><body>newsradar demo article</body></html>", content_type="text/html")


def make_app(catalog: Catalog, hold: bool = False) -> web.Application:
    app = web.Application()
    app[CATALOG_KEY] = catalog
    app[CLOCK_KEY] = Clock(hold)
    app.router.add_get("/feeds/{feed}.xml", feed_handler)
    app.router.add_get("/s/{channel}", channel_handler)
    app.router.add_get("/demo/items.json", items_handler)
    app.router.add_post("/demo/start", start_handler)
    app.router.add_get("/articles/{key}", article_handler)
    app.router.add_get("/healthz", lambda request: web.Response(text="ok"))
    return app


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="newsradar demo news server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--speed", type=float, default=1.0, help="Items appear this many times faster.")
    parser.add_argument("--port-file", help="Write the bound port here once listening.")
    parser.add_argument("--hold", action="store_true", help="Serve only the backlog until POST /demo/start.")
    opts = parser.parse_args(argv)
    if opts.speed <= 0:
        parser.error("--speed must be > 0")

    import asyncio

    async def serve() -> None:
        runner = web.AppRunner(make_app(load_catalog(opts.speed), hold=opts.hold), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, opts.host, opts.port)
        await site.start()
        port = runner.addresses[0][1]
        if opts.port_file:
            tmp = Path(opts.port_file + ".tmp")
            tmp.write_text(str(port))
            tmp.replace(opts.port_file)
        print(f"demo server listening on http://{opts.host}:{port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        await runner.cleanup()

    asyncio.run(serve())
    sys.exit(0)


if __name__ == "__main__":
    main()
