"""Property: whatever a watchlist or sources file holds (random keys, types and nesting grafted
onto a valid file), loading it answers within a second: a config, or one ConfigError whose
one-line message names the file, the line and (for a mapping at the top) the field.

Seeded and derandomized, so a failure reproduces; the example counts keep the run near 30 s.
"""

from __future__ import annotations

import copy

import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from newsradar.config import ConfigError
from tests.newsradar.test_config_paths import LOADERS, SOURCES, WATCHLIST, within

# Keys the schemas know, next to near misses and keys YAML can write that no schema expects.
KNOWN = sorted({"id", "name", "aliases", "text", "case", "terms", "term", "weight", "negative", "context",
                "acronyms", "novelty_window", "threshold", "kind", "mode", "url", "channel", "sources",
                "defaults", "interval", "timeout", "surge", "sinks", "alerts", "en", "ru", "uk", "lang"})
KEYS = st.one_of(
    st.sampled_from([*KNOWN, "ua", "regex", "Text", "", " ", "en ", "1"]),
    st.text(max_size=6),
    st.integers(-3, 3),
    st.booleans(),
    st.none(),
    st.floats(allow_nan=False, allow_infinity=False, width=16),
)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(["7", "7d", "30s", "-1s", "ua", "en", "rss", "telegram", "web", "bot", "file",
                     "http://", "https://127.0.0.1/", "@", "   ", "proper", "org-a", "protest"]),
)
JUNK = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(KEYS, inner, max_size=3),
    max_leaves=10,
)
OPS = ("replace", "rename", "add", "delete", "wrap-map", "wrap-list")
MUTATIONS = st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(OPS), KEYS, JUNK), min_size=1, max_size=4)


def _places(node, out):
    """Every (container, key-or-index) in the document, depth first."""
    if isinstance(node, dict):
        for key in list(node):
            out.append((node, key))
            _places(node[key], out)
    elif isinstance(node, list):
        for i in range(len(node)):
            out.append((node, i))
            _places(node[i], out)
    return out


def _apply(doc: dict, mutations) -> dict:
    for where, op, key, value in mutations:
        places = _places(doc, [])
        if not places:
            return doc
        parent, at = places[where % len(places)]
        value = copy.deepcopy(value)
        if op == "replace":
            parent[at] = value
        elif op == "wrap-map":
            parent[at] = {key: parent[at]}
        elif op == "wrap-list":
            parent[at] = [parent[at]]
        elif isinstance(parent, dict):
            if op == "rename":
                parent[key] = parent.pop(at)
            elif op == "add":
                parent[key] = value
            else:
                del parent[at]
        elif op == "delete":
            del parent[at]
        else:
            parent.insert(at, value)
    return doc


def _check_answer(tmp_path, name: str, base: dict, mutations) -> None:
    doc = _apply(copy.deepcopy(base), mutations)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    f = tmp_path / f"{name}.yaml"
    f.write_text(text, encoding="utf-8")
    with within(1.0, f"{f}:\n{text}"):
        try:
            LOADERS[name](f)
        except ConfigError as exc:
            message = str(exc)
            assert len(message.splitlines()) == 1, message  # no line break of any kind (\u2028, \x85, ...)
            assert exc.file == str(f) and exc.line is not None, message
            # YAML breaks lines at \r, \x85, \u2028 and \u2029 too: count lines as it does (at most).
            assert 1 <= exc.line <= max(1, len(text.splitlines())), message
            assert message.startswith(f"{f}:{exc.line}: "), message
            if isinstance(doc, dict) and doc:
                assert exc.path, f"no field named: {message}\n{text}"
                assert message.startswith(f"{f}:{exc.line}: {exc.path}: "), message


PROPERTY = settings(
    derandomize=True,
    database=None,
    deadline=None,  # the one-second bound is within(); hypothesis' own deadline flakes on a busy machine
    max_examples=900,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)


@PROPERTY
@given(mutations=MUTATIONS)
def test_a_mutated_watchlist_gets_an_answer_naming_file_line_and_field(tmp_path, mutations):
    _check_answer(tmp_path, "watchlist", WATCHLIST, mutations)


@PROPERTY
@given(mutations=MUTATIONS)
def test_a_mutated_sources_file_gets_an_answer_naming_file_line_and_field(tmp_path, mutations):
    _check_answer(tmp_path, "sources", SOURCES, mutations)


@PROPERTY
@given(doc=st.dictionaries(KEYS, JUNK, min_size=1, max_size=5))
def test_a_random_document_gets_an_answer(tmp_path, doc):
    for name in ("watchlist", "sources"):
        _check_answer(tmp_path, name, doc, [])
