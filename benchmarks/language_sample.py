"""Language id on a shorter sample, and decided without lingua: how often the label
changes, and what it saves.

``detect_language`` looks at the first ``SAMPLE_CHARS`` characters of title and text. This
compares the labels (en, ru, uk, other, after the hint rule) at the shipped sample length
with those at other lengths, on every text the project has at hand: the real-world feeds and
Telegram pages in ../shared/realworld (read in place; ``NEWSRADAR_REALWORLD`` to point
elsewhere), the fixtures (eval set, short posts, stories) and the benchmark mix
(benchmarks/tagging.py ``make_articles``); plus the CPU time per text at each length.

``--plain`` instead measures the clear-case rule (``transforms.normalize.plain_language``)
against lingua at the shipped length: on how many texts the rule decides, whether lingua
alone gives every one of them the same label under each hint (none, en, ru, uk), lingua's
lowest confidence there, and the CPU time per text with the rule and without it.

    .venv/bin/python benchmarks/language_sample.py [--lengths 600 300 200] [--mix 3000]
    .venv/bin/python benchmarks/language_sample.py --plain [--mix 3000]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

REALWORLD = Path(os.environ.get("NEWSRADAR_REALWORLD") or REPO.parent / "shared" / "realworld")


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


def corpora(mix: int) -> dict[str, list[tuple[str, str, str | None]]]:
    """The texts at hand by corpus: (where, title and text, the source's language hint); the
    benchmark mix only when ``mix`` > 0 (making it builds its vocabulary, several seconds)."""
    out = {"real-world feeds": _feed_texts(), "real-world Telegram": _telegram_texts(), "fixtures": _fixture_texts()}
    if mix > 0:
        out["benchmark mix"] = _mix_texts(mix)
    return out


def plain_disagreements(texts, detector) -> tuple[int, list[tuple[str, str, str, float]], float]:
    """How many of ``texts`` the clear-case rule decides; those where lingua alone would not
    give the same label under every hint (none, en, ru, uk): its top language is another, or
    its confidence is below ``CONFIDENT``, where a hint would decide (where, the rule's label,
    lingua's, its confidence); and lingua's lowest top confidence on the decided ones (1.0
    when none)."""
    from newsradar.text import blank_long_words
    from transforms.normalize import CONFIDENT, SAMPLE_CHARS, TARGET_LANGS, plain_language

    decided, differ, lowest = 0, [], 1.0
    for where, text, _hint in texts:
        sample = blank_long_words(text[:SAMPLE_CHARS])
        found = plain_language(sample)
        if found is None:
            continue
        decided += 1
        top = detector.compute_language_confidence_values(sample)[0]
        code = top.language.iso_code_639_1.name.lower()
        lingua = code if code in TARGET_LANGS else "other"
        lowest = min(lowest, top.value)
        if lingua != found or top.value < CONFIDENT:
            differ.append((where, found, lingua, top.value))
    return decided, differ, lowest


def compare_plain(texts_by_corpus, detector) -> int:
    import transforms.normalize as normalize

    failures = 0
    for name, texts in texts_by_corpus.items():
        decided, differ, lowest = plain_disagreements(texts, detector)
        spent = {}
        for plain in (True, False):
            for _w, text, hint in texts[:50]:  # models loaded, caches warm
                normalize.detect_language(text, hint, detector, plain=plain)
            t = time.process_time()
            for _w, text, hint in texts:
                normalize.detect_language(text, hint, detector, plain=plain)
            spent[plain] = 1000 * (time.process_time() - t) / max(len(texts), 1)
        print(f"{name:<20} {len(texts):>5} texts: the rule decides {decided} ({100 * decided / max(len(texts), 1):.0f} %), "
              f"lingua differs on {len(differ)}, lingua's lowest confidence there {lowest:.2f}; "
              f"{spent[True]:.3f} ms/text with the rule, {spent[False]:.3f} without")
        for where, found, lingua, confidence in differ[:10]:
            print(f"    {where}: rule {found}, lingua {lingua} (confidence {confidence:.2f})")
        failures += len(differ)
    return 1 if failures else 0


def main(argv=None) -> int:
    import transforms.normalize as normalize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", type=int, nargs="+", default=[600, 300, 200])
    parser.add_argument("--mix", type=int, default=3000, help="texts of the benchmark mix")
    parser.add_argument("--plain", action="store_true", help="measure the clear-case rule against lingua instead")
    args = parser.parse_args(argv)
    texts_by_corpus = corpora(args.mix)
    detector = normalize.shared_detector()
    if args.plain:
        return compare_plain(texts_by_corpus, detector)

    shipped = normalize.SAMPLE_CHARS
    labels: dict[int, dict[str, list[str]]] = {}
    for length in args.lengths:
        normalize.SAMPLE_CHARS = length
        labels[length] = {}
        for name, texts in texts_by_corpus.items():
            for _where, text, hint in texts[:50]:  # models loaded, caches warm
                normalize.detect_language(text, hint, detector, plain=False)
            t = time.process_time()
            labels[length][name] = [normalize.detect_language(text, hint, detector, plain=False)
                                    for _w, text, hint in texts]
            spent = time.process_time() - t
            print(f"sample {length:>4} chars, {name:<20} {len(texts):>5} texts: {1000 * spent / max(len(texts), 1):.3f} ms/text "
                  f"{dict(Counter(labels[length][name]))}")
    normalize.SAMPLE_CHARS = shipped
    base = args.lengths[0]
    for length in args.lengths[1:]:
        for name, texts in texts_by_corpus.items():
            changed = [(texts[i][0], a, b, texts[i][1][:80]) for i, (a, b) in
                       enumerate(zip(labels[base][name], labels[length][name], strict=True)) if a != b]
            print(f"{length} vs {base} chars, {name}: {len(changed)} of {len(texts)} labels differ")
            for where, a, b, head in changed[:10]:
                print(f"    {where}: {a} -> {b}  {head!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
