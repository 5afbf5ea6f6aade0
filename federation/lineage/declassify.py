"""Declassification: the only way a derived column takes a lower classification than its sources.

Without a declaration, a derived column keeps the strictest classification and every tag of the source
columns it is computed from, whatever the transformation (``min``, ``max``, ``string_agg`` return source
values; ``sum`` of one row is that row). The one exception needing no declaration is ``count(col)`` /
``count(distinct col)`` (``settings.anonymising_transformations``, default ``[count]``, ``[]`` to turn it
off). Anything else is declassified only where its contract says so, with the ODCS custom property
``declassify`` on the derived column (a property of the schema object) or on the schema object itself
(then it applies to each column computed by aggregates only)::

    customProperties:
      - property: declassify
        value: {minGroupSize: 10}

- a declared column must be computed by aggregates that compute new values (lineage kinds
  ``aggregate`` and ``count``: ``sum``, ``avg``, ``stddev``, ``count``...); one that returns source values
  or is computed row by row cannot be declassified (an error naming the source column);
- the dataset's SQL must be one aggregate ``SELECT`` (``GROUP BY``, or aggregates over all rows), so that
  each of its rows is one group;
- the column then has the classification and tags it declares (none if it declares none) instead of
  its sources'; a reader of a materialised mart sees its values where the sources are masked for them
  (never where a source column is denied);
- every refresh of a materialised mart counts the source rows of each group (after joins) and refuses to
  publish when one has fewer than ``minGroupSize`` (k-anonymity style), naming the column and the
  smallest group. A derived dataset computed at read time applies the reader's own source policies.
"""

from __future__ import annotations

from typing import Iterable

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import SqlglotError

from ..catalog.model import Column, Dataset, custom_property
from ..errors import Problem
from .columns import ColumnEdge

PROPERTY = "declassify"
DECLASSIFIABLE = ("aggregate", "count")  # lineage kinds that compute new values from many rows
GROUP_ROWS = "__quanta_group_rows"  # the column the refresh adds to count each group's source rows


def declared(raw: dict) -> tuple[int | None, str | None]:
    """The ``minGroupSize`` a schema object or property declares (None if it declares nothing), or an error."""
    value = custom_property(raw.get("customProperties"), PROPERTY)
    if value is None:
        return None, None
    k = value.get("minGroupSize") if isinstance(value, dict) else None
    if isinstance(value, dict) and set(value) - {"minGroupSize"}:
        return None, f"declassify takes only minGroupSize, not {', '.join(sorted(set(value) - {'minGroupSize'}))}"
    if not isinstance(k, int) or isinstance(k, bool) or k < 2:
        return None, f"declassify needs {{minGroupSize: k}} with an integer k >= 2, not {value!r}"
    return k, None


def eligible(edges: Iterable[ColumnEdge]) -> bool:
    edges = list(edges)
    return bool(edges) and all(e.transformation in DECLASSIFIABLE for e in edges)


def min_group_size(ds: Dataset, col: Column, edges: Iterable[ColumnEdge]) -> int | None:
    """The minimum group size under which ``col`` is declassified, or None when it keeps its sources'
    classification (no valid declaration, or a column that cannot be declassified)."""
    k, error = declared(col.raw)
    if k is None and error is None:
        k, _ = declared(ds.raw)  # the schema object's declaration, for a column that declares nothing
    if k is None or ds.sql is None or not eligible(edges) or not aggregate_select(ds):
        return None
    return k


def problems(ds: Dataset, edges: list[ColumnEdge]) -> list[Problem]:
    """Declarations that cannot hold: errors (the quantum is left out, as for a weaker declared class)."""
    out = []
    own, error = declared(ds.raw)
    if error:
        out.append(Problem(ds.file, ds.yaml_path + ".customProperties", f"{ds.qualified_name}: {error}", None,
                           ds.quantum))
    declaring = [c for c in ds.columns if declared(c.raw) != (None, None)]
    if (own is not None or declaring) and ds.sql is None:
        out.append(Problem(ds.file, ds.yaml_path, f"{ds.qualified_name} declares declassify but is not derived "
                           "(only columns computed from other datasets can be declassified)", None, ds.quantum))
        return out
    if (own is not None or declaring) and not aggregate_select(ds):
        out.append(Problem(ds.file, ds.yaml_path, f"{ds.qualified_name} declares declassify but its SQL is not one "
                           "aggregate SELECT (GROUP BY, or aggregates over all rows): its groups cannot be counted",
                           None, ds.quantum))
        return out
    for col in declaring:
        k, error = declared(col.raw)
        where = (col.yaml_path or ds.yaml_path) + ".customProperties"
        if error:
            out.append(Problem(ds.file, where, f"column {col.name} of {ds.qualified_name}: {error}", None, ds.quantum))
            continue
        mine = [e for e in edges if e.target_column.lower() == col.name.lower()]
        wrong = [e for e in mine if e.transformation not in DECLASSIFIABLE]
        if wrong:
            e = wrong[0]
            out.append(Problem(ds.file, where, f"column {col.name} of {ds.qualified_name} cannot be declassified: it "
                               f"is computed from {e.source_quantum}.{e.source_dataset}.{e.source_column} by "
                               f"{e.logic} ({e.transformation}), which keeps source values; only aggregates that "
                               f"compute new values ({', '.join(DECLASSIFIABLE)}: sum, avg, count...) can be",
                               None, ds.quantum))
        elif not mine:
            out.append(Problem(ds.file, where, f"column {col.name} of {ds.qualified_name} declares declassify but is "
                               "computed from no source column", None, ds.quantum, "warning"))
    return out


def _select(sql: str | None) -> exp.Select | None:
    try:
        tree = sqlglot.parse_one(sql or "", read="duckdb")
    except SqlglotError:
        return None
    return tree if isinstance(tree, exp.Select) else None


def aggregate_select(ds: Dataset) -> bool:
    """One SELECT whose rows are groups: a GROUP BY, or an aggregate in its select list (one group)."""
    tree = _select(ds.sql)
    if tree is None or tree.args.get("distinct"):
        return False
    if tree.args.get("group") is not None:
        return True
    return any(isinstance(a, exp.AggFunc) and not a.find_ancestor(exp.Window)
               for s in tree.selects for a in s.find_all(exp.AggFunc))


def group_size_sql(ds: Dataset) -> str:
    """The dataset's SQL with each group's count of source rows added as ``__quanta_group_rows``."""
    tree = _select(ds.sql)
    if tree is None:
        raise ValueError(f"{ds.qualified_name} is not one SELECT")
    tree = tree.copy()
    tree.select(exp.alias_(exp.Count(this=exp.Star()), GROUP_ROWS, quoted=True), copy=False)
    return tree.sql("duckdb")


def declassified_columns(ds: Dataset, edges: list[ColumnEdge]) -> dict[str, int]:
    """Column name -> minGroupSize, for each declassified column of ``ds``."""
    out = {}
    for col in ds.columns:
        k = min_group_size(ds, col, [e for e in edges if e.target_column.lower() == col.name.lower()])
        if k is not None:
            out[col.name] = k
    return out
