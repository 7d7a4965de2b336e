"""Tagging throughput per core and memory with a large watchlist.

Measures, on one core and in one run, over the same synthetic en/ru/uk articles:

* ``tokenizer``   spaCy's blank tokenizer alone (reference);
* ``bare``        the bare spaCy stages the tagger is made of: tokenizer, the match-key
                  lemmatizer (cached pymorphy3 / lookup table) and the two PhraseMatchers,
                  called directly in a loop;
* ``chain``       the whole plain-Python chain: Tagger.analyze (topics + organizations into
                  records) + events + novelty state per organization; and again without the
                  topics' learned classifiers (their cost per article is the difference);
* ``beam``        the Beam steps TagArticles + RaiseAlerts (stateful, keyed by organization)
                  on the DirectRunner's in-process engine (FnApiRunner, one worker); the time of
                  a one-article run of the same pipeline is subtracted as fixed start-up cost.

and, in a child process, the resident memory with ``--orgs`` synthetic watched organizations
(each with en/ru/uk aliases, all inflected forms, transliterations and synonym variants).

Articles: lengths like the sources' (half Telegram-sized posts of ~60 words, a third feed
summaries of ~130, the rest full articles of ~600), languages ru 50 % / uk 25 % / en 25 %, words
drawn by a Zipf law over each language's frequent words followed by dictionary word forms (so
the caches see a realistic long tail), and one sentence in three taken from the labeled
evaluation set (so the matchers find topics and organizations). Deterministic for a seed.

    .venv/bin/python benchmarks/tagging.py [--articles 20000] [--orgs 10000] [--seed 1]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

# Frequent words first: real text is mostly these.
FREQUENT = {
    "en": "the of and to in a is that for on it with as was by at from he said his be have are this "
          "an not they which or has but were had their one its after been also who new two more".split(),
    "ru": "и в не на что с по к а он как это из но за то о от же для все так она его было у мы до "
          "они сказал при также уже если был года или только может ее их будет после время".split(),
    "uk": "і в на що не з та до у як це за по від але він для так його все був вона ж про ми також "
          "вже року які було коли може їх після час що б були тому лише".split(),
}
LANG_SHARE = (("ru", 0.5), ("uk", 0.25), ("en", 0.25))
LENGTHS = ((60, 0.5), (130, 0.33), (600, 0.17))


def _vocabulary(lang: str, size: int, rng: random.Random) -> list[str]:
    if lang == "en":
        from spacy.lookups import load_lookups

        table = load_lookups("en", ["lemma_lookup"]).get_table("lemma_lookup")
        forms = sorted({v for v in table.values() if isinstance(v, str) and v.isalpha()})
    else:
        import pymorphy3

        morph = pymorphy3.MorphAnalyzer(lang=lang)
        forms = [w for i, (w, _) in enumerate(morph.dictionary.words.iteritems()) if i % 13 == 0 and w.isalpha()]
    rng.shuffle(forms)
    return FREQUENT[lang] + forms[:size]


def _eval_sentences() -> dict[str, list[str]]:
    out: dict[str, list[str]] = {"en": [], "ru": [], "uk": []}
    for path in sorted((REPO / "tests" / "fixtures" / "eval").glob("*.jsonl")):
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                obj = json.loads(line)
                out[obj["lang"]].append(obj["text"])
    return out


def make_articles(n: int, seed: int) -> list[tuple[str, str, str]]:
    """(lang, title, text) triples, deterministic for ``seed``."""
    import numpy as np

    rng = random.Random(seed)
    nrng = np.random.default_rng(seed)
    vocab = {lang: _vocabulary(lang, 150_000, random.Random(seed + i)) for i, lang in enumerate(FREQUENT)}
    sentences = _eval_sentences()
    langs = [lang for lang, _ in LANG_SHARE]
    out = []
    for _ in range(n):
        lang = rng.choices(langs, weights=[w for _, w in LANG_SHARE])[0]
        length = rng.choices([n for n, _ in LENGTHS], weights=[w for _, w in LENGTHS])[0]
        words = vocab[lang]
        ranks = nrng.zipf(1.1, size=length * 2)
        ranks = ranks[ranks <= len(words)][:length]
        tokens = [words[r - 1] for r in ranks]
        parts = []
        for i in range(0, len(tokens), 12):
            chunk = tokens[i:i + 12]
            if chunk:
                parts.append(chunk[0].capitalize() + (" " + " ".join(chunk[1:]) if len(chunk) > 1 else "") + ".")
            if rng.random() < 0.33 / max(1, len(tokens) // 12):
                parts.append(rng.choice(sentences[lang]))
        title = " ".join(tokens[:6]).capitalize()
        out.append((lang, title, " ".join(parts)))
    return out


def synthetic_watchlist(n_orgs: int, seed: int):
    """A watchlist with the shipped topics and ``n_orgs`` made-up organizations whose names
    are built from dictionary words (so inflection, translit and synonyms all apply)."""
    from newsradar.config import load_watchlist
    from newsradar.config.watchlist import Watchlist

    base = load_watchlist(REPO / "config" / "watchlist.yaml")
    rng = random.Random(seed)
    vocab = {lang: _vocabulary(lang, 40_000, random.Random(seed + i))[60:] for i, lang in enumerate(FREQUENT)}
    heads = {"en": ["Union", "Council", "Committee", "Movement", "Foundation"],
             "ru": ["Союз", "Совет", "Комитет", "Движение", "Фонд"],
             "uk": ["Союз", "Рада", "Комітет", "Рух", "Фонд"]}
    orgs = [o.model_dump() for o in base.organizations]
    for i in range(n_orgs):
        aliases = {}
        for lang in ("en", "ru", "uk"):
            words = [rng.choice(vocab[lang]) for _ in range(rng.randint(2, 3))]
            aliases[lang] = [f"{rng.choice(heads[lang])} {' '.join(words)}", " ".join(w.capitalize() for w in words)]
        orgs.append({"id": f"org-{i}", "name": f"Organization {i}", "aliases": aliases,
                     "acronyms": [f"ORG{i}"] if i % 4 == 0 else []})
    data = base.model_dump()
    data["organizations"] = orgs
    data["examples"] = []
    return Watchlist.model_validate(data)


# CPU time of this process, not wall time: the machine is shared, and articles per CPU-second
# is what "per core" means. Everything measured runs in this process (the Beam run too).
@dataclass
class Result:
    name: str
    seconds: float
    articles: int
    tokens: int

    @property
    def rate(self) -> float:
        return self.articles / self.seconds if self.seconds else float("inf")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def bench_stages(warm, articles, watchlist) -> list[Result]:
    """Each stage on a Tagger of its own: first over ``warm`` (untimed, fills the caches as a
    running worker's are), then timed over ``articles``; so every stage starts alike."""
    from transforms.alert_rules import AlertRules, OrgState, events_of
    from transforms.nlp import analysis_text
    from transforms.tagging import Tagger

    def texts(items):
        return [(lang, analysis_text(title, text)) for lang, title, text in items]

    def tokenizer(tagger, items):
        n = 0
        for lang, text in texts(items):
            n += len(tagger.pipelines.nlp[lang].make_doc(text))
        return n

    def bare(tagger, items):
        topic_pm = {lang: m._matcher for lang, m in tagger.topic_matchers.items()}
        name_pm = {lang: m._names for lang, m in tagger.org_matchers.items()}
        acro_pm = {lang: m._acronyms for lang, m in tagger.org_matchers.items()}
        for lang, text in texts(items):
            doc = tagger.pipelines(text, lang)
            topic_pm[lang](doc)
            name_pm[lang](doc)
            acro_pm[lang](doc)

    def chain(tagger, items):
        rules = AlertRules(lambda: watchlist)
        states: dict[str, OrgState] = {}
        for article in _tagged_articles(items):
            out = tagger.tag(article)
            for org_id, event in events_of(out):
                rules.apply(states.setdefault(org_id, OrgState()), event)

    results = []
    tokens = 0
    stages = (("tokenizer", tokenizer, watchlist), ("bare", bare, watchlist), ("chain", chain, watchlist),
              ("chain-rules", chain, watchlist.without_learned()))
    for name, stage, wl in stages:
        tagger = Tagger(wl)
        stage(tagger, warm)
        misses = sum(m for _n, m in tagger.pipelines.cache_stats().values())
        t = time.process_time()
        n = stage(tagger, articles)
        results.append(Result(name, time.process_time() - t, len(articles), 0))
        results[-1].misses = sum(m for _n, m in tagger.pipelines.cache_stats().values()) - misses
        tokens = n or tokens
    for r in results:
        r.tokens = tokens
    return results


def _tagged_articles(articles):
    from newsradar.records import RawArticle, TaggedArticle, format_time

    start = datetime(2026, 3, 1, tzinfo=UTC)
    out = []
    for i, (lang, title, text) in enumerate(articles):
        when = format_time(start + timedelta(seconds=30 * i))
        raw = RawArticle(article_id=f"bench:{i}", source_id="bench", source_kind="rss", url=f"https://b.example/{i}",
                         title=title, text=text, published_at=when, fetched_at=when)
        out.append(TaggedArticle(article=raw, lang=lang, story_id=raw.article_id))
    return out


_SHARED: list = []


def _shared_article(i: int):
    return _SHARED[i]


def bench_beam(warm, articles, watchlist) -> Result:
    """The Beam steps over warm + articles, minus a run over warm alone: the time the
    articles take once the worker's caches are as warm as in :func:`bench_stages`."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from apache_beam.runners.portability.fn_api_runner import FnApiRunner

    from transforms.raise_alerts import RaiseAlerts
    from transforms.reload import WatchlistSource
    from transforms.tagging import TagArticles

    source = WatchlistSource.fixed(watchlist)

    def run(n: int) -> float:
        t = time.process_time()
        with beam.Pipeline(runner=FnApiRunner(), options=PipelineOptions(flags=[])) as p:
            tagged = (
                p
                | beam.Create(range(n), reshuffle=False)
                | "Article" >> beam.Map(_shared_article)
                | TagArticles(source)
            ).articles
            _ = (tagged | RaiseAlerts(source)).alerts | beam.combiners.Count.Globally()
        return time.process_time() - t

    # The source hands out articles already in memory, as the bare loop does: a Create of
    # the records themselves would pickle and bz2-compress them, a cost no real source has.
    _SHARED[:] = _tagged_articles(warm + articles)
    base = run(len(warm))
    total = run(len(warm) + len(articles))
    result = Result("beam", max(1e-9, total - base), len(articles), 0)
    result.fixed = base  # type: ignore[attr-defined]
    result.total = total  # type: ignore[attr-defined]
    return result


def memory_child(n_orgs: int, n_articles: int, seed: int) -> dict:
    """Runs in a fresh process: RSS before, after building the tagger, after tagging."""
    before = rss_mb()
    watchlist = synthetic_watchlist(n_orgs, seed)
    from transforms.tagging import Tagger

    t = time.process_time()
    tagger = Tagger(watchlist)
    build = time.process_time() - t
    built = rss_mb()
    articles = make_articles(n_articles, seed + 7)
    found = 0
    t = time.process_time()
    for lang, title, text in articles:
        found += len(tagger.analyze(title, text, lang).mentions)
    tag_seconds = time.process_time() - t
    return {
        "orgs": len(watchlist.organizations),
        "patterns": sum(m.pattern_count for m in tagger.org_matchers.values()),
        "build_seconds": round(build, 1),
        "rss_before_mb": round(before),
        "rss_built_mb": round(built),
        "rss_after_tagging_mb": round(rss_mb()),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "articles_per_second_with_orgs": round(n_articles / tag_seconds),
        "mentions": found,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--warmup", type=int, default=3_000, help="articles tagged first to warm the caches")
    parser.add_argument("--orgs", type=int, default=10_000, help="watched organizations for the memory run (0: skip)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    import logging

    logging.getLogger("apache_beam").setLevel(logging.WARNING)
    if args.memory_child:
        print(json.dumps(memory_child(args.orgs, 2_000, args.seed)))
        return 0

    from newsradar.config import load_watchlist

    watchlist = load_watchlist(REPO / "config" / "watchlist.yaml")
    t = time.process_time()
    warm = make_articles(args.warmup, args.seed + 100)
    articles = make_articles(args.articles, args.seed)
    print(f"generated {len(warm) + len(articles)} articles in {time.process_time() - t:.1f}s")
    # The machine is shared: every figure is the median of --repeat runs, interleaved.
    runs = []
    for _ in range(args.repeat):
        runs.append((bench_stages(warm, articles, watchlist), bench_beam(warm, articles, watchlist)))
    tokens = runs[0][0][0].tokens
    print(f"\n{len(articles)} articles, {tokens / len(articles):.0f} tokens per article on average, one core, "
          f"caches warmed on {len(warm)} other articles; median of {args.repeat} runs (CPU time)")
    rates = {}
    for i, name in enumerate(("tokenizer", "bare", "chain")):
        rates[name] = statistics.median(r[0][i].rate for r in runs)
        print(f"  {name:<10} {rates[name]:>8.0f} articles/s  {rates[name] * tokens / len(articles) / 1000:>6.0f}k tokens/s")
    rules_only = statistics.median(r[0][3].rate for r in runs)
    print(f"  {'chain without the learned classifiers':<10} {rules_only:.0f} articles/s: they cost "
          f"{1000 / rates['chain'] - 1000 / rules_only:.3f} ms per article")
    misses = statistics.median(r[0][2].misses for r in runs)
    print(f"  (word forms new to the warmed caches: {1000 * misses / tokens:.0f} per 1000 tokens)")
    rates["beam"] = statistics.median(r[1].rate for r in runs)
    print(f"  {'beam':<10} {rates['beam']:>8.0f} articles/s  (a run over warm-up + articles minus one over the warm-up)")
    print(f"  beam / bare = {rates['beam'] / rates['bare']:.2f}   beam / chain = {rates['beam'] / rates['chain']:.2f}")
    print("  per run (tokenizer, bare, chain, chain-rules, beam): " + "; ".join(
        ", ".join(f"{x.rate:.0f}" for x in (*st, bm)) for st, bm in runs))
    if args.orgs:
        child = subprocess.run(
            [sys.executable, __file__, "--memory-child", "--orgs", str(args.orgs), "--seed", str(args.seed)],
            capture_output=True, text=True, check=True,
        )
        mem = json.loads(child.stdout.strip().splitlines()[-1])
        print(f"\nmemory with {mem['orgs']} watched organizations ({mem['patterns']} alias patterns):")
        for k, v in mem.items():
            print(f"  {k:<32} {v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
