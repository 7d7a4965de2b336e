"""Records/s through the portable path (issue 17) with 1 and with 2 SDK workers on 4 partitions.

The deployed shape run locally, as tests/pipelines/test_portable.py runs it: `newsradar
pipeline --runner PortableRunner` submits to a Prism job service in its own process; the work
runs in a Beam SDK worker pool (``worker_pool_main``) whose Python is the separate virtualenv of
deploy/portable/worker-env.sh (newsradar from its sdist). news.raw has 4 partitions and holds
the whole input before the pipeline starts; the figure is records/s from the first record on
news.tagged or news.dlq until every offset is committed (steady), and from the launch (end to
end). "2 workers" passes
``--sdk_worker_parallelism=2``; the script counts the workers the pool was asked to start, so
the ratio says what it compares.

    .venv/bin/python benchmarks/portable.py [--records 4000] [--workers 1 2] [--bootstrap-servers H:P]

Without --bootstrap-servers a broker is started with `newsradar kafka start` in a temporary
directory and stopped at the end. The input is benchmarks/pipeline_spine.py's generator (en/ru/uk
articles of 150-450 words, 10 % rewritten copies, 1 % malformed), through the whole pipeline
with the shipped watchlist.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.broker import local_broker  # noqa: E402
from benchmarks.pipeline_spine import WATCHLIST, free_port, generate  # noqa: E402

PARTITIONS = 4


def worker_python() -> str:
    result = subprocess.run([str(REPO / "deploy" / "portable" / "worker-env.sh")], capture_output=True, text=True,
                            env=dict(os.environ, PYTHON=sys.executable), check=False, timeout=1800)
    if result.returncode != 0:
        raise SystemExit(f"deploy/portable/worker-env.sh failed:\n{result.stderr[-3000:]}")
    return result.stdout.strip().splitlines()[-1]


def pool_env(python: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{Path(python).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def wait(predicate, timeout: float, what: str, poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


def one_run(bootstrap: str, messages, workers: int, python: str, endpoint: str, tmp: Path) -> dict:
    from newsradar.kafka import ensure_topics
    from newsradar.procs import port_open
    from tests.pipelines.support import committed, end_offsets, produce

    prefix = f"b{uuid.uuid4().hex[:8]}."
    raw = f"{prefix}news.raw"
    ensure_topics(bootstrap, partitions=PARTITIONS,
                  topics=[prefix + t for t in ("news.raw", "news.tagged", "news.alerts", "news.dlq")])
    produce(bootstrap, raw, messages)
    ends = end_offsets(bootstrap, raw)
    total = sum(ends.values())

    port = free_port()
    pool_log = tmp / f"pool-{prefix}log"
    with open(pool_log, "ab") as log:
        pool = subprocess.Popen(
            [python, "-m", "apache_beam.runners.worker.worker_pool_main", f"--service_port={port}"],
            cwd=tmp, env=pool_env(python), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pipeline_log = tmp / f"pipeline-{prefix}log"
    group = f"{prefix}pipeline"

    def outputs() -> int:  # records written to news.tagged and news.dlq so far
        return sum(sum(end_offsets(bootstrap, prefix + t).values()) for t in ("news.tagged", "news.dlq"))

    try:
        wait(lambda: port_open(port), 120, "the worker pool to listen")
        with open(pipeline_log, "ab") as log:
            t_start = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "newsradar.cli", "pipeline", "--watchlist", str(WATCHLIST),
                 "--bootstrap-servers", bootstrap, "--runner", "PortableRunner", "--job_endpoint", endpoint,
                 "--environment_type", "EXTERNAL", "--environment_config", f"localhost:{port}",
                 f"--sdk_worker_parallelism={workers}", f"--topic_prefix={prefix}", f"--group_id={group}",
                 "--metrics_port=0", "--idle_lag=1s", "--stop_timeout=120s"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=REPO,
            )
        try:
            t_first = None
            n_first = 0
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"the pipeline exited ({proc.returncode}):\n{pipeline_log.read_text()[-3000:]}")
                out = outputs()
                now = time.perf_counter()
                if out and t_first is None:
                    t_first, n_first = now, out
                if sum(v or 0 for v in committed(bootstrap, group, raw).values()) >= total:
                    n_done = outputs()
                    break
                if now - t_start > 3600:
                    raise SystemExit(f"not all of {total} records committed after an hour ({out} outputs)")
                time.sleep(0.5)
            t_done = time.perf_counter()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=180)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    finally:
        os.killpg(pool.pid, signal.SIGTERM)
        try:
            pool.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(pool.pid, signal.SIGKILL)
            pool.wait()
    started = pool_log.read_text("utf-8", errors="replace").count("Starting worker with command")
    return {
        "workers_asked": workers,
        "workers_started": started,
        "records": total,
        "outputs": n_done,
        "steady": (n_done - n_first) / (t_done - t_first) if t_done > t_first else float("nan"),
        "end_to_end": total / (t_done - t_start),
        "first_output_after": t_first - t_start,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=4000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--bootstrap-servers")
    opts = parser.parse_args()
    from pipelines.run import PrismServer, prism_binary

    messages = generate(opts.records)
    python = worker_python()
    print(f"input: {len(messages)} records on {PARTITIONS} partitions; worker env {python}", flush=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="nr-portable-") as tmp:
        tmp_path = Path(tmp)
        with local_broker(tmp_path, opts.bootstrap_servers) as bootstrap, PrismServer(prism_binary()) as server:
            for workers in opts.workers:
                r = one_run(bootstrap, messages, workers, python, server.endpoint, tmp_path)
                results.append(r)
                print(f"{workers} worker(s) asked, {r['workers_started']} started: {r['steady']:,.0f} records/s "
                      f"steady (first output to the last commit), {r['end_to_end']:,.0f} records/s end to end "
                      f"(first output after {r['first_output_after']:.1f} s; {r['outputs']} outputs)", flush=True)
    if len(results) >= 2 and results[0]["steady"] > 0:
        print(f"ratio steady {results[1]['workers_asked']} / {results[0]['workers_asked']} workers: "
              f"{results[1]['steady'] / results[0]['steady']:.2f}")


if __name__ == "__main__":
    main()
