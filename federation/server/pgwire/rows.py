"""Rows of a result on their way to the client: Arrow record batches encoded into DataRow messages on
demand, batch by batch.

While a batch's messages are sent, the next batch is read from the engine and encoded in a worker thread
(one batch ahead, never more: the result still streams). Arrow and numpy release the GIL, so reading,
encoding and sending overlap. The worker runs in the connection's context (its application name reaches
the audit entry written when the result ends).
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Iterator

import pyarrow as pa

from . import protocol as pm
from . import types as pgt

_WORKERS = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pgwire-rows")
_HALVES = ThreadPoolExecutor(max_workers=4, thread_name_prefix="pgwire-encode")  # never waits on _WORKERS
READ_AHEAD_ROWS = 8192  # a batch shorter than this ends the result most of the time: no thread hand-off for it
SPLIT_ROWS = 32768  # a batch this long or longer is encoded as two halves at once (Arrow and numpy release the GIL)
HEAD_ROWS = 4096  # the first rows of a result, encoded on their own: they go out while the rest is encoded


def encode(batch: pa.RecordBatch, formats: list[int], timezone: str, first: bool = False) -> list[tuple]:
    """A batch's DataRow messages as pieces in order: (batch slice, (buffer, row offsets) or a Future of them).
    A long batch is encoded as two halves side by side, the second one still encoding when this returns (the
    server's encoding is what bounds a large fetch); the ``first`` batch of a result as its first rows, encoded
    at once, and the rest in two halves encoded meanwhile (the client gets rows as soon as the engine gives
    them)."""
    if batch.num_rows < SPLIT_ROWS:
        return [(batch, pgt.data_rows(batch, formats, timezone))]
    if first:
        head, rest = batch.slice(0, HEAD_ROWS), batch.slice(HEAD_ROWS)
        half = rest.num_rows // 2
        later = [rest.slice(0, half), rest.slice(half)]
        encoded = pgt.data_rows(head, formats, timezone)  # before the rest competes for the cores
        jobs = [_HALVES.submit(pgt.data_rows, part, formats, timezone) for part in later]
        return [(head, encoded)] + list(zip(later, jobs))
    half = batch.num_rows // 2
    now, later = batch.slice(0, half), batch.slice(half)
    job = _HALVES.submit(pgt.data_rows, later, formats, timezone)
    return [(now, pgt.data_rows(now, formats, timezone)), (later, job)]


class RowSource:
    """Rows of a result, encoded on demand batch by batch: never the whole result in memory."""

    def __init__(self, schema: pa.Schema, batches: Iterator[pa.RecordBatch], result=None, tag: str = "SELECT"):
        self.schema = schema
        self.batches = iter(batches)  # not yet encoded (a SCROLL cursor stores them)
        self.result = result  # the Result to cancel and close
        self.tag = tag
        self.sent = 0
        self.done = False
        self._batch: pa.RecordBatch | None = None
        self._buffer = None
        self._offsets = None
        self._count = 0
        self._pos = 0
        self._formats: list[int] = [0] * len(schema)
        self._timezone = "UTC"
        self._ahead: Future | None = None  # the next batch with rows, read and encoded: (key, pieces)
        self._pieces: list[tuple] = []  # pieces after the current one: (batch, (buffer, offsets) or a Future)
        # a subclass (a cursor's FETCH, reading a connection of its own) reads in the caller's thread
        self._read_ahead = type(self) is RowSource

    def configure(self, formats: list[int], timezone: str) -> None:
        changed = (formats, timezone) != (self._formats, self._timezone)
        self._formats = formats
        self._timezone = timezone
        if changed and self._batch is not None and self._pos < self._count:  # a cursor FETCHed in another format
            rest = [self._batch.slice(self._pos)] + [piece[0] for piece in self._pieces]
            self._pieces = []
            for batch in rest:
                self._pieces += encode(batch, formats, timezone)
            self._next_piece()

    def fields(self, formats: list[int] | None = None) -> list[pm.Field]:
        formats = formats or [0] * len(self.schema)
        out = []
        for i, f in enumerate(self.schema):
            oid, size, typmod = pgt.arrow_oid(f.type)
            out.append(pm.Field(f.name, oid, size, typmod, format=formats[i]))
        return out

    def _next_piece(self) -> None:
        """Make the first pending piece the current one."""
        self._batch, job = self._pieces.pop(0)
        self._buffer, self._offsets = job.result() if isinstance(job, Future) else job
        self._count, self._pos = self._batch.num_rows, 0

    def _read(self, formats: list[int], timezone: str, first: bool = False):
        """The next batch with rows, encoded: (formats and time zone, pieces); None at the end."""
        batch = next(self.batches, None)
        while batch is not None and batch.num_rows == 0:
            batch = next(self.batches, None)
        if batch is None:
            return None
        return (formats, timezone), encode(batch, formats, timezone, first)

    def _advance(self) -> bool:
        """Load the next piece: encoded already, or the next batch with rows (the one read ahead, if any);
        False at the end."""
        if not self._pieces:
            ahead, self._ahead = self._ahead, None
            got = ahead.result() if ahead is not None else self._read(self._formats, self._timezone,
                                                                       self._batch is None)
            if got is None:
                return False
            key, pieces = got
            if key != (self._formats, self._timezone):  # read ahead before the formats changed
                pieces = [p for piece in pieces for p in encode(piece[0], self._formats, self._timezone)]
            self._pieces = pieces
        self._next_piece()
        return True

    def _read_next(self) -> None:
        """Start reading and encoding the next batch in a worker thread."""
        if self._read_ahead and self._ahead is None and not self.done:
            run = contextvars.copy_context().run
            self._ahead = _WORKERS.submit(run, self._read, list(self._formats), self._timezone)

    def take(self, limit: int | None) -> Iterator[tuple[memoryview, int]]:
        """Chunks of DataRow messages, up to ``limit`` rows in all (every row when None), as (bytes, rows);
        ``done`` tells whether rows remain."""
        n = 0
        while limit is None or n < limit:
            if self._pos >= self._count:
                if not self._advance():
                    self.done = True
                    self.close()
                    return
                continue
            end = self._count if limit is None else min(self._count, self._pos + limit - n)
            chunk = memoryview(self._buffer)[int(self._offsets[self._pos]):int(self._offsets[end])]
            rows = end - self._pos
            self._pos = end
            n += rows
            self.sent += rows
            if end >= self._count and self._count >= READ_AHEAD_ROWS:  # the next batch is read and encoded
                self._read_next()  # while this chunk is sent (a short batch is most often the last one)
            yield chunk, rows
        if self._pos >= self._count:  # look ahead: is anything left?
            if not self._advance():
                self.done = True
                self.close()

    def _settle(self) -> None:
        """Wait for the batch being read ahead (the engine's reader is not to be used by two threads)."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            try:
                ahead.result()
            except BaseException:  # noqa: BLE001 - the result is being closed: its error no longer matters
                pass

    def cancel(self) -> None:
        if self.result is not None:
            self.result.cancel()

    def close(self) -> None:
        self._settle()
        if self.result is not None:
            try:
                self.result.close()
            except Exception:
                pass


def table_source(table: pa.Table, tag: str = "SELECT") -> RowSource:
    return RowSource(table.schema, iter(table.to_batches()), None, tag)
