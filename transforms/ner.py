"""Russian named entities from slovnet's news NER model, for the candidates finder only.

The model and its word vectors ship inside the ``natasha`` package (``natasha/data``); they
are loaded from there with ``navec`` and ``slovnet`` directly. ``import natasha`` itself is
never done: its morphology wants pymorphy2, which does not import on Python 3.11.

Guarantees:

* Nothing is downloaded: the files are the installed package's.
* The model is loaded at most once per process, on first use, never at import time (about
  4 s and ~200 MB; docs/benchmarks.md): the tagging path never pays for it.
* Only the first :data:`MAX_NER_CHARS` characters of a text are read (the model's cost
  grows with the text; the names that matter are named early).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

# The cost grows with the text (about 4-5 ms per 100 characters on one core); a story names
# its subjects in its first paragraphs.
MAX_NER_CHARS = 4000

_LOCK = threading.Lock()
_MODEL = None


@dataclass(frozen=True, slots=True)
class Entity:
    start: int
    stop: int
    type: str  # PER, LOC or ORG


def _data_path(name: str) -> str:
    import importlib.resources

    return str(importlib.resources.files("natasha") / "data" / name)


def load_model():
    """The slovnet NER model with its navec embeddings, loaded once per process."""
    global _MODEL
    with _LOCK:
        if _MODEL is None:
            from navec import Navec
            from slovnet import NER

            navec = Navec.load(_data_path("emb/navec_news_v1_1B_250K_300d_100q.tar"))
            model = NER.load(_data_path("model/slovnet_ner_news_v1.tar"))
            model.navec(navec)
            _MODEL = model
        return _MODEL


def entities(text: str) -> list[Entity]:
    """The named entities of a Russian text (its first :data:`MAX_NER_CHARS` characters), in
    text order; offsets index ``text``."""
    text = text[:MAX_NER_CHARS]
    if not text.strip():
        return []
    markup = load_model()(text)
    return [Entity(s.start, s.stop, s.type) for s in markup.spans]


def organizations(text: str) -> list[tuple[int, int]]:
    """(start, stop) of every ORG entity, with an opening quotation mark inside the span
    closed when the text closes it right after (the model often stops one character short:
    «Движение «Путь домой» comes out without its last »)."""
    out = []
    for e in entities(text):
        if e.type != "ORG":
            continue
        stop = e.stop
        inside = text[e.start:stop]
        opened = sum(inside.count(q) for q in "«„") - sum(inside.count(q) for q in "»“")
        if opened > 0:
            close = min((i for i in (text.find(q, stop) for q in "»“") if i != -1), default=-1)
            if close != -1 and close - stop <= 40 and "\n" not in text[stop:close]:
                stop = close + 1
        out.append((e.start, stop))
    return out
