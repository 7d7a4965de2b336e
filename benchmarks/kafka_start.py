"""How long the local Kafka broker takes to start, cold and warm.

cold: empty jar cache AND empty Maven repository (everything downloaded from Maven Central),
      storage formatted, broker started, topics created, until `newsradar kafka start` returns.
warm: jars cached, storage already formatted; stop, then start again until it returns.

    .venv/bin/python benchmarks/kafka_start.py [--runs 3]

Prints one line per run and the medians. Uses temporary directories only; the user's
~/.m2 and ~/.newsradar are not touched.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from newsradar.procs import free_port


def run(args: list[str], env: dict) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "newsradar.cli", *args], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    opts = parser.parse_args()
    cold, warm = [], []
    for i in range(opts.runs):
        with tempfile.TemporaryDirectory(prefix="nr-kbench-") as tmp:
            tmp_path = Path(tmp)
            env = dict(os.environ)
            env["NEWSRADAR_HOME"] = str(tmp_path / "home")
            env["NEWSRADAR_CACHE"] = str(tmp_path / "cache")
            env["MAVEN_OPTS"] = f"-Dmaven.repo.local={tmp_path / 'm2'}"
            port = str(free_port())
            data = str(tmp_path / "data")
            common = ["--port", port, "--data-dir", data]
            try:
                c = run(["kafka", "start", *common], env)
                run(["kafka", "stop", *common], env)
                w = run(["kafka", "start", *common], env)
            finally:
                subprocess.run([sys.executable, "-m", "newsradar.cli", "kafka", "stop", *common], env=env, capture_output=True)
            cold.append(c)
            warm.append(w)
            print(f"run {i + 1}: cold start {c:.1f}s, warm start {w:.1f}s", flush=True)
    print(f"median of {opts.runs}: cold {statistics.median(cold):.1f}s, warm {statistics.median(warm):.1f}s")


if __name__ == "__main__":
    main()
