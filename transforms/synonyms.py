"""The synonyms that rewritten copies of wire stories swap into organization names.

Rewriters (human or machine) change a name's common words and keep its structure:
"Council of Moms and Wives", "Совет мам и жён", "Alliance of Committees of Soldiers' Mothers".
A fuzzy mention is an alias with at most :data:`MAX_SWAPS` of its words replaced by a synonym
listed here. The list is deliberately short and closed: open-ended similarity (edit distance,
embeddings) also accepts "Council of Mothers and Daughters", which is a different body, and
an analyst cannot predict it. Words are given in dictionary form; the matcher turns them into
match keys with the language's own lemmatizer. Why this and not more: docs/tagging.md.
"""

from __future__ import annotations

MAX_SWAPS = 2

# Groups of interchangeable words per language; every word of a group stands for the others.
GROUPS: dict[str, tuple[tuple[str, ...], ...]] = {
    "en": (
        ("mother", "mom", "mum", "mama"),
        ("wife", "spouse"),
        ("council", "board"),
        ("union", "alliance", "association"),
        ("soldier", "serviceman", "servicemember", "troop"),
        ("committee", "commission"),
        ("ministry", "department"),
        ("defence", "defense"),
    ),
    "ru": (
        ("мать", "мама", "мамочка"),
        ("жена", "супруга"),
        ("союз", "объединение", "ассоциация"),
        ("солдат", "военнослужащий", "боец"),
    ),
    "uk": (
        ("мати", "мама", "матуся"),
        ("дружина", "супруга"),
        ("союз", "спілка", "об'єднання"),
        ("солдат", "військовослужбовець", "боєць"),
    ),
}

# Conjunctions of coordinated words in names: "Council of Mothers and Wives" is also written
# "Council of Wives and Mothers"; the two words around one of these may trade places (fuzzy).
CONJUNCTIONS: dict[str, tuple[str, ...]] = {
    "en": ("and", "&"),
    "ru": ("и",),
    "uk": ("і", "та", "й"),
}
