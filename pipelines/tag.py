"""`newsradar tag`: the pipeline over a bounded input, through :func:`pipelines.monitor.build`.

Input is JSONL (one object a line: :data:`INPUT_FIELDS`, of which only ``text`` is required;
other fields are ignored and named once on stderr) or an RSS/Atom file (read by the RSS
connector's own parse step). Each item becomes a news.raw record stamped with its
``published_at``, and the records go through ``build(ordered=True)``
(:func:`pipelines.run.run_bounded`): the streaming pipeline's steps under the same labels,
with Dedupe and the novelty rules applied in input order, on the DirectRunner's batch
engine. ``lang`` is the record's ``lang_hint``, as a feed's language is: it decides when the
text is not conclusive, a confident detection wins (what the stream would do).

Guarantees: one JSON object per input item on stdout, in input order, with ``id``,
``url`` and ``title`` (as read, ``""`` when absent, so a line can be traced back), ``lang``,
``topics`` (``[{id, score}]``, plus ``evidence`` ``[{text, start, end}]`` with ``explain``),
``mentions``
(``[{org_id, text, start, end, match}]``, offsets into ``title + "\\n\\n" + text``),
``story_id`` and ``duplicate_of``. An item that repeats an earlier item's article id is
dropped by Dedupe as in the stream; its line gets the object of the version in force plus
``repeat_of_line``. A line that cannot be read, or that a step sent to the dead-letter
output, yields ``{"line": n, "error": "..."}`` in its place, is reported on stderr, and makes
the exit code 2; nothing is skipped silently. ``--alerts FILE`` gets the alerts in the order
of the articles that raised them.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO

from newsradar.config import ConfigError
from newsradar.identity import rss_article_id
from newsradar.progress import Progress, Ticker
from newsradar.records import DeadLetter, RawArticle, RecordError, TaggedArticle, format_time, json_problem, parse_time
from transforms.reload import WatchlistSource

DEFAULT_SOURCE = "file"

# The JSONL input, field by field (docs/tagging.md repeats this table): (required, meaning).
INPUT_FIELDS: dict[str, tuple[bool, str]] = {
    "text": (True, "the article's body, plain text"),
    "title": (False, 'its headline; "" when absent (Telegram posts have none)'),
    "id": (False, "its article id; default: derived from source_id, url, title and text as the RSS connector does"),
    "url": (False, "where it was published"),
    "lang": (False, "en, ru or uk: the language hint, used when detection is not conclusive"),
    "published_at": (False, "ISO 8601 time with a zone; default: now. Event time of dedupe and the novelty rules"),
    "edited_at": (False, "ISO 8601 time of the edit: a later edit of a known id replaces the earlier version"),
    "source_id": (False, f"the source it came from; default {DEFAULT_SOURCE!r}"),
}
MAX_INPUT_BYTES = 512 * 1024 * 1024
PROGRESS_EVERY = 10.0  # seconds between plain progress lines when stderr is not a terminal


@dataclass(frozen=True)
class Item:
    """One input item: an article as a news.raw record, or the reason it is not one."""

    seq: int
    line: int
    article: RawArticle | None = None
    error: str | None = None
    ignored: tuple[str, ...] = ()  # fields of the line that are not input fields


def _is_feed(data: bytes) -> bool:
    head = data.lstrip()[:1]
    return head == b"<"


def read_items(data: bytes, now: datetime, name: str = "<stdin>", progress: TextIO | None = None) -> list[Item]:
    """Turn the input bytes into items (JSONL lines or feed entries), in input order.
    ``progress``: where to report lines read (newsradar.progress), if anywhere."""
    if _is_feed(data):
        return _feed_items(data, now, name)
    items = []
    seq = 0
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline ending the last line does not start another
    quiet = progress is None
    with Progress(f"reading {name}", total=len(lines), unit="lines", stream=progress,
                  tty=False if quiet else None, every=float("inf") if quiet else PROGRESS_EVERY) as shown:
        for lineno, raw in enumerate(lines, start=1):
            shown.advance()
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
        return Item(seq, lineno, error=f"not JSON: {json_problem(exc)} at column {exc.colno}")
    if not isinstance(obj, dict):
        return Item(seq, lineno, error=f"expected a JSON object, got {type(obj).__name__}")
    if not isinstance(obj.get("text"), str):
        return Item(seq, lineno, error="text: required string field is missing" if obj.get("text") is None
                    else f"text: expected a string, got {type(obj['text']).__name__}")
    for field in INPUT_FIELDS:
        if obj.get(field) is not None and not isinstance(obj[field], str):
            return Item(seq, lineno, error=f"{field}: expected a string, got {type(obj[field]).__name__}")
    title, text = obj.get("title") or "", obj["text"]
    source_id = obj.get("source_id") or DEFAULT_SOURCE
    fetched = format_time(now)
    times = {}
    for field in ("published_at", "edited_at"):
        try:
            times[field] = format_time(parse_time(obj[field])) if obj.get(field) else None
        except ValueError as exc:
            return Item(seq, lineno, error=f"{field}: {exc}")
    published = times["published_at"] or fetched
    article_id = obj.get("id") or rss_article_id(source_id, link=obj.get("url"), title=title, text=text)
    try:
        raw_article = RawArticle(
            article_id=article_id, source_id=source_id, source_kind="rss", url=obj.get("url") or "",
            title=title, text=text, published_at=published, fetched_at=max(fetched, published),
            lang_hint=obj.get("lang"), edited_at=times["edited_at"],
        )
    except RecordError as exc:
        return Item(seq, lineno, error=str(exc))
    return Item(seq, lineno, article=raw_article, ignored=tuple(sorted(set(obj) - set(INPUT_FIELDS))))


def _feed_items(data: bytes, now: datetime, name: str) -> list[Item]:
    from newsradar.feeds import FeedError, parse_feed

    try:
        parsed = parse_feed(data, {}, source_id=DEFAULT_SOURCE, fetched_at=now)
    except FeedError as exc:
        raise ConfigError(name, "", f"not a readable RSS/Atom feed: {exc}") from None
    return [Item(i, i + 1, article=r) for i, r in enumerate(parsed.records)]


def output_object(tagged: TaggedArticle, explain: bool = False) -> dict:
    def topic(t) -> dict:
        if not explain:
            return {"id": t.id, "score": t.score}
        return {"id": t.id, "score": t.score,
                "evidence": [{"text": e.text, "start": e.start, "end": e.end} for e in t.evidence]}

    return {
        "id": tagged.article.article_id,
        "url": tagged.article.url,
        "title": tagged.article.title,
        "lang": tagged.lang,
        "topics": [topic(t) for t in tagged.topics],
        "mentions": [_mention(m) for m in tagged.mentions],
        "story_id": tagged.story_id,
        "duplicate_of": tagged.duplicate_of,
    }


def run_items(items: list[Item], source: WatchlistSource, progress: TextIO | None = None):
    """The readable items through build(); returns their outputs, by item seq."""
    good = [it for it in items if it.article is not None]
    payloads = [(it.article.encode(), parse_time(it.article.published_at).timestamp()) for it in good]
    result = run_with_progress(payloads, source, progress)
    tagged = {good[i].seq: t for i, t in result.tagged.items()}
    dead = {good[i].seq: d for i, d in result.dead.items()}
    return tagged, dead, result.alerts


def run_with_progress(payloads, source: WatchlistSource, progress: TextIO | None, label: str = ""):
    """:func:`pipelines.run.run_bounded`, with the time it takes shown on ``progress``.

    The batch is one Beam run that reports nothing until it ends, so what is shown is the
    elapsed time, never a count or an ETA (see newsradar.progress)."""
    from pipelines.run import run_bounded

    what = f"pipeline over {len(payloads):,} articles{label} (one batch run)"
    if progress is None:
        return run_bounded(payloads, source)
    with Ticker(Progress(what, stream=progress, every=PROGRESS_EVERY), interval=min(1.0, max(PROGRESS_EVERY, 0.05))):
        return run_bounded(payloads, source)


def output_lines(items: list[Item], tagged: dict[int, TaggedArticle],
                 dead: dict[int, DeadLetter], explain: bool = False) -> list[tuple[Item, dict, str | None]]:
    """(item, JSON object, error or None) per item, in input order. An item Dedupe dropped
    as a repeat gets the output of its article id's version in force: the newest tagged one,
    else (every version failed) the newest failure."""
    lines = []
    in_force: dict[str, tuple[int, dict]] = {}
    failed: dict[str, tuple[int, str]] = {}
    for item in items:
        if item.error is not None:
            lines.append((item, {"line": item.line, "error": item.error}, item.error))
            continue
        article_id = item.article.article_id
        if item.seq in tagged:
            obj = output_object(tagged[item.seq], explain)
            in_force[article_id] = (item.line, obj)
            lines.append((item, obj, None))
        elif item.seq in dead:
            error = f"{dead[item.seq].step}: {dead[item.seq].error}"
            failed[article_id] = (item.line, error)
            lines.append((item, {"line": item.line, "error": error}, error))
        elif article_id in in_force:
            line, obj = in_force[article_id]
            lines.append((item, {**obj, "repeat_of_line": line}, None))
        elif article_id in failed:
            line, error = failed[article_id]
            error = f"repeat of line {line}, which failed: {error}"
            lines.append((item, {"line": item.line, "error": error}, error))
        else:
            raise RuntimeError(f"line {item.line}: the pipeline returned neither an article nor a dead letter")
    return lines


def main(watchlist_file: str, input_file: str | None, alerts_file: str | None,
         out: TextIO | None = None, err: TextIO | None = None, now: datetime | None = None,
         explain: bool = False) -> int:
    """The command: returns the exit code (0 ok, 2 some input could not be read)."""
    out = out or sys.stdout
    err = err or sys.stderr
    quiet_libraries()
    source = WatchlistSource.fixed(_load(watchlist_file))
    # Before the work: a run must not end in "cannot write" after its minutes of tagging.
    alerts_out = open_output(alerts_file, "--alerts", not_the=[p for p in (input_file, watchlist_file) if p])
    try:
        name = input_file or "<stdin>"
        items = read_items(_read_input(input_file), now or datetime.now(UTC), name, progress=err)
        return _tag(items, source, name, out, err, alerts_out, explain)
    finally:
        if alerts_out is not None:
            alerts_out.close()


def _read_input(input_file: str | None) -> bytes:
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
    return data


def _tag(items: list[Item], source: WatchlistSource, name: str, out: TextIO, err: TextIO,
         alerts_out: TextIO | None, explain: bool = False) -> int:
    ignored = sorted({field for item in items for field in item.ignored})
    if ignored:
        lines = sum(1 for item in items if item.ignored)
        err.write(f"newsradar: note: {name}: fields ignored (not input fields of tag) on {lines} lines: "
                  f"{', '.join(ignored)}\n")
    tagged, dead, alerts = run_items(items, source, progress=err)
    bad = 0
    for item, obj, error in output_lines(items, tagged, dead, explain):
        if error is not None:
            bad += 1
            err.write(f"newsradar: {name}:{item.line}: {error}\n")
        out.write(json.dumps(obj, ensure_ascii=False) + "\n")
    out.flush()
    if alerts_out is not None:
        try:
            for alert in alerts:
                alerts_out.write(alert.encode().decode("utf-8") + "\n")
            alerts_out.flush()
        except OSError as exc:  # a full disk, a vanished mount: the file was writable at the start
            raise ConfigError(alerts_out.name, "", f"--alerts: cannot write: {exc.strerror or exc}") from None
    if bad:
        err.write(f"newsradar: {bad} of {len(items)} input items could not be read\n")
        return 2
    return 0


def open_output(path: str | None, option: str, not_the: list[str]) -> TextIO | None:
    """Open an output file for writing now (ConfigError naming it when that cannot be done),
    refusing one that is also an input of the run (writing would destroy it)."""
    if path is None:
        return None
    for other in not_the:
        try:
            same = os.path.samefile(path, other)
        except OSError:
            same = False  # one of them does not exist yet: not the same file
        if same:
            raise ConfigError(path, "", f"{option} would overwrite {other}, an input of this run")
    try:
        return open(path, "w", encoding="utf-8")  # noqa: SIM115 -- closed by main() after the run
    except OSError as exc:
        raise ConfigError(path, "", f"{option}: cannot write: {exc.strerror or exc}") from None


def quiet_libraries() -> None:
    """Beam and pymorphy3 narrate every run at INFO; a command's stderr is for its own news."""
    if logging.getLogger().getEffectiveLevel() >= logging.INFO:
        for name in ("apache_beam", "pymorphy3"):
            logging.getLogger(name).setLevel(logging.WARNING)


def _load(path: str):
    from newsradar.config import load_watchlist

    return load_watchlist(path)


def _mention(m) -> dict:
    out = {"org_id": m.org_id, "text": m.text, "start": m.start, "end": m.end, "match": m.match}
    if m.resolved_by is not None:
        out["resolved_by"] = m.resolved_by  # match "contextual": what resolved the short name
    return out
