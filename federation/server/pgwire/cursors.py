"""Cursors of DECLARE / FETCH / MOVE / CLOSE, positioned by PostgreSQL's rules.

A cursor keeps PostgreSQL's portal position (before the first row, on a row, after the last), and FETCH
and MOVE reduce every direction to forward and backward reads the way PostgreSQL's portals do (the
behaviour documented for FETCH and MOVE, and of ``DoPortalRunFetch`` / ``PortalRunSelect`` in
``pquery.c``), so that every direction returns the rows and ends on the row PostgreSQL's would; the tests
compare both servers statement by statement:

- ``StreamCursor`` (DECLARE ... [NO SCROLL] CURSOR): reads forward from the query's Arrow reader, never
  the whole result in memory; a direction that needs to go back fails as in PostgreSQL ("cursor can only
  scan forward", 55000).
- ``ScrollCursor`` (DECLARE ... SCROLL CURSOR): the rows go, as FETCH and MOVE read past them, into a
  temporary table of DuckDB with their row number; each FETCH reads the row range it needs from it, in
  either order.
"""

from __future__ import annotations

import datetime as dt

from typing import Iterator

import duckdb
import numpy as np
import pyarrow as pa

from ...engine.duckdb_backend import BATCH_ROWS, translate
from . import types as pgt
from .rows import RowSource


class ScrollError(Exception):
    """A direction a NO SCROLL cursor cannot take (the wire layer reports it with SQLSTATE 55000)."""

    sqlstate = "55000"
    hint = "Declare it with SCROLL option to enable backward scan."


class Cursor:
    """A declared cursor: ``pos`` is the number of the current row (0 before the first), ``at_start`` and
    ``at_end`` tell a cursor before the first row or after the last (PostgreSQL's portalPos, atStart, atEnd)."""

    scroll = False

    def __init__(self, name: str, schema: pa.Schema, hold: bool, binary: bool, committed: bool):
        self.name = name
        self.schema = schema
        self.hold = hold  # WITH HOLD: outlives the transaction once it commits (the rows stay where they are)
        self.binary = binary  # BINARY: FETCH of the simple query protocol sends rows in binary format
        self.committed = committed  # declared outside a transaction block, or its transaction committed
        self.pos = 0
        self.at_start = True
        self.at_end = False
        self.statement = ""  # the DECLARE statement, as pg_cursors shows it
        self.created = dt.datetime.now(dt.timezone.utc)

    def row(self) -> dict:
        """The cursor as a row of pg_catalog.pg_cursors."""
        return {"name": self.name, "statement": self.statement, "is_holdable": self.hold, "is_binary": self.binary,
                "is_scrollable": self.scroll, "creation_time": self.created}

    def fetch(self, direction: str, count: int | None) -> RowSource:
        """The rows of FETCH ``direction`` ``count`` (None: ALL), tagged FETCH."""
        return self._run(direction, count, True)

    def move(self, direction: str, count: int | None) -> int:
        """MOVE: the number of rows the last step moved over (PostgreSQL's ``MOVE n``)."""
        return self._run(direction, count, False)

    def _run(self, direction: str, count: int | None, send: bool):
        """DoPortalRunFetch: each direction as PostgreSQL reduces it to forward and backward reads."""
        if direction == "ABSOLUTE":
            assert count is not None
            if count > 0:
                if count - 1 <= self.pos // 2:
                    self._rewind()
                    if count > 1:
                        self._select(True, count - 1, False)
                else:
                    pos = self.pos + self.at_end
                    if count <= pos:
                        self._select(False, pos - count + 1, False)
                    elif count > pos + 1:
                        self._select(True, count - pos - 1, False)
                return self._select(True, 1, send)
            if count < 0:
                self._select(True, None, False)
                if count < -1:
                    self._select(False, -count - 1, False)
                return self._select(False, 1, send)
            self._rewind()
            return self._select(True, 0, send)
        if direction == "RELATIVE" and count:
            if count > 0:
                if count > 1:
                    self._select(True, count - 1, False)
                return self._select(True, 1, send)
            if count < -1:
                self._select(False, -count - 1, False)
            return self._select(False, 1, send)
        forward = direction != "BACKWARD"
        if count is not None and count < 0:
            forward, count = not forward, -count
        if count == 0:  # the current row again, if the cursor is on one
            on_row = not self.at_start and not self.at_end
            if not send:
                return int(on_row)
            if on_row:
                self._select(False, 1, False)
                forward, count = True, 1
        if not forward and count is None and not send:  # MOVE BACKWARD ALL: a rewind
            moved = self.pos - (1 if self.pos > 0 and not self.at_end else 0)
            self._rewind()
            return moved
        return self._select(forward, count, send)

    def _select(self, forward: bool, count: int | None, send: bool):
        """PortalRunSelect: read ``count`` rows (None: all) in a direction; the rows to send, or how many."""
        if not forward and not self.scroll:
            raise ScrollError("cursor can only scan forward")
        if count == 0 or (self.at_end if forward else self.at_start):
            return _Fetched(self.schema, iter(()), self, "FETCH") if send else 0
        return self._read(forward, count, send)

    def _moved(self, forward: bool, count: int | None, n: int) -> None:
        """The position after a read of ``n`` rows out of ``count`` asked (PortalRunSelect's bookkeeping)."""
        if forward:
            if n:
                self.at_start = False
            if count is None or n < count:
                self.at_end = True
            self.pos += n
        else:
            if n and self.at_end:
                self.at_end = False
                self.pos += 1
            if count is None or n < count:
                self.at_start = True
                self.pos = 0
            else:
                self.pos -= n

    def _rewind(self) -> None:
        """DoPortalRewind: back before the first row (nothing to do for a cursor that has not moved)."""
        if self.at_start and not self.at_end:
            return
        if not self.scroll:
            raise ScrollError("cursor can only scan forward")
        self.pos, self.at_start, self.at_end = 0, True, False

    def _read(self, forward: bool, count: int | None, send: bool):
        raise NotImplementedError

    def cancel(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class StreamCursor(Cursor):
    """A NO SCROLL cursor: the query's rows stream forward, read as FETCH asks for them."""

    def __init__(self, name: str, source: RowSource, hold: bool, binary: bool, committed: bool):
        super().__init__(name, source.schema, hold, binary, committed)
        self.source = source

    def _read(self, forward: bool, count: int | None, send: bool):
        if send:
            return _StreamFetch(self, count)
        n = sum(rows for _, rows in self.source.take(count))
        self._moved(True, count, n)
        return n

    def cancel(self) -> None:
        self.source.cancel()

    def close(self) -> None:
        self.source.close()


class _Fetched(RowSource):
    """The rows of one FETCH: the cursor is what a CancelRequest interrupts, and what stays open after them."""

    def close(self) -> None:
        pass


class _StreamFetch(_Fetched):
    """FETCH from a NO SCROLL cursor: its next ``count`` rows, encoded once, sent as they come (over several
    Execute messages when they have a row limit); the cursor's position moves when they are all read."""

    def __init__(self, cursor: StreamCursor, count: int | None):
        super().__init__(cursor.schema, iter(()), cursor, "FETCH")
        self.cursor = cursor
        self.count = count

    def configure(self, formats: list[int], timezone: str) -> None:
        self.cursor.source.configure(formats, timezone)

    def take(self, limit: int | None) -> Iterator[tuple[memoryview, int]]:
        remaining = None if self.count is None else self.count - self.sent
        want = limit if remaining is None else (remaining if limit is None else min(limit, remaining))
        for chunk, rows in self.cursor.source.take(want):
            self.sent += rows
            yield chunk, rows
        self.done = self.cursor.source.done or limit is None or (self.count is not None and self.sent >= self.count)
        if self.done:
            self.cursor._moved(True, self.count, self.sent)

    def close(self) -> None:
        if not self.done:  # a portal closed before the end: the cursor stands on the last row sent
            self.done = True
            self.cursor._moved(True, self.sent, self.sent)


ROW = "_row"  # the row number column of a SCROLL cursor's table (the result's columns are c0, c1, ...)


class ScrollCursor(Cursor):
    """A SCROLL cursor: rows stored, as they are first read, in a DuckDB temporary table, read back by range.

    The table lives on a DuckDB connection of the cursor's own (a cursor of the engine's database, which the
    lock-down leaves able to create temporary tables): a temporary table belongs to its connection, so no
    other query sees it, and closing the connection drops it whatever happened to the client. DuckDB keeps
    it in its buffer pool and spills it to the engine's temp_directory past the memory limit, so a large
    result never sits in Python's memory. Only the wire layer's own statements run there: inserting the
    batches of the governed result (compiled by the pipeline, masks and row filters applied, audited once
    by ``platform.query``) with their row numbers, and selecting row ranges.
    """

    scroll = True

    def __init__(self, name: str, source: RowSource, connection: duckdb.DuckDBPyConnection, hold: bool,
                 binary: bool, committed: bool):
        super().__init__(name, source.schema, hold, binary, committed)
        self.source = source  # the query's result, read as far as a FETCH needs
        self.connection = connection
        self.rows = 0  # rows stored so far
        self.complete = False  # every row of the result is stored
        self._error: BaseException | None = None
        self._columns = [f"c{i}" for i in range(len(self.schema))]
        self._insert(pa.Table.from_batches([], self.schema), "CREATE TEMPORARY TABLE scroll AS")

    def _insert(self, rows: pa.Table | pa.RecordBatch, statement: str) -> None:
        numbers = pa.array(np.arange(self.rows + 1, self.rows + rows.num_rows + 1, dtype=np.int64))
        stored = pa.Table.from_arrays([numbers] + list(rows.columns), names=[ROW] + self._columns)
        self.connection.register("batch", stored)
        try:
            self.connection.execute(f"{statement} SELECT * FROM batch")
        finally:
            self.connection.unregister("batch")
        self.rows += rows.num_rows

    def _fill(self, upto: int | None) -> None:
        """Store the result's rows until ``upto`` rows are stored (None: all of them)."""
        if self._error is not None:  # the result failed: never mistaken for its end
            raise self._error
        try:
            while not self.complete and (upto is None or self.rows < upto):
                batch = next(self.source.batches, None)
                if batch is None:
                    self.complete = True
                    self.source.close()
                elif batch.num_rows:
                    self._insert(batch, "INSERT INTO scroll")
        except BaseException as e:
            self._error = translate(e)
            raise self._error from None

    def _read(self, forward: bool, count: int | None, send: bool):
        here = self.pos + self.at_end  # where the rows are read from (PostgreSQL's executor position)
        if forward:
            self._fill(None if count is None else here + count)
            first, last = here + 1, self.rows if count is None else min(here + count, self.rows)
        else:
            first, last = 1 if count is None else max(here - count, 1), here - 1
        n = max(last - first + 1, 0)
        self._moved(forward, count, n)
        if not send:
            return n
        return _Fetched(self.schema, self._range(first, last, forward), self, "FETCH")

    def _range(self, first: int, last: int, forward: bool) -> Iterator[pa.RecordBatch]:
        """Rows ``first`` to ``last`` in a direction, a batch at a time (a range query per batch: the row
        numbers' zone maps let DuckDB read only the row groups that hold them)."""
        columns = ", ".join(self._columns)
        order = "" if forward else " DESC"
        starts = range(first, last + 1, BATCH_ROWS) if forward else range(last, first - 1, -BATCH_ROWS)
        for start in starts:
            low, high = (start, min(start + BATCH_ROWS - 1, last)) if forward else (max(start - BATCH_ROWS + 1, first),
                                                                                   start)
            try:
                table = self.connection.execute(f"SELECT {columns} FROM scroll WHERE {ROW} BETWEEN ? AND ? "
                                                f"ORDER BY {ROW}{order}", [low, high]).to_arrow_table()
            except duckdb.Error as e:
                raise translate(e) from None
            for batch in table.to_batches():
                yield _typed(batch, self.schema)

    def cancel(self) -> None:
        self.source.cancel()
        self.connection.interrupt()

    def close(self) -> None:
        self.source.close()
        self.connection.close()


def _typed(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A stored batch with the cursor's types again: DuckDB hands UUID and JSON back as strings (made
    extension types again by ``pgt.conform``), enums as plain strings."""
    columns = [c if c.type == f.type or pgt.is_extension(f.type) else c.cast(f.type)
               for c, f in zip(batch.columns, schema)]
    return pgt.conform(pa.RecordBatch.from_arrays(columns, names=schema.names), schema)
