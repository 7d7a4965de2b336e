import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from newsradar.text import html_to_text, looks_like_html, normalize_text


@pytest.mark.parametrize(
    "markup, expected",
    [
        ("<p>Hello <b>world</b></p><script>alert(1)</script>", "Hello world"),
        ("<style>p{color:red}</style><p>a&nbsp;b &amp; c</p>", "a b & c"),
        ('<p>Read <a href="https://x">the report</a>.</p>', "Read the report."),
        ("<p>one</p><p>two</p>", "one\n\ntwo"),
        ("&lt;p&gt;double &amp;amp; escaped&lt;/p&gt;", "double & escaped"),
        ("plain   text\u200b with\u00a0spaces", "plain text with spaces"),
        ("<template><p>hidden</p></template>ok", "ok"),
        ("first<br>second<br/>third", "first\nsecond\nthird"),
        ("", ""),
    ],
)
def test_html_to_text(markup, expected):
    assert html_to_text(markup) == expected


def test_no_markup_survives():
    out = html_to_text("<div onclick='x()'><iframe src=x></iframe><svg><text>s</text></svg>Мобилизация<br/>идёт</div>")
    assert "<" not in out and ">" not in out
    assert out == "Мобилизация\nидёт"


def test_normalize_text_is_nfc():
    decomposed = "и\u0306"  # и + combining breve
    assert normalize_text(decomposed) == "й"


@pytest.mark.parametrize(
    "text",
    [
        "<a" * 100_000,  # escaped markup in an Atom type="text" entry: [^>]* was quadratic
        "<a" + "\x0c" * 50_000,  # whitespace normalize_text keeps, after a tag name
        "<" + "\x0c" * 50_000 + "x",  # whitespace before a tag name
    ],
)
def test_markup_checks_are_linear_on_hostile_text(text):
    # Each of these took from 15 s to minutes with the old patterns; linear, they take milliseconds.
    started = time.perf_counter()
    looks_like_html(text)
    html_to_text(text)
    assert time.perf_counter() - started < 1.0


def _normalize_every_run(text: str) -> str:
    """normalize_text as it was: every run of spaces substituted (the reference)."""
    import re
    import unicodedata

    runs = re.compile(r"[ \t\u00a0\u2000-\u200a\u202f\u205f\u3000]+")
    text = unicodedata.normalize("NFC", text)
    text = re.sub(r"[\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\ufeff]", "", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [runs.sub(" ", line).strip() for line in text.split("\n")]
    return re.sub(r"\n\s*\n(\s*\n)+", "\n\n", "\n".join(lines)).strip()


_SPACEY = st.text(alphabet=st.sampled_from(list("ab ы\t\n\r\u00a0\u2000\u2005\u200a\u200b\u202f\u205f\u3000\x0c\u1680\u2028")),
                  max_size=60)


@given(_SPACEY)
def test_normalize_text_collapses_spaces_as_substituting_every_run_did(text):
    assert normalize_text(text) == _normalize_every_run(text)


@pytest.mark.parametrize("space", [" ", "\t", "\u00a0", *map(chr, range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000"],
                         ids=lambda c: f"U+{ord(c):04X}")
def test_every_kind_of_space_collapses_alone_and_in_a_run(space):
    for text in (f"a{space}b", f"a{space}{space}b", f"a {space}b", f"{space}a{space}"):
        assert normalize_text(text) == _normalize_every_run(text) == ("a b" if "b" in text else "a")
