"""Quality rules from ODCS v3 contracts, compiled to SQL.

A dataset's rules come from three places: the ``quality`` lists of the schema object and of each
property (ODCS ``type: library`` metrics and ``type: sql`` rules), the checks the schema implies
(``required``, ``unique``, ``primaryKey``, ``logicalTypeOptions``, the ODCS v3.2 ``enum``), and rules added through the
control plane (which replace the contract's own list for that dataset).

Library metrics (ODCS v3.1): ``nullValues``, ``missingValues``, ``invalidValues`` (``validValues``
or ``pattern`` arguments), ``duplicateValues``, ``rowCount``; operators ``mustBe``, ``mustNotBe``,
``mustBeGreaterThan``, ``mustBeGreaterOrEqualTo``, ``mustBeLessThan``, ``mustBeLessOrEqualTo``,
``mustBeBetween``, ``mustNotBeBetween``; ``unit`` ``rows`` (default) or ``percent``. Without an
operator a metric must be 0 (``rowCount``: greater than 0).

Every column metric is an aggregate over the failing rows, so all of a dataset's metrics (and its
row count) compile to ONE ``SELECT count(*), <metric>, <metric>... FROM <dataset>``: one scan.
Row-level rules also have a row predicate (``failing``) used for quarantine and failing-row samples.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from ..catalog.model import Column, Dataset
from ..engine.duckdb_backend import literal, quote

METRICS = ("nullValues", "missingValues", "invalidValues", "duplicateValues", "rowCount")
OPERATORS = ("mustBe", "mustNotBe", "mustBeGreaterThan", "mustBeGreaterOrEqualTo", "mustBeLessThan",
             "mustBeLessOrEqualTo", "mustBeBetween", "mustNotBeBetween")
# a few older spellings seen in the wild
ALIASES = {"mustBeGreaterThanOrEqualTo": "mustBeGreaterOrEqualTo", "mustBeLessThanOrEqualTo": "mustBeLessOrEqualTo"}
WARNING_SEVERITIES = ("warning", "warn", "info", "minor", "low")
FORMATS = {
    "email": r"^[^@\s]+@[^@\s]+\.[^@\s]+$",
    "ipv4": r"^((25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])\.){3}(25[0-5]|2[0-4][0-9]|1?[0-9]?[0-9])$",
    "uuid": r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$",
}


class RuleError(ValueError):
    """A quality rule that cannot be compiled (unknown metric, operator, column...)."""


@dataclass
class Rule:
    name: str  # unique within the dataset
    type: str  # library | sql | schema
    metric: str  # nullValues ... rowCount | sql | minimum | maxLength ...
    columns: tuple[str, ...] = ()  # contract column names ('' for dataset-level)
    operator: str = "mustBe"
    threshold: Any = 0
    unit: str = "rows"
    dimension: str | None = None
    severity: str = "error"
    description: str | None = None
    query: str | None = None  # sql rules
    args: dict = field(default_factory=dict)
    on_failure: str | None = None  # quarantine | reject (custom property onFailure)
    origin: str = "contract"  # contract | schema | control-plane
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def column(self) -> str | None:
        return self.columns[0] if len(self.columns) == 1 else (", ".join(self.columns) or None)

    @property
    def is_warning(self) -> bool:
        return str(self.severity).lower() in WARNING_SEVERITIES

    @property
    def row_level(self) -> bool:
        """Failing rows can be told apart (and quarantined); rowCount and sql rules judge the whole batch."""
        return self.type != "sql" and self.metric != "rowCount"

    def threshold_text(self) -> str:
        unit = "%" if self.unit == "percent" else (" rows" if self.metric != "sql" else "")
        if isinstance(self.threshold, (list, tuple)):
            return f"{self.operator} [{self.threshold[0]}, {self.threshold[1]}]{unit}"
        return f"{self.operator} {self.threshold}{unit}"

    def passes(self, measured: float) -> bool:
        t, op = self.threshold, self.operator
        if op == "mustBe":
            return measured == t
        if op == "mustNotBe":
            return measured != t
        if op == "mustBeGreaterThan":
            return measured > t
        if op == "mustBeGreaterOrEqualTo":
            return measured >= t
        if op == "mustBeLessThan":
            return measured < t
        if op == "mustBeLessOrEqualTo":
            return measured <= t
        lo, hi = t
        if op == "mustBeBetween":
            return lo <= measured <= hi
        return not (lo <= measured <= hi)  # mustNotBeBetween

    def status(self, measured: float) -> str:
        if self.passes(measured):
            return "pass"
        return "warn" if self.is_warning else "fail"

    def describe(self) -> dict:
        return {"rule": self.name, "type": self.type, "metric": self.metric, "column": self.column,
                "operator": self.operator, "threshold": self.threshold_text(), "unit": self.unit,
                "dimension": self.dimension, "severity": self.severity, "description": self.description,
                "query": self.query, "origin": self.origin, "on_failure": self.on_failure}


# -- reading rules -------------------------------------------------------------------------------------


def _custom(props: Any, name: str) -> Any:
    for p in props or []:
        if isinstance(p, dict) and p.get("property") == name:
            return p.get("value")
    return None


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RuleError(f"{where}: the threshold {value!r} is not a number")
    return value


def parse_rule(raw: dict, ds: Dataset, column: Column | None, index: int, origin: str = "contract") -> Rule:
    """One ODCS quality entry as a Rule; ``RuleError`` names what is wrong."""
    if not isinstance(raw, dict):
        raise RuleError(f"quality rule #{index + 1} of {ds.qualified_name} is not a mapping")
    where = f"quality rule {raw.get('name') or '#' + str(index + 1)} of {ds.qualified_name}" + (
        f".{column.name}" if column else "")
    rtype = str(raw.get("type") or ("sql" if raw.get("query") else "library"))
    ops = [(ALIASES.get(k, k), v) for k, v in raw.items() if ALIASES.get(k, k) in OPERATORS]
    if len(ops) > 1:
        raise RuleError(f"{where}: give one operator, not {', '.join(k for k, _ in ops)}")
    unit = str(raw.get("unit") or "rows")
    if unit not in ("rows", "percent"):
        raise RuleError(f"{where}: unit {unit!r} is not rows or percent")
    metric = raw.get("metric") or raw.get("rule")
    if rtype == "sql":
        metric = "sql"
        if not isinstance(raw.get("query"), str) or not raw["query"].strip():
            raise RuleError(f"{where}: a sql rule needs a query")
    elif rtype == "library":
        if metric not in METRICS:
            raise RuleError(f"{where}: unknown metric {metric!r} (known: {', '.join(METRICS)})")
        if metric != "rowCount" and column is None:
            raise RuleError(f"{where}: metric {metric} belongs on a property (column), not on the dataset")
    else:
        raise RuleError(f"{where}: rule type {rtype!r} is not supported (library, sql)")
    if ops:
        operator, threshold = ops[0]
        if operator in ("mustBeBetween", "mustNotBeBetween"):
            if not isinstance(threshold, (list, tuple)) or len(threshold) != 2:
                raise RuleError(f"{where}: {operator} takes a list of two numbers")
            threshold = [_number(threshold[0], where), _number(threshold[1], where)]
            if threshold[0] > threshold[1]:
                raise RuleError(f"{where}: {operator} bounds are in the wrong order")
        else:
            threshold = _number(threshold, where)
    else:
        operator, threshold = ("mustBeGreaterThan", 0) if metric == "rowCount" else ("mustBe", 0)
    args = dict(raw.get("arguments") or {})
    for key in ("validValues", "pattern", "missingValues"):  # ODCS v3.0 put some at the top level
        if key in raw and key not in args:
            args[key] = raw[key]
    if metric == "invalidValues" and not (args.get("validValues") or args.get("pattern")):
        raise RuleError(f"{where}: invalidValues needs arguments.validValues or arguments.pattern")
    if args.get("pattern"):
        try:
            re.compile(str(args["pattern"]))
        except re.error as e:
            raise RuleError(f"{where}: the pattern is not a regular expression ({e})") from None
    on_failure = _custom(raw.get("customProperties"), "onFailure") or raw.get("onFailure")
    if on_failure is not None and on_failure not in ("quarantine", "reject"):
        raise RuleError(f"{where}: onFailure is quarantine or reject, not {on_failure!r}")
    name = raw.get("name") or (f"{column.name}.{metric}" if column else str(metric))
    return Rule(name=str(name), type=rtype, metric=str(metric), columns=(column.name,) if column else (),
                operator=operator, threshold=threshold, unit=unit, dimension=raw.get("dimension"),
                severity=str(raw.get("severity") or "error"), description=raw.get("description"),
                query=raw.get("query"), args=args, on_failure=on_failure, origin=origin, raw=raw)


def schema_rules(ds: Dataset) -> list[Rule]:
    """The checks the schema implies: required, unique, primaryKey, logicalTypeOptions, enum."""
    out: list[Rule] = []
    keys = [c for c in ds.columns if c.primary_key]
    for c in ds.columns:
        if c.required or (c.primary_key and len(keys) == 1):
            out.append(Rule(f"{c.name}.required", "schema", "nullValues", (c.name,), dimension="completeness",
                            origin="schema", description="required: no NULL values"))
        if c.unique and not (c.primary_key and len(keys) == 1):
            out.append(Rule(f"{c.name}.unique", "schema", "duplicateValues", (c.name,), dimension="uniqueness",
                            origin="schema", description="unique: no duplicate values"))
        opts = c.raw.get("logicalTypeOptions") or {}
        for key in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minLength", "maxLength"):
            if key in opts:
                out.append(Rule(f"{c.name}.{key}", "schema", key, (c.name,), dimension="conformity", origin="schema",
                                args={"value": opts[key]}, description=f"logicalTypeOptions.{key}: {opts[key]}"))
        if opts.get("pattern"):
            out.append(Rule(f"{c.name}.pattern", "schema", "invalidValues", (c.name,), dimension="conformity",
                            origin="schema", args={"pattern": str(opts["pattern"])},
                            description=f"logicalTypeOptions.pattern: {opts['pattern']}"))
        if str(opts.get("format", "")).lower() in FORMATS:
            fmt = str(opts["format"]).lower()
            out.append(Rule(f"{c.name}.format", "schema", "invalidValues", (c.name,), dimension="conformity",
                            origin="schema", args={"pattern": FORMATS[fmt]}, severity="warning",
                            description=f"logicalTypeOptions.format: {fmt}"))
        enum = opts.get("enum") or _custom(c.raw.get("customProperties"), "enum")
        if isinstance(c.raw.get("enum"), list):  # ODCS v3.2: [{value, label...}]
            enum = [e["value"] for e in c.raw["enum"] if isinstance(e, dict) and "value" in e] or enum
        if isinstance(enum, list) and enum:
            out.append(Rule(f"{c.name}.enum", "schema", "invalidValues", (c.name,), dimension="conformity",
                            origin="schema", args={"validValues": enum}, description="enum values"))
    if keys:
        names = tuple(c.name for c in keys)
        out.append(Rule(f"{'+'.join(names)}.primaryKey", "schema", "duplicateValues", names, dimension="uniqueness",
                        origin="schema", description="primaryKey: unique key"))
        if len(keys) > 1:
            for c in keys:
                if not c.required:
                    out.append(Rule(f"{c.name}.required", "schema", "nullValues", (c.name,),
                                    dimension="completeness", origin="schema", description="key column: no NULLs"))
    return out


def dataset_rules(ds: Dataset, override: list[dict] | None = None) -> list[Rule]:
    """Every rule of a dataset, schema-implied first. ``override`` replaces the contract's own lists
    (the control plane's rules: entries with ``column`` apply to that property)."""
    rules = schema_rules(ds)
    if override is not None:
        entries = []
        for i, raw in enumerate(override):
            col = raw.get("column") if isinstance(raw, dict) else None
            entries.append((raw, col, i, "control-plane"))
    else:
        entries = [(raw, None, i, "contract") for i, raw in enumerate(ds.quality)]
        for c in ds.columns:
            entries += [(raw, c.name, i, "contract") for i, raw in enumerate(c.quality)]
    for raw, col, i, origin in entries:
        column = None
        if col is not None:
            column = ds.column(col)
            if column is None:
                raise RuleError(f"quality rule #{i + 1} of {ds.qualified_name} names column {col!r}, which the "
                                f"dataset does not have")
        body = {k: v for k, v in raw.items() if k != "column"} if isinstance(raw, dict) else raw
        rules.append(parse_rule(body, ds, column, i, origin))
    seen: dict[str, int] = {}
    for r in rules:  # names are unique within a dataset
        n = seen.get(r.name, 0)
        seen[r.name] = n + 1
        if n:
            r.name = f"{r.name}#{n + 1}"
    return rules


# -- SQL ------------------------------------------------------------------------------------------------


def _value(v: Any, data_type: str) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, bool):
        return "TRUE" if v else "FALSE"
    if isinstance(v, (int, float)):
        return repr(v)
    return f"CAST({literal(str(v))} AS {data_type})"


def failing(rule: Rule, ds: Dataset) -> str | None:
    """The SQL predicate true for a failing row (None for rules judged on the whole dataset)."""
    if not rule.row_level:
        return None
    cols = [ds.column(c) for c in rule.columns]
    if any(c is None for c in cols):
        raise RuleError(f"rule {rule.name} of {ds.qualified_name} names a column the dataset does not have")
    c = cols[0]
    q = quote(c.name)
    m = rule.metric
    if m == "nullValues":
        return f"{q} IS NULL"
    if m == "missingValues":
        missing = rule.args.get("missingValues", [None, ""])
        numbers = [v for v in missing if isinstance(v, (int, float)) and not isinstance(v, bool)]
        texts = [v for v in missing if v is not None and v not in numbers]
        pred = f"{q} IS NULL" if (None in missing or "missingValues" not in rule.args) else "FALSE"
        if numbers and c.data_type.split("(")[0] not in ("VARCHAR", "DATE", "TIMESTAMP", "BOOLEAN"):
            pred += f" OR {q} IN ({', '.join(repr(v) for v in numbers)})"
        else:
            texts += numbers
        if texts:
            pred += f" OR CAST({q} AS VARCHAR) IN ({', '.join(literal(str(v)) for v in texts)})"
        return pred
    if m == "invalidValues":
        parts = []
        if rule.args.get("validValues"):
            parts.append(f"{q} NOT IN ({', '.join(_value(v, c.data_type) for v in rule.args['validValues'])})")
        if rule.args.get("pattern"):
            parts.append(f"NOT regexp_matches(CAST({q} AS VARCHAR), {literal(str(rule.args['pattern']))})")
        return f"{q} IS NOT NULL AND ({' OR '.join(parts)})"
    if m == "duplicateValues":
        return None  # needs a window: see duplicate_rows
    v = rule.args.get("value")
    if m in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        op = {"minimum": "<", "exclusiveMinimum": "<=", "maximum": ">", "exclusiveMaximum": ">="}[m]
        return f"{q} {op} {_value(v, c.data_type)}"
    if m in ("minLength", "maxLength"):
        op = "<" if m == "minLength" else ">"
        return f"length(CAST({q} AS VARCHAR)) {op} {int(v)}"
    raise RuleError(f"rule {rule.name}: metric {m} has no row predicate")


def partition(rule: Rule) -> str:
    return ", ".join(quote(c) for c in rule.columns)


# Exact distinct counts of an integer key in a bounded range use a bitmap (DuckDB's bitstring_agg: one bit
# per possible value) instead of a hash table: ~10x faster on a 10M-row primary key. The range is capped so
# each thread's bitmap stays small (2^27 bits = 16 MiB).
BITMAP_RANGE = 1 << 27
_INTEGER_TYPES = {"TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER"}


def bitmap_columns(rules: list[Rule], ds: Dataset) -> list[str]:
    """The integer columns whose duplicates a bitmap can count, once their bounds are known."""
    types = {c.name: (c.data_type or "").upper() for c in ds.columns}
    return sorted({r.columns[0] for r in rules if r.type != "sql" and r.metric == "duplicateValues"
                   and len(r.columns) == 1 and types.get(r.columns[0]) in _INTEGER_TYPES})


def bounds_query(columns: list[str], relation: str) -> str:
    return "SELECT " + ", ".join(f"min({quote(c)}), max({quote(c)})" for c in columns) + f" FROM {relation}"


def aggregate(rule: Rule, ds: Dataset, bounds: dict[str, tuple] | None = None) -> str:
    """The aggregate expression measuring the rule (a count of failing rows, or the row count).
    ``bounds``: the (min, max) of integer columns, for a bitmap count of distinct values."""
    if rule.metric == "rowCount":
        return "count(*)"
    if rule.metric == "duplicateValues":
        if len(rule.columns) == 1:
            q = quote(rule.columns[0])
            lo, hi = (bounds or {}).get(rule.columns[0], (None, None))
            if lo is None or hi is None:  # no bounds, or no values at all
                return f"count({q}) - count(DISTINCT {q})"
            if hi - lo < BITMAP_RANGE:
                return f"count({q}) - bit_count(bitstring_agg({q}, {int(lo)}, {int(hi)}))"
            return f"count({q}) - count(DISTINCT {q})"
        packed = ", ".join(f"{quote(c)} := {quote(c)}" for c in rule.columns)
        return f"count(*) - count(DISTINCT struct_pack({packed}))"
    return f"count(*) FILTER (WHERE {failing(rule, ds)})"


def metrics_query(rules: list[Rule], ds: Dataset, relation: str,
                  bounds: dict[str, tuple] | None = None) -> tuple[str, list[Rule]]:
    """ONE query measuring every library/schema rule and the row count: ``SELECT count(*), m1, m2... FROM rel``."""
    measured = [r for r in rules if r.type != "sql"]
    exprs: dict[str, int] = {"count(*)": 0}
    for r in measured:  # a rule measured twice (primaryKey and duplicateValues) is computed once
        exprs.setdefault(aggregate(r, ds, bounds), len(exprs))
    select = ", ".join(f"{e} AS m{i}" for e, i in exprs.items())
    columns = ", ".join(["m0 AS _rows"] + [f"m{exprs[aggregate(r, ds, bounds)]} AS r{i}"
                                           for i, r in enumerate(measured)])
    return f"SELECT {columns} FROM (SELECT {select} FROM {relation})", measured


def measured_value(rule: Rule, failing_count: float, rows: int) -> float:
    if rule.metric == "rowCount" or rule.type == "sql":
        return failing_count
    if rule.unit == "percent":
        return round(100.0 * failing_count / rows, 6) if rows else 0.0
    return failing_count


def sample_query(rule: Rule, ds: Dataset, obj: str, limit: int = 5) -> str | None:
    """A query (run as the principal, through the pipeline) returning a few failing rows."""
    if not rule.row_level:
        return None
    if rule.metric == "duplicateValues":
        return f"SELECT * FROM {obj} QUALIFY count(*) OVER (PARTITION BY {partition(rule)}) > 1 LIMIT {limit}"
    return f"SELECT * FROM {obj} WHERE {failing(rule, ds)} LIMIT {limit}"


def sql_rule_text(rule: Rule, ds: Dataset) -> str:
    """The rule's query with ``{object}`` (the dataset, ``quantum.dataset``) and ``{property}`` filled in."""
    text = rule.query or ""
    text = text.replace("{object}", f"{quote(ds.quantum)}.{quote(ds.name)}")
    if rule.columns:
        text = text.replace("{property}", quote(rule.columns[0]))
    elif "{property}" in text:
        raise RuleError(f"rule {rule.name} uses {{property}} but is not on a property")
    return text
