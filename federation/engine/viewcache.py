"""What an earlier load learnt about a mesh's file views, so that the next loads need not bind them.

Creating a DuckDB view binds its query, which reads the file's schema: 0.3 ms a view, a third of a
second for 1000 datasets, at every load of every process; and the view is checked against the contract
from what the binding found. When a load has created and checked every file view without a problem, the
views' SQL is kept in ``<state folder>/cache/views-<key>.pickle``. A later load with the same key takes
the views as checked and hands their SQL to the backend (``DuckDBBackend.defer_views``), which creates
each one the first time a query (or a derived dataset, a quality rule...) names it.

The key covers everything the views and the checks depend on: each view's quantum, name, columns (names
in the contract and in the data, types) and relation (kind, location: the contract's server or the
published version), the (path, size, mtime, inode) of every data file the relations read (globs
expanded), DuckDB's version and this code. A data file written in the last seconds is not trusted to keep
its mtime (a rewrite within the file system's time granularity would go unseen): nothing is kept then.
"""

from __future__ import annotations

import glob
import hashlib
import os
import pickle
import time
from pathlib import Path

import duckdb

from ..catalog.loader import cache_file
from ..catalog.model import Dataset, Mesh

FORMAT = 1
RECENT_SECONDS = 2.0  # a data file modified more recently than this is not trusted to keep its mtime
KEEP = 4  # view caches kept per mesh (several processes may load different states of one mesh)


def _code_stamp() -> str:
    parts = [f"{FORMAT} {duckdb.__version__}"]
    here = Path(__file__).resolve().parent
    for name in ("viewcache.py", "registry.py", "duckdb_backend.py"):
        try:
            st = (here / name).stat()
            parts.append(f"{name} {st.st_size} {st.st_mtime_ns}")
        except OSError:
            parts.append(name)
    return "\n".join(parts)


def key(datasets: list[Dataset], relations: dict) -> tuple[str, bool]:
    """The key of these datasets' views, and whether it may be kept (no data file was modified in the last
    ``RECENT_SECONDS``)."""
    h = hashlib.sha256(_code_stamp().encode())
    stable = True
    now = time.time_ns()
    seen: dict[str, str] = {}
    for ds in datasets:
        location = ds.source.location
        h.update(f"\0{ds.quantum.lower()}.{ds.name.lower()}\0{relations[id(ds)]}\0".encode())
        for c in ds.columns:
            h.update(f"{c.name}\1{c.source_name}\1{c.data_type}\2".encode())
        files = seen.get(location)
        if files is None:
            paths = sorted(glob.glob(location)) if any(ch in location for ch in "*?[") else [location]
            items = []
            for p in paths:
                try:
                    st = os.stat(p)
                except OSError:
                    items.append(f"{p} -")
                    stable = False
                    continue
                items.append(f"{p} {st.st_size} {st.st_mtime_ns} {st.st_ino}")
                if now - st.st_mtime_ns < RECENT_SECONDS * 1e9:
                    stable = False
            files = seen[location] = "\n".join(items)
        h.update(files.encode())
    return h.hexdigest()[:32], stable


def _file(mesh: Mesh, digest: str) -> Path:
    return cache_file(mesh.path).parent / f"views-{digest}.pickle"


def load(mesh: Mesh, digest: str, datasets: list[Dataset]) -> dict[tuple[str, str], str] | None:
    """(quantum, dataset) -> the CREATE VIEW statement of each of ``datasets``, as a load with this key
    created and checked them; None when no load kept them."""
    try:
        with open(_file(mesh, digest), "rb") as f:
            views = pickle.load(f)  # noqa: S301 - written by this code in the mesh's own state folder
    except Exception:  # noqa: BLE001 - none, an old format, a torn file: create the views
        return None
    wanted = {(ds.quantum.lower(), ds.name.lower()) for ds in datasets}
    if not isinstance(views, dict) or set(views) != wanted:
        return None
    return views


def save(backend_db: duckdb.DuckDBPyConnection, mesh: Mesh, digest: str, datasets: list[Dataset]) -> None:
    """Keep the CREATE VIEW statements of ``datasets`` as created in ``backend_db`` (a state folder that
    cannot be written: nothing kept)."""
    wanted = {(ds.quantum.lower(), ds.name.lower()) for ds in datasets}
    path = _file(mesh, digest)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        rows = backend_db.execute("SELECT schema_name, view_name, sql FROM duckdb_views() "
                                  "WHERE database_name = current_database() AND NOT internal").fetchall()
        views = {(schema, view): sql for schema, view, sql in rows if (schema, view) in wanted}
        if set(views) != wanted:
            return
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            pickle.dump(views, f, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, path)
        _prune(path)
    except Exception:  # noqa: BLE001 - a cache only: without it, the next load creates the views
        try:
            tmp.unlink()
        except OSError:
            pass


def _prune(current: Path) -> None:
    try:
        others = sorted((p for p in current.parent.glob("views-*.pickle") if p != current),
                        key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in others[KEEP - 1:]:
            old.unlink()
    except OSError:
        pass
