"""The audit log: every query, allowed or denied, with who ran it, what it read and which policies
applied. Kept in a transactional SQLite file (``<mesh>/.quanta/state.db`` by default) so it survives
restarts, and mirrored into the engine as ``system.query_log`` when someone reads it.

Entries hold the SQL the principal wrote and the rewritten SQL: both are free of data values that a
policy hides (masks and filters are expressions; parameters are logged by count only), and tokens
never appear in them. Failed logins, which prove no principal, have their own log (``logins``:
``system.login_failures``, auditors only).
"""

from __future__ import annotations

import contextvars
import json
import sqlite3
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from .. import errors, statedb

SCHEMA = pa.schema([
    ("query_id", pa.int64()), ("principal", pa.string()), ("started_at", pa.timestamp("us", tz="UTC")),
    ("interface", pa.string()), ("purpose", pa.string()), ("sql", pa.string()), ("rewritten_sql", pa.string()),
    ("datasets", pa.list_(pa.string())), ("columns", pa.list_(pa.string())), ("policies", pa.list_(pa.string())),
    ("status", pa.string()), ("error", pa.string()), ("rows", pa.int64()), ("duration_ms", pa.float64()),
    ("application", pa.string()),
])

# the client application of the queries of this thread (or task): a PostgreSQL connection's application_name
APPLICATION: contextvars.ContextVar[str | None] = contextvars.ContextVar("quanta_application", default=None)


@dataclass
class Entry:
    principal: str
    sql: str
    interface: str = "python"
    purpose: str | None = None
    rewritten_sql: str | None = None
    datasets: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)
    policies: list[str] = field(default_factory=list)
    status: str = "ok"  # ok | denied | error | cancelled
    error: str | None = None
    rows: int | None = None
    duration_ms: float | None = None
    started_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))
    query_id: int = 0
    application: str | None = field(default_factory=APPLICATION.get)  # the client's, when it says (pgwire)


TABLE = ("CREATE TABLE IF NOT EXISTS query_log (query_id INTEGER PRIMARY KEY, principal TEXT, started_at TEXT, "
         "interface TEXT, purpose TEXT, sql TEXT, rewritten_sql TEXT, datasets TEXT, columns TEXT, policies TEXT, "
         "status TEXT, error TEXT, rows INTEGER, duration_ms REAL, application TEXT)")


class AuditLog:
    """The audit log of one mesh, shared by the processes of its state folder (``statedb``: busy timeout,
    WAL; the database numbers the entries).

    **When the log cannot be written** (a read-only or full state folder): the process warns once, keeps
    the entries in memory (``system.query_log`` still shows them in this process) and goes on serving,
    unless ``required`` (the mesh requires an audit trail): then ``check()`` raises ``errors.Unavailable``,
    and the platform calls it before running a query, so data access fails closed."""

    def __init__(self, path: Path | None, required: bool = False):
        self.path = path
        self.required = required
        self._lock = threading.Lock()
        self._pending: list[Entry] = []
        self._next_id = 1
        self._db: sqlite3.Connection | None = None
        self.problem: str | None = None  # why entries are not written to disk, when they are not
        if path is not None:
            self._db, self.problem = statedb.connect(Path(path), TABLE)
            if self.problem is None:
                _add_application_column(self._db)

    @property
    def writable(self) -> bool:
        return self.path is None or self.problem is None

    def check(self) -> None:
        """Raise ``errors.Unavailable`` when the mesh requires an audit trail and this log cannot write one."""
        if self.required and not self.writable:
            raise errors.Unavailable(f"queries are refused: the mesh requires an audit trail (setting "
                                     f"audit_required) and the audit log {self.path} cannot be written "
                                     f"({self.problem})")

    def record(self, entry: Entry) -> Entry:
        """Append one entry; the store assigns its id (several processes may share one state folder). A log
        that cannot be written keeps the entry in memory (warned once; see the class)."""
        with self._lock:
            if self._db is not None and self.problem is None:
                try:
                    cur = self._db.execute(
                        "INSERT INTO query_log VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                        (entry.principal, entry.started_at.isoformat(), entry.interface, entry.purpose,
                         entry.sql, entry.rewritten_sql, json.dumps(entry.datasets), json.dumps(entry.columns),
                         json.dumps(entry.policies), entry.status, entry.error, entry.rows, entry.duration_ms,
                         entry.application))
                    entry.query_id = self._next_id = int(cur.lastrowid)
                    self._next_id += 1
                except sqlite3.Error as e:  # the disk filled up, the folder became read-only: warn, keep serving
                    if not statedb.unwritable(e):
                        raise statedb.write_error(Path(self.path), e, "write the audit log") from None
                    self.problem = str(e)
                    statedb.warn_once(Path(self.path).parent, self.problem)
            if self._db is None or self.problem is not None:
                entry.query_id = self._next_id
                self._next_id += 1
            self._pending.append(entry)
        return entry

    def history(self, limit: int = 100_000) -> pa.Table:
        """Entries already on disk (the newest ``limit``), for the engine's copy at start-up."""
        if self._db is None:
            return SCHEMA.empty_table()
        with self._lock:
            rows = self._db.execute("SELECT * FROM (SELECT * FROM query_log ORDER BY query_id DESC LIMIT ?) "
                                    "ORDER BY query_id", (limit,)).fetchall()
            self._pending.clear()
        entries = [Entry(principal=r[1], sql=r[5], interface=r[3], purpose=r[4], rewritten_sql=r[6],
                         datasets=json.loads(r[7] or "[]"), columns=json.loads(r[8] or "[]"),
                         policies=json.loads(r[9] or "[]"), status=r[10], error=r[11], rows=r[12],
                         duration_ms=r[13], started_at=datetime.fromisoformat(r[2]), query_id=r[0],
                         application=r[14] if len(r) > 14 else None) for r in rows]
        return to_arrow(entries)

    def drain(self) -> pa.Table | None:
        """Entries not yet copied to the engine."""
        with self._lock:
            pending, self._pending = self._pending, []
        return to_arrow(pending) if pending else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def _add_application_column(db: sqlite3.Connection) -> None:
    """A log written before entries had an ``application``: the column added (by whichever process is first)."""
    if "application" not in [r[1] for r in db.execute("PRAGMA table_info(query_log)")]:
        try:
            db.execute("ALTER TABLE query_log ADD COLUMN application TEXT")
        except sqlite3.OperationalError as e:
            if "duplicate column" not in str(e).lower():
                raise


def to_arrow(entries: list[Entry]) -> pa.Table:
    cols = {name: [] for name in SCHEMA.names}
    for e in entries:
        for name in SCHEMA.names:
            cols[name].append(getattr(e, name))
    return pa.table({name: pa.array(values, type=SCHEMA.field(name).type) for name, values in cols.items()})
