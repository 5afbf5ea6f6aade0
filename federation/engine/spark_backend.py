"""Spark Connect backend: the mesh's data queries on a Spark cluster (``settings.engine: {kind: spark_connect}``).

One Spark Connect session per platform state, created with Quanta's own token (read from the environment
variable ``token_env`` names), never shared: every dataset is a *temporary view* of that session, named
flat ``<quantum>__<dataset>`` (Spark refuses a qualified temporary view), and nothing is written to the
cluster's shared catalog. Another client of the same server sees none of them. The session is released
when its state is replaced or closed (and at exit: the client otherwise keeps the interpreter alive).

Datasets are read from their sources (Parquet, CSV and JSON files: paths the cluster must see, as the
published versions of the warehouse), with the contract's names, order and types. Sources Spark cannot
read (DuckDB and SQLite files, PostgreSQL servers, Delta and Iceberg tables) are refused at load with a
message naming the dataset, and their quantum is left out like any other load problem.

Queries arrive governed and rendered in Spark SQL (``engine/spark_dialect.py``); each runs under a tag of
its own, which a time-out or a ``Cancellation`` interrupts (``interruptTag``); results stream back as
Arrow record batches. Spark's exceptions become Quanta's errors: no JVM stack trace, no SQL text, no value.
pyspark's own loggers (which log the failing SQL, values included) are silenced.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
import uuid
import warnings
import weakref
from typing import Any, Iterator, Mapping, Sequence

import pyarrow as pa

from .. import errors
from ..settings import Settings
from .duckdb_backend import WATCHDOG, Cancellation, ColumnInfo, redact_values

_INTERRUPT_TRIES = 8  # about 4.5 s of interrupts after a time-out or a cancellation, until the query ends
SPARK_KINDS = ("parquet", "csv", "json")  # the sources a Spark cluster reads without extra packages
SESSION_CONF = {
    "spark.sql.timestampType": "TIMESTAMP_NTZ",  # DuckDB's TIMESTAMP has no time zone
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.ansi.enabled": "true",  # errors on overflow and bad casts, as DuckDB
    # Spark's parser replaces ${env:X}, ${system:X} and ${spark.conf} in the SQL text (string literals too)
    # before parsing: a query would read the server's environment (its Connect token), JVM properties, confs
    "spark.sql.variable.substitute": "false",
}
_QUIET = ("SQLQueryContextLogger", "DataFrameQueryContextLogger", "pyspark.sql.connect.logging",
          "pyspark.sql.connect.session", "pyspark.sql.connect.client.core", "pyspark.sql.connect.client.reattach",
          "pyspark.sql.connect.client.retries", "py4j")


class EngineDown(errors.Unavailable):
    """The Spark Connect server does not answer, refuses Quanta's token or lost this state's session."""


def quiet_pyspark() -> None:
    """pyspark logs a failing query's SQL text (values included) and the JVM stack trace: never. Its warning
    that retries ran out is said by our ``Unavailable`` instead."""
    warnings.filterwarnings("ignore", message=r"\[RETRIES_EXCEEDED\]")
    for name in _QUIET:
        logger = logging.getLogger(name)
        logger.disabled = True
        logger.propagate = False


def _import_pyspark():
    quiet_pyspark()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pyspark warns about the pandas version at import
        try:
            from pyspark.sql.connect.client import DefaultChannelBuilder
            from pyspark.sql.connect.client.retries import DefaultPolicy
            from pyspark.sql.connect.session import SparkSession
        except ImportError:
            raise errors.Unavailable("the Spark engine needs pyspark's client: pip install -e \".[spark]\"") from None
    quiet_pyspark()  # pyspark.sql.connect.logging configured its logger at import
    return DefaultChannelBuilder, DefaultPolicy, SparkSession


def flat_name(quantum: str, dataset: str) -> str:
    """The temporary view of a dataset: ``<quantum>__<dataset>`` after the lengths of both names, so that no
    two datasets share a view (``hr.pay__slips`` is ``2_10_hr__pay__slips``, ``hr__pay.slips`` is
    ``7_5_hr__pay__slips``); a pinned version ``dataset@vN`` adds ``__vN`` (the lengths fix where the names
    end, so a dataset named ``x__v2`` is not version 2 of ``x``)."""
    base, at, version = dataset.lower().partition("@v")
    q = quantum.lower()
    return f"{len(q)}_{len(base)}_{q}__{base}" + (f"__v{version}" if at else "")


def _ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def spark_type(duckdb_type: str) -> str:
    """A contract's (DuckDB) type in Spark SQL."""
    try:
        from . import spark_dialect

        convert = getattr(spark_dialect, "spark_type", None)
        if convert is not None:
            return convert(duckdb_type)
    except ImportError:
        pass
    import sqlglot.expressions as exp

    text = duckdb_type.strip().upper()
    if text in ("HUGEINT", "UBIGINT"):
        return "DECIMAL(38,0)"
    if text in ("UUID", "JSON"):
        return "STRING"
    if text == "TIMESTAMP WITH TIME ZONE" or text == "TIMESTAMPTZ":
        return "TIMESTAMP_LTZ"
    if text == "TIMESTAMP":
        return "TIMESTAMP_NTZ"
    return exp.DataType.build(duckdb_type, dialect="duckdb").sql("databricks")


class SparkExecution:
    """One query on the cluster under its own tag: Arrow batches stream as the reader is read."""

    def __init__(self, backend: "SparkConnectBackend", timeout: float | None):
        self._backend = backend
        self.tag = f"quanta-{uuid.uuid4().hex}"
        self.timeout = timeout
        self.timed_out = False
        self.cancelled = False
        self._done = False
        self._timer = WATCHDOG.add(timeout, self) if timeout else None
        self._schema: pa.Schema | None = None
        self._names: list[str] | None = None  # the result's column names (conform)
        self._order: list[int] | None = None  # Spark's column of each result column, when not in order
        self._first: list[pa.Table] = []
        self._tables: Iterator | None = None
        self._reader: pa.RecordBatchReader | None = None

    @property
    def running(self) -> bool:
        return not self._done

    def start(self, sql: str, params) -> None:
        if self.cancelled:
            raise errors.QueryCancelled("query cancelled")
        session = self._backend.session()
        session.addTag(self.tag)  # the tag goes with every request this thread builds until removed
        try:
            df = session.sql(sql, args=_args(params))
            self._stopped()  # interrupted between the two requests: the second is not sent
            client = session.client
            tables = client.to_table_as_iterator(df._plan.to_proto(client), df._plan.observations)  # noqa: SLF001
            first = next(tables, None)  # sends the request (with the tag): the schema, or the first rows
        finally:
            session.removeTag(self.tag)
        from pyspark.sql.pandas.types import to_arrow_schema
        from pyspark.sql.types import StructType

        if isinstance(first, StructType):
            self._schema = to_arrow_schema(first, error_on_duplicated_field_names_in_struct=True, timezone="UTC")
        elif first is None:  # no rows and no schema sent: ask for it
            self._schema = to_arrow_schema(df.schema, error_on_duplicated_field_names_in_struct=True, timezone="UTC")
        else:
            self._first.append(first)
            self._schema = first.schema
        self._tables = tables

    def conform(self, schema: pa.Schema) -> None:
        """Give the result ``schema`` (DuckDB's names and types for the same governed query). Columns are
        matched by name (the n-th ``x`` with the n-th ``x``) when Spark has the same names in another order:
        a ``*`` over a USING or NATURAL join puts the keys first on Spark, where the left side has them on
        DuckDB; by position otherwise."""
        if self._reader is None and self._schema is not None and len(schema) == len(self._schema):
            self._order = _by_name(self._schema.names, schema.names)
            self._names = list(schema.names)
            self._schema = schema

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            while self._first:
                yield from self._cast(self._first.pop())
            for table in self._tables:
                yield from self._cast(table)
        except errors.Error:
            raise
        except Exception as e:  # noqa: BLE001 - every Spark error becomes a Quanta error
            raise self._backend.translate(e, self) from None
        finally:
            self._done = True

    def _cast(self, table) -> Iterator[pa.RecordBatch]:
        if not isinstance(table, pa.Table):
            return
        if self._order is not None:
            table = table.select(self._order)
        if self._names is not None and table.column_names != self._names:
            table = table.rename_columns(self._names)
        if table.schema != self._schema:
            try:
                table = table.cast(self._schema)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise errors.DataError(f"a result column does not fit its type: {redact_values(str(e))}") from None
        yield from table.to_batches()

    @property
    def schema(self) -> pa.Schema:
        assert self._schema is not None
        return self._schema

    def reader(self) -> pa.RecordBatchReader:
        if self._reader is None:
            assert self._schema is not None
            self._reader = pa.RecordBatchReader.from_batches(self._schema, self._batches())
        return self._reader

    def _stopped(self) -> None:
        if self.timed_out:
            raise errors.QueryTimeout(f"query cancelled: it ran longer than its time-out of {self.timeout:g} s")
        if self.cancelled:
            raise errors.QueryCancelled("query cancelled")

    def _interrupt(self, tries: int = 1) -> None:
        """Interrupt the query's tag; ``tries`` > 1: again, backing off, until the query is seen to end (an
        interrupt that reaches the server before it registered the execution finds nothing to stop)."""
        delay = 0.05
        for attempt in range(tries):
            if self._done:
                return
            try:
                self._backend.session().interruptTag(self.tag)
            except Exception:  # noqa: BLE001 - the cluster is gone: nothing runs there any more
                return
            if attempt + 1 < tries:
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def _interrupt_until_done(self, name: str) -> None:
        threading.Thread(target=self._interrupt, args=(_INTERRUPT_TRIES,), name=name, daemon=True).start()

    def _expire(self) -> None:  # the watchdog, at the time-out
        self.timed_out = True
        self._interrupt_until_done("quanta-spark-timeout")

    def cancel(self) -> None:
        self.cancelled = True
        self._interrupt_until_done("quanta-spark-cancel")

    def close(self, failed: bool = False) -> None:
        if self._timer is not None:
            WATCHDOG.remove(self._timer)
            self._timer = None
        if not self._done:  # half read: stop the work on the cluster
            self._interrupt()
            self._done = True
        tables, self._tables = self._tables, None
        if tables is not None and hasattr(tables, "close"):
            try:
                tables.close()
            except Exception:  # noqa: BLE001
                pass


class SparkConnectBackend:
    """Data queries on a Spark Connect server; one session per instance (one per platform state)."""

    kind = "spark_connect"
    dialect = "databricks"  # sqlglot's spark dialect rewrites QUALIFY wrongly; databricks keeps it

    def __init__(self, settings: Mapping[str, Any] | None = None, connect_timeout: float = 10.0):
        settings = Settings.of(settings)
        engine = settings["engine"]
        if engine.get("kind") != "spark_connect":
            raise ValueError("SparkConnectBackend needs settings.engine.kind spark_connect")
        self.url = engine["url"]
        self.where = f"the Spark Connect server at {self.url}"
        self.token_env = engine.get("token_env")
        self.connect_timeout = connect_timeout
        self._views: dict[str, tuple[str, ...]] = {}  # temporary view -> the relation it serves
        self._pending: dict[str, tuple[str, ...]] = {}  # views being created (claimed names, see _reserve)
        self._lock = threading.Lock()
        self._session = None
        self._closed = False
        self.unavailable: errors.Unavailable | None = None  # why the session could not start
        self.broken = False  # the server stopped answering, or lost the session, since it started
        try:
            self._session = self._connect()
        except errors.Unavailable as e:
            self.unavailable = e
        self._finalizer = weakref.finalize(self, _stop, self._session)  # also at exit

    def _connect(self):
        DefaultChannelBuilder, DefaultPolicy, SparkSession = _import_pyspark()
        builder = DefaultChannelBuilder(self.url.rstrip("/"))
        if self.token_env:
            token = os.environ.get(self.token_env)
            if not token:
                raise EngineDown(f"{self.where}: the environment variable {self.token_env} "
                                         f"(settings.engine.token_env) holds no token")
            builder.set("token", token)
        builder.set("user_agent", "quanta")
        session = SparkSession(connection=builder)  # not the process's default session: this state's own
        # a cluster that is down answers within seconds, not after the client's 10 minutes of retries
        session.client.set_retry_policies([DefaultPolicy(max_retries=3, initial_backoff=100, max_backoff=1000,
                                                         backoff_multiplier=2.0)])
        try:
            for key, value in SESSION_CONF.items():
                session.conf.set(key, value)
            kept = {key: session.conf.get(key) for key in SESSION_CONF}
        except Exception as e:  # noqa: BLE001
            _stop(session)
            raise self.translate(e) from None
        wrong = sorted(k for k, v in SESSION_CONF.items() if str(kept[k]).lower() != v.lower())
        if wrong:  # fail closed: e.g. variable substitution would read the server's environment
            _stop(session)
            raise EngineDown(f"{self.where} does not keep the session settings Quanta needs "
                             f"({', '.join(wrong)})")
        return session

    # -- the Backend interface ---------------------------------------------------------------------

    def session(self):
        if self._closed:
            raise EngineDown(f"{self.where}: this state's session is closed (the mesh was reloaded)")
        if self._session is None:
            raise self.unavailable or EngineDown(f"{self.where} is unavailable")
        return self._session

    @property
    def available(self) -> bool:
        return self._session is not None and not self._closed

    @staticmethod
    def relation_name(relation: tuple[str, ...]) -> str:
        return _ident(flat_name(relation[-2], relation[-1]))

    def register_dataset(self, relation: tuple[str, ...], ds, source, pinned: bool = False) -> None:
        """A temporary view of this session over ``source``, with the contract's columns, names and types."""
        if source.kind not in SPARK_KINDS:
            raise errors.NotSupportedError(
                f"{ds.qualified_name} cannot be served by the Spark engine: its source is a {source.kind} "
                f"{'database' if source.kind in ('duckdb', 'sqlite', 'postgres') else 'table'}, which Spark does "
                f"not read (settings.engine spark_connect reads {', '.join(SPARK_KINDS)} files; publish it as a "
                f"version or move its data to Parquet)")
        name = self._reserve(relation, ds)
        try:
            session = self.session()
            reader = session.read
            if source.kind == "parquet":
                df = reader.parquet(source.location)
            elif source.kind == "csv":
                df = reader.option("header", "true").csv(source.location)  # strings, cast to the contract below
            else:
                df = reader.option("multiLine", str(_json_array(source.location)).lower()).json(source.location)
            found = {c.lower(): c for c in df.columns}
            select = []
            for c in ds.columns:
                src = found.get(c.source_name.lower()) or (found.get(c.name.lower()) if pinned else None)
                target = spark_type(c.data_type)
                if src is None:
                    if not pinned:
                        raise errors.ProgrammingError(
                            f"column {c.name!r} of {ds.qualified_name} is not in the data at {source.location}; "
                            f"the data has: {', '.join(df.columns)}")
                    select.append(f"CAST(NULL AS {target}) AS {_ident(c.name)}")
                else:
                    cast = "TRY_CAST" if pinned else "CAST"
                    select.append(f"{cast}({_ident(src)} AS {target}) AS {_ident(c.name)}")
            df.selectExpr(*select).createOrReplaceTempView(name)
        except BaseException as e:
            self._release(name, relation)
            if isinstance(e, errors.Error) or not isinstance(e, Exception):
                raise
            raise self.translate(e, what=f"cannot read the data of {ds.qualified_name} at {source.location}") from None
        with self._lock:
            self._views[name] = tuple(relation)
            self._pending.pop(name, None)

    def _reserve(self, relation: tuple[str, ...], ds) -> str:
        """Claim the flat view name of ``relation`` before its view is created: ``<quantum>__<dataset>`` is
        not one-to-one (``hr.pay__slips`` and ``hr__pay.slips``), and two registrations running at once must
        not both pass the check (the last view would serve the other dataset's rows)."""
        name = flat_name(relation[-2], relation[-1])
        with self._lock:
            other = self._views.get(name) or self._pending.get(name)
            if other is not None and other != tuple(relation):
                raise errors.NotSupportedError(f"{ds.qualified_name}: its Spark view name {name} is taken by "
                                               f"{'.'.join(other[-2:])} (rename one of them)")
            self._pending[name] = tuple(relation)
        return name

    def _release(self, name: str, relation: tuple[str, ...]) -> None:
        with self._lock:
            if self._pending.get(name) == tuple(relation):
                del self._pending[name]

    def register_empty(self, relation: tuple[str, ...], ds) -> None:
        """A dataset of the warehouse without a published version yet: an empty view of its contract."""
        name = self._reserve(relation, ds)
        select = ", ".join(f"CAST(NULL AS {spark_type(c.data_type)}) AS {_ident(c.name)}" for c in ds.columns)
        try:
            self.session().sql(f"SELECT {select} WHERE false").createOrReplaceTempView(name)
        except BaseException as e:
            self._release(name, relation)
            if isinstance(e, errors.Error) or not isinstance(e, Exception):
                raise
            raise self.translate(e) from None
        with self._lock:
            self._views[name] = tuple(relation)
            self._pending.pop(name, None)

    def put_arrow(self, view: str, table: pa.Table) -> None:
        """A temporary view of this session holding ``table`` (sent as Arrow data, never as SQL text)."""
        session = self.session()
        try:
            session.createDataFrame(table).createOrReplaceTempView(view)
        except Exception as e:  # noqa: BLE001
            raise self.translate(e) from None

    def register_masks(self, salt: str) -> None:
        """The hash masks' key as the one-row view ``masks.MASK_KEY_VIEW`` (Arrow data: never in SQL text)."""
        from . import masks

        if self.available:
            self.put_arrow(masks.MASK_KEY_VIEW, masks.key_table(salt))

    def views(self) -> list[str]:
        """The temporary views of this session (the registered datasets)."""
        with self._lock:
            return sorted(self._views)

    def describe(self, sql: str) -> list[ColumnInfo]:
        """The result columns of ``sql`` (Spark SQL), their types spelled as DuckDB spells them."""
        import sqlglot.expressions as exp

        try:
            schema = self.session().sql(sql).schema
        except errors.Error:
            raise
        except Exception as e:  # noqa: BLE001
            raise self.translate(e) from None
        out = []
        for f in schema.fields:
            spark = f.dataType.simpleString()
            try:
                shown = exp.DataType.build(spark, dialect="databricks").sql("duckdb")
            except Exception:  # noqa: BLE001 - a type sqlglot does not know: Spark's own name
                shown = spark.upper()
            out.append(ColumnInfo(f.name, shown))
        return out

    def execute(self, sql: str, params: Sequence[Any] | dict | None = None, timeout: float | None = None,
                cancel: Cancellation | None = None) -> SparkExecution:
        self.session()  # unavailable: said before anything starts
        execution = SparkExecution(self, timeout)
        if cancel is not None:
            cancel.bind(execution)  # type: ignore[arg-type]
        try:
            execution.start(sql, params)
        except BaseException as e:
            execution._done = True  # noqa: SLF001
            execution.close(failed=True)
            if isinstance(e, errors.Error):
                raise
            raise self.translate(e, execution) from None
        return execution

    def close(self) -> None:
        self._closed = True
        self._finalizer()

    # -- errors ------------------------------------------------------------------------------------

    def _down(self, message: str) -> EngineDown:
        self.broken = True  # the platform rebuilds its state (a new session) until the server answers
        return EngineDown(message)

    def translate(self, e: BaseException, execution: SparkExecution | None = None, what: str = "") -> BaseException:
        """A Spark (or gRPC) exception as a Quanta error: the error class and its first line, values blanked,
        no SQL text, no JVM stack trace."""
        if isinstance(e, errors.Error):
            return e
        if not isinstance(e, Exception):
            return e  # KeyboardInterrupt, SystemExit
        condition = _condition(e)
        text = _first_line(e)
        status = _grpc_status(e)
        if execution is not None and (execution.timed_out or execution.cancelled):  # interrupted by its tag
            if execution.timed_out:
                return errors.QueryTimeout(f"query cancelled: it ran longer than its time-out of "
                                           f"{execution.timeout:g} s")
            return errors.QueryCancelled("query cancelled")
        if status in ("UNAVAILABLE", "DEADLINE_EXCEEDED") or condition in ("CONNECT.CHANNEL_CLOSED",) or \
                "failed to connect" in text.lower() or "connection refused" in text.lower():
            return self._down(f"{self.where} is unavailable (the cluster is down or unreachable); "
                              f"system tables are still served")
        if status in ("UNAUTHENTICATED", "PERMISSION_DENIED"):
            return self._down(f"{self.where} refused Quanta's token"
                                      + (f" (settings.engine.token_env {self.token_env})" if self.token_env else ""))
        if condition and condition.startswith("INVALID_HANDLE"):
            return self._down(f"{self.where} no longer knows this state's session (the server restarted); "
                              f"the mesh reloads")
        message = _clean(text, condition)
        if what:
            return errors.Unavailable(f"{what}: {message}")
        if condition in ("DIVIDE_BY_ZERO", "INTERVAL_DIVIDED_BY_ZERO") or (condition or "").startswith("DIVIDE_BY_ZERO"):
            return errors.DivisionByZero("division by zero")
        sqlstate = _sqlstate(e) or ""
        if sqlstate.startswith("22") or (condition or "").startswith(("CAST_", "ARITHMETIC_OVERFLOW",
                                                                     "NUMERIC_VALUE_OUT_OF_RANGE")):
            return errors.DataError(message)
        if sqlstate.startswith("42") or (condition or "").startswith(("PARSE_", "UNRESOLVED_", "TABLE_OR_VIEW",
                                                                     "DATATYPE_MISMATCH")):
            return errors.ProgrammingError(message)
        return errors.DatabaseError(message)


def _stop(session) -> None:
    """Release a session on the server and close its channel, within a few seconds (a dead server)."""
    if session is None:
        return

    def stop():
        quiet_pyspark()  # at exit too, when a test runner has put the warning filters back
        try:
            session.stop()
        except Exception:  # noqa: BLE001
            pass

    t = threading.Thread(target=stop, name="quanta-spark-stop", daemon=True)
    t.start()
    t.join(5)


def _by_name(spark: Sequence[str], duckdb: Sequence[str]) -> list[int] | None:
    """Spark's index of each DuckDB column when both have the same names (case-insensitively, the n-th of
    a repeated name with the n-th) in another order; None when in order or not the same names."""
    def keys(names):
        seen: dict[str, int] = {}
        out = []
        for name in names:
            low = name.lower()
            seen[low] = seen.get(low, 0) + 1
            out.append((low, seen[low]))
        return out

    mine, theirs = keys(spark), keys(duckdb)
    if mine == theirs or sorted(mine) != sorted(theirs):
        return None
    where = {key: i for i, key in enumerate(mine)}
    return [where[key] for key in theirs]


def _args(params):
    if params is None:
        return None
    if isinstance(params, dict):
        return dict(params)
    return list(params)


def _json_array(location: str) -> bool:
    """Whether a JSON file holds one array (DuckDB's format 'auto' reads both; Spark needs to be told)."""
    if any(ch in location for ch in "*?[{"):
        return False
    try:
        with open(location, "rb") as f:
            head = f.read(4096).lstrip()
    except OSError:
        return False
    return head.startswith(b"[")


def _condition(e: BaseException) -> str | None:
    for name in ("getCondition", "getErrorClass"):
        get = getattr(e, name, None)
        if get is not None:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    value = get()
                if value:
                    return str(value)
            except Exception:  # noqa: BLE001
                pass
    return None


def _sqlstate(e: BaseException) -> str | None:
    get = getattr(e, "getSqlState", None)
    try:
        return get() if get is not None else None
    except Exception:  # noqa: BLE001
        return None


def _grpc_status(e: BaseException) -> str | None:
    seen = 0
    while e is not None and seen < 5:
        code = getattr(e, "code", None)
        if callable(code):
            try:
                return code().name
            except Exception:  # noqa: BLE001
                pass
        grpc = getattr(e, "getGrpcStatusCode", None)
        if callable(grpc):
            try:
                return grpc().name
            except Exception:  # noqa: BLE001
                pass
        e = e.__cause__ or e.__context__
        seen += 1
    return None


def _first_line(e: BaseException) -> str:
    get = getattr(e, "getMessage", None)
    try:
        text = get() if get is not None else str(e)
    except Exception:  # noqa: BLE001
        text = str(e)
    lines = [line.strip() for line in (text or "").split("\n") if line.strip()]
    return lines[0] if lines else type(e).__name__


_SQLSTATE_TAIL = re.compile(r"\s*SQLSTATE: \w+;?.*$")
_CONDITION = re.compile(r"^\[[A-Z0-9_.]+\]\s*")


_VIEW = re.compile(r"`(\d+)_(\d+)_([^`]+)`")  # a flat view name (flat_name)


def _dataset_of_view(m: re.Match) -> str:
    """``quantum.dataset`` for a flat view name in a message (flat_name's lengths say where each ends)."""
    q, d, rest = int(m.group(1)), int(m.group(2)), m.group(3)
    if len(rest) < q + 2 + d or rest[q:q + 2] != "__":
        return m.group(0)
    version = rest[q + 2 + d:]
    return f"{rest[:q]}.{rest[q + 2:q + 2 + d]}" + (f"@v{version[3:]}" if version.startswith("__v") else "")


def _clean(text: str, condition: str | None) -> str:
    """Spark's message without its SQL fragment, positions, view names or values."""
    text = _SQLSTATE_TAIL.sub("", _CONDITION.sub("", text)).strip()
    text = _VIEW.sub(_dataset_of_view, text)
    text = redact_values(text)
    text = re.sub(r"`(?:``|[^`])*?\.\.\.`", "", text)
    return f"{text} ({condition})" if condition else text
