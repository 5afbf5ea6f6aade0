"""Materialised data marts: a derived dataset published as versions, refreshed on demand or when a
source publishes a new version, and flagged stale when its sources moved on.

A derived dataset becomes a mart with the custom property ``materialize: true`` on its schema object
(its contract must declare its columns); ``refresh: on_source_publish`` refreshes it whenever a
dataset it reads publishes a version. A refresh runs the dataset's SQL with the owner's rights
(definer) and publishes the rows through onboarding (schema check, quality rules, atomic versions).
Readers then read the mart like any dataset: as fast, with the mart's own contract (classifications
inherited along lineage) deciding masks, and row filters applying by the mart's own columns. Until its
first refresh a mart is computed at query time, with the reader's rights, like any derived dataset.
A column the contract declassifies (``declassify: {minGroupSize: k}``, see ``lineage.declassify``) is
checked at every refresh: each group of the mart must aggregate at least k source rows, or the refresh
publishes nothing and fails naming the column and the smallest group.

``system.marts``: each mart's current version, the source versions it was built from, and ``stale``.
"""

from __future__ import annotations

import uuid

from .. import errors
from ..catalog.model import Dataset
from ..governance.principals import SYSTEM_PRINCIPAL, Principal
from .common import authorize, dataset_of, store_of

SYSTEM = Principal("quanta-system", roles=("data_engineer",))


def _source_versions(platform, ds: Dataset) -> dict[str, int | None]:
    store = store_of(platform)
    out = {}
    for q, d in ds.reads:
        current = store.current(q, d)
        out[f"{q}.{d}"] = current.version if current else None
    return out


def refresh(platform, name: str, principal, progress=None):
    """Rebuild the mart ``name`` from its sources and publish it as a new version; then the marts that
    read this one and ask for it are refreshed in turn."""
    from ..result import ran_on
    from .pipeline import onboard

    ds = dataset_of(platform, name)
    if ds.sql is None or not ds.materialized:
        raise errors.ProgrammingError(f"{ds.qualified_name} is not a materialised mart (a derived dataset with the "
                                      "custom property materialize: true)")
    authorize(platform, principal, ds.quantum, "refresh the mart")
    state = platform.state
    definition = state.namespace.definitions.get((ds.quantum.lower(), ds.name.lower()))
    if definition is None:
        raise errors.Unavailable(f"{ds.qualified_name} is not available")
    built_from = _source_versions(platform, ds)
    lineage, run_id = state.openlineage, str(uuid.uuid4())
    job = f"{platform.mesh.name}.refresh.{ds.qualified_name}"
    sources = [s for s in (platform.mesh.dataset(q, d) for q, d in ds.reads) if s is not None]
    if lineage.enabled:
        lineage.emit_run(job, "START", run_id, [lineage.input(s) for s in sources], sql=ds.sql)
    try:
        check_group_sizes(platform, ds, principal)
        rows = platform.read(definition.sql(dialect=state.backend.dialect), "mart-refresh", principal,
                             [f"{q}.{d}" for q, d in ds.reads])
        report = onboard(platform, ds.qualified_name, rows, principal, progress=progress)
        report.built_on = ran_on(rows)
    except Exception as e:
        if lineage.enabled:
            lineage.emit_run(job, "FAIL", run_id, error=f"{type(e).__name__}: {e}", sql=ds.sql)
        raise
    if lineage.enabled:
        edges = [e for e in platform.lineage.edges if (e.target_quantum.lower(), e.target_dataset.lower())
                 == (ds.quantum.lower(), ds.name.lower())]
        lineage.emit_run(job, "COMPLETE", run_id, [lineage.input(s) for s in sources], [lineage.output(ds, edges)],
                         sql=ds.sql)
    store_of(platform).emit("mart_refreshed", quantum=ds.quantum, dataset=ds.name, version=report.version,
                            principal=principal.name, message=f"{ds.qualified_name} v{report.version} built from "
                            + ", ".join(f"{k} v{v}" if v else k for k, v in built_from.items()),
                            details={"built_from": built_from})
    state.pipeline.clear_cache()  # queries now read the mart's version instead of computing it
    from .tables import refresh as refresh_tables

    refresh_tables(platform)
    report.marts = after_publish(platform, ds)
    return report


def check_group_sizes(platform, ds: Dataset, principal) -> None:
    """k-anonymity of a mart's declassified columns: every group (row) of the mart aggregates at least the
    declared ``minGroupSize`` source rows (after joins), or ``DataError`` naming the column and the smallest
    group (its key columns shown unless classified above internal)."""
    from ..lineage import declassify
    from ..lineage.inheritance import rank

    edges = [e for e in platform.lineage.edges
             if (e.target_quantum.lower(), e.target_dataset.lower()) == (ds.quantum.lower(), ds.name.lower())]
    lowered = declassify.declassified_columns(ds, edges)
    if not lowered:
        return
    state = platform.state
    groups = state.pipeline.resolve_definition(declassify.group_size_sql(ds), SYSTEM_PRINCIPAL)
    rows = declassify.GROUP_ROWS
    smallest = platform.read(f'SELECT * FROM ({groups.sql(dialect=state.backend.dialect)}) AS _groups '
                             f'ORDER BY "{rows}" LIMIT 1', "mart-declassify-check", principal,
                             [f"{q}.{d}" for q, d in ds.reads]).to_pylist()
    if not smallest:
        return  # no group at all: nothing is published that could single anyone out
    group = smallest[0]
    size = group[rows]
    failing = sorted((k, c) for c, k in lowered.items() if size < k)
    if not failing:
        return
    keys = []
    for col in ds.columns:
        mine = [e for e in edges if e.target_column.lower() == col.name.lower()]
        if not mine or col.name in lowered or any(e.transformation != "identity" for e in mine):
            continue
        value = group.get(col.name)
        shown = repr(value) if rank(col.classification) <= 1 and "pii" not in {t.lower() for t in col.tags} \
            else f"<{col.classification or 'classified'}>"
        keys.append(f"{col.name}={shown}")
    where = f"the group {', '.join(keys)}" if keys else "one group"
    columns = "; ".join(f"column {c} is declassified with minGroupSize {k}" for k, c in failing)
    raise errors.DataError(f"refresh of {ds.qualified_name} refused: {columns}, but {where} aggregates only "
                           f"{size} source row{'s' if size != 1 else ''}; nothing was published (raise the "
                           f"grouping level, or remove the declassification)")


def after_publish(platform, published: Dataset) -> list:
    """Refresh the marts that read ``published`` and ask for it (``refresh: on_source_publish``)."""
    from ..catalog.model import custom_property

    key = (published.quantum.lower(), published.name.lower())
    reports = []
    for ds in platform.mesh.derived_sources_first():
        if ds.materialized and key in ds.reads and custom_property(
                ds.raw.get("customProperties"), "refresh") == "on_source_publish":
            reports.append(refresh(platform, ds.qualified_name, SYSTEM))
    return reports
