"""The engine interface: what the platform asks of the engine that runs a governed query.

The pipeline (``rewrite/pipeline.py``) produces the governed query; an engine names the mesh's relations
in its dialect, registers the datasets, installs the hash masks, describes result columns and executes
with a time-out and cancellation, returning Arrow record batches. Two engines conform:

- ``engine/duckdb_backend.py``: ``DuckDBBackend``, the embedded default. It is also the *local* state of
  every platform, whatever the data engine: system tables, the audit log's copy, the typing of derived
  datasets and policies, and the verifier's proof all live in it.
- ``engine/spark_backend.py``: ``SparkConnectBackend`` (``settings.engine: {kind: spark_connect}``), one
  Spark Connect session per platform state, the datasets as that session's temporary views.

The platform types its engine against ``Backend`` and its executions against ``Execution``; nothing
outside the engines knows which one runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:
    import pyarrow as pa

    from ..catalog.model import Dataset, Source
    from .duckdb_backend import Cancellation, ColumnInfo

Relation = tuple[str, ...]  # how the governed tree names a relation: (catalog, schema, table)


@runtime_checkable
class Execution(Protocol):
    """One running query: its result's schema and a reader of its Arrow record batches, read once."""

    timeout: float | None  # the whole time-out the platform granted (named by its error)
    cancelled: bool

    @property
    def schema(self) -> "pa.Schema": ...

    def reader(self) -> "pa.RecordBatchReader": ...

    def cancel(self) -> None:
        """Stop the query from another thread (its reader then raises ``errors.QueryCancelled``)."""

    def close(self, failed: bool = False) -> None:
        """Free what the query holds (idempotent); ``failed``: it ended on an error or half read."""


@runtime_checkable
class Backend(Protocol):
    """An engine of governed queries (see the module's docstring)."""

    kind: str  # "duckdb" | "spark_connect": the ``engine`` setting's kind
    dialect: str  # sqlglot's dialect of the SQL it runs

    def relation_name(self, relation: Relation) -> str:
        """The SQL text naming a mesh relation (as the governed tree names it) in this engine."""

    def register_dataset(self, relation: Relation, ds: "Dataset", source: "Source", pinned: bool = False) -> None:
        """Serve ``ds`` (its contract's columns, names and types) from ``source`` as ``relation``;
        ``pinned``: a published version read through the contract it was published under (a column its
        files lack reads as NULL). Raises a Quanta error saying why it cannot."""

    def register_masks(self, salt: str) -> None:
        """Install the keyed hash masks (``engine/masks.py``) without the key appearing in any SQL text."""

    def describe(self, sql: str) -> "list[ColumnInfo]": ...

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None, timeout: float | None = None,
                cancel: "Cancellation | None" = None) -> Execution:
        """Run one query: Quanta errors only (``errors.QueryTimeout``, ``QueryCancelled``, ``Unavailable``,
        ``ProgrammingError``...), never the engine's own exceptions, stack traces or values."""

    def close(self) -> None:
        """Release the engine's resources (idempotent); queries still running on it fail."""


Render = Callable[[Any], str]  # a governed sqlglot tree -> the engine's SQL
