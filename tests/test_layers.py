"""The import direction between the packages, checked over every import (lazy ones included).

Floors, bottom to top: the core (``newsradar`` without ``newsradar.cli``); ``connectors`` and
``transforms`` side by side; ``pipelines``; the command line and local stack (``newsradar.cli``).
A module may import its own floor and the floors below, never above or sideways, and the
connectors never import Beam (they run in their own processes, without the pipeline).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("newsradar", "connectors", "transforms", "pipelines")

# floor name -> floors it may import
ALLOWED = {
    "core": {"core"},
    "connectors": {"core", "connectors"},
    "transforms": {"core", "transforms"},
    "pipelines": {"core", "transforms", "pipelines"},
    "cli": {"core", "connectors", "transforms", "pipelines", "cli"},
}


def floor_of(module: str) -> str | None:
    top = module.split(".")[0]
    if module == "newsradar.cli" or module.startswith("newsradar.cli."):
        return "cli"
    if top == "newsradar":
        return "core"
    return top if top in PACKAGES else None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, absolute module) for every import statement anywhere in the file."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    package = module_name(path)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            # ``from newsradar import cli`` names a module, not an attribute
            found.extend((node.lineno, f"{target}.{alias.name}") for alias in node.names
                         if f"{target}.{alias.name}" == "newsradar.cli")
    return found


def source_files() -> list[Path]:
    return sorted(p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py"))


def violations(files: list[Path]) -> list[str]:
    out = []
    for path in files:
        own = floor_of(module_name(path))
        for line, target in imports_of(path):
            other = floor_of(target)
            rel = path.relative_to(ROOT)
            if other is not None and other not in ALLOWED[own]:
                out.append(f"{rel}:{line}: {own} imports {target} ({other})")
            if own == "connectors" and target.split(".")[0] == "apache_beam":
                out.append(f"{rel}:{line}: connectors import Beam ({target})")
    return out


def test_every_package_is_scanned():
    files = source_files()
    assert {module_name(f).split(".")[0] for f in files} == set(PACKAGES)
    assert any(floor_of(module_name(f)) == "cli" for f in files)


def test_imports_only_point_down():
    assert violations(source_files()) == []


@pytest.mark.parametrize(
    "relpath, code, expected",
    [
        ("newsradar/records.py", "from newsradar.cli import main\n", "core imports newsradar.cli"),
        ("newsradar/config/x.py", "def f():\n    from ..cli import up\n", "core imports newsradar.cli "),
        ("newsradar/kafka.py", "from newsradar import cli\n", "core imports newsradar.cli"),
        ("pipelines/tag.py", "from connectors.http import HttpClient\n", "pipelines imports connectors.http"),
        ("transforms/x.py", "import pipelines.run\n", "transforms imports pipelines.run"),
        ("connectors/x.py", "import apache_beam as beam\n", "connectors import Beam"),
    ],
)
def test_a_wrong_way_import_is_caught(tmp_path, monkeypatch, relpath, code, expected):
    path = tmp_path / relpath
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(code, encoding="utf-8")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = violations([path])
    assert len(found) == 1 and expected in found[0], found
