"""Config error reporting is total: every schema path, given a bad key or a bad value, and
randomly mutated files, get an answer within a second: loaded, or one ConfigError naming
file, line and field. Paths come from walking the pydantic models, not from a list."""

from __future__ import annotations

import copy
import random
import signal
import typing
from contextlib import contextmanager

import pytest
import yaml
from pydantic import BaseModel

from newsradar.config import ConfigError, load_sources, load_watchlist
from newsradar.config.loader import config_duration
from newsradar.config.sources import _TELEGRAM_MODES, RssSource, Sources
from newsradar.config.watchlist import AlertmanagerSink, FileSink, Watchlist, WebhookSink

WATCHLIST = {
    "version": 1,
    "organizations": [{
        "id": "org-a", "name": "Org A", "aliases": {"en": ["Org A", {"text": "Alpha", "case": "proper"}]},
        "acronyms": ["OA"], "context": {"en": ["union"]}, "novelty_window": "7d", "severity": "info",
    }],
    "topics": [{
        "id": "protest", "name": "Protest", "threshold": 1.0, "terms": {"en": ["rally", {"term": "march", "weight": 2}]},
        "negative": {"en": ["rally car"]}, "severity": "warning",
    }],
    "examples": [{"text": "Org A held a rally.", "topics": ["protest"], "orgs": ["org-a"]}],
    "novelty": {"default_window": "7d", "story_memory": "14d",
                "surge": {"min_mentions": 5, "factor": 4.0, "baseline": "7d", "cooldown": "6h"}},
    "alerts": {"sinks": [
        {"kind": "webhook", "url": "https://example.org/hook", "timeout": "10s"},
        {"kind": "alertmanager", "url": "https://example.org/am", "timeout": "5s"},
        {"kind": "file", "path": "alerts.jsonl"},
    ]},
}

SOURCES = {
    "allow_private_networks": False,
    "defaults": {"interval": "10m", "timeout": "20s", "max_body": "1MiB", "seen_ttl": "30d"},
    "metrics": {"host": "127.0.0.1", "port": 9464},
    "telegram": {"web_request_gap": "1s", "bot_request_gap": "0s"},
    "sources": [
        {"id": "feed", "kind": "rss", "url": "https://example.org/a.xml", "interval": "5m", "lang": "en"},
        {"id": "web", "kind": "telegram", "mode": "web", "channel": "some_channel"},
        {"id": "bot", "kind": "telegram", "mode": "bot", "long_poll": "25s", "channels": ["chan_one"],
         "webhook": {"port": 8443}},
        {"id": "export", "kind": "telegram", "mode": "export", "path": "result.json"},
        {"id": "mtproto", "kind": "telegram", "mode": "mtproto", "channel": "some_channel"},
    ],
}

SINKS = {"webhook": WebhookSink, "alertmanager": AlertmanagerSink, "file": FileSink}

# Wrong for every field: a mapping where a scalar or list is expected, and a nested mess
# where a mapping is (its key is unknown to every model).
BAD_VALUES = ({"nested": [1, {"deeper": None}]}, [[{"x": 1}]])


@contextmanager
def within(seconds: float, what: str):
    def expired(signum, frame):
        raise TimeoutError(f"no answer within {seconds}s for {what}")

    old = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def _model_of(annotation) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _is_lang_map(annotation) -> bool:
    return typing.get_origin(annotation) is dict


def _is_duration(field) -> bool:
    def has(meta) -> bool:
        return getattr(meta, "func", None) is config_duration

    return any(has(m) for m in field.metadata) or any(
        has(m) for arg in typing.get_args(field.annotation) for m in getattr(arg, "__metadata__", ())
    )


def _source_model(entry: dict) -> type[BaseModel]:
    return RssSource if entry["kind"] == "rss" else _TELEGRAM_MODES[entry["mode"]]


def _set(doc, keys, value):
    target = doc
    for k in keys[:-1]:
        target = target[k]
    target[keys[-1]] = value


def _cases(model: type[BaseModel], data: dict, keys: list, path: str):
    """(mutation description, document keys, value, path the error must name)."""
    yield "unknown key", [*keys, "bogus_key"], 1, f"{path}.bogus_key" if path else "bogus_key"
    for name, field in model.model_fields.items():
        key = field.alias or name
        here = f"{path}.{key}" if path else key
        for bad in BAD_VALUES:
            yield "bad value", [*keys, key], bad, here
        if _is_duration(field):
            yield "bare number duration", [*keys, key], 7, here
            yield "unitless duration", [*keys, key], "7", here
        child = data.get(key)
        if _is_lang_map(field.annotation) and isinstance(child, dict):
            yield "unknown language", [*keys, key, "ua"], [], f"{here}.ua"
            for lang, items in child.items():
                yield from _items(field.annotation, items, [*keys, key, lang], f"{here}.{lang}")
        elif model is Sources and key == "sources":
            for i, entry in enumerate(child):
                yield from _cases(_source_model(entry), entry, [*keys, key, i], f"{here}[{i}]")
        elif isinstance(child, (list, tuple)):
            yield from _items(field.annotation, child, [*keys, key], here)
        elif isinstance(child, dict):
            inner = _model_of(field.annotation)
            if inner is not None:
                yield from _cases(inner, child, [*keys, key], here)


def _items(annotation, items, keys, path):
    for i, item in enumerate(items):
        if isinstance(item, dict):
            if "kind" in item:  # a sink: the model its kind names
                inner = SINKS[item["kind"]]
            else:
                inner = _model_of(annotation)
            yield from _cases(inner, item, [*keys, i], f"{path}[{i}]")
        elif isinstance(item, str):
            yield "blank text", [*keys, i], "   ", f"{path}[{i}]"


def _all_cases():
    for name, base, model in (("watchlist", WATCHLIST, Watchlist), ("sources", SOURCES, Sources)):
        for what, keys, value, path in _cases(model, base, [], ""):
            yield pytest.param(name, base, keys, value, path, id=f"{name}:{path}:{what}")


LOADERS = {"watchlist": load_watchlist, "sources": load_sources}


def test_the_base_documents_load(tmp_path):
    for name, base in (("watchlist", WATCHLIST), ("sources", SOURCES)):
        f = tmp_path / f"{name}.yaml"
        f.write_text(yaml.safe_dump(base, allow_unicode=True, sort_keys=False))
        LOADERS[name](f)


def test_the_walk_reaches_every_model():
    reached = {path.split(":")[1] for path in (p.id for p in _all_cases())}
    for path in ("organizations[0].aliases.en[1].case", "topics[0].negative.ua", "novelty.surge.cooldown",
                 "alerts.sinks[1].timeout", "sources[2].webhook.port", "sources[3].timezone", "telegram.web_request_gap"):
        assert path in reached, path


@pytest.mark.parametrize("name, base, keys, value, path", list(_all_cases()))
def test_every_path_with_a_bad_key_or_value_names_file_line_and_field(tmp_path, name, base, keys, value, path):
    doc = copy.deepcopy(base)
    _set(doc, keys, value)
    text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
    f = tmp_path / f"{name}.yaml"
    f.write_text(text)
    with within(1.0, path), pytest.raises(ConfigError) as err:
        LOADERS[name](f)
    message = str(err.value)
    assert "\n" not in message
    assert err.value.file == str(f)
    assert err.value.line is not None and 1 <= err.value.line <= text.count("\n")
    assert err.value.path == path or err.value.path.startswith(path + ".") or err.value.path.startswith(path + "["), message


def _mutate(rng: random.Random, node, depth=0):
    """One random change somewhere in the document: a key renamed, a value swapped for another
    type, a level of nesting added or removed."""
    junk = [None, True, 0, -1, 3.5, "", "   ", "x", "7", [], {}, [1, [2]], {"k": {"j": []}}, "ua", "@", "http://"]
    if isinstance(node, dict) and node:
        key = rng.choice(list(node))
        roll = rng.random()
        if roll < 0.15:
            node[rng.choice(["ua", "regex", "Text", "", "1", key + "s"])] = node.pop(key)
        elif roll < 0.35 or depth > 6:
            node[key] = copy.deepcopy(rng.choice(junk))
        elif roll < 0.45:
            node[key] = {key: node[key]}
        elif roll < 0.5:
            node[key] = [node[key]]
        else:
            node[key] = _mutate(rng, node[key], depth + 1)
        return node
    if isinstance(node, list) and node:
        i = rng.randrange(len(node))
        if rng.random() < 0.3:
            node[i] = copy.deepcopy(rng.choice(junk))
        else:
            node[i] = _mutate(rng, node[i], depth + 1)
        return node
    return copy.deepcopy(rng.choice(junk))


@pytest.mark.parametrize("name, base", [("watchlist", WATCHLIST), ("sources", SOURCES)])
def test_mutated_files_get_an_answer_within_a_second(tmp_path, name, base):
    rng = random.Random(19)
    refused = 0
    for n in range(300):
        doc = copy.deepcopy(base)
        for _ in range(rng.randint(1, 3)):
            doc = _mutate(rng, doc)
        text = yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)
        f = tmp_path / f"{name}-{n}.yaml"
        f.write_text(text)
        with within(1.0, f"{f}:\n{text}"):
            try:
                LOADERS[name](f)
            except ConfigError as exc:
                refused += 1
                assert "\n" not in str(exc) and exc.line is not None, text
                assert str(exc).startswith(f"{f}:{exc.line}: "), str(exc)
    assert refused > 200  # the mutations mostly break the file; the test is about the answer
