"""Safe YAML loading and error reporting shared by every config file.

Only plain YAML is accepted: the safe loader, no anchors or aliases (so no alias bombs),
no tags beyond the core scalar/collection tags, at most :data:`MAX_BYTES` of text,
:data:`MAX_NODES` nodes and :data:`MAX_DEPTH` levels. Every problem is a
:class:`ConfigError` naming the file, the line when known, the path inside the document
(``organizations[1].aliases.ru``) and what was expected.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

MAX_BYTES = 2 * 1024 * 1024
MAX_NODES = 200_000
MAX_DEPTH = 64

_CORE_TAGS = {
    "tag:yaml.org,2002:" + name
    for name in ("str", "int", "float", "bool", "null", "seq", "map")
}


class ConfigError(Exception):
    """A config file that cannot be used. ``str()`` is the one-line message the CLI prints."""

    def __init__(self, file: str, path: str, message: str, line: int | None = None):
        self.file = file
        self.path = path
        self.message = message
        self.line = line
        where = file if line is None else f"{file}:{line}"
        super().__init__(f"{where}: {path}: {message}" if path else f"{where}: {message}")


def format_path(loc: tuple | list) -> str:
    """('organizations', 1, 'aliases', 'ru') -> 'organizations[1].aliases.ru'."""
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and custom tags, and counts nodes."""

    def __init__(self, stream, file: str):
        super().__init__(stream)
        self._file = file
        self._nodes = 0
        self._depth = 0

    def compose_node(self, parent, index):
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            raise ConfigError(self._file, "", "YAML aliases (*name) are not allowed", event.start_mark.line + 1)
        anchor = getattr(event, "anchor", None)
        if anchor is not None:
            raise ConfigError(self._file, "", f"YAML anchors (&{anchor}) are not allowed", event.start_mark.line + 1)
        tag = getattr(event, "tag", None)
        if tag not in (None, "!") and self._resolve_tag(tag) not in _CORE_TAGS:
            raise ConfigError(self._file, "", f"YAML tag {tag!r} is not allowed (plain YAML only)", event.start_mark.line + 1)
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise ConfigError(self._file, "", f"more than {MAX_NODES} YAML nodes", event.start_mark.line + 1)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise ConfigError(self._file, "", f"nested deeper than {MAX_DEPTH} levels", event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    @staticmethod
    def _resolve_tag(tag: str) -> str:
        if tag.startswith("!!"):
            return "tag:yaml.org,2002:" + tag[2:]
        return tag


@dataclass(frozen=True)
class Document:
    """Parsed YAML plus the line of every path in it, for error messages."""

    file: str
    data: Any
    lines: dict[str, int]

    def error(self, path: str, message: str) -> ConfigError:
        return ConfigError(self.file, path, message, self.line_of(path))

    def line_of(self, path: str) -> int | None:
        # Walk up the path until a known node: an error on a missing key points at its parent.
        while True:
            if path in self.lines:
                return self.lines[path]
            if not path:
                return None
            path = re.sub(r"(\[\d+\]|\.?[^.\[]+)$", "", path)


def _lines(node: yaml.Node, path: str, out: dict[str, int]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            name = key.value if isinstance(key, yaml.ScalarNode) else "?"
            child = f"{path}.{name}" if path else str(name)
            out.setdefault(child, key.start_mark.line + 1)
            _lines(value, child, out)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(item, f"{path}[{i}]", out)


def load_yaml(path: str | os.PathLike) -> Document:
    """Read and parse one YAML file under the caps above. Raises ConfigError."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(file, "", f"file is larger than the {MAX_BYTES // 1024} KiB limit for config files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 (byte {exc.start})") from None
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(file, "", "the file is empty; expected a mapping at the top level")
        data = loader.construct_document(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        problem = exc.problem or str(exc)
        raise ConfigError(file, "", f"YAML syntax error: {problem}", line) from None
    except yaml.YAMLError as exc:
        raise ConfigError(file, "", f"YAML error: {exc}") from None
    finally:
        loader.dispose()
    lines: dict[str, int] = {}
    _lines(node, "", lines)
    return Document(file, data, lines)


M = TypeVar("M", bound=BaseModel)


def _explain(error: dict) -> str:
    kind = error.get("type", "")
    ctx = error.get("ctx") or {}
    if kind == "missing":
        return "required key is missing"
    if kind == "extra_forbidden":
        return "unknown key"
    if kind in ("string_type", "str_type"):
        return f"expected a string, got {_shown(error.get('input'))}"
    if kind in ("int_type", "int_parsing"):
        return f"expected an integer, got {_shown(error.get('input'))}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {_shown(error.get('input'))}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {_shown(error.get('input'))}"
    if kind in ("list_type", "tuple_type", "set_type", "frozen_set_type"):
        return f"expected a list, got {_shown(error.get('input'))}"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"expected a mapping, got {_shown(error.get('input'))}"
    if kind == "literal_error":
        return f"expected {ctx.get('expected', 'one of the allowed values')}, got {_shown(error.get('input'))}"
    if kind == "value_error":
        return str(ctx.get("error", error.get("msg", "")))
    msg = error.get("msg", "invalid value")
    return msg[0].lower() + msg[1:] if msg else "invalid value"


def _shown(value: Any) -> str:
    if isinstance(value, (dict, list)):
        return "a mapping" if isinstance(value, dict) else "a list"
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def validate(doc: Document, model: type[M], data: Any = None, prefix: str = "") -> M:
    """Validate ``data`` (default: the whole document) into ``model``; errors carry paths.

    ``prefix`` is the path of ``data`` inside the document when validating a part of it.
    Only the first error is raised: one clear message beats a wall of consequences.
    """
    value = doc.data if data is None else data
    try:
        return model.model_validate(value)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = [p for p in first.get("loc", ()) if p != "__root__"]
        path = format_path(loc)
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        message = _explain(first)
        if first.get("type") == "extra_forbidden":
            allowed = sorted(
                name for name, f in _fields_at(model, loc[:-1]).items()
            )
            if allowed:
                message += f"; expected one of: {', '.join(allowed)}"
        raise doc.error(path, message) from None


def _fields_at(model: type[BaseModel], loc: list) -> dict:
    """The model fields at a location (for 'unknown key' hints); {} when not a model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields or part not in fields:
            return {}
        current = _inner_model(fields[part].annotation)
        if current is None:
            return {}
    fields = getattr(current, "model_fields", None)
    return {f.alias or n: f for n, f in fields.items()} if fields else {}


def _inner_model(annotation: Any) -> Any:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


# ---------------------------------------------------------------------------
# value parsers shared by the schemas

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1, None: 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> float:
    """'90s', '10m', '2h', '1d', or a number of seconds -> seconds (float)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 10m, 2h or 1d, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"expected a duration like 30s, 10m, 2h or 1d, got {value!r}")


_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(B|KB|KiB|MB|MiB|GB|GiB)?\s*$")
_SIZE_UNITS = {None: 1, "B": 1, "KB": 1000, "KiB": 1024, "MB": 10**6, "MiB": 1024**2, "GB": 10**9, "GiB": 1024**3}


def parse_size(value: Any) -> int:
    """'15MiB', '512KiB', or a number of bytes -> bytes (int)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 512KiB or 15MiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"expected a non-negative size, got {value!r}")
        return value
    if isinstance(value, str):
        m = _SIZE.match(value)
        if m:
            return int(float(m.group(1)) * _SIZE_UNITS[m.group(2)])
    raise ValueError(f"expected a size like 512KiB or 15MiB, got {value!r}")


def check_unique(doc: Document, items: list, key: Callable[[Any], str], path: str, what: str) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        k = key(item)
        if k in seen:
            raise doc.error(f"{path}[{i}].id", f"duplicate {what} id {k!r} (first used at {path}[{seen[k]}])")
        seen[k] = i
