"""The PostgreSQL wire server: one thread per connection, every query through ``platform.query``.

    PgServer(platform, host="127.0.0.1", port=5433).start()   # background thread
    psql "host=127.0.0.1 port=5433 user=ana dbname=greatparts"   # password: a Quanta token (or a JWT: auth.py)

What the wire layer answers itself (never the pipeline): the startup and authentication, session
statements (SET/SHOW/RESET, BEGIN/COMMIT/ROLLBACK, DISCARD), cursors (DECLARE [BINARY] [[NO] SCROLL]
... [WITH HOLD], FETCH/MOVE in every direction, CLOSE: ``cursors.py``; a NO SCROLL cursor streams from the
query's Arrow reader, a SCROLL cursor keeps the rows it has read in a DuckDB temporary table, never the
whole result in Python's memory) and catalog queries (pg_catalog, information_schema, catalog
functions), answered from an emulated catalog built from the mesh and filtered by the principal's
grants (``catalog.py``). Everything else is a query of the mesh: ``platform.query(sql, principal,
params, dialect="postgres", interface="pgwire")``.

Notes:

- Describe (of a statement or a portal) never runs the query, so it leaves no audit entry: it compiles the
  query through the governance pipeline (a denied query fails there, with 42501) and asks the engine for
  the compiled SQL's column types (``DESCRIBE``, which binds without reading), then for the Arrow schema
  of NULLs of those types; the schema is cached per statement text, parameter types, principal and mesh
  version.
- UUID and JSON columns reach Arrow as strings: the engine's column types (``DESCRIBE`` of the compiled
  SQL, cached) give them Arrow's uuid and json extension types, hence their OIDs (``types.pg_schema``).
- CancelRequest interrupts the running query: through a ``Cancellation`` handed to ``platform.query``
  before the engine starts (so a query still in its first blocking call, an aggregate over a large
  join say, is interrupted too), and through ``Result.cancel()`` while rows stream.
- Rows are encoded a record batch at a time, column-wise (``types.data_rows``); Execute with a row limit
  keeps the batch and the Arrow reader for the next Execute (PortalSuspended).
- Connections are bounded (``pg_max_connections``): beyond, a connection is answered FATAL 53300 "sorry,
  too many clients already" after its startup packet (a CancelRequest is still served), by at most
  ``REJECTING`` threads at once, and closed unanswered past that. The startup and authentication must
  finish within ``pg_startup_timeout_seconds``; a session that sends nothing for ``pg_idle_timeout_seconds``
  (or does not read what it is sent for as long: a half-open connection) is closed, FATAL 57P05. The time-out
  of a query is the server's, lowered by the session's ``statement_timeout`` (``timeouts.py``) and then by
  the mesh's limit in ``platform.query``.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import secrets
import socket
import ssl
import struct
import threading
import time
from dataclasses import dataclass
from typing import Any, Iterator

import pyarrow as pa
import sqlglot.expressions as exp
from cachetools import LRUCache

from ... import errors
from ...governance.principals import Identity
from ...platform import Cancellation
from ...rewrite.limits import check_sql
from ...settings import DEFAULTS
from . import auth, params as pparams, protocol as pm
from . import types as pgt
from .catalog import CatalogEngine, is_catalog_query
from .copy import CopyEncoder, is_copy, parse_copy
from .cursors import Cursor, ScrollCursor, ScrollError, StreamCursor
from .dollar import space_parameters
from .labels import quote_reserved_labels
from .rows import RowSource, table_source
from .session import REPORTED, Session, Statement, classify, open_session, split, with_search_path
from .timeouts import effective_timeout

# connection limits (mesh settings, or PgServer's arguments)
MAX_CONNECTIONS = DEFAULTS["pg_max_connections"]  # (PostgreSQL's default max_connections)
STARTUP_TIMEOUT = DEFAULTS["pg_startup_timeout_seconds"]  # startup packet, TLS and authentication
IDLE_TIMEOUT = DEFAULTS["pg_idle_timeout_seconds"]  # no message received, or nothing of the answer read (0: none)
REJECTING = 16  # connections being answered "too many clients" at once (beyond: closed unanswered)
REJECT_TIMEOUT = 5.0  # their startup packet must come within this

log = logging.getLogger("quanta.pgwire")


class WireError(Exception):
    """An error to report with a SQLSTATE (for failures of the wire layer itself)."""

    def __init__(self, sqlstate: str, message: str, severity: str = "ERROR"):
        super().__init__(message)
        self.sqlstate = sqlstate
        self.message = message
        self.severity = severity


def error_message(e: BaseException, sql: str | None = None) -> bytes:
    if isinstance(e, WireError):
        return pm.error_response(e.sqlstate, e.message, e.severity)
    if isinstance(e, ScrollError):
        return pm.error_response(e.sqlstate, str(e), hint=e.hint)
    if isinstance(e, auth.ScramError):
        return pm.error_response(e.sqlstate, str(e), "FATAL")
    if isinstance(e, errors.Error):
        position = None
        if e.position and sql:
            line, col = e.position
            lines = sql.split("\n")
            if 1 <= line <= len(lines):
                position = sum(len(x) + 1 for x in lines[:line - 1]) + max(col, 1)
        return pm.error_response(e.sqlstate, e.message, position=position)
    log.exception("internal error in the PostgreSQL server")
    return pm.error_response("XX000", f"internal error: {type(e).__name__}")


# -- prepared statements and portals -------------------------------------------------------------------------


@dataclass
class Prepared:
    name: str
    sql: str
    statement: Statement
    param_oids: list[int]


@dataclass
class Portal:
    name: str
    prepared: Prepared
    params: list[Any]
    result_formats: list[int]
    source: RowSource | None = None
    complete: bytes | None = None  # CommandComplete of a statement without rows, once run


# -- the server ----------------------------------------------------------------------------------------------


class PgServer:
    def __init__(self, platform, host: str = "127.0.0.1", port: int = 5433, tls_cert: str | None = None,
                 tls_key: str | None = None, allow_cleartext: bool = False, timeout: float | None = None,
                 max_connections: int | None = None, startup_timeout: float | None = None,
                 idle_timeout: float | None = None):
        """``max_connections``, ``startup_timeout``, ``idle_timeout`` (seconds, 0: none): None reads the mesh's
        ``pg_max_connections``, ``pg_startup_timeout_seconds``, ``pg_idle_timeout_seconds``."""
        self.platform = platform
        self.host = host
        self.port = port
        self.allow_cleartext = allow_cleartext
        self.timeout = timeout
        self._limits = {"pg_max_connections": max_connections, "pg_startup_timeout_seconds": startup_timeout,
                        "pg_idle_timeout_seconds": idle_timeout}
        self._open = 0  # connections admitted and not yet closed
        self._rejecting = 0  # connections being refused
        self.tls: ssl.SSLContext | None = None
        if tls_cert:
            self.tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            self.tls.load_cert_chain(tls_cert, tls_key)
        self.catalog = CatalogEngine(platform, timeout)
        self.describe_cache: LRUCache[tuple, Any] = LRUCache(maxsize=1024)  # result schemas (never rows)
        self.describe_lock = threading.Lock()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self._connections: dict[int, "Connection"] = {}
        self._lock = threading.Lock()
        self._pids = itertools.count(secrets.randbelow(1 << 20) + 1000)

    # -- lifecycle ---------------------------------------------------------------------------------------

    def _listen(self) -> None:
        if self._sock is not None:
            return
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        sock.listen(128)
        self.port = sock.getsockname()[1]
        self._sock = sock

    def start(self) -> "PgServer":
        """Listen, then accept connections in a background thread; returns once listening."""
        self._listen()
        self.platform.watch()  # a server serves changes made by any process
        self._thread = threading.Thread(target=self._accept_loop, name=f"pgwire:{self.port}", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self._listen()
        self.platform.watch()
        self._accept_loop()

    def stop(self) -> None:
        self._stopping.set()
        sock, self._sock = self._sock, None
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()
        with self._lock:
            conns = list(self._connections.values())
        for c in conns:
            c.close()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def __enter__(self) -> "PgServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            sock = self._sock
            if sock is None:
                return
            try:
                client, _ = sock.accept()
            except OSError:
                if self._stopping.is_set():
                    return
                continue
            self._admit(client)

    def limit(self, name: str) -> float:
        """A connection limit: the server's argument, else the mesh's setting (or its declared default)."""
        value = self._limits.get(name)
        if value is None:
            value = self.platform.mesh.settings[name]
        return float(value)

    def _admit(self, client: socket.socket) -> None:
        """Start a connection's thread: admitted below ``pg_max_connections``, else to be refused (53300)."""
        idle = self.limit("pg_idle_timeout_seconds")
        try:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            _keepalive(client, idle)
        except OSError:
            client.close()
            return
        with self._lock:
            if self._open < self.limit("pg_max_connections"):
                self._open += 1
                admitted = True
            elif self._rejecting < REJECTING:
                self._rejecting += 1
                admitted = False
            else:
                client.close()
                return
        startup = self.limit("pg_startup_timeout_seconds")
        conn = Connection(self, client, admitted, startup if admitted else min(startup, REJECT_TIMEOUT), idle)
        try:
            threading.Thread(target=conn.run, name="pgwire-conn", daemon=True).start()
        except RuntimeError:  # no thread to be had
            self.closed(conn)
            conn.close()

    def closed(self, conn: "Connection") -> None:
        """A connection's thread has ended: its place is free."""
        with self._lock:
            if conn.admitted:
                self._open -= 1
            else:
                self._rejecting -= 1

    @property
    def open_connections(self) -> int:
        with self._lock:
            return self._open

    # -- cancel ------------------------------------------------------------------------------------------

    def register(self, conn: "Connection") -> None:
        with self._lock:
            self._connections[conn.pid] = conn

    def unregister(self, conn: "Connection") -> None:
        with self._lock:
            if self._connections.get(conn.pid) is conn:
                del self._connections[conn.pid]

    def cancel(self, pid: int, secret: int) -> None:
        with self._lock:
            conn = self._connections.get(pid)
        if conn is not None and secrets.compare_digest(struct.pack("!I", conn.secret), struct.pack("!I", secret)):
            conn.cancel_running()


class Connection:
    def __init__(self, server: PgServer, sock: socket.socket, admitted: bool = True,
                 startup_timeout: float = STARTUP_TIMEOUT, idle_timeout: float = IDLE_TIMEOUT):
        self.server = server
        self.platform = server.platform
        self.sock = sock
        self.admitted = admitted  # False: answered "too many clients" after its startup packet
        self.idle_timeout = idle_timeout
        self.reader = pm.Reader(sock, deadline=time.monotonic() + startup_timeout)
        self.out: list[bytes] = []
        self.out_size = 0
        self.pid = next(server._pids)
        self.secret = secrets.randbits(32)
        self.session: Session | None = None
        self._user: str | None = None  # who authenticated, with which token: the principal is looked up again
        self._token_id: str | None = None  # on each new state, the token checked again every TOKEN_RECHECK s
        self._claims = None  # a JWT's claims (governance.oidc): they count again on each new state
        self._expires_at: float | None = None  # a JWT's expiry: the session ends with it
        self._principal = None
        self._principal_state = None
        self._token_checked = 0.0
        self.prepared: dict[str, Prepared] = {}
        self.portals: dict[str, Portal] = {}
        self.cursors: dict[str, Cursor] = {}
        self.running_result = None
        self.running_cancel: Cancellation | None = None
        self._run_lock = threading.Lock()
        self.skip_to_sync = False
        self.tls_active = False
        self._current_sql: str | None = None  # for error positions

    # -- output ------------------------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        self.out.append(data)
        self.out_size += len(data)
        if self.out_size >= 256 * 1024:
            self.flush()

    def flush(self) -> None:
        if self.out:
            data = b"".join(self.out)
            self.out, self.out_size = [], 0
            try:
                self.sock.sendall(data)
            except OSError:
                raise pm.ClientGone() from None

    def close(self) -> None:
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            self.sock.close()
        except OSError:
            pass

    def cancel_running(self) -> None:
        with self._run_lock:
            result, cancel = self.running_result, self.running_cancel
        if cancel is not None:
            cancel.cancel()
        if result is not None:
            try:
                result.cancel()
            except Exception:
                pass

    # -- lifecycle ---------------------------------------------------------------------------------------

    def run(self) -> None:
        try:
            if not self.startup():
                return
            self.server.register(self)
            self.loop()
        except pm.TimedOut:
            if self.session is None:
                self.goodbye("57014", "canceling authentication due to timeout: the startup did not complete "
                                      "in time (setting pg_startup_timeout_seconds)")
            else:
                self.goodbye("57P05", "terminating connection due to idle-session timeout (setting "
                                      "pg_idle_timeout_seconds)")
        except pm.ClientGone:
            pass
        except pm.ProtocolViolation as e:
            try:
                self.send(pm.error_response("08P01", str(e), "FATAL"))
                self.flush()
            except pm.ClientGone:
                pass
        except Exception:
            log.exception("PostgreSQL connection failed")
        finally:
            self.server.unregister(self)
            for portal in self.portals.values():
                if portal.source is not None:
                    portal.source.close()
            self.close_cursors()  # a SCROLL cursor's table goes with its DuckDB connection, whatever the client did
            self.close()
            self.server.closed(self)

    def goodbye(self, sqlstate: str, message: str) -> None:
        """A last FATAL error for a client about to be disconnected, if it takes it at once."""
        try:
            self.sock.settimeout(1.0)
            self.sock.sendall(b"".join(self.out) + pm.error_response(sqlstate, message, "FATAL"))
        except OSError:
            pass
        self.out, self.out_size = [], 0

    def startup(self) -> bool:
        while True:
            code, body = self.reader.startup()
            if code == pm.SSL_REQUEST:
                if self.server.tls is not None and not self.tls_active:
                    self.sock.sendall(b"S")
                    self.sock.settimeout(max(self.reader.deadline - time.monotonic(), 0.001))  # the handshake too
                    try:
                        self.sock = self.server.tls.wrap_socket(self.sock, server_side=True)
                    except socket.timeout:
                        raise pm.TimedOut() from None
                    except OSError:  # the handshake failed (ssl.SSLError is an OSError)
                        raise pm.ClientGone() from None
                    self.sock.settimeout(None)
                    self.reader = pm.Reader(self.sock, self.reader.deadline)
                    self.tls_active = True
                else:
                    self.sock.sendall(b"N")
                continue
            if code == pm.GSSENC_REQUEST:
                self.sock.sendall(b"N")
                continue
            if code == pm.CANCEL_REQUEST:
                pid, secret = struct.unpack("!iI", body[:8])
                self.server.cancel(pid, secret)
                return False
            break
        if not self.admitted:
            limit = int(self.server.limit("pg_max_connections"))
            self.goodbye("53300", f"sorry, too many clients already: this server accepts {limit} connections at "
                                  "once (setting pg_max_connections)")
            return False
        major, minor = code >> 16, code & 0xFFFF
        if major != 3:
            self.send(pm.error_response("0A000", f"unsupported frontend protocol {major}.{minor}: "
                                                 "this server speaks 3.0", "FATAL"))
            self.flush()
            return False
        options = pm.parse_startup(body)
        unsupported = [k for k in options if k.startswith("_pq_.")]
        if minor > 0 or unsupported:
            self.send(pm.negotiate_protocol_version(0, unsupported))
        user = options.get("user", "")
        if not user:
            self.platform.login_failed("pgwire", "no_credentials", None, self.peer())
            self.send(pm.error_response("28000", "no PostgreSQL user name specified in startup packet", "FATAL"))
            self.flush()
            return False
        try:  # a client with too many failed logins lately is refused before any exchange (53300)
            self.platform.check_login("pgwire", self.peer(), user)
        except errors.LoginThrottled as e:
            self.goodbye(e.sqlstate, e.message)
            return False
        try:
            identity = self.authenticate(user)
            self._token_id, self._claims, self._expires_at = identity.token_id, identity.claims, identity.expires_at
            self._principal = self.platform.principal(user, identity.claims)
            self._user, self._principal_state, self._token_checked = user, self.platform.state, time.monotonic()
        except (auth.ScramError, errors.Error, WireError) as e:
            self.send(error_message(e) if not isinstance(e, errors.Error)
                      else pm.error_response("28P01", f'password authentication failed for user "{user}"', "FATAL"))
            self.flush()
            return False
        try:  # the database must be the mesh's (3D000), a declared purpose one the principal holds (42501)
            self.session = open_session(user, options, self.platform, self.principal)
            self.session.open_cursors = lambda: [c.row() for c in self.cursors.values()]
        except errors.Error as e:
            self.send(pm.error_response(e.sqlstate, e.message, "FATAL"))
            self.flush()
            return False
        self.send(pm.AUTH_OK)
        for name in REPORTED:
            value = self.session.get(name)
            if value is not None:
                self.send(pm.parameter_status(name, value))
        self.send(pm.backend_key_data(self.pid, self.secret))
        self.send(pm.ready_for_query(self.session.status))
        self.flush()
        self.reader.deadline = None  # started: from now on the idle time-out
        return True

    def authenticate(self, user: str) -> Identity:
        """Who the client proves to be (``auth``): SCRAM-SHA-256 with a Quanta token, or the password itself
        (AuthenticationCleartextPassword) when the mesh trusts identity providers and the connection is
        encrypted or local (``auth.password_login``): then a JWT or a Quanta token, checked by
        ``platform.identify`` like every interface's credential. Every refusal is recorded
        (``platform.login_failed``: by ``identify`` for a password, here for a SCRAM exchange); a client that
        hangs up (libpq asking for a password first) or times out is not a failed login."""
        if self.server.allow_cleartext or auth.password_login(self.platform, self.tls_active, self.sock):
            self.send(pm.AUTH_CLEARTEXT)
            self.flush()
            kind, body = self.reader.message()
            if kind != b"p":
                raise pm.ProtocolViolation("expected a password message")
            password = pm.Buffer(body).cstring()
            try:
                return self.platform.identify(password, "pgwire", self.peer(), user)
            except errors.AuthenticationError as e:  # a JWT's refusal says why (no user is named by it)
                why = "" if password.startswith("qt_") else f": {e.message}"
                raise auth.ScramError(f'password authentication failed for user "{user}"{why}') from None
        try:
            return self._scram(user)
        except auth.ScramError as e:
            reason = getattr(e, "reason", None) or ("wrong_password" if e.sqlstate == "28P01" else "protocol_error")
            self.platform.login_failed("pgwire", reason, user, self.peer(), token_id=getattr(e, "token_id", None))
            raise
        except pm.ProtocolViolation:
            self.platform.login_failed("pgwire", "protocol_error", user, self.peer())
            raise

    def peer(self) -> str | None:
        """The client's address (None for a socket that has none)."""
        try:
            address = self.sock.getpeername()
        except OSError:
            return None
        return str(address[0]) if isinstance(address, tuple) and address else None

    def _scram(self, user: str) -> Identity:
        store = auth.store_for(self.platform)
        scram = auth.ScramServer(store, user)
        self.send(pm.authentication(10, pm.cstr(auth.MECHANISM) + b"\0"))
        self.flush()
        kind, body = self.reader.message()
        if kind != b"p":
            raise pm.ProtocolViolation("expected a SASLInitialResponse")
        buf = pm.Buffer(body)
        mechanism = buf.cstring()
        if mechanism != auth.MECHANISM:
            raise auth.ScramError(f"unsupported SASL mechanism {mechanism!r}", "28000")
        n = buf.int32()
        first = buf.bytes(n).decode() if n >= 0 else ""
        self.send(pm.authentication(11, scram.first(first).encode()))
        self.flush()
        kind, body = self.reader.message()
        if kind != b"p":
            raise pm.ProtocolViolation("expected a SASLResponse")
        verifier, final = scram.final(body.decode())
        if not auth.token_active(self.platform, verifier.token_id):
            refused = auth.ScramError(f'password authentication failed for user "{user}"')
            refused.token_id = verifier.token_id  # a revoked or expired token of the store: its id is logged
            refused.reason = "token_revoked_or_expired"
            raise refused
        self.send(pm.authentication(12, final.encode()))
        return Identity(user, token_id=verifier.token_id)

    @property
    def principal(self):
        """The connection's principal as the platform's current state knows it: roles, groups and attributes
        changed by a reload apply to open connections at their next statement, as new grants and policies do."""
        if self._user is None:
            return None
        state = self.platform.state
        if self._principal_state is not state:
            self._principal, self._principal_state = self.platform.principal(self._user, self._claims), state
        return self._principal

    def token_revoked(self) -> bool:
        """Whether the token this connection logged in with was revoked or expired (checked at most every
        TOKEN_RECHECK seconds: one indexed read)."""
        if self._expires_at is not None and time.time() > self._expires_at:
            return True
        if self._token_id is None or time.monotonic() - self._token_checked < TOKEN_RECHECK:
            return False
        self._token_checked = time.monotonic()
        return not auth.token_active(self.platform, self._token_id)

    # -- the message loop --------------------------------------------------------------------------------

    def loop(self) -> None:
        handlers = {b"Q": self.on_query, b"P": self.on_parse, b"B": self.on_bind, b"D": self.on_describe,
                    b"E": self.on_execute, b"C": self.on_close, b"S": self.on_sync, b"H": self.on_flush}
        idle = self.idle_timeout
        while True:
            if not self.reader.pending():
                self.flush()
                self.reader.deadline = time.monotonic() + idle if idle else None
            kind, body = self.reader.message()
            self.reader.deadline = None
            if kind == b"X":
                return
            if kind in (b"Q", b"P", b"B", b"E", b"D") and self.token_revoked():  # the session ends with its token
                self.platform.login_failed("pgwire", "session_ended", self._user, self.peer(), token_id=self._token_id)
                self.send(pm.error_response("28P01", "the token of this connection was revoked or has expired",
                                            "FATAL"))
                self.flush()
                return
            handler = handlers.get(kind)
            if kind in (b"S", b"Q"):
                self.skip_to_sync = False
            if self.skip_to_sync:
                continue
            if handler is None:
                if kind in (b"d", b"c", b"f"):  # COPY data outside COPY: ignore
                    continue
                self.send(pm.error_response("08P01", f"unsupported frontend message {kind!r}"))
                self.skip_to_sync = True
                continue
            try:
                handler(pm.Buffer(body))
            except pm.ClientGone:
                raise
            except pm.ProtocolViolation:
                raise
            except Exception as e:  # noqa: BLE001 - every error goes to the client with its SQLSTATE
                self.fail(e, self._current_sql)
                if kind != b"Q":
                    self.skip_to_sync = True

    def fail(self, e: BaseException, sql: str | None = None) -> None:
        self.send(error_message(e, sql))
        if self.session.in_transaction:
            self.session.failed = True

    # -- simple query ------------------------------------------------------------------------------------

    def on_query(self, buf: pm.Buffer) -> None:
        sql = buf.cstring()
        try:
            check_sql(sql, self.platform.mesh.settings)  # before any tokenizing: 54001 when too large or deep
            texts = split(quote_reserved_labels(space_parameters(sql)))
        except errors.Error as e:
            self.fail(e, sql)
            texts = []
        for text in texts:
            self._current_sql = text
            try:
                statement = self.classify(text)
                if statement.kind == "empty":
                    self.send(pm.EMPTY_QUERY)
                    continue
                prepared = Prepared("", text, statement, [])
                portal = Portal("", prepared, [], self.simple_formats(statement))
                self.execute_portal(portal, None, describe=True)
            except pm.ClientGone:
                raise
            except Exception as e:  # noqa: BLE001
                self.fail(e, text)
                break
        self._current_sql = None
        self.send(pm.ready_for_query(self.session.status))
        if not self.session.in_transaction:
            self.close_portals()

    def simple_formats(self, statement: Statement) -> list[int]:
        """Result formats of a simple query: binary for a FETCH from a BINARY cursor (with the extended
        protocol, Bind's formats decide, as in PostgreSQL)."""
        cursor = self.cursors.get((statement.name or "").lower()) if statement.kind == "fetch" else None
        return [1] if cursor is not None and cursor.binary else []

    def classify(self, text: str) -> Statement:
        if is_copy(text):  # COPY ... TO STDOUT: its query is classified when it runs
            return Statement("copy", text, query=parse_copy(text).query, tag="COPY")
        return with_search_path(classify(text, lambda expression: is_catalog_query(expression, self.platform.mesh)),
                                self.session, self.platform)

    # -- extended query ----------------------------------------------------------------------------------

    def on_parse(self, buf: pm.Buffer) -> None:
        name = buf.cstring()
        sql = buf.cstring()
        n = buf.int16()
        oids = [buf.uint32() for _ in range(n)]
        self._current_sql = sql
        check_sql(sql, self.platform.mesh.settings)
        texts = split(quote_reserved_labels(space_parameters(sql)))
        if len(texts) > 1:
            raise WireError("42601", "cannot insert multiple commands into a prepared statement")
        statement = self.classify(texts[0])
        inner = self.classify(statement.query or "") if statement.kind == "declare" else statement
        if inner.kind == "query":  # errors now, like PostgreSQL's Parse; a refusal is audited (a catalog: at run)
            self.platform.prepare(inner.text, self.principal, dialect="postgres", interface="pgwire",
                                  purpose=self.session.purpose)
        if statement.kind in ("query", "catalog"):
            oids = pparams.infer(statement.expression, self.platform.mesh, oids)
        if name and name in self.prepared:
            raise WireError("42P05", f'prepared statement "{name}" already exists')
        self.prepared[name] = Prepared(name, sql, statement, oids)
        self.send(pm.PARSE_COMPLETE)

    def on_bind(self, buf: pm.Buffer) -> None:
        portal_name = buf.cstring()
        statement_name = buf.cstring()
        prepared = self.prepared.get(statement_name)
        if prepared is None:
            raise WireError("26000", f'prepared statement "{statement_name}" does not exist')
        self._current_sql = prepared.sql
        n_formats = buf.int16()
        formats = [buf.int16() for _ in range(n_formats)]
        n_params = buf.int16()
        if n_params != len(prepared.param_oids) and not (n_params == 0 and not prepared.param_oids):
            if n_params > len(prepared.param_oids):
                prepared.param_oids = prepared.param_oids + [pgt.TEXT] * (n_params - len(prepared.param_oids))
            else:
                raise WireError("08P01", f"bind message supplies {n_params} parameters, but prepared statement "
                                         f"\"{statement_name}\" requires {len(prepared.param_oids)}")
        values = []
        for i in range(n_params):
            length = buf.int32()
            fmt = formats[i] if len(formats) > 1 else (formats[0] if formats else 0)
            if length < 0:
                values.append(None)
                continue
            raw = buf.bytes(length)
            oid = prepared.param_oids[i]
            try:
                values.append(pgt.decode_binary(raw, oid) if fmt == 1 else pgt.decode_text(raw.decode(), oid))
            except (ValueError, struct.error, UnicodeDecodeError) as e:
                raise WireError("22P02", f"invalid value for parameter ${i + 1}: {e}") from None
        n_results = buf.int16()
        result_formats = [buf.int16() for _ in range(n_results)]
        if portal_name and portal_name in self.portals:
            raise WireError("42P03", f'portal "{portal_name}" already exists')
        old = self.portals.pop(portal_name, None)
        if old is not None and old.source is not None:
            old.source.close()
        self.portals[portal_name] = Portal(portal_name, prepared, values, result_formats)
        self.send(pm.BIND_COMPLETE)

    def on_describe(self, buf: pm.Buffer) -> None:
        kind = buf.bytes(1)
        name = buf.cstring()
        if kind == b"S":
            prepared = self.prepared.get(name)
            if prepared is None:
                raise WireError("26000", f'prepared statement "{name}" does not exist')
            self._current_sql = prepared.sql
            self.send(pm.parameter_description(prepared.param_oids))
            schema = self.describe(prepared, [None] * len(prepared.param_oids))
            self.send(pm.row_description(self.fields(schema, [])) if schema is not None else pm.NO_DATA)
        elif kind == b"P":
            portal = self.portals.get(name)
            cursor = self.cursors.get(name.lower()) if portal is None else None
            if cursor is not None:  # a cursor of DECLARE is a portal too (psycopg describes it)
                self.send(pm.row_description(self.fields(cursor.schema, [])))
                return
            if portal is None:
                raise WireError("34000", f'portal "{name}" does not exist')
            self._current_sql = portal.prepared.sql
            schema = portal.source.schema if portal.source is not None else self.describe(portal.prepared,
                                                                                          portal.params)
            self.send(pm.row_description(self.fields(schema, portal.result_formats)) if schema is not None
                      else pm.NO_DATA)
        else:
            raise pm.ProtocolViolation("invalid Describe kind")

    def on_execute(self, buf: pm.Buffer) -> None:
        name = buf.cstring()
        limit = buf.int32()
        portal = self.portals.get(name)
        if portal is None:
            raise WireError("34000", f'portal "{name}" does not exist')
        self._current_sql = portal.prepared.sql
        if portal.prepared.statement.kind == "empty":
            self.send(pm.EMPTY_QUERY)
            return
        self.execute_portal(portal, limit if limit > 0 else None, describe=False)

    def on_close(self, buf: pm.Buffer) -> None:
        kind = buf.bytes(1)
        name = buf.cstring()
        if kind == b"S":
            self.prepared.pop(name, None)
        elif kind == b"P":
            portal = self.portals.pop(name, None)
            if portal is not None and portal.source is not None:
                portal.source.close()
        else:
            raise pm.ProtocolViolation("invalid Close kind")
        self.send(pm.CLOSE_COMPLETE)

    def on_sync(self, buf: pm.Buffer) -> None:
        if not self.session.in_transaction:
            self.close_portals()
        self.send(pm.ready_for_query(self.session.status))

    def on_flush(self, buf: pm.Buffer) -> None:
        self.flush()

    def close_portals(self) -> None:
        for portal in self.portals.values():
            if portal.source is not None:
                portal.source.close()
        self.portals.clear()

    # -- describing without executing ---------------------------------------------------------------------

    def fields(self, schema: pa.Schema, formats: list[int]) -> list[pm.Field]:
        n = len(schema)
        fmts = formats * n if len(formats) == 1 else (formats or [0] * n)
        out = []
        for i, f in enumerate(schema):
            oid, size, typmod = pgt.arrow_oid(f.type)
            out.append(pm.Field(f.name, oid, size, typmod, format=fmts[i] if i < len(fmts) else 0))
        return out

    def describe(self, prepared: Prepared, values: list[Any]) -> pa.Schema | None:
        """The result schema of a statement, without running it (None: it returns no rows)."""
        st = prepared.statement
        if st.kind == "query":
            key = (st.text, tuple(prepared.param_oids), self.principal.fingerprint,  # st.text: on the search_path
                   self.platform.state.namespace.version)
            with self.server.describe_lock:
                schema = self.server.describe_cache.get(key)
            if schema is not None:
                return schema
            sql = _typed_parameters(st, prepared.param_oids)
            if sql is None:
                return None
            plan = self.platform.compile(sql, self.principal, dialect="postgres",  # governed: denied -> 42501
                                         purpose=self.session.purpose)
            columns = self.engine_columns(plan, len(prepared.param_oids))
            nulls = ", ".join(f"CAST(NULL AS {t}) AS {_quote(name)}" for name, t in columns)
            schema = pgt.pg_schema(_engine_table(self.platform.state.backend, f"SELECT {nulls} LIMIT 0").schema,
                                   [t for _, t in columns])
            with self.server.describe_lock:
                self.server.describe_cache[key] = schema
            return schema
        if st.kind == "catalog":
            return self.server.catalog.schema(st.expression, self.principal, self.session, values,
                                              prepared.param_oids)
        if st.kind == "show":
            return self.show_table(st).schema
        if st.kind == "fetch":
            cursor = self.cursors.get((st.name or "").lower())
            return cursor.schema if cursor is not None else None
        return None

    def engine_columns(self, plan, params: int) -> list[tuple[str, str]]:
        """(name, DuckDB type) of each column of a compiled query with ``params`` parameters: ``DESCRIBE``
        binds it (parameters as NULLs), reads nothing."""
        key = ("columns", plan.sql, params, self.platform.state.namespace.version)
        with self.server.describe_lock:
            columns = self.server.describe_cache.get(key)
        if columns is None:
            table = _engine_table(self.platform.state.backend, f"DESCRIBE {plan.sql}", [None] * params)
            columns = list(zip(table.column("column_name").to_pylist(), table.column("column_type").to_pylist()))
            with self.server.describe_lock:
                self.server.describe_cache[key] = columns
        return columns

    def query_source(self, result, params: int) -> RowSource:
        """The rows of a query's result, its UUID and JSON columns typed from the engine's column types."""
        schema = result.schema
        if pgt.has_strings(schema):
            try:
                schema = pgt.pg_schema(schema, [t for _, t in self.engine_columns(result.plan, params)])
            except errors.Error:  # the query ran: its columns keep their Arrow types rather than fail
                log.warning("could not describe the columns of a query: UUID and JSON columns sent as text")
        batches = iter(result.record_batches())
        if schema != result.schema:
            batches = (pgt.conform(b, schema) for b in batches)
        return RowSource(schema, batches, result)

    # -- running statements -------------------------------------------------------------------------------

    def execute_portal(self, portal: Portal, limit: int | None, describe: bool) -> None:
        """Run (or continue) a portal: rows up to ``limit`` then PortalSuspended, or CommandComplete."""
        st = portal.prepared.statement
        if self.session.failed and st.kind not in ("commit", "rollback"):
            raise WireError("25P02", "current transaction is aborted, commands ignored until end of transaction "
                                     "block")
        if portal.complete is not None:
            self.send(portal.complete)
            return
        if st.kind == "copy":
            portal.complete = self.copy_out(st, portal.params, portal.prepared.param_oids)
            return
        if portal.source is None:
            source = self.start(st, portal.params, portal.prepared.param_oids)
            if source is None:
                portal.complete = pm.command_complete(st.tag or "SELECT 0")
                self.send(portal.complete)
                return
            portal.source = source
            formats = portal.result_formats
            n = len(source.schema)
            fmts = formats * n if len(formats) == 1 else (formats or [0] * n)
            source.configure(fmts, self.session.timezone)
            if describe:
                self.send(pm.row_description(source.fields(fmts)))
        self.stream(portal.source, limit, portal)

    def copy_out(self, st: Statement, values: list[Any], oids: list[int]) -> bytes:
        """COPY ... TO STDOUT: its query run like any other (the same principal, purpose, audit), its rows
        streamed in CopyData messages; returns the CommandComplete sent ("COPY n")."""
        copy = parse_copy(st.text)
        inner = self.classify(copy.query)
        if inner.kind not in ("query", "catalog"):
            raise WireError("42601", "COPY needs a query: COPY (SELECT ...) TO STDOUT or COPY table TO STDOUT")
        try:
            source = self.start(inner, values, oids)
        except errors.Error as e:  # a position in the query, told in the COPY statement
            e.position = copy.position(st.text, e.position)
            raise
        assert source is not None
        try:
            encoder = CopyEncoder(copy, source.schema, self.session.timezone)
            self.send(encoder.response())
            self.send(encoder.header())
            rows = 0
            with self.interruptible(source.result):
                for batch in source.batches:
                    self.send(encoder.rows(batch))
                    rows += batch.num_rows
            self.send(encoder.trailer())
            self.send(pm.COPY_DONE)
        except pm.ClientGone:
            source.cancel()
            raise
        finally:
            source.close()
        complete = pm.command_complete(f"COPY {rows}")
        self.send(complete)
        return complete

    @contextlib.contextmanager
    def interruptible(self, target) -> Iterator[None]:
        """Meanwhile a CancelRequest cancels ``target`` (a Result, a cursor)."""
        with self._run_lock:
            self.running_result = target
        try:
            yield
        finally:
            with self._run_lock:
                self.running_result = None

    def stream(self, source: RowSource, limit: int | None, portal: Portal | None) -> None:
        try:
            with self.interruptible(source.result):
                for chunk, _ in source.take(limit):
                    self.send(chunk)
        except pm.ClientGone:  # the client went away (or stopped reading): its query stops now
            if source.result is not None:
                source.result.cancel()
            source.close()
            raise
        if source.done:
            tag = f"{source.tag} {source.sent}" if source.tag in ("SELECT", "FETCH", "MOVE") else source.tag
            complete = pm.command_complete(tag)
            if portal is not None:
                portal.complete = complete
            self.send(complete)
        else:
            self.send(pm.PORTAL_SUSPENDED)

    def start(self, st: Statement, values: list[Any], oids: list[int]) -> RowSource | None:
        """Start a statement: a RowSource for statements with rows, None for the others (done)."""
        session = self.session
        kind = st.kind
        if kind == "query":
            cancel = Cancellation()
            with self._run_lock:
                self.running_cancel = cancel  # a CancelRequest reaches the engine even before rows flow
            try:
                timeout = effective_timeout(self.server.timeout, session)  # the platform lowers it to the mesh's
                result = self.platform.query(st.text, self.principal, values or None, dialect="postgres",
                                             interface="pgwire", timeout=timeout, cancel=cancel,
                                             purpose=session.purpose)
            finally:
                with self._run_lock:
                    self.running_cancel = None
            for warning in result.warnings:
                self.send(pm.notice_response(warning))
            return self.query_source(result, len(values))
        if kind == "catalog":
            cancel = Cancellation()
            with self._run_lock:
                self.running_cancel = cancel
            try:
                return self.server.catalog.run(st.expression, self.principal, session, values, oids, sql=st.text,
                                               cancel=cancel)
            finally:
                with self._run_lock:
                    self.running_cancel = None
        if kind == "show":
            return table_source(self.show_table(st), "SHOW")
        if kind == "set":
            key = session.set(st.name, _unquote(st.value))
            if key in REPORTED:
                self.send(pm.parameter_status(key, session.get(key)))
            return None
        if kind == "reset":
            for key in session.reset(st.name):
                if key in REPORTED:
                    self.send(pm.parameter_status(key, session.get(key)))
            return None
        if kind == "set_transaction":
            if "READ WRITE" in (st.value or ""):
                raise WireError("25006", "this server is read only: READ WRITE is not available")
            for level in ("READ UNCOMMITTED", "READ COMMITTED", "REPEATABLE READ", "SERIALIZABLE"):
                if f"ISOLATION LEVEL {level}" in (st.value or "") and "CHARACTERISTICS" in (st.value or ""):
                    session.settings["default_transaction_isolation"] = level.lower()
                    session.settings["transaction_isolation"] = level.lower()
            return None
        if kind == "set_authorization":  # SET SESSION AUTHORIZATION / SET ROLE: only the session's own user
            value = _unquote((st.value or "").strip())
            if st.name == "role":
                value = _role_name(value)
                if not value:
                    raise WireError("42601", "syntax error at end of input: SET ROLE needs a role name or NONE")
                if value.upper() != "NONE" and value != session.user:
                    raise WireError("42501", f'permission denied to set role "{value}": a session of this server '
                                    f'acts as its login user, "{session.user}"')
                session.settings["role"] = "none" if value.upper() == "NONE" else value
                return None
            if value.upper() not in ("DEFAULT", "NONE", "") and value != session.user:
                raise WireError("42501", "permission denied to set session authorization")
            return None
        if kind == "begin":
            if session.in_transaction:
                self.send(pm.notice_response("there is already a transaction in progress", "25001"))
            session.in_transaction = True
            return None
        if kind in ("commit", "rollback"):
            if not session.in_transaction:
                self.send(pm.notice_response("there is no transaction in progress", "25P01"))
            committed = kind == "commit" and not session.failed
            if kind == "commit" and session.failed:
                st.tag = "ROLLBACK"
            session.in_transaction = False
            session.failed = False
            for name, cursor in list(self.cursors.items()):
                if cursor.hold and (cursor.committed or committed):
                    cursor.committed = True
                else:  # without HOLD, or declared in a transaction that did not commit: closed (PostgreSQL's rule)
                    self.cursors.pop(name).close()
            return None
        if kind in ("noop", "savepoint", "deallocate"):
            if kind == "deallocate":
                self.prepared = {k: v for k, v in self.prepared.items() if k == "" or
                                 "ALL" not in st.tag and k.lower() not in st.text.lower().split()}
            return None
        if kind == "discard":
            self.close_cursors()
            if st.name in ("ALL",):
                if session.in_transaction:
                    raise WireError("25001", "DISCARD ALL cannot run inside a transaction block")
                self.prepared = {k: v for k, v in self.prepared.items() if k == ""}
                for key in session.reset(None):
                    if key in REPORTED:
                        self.send(pm.parameter_status(key, session.get(key)))
            return None
        if kind == "declare":
            name = (st.name or "").lower()
            if not session.in_transaction and st.value != "HOLD":
                raise WireError("25P01", "DECLARE CURSOR can only be used in transaction blocks")
            if name in self.cursors:
                raise WireError("42P03", f'cursor "{st.name}" already exists')
            inner = self.classify(st.query or "")
            if inner.kind not in ("query", "catalog"):
                raise WireError("42601", "DECLARE CURSOR needs a query")
            source = self.start(inner, values, oids)
            assert source is not None
            hold, committed = st.value == "HOLD", not session.in_transaction
            if not st.scroll:
                source.configure([0] * len(source.schema), session.timezone)
                self.cursors[name] = StreamCursor(name, source, hold, st.binary, committed)
                self.cursors[name].statement = st.text
                return None
            connection = self.platform.state.backend.buffer_cursor()  # the cursor's own: see ScrollCursor
            try:
                self.cursors[name] = ScrollCursor(name, source, connection, hold, st.binary, committed)
                self.cursors[name].statement = st.text
            except BaseException:
                source.close()
                connection.close()
                raise
            return None
        if kind in ("fetch", "move"):
            cursor = self.cursors.get((st.name or "").lower())
            if cursor is None and kind == "move" and st.name in self.portals:  # a portal of Bind (asyncpg's forward)
                st.tag = f"MOVE {self.move_portal(self.portals[st.name], st.direction, st.count)}"
                return None
            if cursor is None:
                raise WireError("34000", f'cursor "{st.name}" does not exist')
            with self.interruptible(cursor):  # reading ahead (FETCH LAST, ABSOLUTE n) can be cancelled
                if kind == "fetch":
                    return cursor.fetch(st.direction, st.count)
                st.tag = f"MOVE {cursor.move(st.direction, st.count)}"
            return None
        if kind == "close":
            if st.name is None:
                self.close_cursors()
                st.tag = "CLOSE CURSOR ALL"
            else:
                cursor = self.cursors.pop(st.name.lower(), None)
                if cursor is None:
                    raise WireError("34000", f'cursor "{st.name}" does not exist')
                cursor.close()
            return None
        raise WireError("0A000", f"unsupported statement {kind}")

    def move_portal(self, portal: Portal, direction: str, count: int | None) -> int:
        """MOVE FORWARD over a portal of the extended protocol (named by Bind): the rows are read and dropped
        (its query starts if no Execute has run it yet); it scans forward only, like a NO SCROLL cursor."""
        if direction != "FORWARD" or (count is not None and count < 0):
            raise ScrollError("cursor can only scan forward")
        if portal.complete is not None or count == 0:
            return 0
        if portal.source is None:
            source = self.start(portal.prepared.statement, portal.params, portal.prepared.param_oids)
            if source is None:
                return 0
            n = len(source.schema)
            formats = portal.result_formats
            source.configure(formats * n if len(formats) == 1 else (formats or [0] * n), self.session.timezone)
            portal.source = source
        moved = 0
        with self.interruptible(portal.source.result):
            for _, rows in portal.source.take(count):
                moved += rows
        return moved

    def close_cursors(self) -> None:
        cursors, self.cursors = list(self.cursors.values()), {}
        for cursor in cursors:
            cursor.close()

    def show_table(self, st: Statement) -> pa.Table:
        name = st.name or ""
        if name.lower() == "all":
            keys = sorted(self.session.settings, key=str.lower)
            return pa.table({"name": keys, "setting": [self.session.settings[k] for k in keys],
                             "description": [""] * len(keys)})
        value = self.session.get(name)
        if value is None:
            raise WireError("42704", f'unrecognized configuration parameter "{name}"')
        return pa.table({name.lower(): [value]})


def _keepalive(sock: socket.socket, idle: float) -> None:
    """TCP keepalive (a vanished peer is noticed while the session idles) and a send time-out (a client that
    reads nothing of its answer for ``idle`` seconds is gone): a half-open connection does not hold a thread."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 60), ("TCP_KEEPINTVL", 15), ("TCP_KEEPCNT", 4)):
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    if idle:
        seconds = int(idle)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO,
                        struct.pack("ll", seconds, int((idle - seconds) * 1_000_000)))


def _role_name(text: str) -> str:
    """The role a SET ROLE names: a quoted identifier or string as written, an unquoted name in lower case."""
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'":
        return text[1:-1].replace(text[0] * 2, text[0])
    return text.lower()


def _unquote(value: str | None) -> str:
    return (value or "").strip()


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _engine_table(backend, sql: str, params: list | None = None) -> pa.Table:
    """A statement of the wire layer's own on the engine (a DESCRIBE, a typed empty row set): never audited."""
    execution = backend.execute(sql, params or None)
    try:
        return execution.reader().read_all()
    finally:
        execution.close()


TOKEN_RECHECK = 1.0  # seconds between two checks that a connection's token is still active


def _typed_parameters(st: Statement, oids: list[int]) -> str | None:
    """The query with each ``$n`` cast to its parameter's type, for the engine to type the result without
    values (the text itself when there are no parameters: its compiled plan is cached for Execute)."""
    expression = st.expression
    if isinstance(expression, exp.Command) and str(expression.this).upper() == "EXPLAIN":
        return st.text  # one text column whatever the parameters' types (federation/explain.py)
    if not isinstance(expression, exp.Query):
        return None
    if not pparams.parameters(expression):
        return st.text
    typed = expression.copy()
    for p in pparams.parameters(typed):
        i = int(p.this.this) - 1
        name = pgt.sql_type_name(oids[i]) if i < len(oids) else None
        if name and not isinstance(p.parent, exp.Cast):
            p.replace(exp.cast(p.copy(), exp.DataType.build(name, dialect="duckdb")))
    return typed.sql("postgres")
