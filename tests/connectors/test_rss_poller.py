"""The RSS poller against the real fixture server: conditional GET, lying 304s, errors."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from connectors.http import FetchLimits, HttpClient
from connectors.rss import RssPoller, cache_control_hint
from newsradar.config.sources import Defaults, RssSource
from newsradar.netguard import AddressPolicy
from tests.connectors.feedserver import FEEDS, generated_feed

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


def poller_for(url: str, policy: AddressPolicy | None = None, **defaults) -> tuple[RssPoller, HttpClient]:
    source = RssSource(id="feed", kind="rss", url=url)
    http = HttpClient(FetchLimits(timeout=5), policy or AddressPolicy(allow_private_networks=True))
    return RssPoller(source, Defaults(**defaults), http), http


def polls(url: str, cursors: int, policy=None, between=None, **defaults):
    """Poll ``cursors`` times, feeding each poll the previous cursor; ``between(i)`` runs before poll i."""

    async def go():
        poller, http = poller_for(url, policy, **defaults)
        results, cursor = [], None
        try:
            for i in range(cursors):
                if between:
                    between(i)
                result = await poller.poll(cursor, NOW)
                results.append(result)
                cursor = result.cursor if result.cursor is not None else cursor
        finally:
            await http.close()
        return results

    return asyncio.run(go())


def test_first_poll_returns_everything_then_304s_return_nothing(feed_server):
    first, second, third = polls(feed_server.url("/feeds/rss20.xml"), 3)
    assert first.outcome == "ok" and len(first.records) == 3 and first.status == 200
    assert first.cursor["etag"] and first.cursor["body_sha256"] and first.next_poll_in == 1800  # the feed's ttl
    assert second.outcome == "not_modified" and second.records == [] and second.status == 304
    assert third.outcome == "not_modified" and third.cursor["unverified_304"] == 2
    sent = [h for _, h in feed_server.hits("/feeds/rss20.xml")]
    assert "If-None-Match" not in sent[0] and sent[1]["If-None-Match"] == first.cursor["etag"]


def test_a_changed_feed_is_parsed_again(feed_server):
    feed_server.set_body("k", generated_feed("k", 2))

    def change(i):
        if i == 1:
            feed_server.set_body("k", generated_feed("k", 3))

    first, second = polls(feed_server.url("/mutable/k"), 2, between=change)
    assert len(first.records) == 2 and second.outcome == "ok" and len(second.records) == 3


def test_lying_304_is_detected_and_the_feed_fetched_in_full_afterwards(feed_server):
    feed_server.set_body("liar", generated_feed("liar", 2))

    def change(i):
        if i == 1:
            feed_server.set_body("liar", generated_feed("liar", 5))  # content changes, 304s continue

    results = polls(feed_server.url("/lying/liar"), 4, between=change, verify_304_every=2)
    first, honest_looking, caught, after = results
    assert first.outcome == "ok" and len(first.records) == 2
    # The first 304 is believed (not yet due for verification) ...
    assert honest_looking.outcome == "not_modified" and honest_looking.records == []
    # ... the second is checked with a full GET and found to hide 3 new items.
    assert caught.outcome == "lying_304" and len(caught.records) == 5
    assert caught.cursor["conditional"] is False and caught.cursor["lying_304"] == 1
    # From now on no validators are sent; an unchanged body is not parsed.
    assert after.outcome == "ok" and after.records == [] and after.status == 200
    last = feed_server.hits("/lying/liar")[-1][1]
    assert "If-None-Match" not in last and "If-Modified-Since" not in last


def test_an_honest_304_passes_verification(feed_server):
    results = polls(feed_server.url("/feeds/rss20.xml"), 3, verify_304_every=1)
    assert [r.outcome for r in results] == ["ok", "not_modified", "not_modified"]
    assert all(r.records == [] for r in results[1:])
    # Verification fetched in full each time (a 304 followed by a 200 with the same body).
    assert [h.get("If-None-Match") is None for _, h in feed_server.hits("/feeds/rss20.xml")] == [
        True, False, True, False, True,
    ]


def test_rate_limited_with_retry_after(feed_server):
    [result] = polls(feed_server.url("/status/429?retry_after=120"), 1)
    assert result.outcome == "rate_limited" and result.rate_limited_for == 120 and result.next_poll_in == 120
    assert result.failed and result.cursor is None
    [capped] = polls(feed_server.url("/status/503?retry_after=9999999"), 1)
    assert capped.outcome == "rate_limited" and capped.rate_limited_for == 86400


def test_errors_are_results_with_outcomes_not_exceptions(feed_server, canary_server):
    only_server = AddressPolicy.exempting([("127.0.0.1", feed_server.port)])
    cases = {
        "/status/500": "http_error",
        "/feeds/html-error.html": "parse_error",
        "/feeds/empty.xml": "parse_error",
        "/feeds/billion-laughs-oneline.xml": "parse_error",
        "/xxe": "parse_error",
        "/loop/a": "refused",
        f"/redirect-to?to=http://localhost:{canary_server.port}/canary": "refused",
    }
    for path, outcome in cases.items():
        [result] = polls(feed_server.url(path), 1, policy=only_server)
        assert result.outcome == outcome, (path, result)
        assert result.failed and result.records == [] and result.cursor is None
    assert canary_server.hits() == []


def test_xxe_leaks_nothing(feed_server, canary_file):
    [result] = polls(feed_server.url("/xxe"), 1)
    secret = canary_file.read_text().strip()
    assert result.outcome == "parse_error"
    assert secret not in (result.error or "") and all(secret not in r.encode().decode() for r in result.records)


def test_gzip_feed_parses(feed_server):
    [result] = polls(feed_server.url("/feeds/atom10.xml?gzip=1"), 1)
    assert result.outcome == "ok" and len(result.records) == 2
    assert result.bytes_read == len((FEEDS / "atom10.xml").read_bytes())


def test_cache_control_hint():
    assert cache_control_hint({"cache-control": "public, max-age=900"}) == 900
    assert cache_control_hint({"cache-control": "s-maxage=600, max-age=60"}) == 60
    assert cache_control_hint({"cache-control": "no-cache"}) is None
    assert cache_control_hint({}) is None
