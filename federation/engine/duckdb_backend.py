"""DuckDB backend: one locked-down in-memory database per loaded mesh.

Each source dataset becomes a view ``memory.<quantum>.<dataset>`` over its files or its attached
DuckDB table, with the contract's column names, order and types. System tables live in the internal
schema ``_quanta_system``. Nothing here decides who may read what: the query pipeline does, and only
hands this backend SQL that reads mesh views and system tables.

Once the views exist the database is locked down, the second wall behind the rewrite: external
access off except the mesh's data folders, no extension autoload or autoinstall, memory and thread
limits, configuration locked. Each query runs on its own cursor (DuckDB connections are cheap and
thread-safe per cursor) and is interrupted by a timer when it runs past its time-out.
"""

from __future__ import annotations

import heapq
import itertools
import math
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import duckdb
import pyarrow as pa

from .. import errors
from ..settings import Settings
from . import hung

CATALOG = "memory"
SYSTEM_SCHEMA = "_quanta_system"
BATCH_ROWS = 65_536
POOL_SIZE = 16  # idle cursors kept for reuse
# How far DuckDB computes ahead of a streaming reader (DuckDB's default is ~1 MB): with more, the engine
# keeps working while the HTTP or PostgreSQL server encodes and sends what it already has.
STREAMING_BUFFER = "32MB"


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class SourceColumns:
    columns: dict[str, str]  # lower-case name -> DuckDB type, as found in the data
    names: dict[str, str]  # lower-case name -> name as spelled in the data


class _Watchdog:
    """One thread for every query's time-out (a heap of deadlines): starting a thread per query
    costs more than a small query itself."""

    def __init__(self) -> None:
        self._heap: list[list] = []
        self._cv = threading.Condition()
        self._seq = itertools.count()
        self._thread: threading.Thread | None = None

    def add(self, seconds: float, execution: "DuckDBExecution") -> list:
        entry = [time.monotonic() + seconds, next(self._seq), execution]
        with self._cv:
            heapq.heappush(self._heap, entry)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="quanta-timeouts", daemon=True)
                self._thread.start()
            self._cv.notify()
        return entry

    @staticmethod
    def remove(entry: list) -> None:
        entry[2] = None  # the query ended first: nothing to interrupt (dropped lazily from the heap)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._heap:
                    self._cv.wait()
                deadline, _, execution = self._heap[0]
                wait = deadline - time.monotonic()
                if execution is not None and wait > 0:
                    self._cv.wait(wait)
                    continue
                heapq.heappop(self._heap)
            if execution is not None:
                execution._expire()


WATCHDOG = _Watchdog()


class Cancellation:
    """Cancels a query from another thread, before it starts or while it runs (a PostgreSQL
    CancelRequest, an HTTP client gone away). Give one to ``Platform.query(cancel=...)``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._execution: "DuckDBExecution | None" = None
        self.cancelled = False

    def bind(self, execution: "DuckDBExecution") -> None:
        with self._lock:
            self._execution = execution
            if self.cancelled:
                execution.cancelled = True

    def cancel(self) -> None:
        with self._lock:
            self.cancelled = True
            execution = self._execution
        if execution is not None:
            execution.cancel()


class DuckDBExecution:
    """A query running on its own cursor; batches stream from DuckDB as they are produced."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, timeout: float | None, release=None, unstick=None):
        self._cursor = cursor
        self._release = release  # gives a healthy cursor back to the backend's pool
        self._unstick = unstick  # severs the connections of hung remote servers (see _expire)
        self._timer: list | None = None  # the watchdog's entry
        self.timed_out = False
        self.cancelled = False
        self.timeout = timeout
        if timeout:
            self._timer = WATCHDOG.add(timeout, self)
        self._reader: pa.RecordBatchReader | None = None

    def _expire(self) -> None:
        self.timed_out = True
        cursor = self._cursor
        if cursor is not None:
            cursor.interrupt()
            if self._unstick is not None:  # a remote source's scan waits in recv(): interrupt cannot reach it
                threading.Thread(target=self._unstick, args=(self,), name="quanta-unstick", daemon=True).start()

    @property
    def running(self) -> bool:
        return self._cursor is not None

    def start(self, sql: str, params) -> None:
        if self.cancelled:  # cancelled before it began
            raise duckdb.InterruptException("INTERRUPT Error: cancelled before it started")
        if params:
            self._cursor.execute(sql, params)
        else:
            self._cursor.execute(sql)
        self._reader = self._cursor.to_arrow_reader(BATCH_ROWS)

    @property
    def schema(self) -> pa.Schema:
        assert self._reader is not None
        return self._reader.schema

    def reader(self) -> pa.RecordBatchReader:
        assert self._reader is not None
        return self._reader

    def cancel(self) -> None:
        self.cancelled = True
        cursor = self._cursor
        if cursor is not None:
            cursor.interrupt()

    def close(self, failed: bool = False) -> None:
        if self._timer is not None:
            WATCHDOG.remove(self._timer)
            self._timer = None
        cursor, self._cursor = self._cursor, None
        if cursor is None:
            return
        release, self._release = self._release, None
        if release is not None and not (failed or self.timed_out or self.cancelled):
            release(cursor)
            return
        try:
            cursor.close()
        except duckdb.Error:
            pass


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # DuckDB's type name, e.g. DECIMAL(12,2)


class DuckDBBackend:
    """The embedded engine (``engine/backend.py``'s ``Backend``) and every platform's local state."""

    kind = "duckdb"
    dialect = "duckdb"

    def __init__(self, settings: Mapping[str, Any] | None = None, credentials=None):
        settings = Settings.of(settings)
        self._credentials = credentials or (lambda server: {})
        self._extensions: set[str] = set()
        self.connect_timeout = settings["source_connect_timeout_seconds"]
        self._remote: dict[str, tuple[str, int]] = {}  # alias of an attached server -> its (host, port)
        self._unreachable: dict[str, errors.Unavailable] = {}  # server location -> why it could not be attached
        self._hung: dict[tuple[str, int], errors.Unavailable] = {}  # servers that stopped answering while loading
        config = {
            "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false",
            "threads": str(settings["threads"]),
        }
        if settings["memory_limit"]:
            config["memory_limit"] = settings["memory_limit"]
        self.db = duckdb.connect(":memory:", config=config)
        # Parquet footers are kept between queries (re-read when a file's modification time changes): a
        # point lookup on a 1M-row file drops from 3.1 to 2.6 ms, as versions and most sources never change.
        self.db.execute("SET GLOBAL parquet_metadata_cache = true")
        self._tmp = tempfile.TemporaryDirectory(prefix="quanta-spill-")
        self.db.execute(f"SET temp_directory = {literal(self._tmp.name)}")
        self._attached: dict[str, str] = {}  # database file -> alias
        self._pool: list[duckdb.DuckDBPyConnection] = []
        self._pool_lock = threading.Lock()
        self._allowed: set[str] = {self._tmp.name}
        self._locked = False
        self.db.execute(f"CREATE SCHEMA {SYSTEM_SCHEMA}")
        self._deferred: dict[tuple[str, str], str] = {}  # views created when first named (defer_views)
        self._deferred_lock = threading.Lock()
        self._pending_tables: dict[str, pa.Table] = {}  # system tables copied in when first read (put_table lazy)
        self._tables_lock = threading.Lock()

    # -- naming ------------------------------------------------------------------------------------

    def relation(self, quantum: str, dataset: str) -> tuple[str, str, str]:
        key = (quantum.lower(), dataset.lower())
        if key in self._deferred:
            self._create_deferred(key)
        return CATALOG, key[0], key[1]

    def defer_views(self, views: dict[tuple[str, str], str]) -> None:
        """Views an earlier load created and checked on the same files (``engine/viewcache.py``): each is
        created when first named (``relation``), not at load, as binding a view reads its file's schema."""
        with self._deferred_lock:
            self._deferred.update(views)

    def _create_deferred(self, key: tuple[str, str]) -> None:
        with self._deferred_lock:  # a second caller waits until the view exists
            statement = self._deferred.get(key)
            if statement is None:
                return
            cur = self.db.cursor()
            try:
                cur.execute(statement)
            except duckdb.Error:
                pass  # its data changed since: the query naming it fails as on a view whose file changed
            finally:
                cur.close()
                del self._deferred[key]

    def system_relation(self, table: str) -> tuple[str, str, str]:
        return CATALOG, SYSTEM_SCHEMA, table.lower()

    @staticmethod
    def relation_name(relation: tuple[str, ...]) -> str:
        return ".".join(quote(p) for p in relation)

    def register_dataset(self, relation: tuple[str, ...], ds, source, pinned: bool = False) -> None:
        """Serve ``ds`` from ``source`` as ``relation`` with the contract's names and types (``registry.py``
        registers the mesh's sources at load, checking them against the contracts; this serves one more)."""
        try:
            relation_sql = self.source_sql(source.kind, source.location, source.schema, source.table, source.server)
            found = self.source_columns(relation_sql, cursor=True)
        except duckdb.Error as e:
            raise errors.Unavailable(f"cannot read the data of {ds.qualified_name} at {source.location}: "
                                     f"{clean_message(str(e))}") from None
        select = []
        for c in ds.columns:
            key = next((k for k in (c.source_name.lower(), c.name.lower()) if k in found.columns), None)
            if key is None and not pinned:
                raise errors.ProgrammingError(f"column {c.name!r} of {ds.qualified_name} is not in the data at "
                                              f"{source.location}")
            value = "NULL" if key is None else quote(found.names[key])
            select.append(f"{'TRY_CAST' if pinned else 'CAST'}({value} AS {c.data_type}) AS {quote(c.name)}")
        self.create_view(relation[-2], relation[-1], f"SELECT {', '.join(select)} FROM {relation_sql}")

    # -- registering the mesh (before lock-down) -------------------------------------------------

    def source_sql(self, kind: str, location: str, schema: str | None = None, table: str | None = None,
                   server: str | None = None) -> str:
        """The relation expression that reads one source."""
        if kind == "parquet":
            return f"read_parquet({literal(location)}, union_by_name = true)"
        if kind == "csv":
            return f"read_csv({literal(location)}, header = true, auto_detect = true, union_by_name = true)"
        if kind == "json":
            return f"read_json({literal(location)}, format = 'auto', union_by_name = true)"
        if kind in ("duckdb", "sqlite"):
            alias = self._attached.get(location)
            if alias is None:
                if not Path(location).exists():
                    raise errors.Unavailable(f"{kind} database file {location} does not exist")
                alias = f"_quanta_src_{len(self._attached) + 1}"
                if kind == "sqlite":
                    self.load_extension("sqlite_scanner")
                how = "(READ_ONLY)" if kind == "duckdb" else "(TYPE sqlite, READ_ONLY)"
                self.db.execute(f"ATTACH {literal(location)} AS {alias} {how}")
                self._attached[location] = alias
            if kind == "sqlite":
                return f"{alias}.{quote(table or '')}"
            return f"{alias}.{quote(schema or 'main')}.{quote(table or '')}"
        if kind == "postgres":
            alias = self._attach_server(location, server)
            return f"{alias}.{quote(schema or 'public')}.{quote(table or '')}"
        if kind == "delta":
            self.load_extension("delta")
            return f"delta_scan({literal(location)})"
        if kind == "iceberg":
            self.load_extension("avro")
            self.load_extension("iceberg")
            if Path(location).is_dir():  # a table folder (with a version hint), possibly moved since written
                return f"iceberg_scan({literal(location)}, allow_moved_paths = true)"
            return f"iceberg_scan({literal(location)})"  # a metadata file
        raise errors.NotSupportedError(f"source kind {kind!r} is not supported")

    def _attach_server(self, location: str, server: str | None) -> str:
        """ATTACH a PostgreSQL server once per location, within ``source_connect_timeout_seconds``: libpq's
        ``connect_timeout`` bounds the start-up, ``hung.Bound`` the catalog reads after it (a server that
        accepts the connection and then stops answering). A failure is remembered for this load."""
        # one attachment per quantum naming the server: it carries that quantum's credentials (engine/secrets.py)
        key = f"{getattr(server, 'quantum', '')}/{location}"
        alias = self._attached.get(key)
        if alias is not None:
            return alias
        if key in self._unreachable:
            raise self._unreachable[key]
        self.load_extension("postgres_scanner")
        alias = f"_quanta_src_{len(self._attached) + len(self._unreachable) + 1}"
        host, port, _ = _server_address(location)
        shown = f"PostgreSQL server {server + ' ' if server else ''}at {host}:{port}"
        try:
            with hung.Bound(self.connect_timeout, self.db.interrupt, host, port) as bound:
                self.db.execute(f"ATTACH {literal(self._dsn(location, server))} AS {alias} (TYPE postgres, READ_ONLY)")
        except duckdb.Error as e:
            first = redact(str(e).splitlines()[0])
            if bound.expired or "timeout expired" in first:
                error = errors.Unavailable(f"{shown} did not answer within {self.connect_timeout:g} s "
                                           f"(source_connect_timeout_seconds)")
            else:
                error = errors.Unavailable(f"{shown} is unreachable: {first}")
            self._unreachable[key] = error
            raise error from None
        self._attached[key] = alias
        self._remote[alias] = (host, int(port or 5432))
        return alias

    def _dsn(self, location: str, server: str | None) -> str:
        """A libpq connection string from the contract's host/port/database and the server's credentials."""
        host, port, database = _server_address(location)
        parts = {"host": host, "port": port, "dbname": database,
                 # libpq's unit is whole seconds (and it counts less than 2 as 2)
                 "connect_timeout": str(max(2, math.ceil(self.connect_timeout)))}
        parts.update({k: v for k, v in self._credentials(server or "").items() if k in ("user", "password")})
        return " ".join(f"{k}={_dsn_value(v)}" for k, v in parts.items() if v)

    def _remote_server(self, relation_sql: str) -> tuple[str, int] | None:
        """The (host, port) of the attached server a relation reads, if it reads one."""
        alias = relation_sql.split(".", 1)[0]
        return self._remote.get(alias)

    def _unstick(self, execution: DuckDBExecution) -> None:
        """A query still running shortly after its time-out interrupted it waits on a remote server: sever
        this process's connections to every attached server that no longer answers, so libpq returns."""
        time.sleep(hung.GRACE_SECONDS)
        if not execution.running:
            return
        # the scanner may try a new connection at once (libpq then waits up to connect_timeout for the
        # server's answer): keep shutting down what it opens to a dead server until the query has ended
        give_up = time.monotonic() + max(30.0, 4 * self.connect_timeout)
        while execution.running and time.monotonic() < give_up:
            dead = [(host, port) for host, port in set(self._remote.values())
                    if not hung.responds(host, port, timeout=hung.GRACE_SECONDS * 2)]
            if not dead:
                return  # every server answers: the query is slow, not stuck (the interrupt will end it)
            for _ in range(10):
                if not execution.running:
                    return
                for host, port in dead:
                    hung.sever(host, port)
                time.sleep(0.05)

    def load_extension(self, name: str) -> None:
        """Load a DuckDB extension from its PyPI package (``duckdb-extension-<name>``, pinned to this
        DuckDB): nothing is downloaded, and nothing loads after lock-down."""
        if name in self._extensions:
            return
        import importlib

        package = "duckdb_extension_" + name
        try:
            module = importlib.import_module(package)
        except ImportError:
            raise errors.Unavailable(f"the DuckDB extension {name} is not installed (pip install "
                                     f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__})") from None
        path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
        self.db.execute(f"LOAD {literal(str(path))}")
        self._extensions.add(name)

    def allow_path(self, location: str) -> None:
        """Let the locked-down database read below the folder of a source file or glob."""
        p = Path(location)
        if not p.is_absolute():
            return  # not a file source (a server)
        while any(ch in p.name for ch in "*?[{") or not p.exists() or p.is_file():
            if p.parent == p:
                break
            p = p.parent
        self._allowed.add(str(p))

    def source_columns(self, relation_sql: str, cursor: bool = False) -> SourceColumns:
        """The columns and types found in a source (``cursor``: on a cursor of its own, for threads); a
        remote server's within ``source_connect_timeout_seconds`` (else ``errors.Unavailable``)."""
        remote = self._remote_server(relation_sql)
        if remote is not None and remote in self._hung:
            raise self._hung[remote]  # one wait per server and load, not one per table
        con = self.db.cursor() if cursor else self.db
        try:
            if remote is None:
                rows = con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
            else:
                rows = self._describe_remote(con, relation_sql, *remote)
        finally:
            if cursor:
                con.close()
        return SourceColumns({r[0].lower(): r[1] for r in rows}, {r[0].lower(): r[0] for r in rows})

    def _describe_remote(self, con: duckdb.DuckDBPyConnection, relation_sql: str, host: str, port: int) -> list:
        bound = hung.Bound(self.connect_timeout, con.interrupt, host, port)
        try:
            with bound:
                return con.execute(f"DESCRIBE SELECT * FROM {relation_sql}").fetchall()
        except (duckdb.IOException, duckdb.InterruptException) as e:
            if not bound.expired:
                raise errors.Unavailable(f"PostgreSQL server at {host}:{port} failed: "
                                         f"{redact(str(e).splitlines()[0])}") from None
            error = errors.Unavailable(f"PostgreSQL server at {host}:{port} did not describe "
                                       f"{relation_sql.split('.', 1)[1]} within {self.connect_timeout:g} s "
                                       f"(source_connect_timeout_seconds)")
            self._hung[(host, port)] = error
            raise error from None

    def normalize_types(self, types: list[str]) -> dict[str, str]:
        """DuckDB's own spelling of each type (``TEXT`` -> ``VARCHAR``, ``DECIMAL(12, 2)`` -> ``DECIMAL(12,2)``)."""
        out: dict[str, str] = {}
        unique = list(dict.fromkeys(types))
        for i in range(0, len(unique), 200):
            chunk = unique[i:i + 200]
            row = self.db.execute(
                "SELECT " + ", ".join(f"typeof(CAST(NULL AS {t}))" for t in chunk)
            ).fetchone()
            out.update(zip(chunk, row))
        return out

    def create_schema(self, name: str) -> None:
        self.db.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(name.lower())}")

    def create_view(self, quantum: str, dataset: str, select_sql: str) -> None:
        with self._deferred_lock:
            self._deferred.pop((quantum.lower(), dataset.lower()), None)  # this view replaces a deferred one
        self.db.execute(f"CREATE OR REPLACE VIEW {quote(quantum.lower())}.{quote(dataset.lower())} AS {select_sql}")

    def put_table(self, name: str, table: pa.Table, lazy: bool = False) -> None:
        """Create or replace a system table from Arrow (allowed after lock-down too). ``lazy``: copied into
        the engine only when a query first reads it (``ensure_table``): most queries read no system table,
        and a load need not pay for copying them all."""
        with self._tables_lock:
            if lazy:
                self._pending_tables[name] = table
                return
            self._pending_tables.pop(name, None)
            self._load_arrow(table, f"CREATE OR REPLACE TABLE {SYSTEM_SCHEMA}.{quote(name)} AS SELECT * FROM {{view}}")

    def ensure_table(self, name: str) -> None:
        """Copy a lazy system table into the engine before a query reads it (once)."""
        if name not in self._pending_tables:  # removed only once created: no lock on the common path
            return
        with self._tables_lock:
            table = self._pending_tables.get(name)
            if table is not None:
                self._load_arrow(table, f"CREATE OR REPLACE TABLE {SYSTEM_SCHEMA}.{quote(name)} AS SELECT * FROM "
                                 "{view}")
                del self._pending_tables[name]

    def append_table(self, name: str, table: pa.Table) -> None:
        """Append Arrow rows to a system table (the audit log's copy in the engine)."""
        self.ensure_table(name)
        self._load_arrow(table, f"INSERT INTO {SYSTEM_SCHEMA}.{quote(name)} SELECT * FROM {{view}}")

    def _load_arrow(self, table: pa.Table, statement: str) -> None:
        view = f"_quanta_arrow_{threading.get_ident()}"
        cur = self.db.cursor()
        try:
            cur.register(view, table)
            cur.execute(statement.format(view=view))
            cur.unregister(view)
        finally:
            cur.close()

    def buffer_cursor(self) -> duckdb.DuckDBPyConnection:
        """A private cursor for the rows of a SCROLL cursor (the PostgreSQL wire): they were read through the
        pipeline and are kept in a temporary table of this cursor's own (spilled under the memory limit,
        dropped with it). Whoever holds it stores and reads back governed rows only; it closes it."""
        return self.db.cursor()

    def register_masks(self, salt: str) -> None:
        """The keyed hash masks (``masks.py``): the salt stays in Python, out of reach of any SQL."""
        from . import masks

        masks.register(self.db, salt)

    def lock(self) -> None:
        dirs = sorted(self._allowed)
        self.db.execute("SET allowed_directories = [" + ", ".join(literal(d + "/") for d in dirs) + "]")
        self.db.execute("SET enable_external_access = false")
        self.db.execute("SET allow_community_extensions = false")
        with self._pool_lock:  # session settings can only be made before the lock: the pool gets them now
            self._pool += [self._new_cursor() for _ in range(POOL_SIZE - len(self._pool))]
        self.db.execute("SET lock_configuration = true")
        self._locked = True

    # -- queries -----------------------------------------------------------------------------------

    def describe(self, sql: str) -> list[ColumnInfo]:
        cur = self.db.cursor()
        try:
            rows = cur.execute(f"DESCRIBE {sql}").fetchall()
        finally:
            cur.close()
        return [ColumnInfo(r[0], r[1]) for r in rows]

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None,
                timeout: float | None = None, cancel: Cancellation | None = None) -> DuckDBExecution:
        execution = DuckDBExecution(self._acquire(), timeout, self._release, self._unstick if self._remote else None)
        if cancel is not None:
            cancel.bind(execution)  # from now on a cancel interrupts the engine, even in its first call
        try:
            execution.start(sql, params)
        except BaseException as e:
            timed_out, cancelled = execution.timed_out, execution.cancelled
            execution.close(failed=True)
            raise translate(e, timed_out=timed_out, cancelled=cancelled, timeout=timeout) from None
        return execution

    def _acquire(self) -> duckdb.DuckDBPyConnection:
        """A cursor for one query: from the pool when one is free (a database source keeps its
        connections per cursor, so reusing cursors saves a connection per query), else a new one."""
        with self._pool_lock:
            if self._pool:
                return self._pool.pop()
        return self._new_cursor()

    def _new_cursor(self) -> duckdb.DuckDBPyConnection:
        cursor = self.db.cursor()
        if not self._locked:
            cursor.execute(f"SET streaming_buffer_size = {literal(STREAMING_BUFFER)}")
        return cursor

    def _release(self, cursor: duckdb.DuckDBPyConnection) -> None:
        with self._pool_lock:
            if len(self._pool) < POOL_SIZE:
                self._pool.append(cursor)
                return
        cursor.close()

    def close(self) -> None:
        try:
            self.db.close()
        finally:
            self._tmp.cleanup()


def translate(e: BaseException, *, timed_out: bool = False, cancelled: bool = False,
              timeout: float | None = None) -> BaseException:
    """A DuckDB exception as a Quanta (PEP 249) exception with a message fit for the user."""
    if not isinstance(e, duckdb.Error):
        return e
    if isinstance(e, duckdb.InterruptException) or timed_out or cancelled:
        if timed_out:
            return errors.QueryTimeout(f"query cancelled: it ran longer than its time-out of {timeout:g} s")
        return errors.QueryCancelled("query cancelled")
    message = clean_message(str(e))
    if isinstance(e, (duckdb.ConversionException, duckdb.OutOfRangeException, duckdb.InvalidInputException)):
        # the value that failed to convert may be one the principal may not see: never echo values
        if message.endswith("division by zero"):  # raised by the PostgreSQL semantics (rewrite/postgres.py)
            return errors.DivisionByZero("division by zero")
        return errors.DataError(redact_values(message))
    if isinstance(e, (duckdb.CatalogException, duckdb.BinderException, duckdb.ParserException)):
        return errors.ProgrammingError(message)
    if isinstance(e, duckdb.PermissionException):
        return errors.StatementRefused(message)
    if isinstance(e, duckdb.OutOfMemoryException):
        return errors.OperationalError("the query ran out of memory: " + message)
    if isinstance(e, duckdb.IOException):
        return errors.Unavailable("a source could not be read: " + message)
    return errors.DatabaseError(message)


_QUOTED = re.compile(r"'(?:[^']|'')*'")
_DOUBLE_QUOTED = re.compile(r'"(?:[^"]|"")*"')
_BARE_VALUE = re.compile(r"\b(value)\s+[-+0-9.][^\s]*|(Input:)\s.*$")
# what follows these words is the input itself, unquoted: a regular expression (RE2's errors), a format
# string, a date, a hex digit or code point, a regex option
_ECHOED_TAIL = re.compile(
    r"\b(missing \)|missing \]|unexpected \)|invalid escape sequence|bad repetition operator|"
    r"invalid character class(?: range)?|no argument for repetition operator|"
    r"missing argument to repetition operator|invalid named capture group|invalid perl operator|"
    r"invalid repetition size|invalid nested repetition operator|invalid UTF-8|trailing \\|"
    r"format specifier|out of range(?=:)|hex digit|hex escape code encountered in string|Codepoint|Regex option)"
    r"(:?)\s.*$", re.IGNORECASE)
_ERROR_CLASS = re.compile(r"^[A-Z][A-Za-z ]*? Error: ")  # "Out of Range Error: ": DuckDB's, not the input
_TYPE_ARGUMENTS = re.compile(r"\b[A-Z][A-Z_]*\(\d+(?:,\s*\d+)?\)")  # DECIMAL(18,3): a type, not a value
# a number, not INT64's 64 nor a version's parts; one that ends a sentence ("...: 13.") is a number too
_NUMBER = re.compile(r"(?<![\w.$^])[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?(?!\w|\.\w)")


def redact_values(message: str) -> str:
    """A conversion error without any value in it: the first line only (DuckDB echoes the input under it
    with a caret), quoted text, the word after "value"/"Input:", the unquoted input DuckDB quotes after
    some words (a regular expression, a format, a date) and every number outside a type's name (an
    overflow's operands, ``abs(-128)``) blanked. A parameter is a value too: the audit log keeps none."""
    first = message.split("\n")[0]
    first = _DOUBLE_QUOTED.sub('"…"', _QUOTED.sub("'…'", first))
    first = _BARE_VALUE.sub(lambda m: f"{m.group(1) or m.group(2)} …", first)
    kind = _ERROR_CLASS.match(first)
    cut = kind.end() if kind else 0
    first = first[:cut] + _ECHOED_TAIL.sub(lambda m: f"{m.group(1)}{m.group(2)} …", first[cut:])
    types = [t.span() for t in _TYPE_ARGUMENTS.finditer(first)]
    return _NUMBER.sub(lambda m: m.group(0) if any(a <= m.start() < b for a, b in types) else "…", first)


def _server_address(location: str) -> tuple[str, str, str]:
    """(host, port, database) of a ``postgresql://host:port/database`` source location."""
    rest = location.split("://", 1)[1]
    hostport, _, database = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    return host.strip("[]"), port, database


def _dsn_value(value) -> str:
    text = str(value)
    if text and all(ch.isalnum() or ch in "._-" for ch in text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


_SECRET = re.compile(r"(password|passwd|pwd)\s*=\s*('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)


def redact(message: str) -> str:
    """Never show a password, whatever the error says."""
    return _SECRET.sub(r"\1=***", message)


def clean_message(message: str) -> str:
    """Drop DuckDB's echo of the generated SQL and the engine's internal names from an error message."""
    message = message.split("\n\nLINE ")[0].split("\nLINE ")[0].strip()
    message = message.replace(f"{SYSTEM_SCHEMA}.", "system.").replace(f"{CATALOG}.", "")
    return redact(message)
