"""Column lineage of derived datasets, computed from their SQL with sqlglot.

For each output column of a derived dataset: the source quantum, dataset and column it is computed
from, and the kind of transformation, decided for each source column along its path through the SQL
(CTEs and subqueries included):

- ``identity``: the column is a source column, renamed at most;
- ``value``: an aggregate that returns one of the source's values (``min``, ``max``, ``first``,
  ``last``, ``any_value``, ``mode``, ``arg_max``/``arg_min``, ``median``, ``quantile_disc``...): not
  anonymising, the value is the source's;
- ``collection``: an aggregate that returns several source values (``string_agg``, ``list``,
  ``array_agg``, ``min(x, n)``...);
- ``count``: ``count(col)`` or ``count(distinct col)`` (the only aggregate that may lower a
  classification without a declaration, see ``inheritance``);
- ``aggregate``: computed by another known aggregate over many rows (``sum(amount)``, ``avg``,
  ``stddev``...);
- ``hash``: a one-way hash of the source (``md5``, ``sha256``, ``hash``): a pseudonym, still personal;
- ``expression``: anything else (computed row by row, window functions, unknown aggregates, a column
  used in a ``FILTER`` or ``ORDER BY`` of an aggregate).

Each kind is what the path keeps of the source: ``count(max(x))`` is a count, ``upper(max(x))`` an
expression, ``max(x)`` read through a CTE a value. When a source column reaches the output along
several paths, the kind that keeps the most of it wins (``count(email) || max(email)`` is an
expression). The SQL is qualified once per dataset against the mesh's schema and every column's
lineage is read from the same scope (a few milliseconds per dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope, find_all_in_scope
from sqlglot.schema import MappingSchema

from ..catalog.model import Dataset, Mesh

HASHES = tuple(c for c in (getattr(exp, n, None) for n in ("MD5", "MD5Digest", "SHA", "SHA2", "SHA256", "Hash",
                                                           "FarmFingerprint", "StandardHash")) if isinstance(c, type))
HASH_NAMES = {"md5", "sha1", "sha256", "sha512", "hash", "xxhash64"}


def _classes(*names: str) -> tuple[type, ...]:
    return tuple(c for c in (getattr(exp, n, None) for n in names) if isinstance(c, type))


# aggregates that return one source value, or several; the value is their first argument (``this``)
VALUE_AGGREGATES = _classes("Min", "Max", "First", "Last", "AnyValue", "Mode", "ArgMax", "ArgMin", "Median",
                            "PercentileDisc", "PercentileCont", "Quantile", "ApproxQuantile")
COLLECTION_AGGREGATES = _classes("GroupConcat", "ArrayAgg", "ArrayUniqueAgg", "ArrayConcatAgg", "ArrayUnionAgg",
                                 "JSONArrayAgg", "JSONObjectAgg", "JSONBObjectAgg", "ObjectAgg", "ApproxTopK",
                                 "ApproxQuantiles")
# aggregates that compute a new number from many rows (any other aggregate is an ``expression``)
COMPUTING_AGGREGATES = _classes("Sum", "Avg", "Stddev", "StddevPop", "StddevSamp", "Variance", "VariancePop",
                                "Corr", "CovarPop", "CovarSamp", "Kurtosis", "Skewness", "BitwiseAndAgg",
                                "BitwiseOrAgg", "BitwiseXorAgg", "LogicalAnd", "LogicalOr", "ApproxDistinct",
                                "CountIf", "RegrSlope", "RegrIntercept", "RegrR2", "RegrCount", "RegrAvgx",
                                "RegrAvgy", "RegrSxx", "RegrSxy", "RegrSyy")
_PASS = _classes("Alias", "Paren", "Distinct", "IgnoreNulls", "RespectNulls")
AGGREGATE_KINDS = ("value", "collection", "count", "aggregate")
# how much of the source a kind keeps, most first (see ``merge``)
_KEEPS = ("identity", "value", "collection", "expression", "hash", "aggregate", "count")


@dataclass(frozen=True)
class ColumnEdge:
    target_quantum: str
    target_dataset: str
    target_column: str
    source_quantum: str
    source_dataset: str
    source_column: str
    transformation: str  # identity | value | collection | count | aggregate | hash | expression
    logic: str  # the SQL expression of the target column


def mesh_schema(mesh: Mesh) -> MappingSchema:
    mapping: dict = {}
    for ds in mesh.datasets():
        mapping.setdefault(ds.quantum.lower(), {})[ds.name.lower()] = {c.name.lower(): c.data_type for c in ds.columns}
    return MappingSchema(mapping, dialect="duckdb", normalize=False)


def column_lineage(ds: Dataset, schema: MappingSchema) -> list[ColumnEdge]:
    """The column lineage of one derived dataset (one level: to the datasets its SQL names)."""
    if ds.sql is None:
        return []
    try:
        tree = sqlglot.parse_one(ds.sql, read="duckdb")
        tree = qualify(tree, schema=schema, dialect="duckdb", validate_qualify_columns=False, identify=False)
        scope = build_scope(tree)
    except SqlglotError:
        return []
    outputs = {s.alias_or_name.lower(): s for s in tree.selects} if isinstance(tree, exp.Query) else {}
    edges: list[ColumnEdge] = []
    for col in ds.columns:
        select = outputs.get(col.name.lower())
        if select is None:
            continue
        try:
            root = lineage(select.alias_or_name, tree, schema, scope=scope, dialect="duckdb", trim_selects=False,
                           copy=False)
        except SqlglotError:
            continue
        logic = (select.this if isinstance(select, exp.Alias) else select).sql("duckdb")
        for (db, table, source_col), kind in _leaf_kinds(root).items():
            edges.append(ColumnEdge(ds.quantum, ds.name, col.name, db, table, source_col, kind, logic))
    return edges




def merge(a: str, b: str) -> str:
    """The kind of a column reaching the output along two paths: what keeps the most of the source, and a
    mix of returned values with anything else is an expression (no mask of the source fits it)."""
    if a == b:
        return a
    both = {a, b}
    if both <= {"identity", "value"}:
        return "value"
    if both <= {"identity", "value", "collection"}:
        return "collection"
    if both & {"identity", "value", "collection", "expression"}:
        return "expression"
    return min(both, key=_KEEPS.index)


def _leaf_kinds(root: Node) -> dict[tuple[str, str, str], str]:
    """(db, table, column) of every source column the lineage tree reaches -> its kind."""
    memo: dict[int, dict[tuple[str, str, str], str]] = {}
    visiting: set[int] = set()

    def kinds(node: Node) -> dict[tuple[str, str, str], str]:
        if id(node) in memo:
            return memo[id(node)]
        if id(node) in visiting:  # a cycle (recursive CTE): what is computed from itself is computed
            return {}
        if not node.downstream:
            out = {}
            if isinstance(node.source, exp.Table) and node.source.text("db"):
                table = node.source
                key = (table.text("db").lower(), table.name.lower(), node.name.split(".")[-1].strip('"'))
                out[key] = "identity"
            memo[id(node)] = out
            return out
        visiting.add(id(node))
        out: dict[tuple[str, str, str], str] = {}
        for child in node.downstream:
            for key, below in kinds(child).items():
                kind = _level(node, child, below)
                out[key] = merge(out[key], kind) if key in out else kind
        visiting.discard(id(node))
        memo[id(node)] = out
        return out

    return {(d, t, c): k for (d, t, c), k in kinds(root).items()}


def _level(node: Node, child: Node, below: str) -> str:
    """The kind after one level of the SQL: how ``node``'s select expression uses ``child``'s column,
    which is ``below`` relative to the source."""
    if isinstance(node.source, exp.SetOperation):
        return below  # a branch of a UNION/INTERSECT/EXCEPT: the values pass as they are
    root = node.expression
    uses = [c for c in find_all_in_scope(root, exp.Column)
            if child.name in (c.sql(comments=False), f"{c.table}.{c.name}")] if isinstance(root, exp.Expression) else []
    if not uses:
        return "expression"  # reached in a way this analysis does not follow (a scalar subquery...)
    kind = None
    for column in uses:
        k = _through(column, root, below)
        kind = k if kind is None else merge(kind, k)
    return kind


def _through(column: exp.Column, root: exp.Expression, kind: str) -> str:
    """The kind of ``column``'s value once ``root`` (a select expression holding it) is computed."""
    path = [column]
    while path[-1] is not root:
        parent = path[-1].parent
        if parent is None:
            return "expression"
        path.append(parent)
    if any(isinstance(n, exp.Window) for n in path):
        return "expression"  # a window function: row by row, and may return a neighbour's value
    for child, parent in zip(path, path[1:]):
        kind = _step(parent, child, kind)
    return kind


def _step(parent: exp.Expression, child: exp.Expression, kind: str) -> str:
    if isinstance(parent, _PASS):
        return kind
    if isinstance(parent, (exp.Order, exp.Filter)):  # the ORDER BY or FILTER of an aggregate argument
        return kind if child is parent.this else "expression"
    if isinstance(parent, exp.Count):
        return "count" if child is parent.this and kind in ("identity", "value", "count") else (
            "count" if kind == "count" else "aggregate")
    if isinstance(parent, VALUE_AGGREGATES + COLLECTION_AGGREGATES):
        if child is not parent.this:
            return "expression"  # a separator, an arg_max key, a quantile
        many = isinstance(parent, COLLECTION_AGGREGATES) or parent.args.get("count") is not None  # min(x, 3)
        if kind in ("identity", "value"):
            return "collection" if many else "value"
        return kind
    if isinstance(parent, COMPUTING_AGGREGATES):
        return "count" if kind == "count" else "aggregate"
    if isinstance(parent, exp.AggFunc):
        return "expression"  # an aggregate this analysis does not know
    hashed = (HASHES and isinstance(parent, HASHES)) or (
        isinstance(parent, exp.Anonymous) and parent.name.lower() in HASH_NAMES)
    if kind in ("aggregate", "count"):
        return kind
    if hashed or kind == "hash":
        return "hash"
    return "expression"
