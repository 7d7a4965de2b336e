"""The ``newsradar`` command line (names and exit codes are a contract: docs/design.md,
"Command line").

Exit codes: 0 success, 2 bad input or config (one line naming the file and the field),
1 other failures, 3 ``kafka status`` when no broker answers.

Each command parses options and hands off to the package that does the work; heavy
imports (Beam, spaCy, aiohttp) happen inside the command so ``--help`` stays fast.
"""

from __future__ import annotations

import functools
import logging
import sys
from pathlib import Path

import click

from newsradar import __version__, paths
from newsradar.config import ConfigError, parse_duration

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_BAD_INPUT = 2
EXIT_NOT_RUNNING = 3


def _fail(message: str, code: int) -> None:
    click.echo(f"newsradar: {message}", err=True)
    sys.exit(code)


def handles_errors(func):
    """Turn the errors every command shares into one readable line and the right exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        from newsradar.kafka import KafkaSecurityError

        from .broker import BrokerError

        try:
            return func(*args, **kwargs)
        except ConfigError as exc:
            _fail(f"config error: {exc}", EXIT_BAD_INPUT)
        except KafkaSecurityError as exc:
            _fail(f"kafka security settings: {exc}", EXIT_BAD_INPUT)
        except BrokerError as exc:
            _fail(f"kafka: {exc}", EXIT_FAILURE)

    return wrapper


OWN_LOGGERS = ("newsradar", "connectors", "transforms", "pipelines")


class _QuietLibraries(logging.Filter):
    """Our own log lines from INFO up; a library's (Beam, kafka-python, pymorphy3, ...) only from
    ``library_level`` up, so a command's output is not buried under their start-up notices."""

    def __init__(self, library_level: int):
        super().__init__()
        self.library_level = library_level

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.split(".", 1)[0] in OWN_LOGGERS or record.name == "__main__":
            return True
        return record.levelno >= self.library_level


def _setup_logging(verbose: int) -> None:
    """Quiet by default (our INFO lines, libraries' errors only); ``-v`` adds the libraries'
    warnings and notices and our DEBUG lines; ``-vv`` everything, client libraries included."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(_QuietLibraries({0: logging.ERROR, 1: logging.INFO}.get(verbose, logging.DEBUG)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO if verbose == 0 else logging.DEBUG)
    # kafka-python is chatty at INFO and DEBUG about every connection.
    logging.getLogger("kafka").setLevel(logging.WARNING if verbose < 2 else logging.DEBUG)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="newsradar")
@click.option("-v", "--verbose", count=True, help="More log output (-vv for client libraries too).")
def main(verbose: int) -> None:
    """newsradar: watch news feeds and Telegram channels for mobilization, protests and
    watched organizations, as a streaming pipeline on Kafka and Apache Beam.

    State and caches live in $NEWSRADAR_HOME (default ~/.newsradar). Kafka TLS and SASL for
    every command: the NEWSRADAR_KAFKA_* environment variables (docs/operations.md)."""
    _setup_logging(verbose)


# ---------------------------------------------------------------------------
# up


@main.command()
@click.option("--demo", is_flag=True, help="Serve bundled sample feeds and a Telegram channel locally; needs no internet.")
@click.option("--sources", "sources_file", type=click.Path(dir_okay=False, exists=True), help="sources.yaml to poll.")
@click.option("--watchlist", "watchlist_file", type=click.Path(dir_okay=False, exists=True),
              help="watchlist.yaml to apply [default: config/watchlist.yaml].")
@click.option("--bootstrap-servers", help="Use this Kafka cluster instead of starting a local broker.")
@click.option("--kafka-port", type=click.IntRange(1, 65535), default=9092, show_default=True, help="Port of the local broker.")
@click.option("--demo-speed", type=click.FloatRange(min=0.01), default=1.0, show_default=True,
              help="Demo items appear this many times faster (the demo plays about 4 minutes at 1).")
@click.option("--poll-interval", type=click.FloatRange(min=1), default=5.0, show_default=True,
              help="Seconds between polls of each demo source.")
@click.option("--connect-metrics-port", type=click.IntRange(1, 65535), default=9464, show_default=True,
              help="Connectors' /metrics port with --demo (with --sources: the file's metrics.port).")
@click.option("--pipeline-metrics-port", type=click.IntRange(1, 65535), default=9465, show_default=True,
              help="Pipeline's /metrics port.")
@click.option("--deliver-metrics-port", type=click.IntRange(1, 65535), default=9466, show_default=True,
              help="Alert delivery's (`newsradar deliver`) /metrics port.")
@click.option("--no-live", is_flag=True, help="Plain log lines instead of the live view (automatic when not a terminal).")
@handles_errors
def up(demo: bool, sources_file: str | None, watchlist_file: str | None, bootstrap_servers: str | None,
       kafka_port: int, demo_speed: float, poll_interval: float, connect_metrics_port: int,
       pipeline_metrics_port: int, deliver_metrics_port: int, no_live: bool) -> None:
    """Run the whole stack: Kafka, topics, connectors, pipeline, alert delivery, metrics.

    Prints where every part runs (ports, metrics URLs, logs, state) and shows alerts as they
    arrive. Ctrl-C or SIGTERM stops everything in reverse order. Exits 1 if a part dies."""
    from newsradar.config import load_sources, load_watchlist

    from .up import Options, run

    if not demo and not sources_file:
        raise click.UsageError("give --sources FILE, or --demo for the bundled sample sources")
    # Validate config up front: a typo is exit 2 here, not a dead child process later.
    if sources_file:
        load_sources(sources_file)
    if watchlist_file:
        from newsradar.delivery.sinks import check_sinks

        check_sinks(load_watchlist(watchlist_file), watchlist_file)
    opts = Options(
        demo=demo, sources_file=sources_file, watchlist_file=watchlist_file, bootstrap_servers=bootstrap_servers,
        kafka_port=kafka_port, demo_speed=demo_speed, poll_interval=poll_interval,
        connect_metrics_port=connect_metrics_port, pipeline_metrics_port=pipeline_metrics_port,
        deliver_metrics_port=deliver_metrics_port, live=not no_live,
    )
    sys.exit(run(opts, say=click.echo))


@main.group()
def alerts() -> None:
    """Read alerts from Kafka."""


@alerts.command("tail")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True)
@click.option("-f", "--follow", is_flag=True, help="Keep printing new alerts until Ctrl-C.")
@click.option("-n", "--lines", type=click.IntRange(0), default=50, show_default=True, help="Recent alerts per partition.")
@handles_errors
def alerts_tail(bootstrap_servers: str, follow: bool, lines: int) -> None:
    """Print recent alerts from news.alerts as JSON lines."""
    from newsradar.kafka import broker_answers

    from .liveview import tail_alerts

    try:
        if not broker_answers(bootstrap_servers, timeout=10):
            _fail(f"no Kafka broker answers at {bootstrap_servers}", EXIT_FAILURE)
        tail_alerts(bootstrap_servers, follow=follow, say=click.echo, backlog=lines,
                    warn=lambda line: click.echo(line, err=True))
    except KeyboardInterrupt:
        # Ctrl-C is how -f ends; inside the loop it is a normal end (exit 0), before it 130.
        sys.exit(130)


# ---------------------------------------------------------------------------
# kafka


@main.group()
def kafka() -> None:
    """The local single-node Kafka broker (KRaft, started with java; no Docker)."""


def _broker_options(func):
    func = click.option(
        "--data-dir",
        type=click.Path(file_okay=False),
        default=None,
        help="Broker data directory [default: $NEWSRADAR_HOME/kafka].",
    )(func)
    func = click.option("--port", type=click.IntRange(1, 65535), default=9092, show_default=True, help="Client port.")(func)
    return func


def _broker(port: int, data_dir: str | None):
    from .broker import Broker

    return Broker(data_dir=Path(data_dir or paths.kafka_data_dir()).expanduser().resolve(), port=port)


@kafka.command("start")
@_broker_options
@click.option("--partitions", type=click.IntRange(1, 1024), default=2, show_default=True, help="Partitions per newsradar topic.")
@click.option("--timeout", type=float, default=90.0, show_default=True, help="Seconds to wait for the broker to answer.")
@handles_errors
def kafka_start(port: int, data_dir: str | None, partitions: int, timeout: float) -> None:
    """Start the broker (idempotent) and create the newsradar topics."""
    from newsradar.kafka import ensure_topics

    from . import broker as broker_mod

    b = _broker(port, data_dir)
    broker_mod.start(b, partitions=partitions, timeout=timeout, progress=click.echo)
    created = ensure_topics(b.bootstrap, partitions=partitions)
    if created:
        click.echo(f"kafka: created topics {', '.join(created)} ({partitions} partitions each)")
    click.echo(f"kafka: ready at {b.bootstrap}")


@kafka.command("stop")
@_broker_options
@handles_errors
def kafka_stop(port: int, data_dir: str | None) -> None:
    """Stop the broker of this data directory (controlled shutdown)."""
    from . import broker as broker_mod

    broker_mod.stop(_broker(port, data_dir), progress=click.echo)


@kafka.command("status")
@_broker_options
@handles_errors
def kafka_status(port: int, data_dir: str | None) -> None:
    """Exit 0 when a broker answers on the port, 3 when none does."""
    b = _broker(port, data_dir)
    pid = b.pid()
    if b.answers(timeout=3):
        owner = f"pid {pid}, data in {b.data_dir}" if pid else "not started from this data directory"
        click.echo(f"kafka: up at {b.bootstrap} ({owner})")
        return
    if pid:
        click.echo(f"kafka: pid {pid} is running but does not answer at {b.bootstrap}; log {b.log_path}")
    else:
        click.echo(f"kafka: not running at {b.bootstrap}")
    sys.exit(EXIT_NOT_RUNNING)


def _retention_option(_ctx, _param, values: tuple[str, ...]) -> dict[str, float]:
    """``news.tagged=45d`` -> {"news.tagged": 3888000.0}; a usage error (exit 2) otherwise."""
    from newsradar.config.loader import parse_duration
    from newsradar.kafka import COMPACTED, DEFAULT_RETENTION

    out: dict[str, float] = {}
    for value in values:
        name, sep, duration = value.partition("=")
        if not sep or name not in DEFAULT_RETENTION:
            kept = ", ".join(sorted(DEFAULT_RETENTION))
            why = " (compacted: kept by key)" if name in COMPACTED else ""
            raise click.BadParameter(f"{value!r}: want TOPIC=DURATION with TOPIC one of {kept}{why}")
        try:
            out[name] = parse_duration(duration)
        except (ValueError, TypeError) as exc:
            raise click.BadParameter(f"{value!r}: {exc}") from None
    return out


@kafka.command("topics")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True, help="Any Kafka cluster.")
@click.option("--partitions", type=click.IntRange(1, 1024), default=None,
              help="Partitions per topic created [default: 2]; an existing topic with another count is reported.")
@click.option("--replication-factor", type=click.IntRange(1, 16), default=None,
              help="Replicas per partition (default: the cluster's default.replication.factor); "
                   "an existing topic with another factor is reported.")
@click.option("--min-insync-replicas", type=click.IntRange(1, 16), default=None,
              help="min.insync.replicas of the topics (default: the cluster's).")
@click.option("--retention", "retention", multiple=True, metavar="TOPIC=DURATION", callback=_retention_option,
              help="retention.ms of a topic created, e.g. news.tagged=45d (repeatable; default: 30d, news.tagged 21d, news.candidates 90d; "
                   "news.novelty is compacted). A pipeline refuses news.tagged or news.alerts keeping less than its memory.")
@handles_errors
def kafka_topics(bootstrap_servers: str, partitions: int | None, replication_factor: int | None,
                 min_insync_replicas: int | None, retention: dict[str, float]) -> None:
    """Create the newsradar topics on a cluster (idempotent; retention and compression: docs/pipeline.md).

    An existing topic is never changed: when it has another partition count or replication
    factor than the one asked for, that is said and the exit code is 1."""
    from newsradar.kafka import DEFAULT_RETENTION, TopicPolicy, broker_answers, ensure_topics, layout_mismatches
    from newsradar.records import ALL_TOPICS

    if not broker_answers(bootstrap_servers, timeout=10):
        _fail(f"no Kafka broker answers at {bootstrap_servers}", EXIT_FAILURE)
    keep = {**DEFAULT_RETENTION, **retention}
    policy = TopicPolicy(replication_factor=replication_factor, min_insync_replicas=min_insync_replicas,
                         retention_seconds=keep)
    if partitions is not None:
        policy = TopicPolicy(partitions=partitions, replication_factor=replication_factor,
                             min_insync_replicas=min_insync_replicas, retention_seconds=keep)
    created = ensure_topics(bootstrap_servers, policy=policy)
    existing = [t for t in ALL_TOPICS if t not in created]
    mismatched = layout_mismatches(bootstrap_servers, existing, partitions, replication_factor)
    for topic in ALL_TOPICS:
        if topic in mismatched:
            click.echo(f"{topic}: exists with {mismatched[topic]} (an existing topic is not changed)")
        else:
            click.echo(f"{topic}: {'created' if topic in created else 'exists'}")
    if mismatched:
        _fail(f"{len(mismatched)} existing topics do not have the layout asked for; change them with "
              "Kafka's own tools (kafka-topics.sh --alter raises partitions; replication needs a reassignment)",
              EXIT_FAILURE)


# ---------------------------------------------------------------------------
# connect


@main.command()
@click.option("--sources", "sources_file", required=True, type=click.Path(dir_okay=False), help="sources.yaml.")
@click.option("--state-dir", type=click.Path(file_okay=False), default=None, help="Connector state [default: $NEWSRADAR_HOME/state].")
@click.option("--once", is_flag=True, help="Poll every due source one time, then exit.")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True)
@click.option("--allow-private-networks", is_flag=True, help="Allow fetching from loopback/private addresses (tests, demo).")
@click.option("--shard", default="0/1", show_default=True,
              help="Poll only shard I of N (I from 0 to N-1) of the sources; state in <state dir>/shard-I.")
@click.option("--reload-every", default="30s", show_default=True,
              help="Re-read the sources file this often while running when it changed (0s: never).")
@handles_errors
def connect(sources_file: str, state_dir: str | None, once: bool, bootstrap_servers: str, allow_private_networks: bool,
            shard: str, reload_every: str) -> None:
    """Poll RSS/Atom feeds and Telegram channels into news.raw."""
    from connectors.app import run
    from connectors.shards import Shard

    try:
        which = Shard.parse(shard)
    except ValueError as exc:
        _fail(str(exc), EXIT_BAD_INPUT)
    try:
        every = parse_duration(reload_every)
    except ValueError as exc:
        _fail(f"--reload-every: {exc}", EXIT_BAD_INPUT)
    sys.exit(run(sources_file, state_dir=state_dir, once=once, bootstrap_servers=bootstrap_servers,
                 allow_private_networks=allow_private_networks, shard=which, reload_every=every))


# ---------------------------------------------------------------------------
# pipeline, tag


@main.command(context_settings={"ignore_unknown_options": True, "allow_extra_args": True})
@click.option("--watchlist", "watchlist_file", required=True, type=click.Path(dir_okay=False))
@click.option("--runner", type=click.Choice(["PrismRunner", "PortableRunner", "FlinkRunner", "DirectRunner"]), default="PrismRunner", show_default=True)
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True)
@click.pass_context
@handles_errors
def pipeline(ctx: click.Context, watchlist_file: str, runner: str, bootstrap_servers: str) -> None:
    """Run the streaming pipeline (news.raw -> news.tagged, news.alerts, news.dlq).

    At start, before the job is submitted, what dedupe and the novelty rules knew is rebuilt
    from news.tagged and news.alerts (progress on stderr), so a restart forgets no story and
    raises no alert twice. Options it does not know are passed to Beam as pipeline options (--metrics_port,
    --group_id, --repeat_window, ...: see docs/pipeline.md). PortableRunner submits to a job
    service you run (--job_endpoint HOST:PORT), typically with a Beam worker pool
    (--environment_type EXTERNAL --environment_config HOST:PORT): see docs/pipeline.md."""
    from pipelines.run import BadOptions, PipelineError, run_streaming

    try:
        code = run_streaming(watchlist_file, runner, bootstrap_servers, list(ctx.args), echo=click.echo)
    except BadOptions as exc:
        _fail(f"pipeline: {exc}", EXIT_BAD_INPUT)
    except PipelineError as exc:
        _fail(f"pipeline: {exc}", EXIT_FAILURE)
    sys.exit(code)


@main.command()
@click.option("--watchlist", "watchlist_file", required=True, type=click.Path(dir_okay=False))
@click.option("--alerts", "alerts_file", type=click.Path(dir_okay=False), help="Also write the alerts raised to this file (JSONL); created or emptied before the work starts.")
@click.option("--explain", is_flag=True, help="Give each topic its evidence: the matched terms, with offsets.")
@click.argument("input_file", required=False, type=click.Path(dir_okay=False))
@handles_errors
def tag(watchlist_file: str, alerts_file: str | None, explain: bool, input_file: str | None) -> None:
    """Tag a bounded input (JSONL, or an RSS/Atom file; stdin if omitted) to stdout.

    JSONL fields: text (required), title, id, url, lang, published_at, edited_at, source_id
    (docs/tagging.md); other fields are ignored, and named once on stderr. Progress (lines
    read, then the batch run's elapsed time) goes to stderr."""
    from pipelines.tag import main as tag_main

    code = tag_main(watchlist_file, input_file, alerts_file, explain=explain)
    if code:
        sys.exit(code)


@main.command()
@click.option("--watchlist", "watchlist_file", required=True, type=click.Path(dir_okay=False),
              help="The watchlist to try (NEW.yaml).")
@click.option("--against", "against_file", type=click.Path(dir_okay=False),
              help="The watchlist in use (CURRENT.yaml): also list the alerts NEW adds and drops.")
@click.option("--input", "input_files", multiple=True, type=click.Path(dir_okay=False),
              help="History from a file: JSONL (.gz too), RSS/Atom, or a Telegram Desktop export (result.json). Repeatable.")
@click.option("--topic", help="History from this Kafka topic (e.g. news.raw), by record timestamp; needs --since.")
@click.option("--since", help="With --topic: from this long ago (30d, 12h) or this ISO 8601 time.")
@click.option("--until", help="With --topic: up to this long ago or this ISO 8601 time [default: now].")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True)
@click.option("--topic-prefix", default="", help="Prefix of the topic names (as the pipeline's --topic_prefix).")
@click.option("--report", "report_file", type=click.Path(dir_okay=False),
              help="Also write a self-contained HTML report (charts, new and lost alerts); opens offline.")
@click.option("--feedback", "feedback_file", type=click.Path(dir_okay=False),
              help="Analysts' verdicts (`newsradar feedback`): precision per organization alias and topic term.")
@handles_errors
def backtest(watchlist_file: str, against_file: str | None, input_files: tuple[str, ...], topic: str | None,
             since: str | None, until: str | None, bootstrap_servers: str, topic_prefix: str,
             report_file: str | None, feedback_file: str | None) -> None:
    """What a watchlist would have raised over past news, notifying nobody.

    Runs the pipeline's steps (as `tag` does) over files or a time range of a topic, and prints
    mentions and alerts per day, organization and topic; with --against, the alerts the new
    version adds and drops, each with its snippet and why-sentence (docs/backtest.md).
    Progress goes to stderr. Exit 2: a bad watchlist, an unreadable file, a missing topic, or
    --since before the topic's earliest record; malformed lines are counted and reported."""
    from datetime import UTC, datetime

    from kafka.errors import KafkaError

    from pipelines.backtest import main as backtest_main

    from .history import HistoryError, parse_when, read_files, read_topic

    if bool(input_files) == bool(topic):
        raise click.UsageError("give the history as --input FILE (one or more) or as --topic NAME --since WHEN")
    if topic and not since:
        raise click.UsageError("--topic needs --since (30d, or an ISO 8601 time)")
    if input_files and (since or until):
        raise click.UsageError("--since and --until select from a --topic; a file is read whole")
    now = datetime.now(UTC)

    def read():
        if input_files:
            return read_files(list(input_files), now, progress=sys.stderr)
        from newsradar.kafka import broker_answers

        start, end = parse_when(since, now, "--since"), parse_when(until, now, "--until") if until else now
        if not broker_answers(bootstrap_servers, timeout=10):
            _fail(f"backtest: no Kafka broker answers at {bootstrap_servers}", EXIT_FAILURE)
        return read_topic(bootstrap_servers, topic_prefix + topic, start, end, progress=sys.stderr)

    try:
        code = backtest_main(read, watchlist_file, against_file, report_file, out=sys.stdout, err=sys.stderr,
                             progress=sys.stderr, input_files=input_files, feedback_file=feedback_file)
    except HistoryError as exc:
        _fail(f"backtest: {exc}", EXIT_BAD_INPUT)
    except (TimeoutError, KafkaError) as exc:
        _fail(f"backtest: {exc}", EXIT_FAILURE)
    sys.exit(code)


@main.command()
@click.option("--watchlist", "watchlist_file", required=True, type=click.Path(dir_okay=False),
              help="The watchlist in use: its names are not candidates.")
@click.option("--input", "input_files", multiple=True, type=click.Path(dir_okay=False),
              help="Articles from a file, every one whatever its date: JSONL (.gz too), RSS/Atom, or a Telegram "
                   "Desktop export (result.json); tagged first, as `tag` does. Repeatable.")
@click.option("--since", help="Or: news.tagged from Kafka, from this long ago (7d, 12h) or this ISO 8601 time to now.")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True, help="With --since.")
@click.option("--topic-prefix", default="", help="With --since: prefix of the topic names (as the pipeline's --topic_prefix).")
@click.option("--min-stories", type=click.IntRange(1), default=2, show_default=True,
              help="List a name seen with a watched topic in at least this many distinct stories.")
@click.option("--limit", type=click.IntRange(1), default=30, show_default=True, help="At most this many candidates.")
@click.option("--ner/--no-ner", default=True, show_default=True,
              help="Also take slovnet's Russian ORG entities, on Russian articles with a watched topic (slower).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per candidate and line, with its watchlist stub.")
@click.option("--examples", is_flag=True, help="Under each candidate, the snippets of up to 3 articles with a topic.")
@click.option("--stub", "stubs", is_flag=True, help="After the list, a watchlist stub per candidate, ready to paste.")
@handles_errors
def candidates(watchlist_file: str, input_files: tuple[str, ...], since: str | None, bootstrap_servers: str,
               topic_prefix: str, min_stories: int, limit: int, ner: bool, as_json: bool, examples: bool,
               stubs: bool) -> None:
    """Organizations nobody is watching yet: names that keep appearing with the watched topics.

    Names in quotes, capitalised names headed by an organization word (Council, Movement,
    совет, движение, рада, рух, ...) and Russian ORG entities (slovnet), minus every name of
    the watchlist in any form; inflected forms counted as one. One candidate per line, best
    first: by distinct stories times topic share (the share of its articles that carry a
    watched topic). docs/tagging.md, "Candidates". Exit 2: a bad watchlist, an unreadable
    file, a bad --since, or --since before news.tagged's earliest record."""
    from datetime import UTC, datetime

    from kafka.errors import KafkaError

    from newsradar.records import TOPIC_TAGGED
    from pipelines.candidates import main as candidates_main

    from .history import HistoryError, parse_when, read_files, read_topic

    if bool(input_files) == bool(since):
        _fail("candidates: give the articles as --input FILE (one or more) or as --since WHEN (news.tagged)",
              EXIT_BAD_INPUT)
    now = datetime.now(UTC)

    def read():
        if input_files:
            return read_files(list(input_files), now, progress=sys.stderr)
        from newsradar.kafka import broker_answers

        start = parse_when(since, now, "--since")
        if not broker_answers(bootstrap_servers, timeout=10):
            _fail(f"candidates: no Kafka broker answers at {bootstrap_servers}", EXIT_FAILURE)
        return read_topic(bootstrap_servers, topic_prefix + TOPIC_TAGGED, start, now, progress=sys.stderr)

    try:
        code = candidates_main(read, watchlist_file, from_topic=not input_files, out=sys.stdout, err=sys.stderr,
                               progress=sys.stderr, min_stories=min_stories, limit=limit, ner=ner,
                               as_lines="json" if as_json else "text", examples=examples, stubs=stubs)
    except HistoryError as exc:
        _fail(f"candidates: {exc}", EXIT_BAD_INPUT)
    except (TimeoutError, KafkaError) as exc:
        _fail(f"candidates: {exc}", EXIT_FAILURE)
    sys.exit(code)


# ---------------------------------------------------------------------------
# config checks


@main.group()
def watchlist() -> None:
    """Watchlist tools."""


@watchlist.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@handles_errors
def watchlist_check(file: str) -> None:
    """Validate a watchlist file and run its inline examples (exit 2 if any fails)."""
    from newsradar.config import load_watchlist
    from transforms.tagging import Tagger, check_examples

    wl = load_watchlist(file)
    failures = check_examples(Tagger(wl))
    for failure in failures:
        click.echo(f"{file}: {failure.describe()}", err=True)
    if failures:
        _fail(f"{file}: {len(failures)} of {len(wl.examples)} inline examples fail", EXIT_BAD_INPUT)
    learned = [f"{t.id}: {t.learned.model}" for t in wl.topics if t.learned is not None]
    click.echo(
        f"{file}: ok: {len(wl.organizations)} organizations, {len(wl.topics)} topics"
        f"{' (learned classifiers ' + ', '.join(learned) + ')' if learned else ''}, "
        f"{len(wl.examples)} examples, {len(wl.alerts.sinks)} alert sinks"
    )


@main.group()
def sources() -> None:
    """Sources file tools."""


@sources.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--allow-private-networks", is_flag=True,
              help="Accept loopback/private addresses, as `connect --allow-private-networks` would (tests, demo).")
@click.option("--no-resolve", is_flag=True,
              help="Judge IP literals and localhost only; do not resolve host names (every fetch still does).")
@handles_errors
def sources_check(file: str, allow_private_networks: bool, no_resolve: bool) -> None:
    """Validate a sources file, and refuse what `connect` would refuse to fetch: an internal
    address (loopback, private, link-local, in any spelling, or a name resolving to one) unless
    private networks are allowed. Exit 2 with one line per refused field."""
    from connectors.reach import check_reach, system_resolve
    from newsradar.config import load_sources

    s = load_sources(file)
    reach = check_reach(file, s, allow_private_networks=allow_private_networks,
                        resolve=None if no_resolve else system_resolve)
    for note in reach.notes:
        click.echo(f"newsradar: note: {note}", err=True)
    if reach.refused:
        for error in reach.refused:
            click.echo(f"newsradar: config error: {error}", err=True)
        sys.exit(EXIT_BAD_INPUT)
    kinds: dict[str, int] = {}
    for src in s.sources:
        key = src.kind if src.kind == "rss" else f"telegram/{src.mode}"
        kinds[key] = kinds.get(key, 0) + 1
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items())) or "no sources"
    click.echo(f"{file}: ok: {summary}")


def _register_groups() -> None:
    from .deliver import deliver
    from .dlq import dlq
    from .feedback import feedback

    main.add_command(deliver)
    main.add_command(dlq)
    main.add_command(feedback)


_register_groups()
