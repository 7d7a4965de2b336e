import time

import pytest

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
