"""The backend interface: what the pipeline needs from an execution engine.

DuckDB is the first backend (``duckdb_backend.DuckDBBackend``). A distributed engine is added by
implementing this protocol and generating its dialect: the pipeline hands over SQL in the backend's
``dialect`` with every mesh dataset already replaced by the backend's ``relation(quantum, dataset)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, Sequence

import pyarrow as pa


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # the backend's type name, e.g. DECIMAL(12,2)


class Execution(Protocol):
    """A running query: its schema and a stream of Arrow record batches."""

    schema: pa.Schema

    def reader(self) -> pa.RecordBatchReader: ...

    def cancel(self) -> None: ...

    def close(self) -> None: ...


class Backend(Protocol):
    dialect: str

    def relation(self, quantum: str, dataset: str) -> tuple[str, str, str]:
        """(catalog, schema, table) of a source dataset's relation in the backend."""

    def system_relation(self, table: str) -> tuple[str, str, str]:
        """(catalog, schema, table) of a system table."""

    def execute(self, sql: str, params: Sequence[Any] | dict | None, timeout: float | None) -> Execution: ...

    def describe(self, sql: str) -> list[ColumnInfo]: ...
