"""Safe YAML loading and error reporting shared by every config file.

Only plain YAML is accepted: the safe loader, no anchors, aliases or merge keys (so no alias bombs),
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
from pydantic import BaseModel, StringConstraints, ValidationError, ValidationInfo

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
        out += f"[{part}]" if isinstance(part, int) and not isinstance(part, bool) else key_segment(part, not out)
    return out


# A key shown bare in a path: no dots, brackets, quotes or spaces, and not empty.
_PLAIN_KEY = re.compile(r"[^\s.\[\]'\"]+")


def key_segment(key: Any, first: bool = False) -> str:
    """One mapping key as a path segment: ``.name``, or ``['odd key']`` for a key that is empty
    or holds a dot, bracket, quote or space. Non-string keys are shown as YAML writes them."""
    if isinstance(key, str):
        text = key
    elif key is None or isinstance(key, bool):
        text = {None: "null", True: "true", False: "false"}[key]
    else:
        text = str(key)
    if isinstance(key, str) and not _PLAIN_KEY.fullmatch(text):
        return f"[{text!r}]"
    return text if first else f".{text}"


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses anchors, aliases and custom tags, and counts nodes."""

    # No config value is a date: 2020-02-30 stays the text it is (read as a timestamp it would
    # be a date object no schema expects, or a crash on a day that does not exist).
    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

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
        """The line of ``path``, else of its nearest ancestor in the file (an error on a
        missing key points at its parent); None only when the file has no lines at all.
        Total: every step drops one segment, so any path, however odd, ends."""
        segments = _SEGMENT.findall(path)
        if "".join(segments) != path:
            segments = [path]  # not a path this module wrote; only the root can be found
        while segments:
            found = self.lines.get("".join(segments).lstrip("."))
            if found is not None:
                return found
            segments.pop()
        return self.lines.get("")


# One segment of a formatted path: "[3]", "['odd key']", ".name" or a leading "name".
_SEGMENT = re.compile(r"""\[\d+\]|\[(?:'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")\]|\.?[^.\[]+""")


def _lines(file: str, node: yaml.Node, path: str, out: dict[str, int], key_of: Callable[[yaml.Node], Any]) -> None:
    out.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        first: dict[Any, int] = {}
        for key, value in node.value:
            if key.tag == "tag:yaml.org,2002:merge":
                raise ConfigError(file, path, "YAML merge keys (<<) are not allowed (plain YAML only)",
                                  key.start_mark.line + 1)
            # The key as the data will hold it, so an error's path (from the data) finds its line.
            name = key_of(key) if isinstance(key, yaml.ScalarNode) else "?"
            line = key.start_mark.line + 1
            child = path + key_segment(name, not path)
            # YAML keeps the last of two equal keys (1, 1.0 and true are one key); a config
            # file meant one of them.
            try:
                seen = first.get(name)
            except TypeError:  # an unhashable key: YAML itself refuses it when constructing
                seen = None
            if seen is not None:
                raise ConfigError(file, child, f"duplicate key (also on line {seen})", line)
            if isinstance(key, yaml.ScalarNode):
                first[name] = line
            out.setdefault(child, line)
            _lines(file, value, child, out, key_of)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _lines(file, item, f"{path}[{i}]", out, key_of)


def load_yaml(path: str | os.PathLike) -> Document:
    """Read and parse one YAML file under the caps above. Raises ConfigError."""
    file = os.fspath(path)
    try:
        with open(file, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(file, "", f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_BYTES:
        raise ConfigError(file, "", f"file is larger than {MAX_BYTES / 2**20:g} MiB, the limit for config files")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(file, "", f"not UTF-8 (byte {exc.start})") from None
    loader = _Loader(text, file)
    try:
        node = loader.get_single_node()
        if node is None:
            raise ConfigError(file, "", "the file is empty; expected a mapping at the top level")
        lines: dict[str, int] = {}
        _lines(file, node, "", lines, loader.construct_object)
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
    if kind == "union_tag_invalid":
        return f"expected {ctx.get('expected_tags')}, got {_shown(ctx.get('tag'))}"
    if kind == "union_tag_not_found":
        return "required key is missing"
    if kind == "string_pattern_mismatch":
        expected = _PATTERN_EXPECTED.get(ctx.get("pattern", ""), f"text matching {ctx.get('pattern')!r}")
        return f"expected {expected}, got {_shown(error.get('input'))}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        op, bound = {"greater_than": (">", "gt"), "greater_than_equal": (">=", "ge"),
                     "less_than": ("<", "lt"), "less_than_equal": ("<=", "le")}[kind]
        limit = ctx.get(bound)
        limit = f"{limit:g}" if isinstance(limit, (int, float)) else limit
        return f"expected a number {op} {limit}, got {_shown(error.get('input'))}"
    if kind in ("string_too_short", "too_short") and ctx.get("min_length") == 1:
        return f"expected a non-empty value, got {_shown(error.get('input'))}"
    if kind == "invalid_key":
        return f"expected a text key, got {_shown(error.get('input'))}"
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
    Only one error is raised: one clear message beats a wall of consequences. An unknown key
    is preferred over a missing one next to it (``{regex: x}`` where ``text`` was meant is a
    misspelling, not an omission).
    """
    value = doc.data if data is None else data
    try:
        return model.model_validate(value, context={FROM_FILE: True})
    except ValidationError as exc:
        errors = exc.errors()
        first = _root_cause(errors)
        loc, path = _document_path(value, first.get("loc", ()))
        if prefix:
            path = f"{prefix}.{path}" if path and not path.startswith("[") else prefix + path
        message = _explain(first)
        if first.get("type") in ("union_tag_invalid", "union_tag_not_found"):
            # A mapping whose discriminator (``kind:``) is wrong or absent: name that key.
            tag = str((first.get("ctx") or {}).get("discriminator", "")).strip("'\"")
            path = f"{path}.{tag}" if path else tag
        if first.get("type") == "extra_forbidden":
            allowed = sorted(_fields_at(model, loc[:-1]))
            if allowed:
                message += f"; expected one of: {', '.join(allowed)}"
        raise doc.error(path, message) from None


def _root_cause(errors: list[dict]) -> dict:
    first = errors[0]
    if first.get("type") == "missing":
        parent = tuple(first.get("loc", ()))[:-1]
        for error in errors:
            loc = tuple(error.get("loc", ()))
            if error.get("type") == "extra_forbidden" and loc[:-1] == parent:
                return error
    return first


_ABSENT = object()


def _document_path(data: Any, loc: tuple | list) -> tuple[list, str]:
    """pydantic's location as (keys into ``data``, formatted path). Parts that are not in the
    data (union branch tags, validator names, the ``[key]`` marker of a bad mapping key) are
    dropped, except a last key, which names what is missing or unknown."""
    keys: list = []
    out = ""
    current = data
    for i, part in enumerate(loc):
        last = i == len(loc) - 1
        if part == "[key]" or part == "__root__":
            continue
        if isinstance(part, int) and isinstance(current, list) and not isinstance(part, bool):
            if 0 <= part < len(current):
                keys.append(part)
                out += f"[{part}]"
                current = current[part]
            continue
        if isinstance(current, dict):
            # pydantic writes some keys (null) as their str() in the location.
            key = part if part in current else next((k for k in current if str(k) == str(part)), _ABSENT)
        else:
            key = _ABSENT
        if key is not _ABSENT:
            keys.append(key)
            out += key_segment(key, not out)
            current = current[key]
        elif last and isinstance(current, dict):
            keys.append(part)
            out += key_segment(part, not out)
    return keys, out


def _fields_at(model: type[BaseModel], loc: list) -> dict:
    """The model fields at a location of data keys (for 'unknown key' hints); {} when not a model."""
    current: Any = model
    for part in loc:
        if isinstance(part, int):
            continue
        fields = getattr(current, "model_fields", None)
        if not fields:
            return {}
        if part not in fields:
            continue  # a key of a mapping field (aliases.ru): the model is the same
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
_DURATION_HINT = "a duration like 30s, 10m, 2h or 7d"


def parse_duration(value: Any) -> float:
    """'90s', '10m', '2h', '1d', or a number of seconds -> seconds (float).

    For command-line options, where a bare number of seconds is the convention. Config
    files use :func:`config_duration`, which insists on the unit."""
    if isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HINT}, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"expected a non-negative duration, got {value!r}")
        return float(value)
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return float(m.group(1)) * _DURATION_UNITS[m.group(2)]
    raise ValueError(f"expected {_DURATION_HINT}, got {value!r}")


FROM_FILE = "from_file"


def config_duration(value: Any, info: ValidationInfo) -> float:
    """A duration field of a config model. Read from a file (:func:`validate`), the unit is
    required (``7d``, ``30s``, ``250ms``): a bare ``7`` meant as days would silently be seven
    seconds. Built in code, a number is seconds, the unit of every duration attribute."""
    from_file = bool(info is not None and info.context and info.context.get(FROM_FILE))
    if from_file and isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError(f"expected {_DURATION_HINT} (the unit is required), got {value!r}")
    if from_file and isinstance(value, str):
        m = _DURATION.match(value)
        if m and m.group(2) is None:
            raise ValueError(f"expected {_DURATION_HINT} (the unit is required), got {value!r}")
    return parse_duration(value)


def pattern(regex: str, expected: str) -> StringConstraints:
    """A string constraint whose failure reads "expected <expected>, got 'value'"."""
    _PATTERN_EXPECTED[regex] = expected
    return StringConstraints(pattern=regex)


_PATTERN_EXPECTED: dict[str, str] = {}


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
