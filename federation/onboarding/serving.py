"""Serving published versions when a mesh loads, and the pinned-version views.

Where versions live: ``<mesh>/<settings.warehouse or "warehouse">/<quantum>/<dataset>/v<N>/*.parquet``.
A dataset with a published version is served from its newest published version (its contract's own
server is only where data came from before its first onboarding). A dataset whose contract server
path lies inside the warehouse and has no version yet is served as an empty view of its contract's
columns. Each kept version N is also registered as the view ``<quantum>."<dataset>@v<N>"``, which
queries name as ``quantum."dataset@vN"``: pinned reads, with the columns, names and types of the contract
the version was published under (an earlier major stays readable as it was), governed by the stricter
of that contract's classification and today's.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from ..catalog.model import Dataset, Mesh, Source
from .store import Store, Version

PINNED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)@v(?P<version>[0-9]+)$", re.IGNORECASE)
KEPT_STATUSES = ("published", "rolled_back")


def warehouse(mesh: Mesh) -> Path:
    w = Path(mesh.settings["warehouse"]).expanduser()
    return (w if w.is_absolute() else mesh.path / w).resolve()


def version_dir(mesh: Mesh, quantum: str, dataset: str, version: int) -> Path:
    return warehouse(mesh) / quantum.lower() / dataset.lower() / f"v{version}"


def version_source(mesh: Mesh, ds: Dataset, v: Version) -> Source:
    glob = str(version_dir(mesh, ds.quantum, ds.name, v.version) / "*.parquet")
    server = ds.source.server if ds.source else None
    return Source("parquet", glob, server=server, yaml_path=ds.source.yaml_path if ds.source else ds.yaml_path)


def in_warehouse(mesh: Mesh, ds: Dataset, folder: Path | None = None) -> bool:
    """Whether ``ds``'s source lies in the warehouse (``folder``: ``warehouse(mesh)``, when already known).
    The mesh's paths are absolute and resolved when it loads: a string prefix of the normalised path says it
    without a system call per dataset."""
    if ds.source is None or ds.source.kind == "duckdb":
        return False
    root = str(folder or warehouse(mesh))
    location = os.path.normpath(os.path.join(str(mesh.path), ds.source.location))
    return location == root or location.startswith(root.rstrip(os.sep) + os.sep)


def served_sources(mesh: Mesh, state_dir: Path) -> dict[tuple[str, str], Source | None]:
    """(quantum, dataset) -> the Source of its current version, or None (warehouse dataset, no version yet)."""
    out: dict[tuple[str, str], Source | None] = {}
    current: dict[tuple[str, str], Version] = {}
    if Store.exists(state_dir):
        store = Store.open(state_dir)
        try:
            current = store.served()
        finally:
            store.close()
    folder = warehouse(mesh)
    for ds in mesh.datasets():
        if ds.source is None and not ds.materialized:
            continue
        key = (ds.quantum.lower(), ds.name.lower())
        if key in current:
            out[key] = version_source(mesh, ds, current[key])
        elif in_warehouse(mesh, ds, folder):
            out[key] = None
    return out


def pinned_name(dataset: str, version: int) -> str:
    return f"{dataset.lower()}@v{version}"


def snapshot_dataset(ds: Dataset, snapshot: dict | None) -> Dataset:
    """``ds`` as the contract snapshot of a version describes it: that version's columns, names, types,
    classification and tags (``ds`` itself when there is no snapshot)."""
    import dataclasses

    from ..catalog.loader import _FileReport, _parse_path, _read_columns

    obj = next((o for o in (snapshot or {}).get("schema") or [] if isinstance(o, dict)), None)
    if obj is None:
        return ds
    pinned = dataclasses.replace(ds, columns=[], raw=obj, quality=tuple(obj.get("quality") or ()))
    _read_columns(pinned, obj, _parse_path(ds.yaml_path), _FileReport([], ds.file, None, ds.quantum))
    return pinned if pinned.columns else ds


def register_pinned(mesh: Mesh, backend, state_dir: Path) -> tuple[dict[tuple[str, str, int], tuple],
                                                                  dict[tuple[str, str, int], Dataset]]:
    """Create the view of each kept version through the contract it was published under; returns
    (quantum, dataset, N) -> backend relation, and -> that version's dataset (``snapshot_dataset``)."""
    from ..engine.registry import register_version_view

    from .quarantine_relation import register  # quantum."dataset@quarantine": the held quarantined rows, read alike

    relations, datasets = {}, {}
    if not Store.exists(state_dir):
        register(mesh, backend, state_dir, relations, datasets, snapshot_dataset)  # empty quarantines
        return relations, datasets
    store = Store.open(state_dir)
    try:
        kept = [(v, store.contract_snapshot(v.quantum, v.dataset, v.version)) for v in store.versions()
                if v.status in KEPT_STATUSES]
    finally:
        store.close()
    for v, snapshot in kept:
        ds = mesh.dataset(v.quantum, v.dataset)
        if ds is None or ds.source is None:
            continue
        if not version_dir(mesh, v.quantum, v.dataset, v.version).exists():
            continue
        pinned = snapshot_dataset(ds, snapshot)
        if register_version_view(mesh, backend, pinned, version_source(mesh, ds, v), pinned_name(ds.name, v.version)):
            key = (v.quantum, v.dataset, v.version)
            relations[key] = backend.relation(ds.quantum, pinned_name(ds.name, v.version))
            datasets[key] = pinned
    register(mesh, backend, state_dir, relations, datasets, snapshot_dataset)
    return relations, datasets


def allow_warehouse(mesh: Mesh, backend) -> None:
    """Let the locked-down engine read the warehouse (created later by the first onboarding)."""
    allowed = getattr(backend, "_allowed", None)  # DuckDB's allowed_directories, set at lock-down
    if allowed is not None:
        allowed.add(str(warehouse(mesh)))  # a folder that may not exist yet (allow_path would climb up)
