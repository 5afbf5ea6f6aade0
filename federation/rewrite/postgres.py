"""PostgreSQL semantics for SQL that arrives as PostgreSQL (the pgwire server compiles with ``dialect="postgres"``).

sqlglot parses the PostgreSQL text and writes DuckDB SQL; what it cannot know without types is corrected
here, so that a query over the wire answers what PostgreSQL would (checked query by query against a real
PostgreSQL by tests/test_pg_differential.py):

- ``int / int`` divides integers (``10 / 4`` is 2, truncated towards zero), ``numeric / numeric`` is numeric;
- a division or modulo by zero is an error (SQLSTATE 22012), not Infinity or NULL;
- ``sum``/``avg``/``stddev``... have PostgreSQL's result types (sum(int4) is int8, avg(int) numeric, ...);
- ``extract`` is numeric, ``date_part`` double precision;
- output columns without an alias get PostgreSQL's names (``count``, ``sum``, ``?column?``, ``case``,
  ``coalesce``, the type of a cast: the ``FigureColname`` rules of PostgreSQL's parse_target.c).

The pass runs last, on the final tree, and only rewrites expressions of the query the user wrote: it never
touches a relation, nor anything inside the secure selects and derived datasets the governance passes placed
(those subqueries are marked by the resolver), so it cannot change what governance decided. Types come from
the contracts (the backend relations' columns) and sqlglot's annotate_types on a qualified copy of the tree;
where an operand's type is unknown, DuckDB's behaviour is kept.
"""

from __future__ import annotations

import re

import sqlglot.expressions as exp
from sqlglot.dialects.postgres import Postgres
from sqlglot.optimizer.annotate_types import annotate_types
from sqlglot.optimizer.qualify import qualify
from sqlglot.schema import MappingSchema

from ..errors import NotSupportedError, ProgrammingError
from .context import Context

T = exp.DataType.Type
INTEGERS = {T.TINYINT, T.SMALLINT, T.INT, T.BIGINT, T.UTINYINT, T.USMALLINT, T.UINT}
WIDE = {T.UBIGINT, T.INT128, T.UINT128, T.DECIMAL, T.BIGDECIMAL}  # PostgreSQL: numeric
FLOATS = {T.FLOAT, T.DOUBLE}
RANK = {T.TINYINT: 1, T.UTINYINT: 1, T.SMALLINT: 1, T.USMALLINT: 2, T.INT: 2, T.UINT: 3, T.BIGINT: 3}
INT_OF_RANK = {1: T.SMALLINT, 2: T.INT, 3: T.BIGINT}

TEXT_TYPES = {T.VARCHAR, T.TEXT, T.NVARCHAR, T.CHAR, T.NCHAR}
NUMERIC = exp.DataType.build("DECIMAL(38, 16)")  # PostgreSQL's numeric division keeps 16 significant digits
# functions that return int4 in PostgreSQL (bigint in DuckDB)
INT4_FUNCTIONS = (exp.Length, exp.StrPosition, exp.Ntile, exp.Ascii)
INT4_NAMES = {"octet_length", "char_length", "character_length", "bit_length", "strpos", "array_length",
              "array_position"}
STATISTICS = (exp.Avg, exp.Stddev, exp.StddevSamp, exp.StddevPop, exp.Variance, exp.VariancePop)
# PostgreSQL's names of the types a cast may name a column after (``'1'::int`` is named int4)
TYPE_NAMES = {T.INT: "int4", T.BIGINT: "int8", T.SMALLINT: "int2", T.FLOAT: "float4", T.DOUBLE: "float8",
              T.BOOLEAN: "bool", T.DECIMAL: "numeric", T.CHAR: "bpchar", T.NCHAR: "bpchar", T.VARCHAR: "varchar",
              T.NVARCHAR: "varchar", T.TEXT: "text", T.DATE: "date", T.TIMESTAMP: "timestamp",
              T.TIMESTAMPTZ: "timestamptz", T.TIME: "time", T.TIMETZ: "timetz", T.INTERVAL: "interval",
              T.JSON: "json", T.JSONB: "jsonb", T.UUID: "uuid", T.VARBINARY: "bytea", T.BINARY: "bytea"}
# names of syntax that is no plain function call in the text (PostgreSQL names the function it calls)
SYNTAX_NAMES = {exp.CurrentDate: "current_date", exp.CurrentTimestamp: "current_timestamp",
                exp.CurrentTime: "current_time", exp.CurrentUser: "current_user", exp.Exists: "exists",
                exp.Array: "array", exp.Coalesce: "coalesce", exp.Nullif: "nullif", exp.Greatest: "greatest",
                exp.Least: "least", exp.Extract: "extract", exp.StrPosition: "position", exp.Trim: "btrim",
                exp.Substring: "substring", exp.Overlay: "overlay", exp.Grouping: "grouping"}
# PostgreSQL's system types the engine has no equivalent of (a cast to one is refused, never left to the engine)
SYSTEM_TYPES = frozenset({"int2vector", "oidvector", "regclass", "regtype", "regproc", "regprocedure", "regoper",
                          "regoperator", "regnamespace", "regrole", "regconfig", "regdictionary", "xid", "xid8", "cid",
                          "tid", "pg_lsn", "tsvector", "tsquery", "txid_snapshot", "pg_snapshot", "aclitem",
                          "pg_node_tree"})
POSTGRES_FUNCTIONS = frozenset(Postgres.Parser.FUNCTIONS) | frozenset(Postgres.Parser.FUNCTION_PARSERS)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_$]*")


def postgres_semantics(expression: exp.Expression, ctx: Context) -> exp.Expression:
    if ctx.dialect != "postgres":
        return expression
    selects = [s for s in _user_nodes(expression, ctx) if isinstance(s, exp.Select)]
    names = {id(s): [figure_colname(p, ctx.sql)[0] for p in s.expressions] for s in selects}
    types = _column_types(expression, ctx)
    for node in _user_nodes(expression, ctx):  # pg_catalog.int8 and friends: the built-in types
        if isinstance(node, exp.DataType) and (node.this == exp.DataType.Type.USERDEFINED or
                                               str(node.this).lower() in SYSTEM_TYPES):
            _builtin_type(node, ctx)
    for node in reversed(_user_nodes(expression, ctx)):  # the innermost first
        if isinstance(node, (exp.Div, exp.Mod, exp.IntDiv)):
            if isinstance(node, exp.Mod):
                _no_float_modulo(node, types, ctx)
            _divide(node, types)
        elif isinstance(node, (exp.Sum, *STATISTICS)):
            _aggregate(node, types)
        elif isinstance(node, exp.Extract):
            _extract(node, ctx.sql)
        elif isinstance(node, INT4_FUNCTIONS) or (isinstance(node, exp.Anonymous) and node.name.lower() in INT4_NAMES):
            if isinstance(node, exp.Anonymous) and node.name.lower() == "octet_length":
                node.set("this", "strlen")  # bytes of the UTF-8 text
            _cast_outer(node, exp.DataType.build("INT"))
        elif isinstance(node, exp.Format):
            _format(node)
        elif isinstance(node, exp.Anonymous) and node.name.lower() in ("quote_literal", "quote_nullable") \
                and len(node.expressions) == 1:
            _quote_literal(node)
        elif isinstance(node, exp.Anonymous) and node.name.lower() == "quote_ident" and len(node.expressions) == 1:
            node.replace(quote_ident(node.expressions[0].copy()))
        elif isinstance(node, (exp.Greatest, exp.Least)):
            _common_integer(node, [node.this, *node.expressions], types)
        elif isinstance(node, exp.Array) and node.expressions:
            _common_integer(node, node.expressions, types, array=True)
        elif isinstance(node, exp.Sign):
            _sign(node, types)
        elif isinstance(node, exp.ExplodingGenerateSeries):
            _generate_series(node, types)
        elif isinstance(node, exp.Cast) and node.to.this == T.DECIMAL and not node.to.expressions:
            _numeric_cast(node, types)
        elif isinstance(node, exp.Cast) and node.to.this in (T.VARCHAR, T.NVARCHAR, T.CHAR, T.NCHAR) and \
                len(node.to.expressions) == 1:
            _sized_text(node)
        elif isinstance(node, exp.Sub) and pg_type(node.left, types) == pg_type(node.right, types) == T.DATE:
            _cast_outer(node, exp.DataType.build("INT"))  # date - date is int4
        elif isinstance(node, (exp.Add, exp.Sub, exp.Mul)):
            _int4(node, types)
        elif isinstance(node, exp.DateTrunc | exp.TimestampTrunc) and pg_type(node.this, types) == T.DATE:
            _cast_outer(node, exp.DataType.build("TIMESTAMPTZ"))  # date_trunc(text, date) runs on timestamptz
        elif isinstance(node, exp.DPipe) and not isinstance(node.parent, exp.DPipe):
            # text || NULL, and text parameters (described with NULL values): DuckDB folds a concatenation with a
            # NULL to an untyped NULL (typed integer)
            if any(isinstance(side, exp.Null) or (isinstance(side, exp.Cast) and side.to.this in TEXT_TYPES)
                   for side in node.flatten()):
                node.replace(exp.cast(node.copy(), "VARCHAR"))
        elif isinstance(node, (exp.GroupConcat, exp.ArrayAgg)) and isinstance(node.this, exp.Distinct):
            _sort_distinct(node)
        elif isinstance(node, exp.WithinGroup) and isinstance(node.this, exp.PercentileCont):
            for ordered in node.expression.expressions:  # percentile_cont(float8): interpolates in doubles
                ordered.set("this", exp.cast(ordered.this, "DOUBLE"))
    for select in selects:
        for projection in select.expressions:
            if isinstance(projection, exp.Null):  # SELECT NULL: text
                projection.replace(exp.cast(exp.null(), "VARCHAR"))
    for select in selects:
        for projection, name in zip(list(select.expressions), names[id(select)]):
            if name and not isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
                projection.replace(exp.alias_(projection, exp.to_identifier(name, quoted=True)))
    return expression


# -- the user's part of the tree ---------------------------------------------------------------------------------


def _user_nodes(root: exp.Expression, ctx: Context) -> list[exp.Expression]:
    """The nodes of the query as the user wrote it, in pre-order: not inside a subquery or table the pipeline
    placed (a secure select, a derived dataset, a system table)."""
    out, stack = [], [root]
    while stack:
        node = stack.pop()
        if node is not root and isinstance(node, (exp.Subquery, exp.Table)) and ctx.mark_of(node):
            continue
        out.append(node)
        stack.extend(reversed(list(node.iter_expressions())))
    return out


def _column_types(root: exp.Expression, ctx: Context) -> dict[int, exp.DataType]:
    """id(column node) -> its type, from sqlglot's annotate_types over a qualified copy of the tree with the
    backend relations' column types (the contracts)."""
    mapping: dict = {}
    for table in root.find_all(exp.Table):
        if not (table.catalog and table.db):
            continue
        dataset = _dataset_of(ctx, (table.catalog, table.db, table.name))
        if dataset is not None:
            mapping.setdefault(table.catalog, {}).setdefault(table.db, {})[table.name] = {
                c.name: c.data_type for c in dataset.columns}
    if not mapping:
        return {}
    copy = root.copy()
    pairs = [(a, b) for a, b in zip(root.walk(), copy.walk()) if isinstance(a, exp.Column)]
    try:
        schema = MappingSchema(mapping, dialect="duckdb", normalize=False)
        qualify(copy, schema=schema, dialect="duckdb", validate_qualify_columns=False, quote_identifiers=False,
                identify=False, expand_stars=False)
        annotate_types(copy, schema=schema, dialect="duckdb")
    except Exception:  # noqa: BLE001 - no types: DuckDB's semantics stay
        return {}
    return {id(a): b.type for a, b in pairs if b.type is not None and b.type.this != T.UNKNOWN}


def _dataset_of(ctx: Context, relation: tuple[str, str, str]):
    ns = ctx.namespace
    name = relation[2]
    if "@v" in name:
        base, _, version = name.rpartition("@v")
        if version.isdigit():
            return ns.pinned_datasets.get((relation[1], base, int(version)))
    ds = ns.dataset(relation[1], name)
    if ds is not None and tuple(p.lower() for p in ns.relation(ds.quantum, ds.name)) == tuple(
            p.lower() for p in relation):
        return ds
    return None


# -- types as PostgreSQL sees them -------------------------------------------------------------------------------


def pg_type(node: exp.Expression | None, types: dict[int, exp.DataType]) -> T | None:
    """The type PostgreSQL gives ``node`` (as a DuckDB type kind: INT for int4, DECIMAL for numeric), or None."""
    if node is None:
        return None
    if isinstance(node, (exp.Paren, exp.Neg)):
        return pg_type(node.this, types)
    if isinstance(node, exp.Column):
        t = types.get(id(node))
        return None if t is None else (T.DECIMAL if t.this in WIDE else t.this)
    if isinstance(node, exp.Literal):
        if node.is_string:
            return None
        text = node.this
        if re.fullmatch(r"\d+", text):
            return T.INT if int(text) < 2 ** 31 else T.BIGINT if int(text) < 2 ** 63 else T.DECIMAL
        return T.DECIMAL
    if isinstance(node, exp.Cast):
        t = node.to.this
        return T.DECIMAL if t in WIDE else t
    if isinstance(node, (exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.IntDiv)):
        return _arithmetic(pg_type(node.left, types), pg_type(node.right, types))
    if isinstance(node, exp.Count):
        return T.BIGINT
    if isinstance(node, (exp.Sum, *STATISTICS)):
        return _aggregate_type(node, pg_type(node.this, types))
    if isinstance(node, (exp.Min, exp.Max)):
        return pg_type(node.this, types)
    if isinstance(node, (exp.Window, exp.Filter)):
        return pg_type(node.this, types)
    if isinstance(node, exp.Case) and node.args.get("default") is not None:  # a guarded divisor
        return pg_type(node.args["default"], types)
    if isinstance(node, exp.Subquery) and isinstance(node.this, exp.Select) and len(node.this.expressions) == 1:
        return pg_type(node.this.expressions[0].unalias(), types)
    return None


def _arithmetic(a: T | None, b: T | None) -> T | None:
    if a is None or b is None:
        return None
    if a in FLOATS or b in FLOATS:
        return T.DOUBLE
    if a in INTEGERS and b in INTEGERS:
        return INT_OF_RANK[max(RANK.get(a, 3), RANK.get(b, 3))]
    if {a, b} <= INTEGERS | {T.DECIMAL}:
        return T.DECIMAL
    return None


def _aggregate_type(node: exp.Expression, arg: T | None) -> T | None:
    if arg is None:
        return None
    if isinstance(node, exp.Sum):
        if arg in (T.SMALLINT, T.INT, T.TINYINT, T.UTINYINT, T.USMALLINT):
            return T.BIGINT
        if arg in INTEGERS or arg == T.DECIMAL:
            return T.DECIMAL
        return T.FLOAT if arg == T.FLOAT else T.DOUBLE if arg == T.DOUBLE else None
    return T.DECIMAL if arg in INTEGERS or arg == T.DECIMAL else T.DOUBLE if arg in FLOATS else None


# -- the corrections -------------------------------------------------------------------------------------------


def _divide(node: exp.Expression, types: dict[int, exp.DataType]) -> None:
    """Integer division for integers, numeric for exact numbers, and an error for a zero divisor."""
    left, right = pg_type(node.left, types), pg_type(node.right, types)
    divisor = node.expression
    nonzero = isinstance(divisor, exp.Literal) and not divisor.is_string and float(divisor.this) != 0
    # the divisor is written twice: not when it reads a relation (placed once) or is volatile
    if not nonzero and not any(isinstance(n, (exp.Rand, exp.Uuid, exp.Query, exp.Table)) for n in divisor.walk()):
        guarded = exp.Case(ifs=[exp.If(this=exp.EQ(this=divisor.copy(), expression=exp.Literal.number(0)),
                                       true=exp.func("error", exp.Literal.string("division by zero")))],
                           default=divisor)  # the node itself: its type is known
        node.set("expression", guarded)
    if not isinstance(node, exp.Div):
        _int4(node, types)
        return
    if left in INTEGERS and right in INTEGERS:
        division = exp.IntDiv(this=node.this, expression=node.expression)
        node.replace(division)
        _int4(division, types)
    elif left is not None and right is not None and {left, right} <= INTEGERS | {T.DECIMAL}:
        node.set("typed", False)
        node.replace(exp.Cast(this=exp.Paren(this=node.copy()), to=NUMERIC.copy()))
    else:
        node.set("typed", False)


class UndefinedFunction(ProgrammingError):
    """No operator or function of these argument types (PostgreSQL's 42883)."""

    code = "undefined_function"
    sqlstate = "42883"


PG_TYPE_NAMES = {T.SMALLINT: "smallint", T.INT: "integer", T.BIGINT: "bigint", T.DECIMAL: "numeric",
                 T.FLOAT: "real", T.DOUBLE: "double precision"}


def _no_float_modulo(node: exp.Mod, types: dict[int, exp.DataType], ctx: Context) -> None:
    """PostgreSQL has no % of floating-point numbers (42883), where DuckDB computes fmod."""
    left, right = pg_type(node.left, types), pg_type(node.right, types)
    if left in FLOATS or right in FLOATS:
        names = [PG_TYPE_NAMES.get(t, "unknown") for t in (left, right)]
        raise ctx.error(UndefinedFunction, f"operator does not exist: {names[0]} % {names[1]} (no operator matches "
                        "the given name and argument types: cast to numeric, or use mod() of integers)", node)


def _int4(node: exp.Expression, types: dict[int, exp.DataType]) -> None:
    """int2 + 3 is int4 in PostgreSQL (the literal is int4); DuckDB keeps the smallint."""
    if pg_type(node, types) == T.INT and T.SMALLINT in (pg_type(node.left, types), pg_type(node.right, types)):
        _cast_outer(node, exp.DataType.build("INT"))


def _builtin_type(node: exp.DataType, ctx: Context) -> None:
    """A type named with its schema, ``pg_catalog.int8``, is the built-in type (as ORMs and drivers write it);
    PostgreSQL's system types the engine does not have (int2vector, regclass...) are refused (0A000)."""
    kind = node.args.get("kind")
    if isinstance(kind, exp.Dot) and kind.this.name.lower() == "pg_catalog":
        try:
            node = node.replace(exp.DataType.build(kind.expression.name, dialect="postgres"))
            kind = node.args.get("kind")
        except Exception:  # noqa: BLE001 - not a type PostgreSQL knows: left for the engine to refuse
            kind = kind.expression
    name = (kind.name if isinstance(kind, exp.Expression) else str(node.this)).lower()
    if name in SYSTEM_TYPES:
        raise ctx.error(NotSupportedError, f"type {name} is not supported in queries of the mesh (a PostgreSQL "
                        "system type: it is served by pg_catalog queries only)", node)


def _quote_literal(node: exp.Anonymous) -> None:
    node.replace(quote_literal(node.expressions[0].copy(), node.name.lower() == "quote_nullable"))


def quote_literal(value: exp.Expression, nullable: bool = False) -> exp.Expression:
    """quote_literal(x) / quote_nullable(x): x as a SQL string literal (quotes doubled; with a backslash,
    PostgreSQL's E'' form with backslashes doubled); NULL stays NULL (quote_literal) or is 'NULL'. Also
    used by the pgwire catalog (``quote_literal(current_setting('search_path'))``)."""
    text = exp.cast(value, "VARCHAR")
    quote = exp.Literal.string("'")

    def doubled(value: exp.Expression) -> exp.Expression:
        return exp.func("replace", value, quote.copy(), exp.Literal.string("''"))

    backslashes = exp.func("replace", text.copy(), exp.Literal.string("\\"), exp.Literal.string("\\\\"))
    plain = exp.DPipe(this=exp.DPipe(this=quote.copy(), expression=doubled(text.copy())), expression=quote.copy())
    escaped = exp.DPipe(this=exp.DPipe(this=exp.Literal.string("E'"), expression=doubled(backslashes)),
                        expression=quote.copy())
    null = exp.Literal.string("NULL") if nullable else exp.cast(exp.null(), "VARCHAR")
    return exp.Case(ifs=[
        exp.If(this=exp.Is(this=text.copy(), expression=exp.null()), true=null),
        exp.If(this=exp.func("contains", text.copy(), exp.Literal.string("\\")), true=escaped),
    ], default=plain)


# PostgreSQL's keywords that quote_ident quotes (every category but the unreserved: pg_get_keywords() where
# catcode <> 'U', PostgreSQL 15)
QUOTED_KEYWORDS = frozenset("""
all analyse analyze and any array as asc asymmetric authorization between bigint binary bit boolean both case cast
char character check coalesce collate collation column concurrently constraint create cross current_catalog
current_date current_role current_schema current_time current_timestamp current_user dec decimal default deferrable
desc distinct do else end except exists extract false fetch float for foreign freeze from full grant greatest group
grouping having ilike in initially inner inout int integer intersect interval into is isnull join lateral leading
least left like limit localtime localtimestamp national natural nchar none normalize not notnull null nullif numeric
offset on only or order out outer overlaps overlay placing position precision primary real references returning
right row select session_user setof similar smallint some substring symmetric table tablesample then time timestamp
to trailing treat trim true union unique user using values varchar variadic verbose when where window with
xmlattributes xmlconcat xmlelement xmlexists xmlforest xmlnamespaces xmlparse xmlpi xmlroot xmlserialize xmltable
""".split())


def quote_ident(value: exp.Expression) -> exp.Expression:
    """quote_ident(x): x as it is when it is a lower-case ASCII identifier and not a keyword PostgreSQL quotes,
    else in double quotes (quotes doubled), like PostgreSQL's quote_identifier; NULL stays NULL."""
    text = exp.cast(value, "VARCHAR")
    plain = exp.and_(exp.func("regexp_full_match", text.copy(), exp.Literal.string("[a-z_][a-z0-9_]*")),
                     exp.not_(exp.In(this=text.copy(),
                                     expressions=[exp.Literal.string(w) for w in sorted(QUOTED_KEYWORDS)])))
    quoted = exp.DPipe(this=exp.DPipe(this=exp.Literal.string('"'), expression=exp.func(
        "replace", text.copy(), exp.Literal.string('"'), exp.Literal.string('""'))), expression=exp.Literal.string('"'))
    return exp.Case(ifs=[exp.If(this=exp.Is(this=text.copy(), expression=exp.null()),
                                true=exp.cast(exp.null(), "VARCHAR")),
                         exp.If(this=plain, true=text.copy())], default=quoted)


def _common_integer(node: exp.Expression, args: list, types: dict[int, exp.DataType], array: bool = False) -> None:
    """greatest/least/ARRAY[...] of integers have PostgreSQL's common type, the widest operand's (greatest(int2, 3)
    is int4: the literal is int4); DuckDB narrows a literal that fits to the column's type."""
    kinds = [pg_type(a, types) for a in args]
    if not kinds or any(k not in INTEGERS for k in kinds):
        return
    widest = INT_OF_RANK[max(RANK.get(k, 3) for k in kinds)]
    if all(k == widest for k in kinds):
        return
    target = exp.DataType.build(f"{exp.DataType.build(widest.value).sql('duckdb')}{'[]' if array else ''}")
    _cast_outer(node, target)


def _sign(node: exp.Sign, types: dict[int, exp.DataType]) -> None:
    """sign() is float8 of integers and floats (PostgreSQL has sign(float8) and sign(numeric)), numeric of
    numerics; DuckDB's is a tinyint."""
    kind = pg_type(node.this, types)
    if kind in INTEGERS or kind in FLOATS:
        _cast_outer(node, exp.DataType.build("DOUBLE"))
    elif kind == T.DECIMAL:
        _cast_outer(node, exp.DataType.build("DECIMAL(18, 0)"))


def _generate_series(node: exp.ExplodingGenerateSeries, types: dict[int, exp.DataType]) -> None:
    """generate_series(int4, int4 [, int4]) in a select list gives int4 rows (DuckDB's are bigint)."""
    bounds = [node.args.get(k) for k in ("start", "end", "step") if node.args.get(k) is not None]
    if len(bounds) >= 2 and all(pg_type(b, types) == T.INT for b in bounds):
        series = exp.Anonymous(this="generate_series", expressions=[b.copy() for b in bounds])
        node.replace(exp.Unnest(expressions=[exp.cast(series, exp.DataType.build("INT[]"))]))


def _numeric_cast(node: exp.Cast, types: dict[int, exp.DataType]) -> None:
    """x::numeric without a precision keeps the value (PostgreSQL's numeric has no fixed scale; DuckDB's DECIMAL
    is decimal(18,3)): an integer's digits, a literal's own scale, a decimal column's type, a float's 15 significant
    digits (PostgreSQL's float8_numeric) with 16 decimals."""
    source = node.this
    kind = pg_type(source, types)
    if kind in INTEGERS:
        to = "DECIMAL(38, 0)"
    elif isinstance(source, (exp.Literal, exp.Neg)) and kind == T.DECIMAL and \
            isinstance(source.unnest() if isinstance(source, exp.Literal) else source.this, exp.Literal):
        literal = source if isinstance(source, exp.Literal) else source.this
        digits = str(literal.this)
        if not re.fullmatch(r"\d*\.\d*", digits):
            return
        scale = len(digits.split(".")[1])
        if len(digits.replace(".", "").lstrip("0")) - scale > 38 - scale or scale > 38:
            return
        to = f"DECIMAL(38, {scale})"
    elif isinstance(source, exp.Column) and kind == T.DECIMAL and types.get(id(source)) is not None and \
            types[id(source)].this == T.DECIMAL and types[id(source)].expressions:
        node.set("to", types[id(source)].copy())
        return
    elif kind in FLOATS:  # PostgreSQL's float8_numeric: 15 significant digits, then exact
        node.set("this", exp.func("printf", exp.Literal.string("%.15g"), source.copy()))
        to = "DECIMAL(38, 16)"
    else:
        return
    node.set("to", exp.DataType.build(to))


def _sized_text(node: exp.Cast) -> None:
    """x::varchar(n) and x::char(n) keep the first n characters (an explicit cast truncates in PostgreSQL; DuckDB
    ignores the length). char(n)'s padding is not added: PostgreSQL drops it again wherever the value is used as
    text (concatenation, length, comparisons)."""
    size = node.to.expressions[0]
    size = size.this if isinstance(size, exp.DataTypeParam) else size
    if not (isinstance(size, exp.Literal) and str(size.this).isdigit()):
        return
    n = exp.Literal.number(int(size.this))
    text = exp.func("left", exp.cast(node.this.copy(), "VARCHAR"), n)
    node.replace(exp.cast(text, "VARCHAR"))


def _format(node: exp.Format) -> None:
    """format('%s-%s', a, b) with only %s: DuckDB's printf, NULL arguments written as nothing."""
    template = node.this
    if not (isinstance(template, exp.Literal) and template.is_string):
        return
    if re.sub(r"%%|%s", "", template.this).count("%"):
        return
    args = [exp.func("coalesce", exp.cast(a, "VARCHAR"), exp.Literal.string("")) for a in node.expressions]
    node.replace(exp.Anonymous(this="printf", expressions=[template.copy(), *args]))


def _cast_outer(node: exp.Expression, to: exp.DataType) -> None:
    """Cast ``node`` to ``to``; an aggregate or window function with its OVER/FILTER clause."""
    outer = node
    while isinstance(outer.parent, (exp.Window, exp.Filter)) and outer.parent.this is outer:
        outer = outer.parent
    outer.replace(exp.Cast(this=outer.copy(), to=to))


def _sort_distinct(node: exp.Expression) -> None:
    """string_agg(DISTINCT x, ...) and array_agg(DISTINCT x) come out sorted by x in PostgreSQL."""
    distinct = node.this
    if len(distinct.expressions) != 1 or node.find(exp.Order):
        return
    value = distinct.expressions[0]
    node.set("this", exp.Order(this=distinct.copy(), expressions=[exp.Ordered(this=value.copy())]))


def _aggregate(node: exp.Expression, types: dict[int, exp.DataType]) -> None:
    """sum(int4) is int8, avg(int) numeric...: cast the aggregate (its window or filter included)."""
    want = _aggregate_type(node, pg_type(node.this, types))
    if want is None:
        return
    duckdb_type = {T.BIGINT: T.INT128}.get(want, want) if isinstance(node, exp.Sum) else T.DOUBLE
    if want == duckdb_type or (want == T.DECIMAL and isinstance(node, exp.Sum)):
        return
    _cast_outer(node, NUMERIC.copy() if want == T.DECIMAL else exp.DataType.build(want))


def _extract(node: exp.Extract, sql: str) -> None:
    """extract() is numeric since PostgreSQL 14; date_part() is double precision."""
    written = _written_name(node, sql)
    unit = node.this.name.lower() if isinstance(node.this, (exp.Var, exp.Identifier, exp.Literal)) else ""
    if written == "date_part":
        to = exp.DataType.build("DOUBLE")
    else:
        to = exp.DataType.build("DECIMAL(38, 6)" if unit in ("epoch", "second", "seconds") else "DECIMAL(38, 0)")
    node.replace(exp.Cast(this=node.copy(), to=to))


# -- output column names (PostgreSQL's FigureColname) ---------------------------------------------------------


def figure_colname(node: exp.Expression, sql: str) -> tuple[str | None, int]:
    """(name, strength) as parse_target.c's FigureColnameInternal: 2 for a name taken from a column, a function
    or a subquery, 1 for a fallback (case, coalesce, a cast's type), 0 for none (``?column?``)."""
    name, strength = _figure_inner(node, sql)
    return (name if strength else "?column?"), strength


def _figure_inner(node: exp.Expression, sql: str) -> tuple[str | None, int]:
    if isinstance(node, exp.Alias):
        return node.alias, 2
    if isinstance(node, exp.Paren):
        return _figure_inner(node.this, sql)
    if isinstance(node, exp.Column):
        return (node.name, 2) if not isinstance(node.this, exp.Star) else (None, 0)
    if isinstance(node, exp.Dot):
        return node.name, 2
    if isinstance(node, (exp.Cast, exp.TryCast)):
        name, strength = _figure_inner(node.this, sql)
        if strength <= 1:
            to = node.to
            inner = to.expressions[0] if to.this == T.ARRAY and to.expressions else to
            written = TYPE_NAMES.get(inner.this) if isinstance(inner, exp.DataType) else None
            return (written or inner.sql("postgres").lower()), 1
        return name, strength
    if isinstance(node, exp.Interval) and isinstance(node.this, exp.Literal):
        return "interval", 1
    if isinstance(node, exp.Case):
        name, strength = _figure_inner(node.args["default"], sql) if node.args.get("default") else (None, 0)
        return (name, strength) if strength > 1 else ("case", 1)
    if isinstance(node, exp.Subquery):
        inner = node.this
        if isinstance(inner, exp.Select) and inner.expressions:
            return figure_colname(inner.expressions[0], sql)[0], 2
        return None, 0
    if isinstance(node, (exp.Window, exp.Filter, exp.WithinGroup, exp.IgnoreNulls, exp.RespectNulls)):
        return _figure_inner(node.this, sql)
    if isinstance(node, (exp.Exists, exp.Array, exp.Coalesce, exp.Nullif, exp.Greatest, exp.Least,
                         exp.CurrentDate, exp.CurrentTime, exp.CurrentUser)):
        written = _written_name(node, sql) if isinstance(node, (exp.Coalesce, exp.Greatest, exp.Least)) else None
        if written in (None, "coalesce", "greatest", "least", "ifnull"):
            written = SYNTAX_NAMES[type(node)]
        return written, (2 if isinstance(node, (exp.CurrentDate, exp.CurrentTime, exp.CurrentUser)) else 1)
    if isinstance(node, exp.Anonymous):
        return node.name.lower(), 2
    if isinstance(node, exp.Mod):  # mod(a, b) is a function, a % b an operator
        return ("mod", 2) if _name_before(node, sql) == "mod" else (None, 0)
    if isinstance(node, exp.Func):
        written = _written_name(node, sql, syntax=type(node) in SYNTAX_NAMES)
        if written:
            return written, 2
        return (SYNTAX_NAMES[type(node)], 2) if type(node) in SYNTAX_NAMES else (None, 0)  # an operator: ?column?
    return None, 0


def _written_name(node: exp.Expression, sql: str, syntax: bool = True) -> str | None:
    """The function name as written, from the parser's position of the name token (PostgreSQL's name for
    syntax such as TRIM(...) is the function it calls)."""
    meta = node._meta
    if meta and type(meta.get("start")) is int and type(meta.get("end")) is int:
        text = sql[meta["start"]:meta["end"] + 1]
        if _NAME.fullmatch(text):
            written = text.lower()
            if isinstance(node, exp.Trim) and written == "trim":
                return _trim_name(node)
            return written
    if isinstance(node, exp.Trim):
        return _trim_name(node)
    written = _name_before(node, sql)
    if written and (syntax or written in {n.lower() for n in node.sql_names()} or written.upper() in POSTGRES_FUNCTIONS):
        return written
    return None


def _trim_name(node: exp.Trim) -> str:
    position = (node.args.get("position") or "").upper()
    return {"LEADING": "ltrim", "TRAILING": "rtrim"}.get(position, "btrim")


def _name_before(node: exp.Expression, sql: str) -> str | None:
    """For syntax the parser keeps no name position for (``extract(x from y)``): the identifier before the
    unmatched parenthesis that encloses the first argument the parser placed."""
    for child in node.walk():
        meta = child._meta
        if child is not node and meta and type(meta.get("start")) is int:
            depth, i = 0, meta["start"] - 1
            while i >= 0:
                ch = sql[i]
                if ch == ")":
                    depth += 1
                elif ch == "(":
                    if depth == 0:
                        m = re.search(r"([A-Za-z_][A-Za-z0-9_]*)\s*$", sql[:i])
                        return m.group(1).lower() if m else None
                    depth -= 1
                elif ch == "'":  # skip a string literal backwards
                    i = sql.rfind("'", 0, i)
                i -= 1
            return None
    return None

