"""Alert delivery, outside the pipeline: the sinks (:mod:`.sinks`), the ledger of what each
sink took (:mod:`.ledger`), and the ``newsradar deliver`` service (:mod:`.service`) that reads
news.alerts and feeds them. No Beam here: the service runs in its own process."""

# Here, not in the service, so that `newsradar deliver --help` imports nothing heavy.
DEFAULT_GROUP = "newsradar-deliver"
DEFAULT_METRICS_PORT = 9466  # deploy/prometheus/prometheus.yml scrapes `newsradar deliver` here
# The grouping window of `newsradar deliver` (seconds) when neither the watchlist's
# alerts.group_window nor --group-window sets one.
DEFAULT_GROUP_WINDOW = 5.0
