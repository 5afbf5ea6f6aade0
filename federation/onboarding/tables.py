"""The control plane's observability system tables (``system.versions``, ``events``, ``quality_rules``,
``quality_results``, ``slo_status``, ``slo_history``, ``availability_probes``, ``marts``), built from
the control store; ``refresh`` rewrites them in a running platform after each change.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow as pa

from ..catalog.model import Mesh
from .common import store_of
from .store import Store

TS = pa.timestamp("us", tz="UTC")
STR = pa.string()
I64 = pa.int64()
F64 = pa.float64()

SCHEMAS = {
    "marts": [("quantum", pa.string()), ("dataset", pa.string()), ("version", pa.int64()),
              ("built_from", pa.string()), ("stale", pa.bool_()), ("why", pa.string())],
    "versions": [("quantum", STR), ("dataset", STR), ("version", I64), ("contract_version", STR),
                 ("created_at", TS), ("rows", I64), ("bytes", I64), ("files", I64), ("status", STR),
                 ("quality_summary", STR), ("quarantined", I64), ("principal", STR), ("message", STR),
                 ("current", pa.bool_())],
    "events": [("event_id", I64), ("at", TS), ("kind", STR), ("quantum", STR), ("dataset", STR), ("version", I64),
               ("principal", STR), ("message", STR), ("details", STR)],
    "quality_rules": [("quantum", STR), ("dataset", STR), ("rule", STR), ("type", STR), ("metric", STR),
                      ("column", STR), ("threshold", STR), ("dimension", STR), ("severity", STR),
                      ("description", STR), ("query", STR), ("origin", STR), ("problem", STR)],
    "quality_results": [("run_id", STR), ("at", TS), ("quantum", STR), ("dataset", STR), ("version", I64),
                        ("target", STR), ("rule", STR), ("type", STR), ("metric", STR), ("column", STR),
                        ("dimension", STR), ("severity", STR), ("measured", F64), ("threshold", STR),
                        ("status", STR), ("failing_rows", I64), ("message", STR), ("principal", STR)],
    "slo_status": [("quantum", STR), ("dataset", STR), ("property", STR), ("target", STR), ("measured", STR),
                   ("status", STR), ("message", STR), ("evaluated_at", TS)],
    "slo_history": [("at", TS), ("quantum", STR), ("dataset", STR), ("property", STR), ("target", STR),
                    ("measured", STR), ("status", STR), ("message", STR)],
    "availability_probes": [("at", TS), ("quantum", STR), ("dataset", STR), ("ok", pa.bool_()), ("reason", STR)],
    # never read: a query names it and the rewrite reads the governed quarantine relations (rewrite/quarantine.py)
    "quarantine": [("quarantine_id", STR), ("quantum", STR), ("dataset", STR), ("version", I64),
                   ("row_number", I64), ("rules", STR), ("row", STR)],
}
DESCRIPTIONS = {
    "versions": "Published, failed and rolled-back versions of onboarded datasets",
    "events": "Events: versions published, onboardings failed, checks failed, SLOs breached, rules changed",
    "quality_rules": "Quality rules of every dataset: contract, schema-implied and control-plane rules",
    "quality_results": "History of quality check results (measured value, threshold, status; no samples)",
    "slo_status": "Latest status of each SLO (slaProperties): met, at risk or breached",
    "slo_history": "History of SLO evaluations",
    "availability_probes": "Probes of each dataset (can it be read?), the measure of the availability SLO",
    "marts": "Materialised marts: current version, the source versions it was built from, and whether it is stale",
    "quarantine": "Rows kept out by onboardings, with the rules they fail: each governed like its dataset (grants, "
                  "row filters, masks); the row as JSON",
}


def _ts(text):
    from datetime import datetime

    return datetime.fromisoformat(text) if text else None


def _table(name: str, rows: list[dict]) -> pa.Table:
    schema = SCHEMAS[name]
    return pa.table({c: pa.array([r.get(c) for r in rows], t) for c, t in schema})


def observability_tables(mesh: Mesh, state_dir: Path) -> dict[str, tuple[str, pa.Table]]:
    store = Store.open(state_dir) if Store.exists(state_dir) else None
    try:
        data = _observability_rows(mesh, store)
    finally:
        if store is not None:
            store.close()
    return {name: (DESCRIPTIONS[name], _table(name, rows)) for name, rows in data.items()}


def _observability_rows(mesh: Mesh, store: Store | None) -> dict[str, list[dict]]:
    from ..quality import rules as R

    overrides = store.rules() if store else {}
    rule_rows = []
    for ds in mesh.datasets():
        key = (ds.quantum.lower(), ds.name.lower())
        try:
            for r in R.dataset_rules(ds, overrides.get(key)):
                d = r.describe()
                rule_rows.append({"quantum": ds.quantum, "dataset": ds.name, **d, "problem": None})
        except R.RuleError as e:
            rule_rows.append({"quantum": ds.quantum, "dataset": ds.name, "problem": str(e)})
    out = {"quality_rules": rule_rows, "versions": [], "events": [], "quality_results": [], "slo_status": [],
           "slo_history": [], "availability_probes": [], "marts": mart_rows(mesh, store), "quarantine": []}
    if store is None:
        return out
    served = {k: v.version for k, v in store.served().items()}
    for v in store.versions():
        out["versions"].append({**v.__dict__, "created_at": _ts(v.created_at),
                                "quality_summary": json.dumps(v.quality_summary) if v.quality_summary else None,
                                "current": served.get((v.quantum, v.dataset)) == v.version})
    out["events"] = [{**e, "at": _ts(e["at"])} for e in store.events()]
    out["quality_results"] = [{**r, "at": _ts(r["at"])} for r in store.results()]
    history = store.slo_history()
    out["slo_history"] = [{**h, "at": _ts(h["at"])} for h in history]
    latest: dict[tuple, dict] = {}
    for h in history:
        latest[(h["quantum"], h["dataset"], h["property"])] = h
    out["slo_status"] = [{**h, "evaluated_at": _ts(h["at"])} for h in latest.values()]
    out["availability_probes"] = [{**x, "at": _ts(x["at"])} for x in store.probes()]
    return out


def refresh(platform) -> None:
    """Rewrite the observability system tables of the running platform from the store."""
    state = platform.state
    data = _observability_rows(state.mesh, store_of(platform))
    for name, rows in data.items():
        if ("system", name) in state.namespace.system_tables:
            state.backend.put_table(name, _table(name, rows))


def mart_rows(mesh, store) -> list[dict]:
    """Each mart: its current version, what it was built from, and whether a source has moved on."""
    rows = []
    built: dict[tuple[str, str, int], dict] = {}
    if store is not None:
        for e in store.events("mart_refreshed"):
            details = e.get("details")
            details = json.loads(details) if isinstance(details, str) else (details or {})
            built[(e["quantum"], e["dataset"], e["version"])] = details.get("built_from") or {}
    for ds in mesh.datasets():
        if ds.sql is None or not ds.materialized:
            continue
        current = store.current(ds.quantum, ds.name) if store is not None else None
        sources = built.get((ds.quantum.lower(), ds.name.lower(), current.version), {}) if current else {}
        stale, moved = current is None, []
        for src, version in sources.items():
            q, _, d = src.partition(".")
            now = store.current(q, d) if store is not None else None
            if (now.version if now else None) != version:
                stale = True
                moved.append(src)
        rows.append({"quantum": ds.quantum, "dataset": ds.name, "version": current.version if current else None,
                     "built_from": json.dumps(sources), "stale": stale,
                     "why": ("never built" if current is None else
                             f"newer versions of {', '.join(moved)}" if moved else None)})
    return rows
