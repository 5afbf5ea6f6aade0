"""Running quality rules: against a registered dataset or a staged batch (before it is published).

    run = check(platform, "sales.orders", principal)        # the served version
    run.results -> [CheckResult(rule, dimension, severity, measured, threshold, status, sample...)]

Column metrics run as ONE aggregate query (see ``rules.metrics_query``) on the engine, as trusted SQL
that Quanta generates itself (identifiers quoted, values as literals) and that returns counts only.
Everything a person wrote or that returns rows goes through the query pipeline as the principal:
``sql`` rules (``{object}``/``{property}`` filled in) pass the same safety passes and governance as
user queries, and failing-row samples are read through it, so masks apply and raw PII never lands in
a sample. A sample belongs to whoever asked: the checker gets theirs with the run, the history keeps
none, and anyone else reads the failing rows for themselves (``read_sample``: their grant, masks and
row filters). A row-count history (the ``volume`` check) flags a count outside mean +/- 3 sigma of the
last runs as a warning.
"""

from __future__ import annotations

import json
import math
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

import pyarrow as pa

from .. import errors
from ..catalog.model import Dataset
from ..engine.duckdb_backend import quote
from . import rules as R

SAMPLE_ROWS = 5
ANOMALY_RUNS = 10  # the history window of the volume check
ANOMALY_MIN_RUNS = 5


@dataclass
class CheckResult:
    rule: str
    type: str
    metric: str
    column: str | None
    dimension: str | None
    severity: str
    measured: float | None
    threshold: str
    status: str  # pass | warn | fail | error
    failing_rows: int | None = None
    sample: list[dict] | None = None
    message: str | None = None
    row_level: bool = False
    on_failure: str | None = None

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CheckRun:
    run_id: str
    quantum: str
    dataset: str
    target: str  # the served version ("v3", "source") or "batch"
    rows: int
    results: list[CheckResult] = field(default_factory=list)
    queries: int = 0  # scans: 1 for all metrics, plus one per sql rule
    engine: str | None = None  # where the metrics were measured: "duckdb" or "spark_connect" (settings.engine)

    @property
    def status(self) -> str:
        states = {r.status for r in self.results}
        for s in ("error", "fail", "warn"):
            if s in states:
                return s
        return "pass"

    def summary(self) -> dict:
        out = {"pass": 0, "warn": 0, "fail": 0, "error": 0}
        for r in self.results:
            out[r.status] += 1
        return {"status": self.status, "rows": self.rows, **out}

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "dataset": f"{self.quantum}.{self.dataset}", "target": self.target,
                "engine": self.engine,
                "rows": self.rows, "status": self.status, "queries": self.queries,
                "results": [r.to_dict() for r in self.results]}


@dataclass
class Target:
    """Where rules run: ``relation`` is the SQL relation of the data; ``trusted`` runs Quanta's own SQL
    and returns rows; ``governed`` runs SQL written in terms of mesh names as the principal, through
    the pipeline, and returns an Arrow table."""

    relation: str
    trusted: Callable[[str], list[tuple]]
    governed: Callable[[str], pa.Table]
    label: str
    engines: list[str] = field(default_factory=list)  # where each trusted read ran


def registered_target(platform, ds: Dataset, principal) -> Target:
    backend = platform.state.backend
    rel = ".".join(quote(p) for p in backend.relation(ds.quantum, ds.name))

    def trusted(sql: str) -> list[tuple]:  # contract rules, on raw data, through the platform's audited gateway
        from ..result import ran_on

        table = platform.read(sql, "quality", principal, [f"{ds.quantum}.{ds.name}"])
        target.engines.append(ran_on(table) or "duckdb")
        return [tuple(r.values()) for r in table.to_pylist()]

    def governed(sql: str) -> pa.Table:
        return platform.query(sql, principal, interface="quality").arrow()

    target = Target(rel, trusted, governed, "served")
    return target


def rules_for(ds: Dataset, overrides: dict | None = None) -> list[R.Rule]:
    """The rules in force for ``ds``: those set through the control plane (``overrides``, by (quantum,
    dataset), as the control store keeps them) replace the contract's; schema-implied rules always apply."""
    return R.dataset_rules(ds, (overrides or {}).get((ds.quantum.lower(), ds.name.lower())))


def run_rules(rules: list[R.Rule], ds: Dataset, target: Target, samples: bool = True) -> CheckRun:
    run = CheckRun(uuid.uuid4().hex[:12], ds.quantum, ds.name, target.label, 0)
    bounds = {}
    keys = R.bitmap_columns(rules, ds)
    if keys:  # min and max of integer keys: from Parquet statistics, or one cheap pass
        row = target.trusted(R.bounds_query(keys, target.relation))[0]
        run.queries += 1
        bounds = {c: (row[2 * i], row[2 * i + 1]) for i, c in enumerate(keys)}
    sql, measured_rules = R.metrics_query(rules, ds, target.relation, bounds)
    try:
        row = target.trusted(sql)[0]
    except Exception:  # noqa: BLE001 - a live source changed between the two queries: count with hashes
        if not bounds:
            raise
        sql, measured_rules = R.metrics_query(rules, ds, target.relation)
        row = target.trusted(sql)[0]
    run.queries += 1
    run.engine = target.engines[-1] if target.engines else "duckdb"
    rows = int(row[0])
    run.rows = rows
    values = dict(zip((id(r) for r in measured_rules), row[1:]))
    for rule in rules:
        base = dict(rule=rule.name, type=rule.type, metric=rule.metric, column=rule.column,
                    dimension=rule.dimension, severity=rule.severity, threshold=rule.threshold_text(),
                    row_level=rule.row_level, on_failure=rule.on_failure)
        if rule.type == "sql":
            run.queries += 1
            try:
                table = target.governed(R.sql_rule_text(rule, ds))
                if table.num_columns < 1 or table.num_rows != 1:
                    raise errors.ProgrammingError(f"a sql rule returns one value; this one returned "
                                                  f"{table.num_rows} rows of {table.num_columns} columns")
                value = table.column(0)[0].as_py()
                measured = float(value) if value is not None else math.nan
                if math.isnan(measured):
                    raise errors.DataError("the rule's query returned NULL")
                run.results.append(CheckResult(measured=measured, status=rule.status(measured), **base))
            except (errors.Error, R.RuleError, ValueError, TypeError) as e:
                run.results.append(CheckResult(measured=None, status="error", message=str(e), **base))
            continue
        count = float(values[id(rule)] or 0)
        measured = R.measured_value(rule, count, rows)
        status = rule.status(measured)
        result = CheckResult(measured=measured, status=status,
                             failing_rows=int(count) if rule.row_level else None, **base)
        if status != "pass" and samples and rule.row_level and count:
            try:
                obj = f"{quote(ds.quantum)}.{quote(ds.name)}"
                result.sample = target.governed(R.sample_query(rule, ds, obj, SAMPLE_ROWS)).to_pylist()
            except errors.Error as e:
                result.message = f"no sample: {e}"
        run.results.append(result)
    return run


def volume_check(run: CheckRun, history: list[float]) -> CheckResult:
    """The row count against the last runs: outside mean +/- 3 sigma is a warning."""
    base = dict(rule="volume.anomaly", type="anomaly", metric="rowCount", column=None, dimension="completeness",
                severity="warning", measured=float(run.rows))
    past = history[-ANOMALY_RUNS:]
    if len(past) < ANOMALY_MIN_RUNS:
        return CheckResult(threshold=f"needs {ANOMALY_MIN_RUNS} runs of history ({len(past)} so far)",
                           status="pass", **base)
    mean = sum(past) / len(past)
    sigma = math.sqrt(sum((x - mean) ** 2 for x in past) / len(past))
    lo, hi = mean - 3 * sigma, mean + 3 * sigma
    ok = lo <= run.rows <= hi
    return CheckResult(threshold=f"mustBeBetween [{lo:.1f}, {hi:.1f}] (mean +/- 3 sigma of {len(past)} runs)",
                       status="pass" if ok else "warn",
                       message=None if ok else f"{run.rows} rows is outside the usual {lo:.0f}..{hi:.0f}", **base)


def volume_history(store, quantum: str, dataset: str) -> list[float]:
    return [r["measured"] for r in store.results(quantum, dataset)
            if r["rule"] == "volume.anomaly" and r["measured"] is not None]


def read_sample(platform, ds: Dataset, rule: R.Rule, principal, limit: int = SAMPLE_ROWS) -> list[dict]:
    """A few rows failing ``rule``, read now as ``principal`` through the query pipeline (their grant,
    masks and row filters apply, as for any query of theirs). Empty for a rule judged on the whole
    dataset."""
    sql = R.sample_query(rule, ds, f"{quote(ds.quantum)}.{quote(ds.name)}", limit)
    if sql is None:
        return []
    result = platform.query(sql, principal, interface="quality")
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


def record(store, run: CheckRun, version: int | None, principal: str, target: str | None = None) -> None:
    """Persist a run's results (history) and emit ``check_failed`` when a rule failed or errored. The
    history (system.quality_results) is shown to the readers of the dataset; it keeps no sample: the
    checker's sample holds what the checker may see, not what every reader may (``read_sample``)."""
    at = datetime.now(timezone.utc).isoformat()
    rows = []
    for r in run.results:
        rows.append({"run_id": run.run_id, "at": at, "quantum": run.quantum.lower(), "dataset": run.dataset.lower(),
                     "version": version, "target": target or run.target, "rule": r.rule, "type": r.type,
                     "metric": r.metric, "column": r.column, "dimension": r.dimension, "severity": r.severity,
                     "measured": r.measured, "threshold": r.threshold, "status": r.status,
                     "failing_rows": r.failing_rows, "sample": None, "message": r.message, "principal": principal})
    events = []
    bad = [r for r in run.results if r.status in ("fail", "error")]
    if bad:
        events.append(dict(kind="check_failed", quantum=run.quantum, dataset=run.dataset, version=version,
                           principal=principal, message=f"{len(bad)} quality rule(s) failed: "
                           + ", ".join(r.rule for r in bad[:10]), details={"run_id": run.run_id}))
    anomalies = [r for r in run.results if r.type == "anomaly" and r.status == "warn"]
    for r in anomalies:
        events.append(dict(kind="anomaly_detected", quantum=run.quantum, dataset=run.dataset, version=version,
                           principal=principal, message=r.message, details={"run_id": run.run_id}))
    store.record_results(rows, events)


def jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
