"""The plan of a governed query, rendered so that it shows nothing governance hides.

``EXPLAIN`` (``rewrite/explain.py`` reads the statement) explains what really runs: the governed SQL,
row filters, masks and denials in place. DuckDB's own plan of that SQL would leak: its operators print
filter constants (a row filter's literals), projected expressions (a mask's function and arguments),
file paths and remote queries, estimated cardinalities and, under ANALYZE, the rows each operator saw
(the count of a scan below a row filter is the number of rows the filter hid). So the plan is never
passed through: it is read from DuckDB's JSON output (``EXPLAIN (FORMAT JSON)``) and rebuilt from an
allow-list, fail closed:

- each operator's name (``HASH_JOIN``, ``SEQ_SCAN``...), if it is a plain upper-case word, else ``OPERATOR``;
- a join's type (``INNER``, ``LEFT``...) and a table function's name (``READ_PARQUET``), same rule;
- nothing else of an operator: no expression, constant, table, path, estimate, count or timing;
- under ANALYZE, the rows of the result (what the principal can count anyway) and the query's time;
- the policies that shaped the result, by name (as ``Result.policies`` gives them).

The shape of the plan itself depends on the data's statistics: DuckDB prunes a filter that the file's
min/max cannot meet (``EMPTY_RESULT``), picks a perfect-hash aggregate from a column's range, orders
joins by estimated sizes. Statistics are of all the rows, those a row filter hides included: a probe
such as ``EXPLAIN SELECT 1 FROM t WHERE salary > 500000`` would tell whether a hidden row earns more.
So when a row filter (or a contract's retention, which filters rows) shaped the query, the operators
are withheld altogether; only masks and denied columns, which hide no row, leave them shown. They are withheld
too when the query reads a system table (its rows are filtered per principal: ``rows > 100`` over everyone's
``system.query_log`` would tell the largest result anyone read) or a derived dataset (its definition leaves
rows of its sources out, which the reader may not read: definer's rights).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pyarrow as pa

from . import errors
from .result import Result

COLUMN = "QUERY PLAN"
_WORD = re.compile(r"[A-Z][A-Z0-9_]{0,63}")
_SHOWN_INFO = {"Join Type": "join", "Function": "function"}  # extra_info keys kept (values: _WORD only)
WITHHELD = ("row counts, estimates, timings and expressions of the operators are withheld "
            "(they would show what governance hides)")
# policies that hide no row: the statistics the plan's shape depends on are of rows the principal reads
SHAPE_SAFE_KINDS = {"mask", "deny"}
# operators of DuckDB's profiler that are not part of the query's plan
_PROFILER = {"EXPLAIN_ANALYZE", "QUERY", "RESULT_COLLECTOR"}


class PlanExecution:
    """A finished EXPLAIN: its rows, read as any execution's (``engine/backend.Execution``)."""

    def __init__(self, table: pa.Table, timeout: float | None = None):
        self._table = table
        self.timeout = timeout
        self.cancelled = False

    @property
    def schema(self) -> pa.Schema:
        return self._table.schema

    def reader(self) -> pa.RecordBatchReader:
        return pa.RecordBatchReader.from_batches(self._table.schema, self._table.to_batches())

    def cancel(self) -> None:
        self.cancelled = True

    def close(self, failed: bool = False) -> None:
        pass


def run(backend, plan, params, timeout: float, cancel=None) -> PlanExecution:
    """Explain ``plan`` (a compiled EXPLAIN: ``plan.explain``) on the embedded engine; with ANALYZE the query
    runs (under the same time-out and cancellation as any query) and its result is thrown away."""
    explained = plan.explain
    prefix = "EXPLAIN (ANALYZE, FORMAT JSON) " if explained.analyze else "EXPLAIN (FORMAT JSON) "
    table = Result(backend.execute(prefix + explained.sql, params, timeout, cancel), None).arrow()
    try:
        raw = json.loads(table.column(table.num_columns - 1)[0].as_py())
    except (ValueError, TypeError, IndexError):
        raise errors.InternalError("the engine's plan could not be read") from None
    tree, rows, seconds = _read(raw, explained.analyze)
    policies = [_policy(p) for p in plan.policies]
    filtered = sorted({p["on"] for p, q in zip(policies, plan.policies) if q.get("kind") not in SHAPE_SAFE_KINDS})
    withheld = WITHHELD
    if filtered:
        tree = None
        withheld = (f"the operators are withheld: rows of {', '.join(filtered)} are filtered for you, and the "
                    f"engine's plan depends on statistics of the rows hidden")
    elif explained.opaque:  # a system table's rows of others, the rows a derived dataset's definition leaves out
        tree = None
        withheld = (f"the operators are withheld: you read part of the rows of {', '.join(explained.opaque)}, and "
                    f"the engine's plan depends on statistics of all of them")
    if explained.format == "json":
        out: dict[str, Any] = {"plan": tree, "policies": policies, "withheld": withheld}
        if explained.analyze:
            out.update({"rows": rows, "execution_time_ms": _ms(seconds)})
        lines = [json.dumps(out, indent=2)]
    else:
        lines = _text(tree) if tree else ["(operators withheld)" if filtered or explained.opaque else "(no operator)"]
        lines += [f"Policy: {p['policy']} ({p['kind']} on {p['on']})" for p in policies]
        if explained.analyze:
            lines += [f"Rows: {rows}", f"Execution Time: {_ms(seconds):.3f} ms"]
        lines.append(f"Note: {withheld}")
    return PlanExecution(pa.table({COLUMN: pa.array(lines, pa.string())}), timeout)


def _read(raw: Any, analyze: bool) -> tuple[dict | None, int | None, float | None]:
    """The allowed part of DuckDB's plan: the operator tree; with ANALYZE the result's rows and the time."""
    if analyze:
        if not isinstance(raw, dict):
            raise errors.InternalError("the engine's plan could not be read")
        seconds = raw.get("latency")
        top = _below_profiler(raw)
        rows = top.get("operator_cardinality") if top is not None else 0
        if not isinstance(rows, int) or isinstance(rows, bool) or rows < 0:
            raise errors.InternalError("the engine's plan could not be read")
        return _node(top) if top is not None else None, rows, seconds if isinstance(seconds, (int, float)) else None
    nodes = raw if isinstance(raw, list) else [raw]
    return (_node(nodes[0]) if nodes and isinstance(nodes[0], dict) else None), None, None


def _below_profiler(node: dict) -> dict | None:
    """The query's top operator under the profiler's own (the root, EXPLAIN_ANALYZE)."""
    current: Any = node
    while isinstance(current, dict):
        name = current.get("operator_type") or current.get("operator_name") or current.get("name")
        if current is not node and name not in _PROFILER:
            return current
        children = current.get("children") or []
        current = children[0] if len(children) == 1 else None
    return None


def _node(node: dict) -> dict:
    name = node.get("operator_name") or node.get("name") or node.get("operator_type")
    out: dict[str, Any] = {"operator": _word(name)}
    info = node.get("extra_info")
    if isinstance(info, dict):
        for key, field in _SHOWN_INFO.items():
            value = info.get(key)
            if isinstance(value, str) and _WORD.fullmatch(value.strip()) and value.strip() != out["operator"]:
                out[field] = value.strip()
    children = node.get("children")
    out["children"] = [_node(c) for c in children if isinstance(c, dict)] if isinstance(children, list) else []
    return out


def _word(name: Any) -> str:
    name = name.strip().replace(" ", "_") if isinstance(name, str) else ""
    return name if _WORD.fullmatch(name) else "OPERATOR"


def _text(node: dict, depth: int = 0) -> list[str]:
    """PostgreSQL's layout: the root, then each child indented under ``->``."""
    label = node["operator"]
    details = [node[k] for k in ("join", "function") if k in node]
    if details:
        label += f" ({', '.join(details)})"
    line = label if depth == 0 else " " * (6 * depth - 4) + "->  " + label
    lines = [line]
    for child in node["children"]:
        lines += _text(child, depth + 1)
    return lines


def _policy(p: dict) -> dict:
    on = ".".join(str(x) for x in (p.get("quantum"), p.get("dataset"), p.get("column")) if x)
    return {"policy": p.get("policy"), "kind": p.get("kind"), "on": on}


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None
