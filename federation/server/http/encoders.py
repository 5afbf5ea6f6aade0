"""Result encoders: a query result as JSON (capped), or streamed as CSV, NDJSON or an Arrow IPC stream.

The streaming encoders are generators over the result's record batches: each batch is encoded and
sent as DuckDB produces it, so a result is never held whole in memory.
"""

from __future__ import annotations

import base64
import csv
import datetime as dt
import decimal
import io
import json
import math
import uuid
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.csv as pacsv

from ...result import sql_type

JSON = "application/json"
CSV = "text/csv"
NDJSON = "application/x-ndjson"
ARROW = "application/vnd.apache.arrow.stream"
FORMATS = {"json": JSON, "csv": CSV, "ndjson": NDJSON, "arrow": ARROW}


def jsonable(value: Any) -> Any:
    """A Python value from Arrow as JSON: decimals and times as strings, bytes as base64."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return list(value)
    return str(value)


def _finite(value: Any) -> Any:
    """NaN and infinities are not JSON: null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, list):
        return [_finite(v) for v in value]
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return [_finite(v) for v in value]
    return value


def dumps(value: Any) -> str:
    try:
        return json.dumps(value, default=jsonable, allow_nan=False, separators=(",", ":"))
    except ValueError:
        return json.dumps(_finite(value), default=jsonable, allow_nan=False, separators=(",", ":"))


def column_info(schema: pa.Schema) -> list[dict]:
    return [{"name": f.name, "type": sql_type(f.type)} for f in schema]


def take_rows(batches: Iterable[pa.RecordBatch], limit: int) -> tuple[list[list], bool]:
    """At most ``limit`` rows as lists, and whether there were more (reads one row past the cap)."""
    rows: list[list] = []
    for batch in batches:
        room = limit - len(rows)
        if batch.num_rows > room:
            rows.extend(_batch_rows(batch.slice(0, room)))
            return rows, True
        rows.extend(_batch_rows(batch))
    return rows, False


def _batch_rows(batch: pa.RecordBatch) -> list[list]:
    columns = [c.to_pylist() for c in batch.columns]
    return [list(r) for r in zip(*columns)]


# -- streams -----------------------------------------------------------------------------------------


class _Chunks(io.RawIOBase):
    """A write-only file collecting what the Arrow IPC writer writes, drained after each batch."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, b) -> int:
        self.parts.append(bytes(b))
        return len(b)

    def drain(self) -> bytes:
        out, self.parts = b"".join(self.parts), []
        return out


# Batches are coalesced up to ~1 MiB per write: the server hands large writes to the socket without copying
# them, so bigger chunks only cost fresh memory (page faults); smaller ones cost a write each.
CHUNK_BYTES = 1 << 20


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """An Arrow IPC stream: the schema, then one message per record batch, then the end marker; the
    messages are sent in chunks of about ``CHUNK_BYTES`` (the first one at once)."""
    sink = _Chunks()
    writer = pa.ipc.new_stream(sink, schema)
    yield sink.drain()
    pending = 0
    for batch in batches:
        writer.write_batch(batch)
        pending += batch.nbytes
        if pending >= CHUNK_BYTES:
            yield sink.drain()
            pending = 0
    writer.close()
    yield sink.drain()


def ndjson_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """One JSON object per row and line."""
    for batch in batches:
        lines = [dumps(row) for row in batch.to_pylist()]
        if lines:
            yield ("\n".join(lines) + "\n").encode("utf-8")


def _flat(schema: pa.Schema) -> bool:
    return not any(pa.types.is_nested(f.type) or pa.types.is_dictionary(f.type) for f in schema)


def csv_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """CSV with a header line (Arrow's CSV writer; Python's csv module for nested types)."""
    if _flat(schema):
        sink = _Chunks()
        writer = pacsv.CSVWriter(sink, schema)
        yield sink.drain()
        for batch in batches:
            writer.write_batch(batch)
            yield sink.drain()
        writer.close()
        yield sink.drain()
        return
    text = io.StringIO()
    out = csv.writer(text)
    out.writerow(schema.names)
    for batch in batches:
        for row in _batch_rows(batch):
            out.writerow([dumps(v) if isinstance(v, (list, dict)) else v for v in row])
        yield text.getvalue().encode("utf-8")
        text.seek(0)
        text.truncate()
    if text.tell():
        yield text.getvalue().encode("utf-8")
