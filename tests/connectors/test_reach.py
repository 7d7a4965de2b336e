"""`sources check` refuses what `connect` would refuse to fetch, with the fetcher's own policy."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from connectors.reach import check_reach
from newsradar.cli import main
from newsradar.config import load_sources

INTERNAL = ["http://169.254.169.254/latest/", "http://10.1.2.3/feed", "http://127.0.0.1:8080/rss",
            "http://2130706433/", "http://localhost/feed", "http://[::1]/", "http://0x7f.1/", "http://feeds.localhost/"]


def sources_file(tmp_path, urls, *, allow_private=False, extra=""):
    lines = [f"allow_private_networks: {'true' if allow_private else 'false'}", "sources:"]
    lines += [f"  - {{id: s{i}, kind: rss, url: '{url}'}}" for i, url in enumerate(urls)]
    f = tmp_path / "sources.yaml"
    f.write_text("\n".join(lines) + "\n" + extra, encoding="utf-8")
    return f


def no_dns(host, port):
    raise AssertionError(f"{host} resolved although it is judged without DNS")


def test_every_internal_address_in_any_spelling_is_refused_naming_file_line_and_field(tmp_path):
    f = sources_file(tmp_path, INTERNAL)
    reach = check_reach(str(f), load_sources(f), resolve=no_dns)
    assert [(e.path, e.line) for e in reach.refused] == [(f"sources[{i}].url", i + 3) for i in range(len(INTERNAL))]
    assert all("refusing internal address" in str(e) and "allow_private_networks is off" in str(e)
               for e in reach.refused)
    assert "2130706433 -> 127.0.0.1" in str(reach.refused[3]) and "localhost -> 127.0.0.1" in str(reach.refused[4])


def test_a_name_is_judged_by_every_address_it_resolves_to(tmp_path):
    answers = {"intranet.example": ["10.0.0.5"], "mixed.example": ["93.184.216.34", "192.168.1.1"],
               "public.example": ["93.184.216.34", "2606:2800:220:1::1"]}
    f = sources_file(tmp_path, [f"https://{h}/feed" for h in answers] + ["https://gone.example/"])

    def resolve(host, port):
        if host not in answers:
            raise OSError(-2, "Name or service not known")
        return answers[host]

    reach = check_reach(str(f), load_sources(f), resolve=resolve)
    assert [e.path for e in reach.refused] == ["sources[0].url", "sources[1].url"]
    assert "intranet.example -> 10.0.0.5" in str(reach.refused[0])
    # A name that does not resolve now is a note, not a refusal: every fetch resolves again.
    assert reach.notes == [f"{f}: 1 host names not resolved now (Name or service not known): gone.example; "
                           "every fetch resolves them and checks the addresses"]


def test_the_opt_in_is_the_one_connect_has(tmp_path):
    f = sources_file(tmp_path, INTERNAL, allow_private=True)
    assert check_reach(str(f), load_sources(f), resolve=no_dns).refused == []
    f = sources_file(tmp_path, INTERNAL)
    assert check_reach(str(f), load_sources(f), allow_private_networks=True, resolve=no_dns).refused == []


def test_telegram_urls_and_disabled_sources(tmp_path):
    f = sources_file(tmp_path, [], extra=(
        "  - {id: web, kind: telegram, channel: some_channel, base_url: 'http://127.0.0.1:9000'}\n"
        "  - {id: bot, kind: telegram, mode: bot, api_base: 'http://10.0.0.1'}\n"
        "  - {id: disabled, kind: rss, url: 'http://10.0.0.2/', enabled: false}\n"))
    reach = check_reach(str(f), load_sources(f), resolve=no_dns)
    assert [e.path for e in reach.refused] == ["sources[0].base_url", "sources[1].api_base"]


def test_resolution_is_bounded(tmp_path):
    import threading

    release = threading.Event()

    def stuck(host, port):
        release.wait(10)
        raise OSError(-3, "Temporary failure in name resolution")

    f = sources_file(tmp_path, ["https://slow.example/"])
    try:
        reach = check_reach(str(f), load_sources(f), resolve=stuck, timeout=0.2)
    finally:
        release.set()
    assert reach.refused == [] and "DNS did not answer within 0.2s" in reach.notes[0]


@pytest.mark.parametrize("url, shown", [
    ("http://169.254.169.254/", "169.254.169.254"), ("http://10.1.2.3/", "10.1.2.3"), ("http://127.0.0.1/", "127.0.0.1"),
    ("http://2130706433/", "2130706433 -> 127.0.0.1"), ("http://localhost/", "localhost -> 127.0.0.1"),
])
def test_sources_check_is_exit_2_with_one_line_per_refused_source(tmp_path, url, shown):
    f = sources_file(tmp_path, ["https://93.184.216.34/feed", url])
    result = CliRunner().invoke(main, ["sources", "check", "--no-resolve", str(f)])
    assert result.exit_code == 2, result.output
    assert result.output.splitlines() == [
        f"newsradar: config error: {f}:4: sources[1].url: refusing internal address {shown} (allow_private_networks is off)"]
    ok = CliRunner().invoke(main, ["sources", "check", "--no-resolve", "--allow-private-networks", str(f)])
    assert ok.exit_code == 0 and ok.output == f"{f}: ok: 2 rss\n"
