"""Language id on a shorter sample: how often the label changes, and what it saves.

``detect_language`` looks at the first ``SAMPLE_CHARS`` characters of title and text. This
compares the labels (en, ru, uk, other, after the hint rule) at the shipped sample length
with those at other lengths, on every text the project has at hand: the real-world feeds and
Telegram pages in /work/shared/realworld (read in place), the fixtures (eval set, short posts,
stories) and the benchmark mix (benchmarks/tagging.py ``make_articles``); plus the CPU time
per text at each length.

    .venv/bin/python benchmarks/language_sample.py [--lengths 600 300 200] [--mix 3000]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REALWORLD = Path("/work/shared/realworld")


def _feed_texts() -> list[tuple[str, str, str | None]]:
    from newsradar.feeds import FeedError, parse_feed
    from transforms.normalize import clean_article

    out = []
    for path in sorted((REALWORLD / "feeds").glob("*")):
        try:
            parsed = parse_feed(path.read_bytes(), {}, source_id="bench", fetched_at=datetime.now(UTC))
        except FeedError:
            continue
        for raw in parsed.records:
            clean = clean_article(raw)
            out.append((f"feed {path.name}", f"{clean.title}\n{clean.text}", clean.lang_hint))
    return out


def _telegram_texts() -> list[tuple[str, str, str | None]]:
    from connectors.telegram.export import flatten_text
    from connectors.telegram.webparse import parse_page
    from newsradar.text import normalize_text

    out = []
    for path in sorted((REALWORLD / "telegram-export").glob("*.json")):
        for msg in json.loads(path.read_text("utf-8")).get("messages", []):
            text = normalize_text(flatten_text(msg.get("text", "")))
            if text:
                out.append((f"export {path.name}", text, None))
    for path in sorted((REALWORLD / "telegram-web").glob("*.html")):
        for msg in parse_page(path.read_bytes()).messages:
            if msg.text:
                out.append((f"web {path.name}", normalize_text(msg.text), None))
    return out


def _fixture_texts() -> list[tuple[str, str, str | None]]:
    out = []
    fixtures = REPO / "tests" / "fixtures"
    paths = [*sorted((fixtures / "eval").glob("*.jsonl")), fixtures / "pipeline" / "languages.jsonl",
             fixtures / "pipeline" / "stories.jsonl"]
    for path in paths:
        for line in path.read_text("utf-8").splitlines():
            if line.strip():
                row = json.loads(line)
                out.append((f"fixture {path.name}", f"{row.get('title', '')}\n{row['text']}", row.get("lang")))
    return out


def _mix_texts(n: int) -> list[tuple[str, str, str | None]]:
    from benchmarks.tagging import make_articles

    return [("benchmark mix", f"{title}\n{text}", lang) for lang, title, text in make_articles(n, 1)]


def main(argv=None) -> int:
    import transforms.normalize as normalize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[600, 300, 200])
    parser.add_argument("--mix", type=int, default=3000, help="texts of the benchmark mix")
    args = parser.parse_args(argv)
    corpora = {"real-world feeds": _feed_texts(), "real-world Telegram": _telegram_texts(),
               "fixtures": _fixture_texts(), "benchmark mix": _mix_texts(args.mix)}
    detector = normalize.shared_detector()
    shipped = normalize.SAMPLE_CHARS
    labels: dict[int, dict[str, list[str]]] = {}
    for length in args.lengths:
        normalize.SAMPLE_CHARS = length
        labels[length] = {}
        for name, texts in corpora.items():
            for _where, text, hint in texts[:50]:  # models loaded, caches warm
                normalize.detect_language(text, hint, detector)
            t = time.process_time()
            labels[length][name] = [normalize.detect_language(text, hint, detector) for _w, text, hint in texts]
            spent = time.process_time() - t
            print(f"sample {length:>4} chars, {name:<20} {len(texts):>5} texts: {1000 * spent / max(len(texts), 1):.3f} ms/text "
                  f"{dict(Counter(labels[length][name]))}")
    normalize.SAMPLE_CHARS = shipped
    base = args.lengths[0]
    for length in args.lengths[1:]:
        for name, texts in corpora.items():
            changed = [(texts[i][0], a, b, texts[i][1][:80]) for i, (a, b) in
                       enumerate(zip(labels[base][name], labels[length][name], strict=True)) if a != b]
            print(f"{length} vs {base} chars, {name}: {len(changed)} of {len(texts)} labels differ")
            for where, a, b, head in changed[:10]:
                print(f"    {where}: {a} -> {b}  {head!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
