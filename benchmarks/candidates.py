"""What finding candidate names costs, per core, next to tagging; and what the NER model adds.

Over the same articles (the synthetic en/ru/uk mix of ``benchmarks/tagging.py``: Telegram-sized
posts, feed summaries and full articles, one sentence in three from the evaluation set), on one
core, after a warm-up pass:

* ``tag``        Tagger.tag (topics and organizations): the reference;
* ``find``       the candidates finder without NER (quotes, organization words) on every
                 article: what the streaming ``RankCandidates`` step adds;
* ``ner``        slovnet's model on the Russian articles that carry a watched topic (what
                 `newsradar candidates` does): its load time, articles/s and characters/s.

Then, on the labeled evaluation set (``tests/fixtures/eval``), where the model helps: the
names only it finds (on Russian articles with a topic), next to those quotes and
organization words find.

    .venv/bin/python benchmarks/candidates.py [--articles 2000] [--seed 1] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.quality import load_items  # noqa: E402
from benchmarks.tagging import _tagged_articles, make_articles  # noqa: E402
from newsradar.config import load_watchlist  # noqa: E402
from newsradar.records import RawArticle, TaggedArticle  # noqa: E402
from transforms import ner  # noqa: E402
from transforms.candidates import Finder  # noqa: E402
from transforms.tagging import Tagger  # noqa: E402

WATCHLIST = REPO / "config" / "watchlist.yaml"


def timed(fn, items) -> tuple[float, list]:
    started = time.process_time()
    out = [fn(x) for x in items]
    return time.process_time() - started, out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    watchlist = load_watchlist(WATCHLIST)
    tagger = Tagger(watchlist)
    finder = Finder(watchlist, pipelines=tagger.pipelines)
    articles = _tagged_articles(make_articles(args.articles, args.seed))
    for a in articles[:200]:  # warm the key caches
        finder.find(tagger.tag(a))
    tag_s, tagged = timed(tagger.tag, articles)
    find_s, _ = timed(finder.find, tagged)
    topical_ru = [t for t in tagged if t.topics and t.lang == "ru"]
    started = time.perf_counter()
    ner.load_model()
    load_s = time.perf_counter() - started
    texts = [t.article.title + "\n\n" + t.article.text for t in topical_ru]
    ner_s, _ = timed(ner.entities, texts)
    chars = sum(min(len(t), ner.MAX_NER_CHARS) for t in texts)

    # the evaluation set: written like news (quotes, names), so the finder's prefilter lets more through
    items = []
    for i, item in enumerate(load_items()):
        raw = RawArticle(article_id=f"eval:{item.id}", source_id="eval", source_kind="rss", url="", title=item.title,
                         text=item.text, published_at="2026-05-01T00:00:00Z", fetched_at="2026-05-01T00:00:00Z")
        items.append(TaggedArticle(article=raw, lang=item.lang, story_id=str(i)))
    eval_tag_s, eval_tagged = timed(tagger.tag, items * 3)
    eval_find_s, _ = timed(finder.find, eval_tagged)
    # where the model helps
    with_ner = Finder(watchlist, pipelines=tagger.pipelines, ner=True)
    only_ner, by_rules, ner_articles = [], set(), 0
    for t in eval_tagged[:len(items)]:
        _lang, found = with_ner.find(t)
        ner_articles += bool(t.topics and t.lang == "ru")
        for f in found:
            if f.via == "ner":
                only_ner.append(f.text)
            else:
                by_rules.add(f.text)
    figures = {
        "articles": len(articles),
        "tag_articles_per_s": round(len(articles) / tag_s),
        "find_articles_per_s": round(len(articles) / find_s),
        "find_cost_of_tagging": round(find_s / tag_s, 3),
        "ner_load_s": round(load_s, 2),
        "ner_articles": len(topical_ru),
        "ner_articles_per_s": round(len(topical_ru) / ner_s, 1) if ner_s else None,
        "ner_chars_per_s": round(chars / ner_s) if ner_s else None,
        "eval_tag_articles_per_s": round(len(eval_tagged) / eval_tag_s),
        "eval_find_articles_per_s": round(len(eval_tagged) / eval_find_s),
        "eval_find_cost_of_tagging": round(eval_find_s / eval_tag_s, 3),
        "eval_ru_articles_with_topic": ner_articles,
        "eval_names_by_quotes_or_head": len(by_rules),
        "eval_names_only_ner": len(only_ner),
        "eval_only_ner_examples": sorted(set(only_ner))[:15],
    }
    if args.json:
        print(json.dumps(figures, ensure_ascii=False, indent=2))
    else:
        for k, v in figures.items():
            print(f"{k:<32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
