"""The control plane's facade (Python API; the CLI and HTTP sit on it): the functions that orchestrate
onboarding, quality, SLOs, versions and the observability tables.

    onboard(platform, "sales.orders", source, principal)  publish a batch, then refresh the marts reading it
    evaluate_slos(platform, datasets, principal_name)   evaluate, record and show the SLOs of datasets
    check(platform, "sales.orders", principal)          run the quality rules on the served data
    check_all(platform, principal)                      every dataset the principal may check, with SLOs
    set_rules(platform, "sales.orders", rules, principal)  add or replace rules (validated, persisted)
    samples(platform, "sales.orders", principal)       failing rows of the latest check, read as principal
    rollback(platform, "sales.orders", 2, principal)    serve version 2 again
    set_contract_status(platform, contract_id, version, "deprecated" | "retired", principal)
    quarantine(platform, "sales.orders", principal, version=None)   the rows kept out, with reasons (governed)
    versions(platform, "sales.orders")                  the version history

Only the quantum's owners and principals with the role ``data_engineer`` may change anything
(``AccessDenied`` otherwise). The history (the observability plane) is governed like the data: a
dataset's results, SLOs, probes, versions and events are shown to those who may read it
(``federation.system.observability``), no failing-row sample is kept for everyone (``samples`` reads
them for each reader), and a control-plane rule may not reveal what its author may not see
(``federation.quality.authoring``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import pyarrow as pa

from .. import errors
from ..catalog.model import Mesh
from . import serving
from .common import (ENGINEER_ROLE, authorize, dataset_of, may_control, remove_tree,  # noqa: F401 - re-exported
                     require_read, rule_overrides, rules_of, store_of)
from .store import Store, Version, iso  # noqa: F401
from .tables import SCHEMAS, mart_rows, observability_tables, refresh  # noqa: F401


# -- onboarding -----------------------------------------------------------------------------------------


def onboard(platform, name: str, source: Any, principal, **options):
    """Onboard one batch (``pipeline.onboard``, same options); once published, refresh the marts that
    read the dataset and ask for it (``refresh: on_source_publish``), listed in ``report.marts``."""
    from .marts import after_publish
    from .pipeline import onboard as publish

    report = publish(platform, name, source, principal, **options)
    if report.status == "published":
        report.marts = after_publish(platform, dataset_of(platform, name))
    return report


def evaluate_slos(platform, datasets: list, principal: str = "quanta-system") -> list:
    """Evaluate the SLOs of ``datasets`` (probing each), record them (history, ``slo_breached`` events)
    and rewrite the system tables."""
    from ..quality import slo

    statuses = slo.evaluate_and_record(platform, store_of(platform), datasets, principal)
    refresh(platform)
    return statuses


# -- quality ------------------------------------------------------------------------------------------


def check(platform, name: str, principal, samples: bool = True):
    """Probe the dataset (availability), then run every rule of it on its served data; results are
    stored (history) and returned."""
    from ..quality import engine, slo

    ds = dataset_of(platform, name)
    authorize(platform, principal, ds.quantum, "run quality checks")
    store = store_of(platform)
    readable, reason = slo.probe(platform, ds, store)
    if not readable:
        refresh(platform)
        raise errors.Unavailable(f"{ds.qualified_name} cannot be read: {reason}")
    rules = rules_of(platform, ds)
    target = engine.registered_target(platform, ds, principal)
    current = store.current(ds.quantum, ds.name)
    target.label = f"v{current.version}" if current else "source"
    run = engine.run_rules(rules, ds, target, samples)
    run.results.append(engine.volume_check(run, engine.volume_history(store, ds.quantum, ds.name)))
    engine.record(store, run, current.version if current else None, principal.name)
    refresh(platform)
    return run


@dataclass
class DatasetCheck:
    """One dataset's outcome in ``check_all``: its run, or why there is none (skipped, error)."""

    dataset: str
    status: str  # pass | warn | fail | error | skipped
    run: Any = None  # quality.engine.CheckRun
    slo: list = field(default_factory=list)  # quality.slo.SloStatus
    message: str | None = None

    def to_dict(self) -> dict:
        counts = self.run.summary() if self.run is not None else {}
        slo = next((s for s in ("breached", "at risk", "unknown", "met") if s in {x.status for x in self.slo}), None)
        return {"dataset": self.dataset, "status": self.status,
                "rules": len(self.run.results) if self.run is not None else None,
                **{k: counts.get(k) for k in ("pass", "warn", "fail", "error")}, "rows": counts.get("rows"),
                "slo": slo, "message": self.message}


def check_all(platform, principal, slo: bool = True,
              progress: Callable[[int, int, str], None] | None = None) -> list[DatasetCheck]:
    """Check every dataset ``principal`` may check (owner or data engineer), one after the other, with its
    SLOs; the others are ``skipped``, and an unavailable quantum or a check that cannot run is an ``error``
    of that dataset only."""
    mesh: Mesh = platform.mesh
    datasets = sorted(mesh.datasets(), key=lambda d: d.qualified_name.lower())
    allowed = {q for q in mesh.quanta if may_control(platform, principal, q)}
    mine = [ds for ds in datasets if ds.quantum.lower() in allowed]
    out = [DatasetCheck(ds.qualified_name, "skipped", message=f"{principal.name} is not an owner of {ds.quantum} nor "
                        f"a {ENGINEER_ROLE}") for ds in datasets if ds.quantum.lower() not in allowed]
    out += [DatasetCheck(f"{q}.*", "error", message=f"quantum {q} is unavailable: {why}")
            for q, why in sorted(mesh.excluded.items()) if may_control(platform, principal, q)]
    for i, ds in enumerate(mine, 1):
        if progress:
            progress(i, len(mine), ds.qualified_name)
        try:
            run = check(platform, ds.qualified_name, principal)
            slos = evaluate_slos(platform, [ds], principal.name) if slo else []
            out.append(DatasetCheck(ds.qualified_name, run.status, run, slos))
        except errors.Error as e:
            out.append(DatasetCheck(ds.qualified_name, "error", message=str(e)))
    order = {d.qualified_name: i for i, d in enumerate(datasets)}
    return sorted(out, key=lambda c: order.get(c.dataset, len(order)))


def set_rules(platform, name: str, rules: list[dict], principal) -> list:
    """Replace the quality rules of a dataset (each entry an ODCS quality rule; ``column`` puts it on a
    property). Validated by compiling them; persisted; served in ``system.quality_rules`` and used by
    every later check and onboarding. A rule that would reveal what the author may not see (on a column
    masked or denied for them, rows hidden from them, a sql rule reading more than the dataset) is
    refused (``federation.quality.authoring``)."""
    from ..quality import authoring, rules as R

    ds = dataset_of(platform, name)
    authorize(platform, principal, ds.quantum, "change quality rules")
    if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
        raise errors.ProgrammingError("quality rules are a list of mappings (ODCS quality entries)")
    try:
        compiled = R.dataset_rules(ds, rules)
        for r in compiled:
            if r.type != "sql":
                R.aggregate(r, ds)
    except R.RuleError as e:
        raise errors.ProgrammingError(f"invalid quality rule: {e}") from None
    authoring.check_author(platform.state.governance, ds, compiled, principal)
    store_of(platform).set_rules(ds.quantum, ds.name, rules, principal.name, dict(
        kind="rules_changed", quantum=ds.quantum, dataset=ds.name, principal=principal.name,
        message=f"{len(rules)} quality rule(s) set", details=rules))
    refresh(platform)
    return compiled


def results_as(platform, ds, principal) -> list[dict]:
    """The quality history of ``ds`` as ``system.quality_results`` shows it to ``principal`` (its figures NULL
    where they are not theirs: ``system.observability``), oldest first."""
    if not Store.exists(platform.state_dir):
        return []
    result = platform.query("SELECT * FROM system.quality_results WHERE lower(quantum) = ? AND lower(dataset) = ? "
                            "ORDER BY at, rule", principal, [ds.quantum.lower(), ds.name.lower()],
                            interface="control")
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


def samples(platform, name: str, principal, limit: int | None = None) -> list[dict]:
    """The rules that failed at the latest check of a dataset, each with a few failing rows read now as
    ``principal`` through the query pipeline: their grant, masks and row filters apply, so they get what
    their own query would show (possibly no row). AccessDenied if they may not read the dataset."""
    from ..quality import engine

    ds = dataset_of(platform, name)
    require_read(platform, principal, ds, "read its quality samples")
    history = results_as(platform, ds, principal)
    if not history:
        return []
    latest = history[-1]["run_id"]
    rules = {r.name: r for r in rules_of(platform, ds)}
    out = []
    for r in history:  # failing_rows NULL: not for this reader to count (system.quality_results)
        if r["run_id"] != latest or r["status"] == "pass" or r["failing_rows"] == 0:
            continue
        entry = {"rule": r["rule"], "column": r["column"], "status": r["status"], "failing_rows": r["failing_rows"],
                 "checked_at": r["at"], "sample": None, "message": None}
        rule = rules.get(r["rule"])
        if rule is None or not rule.row_level:
            entry["message"] = f"rule {r['rule']} is no longer in force"
        else:
            try:
                entry["sample"] = engine.read_sample(platform, ds, rule, principal, limit or engine.SAMPLE_ROWS)
            except errors.Error as e:
                entry["message"] = f"no sample: {e}"
        out.append(entry)
    return out


# -- versions -------------------------------------------------------------------------------------------


def versions(platform, name: str, principal=None) -> list[Version]:
    """The version history; with ``principal``, only if they may read the dataset (AccessDenied), and as
    ``system.versions`` shows it to them: figures NULL for a reader whose row filter hides part of the data,
    texts quoting rule figures NULL for one a column is hidden from (``system.observability``), no file path."""
    import dataclasses
    import json

    ds = dataset_of(platform, name)
    if principal is not None:
        require_read(platform, principal, ds, "read the versions")
    if not Store.exists(platform.state_dir):
        return []
    found = store_of(platform).versions(ds.quantum, ds.name)
    if principal is None:
        return found
    result = platform.query("SELECT version, rows, bytes, quality_summary, quarantined, message FROM system.versions "
                            "WHERE lower(quantum) = ? AND lower(dataset) = ?", principal,
                            [ds.quantum.lower(), ds.name.lower()], interface="control")
    try:
        shown = {r[0]: r[1:] for r in result.fetchall()}
    finally:
        result.close()
    out = []
    for v in found:
        rows, size, summary, quarantined, message = shown.get(v.version, (None,) * 5)
        out.append(dataclasses.replace(v, rows=rows, bytes=size, quarantined=quarantined, message=message,
                                       quality_summary=json.loads(summary) if isinstance(summary, str) else summary,
                                       path=None, quarantine_path=None))
    return out


def rollback(platform, name: str, version: int, principal) -> Version:
    """Serve ``version`` again: newer published versions become ``rolled_back`` (kept, still pinnable)."""
    from .pipeline import dataset_lock, switch_view

    ds = dataset_of(platform, name)
    authorize(platform, principal, ds.quantum, "roll back versions")
    store = store_of(platform)
    with dataset_lock(platform.mesh, ds):
        target = store.version(ds.quantum, ds.name, version)
        if target is None or target.status not in ("published", "rolled_back"):
            have = ", ".join(f"v{v.version} ({v.status})" for v in store.versions(ds.quantum, ds.name)) or "none"
            raise errors.ProgrammingError(f"{ds.qualified_name} has no version {version} to roll back to "
                                          f"(versions: {have})")
        if not serving.version_dir(platform.mesh, ds.quantum, ds.name, version).exists():
            raise errors.Unavailable(f"the data of {ds.qualified_name} v{version} is no longer kept")
        changes = {v.version: "rolled_back" for v in store.versions(ds.quantum, ds.name)
                   if v.version > version and v.status == "published"}
        changes[version] = "published"
        store.set_status(ds.quantum, ds.name, changes, [dict(
            kind="version_rolled_back", quantum=ds.quantum, dataset=ds.name, version=version,
            principal=principal.name, message=f"{ds.qualified_name} rolled back to v{version}",
            details={"rolled_back": sorted(k for k in changes if k != version)})])
        switch_view(platform, ds, store.version(ds.quantum, ds.name, version))
    refresh(platform)
    return store.version(ds.quantum, ds.name, version)


def quarantine(platform, name: str, principal, version: int | None = None) -> pa.Table:
    """The held rows an onboarding kept out (of ``version``, or every held batch), with ``_quanta_reason``,
    ``_quanta_version`` and ``_quanta_row``; owners and data engineers only. Read through the query pipeline
    as ``principal`` (``quantum."dataset@quarantine"``): their masks, row filters and denials apply."""
    from .quarantine_relation import ROW, SUFFIX, VERSION, relation_name

    ds = dataset_of(platform, name)
    authorize(platform, principal, ds.quantum, "read the quarantine")
    if (ds.quantum.lower(), ds.name.lower(), SUFFIX) not in platform.state.namespace.pinned:
        return pa.table({"_quanta_reason": pa.array([], pa.string())})
    where = f' WHERE "{VERSION}" = ?' if version is not None else ""
    result = platform.query(f'SELECT * FROM "{ds.quantum.lower()}"."{relation_name(ds.name)}"{where} '
                            f'ORDER BY "{VERSION}", "{ROW}"', principal, [version] if version is not None else None,
                            interface="control")
    try:
        return result.arrow()
    finally:
        result.close()


def set_contract_status(platform, contract_id: str, version: str, status: str, principal) -> None:
    """Deprecate or retire a contract version (recorded, shown in system.versions' contract status)."""
    if status not in ("active", "deprecated", "retired"):
        raise errors.ProgrammingError("a contract version is active, deprecated or retired")
    contract = platform.mesh.contracts.get(contract_id)
    if contract is None or not contract.quantum:
        raise errors.UnknownObject(f"there is no contract {contract_id!r} of a loaded quantum")
    authorize(platform, principal, contract.quantum, f"mark contracts {status}")
    store_of(platform).set_contract_status(contract_id, version, status, principal.name, dict(
        kind=f"contract_{status}", quantum=contract.quantum, principal=principal.name,
        message=f"contract {contract_id} v{version} is {status}"))
    refresh(platform)


