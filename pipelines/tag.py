"""`newsradar tag`: the pipeline's tagging and novelty steps over a bounded input.

Input is JSONL (one object a line with at least ``title`` and ``text``; optional ``id``,
``lang``, ``url``, ``published_at``, ``source_id``) or an RSS/Atom file (read by the RSS
connector's own parse step). The steps are the streaming pipeline's: Normalize and Dedupe
(their plain functions, applied in input order so story ids are reproducible), then
:class:`transforms.tagging.TagArticles` and, for ``--alerts``, the novelty rules replayed
per organization in input order (:class:`transforms.alerting.RaiseAlertsInOrder`), run by
the DirectRunner's batch engine.

Guarantees: one JSON object per input item on stdout, in input order, with ``id``,
``lang``, ``topics`` (``[{id, score}]``), ``mentions``
(``[{org_id, text, start, end, match}]``, offsets into ``title + "\\n\\n" + text``),
``story_id`` and ``duplicate_of``. A line that cannot be read yields
``{"line": n, "error": "..."}`` in its place, is reported on stderr, and makes the exit
code 2; nothing is skipped silently. ``--alerts FILE`` gets the alerts in the order of the
articles that raised them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import sys
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.runners.portability.fn_api_runner import FnApiRunner

from newsradar.config import ConfigError
from newsradar.records import RawArticle, RecordError, TaggedArticle, format_time, parse_time, rss_article_id
from transforms.alerting import RaiseAlertsInOrder
from transforms.reload import WatchlistSource
from transforms.tagging import TagArticles

DEFAULT_SOURCE = "file"
MAX_INPUT_BYTES = 512 * 1024 * 1024


@dataclass(frozen=True)
class Item:
    """One input item: an article ready for tagging, or the reason it is not."""

    seq: int
    line: int
    article: TaggedArticle | None = None
    error: str | None = None


def _is_feed(data: bytes) -> bool:
    head = data.lstrip()[:1]
    return head == b"<"


def read_items(data: bytes, now: datetime, name: str = "<stdin>") -> list[Item]:
    """Turn the input bytes into items (JSONL lines or feed entries), in input order."""
    if _is_feed(data):
        return _feed_items(data, now, name)
    items = []
    seq = 0
    for lineno, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        items.append(_jsonl_item(seq, lineno, raw, now))
        seq += 1
    return items


def _jsonl_item(seq: int, lineno: int, raw: bytes, now: datetime) -> Item:
    try:
        obj = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        return Item(seq, lineno, error=f"not UTF-8 at byte {exc.start}")
    except json.JSONDecodeError as exc:
        return Item(seq, lineno, error=f"not JSON: {exc.msg} at column {exc.colno}")
    if not isinstance(obj, dict):
        return Item(seq, lineno, error=f"expected a JSON object, got {type(obj).__name__}")
    for field in ("title", "text"):
        if not isinstance(obj.get(field), str):
            return Item(seq, lineno, error=f"{field}: required string field is missing")
    for field in ("id", "lang", "url", "published_at", "source_id"):
        if obj.get(field) is not None and not isinstance(obj[field], str):
            return Item(seq, lineno, error=f"{field}: expected a string, got {type(obj[field]).__name__}")
    title, text = obj["title"], obj["text"]
    source_id = obj.get("source_id") or DEFAULT_SOURCE
    fetched = format_time(now)
    try:
        published = format_time(parse_time(obj["published_at"])) if obj.get("published_at") else fetched
    except ValueError as exc:
        return Item(seq, lineno, error=f"published_at: {exc}")
    article_id = obj.get("id") or rss_article_id(source_id, link=obj.get("url"), title=title, text=text)
    try:
        raw_article = RawArticle(
            article_id=article_id, source_id=source_id, source_kind="rss", url=obj.get("url") or "",
            title=title, text=text, published_at=published, fetched_at=max(fetched, published),
            lang_hint=obj.get("lang"),
        )
    except RecordError as exc:
        return Item(seq, lineno, error=str(exc))
    return Item(seq, lineno, article=_prepare(raw_article, obj.get("lang")))


def _feed_items(data: bytes, now: datetime, name: str) -> list[Item]:
    from connectors.rss_parse import FeedError, parse_feed

    try:
        parsed = parse_feed(data, {}, source_id=DEFAULT_SOURCE, fetched_at=now)
    except FeedError as exc:
        raise ConfigError(name, "", f"not a readable RSS/Atom feed: {exc}") from None
    return [Item(i, i + 1, article=_prepare(r, r.lang_hint)) for i, r in enumerate(parsed.records)]


def _prepare(raw_article: RawArticle, lang: str | None) -> TaggedArticle:
    """Placeholder until :func:`prepare_in_order` runs normalize and dedupe over all items."""
    return TaggedArticle(article=raw_article, lang=(lang or "").split("-")[0].lower(), story_id=raw_article.article_id)


def prepare_in_order(items: list[Item]) -> list[Item]:
    """The pipeline's Normalize and Dedupe steps, as their plain functions, in input order:
    clean text and language (a ``lang`` given in the input wins over detection), then story
    grouping against the articles before it. In input order because a file has an order
    and a replay must give the same story ids every time (a batch Beam run would not)."""
    from transforms.dedupe import DedupeSettings, StoryIndex, assign_story
    from transforms.normalize import normalize, shared_detector

    detector = shared_detector()
    settings = DedupeSettings()
    indexes: dict[str, StoryIndex] = {}
    out = []
    for item in items:
        if item.article is None:
            out.append(item)
            continue
        given = item.article.lang
        tagged = normalize(item.article.article, detector)
        if given in ("en", "ru", "uk"):
            tagged = dataclasses.replace(tagged, lang=given)
        index = indexes.setdefault(tagged.lang, StoryIndex(settings))
        ts_micros = int(parse_time(tagged.article.published_at).timestamp() * 1_000_000)
        tagged, entry = assign_story(index, tagged, ts_micros, settings)
        if entry is not None:
            index.add(entry)
        out.append(dataclasses.replace(item, article=tagged))
    return out


def output_object(tagged: TaggedArticle) -> dict:
    return {
        "id": tagged.article.article_id,
        "lang": tagged.lang,
        "topics": [{"id": t.id, "score": t.score} for t in tagged.topics],
        "mentions": [
            {"org_id": m.org_id, "text": m.text, "start": m.start, "end": m.end, "match": m.match}
            for m in tagged.mentions
        ],
        "story_id": tagged.story_id,
        "duplicate_of": tagged.duplicate_of,
    }


def run_pipeline(items: list[Item], source: WatchlistSource, want_alerts: bool, workdir: str):
    """Tag the readable items with Beam; returns ({seq: output object}, [alert JSON] in order)."""
    good = [(it.seq, it.article) for it in items if it.article is not None]
    tagged_dir = os.path.join(workdir, "tagged")
    alerts_dir = os.path.join(workdir, "alerts")
    # The DirectRunner's in-process batch engine, named directly: "DirectRunner" would first
    # try to download and start Prism, which a bounded file does not need.
    options = PipelineOptions(flags=[])
    with beam.Pipeline(runner=FnApiRunner(), options=options) as p:
        tagged = (
            p
            | "ReadItems" >> beam.Create(good, reshuffle=False)
            | "TagArticles" >> TagArticles(source, keyed=True)
        )
        (
            tagged
            | "FormatTagged" >> beam.MapTuple(lambda seq, t: json.dumps([seq, output_object(t)], ensure_ascii=False))
            | "WriteTagged" >> beam.io.WriteToText(tagged_dir + "/part")
        )
        if want_alerts:
            (
                tagged
                | "RaiseAlertsInOrder" >> RaiseAlertsInOrder(source)
                | "FormatAlerts" >> beam.MapTuple(
                    lambda key, alert: json.dumps([list(key), alert.encode().decode("utf-8")], ensure_ascii=False)
                )
                | "WriteAlerts" >> beam.io.WriteToText(alerts_dir + "/part")
            )
    outputs = {}
    for line in _lines(tagged_dir):
        seq, obj = json.loads(line)
        outputs[seq] = obj
    alerts = sorted((json.loads(line) for line in _lines(alerts_dir)), key=lambda kv: kv[0])
    return outputs, [encoded for _key, encoded in alerts]


def _lines(directory: str):
    path = Path(directory)
    if not path.exists():
        return
    for part in sorted(path.glob("part*")):
        with open(part, encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    yield line


def main(watchlist_file: str, input_file: str | None, alerts_file: str | None,
         out: TextIO | None = None, err: TextIO | None = None, now: datetime | None = None) -> int:
    """The command: returns the exit code (0 ok, 2 some input could not be read)."""
    out = out or sys.stdout
    err = err or sys.stderr
    _quiet_libraries()
    source = WatchlistSource.fixed(_load(watchlist_file))
    name = input_file or "<stdin>"
    if input_file:
        try:
            with open(input_file, "rb") as fh:
                data = fh.read(MAX_INPUT_BYTES + 1)
        except OSError as exc:
            raise ConfigError(input_file, "", f"cannot read: {exc.strerror or exc}") from None
    else:
        data = sys.stdin.buffer.read(MAX_INPUT_BYTES + 1)
    if len(data) > MAX_INPUT_BYTES:
        raise ConfigError(name, "", f"input larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; split it")
    items = prepare_in_order(read_items(data, now or datetime.now(UTC), name))
    with tempfile.TemporaryDirectory(prefix="newsradar-tag-") as workdir:
        outputs, alerts = run_pipeline(items, source, alerts_file is not None, workdir)
    bad = 0
    for item in items:
        if item.error is not None:
            bad += 1
            err.write(f"newsradar: {name}:{item.line}: {item.error}\n")
            out.write(json.dumps({"line": item.line, "error": item.error}, ensure_ascii=False) + "\n")
        else:
            out.write(json.dumps(outputs[item.seq], ensure_ascii=False) + "\n")
    out.flush()
    if alerts_file is not None:
        with open(alerts_file, "w", encoding="utf-8") as fh:
            for encoded in alerts:
                fh.write(encoded + "\n")
    if bad:
        err.write(f"newsradar: {bad} of {len(items)} input items could not be read\n")
        return 2
    return 0


def _quiet_libraries() -> None:
    """Beam and pymorphy3 narrate every run at INFO; a command's stderr is for its own news."""
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        for name in ("apache_beam", "pymorphy3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _load(path: str):
    from newsradar.config import load_watchlist

    return load_watchlist(path)
