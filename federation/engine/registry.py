"""Register a mesh's source datasets as DuckDB views, checking the data against the contracts.

For each source dataset: read the data's column names and types (Parquet footers, CSV/JSON sniffing,
a DuckDB table's catalog), check that every declared column exists with a compatible type, and create
the view with the contract's names, order and types. A dataset whose data is missing or does not
match its contract is a problem (file, YAML path, what is wrong); its quantum is left out and the
others go on.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import duckdb

from ..catalog import types as ctypes
from ..catalog.loader import exclude
from ..catalog.model import Dataset, Mesh
from ..errors import Problem, Unavailable
from .duckdb_backend import DuckDBBackend, quote

TEXT_FORMATS = {"csv", "json"}


def register_sources(mesh: Mesh, backend: DuckDBBackend, served: dict | None = None) -> None:
    """``served``: (quantum, dataset) -> the Source of its current published version (onboarding), or
    None for a dataset of the warehouse without a version yet (an empty view of its contract)."""
    declared = [c.data_type for ds in mesh.datasets() for c in ds.columns]
    try:
        normalized = backend.normalize_types(declared)
    except duckdb.Error:
        normalized = {}
        for t in set(declared):  # find the one that DuckDB rejects
            try:
                normalized.update(backend.normalize_types([t]))
            except duckdb.Error:
                normalized[t] = t
    for ds in mesh.datasets():
        for c in ds.columns:
            c.data_type = normalized.get(c.data_type, c.data_type)

    # read every source's columns first, several at a time (Parquet footers, CSV sniffing: I/O and
    # DuckDB work that releases the GIL), then create the views one by one
    served = served or {}
    empty: set[int] = set()
    for ds in mesh.datasets():
        key = (ds.quantum.lower(), ds.name.lower())
        if key in served:
            if served[key] is None:
                empty.add(id(ds))
            else:
                ds.source = served[key]
    sources = [ds for q in mesh.quanta.values() for ds in q.datasets.values()
               if ds.source is not None and id(ds) not in empty]
    relations: dict[int, str | BaseException] = {}
    for ds in sources:  # attaching DuckDB files changes the catalog: keep it serial
        try:
            relations[id(ds)] = backend.source_sql(ds.source.kind, ds.source.location, ds.source.schema,
                                                   ds.source.table, ds.source.server)
        except Exception as e:  # noqa: BLE001 - reported as a problem of the dataset
            relations[id(ds)] = e

    def read(ds: Dataset):
        rel = relations[id(ds)]
        if isinstance(rel, BaseException):
            return rel
        try:
            return backend.source_columns(rel, cursor=True)
        except Exception as e:  # noqa: BLE001
            return e

    with ThreadPoolExecutor(max_workers=4) as pool:
        found = dict(zip((id(ds) for ds in sources), pool.map(read, sources)))

    for q in list(mesh.quanta.values()):
        backend.create_schema(q.name)
        for ds in q.datasets.values():
            if ds.source is None:
                continue
            if id(ds) in empty:
                backend.create_view(ds.quantum, ds.name, "SELECT " + ", ".join(
                    f"CAST(NULL AS {c.data_type}) AS {quote(c.name)}" for c in ds.columns) + " WHERE false")
                continue
            problem = _register(mesh, backend, ds, relations[id(ds)], found[id(ds)])
            if problem is not None:
                exclude(mesh, q.name, problem)
                break


def _register(mesh: Mesh, backend: DuckDBBackend, ds: Dataset, relation, found) -> Problem | None:
    src = ds.source
    assert src is not None

    def problem(path: str, message: str) -> Problem:
        return Problem(ds.file, path, message, None, ds.quantum)

    for outcome in (relation, found):
        if isinstance(outcome, duckdb.Error):
            first = str(outcome).split("\n")[0]
            where = src.location if src.kind != "duckdb" else f"{src.location} table {src.schema}.{src.table}"
            return problem(src.yaml_path, f"cannot read the data of {ds.qualified_name} at {where}: {first}")
        if isinstance(outcome, Unavailable):  # an unreachable or hung server: an operational state, not a
            # broken contract; the platform's watcher reloads now and then while a problem says ``retry``
            again = "; retrying in the background" if src.kind == "postgres" else ""
            return Problem(ds.file, src.yaml_path, f"{ds.qualified_name} is unavailable: {outcome}{again}", None,
                           ds.quantum, "warning", retry=src.kind == "postgres")
        if isinstance(outcome, BaseException):
            return problem(src.yaml_path, f"cannot read the data of {ds.qualified_name}: {outcome}")
    if src.kind != "duckdb":
        backend.allow_path(src.location)

    select = []
    for c in ds.columns:
        key = c.source_name.lower()
        if key not in found.columns:
            named = f"column {c.name!r}" + (f" (physicalName {c.physical_name!r})" if c.physical_name else "")
            have = ", ".join(found.names.values())
            return problem(c.yaml_path, f"{named} of {ds.qualified_name} is not in the data at {src.location}; "
                           f"the data has: {have}")
        data_type = found.columns[key]
        if not ctypes.compatible(data_type, c.data_type, text_format=src.kind in TEXT_FORMATS):
            return problem(c.yaml_path, f"column {c.name!r} of {ds.qualified_name} is declared {c.data_type} but "
                           f"the data at {src.location} holds {data_type}")
        expr = quote(found.names[key])
        if data_type != c.data_type:
            expr = f"CAST({expr} AS {c.data_type})"
        select.append(f"{expr} AS {quote(c.name)}")
    try:
        backend.create_view(ds.quantum, ds.name, f"SELECT {', '.join(select)} FROM {relation}")
    except duckdb.Error as e:
        return problem(src.yaml_path, f"cannot create the view of {ds.qualified_name}: {str(e).splitlines()[0]}")
    return None


def register_version_view(mesh: Mesh, backend: DuckDBBackend, ds: Dataset, source, view: str | None = None) -> bool:
    """(Re)create the view of ``ds`` (or the view named ``view`` in its quantum) over a published version's
    files, with the contract's names and types; also on a locked backend (the warehouse is allowed)."""
    import dataclasses

    relation = backend.source_sql(source.kind, source.location)
    try:
        found = backend.source_columns(relation, cursor=True)
    except duckdb.Error:
        return False
    if view is None:
        target = dataclasses.replace(ds, source=source)
        return _register(mesh, backend, target, relation, found) is None
    # a pinned version is read through ``ds`` as its contract snapshot describes it: a column the version's
    # files lack reads as NULL
    select = []
    for c in ds.columns:
        key = c.source_name.lower() if c.source_name.lower() in found.columns else c.name.lower()
        if key not in found.columns:
            select.append(f"CAST(NULL AS {c.data_type}) AS {quote(c.name)}")
        else:
            select.append(f"TRY_CAST({quote(found.names[key])} AS {c.data_type}) AS {quote(c.name)}")
    try:
        backend.create_view(ds.quantum, view, f"SELECT {', '.join(select)} FROM {relation}")
    except duckdb.Error:
        return False
    return True
