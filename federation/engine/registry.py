"""Register a mesh's source datasets as DuckDB views, checking the data against the contracts.

For each source dataset: read the data's column names and types (Parquet footers, CSV/JSON sniffing,
a DuckDB table's catalog), check that every declared column exists with a compatible type, and create
the view with the contract's names, order and types. A dataset whose data is missing or does not
match its contract is a problem (file, YAML path, what is wrong); its quantum is left out and the
others go on.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb

from .. import errors
from ..catalog import types as ctypes
from ..catalog.loader import exclude
from ..catalog.model import Dataset, Mesh
from ..errors import Problem, Unavailable
from . import secrets, source_files, viewcache
from .duckdb_backend import DuckDBBackend, SourceColumns, literal, quote

TEXT_FORMATS = {"csv", "json"}
DIRECT_KINDS = {"parquet", "csv", "json"}  # file sources whose views are created without a DESCRIBE first


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
    # a quantum's local sources read its own folders only (source_files.py): another domain's files would be
    # served under the reading contract's policies
    for problem in source_files.check(mesh, _state_dir(mesh), _warehouse(mesh), lambda src: _iceberg_files(backend, src)):
        exclude(mesh, problem.quantum or "", problem)
    sources = [ds for q in mesh.quanta.values() for ds in q.datasets.values()
               if ds.source is not None and id(ds) not in empty]
    relations: dict[int, str | BaseException] = {}
    servers = secrets.server_refs(mesh)  # a server's credentials are those of the quantum naming it (secrets.py)
    for ds in sources:  # attaching DuckDB files changes the catalog: keep it serial
        try:
            server = servers.get((ds.quantum, ds.source.server or ""), ds.source.server)
            relations[id(ds)] = backend.source_sql(ds.source.kind, ds.source.location, ds.source.schema,
                                                   ds.source.table, server)
        except Exception as e:  # noqa: BLE001 - reported as a problem of the dataset
            relations[id(ds)] = e
        else:
            if ds.source.kind == "duckdb" and _is_view(backend, relations[id(ds)]):
                relations[id(ds)] = errors.ProgrammingError(
                    f"{ds.source.table!r} of {ds.source.location} is a view: a view of a DuckDB file can read any "
                    "file (another quantum's data included), so Quanta serves the tables of a DuckDB file only")

    for q in mesh.quanta.values():
        backend.create_schema(q.name)
    # files: the view is created at once from the contract (binding it reads the data's schema); its columns'
    # types are then those of the data, read for all views in one query. Only a view that cannot be created
    # (a missing column, unreadable data) is described to say why, as every other source is.
    direct = [ds for ds in sources if ds.source.kind in DIRECT_KINDS and isinstance(relations[id(ds)], str)]
    # views that an earlier load created and checked on the same contracts and data files (viewcache.py):
    # not bound now, created when first used
    digest, stable = viewcache.key(direct, relations) if direct else ("", False)
    known = viewcache.load(mesh, digest, direct) if direct else None
    if known is not None:
        backend.defer_views(known)
        bound = {id(ds): SourceColumns({c.source_name.lower(): c.data_type for c in ds.columns},
                                       {c.source_name.lower(): c.source_name for c in ds.columns}) for ds in direct}
    else:
        for ds in direct:
            if ds.source.kind in TEXT_FORMATS:
                relations[id(ds)] = _pinned(backend, ds.source.kind, ds.source.location, relations[id(ds)])
        bound = _create_direct_views(backend, direct, relations)
    sources = [ds for ds in sources if id(ds) not in bound]

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

    allowed: set[str] = set()  # folders of plain files already allowed (most datasets share a few)
    registered: set[int] = set()
    for q in list(mesh.quanta.values()):
        for ds in q.datasets.values():
            if ds.source is None:
                continue
            if id(ds) in empty:
                backend.create_view(ds.quantum, ds.name, "SELECT " + ", ".join(
                    f"CAST(NULL AS {c.data_type}) AS {quote(c.name)}" for c in ds.columns) + " WHERE false")
                continue
            if id(ds) in bound:
                problem = _register(mesh, backend, ds, relations[id(ds)], bound[id(ds)], created=True, allowed=allowed)
            else:
                problem = _register(mesh, backend, ds, relations[id(ds)], found[id(ds)], allowed=allowed)
            if problem is None:
                registered.add(id(ds))
            if problem is not None:
                exclude(mesh, q.name, problem)
                break
    if known is None and stable and all(id(ds) in registered for ds in direct):
        viewcache.save(backend.db, mesh, digest, direct)


def _iceberg_files(backend: DuckDBBackend, src) -> list[str]:
    """The manifests and data files an Iceberg table's metadata names (any path: they are checked)."""
    if not Path(src.location).exists():
        return []  # reported when the data is read
    try:
        backend.load_extension("avro")
        backend.load_extension("iceberg")
    except errors.Error:
        return []  # not installed: reported when the data is read
    moved = ", allow_moved_paths = true" if Path(src.location).is_dir() else ""
    try:
        rows = backend.db.execute(f"SELECT manifest_path, file_path FROM iceberg_metadata({literal(src.location)}{moved})")
    except duckdb.Error as e:
        raise ValueError(str(e).splitlines()[0]) from None
    return [path for row in rows.fetchall() for path in row if path]


def _is_view(backend: DuckDBBackend, relation: str) -> bool:
    """Whether ``alias.schema.table`` (an attached DuckDB file) names a view."""
    database, schema, name = (part.strip('"').replace('""', '"') for part in split_dotted(relation))
    return bool(backend.db.execute(
        "SELECT count(*) FROM duckdb_views() WHERE database_name = ? AND lower(schema_name) = lower(?) "
        "AND lower(view_name) = lower(?)", [database, schema, name]).fetchone()[0])


def split_dotted(relation: str) -> list[str]:
    """The dotted parts of ``alias."schema"."table"`` or ``'"A"."b.c"'`` (quoted identifiers may hold dots;
    quotes kept)."""
    parts, current, quoted = [], "", False
    for ch in relation:
        if ch == '"':
            quoted = not quoted
        if ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
    return parts + [current]


def _state_dir(mesh: Mesh) -> Path:
    """The mesh's state folder (platform.state_dir): ``$QUANTA_STATE_DIR`` or ``<mesh>/.quanta``."""
    env = os.environ.get("QUANTA_STATE_DIR")
    return Path(env) if env else Path(mesh.path) / ".quanta"


def _warehouse(mesh: Mesh) -> Path:
    """Where published versions live (onboarding/serving.warehouse)."""
    w = Path(mesh.settings["warehouse"]).expanduser()
    return w if w.is_absolute() else Path(mesh.path) / w


def _pinned(backend: DuckDBBackend, kind: str, location: str, relation: str) -> str:
    """A CSV or JSON file read with the columns and types (and, for CSV, the dialect) detected now, so
    that binding the view, and every query on it, does not detect them again (25 to 60 ms on a file of
    a few MB, for each query and each derived dataset reading it). Globs keep reading by name (their
    files may differ); a file that cannot be read keeps its relation, to be reported as before."""
    if any(ch in location for ch in "*?[{'\\") or not Path(location).is_file():
        return relation
    cur = backend.db.cursor()
    try:
        if kind == "csv":
            prompt = cur.execute(f"SELECT Prompt FROM sniff_csv({literal(location)}, header = true)").fetchone()[0]
            pinned = prompt.strip().removeprefix("FROM ").rstrip(";").strip()
            if not pinned.startswith("read_csv(") or "columns=" not in pinned:
                return relation
            return pinned
        found = cur.execute(f"DESCRIBE SELECT * FROM {relation}").fetchall()
        columns = ", ".join(f"{literal(name)}: {literal(data_type)}" for name, data_type, *_ in found)
        pinned = f"read_json({literal(location)}, format = 'auto', columns = {{{columns}}})"
        if cur.execute(f"DESCRIBE SELECT * FROM {pinned}").fetchall() != found:
            return relation
        return pinned
    except duckdb.Error:
        return relation
    finally:
        cur.close()


def _create_direct_views(backend: DuckDBBackend, datasets: list[Dataset], relations: dict) -> dict[int, SourceColumns]:
    """Create the view of each file dataset with the data's own types (``SELECT "x" AS x, ...``) and read
    back the columns' types: id(ds) -> the data's columns, for the views that could be created (a missing
    column or unreadable data fails the binding). All the views are created in one transaction by one
    statement (half the work of one transaction per view); if one fails, each is created on its own."""
    if not datasets:
        return {}
    statements = []
    for ds in datasets:
        select = ", ".join(f"{quote(c.source_name)} AS {quote(c.name)}" for c in ds.columns)
        statements.append(f"CREATE OR REPLACE VIEW {quote(ds.quantum.lower())}.{quote(ds.name.lower())} AS "
                          f"SELECT {select} FROM {relations[id(ds)]}")
    created: set[int] = set()
    cur = backend.db.cursor()
    try:
        try:
            cur.execute("BEGIN TRANSACTION; " + ";\n".join(statements) + ";\nCOMMIT")
            created = {id(ds) for ds in datasets}
        except duckdb.Error:
            try:
                cur.execute("ROLLBACK")
            except duckdb.Error:
                pass
            for ds, statement in zip(datasets, statements):
                try:
                    cur.execute(statement)
                except duckdb.Error:
                    continue  # described later, to say why
                created.add(id(ds))
    finally:
        cur.close()
    types: dict[tuple[str, str], dict[str, str]] = {}
    for schema, view, column, data_type in backend.db.execute(
            "SELECT schema_name, table_name, column_name, data_type FROM duckdb_columns() "
            "WHERE database_name = current_database() AND NOT internal ORDER BY schema_name, table_name, "
            "column_index").fetchall():
        types.setdefault((schema, view), {})[column.lower()] = data_type
    out: dict[int, SourceColumns] = {}
    for ds in datasets:
        found = types.get((ds.quantum.lower(), ds.name.lower()))
        if id(ds) in created and found is not None:
            # by the data's names: DuckDB's identifiers are case-insensitive, so the contract's spelling binds
            out[id(ds)] = SourceColumns({c.source_name.lower(): found[c.name.lower()] for c in ds.columns},
                                        {c.source_name.lower(): c.source_name for c in ds.columns})
    return out


def _register(mesh: Mesh, backend: DuckDBBackend, ds: Dataset, relation, found, created: bool = False,
              allowed: set[str] | None = None) -> Problem | None:
    """Check the data's columns (``found``) against the contract and create the view; ``created``: a view
    with the data's own types exists already (``_create_direct_views``), replaced only if a type differs."""
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
        folder = os.path.dirname(src.location)
        if allowed is None or any(ch in src.location for ch in "*?[{") or folder not in allowed:
            backend.allow_path(src.location)
            if allowed is not None and os.path.isfile(src.location):
                allowed.add(folder)  # another file of this folder allows the same folder

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
    if created and all(found.columns[c.source_name.lower()] == c.data_type for c in ds.columns):
        return None  # the view created with the data's types is the contract's
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
