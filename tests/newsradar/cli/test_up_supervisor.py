"""The supervisor pieces of `newsradar up`, on real child processes."""

import os
import sys
from pathlib import Path

import pytest

from newsradar.cli.up import Part, PartFailed
from tests.conftest import wait_for

# A child that starts a grandchild (like the pipeline starting the Prism binary) and records its pid.
PARENT_WITH_GRANDCHILD = """
import signal, subprocess, sys
child = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
open(sys.argv[1], "w").write(str(child.pid))
signal.pause()
"""


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_stop_takes_the_whole_process_group(tmp_path):
    pid_file = tmp_path / "grandchild.pid"
    part = Part("worker", [sys.executable, "-c", PARENT_WITH_GRANDCHILD, str(pid_file)], tmp_path / "w.log",
                ready=pid_file.exists)
    part.start(dict(os.environ))
    part.wait_ready(20)
    grandchild = int(pid_file.read_text())
    assert alive(part.proc.pid) and alive(grandchild)
    part.stop(grace=5)
    assert part.exited() is not None
    wait_for(lambda: not alive(grandchild), 10, "the grandchild to be gone")


def test_a_part_that_dies_while_starting_is_reported_with_its_log(tmp_path):
    part = Part("flaky", [sys.executable, "-c", "print('cannot open thing.yaml', flush=True); raise SystemExit(3)"],
                tmp_path / "f.log", ready=lambda: False)
    part.start(dict(os.environ))
    with pytest.raises(PartFailed) as err:
        part.wait_ready(20)
    assert "flaky exited with code 3" in str(err.value)
    assert "cannot open thing.yaml" in str(err.value)
    assert str(tmp_path / "f.log") in str(err.value)


def test_a_part_that_never_gets_ready_times_out(tmp_path):
    part = Part("slow", [sys.executable, "-c", "import signal; signal.pause()"], tmp_path / "s.log", ready=lambda: False)
    part.start(dict(os.environ))
    try:
        with pytest.raises(PartFailed, match="was not ready after 1s"):
            part.wait_ready(1)
    finally:
        part.stop(grace=5)
    assert part.exited() is not None
