"""`newsradar tag`: the pipeline over a bounded input, through :func:`pipelines.monitor.build`.

Input is JSONL (one object a line: :data:`INPUT_FIELDS`, of which only ``text`` is required;
other fields are ignored and named once on stderr) or an RSS/Atom file (read by the RSS
connector's own parse step). Each item becomes a news.raw record stamped with its
``published_at``, and the records go through the bounded batch path
(:mod:`pipelines.batch`): the streaming pipeline's steps and rules, the stateless ones on two
worker processes, Dedupe and the novelty rules in input order. The input is read as a
stream and each line written when its turn comes, so memory does not grow with the input. ``lang`` is the record's ``lang_hint``, as a feed's language is: it decides when the
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

import contextlib
import json
import logging
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import BinaryIO, TextIO

from newsradar.config import ConfigError
from newsradar.identity import rss_article_id
from newsradar.progress import Progress
from newsradar.records import RawArticle, RecordError, TaggedArticle, format_time, json_problem, parse_time
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
MAX_INPUT_BYTES = 512 * 1024 * 1024  # a feed, which is parsed whole; JSONL is read line by line
MAX_LINE_BYTES = 8 * 1024 * 1024  # a JSONL line (a news.raw record is at most 2 MiB)
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
    lines = data.split(b"\n")
    if lines and not lines[-1]:
        lines.pop()  # the newline ending the last line does not start another
    quiet = progress is None
    with Progress(f"reading {name}", total=len(lines), unit="lines", stream=progress,
                  tty=False if quiet else None, every=float("inf") if quiet else PROGRESS_EVERY) as shown:
        return list(_jsonl_items(lines, now, shown))


def _jsonl_items(lines, now: datetime, shown: Progress | None = None):
    """Items of JSONL lines (bytes, without their newline), in input order; blank lines skipped."""
    seq = 0
    for lineno, raw in enumerate(lines, start=1):
        if shown is not None:
            shown.advance()
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            yield Item(seq, lineno, error=f"line longer than {MAX_LINE_BYTES // (1024 * 1024)} MiB")
        else:
            yield _jsonl_item(seq, lineno, raw, now)
        seq += 1


def _lines_of(fh: BinaryIO):
    """The lines of a binary stream without their newline; a line over the cap is read to its
    end but kept only as far as the cap plus one byte (it becomes an error item)."""
    while True:
        line = fh.readline(MAX_LINE_BYTES + 1)
        if not line:
            return
        if len(line) > MAX_LINE_BYTES and not line.endswith(b"\n"):
            while (rest := fh.readline(1024 * 1024)) and not rest.endswith(b"\n"):
                pass
        yield line.rstrip(b"\n").rstrip(b"\r") if line.endswith(b"\n") else line


def stream_items(fh: BinaryIO, now: datetime, name: str) -> Iterator[Item]:
    """Items of a binary stream, read as they are needed: a JSONL stream line by line; an
    RSS/Atom feed (first byte ``<``) read whole, up to :data:`MAX_INPUT_BYTES`."""
    head = fh.peek(64)[:64] if hasattr(fh, "peek") else b""
    if _is_feed(head):
        data = fh.read(MAX_INPUT_BYTES + 1)
        if len(data) > MAX_INPUT_BYTES:
            raise ConfigError(name, "", f"feed larger than {MAX_INPUT_BYTES // (1024 * 1024)} MiB; split it")
        return iter(_feed_items(data, now, name))
    return _jsonl_items(_lines_of(fh), now)


def count_lines(path: str) -> int | None:
    """Lines in a file (for a progress total), or None when it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))
    except OSError:
        return None


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
        out = {"id": t.id, "score": t.score}
        if t.learned is not None:
            out["learned"] = t.learned  # its learned classifier decided it, at this probability
        if explain:
            out["evidence"] = [{"text": e.text, "start": e.start, "end": e.end} for e in t.evidence]
        return out

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


def run_items(items: Iterable[Item], source: WatchlistSource, size: int | None = None):
    """(item, its Outcome or None for an item that could not be read) in input order, through
    the batch path, as the items are read; plus the run (``BatchRun``), whose repeat memory
    says which article ids Dedupe still remembers. ``size``: how many items, if known."""
    from .batch import BatchRun, workers_for

    queue: deque[Item] = deque()  # read, not yet handed back, in input order

    def payloads():
        for item in items:
            queue.append(item)
            if item.article is not None:  # built and checked here: it goes to a worker as it is
                yield item.article, parse_time(item.article.published_at).timestamp()

    batch = BatchRun(payloads(), source, workers=workers_for(size))

    def pairs():
        for outcome in batch:
            while queue[0].article is None:
                yield queue.popleft(), None
            yield queue.popleft(), outcome
        while queue:
            yield queue.popleft(), None

    return pairs(), batch


class VersionsInForce:
    """What `tag` keeps per remembered article id for its repeats: the line and output text of
    its newest tagged version, and the line and error of its newest failure. Held in a
    private temporary SQLite database (``sqlite3.connect("")``: its pages beyond SQLite's
    small cache go to a temporary file), so a window of ~100,000 ids costs disk, not memory."""

    COMMIT_EVERY = 2000  # writes per transaction: each commit costs more than a thousand writes

    def __init__(self) -> None:
        import sqlite3

        self._db = sqlite3.connect("")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        for table in ("tagged", "failed"):
            self._db.execute(f"CREATE TABLE {table} (id TEXT PRIMARY KEY, line INTEGER, text TEXT) WITHOUT ROWID")
        self._writes = 0

    def _wrote(self) -> None:
        self._writes += 1
        if self._writes >= self.COMMIT_EVERY:
            self._db.commit()
            self._writes = 0

    def keep(self, table: str, article_id: str, line: int, text: str) -> None:
        """Remember ``text`` (the output, or the error) of ``line`` for ``article_id``."""
        self._db.execute(f"INSERT OR REPLACE INTO {table} VALUES (?, ?, ?)", (article_id, line, text))
        self._wrote()

    def get(self, table: str, article_id: str) -> tuple[int, str] | None:
        return self._db.execute(f"SELECT line, text FROM {table} WHERE id = ?", (article_id,)).fetchone()

    def forget(self, article_ids) -> None:
        for article_id in article_ids:
            for table in ("tagged", "failed"):
                self._db.execute(f"DELETE FROM {table} WHERE id = ?", (article_id,))
            self._wrote()

    def close(self) -> None:
        self._db.close()


def output_lines(pairs, remembered: Callable[[str], bool] = lambda _id: True,
                 explain: bool = False) -> Iterator[tuple[Item, str, str | None, object]]:
    """(item, its output line as JSON text, error or None, outcome) per (item, outcome), in
    input order. An item Dedupe dropped as a repeat gets the output of its article id's
    version in force: the newest tagged one, else (every version failed) the newest failure.
    What is kept for that (the line's JSON text, :class:`VersionsInForce`, on disk) is kept
    only while Dedupe remembers the id (``remembered``; forgotten ids come with each
    outcome), so it is bounded as Dedupe's state is."""
    kept = VersionsInForce()
    try:
        for item, outcome in pairs:
            if outcome is None:
                yield item, _json({"line": item.line, "error": item.error}), item.error, outcome
                continue
            if outcome.forgotten:
                kept.forget(outcome.forgotten)
            article_id = item.article.article_id
            keep = remembered(article_id)
            if outcome.tagged is not None:
                text = _json(output_object(outcome.tagged, explain))
                if keep:
                    kept.keep("tagged", article_id, item.line, text)
                yield item, text, None, outcome
            elif outcome.dead is not None:
                error = f"{outcome.dead.step}: {outcome.dead.error}"
                if keep:
                    kept.keep("failed", article_id, item.line, error)
                yield item, _json({"line": item.line, "error": error}), error, outcome
            elif (held := kept.get("tagged", article_id)) is not None:
                line, text = held
                yield item, _json({**json.loads(text), "repeat_of_line": line}), None, outcome
            elif (held := kept.get("failed", article_id)) is not None:
                line, error = held
                error = f"repeat of line {line}, which failed: {error}"
                yield item, _json({"line": item.line, "error": error}), error, outcome
            else:
                raise RuntimeError(f"line {item.line}: the pipeline returned neither an article nor a dead letter")
    finally:
        kept.close()


def _json(obj: dict) -> str:
    return json.dumps(obj, ensure_ascii=False)


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
        with _open_input(input_file) as fh:
            items = stream_items(fh, now or datetime.now(UTC), name)
            total = count_lines(input_file) if input_file else None
            return _tag(items, source, name, out, err, alerts_out, explain, total)
    finally:
        if alerts_out is not None:
            alerts_out.close()


def _open_input(input_file: str | None) -> BinaryIO:
    if not input_file:
        return contextlib.nullcontext(sys.stdin.buffer)
    try:
        return open(input_file, "rb")  # noqa: SIM115 -- closed by main()'s with
    except OSError as exc:
        raise ConfigError(input_file, "", f"cannot read: {exc.strerror or exc}") from None


def _tag(items: Iterable[Item], source: WatchlistSource, name: str, out: TextIO, err: TextIO,
         alerts_out: TextIO | None, explain: bool = False, total: int | None = None) -> int:
    ignored: dict[str, int] = {}
    ignoring = 0

    def noted(items):
        nonlocal ignoring
        for item in items:
            if item.ignored:
                ignoring += 1
                for field in item.ignored:
                    ignored[field] = ignored.get(field, 0) + 1
            yield item

    pairs, run = run_items(noted(items), source, total)
    bad = count = 0
    with Progress(f"tagging {name}", total=total, unit="lines" if total else "items", stream=err,
                  every=PROGRESS_EVERY) as shown:
        for item, text, error, outcome in output_lines(pairs, run.rules.repeats.__contains__, explain):
            count += 1
            shown.advance(item.line - shown.count if total else 1)
            if error is not None:
                bad += 1
                err.write(f"newsradar: {name}:{item.line}: {error}\n")
            out.write(text + "\n")
            if alerts_out is not None and outcome is not None and outcome.alerts:
                _write_alerts(alerts_out, outcome.alerts)
    out.flush()
    if alerts_out is not None:
        _write_alerts(alerts_out, ())
    if ignored:
        err.write(f"newsradar: note: {name}: fields ignored (not input fields of tag) on {ignoring} lines: "
                  f"{', '.join(sorted(ignored))}\n")
    if bad:
        err.write(f"newsradar: {bad} of {count} input items could not be read\n")
        return 2
    return 0


def _write_alerts(alerts_out: TextIO, alerts) -> None:
    try:
        for alert in alerts:
            alerts_out.write(alert.encode().decode("utf-8") + "\n")
        alerts_out.flush()
    except OSError as exc:  # a full disk, a vanished mount: the file was writable at the start
        raise ConfigError(alerts_out.name, "", f"--alerts: cannot write: {exc.strerror or exc}") from None


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
