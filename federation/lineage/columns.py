"""Column lineage of derived datasets, computed from their SQL with sqlglot.

For each output column of a derived dataset: the source quantum, dataset and column it is computed
from, and the kind of transformation:

- ``identity``: the column is a source column, renamed at most;
- ``expression``: computed from source columns row by row (``first || ' ' || last``, a CASE, a cast);
- ``aggregate``: computed by an aggregate over many rows (``sum(amount)``, ``count(distinct id)``);
- ``hash``: a one-way hash of the source (``md5``, ``sha256``, ``hash``).

The SQL is qualified once per dataset against the mesh's schema and every column's lineage is read
from the same scope (a few milliseconds per dataset).
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import SqlglotError
from sqlglot.lineage import Node, lineage
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import build_scope
from sqlglot.schema import MappingSchema

from ..catalog.model import Dataset, Mesh

HASHES = tuple(c for c in (getattr(exp, n, None) for n in ("MD5", "MD5Digest", "SHA", "SHA2", "SHA256", "Hash",
                                                           "FarmFingerprint", "StandardHash")) if isinstance(c, type))
HASH_NAMES = {"md5", "sha1", "sha256", "sha512", "hash", "xxhash64"}


@dataclass(frozen=True)
class ColumnEdge:
    target_quantum: str
    target_dataset: str
    target_column: str
    source_quantum: str
    source_dataset: str
    source_column: str
    transformation: str  # identity | expression | aggregate | hash
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
        kind = _transformation(root)
        logic = (select.this if isinstance(select, exp.Alias) else select).sql("duckdb")
        seen = set()
        for leaf in root.walk():
            if leaf.downstream or not isinstance(leaf.source, exp.Table):
                continue
            table = leaf.source
            source_col = leaf.name.split(".")[-1].strip('"')
            key = (table.text("db").lower(), table.name.lower(), source_col.lower())
            if key in seen or not key[0]:
                continue
            seen.add(key)
            edges.append(ColumnEdge(ds.quantum, ds.name, col.name, key[0], key[1], source_col, kind, logic))
    return edges


def _transformation(root: Node) -> str:
    aggregate = hashed = False
    computed = False
    for node in root.walk():
        expression = node.expression.this if isinstance(node.expression, exp.Alias) else node.expression
        if isinstance(expression, exp.Table):
            continue
        if not isinstance(expression, exp.Column):
            computed = True
        for agg in expression.find_all(exp.AggFunc):
            if not agg.find_ancestor(exp.Window):
                aggregate = True
        if any(True for _ in expression.find_all(*HASHES)) if HASHES else False:
            hashed = True
        if any(isinstance(f, exp.Anonymous) and f.name.lower() in HASH_NAMES for f in expression.find_all(exp.Anonymous)):
            hashed = True
    if aggregate:
        return "aggregate"
    if hashed:
        return "hash"
    return "expression" if computed else "identity"
