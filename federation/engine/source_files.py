"""Which files a quantum's local sources may read: its own, never another quantum's, never the mesh's state.

A contract's local server names any path, and whoever writes the contract (a domain team) chooses it. The
data of quantum ``crm`` lives in ``<data>/crm/`` and its published versions in ``<warehouse>/crm/``: its
*folders*. A source of another quantum that reads inside them (a file, a DuckDB/SQLite database, a
Delta/Iceberg table folder, a glob that can reach them now or later, a Delta log or Iceberg manifest naming
their files) would serve crm's rows under its own
contract, that is without crm's classifications and policies: it is refused. So is a source reading the mesh's
state folder (``.quanta``: tokens, access requests, audit) or its secrets file. Paths are compared resolved
(symbolic links followed, ``..`` removed), a glob's files as it expands now and its pattern for the files to
come. Files outside every quantum's folder (a shared data root) stay readable, but two quanta reading the same
such file are both refused: which one owns it cannot be proved.
"""

from __future__ import annotations

import glob as globbing
import json
import os
from collections.abc import Callable
from fnmatch import fnmatchcase
from pathlib import Path
from urllib.parse import unquote, urlparse

from ..catalog.model import Dataset, Mesh, Source
from ..errors import Problem

LOCAL_KINDS = {"parquet", "csv", "json", "duckdb", "sqlite", "delta", "iceberg"}
WILDCARDS = "*?["


_folders: dict[str, str] = {}  # folder -> resolved, for one check (most sources share a few folders)


def _real(path: str | Path) -> str:
    """``path`` resolved (symbolic links followed, ``..`` removed); its folder resolved once per check."""
    path = os.path.expanduser(str(path))
    if not os.path.isabs(path):
        path = os.path.join(os.getcwd(), path)
    folder, name = os.path.split(path)  # not normalised first: 'link/..' is the folder above the link's target
    if not name or name in (".", ".."):
        return os.path.realpath(path)
    real_folder = _folders.get(folder)
    if real_folder is None:
        real_folder = _folders[folder] = os.path.realpath(folder)
    joined = os.path.join(real_folder, name)
    return os.path.realpath(joined) if os.path.islink(joined) else joined


def _inside(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _static_prefix(pattern: str) -> tuple[str, list[str]]:
    """A glob's folder without wildcards (resolved) and the pattern's remaining segments."""
    parts = Path(pattern).parts
    i = next((k for k, part in enumerate(parts) if any(ch in part for ch in WILDCARDS)), len(parts))
    return _real(Path(*parts[:i]) if i else Path(os.sep)), list(parts[i:])


def _reaches(prefix: str, rest: list[str], folder: str) -> bool:
    """Whether a glob (``prefix`` + segments ``rest``) can match a path inside ``folder``."""
    if _inside(prefix, folder):
        return True
    if not _inside(folder, prefix):
        return False
    below = Path(folder).relative_to(prefix).parts
    for j, name in enumerate(below):
        if j >= len(rest):
            return False
        if "**" in rest[j]:
            return True
        if not fnmatchcase(name, rest[j]):
            return False
    return len(rest) >= len(below)


def _local(uri: str, folder: str) -> str | None:
    """A file named in a table's metadata (a relative path, URL-encoded, or a file:// URI), resolved."""
    if "://" in uri:
        parsed = urlparse(uri)
        return _real(unquote(parsed.path)) if parsed.scheme == "file" else None
    return _real(os.path.join(folder, unquote(uri)))


def delta_files(folder: str) -> list[str]:
    """The data and deletion-vector files a Delta table's log adds (a log may name files anywhere: ``../``
    paths, absolute URIs), from its JSON commits and Parquet checkpoints."""
    log = os.path.join(folder, "_delta_log")
    actions: list[dict] = []
    for name in sorted(os.listdir(log)) if os.path.isdir(log) else []:
        path = os.path.join(log, name)
        if name.endswith(".json"):
            with open(path, encoding="utf-8") as f:
                actions += [json.loads(line).get("add") or {} for line in f if line.strip()]
        elif name.endswith(".parquet") and ".checkpoint" in name:
            import pyarrow.parquet as pq

            table = pq.read_table(path, columns=["add"])
            actions += [a or {} for a in table.column("add").to_pylist()]
    out = []
    for add in actions:
        for uri in (add.get("path"), ((add.get("deletionVector") or {}).get("pathOrInlineDv")
                                      if (add.get("deletionVector") or {}).get("storageType") == "p" else None)):
            if uri:
                local = _local(str(uri), folder)
                out.append(local if local is not None else str(uri))
    return out


def _files(src: Source, table_files: Callable[[Source], list[str]] | None = None
           ) -> tuple[list[str], tuple[str, list[str]] | None]:
    """The resolved files a source reads now (a table's data files too), and its glob (prefix, segments)."""
    location = src.location
    if any(ch in location for ch in WILDCARDS):
        found = [_real(p) for p in globbing.glob(location, recursive=True)]
        return found, _static_prefix(location)
    files = [_real(location)]
    if src.kind == "delta":
        files += delta_files(files[0])
    elif src.kind == "iceberg" and table_files is not None:
        files += [f for f in (_local(u, files[0]) for u in table_files(src)) if f is not None]
    return files, None


def _owner(path: str, roots: list[str], quanta: dict[str, str]) -> str | None:
    """The quantum whose folder holds ``path`` (``quanta``: folder name -> quantum), if any."""
    for root in roots:
        if path.startswith(root.rstrip(os.sep) + os.sep):
            first = path[len(root.rstrip(os.sep)) + 1:].split(os.sep, 1)[0].lower()
            if first in quanta:
                return quanta[first]
    return None


def check(mesh: Mesh, state_dir: Path | None = None, warehouse: Path | None = None,
          table_files: Callable[[Source], list[str]] | None = None) -> list[Problem]:
    """A problem for each local source reading another quantum's folder, the state folder or the secrets
    file, or a file another quantum reads too (outside every quantum's folder). ``table_files``: the data
    files an Iceberg table's metadata names (read by the engine)."""
    _folders.clear()
    data = _real(mesh.data_dir)
    roots = [data] + ([_real(warehouse)] if warehouse else [])
    names = {key.lower(): key for key in mesh.quanta}  # a quantum's folder name -> the quantum
    forbidden = [_real(state_dir or Path(mesh.path) / ".quanta")]
    if isinstance(mesh.raw.get("secrets"), str):
        forbidden.append(_real(Path(mesh.path) / mesh.raw["secrets"]))
    problems: list[Problem] = []
    readers: dict[str, set[str]] = {}  # a file outside every quantum's folder -> the quanta reading it
    first: dict[tuple[str, str], Dataset] = {}
    refused: set[str] = set()
    for key, q in mesh.quanta.items():
        for ds in q.datasets.values():
            src = ds.source
            if src is None or src.kind not in LOCAL_KINDS or key in refused:
                continue
            try:
                files, pattern = _files(src, table_files)
            except (OSError, ValueError) as e:  # an unreadable table log: refused, nothing proved
                refused.add(key)
                problems.append(Problem(ds.file, src.yaml_path, f"cannot read the table log of "
                                        f"{ds.qualified_name} at {src.location}: {e}", None, q.name))
                continue
            why = None
            if any(_inside(f, x) for f in files + ([pattern[0]] if pattern else []) for x in forbidden):
                why = "the mesh's state folder or secrets file"
            else:
                owners = {_owner(f, roots, names) for f in files + ([pattern[0]] if pattern else [])}
                if pattern and ".." in pattern[1]:  # 'x/*/../..': it can climb anywhere
                    owners |= set(names.values())
                elif pattern and any(_inside(root, pattern[0]) for root in roots):  # a glob above the folders
                    owners |= {o for o in names.values() for root in roots
                               if _reaches(*pattern, os.path.join(root, o.lower()))}
                other = sorted(o for o in owners if o is not None and o != key)
                if other:
                    why = f"the folder of quantum {other[0]!r}"
            if why is not None:
                refused.add(key)
                own = ", ".join(os.path.join(root, key.lower()) for root in roots)
                problems.append(Problem(ds.file, src.yaml_path, f"{ds.qualified_name} reads {src.location}, in "
                                        f"{why}: a quantum's sources read its own data only (its folders {own}), "
                                        "so that another domain's data is served under that domain's contract "
                                        "and policies", None, q.name))
                continue
            for f in files:
                if _owner(f, roots, names) is None:
                    readers.setdefault(f, set()).add(key)
                    first.setdefault((f, key), ds)
    for f, quanta in readers.items():
        if len(quanta) > 1:
            for name in sorted(quanta - refused):
                ds = first[(f, name)]
                refused.add(name)
                problems.append(Problem(ds.file, ds.source.yaml_path, f"{ds.qualified_name} reads {f}, which "
                                        f"quanta {', '.join(sorted(quanta))} all read: a file is served by one "
                                        f"quantum (under its contract and policies); move it into the folder of "
                                        f"the quantum that owns it ({os.path.join(data, name.lower())})", None,
                                        mesh.quanta[name].name))
    return problems
