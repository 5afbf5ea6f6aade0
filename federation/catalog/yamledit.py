"""Round-trip edits of YAML text with ruamel.yaml: values set or dropped by YAML path, the rest of the text
(comments, key order, quoting, flow style, indentation) as it was."""

from __future__ import annotations

import io
from typing import Any

import ruamel.yaml
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from .. import errors
from .yamlio import YamlError, parse_yaml


def edited(text: str, doc: dict, edits: list[tuple[list, str, Any]], name: str = "the YAML") -> str:
    """``text`` with each edit ``(YAML path of a mapping, key, value; None drops the key)`` made through
    ruamel.yaml's round trip, so comments, key order, quoting and indentation elsewhere stay; the result must
    load (with the mesh's own loader) to ``doc``, the document with the edits. When ruamel's
    output would not (a construct its round trip does not keep), the document is written plainly."""
    try:
        rt, tree = _round_trip(text)
        for path, key, value in edits:
            node = tree
            for part in path:
                node = node[part]
            _set(node, key, value)
    except (ruamel.yaml.YAMLError, LookupError, TypeError):  # not read by ruamel as by the loader
        tree = None
    candidates = []
    if tree is not None:
        out = _dump(rt, tree)
        # ruamel may leave a space where it folds a long plain scalar: drop it (from lines the file did not have
        # as they are) when the document stays the same
        kept = set(text.split("\n"))
        candidates += ["\n".join(line if line in kept else line.rstrip(" \t") for line in out.split("\n")), out]
    candidates.append(_dump(_round_trip("")[0], doc))
    for out in candidates:
        try:
            if parse_yaml(out.encode("utf-8"))[0] == doc:  # read as the mesh loader reads it
                return out
        except YamlError:
            pass
    raise errors.DataError(f"{name}: could not be edited into YAML that loads to the same document")


def _set(node: CommentedMap, key: str, value: Any) -> None:
    """Set (or, with None, drop) ``key`` of ``node``. ruamel keeps a comment line with the scalar before it, so a
    comment that ends the mapping, or that follows the entry, is moved to stay where it was in the text."""
    tail = _take(node, next(reversed(node))) if node else None  # the comment after the mapping
    after = _take(node, key) if key in node else None  # the comment between this entry and the next
    keys = list(node)
    if value is None:
        if key in node:
            node.pop(key)
            if after is not None and keys.index(key) > 0:
                _put(node, keys[keys.index(key) - 1], after)
    else:
        node[key] = _commented(value)
        if after is not None:
            _put(node, key, after)
    if tail is not None and node:
        _put(node, next(reversed(node)), tail)


def _take(node: Any, key: Any) -> CommentToken | None:
    """Remove and return the comment after entry ``key`` of ``node`` (kept on its last scalar, at any depth)."""
    found = []
    while True:
        slot = node.ca.items.get(key)
        at = 2 if isinstance(node, CommentedMap) else 0
        if slot is not None and slot[at] is not None:
            found.append(slot[at])
            slot[at] = None
        child = node[key]
        if not isinstance(child, (CommentedMap, CommentedSeq)) or not child:
            break
        node, key = child, (next(reversed(child)) if isinstance(child, CommentedMap) else len(child) - 1)
    if not found:
        return None
    token = found.pop()  # the deepest comes first in the text
    for outer in reversed(found):
        token.value += outer.value.lstrip("\n")
    return token


def _put(node: Any, key: Any, token: CommentToken) -> None:
    """Put ``token`` after entry ``key`` of ``node``, on its last scalar (in block style)."""
    while True:
        child = node[key]
        if not isinstance(child, (CommentedMap, CommentedSeq)) or not child or child.fa.flow_style():
            break
        node, key = child, (next(reversed(child)) if isinstance(child, CommentedMap) else len(child) - 1)
    slot = node.ca.items.setdefault(key, [None, None, None, None])
    at = 2 if isinstance(node, CommentedMap) else 0
    if slot[at] is None:
        slot[at] = token
    else:
        slot[at].value += token.value.lstrip("\n")


def _commented(value: Any) -> Any:
    if isinstance(value, dict):
        return CommentedMap((k, _commented(v)) for k, v in value.items())
    if isinstance(value, list):
        return CommentedSeq(_commented(v) for v in value)
    return value


def _round_trip(text: str) -> tuple[YAML, Any]:
    """The document of ``text`` read by a round-trip YAML, which writes it with the same indentation, line
    width and document start."""
    rt = YAML(typ="rt")
    rt.preserve_quotes = True
    rt.width = max([80, *map(len, text.splitlines())])  # ruamel folds long scalars: never wider than the file
    rt.explicit_start = text.lstrip().startswith("---")
    tree, indent, dash = load_yaml_guess_indent(text, yaml=rt)
    sequence = indent or 2  # where a sequence item's content starts; its dash is ``dash`` further in
    rt.indent(mapping=dash or sequence, sequence=sequence, offset=dash or 0)  # a dash under its key is indented
    # as the key's mapping is (the usual styles: "key:\n  - item", "key:\n- item", 4-space indents)
    return rt, tree


def _dump(rt: YAML, data: Any) -> str:
    out = io.StringIO()
    rt.dump(data, out)
    return out.getvalue()
