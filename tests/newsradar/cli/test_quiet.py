"""The command line is quiet by default: a command's own output, not the libraries' start-up
notices; ``-v`` brings them back; an error is still one line naming file, line and field."""

from __future__ import annotations

import re
import subprocess

from newsradar import paths
from tests.conftest import newsradar_cmd

WATCHLIST = str(paths.REPO_ROOT / "config" / "watchlist.yaml")
LIBRARY_LINE = re.compile(r"^\S+ \S+ (INFO|WARNING) (?!newsradar|connectors|transforms|pipelines)[\w.]+: ", re.M)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(newsradar_cmd(*args), capture_output=True, text=True, timeout=300)


def test_a_beam_importing_command_prints_only_its_own_output():
    quiet = _run("watchlist", "check", WATCHLIST)
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout.startswith(f"{WATCHLIST}: ok:")
    assert quiet.stderr == ""
    loud = _run("-v", "watchlist", "check", WATCHLIST)
    assert loud.returncode == 0
    assert LIBRARY_LINE.search(loud.stderr), loud.stderr[:500]  # Beam's and pymorphy3's notices


def test_an_error_is_still_one_line(tmp_path):
    bad = tmp_path / "w.yaml"
    bad.write_text("organizations:\n  - id: a\n    name: A\n    aliases: {ua: [A]}\n", encoding="utf-8")
    result = _run("watchlist", "check", str(bad))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and f"{bad}:4" in lines[0] and "aliases" in lines[0], result.stderr
