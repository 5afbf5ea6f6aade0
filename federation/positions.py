"""Where a node of a parsed query starts in the text the user sent: errors name a line and a column.

Shared by the rewrite passes and the engines' renderers (imports point one way: both may read this module,
it reads only sqlglot)."""

from __future__ import annotations

import sqlglot.expressions as exp


def _start(node: exp.Expression) -> tuple[int, int] | None:
    meta = node._meta  # noqa: SLF001 - reading .meta would create an empty dict on every node
    if not meta:
        return None
    values = [meta.get(k) for k in ("line", "col", "start", "end")]
    if not all(type(v) is int for v in values):  # a /* sqlglot.meta line=.. */ comment forges strings
        return None
    line, col, start, end = values
    return line, max(1, col - (end - start))


def position(node: exp.Expression | None) -> tuple[int, int] | None:
    """(line, column) where a node starts in the submitted SQL, when the parser recorded it."""
    if node is None:
        return None
    for part in (node, node.args.get("catalog"), node.args.get("db"), node.args.get("this")):
        if isinstance(part, exp.Expression):
            found = _start(part)
            if found:
                return found
    for child in node.iter_expressions():
        found = position(child)
        if found:
            return found
    return None
