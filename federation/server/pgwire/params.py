"""The types of ``$n`` parameters a client leaves unspecified in Parse, inferred from where they stand
in the query (a comparison with a mesh column, a CAST, LIMIT/OFFSET...): what PostgreSQL would
report in ParameterDescription, so drivers that encode parameters in binary (asyncpg) send values
of the right type."""

from __future__ import annotations

import sqlglot.expressions as exp

from . import types as pgt

_BINARY = (exp.EQ, exp.NEQ, exp.GT, exp.GTE, exp.LT, exp.LTE, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Like,
           exp.ILike, exp.NullSafeEQ, exp.NullSafeNEQ, exp.Coalesce)


def parameters(expression: exp.Expression) -> list[exp.Parameter]:
    return [p for p in expression.find_all(exp.Parameter) if _index(p) is not None]


def _index(p: exp.Parameter) -> int | None:
    this = p.this
    if isinstance(this, exp.Literal) and not this.is_string and str(this.this).isdigit():
        return int(this.this)
    return None


def count(expression: exp.Expression | None) -> int:
    if expression is None:
        return 0
    return max((_index(p) or 0 for p in parameters(expression)), default=0)


def infer(expression: exp.Expression | None, mesh, given: list[int]) -> list[int]:
    """One OID per parameter ``$1..$n``: the client's when given (non-zero), else inferred, else text."""
    n = max(count(expression), len(given))
    out = [given[i] if i < len(given) and given[i] else 0 for i in range(n)]
    if expression is None:
        return [o or pgt.TEXT for o in out]
    tables = _tables(expression, mesh)
    for p in parameters(expression):
        i = (_index(p) or 0) - 1
        if i < 0 or out[i]:
            continue
        out[i] = _guess(p, tables) or 0
    return [o or pgt.TEXT for o in out]


def _tables(expression: exp.Expression, mesh) -> dict[str, object]:
    found = {}
    for t in expression.find_all(exp.Table):
        ds = mesh.dataset(t.db, t.name) if t.db else None
        if ds is not None:
            found[(t.alias_or_name or t.name).lower()] = ds
            found.setdefault(t.name.lower(), ds)
    return found


def _column_oid(col: exp.Column, tables: dict) -> int | None:
    candidates = [tables[col.table.lower()]] if col.table and col.table.lower() in tables else list(tables.values())
    for ds in candidates:
        c = ds.column(col.name)
        if c is not None:
            oid = pgt.duckdb_type_oid(c.data_type)[0]
            return pgt.TEXT if oid == pgt.VARCHAR else oid
    return None


def _oid_of(node: exp.Expression, tables: dict) -> int | None:
    if isinstance(node, exp.Column):
        return _column_oid(node, tables)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return pgt.TEXT
        return pgt.INT8 if str(node.this).lstrip("-").isdigit() else pgt.NUMERIC
    if isinstance(node, exp.Cast):
        return _cast_oid(node)
    if isinstance(node, exp.Boolean):
        return pgt.BOOL
    return None


def _cast_oid(cast: exp.Cast) -> int | None:
    to = cast.to
    kind = to.args.get("kind")
    if to.this == exp.DataType.Type.USERDEFINED and isinstance(kind, exp.Dot) and kind.this.name.lower() == "pg_catalog":
        try:  # pg_catalog.int8: the built-in type (asyncpg writes its casts so)
            to = exp.DataType.build(kind.expression.name, dialect="postgres")
        except Exception:  # noqa: BLE001 - no such built-in type
            return None
    name = to.sql("duckdb")
    oid = pgt.duckdb_type_oid("INTEGER" if name.upper() == "INT" else name)[0]  # sqlglot spells integer INT
    return pgt.TEXT if oid == pgt.VARCHAR else oid


def _guess(p: exp.Parameter, tables: dict) -> int | None:
    node: exp.Expression = p
    parent = node.parent
    while isinstance(parent, exp.Paren):
        node, parent = parent, parent.parent
    if isinstance(parent, exp.Cast):
        return _cast_oid(parent)
    if isinstance(parent, (exp.Any, exp.All)) and isinstance(parent.parent, _BINARY):  # x = ANY($1): x's array
        other = parent.parent.this if parent.parent.expression is parent else parent.parent.expression
        element = _oid_of(other, tables) if other is not None else None
        return pgt.ARRAY_OF.get(element or pgt.TEXT)
    if isinstance(parent, (exp.Limit, exp.Offset, exp.Fetch)):
        return pgt.INT8
    if isinstance(parent, _BINARY):
        other = parent.expression if parent.this is node else parent.this
        return _oid_of(other, tables) if other is not None else None
    if isinstance(parent, (exp.In, exp.Between)):
        return _oid_of(parent.this, tables) if parent.this is not node else None
    if isinstance(parent, exp.Not) or isinstance(parent, (exp.And, exp.Or)):
        return pgt.BOOL
    return None
