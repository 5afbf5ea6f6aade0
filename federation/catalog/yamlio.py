"""YAML reading that remembers where each value came from.

``load_yaml(path)`` returns the data and a ``Positions`` map from YAML paths (tuples of keys and
indexes) to line numbers, so every validation problem can name the file, the path and the line.
Dates stay strings (the JSON Schemas of ODCS and ODPS expect strings), as JSON would read them.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

try:  # the C loader when libyaml is available
    _Base = yaml.CSafeLoader  # type: ignore[attr-defined]
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class _Loader(_Base):  # type: ignore[misc, valid-type]
    pass


# YAML 1.2 scalars: no implicit timestamps ("2024-01-01" stays the string the standards' schemas
# expect) and only true/false are booleans (YAML 1.1 would read the key `on:` or the value `no` as one).
_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers
            if tag not in ("tag:yaml.org,2002:timestamp", "tag:yaml.org,2002:bool")]
    for first, resolvers in _Base.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver("tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
                              list("tTfF"))


class Positions:
    """Line numbers of the nodes of one YAML document, by path; composed only when a line is asked
    for (most files have no problem, and recording every node's position costs more than parsing)."""

    def __init__(self, text: str | None = None) -> None:
        self._text = text
        self._lines: dict[tuple, int] | None = None if text is not None else {}

    def line(self, path: tuple | list) -> int | None:
        lines = self._compose()
        path = tuple(path)
        while path:
            if path in lines:
                return lines[path]
            path = path[:-1]
        return lines.get(())

    def _compose(self) -> dict[tuple, int]:
        if self._lines is None:
            self._lines = {}
            loader = _Loader(self._text or "")
            try:
                node = loader.get_single_node()
                if node is not None:
                    self._record(node, ())
            except yaml.YAMLError:
                pass
            finally:
                loader.dispose()
        return self._lines

    def _record(self, node: yaml.Node, path: tuple) -> None:
        lines = self._lines
        assert lines is not None
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                child = path + (key.value,)
                self._record(value, child)
                lines[child] = key.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                self._record(item, path + (i,))


def format_path(path: tuple | list) -> str:
    """``('schema', 0, 'properties', 2, 'name')`` -> ``schema[0].properties[2].name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out


class YamlError(Exception):
    def __init__(self, message: str, line: int | None):
        super().__init__(message)
        self.line = line


def load_yaml(path: Path) -> tuple[Any, Positions]:
    """Read one YAML document; raises ``YamlError`` (with the line) when it is not valid YAML."""
    return parse_yaml(path.read_bytes())


def parse_yaml(raw: bytes) -> tuple[Any, Positions]:
    """``load_yaml`` of a file's bytes already read."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise YamlError(f"not UTF-8 text ({e.reason})", None) from None
    if "\r" in text:  # as a file read in text mode: universal newlines
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    try:
        data = yaml.load(text, Loader=_Loader)  # noqa: S506 - a safe loader
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(f"invalid YAML: {e.problem or e.context}", line) from None
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {e}", None) from None
    return data, Positions(text)
