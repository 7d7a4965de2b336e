"""``newsradar connect``: build every configured source's poller and run the delivery loop.

Guarantees:

* Config is validated before anything starts (a bad file is exit 2 from the CLI).
* One Kafka producer, one HTTP client, one state store per process, shared by all sources.
* ``--once`` polls every source one time, whatever its schedule or error backoff, except a
  source still inside a wait its server asked for (Retry-After); returns 0 when all were
  handled (source errors are counted, not fatal), 1 when Kafka did not acknowledge some records
  or when no due source could be polled at all; every failed source's reason is logged at the end.
* Without ``--once`` it runs until SIGINT/SIGTERM, then stops fetching, lets deliveries in
  flight finish (acks and state commits), flushes the producer and exits 0.
* ``/metrics`` is served on the host/port of the sources file's ``metrics:`` (127.0.0.1 by
  default; port 0 picks a free port); its URL is logged.
* ``kind: telegram`` sources are built by ``connectors.telegram.make_poller`` (contract in
  :mod:`connectors.base`); a mode that cannot run here (no token, Telethon missing) becomes a
  poller whose every poll is ``outcome="unavailable"``, counted and backed off; the others run.
* **Sources reload** while running (not with ``--once``): every ``reload_every`` seconds (30 s
  by default, ``--reload-every``; 0 turns it off) the sources file is read again when its bytes
  changed. A valid file is applied by :meth:`connectors.runner.Runner.replace_sources`: added
  sources start, removed ones stop after their in-flight poll, changed ones get a new poller
  and keep their state. A bad file (or one that takes longer than 10 s to load) is refused with
  a log line and ``newsradar_connect_sources_reloads_total{result="failed"}``, and the running
  version stays. Process-wide settings (``defaults`` used by the HTTP client and limits,
  ``metrics``, ``allow_private_networks``) take effect at the next restart; a reload that
  changes them says so.
* ``shard=Shard(I, N)`` (``--shard I/N``) polls only the sources :mod:`connectors.shards`
  assigns to shard I; its state lives in ``<state dir>/shard-I`` unless a state directory is
  given, and ``newsradar_connect_shard_info{shard="I/N"}`` says which shard a replica is.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from prometheus_client import REGISTRY, CollectorRegistry, Gauge

from connectors.http import FetchLimits, HttpClient
from connectors.rss import RssPoller
from connectors.runner import Progress, Runner, Schedule, Slot
from connectors.shards import Shard
from connectors.state import StateLocked, StateStore
from connectors.telegram import make_poller as make_telegram_poller
from newsradar import paths
from newsradar.config import ConfigError
from newsradar.config.sources import Sources, load_sources
from newsradar.metrics import ConnectorMetrics, serve
from newsradar.netguard import AddressPolicy
from newsradar.records import TOPIC_RAW

log = logging.getLogger("newsradar.connect")

EXIT_OK = 0
EXIT_FAILURE = 1
RELOAD_EVERY = 30.0
# A load that takes longer than this is refused (the loader's own bounds make it unlikely).
RELOAD_TIMEOUT = 10.0


class ConnectError(RuntimeError):
    """The connector cannot start (no broker, state directory in use, port taken)."""


def build_slots(sources: Sources, http: HttpClient, parse_in=None, shard: Shard = Shard()) -> list[Slot]:
    """One slot per enabled source that ``shard`` owns."""
    slots = []
    for source in sources.sources:
        if not source.enabled or not shard.owns(source.id):
            continue
        schedule = Schedule.from_config(sources.defaults, sources.interval_of(source))
        if source.kind == "rss":
            poller = RssPoller(source, sources.defaults, http, parse_in=parse_in)
        else:
            poller = make_telegram_poller(source, sources=sources, http=http)
        slots.append(Slot(poller, schedule, config=(source, schedule)))
    return slots


def run(
    sources_file: str,
    *,
    state_dir: str | None = None,
    once: bool = False,
    bootstrap_servers: str = "localhost:9092",
    allow_private_networks: bool = False,
    registry: CollectorRegistry = REGISTRY,
    shard: Shard = Shard(),
    reload_every: float = RELOAD_EVERY,
) -> int:
    """Entry point of ``newsradar connect``; returns the exit code. Raises ConfigError on bad config."""
    sources = load_sources(sources_file)
    reload = None if once or reload_every <= 0 else SourcesReload(Path(sources_file), reload_every)
    try:
        return asyncio.run(_main(sources, Path(state_dir) if state_dir else shard_state_dir(shard), once,
                                 bootstrap_servers, allow_private_networks or sources.allow_private_networks,
                                 registry, shard, reload))
    except ConnectError as exc:
        log.error("%s", exc)
        return EXIT_FAILURE


def shard_state_dir(shard: Shard) -> Path:
    """The default state directory: one per shard index, so replicas on one host never share
    (or fight over the lock of) a state store. Unsharded runs keep the plain directory."""
    return paths.state_dir() if shard.count == 1 else paths.state_dir() / f"shard-{shard.index}"


class SourcesReload:
    """Re-reads the sources file when its bytes change, and hands a valid version to the runner
    (see the module docstring)."""

    def __init__(self, path: Path, every: float):
        self.path, self.every = path, every
        self._digest = self._read_digest()

    def _read_digest(self) -> str | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).hexdigest()
        except OSError:
            return None

    async def follow(self, runner: Runner, sources: Sources, build, counter) -> None:
        while True:
            await asyncio.sleep(self.every)
            sources = await self.check(runner, sources, build, counter)

    async def check(self, runner: Runner, sources: Sources, build, counter) -> Sources:
        """One look at the file; returns the sources now in force."""
        digest = await asyncio.to_thread(self._read_digest)
        if digest is None or digest == self._digest:
            return sources  # unchanged, or briefly missing while an editor replaces it
        self._digest = digest
        try:
            new = await asyncio.wait_for(asyncio.to_thread(load_sources, str(self.path)), RELOAD_TIMEOUT)
        except ConfigError as exc:
            counter.labels(result="failed").inc()
            log.error("sources: reload refused, the running version stays: %s", exc)
            return sources
        except TimeoutError:
            counter.labels(result="failed").inc()
            log.error("sources: reload refused, %s took over %.0fs to load; the running version stays",
                      self.path, RELOAD_TIMEOUT)
            return sources
        for name in ("defaults", "metrics", "allow_private_networks"):
            if getattr(new, name) != getattr(sources, name):
                log.warning("sources: %s changed; it takes effect at the next restart", name)
        added, removed, changed = await runner.replace_sources(build(new))
        counter.labels(result="ok").inc()
        log.info("sources: reloaded %s: %d added, %d removed, %d changed", self.path, len(added), len(removed),
                 len(changed))
        return new


async def _main(
    sources: Sources, state_dir: Path, once: bool, bootstrap: str, allow_private: bool, registry: CollectorRegistry,
    shard: Shard = Shard(), reload: SourcesReload | None = None,
) -> int:
    from kafka.errors import KafkaError

    from newsradar.kafka import broker_answers, make_producer

    if not await asyncio.to_thread(broker_answers, bootstrap, 10.0):
        raise ConnectError(f"no Kafka broker answers at {bootstrap}")
    try:
        store = StateStore(state_dir)
    except StateLocked as exc:
        raise ConnectError(str(exc)) from None
    metrics = ConnectorMetrics(registry)
    Gauge("newsradar_connect_shard_info", "This replica's shard (I/N) of the configured sources: always 1.",
          ["shard"], registry=registry).labels(shard=shard.label).set(1)
    try:
        port = serve(sources.metrics.port, sources.metrics.host, registry)
    except OSError as exc:
        store.close()
        raise ConnectError(f"cannot serve metrics on {sources.metrics.host}:{sources.metrics.port}: {exc}") from None
    log.info("metrics at http://%s:%d/metrics; state in %s", sources.metrics.host, port, state_dir)
    if allow_private:
        log.warning("allow_private_networks is on: feeds may reach loopback and private addresses")

    producer = make_producer(bootstrap, client_id="newsradar-connect")
    defaults = sources.defaults
    http = HttpClient(
        FetchLimits(timeout=defaults.timeout, max_body=defaults.max_body, max_redirects=defaults.max_redirects,
                    user_agent=defaults.user_agent),
        AddressPolicy(allow_private_networks=allow_private),
    )
    parse_pool = ThreadPoolExecutor(2, thread_name_prefix="parse")
    runner = None
    try:
        await asyncio.to_thread(_check_topic, producer, TOPIC_RAW)
        slots = build_slots(sources, http, parse_in=parse_pool, shard=shard)
        runner = Runner(
            slots, producer=producer, store=store, metrics=metrics,
            max_concurrent_polls=defaults.max_concurrent_polls, per_host_concurrency=defaults.per_host_concurrency,
            max_polls_in_flight=defaults.max_polls_in_flight,
            seen_ttl=defaults.seen_ttl, seen_max_per_source=defaults.seen_max_per_source,
        )
        log.info("connect: %d sources%s%s", len(slots), f" (shard {shard.label})" if shard.count > 1 else "",
                 " (once)" if once else "")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, _on_signal, stop, sig)
        follower = None
        if reload is not None:
            def build(new: Sources):
                return build_slots(new, http, parse_in=parse_pool, shard=shard)

            follower = asyncio.ensure_future(reload.follow(runner, sources, build, metrics.sources_reloads))
        try:
            await runner.run(stop, once=once)
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.wait({follower})
        if not once:
            return EXIT_OK
        return once_exit_code(runner.progress, _total(metrics.produce_errors), stopped=stop.is_set())
    finally:
        if runner is not None:
            runner.close()
            for slot in runner.slots:
                await slot.poller.close()
        await http.close()
        parse_pool.shutdown(wait=True)
        try:
            await asyncio.to_thread(producer.close, 30)
        except KafkaError as exc:
            log.error("closing the Kafka producer: %s", exc)
        store.close()


def once_exit_code(progress: Progress, produce_errors: float, stopped: bool = False) -> int:
    """``--once``: 1 when Kafka did not acknowledge some records, or when sources were due and
    none of them could be polled (each one's reason logged); else 0 (a failing source among
    working ones is counted, not fatal)."""
    if stopped:  # interrupted on purpose: polls cut short are no failure of the sources
        return EXIT_FAILURE if produce_errors else EXIT_OK
    for source, why in sorted(progress.failures.items()):
        log.error("connect --once: source %s: %s", source, why)
    if progress.polled and not progress.succeeded:
        log.error("connect --once: none of the %d sources could be polled", progress.polled)
        return EXIT_FAILURE
    return EXIT_FAILURE if produce_errors else EXIT_OK


def _on_signal(stop: asyncio.Event, sig: signal.Signals) -> None:
    if not stop.is_set():
        log.info("%s: finishing deliveries in flight, then stopping", signal.Signals(sig).name)
    stop.set()


def _check_topic(producer, topic: str) -> None:
    from kafka.errors import KafkaError

    try:
        if not producer.partitions_for(topic):
            raise ConnectError(f"Kafka topic {topic} has no partitions; run `newsradar kafka topics`")
    except KafkaError as exc:
        raise ConnectError(f"Kafka topic {topic} is not available ({exc}); run `newsradar kafka topics`") from None


def _total(counter) -> float:
    return sum(s.value for metric in counter.collect() for s in metric.samples if s.name.endswith("_total"))


__all__ = ["ConnectError", "build_slots", "run"]
