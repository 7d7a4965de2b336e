"""make_poller: every mode gets its poller from validated config; what cannot run says why."""

import asyncio
from datetime import UTC, datetime

import pytest

from connectors.http import HttpClient
from connectors.telegram import UnavailablePoller, make_poller
from connectors.telegram.bot import BotPoller
from connectors.telegram.export import ExportPoller
from connectors.telegram.web import WebPoller
from connectors.telegram.webhook import WebhookPoller
from newsradar.config.loader import ConfigError
from newsradar.config.sources import load_sources

NOW = datetime(2026, 3, 2, tzinfo=UTC)


def load(tmp_path, text):
    path = tmp_path / "sources.yaml"
    path.write_text(text)
    return load_sources(path)


SOURCES = """
telegram: {web_request_gap: 3s}
sources:
  - {id: web-a, kind: telegram, channel: chan_one}
  - {id: web-b, kind: telegram, mode: web, channel: chan_two, base_url: "http://127.0.0.1:9"}
  - {id: bot, kind: telegram, mode: bot, token_env: NR_TEST_TOKEN}
  - {id: hook, kind: telegram, mode: bot, webhook: {port: 0, secret_env: NR_TEST_SECRET}}
  - {id: exp, kind: telegram, mode: export, path: result.json, timezone: Europe/Kyiv}
  - {id: mt, kind: telegram, mode: mtproto, channel: chan_one, api_id_env: NR_TEST_API_ID, api_hash_env: NR_TEST_HASH}
"""


def test_each_mode_gets_its_poller(tmp_path, monkeypatch):
    monkeypatch.setenv("NR_TEST_TOKEN", "1:abc")
    monkeypatch.setenv("NR_TEST_SECRET", "hook-secret")
    monkeypatch.setenv("NR_TEST_API_ID", "12345")
    monkeypatch.setenv("NR_TEST_HASH", "0123456789abcdef")
    sources = load(tmp_path, SOURCES)
    http = HttpClient()
    pollers = {s.id: make_poller(s, sources=sources, http=http) for s in sources.sources}
    assert isinstance(pollers["web-a"], WebPoller) and pollers["web-a"].host == "t.me"
    assert pollers["web-b"].page_url(121) == "http://127.0.0.1:9/s/chan_two?before=121"
    # One pacer for every web source of the process, at the configured gap.
    assert pollers["web-a"].pacer is pollers["web-b"].pacer and pollers["web-a"].pacer.min_interval == 3.0
    assert isinstance(pollers["bot"], BotPoller)
    assert isinstance(pollers["hook"], WebhookPoller)
    assert isinstance(pollers["exp"], ExportPoller) and str(pollers["exp"].tz) == "Europe/Kyiv"
    assert type(pollers["mt"]).__name__ == "MtprotoPoller"


def test_missing_credentials_make_counted_unavailable_sources(tmp_path, monkeypatch):
    for name in ("NR_TEST_TOKEN", "NR_TEST_SECRET", "NR_TEST_API_ID", "NR_TEST_HASH"):
        monkeypatch.delenv(name, raising=False)
    sources = load(tmp_path, SOURCES)
    http = HttpClient()
    for source_id, why in (("bot", "$NR_TEST_TOKEN"), ("hook", "$NR_TEST_SECRET"), ("mt", "$NR_TEST_API_ID")):
        poller = make_poller(next(s for s in sources.sources if s.id == source_id), sources=sources, http=http)
        assert isinstance(poller, UnavailablePoller)
        result = asyncio.run(poller.poll(None, NOW))
        assert result.outcome == "unavailable" and why in result.error


@pytest.mark.parametrize(
    "entry, path",
    [
        ("{id: x, kind: telegram, mode: export, path: r.json, timezone: Mars/Olympus}", "sources[0].timezone"),
        ("{id: x, kind: telegram, mode: bot, webhook: {path: 'no-slash'}}", "sources[0].webhook.path"),
        ("{id: x, kind: telegram, channel: chan_one, backfill_pages: -1}", "sources[0].backfill_pages"),
    ],
)
def test_bad_telegram_settings_name_the_field(tmp_path, entry, path):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, f"sources:\n  - {entry}\n")
    assert err.value.path == path
