"""The bounded batch path: a replay of news.raw records read as a stream, through the
pipeline's rules, with flat memory and both cores (`newsradar tag`, `newsradar backtest`).

The steps and rules are :func:`pipelines.monitor.build`'s, in the same order; only the
runner differs. Two worker processes do the stateless, costly part of every record —
ParseRaw, Normalize (language id included), TagArticles, and the story keys of Dedupe (the
MinHash sketch) — on batches of records, a bounded number of records in flight. A record is
a news.raw record's bytes (a topic's replay), or an article its caller built and checked
(`tag` and `backtest` from files: :data:`Payload`), which is pickled to the worker as it is
and only clamped there, since ParseRaw's decode of its encoding would give it back. Each record
goes to the worker of its language by preference (:func:`route_of`: Russian-looking text to
one, the rest to the other), so each worker's tagger caches learn about half the vocabulary
instead of all of it; when that worker is two batches busier than the other, the record
goes to the other (a one-language input still uses both cores). Which worker tags a record
does not change its result. The workers are plain processes, each with a task and a result
queue, all forked before any queue's feeder thread starts (a fork while another thread of
this process runs could copy a lock it holds into the child). This process
takes their results in input order and applies the stateful rules as a stream in that
order would: :class:`transforms.dedupe_rules.RepeatMemory`,
:class:`transforms.dedupe_rules.StoryMemory` (one per language) and the novelty rules
(:class:`transforms.alert_rules.AlertRules` over one :class:`transforms.alert_rules.OrgState`
per organization, arrivals on the replay clock :class:`transforms.alert_rules.ArrivalClock`).

Guarantees:

* One :class:`Outcome` per input, yielded in input order, as soon as the input's turn comes:
  the caller never has to hold the whole input or output.
* Memory is bounded by the stream's own bounds (repeat and story windows in event time, the
  organizations' pruned states), plus the records in flight
  (``(in_flight + 1) * batch_size``); it does not grow with the input as such. A worker's
  tagger learns the vocabulary of its first :data:`transforms.nlp.WARM_TEXTS` texts; after
  that each batch is tagged in a spaCy memory zone, whose new words (lexemes, strings) are
  forgotten at its end, so what still grows is the key cache (lemma keys per word form, up
  to its cap, :mod:`transforms.nlp`) (docs/benchmarks.md).
* Results are those of ``build(ordered=True)`` on the same input (tests/pipelines/test_batch.py):
  the same tagged articles, story ids, repeats, dead letters (step, error, record) and alerts
  (ids, in input order). One difference, where the in-order Beam fold is not the stream:
  an id is forgotten when event time (the newest timestamp of the input so far) passes its
  expiry, as the stream's timer does, so a version arriving more than ``repeat_window``
  behind the newest record is judged anew.
* A record's error is its dead letter (:func:`transforms.deadletters.attempt`); an
  infrastructure error (disk, memory) in a worker fails the run.
* Nothing is notified: alerts only come back to the caller.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import pickle
import queue
import time
import traceback
from collections import deque
from collections.abc import Iterable, Iterator, Sized
from dataclasses import dataclass, replace
from itertools import islice

from apache_beam.utils.timestamp import Timestamp

import transforms.normalize
from newsradar.config import Watchlist
from newsradar.metrics import pipeline_metrics
from newsradar.records import Alert, DeadLetter, RawArticle, TaggedArticle
from transforms import dedupe as dedupe_mod
from transforms import parse
from transforms.alert_rules import AlertRules, ArrivalClock, OrgState, event_time, events_of
from transforms.deadletters import INFRASTRUCTURE_ERRORS, DeadLetters, attempt, dead_letter
from transforms.dedupe import DedupeSettings, story_keys
from transforms.dedupe_rules import RepeatMemory, StoryMemory
from transforms.raise_alerts import EVENT_STEP
from transforms.raise_alerts import STEP as NOVELTY_STEP
from transforms.reload import WatchlistSource
from transforms.tagging import Tagger, watchlist_reloader

log = logging.getLogger(__name__)

WORKERS = 2
BATCH = 32  # records per task: large enough that pickling is a small share, small for flat memory
IN_FLIGHT_PER_WORKER = 3
# Batches a worker may be busier than the least busy one before its language's records spill over.
SPILL_BATCHES = 2
SMALL_INPUT = 500  # records below which the stateless steps run in this process


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one input (``seq``: its position among the inputs)."""

    seq: int
    tagged: TaggedArticle | None = None
    dead: DeadLetter | None = None  # the first dead letter of this input, if any
    alerts: tuple[Alert, ...] = ()
    repeat: bool = False  # dropped by Dedupe: a repeat (or an older version) of an id it remembers
    # Ids the repeat rule forgot before this input: a caller that keeps something per id for
    # the repeats (`newsradar tag`'s "version in force") can forget it too.
    forgotten: tuple[str, ...] = ()


# ---------------------------------------------------------------------------
# the stateless part (worker processes)


# A record for the batch path: a news.raw record's bytes (decoded and checked by ParseRaw in
# the worker), or an article its caller built and checked (`newsradar tag` and `backtest`
# from files), which goes to the worker as it is: its encoding decoded again would be it.
Payload = bytes | RawArticle


@dataclass(frozen=True, slots=True)
class _Prepared:
    """A record after the stateless steps: a dead letter (parse, normalize), or the
    normalized article, its story keys (None: computing them raised; Dedupe does it again
    and dead-letters it) and its tags (or the tag step's dead letter and traceback)."""

    seq: int
    ts_micros: int
    dead: DeadLetter | None = None
    normalized: TaggedArticle | None = None
    keys: tuple[str, bytes] | None = None
    tags: tuple | None = None  # (topics, mentions, article flags)
    tag_dead: tuple[DeadLetter, str] | None = None


class _Logged(DeadLetters):
    """Dead letters built and logged where the record failed (a worker), counted where the
    outcome is taken (this process, :class:`_Rules`): a worker's registry is nobody's."""

    def count(self) -> None:
        return None


class _Stateless:
    """One process's parse, normalize, tag and sketch, with the pipeline's dead letters."""

    def __init__(self, source: WatchlistSource, settings: DedupeSettings):
        self._settings = settings
        self._reloader = watchlist_reloader(source)
        self._detector = transforms.normalize.shared_detector()
        self._parse = _Logged(parse.STEP, "ParseRaw")
        self._normalize = _Logged(transforms.normalize.STEP, "Normalize")
        self._tagger: Tagger | None = None
        self._tagger_of = -1
        self._zone: contextlib.ExitStack | None = None  # the batch's memory zone while open

    def prepare_batch(self, batch: list[tuple[int, Payload, float]]) -> list[_Prepared]:
        """The batch's records prepared, tagged inside one spaCy memory zone (once the
        tagger is warm, :meth:`transforms.nlp.Pipelines.memory_zone`): the words first seen
        in it are forgotten at its end (but for the key strings the key cache keeps, bounded). A result
        holds plain values only (no spaCy object outlives the zone)."""
        pipelines = self._tagger_in_force().pipelines  # built outside the zone
        with contextlib.ExitStack() as zone:
            self._zone = zone
            zone.enter_context(pipelines.memory_zone())
            try:
                return [self.prepare(seq, payload, at) for seq, payload, at in batch]
            finally:
                self._zone = None

    def _tagger_in_force(self) -> Tagger:
        version = self._reloader.current()
        rebuild = self._tagger is None or self._tagger_of != version.number or self._tagger.pipelines.grown()
        if rebuild and self._zone is not None:
            self._zone.close()  # a Tagger's patterns must outlive the batch: built outside a zone
        if self._tagger is None or self._tagger_of != version.number:
            pipelines = self._tagger.pipelines if self._tagger is not None else None
            self._tagger, self._tagger_of = Tagger(version.watchlist, pipelines=pipelines), version.number
        self._tagger = self._tagger.rebuilt_if_grown()
        return self._tagger

    def _parsed(self, payload: Payload):
        return parse.parse_article(payload)

    def prepare(self, seq: int, payload: Payload, at: float) -> _Prepared:
        ts = Timestamp.of(at).micros
        raw = attempt(self._parse, payload, self._parsed, payload)
        if isinstance(raw, DeadLetter):
            return _Prepared(seq, ts, dead=raw)
        normalized = attempt(self._normalize, raw, _normalize, raw, self._detector)
        if isinstance(normalized, DeadLetter):
            return _Prepared(seq, ts, dead=normalized)
        try:
            keys = story_keys(normalized, self._settings)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception:  # noqa: BLE001 -- Dedupe computes them again in order and dead-letters the record
            keys = None
        tagger = self._tagger_in_force()
        try:
            tagged = tagger.tag(normalized)
        except INFRASTRUCTURE_ERRORS:
            raise
        except Exception as exc:  # noqa: BLE001 -- the tag step's dead letter, used if Dedupe lets the record pass
            letter = dead_letter(normalized, exc, "tag")
            return _Prepared(seq, ts, normalized=normalized, keys=keys, tag_dead=(letter, traceback.format_exc()))
        return _Prepared(seq, ts, normalized=normalized, keys=keys,
                         tags=(tagged.topics, tagged.mentions, tagged.article.flags))


def _normalize(raw, detector):
    # Looked up at every call: the plain function of the Normalize step, whatever it is now.
    return transforms.normalize.normalize(raw, detector)


_WORKER: _Stateless | None = None


def _start_worker(source: WatchlistSource, settings: DedupeSettings) -> None:
    global _WORKER
    _WORKER = _Stateless(source, settings)


def _prepare_batch(batch: list[tuple[int, Payload, float]]) -> list[_Prepared]:
    assert _WORKER is not None, "worker not started"
    return _WORKER.prepare_batch(batch)


def _serve(tasks, results, source: WatchlistSource, settings: DedupeSettings) -> None:
    """A worker process: batches from ``tasks`` until None, each one's prepared records (or
    the error that ended the worker: an infrastructure error fails the run) to ``results``."""
    try:
        _start_worker(source, settings)
        while (batch := tasks.get()) is not None:
            # Pickled here, not on the queue's feeder thread: there a pickling error is only
            # printed and the result dropped, and the parent would wait for it forever.
            results.put(("ok", pickle.dumps(_prepare_batch(batch), pickle.HIGHEST_PROTOCOL)))
    except BaseException as exc:  # noqa: BLE001 -- handed to the parent, which raises it
        results.put(("failed", _WorkerFailed(f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}")))
        raise
    finally:
        results.close()
        results.join_thread()  # the last result is in the pipe before the process ends


class _WorkerFailed(RuntimeError):
    """A worker process raised (its traceback in the message) or died."""


class _Worker:
    """One worker process, started by fork, with its task and result queues.

    Every worker of a run is forked before any of the run's queues is used, so no fork
    happens while a queue's feeder thread (or a pool's manager thread) runs in this process."""

    POLL_SECONDS = 1.0  # how often a wait for a result checks that the worker still lives
    STOP_SECONDS = 60.0  # how long a worker may take to exit after its last batch before it is ended

    def __init__(self, context, source: WatchlistSource, settings: DedupeSettings):
        self.tasks = context.Queue()
        self.results = context.Queue()
        self.process = context.Process(target=_serve, args=(self.tasks, self.results, source, settings),
                                       name="newsradar-batch-worker", daemon=True)

    def start(self) -> None:
        self.process.start()

    def submit(self, batch: list) -> None:
        self.tasks.put(batch)

    def ready(self) -> list[_Prepared] | None:
        """The oldest batch's results if they are back, else None (does not wait)."""
        try:
            return self._unpacked(self.results.get_nowait())
        except queue.Empty:
            return None

    def result(self) -> list[_Prepared]:
        """The oldest batch's results, waiting for them."""
        while True:
            try:
                return self._unpacked(self.results.get(timeout=self.POLL_SECONDS))
            except queue.Empty:
                if not self.process.is_alive():
                    raise _WorkerFailed(f"batch worker {self.process.pid} died "
                                        f"(exit code {self.process.exitcode})") from None

    @staticmethod
    def _unpacked(message) -> list[_Prepared]:
        status, value = message
        if status != "ok":
            raise value
        return pickle.loads(value)  # noqa: S301 -- our own worker's bytes

    def stop(self, finished: bool) -> None:
        """End the worker: after its queued batches (``finished``), else at once."""
        exited = False
        if finished and self.process.is_alive():
            self.tasks.put(None)
            self.process.join(self.STOP_SECONDS)
            exited = not self.process.is_alive()
            if not exited:
                # Its results are all in; whatever holds it up at exit loses nothing.
                log.warning("batch worker %s did not exit %.0f s after its last batch: ended",
                            self.process.pid, self.STOP_SECONDS)
        if exited:
            self.tasks.close()
            self.tasks.join_thread()  # the feeder thread is gone before a next run forks
        else:
            if self.process.is_alive():
                self.process.terminate()
                self.process.join()
            self.tasks.close()
            self._drain_tasks()
        self.results.close()

    def _drain_tasks(self) -> None:
        """Batches the ended worker never took are dropped: read out of the pipe here (this
        process holds its reading end too), so that the queue's feeder thread, which may be
        blocked writing into a full pipe, writes the rest and ends before a next run forks."""
        feeder = self.tasks._thread  # noqa: SLF001 -- multiprocessing keeps no public handle on it
        reader = self.tasks._reader  # noqa: SLF001
        deadline = time.monotonic() + self.STOP_SECONDS
        while feeder is not None and feeder.is_alive() and time.monotonic() < deadline:
            try:
                if reader.poll(0.05):
                    # Raw bytes, not messages: the ended worker may have read part of one.
                    os.read(reader.fileno(), 1 << 16)
            except OSError:  # the feeder, done, closed the pipe: nothing is left to drain
                break
        if feeder is not None:
            feeder.join(max(0.0, deadline - time.monotonic()))
        if feeder is not None and feeder.is_alive():
            log.warning("batch worker %s: its task queue's feeder thread did not end", self.process.pid)
            self.tasks.cancel_join_thread()
        else:
            self.tasks.join_thread()


# ---------------------------------------------------------------------------
# the stateful rules, in input order (this process)


class _Rules:
    """Dedupe and the novelty rules over prepared records, one at a time in input order."""

    def __init__(self, source: WatchlistSource, settings: DedupeSettings):
        self._settings = settings
        self._reloader = watchlist_reloader(source)
        self.repeats = RepeatMemory(settings)
        self.stories: dict[str, StoryMemory] = {}
        self.orgs: dict[str, OrgState] = {}
        self.clock = ArrivalClock()
        metrics = self._metrics = pipeline_metrics()
        self._rules = AlertRules(self._reloader.get, metrics=metrics, watched_since=self._reloader.watched_since)
        self._dedupe = DeadLetters(dedupe_mod.STEP, "Dedupe")
        self._tag = DeadLetters("tag", "tag")
        self._novelty = DeadLetters(NOVELTY_STEP, "novelty")
        self._events = DeadLetters(EVENT_STEP, "novelty")
        self._same_id = metrics.duplicates.labels("same_id")
        self._near = metrics.duplicates.labels("near_duplicate")

    def _counted(self, p: _Prepared) -> None:
        """The Prometheus series the stateless steps count, counted here (see _Logged)."""
        if p.dead is not None:
            self._metrics.dlq.labels(p.dead.step).inc()
            return
        self._metrics.articles.labels(p.normalized.lang).inc()
        for flag in p.normalized.article.flags or ():
            if flag.endswith(parse.CLAMPED):
                self._metrics.clamped_times.labels(field=flag.removesuffix(parse.CLAMPED)).inc()

    def _tag_counted(self, tagged: TaggedArticle) -> None:
        for topic in tagged.topics:
            self._metrics.tags.labels(topic=topic.id).inc()
        for org_id in {m.org_id for m in tagged.mentions}:
            self._metrics.mentions.labels(org=org_id).inc()

    def apply(self, p: _Prepared) -> Outcome:
        self._counted(p)
        if p.dead is not None:
            return Outcome(p.seq, dead=p.dead)
        normalized = p.normalized
        forgotten = tuple(self.repeats.advance(p.ts_micros))
        judged = attempt(self._dedupe, normalized, self.repeats.judge, normalized, p.ts_micros)
        if isinstance(judged, DeadLetter):
            return Outcome(p.seq, dead=judged, forgotten=forgotten)
        passed, _verdict = judged
        if passed is None:
            self._same_id.inc()
            return Outcome(p.seq, repeat=True, forgotten=forgotten)
        memory = self.stories.get(passed.lang)
        if memory is None:
            memory = self.stories[passed.lang] = StoryMemory(self._settings)
        assigned = attempt(self._dedupe, passed, memory.assign, passed, p.ts_micros, p.keys)
        if isinstance(assigned, DeadLetter):
            return Outcome(p.seq, dead=assigned, forgotten=forgotten)
        deduped, new = assigned
        if new and deduped.duplicate_of is not None:
            self._near.inc()
        if p.tag_dead is not None:
            letter, trace = p.tag_dead
            self._tag.count()
            log.warning("tag: article %s sent to news.dlq\n%s", normalized.article.article_id, trace)
            return Outcome(p.seq, dead=letter, forgotten=forgotten)
        topics, mentions, flags = p.tags
        article = deduped.article if flags == deduped.article.flags else replace(deduped.article, flags=flags)
        tagged = replace(deduped, article=article, topics=topics, mentions=mentions)
        self._tag_counted(tagged)
        alerts, dead = self._alerts(p.seq, tagged)
        return Outcome(p.seq, tagged=tagged, dead=dead, alerts=tuple(alerts), forgotten=forgotten)

    def _alerts(self, seq: int, tagged: TaggedArticle) -> tuple[list[Alert], DeadLetter | None]:
        try:
            self.clock.saw(event_time(tagged.article.published_at, tagged.article.fetched_at))
        except ValueError:
            pass  # moves no clock; its mentions go to the dead letters just below
        events = attempt(self._novelty, tagged, events_of, tagged, seq)
        if isinstance(events, DeadLetter):
            return [], events
        alerts: list[Alert] = []
        first_dead = None
        for org_id, event in events:
            state = self.orgs.get(org_id)
            if state is None:
                state = self.orgs[org_id] = OrgState()
            raised = attempt(self._events, event, self._rules.apply, state, event, self.clock.at(event.event_time))
            if isinstance(raised, DeadLetter):
                first_dead = first_dead or raised
                continue
            alerts.extend(raised)
        return alerts, first_dead

    def state_sizes(self) -> dict[str, int]:
        """How much each rule remembers now (entries), for tests and benchmarks."""
        return {
            "repeat_ids": len(self.repeats),
            "story_entries": sum(len(m) for m in self.stories.values()),
            "org_states": len(self.orgs),
            "org_stories": sum(len(s.stories) + len(s.topic_stories) for s in self.orgs.values()),
        }


# ---------------------------------------------------------------------------
# the run


def _batches(records: Iterable[tuple[Payload, float]], size: int) -> Iterator[list[tuple[int, Payload, float]]]:
    numbered = ((seq, payload, at) for seq, (payload, at) in enumerate(records))
    while batch := list(islice(numbered, size)):
        yield batch


class BatchRun:
    """One run of the batch path; iterate it for the outcomes. ``workers=0`` does the
    stateless part in this process too (profiling, small inputs)."""

    def __init__(self, records: Iterable[tuple[Payload, float]], watchlist: Watchlist | WatchlistSource,
                 dedupe: DedupeSettings | None = None, workers: int = WORKERS, batch_size: int = BATCH,
                 in_flight: int | None = None):
        self._records = records
        self._source = watchlist if isinstance(watchlist, WatchlistSource) else WatchlistSource.fixed(watchlist)
        self._settings = dedupe or DedupeSettings()
        self._workers = workers
        self._batch = batch_size
        self._in_flight = in_flight if in_flight is not None else max(1, workers) * IN_FLIGHT_PER_WORKER
        self.rules = _Rules(self._source, self._settings)
        self.sent_to: list[int] = []  # records sent to each worker (the routing's balance)

    def __iter__(self) -> Iterator[Outcome]:
        batches = _batches(self._records, self._batch)
        if self._workers <= 0:
            worker = _Stateless(self._source, self._settings)
            for batch in batches:
                for prepared in worker.prepare_batch(batch):
                    yield self.rules.apply(prepared)
            return
        # fork: the workers start with this process's modules as they are (a test's injected
        # fault included) and without pickling the watchlist. One process per worker, so that
        # a record can be sent to the worker of its language (route_of); all of them forked
        # before any queue's feeder thread starts.
        context = multiprocessing.get_context("fork")
        workers = [_Worker(context, self._source, self._settings) for _ in range(self._workers)]
        finished = False
        try:
            for worker in workers:
                worker.start()
            yield from self._routed(workers, batches)
            finished = True
        finally:
            for worker in workers:
                worker.stop(finished)

    def _routed(self, workers: list[_Worker], batches) -> Iterator[Outcome]:
        """The records to the workers (each to the worker of its language unless that one is
        :data:`SPILL_BATCHES` batches busier than the least busy), the outcomes back in input order.
        At most ``in_flight * batch_size`` records are held (buffered, in a worker, or done
        and waiting for an earlier one)."""
        n = len(workers)
        buffers: list[list] = [[] for _ in range(n)]
        # Per worker, its batches sent, oldest first: [first seq, size, results or None while out].
        queued: list[deque] = [deque() for _ in range(n)]
        done: dict[int, _Prepared] = {}
        state = {"next": 0, "held": 0}
        limit = self._in_flight * self._batch
        spill = SPILL_BATCHES * self._batch
        self.sent_to = [0] * n

        def collect(w: int) -> None:
            """Take the results that are back from worker ``w`` (a worker answers in order)."""
            for entry in queued[w]:
                if entry[2] is None:
                    if (results := workers[w].ready()) is None:
                        return
                    entry[2] = results

        def busy(w: int) -> int:
            collect(w)
            return len(buffers[w]) + sum(size for _first, size, results in queued[w] if results is None)

        def submit(w: int) -> None:
            if buffers[w]:
                workers[w].submit(buffers[w])
                queued[w].append([buffers[w][0][0], len(buffers[w]), None])
                buffers[w] = []

        def take_next() -> Iterator[Outcome]:
            """Wait for the batch holding the next record in input order, yield what is in order."""
            wanted = state["next"]
            for w in range(n):
                if queued[w] and queued[w][0][0] == wanted:
                    break
            else:
                w = next(w for w in range(n) if buffers[w] and buffers[w][0][0] == wanted)
                submit(w)
            entry = queued[w][0]
            if entry[2] is None:
                entry[2] = workers[w].result()
            queued[w].popleft()
            for prepared in entry[2]:
                done[prepared.seq] = prepared
            while state["next"] in done:
                prepared = done.pop(state["next"])
                state["next"] += 1
                state["held"] -= 1
                yield self.rules.apply(prepared)

        for batch in batches:
            for record in batch:
                preferred = route_of(record[1]) % n
                loads = [busy(w) for w in range(n)]
                w = preferred if loads[preferred] - min(loads) <= spill else loads.index(min(loads))
                buffers[w].append(record)
                self.sent_to[w] += 1
                state["held"] += 1
                if len(buffers[w]) >= self._batch:
                    submit(w)
                while state["held"] >= limit:
                    yield from take_next()
        while state["held"]:
            yield from take_next()


# Letters only Ukrainian or only Russian has (lower case: counted in a decoded sample, as
# bytes.count of a two-byte needle is slow on Cyrillic text).
_UK_LETTERS = "іїєґ"
_RU_LETTERS = "ыэъё"


_NOT_LATIN = bytes(b for b in range(256) if not (65 <= b <= 90 or 97 <= b <= 122))
_ROUTE_SAMPLE = 600  # bytes of the text looked at


def route_of(payload: bytes | RawArticle) -> int:
    """Which worker a news.raw record (or an article) goes to by preference: 0 for
    Russian-looking text, 1 for the rest (Ukrainian, Latin script), so each worker's tagger
    caches see mostly one vocabulary and only one worker learns Russian's. A hint read off the
    bytes of the start of the text (a Cyrillic letter is a UTF-8 pair led by 0xD0 or 0xD1),
    not the language: every worker gives the same result for every record; a wrong guess only
    costs cache misses."""
    if isinstance(payload, RawArticle):
        sample = payload.text[:_ROUTE_SAMPLE].encode("utf-8")[:_ROUTE_SAMPLE]
    else:
        start = payload.find(b'"text":')
        sample = payload[start:start + _ROUTE_SAMPLE] if start >= 0 else payload[:_ROUTE_SAMPLE]
    cyrillic = sample.count(b"\xd0") + sample.count(b"\xd1")
    if cyrillic <= len(sample.translate(None, _NOT_LATIN)):
        return 1
    text = sample.decode("utf-8", "ignore")  # "ignore": the sample may end inside a letter
    ukrainian = sum(text.count(c) for c in _UK_LETTERS)
    russian = sum(text.count(c) for c in _RU_LETTERS)
    return 1 if ukrainian > russian else 0


def workers_for(size: int | None) -> int:
    """Worker processes for an input of ``size`` records (None: not known): none for a small
    one, whose start-up (each worker loads the language models) would cost more than it saves."""
    return 0 if size is not None and size < SMALL_INPUT else WORKERS


def run_batch(records: Iterable[tuple[Payload, float]], watchlist: Watchlist | WatchlistSource,
              dedupe: DedupeSettings | None = None, workers: int | None = None) -> Iterator[Outcome]:
    """The outcomes of ``records`` (news.raw records as bytes, or checked articles (:data:`Payload`), with their event time in unix
    seconds, in input order), in input order. See the module docstring. ``workers``: default
    :func:`workers_for` the input's length when it has one."""
    if workers is None:
        workers = workers_for(len(records) if isinstance(records, Sized) else None)
    return iter(BatchRun(records, watchlist, dedupe, workers))
