"""A real HTTP server on 127.0.0.1 that serves the feed fixtures, plus the hostile cases.

It runs aiohttp.web on its own event loop in a thread, so in-process tests and subprocesses
(``newsradar connect``) reach it alike. Every request is recorded (path and headers) for
assertions. Large and slow bodies (1 GiB, gzip bomb, trickle) are generated while sending,
never written to disk.

Routes:

    /feeds/<file>[?gzip=1&ctype=...]   a fixture file with ETag/Last-Modified and conditional GET
    /xxe                               xxe.xml.in with the canary path filled in
    /mutable/<key>                     body set by the test (``set_body``); honest validators
    /lying/<key>                       like /mutable but answers 304 to any conditional request
    /status/<code>[?retry_after=..]    that status, optionally with Retry-After
    /flaky/<key>/<file>                500 while ``fail_next[key]`` > 0 (each request uses one), then the file
    /slow/<seconds>/<file>             the file, after keeping the client waiting that long
    /redirect/<n>/<file>               n redirects, then the file
    /loop/a, /loop/b                   redirect to each other forever
    /redirect-to?to=URL                one redirect to any URL
    /trickle?every=S                   valid headers, then one body byte every S seconds
    /huge[?declare=1]                  1 GiB body, chunked (or with its Content-Length)
    /bomb                              gzip-encoded zeros, 1 GiB once inflated (a few MB on the wire)
    /gen/<feed>.xml[?items=N]          a generated RSS feed with N items (many-feed tests)
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import threading
import zlib
from email.utils import formatdate
from pathlib import Path

from aiohttp import web

FEEDS = Path(__file__).resolve().parent.parent / "fixtures" / "feeds"
GIB = 1024 * 1024 * 1024
LAST_MODIFIED = formatdate(1764000000, usegmt=True)


def generated_feed(name: str, items: int) -> bytes:
    """Deterministic RSS for /gen/<name>.xml: item i has guid '<name>-<i>' and title 'Item <i> of <name>'."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel>',
        f"<title>Generated {name}</title><link>https://gen.example.org/{name}/</link><description>g</description>",
    ]
    for i in range(items):
        parts.append(
            f"<item><title>Item {i} of {name}</title><link>https://gen.example.org/{name}/{i}</link>"
            f"<guid isPermaLink=\"false\">{name}-{i}</guid><pubDate>Tue, 24 Nov 2026 10:{i % 60:02d}:00 GMT</pubDate>"
            f"<description>&lt;p&gt;Body of item {i} in {name}.&lt;/p&gt;</description></item>"
        )
    parts.append("</channel></rss>\n")
    return "".join(parts).encode("utf-8")


class FeedServer:
    def __init__(self, canary_path: Path | None = None, gen_delay: float = 0.0):
        self.canary_path = canary_path
        self.gen_delay = gen_delay
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.bodies: dict[str, bytes] = {}
        self.fail_next: dict[str, int] = {}
        # Requests being answered right now, and the most at once (per-host politeness checks).
        self.in_flight = 0
        self.max_in_flight = 0
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._ready = threading.Event()
        self._closing: asyncio.Event | None = None
        self._lock = threading.Lock()

    # -- lifecycle

    def start(self) -> FeedServer:
        self._thread = threading.Thread(target=self._serve, name="feed-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("feed server did not start")
        return self

    def stop(self) -> None:
        if self._loop is None:
            return
        loop, self._loop = self._loop, None
        loop.call_soon_threadsafe(self._closing.set)  # slow answers end now, not after their delay
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join(10)

    def _serve(self) -> None:
        self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(self._loop)
        self._closing = asyncio.Event()
        self._runner = web.AppRunner(self._app(), access_log=None)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def hits(self, prefix: str = "/") -> list[tuple[str, dict[str, str]]]:
        with self._lock:
            return [r for r in self.requests if r[0].startswith(prefix)]

    def set_body(self, key: str, body: bytes) -> None:
        with self._lock:
            self.bodies[key] = body

    # -- routes

    def _app(self) -> web.Application:
        app = web.Application(middlewares=[self._record])
        r = app.router
        r.add_get("/feeds/{name}", self.feed)
        r.add_get("/xxe", self.xxe)
        r.add_get("/mutable/{key}", self.mutable)
        r.add_get("/lying/{key}", self.lying)
        r.add_get("/status/{code}", self.status)
        r.add_get("/flaky/{key}/{name}", self.flaky)
        r.add_get("/slow/{seconds}/{name}", self.slow)
        r.add_get("/redirect/{n}/{name}", self.redirect)
        r.add_get("/loop/{side}", self.loop)
        r.add_get("/redirect-to", self.redirect_to)
        r.add_get("/trickle", self.trickle)
        r.add_get("/huge", self.huge)
        r.add_get("/bomb", self.bomb)
        r.add_get("/gen/{name}.xml", self.gen)
        r.add_get("/canary", self.canary)
        return app

    @web.middleware
    async def _record(self, request: web.Request, handler):
        with self._lock:
            self.requests.append((request.path_qs, dict(request.headers)))
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            return await handler(request)
        finally:
            with self._lock:
                self.in_flight -= 1

    @staticmethod
    def _conditional(request: web.Request, body: bytes, content_type: str, gzip_it: bool = False) -> web.Response:
        etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers={"ETag": etag})
        headers = {"ETag": etag, "Last-Modified": LAST_MODIFIED, "Content-Type": content_type}
        if gzip_it:
            body = gzip.compress(body)
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    async def feed(self, request: web.Request) -> web.Response:
        path = FEEDS / request.match_info["name"]
        if not path.is_file() or path.parent != FEEDS:
            raise web.HTTPNotFound()
        default = "text/html; charset=utf-8" if path.suffix == ".html" else "application/rss+xml"
        content_type = request.query.get("ctype", default)
        return self._conditional(request, path.read_bytes(), content_type, request.query.get("gzip") == "1")

    async def xxe(self, request: web.Request) -> web.Response:
        text = (FEEDS / "xxe.xml.in").read_text().replace("@CANARY@", str(self.canary_path))
        return web.Response(body=text.encode(), content_type="application/rss+xml")

    async def canary(self, request: web.Request) -> web.Response:
        return web.Response(text="canary reached")

    async def mutable(self, request: web.Request) -> web.Response:
        with self._lock:
            body = self.bodies[request.match_info["key"]]
        return self._conditional(request, body, "application/rss+xml")

    async def lying(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") or request.headers.get("If-Modified-Since"):
            return web.Response(status=304, headers={"ETag": '"forever"'})
        with self._lock:
            body = self.bodies[request.match_info["key"]]
        return web.Response(body=body, headers={"ETag": '"forever"', "Content-Type": "application/rss+xml"})

    async def status(self, request: web.Request) -> web.Response:
        headers = {}
        if "retry_after" in request.query:
            headers["Retry-After"] = request.query["retry_after"]
        return web.Response(status=int(request.match_info["code"]), text="status page", headers=headers)

    async def flaky(self, request: web.Request) -> web.Response:
        key = request.match_info["key"]
        with self._lock:
            left = self.fail_next.get(key, 0)
            if left > 0:
                self.fail_next[key] = left - 1
        if left > 0:
            return web.Response(status=500, text="internal error")
        return await self.feed(request)

    async def slow(self, request: web.Request) -> web.Response:
        try:
            await asyncio.wait_for(self._closing.wait(), float(request.match_info["seconds"]))
        except TimeoutError:
            pass  # waited the whole delay: answer now
        return await self.feed(request)

    async def redirect(self, request: web.Request) -> web.Response:
        n = int(request.match_info["n"])
        name = request.match_info["name"]
        target = f"/redirect/{n - 1}/{name}" if n > 1 else f"/feeds/{name}"
        raise web.HTTPFound(target)

    async def loop(self, request: web.Request) -> web.Response:
        raise web.HTTPFound("/loop/b" if request.match_info["side"] == "a" else "/loop/a")

    async def redirect_to(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def trickle(self, request: web.Request) -> web.StreamResponse:
        every = float(request.query.get("every", "1"))
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        resp.content_length = 10_000
        await resp.prepare(request)
        body = generated_feed("trickle", 20)
        try:
            for i in range(10_000):
                await resp.write(body[i:i + 1] or b" ")
                await asyncio.sleep(every)
        except ConnectionResetError:
            pass  # the client hit its deadline
        return resp

    async def huge(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml"})
        if request.query.get("declare") == "1":
            resp.content_length = GIB
        else:
            resp.enable_chunked_encoding()  # no length up front: only the streaming cap can stop it
        await resp.prepare(request)
        chunk = b"<!-- padding -->" * 4096  # 64 KiB
        try:
            for _ in range(GIB // len(chunk)):
                await resp.write(chunk)
        except ConnectionResetError:
            pass  # the client gave up at its cap: the point of the test
        return resp

    async def bomb(self, request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/rss+xml", "Content-Encoding": "gzip"})
        await resp.prepare(request)
        zeros = bytes(1024 * 1024)
        packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
        try:
            for _ in range(GIB // len(zeros)):
                out = packer.compress(zeros)
                if out:
                    await resp.write(out)
            await resp.write(packer.flush())
        except ConnectionResetError:
            pass  # the client gave up at its cap
        return resp

    async def gen(self, request: web.Request) -> web.Response:
        if self.gen_delay:
            await asyncio.sleep(self.gen_delay)
        body = generated_feed(request.match_info["name"], int(request.query.get("items", "20")))
        return self._conditional(request, body, "application/rss+xml")
