"""The Arrow Flight SQL server: ``pyarrow.flight`` for gRPC and Arrow IPC, every statement through the
platform's gateway.

    server = FlightSqlServer(platform, host="127.0.0.1", port=0).start()   # .port, .location, .stop()

No policy here. A statement is ``platform.query(sql, principal, params, purpose=..., interface="flight",
cancel=...)``, as for every other interface: the same pipeline, audit log, time-out and per-principal
limits (``flight`` is one of the platform's shared interfaces). A prepared statement is compiled by
``platform.prepare`` (a refusal is audited at once) and run by ``platform.query`` at each execution.
Catalog commands are answered by ``catalog.py`` from the same governed decisions.

How the Flight SQL calls map:

- ``GetFlightInfo(CommandStatementQuery | CommandPreparedStatementQuery)`` starts the query and answers
  its schema and one endpoint whose ticket is a ``TicketStatementQuery`` holding an opaque random handle
  (``handles.py``): the running ``Result`` stays here, owned by the principal, until ``DoGet`` fetches
  it. A ticket not fetched within ``flight_ticket_timeout_seconds`` is cancelled, closed and audited.
- ``DoGet`` streams the result's DuckDB Arrow record batches as they come, without a row conversion and
  without holding the result (``GeneratorStream``: the same speed as ``RecordBatchStream`` over the
  same reader, and it lets the server see a client go). A client that goes away (disconnect, deadline,
  cancelled call) cancels its query: the janitor thread polls the open calls' ``is_cancelled()``,
  which also covers a query still computing its first batch, and ``GetFlightInfo`` while it waits.
- ``CancelFlightInfo`` (Flight RPC) and ``CancelQuery`` (Flight SQL) cancel the query behind a FlightInfo.
- ``CreatePreparedStatement`` / ``DoPut(CommandPreparedStatementQuery)`` (one row of parameters, at most
  ``flight_max_parameter_bytes``) / ``ClosePreparedStatement``; a prepared statement unused for
  ``flight_statement_timeout_seconds`` is closed.
- Catalog commands (``CommandGetTables``...): the ticket is the command itself, answered at ``DoGet`` for
  the caller of ``DoGet`` (nothing to steal: another principal gets its own listing).
- Updates, ingestion, Substrait plans and transactions: UNIMPLEMENTED, "this server is read only".

Errors become gRPC statuses in ``statuses.py`` (never a traceback); authentication is ``auth.py``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.flight as flight
from cachetools import LRUCache

from ...platform import Cancellation, Platform
from . import messages as m
from .auth import AuthMiddlewareFactory, Caller, NoOpAuthHandler, Sessions
from .handles import Handles
from .statuses import (
    READ_ONLY,
    InvalidArgument,
    NotFound,
    Unimplemented,
    flight_error,
    quiet,
)

log = logging.getLogger("quanta.flight")

MIDDLEWARE = "quanta"
JANITOR_SECONDS = 0.2  # how often open calls are checked for a client gone away
DIALECT = "duckdb"
MAX_PREPARED = 1000  # open prepared statements per principal (each holds a schema until closed or timed out)
MAX_PREPARED_BYTES = 64 << 20  # what one principal's open prepared statements hold: SQL and bound parameters
MAX_PARAMETER_BATCHES = 64  # record batches of one DoPut (one row of parameters; empty batches weigh nothing)
STOP_GRACE_SECONDS = 5.0  # how long stop() waits for open calls (a client that stopped reading holds its own)

CATALOG_COMMANDS = ("CommandGetCatalogs", "CommandGetDbSchemas", "CommandGetTables", "CommandGetTableTypes",
                    "CommandGetPrimaryKeys", "CommandGetExportedKeys", "CommandGetImportedKeys",
                    "CommandGetCrossReference", "CommandGetSqlInfo", "CommandGetXdbcTypeInfo")
UPDATES = ("CommandStatementUpdate", "CommandPreparedStatementUpdate", "CommandStatementIngest")
ACTIONS = (
    (m.CREATE_PREPARED_STATEMENT, "Creates a prepared statement (a query with ? parameters)"),
    (m.CLOSE_PREPARED_STATEMENT, "Closes a prepared statement"),
    (m.CANCEL_FLIGHT_INFO, "Cancels the query behind a FlightInfo"),
    (m.CANCEL_QUERY, "Cancels the query behind a FlightInfo (Flight SQL's deprecated form)"),
)


@dataclass
class Running:
    """A started query waiting behind a ticket, or streaming. Only the thread that streams it closes a
    streaming result (a close from another thread would pull the cursor from under its read): the others
    cancel it, and the stream ends with CANCELLED."""

    result: Any  # federation.result.Result
    cancel: Cancellation
    streaming: bool = False
    closed: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def begin_stream(self) -> None:
        with self.lock:
            if self.closed:
                raise NotFound("this ticket was cancelled or expired: run the statement again (GetFlightInfo)")
            if self.streaming:
                raise NotFound("this ticket is already being fetched: a statement's result is read once")
            self.streaming = True

    def abandon(self) -> None:
        """Cancel; close too (audited as cancelled) unless a stream reads it."""
        self.cancel.cancel()
        with self.lock:
            if self.streaming or self.closed:
                return
            self.closed = True
        try:
            self.result.cancel()
        finally:
            self.result.close()


@dataclass
class Prepared:
    sql: str
    params: int  # placeholders
    dataset_schema: pa.Schema
    bound: list | None = None  # the parameter row of the last DoPut
    bound_bytes: int = 0  # its Arrow size
    lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def size(self) -> int:
        """What it holds in memory, near enough: its SQL and its bound parameters."""
        return len(self.sql) + self.bound_bytes


class FlightSqlServer(flight.FlightServerBase):
    """A Flight SQL endpoint for ``platform`` on ``host:port`` (0: any free port). ``tls``: a (certificate
    file, key file) pair for ``grpc+tls://``. It accepts calls as soon as it is built; ``start()`` starts
    the janitor (expiries, clients gone away), ``stop()`` shuts down and closes what is open."""

    def __init__(self, platform: Platform, host: str = "127.0.0.1", port: int = 0,
                 tls: tuple[str | Path, str | Path] | None = None):
        self.platform = platform
        self.host = host
        self.scheme = "grpc+tls" if tls else "grpc"
        self.sessions = Sessions(lambda: self._setting("flight_session_timeout_seconds"))
        self.tickets = Handles("ticket", "run the statement again (GetFlightInfo)")
        self.prepared = Handles("prepared statement", "prepare it again (CreatePreparedStatement)")
        self._watched: dict[int, tuple[Any, Any]] = {}  # id -> (call context, what to cancel when it ends)
        self._watch_lock = threading.Lock()
        self._schemas: LRUCache = LRUCache(maxsize=1024)  # result schemas of compiled statements (_describe)
        self._schemas_lock = threading.Lock()
        self._prepared_lock = threading.Lock()  # a principal's prepared bytes: checked and changed together
        self._stopping = threading.Event()
        self._janitor: threading.Thread | None = None
        certificates = None
        if tls:
            cert, key = (Path(p).read_bytes() for p in tls)
            certificates = [flight.CertKeyPair(cert, key)]
        super().__init__(location=f"{self.scheme}://{host}:{port}", auth_handler=NoOpAuthHandler(),
                         tls_certificates=certificates,
                         middleware={MIDDLEWARE: AuthMiddlewareFactory(platform, self.sessions)})

    # -- life cycle ------------------------------------------------------------------------------

    @property
    def location(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self) -> "FlightSqlServer":
        """Start the janitor and the platform's watcher (a server serves changes made by any process)."""
        self.platform.watch()
        if self._janitor is None:
            self._janitor = threading.Thread(target=self._janitor_loop, name="quanta-flight-janitor", daemon=True)
            self._janitor.start()
        return self

    def stop(self, grace: float = STOP_GRACE_SECONDS) -> bool:
        """Cancel what runs, then wait at most ``grace`` seconds for the open calls to end. gRPC's shutdown
        waits for every call, and a stream whose client stopped reading (its connection open) is blocked in
        a write no cancellation reaches: such a client would keep the server from stopping for as long as it
        pleased. Returns False when calls were still open (the caller's process should then exit: the
        blocked calls die with it)."""
        self._stopping.set()
        for running in self.tickets.clear():
            _quietly(running.abandon)
        self.prepared.clear()
        with self._watch_lock:  # streams being read: their queries stop now (the janitor stops watching)
            for _, cancel in list(self._watched.values()):
                _quietly(cancel)
        closing = threading.Thread(target=self.shutdown, name="quanta-flight-shutdown", daemon=True)
        closing.start()
        closing.join(grace)
        if self._janitor is not None:
            self._janitor.join(timeout=5)
        if closing.is_alive():
            log.warning("Flight SQL server stopped with calls still open (clients that stopped reading)")
            return False
        return True

    def __enter__(self) -> "FlightSqlServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _setting(self, name: str):
        return self.platform.mesh.settings[name]

    def _janitor_loop(self) -> None:
        last_sweep = 0.0
        while not self._stopping.wait(JANITOR_SECONDS):
            try:
                with self._watch_lock:
                    watched = list(self._watched.values())
                    for context, cancel in watched:
                        if context.is_cancelled():  # the client went away: its query stops
                            _quietly(cancel)
                if time.monotonic() - last_sweep >= 1.0:
                    last_sweep = time.monotonic()
                    for running in self.tickets.sweep("expired before it was fetched"):
                        _quietly(running.abandon)
                    self.prepared.sweep("was closed after it went unused")
                    self.sessions.sweep()
            except Exception:  # the janitor never dies
                log.exception("flight janitor")

    def _watch(self, key: int, context, cancel) -> None:
        with self._watch_lock:
            self._watched[key] = (context, cancel)

    def _unwatch(self, key: int) -> None:
        with self._watch_lock:
            self._watched.pop(key, None)

    @contextlib.contextmanager
    def _watching(self, context, cancel):
        key = id(cancel)
        self._watch(key, context, cancel)
        try:
            yield
        finally:
            self._unwatch(key)

    # -- the caller ------------------------------------------------------------------------------

    def _caller(self, context) -> tuple[Caller, Any]:
        caller = context.get_middleware(MIDDLEWARE)
        if caller is None:
            raise flight.FlightUnauthenticatedError("no credentials")
        return caller, self.platform.principal(caller.user, caller.claims)  # made in the current state

    # -- Flight RPC ------------------------------------------------------------------------------

    def get_flight_info(self, context, descriptor):
        try:
            caller, principal = self._caller(context)
            name, command = _command(descriptor)
            if name == "CommandStatementQuery":
                _no_transaction(command)
                return self._start(context, descriptor, caller, principal, command.query, None)
            if name == "CommandPreparedStatementQuery":
                prepared = self.prepared.get(command.prepared_statement_handle, caller.user,
                                             self._setting("flight_statement_timeout_seconds"))
                with prepared.lock:
                    bound = prepared.bound
                if prepared.params and bound is None:
                    raise InvalidArgument(f"the prepared statement has {prepared.params} parameter(s) and none "
                                          f"were bound (DoPut with CommandPreparedStatementQuery)")
                return self._start(context, descriptor, caller, principal, prepared.sql, bound)
            if name in CATALOG_COMMANDS:
                schema = _catalog().SCHEMAS[_schema_key(name, command)]
                ticket = flight.Ticket(m.pack(command))
                return flight.FlightInfo(schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)
            raise _unsupported(name)
        except Exception as e:
            raise flight_error(e, "GetFlightInfo") from None

    def _start(self, context, descriptor, caller: Caller, principal, sql: str, params: list | None):
        cancel = Cancellation()
        with self._watching(context, cancel.cancel):  # a client gone while it compiles or waits
            result = self.platform.query(sql, principal, params, dialect=DIALECT, purpose=caller.purpose,
                                         interface="flight", cancel=cancel)
        running = Running(result, cancel)
        if context.is_cancelled():
            running.abandon()
            raise flight.FlightCancelledError("the call was cancelled")
        handle = self.tickets.add(caller.user, running, self._setting("flight_ticket_timeout_seconds"))
        ticket = flight.Ticket(m.pack(m.TicketStatementQuery(statement_handle=handle)))
        return flight.FlightInfo(result.schema, descriptor, [flight.FlightEndpoint(ticket, [])], -1, -1)

    def get_schema(self, context, descriptor):
        try:
            caller, principal = self._caller(context)
            name, command = _command(descriptor)
            if name == "CommandStatementQuery":
                _no_transaction(command)
                plan = self.platform.prepare(command.query, principal, dialect=DIALECT, purpose=caller.purpose,
                                             interface="flight")
                return flight.SchemaResult(self._describe(plan))
            if name == "CommandPreparedStatementQuery":
                prepared = self.prepared.get(command.prepared_statement_handle, caller.user,
                                             self._setting("flight_statement_timeout_seconds"))
                return flight.SchemaResult(prepared.dataset_schema)
            if name in CATALOG_COMMANDS:
                return flight.SchemaResult(_catalog().SCHEMAS[_schema_key(name, command)])
            raise _unsupported(name)
        except Exception as e:
            raise quiet(flight_error(e, "GetSchema")) from None

    def do_get(self, context, ticket):
        try:
            caller, principal = self._caller(context)
            name, command = m.unpack(ticket.ticket)
            if name == "TicketStatementQuery":
                handle = command.statement_handle
                running = self.tickets.hold(handle, caller.user)
                running.begin_stream()
                return flight.GeneratorStream(running.result.schema, _Batches(self, handle, running, context))
            if name in CATALOG_COMMANDS:
                table = self._catalog_table(name, command, principal, caller.purpose)
                return flight.RecordBatchStream(table)
            if command is None and name is not None:
                raise Unimplemented(f"{name} is not a ticket this server issues")
            raise InvalidArgument(f"{name} is not a ticket (a TicketStatementQuery or a catalog command)")
        except Exception as e:
            raise flight_error(e, "DoGet") from None

    def do_put(self, context, descriptor, reader, writer):
        try:
            caller, _ = self._caller(context)
            name, command = _command(descriptor)
            if name in UPDATES:
                raise Unimplemented(f"{name}: {READ_ONLY}")
            if name != "CommandPreparedStatementQuery":
                raise _unsupported(name, "DoPut")
            handle = command.prepared_statement_handle
            prepared = self.prepared.get(handle, caller.user, self._setting("flight_statement_timeout_seconds"))
            row, size = _parameter_row(reader, prepared.params, self._setting("flight_max_parameter_bytes"))
            with self._prepared_lock:
                self._check_prepared_bytes(caller.user, size - prepared.bound_bytes)
                with prepared.lock:
                    prepared.bound, prepared.bound_bytes = row, size
            writer.write(pa.py_buffer(m.DoPutPreparedStatementResult(prepared_statement_handle=handle)
                                      .SerializeToString()))
        except Exception as e:
            raise flight_error(e, "DoPut") from None

    def do_action(self, context, action):
        try:
            caller, principal = self._caller(context)
            kind = action.type
            body = action.body.to_pybytes() if action.body is not None else b""
            if kind == m.CREATE_PREPARED_STATEMENT:
                return [self._create_prepared(caller, principal, body)]
            if kind == m.CLOSE_PREPARED_STATEMENT:
                request = _expect(body, "ActionClosePreparedStatementRequest")
                self.prepared.pop(request.prepared_statement_handle, caller.user, "was closed")
                return []
            if kind == m.CANCEL_FLIGHT_INFO:
                request = m.parse(m.CancelFlightInfoRequest, body)
                status = self._cancel(request.info, caller)
                return [m.CancelFlightInfoResult(status=status).SerializeToString()]
            if kind == m.CANCEL_QUERY:
                request = _expect(body, "ActionCancelQueryRequest")
                status = self._cancel(request.info, caller)
                return [m.pack(m.ActionCancelQueryResult(result=status))]
            if kind in m.REFUSED_ACTIONS:
                raise Unimplemented(f"{kind}: {READ_ONLY} (no transactions, savepoints or Substrait plans)")
            raise Unimplemented(f"unknown action {kind[:100]!r} (actions: "
                                f"{', '.join(a for a, _ in ACTIONS)})")
        except Exception as e:
            raise flight_error(e, "DoAction") from None

    def list_actions(self, context):
        return list(ACTIONS)

    def list_flights(self, context, criteria):
        return iter(())  # nothing is listed: statements are started by GetFlightInfo

    def do_exchange(self, context, descriptor, reader, writer):
        raise Unimplemented("DoExchange is not part of Flight SQL")

    # -- statements ------------------------------------------------------------------------------

    def _create_prepared(self, caller: Caller, principal, body: bytes) -> bytes:
        request = _expect(body, "ActionCreatePreparedStatementRequest")
        _no_transaction(request)
        plan = self.platform.prepare(request.query, principal, dialect=DIALECT, purpose=caller.purpose,
                                     interface="flight")
        schema = self._describe(plan)
        prepared = Prepared(request.query, plan.params, schema)
        with self._prepared_lock:
            self._check_prepared_bytes(caller.user, prepared.size)
            handle = self.prepared.add(caller.user, prepared, self._setting("flight_statement_timeout_seconds"),
                                       limit=MAX_PREPARED)
        parameters = pa.schema([pa.field(f"${i + 1}", pa.null()) for i in range(plan.params)])
        return m.pack(m.ActionCreatePreparedStatementResult(
            prepared_statement_handle=handle, dataset_schema=schema.serialize().to_pybytes(),
            parameter_schema=parameters.serialize().to_pybytes() if plan.params else b""))

    def _check_prepared_bytes(self, user: str, more: int) -> None:
        """UNAVAILABLE when ``more`` bytes would take ``user``'s open prepared statements past
        MAX_PREPARED_BYTES (each lives up to flight_statement_timeout_seconds: a principal could otherwise
        pin MAX_PREPARED x (max_sql_bytes + flight_max_parameter_bytes) of server memory)."""
        held = sum(p.size for p in self.prepared.owned(user))
        if more > 0 and held + more > MAX_PREPARED_BYTES:
            raise flight.FlightUnavailableError(
                f"your open prepared statements hold {held} bytes of SQL and parameters, at most "
                f"{MAX_PREPARED_BYTES} at once: close some first (ClosePreparedStatement)")

    def _describe(self, plan) -> pa.Schema:
        """The Arrow schema of a compiled (governed) statement, without reading data: the engine binds its
        SQL with NULL parameters under ``LIMIT 0``. The server's own engine statement (like the PostgreSQL
        wire's Describe): the plan is the pipeline's, so it names only what the principal may read."""
        state = self.platform.state
        # the SQL the pipeline made decides the schema, per state; keyed by its digest (a client's 256 KB
        # statements would otherwise keep 1024 copies of themselves here)
        key = (state.serial, hashlib.sha256(plan.sql.encode()).digest(), plan.params)
        with self._schemas_lock:
            schema = self._schemas.get(key)
        if schema is not None:
            return schema
        execution = state.backend.execute(f"SELECT * FROM ({plan.sql}) AS quanta_describe LIMIT 0",
                                          [None] * plan.params or None)
        try:
            schema = execution.reader().schema
        finally:
            execution.close()
        with self._schemas_lock:
            self._schemas[key] = schema
        return schema

    def _cancel(self, info_bytes: bytes, caller: Caller) -> int:
        try:
            info = flight.FlightInfo.deserialize(info_bytes)
        except Exception:
            raise InvalidArgument("the cancel request does not hold a FlightInfo") from None
        status = m.CANCEL_NOT_CANCELLABLE
        for endpoint in info.endpoints:
            name, command = m.unpack(endpoint.ticket.ticket)
            if name != "TicketStatementQuery":
                continue  # a catalog listing: nothing runs
            handle = command.statement_handle
            running = self.tickets.get(handle, caller.user)
            if not running.streaming:  # nobody reads it: gone
                self.tickets.end(handle, "was cancelled")
            running.abandon()  # closed (audited) now, or by its stream, which ends CANCELLED
            status = m.CANCEL_CANCELLED
        return status

    # -- catalog ---------------------------------------------------------------------------------

    def _catalog_table(self, name: str, command, principal, purpose) -> pa.Table:
        catalog = _catalog()
        p, opt = self.platform, m.optional
        if name == "CommandGetCatalogs":
            table = catalog.catalogs(p, principal, purpose)
        elif name == "CommandGetDbSchemas":
            table = catalog.db_schemas(p, principal, purpose, opt(command, "catalog"),
                                       opt(command, "db_schema_filter_pattern"))
        elif name == "CommandGetTables":
            table = catalog.tables(p, principal, purpose, opt(command, "catalog"),
                                   opt(command, "db_schema_filter_pattern"),
                                   opt(command, "table_name_filter_pattern"),
                                   list(command.table_types) or None, command.include_schema)
        elif name == "CommandGetTableTypes":
            table = catalog.table_types(p, principal, purpose)
        elif name in ("CommandGetPrimaryKeys", "CommandGetExportedKeys", "CommandGetImportedKeys"):
            function = {"CommandGetPrimaryKeys": catalog.primary_keys, "CommandGetExportedKeys":
                        catalog.exported_keys, "CommandGetImportedKeys": catalog.imported_keys}[name]
            table = function(p, principal, purpose, opt(command, "catalog"), opt(command, "db_schema"),
                             command.table)
        elif name == "CommandGetCrossReference":
            table = catalog.cross_reference(p, principal, purpose, opt(command, "pk_catalog"),
                                            opt(command, "pk_db_schema"), command.pk_table,
                                            opt(command, "fk_catalog"), opt(command, "fk_db_schema"),
                                            command.fk_table)
        elif name == "CommandGetSqlInfo":
            timeout = self._setting("flight_statement_timeout_seconds")
            table = catalog.sql_info(p, list(command.info), statement_timeout_ms=min(int(timeout * 1000), 2**31 - 1))
        else:
            table = catalog.xdbc_type_info(p, opt(command, "data_type"))
        schema = catalog.SCHEMAS[_schema_key(name, command)]
        return table if table.schema.equals(schema) else table.cast(schema)


class _Batches:
    """The record batches of a running result, for ``GeneratorStream``: read from the engine one at a time
    as gRPC asks for them. While it streams, the janitor watches the call (a client gone cancels the
    query); a stream dropped before its end (the client went away) cancels it too. The result is closed,
    hence audited, either way."""

    def __init__(self, server: FlightSqlServer, handle: bytes, running: Running, context):
        self.server = server
        self.handle = handle
        self.running = running
        self.context = context
        self.reader: pa.RecordBatchReader | None = None
        self.done = False

    def __iter__(self):
        return self

    def __next__(self) -> pa.RecordBatch:
        if self.done:
            raise StopIteration
        try:
            if self.reader is None:
                self.server._watch(id(self), self.context, self.running.cancel.cancel)
                self.reader = self.running.result.record_batches()
            return self.reader.read_next_batch()
        except StopIteration:
            self._finish("was already fetched")
            raise
        except BaseException as e:
            self._finish("failed")
            raise flight_error(e, "DoGet stream") from None

    def _finish(self, why: str, cancel: bool = False) -> None:
        if self.done:
            return
        self.done = True
        self.server._unwatch(id(self))
        self.server.tickets.end(self.handle, why)
        if cancel:
            _quietly(self.running.cancel.cancel)
        _quietly(self.running.result.close)
        self.reader = None

    def __del__(self) -> None:  # the stream was dropped before its end: the client went away
        try:
            self._finish("was abandoned by its client", cancel=True)
        except Exception:
            pass


# -- helpers --------------------------------------------------------------------------------------

def _catalog():
    """``catalog.py`` (imported when first asked: the server works without it, answering UNIMPLEMENTED)."""
    try:
        from . import catalog
    except ImportError:
        raise Unimplemented("catalog commands are not available in this installation") from None
    return catalog


def _schema_key(name: str, command) -> str:
    if name == "CommandGetTables" and command.include_schema:
        return "CommandGetTablesWithSchema"
    return name


def _command(descriptor) -> tuple[str, Any]:
    if descriptor.descriptor_type != flight.DescriptorType.CMD:
        raise InvalidArgument("this server answers Flight SQL commands (a FlightDescriptor of type CMD), "
                              "not paths")
    return m.unpack(descriptor.command)


def _expect(body: bytes, expected: str):
    name, message = m.unpack(body)
    if name != expected:
        raise InvalidArgument(f"expected an {expected}, not {name}")
    return message


def _no_transaction(command) -> None:
    if command.HasField("transaction_id"):
        raise Unimplemented(f"transactions are not supported: {READ_ONLY}")


def _unsupported(name: str, call: str = "GetFlightInfo") -> Exception:
    if name in UPDATES:
        return Unimplemented(f"{name}: {READ_ONLY}")
    if name in m.SQL_MESSAGES or name not in m.CLASSES:
        return Unimplemented(f"{name} is not supported by {call} on this server")
    return InvalidArgument(f"{name} is not a command")


def _parameter_row(reader, params: int, limit: int) -> tuple[list, int]:
    """The one row of parameters a client bound (DoPut), as Python values in column order, and its Arrow
    size. A second row or too many batches end the read at once (empty batches weigh nothing but memory)."""
    batches, size, rows = [], 0, 0
    try:
        schema = reader.schema
        while True:
            try:
                chunk = reader.read_chunk()
            except StopIteration:
                break
            if chunk.data is None:
                continue
            size += chunk.data.nbytes
            rows += chunk.data.num_rows
            if size > limit:
                raise InvalidArgument(f"the parameters are larger than {limit} bytes "
                                      f"(setting flight_max_parameter_bytes)")
            if rows > 1:
                raise InvalidArgument(f"a query takes one row of parameters, not {rows} or more")
            if len(batches) >= MAX_PARAMETER_BATCHES:
                raise InvalidArgument(f"one row of parameters came in more than {MAX_PARAMETER_BATCHES} batches")
            batches.append(chunk.data)
    except (pa.ArrowInvalid, OSError) as e:
        if isinstance(e, InvalidArgument):
            raise
        raise InvalidArgument("the parameters are not a readable Arrow stream") from None
    table = pa.Table.from_batches(batches, schema)
    if table.num_rows != 1:
        raise InvalidArgument(f"a query takes one row of parameters, not {table.num_rows}")
    if table.num_columns != params:
        raise InvalidArgument(f"the statement has {params} parameter(s); {table.num_columns} were bound")
    row = []
    for n, column in enumerate(table.columns, start=1):
        try:
            row.append(column[0].as_py())
        except (ArithmeticError, ValueError, TypeError, pa.ArrowException):  # a date past year 9999...
            raise InvalidArgument(f"parameter {n} ({column.type}): its value is out of the range a query "
                                  f"parameter of this type can hold") from None
    return row, size


def _quietly(function) -> None:
    try:
        function()
    except Exception:
        pass
