"""`newsradar backtest`: what a watchlist would have raised over a stretch of history.

The history (files or a time range of news.raw, read by the command line layer into a
:class:`History`) goes through the bounded batch path (:mod:`pipelines.batch`: the stream's
steps and rules, in input order) once per watchlist, read as a stream: files are read again
for each run, and only the counts and the alerts are kept. Guarantees:

* Nobody is notified: the ordered build never calls alert sinks, whatever the watchlist says.
* The same history gives the same tags and alerts as `newsradar tag` on it (the same
  function runs), so counts here and there agree.
* A record that cannot be read (a malformed line, a dead letter of the run) is counted and
  named, never skipped silently; the rest is processed.
* With a current watchlist the diff is by ``alert_id`` (deterministic from kind, subject and
  trigger), so "added" and "dropped" are the alerts only one version raises.
"""

from __future__ import annotations

from collections import Counter, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TextIO

from newsradar.config import ConfigError, load_watchlist
from newsradar.progress import Progress
from newsradar.records import Alert, RawArticle
from transforms.reload import WatchlistSource

from .tag import PROGRESS_EVERY, open_output


@dataclass(frozen=True)
class HistoryRecord:
    """One news.raw record of the history (its bytes, or the article a file's line or message
    was checked into), with its event time and where it came from."""

    payload: bytes | RawArticle
    at: float  # event time, unix seconds: published_at for files, the Kafka timestamp for a topic
    where: str  # "file:line" or "topic/partition:offset", for messages


@dataclass
class History:
    """``records``: a list, or a re-iterable reader that reads its files again on each pass
    (appending to ``malformed`` on the first pass only) and knows ``len()`` after one."""

    description: str  # "tests/x.jsonl" or "news.raw from ... to ..."
    records: Iterable[HistoryRecord] = field(default_factory=list)
    malformed: list[tuple[str, str]] = field(default_factory=list)  # (where, what is wrong)


@dataclass
class Counts:
    articles: int = 0
    mentions: int = 0
    alerts: int = 0


@dataclass(frozen=True)
class DatedAlert:
    alert: Alert
    day: str  # UTC day of the event time of the article that raised it

    @property
    def subject(self) -> str:
        return self.alert.topic_id if self.alert.kind == "topic" and self.alert.topic_id else self.alert.org_id or ""


class AlertLog:
    """The alerts of one run, in the order they were raised, on disk: a temporary SQLite
    file (removed when the log is garbage or the process exits), so a month of alerts
    under two watchlists (``--against``) is not held in memory. Iterating reads them back
    one at a time; :meth:`per_day` and :meth:`top` are answered by queries."""

    def __init__(self):
        import sqlite3
        import tempfile

        self._dir = tempfile.TemporaryDirectory(prefix="newsradar-alerts-")
        self._db = sqlite3.connect(f"{self._dir.name}/alerts.sqlite")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE alerts (seq INTEGER PRIMARY KEY, alert_id TEXT, day TEXT, subject TEXT,"
                         " urgency INTEGER, blob BLOB)")
        self._count = 0

    def append(self, dated: DatedAlert) -> None:
        import pickle

        self._db.execute("INSERT INTO alerts VALUES (?, ?, ?, ?, ?, ?)",
                         (self._count, dated.alert.alert_id, dated.day, dated.subject,
                          _urgency(dated.alert.severity), pickle.dumps(dated, protocol=5)))
        self._count += 1

    def __len__(self) -> int:
        return self._count

    def __bool__(self) -> bool:
        return self._count > 0

    def _rows(self, sql: str, args=()):
        import pickle

        for (blob,) in self._db.execute(sql, args):
            yield pickle.loads(blob)

    def __iter__(self):
        return self._rows("SELECT blob FROM alerts ORDER BY seq")

    def ids(self) -> set[str]:
        return {alert_id for (alert_id,) in self._db.execute("SELECT alert_id FROM alerts")}

    def days(self) -> set[str]:
        return {day for (day,) in self._db.execute("SELECT DISTINCT day FROM alerts")}

    def per_day(self, subject: str | None = None) -> dict[str, int]:
        """Alerts per UTC day, of one subject (organization or topic) or of all."""
        if subject is None:
            rows = self._db.execute("SELECT day, COUNT(*) FROM alerts GROUP BY day")
        else:
            rows = self._db.execute("SELECT day, COUNT(*) FROM alerts WHERE subject = ? GROUP BY day", (subject,))
        return dict(rows)

    def top(self, limit: int) -> list[DatedAlert]:
        """Most urgent first, then by day, then in the order raised."""
        return list(self._rows("SELECT blob FROM alerts ORDER BY urgency DESC, day, seq LIMIT ?", (limit,)))


def _urgency(severity: str) -> int:
    from newsradar.vocab import SEVERITIES

    return SEVERITIES.index(severity)


@dataclass
class Result:
    """What one watchlist raised over the history."""

    watchlist: str
    records: int = 0  # records of the history this run saw
    articles: int = 0
    repeats: int = 0  # dropped by Dedupe as repeats of an earlier id, as in the stream
    dead: list[tuple[str, str]] = field(default_factory=list)  # (where, "step: error")
    per_day: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    per_org: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    per_topic: dict[str, Counts] = field(default_factory=lambda: defaultdict(Counts))
    alerts: AlertLog = field(default_factory=AlertLog)

    @property
    def mentions(self) -> int:
        return sum(c.mentions for c in self.per_day.values())


def day_of(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d")


def run(history: History, source: WatchlistSource, name: str, progress: TextIO | None = None,
        label: str = "") -> Result:
    """The history through the batch path under one watchlist, summarized as it runs."""
    from .batch import run_batch, workers_for

    result = Result(watchlist=name)
    in_flight: deque[HistoryRecord] = deque()  # handed to the run, outcome not yet back

    def payloads():
        for record in history.records:
            in_flight.append(record)
            yield record.payload, record.at

    records = history.records
    total = len(records) if isinstance(records, list) else getattr(records, "size_hint", lambda: None)()
    seen = 0
    with Progress(f"backtest{label}", total=total, unit="records", stream=progress,
                  tty=None if progress is not None else False,
                  every=PROGRESS_EVERY if progress is not None else float("inf")) as shown:
        for outcome in run_batch(payloads(), source, workers=workers_for(total)):
            add(result, in_flight.popleft(), outcome)
            seen += 1
            shown.advance()
    result.records = seen
    return result


def add(result: Result, record: HistoryRecord, outcome) -> None:
    """One record's outcome (:class:`pipelines.batch.Outcome`) into the counts per day,
    organization and topic."""
    day = day_of(record.at)
    if outcome.tagged is not None:
        t = outcome.tagged
        result.articles += 1
        result.per_day[day].articles += 1
        result.per_day[day].mentions += len(t.mentions)
        for org, n in Counter(m.org_id for m in t.mentions).items():
            result.per_org[org].articles += 1
            result.per_org[org].mentions += n
        for topic in t.topics:
            result.per_topic[topic.id].articles += 1
    elif outcome.dead is not None:
        result.dead.append((record.where, f"{outcome.dead.step}: {outcome.dead.error}"))
    else:
        result.repeats += 1
    for alert in outcome.alerts:  # raised by this record's article: its day
        result.alerts.append(DatedAlert(alert, day))
        result.per_day[day].alerts += 1
        if alert.kind == "topic" and alert.topic_id:
            result.per_topic[alert.topic_id].alerts += 1
        elif alert.org_id:
            result.per_org[alert.org_id].alerts += 1


@dataclass(frozen=True)
class Diff:
    added: AlertLog  # raised by the new watchlist only
    dropped: AlertLog  # raised by the current watchlist only


def diff(new: Result, current: Result) -> Diff:
    """The alerts only one version raised, in the order raised (on disk as the runs' are;
    what is held is the two sets of alert ids)."""
    added, dropped = AlertLog(), AlertLog()
    for log, other, out in ((new.alerts, current.alerts, added), (current.alerts, new.alerts, dropped)):
        other_ids = other.ids()
        for a in log:
            if a.alert.alert_id not in other_ids:
                out.append(a)
    return Diff(added=added, dropped=dropped)


# ---------------------------------------------------------------------------
# the text report (stdout)


def _table(title: str, columns: list[str], rows: list[list]) -> list[str]:
    cells = [[title, *columns]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(cells[0]))]
    out = []
    for r in cells:
        out.append("  ".join([r[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(r[1:], widths[1:], strict=True)]))
    return out


def _change(new: int, old: int) -> str:
    return f"{new - old:+d}" if new != old else "0"


def text_report(history: History, new: Result, current: Result | None = None, changes: Diff | None = None) -> str:
    lines = [f"backtest: {new.records:,} records from {history.description}"]
    if new.per_day:
        days = sorted(new.per_day)
        lines[0] += f", {days[0]} to {days[-1]}"
    lines.append(f"{new.watchlist}: {new.articles:,} articles tagged, {new.mentions:,} mentions, "
                 f"{len(new.alerts):,} alerts; {new.repeats:,} repeats dropped by Dedupe, "
                 f"{len(new.dead):,} dead-lettered, {len(history.malformed):,} malformed")
    if current is not None:
        lines.append(f"{current.watchlist} (current): {current.mentions:,} mentions, {len(current.alerts):,} alerts")

    def alert_columns(c_new: Counts, c_old: Counts | None) -> list:
        if c_old is None:
            return [c_new.alerts]
        return [c_new.alerts, c_old.alerts, _change(c_new.alerts, c_old.alerts)]

    alert_heads = ["alerts"] if current is None else ["alerts", "current", "change"]
    for title, pick, heads in (
        ("day", lambda r: r.per_day, ["articles", "mentions"]),
        ("organization", lambda r: r.per_org, ["articles", "mentions"]),
        ("topic", lambda r: r.per_topic, ["articles"]),
    ):
        mine = pick(new)
        theirs = pick(current) if current is not None else None
        keys = sorted(set(mine) | set(theirs or ()))
        rows = []
        for key in keys:
            c = mine.get(key, Counts())
            old = theirs.get(key, Counts()) if theirs is not None else None
            own = [c.articles, c.mentions] if "mentions" in heads else [c.articles]
            rows.append([key, *own, *alert_columns(c, old)])
        lines.append("")
        lines.extend(_table(f"per {title}", heads + alert_heads, rows) if rows else [f"per {title}: none"])
    if changes is not None:
        for sign, verb, alerts in (("+", "added", changes.added), ("-", "dropped", changes.dropped)):
            lines.append("")
            lines.append(f"alerts {verb} by {new.watchlist} ({len(alerts)}):")
            for a in alerts:
                lines.extend(describe_alert(a, sign))
    return "\n".join(lines) + "\n"


def describe_alert(a: DatedAlert, sign: str = " ") -> list[str]:
    al = a.alert
    where = f" topic={al.topic_id}" if al.topic_id else ""
    head = f"  {sign} {a.day}  {al.kind}  org={al.org_id or '-'}{where}  article {al.article_id}"
    return [head, f"      snippet: {al.snippet}", f"      why: {al.why}"]


def problems_report(history: History, results: list[Result], limit: int = 20) -> list[str]:
    """stderr lines: each malformed input and dead-lettered record (up to ``limit``) and the counts."""
    out = []
    for where, what in history.malformed[:limit]:
        out.append(f"newsradar: {where}: {what}")
    if len(history.malformed) > limit:
        out.append(f"newsradar: ... and {len(history.malformed) - limit} more malformed")
    if history.malformed:
        out.append(f"newsradar: {len(history.malformed)} malformed input records counted and left out; "
                   "the rest was processed")
    for res in results:
        for where, what in res.dead[:limit]:
            out.append(f"newsradar: {res.watchlist}: {where}: dead-lettered by {what}")
        if res.dead:
            out.append(f"newsradar: {res.watchlist}: {len(res.dead)} records dead-lettered")
    return out


# ---------------------------------------------------------------------------
# the command


def feedback_report(verdicts: list, result: Result) -> list[str]:
    """The analysts' verdicts (:mod:`newsradar.feedback`): precision per organization alias and
    per topic term, and how many of this run's alerts they judged."""
    from newsradar import feedback

    judged = {v.alert_id: v.verdict for v in feedback.latest(verdicts)}
    mine = [a.alert.alert_id for a in result.alerts if a.alert.alert_id in judged]
    tp = sum(judged[a] == "tp" for a in mine)
    return [*feedback.report_lines(verdicts), "",
            f"{result.watchlist} raised {len(mine)} of the judged alerts ({tp} true, {len(mine) - tp} false positives)"]


def main(read_history: Callable[[], History], watchlist_file: str, against_file: str | None,
         report_file: str | None, out: TextIO, err: TextIO, progress: TextIO | None = None,
         input_files: tuple[str, ...] = (), feedback_file: str | None = None) -> int:
    """Check the watchlists and the report file, read the history, run, print the text report
    on ``out`` and problems on ``err``, write the HTML report. Returns the exit code: 0
    (malformed and dead-lettered records are reported, not fatal)."""
    from .backtest_report import render
    from .tag import quiet_libraries

    quiet_libraries()
    verdicts = None
    if feedback_file is not None:
        from newsradar import feedback

        try:
            verdicts = feedback.load(feedback_file)
        except feedback.FeedbackError as exc:
            raise ConfigError("--feedback", "", str(exc)) from None
    runs = [(watchlist_file, WatchlistSource.fixed(load_watchlist(watchlist_file)))]
    if against_file:
        runs.append((against_file, WatchlistSource.fixed(load_watchlist(against_file))))
    inputs = [p for p in (watchlist_file, against_file, *input_files) if p]
    report = open_output(report_file, "--report", not_the=inputs) if report_file else None
    try:
        history = read_history()
        results = []
        for i, (name, source) in enumerate(runs, start=1):
            label = f", run {i} of {len(runs)}: {name}" if len(runs) > 1 else f": {name}"
            results.append(run(history, source, name, progress=progress, label=label))
        new, current = results[0], (results[1] if len(results) > 1 else None)
        changes = diff(new, current) if current is not None else None
        out.write(text_report(history, new, current, changes))
        if verdicts is not None:
            out.write("\n" + "\n".join(feedback_report(verdicts, new)) + "\n")
        out.flush()
        for line in problems_report(history, results):
            err.write(line + "\n")
        if report is not None:
            try:
                report.write(render(history, new, current, changes, verdicts=verdicts))
                report.flush()
            except OSError as exc:
                raise ConfigError(report.name, "", f"--report: cannot write: {exc.strerror or exc}") from None
    finally:
        if report is not None:
            report.close()
    return 0
