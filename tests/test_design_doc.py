"""docs/design.md stays the contract: every record field, topic and command is in it, and the
links between the docs resolve in a clone."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import click
import pytest

from newsradar import records
from newsradar.cli.commands import main

ROOT = Path(__file__).resolve().parent.parent
DESIGN = ROOT / "docs" / "design.md"

RECORDS = [records.RawArticle, records.TaggedArticle, records.TopicTag, records.Evidence, records.Mention,
           records.Alert, records.DeadLetter, records.NoveltySummary, records.Candidate, records.CandidateExample]


def sections(text: str) -> dict[str, str]:
    """Body of each heading (up to the next heading of any level), by heading text."""
    parts = re.split(r"^(#{2,4} .+)$", text, flags=re.M)
    return {parts[i].lstrip("#").strip(): parts[i + 1] for i in range(1, len(parts) - 1, 2)}


def documented_fields(section: str) -> set[str]:
    return set(re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.M))


def section_of(cls, text: str) -> str:
    found = [body for title, body in sections(text).items() if f"`{cls.__name__}`" in title]
    assert len(found) == 1, f"docs/design.md has {len(found)} sections titled with `{cls.__name__}`"
    return found[0]


def record_classes() -> set[type]:
    """Every record dataclass of newsradar.records, nested ones included."""
    return {obj for obj in vars(records).values()
            if isinstance(obj, type) and dataclasses.is_dataclass(obj) and obj.__module__ == records.__name__}


def test_every_record_class_is_checked():
    assert record_classes() == set(RECORDS), "a new record class: add it to RECORDS and to docs/design.md"


@pytest.mark.parametrize("cls", RECORDS, ids=lambda c: c.__name__)
def test_every_field_of_every_record_is_documented(cls):
    text = DESIGN.read_text(encoding="utf-8")
    fields = {f.name for f in dataclasses.fields(cls)}
    if issubclass(cls, records._Record):
        fields.add("v")
    section = section_of(cls, text)
    if cls is records.TaggedArticle:
        # the article's news.raw fields (and "v") are written at the top level of news.tagged
        assert "every `news.raw` field" in section
        fields -= {"article", "v"}
    missing = fields - documented_fields(section)
    assert not missing, f"docs/design.md does not document {cls.__name__} field(s) {sorted(missing)}"


def test_the_check_catches_an_undocumented_field():
    @dataclasses.dataclass(frozen=True)
    class Extended(records.Alert):
        escalation_policy: str = ""

    Extended.__name__ = "Alert"
    text = DESIGN.read_text(encoding="utf-8")
    fields = {f.name for f in dataclasses.fields(Extended)}
    assert fields - documented_fields(section_of(Extended, text)) == {"escalation_policy"}


def test_every_topic_is_documented():
    text = DESIGN.read_text(encoding="utf-8")
    for name in records.ALL_TOPICS:
        assert f"| `{name}` |" in text, name


def _commands(group: click.Group, prefix: str = "newsradar") -> list[str]:
    out = []
    for name, cmd in group.commands.items():
        full = f"{prefix} {name}"
        out.extend(_commands(cmd, full) if isinstance(cmd, click.Group) else [full])
    return out


def test_every_command_is_documented():
    text = DESIGN.read_text(encoding="utf-8")
    missing = [c for c in _commands(main) if f"`{c}" not in text]
    assert not missing, f"commands not in docs/design.md: {missing}"
    # One table, one row per command: a merge once left two versions of some rows.
    rows = [cell for line in text.splitlines() if line.startswith("| `newsradar ")
            if re.fullmatch(r"`newsradar [a-z ]+`", cell := line.split("|")[1].strip())]
    assert sorted(rows) == sorted(f"`{c}`" for c in _commands(main)), rows


LINK = re.compile(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)")


@pytest.mark.parametrize("doc", [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))], ids=lambda p: p.name)
def test_links_between_docs_resolve(doc):
    broken = [target for target in LINK.findall(doc.read_text(encoding="utf-8"))
              if not target.startswith("http") and not (doc.parent / target).resolve().exists()]
    assert not broken, f"{doc.name} links to missing files: {broken}"
