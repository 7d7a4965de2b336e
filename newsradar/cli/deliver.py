"""``newsradar deliver``: the alert delivery service (:mod:`newsradar.delivery.service`) on the
command line: options, the launch checks (watchlist, sinks, broker, topics), /metrics, and a
clean stop on SIGTERM or SIGINT."""

from __future__ import annotations

import signal
import sys

import click

from newsradar.delivery import DEFAULT_GROUP, DEFAULT_METRICS_PORT


def _duration(ctx, param, value):
    from newsradar.config import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@click.command("deliver")
@click.option("--watchlist", "watchlist_file", required=True, type=click.Path(dir_okay=False),
              help="watchlist.yaml whose alerts.sinks receive the alerts.")
@click.option("--bootstrap-servers", default="localhost:9092", show_default=True)
@click.option("--topic-prefix", default="", help="Prefix of the topic names (as the pipeline's --topic_prefix).")
@click.option("--group-id", default=DEFAULT_GROUP, show_default=True, help="Kafka consumer group on news.alerts.")
@click.option("--start-window", default="1h", show_default=True, callback=_duration,
              help="A new consumer group starts at the alerts written in this last period.")
@click.option("--max-age", default="6h", show_default=True, callback=_duration,
              help="Retry a failing sink until the alert has been on news.alerts this long; then news.dlq.")
@click.option("--group-window", default=None, callback=lambda c, p, v: None if v is None else _duration(c, p, v),
              help="Alerts of one story read within this long of its first are one notification "
                   "[default: the watchlist's alerts.group_window, else 5s].")
@click.option("--max-pending", type=click.IntRange(1), default=10_000, show_default=True,
              help="Alerts read but not yet finished by every sink before reading pauses.")
@click.option("--metrics-port", type=click.IntRange(0, 65535), default=DEFAULT_METRICS_PORT, show_default=True,
              help="Port of /metrics (0: any free port).")
@click.option("--metrics-host", default="127.0.0.1", show_default=True)
@click.option("--allow-private-networks", is_flag=True,
              help="Let every sink reach loopback/private addresses (tests, demo).")
def deliver(watchlist_file: str, bootstrap_servers: str, topic_prefix: str, group_id: str, start_window: float,
            max_age: float, group_window: float | None, max_pending: int, metrics_port: int, metrics_host: str,
            allow_private_networks: bool) -> None:
    """Deliver the alerts on news.alerts to the watchlist's sinks (webhook, Alertmanager, file,
    Slack-compatible incoming webhook, Telegram bot, e-mail over SMTP).

    The alerts of one story read within --group-window become one notification (later ones an
    update that follows it, or an edit of the story's Telegram message). A sink with a digest
    (digest: {every: 15m, max_severity: info}) holds its quiet notifications and sends them as one
    message once a period. A consumer group of its own; a ledger in $NEWSRADAR_HOME/deliver/ledger.sqlite of what each
    sink took; retries until --max-age, then news.dlq (step alerts.<sink kind>, `newsradar dlq
    replay` sends them back). Secrets only by reference (an environment variable or a file the
    sink names). Stops cleanly on Ctrl-C or SIGTERM. Exit 2 for a bad watchlist or sink (file,
    line and field named), 1 when no broker answers or news.alerts is missing."""
    from newsradar.config import ConfigError, load_watchlist
    from newsradar.delivery.service import Deliverer, Settings
    from newsradar.delivery.sinks import build_sinks
    from newsradar.kafka import broker_answers, missing_topics
    from newsradar.metrics import DeliveryMetrics, serve
    from newsradar.records import TOPIC_ALERTS, TOPIC_DLQ

    try:
        watchlist = load_watchlist(watchlist_file)
        sinks = build_sinks(watchlist, watchlist_file, allow_private_networks)
    except ConfigError as exc:
        click.echo(f"newsradar: config error: {exc}", err=True)
        sys.exit(2)
    if not broker_answers(bootstrap_servers, timeout=10):
        click.echo(f"newsradar: deliver: no Kafka broker answers at {bootstrap_servers}", err=True)
        sys.exit(1)
    missing = missing_topics(bootstrap_servers, [topic_prefix + TOPIC_ALERTS, topic_prefix + TOPIC_DLQ])
    if missing:
        click.echo(f"newsradar: deliver: topics {', '.join(missing)} do not exist at {bootstrap_servers}", err=True)
        sys.exit(1)
    settings = Settings(bootstrap_servers=bootstrap_servers, topic_prefix=topic_prefix, group_id=group_id,
                        start_window=start_window, max_age=max_age, max_pending=max_pending,
                        group_window=watchlist.alerts.group_window if group_window is None else group_window)
    metrics = DeliveryMetrics()
    port = serve(metrics_port, host=metrics_host)
    click.echo(f"deliver: metrics at http://{metrics_host}:{port}/metrics")
    service = Deliverer(settings, sinks, metrics=metrics, echo=click.echo)

    def on_signal(signum, _frame):
        click.echo(f"deliver: received {signal.Signals(signum).name}: stopping after what is in flight")
        service.stop_requested.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    sys.exit(service.run())
