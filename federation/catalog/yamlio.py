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


_RESOLVED: dict[tuple[str, bool, bool], str] = {}  # (plain scalar value, implicit) -> tag: a mesh repeats its words


def _resolve(self, kind, value, implicit):
    """``Resolver.resolve`` with the tags of plain scalars remembered (the same few hundred words and numbers
    come back in every contract; the regular expressions cost more than the rest of the parse)."""
    if kind is yaml.ScalarNode and len(value) <= 64 and not self.yaml_path_resolvers:
        key = (value, implicit[0], implicit[1])
        tag = _RESOLVED.get(key)
        if tag is None:
            tag = _Base.resolve(self, kind, value, implicit)
            if len(_RESOLVED) < 100_000:
                _RESOLVED[key] = tag
        return tag
    return _Base.resolve(self, kind, value, implicit)


_Loader.resolve = _resolve


class _Fallback(Exception):
    """A document the fast constructor leaves to PyYAML's (merge keys, explicit tags, odd keys)."""


_STR, _NULL, _BOOL, _INT, _FLOAT = (f"tag:yaml.org,2002:{t}" for t in ("str", "null", "bool", "int", "float"))
_SEQ, _MAP, _MERGE = "tag:yaml.org,2002:seq", "tag:yaml.org,2002:map", "tag:yaml.org,2002:merge"


def _construct(loader, node, memo: dict):
    """The Python value of a composed node, as ``SafeConstructor`` builds it, without its generators and
    per-node bookkeeping (3x faster); anything unusual raises ``_Fallback``."""
    tag = node.tag
    if isinstance(node, yaml.ScalarNode):
        if tag == _STR:
            return node.value
        if tag == _NULL:
            return None
        if tag == _BOOL:
            return loader.construct_yaml_bool(node)
        if tag == _INT:
            return loader.construct_yaml_int(node)
        if tag == _FLOAT:
            return loader.construct_yaml_float(node)
        raise _Fallback
    done = memo.get(id(node))
    if done is not None:
        return done
    if isinstance(node, yaml.SequenceNode) and tag == _SEQ:
        items: list = []
        memo[id(node)] = items
        items.extend(_construct(loader, item, memo) for item in node.value)
        return items
    if isinstance(node, yaml.MappingNode) and tag == _MAP:
        mapping: dict = {}
        memo[id(node)] = mapping
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE or not isinstance(key_node, yaml.ScalarNode):
                raise _Fallback
            mapping[_construct(loader, key_node, memo)] = _construct(loader, value_node, memo)
        return mapping
    raise _Fallback


def _load(text: str) -> Any:
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        try:
            return _construct(loader, node, {})
        except _Fallback:
            pass
    finally:
        loader.dispose()
    return yaml.load(text, Loader=_Loader)


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
        data = _load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line = mark.line + 1 if mark else None
        raise YamlError(f"invalid YAML: {e.problem or e.context}", line) from None
    except yaml.YAMLError as e:
        raise YamlError(f"invalid YAML: {e}", None) from None
    return data, Positions(text)
