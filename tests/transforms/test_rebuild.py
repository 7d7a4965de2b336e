"""The state rebuild's folds as plain code (transforms/rebuild.py): a run interrupted at any
point and continued from the seed of what it wrote gives the alerts and story ids of the run
that was never interrupted; a cold start does not (the control that makes each test able to
fail)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from newsradar.records import Mention, NoveltySummary, RawArticle, TaggedArticle, TopicTag, decode_novelty, format_time
from tests.transforms.test_alert_rules import WATCHLIST
from transforms.alert_rules import AlertRules, OrgState, events_of
from transforms.dedupe import REPEAT, DedupeSettings, StoryIndex, assign_story, judge_repeat, version_of
from transforms.nlp import analysis_text
from transforms.rebuild import SeedBlob, SeedBuilder, decode_seed, encode_seed, pending_key, summary_of

DAY = 86400.0
HOUR = 3600.0
T0 = datetime(2026, 3, 2, tzinfo=UTC).timestamp()
SETTINGS = DedupeSettings()


def tagged(n: int, at: float, story: str, text: str | None = None, org: str = "cmw",
           topics=()) -> TaggedArticle:
    name = {"cmw": "Council of Mothers and Wives", "ur": "United Russia"}[org]
    text = text or f"The {name} said something about item {n} in the city today."
    when = format_time(datetime.fromtimestamp(at, UTC))
    raw = RawArticle(article_id=f"a{n}", source_id="s", source_kind="rss", url=f"https://example.org/{n}",
                     title=f"Item {n}", text=text, published_at=when, fetched_at=when)
    full = analysis_text(raw.title, raw.text)
    start = full.index(name)
    return TaggedArticle(article=raw, lang="en", story_id=story, topics=topics,
                         mentions=(Mention(org, name, start, start + len(name), "exact"),))


def stream():
    """Weeks of mentions: copies of stories, a quiet gap past the 7-day window, a burst."""
    out = []
    t = T0
    for i in range(10):  # week 1: a story a day, each copied an hour later
        out.append(tagged(2 * i, t, f"s{i}", topics=(TopicTag("protest", 2.0),) if i == 3 else ()))
        out.append(tagged(2 * i + 1, t + HOUR, f"s{i}"))
        t += DAY
    t += 9 * DAY  # quiet for more than the window
    out.append(tagged(100, t, "s100"))
    out.append(tagged(101, t + 60, "s100"))
    for k in range(8):  # a burst in one hour: a surge
        out.append(tagged(200 + k, t + 2 * HOUR + 60 * k, f"b{k}"))
    out.append(tagged(300, t + 3 * DAY, "s300", org="ur"))
    return out


def live(records, state_of=None, raised=frozenset()):
    """The stream's rules over ``records``: alert ids, and the states per organization."""
    rules = AlertRules(lambda: WATCHLIST, now=lambda: datetime.fromtimestamp(T0 + 400 * DAY, UTC))
    states: dict[str, OrgState] = {}
    alerts = []
    for t in records:
        for org_id, event in events_of(t):
            if org_id not in states:
                states[org_id] = (state_of(org_id) if state_of else None) or OrgState()
            for alert in rules.apply(states[org_id], event, arrival=event.event_time):
                if alert.alert_id not in raised:
                    alerts.append(alert)
    return alerts


def seed_of(records, alerts, pending=()):
    builder = SeedBuilder(WATCHLIST, SETTINGS, pending)
    for t in records:
        builder.add_tagged(t, _micros(t))
    for a in alerts:
        builder.add_alert(a)
    return builder.seed()


def _micros(t: TaggedArticle) -> int:
    return int(datetime.fromisoformat(t.article.fetched_at.replace("Z", "+00:00")).timestamp() * 1_000_000)


@pytest.mark.parametrize("cut", [1, 5, 20, 21, 24, 26])
def test_novelty_continues_after_a_restart_as_if_none_happened(cut):
    records = stream()
    reference = [a.alert_id for a in live(records)]
    kinds = {a.kind for a in live(records)}
    assert {"new_mention", "first_in_window", "surge", "topic"} <= kinds  # the stream exercises every rule

    before = live(records[:cut])
    seed = decode_seed(encode_seed(seed_of(records[:cut], before)))
    after = live(records[cut:], state_of=seed.org_state,
                 raised=frozenset().union(*seed.alert_ids.values()) if seed.alert_ids else frozenset())
    assert [a.alert_id for a in before] + [a.alert_id for a in after] == reference

    # The control: a cold start after the cut raises what the reference does not (or misses some).
    cold = [a.alert_id for a in before] + [a.alert_id for a in live(records[cut:])]
    assert cold != reference


def test_an_alert_already_raised_is_not_raised_again_by_a_replay():
    records = stream()
    first = live(records[:3])
    # The record at index 2 was written and alerted, but its offset never committed: it is pending,
    # left out of the fold, and replayed; what it raises again is already on news.alerts.
    pending = [pending_key(records[2].article.article_id, None, records[2].article.fetched_at)]
    seed = seed_of(records[:3], first, pending)
    assert "s0" in seed.orgs["cmw"].stories and "s1" not in seed.orgs["cmw"].stories
    replayed = live(records[2:3], state_of=seed.org_state)
    assert replayed and all(seed.raised("cmw", a.alert_id) for a in replayed)


def test_a_missing_alert_of_an_uncommitted_record_is_raised_by_its_replay():
    records = stream()
    alerts = live(records[:3])
    lost = [a for a in alerts if a.article_id == records[2].article.article_id]
    assert lost
    kept = [a for a in alerts if a not in lost]  # the crash came before its alerts were written
    pending = [pending_key(records[2].article.article_id, None, records[2].article.fetched_at)]
    seed = seed_of(records[:3], kept, pending)
    replayed = live(records[2:3], state_of=seed.org_state,
                    raised=frozenset().union(*seed.alert_ids.values()))
    assert [a.alert_id for a in replayed] == [a.alert_id for a in lost]


WIRE = ("The Council of Mothers and Wives and officials in the northern region confirmed on Tuesday that the new bridge across the river will open "
        "next month after three years of construction delays and rising costs that doubled the budget")


def test_a_copy_of_a_story_from_before_the_restart_keeps_its_story_id():
    original = tagged(1, T0, "a1", text=WIRE + ".")
    index = StoryIndex(SETTINGS)
    first, entry = assign_story(index, original, _micros(original), SETTINGS)
    index.add(entry)
    copy = tagged(2, T0 + HOUR, "a2", text=WIRE + ", officials said.")
    expected, _ = assign_story(index, copy, _micros(copy), SETTINGS)
    assert expected.story_id == "a1"

    seed = decode_seed(encode_seed(seed_of([first], [])))
    rebuilt, _ = assign_story(StoryIndex(SETTINGS, seed.stories["en"]), copy, _micros(copy), SETTINGS)
    assert (rebuilt.story_id, rebuilt.duplicate_of) == ("a1", "a1")
    cold, _ = assign_story(StoryIndex(SETTINGS), copy, _micros(copy), SETTINGS)
    assert cold.story_id == "a2"  # the control: without the seed it starts a story of its own


def test_repeats_are_remembered_for_their_window_only():
    a = tagged(1, T0, "a1")
    seed = seed_of([a], [])
    at = _micros(a)
    version, _expires = seed.repeat("a1", at + 1)
    assert judge_repeat(version, version_of(a)) == REPEAT
    assert seed.repeat("a1", at + int(SETTINGS.repeat_window_seconds * 1e6)) is None
    assert seed.repeat("a2", at) is None


def test_the_seed_forgets_what_the_stream_would_have_forgotten():
    old = tagged(1, T0, "a1", text=WIRE + ".")
    new = tagged(2, T0 + 5 * DAY, "a2")
    seed = seed_of([old, new], [])
    assert [e.article_id for e in seed.stories["en"]] == ["a2"]
    assert set(seed.repeats) == {"a2"}
    assert "a1" in seed.orgs["cmw"].stories  # the story memory is 14 days


def test_the_seed_blob_decodes_once_per_process_and_round_trips():
    records = stream()
    seed = seed_of(records, live(records))
    blob = SeedBlob.of(seed)
    assert blob.load() is blob.load()
    again = blob.load()
    assert again.repeats == seed.repeats and again.stories == seed.stories and again.alert_ids == seed.alert_ids
    assert {k: vars_of(v) for k, v in again.orgs.items()} == {k: vars_of(v) for k, v in seed.orgs.items()}
    # org_state hands out copies: the rules change state in place
    assert again.org_state("cmw") is not again.org_state("cmw")


def test_a_large_seed_travels_as_a_file_and_the_steps_carry_only_its_path(tmp_path, monkeypatch):
    import pickle

    from transforms import rebuild

    records = stream()
    seed = seed_of(records, live(records))
    small = SeedBlob.shipped(seed, str(tmp_path / "seeds"), "newsradar-pipeline")
    assert small.path is None and small.blob and not (tmp_path / "seeds").exists()  # under the limit: inline

    shipped = SeedBlob.shipped(seed, str(tmp_path / "seeds"), "newsradar/pipeline", inline_limit=100)
    assert shipped.path == str(tmp_path / "seeds" / f"seed-newsradar_pipeline-{shipped.digest}.bin")
    assert shipped.digest == small.digest and shipped.size == len(small.blob)
    assert len(pickle.dumps(shipped)) < 400 < len(pickle.dumps(small))  # the pipeline carries the path only
    monkeypatch.setattr(rebuild, "_LOADED", {})  # a worker process that has not read it yet
    again = shipped.load()
    assert again.repeats == seed.repeats and again.stories == seed.stories and again.alert_ids == seed.alert_ids
    assert {k: vars_of(v) for k, v in again.orgs.items()} == {k: vars_of(v) for k, v in seed.orgs.items()}

    # The next start of the same group replaces it; another group's file stays.
    other = SeedBlob.shipped(seed, str(tmp_path / "seeds"), "other-group", inline_limit=100)
    newer = SeedBlob.shipped(seed_of(records[:5], []), str(tmp_path / "seeds"), "newsradar/pipeline", inline_limit=100)
    assert sorted(f.name for f in (tmp_path / "seeds").iterdir()) == sorted(
        [Path(other.path).name, Path(newer.path).name])


def test_a_seed_file_that_is_missing_or_not_the_jobs_is_an_error_not_an_empty_state(tmp_path, monkeypatch):
    from transforms import rebuild
    from transforms.state_coders import StateFormatError

    records = stream()
    shipped = SeedBlob.shipped(seed_of(records, []), str(tmp_path), "g", inline_limit=0)
    monkeypatch.setattr(rebuild, "_LOADED", {})
    Path(shipped.path).write_bytes(SeedBlob.of(seed_of(records[:3], [])).blob)  # another job's seed
    with pytest.raises(StateFormatError, match="not the seed this job was built with"):
        shipped.load()
    Path(shipped.path).unlink()
    with pytest.raises(StateFormatError, match="--seed_location"):
        shipped.load()


def test_the_launcher_ships_a_large_seed_where_its_workers_can_read_it(tmp_path, monkeypatch):
    from pipelines.run import ship_seed
    from transforms import rebuild

    monkeypatch.setenv("NEWSRADAR_HOME", str(tmp_path / "home"))
    monkeypatch.setattr(rebuild, "INLINE_LIMIT", 100)  # this seed counts as large
    seed = seed_of(stream(), [])
    local = ship_seed(seed, "", "g", local_workers=True)  # Prism started here: its workers read this disk
    assert local.path is not None and Path(local.path).parent == tmp_path / "home" / "state" / "seeds"
    remote = ship_seed(seed, "", "g", local_workers=False)  # a path here means nothing to them
    assert remote.path is None and remote.blob
    shared = ship_seed(seed, str(tmp_path / "shared"), "g", local_workers=False)
    assert Path(shared.path).parent == tmp_path / "shared"
    monkeypatch.setattr(rebuild, "INLINE_LIMIT", 1 << 30)
    assert ship_seed(seed, str(tmp_path / "shared"), "g", local_workers=True).path is None  # small: inline


def vars_of(state: OrgState):
    return (state.last_seen, state.first_seen, state.last_surge, state.stories, state.topic_stories, state.hours)


# ---------------------------------------------------------------------------
# older than the memory: first and last mentions (news.novelty, the week before the memory)

def _kinds_after_silence(seed_state):
    """What a mention 15 days after the last one raises, from ``seed_state`` (an OrgState or None)."""
    late = tagged(900, T0 + 15 * DAY, "s-late")
    return [a.kind for a in live([late], state_of=lambda _org: seed_state)]


def test_a_silence_longer_than_the_memory_is_still_known_from_news_novelty():
    # The reference: mention at T0, another 15 days later: first_in_window.
    reference = live([tagged(1, T0, "s1"), tagged(900, T0 + 15 * DAY, "s-late")])
    assert [a.kind for a in reference] == ["new_mention", "new_mention", "first_in_window"]
    # A restart at T0 + 15 d reads news.tagged over the 14-day memory: T0's record is not in it.
    builder = SeedBuilder(WATCHLIST, SETTINGS)
    cold = builder.seed().orgs.get("cmw")
    assert _kinds_after_silence(cold) == ["new_mention"]  # the control: the silence is forgotten
    # The summary the prune timer wrote to news.novelty brings it back.
    state = OrgState()
    live_rules = AlertRules(lambda: WATCHLIST, now=lambda: datetime.fromtimestamp(T0, UTC))
    for _org, event in events_of(tagged(1, T0, "s1")):
        live_rules.apply(state, event, arrival=event.event_time)
    builder.add_summary(summary_of("cmw", state, datetime.fromtimestamp(T0 + 14 * DAY, UTC)))
    seeded = builder.seed().orgs["cmw"]
    assert (seeded.first_seen, seeded.last_seen, seeded.stories) == (T0, T0, {})
    assert _kinds_after_silence(seeded) == ["new_mention", "first_in_window"]


def test_a_tagged_record_from_before_the_memory_gives_first_and_last_mention_only():
    builder = SeedBuilder(WATCHLIST, SETTINGS)
    assert builder.add_lifetime(tagged(1, T0, "s1", topics=(TopicTag("protest", 2.0),)))
    state = builder.seed().orgs["cmw"]
    # No story, topic or hour: those belong to the memory; the silence is known.
    assert (state.first_seen, state.last_seen, state.stories, state.topic_stories, state.hours) == (T0, T0, {}, {}, {})
    assert _kinds_after_silence(state) == ["new_mention", "first_in_window"]
    # A pending record (read again by the job) is left out here too.
    pending = tagged(2, T0 + DAY, "s2")
    art = pending.article
    left = SeedBuilder(WATCHLIST, SETTINGS, [pending_key(art.article_id, art.edited_at, art.fetched_at)])
    assert not left.add_lifetime(pending) and "cmw" not in left.seed().orgs


def test_lifetime_fields_merge_by_min_and_max_whatever_the_order():
    a = NoveltySummary("cmw", T0, T0 + DAY, format_time(datetime.fromtimestamp(T0 + 20 * DAY, UTC)))
    b = NoveltySummary("cmw", T0 - DAY, T0 + 2 * DAY, format_time(datetime.fromtimestamp(T0 + 20 * DAY, UTC)),
                       last_surge=T0 + HOUR)
    states = []
    for order in ((a, b), (b, a)):
        builder = SeedBuilder(WATCHLIST, SETTINGS)
        for s in order:
            builder.add_summary(s)
        builder.add_tagged(tagged(5, T0 + 16 * DAY, "s5"), int((T0 + 16 * DAY) * 1_000_000))
        states.append(builder.seed().orgs["cmw"])
    assert states[0] == states[1]
    assert (states[0].first_seen, states[0].last_seen, states[0].last_surge) == (T0 - DAY, T0 + 16 * DAY, T0 + HOUR)
    assert set(states[0].stories) == {"s5"}


def test_the_launcher_writes_the_summaries_news_novelty_lacks():
    builder = SeedBuilder(WATCHLIST, SETTINGS)
    builder.add_tagged(tagged(1, T0, "s1"), int(T0 * 1_000_000))
    builder.add_tagged(tagged(2, T0 + HOUR, "s2", org="ur"), int((T0 + HOUR) * 1_000_000))
    seed = builder.seed()
    at = datetime.fromtimestamp(T0 + DAY, UTC)
    written = builder.summaries(seed, {}, at)
    assert [(s.org_id, s.first_seen, s.last_seen) for s in written] == [("cmw", T0, T0), ("ur", T0 + HOUR, T0 + HOUR)]
    # What the topic already has is not written again; a change is.
    known = {s.org_id: s for s in written}
    assert builder.summaries(seed, known, at) == []
    known["ur"] = dataclasses.replace(known["ur"], last_seen=T0 + 2 * HOUR)
    assert [s.org_id for s in builder.summaries(seed, known, at)] == ["ur"]
    # Every summary round-trips through its record.
    assert all(decode_novelty(s.encode()) == s for s in written)


# ---------------------------------------------------------------------------
# the seeded steps under TestStream: what the rebuild found fills empty state only


_COLLECTED: list = []  # what the steps under test put out (the direct runner runs in this process)


def _collect(p, output, row) -> list:
    """Run ``p`` with ``output``'s elements mapped by ``row`` into a list; (the list, result)."""
    import apache_beam as beam

    _COLLECTED.clear()
    _ = output | beam.Map(row) | beam.Map(_keep)
    result = p.run()
    result.wait_until_finish()
    return sorted(_COLLECTED), result


def _keep(row) -> None:
    _COLLECTED.append(row)  # a module function, pickled by name: the list is this one


def _stream(*timed):
    from apache_beam.testing.test_stream import TestStream
    from apache_beam.transforms.window import TimestampedValue

    stream = TestStream()
    for element, at, watermark in timed:
        stream = stream.add_elements([TimestampedValue(element, at)])
        if watermark is not None:
            stream = stream.advance_watermark_to(watermark)
    return stream.advance_watermark_to_infinity()


def _novelty_run(records, seed, source=None, clock=None):
    """The stream's novelty step over ``records`` [(tagged, arrival, watermark after)] with
    ``seed`` (a Seed or None): the (kind, article id) of what it raised, and its counters."""
    import apache_beam as beam
    from apache_beam.metrics import MetricsFilter

    from tests.transforms.test_raise_alerts import PATIENT, SIMULATED_END, At, streaming_options
    from transforms.raise_alerts import RaiseAlerts
    from transforms.reload import WatchlistSource

    p = beam.Pipeline(options=streaming_options())
    step = RaiseAlerts(source or WatchlistSource.fixed(PATIENT), clock=At(clock or SIMULATED_END),
                       seed=None if seed is None else SeedBlob.of(seed))
    out, result = _collect(p, (p | _stream(*records) | step).alerts, lambda a: (a.kind, a.article_id))
    counters = {c.key.metric.name: c.committed
                for c in result.metrics().query(MetricsFilter().with_namespace("novelty"))["counters"]}
    return out, counters


def _seed_from(records, alerts=(), watchlist=None):
    from tests.transforms.test_raise_alerts import PATIENT

    builder = SeedBuilder(watchlist or PATIENT, SETTINGS)
    for t in records:
        builder.add_tagged(t, _micros(t))
    for a in alerts:
        builder.add_alert(a)
    return builder.seed()


def test_stream_a_seeded_story_is_not_new_and_restored_state_wins_over_the_seed():
    from tests.transforms.test_raise_alerts import tagged as mention

    memory = alert_rules_memory()
    seed = _seed_from([mention("a9", "s9", T0)])  # s9 known before the restart, its alert not on the topic
    records = [
        (mention("a9b", "s9", T0 + 60), T0 + 60, None),  # a copy of s9: not new (the seed)
        (mention("a1", "s1", T0 + HOUR), T0 + HOUR, T0 + HOUR + memory + 10),  # the timer prunes s9 and s1
        # s9 again, published early but fetched much later: the state in force (pruned) decides,
        # not the seed, which still holds s9; so it is news again, as without a restart.
        (mention("a9c", "s9", T0 + 2 * HOUR), T0 + HOUR + memory + 20, None),
    ]
    seeded, _ = _novelty_run(records, seed)
    assert seeded == sorted([("new_mention", "a1"), ("new_mention", "a9c")])
    cold, _ = _novelty_run(records, None)  # the control: without the seed the copy is new
    assert ("new_mention", "a9b") in cold


def alert_rules_memory():
    from tests.transforms.test_raise_alerts import PATIENT
    from transforms.alert_rules import memory

    return memory(PATIENT.novelty)


def test_stream_an_alert_already_on_the_topic_is_not_raised_again():
    from tests.transforms.test_raise_alerts import PATIENT
    from tests.transforms.test_raise_alerts import tagged as mention

    # a1 was judged and alerted before the crash, its offset never committed: left out of the
    # fold (pending), replayed, and its alert is found on news.alerts.
    a1 = mention("a1", "s1", T0)
    raised = live_alerts([a1], PATIENT)
    builder = SeedBuilder(PATIENT, SETTINGS, [pending_key("a1", None, a1.article.fetched_at)])
    builder.add_tagged(a1, _micros(a1))
    for a in raised:
        builder.add_alert(a)
    seed = builder.seed()
    assert "cmw" not in seed.orgs and seed.raised("cmw", raised[0].alert_id)
    out, counters = _novelty_run([(a1, T0, None), (mention("a2", "s2", T0 + 60), T0 + 60, None)], seed)
    assert out == [("new_mention", "a2")]
    assert counters.get("already_raised") == 1, counters
    cold, _ = _novelty_run([(a1, T0, None)], None)  # the control
    assert cold == [("new_mention", "a1")]


def live_alerts(records, watchlist):
    rules = AlertRules(lambda: watchlist, now=lambda: datetime.fromtimestamp(T0 + 30 * DAY, UTC))
    state, alerts = OrgState(), []
    for t in records:
        for _org, event in events_of(t):
            alerts.extend(rules.apply(state, event, arrival=event.event_time))
    return alerts


def test_stream_a_seeded_organization_added_back_has_no_first_in_window_from_its_unwatched_time(tmp_path):
    from tests.transforms.test_raise_alerts import keep_versions, watchlist_yaml
    from tests.transforms.test_raise_alerts import tagged as mention

    back = T0 + 20 * DAY  # cmw removed, then added back at this (wall-clock) time, then a restart
    source = keep_versions(tmp_path / "watchlist.yaml", tmp_path / "store", watchlist_yaml("cmw", "quick"),
                           watchlist_yaml("quick"), watchlist_yaml("quick", "cmw"), wall=lambda: back)
    seed = _seed_from([mention("a1", "s1", T0)], watchlist=source.initial)  # from before it was removed
    assert seed.orgs["cmw"].last_seen == T0
    records = [(mention("a2", "s2", back + 6 * DAY), back + 6 * DAY, None),
               (mention("a3", "s3", back + 14 * DAY), back + 14 * DAY, None)]
    out, _ = _novelty_run(records, seed, source=source, clock=back + 15 * DAY)
    # a2 is 26 days after a1 but only 6 after cmw was watched again: not a known silence.
    assert out == sorted([("new_mention", "a2"), ("new_mention", "a3"), ("first_in_window", "a3")])
    from transforms.reload import WatchlistSource

    # The control: a watchlist that never dropped cmw takes a2 as the end of a 26-day silence.
    always, _ = _novelty_run(records, seed, source=WatchlistSource.fixed(source.initial), clock=back + 15 * DAY)
    assert ("first_in_window", "a2") in always


@pytest.mark.parametrize("as_file", [False, True])
def test_stream_dedupe_keeps_a_seeded_story_id_and_drops_a_seeded_repeat(as_file, tmp_path, monkeypatch):
    import apache_beam as beam

    from tests.transforms.test_raise_alerts import streaming_options
    from transforms.dedupe import Dedupe

    original = tagged(1, T0, "a1", text=WIRE + ".")
    seed = _seed_from([original])
    copy = tagged(2, T0 + HOUR, "a2", text=WIRE + ", officials said.")
    again = tagged(1, T0 + 2 * HOUR, "a1", text=WIRE + ".")  # the same version of a1 polled again

    def run(seeded):
        p = beam.Pipeline(options=streaming_options())
        records = [(copy, T0 + HOUR, None), (again, T0 + 2 * HOUR, None)]
        blob = None
        if seeded is not None:
            blob = SeedBlob.shipped(seeded, str(tmp_path), "g", inline_limit=0 if as_file else 1 << 30)
            assert (blob.path is not None) == as_file
        step = Dedupe(SETTINGS, seed=blob)
        out, _ = _collect(p, (p | _stream(*records) | step).articles,
                          lambda t: (t.article.article_id, t.story_id, t.duplicate_of))
        return out

    from transforms import rebuild

    monkeypatch.setattr(rebuild, "_LOADED", {})  # the steps read the seed as a fresh worker would
    assert run(seed) == [("a2", "a1", "a1")]  # the copy joins a1's story; a1's repeat is dropped
    # The control: without the seed the copy starts a story of its own, and a1 is new and joins it.
    assert run(None) == sorted([("a2", "a2", None), ("a1", "a2", "a2")])
