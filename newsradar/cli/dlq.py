"""``newsradar dlq``: read, inspect and replay the dead letters on ``news.dlq``.

A dead letter is named by where it sits on news.dlq, ``<partition>:<offset>``, which never
changes. ``replay`` sends a dead letter's original back to the topic it came from — news.raw
for records, news.alerts for alerts a sink could not take (step ``alerts.<sink>``) — keyed as
the producers key them (article id, alert id), so the pipeline and its consumers drop a repeat
by id anyway.

Guarantees of ``replay``:

* Once per dead letter: each replayed id is written to a ledger (SQLite,
  ``$NEWSRADAR_HOME/dlq/replayed.sqlite``) after Kafka acknowledged the send, and a second
  replay skips it. A crash between the acknowledgement and the ledger write replays that one
  letter again, which the id-based dedupe downstream absorbs (at least once, never lost).
* Never a partial original: a letter whose original was cut to the size cap (``original_size``
  set) is not replayed; it is listed with where the whole payload is (``source``).
* Never an intermediate: a letter whose original is a step's own value rather than an input
  record (steps in :data:`NOT_REPLAYABLE`) is listed and skipped.
* ``--dry-run`` says what would be sent and changes nothing.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click

from newsradar import paths
from newsradar.kafka import base_topic
from newsradar.records import TOPIC_ALERTS, TOPIC_DLQ, TOPIC_RAW, DeadLetter, RecordError, decode_dead_letter


@dataclass(frozen=True)
class Letter:
    """A dead letter and its place on news.dlq."""

    partition: int
    offset: int
    timestamp_ms: int
    letter: DeadLetter | None  # None: the news.dlq record itself could not be read
    problem: str = ""

    @property
    def id(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def cut(self) -> bool:
        return self.letter is not None and self.letter.original_size is not None

    def target(self) -> str:
        """The base topic a replay sends the original to."""
        if self.letter.step.startswith("alerts."):
            return TOPIC_ALERTS
        if self.letter.source:
            return base_topic(self.letter.source.split("/", 1)[0])
        return TOPIC_RAW

    def original_object(self) -> dict | None:
        try:
            value = json.loads(self.letter.original_bytes())
        except (ValueError, RecursionError):
            return None
        return value if isinstance(value, dict) else None

    def source_id(self) -> str | None:
        """The article's source (``source_id`` of the original, or of an alert's article), if known."""
        obj = self.original_object() or {}
        value = obj.get("source_id")
        return value if isinstance(value, str) else None

    def key(self) -> bytes | None:
        obj = self.original_object() or {}
        for name in ("alert_id", "article_id"):
            if isinstance(obj.get(name), str):
                return obj[name].encode("utf-8")
        return None

    def size(self) -> int:
        return self.letter.original_size or len(self.letter.original_bytes())


# Steps whose dead letters keep something no topic takes, and why replay leaves them alone.
NOT_REPLAYABLE = {
    "novelty.event": "its original is a mention event, not a record; the article itself is in news.tagged",
    "write": "its original is an output record too large for its topic; a replay would be refused again",
    "alerts.decode": "its original is a news.alerts record that is not an alert; a replay would be refused again",
}


def parse_id(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"a dead letter id is <partition>:<offset> (as `dlq list` prints), got {text!r}")
    return int(partition), int(offset)


def read_letters(bootstrap_servers: str, topic: str = TOPIC_DLQ, since_ms: int | None = None,
                 timeout: float = 60.0) -> Iterator[Letter]:
    """Every dead letter from ``since_ms`` (or the beginning) to the end offsets seen at call time."""
    from kafka import TopicPartition

    from newsradar.kafka import make_consumer

    consumer = make_consumer(bootstrap_servers, enable_auto_commit=False,
                             client_id="newsradar-dlq", max_partition_fetch_bytes=8 * 1024 * 1024,
                             fetch_max_bytes=16 * 1024 * 1024)
    try:
        parts = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        if not parts:
            raise LookupError(f"topic {topic} does not exist at {bootstrap_servers}")
        consumer.assign(parts)
        ends = consumer.end_offsets(parts)
        if since_ms is None:
            consumer.seek_to_beginning(*parts)
        else:
            found = consumer.offsets_for_times({tp: since_ms for tp in parts})
            for tp in parts:
                consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        deadline = time.monotonic() + timeout
        while any(consumer.position(tp) < ends[tp] for tp in parts):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {topic} to its end within {timeout:.0f}s")
            for tp, records in consumer.poll(timeout_ms=200).items():
                for rec in records:
                    if rec.offset >= ends[tp]:
                        continue
                    yield _letter(rec)
    finally:
        consumer.close()


def _letter(rec) -> Letter:
    try:
        letter = decode_dead_letter(rec.value)
    except RecordError as exc:
        return Letter(rec.partition, rec.offset, rec.timestamp, None, problem=f"not a dead letter: {exc}")
    return Letter(rec.partition, rec.offset, rec.timestamp, letter)


def matches(item: Letter, step: str | None, source: str | None) -> bool:
    if item.letter is None:
        return step is None and source is None
    if step is not None and item.letter.step != step:
        return False
    if source is not None and source not in (item.source_id(), item.letter.source):
        return False
    return True


def list_line(item: Letter) -> str:
    if item.letter is None:
        return f"{item.id}\t-\t-\t{item.problem}"
    error = item.letter.error.splitlines()[0] if item.letter.error else ""
    if len(error) > 100:
        error = error[:99] + "…"
    where = item.source_id() or item.letter.source or "-"
    cut = " (cut)" if item.cut else ""
    return f"{item.id}\t{item.letter.at}\t{item.letter.step}\t{error}\t{where}\t{item.size()} bytes{cut}"


def show_object(item: Letter) -> dict:
    """The whole dead letter, with the original decoded where it is JSON or text."""
    if item.letter is None:
        return {"id": item.id, "problem": item.problem}
    out = {"id": item.id, **item.letter.to_dict()}
    original = item.original_object()
    if original is not None:
        out["original"] = original
    elif item.letter.encoding == "base64":
        out["original_note"] = "binary payload, shown base64-encoded"
    out["replay_to"] = item.target()
    return out


class Ledger:
    """Which dead letters were replayed (by news.dlq topic and id), kept across runs."""

    def __init__(self, path: Path | None = None):
        self.path = path or paths.home() / "dlq" / "replayed.sqlite"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(self.path)
        self._db.execute("CREATE TABLE IF NOT EXISTS replayed (dlq_topic TEXT, id TEXT, target TEXT, at REAL, "
                         "PRIMARY KEY (dlq_topic, id))")
        self._db.commit()

    def done(self, dlq_topic: str, letter_id: str) -> bool:
        row = self._db.execute("SELECT 1 FROM replayed WHERE dlq_topic = ? AND id = ?", (dlq_topic, letter_id))
        return row.fetchone() is not None

    def record(self, dlq_topic: str, letter_id: str, target: str) -> None:
        self._db.execute("INSERT OR REPLACE INTO replayed VALUES (?, ?, ?, ?)", (dlq_topic, letter_id, target, time.time()))
        self._db.commit()

    def close(self) -> None:
        self._db.close()


@dataclass
class ReplayResult:
    sent: int = 0
    already: int = 0
    cut: int = 0
    unreadable: int = 0
    not_replayable: int = 0


def replay(bootstrap_servers: str, items: list[Letter], prefix: str, ledger: Ledger, dry_run: bool,
           echo: Callable[[str], None]) -> ReplayResult:
    """Send each item's original back to ``prefix`` + its topic, once (see the module docstring)."""
    from newsradar.kafka import make_producer

    result = ReplayResult()
    dlq_topic = prefix + TOPIC_DLQ
    producer = None if dry_run else make_producer(bootstrap_servers, client_id="newsradar-dlq-replay")
    try:
        for item in items:
            if item.letter is None:
                result.unreadable += 1
                echo(f"{item.id}: skipped, {item.problem}")
                continue
            if ledger.done(dlq_topic, item.id):
                result.already += 1
                continue
            if item.letter.step in NOT_REPLAYABLE:
                result.not_replayable += 1
                echo(f"{item.id}: skipped, step {item.letter.step}: {NOT_REPLAYABLE[item.letter.step]}")
                continue
            if item.cut:
                result.cut += 1
                echo(f"{item.id}: skipped, its original was cut at {len(item.letter.original_bytes())} of "
                     f"{item.letter.original_size} bytes; the whole payload is at {item.letter.source or 'its source'}")
                continue
            target = prefix + item.target()
            if dry_run:
                echo(f"{item.id}: would send {item.size()} bytes to {target}")
                result.sent += 1
                continue
            producer.send(target, key=item.key(), value=item.letter.original_bytes()).get(timeout=60)
            ledger.record(dlq_topic, item.id, target)
            result.sent += 1
            echo(f"{item.id}: sent to {target}")
    finally:
        if producer is not None:
            producer.close(10)
    return result


# ---------------------------------------------------------------------------
# the command group (registered in newsradar.cli.commands)

def _reports_errors(func):
    """A missing topic, an unreachable broker or a timeout is one line and exit 1, not a traceback."""
    import functools

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from kafka.errors import KafkaError

        from newsradar.kafka import broker_answers

        servers = kwargs.get("bootstrap_servers")
        if servers and not broker_answers(servers, timeout=5):
            click.echo(f"newsradar: dlq: no Kafka broker answers at {servers}", err=True)
            raise SystemExit(1)
        try:
            return func(*args, **kwargs)
        except (LookupError, TimeoutError, KafkaError, sqlite3.Error) as exc:
            click.echo(f"newsradar: dlq: {exc}", err=True)
            raise SystemExit(1) from None

    return wrapper


def _since_ms(since: str | None) -> int | None:
    if since is None:
        return None
    from newsradar.config import parse_duration

    try:
        seconds = parse_duration(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from None
    return int((time.time() - seconds) * 1000)


def _filters(func):
    func = click.option("--source", help="Only dead letters of this source id (or news.raw position).")(func)
    func = click.option("--step", help="Only dead letters of this step (parse, normalize, alerts.webhook, ...).")(func)
    func = click.option("--since", help="Only dead letters written in this last period (30m, 1d, ...).")(func)
    return _connection(func)


def _connection(func):
    func = click.option("--topic-prefix", default="", help="Prefix of the topic names (as the pipeline's).")(func)
    func = click.option("--bootstrap-servers", default="localhost:9092", show_default=True)(func)
    return func


def _select(bootstrap_servers, topic_prefix, since, step, source) -> list[Letter]:
    letters = read_letters(bootstrap_servers, topic_prefix + TOPIC_DLQ, since_ms=_since_ms(since))
    return [item for item in letters if matches(item, step, source)]


@click.group("dlq")
def dlq() -> None:
    """Read, inspect and replay dead letters (news.dlq)."""


@dlq.command("list")
@_filters
@_reports_errors
def dlq_list(bootstrap_servers, topic_prefix, since, step, source) -> None:
    """One line per dead letter: id, time, step, error, source, size."""
    items = _select(bootstrap_servers, topic_prefix, since, step, source)
    for item in items:
        click.echo(list_line(item))
    click.echo(f"{len(items)} dead letter(s)", err=True)


@dlq.command("show")
@click.argument("letter_id")
@_connection
@_reports_errors
def dlq_show(letter_id, bootstrap_servers, topic_prefix) -> None:
    """The whole dead letter LETTER_ID (<partition>:<offset>, as `dlq list` prints)."""
    try:
        partition, offset = parse_id(letter_id)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="LETTER_ID") from None
    for item in read_letters(bootstrap_servers, topic_prefix + TOPIC_DLQ):
        if (item.partition, item.offset) == (partition, offset):
            click.echo(json.dumps(show_object(item), ensure_ascii=False, indent=2))
            return
    click.echo(f"newsradar: no dead letter {letter_id} on {topic_prefix + TOPIC_DLQ}", err=True)
    raise SystemExit(2)


@dlq.command("replay")
@_filters
@click.option("--dry-run", is_flag=True, help="Say what would be sent; send and remember nothing.")
@_reports_errors
def dlq_replay(bootstrap_servers, topic_prefix, since, step, source, dry_run) -> None:
    """Send the originals of the selected dead letters back where they came from, once each."""
    items = _select(bootstrap_servers, topic_prefix, since, step, source)
    ledger = Ledger()
    try:
        result = replay(bootstrap_servers, items, topic_prefix, ledger, dry_run, click.echo)
    finally:
        ledger.close()
    verb = "would replay" if dry_run else "replayed"
    click.echo(f"dlq: {verb} {result.sent}; {result.already} already replayed before; "
               f"{result.cut} cut (not replayable); {result.not_replayable} of a step never replayed; "
               f"{result.unreadable} unreadable")
