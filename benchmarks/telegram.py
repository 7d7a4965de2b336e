"""Telegram connector throughput: t.me/s page parsing and streaming a Desktop export.

    .venv/bin/python benchmarks/telegram.py [--pages 200] [--export-messages 40000]

Page parsing: the fixture page tests/fixtures/telegram/web/newsradar_test/latest.html (13
posts of every kind, 37 KB) parsed ``--pages`` times. Export: a generated result.json of
``--export-messages`` posts (~3.2 KB each: long Cyrillic text, half of them as entity lists,
one in 50 a service message), read to the end through ExportPoller in batches of 500 in a
fresh interpreter, which reports its peak RSS before and after.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

PAGE = REPO / "tests/fixtures/telegram/web/newsradar_test/latest.html"

_READ = """
import asyncio, json, resource, sys, time
from datetime import UTC, datetime
from types import SimpleNamespace
from connectors.telegram.export import ExportPoller
src = SimpleNamespace(id="bench", path=sys.argv[1], channel=None, timezone="UTC", lang=None)
poller = ExportPoller(src, batch=500)
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
cursor, records, started = None, 0, time.perf_counter()
while True:
    result = asyncio.run(poller.poll(cursor, datetime.now(UTC)))
    assert result.error is None, result.error
    records += len(result.records)
    cursor = result.cursor
    if cursor["done"]:
        break
seconds = time.perf_counter() - started
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": seconds, "records": records, "rss_before_kb": before, "rss_peak_kb": after}))
"""


def bench_pages(pages: int) -> dict:
    from connectors.telegram.webparse import parse_page

    body = PAGE.read_bytes()
    parse_page(body)
    times = []
    for _ in range(pages):
        started = time.perf_counter()
        page = parse_page(body)
        times.append(time.perf_counter() - started)
    per_page = statistics.median(times)
    return {"page_kb": len(body) / 1024, "posts": len(page.messages), "ms_per_page": per_page * 1000,
            "pages_per_s": 1 / per_page, "posts_per_s": len(page.messages) / per_page}


def write_export(path: Path, messages: int) -> int:
    body = "Мобилизация: сводка за день, военкоматы, повестки, пикеты у администрации. " * 24
    with open(path, "w", encoding="utf-8") as f:
        f.write('{\n "name": "Bench", "type": "public_channel", "id": 1555000111,\n "messages": [\n')
        for i in range(1, messages + 1):
            if i % 50 == 0:
                msg = {"id": i, "type": "service", "date_unixtime": "1767225600", "action": "pin_message", "text": ""}
            elif i % 2:
                msg = {"id": i, "type": "message", "date_unixtime": str(1767225600 + i), "text": f"{i}: {body}"}
            else:
                msg = {"id": i, "type": "message", "date_unixtime": str(1767225600 + i),
                       "text": [f"{i}: ", {"type": "bold", "text": "Срочно"}, " ", body]}
            f.write(("  " if i == 1 else ",\n  ") + json.dumps(msg, ensure_ascii=False))
        f.write("\n ]\n}\n")
    return path.stat().st_size


def bench_export(messages: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "result.json"
        size = write_export(path, messages)
        out = subprocess.run([sys.executable, "-c", _READ, str(path)], capture_output=True, text=True, cwd=REPO,
                             check=True)
    stats = json.loads(out.stdout)
    return {
        "file_mb": size / 2**20, "records": stats["records"], "seconds": stats["seconds"],
        "records_per_s": stats["records"] / stats["seconds"], "mb_per_s": size / 2**20 / stats["seconds"],
        "rss_growth_mb": (stats["rss_peak_kb"] - stats["rss_before_kb"]) / 1024,
        "rss_peak_mb": stats["rss_peak_kb"] / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--export-messages", type=int, default=40_000)
    args = parser.parse_args()
    pages = bench_pages(args.pages)
    print(f"t.me/s page ({pages['page_kb']:.0f} KB, {pages['posts']} posts): {pages['ms_per_page']:.2f} ms/page "
          f"(median of {args.pages}), {pages['pages_per_s']:.0f} pages/s, {pages['posts_per_s']:.0f} posts/s")
    export = bench_export(args.export_messages)
    print(f"export {export['file_mb']:.0f} MB, {export['records']} records: {export['seconds']:.1f} s, "
          f"{export['records_per_s']:.0f} records/s, {export['mb_per_s']:.1f} MB/s; peak RSS "
          f"{export['rss_peak_mb']:.0f} MB (+{export['rss_growth_mb']:.1f} MB while reading)")


if __name__ == "__main__":
    main()
