"""Rows of a result on their way to the client: Arrow record batches encoded into DataRow messages on
demand, batch by batch."""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from . import protocol as pm
from . import types as pgt


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

    def configure(self, formats: list[int], timezone: str) -> None:
        changed = (formats, timezone) != (self._formats, self._timezone)
        self._formats = formats
        self._timezone = timezone
        if changed and self._batch is not None and self._pos < self._count:  # a cursor FETCHed in another format
            self._load(self._batch.slice(self._pos))

    def fields(self, formats: list[int] | None = None) -> list[pm.Field]:
        formats = formats or [0] * len(self.schema)
        out = []
        for i, f in enumerate(self.schema):
            oid, size, typmod = pgt.arrow_oid(f.type)
            out.append(pm.Field(f.name, oid, size, typmod, format=formats[i]))
        return out

    def _load(self, batch: pa.RecordBatch) -> None:
        """Encode a whole batch into DataRow messages (one buffer, row offsets): column-wise, vectorised."""
        self._buffer, self._offsets = pgt.data_rows(batch, self._formats, self._timezone)
        self._batch, self._count, self._pos = batch, batch.num_rows, 0

    def take(self, limit: int | None) -> Iterator[tuple[memoryview, int]]:
        """Chunks of DataRow messages, up to ``limit`` rows in all (every row when None), as (bytes, rows);
        ``done`` tells whether rows remain."""
        n = 0
        while limit is None or n < limit:
            if self._pos >= self._count:
                batch = next(self.batches, None)
                if batch is None:
                    self.done = True
                    self.close()
                    return
                self._load(batch)
                continue
            end = self._count if limit is None else min(self._count, self._pos + limit - n)
            chunk = memoryview(self._buffer)[int(self._offsets[self._pos]):int(self._offsets[end])]
            rows = end - self._pos
            self._pos = end
            n += rows
            self.sent += rows
            yield chunk, rows
        if self._pos >= self._count:  # look ahead: is anything left?
            batch = next(self.batches, None)
            while batch is not None and batch.num_rows == 0:
                batch = next(self.batches, None)
            if batch is None:
                self.done = True
                self.close()
            else:
                self._load(batch)

    def cancel(self) -> None:
        if self.result is not None:
            self.result.cancel()

    def close(self) -> None:
        if self.result is not None:
            try:
                self.result.close()
            except Exception:
                pass


def table_source(table: pa.Table, tag: str = "SELECT") -> RowSource:
    return RowSource(table.schema, iter(table.to_batches()), None, tag)
