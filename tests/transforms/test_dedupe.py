"""Dedupe: repeats, edits, near-duplicate stories; plain functions and TestStream runs."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import zlib

import apache_beam as beam
import numpy as np
import pytest
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.testing import test_pipeline, test_stream
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms.window import TimestampedValue
from prometheus_client import REGISTRY

from newsradar.records import TaggedArticle
from tests.conftest import FIXTURES
from tests.pipelines.support import raw_article
from transforms.dedupe import (
    NEW,
    REPEAT,
    SKETCH_TAG,
    STALE,
    UPDATE,
    Dedupe,
    DedupeInOrder,
    DedupeSettings,
    StoryEntry,
    StoryIndex,
    assign_story,
    exact_key,
    judge_repeat,
    sketch,
    version_of,
    words,
)

STORIES = [json.loads(line) for line in (FIXTURES / "pipeline" / "stories.jsonl").read_text("utf-8").splitlines()]
SETTINGS = DedupeSettings(repeat_window_seconds=100, story_window_seconds=100, prune_interval_seconds=1)


def tagged(n: int, lang: str = "en", **fields) -> TaggedArticle:
    article = raw_article(n, **fields)
    return TaggedArticle(article=article, lang=lang, story_id=article.article_id)


def story(row_id: str) -> TaggedArticle:
    row = next(r for r in STORIES if r["id"] == row_id)
    article = raw_article(0, article_id=row_id, title=row["title"], text=row["text"])
    return TaggedArticle(article=article, lang=row["lang"], story_id=row_id)


# ---------------------------------------------------------------------------
# plain functions


def test_judge_repeat_tells_new_repeat_update_and_stale_apart():
    first = tagged(1, fetched_at="2026-03-01T10:00:00Z")
    again = tagged(1, fetched_at="2026-03-01T11:00:00Z")  # fetched later, same content
    edit = tagged(1, text="corrected text", edited_at="2026-03-01T10:30:00Z", fetched_at="2026-03-01T10:31:00Z")
    older_edit = tagged(1, text="draft", edited_at="2026-03-01T10:10:00Z", fetched_at="2026-03-01T10:11:00Z")
    assert judge_repeat(None, version_of(first)) == NEW
    assert judge_repeat(version_of(first), version_of(again)) == REPEAT
    assert judge_repeat(version_of(first), version_of(edit)) == UPDATE
    assert judge_repeat(version_of(edit), version_of(older_edit)) == STALE
    # Without edited_at, a later fetch with different content is the newer version.
    refetched = tagged(1, text="changed without an edit mark", fetched_at="2026-03-01T12:00:00Z")
    assert judge_repeat(version_of(first), version_of(refetched)) == UPDATE


def test_rewritten_copies_share_a_story_and_different_stories_do_not():
    index = StoryIndex(SETTINGS)
    assigned = {}
    for ts, row in enumerate(STORIES):
        result, entry = assign_story(index, story(row["id"]), ts, SETTINGS)
        assert entry is not None
        index.add(entry)
        assigned[row["id"]] = result
    by_story: dict[str, set[str]] = {}
    for row in STORIES:
        by_story.setdefault(row["story"], set()).add(assigned[row["id"]].story_id)
    # One story id per fixture story, and different fixture stories never share one.
    assert all(len(ids) == 1 for ids in by_story.values()), by_story
    assert len({next(iter(ids)) for ids in by_story.values()}) == len(by_story)
    assert assigned["copy-en-1"].story_id == "wire-en-1" and assigned["copy-en-1"].duplicate_of == "wire-en-1"
    assert assigned["repost-en-1"].duplicate_of == "wire-en-1"
    assert assigned["copy-ru-1"].duplicate_of == "wire-ru-1"
    assert assigned["copy-uk-1"].duplicate_of == "wire-uk-1"
    assert assigned["other-en-1"].duplicate_of is None
    # Short posts: an identical repost matches, a different short post does not.
    assert assigned["short-ru-2"].duplicate_of == "short-ru-1"
    assert assigned["short-ru-3"].duplicate_of is None


def test_short_texts_get_no_sketch_but_an_exact_key():
    short = story("short-ru-1")
    assert sketch(short, SETTINGS) == b""
    assert exact_key(short) == exact_key(story("short-ru-2"))
    assert len(sketch(story("wire-en-1"), SETTINGS)) == 4 * SETTINGS.num_perm + len(SKETCH_TAG)


def test_an_edit_keeps_its_story():
    index = StoryIndex(SETTINGS)
    for ts, row_id in enumerate(("wire-en-1", "copy-en-1")):
        _, entry = assign_story(index, story(row_id), ts, SETTINGS)
        index.add(entry)
    edit = dataclasses.replace(story("copy-en-1"), is_update=True)
    result, entry = assign_story(index, edit, 5, SETTINGS)
    assert entry is None
    assert (result.story_id, result.duplicate_of) == ("wire-en-1", "wire-en-1")


def _pair_hash(pair: bytes) -> int:
    """A word pair's 32-bit hash as the scheme defines it, restated in plain integers."""
    first, second = (zlib.crc32(w) for w in pair.split(b" "))
    return (first * 0xCC9E2D51 + (((second << 15) | (second >> 17)) & 0xFFFFFFFF)) & 0xFFFFFFFF


def _datasketch_sketch(tagged: TaggedArticle, settings: DedupeSettings) -> bytes:
    """The sketch as datasketch computes it from the scheme's pair hash: MinHash of the word
    pairs of title and text, then the scheme's tag."""
    from datasketch import MinHash

    tokens = words(f"{tagged.article.title} {tagged.article.text}")
    if len(tokens) < settings.min_tokens:
        return b""
    m = MinHash(num_perm=settings.num_perm, seed=1, scheme="affine32", hashfunc=_pair_hash)
    for a, b in zip(tokens, tokens[1:], strict=False):
        m.update(f"{a} {b}".encode())
    return m.hashvalues.astype(np.uint32).tobytes() + SKETCH_TAG


def _all_texts() -> list[TaggedArticle]:
    out = [story(row["id"]) for row in STORIES]
    for lang in ("en", "ru", "uk"):
        for line in (FIXTURES / "eval" / f"{lang}.jsonl").read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                article = raw_article(0, article_id=row["id"], title=row.get("title", ""), text=row["text"])
                out.append(TaggedArticle(article=article, lang=lang, story_id=row["id"]))
    return out


def test_sketches_are_datasketch_minhashes_value_for_value():
    texts = _all_texts()
    assert len(texts) > 100
    sketched = 0
    for t in texts:
        ours = sketch(t, DedupeSettings())
        assert ours == _datasketch_sketch(t, DedupeSettings()), t.article.article_id
        sketched += bool(ours)
    assert sketched > 50  # long enough texts to be sketched, not only the b"" of short ones
    # The exact key is computed from the same pass over the words: still the text's words.
    t = story("wire-en-1")
    assert exact_key(t) == hashlib.sha256(" ".join(words(t.article.text)).encode()).hexdigest()[:32]
    assert exact_key(dataclasses.replace(t, article=dataclasses.replace(t.article, text=" "))) == \
        hashlib.sha256(" ".join(words(t.article.title)).encode()).hexdigest()[:32]


def test_story_index_candidates_are_those_of_datasketch_lsh():
    """The index's banding gives the candidates MinHashLSH gives, on sketches that share
    bands (copies with a few values changed) and on unrelated ones."""
    from datasketch import LeanMinHash, MinHashLSH

    from transforms.dedupe import _lsh_bands

    settings = DedupeSettings()
    rng = np.random.default_rng(7)
    base = rng.integers(0, 2**32, size=(40, settings.num_perm), dtype=np.uint64).astype(np.uint32)
    sketches = []
    for i in range(400):
        values = base[i % 40].copy()
        changed = rng.integers(0, settings.num_perm, size=rng.integers(0, 50))
        values[changed] = rng.integers(0, 2**32, size=len(changed), dtype=np.uint64).astype(np.uint32)
        sketches.append(values.tobytes())
    index = StoryIndex(settings)
    lsh = MinHashLSH(num_perm=settings.num_perm, params=_lsh_bands(settings.similarity, settings.num_perm))

    def lean(hv: bytes):
        return LeanMinHash(seed=1, hashvalues=np.frombuffer(hv, dtype=np.uint32).astype(np.uint64), scheme="affine32")

    for i, hv in enumerate(sketches[:300]):
        index.add(StoryEntry(f"a{i}", f"a{i}", "", i, f"x{i}", hv + SKETCH_TAG))
        lsh.insert(f"a{i}", lean(hv))
    for i in range(0, 300, 3):  # removal keeps the two alike
        index._unband(index.entries[f"a{i}"])
        lsh.remove(f"a{i}")
    nonempty = 0
    for hv in sketches:
        expected = set(lsh.query(lean(hv)))
        assert index._candidates(hv) == expected
        nonempty += bool(expected)
    assert 100 < nonempty < len(sketches)


def test_story_index_forgets_expired_entries():
    index = StoryIndex(SETTINGS)
    _, entry = assign_story(index, story("wire-en-1"), 100, SETTINGS)
    index.add(entry)
    assert index.remove_older_than(50) == 0
    assert index.remove_older_than(101) == 1
    result, _ = assign_story(index, story("repost-en-1"), 200, SETTINGS)
    assert result.duplicate_of is None


def test_sketch_estimates_follow_the_exact_jaccard_similarity_of_the_pairs():
    """Texts sharing a known part of their words: the share of equal minima estimates the
    Jaccard similarity of the two sets of word pairs (64 minima: ~0.06 standard error)."""
    rng = np.random.default_rng(11)
    vocabulary = [f"w{i}" for i in range(5000)]
    errors = []
    for _ in range(300):
        base = list(rng.choice(vocabulary, size=int(rng.integers(40, 300))))
        other = list(base)
        for at in rng.choice(len(other), size=int(rng.integers(0, len(other) // 3)), replace=False):
            other[at] = str(rng.choice(vocabulary))
        a, b = (TaggedArticle(article=raw_article(0, title="", text=" ".join(t)), lang="en", story_id="x")
                for t in (base, other))
        pairs_a, pairs_b = (set(zip(t, t[1:], strict=False)) for t in (base, other))
        exact = len(pairs_a & pairs_b) / len(pairs_a | pairs_b)
        hv_a, hv_b = (np.frombuffer(sketch(t, SETTINGS)[:-len(SKETCH_TAG)], dtype=np.uint32) for t in (a, b))
        errors.append(float(np.count_nonzero(hv_a == hv_b)) / SETTINGS.num_perm - exact)
    errors = np.asarray(errors)
    assert abs(errors.mean()) < 0.02  # no bias
    assert np.abs(errors).mean() < 0.07
    assert np.abs(errors).max() < 0.3


def test_a_sketch_of_the_earlier_scheme_is_never_compared():
    """An entry sketched under the scheme before SKETCH_TAG (minima of each bigram's SHA-1, as
    a Flink job's state may still hold after an upgrade) matches an exact copy only."""
    from datasketch import MinHash

    def earlier(t: TaggedArticle) -> bytes:
        tokens = words(f"{t.article.title} {t.article.text}")
        m = MinHash(num_perm=SETTINGS.num_perm, seed=1, scheme="affine32")
        m.update_batch(f"{a} {b}".encode() for a, b in zip(tokens, tokens[1:], strict=False))
        return m.hashvalues.astype(np.uint32).tobytes()

    wire, copy = story("wire-en-1"), story("copy-en-1")
    current = StoryIndex(SETTINGS)
    current.add(StoryEntry("wire-en-1", "wire-en-1", "", 1, exact_key(wire), sketch(wire, SETTINGS)))
    assert assign_story(current, copy, 2, SETTINGS)[0].duplicate_of == "wire-en-1"
    old = StoryIndex(SETTINGS)
    old.add(StoryEntry("wire-en-1", "wire-en-1", "", 1, exact_key(wire), earlier(wire)))
    assert assign_story(old, copy, 2, SETTINGS)[0].duplicate_of is None  # near copy: not compared
    repost = TaggedArticle(article=raw_article(0, article_id="repost", title="", text=wire.article.text),
                           lang="en", story_id="repost")
    assert assign_story(old, repost, 2, SETTINGS)[0].duplicate_of == "wire-en-1"  # exact key: as before
    assert old.remove_older_than(5) == 1 and len(old) == 0


# ---------------------------------------------------------------------------
# TestStream (streaming DirectRunner): state, timers, watermarks


def _summary(t: TaggedArticle) -> tuple:
    return (t.article.article_id, t.article.text[:12], t.is_update, t.story_id, t.duplicate_of)


def _run(stream: test_stream.TestStream, settings: DedupeSettings = SETTINGS):
    options = PipelineOptions([])
    options.view_as(StandardOptions).streaming = True
    pipeline = test_pipeline.TestPipeline(options=options)
    out = (pipeline | stream | Dedupe(settings)).articles | beam.Map(_summary)
    return pipeline, out


def _duplicates(kind: str) -> float:
    # The Prometheus counter: the streaming DirectRunner does not report Beam counters of
    # bundles that emitted nothing, so those cannot be asserted on.
    return REGISTRY.get_sample_value("newsradar_duplicates_total", {"kind": kind}) or 0.0


def test_each_article_once_and_edits_marked():
    first = tagged(1, text="first version of the text", fetched_at="2026-03-01T10:00:00Z")
    repeat = tagged(1, text="first version of the text", fetched_at="2026-03-01T10:05:00Z")
    edit = tagged(1, text="second version, corrected", edited_at="2026-03-01T10:20:00Z",
                  fetched_at="2026-03-01T10:21:00Z")
    stale = tagged(1, text="a draft seen late", edited_at="2026-03-01T10:10:00Z", fetched_at="2026-03-01T10:11:00Z")
    other = tagged(2)
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(first, 10), TimestampedValue(other, 10)])
        .add_elements([TimestampedValue(repeat, 11)])
        .add_elements([TimestampedValue(edit, 12)])
        .add_elements([TimestampedValue(stale, 13)])
        .advance_watermark_to_infinity()
    )
    pipeline, out = _run(stream)
    assert_that(out, equal_to([
        ("rss:test:1", "first versio", False, "rss:test:1", None),
        ("rss:test:2", "Item 2: w2x0", False, "rss:test:2", None),
        ("rss:test:1", "second versi", True, "rss:test:1", None),
    ]))
    before = _duplicates("same_id")
    pipeline.run().wait_until_finish()
    assert _duplicates("same_id") - before == 2


def test_state_expires_after_the_window():
    article = tagged(1)
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(article, 10)])
        .advance_watermark_to(10 + SETTINGS.repeat_window_seconds + 5)
        # Seen again after the window: the id was forgotten, so it counts as new.
        .add_elements([TimestampedValue(article, 10 + SETTINGS.repeat_window_seconds + 10)])
        .advance_watermark_to_infinity()
    )
    pipeline, out = _run(stream)
    expected = ("rss:test:1", "Item 1: w1x0", False, "rss:test:1", None)
    assert_that(out, equal_to([expected, expected]))
    pipeline.run().wait_until_finish()


def test_late_data_is_deduped_not_dropped():
    early = tagged(1)
    late_repeat = tagged(1)
    late_new = tagged(2)
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(early, 50)])
        .advance_watermark_to(80)
        # Both are behind the watermark: still processed, the repeat still recognised.
        .add_elements([TimestampedValue(late_repeat, 40), TimestampedValue(late_new, 30)])
        .advance_watermark_to_infinity()
    )
    pipeline, out = _run(stream)
    assert_that(out, equal_to([
        ("rss:test:1", "Item 1: w1x0", False, "rss:test:1", None),
        ("rss:test:2", "Item 2: w2x0", False, "rss:test:2", None),
    ]))
    before = _duplicates("same_id")
    pipeline.run().wait_until_finish()
    assert _duplicates("same_id") - before == 1


def test_near_duplicates_grouped_until_the_story_expires():
    stream = (
        test_stream.TestStream()
        .add_elements([TimestampedValue(story("wire-en-1"), 10)])
        .add_elements([TimestampedValue(story("copy-en-1"), 20), TimestampedValue(story("other-en-1"), 20)])
        .add_elements([TimestampedValue(story("wire-ru-1"), 20)])
        .add_elements([TimestampedValue(story("copy-ru-1"), 25)])
        # Past the story window of wire-en-1 (and the prune interval): it is forgotten.
        .advance_watermark_to(10 + SETTINGS.story_window_seconds + 30)
        .add_elements([TimestampedValue(story("repost-en-1"), 10 + SETTINGS.story_window_seconds + 40)])
        .advance_watermark_to_infinity()
    )
    pipeline, out = _run(stream)
    assert_that(out | beam.Map(lambda s: (s[0], s[3], s[4])), equal_to([
        ("wire-en-1", "wire-en-1", None),
        ("copy-en-1", "wire-en-1", "wire-en-1"),
        ("other-en-1", "other-en-1", None),
        ("wire-ru-1", "wire-ru-1", None),
        ("copy-ru-1", "wire-ru-1", "wire-ru-1"),
        # copy-en-1 (ts 20) expired too: the repost starts a new story.
        ("repost-en-1", "repost-en-1", None),
    ]))
    before = _duplicates("near_duplicate")
    pipeline.run().wait_until_finish()
    assert _duplicates("near_duplicate") - before == 2


def test_the_prune_interval_follows_a_short_story_window():
    from pipelines.options import dedupe_settings

    assert dedupe_settings(PipelineOptions([])).prune_interval_seconds == 3600.0  # the shipped 1-day window
    # The soak's simulated day of 240 s: pruned every 10 s, not once an hour (which would keep
    # every story of an hour-long run, in state and in each restart's seed).
    assert dedupe_settings(PipelineOptions(["--story_window=240s"])).prune_interval_seconds == 10.0


@pytest.mark.parametrize("bad", [0.0, 1.5])
def test_similarity_outside_range_is_refused_by_options(bad):
    from pipelines.options import dedupe_settings

    with pytest.raises(ValueError, match="story_similarity"):
        dedupe_settings(PipelineOptions([f"--story_similarity={bad}"]))


# ---------------------------------------------------------------------------
# in input order (bounded inputs): the stream's verdicts, keyed by input position


def _stories(t: TaggedArticle) -> tuple:
    return (t.article.article_id, t.story_id, t.duplicate_of)


def _run_in_order(timed: list[tuple[TaggedArticle, float]], expected: list[tuple[int, tuple]], view=_summary):
    """DedupeInOrder over the articles in this order; asserts (position, view) pairs."""
    with beam.Pipeline(runner="BundleBasedDirectRunner", options=PipelineOptions(flags=[])) as p:
        out = (
            p
            | beam.Create(list(enumerate(timed)))
            | beam.MapTuple(lambda seq, item: TimestampedValue((seq, item[0]), item[1]))
            | DedupeInOrder(SETTINGS)
        ).articles
        assert_that(out | beam.MapTuple(lambda seq, t: (seq, view(t))), equal_to(expected))


def test_in_order_each_article_once_and_edits_marked():
    first = tagged(1, text="first version of the text", fetched_at="2026-03-01T10:00:00Z")
    repeat = tagged(1, text="first version of the text", fetched_at="2026-03-01T10:05:00Z")
    edit = tagged(1, text="second version, corrected", edited_at="2026-03-01T10:20:00Z",
                  fetched_at="2026-03-01T10:21:00Z")
    stale = tagged(1, text="a draft seen late", edited_at="2026-03-01T10:10:00Z", fetched_at="2026-03-01T10:11:00Z")
    forgotten = tagged(1, text="first version of the text")
    _run_in_order(
        [(first, 10), (tagged(2), 10), (repeat, 11), (edit, 12), (stale, 13),
         (forgotten, 13 + SETTINGS.repeat_window_seconds)],
        [
            (0, ("rss:test:1", "first versio", False, "rss:test:1", None)),
            (1, ("rss:test:2", "Item 2: w2x0", False, "rss:test:2", None)),
            (3, ("rss:test:1", "second versi", True, "rss:test:1", None)),
            # A window after the newest version the id is forgotten, as the stream's timer does.
            (5, ("rss:test:1", "first versio", False, "rss:test:1", None)),
        ],
    )


def test_in_order_near_duplicates_grouped_until_the_story_expires():
    later = 10 + SETTINGS.story_window_seconds + 40
    rows = [("wire-en-1", 10), ("copy-en-1", 20), ("other-en-1", 20), ("wire-ru-1", 20), ("copy-ru-1", 25),
            ("repost-en-1", later)]
    expected = [
        ("wire-en-1", "wire-en-1", None),
        ("copy-en-1", "wire-en-1", "wire-en-1"),
        ("other-en-1", "other-en-1", None),
        ("wire-ru-1", "wire-ru-1", None),
        ("copy-ru-1", "wire-ru-1", "wire-ru-1"),
        ("repost-en-1", "repost-en-1", None),  # both en entries expired, as in the stream
    ]
    _run_in_order([(story(row_id), at) for row_id, at in rows], list(enumerate(expected)), view=_stories)


def test_in_order_input_order_decides_which_copy_is_the_original():
    _run_in_order([(story("copy-en-1"), 10), (story("wire-en-1"), 20)], [
        (0, ("copy-en-1", "copy-en-1", None)),
        (1, ("wire-en-1", "copy-en-1", "copy-en-1")),
    ], view=_stories)


def test_an_entry_past_the_story_window_never_matches_whenever_it_is_pruned():
    # The prune timer removes old entries up to its interval late, and a restart's rebuilt
    # entries are as old as the downtime: the window is applied at the match itself.
    index = StoryIndex(SETTINGS)
    _, entry = assign_story(index, story("wire-en-1"), 100, SETTINGS)
    index.add(entry)
    window = int(SETTINGS.story_window_seconds * 1_000_000)
    within, _ = assign_story(index, story("repost-en-1"), 100 + window, SETTINGS)
    assert within.story_id == "wire-en-1"
    late, _ = assign_story(index, story("repost-en-1"), 101 + window, SETTINGS)
    assert late.story_id == "repost-en-1" and late.duplicate_of is None
    wire = story("wire-en-1")
    again = dataclasses.replace(wire, article=dataclasses.replace(wire.article, article_id="wire-en-1-again"),
                                story_id="wire-en-1-again")
    assert assign_story(index, again, 100 + window, SETTINGS)[0].story_id == "wire-en-1"  # an exact copy
    assert assign_story(index, again, 101 + window, SETTINGS)[0].story_id == "wire-en-1-again"


def test_the_permutations_are_datasketch_s_for_the_scheme_and_seed():
    from datasketch import MinHash

    from transforms.dedupe import _permutations

    for num_perm in (16, 64, 128):
        expected = np.asarray(MinHash(num_perm=num_perm, seed=1, scheme="affine32").permutations, dtype=np.uint32)
        assert np.array_equal(_permutations(num_perm), expected)
