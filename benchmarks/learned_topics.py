"""An experiment: does a small learned topic model generalize to a new writer better than the
rules? Leave-one-writer-out on the evaluation set (tests/fixtures/eval, benchmarks/quality.py).

For each held-out split F in fresh2 … fresh7 (each by a different writer), a model per topic is
trained on every item not in F and tested on F. Rows printed per topic, precision/recall per F:

* ``model``: L2-regularized logistic regression, with its regularization and its threshold
  chosen on the training items only, by an inner leave-one-split-out cross-validation (the
  training splits are the groups, so the inner folds also test on a writer left out); the
  threshold maximizes F1 of the inner out-of-fold scores.
* ``rules today``: the shipped watchlist. The rules have been tuned on fresh2 … fresh6 since, so
  this is printed for reference only (fresh7 excepted, measured once untuned); it is not a fair
  baseline.
* ``rules then``: the fair baseline, each split measured once on the rules before they were tuned
  on it (docs/benchmarks.md; copied here, not measured).
* ``rules OR model``: today's rules OR the model at a high-precision threshold (the lowest at
  which the inner out-of-fold precision is at least :data:`HIGH_PRECISION`). Contaminated: the
  rules in it were tuned on F (except fresh7).

Features, binary and L2-normalized per item, over the title and text (:func:`analysis_text`):
``keys`` (the tagger's match keys from :class:`transforms.nlp.Pipelines`, unigrams and bigrams),
``words`` (lower-cased words, unigrams and bigrams) and ``chars`` (character 3-5-grams inside
words). ``pooled``: one model for the three languages with the language as a feature;
``per-lang``: one model per language.

The solver is plain numpy. With no idf and a per-item normalization, training on any subset only
needs the items' Gram matrix K = X Xᵀ, computed once per feature set: gradient descent on the
weights w = Xᵀa is gradient descent on a (a ← a − η((p − y)/n + λa), scores K a + b), which gives
the same model as the primal problem. Nothing is random, so the figures are deterministic.

With ``--write FILE`` it trains the classifiers the build ships instead (newsradar/topic_model.py,
docs/tagging.md "Learned classifiers"): ``keys`` pooled, on every item but those of the
``--exclude`` splits (the ones kept to measure it on), λ and threshold chosen by the inner
leave-one-split-out cross-validation as above (the threshold: the high-precision one, since the
classifier is OR-ed with the rules), then fit on all of them and written as primal weights.

    .venv/bin/python benchmarks/learned_topics.py [--features keys,words,chars] [--lambdas 1e-5,1e-4,1e-3,1e-2] [--verbose]
    .venv/bin/python benchmarks/learned_topics.py --write newsradar/models/topics.json --exclude fresh7,fresh8
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import sys
import time
from collections import Counter
from pathlib import Path

# One BLAS thread: the Gram-matrix products are small, and threads fighting over a shared
# 2-core machine made them ten times slower (measured).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.quality import Counts, Item, load_items  # noqa: E402
from newsradar import topic_model  # noqa: E402
from newsradar.config import load_watchlist  # noqa: E402
from newsradar.text import blank_long_words  # noqa: E402
from transforms.nlp import Pipelines, analysis_text, fold  # noqa: E402
from transforms.tagging import MAX_ANALYZED_CHARS, Tagger  # noqa: E402
from transforms.topics import feature_names  # noqa: E402

TOPICS = ("mobilization", "protest")
HELD_OUT = ("fresh2", "fresh3", "fresh4", "fresh5", "fresh6", "fresh7")
LAMBDAS = (1e-5, 1e-4, 1e-3, 1e-2)
HIGH_PRECISION = 0.95
# Each split measured once on the rules before they were tuned on it (docs/benchmarks.md):
# (precision, recall); fresh2's precision is 1.00 for both topics there.
RULES_THEN = {
    "mobilization": {"fresh2": (1.00, 0.88), "fresh3": (0.93, 0.93), "fresh4": (0.95, 0.89),
                     "fresh5": (0.95, 0.95), "fresh6": (0.95, 0.74), "fresh7": (1.00, 0.88)},
    "protest": {"fresh2": (1.00, 0.83), "fresh3": (0.94, 0.71), "fresh4": (0.86, 0.72),
                "fresh5": (0.85, 0.77), "fresh6": (1.00, 0.62), "fresh7": (1.00, 0.83)},
}
# A shipped classifier keeps the weights of features at least this many training items have:
# one item's own words are its fingerprint, not evidence a new article will share (leaving
# them out made the file a fifth of the size and changed no prediction on fresh7, measured).
MIN_ITEMS = 2
MAX_ITER = 10_000  # the default grid converges in < 3,000 steps; λ = 1e-6 needs more
TOL = 1e-5

_WORD = re.compile(r"\w+(?:'\w+)*")


# ---------------------------------------------------------------------------
# features


def key_features(items: list[Item], pipelines: Pipelines) -> list[set[str]]:
    """Match keys as the tagger sees them (punctuation and spaces dropped), unigrams and bigrams:
    what a shipped classifier scores (transforms.topics.feature_names), on the Doc the tagger makes."""
    out = []
    for item in items:
        full = analysis_text(item.title, item.text)[:MAX_ANALYZED_CHARS]
        doc = pipelines(blank_long_words(full), item.lang)
        out.append(feature_names(doc))
    return out


def word_features(items: list[Item]) -> list[set[str]]:
    return [_grams(_WORD.findall(fold(analysis_text(i.title, i.text)))) for i in items]


def char_features(items: list[Item], low: int = 3, high: int = 5) -> list[set[str]]:
    out = []
    for item in items:
        grams = set()
        for word in _WORD.findall(fold(analysis_text(item.title, item.text))):
            padded = f" {word} "
            for n in range(low, high + 1):
                grams.update(padded[i:i + n] for i in range(len(padded) - n + 1))
        out.append(grams)
    return out


def _grams(tokens: list[str]) -> set[str]:
    return set(tokens) | {f"{a} {b}" for a, b in zip(tokens, tokens[1:], strict=False)}


def gram_matrix(features: list[set[str]], chunk: int = 4096) -> np.ndarray:
    """K = X Xᵀ of binary, L2-normalized rows. A feature seen in one item only adds to that
    item's diagonal entry, so only the shared ones are put in (chunked) dense columns."""
    n = len(features)
    df = Counter(f for fs in features for f in fs)
    shared = sorted(f for f, c in df.items() if c > 1)
    index = {f: j for j, f in enumerate(shared)}
    norms = np.sqrt(np.array([max(len(fs), 1) for fs in features], dtype=np.float64))
    K = np.zeros((n, n), dtype=np.float64)
    cols = [[index[f] for f in fs if f in index] for fs in features]
    for start in range(0, len(shared), chunk):
        block = np.zeros((n, min(chunk, len(shared) - start)), dtype=np.float32)
        for i, js in enumerate(cols):
            sel = [j - start for j in js if start <= j < start + chunk]
            block[i, sel] = 1.0
        K += (block @ block.T).astype(np.float64)
    singles = np.array([sum(1 for f in fs if df[f] == 1) for fs in features], dtype=np.float64)
    K[np.diag_indices(n)] += singles
    return K / np.outer(norms, norms)


def language_kernel(items: list[Item]) -> np.ndarray:
    """The language as a one-hot feature of weight 1: 1 where two items share a language."""
    langs = np.array([i.lang for i in items])
    return (langs[:, None] == langs[None, :]).astype(np.float64)


# ---------------------------------------------------------------------------
# L2 logistic regression on a Gram matrix


def fit(K: np.ndarray, Y: np.ndarray, lams: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """Minimize, per column c of ``Y`` (0/1), mean log-loss + λ_c/2 |w|² (bias not penalized),
    with w = Xᵀa; returns (a: n×C, b: C, whether the gradient fell under :data:`TOL` within
    :data:`MAX_ITER` steps). Nesterov's accelerated gradient with the step 1/L."""
    n, C = Y.shape
    # float32: each step reads all of K, so its size is the step's cost
    K = K.astype(np.float32)
    # The step needs the curvature of the weights and the bias together: the largest
    # eigenvalue of K + 11ᵀ (power iteration), not of K alone (the bias would oscillate).
    v = np.ones(n) / np.sqrt(n)
    for _ in range(50):
        v = K @ v + v.sum()
        v /= np.linalg.norm(v)
    top = float(v @ (K @ v) + v.sum() ** 2)
    L = 0.25 * top / n * 1.05 + lams
    step = 1.0 / L
    kappa = L / lams
    momentum = (np.sqrt(kappa) - 1) / (np.sqrt(kappa) + 1)
    a = np.zeros((n, C))
    b = np.zeros(C)
    a_prev, b_prev = a.copy(), b.copy()
    for it in range(MAX_ITER):
        ya = a + momentum * (a - a_prev)
        yb = b + momentum * (b - b_prev)
        p = _sigmoid(K @ ya + yb)
        g = (p - Y) / n + lams * ya
        gb = (p - Y).mean(axis=0)
        a_prev, b_prev = a, b
        a = ya - step * g
        b = yb - step * gb
        # every 25 steps: the gradient's norm in weight space, sqrt(gᵀKg), with the bias's
        if it % 25 == 24 and np.max(np.einsum("ic,ic->c", g, K @ g) + gb * gb) < TOL * TOL:
            return a, b, True
    return a, b, False


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def scores(K: np.ndarray, train: np.ndarray, test: np.ndarray, Y: np.ndarray, lams: np.ndarray
           ) -> tuple[np.ndarray, int]:
    """Probabilities on ``test`` (index arrays) of models fit on ``train`` (test×C), and 1 if
    the fit did not converge (else 0)."""
    a, b, converged = fit(K[np.ix_(train, train)], Y[train], lams)
    return _sigmoid(K[np.ix_(test, train)] @ a + b), int(not converged)


def out_of_fold(K: np.ndarray, idx: np.ndarray, groups: np.ndarray, Y: np.ndarray, lams: np.ndarray
                ) -> tuple[np.ndarray, int]:
    """Leave-one-group-out probabilities for the items ``idx`` (len(idx)×C), and how many of
    the fits did not converge."""
    out = np.zeros((len(idx), Y.shape[1]))
    unconverged = 0
    for g in sorted(set(groups[idx])):
        held = groups[idx] == g
        out[held], missed = scores(K, idx[~held], idx[held], Y, lams)
        unconverged += missed
    return out, unconverged


def best_f1_threshold(p: np.ndarray, y: np.ndarray) -> float:
    """The threshold with the highest F1 on (p, y), half-way to the next lower score."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    tp = np.cumsum(ys)
    f1 = 2 * tp / (np.arange(1, len(p) + 1) + ys.sum())
    # only cut between distinct scores
    ok = np.r_[ps[1:] < ps[:-1], True]
    k = int(np.argmax(np.where(ok, f1, -1)))
    return float((ps[k] + ps[k + 1]) / 2) if k + 1 < len(ps) else float(ps[k] / 2)


def precision_threshold(p: np.ndarray, y: np.ndarray, target: float) -> float:
    """The lowest threshold at which precision on (p, y) is at least ``target`` (1.0 if none)."""
    order = np.argsort(-p, kind="stable")
    ps, ys = p[order], y[order]
    precision = np.cumsum(ys) / np.arange(1, len(p) + 1)
    ok = (precision >= target) & np.r_[ps[1:] < ps[:-1], True]
    if not ok.any():
        return 1.0
    k = int(np.nonzero(ok)[0][-1])
    return float((ps[k] + ps[k + 1]) / 2) if k + 1 < len(ps) else float(ps[k] / 2)


# ---------------------------------------------------------------------------
# the experiment


class PR(Counts):
    """benchmarks.quality's counts of one prediction against the labels, printed as P/R."""

    @classmethod
    def of(cls, predicted: np.ndarray, gold: np.ndarray) -> PR:
        return cls(int((predicted & gold).sum()), int((predicted & ~gold).sum()), int((~predicted & gold).sum()))

    def __str__(self) -> str:
        return f"{self.precision:.2f}/{self.recall:.2f}"


def predict_split(K: np.ndarray, items: list[Item], Y: np.ndarray, held_out: str, by_lang: bool,
                  grid: tuple[float, ...] = LAMBDAS) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """For the items of ``held_out``: (model at the F1 threshold, model at the high-precision
    threshold) as booleans test×topic, and notes on the chosen λ and thresholds."""
    groups = np.array([i.split for i in items])
    langs = np.array([i.lang for i in items])
    test_all = np.nonzero(groups == held_out)[0]
    f1_pred = np.zeros((len(items), len(TOPICS)), dtype=bool)
    hp_pred = np.zeros_like(f1_pred)
    notes = []
    scopes = sorted(set(langs)) if by_lang else [None]
    T = len(TOPICS)
    lams = np.repeat(np.array(grid), T)  # columns: λ-major, topic-minor
    YY = np.tile(Y, (1, len(grid)))
    for scope in scopes:
        mask = np.ones(len(items), dtype=bool) if scope is None else langs == scope
        train = np.nonzero(mask & (groups != held_out))[0]
        test = np.nonzero(mask & (groups == held_out))[0]
        oof, unconverged = out_of_fold(K, train, groups, YY, lams)
        eps = 1e-12
        y_tr = YY[train]
        loss = -(y_tr * np.log(oof + eps) + (1 - y_tr) * np.log(1 - oof + eps)).mean(axis=0)
        final, missed = scores(K, train, test, YY, lams)
        if unconverged + missed:
            notes.append(f"{scope or 'all'}: {unconverged + missed} fit(s) stopped at {MAX_ITER} steps")
        for t, topic in enumerate(TOPICS):
            cols = [li * T + t for li in range(len(grid))]
            c = cols[int(np.argmin(loss[cols]))]
            y = Y[train, t].astype(bool)
            t_f1 = best_f1_threshold(oof[:, c], y)
            t_hp = precision_threshold(oof[:, c], y, HIGH_PRECISION)
            f1_pred[test, t] = final[:, c] >= t_f1
            hp_pred[test, t] = final[:, c] >= t_hp
            notes.append(f"{scope or 'all'}:{topic} λ={lams[c]:g} t={t_f1:.2f} t_hp={t_hp:.2f}")
    return f1_pred[test_all], hp_pred[test_all], notes


def nearest_similarity(K: np.ndarray, splits: np.ndarray) -> dict[str, float]:
    """Per held-out split, the median over its items of the cosine to the most similar item
    outside it: how close the training items come to what is tested."""
    out = {}
    for held in HELD_OUT:
        test, train = splits == held, splits != held
        out[held] = float(np.median(K[np.ix_(test, train)].max(axis=1)))
    return out


def rules_predictions(items: list[Item]) -> np.ndarray:
    """The shipped watchlist's rules alone (its learned classifiers left out)."""
    tagger = Tagger(load_watchlist(REPO / "config" / "watchlist.yaml").without_learned())
    out = np.zeros((len(items), len(TOPICS)), dtype=bool)
    for n, item in enumerate(items):
        found = {t.id for t in tagger.analyze(item.title, item.text, item.lang).topics}
        out[n] = [topic in found for topic in TOPICS]
    return out


# ---------------------------------------------------------------------------
# the shipped classifiers


def items_digest(items: list[Item]) -> str:
    """A hash of what training read: every item's id, split, language, text and labels."""
    h = hashlib.sha256()
    for i in sorted(items, key=lambda i: (i.lang, i.id)):
        h.update(json.dumps([i.id, i.split, i.lang, i.title, i.text, sorted(i.topics)],
                            ensure_ascii=False).encode())
    return h.hexdigest()


def train_classifiers(items: list[Item], features: list[set[str]], grid: tuple[float, ...] = LAMBDAS,
                      log=print) -> dict:
    """The model file (newsradar.topic_model's format) of ``keys`` pooled classifiers, one per
    topic, trained on ``items`` (their features as :func:`key_features` gives them)."""
    Y = np.array([[topic in i.topics for topic in TOPICS] for i in items], dtype=np.float64)
    groups = np.array([i.split for i in items])
    langs = sorted({i.lang for i in items})
    K = gram_matrix(features) + language_kernel(items)
    idx = np.arange(len(items))
    T = len(TOPICS)
    lams = np.repeat(np.array(grid), T)  # columns: λ-major, topic-minor
    YY = np.tile(Y, (1, len(grid)))
    log(f"inner cross-validation over {len(set(groups))} splits, λ in {', '.join(f'{x:g}' for x in grid)} ...")
    oof, unconverged = out_of_fold(K, idx, groups, YY, lams)
    loss = -(YY * np.log(oof + 1e-12) + (1 - YY) * np.log(1 - oof + 1e-12)).mean(axis=0)
    chosen = [[li * T + t for li in range(len(grid))][int(np.argmin(loss[[li * T + t for li in range(len(grid))]]))]
              for t in range(T)]
    a, b, converged = fit(K, Y, lams[chosen])
    if unconverged or not converged:
        raise RuntimeError(f"{unconverged + (not converged)} fit(s) stopped at {MAX_ITER} steps: widen --lambdas")
    norms = np.sqrt(np.array([max(len(fs), 1) for fs in features], dtype=np.float64))
    df = Counter(f for fs in features for f in fs)
    classifiers = {}
    for t, topic in enumerate(TOPICS):
        c = chosen[t]
        y = Y[:, t].astype(bool)
        threshold = precision_threshold(oof[:, c], y, HIGH_PRECISION)
        inner = PR.of(oof[:, c] >= threshold, y)
        share = a[:, t] / norms
        weights: dict[str, float] = {}
        for fs, w in zip(features, share, strict=True):
            for f in fs:
                if df[f] >= MIN_ITEMS:
                    weights[f] = weights.get(f, 0.0) + float(w)
        languages = {lang: float(a[[n for n, i in enumerate(items) if i.lang == lang], t].sum()) for lang in langs}
        classifiers[topic] = {"bias": float(b[t]), "threshold": threshold, "weights": weights, "languages": languages,
                              "lambda": float(lams[c]), "inner_precision": round(inner.precision, 3),
                              "inner_recall": round(inner.recall, 3)}
        log(f"{topic}: λ={lams[c]:g}, threshold {threshold:.3f} (inner out-of-fold P/R {inner}), "
            f"{len(weights)} features")
    return {
        "format": topic_model.FORMAT, "features": topic_model.FEATURES,
        "trained": {"items": len(items), "splits": sorted(set(groups)), "sha256": items_digest(items),
                    "high_precision": HIGH_PRECISION, "command": "benchmarks/learned_topics.py --write"},
        "classifiers": classifiers,
    }


def write_model(path: Path, exclude: set[str], grid: tuple[float, ...]) -> int:
    items = [i for i in load_items() if i.split not in exclude]
    print(f"training on {len(items)} items (leaving out {', '.join(sorted(exclude)) or 'nothing'}) ...",
          file=sys.stderr)
    model = train_classifiers(items, key_features(items, Pipelines()), grid,
                              log=lambda m: print(m, file=sys.stderr))
    model["trained"]["excluded"] = sorted(exclude)
    path.write_text(topic_model.dump(model), encoding="utf-8")
    topic_model.parse(json.loads(path.read_text(encoding="utf-8")), path)  # it loads as the tagger will
    print(f"wrote {path} ({path.stat().st_size:,} bytes)", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--write", type=Path, metavar="FILE", help="train the shipped classifiers into FILE")
    parser.add_argument("--exclude", default="", help="with --write: comma-separated splits kept out of training")
    parser.add_argument("--features", default="keys,words,chars", help="comma-separated: keys, words, chars")
    parser.add_argument("--lambdas", default=",".join(f"{x:g}" for x in LAMBDAS),
                        help="comma-separated L2 strengths the inner cross-validation chooses from")
    parser.add_argument("--verbose", action="store_true", help="print the λ and thresholds chosen per fold")
    args = parser.parse_args(argv)
    started = time.process_time()
    grid = tuple(float(x) for x in args.lambdas.split(",") if x)
    if args.write:
        return write_model(args.write, {s for s in args.exclude.split(",") if s}, grid)
    items = load_items()
    Y = np.array([[topic in i.topics for topic in TOPICS] for i in items], dtype=np.float64)
    gold = Y.astype(bool)
    splits = np.array([i.split for i in items])
    feature_sets = {"keys": lambda: key_features(items, Pipelines()), "words": lambda: word_features(items),
                    "chars": lambda: char_features(items)}
    wanted = [f for f in args.features.split(",") if f]
    unknown = [f for f in wanted if f not in feature_sets]
    if unknown:
        print(f"learned_topics: unknown feature set(s) {', '.join(unknown)}", file=sys.stderr)
        return 2
    rules = rules_predictions(items)
    lang_k = language_kernel(items)
    rows: dict[tuple[str, str], dict[str, PR]] = {}  # (label, topic) -> split -> PR
    or_rows: dict[tuple[str, str], dict[str, PR]] = {}
    notes: list[str] = []
    nearest: dict[str, dict[str, float]] = {}
    for name in wanted:
        K = gram_matrix(feature_sets[name]())
        nearest[name] = nearest_similarity(K, splits)
        for by_lang in (False, True):
            label = f"{name} {'per-lang' if by_lang else 'pooled'}"
            Kc = K if by_lang else K + lang_k
            for held in HELD_OUT:
                test = splits == held
                f1_pred, hp_pred, fold_notes = predict_split(Kc, items, Y, held, by_lang, grid)
                notes.extend(f"{label} {held} {n}" for n in fold_notes)
                for t, topic in enumerate(TOPICS):
                    rows.setdefault((label, topic), {})[held] = PR.of(f1_pred[:, t], gold[test, t])
                    combined = rules[test, t] | hp_pred[:, t]
                    or_rows.setdefault((label, topic), {})[held] = PR.of(combined, gold[test, t])
    for held in HELD_OUT:
        test = splits == held
        for t, topic in enumerate(TOPICS):
            rows.setdefault(("rules today*", topic), {})[held] = PR.of(rules[test, t], gold[test, t])
    print_table(rows, or_rows)
    print("median cosine of a held-out item to its nearest training item (1.0: a copy):")
    for name, by_split in nearest.items():
        print(f"  {name:<8}" + "".join(f"{s:>8} {v:.2f}" for s, v in by_split.items()))
    stopped = [n for n in notes if "stopped" in n]
    print("\n".join(notes if args.verbose else stopped) or f"every fit converged (gradient < {TOL:g})")
    print(f"\n(CPU {time.process_time() - started:.0f} s)")
    return 0


def print_table(rows: dict, or_rows: dict, out=sys.stdout) -> None:
    head = "".join(f"{s:>11}" for s in HELD_OUT)
    out.write(f"P/R per held-out writer ({len(HELD_OUT)} splits); 'all' pools their counts\n\n")
    for topic in TOPICS:
        out.write(f"{topic:<30}{head}{'all':>11}\n")
        for label, body in _topic_rows(rows, or_rows, topic):
            out.write(f"  {label:<28}{body}\n")
        out.write("\n")
    out.write(f"* tuned on {HELD_OUT[0]}-{HELD_OUT[-2]} since they were measured: for reference, not a baseline.\n"
              f"** today's rules (tuned on F, but {HELD_OUT[-1]}) OR the model at inner precision >= "
              f"{HIGH_PRECISION}: contaminated.\n"
              "'rules then' is copied from docs/benchmarks.md; its 'all' is the mean of the splits.\n")


def _topic_rows(rows: dict, or_rows: dict, topic: str):
    then = RULES_THEN[topic]
    mean_p = sum(p for p, _ in then.values()) / len(then)
    mean_r = sum(r for _, r in then.values()) / len(then)
    yield "rules then (fair)", "".join(f"{then[s][0]:>6.2f}/{then[s][1]:.2f}" for s in HELD_OUT) + \
        f"{mean_p:>6.2f}/{mean_r:.2f}"
    today = ("rules today*", topic)
    ordered = [(today, rows[today])] + [(k, v) for k, v in rows.items() if k != today]
    for table, suffix in ((ordered, ""), (list(or_rows.items()), " OR rules**")):
        for (label, t), by_split in table:
            if t != topic:
                continue
            total = PR(*(sum(getattr(pr, f) for pr in by_split.values()) for f in ("tp", "fp", "fn")))
            yield label + suffix, "".join(f"{str(by_split[s]):>11}" for s in HELD_OUT) + f"{str(total):>11}"


if __name__ == "__main__":
    raise SystemExit(main())
