"""Entry points: attach Kafka (streaming) or a bounded input (in input order) to
:func:`pipelines.monitor.build`.

``newsradar pipeline`` calls :func:`run_streaming`. On PrismRunner it runs until SIGTERM or
SIGINT, then stops cleanly: the readers stop taking records, what they read is written and
committed, and only then is the job cancelled — so a restart neither loses nor repeats
records. A hard kill loses nothing either (offsets are committed only after the outputs are
durable) but repeats what was written after the last commit. See docs/pipeline.md.

On PortableRunner (a job service of its own: Prism or Flink's job server, ``--job_endpoint``)
with workers outside this process (``--environment_type EXTERNAL``, a Beam worker pool), the
readers cannot be reached from here: a stop waits until the group's committed offsets have
caught up with the end of news.raw, then cancels. Records that arrive meanwhile are read
again after a restart (at least once), and the message says how many.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import logging
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import apache_beam as beam
import grpc
from apache_beam.options.pipeline_options import (
    DebugOptions,
    PipelineOptions,
    PortableOptions,
    PrismRunnerOptions,
    StandardOptions,
)
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.runners.runner import PipelineState
from apache_beam.transforms.window import TimestampedValue

from newsradar import paths
from newsradar.config import Watchlist
from newsradar.kafka import (
    TAGGED_MARGIN,
    GroupClaim,
    GroupClaimed,
    broker_answers,
    check_retention,
    ensure_topics,
    pipeline_topic_policy,
    topic_retention,
)
from newsradar.metrics import pipeline_metrics, serve
from newsradar.procs import die_with_parent, free_port, port_open
from newsradar.records import (
    TOPIC_ALERTS,
    TOPIC_CANDIDATES,
    TOPIC_DLQ,
    TOPIC_NOVELTY,
    TOPIC_RAW,
    TOPIC_TAGGED,
    Alert,
    DeadLetter,
    TaggedArticle,
    format_time,
)
from transforms.dedupe import DedupeSettings
from transforms.kafkaio import LOCAL_PROGRESS, CommitOffsets, LocalProgress, ReadFromKafka, WriteToKafka
from transforms.rebuild import INLINE_LIMIT, Seed, SeedBlob
from transforms.reload import WatchlistSource
from transforms.tagging import reload_counter, require_examples_pass

from . import monitor
from .options import NewsradarOptions, dedupe_settings, read_settings, topic
from .rebuild import rebuild_state

log = logging.getLogger(__name__)

STREAMING_RUNNERS = ("PrismRunner", "FlinkRunner", "PortableRunner")
# Prism (Beam 2.77) may split a running bundle of a stateful stage and then releases every key
# of the residual, including keys the primary is still processing: a second bundle of the same
# key runs at once, from the state before the first one's writes, and one of the two sets of
# writes is lost (Dedupe forgot stories, a copy got a story id of its own). Bundles that are
# not split keep Beam's one-bundle-per-key guarantee. Other runners ignore the experiment.
PRISM_EXPERIMENTS = ("prism_disable_sdf_split",)
# A pipeline killed without a clean stop holds its group's claim until its Kafka session
# expires (GroupClaim's 10 s after its last heartbeat); a restart waits that out, with a
# margin, instead of refusing.
CLAIM_WAIT_SECONDS = 15.0


def memory_seconds(watchlist: Watchlist, dedupe: DedupeSettings) -> float:
    """The longest the pipeline remembers: what news.tagged and news.alerts must keep."""
    return max(watchlist.memory_seconds(), dedupe.repeat_window_seconds, dedupe.story_window_seconds)


class PipelineError(RuntimeError):
    """The pipeline could not start or failed while running."""


class BadOptions(PipelineError):
    """A pipeline option has a value the pipeline cannot use (exit code 2)."""


def prism_binary() -> str:
    """The Prism binary built and cached by the project's own script (deploy/prism/build.sh)."""
    script = paths.DEPLOY_DIR / "prism" / "build.sh"
    env = dict(os.environ, PYTHON=sys.executable)
    result = subprocess.run([str(script)], capture_output=True, text=True, env=env, timeout=1800)
    if result.returncode != 0:
        raise PipelineError(f"{script} failed ({result.returncode}): {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


def attach_kafka(
    pipeline: beam.Pipeline,
    watchlist: Watchlist | WatchlistSource,
    bootstrap_servers: str,
    options: PipelineOptions,
    bounded: bool = False,
    progress: LocalProgress | None = None,
    seed: SeedBlob | None = None,
) -> monitor.Outputs:
    """news.raw → build() → news.tagged, news.alerts, news.dlq, news.novelty, and the offset
    commit that waits for all four writes. ``seed``: the state rebuilt at start (:mod:`pipelines.rebuild`)."""
    settings = read_settings(options, bootstrap_servers, bounded)
    read = pipeline | "ReadRaw" >> ReadFromKafka(topic(options, TOPIC_RAW), settings, progress)
    outputs = monitor.build(read.records, watchlist, dedupe=dedupe_settings(options), seed=seed)
    dlq = topic(options, TOPIC_DLQ)
    # Each tagged record says when its news.raw record arrived: the time Dedupe's windows
    # count in, which the next start's rebuild folds it at.
    tagged = outputs.tagged | "StampArrival" >> beam.ParDo(_StampArrival())
    written = [
        tagged | "WriteTagged" >> WriteToKafka(topic(options, TOPIC_TAGGED), bootstrap_servers, dlq_topic=dlq),
        outputs.alerts | "WriteAlerts" >> WriteToKafka(topic(options, TOPIC_ALERTS), bootstrap_servers, dlq_topic=dlq),
        outputs.dlq | "WriteDeadLetters" >> WriteToKafka(dlq, bootstrap_servers),
        outputs.summaries | "WriteNovelty" >> WriteToKafka(topic(options, TOPIC_NOVELTY), bootstrap_servers,
                                                          dlq_topic=dlq),
    ]
    # Not in the commit's wait: a day's ranking is written when the day ends (transforms/rank_candidates.py).
    outputs.candidates | "WriteCandidates" >> WriteToKafka(topic(options, TOPIC_CANDIDATES), bootstrap_servers,
                                                           dlq_topic=dlq)
    read.progress | "CommitOffsets" >> CommitOffsets(settings, written, progress)
    return outputs


class _StampArrival(beam.DoFn):
    """TaggedArticle → the same with ``arrived_at``: its element time (the news.raw record's
    Kafka time, which every step keeps), in milliseconds as Kafka has it."""

    def process(self, tagged: TaggedArticle, ts=beam.DoFn.TimestampParam):
        at = datetime.fromtimestamp(ts.micros // 1000 / 1000, UTC)
        yield dataclasses.replace(tagged, arrived_at=format_time(at))


class PrismServer:
    """The Prism job server, started by us in its own session.

    Beam would start Prism itself, but in our process group: a Ctrl-C in a terminal then
    kills Prism at once and the clean stop below cannot happen. Started here, Prism only
    stops when we have finished stopping the job. On Linux the kernel also stops it if this
    process dies without cleaning up (kill -9): the parent-death signal is set between fork
    and exec, which is only safe while this process has a single thread, so it is skipped
    (and Prism may outlive a killed newsradar) when started later.
    """

    def __init__(self, binary: str, log_level: str = "warn"):
        self.binary = binary
        self.log_level = log_level
        self.endpoint = ""
        self._process: subprocess.Popen | None = None

    def __enter__(self) -> PrismServer:
        port = free_port()
        single_threaded = threading.active_count() == 1
        self._process = subprocess.Popen(
            [self.binary, "--job_port", str(port), "--serve_http=false", "--log_level", self.log_level,
             "--log_kind", "text"],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if sys.platform == "linux" and single_threaded else None,
        )
        self.endpoint = f"localhost:{port}"
        deadline = time.monotonic() + 60
        while not port_open(port):
            if self._process.poll() is not None:
                raise PipelineError(f"Prism ({self.binary}) exited with {self._process.returncode} at start")
            if time.monotonic() > deadline:
                raise PipelineError(f"Prism ({self.binary}) did not listen on {self.endpoint} within 60s")
            time.sleep(0.1)
        return self

    def __exit__(self, *exc) -> None:
        if self._process is None or self._process.poll() is not None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=15)


def _beam_options(runner: str, beam_args: list[str]) -> PipelineOptions:
    options = PipelineOptions(list(beam_args))
    options.view_as(StandardOptions).runner = runner
    if runner in STREAMING_RUNNERS:
        options.view_as(StandardOptions).streaming = True
        portable = options.view_as(PortableOptions)
        if not portable.environment_type:
            # Workers in this process: no Docker, and the clean stop below can reach them.
            portable.environment_type = "LOOPBACK"
        with_prism_experiments(options)
    return options


def with_prism_experiments(options: PipelineOptions) -> PipelineOptions:
    """Add :data:`PRISM_EXPERIMENTS` to ``options`` (in place) unless already there."""
    debug = options.view_as(DebugOptions)
    for experiment in PRISM_EXPERIMENTS:
        debug.add_experiment(experiment)
    return options


def _install_stop_handlers(stop: threading.Event) -> None:
    def handler(signum, _frame):
        log.info("received %s: stopping after what was read is committed", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


def run_streaming(
    watchlist_path: str,
    runner: str,
    bootstrap_servers: str,
    beam_args: list[str],
    echo: Callable[[str], None] = print,
) -> int:
    """Run until stopped (streaming runners) or until news.raw is read to its current end
    (DirectRunner, which cannot run an unbounded source). Returns the exit code."""
    # Polled while running: a good new version is taken into use, a bad one refused (issue 6).
    # A bad file at start runs the last good version kept under $NEWSRADAR_HOME (issue 13);
    # with none, its error is exit 2.
    options = _beam_options(runner, beam_args)
    own = options.view_as(NewsradarOptions)
    if own.watchlist_poll <= 0:
        raise BadOptions(f"--watchlist_poll must be more than 0s, got {own.watchlist_poll:g}s")
    watchlist = WatchlistSource.from_file(watchlist_path, own.watchlist_poll, store=paths.home() / "watchlist",
                                          check=require_examples_pass, on_result=reload_counter())
    try:
        dedupe_settings(options)
    except ValueError as exc:
        raise BadOptions(str(exc)) from None
    bounded = runner not in STREAMING_RUNNERS
    portable = options.view_as(PortableOptions)
    if runner == "PortableRunner" and not portable.job_endpoint:
        raise BadOptions("--runner PortableRunner needs --job_endpoint HOST:PORT (a running job service)")
    # The readers run in this process only with LOOPBACK workers; otherwise the stop is
    # decided from the committed offsets in Kafka (see the module docstring).
    in_process = portable.environment_type == "LOOPBACK"
    # Workers on this machine read a file the launcher writes (the seed, below).
    local_workers = in_process or (runner == "PrismRunner" and not portable.job_endpoint)
    with contextlib.ExitStack() as stack:
        if runner == "PrismRunner" and not portable.job_endpoint:
            # First, while this process has one thread (see PrismServer).
            prism = options.view_as(PrismRunnerOptions)
            # Prism's default "info" logs every bundle; keep it quiet unless asked.
            asked = any(a.startswith("--prism_log_level") for a in beam_args)
            server = stack.enter_context(
                PrismServer(prism.prism_location or prism_binary(), log_level=prism.prism_log_level if asked else "warn")
            )
            portable.job_endpoint = server.endpoint
        if not broker_answers(bootstrap_servers, timeout=10):
            raise PipelineError(f"no Kafka broker answers at {bootstrap_servers}")
        topics = [topic(options, t) for t in (TOPIC_RAW, TOPIC_TAGGED, TOPIC_ALERTS, TOPIC_DLQ, TOPIC_NOVELTY,
                                              TOPIC_CANDIDATES)]
        memory = memory_seconds(watchlist.initial, dedupe_settings(options))
        # Topics this pipeline creates keep at least its memory plus a week, whatever the watchlist says.
        ensure_topics(bootstrap_servers, topics=topics, policy=pipeline_topic_policy(memory))
        kept_for = [topic(options, t) for t in (TOPIC_TAGGED, TOPIC_ALERTS)]
        problems = check_retention(bootstrap_servers, {name: memory for name in kept_for})
        if problems:
            raise BadOptions("; ".join(problems))
        # A watchlist edit taken while running must fit in what the topics keep, or the next
        # start would refuse it: such a version is refused at reload (the old one stays).
        kept = [k for k in topic_retention(bootstrap_servers, kept_for).values() if k is not None]
        if kept:
            watchlist = dataclasses.replace(watchlist, max_memory=min(kept))
        try:
            stack.enter_context(GroupClaim(bootstrap_servers, own.group_id, topic(options, TOPIC_DLQ),
                                           wait=CLAIM_WAIT_SECONDS))
        except GroupClaimed as exc:
            raise BadOptions(str(exc)) from None
        metrics = pipeline_metrics()
        port = serve(own.metrics_port, host=own.metrics_host)
        echo(f"pipeline: metrics at http://{own.metrics_host}:{port}/metrics")
        seed = None
        if not bounded:
            # Before live records are judged: what the stateful steps knew, from the topics
            # (issue 13; pipelines/rebuild.py). Progress on stderr.
            report = rebuild_state(
                bootstrap_servers, raw_topic=topics[0], tagged_topic=topics[1], alerts_topic=topics[2],
                group_id=own.group_id, watchlist=watchlist.initial, dedupe=dedupe_settings(options),
                memory_seconds=memory, novelty_topic=topics[4], lifetime_seconds=TAGGED_MARGIN, echo=_to_stderr)
            _to_stderr(f"pipeline: {report.summary()}")
            metrics.rebuild_seconds.set(report.seconds)
            metrics.rebuild_records.labels(topic=TOPIC_TAGGED).set(report.folded)
            metrics.rebuild_records.labels(topic=TOPIC_ALERTS).set(report.alerts)
            metrics.rebuild_records.labels(topic=TOPIC_NOVELTY).set(report.summaries_read)
            seed = ship_seed(report.seed, own.seed_location, own.group_id, local_workers=local_workers)
            _to_stderr(f"pipeline: the seed is {seed.describe()}")
            if seed.path is None and seed.size > INLINE_LIMIT:
                _to_stderr("pipeline: warning: a seed this large inside the pipeline may pass a runner's job size "
                           "limit (docs/pipeline.md); give --seed_location a path every worker reads")
        pipeline = beam.Pipeline(options=options)
        attach_kafka(pipeline, watchlist, bootstrap_servers, options, bounded=bounded, seed=seed)
        echo(
            f"pipeline: {runner} reading {topics[0]} at {bootstrap_servers} as group {own.group_id}"
            + (" up to its current end" if bounded else "; stop with Ctrl-C or SIGTERM")
        )
        if bounded:
            state = pipeline.run().wait_until_finish()
            echo(f"pipeline: finished ({state})")
            return 0 if state == PipelineState.DONE else 1
        stop = threading.Event()
        _install_stop_handlers(stop)
        if in_process:
            return _run_until_stopped(pipeline, stop, own.stop_timeout, echo)
        lag = _GroupLag(bootstrap_servers, own.group_id, topics[0])
        return _run_until_stopped(pipeline, stop, own.stop_timeout, echo, settle=lag)


def ship_seed(seed: Seed, location: str, group_id: str, *, local_workers: bool) -> SeedBlob:
    """How the rebuilt state goes to the workers: as a file under ``location`` when it is over
    :data:`transforms.rebuild.INLINE_LIMIT`; with no location, under ``$NEWSRADAR_HOME`` when the
    workers run on this machine (Prism started here, LOOPBACK), else inside the pipeline (a
    local path means nothing to a remote worker)."""
    if not location and local_workers:
        location = str(paths.state_dir() / "seeds")
    return SeedBlob.shipped(seed, location, group_id) if location else SeedBlob.of(seed)


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _run_until_stopped(pipeline: beam.Pipeline, stop: threading.Event, timeout: float, echo,
                       settle: _GroupLag | None = None) -> int:
    result = pipeline.run()
    echo("pipeline: running")
    while not stop.wait(0.5):
        try:
            state = result.state
        except grpc.RpcError as exc:
            echo(f"pipeline: lost the job service ({exc.code()}); stopping")
            return 1
        if PipelineState.is_terminal(state):
            echo(f"pipeline: job ended on its own ({state})")
            return 0 if state == PipelineState.DONE else 1
    if settle is not None:
        return _stop_when_committed(result, settle, timeout, echo)
    return _stop_cleanly(result, timeout, echo)


def _expect_worker_disconnects() -> None:
    """Once the job is cancelled, the worker threads in this process (LOOPBACK) lose their
    gRPC streams when Prism exits. That is the expected end, not a failure: log it at debug
    level instead of printing a traceback per thread."""
    previous = threading.excepthook

    def hook(args):
        if isinstance(args.exc_value, grpc.RpcError):
            log.debug("worker thread %s ended with the job: %s", getattr(args.thread, "name", "?"), args.exc_value)
            return
        previous(args)

    threading.excepthook = hook
    logging.getLogger("apache_beam.runners.worker.data_plane").setLevel(logging.CRITICAL)


def _stop_cleanly(result, timeout: float, echo: Callable[[str], None]) -> int:
    LOCAL_PROGRESS.request_stop()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not LOCAL_PROGRESS.settled():
        if PipelineState.is_terminal(result.state):
            break
        time.sleep(0.2)
    settled = LOCAL_PROGRESS.settled()
    _expect_worker_disconnects()
    result.cancel()
    if settled:
        echo("pipeline: stopped; everything read was written and committed")
        return 0
    echo(
        f"pipeline: stopped after {timeout:.0f}s without a full commit; uncommitted records per partition "
        f"{LOCAL_PROGRESS.uncommitted()} will be read again on restart (at least once)"
    )
    return 1


class _GroupLag:
    """How far the consumer group's committed offsets are behind the end of the topic, per
    partition, read from Kafka: what a launcher whose workers run elsewhere can know."""

    def __init__(self, bootstrap_servers: str, group_id: str, topic: str):
        self._bootstrap, self._group, self._topic = bootstrap_servers, group_id, topic

    def behind(self) -> dict[str, int]:
        from kafka import TopicPartition

        from newsradar.kafka import make_consumer

        consumer = make_consumer(self._bootstrap, group_id=self._group, enable_auto_commit=False)
        try:
            tps = [TopicPartition(self._topic, p) for p in sorted(consumer.partitions_for_topic(self._topic) or ())]
            ends = consumer.end_offsets(tps)
            lag = {f"{tp.topic}/{tp.partition}": ends[tp] - (consumer.committed(tp) or 0) for tp in tps}
        finally:
            consumer.close()
        return {name: n for name, n in lag.items() if n > 0}


def _stop_when_committed(result, lag: _GroupLag, timeout: float, echo: Callable[[str], None]) -> int:
    deadline = time.monotonic() + timeout
    behind = lag.behind()
    while behind and time.monotonic() < deadline and not PipelineState.is_terminal(result.state):
        time.sleep(0.5)
        behind = lag.behind()
    result.cancel()
    if not behind:
        echo("pipeline: stopped; everything in the topic was written and committed")
        return 0
    echo(
        f"pipeline: stopped after {timeout:.0f}s without a full commit; uncommitted records per partition "
        f"{behind} will be read again on restart (at least once)"
    )
    return 1


# ---------------------------------------------------------------------------
# bounded runs, in input order


@dataclass(frozen=True)
class BoundedOutputs:
    """What :func:`run_bounded` produced, by the index of the input it came from. An index
    in neither ``tagged`` nor ``dead`` was dropped by Dedupe as a repeat of an earlier id."""

    tagged: dict[int, TaggedArticle]
    dead: dict[int, DeadLetter]
    alerts: list[Alert]  # in input order


def run_bounded(payloads: Iterable[tuple[bytes, float]], watchlist: Watchlist | WatchlistSource,
                dedupe: DedupeSettings | None = None, workers: int | None = None) -> BoundedOutputs:
    """The batch path (:mod:`pipelines.batch`) over ``payloads`` (news.raw records as bytes,
    each with its event time in unix seconds, in input order), collected: what
    :func:`run_ordered_beam` gives, in flat memory on both cores while it runs. For
    callers that want everything at once (tests, small replays); `newsradar tag` and
    `newsradar backtest` iterate :func:`pipelines.batch.run_batch` instead."""
    from .batch import run_batch

    tagged: dict[int, TaggedArticle] = {}
    dead: dict[int, DeadLetter] = {}
    alerts: list[Alert] = []
    for outcome in run_batch(payloads, watchlist, dedupe, workers):
        if outcome.tagged is not None:
            tagged[outcome.seq] = outcome.tagged
        if outcome.dead is not None:
            dead[outcome.seq] = outcome.dead
        alerts.extend(outcome.alerts)
    return BoundedOutputs(tagged, dead, alerts)


def run_ordered_beam(payloads: Sequence[tuple[bytes, float]], watchlist: Watchlist | WatchlistSource,
                     dedupe: DedupeSettings | None = None) -> BoundedOutputs:
    """``build(ordered=True)`` over ``payloads`` on the DirectRunner's in-process batch engine:
    the Beam form of the bounded path, which holds the whole input (its in-order steps group
    it). The reference the batch path is tested against (tests/pipelines/test_batch.py)."""
    with tempfile.TemporaryDirectory(prefix="newsradar-bounded-") as workdir:
        # The input goes to the workers through a file, not beam.Create: Create embeds its
        # values in the pipeline graph, bz2-compressed, which took 15 s for six 4 MB records.
        source = os.path.join(workdir, "input")
        with open(source, "w", encoding="ascii") as fh:
            for seq, (payload, at) in enumerate(payloads):
                fh.write(_keyed_line(seq, (payload, at)) + "\n")
        # The DirectRunner's batch engine, named directly: "DirectRunner" would first try to
        # download and start Prism, which a bounded input does not need.
        with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(flags=[])) as pipeline:
            numbered = (
                pipeline
                | "ReadInput" >> beam.io.ReadFromText(source)
                | "StampEventTime" >> beam.Map(_stamped)
            )
            outputs = monitor.build(numbered, watchlist, dedupe=dedupe, ordered=True)
            for name, pcoll in (("tagged", outputs.tagged), ("alerts", outputs.alerts), ("dlq", outputs.dlq)):
                (
                    pcoll
                    | f"Encode{name.title()}" >> beam.MapTuple(_keyed_line)
                    | f"Write{name.title()}" >> beam.io.WriteToText(os.path.join(workdir, name, "part"))
                )
        tagged = dict(_keyed_lines(workdir, "tagged"))
        dead = dict(_keyed_lines(workdir, "dlq"))
        alerts = [alert for _key, alert in sorted(_keyed_lines(workdir, "alerts"), key=lambda kv: kv[0])]
    return BoundedOutputs(tagged, dead, alerts)


# The records travel from the run's workers to the caller as pickles in a private temporary
# directory, not in their JSON form: decoding applies the news.raw size cap, which a dead
# letter of an oversized record is over by definition.
def _keyed_line(key, record) -> str:
    return base64.b64encode(pickle.dumps((key, record), protocol=pickle.HIGHEST_PROTOCOL)).decode("ascii")


def _stamped(line: str) -> TimestampedValue:
    seq, (payload, at) = pickle.loads(base64.b64decode(line))
    return TimestampedValue((seq, payload), at)


def _keyed_lines(workdir: str, name: str):
    for part in sorted(Path(workdir, name).glob("part*")):
        with open(part, encoding="ascii") as fh:
            for line in fh:
                if line.strip():
                    yield pickle.loads(base64.b64decode(line))  # written by this run, above
