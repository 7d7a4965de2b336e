"""The plain rule objects shared by the stream's replays: RepeatMemory and StoryMemory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from newsradar.records import RawArticle, TaggedArticle, format_time
from transforms.dedupe import NEW, REPEAT, UPDATE, DedupeSettings
from transforms.dedupe_rules import RepeatMemory, StoryMemory

SETTINGS = DedupeSettings(repeat_window_seconds=3600.0, story_window_seconds=3600.0, prune_interval_seconds=600.0)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
HOUR = 3_600_000_000


def article(n: int, text: str, minutes: float = 0, edited: bool = False) -> TaggedArticle:
    when = format_time(T0 + timedelta(minutes=minutes))
    raw = RawArticle(article_id=f"rss:t:{n}", source_id="t", source_kind="rss", url=f"https://t.example/{n}",
                     title="", text=text, published_at=when, fetched_at=when, edited_at=when if edited else None)
    return TaggedArticle(article=raw, lang="en", story_id=raw.article_id)


def us(minutes: float) -> int:
    return int((T0 + timedelta(minutes=minutes)).timestamp() * 1_000_000)


def test_repeat_memory_drops_repeats_passes_edits_and_forgets_with_event_time():
    memory = RepeatMemory(SETTINGS)
    a = article(1, "first text")
    assert memory.judge(a, us(0)) == (a, NEW)
    assert memory.judge(a, us(10)) == (None, REPEAT)
    passed, verdict = memory.judge(article(1, "new text", 20, edited=True), us(20))
    assert verdict == UPDATE and passed.is_update
    # Other ids move event time on: an hour after its newest version the id is forgotten,
    # as the stream's expiry timer forgets it.
    assert memory.advance(us(79)) == [] and "rss:t:1" in memory
    assert memory.advance(us(80)) == ["rss:t:1"] and len(memory) == 0
    assert memory.judge(a, us(81))[1] == NEW


def test_story_memory_groups_copies_and_prunes_on_the_stream_schedule():
    text = " ".join(f"word{i}" for i in range(40))
    memory = StoryMemory(SETTINGS)
    first, new = memory.assign(article(1, text), us(0))
    assert new and first.duplicate_of is None
    copy, new = memory.assign(article(2, text + " again"), us(30))
    assert new and copy.story_id == "rss:t:1" and copy.duplicate_of == "rss:t:1"
    assert memory.prune_at == us(60)
    # At 60 the first entry is exactly a window old, still kept (the stream keeps ts >= horizon);
    # the next prune is not sooner than the interval after this one.
    memory.advance(us(60))
    assert len(memory) == 2 and memory.prune_at == us(70)
    memory.advance(us(70))  # now it is gone; the copy expires at 90
    assert len(memory) == 1 and memory.prune_at == us(90)
    later, _ = memory.assign(article(3, text), us(101))  # the prune due at 100 ran first
    assert later.story_id == "rss:t:3" and len(memory) == 1  # both earlier entries are gone
