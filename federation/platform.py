"""The platform: one loaded mesh, its engine and its query pipeline, shared by every interface.

``Platform.open(path)`` loads a mesh folder (catalog), registers its datasets in a locked-down
DuckDB (engine), compiles the derived datasets and builds the system tables; ``platform.query(sql,
principal)`` runs one query through the pipeline and returns a streaming ``Result``. Python
connections, the CLI (and the HTTP and PostgreSQL servers) all call ``query``: no interface has a
path of its own to the data.

A platform is immutable once built; ``reload()`` builds a new state from the files and swaps it in
atomically, so queries already running finish on the state they started with.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import sqlglot.expressions as exp

from . import errors
from .catalog.loader import exclude, load_mesh
from .catalog.model import Dataset, Mesh
from .engine.duckdb_backend import DuckDBBackend, quote
from .engine.registry import register_sources
from .errors import Problem
from .result import Result
from .rewrite.context import Namespace, Principal, SystemTable
from .rewrite.pipeline import PASSES, Pipeline, Plan
from .system import tables as system_tables

SYSTEM_PRINCIPAL = Principal("quanta-system", roles=("system",))
DEFAULT_TIMEOUT = 300.0


@dataclass
class State:
    mesh: Mesh
    backend: DuckDBBackend
    namespace: Namespace
    pipeline: Pipeline
    load_seconds: float


class Platform:
    _open: dict[Path, "Platform"] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self._lock = threading.Lock()
        self._state = self._build()

    @classmethod
    def open(cls, path: str | Path) -> "Platform":
        """The platform of a mesh folder, loaded once per process and shared."""
        key = Path(path).expanduser().resolve()
        with cls._open_lock:
            platform = cls._open.get(key)
            if platform is None:
                platform = cls(key)
                cls._open[key] = platform
            return platform

    # -- state ------------------------------------------------------------------------------------

    @property
    def mesh(self) -> Mesh:
        return self._state.mesh

    @property
    def state(self) -> State:
        return self._state

    def reload(self) -> None:
        """Read the mesh's files again and switch to the new state atomically."""
        new = self._build()
        with self._lock:
            old, self._state = self._state, new
        del old  # the old database closes when the last query using it is done

    def _build(self) -> State:
        started = time.perf_counter()
        mesh = load_mesh(self.path)
        backend = DuckDBBackend(mesh.settings)
        register_sources(mesh, backend)
        namespace = Namespace(mesh, mesh.version, backend.relation)
        pipeline = Pipeline(namespace, backend.dialect, PASSES)
        self._compile_derived(mesh, backend, namespace, pipeline)
        self._build_system_tables(mesh, backend, namespace)
        backend.lock()
        return State(mesh, backend, namespace, pipeline, time.perf_counter() - started)

    @staticmethod
    def _compile_derived(mesh: Mesh, backend: DuckDBBackend, namespace: Namespace, pipeline: Pipeline) -> None:
        """Resolve each derived dataset's SQL (sources first), type it, and fit it to its contract."""
        order: list[Dataset] = []
        seen: set[tuple[str, str]] = set()

        def visit(ds: Dataset) -> None:
            key = (ds.quantum.lower(), ds.name.lower())
            if key in seen:
                return
            seen.add(key)
            for q, d in ds.reads:
                dep = mesh.dataset(q, d)
                if dep is not None and dep.sql is not None:
                    visit(dep)
            order.append(ds)

        for ds in list(mesh.datasets()):
            if ds.sql is not None:
                visit(ds)
        for ds in order:
            if mesh.quanta.get(ds.quantum.lower()) is None:
                continue  # excluded meanwhile
            try:
                definition = pipeline.resolve_definition(ds.sql or "", SYSTEM_PRINCIPAL)
                produced = backend.describe(definition.sql(backend.dialect))
            except errors.Error as e:
                exclude(mesh, ds.quantum, Problem(ds.file, ds.yaml_path, f"the SQL of {ds.qualified_name}: {e}",
                                                  None, ds.quantum))
                continue
            except Exception as e:  # a DuckDB binder error in the definition
                first = str(e).split("\n")[0]
                exclude(mesh, ds.quantum, Problem(ds.file, ds.yaml_path, f"the SQL of {ds.qualified_name} fails: "
                                                  f"{first}", None, ds.quantum))
                continue
            problem, definition = _fit_to_contract(ds, definition, produced, backend)
            if problem is not None:
                exclude(mesh, ds.quantum, problem)
                continue
            namespace.definitions[(ds.quantum.lower(), ds.name.lower())] = definition

    @staticmethod
    def _build_system_tables(mesh: Mesh, backend: DuckDBBackend, namespace: Namespace) -> None:
        dictionary = system_tables.dictionary_tables(mesh)
        info = system_tables.information_schema(mesh, dictionary)
        for schema, tables in (("system", dictionary), ("information_schema", info)):
            for name, (description, table) in tables.items():
                internal = name if schema == "system" else f"information_schema_{name}"
                backend.put_table(internal, table)
                namespace.system_tables[(schema, name)] = SystemTable(
                    name, schema, backend.system_relation(internal), tuple(table.column_names), description)

    # -- queries ----------------------------------------------------------------------------------

    def principal(self, user: str | None) -> Principal:
        return Principal(user or "anonymous")

    def compile(self, sql: str, principal: Principal, dialect: str = "duckdb") -> Plan:
        return self._state.pipeline.compile(sql, principal, dialect)

    def query(self, sql: str, principal: Principal, params: Sequence[Any] | dict | None = None,
              dialect: str = "duckdb", timeout: float | None = None) -> Result:
        state = self._state
        plan = state.pipeline.compile(sql, principal, dialect)
        if params is not None and not isinstance(params, (list, tuple, dict)):
            raise errors.ProgrammingError("parameters are a list, a tuple or a dict")
        if timeout is None:
            timeout = float(state.mesh.settings.get("query_timeout_seconds", DEFAULT_TIMEOUT))
        execution = state.backend.execute(plan.sql, params, timeout)
        return Result(execution, plan)


def _fit_to_contract(ds: Dataset, definition: exp.Query, produced, backend: DuckDBBackend):
    """The definition projected on the contract's columns, cast to their types; or a problem."""
    from .catalog import types as ctypes
    from .catalog.model import Column

    found = {c.name.lower(): c for c in produced}
    if not ds.columns:
        ds.columns = [Column(name=c.name, ordinal=i + 1, data_type=c.type) for i, c in enumerate(produced)]
        return None, definition
    select = []
    for c in ds.columns:
        got = found.get(c.name.lower())
        if got is None:
            return Problem(ds.file, c.yaml_path, f"column {c.name!r} of {ds.qualified_name} is declared in the "
                           f"contract but its SQL does not produce it; it produces: "
                           f"{', '.join(x.name for x in produced)}", None, ds.quantum), definition
        if not ctypes.compatible(got.type, c.data_type):
            return Problem(ds.file, c.yaml_path, f"column {c.name!r} of {ds.qualified_name} is declared "
                           f"{c.data_type} but its SQL produces {got.type}", None, ds.quantum), definition
        expr = quote(got.name)
        if got.type != c.data_type:
            expr = f"CAST({expr} AS {c.data_type})"
        select.append(f"{expr} AS {quote(c.name)}")
    if [c.name for c in produced] == [c.name for c in ds.columns] and all(
            found[c.name.lower()].type == c.data_type for c in ds.columns):
        return None, definition
    wrapper = exp.select(*select, dialect="duckdb").from_(
        exp.Subquery(this=definition, alias=exp.TableAlias(this=exp.to_identifier("_derived"))))
    return None, wrapper
