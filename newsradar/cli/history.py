"""Where `newsradar backtest` reads its history: files, or a time range of a Kafka topic.

This lives on the command line floor because it reads with two lower floors' readers that
must not import each other: `newsradar tag`'s (``pipelines.tag.read_items``: JSONL and
RSS/Atom) and the Telegram export connector's (``connectors.telegram.export``).

Guarantees:

* Files: JSONL (``.gz`` too, recognized by its magic bytes), RSS/Atom, and Telegram Desktop
  single-channel exports (``result.json``). Every input item becomes one news.raw record
  stamped with its ``published_at``, exactly as `newsradar tag` stamps it. A line or message
  that cannot be read is kept in ``History.malformed`` with where it is and why.
* A topic: the records whose Kafka timestamp is in ``[since, until)``, found with
  ``offsets_for_times`` per partition, read up to the offsets of ``until`` (or the ends seen
  at the start), stamped with their Kafka timestamp as the stream stamps them, and put in
  timestamp order (partition and offset break ties) on disk, not in memory
  (:class:`SortedRecords`).
* :class:`HistoryError` (exit 2) for an input that cannot be used at all: a file that cannot
  be read, a topic that does not exist, or a ``since`` older than the topic's earliest record
  (the records asked for are gone, or were never written).
"""

from __future__ import annotations

import gzip
import io
import time
import zlib
from datetime import UTC, datetime
from typing import TextIO

from newsradar.progress import Progress
from newsradar.records import format_time, parse_time
from pipelines import tag
from pipelines.backtest import History, HistoryRecord

GZIP_MAGIC = b"\x1f\x8b"
EXPORT_SOURCE = "telegram-export"


class HistoryError(Exception):
    """The history cannot be read; ``str()`` is the one line the command prints (exit 2)."""


def read_files(paths: list[str], now: datetime, progress: TextIO | None = None) -> History:
    """A History whose records are read from ``paths`` on each pass (files are checked now:
    one that cannot be read is a HistoryError before any work)."""
    history = History(description=", ".join(paths))
    for path in paths:
        if not _is_export(path):
            _open_data(path).close()
    history.records = FileRecords(paths, now, history, progress)
    return history


class FileRecords:
    """The records of some files, read again on every pass (so memory does not grow with
    the files); malformed items go to ``history.malformed`` on the first pass only."""

    def __init__(self, paths: list[str], now: datetime, history: History, progress: TextIO | None):
        self._paths, self._now, self._history, self._progress = paths, now, history, progress
        self._count: int | None = None

    def __len__(self) -> int:
        if self._count is None:
            for _ in self:
                pass
        return self._count

    def size_hint(self) -> int | None:
        """How many records, if known without reading them (after a pass; or the lines of
        JSONL files, a bound): for the progress total and the choice of workers."""
        if self._count is not None:
            return self._count
        if any(_is_export(p) for p in self._paths):
            return None
        counts = [tag.count_lines(p) for p in self._paths]
        return None if None in counts else sum(counts)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __iter__(self):
        first = self._count is None
        malformed = self._history.malformed if first else []
        count = 0
        for path in self._paths:
            if _is_export(path):
                records = _export_records(path, self._now, malformed, self._progress if first else None)
            else:
                records = _file_records(path, self._now, malformed)
            for record in records:
                count += 1
                yield record
        self._count = count


def _file_records(path: str, now: datetime, malformed: list):
    with _open_data(path) as fh:
        for item in tag.stream_items(fh, now, path):
            where = f"{path}:{item.line}"
            if item.article is None:
                malformed.append((where, item.error))
                continue
            at = parse_time(item.article.published_at).timestamp()
            yield HistoryRecord(item.article, at, where)


def _open_data(path: str):
    """The file's bytes as a buffered stream, gunzipped when it starts with gzip's magic."""
    try:
        fh = open(path, "rb")  # noqa: SIM115 -- returned to the caller, who closes it
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if fh.peek(2)[:2] != GZIP_MAGIC:
        return fh
    gz = gzip.GzipFile(fileobj=fh)
    try:
        gz.peek(1)
    except (OSError, EOFError, zlib.error) as exc:
        fh.close()
        raise HistoryError(f"{path}: not a readable gzip file: {exc}") from None
    return _Gunzipped(gz, fh)


class _Gunzipped(io.BufferedReader):
    """A gzip stream that reports a broken file as a HistoryError, and closes its file."""

    def __init__(self, gz: gzip.GzipFile, fh):
        super().__init__(gz)
        self._fh = fh
        self._name = fh.name

    def _checked(self, fn, *args):
        try:
            return fn(*args)
        except (OSError, EOFError, zlib.error) as exc:
            raise HistoryError(f"{self._name}: not a readable gzip file: {exc}") from None

    def readline(self, size=-1):
        return self._checked(super().readline, size)

    def read(self, size=-1):
        return self._checked(super().read, size)

    def peek(self, size=0):
        return self._checked(super().peek, size)

    def close(self):
        super().close()
        self._fh.close()


def _is_export(path: str) -> bool:
    """A Telegram Desktop export: ``*.json`` (JSONL files are ``.jsonl``), or a file whose first
    line is a lone ``{`` (an indented JSON document, never a JSONL line)."""
    if path.endswith(".json"):
        return True
    try:
        with open(path, "rb") as fh:
            head = fh.read(64)
    except OSError:
        return False  # _read_bytes names the problem
    return head.lstrip(b"\xef\xbb\xbf").split(b"\n", 1)[0].strip() == b"{"


def _export_records(path: str, now: datetime, malformed: list, progress: TextIO | None):
    import ijson

    from connectors.telegram.export import ExportError, ExportStream, map_message
    from connectors.telegram.mapping import channel_key

    stream = ExportStream(path)
    shown = Progress(f"reading {path}", unit="messages", stream=progress,
                     every=tag.PROGRESS_EVERY if progress is not None else float("inf"), tty=None if progress is not None else False)
    try:
        for msg in stream.messages():
            shown.advance()
            chat_id = stream.header.get("id")
            if not isinstance(chat_id, int):
                raise HistoryError(f"{path}: the export names no chat id before its messages")
            item = map_message(msg, channel=channel_key(None, chat_id), source_id=EXPORT_SOURCE,
                               fetched_at=now, tz=UTC)
            where = f"{path}: message {item.message_id}" if item.message_id is not None else f"{path}: a message"
            if item.record is not None:
                yield HistoryRecord(item.record, parse_time(item.record.published_at).timestamp(), where)
            elif item.skip == "malformed":
                malformed.append((where, item.detail or "malformed"))
            # service messages and media without text are not articles: not counted as malformed
    except OSError as exc:
        raise HistoryError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except (ijson.JSONError, ExportError, UnicodeDecodeError) as exc:
        raise HistoryError(f"{path}: not a readable Telegram Desktop export: {exc}") from None
    finally:
        shown.done()
        stream.close()


# ---------------------------------------------------------------------------
# a topic, by time


def parse_when(text: str, now: datetime, option: str) -> datetime:
    """``30d`` (that long before now) or an ISO 8601 time with a zone."""
    from newsradar.config import parse_duration

    try:
        return datetime.fromtimestamp(now.timestamp() - parse_duration(text), UTC)
    except ValueError:
        pass
    try:
        return parse_time(text)
    except ValueError:
        raise HistoryError(f"{option}: expected a duration before now (30d, 12h) or an ISO 8601 time with a zone, "
                           f"got {text!r}") from None


def read_topic(bootstrap_servers: str, topic: str, since: datetime, until: datetime,
               progress: TextIO | None = None, timeout: float = 120.0) -> History:
    from kafka import TopicPartition

    from newsradar.kafka import make_consumer

    since_ms, until_ms = int(since.timestamp() * 1000), int(until.timestamp() * 1000)
    if until_ms <= since_ms:
        raise HistoryError(f"--until ({format_time(until)}) is not after --since ({format_time(since)})")
    history = History(description=f"{topic} at {bootstrap_servers} from {format_time(since)} to {format_time(until)}")
    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False,
                             client_id="newsradar-backtest", max_partition_fetch_bytes=8 * 1024 * 1024,
                             fetch_max_bytes=16 * 1024 * 1024)
    got: SortedRecords | None = None
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            raise HistoryError(f"topic {topic} does not exist at {bootstrap_servers}")
        consumer.assign(parts)
        firsts, ends = consumer.beginning_offsets(parts), consumer.end_offsets(parts)
        _check_reach(consumer, parts, firsts, ends, since_ms, topic)
        starts = _offsets_at(consumer, parts, since_ms, ends)
        stops = _offsets_at(consumer, parts, until_ms, ends)
        for tp in parts:
            consumer.seek(tp, starts[tp])
        total = sum(max(stops[tp] - starts[tp], 0) for tp in parts)
        got = SortedRecords(topic)  # closed below if the read fails
        with Progress(f"reading {topic}", total=total, unit="records", stream=progress,
                      every=tag.PROGRESS_EVERY if progress is not None else float("inf"),
                      tty=None if progress is not None else False) as shown:
            deadline = time.monotonic() + timeout
            while any(consumer.position(tp) < stops[tp] for tp in parts):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {topic} up to {format_time(until)} within {timeout:.0f}s")
                for tp, records in consumer.poll(timeout_ms=500).items():
                    deadline = time.monotonic() + timeout
                    for rec in records:
                        if rec.offset >= stops[tp]:
                            continue
                        shown.advance()
                        if since_ms <= rec.timestamp < until_ms and rec.value is not None:
                            got.add(rec.timestamp, rec.partition, rec.offset, rec.value)
                        elif rec.value is None:
                            history.malformed.append((f"{topic}/{rec.partition}:{rec.offset}", "a record without a value"))
    except BaseException:
        if got is not None:
            got.close()
        raise
    finally:
        consumer.close()
    history.records = got.done()
    return history


class SortedRecords:
    """A topic's records put in timestamp order (partition and offset break ties) without
    holding them: each is written to a temporary SQLite file as it is read (removed by
    :meth:`close`, else when the process exits), and every pass reads them back
    in that order through an index, one at a time. Memory stays flat whatever the range (a
    month of news.raw is gigabytes); disk holds the range once."""

    def __init__(self, topic: str):
        import sqlite3
        import tempfile

        self._topic = topic
        self._dir = tempfile.TemporaryDirectory(prefix="newsradar-backtest-")
        self._db = sqlite3.connect(f"{self._dir.name}/history.sqlite")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE records (ts INTEGER, part INTEGER, off INTEGER, value BLOB)")
        self._count = 0
        self._pending: list[tuple] = []

    def add(self, ts_ms: int, partition: int, offset: int, value: bytes) -> None:
        self._pending.append((ts_ms, partition, offset, value))
        self._count += 1
        if len(self._pending) >= 1000:
            self._flush()

    def _flush(self) -> None:
        self._db.executemany("INSERT INTO records VALUES (?, ?, ?, ?)", self._pending)
        self._pending.clear()

    def done(self) -> SortedRecords:
        self._flush()
        self._db.execute("CREATE INDEX by_time ON records (ts, part, off)")
        self._db.commit()
        return self

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def size_hint(self) -> int:
        return self._count

    def __iter__(self):
        rows = self._db.execute("SELECT ts, part, off, value FROM records ORDER BY ts, part, off")
        for ts, partition, offset, value in rows:
            yield HistoryRecord(value, ts / 1000, f"{self._topic}/{partition}:{offset}")

    def close(self) -> None:
        self._db.close()
        self._dir.cleanup()


def _offsets_at(consumer, parts, at_ms: int, ends) -> dict:
    found = consumer.offsets_for_times({tp: at_ms for tp in parts})
    return {tp: found[tp].offset if found.get(tp) is not None else ends[tp] for tp in parts}


def _check_reach(consumer, parts, firsts, ends, since_ms: int, topic: str) -> None:
    """Refuse a ``since`` older than every partition's earliest record: what was asked for is not there."""
    earliest = None
    for tp in parts:
        if ends[tp] <= firsts[tp]:
            continue
        found = consumer.offsets_for_times({tp: 0})
        first = found.get(tp)
        if first is not None and (earliest is None or first.timestamp < earliest):
            earliest = first.timestamp
    if earliest is None:
        raise HistoryError(f"topic {topic} has no records")
    if earliest > since_ms:
        raise HistoryError(
            f"--since {format_time(_utc(since_ms))} is before the earliest record on {topic} "
            f"({format_time(_utc(earliest))}): older records are past its retention or were never written; "
            f"use --since {format_time(_utc(earliest))} or later")


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)
