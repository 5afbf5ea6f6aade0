"""Pass: DESCRIBE and SHOW of mesh objects become queries over the system tables.

    DESCRIBE sales.orders   ->  SELECT column_name, column_type, ... FROM system.columns WHERE ...
    SHOW TABLES             ->  SELECT quantum AS schema, dataset AS name ... FROM system.datasets
    DESCRIBE SELECT ...     ->  kept: the inner query goes through every other pass

The result is then resolved like any query, so DESCRIBE never reads the engine's own catalog.
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp

from ..errors import StatementRefused, UnknownObject
from .context import Context

_DESCRIBE = """
SELECT "column" AS column_name, data_type AS column_type,
       CASE WHEN required THEN 'NO' ELSE 'YES' END AS "null",
       CASE WHEN primary_key THEN 'PRI' WHEN "unique" THEN 'UNI' END AS "key",
       NULL AS "default", NULL AS extra, classification, description
FROM system.columns
WHERE lower(quantum) = {q} AND lower(dataset) = {d}
ORDER BY ordinal
"""

_SHOW_TABLES = """
SELECT 'quanta' AS database, quantum AS schema, dataset AS name, description
FROM system.datasets ORDER BY quantum, dataset
"""


def describe_and_show(expression: exp.Expression, ctx: Context) -> exp.Expression:
    if isinstance(expression, exp.Describe):
        target = expression.this
        if isinstance(target, exp.Query):
            return expression
        if isinstance(target, exp.Table):
            return _describe_table(target, ctx)
        raise ctx.error(StatementRefused, "DESCRIBE takes a dataset (<quantum>.<dataset>) or a query", expression)
    if isinstance(expression, exp.Show):
        what = str(expression.name).upper()
        if what in ("TABLES", "ALL TABLES"):
            return sqlglot.parse_one(_SHOW_TABLES, read="duckdb")
        raise ctx.error(StatementRefused, f"SHOW {what} is not supported; query the system tables instead "
                        "(system.datasets, system.columns)", expression)
    return expression


def _describe_table(table: exp.Table, ctx: Context) -> exp.Expression:
    quantum, name = table.text("db"), table.name
    if not quantum:
        raise ctx.error(UnknownObject, f"DESCRIBE {name}: datasets are named <quantum>.<dataset>", table)
    key = (quantum.lower(), name.lower())
    if key in ctx.namespace.system_tables:
        return sqlglot.parse_one(
            "SELECT column_name, data_type AS column_type FROM information_schema.columns "
            f"WHERE table_schema = {exp.Literal.string(key[0]).sql()} "
            f"AND table_name = {exp.Literal.string(key[1]).sql()} ORDER BY ordinal_position", read="duckdb")
    if ctx.namespace.dataset(quantum, name) is None:
        raise ctx.error(UnknownObject, f"dataset {quantum}.{name} does not exist", table)
    sql = _DESCRIBE.format(q=exp.Literal.string(key[0]).sql(), d=exp.Literal.string(key[1]).sql())
    return sqlglot.parse_one(sql, read="duckdb")
