"""The daily ``news.candidates`` output: per UTC day, the names nobody watches that appeared
most with the watched topics (:mod:`transforms.candidates` does the finding and counting;
this module only wires it).

Guarantees:

* Cheap: the finder runs without the NER model (quotes and organization words only, on the
  tagger's pipelines; docs/benchmarks.md has the cost); slovnet stays in `newsradar
  candidates`, off the stream.
* One output per UTC day of event time, when the watermark passes the day's end: the top
  :data:`TOP` names seen with a watched topic in at least ``min_stories`` stories, each a
  :class:`newsradar.records.Candidate` keyed by ``candidate_id`` (day, language, name).
* Not part of the offset commit: a day's tally lives in window state until the day ends, so
  a restart on Prism (state in memory) loses the tally of the open day so far, and a day
  can be emitted twice after a replay (the same ids: a consumer keeps the last record per
  id). `newsradar candidates --since 1d` recomputes any day from news.tagged.
* An article the finder fails on is a dead letter of step ``candidates``, never a stuck bundle.
"""

from __future__ import annotations

from datetime import UTC, datetime

import apache_beam as beam
from apache_beam.transforms.window import FixedWindows

from newsradar.identity import candidate_id
from newsradar.records import Candidate, CandidateExample, TaggedArticle

from .candidates import Finder, Ranked, Tally, add_article, rank
from .deadletters import DLQ, RecordStep
from .reload import WatchlistSource

STEP = "candidates"
DAY_SECONDS = 86400
TOP = 20
MIN_STORIES = 2


def to_record(ranked: Ranked, day: str, position: int) -> Candidate:
    return Candidate(
        candidate_id=candidate_id(day, ranked.lang, ranked.key), day=day, rank=position, name=ranked.name,
        lang=ranked.lang, key=ranked.key, forms=ranked.forms, stories=ranked.stories, articles=ranked.articles,
        topic_share=ranked.topic_share, score=ranked.score, topics=ranked.topics, found_by=ranked.found_by,
        heads=ranked.heads,
        examples=tuple(CandidateExample(e.article_id, e.url, e.snippet) for e in ranked.examples))


def day_records(tallies, day: str, top: int = TOP, min_stories: int = MIN_STORIES) -> list[Candidate]:
    """The day's ranking as records, best first (rank 1)."""
    return [to_record(r, day, i) for i, r in enumerate(rank(tallies, min_stories=min_stories, limit=top), start=1)]


class _Find(RecordStep):
    """TaggedArticle -> ((lang, key), Tally) for each candidate name in it."""

    STEP = STEP
    NAMESPACE = "candidates"

    def __init__(self, source: WatchlistSource):
        super().__init__()
        self._source = source

    def setup(self) -> None:
        from .tagging import watchlist_reloader

        super().setup()
        self._reloader = watchlist_reloader(self._source)
        self._finder: Finder | None = None
        self._of = 0

    def process(self, element):
        # The watchlist in force, as tagging's (the same shared reloader): its names are not candidates.
        version = self._reloader.current()
        if self._finder is None or self._of != version.number or self._finder.pipelines.grown():
            # Language pipelines are reused across versions unless their string stores outgrew their bound.
            pipelines = self._finder.pipelines if self._finder is not None and not self._finder.pipelines.grown() else None
            self._finder, self._of = Finder(version.watchlist, pipelines=pipelines), version.number
        for out in super().process(element):
            if isinstance(out, beam.pvalue.TaggedOutput):
                yield out
            else:
                yield from out.items()

    def apply(self, tagged: TaggedArticle) -> dict:
        tallies: dict = {}
        add_article(tallies, self._finder, tagged)
        return tallies


class _MergeTallies(beam.CombineFn):
    def create_accumulator(self):
        return None

    def add_input(self, acc: Tally | None, tally: Tally) -> Tally:
        return _copy(tally) if acc is None else acc.merge(tally)

    def merge_accumulators(self, accs):
        out = None
        for acc in accs:
            if acc is not None:
                out = _copy(acc) if out is None else out.merge(acc)
        return out

    def extract_output(self, acc):
        return acc


def _copy(tally: Tally) -> Tally:
    return Tally(tally.key, tally.lang).merge(tally)


class _Emit(beam.DoFn):
    def __init__(self, top: int, min_stories: int):
        self._top, self._min_stories = top, min_stories

    def process(self, tallies, window=beam.DoFn.WindowParam):
        day = datetime.fromtimestamp(float(window.start), UTC).strftime("%Y-%m-%d")
        yield from day_records([t for t in tallies if t is not None], day, self._top, self._min_stories)


class RankCandidates(beam.PTransform):
    """TaggedArticle -> per UTC day of event time, the day's top candidates
    (:class:`newsradar.records.Candidate`) on ``candidates``; an article the finder fails
    on -> DeadLetter on ``dlq`` (step ``candidates``)."""

    def __init__(self, source: WatchlistSource, top: int = TOP, min_stories: int = MIN_STORIES,
                 label: str | None = None):
        super().__init__(label)
        self._source, self._top, self._min_stories = source, top, min_stories

    def expand(self, tagged):
        found = (tagged
                 | "DayWindows" >> beam.WindowInto(FixedWindows(DAY_SECONDS))
                 | "FindNames" >> beam.ParDo(_Find(self._source)).with_outputs(DLQ, main="names"))
        candidates = (found.names
                      | "TallyPerName" >> beam.CombinePerKey(_MergeTallies())
                      | "DropKeys" >> beam.Values()
                      | "DayTallies" >> beam.CombineGlobally(beam.combiners.ToListCombineFn()).without_defaults()
                      | "RankDay" >> beam.ParDo(_Emit(self._top, self._min_stories)))
        dlq = found[DLQ] | "UndoDayWindows" >> beam.WindowInto(beam.window.GlobalWindows())
        return candidates, dlq
