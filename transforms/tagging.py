"""Tag articles: topics and watched organizations in one pass over one keyed Doc.

Topics (:mod:`transforms.topics`) and organizations (:mod:`transforms.orgs`) are matched
over the same tokens, so they run in one step (:class:`TagArticles`): tokenizing and keying
is most of the cost, and a spaCy Doc should not cross a step boundary (it would be pickled
whenever a runner decides not to fuse the steps).

Guarantees of :meth:`Tagger.tag`: the output is the input article with ``topics`` and
``mentions`` filled in; every offset indexes :func:`transforms.nlp.analysis_text` of the
article's title and text; the same article and watchlist always give the same output.
Articles in a language without a pipeline are keyed by script (:func:`guess_lang`), so a
watched name written in Latin or Cyrillic letters is still found; ``lang`` is left as given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import apache_beam as beam
from apache_beam.metrics import Metrics

from newsradar.config.watchlist import Example, Watchlist
from newsradar.records import Mention, TaggedArticle, TopicTag, with_flag
from newsradar.text import blank_long_words

from .deadletters import DLQ, RecordStep
from .nlp import LANGS, Pipelines, analysis_text, guess_lang, title_chars
from .orgs import OrgMatcher
from .reload import RejectedVersion, Reloader, WatchlistSource
from .topics import TopicMatcher

log = logging.getLogger(__name__)

STEP = "tag"
# Longer texts are cut here before tagging (offsets stay valid: it is a prefix). A 2 MB
# record is the limit on Kafka; the news that matters is in its first pages.
MAX_ANALYZED_CHARS = 200_000


@dataclass(frozen=True, slots=True)
class Analysis:
    pipeline_lang: str
    topics: tuple[TopicTag, ...]
    mentions: tuple[Mention, ...]


class Tagger:
    """The compiled watchlist: language pipelines plus topic and organization matchers."""

    def __init__(self, watchlist: Watchlist, pipelines: Pipelines | None = None, langs=LANGS):
        self.watchlist = watchlist
        self.pipelines = pipelines if pipelines is not None else Pipelines(langs)
        langs = self.pipelines.langs
        self.topic_matchers = {lang: TopicMatcher(watchlist.topics, self.pipelines, lang) for lang in langs}
        self.org_matchers = {lang: OrgMatcher(watchlist.organizations, self.pipelines, lang, watchlist.countries)
                             for lang in langs}

    def pipeline_lang(self, lang: str | None, text: str) -> str:
        if lang in self.pipelines.nlp:
            return lang
        guessed = guess_lang(text)
        return guessed if guessed in self.pipelines.nlp else self.pipelines.langs[0]

    def analyze(self, title: str, text: str, lang: str | None, source_id: str | None = None) -> Analysis:
        full = analysis_text(title, text)[:MAX_ANALYZED_CHARS]
        return self.analyze_text(full, lang, source_id, title_chars(title, text))

    def analyze_text(self, full: str, lang: str | None, source_id: str | None = None,
                     title_end: int = 0) -> Analysis:
        """``title_end``: where the headline ends in ``full`` (0: no headline apart)."""
        plang = self.pipeline_lang(lang, full)
        # Runs no word is as long as go blank (same length, so spans keep their offsets).
        doc = self.pipelines(blank_long_words(full), plang)
        mentions = self.org_matchers[plang](doc, source_id=source_id, title_end=title_end)
        return Analysis(plang, tuple(self.topic_matchers[plang](doc)), tuple(mentions))

    def tag(self, article: TaggedArticle) -> TaggedArticle:
        """``article`` with its topics and mentions; flagged ``analysis_cut`` when only the
        first :data:`MAX_ANALYZED_CHARS` of its text were analysed."""
        raw = article.article
        full = analysis_text(raw.title, raw.text)
        result = self.analyze_text(full[:MAX_ANALYZED_CHARS], article.lang, raw.source_id,
                                   title_chars(raw.title, raw.text))
        if len(full) > MAX_ANALYZED_CHARS:
            raw = dataclasses.replace(raw, flags=with_flag(raw.flags, "analysis_cut"))
        return dataclasses.replace(article, article=raw, topics=result.topics, mentions=result.mentions)

    def rebuilt_if_grown(self) -> Tagger:
        """A fresh Tagger when spaCy's string stores have outgrown their bound, else self."""
        return Tagger(self.watchlist, langs=self.pipelines.langs) if self.pipelines.grown() else self


# ---------------------------------------------------------------------------
# inline examples


@dataclass(frozen=True, slots=True)
class ExampleFailure:
    index: int
    example: Example
    problems: tuple[str, ...]

    def describe(self) -> str:
        text = self.example.text if len(self.example.text) <= 80 else self.example.text[:77] + "..."
        return f"examples[{self.index}] ({self.example.lang or 'auto'}) {text!r}: " + "; ".join(self.problems)


def check_examples(tagger: Tagger) -> list[ExampleFailure]:
    """Run every inline example of the tagger's watchlist; return those that fail."""
    failures = []
    for i, ex in enumerate(tagger.watchlist.examples):
        result = tagger.analyze(ex.title, ex.text, ex.lang)
        topics = {t.id for t in result.topics}
        orgs = {m.org_id for m in result.mentions}
        scores = _scores(tagger, ex, result.pipeline_lang)
        problems = []
        for tid in ex.topics:
            if tid not in topics:
                threshold = tagger.watchlist.topic(tid).threshold
                problems.append(f"expected topic {tid} (score {scores.get(tid, 0)}, threshold {threshold})")
        for tid in ex.not_topics:
            if tid in topics:
                problems.append(f"unexpected topic {tid} (score {scores.get(tid, 0)})")
        for oid in ex.orgs:
            if oid not in orgs:
                problems.append(f"expected a mention of {oid}")
        for oid in ex.not_orgs:
            if oid in orgs:
                found = ", ".join(f"{m.text!r} ({m.match})" for m in result.mentions if m.org_id == oid)
                problems.append(f"unexpected mention of {oid}: {found}")
        if problems:
            failures.append(ExampleFailure(i, ex, tuple(problems)))
    return failures


def _scores(tagger: Tagger, ex: Example, lang: str) -> dict[str, float]:
    full = analysis_text(ex.title, ex.text)
    return tagger.topic_matchers[lang].explain(tagger.pipelines(full, lang))


class _Verdicts:
    """Inline-example verdicts per watchlist content, shared by the steps of one worker
    process, so that tagging and novelty take and refuse the same versions and a version's
    examples run once per process. Deterministic: the same content and languages always get
    the same verdict, so memoizing it changes nothing but the cost."""

    KEEP = 32

    def __init__(self):
        self._lock = threading.Lock()
        self._verdicts: dict[tuple[str, tuple[str, ...]], str] = {}

    def judge(self, watchlist: Watchlist, langs: tuple[str, ...], tagger: Callable[[], Tagger]) -> str:
        """Why the examples fail, or an empty string when they pass. ``tagger`` builds (or
        hands over) a Tagger of ``watchlist``; it is called only if the verdict is not known."""
        key = (hashlib.sha256(watchlist.model_dump_json().encode()).hexdigest(), langs)
        # Held while judging: a second step asking about the same version waits instead of
        # compiling its own matchers for nothing.
        with self._lock:
            verdict = self._verdicts.get(key)
            if verdict is None:
                failures = check_examples(tagger())
                verdict = f"{len(failures)} inline example(s) fail, first: {failures[0].describe()}" if failures else ""
                if len(self._verdicts) >= self.KEEP:
                    self._verdicts.pop(next(iter(self._verdicts)))
                self._verdicts[key] = verdict
            return verdict


_VERDICTS = _Verdicts()


class _Spare:
    """The Tagger a check built, handed to the first tagging step that needs that version
    (and to that one only: a Tagger is not shared between threads), so a reload compiles
    the matchers once per process instead of once more for the check."""

    def __init__(self):
        self._lock = threading.Lock()
        self._held: tuple[str, Tagger] | None = None

    @staticmethod
    def _key(watchlist: Watchlist) -> str:
        return hashlib.sha256(watchlist.model_dump_json().encode()).hexdigest()

    def put(self, tagger: Tagger) -> None:
        with self._lock:
            self._held = (self._key(tagger.watchlist), tagger)

    def take(self, watchlist: Watchlist) -> Tagger | None:
        key = self._key(watchlist)
        with self._lock:
            if self._held is None or self._held[0] != key:
                return None
            tagger, self._held = self._held[1], None
            return tagger


_SPARE = _Spare()


def require_examples_pass(watchlist: Watchlist, tagger: Tagger | None = None) -> None:
    """Reload check: a version whose inline examples fail is not taken into use.

    ``tagger`` is the version compiled by the caller; without one (the shared watchlist
    reloader) a Tagger is built for the check unless this process has already judged the
    same content, and kept for the first tagging step that needs it."""
    if isinstance(tagger, Tagger):
        verdict = _VERDICTS.judge(watchlist, tagger.pipelines.langs, lambda: tagger)
    else:
        built: list[Tagger] = []
        verdict = _VERDICTS.judge(watchlist, LANGS, lambda: built.append(Tagger(watchlist)) or built[0])
        if built and not verdict:
            _SPARE.put(built[0])
    if verdict:
        raise RejectedVersion(verdict)


_SHARED_LOCK = threading.Lock()
_SHARED: dict[tuple, Reloader[Watchlist]] = {}


def watchlist_reloader(source: WatchlistSource, on_result: Callable[[str, str], None] | None = None,
                       clock: Callable[[], float] = time.monotonic) -> Reloader[Watchlist]:
    """The one Reloader of ``source`` in this process, shared by tagging and novelty (and
    every DoFn instance of them), so both switch to a new version at the same poll and never
    run different versions; a version whose inline examples fail is refused for both.
    Made on first use with ``on_result`` (default: :func:`reload_counter`) and ``clock``.
    A fixed source (no file) gets a Reloader of its own: it never changes."""
    check = require_examples_pass if source.max_memory is None else _within(source.max_memory)
    if source.path is None:
        return Reloader(source, compile=_same, check=check, on_result=on_result, clock=clock)
    key = (source.path, source.initial_hash, source.poll_interval, source.store, source.max_memory)
    with _SHARED_LOCK:
        reloader = _SHARED.get(key)
        if reloader is None:
            reloader = Reloader(source, compile=_same, check=check,
                                on_result=on_result or reload_counter(), clock=clock)
            _SHARED[key] = reloader
        return reloader


def _within(max_memory: float):
    """The reload check of a pipeline whose topics keep ``max_memory`` seconds: the inline
    examples pass, and the version's memory fits in what the state is rebuilt from."""

    def check(watchlist: Watchlist, tagger: Tagger | None = None) -> None:
        memory = watchlist.memory_seconds()
        if memory > max_memory:
            raise RejectedVersion(
                f"its novelty memory is {memory / 86400:g}d but news.tagged and news.alerts keep "
                f"{max_memory / 86400:g}d, so the next start could not rebuild it: raise their retention.ms first")
        require_examples_pass(watchlist, tagger)

    return check


def _same(watchlist: Watchlist) -> Watchlist:
    return watchlist


# ---------------------------------------------------------------------------
# Beam


def reload_counter(namespace: str = "watchlist"):
    """``on_result`` for a Reloader: Prometheus and Beam counters of reload outcomes (Beam's
    in the step whose element triggered the poll)."""
    from newsradar.metrics import pipeline_metrics

    def on_result(result: str, detail: str) -> None:
        pipeline_metrics().watchlist_reloads.labels(result=result).inc()
        Metrics.counter(namespace, f"reload_{result}").inc()

    return on_result


class _TagFn(RecordStep):
    STEP = STEP
    NAMESPACE = "tag"

    def __init__(self, source: WatchlistSource, keyed: bool):
        super().__init__(keyed)
        self._source = source

    def setup(self) -> None:
        from newsradar.metrics import pipeline_metrics

        super().setup()
        self._metrics = pipeline_metrics()
        self._reloader = watchlist_reloader(self._source)
        self._tagger: Tagger | None = None
        self._tagger_of = 0
        self._tagged = Metrics.counter("tag", "articles")
        self._with_topic = Metrics.counter("tag", "articles_with_topic")
        self._with_mention = Metrics.counter("tag", "articles_with_mention")

    def _tagger_in_force(self) -> Tagger:
        """This instance's Tagger of the version in force (compiled here: a Tagger is not
        shared between threads); language pipelines are reused across versions."""
        version = self._reloader.current()
        if self._tagger is None or self._tagger_of != version.number:
            tagger = _SPARE.take(version.watchlist)
            if tagger is None:
                pipelines = self._tagger.pipelines if self._tagger is not None else None
                tagger = Tagger(version.watchlist, pipelines=pipelines)
            self._tagger, self._tagger_of = tagger, version.number
        fresh = self._tagger.rebuilt_if_grown()
        if fresh is not self._tagger:
            self._tagger = fresh
        return self._tagger

    def process(self, element):
        # The watchlist is the step's own, not the record's: reloading stays outside attempt().
        self._tagger_in_force()
        yield from super().process(element)

    def apply(self, article: TaggedArticle) -> TaggedArticle:
        return self._tagger.tag(article)

    def emitted(self, out: TaggedArticle) -> None:
        self._tagged.inc()
        if out.topics:
            self._with_topic.inc()
            for topic in out.topics:
                self._metrics.tags.labels(topic=topic.id).inc()
        if out.mentions:
            self._with_mention.inc()
            for org_id in {m.org_id for m in out.mentions}:
                self._metrics.mentions.labels(org=org_id).inc()


class TagArticles(beam.PTransform):
    """TaggedArticle -> the same with ``topics`` and ``mentions`` on ``articles`` (topics
    and watched organizations in one pass; watchlist reloaded from ``source`` while
    running); an article the tagger fails on -> DeadLetter on ``dlq`` (step ``tag``,
    :mod:`transforms.deadletters`). With ``keyed=True`` the elements are (key,
    TaggedArticle) pairs and both outputs keep the key."""

    def __init__(self, source: WatchlistSource, keyed: bool = False, label: str | None = None):
        super().__init__(label)
        self._source = source
        self._keyed = keyed

    def expand(self, articles):
        return articles | "TagTopicsAndOrganizations" >> beam.ParDo(_TagFn(self._source, self._keyed)).with_outputs(
            DLQ, main="articles"
        )
