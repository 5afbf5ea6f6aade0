"""Pass: only read statements.

A query is one SELECT (with CTEs, set operations, VALUES) or a DESCRIBE / SHOW of mesh objects.
Everything else (DML, DDL, COPY, ATTACH, INSTALL, LOAD, PRAGMA, SET, EXPORT...) is refused before
it reaches the engine. Statements nested in a query (``SELECT ... INTO``) are refused by
``safety.check_nodes``.

    >>> only_reads(parse_one("delete from sales.orders"), ctx)
    StatementRefused: only queries that read the mesh are allowed; DELETE is not
"""

from __future__ import annotations

import sqlglot.expressions as exp

from ..errors import StatementRefused
from .context import Context

READ_ROOTS = (exp.Query, exp.Values, exp.Describe, exp.Show)


def statement_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper()
    return node.key.upper()


def only_reads(expression: exp.Expression, ctx: Context) -> exp.Expression:
    if not isinstance(expression, READ_ROOTS):
        raise ctx.error(StatementRefused, f"only queries that read the mesh are allowed; {statement_name(expression)} "
                        "is not (Quanta accepts SELECT, WITH, VALUES, set operations, DESCRIBE and SHOW)", expression)
    return expression
