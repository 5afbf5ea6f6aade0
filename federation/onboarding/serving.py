"""Serving published versions when a mesh loads, and the pinned-version views.

Where versions live: ``<mesh>/<settings.warehouse or "warehouse">/<quantum>/<dataset>/v<N>/*.parquet``.
A dataset with a published version is served from its newest published version (its contract's own
server is only where data came from before its first onboarding). A dataset whose contract server
path lies inside the warehouse and has no version yet is served as an empty view of its contract's
columns. Each kept version N is also registered as the view ``<quantum>."<dataset>@v<N>"``, which
queries name as ``quantum."dataset@vN"`` (pinned reads, through the same governance).
"""

from __future__ import annotations

import re
from pathlib import Path

from ..catalog.model import Dataset, Mesh, Source
from .store import Store, Version

PINNED = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)@v(?P<version>[0-9]+)$", re.IGNORECASE)
KEPT_STATUSES = ("published", "rolled_back")


def warehouse(mesh: Mesh) -> Path:
    w = Path(str(mesh.settings.get("warehouse") or "warehouse")).expanduser()
    return (w if w.is_absolute() else mesh.path / w).resolve()


def version_dir(mesh: Mesh, quantum: str, dataset: str, version: int) -> Path:
    return warehouse(mesh) / quantum.lower() / dataset.lower() / f"v{version}"


def version_source(mesh: Mesh, ds: Dataset, v: Version) -> Source:
    glob = str(version_dir(mesh, ds.quantum, ds.name, v.version) / "*.parquet")
    server = ds.source.server if ds.source else None
    return Source("parquet", glob, server=server, yaml_path=ds.source.yaml_path if ds.source else ds.yaml_path)


def in_warehouse(mesh: Mesh, ds: Dataset) -> bool:
    if ds.source is None or ds.source.kind == "duckdb":
        return False
    try:
        Path(ds.source.location).resolve().relative_to(warehouse(mesh))
        return True
    except ValueError:
        return False


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
    for ds in mesh.datasets():
        if ds.source is None and not ds.materialized:
            continue
        key = (ds.quantum.lower(), ds.name.lower())
        if key in current:
            out[key] = version_source(mesh, ds, current[key])
        elif in_warehouse(mesh, ds):
            out[key] = None
    return out


def kept_versions(state_dir: Path) -> list[Version]:
    if not Store.exists(state_dir):
        return []
    store = Store.open(state_dir)
    try:
        return [v for v in store.versions() if v.status in KEPT_STATUSES]
    finally:
        store.close()


def pinned_name(dataset: str, version: int) -> str:
    return f"{dataset.lower()}@v{version}"


def register_pinned(mesh: Mesh, backend, versions: list[Version]) -> dict[tuple[str, str, int], tuple]:
    """Create the view of each kept version; returns (quantum, dataset, N) -> backend relation."""
    from ..engine.registry import register_version_view

    out = {}
    for v in versions:
        ds = mesh.dataset(v.quantum, v.dataset)
        if ds is None or ds.source is None:
            continue
        if not version_dir(mesh, v.quantum, v.dataset, v.version).exists():
            continue
        if register_version_view(mesh, backend, ds, version_source(mesh, ds, v), pinned_name(ds.name, v.version)):
            out[(v.quantum, v.dataset, v.version)] = backend.relation(ds.quantum, pinned_name(ds.name, v.version))
    return out


def allow_warehouse(mesh: Mesh, backend) -> None:
    """Let the locked-down engine read the warehouse (created later by the first onboarding)."""
    allowed = getattr(backend, "_allowed", None)  # DuckDB's allowed_directories, set at lock-down
    if allowed is not None:
        allowed.add(str(warehouse(mesh)))  # a folder that may not exist yet (allow_path would climb up)
