"""Latin <-> Cyrillic transliteration of organization names.

Names of Russian and Ukrainian organizations reach English text transliterated, and Latin
brand names reach Russian text spelled in Cyrillic ("Verstka" / "Верстка"). There is no one
standard in the wild, so :func:`to_latin` yields the few spellings that cover most of it
(a BGN/PCGN-like one, and variants for й/ы/ь/я/ю/х that newsrooms commonly use);
:func:`to_cyrillic` reverses the common digraphs. Both are small pure functions; the
matcher adds each variant as a pattern with match kind ``translit``.
"""

from __future__ import annotations

import itertools

# One spelling per letter; variants for the letters newsrooms spell differently.
_RU_TO_LATIN: dict[str, tuple[str, ...]] = {
    "а": ("a",), "б": ("b",), "в": ("v",), "г": ("g",), "д": ("d",), "е": ("e",), "ё": ("yo", "e"),
    "ж": ("zh",), "з": ("z",), "и": ("i",), "й": ("y", "i"), "к": ("k",), "л": ("l",), "м": ("m",),
    "н": ("n",), "о": ("o",), "п": ("p",), "р": ("r",), "с": ("s",), "т": ("t",), "у": ("u",),
    "ф": ("f",), "х": ("kh", "h"), "ц": ("ts",), "ч": ("ch",), "ш": ("sh",), "щ": ("shch",),
    "ъ": ("",), "ы": ("y",), "ь": ("", "'"), "э": ("e",), "ю": ("yu", "iu"), "я": ("ya", "ia"),
}
# Ukrainian national transliteration (2010) for the letters that differ.
_UK_TO_LATIN: dict[str, tuple[str, ...]] = {
    **_RU_TO_LATIN,
    "г": ("h",), "ґ": ("g",), "и": ("y",), "і": ("i",), "ї": ("i", "yi"), "є": ("ie", "ye"),
    "й": ("i", "y"), "ь": ("",), "'": ("",), "’": ("",),
}

_LATIN_TO_CYRILLIC = (
    ("shch", "щ"), ("zh", "ж"), ("kh", "х"), ("ts", "ц"), ("ch", "ч"), ("sh", "ш"), ("yu", "ю"),
    ("ya", "я"), ("yo", "ё"), ("ye", "е"), ("a", "а"), ("b", "б"), ("c", "к"), ("d", "д"), ("e", "е"),
    ("f", "ф"), ("g", "г"), ("h", "х"), ("i", "и"), ("j", "й"), ("k", "к"), ("l", "л"), ("m", "м"),
    ("n", "н"), ("o", "о"), ("p", "п"), ("q", "к"), ("r", "р"), ("s", "с"), ("t", "т"), ("u", "у"),
    ("v", "в"), ("w", "в"), ("x", "кс"), ("y", "й"), ("z", "з"),
)

# Enough spellings to cover common practice without a combinatorial explosion.
MAX_VARIANTS = 3


def to_latin(text: str, lang: str = "ru") -> list[str]:
    """Latin spellings of a Cyrillic name, most standard first, at most :data:`MAX_VARIANTS`.
    Characters without a mapping (digits, Latin, punctuation) are kept as they are."""
    table = _UK_TO_LATIN if lang == "uk" else _RU_TO_LATIN
    choices: list[tuple[str, ...]] = []
    for ch in text:
        low = ch.lower()
        options = table.get(low)
        if options is None:
            choices.append((ch,))
            continue
        if ch != low:
            options = tuple(o[:1].upper() + o[1:] for o in options)
        choices.append(options)
    out: list[str] = []
    # Variant 0 takes every first option; then one letter class at a time switches to its
    # second option, so the variants are the spellings people actually use.
    out.append("".join(c[0] for c in choices))
    for alt_first in itertools.islice(_alt_groups(choices), MAX_VARIANTS * 2):
        candidate = "".join(alt_first)
        if candidate not in out:
            out.append(candidate)
        if len(out) >= MAX_VARIANTS:
            break
    return out


def _alt_groups(choices: list[tuple[str, ...]]):
    """Spellings where all letters of one kind take their second option together."""
    kinds = []
    for c in choices:
        if len(c) > 1 and c not in kinds:
            kinds.append(c)
    for kind in kinds:
        yield [c[1] if c == kind else c[0] for c in choices]
    if len(kinds) > 1:
        yield [c[1] if len(c) > 1 else c[0] for c in choices]


def to_cyrillic(text: str) -> str:
    """A Cyrillic spelling of a Latin name by the common digraphs (Verstka -> Верстка)."""
    out = []
    i = 0
    lower = text.lower()
    while i < len(text):
        for latin, cyr in _LATIN_TO_CYRILLIC:
            if lower.startswith(latin, i):
                out.append(cyr.upper() if text[i].isupper() else cyr)
                i += len(latin)
                break
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
