"""Read a mesh folder: ``mesh.yaml``, ODPS products (``*.odps.yaml``) and ODCS contracts (``*.odcs.yaml``).

``load_mesh(path)`` validates every file against its JSON Schema, then applies the mesh's own rules
(unique ids and names, referenced contracts exist, SQL identifiers, derived datasets read only
declared inputs and form no cycle) and returns a ``Mesh``. Every problem names the file, the YAML path
and the line. A quantum with an error is left out (``mesh.excluded`` says why) and the others load;
only a missing or unreadable ``mesh.yaml`` stops the load (``CatalogError``).

Checking the data itself (declared columns exist with compatible types) needs the engine: see
``federation.engine.registry``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import os
import pickle
import re
import sys
from contextvars import ContextVar
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, Iterator

import jsonschema_rs
import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError

from .. import settings as msettings
from ..errors import CatalogError, Problem
from . import standards
from . import types as ctypes
from .model import Column, Contract, Dataset, Domain, Mesh, Port, Quantum, Source
from .model import custom_property as _custom
from .yamlio import Positions, YamlError, format_path, parse_yaml

IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# schema names that belong to the engine or to Quanta itself
RESERVED_SCHEMAS = {"system", "information_schema", "pg_catalog", "main", "temp", "memory", "quanta"}
SUPPORTED_FILE_FORMATS = {"parquet", "csv", "json", "ndjson", "jsonl", "sqlite", "delta", "iceberg"}
SUPPORTED_SERVERS = "local (parquet, csv, json, sqlite, delta, iceberg), duckdb, postgres"
CREDENTIAL_FIELDS = {"user", "username", "password", "passwd", "secret", "token", "connection_string", "dsn"}

MESH_SCHEMA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "domains": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name"],
                "properties": {"name": {"type": "string"}, "description": {"type": "string"}},
            },
        },
        "data": {"type": "string"},
        "secrets": {"type": "string", "description": "a YAML file of server credentials, outside the contracts"},
        "governance": {"type": "object"},
    },
}


@lru_cache(maxsize=None)
def _validator(kind: str):
    """The validator of a kind of file: ODCS and ODPS documents are checked against the schema of their own
    ``apiVersion`` (``standards.VersionedValidator``), mesh.yaml against ``MESH_SCHEMA``."""
    if kind in standards.SCHEMAS:
        return standards.VersionedValidator(kind)
    return jsonschema_rs.validator_for(MESH_SCHEMA)


def _text(value: Any) -> str | None:
    """ODPS/ODCS descriptions are either strings or {purpose, usage, limitations} objects."""
    if value is None:
        return None
    if isinstance(value, dict):
        for key in ("purpose", "usage", "limitations"):
            if value.get(key):
                return str(value[key]).strip()
        return None
    return str(value).strip()


def _tags(value: Any) -> tuple[str, ...]:
    return tuple(str(t) for t in value) if isinstance(value, list) else ()


def _synonyms(value: Any) -> tuple[str, ...]:
    """ODCS v3.2 / ODPS v1.1 synonyms (``[{synonym, locale, status...}]``), those not deprecated."""
    if not isinstance(value, list):
        return ()
    return tuple(str(s["synonym"]) for s in value if isinstance(s, dict) and s.get("synonym") is not None
                 and str(s.get("status") or "").lower() != "deprecated")


def _enum_values(value: Any) -> tuple[str, ...]:
    """ODCS v3.2 enum values (``[{value, label...}]``) as text."""
    if not isinstance(value, list):
        return ()
    return tuple(str(e["value"]) for e in value if isinstance(e, dict) and "value" in e)


class _FileReport:
    """Problems for one file, with YAML paths turned into lines."""

    def __init__(self, problems: list[Problem], file: str, positions: Positions | None, quantum: str | None = None):
        self.problems, self.file, self.positions, self.quantum = problems, file, positions, quantum
        self.errors = 0
        self.hidden: dict[str, str] = {}  # values of the file's ${VAR} variables -> their names

    def add(self, path: tuple | list, message: str, severity: str = "error") -> None:
        line = self.positions.line(path) if self.positions else None
        for value, name in self.hidden.items():  # a variable may hold a secret: a message shows its name
            message = message.replace(value, f"${{{name}}}")
        problem = Problem(self.file, format_path(path), message, line, self.quantum, severity)
        if problem in self.problems:
            return
        self.problems.append(problem)
        if severity == "error":
            self.errors += 1


def _schema_check(kind: str, data: Any, report: _FileReport) -> None:
    for err in _validator(kind).iter_errors(data):
        message = err.message
        if len(message) > 300:
            message = message[:297] + "..."
        report.add(list(err.instance_path), f"{kind.upper()} schema: {message}")


class _Reader:
    def __init__(self, root: Path, policy: standards.VariablePolicy | None = None):
        self.root = root
        self.policy = policy or standards.VariablePolicy()
        self.problems: list[Problem] = []
        self.digest = hashlib.sha256()
        self.variables: dict[str, str] = {}  # ${VAR} used -> a fingerprint of its value

    def resolve(self, kind: str, data: dict, raw: bytes | OSError | None, report: _FileReport) -> dict:
        """``data`` with its ``${VAR}`` variables resolved from the environment (ODCS v3.2.0, ODPS v1.1.0) as
        the mesh's policy allows; a refused variable, or an unset one without a default, is an error naming the
        variable (never a value)."""
        if not isinstance(raw, bytes) or b"${" not in raw or not standards.has_variables(kind, data):
            return data
        policy = dataclasses.replace(self.policy, places=standards.PLACES[kind])
        resolved, used, unset = standards.resolve_variables(data, policy=policy)
        for u in unset:
            if isinstance(u, standards.RefusedVariable):
                report.add(u.path, f"variable ${{{u.name}}} is refused: {u.reason}")
            else:
                report.add(u.path, f"variable ${{{u.name}}} is not set in the environment: set it, or give a "
                           f"default (${{{u.name}:-default}})")
        for name, value in sorted(used.items()):
            if value is not None and len(value) >= 3:
                report.hidden[value] = name
            self.variables[name] = standards.fingerprint(name, value)
            self.digest.update(f"${name} {self.variables[name]}\0".encode())
        return resolved

    def rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.root))
        except ValueError:
            return str(path)

    def read(self, path: Path, quantum: str | None = None, raw: bytes | OSError | None = None
             ) -> tuple[Any, _FileReport]:
        """``raw``: the file's bytes (or the error reading it) when already read."""
        report = _FileReport(self.problems, self.rel(path), None, quantum)
        if raw is None:
            raw = _read_bytes(path)
        if isinstance(raw, OSError):
            report.add([], f"cannot read file: {raw.strerror}")
            return None, report
        self.digest.update(self.rel(path).encode() + b"\0" + raw + b"\0")
        try:
            data, positions = parse_yaml(raw)
        except YamlError as e:
            self.problems.append(Problem(report.file, "", str(e), e.line, quantum))
            report.errors += 1
            return None, report
        report.positions = positions
        if not isinstance(data, dict):
            report.add([], "expected a YAML mapping at the top level")
            return None, report
        return data, report


# -- the files a load reads -------------------------------------------------------------------------
# A load records the bytes of every mesh file it read (``recording``), so that a platform can load again
# from those bytes (``from_files``) when the files on disk are broken by an edit: the last good files with
# the current state databases (a revoked grant applies even while a contract is being fixed).

_RECORD: ContextVar[dict[Path, bytes] | None] = ContextVar("quanta_mesh_read", default=None)
_OVERLAY: ContextVar[dict[Path, bytes] | None] = ContextVar("quanta_mesh_files", default=None)


@contextlib.contextmanager
def recording() -> Iterator[dict[Path, bytes]]:
    """Record the bytes of the mesh files read inside the block (path -> bytes)."""
    files: dict[Path, bytes] = {}
    token = _RECORD.set(files)
    try:
        yield files
    finally:
        _RECORD.reset(token)


@contextlib.contextmanager
def from_files(files: dict[Path, bytes]) -> Iterator[None]:
    """Inside the block, the mesh's files are ``files`` (as recorded by ``recording``), not the disk's."""
    token = _OVERLAY.set(files)
    try:
        yield
    finally:
        _OVERLAY.reset(token)


def read_mesh_file(path: Path) -> bytes | OSError:
    """The bytes of one mesh file (YAML), or the error reading it; recorded, or read from the overlay."""
    overlay = _OVERLAY.get()
    if overlay is not None:
        raw = overlay.get(Path(path))
        return raw if raw is not None else FileNotFoundError(2, "No such file or directory", str(path))
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        return e
    record = _RECORD.get()
    if record is not None:
        record[Path(path)] = raw
    return raw


_read_bytes = read_mesh_file


def _find_files(root: Path, data_dir: Path, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of the mesh folder whose names end with ``suffixes``, outside hidden folders and the data
    folder (which are not walked: a data folder may hold thousands of files)."""
    overlay = _OVERLAY.get()
    if overlay is not None:
        return sorted(p for p in overlay if p.name.endswith(suffixes) and root in p.parents
                      and data_dir not in p.parents)
    out = []
    skip = str(data_dir)
    for folder, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [d for d in dirs if not d.startswith(".") and os.path.join(folder, d) != skip]
        for name in files:
            if name.endswith(suffixes) and not name.startswith("."):
                p = Path(folder, name)
                if p.is_file():
                    out.append(p)
    return sorted(out)


# -- a cache of the loaded mesh ---------------------------------------------------------------------
# Reading and validating the YAML of a large mesh takes most of a load (0.5 s for 1000 datasets); the
# result depends only on the files' bytes (and this code), so it is kept, pickled, in the state folder
# and reused while the bytes of every file read are the same (compared by content, not by modification
# time: an edit within the file system's time granularity is still seen). A load reads every file
# anyway (a few ms); parsing is what is saved. A state folder that cannot be written only means no cache.

CACHE_FORMAT = 1


def cache_file(root: Path) -> Path:
    """Where the loaded mesh of ``root`` is cached: ``<state folder>/cache/mesh-<hash of root>.pickle``."""
    state = os.environ.get("QUANTA_STATE_DIR")
    folder = Path(state) if state else root / ".quanta"
    return folder / "cache" / f"mesh-{hashlib.sha256(str(root).encode()).hexdigest()[:12]}.pickle"


@lru_cache(maxsize=1)
def _code_stamp() -> bytes:
    """What else a loaded mesh depends on: this package's code and schemas, the Python and pickle versions."""
    here = Path(__file__).resolve().parent
    files = (sorted(here.glob("*.py")) + sorted((here / "schemas").glob("*.json"))
             + [here.parent / "errors.py", here.parent / "settings.py"])
    try:
        files.append(Path(str(resources.files("open_data_contract_standard").joinpath("schema.json"))))
    except (ModuleNotFoundError, TypeError):  # pragma: no cover
        pass
    files.append(Path(jsonschema_rs.__file__))
    parts = [f"{CACHE_FORMAT} {sys.version} {pickle.HIGHEST_PROTOCOL} {sqlglot.__version__} {os.path.expanduser('~')}"]
    for f in files:
        try:
            st = f.stat()
            parts.append(f"{f} {st.st_size} {st.st_mtime_ns}")
        except OSError:
            parts.append(f"{f} -")
    return "\n".join(parts).encode()


def _cache_key(root: Path, files: list[tuple[Path, bytes | OSError]]) -> str:
    h = hashlib.sha256(_code_stamp() + b"\0" + str(root).encode() + b"\0")
    for path, raw in files:
        h.update(str(path).encode() + b"\0")
        h.update(raw if isinstance(raw, bytes) else f"error {raw.errno} {raw.strerror}".encode())
        h.update(b"\0")
    return h.hexdigest()


def _cache_get(root: Path, key: str) -> Mesh | None:
    try:
        with open(cache_file(root), "rb") as f:
            if f.read(len(key)).decode("ascii", "replace") != key:
                return None
            mesh = pickle.load(f)  # noqa: S301 - written by this code in the mesh's own state folder
    except Exception:  # noqa: BLE001 - no cache, an old format, a torn file: load from the files
        return None
    if not isinstance(mesh, Mesh) or standards.environment_changed(getattr(mesh, "variables", {})):
        return None  # a ${VAR} the mesh used has another value now
    return mesh


def _cache_put(root: Path, key: str, mesh: Mesh) -> None:
    path = cache_file(root)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        data = pickle.dumps(mesh, protocol=pickle.HIGHEST_PROTOCOL)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key.encode("ascii") + data)
        os.replace(tmp, path)  # atomic: a concurrent reader sees the old file or the new one
    except Exception:  # noqa: BLE001 - a read-only or full state folder: no cache
        try:
            tmp.unlink()
        except OSError:
            pass


def load_mesh(path: str | Path) -> Mesh:
    """The mesh at ``path`` (a folder with ``mesh.yaml``, or that file), from the cache when its files'
    bytes did not change."""
    with _no_gc():  # a load allocates a million objects that all live on: collecting meanwhile finds nothing
        return _load_mesh(path)


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _load_mesh(path: str | Path) -> Mesh:
    root = Path(path).expanduser().resolve()
    if root.is_file() and root.name in ("mesh.yaml", "mesh.yml"):
        root = root.parent
    if not root.is_dir():
        raise CatalogError(f"mesh folder {root} does not exist")
    mesh_file = root / "mesh.yaml"
    if not mesh_file.exists():
        mesh_file = root / "mesh.yml"
    if not mesh_file.exists():
        raise CatalogError(f"{root} is not a mesh: it has no mesh.yaml")

    reader = _Reader(root)
    mesh_raw = _read_bytes(mesh_file)
    mesh_data, report = reader.read(mesh_file, raw=mesh_raw)
    if mesh_data is None:
        raise CatalogError(f"cannot load the mesh at {root}", reader.problems)
    _schema_check("mesh", mesh_data, report)
    settings, wrong = msettings.check(mesh_data.get("settings"))
    for key, message in wrong:
        report.add(["settings"] + ([key] if key is not None else []), message)
    from ..webhook_config import check_config as check_webhooks  # the webhooks block of mesh.yaml

    for where, message, severity in check_webhooks(mesh_data.get("webhooks"))[1]:
        report.add(["webhooks"] + where, message, severity)
    reader.policy = _variable_policy(root, mesh_data, settings, report)
    if report.errors:
        raise CatalogError(f"invalid {mesh_file.name}", reader.problems)

    data_dir = (root / mesh_data.get("data", "data")).resolve()
    contract_files = [(p, _read_bytes(p)) for p in _find_files(root, data_dir, (".odcs.yaml", ".odcs.yml"))]
    product_files = [(p, _read_bytes(p)) for p in _find_files(root, data_dir, (".odps.yaml", ".odps.yml"))]
    cache_key = _cache_key(root, [(mesh_file, mesh_raw), (Path("<contract_variables>"), reader.policy.stamp())]
                           + contract_files + product_files)
    cached = _cache_get(root, cache_key)
    if cached is not None:
        return cached

    domains: dict[str, Domain] = {}
    for i, d in enumerate(mesh_data.get("domains") or []):
        name = str(d["name"])
        if name.lower() in domains:
            report.add(["domains", i, "name"], f"domain {name!r} is declared twice")
        domains[name.lower()] = Domain(name, _text(d.get("description")))

    contracts, contract_reports = _read_contracts(reader, contract_files)
    quanta, product_reports = _read_products(reader, product_files, domains)
    excluded: dict[str, str] = {}

    # which quantum publishes each contract (through an output port)
    publisher: dict[str, str] = {}
    for q in quanta.values():
        rep = product_reports[q.name.lower()]
        for i, port in enumerate(q.ports):
            if port.direction != "output" or not port.contract_id:
                continue
            if port.contract_id not in contracts:
                rep.add(["outputPorts", i, "contractId"], f"output port references contract {port.contract_id!r}, "
                        "which no *.odcs.yaml file of the mesh defines")
                continue
            other = publisher.get(port.contract_id)
            if other and other != q.name.lower():
                rep.add(["outputPorts", i, "contractId"],
                        f"contract {port.contract_id!r} is already published by quantum {other!r}")
                continue
            publisher[port.contract_id] = q.name.lower()
            q.contracts.append(port.contract_id)

    # problems found in a contract before we knew its quantum now belong to that quantum
    owner_of_file = {contracts[cid].file: quanta[q].name for cid, q in publisher.items()}
    for i, p in enumerate(reader.problems):
        if p.quantum is None and p.file in owner_of_file:
            reader.problems[i] = Problem(p.file, p.path, p.message, p.line, owner_of_file[p.file], p.severity)

    for cid, contract in contracts.items():
        if cid not in publisher:
            contract_reports[cid].add(["id"], f"contract {cid!r} is not referenced by the output port of any "
                                      "data product; its datasets are not served", severity="warning")

    # input ports: resolve to the publishing quantum
    for q in quanta.values():
        rep = product_reports[q.name.lower()]
        for i, port in enumerate(q.ports):
            if port.direction == "input" and port.contract_id:
                src = publisher.get(port.contract_id)
                if src is None:
                    rep.add(["inputPorts", i, "contractId"], f"input port references contract "
                            f"{port.contract_id!r}, which no quantum of the mesh publishes", severity="warning")
                port.source_quantum = src

    # datasets from the published contracts
    for q in quanta.values():
        for cid in q.contracts:
            contract = contracts[cid]
            contract.quantum = q.name
            creport = contract_reports[cid]
            creport.quantum = q.name
            _read_datasets(q, contract, creport, root, data_dir)
            for ds in q.datasets.values():
                if ds.contract_id == cid:
                    contract.datasets.append(ds.name)

    _check_derived(quanta, contract_reports)
    _deprecated_ports(quanta, publisher)

    # a quantum with an error in its product or one of its contracts is left out
    for p in reader.problems:
        if p.severity == "error" and p.quantum and p.quantum.lower() in quanta:
            excluded.setdefault(p.quantum.lower(), f"{p}")
    _exclude_dependants(quanta, excluded, reader.problems, product_reports)
    for name in excluded:
        quanta.pop(name, None)

    mesh = Mesh(
        name=str(mesh_data["name"]),
        path=root,
        description=_text(mesh_data.get("description")),
        domains=domains,
        quanta=quanta,
        contracts=contracts,
        problems=reader.problems,
        settings=settings,
        governance=dict(mesh_data.get("governance") or {}),
        data_dir=data_dir,
        version=reader.digest.hexdigest()[:16],
        excluded=excluded,
        variables=dict(reader.variables),
        raw=mesh_data,
    )
    _cache_put(root, cache_key, mesh)
    return mesh


def _env_names(node: Any) -> Iterator[str]:
    """The environment variable names a configuration holds: the values of its ``*_env`` keys."""
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.endswith("_env") and isinstance(value, str):
                yield value
            else:
                yield from _env_names(value)
    elif isinstance(node, list):
        for value in node:
            yield from _env_names(value)


def _variable_policy(root: Path, mesh_data: dict, settings: msettings.Settings,
                     report: _FileReport) -> standards.VariablePolicy:
    """Which ``${VAR}`` contracts may read: the ``contract_variables`` setting, less the mesh's secrets (every
    ``*_env`` of mesh.yaml, governance.yaml and the secrets file: a webhook's secret, the engine's token, the
    mask salt, a server's password). Listing one of them is an error of mesh.yaml."""
    import yaml

    secrets = set(_env_names(mesh_data))
    files = [root / "governance.yaml"]
    if isinstance(mesh_data.get("secrets"), str):
        files.append(root / mesh_data["secrets"])
    for path in files:
        raw = read_mesh_file(path) if path.name == "governance.yaml" else _read_secrets(path)
        if isinstance(raw, bytes):
            try:
                secrets.update(_env_names(yaml.safe_load(raw)))
            except yaml.YAMLError:  # its own loader reports it
                pass
    allowed = tuple(settings["contract_variables"] or ())
    for i, name in enumerate(allowed):
        if name.upper() in {s.upper() for s in secrets}:
            report.add(["settings", "contract_variables", i], f"contract_variables may not allow {name!r}: it is "
                       "one of the mesh's secrets (a *_env of mesh.yaml, governance.yaml or the secrets file)")
    return standards.VariablePolicy(allowed, frozenset(secrets))


def _read_secrets(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def _read_contracts(reader: _Reader, files: list[tuple[Path, bytes | OSError]]):
    contracts: dict[str, Contract] = {}
    reports: dict[str, _FileReport] = {}
    for path, raw in files:
        data, report = reader.read(path, raw=raw)
        if data is None:
            continue
        _schema_check("odcs", data, report)
        written, data = data, reader.resolve("odcs", data, raw, report)
        cid = data.get("id")
        if not isinstance(cid, str) or not cid:
            if not report.errors:
                report.add(["id"], "a contract needs an id")
            continue
        if cid in contracts:
            report.add(["id"], f"contract id {cid!r} is also used by {contracts[cid].file}")
            reports[cid].add(["id"], f"contract id {cid!r} is also used by {report.file}")
            continue
        contracts[cid] = Contract(
            id=cid,
            version=str(data["version"]) if data.get("version") is not None else None,
            status=data.get("status"),
            api_version=data.get("apiVersion"),
            file=report.file,
            raw=data,
            written=written if written is not data else None,
        )
        reports[cid] = report
    return contracts, reports


def _read_products(reader: _Reader, files: list[tuple[Path, bytes | OSError]], domains: dict[str, Domain]):
    quanta: dict[str, Quantum] = {}
    reports: dict[str, _FileReport] = {}
    ids: dict[str, str] = {}
    for path, raw in files:
        data, report = reader.read(path, raw=raw)
        if data is None:
            continue
        _schema_check("odps", data, report)
        data = reader.resolve("odps", data, raw, report)
        name = _custom(data.get("customProperties"), "sqlName") or data.get("name")
        if not isinstance(name, str) or not name:
            report.add(["name"], "a data product needs a name (its SQL schema name)")
            continue
        report.quantum = name
        # problems already reported for this file belong to this quantum
        for i, p in enumerate(reader.problems):
            if p.file == report.file and p.quantum is None:
                reader.problems[i] = Problem(p.file, p.path, p.message, p.line, name, p.severity)
        if not IDENTIFIER.match(name):
            report.add(["name"], f"quantum name {name!r} is not a SQL identifier ([A-Za-z_][A-Za-z0-9_]*); "
                       "rename it or give a customProperties entry sqlName")
        elif name.lower() in RESERVED_SCHEMAS:
            report.add(["name"], f"quantum name {name!r} is reserved")
        pid = str(data.get("id", ""))
        if pid in ids:
            report.add(["id"], f"data product id {pid!r} is also used by {ids[pid]}")
        ids[pid] = report.file
        if name.lower() in quanta:
            report.add(["name"], f"quantum {name!r} is also defined by {quanta[name.lower()].file}")
            continue
        domain = data.get("domain")
        if domain is not None and domains and str(domain).lower() not in domains:
            report.add(["domain"], f"domain {domain!r} is not one of the mesh's domains "
                       f"({', '.join(sorted(d.name for d in domains.values()))})")
        team = data.get("team") if isinstance(data.get("team"), dict) else {}
        members = tuple(m for m in (team.get("members") or []) if isinstance(m, dict))
        owners = tuple(str(m.get("username")) for m in members
                       if str(m.get("role", "")).lower() in ("owner", "product owner", "data product owner"))
        q = Quantum(
            name=name,
            id=pid,
            domain=str(domain) if domain is not None else None,
            status=data.get("status"),
            file=report.file,
            version=str(data["version"]) if data.get("version") is not None else None,
            description=_text(data.get("description")),
            owners=owners,
            team=members,
            tags=_tags(data.get("tags")),
            type=str(data["type"]) if data.get("type") is not None else None,
            api_version=data.get("apiVersion"),
            # ODPS v1.1: the product's synonyms and its output ports'
            synonyms=tuple(dict.fromkeys(_synonyms(data.get("synonyms")) + tuple(
                s for port in data.get("outputPorts") or [] if isinstance(port, dict)
                for s in _synonyms(port.get("synonyms"))))),
            deprecated=data.get("deprecated") is True,
            raw=data,
        )
        for direction, key in (("input", "inputPorts"), ("output", "outputPorts")):
            for port in data.get(key) or []:
                if isinstance(port, dict):
                    q.ports.append(Port(name, direction, port.get("name"), port.get("contractId"),
                                        str(port["version"]) if port.get("version") is not None else None,
                                        port.get("type"), _text(port.get("description")),
                                        deprecated=port.get("deprecated") is True,
                                        synonyms=_synonyms(port.get("synonyms"))))
        if not any(p.direction == "output" for p in q.ports):
            report.add(["outputPorts"], "a data product needs at least one output port referencing a contract")
        quanta[name.lower()] = q
        reports[name.lower()] = report
    return quanta, reports


def _read_datasets(q: Quantum, contract: Contract, report: _FileReport, root: Path, data_dir: Path) -> None:
    data = contract.raw
    servers = [s for s in (data.get("servers") or []) if isinstance(s, dict)]
    for i, obj in enumerate(data.get("schema") or []):
        if not isinstance(obj, dict):
            continue
        base = ["schema", i]
        name = _custom(obj.get("customProperties"), "sqlName") or obj.get("name")
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            report.add(base + ["name"], f"dataset name {name!r} is not a SQL identifier; rename it or give a "
                       "customProperties entry sqlName")
            continue
        if name.lower() in q.datasets:
            report.add(base + ["name"], f"dataset {q.name}.{name} is declared twice")
            continue
        ds = Dataset(
            quantum=q.name,
            name=name,
            contract_id=contract.id,
            file=report.file,
            yaml_path=format_path(base),
            description=_text(obj.get("description")),
            business_name=obj.get("businessName"),
            physical_name=obj.get("physicalName"),
            tags=_tags(obj.get("tags")),
            quality=tuple(obj.get("quality") or ()),
            synonyms=_synonyms(obj.get("synonyms")),
            deprecated=obj.get("deprecated") is True,
            raw=obj,
        )
        sql = _custom(obj.get("customProperties"), "sql")
        if sql is not None:
            ds.sql = str(sql)
            ds.materialized = _custom(obj.get("customProperties"), "materialize") in (True, "true")
        _read_columns(ds, obj, base, report)
        if ds.materialized and not ds.columns:
            report.add(base + ["properties"], f"the mart {ds.qualified_name} (materialize: true) must declare its "
                       "columns: its versions are checked against them")
            continue
        if ds.sql is None:
            ds.source = _source(ds, obj, base, servers, report, data_dir)
            if ds.source is None:
                continue
            if not ds.columns:
                report.add(base + ["properties"], f"dataset {ds.qualified_name} declares no properties (columns)")
                continue
        q.datasets[name.lower()] = ds


def _read_columns(ds: Dataset, obj: dict, base: list, report: _FileReport) -> None:
    seen: set[str] = set()
    for j, prop in enumerate(obj.get("properties") or []):
        if not isinstance(prop, dict):
            continue
        path = base + ["properties", j]
        name = _custom(prop.get("customProperties"), "sqlName") or prop.get("name")
        if not isinstance(name, str) or not IDENTIFIER.match(name):
            report.add(path + ["name"], f"column name {name!r} of {ds.qualified_name} is not a SQL identifier; "
                       "name it with an identifier and put the data's name in physicalName")
            continue
        if name.lower() in seen:
            report.add(path + ["name"], f"column {name!r} of {ds.qualified_name} is declared twice")
            continue
        seen.add(name.lower())
        logical, physical = prop.get("logicalType"), prop.get("physicalType")
        dtype, problem = ctypes.declared_type(logical, physical, prop.get("items"), prop)
        if problem:
            report.add(path + ["physicalType" if physical else "logicalType"], problem)
        examples = prop.get("examples") or ()
        ds.columns.append(Column(
            name=name,
            ordinal=len(ds.columns) + 1,
            data_type=dtype,
            logical_type=logical,
            physical_type=physical,
            physical_name=prop.get("physicalName") if prop.get("physicalName") != name else None,
            description=_text(prop.get("description")),
            business_name=prop.get("businessName"),
            classification=prop.get("classification"),
            tags=_tags(prop.get("tags")),
            required=bool(prop.get("required", False)),
            unique=bool(prop.get("unique", False)),
            primary_key=bool(prop.get("primaryKey", False)),
            examples=tuple(str(e) for e in examples) if isinstance(examples, list) else (),
            quality=tuple(prop.get("quality") or ()),
            transform_source_objects=_tags(prop.get("transformSourceObjects")),
            transform_logic=prop.get("transformLogic"),
            enum_values=_enum_values(prop.get("enum")),
            synonyms=_synonyms(prop.get("synonyms")),
            deprecated=prop.get("deprecated") is True,
            yaml_path=format_path(path),
            raw=prop,
        ))


def _source(ds: Dataset, obj: dict, base: list, servers: list[dict], report: _FileReport,
            data_dir: Path) -> Source | None:
    wanted = _custom(obj.get("customProperties"), "server")
    if not servers:
        report.add(base, f"dataset {ds.qualified_name} has no data: the contract has no servers and the dataset "
                   "no 'sql' custom property")
        return None
    if wanted is not None:
        matches = [(k, s) for k, s in enumerate(servers) if s.get("server") == wanted]
        if not matches:
            report.add(base + ["customProperties"], f"server {wanted!r} is not one of the contract's servers "
                       f"({', '.join(str(s.get('server')) for s in servers)})")
            return None
        k, server = matches[0]
    else:
        k, server = 0, servers[0]
    spath = format_path(["servers", k])
    stype = server.get("type")
    physical = ds.physical_name or ds.name

    def resolve(p: str) -> str:
        pth = Path(p.replace("{model}", physical).replace("{object}", physical)).expanduser()
        return str(pth if pth.is_absolute() else (data_dir / pth))

    leaked = sorted(CREDENTIAL_FIELDS & {str(key).lower() for key in server}) + sorted(
        str(p.get("property")) for p in server.get("customProperties") or []
        if isinstance(p, dict) and str(p.get("property", "")).lower() in CREDENTIAL_FIELDS)
    if leaked:
        report.add(["servers", k], f"server {server.get('server')!r} holds credentials ({', '.join(leaked)}): "
                   "credentials never go in a contract; put them in the mesh's secrets file or the environment")
        return None
    if stype == "local":
        fmt = str(server.get("format", "")).lower()
        if fmt not in SUPPORTED_FILE_FORMATS:
            report.add(["servers", k, "format"], f"format {fmt!r} of server {server.get('server')!r} is not "
                       f"supported (use one of {', '.join(sorted(SUPPORTED_FILE_FORMATS))})")
            return None
        fmt = "json" if fmt in ("ndjson", "jsonl") else fmt
        table = physical if fmt == "sqlite" else None
        return Source(fmt, resolve(str(server["path"])), table=table, server=server.get("server"), yaml_path=spath)
    if stype == "duckdb":
        return Source("duckdb", resolve(str(server["database"])), table=physical,
                      schema=server.get("schema") or "main", server=server.get("server"), yaml_path=spath)
    if stype in ("postgres", "postgresql"):
        host, port, database = server.get("host"), server.get("port"), server.get("database")
        if isinstance(port, str) and port.strip().isdigit():  # ODCS v3.2: a string (it may be a ${VAR})
            port = int(port)
        return Source("postgres", f"postgresql://{host}:{port}/{database}", table=physical,
                      schema=server.get("schema") or "public", server=server.get("server"), yaml_path=spath,
                      options={"host": host, "port": port, "database": database})
    report.add(["servers", k, "type"], f"server type {stype!r} is not supported yet (supported: {SUPPORTED_SERVERS})")
    return None


def referenced_tables(select: exp.Expression) -> list[exp.Table]:
    """Tables a query reads, leaving out references to its own CTEs."""
    cte_names = {c.alias_or_name.lower() for c in select.find_all(exp.CTE)}
    out = []
    for t in select.find_all(exp.Table):
        if not t.args.get("db") and t.name.lower() in cte_names:
            continue
        out.append(t)
    return out


def _check_derived(quanta: dict[str, Quantum], reports: dict[str, _FileReport]) -> None:
    for q in quanta.values():
        for ds in q.datasets.values():
            if ds.sql is None:
                continue
            report = reports[ds.contract_id]
            path = _parse_path(ds.yaml_path) + ["customProperties"]
            try:
                statements = sqlglot.parse(ds.sql, read="duckdb")
            except ParseError as e:
                err = e.errors[0] if e.errors else {}
                report.add(path, f"the SQL of {ds.qualified_name} does not parse: {err.get('description', e)} "
                           f"(line {err.get('line')}, column {err.get('col')})")
                continue
            if len(statements) != 1 or not isinstance(statements[0], exp.Query):
                report.add(path, f"the SQL of {ds.qualified_name} must be one SELECT query")
                continue
            reads = []
            for t in referenced_tables(statements[0]):
                if not isinstance(t.this, exp.Identifier) or not t.args.get("db") or t.args.get("catalog"):
                    report.add(path, f"{ds.qualified_name} reads {t.sql('duckdb')!r}: a derived dataset reads "
                               "only mesh datasets, named <quantum>.<dataset>")
                    continue
                src_q, src_d = t.args["db"].name.lower(), t.name.lower()
                src = quanta.get(src_q)
                if src is None:
                    report.add(path, f"{ds.qualified_name} reads {src_q}.{src_d}, but there is no quantum {src_q!r}")
                    continue
                if src_d not in src.datasets:
                    report.add(path, f"{ds.qualified_name} reads {src_q}.{src_d}, but quantum {src_q!r} has no "
                               f"dataset {src_d!r}")
                    continue
                if src_q != q.name.lower() and src_q not in q.input_quanta:
                    report.add(path, f"{ds.qualified_name} reads {src_q}.{src_d}, but quantum {q.name!r} has no "
                               f"input port for a contract of {src_q!r}; add one to {q.file}")
                    continue
                reads.append((src_q, src_d))
            ds.reads = tuple(dict.fromkeys(reads))

    # cycles among derived datasets
    state: dict[tuple[str, str], int] = {}

    def visit(key: tuple[str, str], stack: list[tuple[str, str]]) -> None:
        state[key] = 1
        ds = quanta[key[0]].datasets[key[1]]
        for dep in ds.reads:
            dq = quanta.get(dep[0])
            if dq is None or dep[1] not in dq.datasets:
                continue
            if state.get(dep) == 1:
                cycle = stack[stack.index(dep):] + [dep] if dep in stack else [key, dep]
                names = " -> ".join(f"{a}.{b}" for a, b in cycle)
                reports[ds.contract_id].add(_parse_path(ds.yaml_path) + ["customProperties"],
                                            f"derived datasets form a cycle: {names}")
            elif state.get(dep) is None:
                visit(dep, stack + [dep])
        state[key] = 2

    for q in quanta.values():
        for ds in q.datasets.values():
            key = (q.name.lower(), ds.name.lower())
            if ds.sql is not None and key not in state:
                visit(key, [key])


def _deprecated_ports(quanta: dict[str, Quantum], publisher: dict[str, str]) -> None:
    """ODPS v1.1 deprecated ports: a dataset served through a deprecated output port, or a derived dataset
    reading through a deprecated input port, warns when read (``Dataset.port_warnings``)."""
    for q in quanta.values():
        for port in q.ports:
            if not port.deprecated or not port.contract_id:
                continue
            for ds in q.datasets.values():
                if port.direction == "output" and ds.contract_id == port.contract_id:
                    warning = f"{ds.qualified_name}: output port {port.name or port.contract_id} of data product " \
                              f"{q.name} is deprecated"
                elif port.direction == "input" and any(
                        r[0] == publisher.get(port.contract_id) and quanta[r[0]].datasets[r[1]].contract_id
                        == port.contract_id for r in ds.reads if r[0] in quanta and r[1] in quanta[r[0]].datasets):
                    warning = f"{ds.qualified_name}: it reads through input port {port.name or port.contract_id} " \
                              f"of data product {q.name}, which is deprecated"
                else:
                    continue
                if warning not in ds.port_warnings:
                    ds.port_warnings += (warning,)


def _parse_path(text: str) -> list:
    out: list = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", text):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def _exclude_dependants(quanta: dict[str, Quantum], excluded: dict[str, str], problems: list[Problem],
                        reports: dict[str, _FileReport]) -> None:
    """A quantum whose derived datasets read an excluded quantum is excluded too."""
    changed = True
    while changed:
        changed = False
        for name, q in quanta.items():
            if name in excluded:
                continue
            for ds in q.datasets.values():
                bad = [r for r in ds.reads if r[0] in excluded and r[0] != name]
                if bad:
                    reason = (f"{ds.qualified_name} reads {bad[0][0]}.{bad[0][1]}, and quantum {bad[0][0]!r} "
                              "could not be loaded")
                    problems.append(Problem(q.file, "", reason, None, q.name))
                    excluded[name] = reason
                    changed = True
                    break


def exclude(mesh: Mesh, quantum: str, problem: Problem) -> None:
    """Leave a quantum out after a later check (data, engine) found an error; dependants follow."""
    mesh.problems.append(problem)
    reports: dict = {}
    mesh.excluded.setdefault(quantum.lower(), str(problem))
    _exclude_dependants(mesh.quanta, mesh.excluded, mesh.problems, reports)
    for name in list(mesh.excluded):
        mesh.quanta.pop(name, None)
