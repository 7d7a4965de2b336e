"""The HTTP client against a real server on 127.0.0.1: limits, redirects, refusals, caps."""

from __future__ import annotations

import asyncio
import gzip
import time
import tracemalloc

import pytest

from connectors.http import FetchError, FetchLimits, HttpClient
from newsradar.netguard import AddressPolicy
from tests.connectors.feedserver import FEEDS

MIB = 1024 * 1024


def fetch(url: str, policy: AddressPolicy | None = None, limits: FetchLimits | None = None, **kwargs):
    async def go():
        async with HttpClient(limits or FetchLimits(), policy or AddressPolicy(allow_private_networks=True)) as client:
            return await client.fetch(url, **kwargs)

    return asyncio.run(go())


def fetch_error(url: str, **kwargs) -> FetchError:
    with pytest.raises(FetchError) as info:
        fetch(url, **kwargs)
    return info.value


def only(server) -> AddressPolicy:
    """A policy that lets us reach exactly the test server and nothing else internal."""
    return AddressPolicy.exempting([("127.0.0.1", server.port)])


def test_plain_gzip_and_conditional_get(feed_server):
    raw = (FEEDS / "rss20.xml").read_bytes()
    plain = fetch(feed_server.url("/feeds/rss20.xml"))
    assert plain.status == 200 and plain.body == raw and plain.headers["etag"]
    zipped = fetch(feed_server.url("/feeds/rss20.xml?gzip=1"))
    assert zipped.headers["content-encoding"] == "gzip" and zipped.body == raw
    again = fetch(feed_server.url("/feeds/rss20.xml"), etag=plain.headers["etag"], last_modified=plain.headers["last-modified"])
    assert again.status == 304 and again.body == b""
    sent = feed_server.hits("/feeds/rss20.xml")[-1][1]
    assert sent["If-None-Match"] == plain.headers["etag"] and sent["If-Modified-Since"] == plain.headers["last-modified"]
    assert sent["User-Agent"].startswith("newsradar/") and "gzip" in sent["Accept-Encoding"]


def test_five_redirects_are_followed_six_are_refused(feed_server):
    resp = fetch(feed_server.url("/redirect/5/rss20.xml"))
    assert resp.status == 200 and len(resp.redirects) == 5
    err = fetch_error(feed_server.url("/redirect/6/rss20.xml"))
    assert err.outcome == "refused" and "more than 5 redirects" in err.message


def test_redirect_loop_is_refused(feed_server):
    err = fetch_error(feed_server.url("/loop/a"))
    assert err.outcome == "refused" and "redirect loop" in err.message
    assert len(feed_server.hits("/loop/")) == 2


@pytest.mark.parametrize(
    "target",
    [
        "http://127.0.0.1:{canary}/canary",  # loopback literal, another port
        "http://localhost:{canary}/canary",  # a name that resolves to loopback: refused after DNS
        "http://2130706433:{canary}/canary",  # decimal spelling
        "http://0177.0.0.1:{canary}/canary",  # octal spelling
        "http://[::ffff:127.0.0.1]:{canary}/canary",  # IPv4-mapped IPv6
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
    ],
)
def test_redirect_to_an_internal_address_is_refused(feed_server, canary_server, target):
    to = target.format(canary=canary_server.port)
    err = fetch_error(feed_server.url(f"/redirect-to?to={to}"), policy=only(feed_server))
    assert err.outcome == "refused" and "internal address" in err.message
    assert canary_server.hits() == [], "the refused target was contacted anyway"
    assert len(feed_server.hits("/redirect-to")) == 1


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{canary}/canary", "http://localhost:{canary}/canary", "http://2130706433:{canary}/canary",
        "http://0177.0.0.1:{canary}/canary", "http://0x7f.1:{canary}/canary", "http://127.1:{canary}/canary",
        "http://[::ffff:7f00:1]:{canary}/canary",
    ],
)
def test_internal_addresses_are_refused_without_the_flag(canary_server, url):
    err = fetch_error(url.format(canary=canary_server.port), policy=AddressPolicy())
    assert err.outcome == "refused"
    assert canary_server.hits() == []


def test_allow_private_networks_reaches_loopback_names(canary_server):
    resp = fetch(f"http://localhost:{canary_server.port}/canary", policy=AddressPolicy(allow_private_networks=True))
    assert resp.status == 200 and resp.body == b"canary reached"


def test_trickling_server_is_cut_at_the_total_deadline(feed_server):
    # One byte a second: every single read succeeds quickly, only the total deadline can stop it.
    started = time.monotonic()
    err = fetch_error(feed_server.url("/trickle?every=1"), limits=FetchLimits(timeout=3.0))
    elapsed = time.monotonic() - started
    assert err.outcome == "timeout" and "3s deadline" in err.message
    assert 2.9 <= elapsed < 5.0
    assert feed_server.hits("/trickle")


def _peak_during(func):
    tracemalloc.start()
    try:
        func()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.slow
@pytest.mark.parametrize("path, why", [
    ("/huge", "15728640-byte cap"),          # a 1 GiB body
    ("/bomb", "after decompression"),         # a gzip bomb
])
def test_an_oversized_body_is_cut_at_the_cap_with_bounded_memory(feed_server, path, why):
    errors = []

    def run():
        errors.append(fetch_error(feed_server.url(path)))  # the default 15 MiB cap

    peak = _peak_during(run)
    assert errors[0].outcome == "too_large" and why in errors[0].message
    assert peak < 24 * MIB, f"peak {peak / MIB:.1f} MiB while refusing {path}"
    assert "gzip" in feed_server.hits(path)[0][1]["Accept-Encoding"]


def test_declared_length_over_the_cap_is_refused_before_reading(feed_server):
    err = fetch_error(feed_server.url("/feeds/rss20.xml"), limits=FetchLimits(max_body=100))
    assert err.outcome == "too_large"
    started = time.monotonic()
    err = fetch_error(feed_server.url("/huge?declare=1"))
    assert err.outcome == "too_large" and time.monotonic() - started < 1.0


def test_error_statuses_come_back_as_responses(feed_server):
    resp = fetch(feed_server.url("/status/429?retry_after=120"))
    assert resp.status == 429 and resp.headers["retry-after"] == "120"
    assert fetch(feed_server.url("/status/500")).status == 500


def test_connection_refused_is_a_network_error(canary_server):
    port = canary_server.port
    canary_server.stop()
    err = fetch_error(f"http://127.0.0.1:{port}/x")
    assert err.outcome == "network_error"


def test_concatenated_gzip_members_are_one_body():
    from connectors.http import _Inflater

    body = gzip.compress(b"<rss>") + gzip.compress(b"</rss>")
    inflater = _Inflater("gzip")
    assert b"".join(inflater.feed(body, 1000)) + inflater.finish(1000) == b"<rss></rss>"
