"""The bounded batch path (pipelines.batch) gives what build(ordered=True) gives, in flat memory."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from newsradar.config import load_watchlist
from newsradar.records import RawArticle, format_time, parse_time
from pipelines.batch import BatchRun
from pipelines.run import run_bounded, run_ordered_beam
from tests.conftest import FIXTURES
from transforms.dedupe import DedupeSettings

WATCHLIST = load_watchlist(FIXTURES / "pipeline" / "watchlist.yaml")
# Short windows, so that a few hundred records span many of them and pruning is exercised.
SETTINGS = DedupeSettings(repeat_window_seconds=12 * 3600.0, story_window_seconds=6 * 3600.0,
                          prune_interval_seconds=3600.0)
T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=10)


def _texts() -> list[tuple[str, str, str]]:
    out = []
    for name in ("stories.jsonl", "languages.jsonl"):
        for line in (FIXTURES / "pipeline" / name).read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                out.append((obj.get("lang") or "en", obj.get("title") or "", obj["text"]))
    return out


def generated(n: int) -> list[tuple[bytes, float]]:
    """``n`` inputs: rewritten and exact copies of the fixtures' stories (with and without a
    watched organization), exact repeats of earlier records, edits, records a few hours late,
    and malformed lines; event time advancing ten minutes a record."""
    texts = _texts()
    out: list[tuple[bytes, float]] = []
    sent: list[RawArticle] = []
    for i in range(n):
        when = T0 + i * STEP
        if i % 13 == 12:
            out.append((b'{"v": 1, "kind": "raw", "not": "an article"' if i % 2 else b"\xff\xfe not utf-8", when.timestamp()))
            continue
        if i % 7 == 6 and sent:
            again = sent[-5 if len(sent) >= 5 else 0]  # an exact repeat of an earlier record
            out.append((again.encode(), when.timestamp()))
            continue
        if i % 11 == 10 and sent:
            old = sent[-3 if len(sent) >= 3 else 0]  # an edit of an earlier record
            edit = _edited(old, when)
            out.append((edit.encode(), when.timestamp()))
            continue
        late = i % 17 == 16
        at = when - timedelta(hours=3) if late else when
        lang, title, text = texts[i % len(texts)]
        if i % 3 == 0:
            text = f"{text} Story number {i // 3 % 40}."  # a near copy of the same text seen before
        if i % 5 == 0:
            text = f"{text} The Council of Mothers and Wives commented on it."
        article = RawArticle(article_id=f"rss:gen:{i}", source_id="gen", source_kind="rss",
                             url=f"https://gen.example/{i}", title=title, text=text, published_at=format_time(at),
                             fetched_at=format_time(when), lang_hint=lang)
        sent.append(article)
        out.append((article.encode(), at.timestamp()))
    return out


def _fields(article: RawArticle) -> dict:
    return {name: getattr(article, name) for name in article.__slots__}


def _edited(old: RawArticle, when: datetime) -> RawArticle:
    fields = _fields(old)
    fields.update(text=old.text + " Updated with a correction.", edited_at=format_time(when),
                  fetched_at=format_time(max(when, parse_time(old.fetched_at))))
    return RawArticle(**fields)


def _alert(alert) -> tuple:
    return (alert.alert_id, alert.kind, alert.article_id, alert.story_id, alert.why, alert.severity, alert.snippet)


def _letter(letter) -> tuple:
    return (letter.step, letter.error, letter.original, letter.encoding)


@pytest.fixture(scope="module")
def inputs():
    return generated(260)


def test_the_batch_path_equals_the_ordered_beam_build(inputs):
    reference = run_ordered_beam(inputs, WATCHLIST, SETTINGS)
    batch = run_bounded(inputs, WATCHLIST, SETTINGS, workers=2)
    # The input has what the comparison must cover: copies, repeats, edits, bad records, alerts.
    assert sum(1 for t in reference.tagged.values() if t.duplicate_of) >= 10
    assert sum(1 for t in reference.tagged.values() if t.is_update) >= 5
    assert len(inputs) - len(reference.tagged) - len(reference.dead) >= 10  # repeats dropped
    assert len(reference.dead) >= 10 and len(reference.alerts) >= 5
    assert batch.tagged == reference.tagged
    assert {i: _letter(d) for i, d in batch.dead.items()} == {i: _letter(d) for i, d in reference.dead.items()}
    assert [_alert(a) for a in batch.alerts] == [_alert(a) for a in reference.alerts]


def test_in_this_process_it_gives_the_same(inputs):
    two = run_bounded(inputs, WATCHLIST, SETTINGS, workers=2)
    none = run_bounded(inputs, WATCHLIST, SETTINGS, workers=0)
    assert none.tagged == two.tagged and [_alert(a) for a in none.alerts] == [_alert(a) for a in two.alerts]


def test_checked_articles_give_what_their_encodings_give(inputs):
    """`newsradar tag` and `backtest` from files hand the worker the article they checked,
    not its encoding: the outcomes are the same, an article dated in the future clamped as
    ParseRaw clamps it."""
    from newsradar.records import RecordError, decode_raw

    future = format_time(datetime.now(UTC) + timedelta(days=3))
    ahead = RawArticle(article_id="rss:gen:ahead", source_id="gen", source_kind="rss", url="", title="Ahead",
                       text="A clock that runs fast.", published_at=future, fetched_at=future)
    encoded = [*inputs, (ahead.encode(), T0.timestamp() + 10**7)]
    articles = []
    for payload, at in encoded:
        try:
            articles.append((decode_raw(payload), at))
        except RecordError:
            articles.append((payload, at))  # a malformed line stays bytes: the worker dead-letters it
    assert sum(isinstance(p, RawArticle) for p, _ in articles) > 200
    by_bytes = run_bounded(encoded, WATCHLIST, SETTINGS, workers=2)
    by_article = run_bounded(articles, WATCHLIST, SETTINGS, workers=2)
    last = len(encoded) - 1  # clamped to the clock of each run: compared below
    assert {i: t for i, t in by_article.tagged.items() if i != last} == \
        {i: t for i, t in by_bytes.tagged.items() if i != last}
    assert {i: _letter(d) for i, d in by_article.dead.items()} == {i: _letter(d) for i, d in by_bytes.dead.items()}
    assert [_alert(a) for a in by_article.alerts] == [_alert(a) for a in by_bytes.alerts]
    clamped, reference = by_article.tagged[last].article, by_bytes.tagged[last].article
    assert clamped.flags == reference.flags and "published_at_clamped" in clamped.flags
    assert abs(parse_time(clamped.published_at) - parse_time(reference.published_at)) < timedelta(minutes=5)
    assert clamped.published_at < future


def test_state_stays_bounded_by_the_windows_not_the_input():
    inputs = generated(1200)  # 200 hours of records: over thirty story windows
    run = BatchRun(inputs, WATCHLIST, SETTINGS, workers=0)
    sizes = []
    for outcome in run:
        if outcome.seq % 50 == 49:
            sizes.append(run.rules.state_sizes())
    per_hour = 6  # records per hour of event time
    # A story entry lives a window, plus up to the prune interval, plus the late records' hours.
    story_bound = per_hour * (6 + 1 + 3) + per_hour
    repeat_bound = per_hour * (12 + 3) + per_hour
    assert max(s["story_entries"] for s in sizes) <= story_bound, sizes
    assert max(s["repeat_ids"] for s in sizes) <= repeat_bound, sizes
    # Each bound is a few percent of the input: what is remembered is the windows' worth.
    assert story_bound + repeat_bound < len(inputs) / 5
    assert sizes[-1]["org_states"] <= len(WATCHLIST.organizations)


def test_outcomes_come_in_input_order_one_per_input(inputs):
    seqs = [o.seq for o in BatchRun(inputs, WATCHLIST, SETTINGS, workers=2, batch_size=7, in_flight=2)]
    assert seqs == list(range(len(inputs)))


def test_a_fault_in_a_worker_process_is_the_record_s_dead_letter(monkeypatch):
    # The faults of tests/pipelines/test_dead_letters.py, injected before the workers fork.
    from tests.pipelines import test_dead_letters as faults

    faults.inject(monkeypatch)
    result = run_bounded(faults.payloads(), faults.WATCHLIST, workers=2)
    assert {i: faults.summary(d) for i, d in result.dead.items()} == {
        1: ("normalize", "rss:test:101", "ValueError"),
        3: ("dedupe", "rss:test:102", "ValueError"),
        4: ("dedupe", "rss:test:103", "ValueError"),
        5: ("parse", "not a record", "not JSON"),
        7: ("tag", "rss:test:104", "ValueError"),
        9: ("novelty.event", "rss:test:105", "ValueError"),
    }


def _raw(title: str, text: str, i: int = 0) -> bytes:
    when = format_time(T0 + i * STEP)
    return RawArticle(article_id=f"rss:route:{i}", source_id="route", source_kind="rss", url="", title=title,
                      text=text, published_at=when, fetched_at=when).encode()


def test_records_are_routed_by_the_script_of_their_text():
    from pipelines.batch import route_of

    assert route_of(_raw("Минобороны России", "Министерство обороны России сообщило о съезде.")) == 0
    assert route_of(_raw("Міністерство оборони", "Міністерство оборони України повідомило про її рішення.")) == 1
    assert route_of(_raw("Ministry of Defence", "The ministry said on Monday it would respond.")) == 1
    assert route_of(b"\xff\xfe not utf-8") == 1  # unreadable: any worker, it dead-letters it
    # An article handed over as it is (from a file) is routed by the same reading of its text.
    from newsradar.records import decode_raw

    assert route_of(decode_raw(_raw("Минобороны России", "Министерство обороны России сообщило о съезде."))) == 0
    assert route_of(decode_raw(_raw("Міністерство", "Міністерство оборони України повідомило про її рішення."))) == 1
    assert route_of(decode_raw(_raw("Ministry of Defence", "The ministry said on Monday it would respond."))) == 1


def test_one_language_input_spills_to_both_workers_in_input_order():
    from pipelines.batch import route_of

    inputs = [(_raw("Минобороны", f"Министерство обороны России сообщило {i} раз о съезде.", i),
               (T0 + i * STEP).timestamp()) for i in range(200)]
    assert {route_of(p) for p, _ in inputs} == {0}
    run = BatchRun(inputs, WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=8)
    outcomes = list(run)
    assert [o.seq for o in outcomes] == list(range(len(inputs)))
    assert all(o.tagged is not None for o in outcomes)
    assert min(run.sent_to) > 0 and sum(run.sent_to) == len(inputs), run.sent_to  # the other worker helped


def test_every_worker_is_forked_before_any_thread_of_the_run_starts(inputs, monkeypatch):
    # A fork while another thread of this process runs (a pool's manager thread, a queue's
    # feeder thread) can copy a lock that thread holds into the child, which then hangs.
    import os
    import threading

    before = {t.ident for t in threading.enumerate()}
    fork = os.fork
    others_at_fork: list[list[str]] = []

    def watched_fork():
        others_at_fork.append([t.name for t in threading.enumerate() if t.ident not in before])
        return fork()

    monkeypatch.setattr(os, "fork", watched_fork)
    outcomes = list(BatchRun(inputs[:60], WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=4))
    monkeypatch.setattr(os, "fork", fork)
    assert len(outcomes) == 60
    assert others_at_fork == [[], []]


def test_a_worker_that_dies_fails_the_run_instead_of_hanging(inputs, monkeypatch):
    import os

    from pipelines import batch

    def dies(records):
        os._exit(3)

    monkeypatch.setattr(batch, "_prepare_batch", dies)
    with pytest.raises(batch._WorkerFailed, match="exit code 3"):
        list(BatchRun(inputs[:40], WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=4))


def test_tagging_in_memory_zones_gives_the_same(inputs, monkeypatch):
    # Zones open after WARM_TEXTS texts (10,000 by default, more than these tests tag).
    import contextlib

    from transforms import nlp

    plain = run_bounded(inputs, WATCHLIST, SETTINGS, workers=2)
    opened = []
    zone = nlp.Pipelines.memory_zone

    @contextlib.contextmanager
    def counted(self):
        with zone(self) as zoned:
            opened.append(zoned)
            yield zoned

    monkeypatch.setattr(nlp, "WARM_TEXTS", 20)
    monkeypatch.setattr(nlp.Pipelines, "memory_zone", counted)
    for workers in (0, 2):
        zoned = run_bounded(inputs, WATCHLIST, SETTINGS, workers=workers)
        assert zoned.tagged == plain.tagged
        assert [_alert(a) for a in zoned.alerts] == [_alert(a) for a in plain.alerts]
    assert opened.count(True) >= 5 and opened[0] is False  # in this process (workers=0): one a batch once warm


def test_a_result_that_cannot_be_pickled_fails_the_run_instead_of_hanging(inputs, monkeypatch):
    # On the queue's feeder thread the pickling error was only printed: the worker lived on and
    # the parent waited for the dropped result for ever.
    from pipelines import batch

    def unpicklable(records):
        return [lambda: None for _ in records]

    monkeypatch.setattr(batch, "_prepare_batch", unpicklable)
    with pytest.raises(batch._WorkerFailed, match="pickle"):
        list(BatchRun(inputs[:40], WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=4))


def test_a_worker_stuck_after_its_last_batch_is_ended_not_waited_for(inputs, monkeypatch, caplog):
    import threading

    from pipelines import batch

    serve = batch._serve
    processes = []

    def stuck_at_exit(*args):
        serve(*args)
        threading.Event().wait()  # never returns: only the parent's terminate ends it

    start = batch._Worker.start

    def kept(self):
        start(self)
        processes.append(self.process)

    monkeypatch.setattr(batch, "_serve", stuck_at_exit)
    monkeypatch.setattr(batch._Worker, "start", kept)
    monkeypatch.setattr(batch._Worker, "STOP_SECONDS", 0.5)
    outcomes = list(BatchRun(inputs[:40], WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=4))
    assert len(outcomes) == 40
    assert [p.is_alive() for p in processes] == [False, False]
    assert caplog.text.count("did not exit") == 2


def test_a_failed_run_leaves_no_feeder_thread_behind(monkeypatch):
    # The worker dies on its first batch while the parent has more batches queued for it than
    # the pipe holds: the queue's feeder thread stayed blocked in its write, and a later run in
    # this process forked beside it.
    import os
    import threading

    from pipelines import batch

    def dies(records):
        os._exit(3)

    big = [(RawArticle(article_id=f"rss:big:{i}", source_id="big", source_kind="rss", url=f"https://big.example/{i}",
                       title="Big", text="Повестки вручают у метро. " * 800, published_at=format_time(T0 + i * STEP),
                       fetched_at=format_time(T0 + i * STEP)).encode(), (T0 + i * STEP).timestamp()) for i in range(40)]
    monkeypatch.setattr(batch, "_prepare_batch", dies)
    with pytest.raises(batch._WorkerFailed, match="exit code 3"):
        list(BatchRun(big, WATCHLIST, SETTINGS, workers=2, batch_size=5, in_flight=4))
    assert [t.name for t in threading.enumerate() if t.name == "QueueFeederThread"] == []


def test_a_watchlist_reload_in_the_middle_of_a_batch_builds_the_new_tagger_outside_its_zone(inputs, monkeypatch):
    # The new version arrives at the third record of the second batch, with the batch's memory
    # zone open: the zone is closed first (a Tagger's patterns must outlive it), and the records
    # from there on are tagged as a worker that had the new version from the start tags them.
    from types import SimpleNamespace

    from pipelines import batch
    from tests.conftest import REPO
    from transforms import nlp

    shipped = load_watchlist(REPO / "config" / "watchlist.yaml")
    switch_at = 1 + 5 + 1 + 3  # current() is asked once a batch and once a record

    class Versions:
        calls = 0

        def current(self):
            Versions.calls += 1
            new = Versions.calls >= switch_at
            return SimpleNamespace(number=int(new), watchlist=shipped if new else WATCHLIST)

    in_zone_at_build = []

    class Watched(batch.Tagger):
        def __init__(self, watchlist, pipelines=None, **kw):
            if pipelines is not None:
                in_zone_at_build.append(any(n.vocab.in_memory_zone for n in pipelines.nlp.values()))
            super().__init__(watchlist, pipelines=pipelines, **kw)

    records = [(seq, payload, at) for seq, (payload, at) in enumerate(inputs[:15])]
    monkeypatch.setattr(nlp, "WARM_TEXTS", 0)  # zones from the first batch
    monkeypatch.setattr(batch, "Tagger", Watched)
    monkeypatch.setattr(batch, "watchlist_reloader", lambda source: Versions())
    worker = batch._Stateless(None, SETTINGS)
    got = [p.tags for b in (records[:5], records[5:10], records[10:]) for p in worker.prepare_batch(b)]
    assert in_zone_at_build == [False]  # the one rebuild, with the zone closed

    monkeypatch.setattr(batch, "watchlist_reloader", lambda source: SimpleNamespace(
        current=lambda: SimpleNamespace(number=0, watchlist=WATCHLIST)))
    old = [p.tags for p in batch._Stateless(None, SETTINGS).prepare_batch(records[:7])]
    monkeypatch.setattr(batch, "watchlist_reloader", lambda source: SimpleNamespace(
        current=lambda: SimpleNamespace(number=0, watchlist=shipped)))
    new = [p.tags for p in batch._Stateless(None, SETTINGS).prepare_batch(records[7:])]
    assert got == old + new
    monkeypatch.setattr(batch, "watchlist_reloader", lambda source: SimpleNamespace(
        current=lambda: SimpleNamespace(number=0, watchlist=WATCHLIST)))
    assert new != [p.tags for p in batch._Stateless(None, SETTINGS).prepare_batch(records[7:])]  # the switch shows
