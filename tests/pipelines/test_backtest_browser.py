"""The backtest's HTML report in a real browser: headless Chromium (Debian's package, installed
by deploy/chromium/install.sh through `make test`) loads the file offline, renders every chart,
and writes nothing on its console — no broken SVG, no load the report's Content-Security-Policy
had to refuse. A broken document is caught by the same check."""

from __future__ import annotations

import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, REPO, newsradar_cmd

CHROMIUM = "/usr/bin/chromium"
NEW = str(FIXTURES / "backtest" / "new.yaml")
CURRENT = str(FIXTURES / "backtest" / "current.yaml")
ARTICLES = str(FIXTURES / "tag" / "articles.jsonl")
SHARED = str(FIXTURES / "backtest" / "shared.jsonl")
# Chromium writes page console messages to its log as `INFO:CONSOLE:<line>] "<message>", source: <url>`.
CONSOLE = re.compile(r":CONSOLE:\d+\] (.*)")


def _chromium() -> str:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: run deploy/chromium/install.sh (`make test` does)")
    return CHROMIUM


def _browse(html: Path, profile: Path, *action: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={profile}",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         # no network for the page even if the policy failed: every request goes to a closed port
         "--proxy-server=127.0.0.1:9", "--enable-logging=stderr", "--v=0", *action, html.as_uri()],
        capture_output=True, text=True, timeout=120,
    )


def render_in_chromium(html: Path, workdir: Path) -> tuple[str, list[str], bytes]:
    """(the DOM Chromium built, the page's console messages, a PNG screenshot)."""
    dom = _browse(html, workdir / "profile-dom", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    shot = workdir / "report.png"
    taken = _browse(html, workdir / "profile-shot", "--window-size=1280,2400", f"--screenshot={shot}")
    assert taken.returncode == 0 and shot.exists(), taken.stderr[-2000:]
    console = [m.group(1) for line in dom.stderr.splitlines() + taken.stderr.splitlines()
               if (m := CONSOLE.search(line)) and html.as_uri() in line]
    return dom.stdout, console, shot.read_bytes()


class _Shapes(HTMLParser):
    def __init__(self):
        super().__init__()
        self.count: dict[str, int] = {}

    def handle_starttag(self, tag, attrs):
        self.count[tag] = self.count.get(tag, 0) + 1


def _shapes(html: str) -> dict[str, int]:
    parser = _Shapes()
    parser.feed(html)
    return {tag: parser.count.get(tag, 0) for tag in ("svg", "rect", "text", "div", "table", "tr")}


def _distinct_colours(png: bytes) -> int:
    from io import BytesIO

    from PIL import Image

    with Image.open(BytesIO(png)) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or ())


@pytest.mark.slow
def test_the_report_renders_in_headless_chromium_with_every_chart_and_a_silent_console(tmp_path):
    report = tmp_path / "report.html"
    result = subprocess.run(newsradar_cmd("backtest", "--watchlist", NEW, "--against", CURRENT, "--input", ARTICLES,
                                          "--input", SHARED, "--report", str(report)),
                            capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr
    source = report.read_text("utf-8")
    dom, console, png = render_in_chromium(report, tmp_path)
    assert console == [], console
    shapes = _shapes(source)
    assert shapes["rect"] > 10 and shapes["svg"] > 3, shapes  # the fixture has charts to draw
    # Chromium parsed the whole document: every element of the file is in its DOM
    assert _shapes(dom) == shapes
    assert "Backtest of" in dom and "Lost alerts" in dom
    # and painted it: bars in two colours, text, rules — not a blank page
    assert _distinct_colours(png) > 20


def test_the_check_sees_a_broken_chart_and_a_load_the_policy_refused(tmp_path):
    from pipelines.backtest_report import CSP

    broken = tmp_path / "broken.html"
    broken.write_text(
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><meta http-equiv="Content-Security-Policy" '
        f'content="{CSP}"><title>x</title></head><body><svg width="20" height="20"><rect width="5" height="-5"/>'
        '</svg><img src="https://example.org/pixel.png" alt=""></body></html>', "utf-8")
    _dom, console, _png = render_in_chromium(broken, tmp_path)
    assert any("negative value is not valid" in m for m in console), console
    assert any("Content Security Policy" in m and "example.org" in m for m in console), console

