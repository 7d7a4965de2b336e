"""`newsradar candidates`: organization-like names that keep appearing with the watched
topics and are not on the watchlist yet, best first.

The history comes from the command line layer: files (read as `backtest` reads them, then
tagged by the bounded batch path, :mod:`pipelines.batch`, so topics, mentions and story ids
are what the stream would give) or a time range of news.tagged (its records already carry
them, as tagged when they were written). The names are found and counted by the plain
functions of :mod:`transforms.candidates`. Guarantees:

* Nobody is notified and nothing is written: the run only reads.
* Malformed input records and records the run dead-letters are counted and named on stderr,
  never dropped silently; the rest is used.
* The same input and watchlist give the same candidates in the same order.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TextIO

from newsradar.config import load_watchlist
from newsradar.progress import Progress
from newsradar.records import RecordError, TaggedArticle, decode_tagged
from transforms.candidates import Finder, Ranked, add_article, rank, stub, stub_yaml

from .backtest import History
from .tag import PROGRESS_EVERY


@dataclass
class Run:
    articles: int = 0
    with_topic: int = 0
    ner_articles: int = 0  # Russian articles with a topic the NER model read
    seconds: float = 0.0
    dead: int = 0


def tagged_from_files(history: History, watchlist, run: Run, err: TextIO) -> Iterator[TaggedArticle]:
    """The history's raw records through the batch path: the tagged articles (repeats
    dropped as the stream drops them; dead letters counted and named)."""
    from .batch import run_batch, workers_for

    records = history.records
    total = len(records) if isinstance(records, list) else getattr(records, "size_hint", lambda: None)()
    wheres: list[str] = []

    def payloads():
        for record in history.records:
            wheres.append(record.where)
            yield record.payload, record.at

    for outcome in run_batch(payloads(), watchlist, workers=workers_for(total)):
        where = wheres[outcome.seq] if outcome.seq < len(wheres) else "?"
        if outcome.dead is not None:
            run.dead += 1
            err.write(f"newsradar: {where}: dead-lettered by {outcome.dead.step}: {outcome.dead.error}\n")
        if outcome.tagged is not None:
            yield outcome.tagged


def tagged_from_topic(history: History) -> Iterator[TaggedArticle]:
    """news.tagged records as read: one that does not decode goes to ``history.malformed``."""
    for record in history.records:
        try:
            yield decode_tagged(record.payload)
        except RecordError as exc:
            history.malformed.append((record.where, str(exc)))


def find(articles: Iterable[TaggedArticle], finder: Finder, run: Run, progress: TextIO | None = None,
         min_stories: int = 2, limit: int | None = 30) -> list[Ranked]:
    tallies: dict = {}
    started = time.perf_counter()
    with Progress("candidates", unit="articles", stream=progress, tty=None if progress is not None else False,
                  every=PROGRESS_EVERY if progress is not None else float("inf")) as shown:
        for tagged in articles:
            run.articles += 1
            if tagged.topics:
                run.with_topic += 1
                if finder.ner and tagged.lang == "ru":
                    run.ner_articles += 1
            add_article(tallies, finder, tagged)
            shown.advance()
    run.seconds = time.perf_counter() - started
    return rank(tallies.values(), min_stories=min_stories, limit=limit)


def line(i: int, c: Ranked) -> str:
    forms = ", ".join(c.forms[:6]) + (f", … ({len(c.forms)} forms)" if len(c.forms) > 6 else "")
    return (f"{i:>3}. {c.name}  [{c.lang}]  stories {c.stories}  articles {c.articles}  "
            f"topic share {c.topic_share:.2f}  topics {','.join(c.topics)}  found by {','.join(c.found_by)}  "
            f"forms: {forms}")


def as_json(c: Ranked, taken: list[str]) -> str:
    out = asdict(c)
    out["examples"] = [asdict(e) for e in c.examples]
    out["stub"] = stub(c, taken)
    return json.dumps(out, ensure_ascii=False, sort_keys=True)


def main(read_history: Callable[[], History], watchlist_file: str, from_topic: bool, out: TextIO, err: TextIO,
         progress: TextIO | None = None, min_stories: int = 2, limit: int | None = 30, ner: bool = True,
         as_lines: str = "text", examples: bool = False, stubs: bool = False) -> int:
    """Read, find, print: ``as_lines`` ``text`` (one line per candidate, best first; with
    ``examples`` their snippets below each; with ``stubs`` the watchlist stubs after the
    list) or ``json`` (one object per line, stub included). Returns 0."""
    from .tag import quiet_libraries

    quiet_libraries()
    watchlist = load_watchlist(watchlist_file)
    history = read_history()
    run = Run()
    articles = tagged_from_topic(history) if from_topic else tagged_from_files(history, watchlist, run, err)
    finder = Finder(watchlist, ner=ner)
    found = find(articles, finder, run, progress=progress, min_stories=min_stories, limit=limit)
    taken = [o.id for o in watchlist.organizations]
    if as_lines == "json":
        for c in found:
            out.write(as_json(c, taken) + "\n")
            taken.append(stub(c, taken)["id"])
    else:
        for i, c in enumerate(found, start=1):
            out.write(line(i, c) + "\n")
            if examples:
                for e in c.examples:
                    out.write(f"       {e.snippet}  ({e.url or e.article_id})\n")
        if stubs and found:
            out.write("\n# paste under organizations: in the watchlist\n")
            for c in found:
                out.write(stub_yaml(c, taken))
                taken.append(stub(c, taken)["id"])
    out.flush()
    for where, what in history.malformed[:20]:
        err.write(f"newsradar: {where}: {what}\n")
    if history.malformed:
        err.write(f"newsradar: {len(history.malformed)} malformed input records counted and left out\n")
    rate = f", {run.articles / run.seconds:,.0f} articles/s" if run.seconds > 0 else ""
    ner_note = f", NER on {run.ner_articles} Russian articles with a topic" if ner else ", NER off"
    err.write(f"candidates: {len(found)} from {run.articles:,} articles ({run.with_topic:,} with a watched topic"
              f"{ner_note}) in {run.seconds:.1f}s{rate}\n")
    return 0
