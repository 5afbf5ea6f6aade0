"""A scratch database: a small DuckDB of its own, apart from the mesh's, for answers computed from
metadata (the PostgreSQL catalog of one principal). It never holds mesh data and cannot reach it.

It is built in two steps. First its owner creates schemas, tables (from Arrow) and macros; then
``lock()`` closes it: no external access (no file, no network), no extension autoload or install, one
thread, a memory limit and no spilling to disk, configuration locked. After that it only runs one
SELECT statement at a time (DuckDB's own parser says what a statement is), each on a fresh cursor,
with the same time-out watchdog and ``Cancellation`` as the mesh's queries
(``duckdb_backend.DuckDBExecution``): a runaway query is interrupted, a CancelRequest reaches it.

What the SQL may call and read is decided by its caller before it gets here (for the catalog,
``server/pgwire/catalog_verify.py``); the lock-down is the wall behind that check.
"""

from __future__ import annotations

from typing import Any, Sequence

import duckdb
import pyarrow as pa

from .. import errors
from .duckdb_backend import Cancellation, DuckDBExecution, quote, translate

MEMORY_LIMIT = "128MB"


class ScratchDatabase:
    def __init__(self, memory_limit: str = MEMORY_LIMIT):
        self._db = duckdb.connect(":memory:", config={
            "enable_external_access": "false", "autoinstall_known_extensions": "false",
            "autoload_known_extensions": "false", "allow_community_extensions": "false",
            "threads": "1", "memory_limit": memory_limit, "temp_directory": ""})
        self._locked = False

    # -- building (before lock) ---------------------------------------------------------------------

    def _build(self, sql: str) -> None:
        if self._locked:
            raise errors.InternalError("the scratch database is locked: it cannot be changed")
        self._db.execute(sql)

    def create_schema(self, name: str) -> None:
        self._build(f"CREATE SCHEMA {quote(name)}")

    def create_table(self, schema: str, name: str, columns: str, rows: pa.Table | None = None) -> None:
        """A table of ``columns`` (DuckDB column definitions) filled with ``rows`` (matched by name)."""
        self._build(f"CREATE TABLE {quote(schema)}.{quote(name)} ({columns})")
        if rows is not None and rows.num_rows:
            cur = self._db.cursor()
            try:
                cur.register("_rows", rows)
                names = ", ".join(quote(n) for n in rows.column_names)
                cur.execute(f"INSERT INTO {quote(schema)}.{quote(name)} ({names}) SELECT {names} FROM _rows")
            finally:
                cur.close()

    def create_macro(self, sql: str) -> None:
        if not sql.lstrip().upper().startswith("CREATE MACRO "):
            raise errors.InternalError("only CREATE MACRO statements define the scratch database's functions")
        self._build(sql)

    def lock(self) -> None:
        self._db.execute("SET lock_configuration = true")
        self._locked = True

    # -- queries (after lock) -------------------------------------------------------------------------

    def execute(self, sql: str, params: Sequence[Any] | None = None, timeout: float | None = None,
                cancel: Cancellation | None = None, tables: dict[str, pa.Table] | None = None) -> DuckDBExecution:
        """Start one SELECT on a cursor of its own; ``tables`` are Arrow tables it may read as
        ``temp.<name>`` (gone with the cursor). The execution streams; close it when done."""
        if not self._locked:
            raise errors.InternalError("the scratch database answers queries once it is locked")
        try:
            statements = duckdb.extract_statements(sql)
        except duckdb.Error as e:
            raise translate(e) from None
        if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
            raise errors.StatementRefused("a catalog query runs only one SELECT statement")
        cursor = self._db.cursor()
        try:
            for name, table in (tables or {}).items():
                cursor.register(name, table)
        except BaseException:
            cursor.close()
            raise
        execution = DuckDBExecution(cursor, timeout)  # no pool: the cursor (and its tables) closes with it
        if cancel is not None:
            cancel.bind(execution)
        try:
            execution.start(sql, list(params) if params else None)
        except BaseException as e:
            timed_out, cancelled = execution.timed_out, execution.cancelled
            execution.close(failed=True)
            raise translate(e, timed_out=timed_out, cancelled=cancelled, timeout=timeout) from None
        return execution

    def close(self) -> None:
        self._db.close()
