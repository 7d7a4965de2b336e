"""HTML to clean text, shared by the connectors (feed entries, t.me pages) and the pipeline.

Guarantees of :func:`html_to_text`: no markup, no script/style/template content, entities
decoded, block elements separated by line breaks, link text kept (the URL is not inlined),
Unicode NFC, runs of spaces collapsed, at most one blank line in a row.
"""

from __future__ import annotations

import html as html_lib
import re
import unicodedata

from selectolax.lexbor import LexborHTMLParser

# Elements whose content is never reader-visible text.
_DROP = ("script", "style", "noscript", "template", "iframe", "object", "embed", "svg", "math", "head")
_BLOCK = (
    "p", "div", "li", "ul", "ol", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre",
    "tr", "table", "section", "article", "header", "footer", "figure", "figcaption", "hr", "dd", "dt",
)
# The spaces normalize_text collapses besides " " (a line holding none of them and no "  " has
# nothing to collapse), and the runs it collapses.
_OTHER_SPACES = ("\t", "\u00a0", *map(chr, range(0x2000, 0x200B)), "\u202f", "\u205f", "\u3000")
_SPACES = re.compile(f"[ {''.join(_OTHER_SPACES)}]+")
_BLANKS = re.compile(r"\n\s*\n(\s*\n)+")
# Zero-width and bidi control characters that only confuse matching (kept: ZWJ in emoji).
_INVISIBLE = re.compile(r"[\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
# A tag is "<", a letter, "!" or "/", then anything but "<" up to ">". Excluding "<" keeps the
# search linear: with "[^>]*", each "<" of "<a<a<a…" scanned to the end of the text (2.4 s at
# 78 KiB, quadratic). The one text that no longer counts as markup: a "<" inside a would-be
# tag with no tag after it ("<a < >").
_LOOKS_LIKE_HTML = re.compile(r"<\s*[a-zA-Z!/][^<>]*>|&(#\d+|#x[0-9a-fA-F]+|[a-zA-Z]+);")


# No word of the languages we read is this long; a longer run without a space is a URL, a
# base64 blob or hostile filler ("<a<a<a…", 200,000 control bytes), and spaCy's tokenizer and
# lingua both spend time quadratic in the length of one token on it.
MAX_WORD_CHARS = 80
_LONG_RUN = re.compile(rf"\S{{{MAX_WORD_CHARS + 1},}}")


def blank_long_words(text: str) -> str:
    """``text`` with every run of more than :data:`MAX_WORD_CHARS` non-space characters turned
    into as many spaces: the same length, so offsets into it are offsets into ``text``."""
    return _LONG_RUN.sub(lambda m: " " * len(m.group()), text)


def looks_like_html(text: str) -> bool:
    """Whether ``text`` holds a tag or a character reference; linear in the length of ``text``."""
    return bool(_LOOKS_LIKE_HTML.search(text))


def normalize_text(text: str) -> str:
    """NFC, invisible characters removed, spaces collapsed, lines trimmed."""
    text = unicodedata.normalize("NFC", text)
    text = _INVISIBLE.sub("", text).replace("\r\n", "\n").replace("\r", "\n")
    lines = [_collapse_spaces(line) for line in text.split("\n")]
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip()


def _collapse_spaces(line: str) -> str:
    """Runs of spaces as one " ", the ends trimmed. Most lines of news text have nothing to
    collapse, and substituting every single " " between words was most of Normalize's time:
    the substitution runs only when the line needs it (16 substring checks cost ~1/10 of it)."""
    if "  " in line or any(space in line for space in _OTHER_SPACES):
        line = _SPACES.sub(" ", line)
    return line.strip()


# Each part of a tag has one way to match, so a "<" with no ">" after it costs one scan to the
# next "<" (with "\s*/?\s*" and "(\s[^<>]*)?/?\s*", a run of spaces was quadratic: 7 s at 20 KB).
_TAG = re.compile(r"<\s*(?:/\s*)?[a-zA-Z][a-zA-Z0-9]*(?:[\s/][^<>]*)?>")


def html_to_text(markup: str) -> str:
    """Readable text of an HTML fragment or page (see module docstring for guarantees)."""
    text = _one_pass(markup)
    # Feeds that escape their HTML twice ("&lt;p&gt;") leave tags after one pass: one more.
    if _TAG.search(text):
        text = _one_pass(text)
    return text


def _one_pass(markup: str) -> str:
    if not markup:
        return ""
    if not looks_like_html(markup):
        return normalize_text(markup)
    tree = LexborHTMLParser(markup)
    for tag in _DROP:
        for node in tree.css(tag):
            node.decompose()
    for node in tree.css("br"):
        node.replace_with("\n")
    for tag in _BLOCK:
        for node in tree.css(tag):
            # A newline before and after each block keeps paragraphs apart.
            node.insert_before("\n")
            node.insert_after("\n")
    root = tree.body or tree.root
    if root is None:
        return ""
    text = root.text(separator="", strip=False)
    # Entities that survived (double-escaped feeds, "&amp;amp;") are decoded once more.
    if "&" in text:
        text = html_lib.unescape(text)
    return normalize_text(text)
