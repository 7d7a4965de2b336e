"""newsradar.progress: a bar on a terminal, plain periodic lines elsewhere, an ETA only from a known total."""

import io

from newsradar.progress import Progress, Ticker


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_plain_lines_every_interval_with_rate_and_eta():
    clock, out = Clock(), io.StringIO()
    with Progress("reading x", total=100, unit="lines", stream=out, every=10, clock=clock) as p:
        for _ in range(100):
            clock.now += 0.5
            p.advance()
    lines = out.getvalue().splitlines()
    assert lines[0] == "newsradar: reading x: 20/100 lines (20%), 2/s, ETA 0:40"
    assert len(lines) == 6 and lines[-1].endswith("done in 0:50")
    assert "\r" not in out.getvalue()


def test_a_short_run_writes_nothing_when_not_a_terminal():
    out = io.StringIO()
    with Progress("reading x", total=3, stream=out, clock=Clock()) as p:
        p.advance(3)
    assert out.getvalue() == ""


def test_a_terminal_gets_one_redrawn_bar_ended_by_a_newline():
    clock, out = Clock(), io.StringIO()
    with Progress("x", total=10, stream=out, tty=True, clock=clock) as p:
        for _ in range(10):
            clock.now += 1
            p.advance()
    text = out.getvalue()
    assert text.count("\n") == 1 and text.endswith("done in 0:10\n")
    assert text.count("\r") == 11 and "[" + "#" * 24 + "]" in text
    assert "ETA 0:09" in text


def test_without_a_total_no_eta_is_guessed():
    clock, out = Clock(), io.StringIO()
    p = Progress("pipeline over 5 articles", stream=out, every=1, clock=clock)
    clock.now = 42
    p.tick()
    assert out.getvalue() == "newsradar: pipeline over 5 articles: 0:42 elapsed\n"


def test_the_ticker_reports_while_a_blocking_call_runs():
    out = io.StringIO()
    with Ticker(Progress("run", stream=out, every=0.01), interval=0.01):
        # the "blocking call": this thread waits until the ticker's thread has reported
        from tests.conftest import wait_for

        wait_for(lambda: "elapsed" in out.getvalue(), 10, "the ticker's first line", interval=0.01)
    assert "newsradar: run: 0:00 elapsed" in out.getvalue()
    assert out.getvalue().splitlines()[-1].startswith("newsradar: run: 0:00 elapsed, done in")
