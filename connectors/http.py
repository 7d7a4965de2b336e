"""Our own HTTP client for fetching feeds and pages: polite, bounded, and refusing internal hosts.

Guarantees of :meth:`HttpClient.fetch`:

* One **total deadline** covers the whole exchange, every redirect hop included, from the
  first connection attempt to the last body byte (not a per-read timeout: a server that
  trickles one byte a second is cut off at the deadline).
* At most ``max_redirects`` redirects, followed by hand; every hop's URL is checked against
  the :class:`~newsradar.netguard.AddressPolicy` and its name is resolved through the guarded
  resolver again. A redirect back to a URL already visited is reported as a loop.
* The body is capped **after decompression**: we ask for gzip/deflate and inflate ourselves
  with a bounded output size, so a gzip bomb costs at most ``max_body`` bytes of memory plus
  one network chunk. ``Content-Length`` above the cap is refused before reading.
* Our own User-Agent; no cookies, no proxy settings from the environment.
* Every failure is a :class:`FetchError` whose ``outcome`` is one of
  ``newsradar.metrics.FETCH_OUTCOMES``; HTTP error statuses are *not* exceptions, they come
  back as a :class:`Response` for the caller to judge.
"""

from __future__ import annotations

import asyncio
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field

import aiohttp
from yarl import URL

from newsradar.httpclient import guarded_session
from newsradar.netguard import AddressPolicy, ForbiddenAddress, check_peer

DEFAULT_USER_AGENT = "newsradar/0.1 (+https://github.com/newsradar/newsradar)"
ACCEPT_FEEDS = (
    "application/rss+xml, application/atom+xml, application/rdf+xml;q=0.9, "
    "application/xml;q=0.9, text/xml;q=0.9, */*;q=0.5"
)
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Bodies of error responses are not needed; read only this much so a 500 page cannot cost much.
ERROR_BODY_LIMIT = 16 * 1024
READ_CHUNK = 64 * 1024
# Most bytes one inflate step may produce: a bomb costs the cap plus this, never a copy of the cap.
INFLATE_STEP = 256 * 1024


@dataclass(frozen=True)
class FetchLimits:
    """Per-request bounds (defaults follow sources.yaml ``defaults:``)."""

    timeout: float = 20.0
    max_body: int = 15 * 1024 * 1024
    max_redirects: int = 5
    user_agent: str = DEFAULT_USER_AGENT


@dataclass(frozen=True)
class Response:
    """A completed exchange. ``headers`` has lower-case names, repeated headers joined by ", "."""

    status: int
    url: str
    headers: Mapping[str, str]
    body: bytes
    elapsed: float
    redirects: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


class FetchError(Exception):
    """A fetch that produced no usable response; ``outcome`` is a metrics FETCH_OUTCOMES value."""

    def __init__(self, outcome: str, message: str, *, status: int | None = None, elapsed: float = 0.0):
        super().__init__(message)
        self.outcome = outcome
        self.message = message
        self.status = status
        self.elapsed = elapsed


class BodyTooLarge(FetchError):
    def __init__(self, limit: int, elapsed: float = 0.0):
        super().__init__("too_large", f"body exceeds the {limit}-byte cap (after decompression)", elapsed=elapsed)


# ---------------------------------------------------------------------------
# bounded decompression


class _Inflater:
    """Incremental gzip/deflate decoding whose output per call never exceeds ``room`` bytes."""

    def __init__(self, coding: str):
        self.coding = coding
        self._raw_deflate = False
        self._started = False
        self._d = self._new()

    def _new(self):
        if self.coding == "gzip":
            return zlib.decompressobj(zlib.MAX_WBITS | 16)
        # "deflate" is zlib-wrapped by the RFC, raw in practice from some servers.
        return zlib.decompressobj(-zlib.MAX_WBITS if self._raw_deflate else zlib.MAX_WBITS)

    def feed(self, data: bytes, room: int) -> list[bytes]:
        """Inflate ``data``; stops once ``room`` bytes came out (the caller then refuses the body)."""
        out: list[bytes] = []
        produced = 0
        while data:
            try:
                chunk = self._d.decompress(data, max(min(room - produced, INFLATE_STEP), 1))
            except zlib.error as exc:
                if self.coding == "deflate" and not self._started and not self._raw_deflate:
                    self._raw_deflate = True
                    self._d = self._new()
                    continue
                raise FetchError("network_error", f"bad {self.coding} body: {exc}") from None
            self._started = True
            out.append(chunk)
            produced += len(chunk)
            if produced >= room:
                return out
            if self._d.eof:
                data = self._d.unused_data
                # Concatenated gzip members are one body (gzip(1) writes them); anything
                # after a deflate stream is trailing garbage we ignore.
                if data and self.coding == "gzip":
                    self._d = self._new()
                    continue
                return out
            data = self._d.unconsumed_tail
        return out

    def finish(self, room: int) -> bytes:
        if not self._started:
            return b""
        if not self._d.eof:
            tail = self._d.flush(max(room, 1))
            if not self._d.eof and self.coding == "gzip":
                raise FetchError("network_error", "gzip body ended before its end marker")
            return tail
        return b""


def _content_coding(headers: Mapping[str, str]) -> str | None:
    value = (headers.get("content-encoding") or "").strip().lower()
    codings = [c.strip() for c in value.split(",") if c.strip() and c.strip() != "identity"]
    if not codings:
        return None
    if len(codings) > 1:
        raise FetchError("parse_error", f"unsupported stacked content-encoding {value!r}")
    coding = {"x-gzip": "gzip"}.get(codings[0], codings[0])
    if coding not in ("gzip", "deflate"):
        raise FetchError("parse_error", f"unsupported content-encoding {coding!r} (we ask for gzip or deflate)")
    return coding


def _headers(raw) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in raw.items():
        key = name.lower()
        out[key] = f"{out[key]}, {value}" if key in out else value
    return out


# ---------------------------------------------------------------------------
# the client


@dataclass
class HttpClient:
    """One aiohttp session behind the address policy. Create and use inside a running loop.

    Safe to share between many concurrent fetches; per-host politeness is the caller's job
    (the delivery loop limits concurrency per host).
    """

    limits: FetchLimits = field(default_factory=FetchLimits)
    policy: AddressPolicy = field(default_factory=AddressPolicy)
    # Open connections in total (keep-alive pool); the loop bounds concurrent polls anyway.
    pool_size: int = 100
    _session: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            # We inflate bodies ourselves, under the size cap; the deadline is ours too
            # (asyncio.timeout around the whole exchange).
            self._session = guarded_session(self.policy, user_agent=self.limits.user_agent, pool_size=self.pool_size,
                                            auto_decompress=False)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> HttpClient:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def fetch(
        self,
        url: str,
        *,
        etag: str | None = None,
        last_modified: str | None = None,
        accept: str = ACCEPT_FEEDS,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        max_body: int | None = None,
        max_redirects: int | None = None,
    ) -> Response:
        """GET ``url`` within the limits (module docstring). Raises :class:`FetchError`."""
        timeout = self.limits.timeout if timeout is None else timeout
        max_body = self.limits.max_body if max_body is None else max_body
        max_redirects = self.limits.max_redirects if max_redirects is None else max_redirects
        request_headers = {"Accept": accept, "Accept-Encoding": "gzip, deflate"}
        if etag:
            request_headers["If-None-Match"] = etag
        if last_modified:
            request_headers["If-Modified-Since"] = last_modified
        if headers:
            request_headers.update(headers)
        started = time.monotonic()
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(url, request_headers, max_body, max_redirects, started)
        except TimeoutError:
            raise FetchError(
                "timeout", f"no complete response within the {timeout:g}s deadline",
                elapsed=time.monotonic() - started,
            ) from None

    async def _exchange(self, url: str, headers: dict, max_body: int, max_redirects: int, started: float) -> Response:
        session = self._get_session()
        current = self.policy_check(url, started)
        visited = [str(current)]
        while True:
            try:
                async with session.get(current, headers=headers, allow_redirects=False) as resp:
                    self._check_peer(resp, current, started)
                    if resp.status in REDIRECT_STATUSES and "Location" in resp.headers:
                        target = self._redirect_target(current, resp.headers["Location"], started)
                        if str(target) in visited:
                            raise FetchError("refused", f"redirect loop back to {target}", status=resp.status,
                                             elapsed=time.monotonic() - started)
                        if len(visited) > max_redirects:
                            raise FetchError("refused", f"more than {max_redirects} redirects", status=resp.status,
                                             elapsed=time.monotonic() - started)
                        visited.append(str(target))
                        current = target
                        continue
                    limit = max_body if 200 <= resp.status < 300 else min(max_body, ERROR_BODY_LIMIT)
                    body = await self._read_body(resp, limit, truncate=not (200 <= resp.status < 300), started=started)
                    return Response(
                        status=resp.status,
                        url=str(current),
                        headers=_headers(resp.headers),
                        body=body,
                        elapsed=time.monotonic() - started,
                        redirects=tuple(visited[1:]),
                    )
            except aiohttp.ClientConnectorError as exc:
                if isinstance(exc.os_error, ForbiddenAddress):
                    raise FetchError("refused", str(exc.os_error), elapsed=time.monotonic() - started) from None
                raise FetchError("network_error", f"cannot connect to {current.host}: {exc.os_error}",
                                 elapsed=time.monotonic() - started) from None
            except aiohttp.InvalidURL as exc:
                raise FetchError("refused", f"invalid URL: {exc}", elapsed=time.monotonic() - started) from None
            except aiohttp.ClientResponseError as exc:
                raise FetchError("network_error", f"bad HTTP response: {exc.message}", status=exc.status or None,
                                 elapsed=time.monotonic() - started) from None
            except (aiohttp.ClientError, OSError) as exc:
                raise FetchError("network_error", f"{type(exc).__name__}: {exc}",
                                 elapsed=time.monotonic() - started) from None

    def policy_check(self, url: str | URL, started: float) -> URL:
        try:
            return self.policy.check_url(url)
        except ForbiddenAddress as exc:
            raise FetchError("refused", str(exc), elapsed=time.monotonic() - started) from None

    def _redirect_target(self, current: URL, location: str, started: float) -> URL:
        try:
            target = current.join(URL(location))
        except ValueError as exc:
            raise FetchError("refused", f"unreadable redirect Location {location[:200]!r}: {exc}",
                             elapsed=time.monotonic() - started) from None
        return self.policy_check(target.with_fragment(None), started)

    def _check_peer(self, resp: aiohttp.ClientResponse, url: URL, started: float) -> None:
        # The connection is gone already for bodiless responses; the resolver checked it then.
        conn = resp.connection
        transport = conn.transport if conn is not None else None
        if transport is None:
            return
        try:
            check_peer(self.policy, transport.get_extra_info("peername"), url.host or "")
        except ForbiddenAddress as exc:
            raise FetchError("refused", str(exc), elapsed=time.monotonic() - started) from None

    async def _read_body(self, resp: aiohttp.ClientResponse, limit: int, *, truncate: bool, started: float) -> bytes:
        declared = resp.content_length
        coding = _content_coding(resp.headers)
        if coding is None and declared is not None and declared > limit and not truncate:
            raise BodyTooLarge(limit, time.monotonic() - started)
        inflater = _Inflater(coding) if coding else None
        parts: list[bytes] = []
        size = 0
        async for chunk in resp.content.iter_chunked(READ_CHUNK):
            for data in inflater.feed(chunk, limit - size + 1) if inflater else (chunk,):
                size += len(data)
                if size > limit:
                    if truncate:
                        parts.append(data[: len(data) - (size - limit)])
                        return b"".join(parts)
                    raise BodyTooLarge(limit, time.monotonic() - started)
                parts.append(data)
        if inflater is not None:
            tail = inflater.finish(limit - size + 1)
            size += len(tail)
            if size > limit and not truncate:
                raise BodyTooLarge(limit, time.monotonic() - started)
            parts.append(tail)
        return b"".join(parts)


__all__ = [
    "ACCEPT_FEEDS", "BodyTooLarge", "DEFAULT_USER_AGENT", "FetchError", "FetchLimits", "HttpClient", "Response",
]
