"""A query result: Arrow record batches streamed from the engine, with the DuckDB-like API
(``.arrow()``, ``.record_batches()``, ``.pl()``, ``.df()``, ``.fetchall()``) and the governance
that applied (``.policies``, ``.warnings``).

A result streams: ``record_batches()`` hands out the engine's reader, never the whole result in
memory. It can be consumed once; ``arrow()`` keeps the table it read so it can be asked again.
"""

from __future__ import annotations

from typing import Iterator

import pyarrow as pa

from . import errors


def sql_type(t: pa.DataType) -> str:
    """The SQL type name of an Arrow type, as DuckDB spells it."""
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_int8(t):
        return "TINYINT"
    if pa.types.is_int16(t):
        return "SMALLINT"
    if pa.types.is_int32(t):
        return "INTEGER"
    if pa.types.is_int64(t):
        return "BIGINT"
    if pa.types.is_uint8(t) or pa.types.is_uint16(t) or pa.types.is_uint32(t) or pa.types.is_uint64(t):
        return {8: "UTINYINT", 16: "USMALLINT", 32: "UINTEGER", 64: "UBIGINT"}[t.bit_width]
    if pa.types.is_float32(t):
        return "FLOAT"
    if pa.types.is_float64(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({t.precision},{t.scale})"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "VARCHAR"
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t):
        return "BLOB"
    if pa.types.is_date(t):
        return "DATE"
    if pa.types.is_time(t):
        return "TIME"
    if pa.types.is_timestamp(t):
        return "TIMESTAMP WITH TIME ZONE" if t.tz else "TIMESTAMP"
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return "INTERVAL"
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_list_view(t):
        return sql_type(t.value_type) + "[]"
    if pa.types.is_fixed_size_list(t):
        return f"{sql_type(t.value_type)}[{t.list_size}]"
    if pa.types.is_struct(t):
        return "STRUCT(" + ", ".join(f'"{f.name}" {sql_type(f.type)}' for f in t) + ")"
    if pa.types.is_map(t):
        return f"MAP({sql_type(t.key_type)}, {sql_type(t.item_type)})"
    if pa.types.is_null(t):
        return "NULL"
    if isinstance(t, pa.ExtensionType) and t.extension_name == "arrow.uuid":
        return "UUID"
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return "UUID"
    return str(t).upper()


class _Stream:
    """The engine side of a result, kept apart from ``Result`` so that a half-read result is closed
    (and audited) as soon as the ``Result`` is dropped: the batch generator holds this, not the Result."""

    def __init__(self, execution, on_close):
        self.execution = execution
        self.on_close = on_close
        self.rows_read = 0
        self.error: BaseException | None = None
        self.exhausted = False

    def batches(self, reader: pa.RecordBatchReader) -> Iterator[pa.RecordBatch]:
        try:
            for batch in _guarded(reader, self.execution):
                self.rows_read += batch.num_rows
                yield batch
            self.exhausted = True
        except BaseException as e:
            self.error = e
            raise
        finally:
            self.close()

    def close(self) -> None:
        # only a cursor whose result was read to the end goes back to the engine's pool
        self.execution.close(failed=self.error is not None or not self.exhausted)
        callback, self.on_close = self.on_close, None
        if callback is not None:
            error = self.error
            if error is None and not self.exhausted and getattr(self.execution, "cancelled", False):
                error = errors.QueryCancelled("query cancelled")  # stopped before its end: a client gone, a cancel
            callback(self.rows_read, error)


class Result:
    def __init__(self, execution, plan, on_close=None):
        self._stream = _Stream(execution, on_close)  # on_close(rows, error): the audit log
        self._execution = execution
        self.plan = plan
        self._reader: pa.RecordBatchReader | None = execution.reader()
        self.schema: pa.Schema = self._reader.schema
        self._table: pa.Table | None = None
        self._rows: Iterator[tuple] | None = None

    @property
    def rows_read(self) -> int:
        return self._stream.rows_read

    @property
    def error(self) -> BaseException | None:
        return self._stream.error

    # -- metadata ------------------------------------------------------------------------------

    @property
    def columns(self) -> list[str]:
        return list(self.schema.names)

    @property
    def types(self) -> list[str]:
        return [sql_type(f.type) for f in self.schema]

    @property
    def policies(self) -> tuple[dict, ...]:
        """The policies that shaped this result (which policy, on which dataset and column)."""
        return self.plan.policies

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.plan.warnings

    @property
    def datasets(self) -> tuple[tuple[str, str], ...]:
        return self.plan.datasets

    # -- consuming -------------------------------------------------------------------------------

    def _take_reader(self) -> pa.RecordBatchReader:
        if self._reader is None:
            raise errors.InterfaceError("this result has already been consumed")
        reader, self._reader = self._reader, None
        return reader

    def record_batches(self) -> pa.RecordBatchReader:
        """A streaming reader of Arrow record batches (consumes the result)."""
        if self._table is not None:
            return pa.RecordBatchReader.from_batches(self._table.schema, self._table.to_batches())
        reader = self._take_reader()
        return pa.RecordBatchReader.from_batches(self.schema, self._stream.batches(reader))

    def arrow(self) -> pa.Table:
        """The whole result as a pyarrow Table."""
        if self._table is None:
            self._table = self.record_batches().read_all()
        return self._table

    def pl(self):
        """The whole result as a Polars DataFrame."""
        import polars as pl

        return pl.from_arrow(self.arrow())

    def df(self):
        """The whole result as a pandas DataFrame (needs pandas installed)."""
        try:
            import pandas  # noqa: F401
        except ImportError:
            raise errors.InterfaceError("df() needs pandas: pip install pandas") from None
        return self.arrow().to_pandas()

    def _iter_rows(self) -> Iterator[tuple]:
        return _rows(self.record_batches())

    def fetchone(self) -> tuple | None:
        if self._rows is None:
            self._rows = self._iter_rows()
        return next(self._rows, None)

    def fetchmany(self, size: int) -> list[tuple]:
        out = []
        for _ in range(size):
            row = self.fetchone()
            if row is None:
                break
            out.append(row)
        return out

    def fetchall(self) -> list[tuple]:
        if self._rows is None:
            if self._table is not None:
                return list(zip(*[c.to_pylist() for c in self._table.columns]))
            self._rows = self._iter_rows()
        return list(self._rows)

    def cancel(self) -> None:
        """Interrupt the running query (from another thread: a CancelRequest, a client gone away)."""
        self._execution.cancel()

    def close(self) -> None:
        self._stream.close()

    def __iter__(self) -> Iterator[tuple]:
        return iter(self.fetchall())

    def __repr__(self) -> str:
        return f"<Result columns={self.columns}>"

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


def _rows(reader: pa.RecordBatchReader) -> Iterator[tuple]:
    for batch in reader:
        yield from zip(*[col.to_pylist() for col in batch.columns])


def _guarded(reader: pa.RecordBatchReader, execution) -> Iterator[pa.RecordBatch]:
    """Batches from the engine, with engine errors (time-out, conversion) as Quanta errors."""
    from .engine.duckdb_backend import translate

    while True:
        try:
            batch = reader.read_next_batch()
        except StopIteration:
            return
        except errors.Error:
            raise  # already a Quanta error (an engine other than DuckDB raised it in its stream)
        except Exception as e:
            raise translate(_unwrap(e), timed_out=getattr(execution, "timed_out", False),
                            cancelled=getattr(execution, "cancelled", False),
                            timeout=getattr(execution, "timeout", None)) from None
        yield batch


def _unwrap(e: Exception) -> Exception:
    """pyarrow wraps errors raised inside the engine's stream; map them back to DuckDB's classes."""
    import duckdb

    if isinstance(e, duckdb.Error):
        return e
    text = str(e)
    for prefix, cls in (("INTERRUPT", duckdb.InterruptException), ("Conversion Error", duckdb.ConversionException),
                        ("Out of Range Error", duckdb.OutOfRangeException),
                        ("Invalid Input Error", duckdb.InvalidInputException),
                        ("Out of Memory Error", duckdb.OutOfMemoryException), ("IO Error", duckdb.IOException)):
        if prefix.lower() in text.lower():
            return cls(text)
    return duckdb.Error(text)


ENGINE_KEY = b"quanta.engine"  # the schema metadata of a platform read's result: the engine it ran on


def ran_on(table: pa.Table) -> str | None:
    """The engine a ``Platform.read`` result was computed on (``"duckdb"``, ``"spark_connect"``)."""
    value = (table.schema.metadata or {}).get(ENGINE_KEY)
    return value.decode() if value is not None else None
