"""Portable semantics: a governed query (the pipeline's sqlglot tree) as Spark SQL with DuckDB's answers.

The interface the Spark backend uses (two functions, both pure, both raising Quanta errors only)::

    from federation.engine import spark_dialect
    spark_dialect.check(expression)                 # None, or NotSupportedError naming the function and its
                                                    # (line, column): call it at compile time
    sql = spark_dialect.render(expression, relation_name)
        # expression:    the governed tree after the pipeline's PASSES (not modified: render works on a copy)
        # relation_name: Callable[[exp.Table], str | None]: the flat Spark temp-view name of a placed relation
        #                (a Table node with a schema: memory.<quantum>.<dataset>, a pinned version, a system
        #                table); None refuses the query (StatementRefused naming the relation)
        # returns:       Spark SQL text (sqlglot's ``databricks`` dialect, which keeps QUALIFY exact)
        # parameters:    ``?`` and ``$n`` come out as positional ``?`` in DuckDB's binding order: pass the same
        #                list to ``spark.sql(sql, args=[...])``; ``$name`` and orders Spark would bind differently
        #                are refused (NotSupportedError)

The key of the hash masks is read from the temp view ``masks.MASK_KEY_VIEW`` (``quanta_mask_key``, one row,
column ``k``): the backend registers it in each Spark session from ``masks.key_table(salt)`` before running
any rendered query. The session must keep Spark's defaults ``spark.sql.ansi.enabled=true`` (overflows and bad
casts are errors, as in DuckDB) and set ``spark.sql.timestampType=TIMESTAMP_NTZ`` (DuckDB's TIMESTAMP).

What render does to (a copy of) the tree, in order:

1. ``check``: every function must be on this backend's allow-list (:data:`SPARK_CLASSES` for sqlglot's typed
   classes, :data:`SPARK_NAMES` for names sqlglot leaves anonymous, and the special cases in
   :func:`_refusal`), else the query is refused at compile time, never with a Spark stack trace.
2. Output names: every select-list item that is not a plain column or a star gets the name DuckDB gives it
   (DuckDB's own printer of the expression: ``count(*)`` is ``count_star()``, ``a+1`` is ``(a + 1)``), at every
   query level, so results and outer references see DuckDB's names. ``VALUES`` columns are ``col0..``.
3. Relations: each placed relation becomes ``system.session.<relation_name(table)>`` (a temp view, which no CTE
   can shadow), keeping the name users qualify columns with as its alias.
4. Masks: ``quanta_mask_hash(x)`` and ``quanta_mask_hash_int(x, bits)`` become the portable expressions of
   ``masks.spark_mask_sql`` (identical values to DuckDB's).
5. DuckDB semantics: ``AVG`` and ``/`` are DOUBLEs (Spark keeps decimals), ``x / 0`` is +-inf or NaN, ``x // 0``
   and ``x % 0`` are NULL (Spark raises), ``dayofweek`` and ``extract(dow)`` count from Sunday = 0, ``list(x)`` keeps its
   NULLs (Spark's ``collect_list`` drops them).
"""

from __future__ import annotations

import functools
import re
import threading
from typing import Callable

import duckdb
import sqlglot
import sqlglot.expressions as exp

from ..errors import NotSupportedError, StatementRefused
from ..positions import position
from . import masks
from .spark_regex import Untranslatable, java_pattern

DIALECT = "databricks"
MASK_FUNCTIONS = {masks.HASH, masks.HASH_INT}

# sqlglot's typed classes whose databricks SQL runs on Spark with DuckDB's meaning (checked by the parity
# corpus of tests/test_spark_dialect.py); anything else is refused.
SPARK_CLASSES = frozenset("""
And Or Xor Not Case If Coalesce Nullif Greatest Least Exists Cast TryCast
Count Sum Avg Min Max CountIf Stddev StddevPop StddevSamp Variance VariancePop Median Corr CovarPop CovarSamp
RegrSlope RegrIntercept Kurtosis Skewness LogicalAnd LogicalOr ArgMin ArgMax ApproxDistinct
BitwiseAndAgg BitwiseOrAgg BitwiseXorAgg ArrayAgg GroupConcat AnyValue IgnoreNulls RespectNulls
RowNumber Rank DenseRank PercentRank CumeDist Ntile Lag Lead FirstValue LastValue NthValue
Abs Ceil Floor Round Sqrt Cbrt Exp Ln Log Pow Sign IsNan IsInf Degrees Radians Sin Cos Tan Asin Acos Atan Atan2
Lower Upper Length Substring Concat ConcatWs DPipe Trim Pad Left Right Repeat Reverse Replace SplitPart
StrPosition StartsWith EndsWith Contains Initcap Ascii Chr MD5 SHA2 Hex Levenshtein
RegexpLike RegexpExtract RegexpReplace
Extract Year Quarter Month Day DayOfMonth DayOfYear DayOfWeek Hour Minute Second
TimestampTrunc DateTrunc CurrentDate CurrentTimestamp DateFromParts
ArrayContains Array Bracket
""".split())

# names sqlglot leaves as exp.Anonymous that Spark has with DuckDB's meaning
SPARK_NAMES = frozenset({"bit_count"})

_lock = threading.Lock()
_con: duckdb.DuckDBPyConnection | None = None


def check(expression: exp.Expression) -> None:
    """Refuse, with a Quanta error naming it and its position, the first function Spark cannot run as DuckDB."""
    for node in expression.walk():
        reason = _refusal(node)
        if reason:
            raise NotSupportedError(f"{reason} on the Spark engine", position=position(node))


def _refusal(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Star) and (node.args.get("replace") or node.args.get("rename")):
        return "SELECT * REPLACE/RENAME is not supported"
    if isinstance(node, exp.Columns):
        return "COLUMNS(...) is not supported"
    if isinstance(node, exp.Lambda):
        return "lambda functions are not supported"
    if isinstance(node, exp.RegexpLike):  # a Binary: before the skip below
        return _regexp_refusal(node)
    if not isinstance(node, exp.Func) or isinstance(node, (exp.Binary, exp.Connector)) and not isinstance(node, exp.Anonymous):
        return None
    if isinstance(node, exp.Anonymous):
        name = node.name.lower()
        if name == "bitstring_agg" and _bitmap_count(node.parent):
            return None  # bit_count(bitstring_agg(x, lo, hi)): a distinct count, see _duckdb_semantics
        if name in MASK_FUNCTIONS or name in SPARK_NAMES:
            return None
        return f"function {name}() is not supported"
    kind = type(node).__name__
    if isinstance(node, exp.Struct) and _distinct_count_key(node):
        return None  # count(DISTINCT struct_pack(a := a, ...)): a composite key (NULL fields count, as in DuckDB)
    if kind not in SPARK_CLASSES:
        return f"function {_sql_name(node)}() is not supported"
    if isinstance(node, exp.ArrayAgg) and _ordered(node):
        return f"{_sql_name(node)}(... ORDER BY ...) is not supported (Spark keeps no order in collected lists)"
    if isinstance(node, exp.Length) and len(node.args) > 1 and any(k != "this" for k, v in node.args.items() if v):
        return f"function {_sql_name(node)}() with these arguments is not supported"
    if isinstance(node, (exp.Min, exp.Max)) and node.expressions:
        return f"function {_sql_name(node)}() with more than one argument is not supported"
    if isinstance(node, exp.Extract) and node.name.upper() not in _EXTRACT_PARTS:
        return f"extract({node.name}) is not supported"
    if isinstance(node, (exp.RegexpReplace, exp.RegexpExtract)):
        return _regexp_function_refusal(node)
    return None


def _regexp_function_refusal(node: exp.RegexpReplace | exp.RegexpExtract) -> str | None:
    """regexp_replace / regexp_extract: the pattern translated to Java's syntax (spark_regex), the replacement
    to Java's (``\\1`` is ``$1``); sqlglot drops DuckDB's options on Spark (a mask with 'i' was case-sensitive)
    and Spark has no first-match-only replace: options other than 'g', and no 'g', are refused."""
    name = _sql_name(node)
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return f"{name}() with a pattern that is not a constant string is not supported"
    try:
        java_pattern(pattern.this)
    except Untranslatable as e:
        return f"the regular expression {pattern.this!r} is not supported ({e}: its meaning could differ)"
    if isinstance(node, exp.RegexpExtract):
        group = node.args.get("group")
        if node.args.get("parameters") is not None or (group is not None and not _integer_literal(group)):
            return f"{name}() with options or a group that is not a constant is not supported"
        return None
    options = node.args.get("modifiers")
    if not (isinstance(options, exp.Literal) and options.is_string and options.this == "g"):
        return (f"{name}() is supported with the option 'g' only (every match; DuckDB replaces only the first "
                f"match without it, which Spark cannot; other options are not kept)")
    replacement = node.args.get("replacement")
    if not (isinstance(replacement, exp.Literal) and replacement.is_string) or _java_replacement(
            replacement.this) is None:
        return f"{name}() with a replacement that is not a constant string of text and \\0-\\9 is not supported"
    return None


def _java_replacement(text: str) -> str | None:
    """RE2's rewrite string (``\\0``-``\\9`` groups, ``\\\\`` a backslash, ``$`` literal) in Java's syntax."""
    out, i = [], 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if nxt.isdigit() and nxt.isascii():
                out.append("$" + nxt)
            elif nxt == "\\":
                out.append("\\\\")
            else:
                return None  # an error in DuckDB
            i += 2
            continue
        out.append("\\$" if c == "$" else c)
        i += 1
    return "".join(out)


def _regexp_refusal(node: exp.RegexpLike) -> str | None:
    """regexp_matches(s, 'pattern'): Spark's RLIKE, the pattern translated to Java's syntax (spark_regex)."""
    if node.args.get("flag") is not None:
        return "regexp_matches() with options is not supported"
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        return "regexp_matches() with a pattern that is not a constant string is not supported"
    try:
        java_pattern(pattern.this)
    except Untranslatable as e:
        return f"the regular expression {pattern.this!r} is not supported ({e}: its meaning could differ)"
    return None


def _bitmap_count(node: exp.Expression | None) -> bool:
    """``bit_count(bitstring_agg(x, lo, hi))`` with integer literal bounds (the quality engine's distinct count)."""
    if not (isinstance(node, exp.Anonymous) and node.name.lower() == "bit_count" and len(node.expressions) == 1):
        return False
    agg = node.expressions[0]
    return (isinstance(agg, exp.Anonymous) and agg.name.lower() == "bitstring_agg" and len(agg.expressions) == 3
            and all(_integer_literal(a) for a in agg.expressions[1:]))


def _integer_literal(node: exp.Expression) -> bool:
    if isinstance(node, exp.Neg):
        node = node.this
    return isinstance(node, exp.Literal) and not node.is_string and node.this.isdigit()


def _distinct_count_key(node: exp.Struct) -> bool:
    return (isinstance(node.parent, exp.Distinct) and isinstance(node.parent.parent, exp.Count)
            and len(node.parent.expressions) == 1 and bool(node.expressions)
            and all(isinstance(e, exp.PropertyEQ) for e in node.expressions))


_INTEGERS = {exp.DataType.Type.TINYINT, exp.DataType.Type.SMALLINT, exp.DataType.Type.INT, exp.DataType.Type.BIGINT}


def _textual(node: exp.Expression) -> bool:
    """A string (a literal or a cast to text): Spark's round() would not take it as DuckDB's cast does."""
    if isinstance(node, exp.Literal):
        return node.is_string
    if isinstance(node, (exp.Cast, exp.TryCast)):
        return node.to.is_type(*exp.DataType.TEXT_TYPES)
    return isinstance(node, (exp.Concat, exp.DPipe, exp.Lower, exp.Upper, exp.Substring))


_EXTRACT_PARTS = {"YEAR", "QUARTER", "MONTH", "DAY", "HOUR", "MINUTE", "DOW", "DAYOFWEEK", "DOY", "DAYOFYEAR"}


def _ordered(node: exp.Expression) -> bool:
    return any(isinstance(n, exp.Order) for n in node.walk())


def _sql_name(node: exp.Func) -> str:
    """The function's name as DuckDB writes it (what the user wrote, or its DuckDB spelling)."""
    try:
        text = node.sql("duckdb", comments=False)
        head = text.split("(", 1)[0].strip()
        if head and head.replace("_", "").isalnum():
            return head.lower()
        return node.sql_name().lower()
    except Exception:  # noqa: BLE001 - a name only
        return type(node).__name__.lower()


def render(expression: exp.Expression, relation_name: Callable[[exp.Table], str | None]) -> str:
    """Spark SQL of a governed tree (see the module docstring); ``expression`` is not modified."""
    check(expression)
    tree = expression.copy()
    count = _mark_parameters(tree)
    _name_items(tree)
    _rename_relations(tree, relation_name)
    _replace_masks(tree)
    _duckdb_semantics(tree)
    return _positional(tree.sql(dialect=DIALECT, comments=False), count, expression)


# -- parameters ---------------------------------------------------------------------------------------------

_MARK = "quanta_param_7f3a_"
_MARKS = re.compile(r":" + _MARK + r"(\d+)\b")


def _mark_parameters(tree: exp.Expression) -> int:
    """Name each placeholder after the index DuckDB binds it to (``?`` in text order, ``$n`` as n - 1)."""
    found = list(tree.find_all(exp.Placeholder))
    if not found:
        return 0
    names = [p.args.get("this") for p in found]
    if any(n and not str(n).isdigit() for n in names):
        raise NotSupportedError("named parameters ($name) are not supported on the Spark engine; use ? or $1",
                                position=position(found[0]))
    if any(names):
        if not all(names):
            raise NotSupportedError("a query mixes ? and $n parameters", position=position(found[0]))
        for p in found:
            p.set("this", f"{_MARK}{int(p.name) - 1}")
        return len({p.name for p in found})
    probe = tree.copy()
    for i, p in enumerate(list(probe.find_all(exp.Placeholder))):
        p.replace(exp.column(f"{_MARK}{i}"))
    order = [int(m) for m in re.findall(_MARK + r"(\d+)", probe.sql("duckdb", comments=False))]
    rank = {index: n for n, index in enumerate(order)}
    for i, p in enumerate(found):
        p.set("this", f"{_MARK}{rank.get(i, i)}")
    return len(found)


def _positional(text: str, count: int, expression: exp.Expression) -> str:
    """Spark binds ``?`` in text order: the marked parameters must come out once each, in DuckDB's order."""
    if not count:
        return text
    order = [int(m) for m in _MARKS.findall(text)]
    if order != list(range(count)):
        node = next(expression.find_all(exp.Placeholder), None)
        raise NotSupportedError("parameters placed like this (repeated, reordered or inside a division) are not "
                                "supported on the Spark engine; write the values in the query", position=position(node))
    return _MARKS.sub("?", text)


# -- 2. output names ------------------------------------------------------------------------------------


def _name_items(tree: exp.Expression) -> None:
    todo: list[tuple[exp.Select, int]] = []
    for select in tree.find_all(exp.Select):
        for i, item in enumerate(select.expressions):
            if isinstance(item, (exp.Alias, exp.Column, exp.Star)) or item.args.get("alias"):
                continue  # named, or named after the column (as in DuckDB)
            todo.append((select, i))
    if todo:
        # a marked parameter is DuckDB's $n (DuckDB names ``id / ?`` as ``(id / $1)``)
        texts = [re.sub(r"\$" + _MARK + r"(\d+)", lambda m: f"${int(m.group(1)) + 1}",
                        select.expressions[i].sql("duckdb", comments=False)) for select, i in todo]
        names = duckdb_names(texts)
        for (select, i), name in zip(todo, names):
            select.expressions[i] = exp.alias_(select.expressions[i], name, quoted=True)
    for values in tree.find_all(exp.Values):
        alias = values.args.get("alias")
        width = len(values.expressions[0].expressions) if values.expressions and isinstance(
            values.expressions[0], exp.Tuple) else 1
        if alias is None:
            values.set("alias", exp.TableAlias(this=exp.to_identifier("valueslist"), columns=[
                exp.to_identifier(f"col{i}") for i in range(width)]))
        elif not alias.columns:
            alias.set("columns", [exp.to_identifier(f"col{i}") for i in range(width)])


def duckdb_names(items: list[str]) -> list[str]:
    """The result names DuckDB gives select items (DuckDB SQL of each), from DuckDB's own parser and printer."""
    global _con
    with _lock:
        if _con is None:
            _con = duckdb.connect(":memory:", config={"enable_external_access": False})
        con = _con
        out = []
        for item in items:
            out.append(_duckdb_name(con, item))
    return out


@functools.lru_cache(maxsize=8192)
def _duckdb_name(con: duckdb.DuckDBPyConnection, item: str) -> str:
    try:
        text = con.execute("SELECT json_deserialize_sql(json_serialize_sql(?))", ["SELECT " + item]).fetchone()[0]
    except duckdb.Error:
        return item
    return text[len("SELECT "):] if text.startswith("SELECT ") else item


# -- 3. relations -----------------------------------------------------------------------------------------


def _rename_relations(tree: exp.Expression, relation_name: Callable[[exp.Table], str | None]) -> None:
    for table in list(tree.find_all(exp.Table)):
        if not table.args.get("db"):
            continue  # a CTE reference
        name = relation_name(table)
        if name and len(name) > 1 and name[0] == name[-1] == "`":  # already quoted: the bare name
            name = name[1:-1].replace("``", "`")
        if not name:
            what = ".".join(p for p in (table.catalog, table.db, table.name) if p)
            raise StatementRefused(f"{what} cannot be read on the Spark engine", position=position(table))
        alias = table.args.get("alias")
        # system.session.<view>: Spark's temporary views, which no CTE of the query can shadow
        table.set("catalog", exp.to_identifier("system"))
        table.set("db", exp.to_identifier("session"))
        original = table.name
        table.set("this", exp.to_identifier(name, quoted=True))
        if alias is None:
            table.set("alias", exp.TableAlias(this=exp.to_identifier(original, quoted=True)))


# -- 4. masks ---------------------------------------------------------------------------------------------

_VALUE = "quanta_masked_value__"


@functools.lru_cache(maxsize=128)
def _mask_template(kind: str, bits: int) -> exp.Expression:
    return sqlglot.parse_one(masks.spark_mask_sql(kind, _VALUE, bits), read=DIALECT)


def _replace_masks(tree: exp.Expression) -> None:
    for node in list(tree.find_all(exp.Anonymous)):
        name = node.name.lower()
        if name not in MASK_FUNCTIONS:
            continue
        args = node.expressions
        bits = 64
        if name == masks.HASH_INT:
            if len(args) != 2 or not isinstance(args[1], exp.Literal) or args[1].is_string:
                raise NotSupportedError(f"{name}() needs a constant bit width", position=position(node))
            bits = int(args[1].this)
        elif len(args) != 1:
            raise NotSupportedError(f"{name}() takes one argument", position=position(node))
        value = args[0]
        body = _mask_template(name, bits).copy()
        for col in list(body.find_all(exp.Column)):
            if col.name == _VALUE:
                col.replace(value.copy())
        node.replace(body)


# -- 5. DuckDB semantics ----------------------------------------------------------------------------------


def _as_double(node: exp.Expression) -> exp.Expression:
    if isinstance(node, exp.Cast) and node.to.is_type("double"):
        return node
    return exp.cast(node.copy(), "double")


def _literal_backslashes(pattern: exp.Expression) -> exp.Expression:
    """A LIKE pattern for Spark (escape character ``\\``) that matches what it matches on DuckDB (none)."""
    if isinstance(pattern, exp.Literal) and pattern.is_string:
        return exp.Literal.string(pattern.this.replace("\\", "\\\\"))
    if isinstance(pattern, (exp.Any, exp.All)):
        if not isinstance(pattern.this, exp.Tuple):
            raise NotSupportedError("LIKE ANY/ALL of a subquery is not supported on the Spark engine",
                                    position=position(pattern))
        pattern.this.set("expressions", [_literal_backslashes(e) for e in pattern.this.expressions])
        return pattern
    if isinstance(pattern, exp.Null):
        return pattern
    return exp.func("replace", pattern.copy(), exp.Literal.string("\\"), exp.Literal.string("\\\\"))


def _distinct_in_range(value: exp.Expression, low: exp.Expression, high: exp.Expression) -> exp.Expression:
    """``bit_count(bitstring_agg(x, lo, hi))`` as DuckDB computes it: NULL without values, an error when a
    value is outside [lo, hi], else the number of distinct values."""
    message = exp.Literal.string("a value is outside of the provided min and max range of bitstring_agg")
    return exp.Case(ifs=[
        exp.If(this=exp.EQ(this=exp.Count(this=value.copy()), expression=exp.Literal.number(0)), true=exp.Null()),
        exp.If(this=exp.or_(exp.LT(this=exp.Min(this=value.copy()), expression=low.copy()),
                            exp.GT(this=exp.Max(this=value.copy()), expression=high.copy())),
               true=exp.func("raise_error", message)),
    ], default=exp.Count(this=exp.Distinct(expressions=[value.copy()])))


def _duckdb_semantics(tree: exp.Expression) -> None:
    for node in reversed(list(tree.walk(bfs=False))):  # descendants before their ancestors
        if isinstance(node, exp.RegexpLike):  # RE2 (DuckDB) as Java regex, same meaning (checked)
            node.set("expression", exp.Literal.string(java_pattern(node.expression.this)))
        elif isinstance(node, (exp.RegexpReplace, exp.RegexpExtract)):  # checked by _regexp_function_refusal
            node.set("expression", exp.Literal.string(java_pattern(node.expression.this)))
            if isinstance(node, exp.RegexpReplace):
                node.set("replacement", exp.Literal.string(_java_replacement(node.args["replacement"].this)))
                node.set("modifiers", None)
            elif node.args.get("group") is None:  # DuckDB: the whole match; Spark: group 1
                node.set("group", exp.Literal.number(0))
        elif _bitmap_count(node):  # DuckDB's bitmap of a bounded range: an exact distinct count on Spark
            value, low, high = node.expressions[0].expressions
            node.replace(_distinct_in_range(value, low, high))
        elif isinstance(node, exp.Avg):  # DuckDB: a DOUBLE average (Spark: a decimal of 6 digits, then rounded)
            value = node.this
            if isinstance(value, exp.Distinct):
                value.set("expressions", [_as_double(e) for e in value.expressions])
            else:
                node.set("this", _as_double(value))
        elif type(node) is exp.Div and node.find(exp.Placeholder):  # not repeated: NULL by zero, not +-inf
            node.replace(exp.func("try_divide", _as_double(node.this), _as_double(node.expression)))
        elif type(node) is exp.Div:  # DuckDB: a DOUBLE, by zero +-inf or NaN (IEEE); Spark: an error
            n, d = exp.cast(node.this.copy(), "double"), exp.cast(node.expression.copy(), "double")
            infinity = exp.cast(exp.Literal.string("Infinity"), "double")
            node.replace(exp.paren(exp.If(this=exp.EQ(this=d, expression=exp.Literal.number(0)),
                                          true=exp.Mul(this=n.copy(), expression=infinity),
                                          false=exp.Div(this=n, expression=d.copy()))))
        elif type(node) is exp.IntDiv and not node.find(exp.Placeholder):  # DuckDB: NULL by zero; Spark: an error
            node.replace(exp.paren(exp.If(this=exp.EQ(this=node.expression.copy(), expression=exp.Literal.number(0)),
                                          true=exp.Null(), false=node.copy())))
        elif isinstance(node, (exp.Cast, exp.TryCast)) and node.to.this in _INTEGERS and not _textual(node.this):
            # DuckDB rounds a fraction cast to an integer (half away from zero); Spark truncates it
            node.set("this", exp.func("round", node.this.copy()))
        elif isinstance(node, (exp.Add, exp.Sub)) and isinstance(node.expression, exp.Interval) \
                and not isinstance(node.this, exp.Interval):
            # DuckDB: date +- interval is a TIMESTAMP; Spark keeps a DATE
            node.set("this", exp.cast(node.this.copy(), exp.DataType.build("timestamp")))
        elif type(node) is exp.Mod:
            node.replace(exp.func("try_mod", node.this.copy(), node.expression.copy()))
        elif isinstance(node, exp.DayOfWeek):
            node.replace(exp.paren(exp.Sub(this=node.copy(), expression=exp.Literal.number(1))))
        elif isinstance(node, exp.Extract) and node.name.upper() in ("DOW", "DAYOFWEEK"):
            node.replace(exp.paren(exp.Sub(this=exp.DayOfWeek(this=node.expression.copy()),
                                           expression=exp.Literal.number(1))))
        elif isinstance(node, (exp.Like, exp.ILike)) and not isinstance(node.parent, exp.Escape):
            # DuckDB's LIKE has no escape character; Spark's is a backslash: a backslash matches itself
            node.set("expression", _literal_backslashes(node.expression))
        elif isinstance(node, exp.ArrayAgg) and not _ordered(node):
            # DuckDB's list() keeps NULLs, Spark's collect_list drops them: collect structs, then unwrap
            value = node.this
            if isinstance(value, exp.Distinct):
                continue
            wrapped = exp.func("named_struct", exp.Literal.string("v"), value.copy())
            collected = exp.ArrayAgg(this=wrapped)
            lam = exp.Lambda(this=exp.Dot(this=exp.column("e"), expression=exp.to_identifier("v")),
                             expressions=[exp.to_identifier("e")])
            node.replace(exp.func("transform", collected, lam))
