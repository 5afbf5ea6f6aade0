"""Pass: every node of the query is something a read of the mesh may contain.

One walk over the tree refuses statements nested in a query (``SELECT ... INTO``, DML in CTEs,
commands) and every function outside the allow-list of ``functions.py`` (``getenv``, ``read_csv``,
``duckdb_settings``, ``current_setting``...): an allow-list, so a function DuckDB adds tomorrow is
refused until someone has looked at it.

    >>> check_nodes(parse_one("select getenv('HOME')"), ctx)
    StatementRefused: function getenv() is not allowed in Quanta queries (it reads the environment)
"""

from __future__ import annotations

import sqlglot.expressions as exp

from ..errors import StatementRefused, SyntaxError
from . import functions
from .context import Context

FORBIDDEN = tuple(
    cls for cls in (
        getattr(exp, name, None) for name in (
            "Into", "Insert", "Update", "Delete", "Merge", "Create", "Drop", "Alter", "Command", "Copy",
            "Attach", "Detach", "Pragma", "Set", "Use", "Install", "Load", "Export", "Transaction", "Commit",
            "Rollback", "Summarize", "Analyze", "Refresh", "Cache", "Uncache", "LoadData", "TruncateTable",
        )
    ) if isinstance(cls, type)
)


def _function_name(node: exp.Func) -> str:
    """The name a query calls a function by (an unknown function is an ``Anonymous`` carrying its name)."""
    return (node.name if isinstance(node, exp.Anonymous) else node.sql_name()).lower()


def check_nodes(expression: exp.Expression, ctx: Context) -> exp.Expression:
    for node in expression.walk():
        if isinstance(node, exp.Dot) and isinstance(node.expression, exp.Func):
            raise ctx.error(StatementRefused, f"qualified function names are not allowed in Quanta queries "
                            f"({node.sql(ctx.dialect)[:60]}); call {_function_name(node.expression)}() unqualified",
                            node)
        if isinstance(node, exp.TableAlias) and isinstance(node.this, exp.Placeholder):  # FROM t@quarantine
            raise ctx.error(SyntaxError, f"syntax error: a table's alias is a name, not a parameter ({node.this.name}); "
                            "a pinned version or the quarantine is named in double quotes: "
                            "<quantum>.\"<dataset>@v3\", <quantum>.\"<dataset>@quarantine\"", node)
        if isinstance(node, exp.Pivot) and node.args.get("this") is not None:
            raise ctx.error(StatementRefused, "a PIVOT statement is not allowed inside a query; use the PIVOT clause "
                            "(FROM <dataset> PIVOT (...)) or GROUP BY", node)
        if (isinstance(node, exp.With) and isinstance(node.parent, exp.Query)
                and isinstance(node.parent.parent, exp.SetOperation) and node.parent.arg_key in ("this", "expression")):
            raise ctx.error(StatementRefused, "WITH is not allowed on an operand of UNION, INTERSECT or EXCEPT; "
                            "write it before the whole query or in parentheses", node)
        if isinstance(node, exp.Func):
            if not functions.is_allowed(node):
                raise ctx.error(StatementRefused, functions.explain_refusal(node), node)
        elif isinstance(node, FORBIDDEN):
            what = "SELECT ... INTO" if isinstance(node, exp.Into) else node.key.upper()
            raise ctx.error(StatementRefused, f"{what} is not allowed in a query: Quanta only reads the mesh", node)
    return expression


def check_bare_identifiers(expression: exp.Expression, ctx: Context) -> exp.Expression:
    """``SELECT user`` or ``SELECT current_schema`` (no parentheses) parse as columns, and DuckDB answers them
    with engine state when no table has such a column. Refuse them unless a dataset read has that column."""
    for column in expression.find_all(exp.Column):
        name = column.name.lower()
        if name not in functions.NILADIC_FUNCTION_IDENTIFIERS or column.table:
            continue
        provided = any(
            ds is not None and ds.column(name) is not None
            for ds in (ctx.namespace.dataset(q, d) for q, d in ctx.datasets)
        ) or any(name in st.columns for st in ctx.namespace.system_tables.values()
                 if f"{st.schema}.{st.name}" in ctx.system_tables)
        if not provided:
            raise ctx.error(StatementRefused, f"{column.name} is not a column of any dataset this query reads "
                            "(Quanta does not expose engine session values)", column)
    return expression
