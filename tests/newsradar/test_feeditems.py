"""Identity of feed items across polls (newsradar.feeditems), through parse_feed on small bodies."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsradar.feeditems import MAX_SHARED_GUIDS, FeedMemory
from newsradar.feeds import parse_feed
from newsradar.identity import rss_article_id

T1 = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
T2 = T1 + timedelta(minutes=10)
T3 = T2 + timedelta(minutes=10)


def feed(*items: tuple[str | None, str, str]) -> bytes:
    """RSS with items (guid or None, link, title)."""
    body = "".join(
        "<item>" + (f"<guid isPermaLink='false'>{guid}</guid>" if guid else "")
        + f"<link>{link}</link><title>{title}</title><description>{title} text</description></item>"
        for guid, link, title in items
    )
    return f"<?xml version='1.0' encoding='utf-8'?><rss version='2.0'><channel><title>f</title>{body}</channel></rss>".encode()


def parse(body: bytes, memory: FeedMemory | None = None, at: datetime = T1):
    return parse_feed(body, {}, source_id="s", fetched_at=at, memory=memory)


def g(guid: str) -> str:
    return rss_article_id("s", guid=guid)


def gl(guid: str, link: str) -> str:
    return rss_article_id("s", guid=guid, link=link, guid_is_repeated=True)


A = ("a", "https://x.example/a", "Alpha")
B = ("b", "https://x.example/b", "Beta")


def ids(parsed) -> list[str]:
    return [r.article_id for r in parsed.records]


def test_one_repeated_guid_changes_no_other_items_id():
    clean = parse(feed(A, B))
    assert ids(clean) == [g("a"), g("b")]
    # A third and fourth item share a guid: only they are told apart by their links.
    lazy = parse(feed(A, B, ("same", "https://x.example/c", "C"), ("same", "https://x.example/d", "D")),
                 clean.memory, T2)
    assert ids(lazy) == [g("a"), g("b"), gl("same", "https://x.example/c"), gl("same", "https://x.example/d")]
    assert lazy.guids_repeat


def test_a_guid_reused_across_polls_for_another_item_loses_nothing():
    first = parse(feed(("latest", "https://x.example/1", "One")))
    second = parse(feed(("latest", "https://x.example/2", "Two")), first.memory, T2)
    third = parse(feed(("latest", "https://x.example/2", "Two")), second.memory, T3)
    assert ids(first) == [g("latest")]
    assert ids(second) == [gl("latest", "https://x.example/2")]  # a new item, a new id
    assert ids(third) == ids(second) and third.records[0].edited_at is None  # and stable


def test_the_item_that_held_a_guid_keeps_its_id_when_the_guid_becomes_shared():
    first = parse(feed(("p", "https://x.example/1", "One")))
    second = parse(feed(("p", "https://x.example/1", "One"), ("p", "https://x.example/2", "Two")), first.memory, T2)
    assert ids(second) == [g("p"), gl("p", "https://x.example/2")]


def test_an_entry_changed_under_its_guid_is_an_update_with_the_same_id():
    first = parse(feed(A, B))
    edited = parse(feed(("a", A[1], "Alpha, corrected"), B), first.memory, T2)
    by_id = {r.article_id: r for r in edited.records}
    assert set(by_id) == {g("a"), g("b")}
    assert by_id[g("a")].edited_at == "2026-11-25T12:10:00Z"
    assert by_id[g("a")].flags == ("date_missing", "edit_time_is_fetch_time")
    assert by_id[g("b")].edited_at is None
    # Seen again unchanged: no longer an update (the delivery loop drops it as a repeat).
    again = parse(feed(("a", A[1], "Alpha, corrected"), B), edited.memory, T3)
    assert [r.edited_at for r in again.records] == [None, None]


def test_entries_without_guid_are_known_by_link_and_updated_too():
    first = parse(feed((None, "https://x.example/n?utm_source=rss", "No guid")))
    edited = parse(feed((None, "https://x.example/n", "No guid, edited")), first.memory, T2)
    assert ids(first) == ids(edited) == [rss_article_id("s", link="https://x.example/n")]
    assert edited.records[0].edited_at is not None


def test_the_same_item_twice_in_one_body_is_one_record():
    parsed = parse(feed(A, A, B))
    assert ids(parsed) == [g("a"), g("b")] and parsed.skipped == 0


def test_a_cursor_from_before_the_rules_keeps_guid_plus_link_for_every_item():
    legacy = FeedMemory.from_cursor({"guids_repeat": True, "body_sha256": "x"})
    parsed = parse(feed(A, B), legacy)
    assert ids(parsed) == [gl("a", A[1]), gl("b", B[1])]
    assert parsed.memory.to_cursor()["guids_repeat"] is True


def test_memory_round_trips_through_the_cursor_and_is_bounded():
    shared = [(f"s{i}", f"https://x.example/{i}/{j}", f"t{i}{j}") for i in range(MAX_SHARED_GUIDS + 5) for j in (1, 2)]
    parsed = parse(feed(*shared))
    assert len(parsed.memory.shared_guids) == MAX_SHARED_GUIDS
    again = FeedMemory.from_cursor(parsed.memory.to_cursor())
    assert again == parsed.memory
    assert len(again.items) == len(parsed.records) == 2 * (MAX_SHARED_GUIDS + 5)
