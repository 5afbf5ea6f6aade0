"""The query pipeline: every query from every interface goes through here.

    parse (sqlglot, the interface's dialect)
      -> PASSES, in order, each ``(expression, context) -> expression``
      -> generate SQL in the backend's dialect
      -> cached by (SQL text, dialect, principal fingerprint, namespace version)

Like sqlglot's optimizer ``RULES``, the passes are one visible tuple; the governance layer adds its
passes to it (``Pipeline(passes=...)``). A pass raises a Quanta error (with the SQL position) to
refuse a query.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from dataclasses import dataclass, replace
from typing import Callable

import sqlglot
import sqlglot.expressions as exp
from cachetools import LRUCache
from sqlglot.errors import ParseError, TokenError

from ..errors import NotSupportedError, ProgrammingError, StatementRefused, SyntaxError
from ..governance.principals import Principal
from .context import Context, Definition, Namespace
from .describe import describe_and_show
from .explain import ExplainRequest, explain_request
from .limits import check_sql
from .postgres import postgres_semantics
from .resolve import resolve_tables
from .safety import check_bare_identifiers, check_nodes
from .secure import secure_datasets
from .statements import only_reads
from .verify import UnverifiedQuery, verify

logging.getLogger("sqlglot").setLevel(logging.ERROR)
log = logging.getLogger("quanta.pipeline")
# statements that are refused even when sqlglot cannot parse them
NOT_READS = {"EXPORT", "IMPORT", "COPY", "ATTACH", "DETACH", "INSTALL", "LOAD", "PRAGMA", "SET", "RESET", "CALL",
             "CHECKPOINT", "VACUUM", "CREATE", "DROP", "ALTER", "INSERT", "UPDATE", "DELETE", "MERGE", "TRUNCATE",
             "USE", "BEGIN", "COMMIT", "ROLLBACK", "ABORT", "PREPARE", "EXECUTE", "DEALLOCATE", "FORCE", "UPDATE"}
_TOKEN = re.compile(r"<Token token_type: [^,]+, text: (.*?), line: \d+.*?>")

Pass = Callable[[exp.Expression, Context], exp.Expression]

PASSES: tuple[Pass, ...] = (
    only_reads,  # one read statement: SELECT/WITH/VALUES/set operation/DESCRIBE/SHOW
    describe_and_show,  # DESCRIBE <dataset>, SHOW TABLES -> queries over system tables
    check_nodes,  # no nested statements; functions from the allow-list only
    resolve_tables,  # every table is a mesh dataset, a system table or a CTE in scope
    check_bare_identifiers,  # SELECT user / current_schema: engine state, not data
    secure_datasets,  # grants, row filters then masks, denials, contract constraints (governance)
    postgres_semantics,  # SQL written as PostgreSQL: its division, result types and column names (expressions only)
)


@dataclass(frozen=True)
class Plan:
    """A compiled query: the SQL for the backend and what the query reads and obeys."""

    sql: str
    datasets: tuple[tuple[str, str], ...]
    system_tables: tuple[str, ...]
    warnings: tuple[str, ...] = ()
    policies: tuple[dict, ...] = ()
    params: int = 0  # number of placeholders
    columns: tuple[str, ...] = ()  # quantum.dataset.column read (for the audit log)
    # the same governed tree in the data engine's SQL, when that engine is not the embedded DuckDB (Spark) and
    # the query reads mesh data; None: ``sql`` runs on the embedded engine (system tables, constants, the held
    # rows of a quarantine: small local files the data engine does not hold)
    engine_sql: str | None = None
    # an EXPLAIN: what it explains (the governed SQL); ``sql`` is then the shape of its result (a query of no
    # rows with the plan's one column and the query's placeholders), which is what the interfaces describe
    explain: "Explained | None" = None


@dataclass(frozen=True)
class Explained:
    """The governed query an EXPLAIN plan is of (``federation/explain.py`` renders it)."""

    sql: str  # the governed SQL, as it would run (never shown: it holds the policies' literals)
    analyze: bool
    format: str  # "text" | "json"
    # relations read of which the principal may not read every row (system tables filtered per principal, derived
    # datasets: the rows their definition leaves out): the engine's statistics of them must not shape the plan
    opaque: tuple[str, ...] = ()

    @property
    def column(self) -> str:
        return "QUERY PLAN"


@dataclass(frozen=True)
class EngineSQL:
    """How the pipeline renders a governed tree for a data engine other than DuckDB (``engine/backend.py``):
    ``check(tree)`` refuses what the engine cannot run (a Quanta error at compile time), ``render(tree)`` is
    its SQL (the tree is not modified)."""

    check: Callable[[exp.Expression], None]
    render: Callable[[exp.Expression], str]
    name: str = "Spark"


CACHE_BYTES = 64 << 20  # compiled plans kept per pipeline (an LRU bounded by the plans' size)


def _plan_bytes(plan: Plan) -> int:
    """About what a cached plan holds: its SQL texts and what it names (for the cache's bound)."""
    return 1024 + 2 * (len(plan.sql) + len(plan.engine_sql or "")) + 64 * (len(plan.columns) + len(plan.policies)
                                                                            + len(plan.warnings))


def _inlined(ds) -> bool:
    """A derived dataset read by inlining its definition (not a mart served from its own versions); an unknown
    one counts as one (fail closed)."""
    return ds is None or (ds.sql is not None and ds.source is None)


class Pipeline:
    def __init__(self, namespace: Namespace, backend_dialect: str = "duckdb",
                 passes: tuple[Pass, ...] = PASSES, cache_bytes: int = CACHE_BYTES, engine: EngineSQL | None = None):
        self.namespace = namespace
        self.backend_dialect = backend_dialect
        self.engine = engine  # a data engine other than the embedded DuckDB: data queries are rendered for it
        self.passes = passes
        # bounded by the plans' size, not their number: any principal can send long distinct statements
        self._cache: LRUCache[tuple, Plan] = LRUCache(maxsize=cache_bytes, getsizeof=_plan_bytes)
        self._lock = threading.Lock()

    def compile(self, sql: str, principal: Principal, dialect: str = "duckdb", purpose: str | None = None) -> Plan:
        # a digest of the text, not the text: the key of a long statement does not keep it in memory
        key = (hashlib.sha256(sql.encode("utf-8", "surrogatepass")).digest(), dialect, principal.fingerprint,
               purpose, self.namespace.version)
        with self._lock:
            plan = self._cache.get(key)
        if plan is not None:
            return plan
        plan = self._compile(sql, principal, dialect, purpose)
        with self._lock:
            self._cache[key] = plan
        return plan

    def parse(self, sql: str, dialect: str = "duckdb") -> exp.Expression:
        if not isinstance(sql, str):
            raise ProgrammingError(f"a query is a string of SQL, not {type(sql).__name__}")
        check_sql(sql, self.namespace.mesh.settings)  # size and nesting caps, before the parser runs
        try:
            statements = [s for s in sqlglot.parse(sql, read=dialect) if s is not None]
        except ParseError as e:
            first = sql.lstrip().split(None, 1)[0].upper() if sql.strip() else ""
            if first in NOT_READS:
                raise StatementRefused(f"only queries that read the mesh are allowed; {first} is not") from None
            err = e.errors[0] if e.errors else {}
            desc = _TOKEN.sub(lambda m: repr(m.group(1)), err.get("description") or str(e).split("\n")[0])
            line, col = err.get("line"), err.get("col")
            near = err.get("highlight")
            message = f"syntax error: {desc}" + (f" near {near!r}" if near else "")
            raise SyntaxError(message, position=(line, col) if line else None) from None
        except TokenError as e:
            raise SyntaxError(f"syntax error: {e}") from None
        if not statements:
            raise ProgrammingError("the query is empty")
        if len(statements) > 1:
            raise StatementRefused(f"one statement per query: this text holds {len(statements)}")
        return statements[0]

    def _compile(self, sql: str, principal: Principal, dialect: str, purpose: str | None) -> Plan:
        request = explain_request(sql, dialect)
        if request is not None:
            return self._explain(request, principal, dialect, purpose)
        expression = self.parse(sql, dialect)
        ctx = Context(self.namespace, principal, sql, dialect, purpose)
        for rewrite in self.passes:
            expression = rewrite(expression, ctx)
        params = sum(1 for _ in expression.find_all(exp.Placeholder)) if ("?" in sql or "$" in sql) else 0
        engine_sql = None
        if self.engine is not None and ctx.data_reads:  # mesh data: it runs on the data engine
            if ctx.held:  # whatever the principal may read of them: the refusal tells nothing of held rows
                raise NotSupportedError(
                    f"on the {self.engine.name} engine a query reads mesh datasets or quarantined rows "
                    f"(<quantum>.\"<dataset>@quarantine\", system.quarantine), not both: held rows are served by "
                    f"the embedded engine only; query them apart")
            if ctx.system_tables:
                raise NotSupportedError(
                    f"on the {self.engine.name} engine a query reads mesh datasets or system tables, not both "
                    f"(it reads {', '.join(sorted(set(ctx.system_tables)))}): query them apart")
            self.engine.check(expression)  # a function the engine cannot run: refused now, not by the engine
            engine_sql = self.engine.render(expression)  # from the same governed tree, before it is consumed
        # the tree is ours and thrown away after this: no defensive deep copy (a third of the compile time);
        # no comments either: what runs is exactly what the verifier reads
        out = expression.sql(dialect=self.backend_dialect, copy=False, comments=False)
        if self.backend_dialect == "duckdb":
            try:
                verify(out, ctx.placements)  # the last wall: DuckDB's own parse of what will run, proven safe
            except UnverifiedQuery as e:  # a defect of the passes: the operators must hear of it
                log.error("verifier refused a rewritten query of %s: %s", principal.name, e.message)
                raise
        return Plan(out, tuple(ctx.datasets), tuple(ctx.system_tables), tuple(ctx.warnings),
                    tuple(ctx.policies), params, tuple(ctx.columns), engine_sql)

    def _explain(self, request: ExplainRequest, principal: Principal, dialect: str, purpose: str | None) -> Plan:
        """An EXPLAIN: the query compiled as it would run (refused as it would be), explained on DuckDB."""
        plan = self._compile(request.sql, principal, dialect, purpose)
        if plan.explain is not None:
            raise StatementRefused("EXPLAIN explains a query, not another EXPLAIN")
        if plan.engine_sql is not None:
            raise NotSupportedError(f"EXPLAIN of a query on mesh data is not supported on the {self.engine.name} "
                                    "engine (its plan is the cluster's): EXPLAIN runs on the embedded engine only")
        derived = [f"{q}.{d}" for q, d in plan.datasets if _inlined(self.namespace.dataset(q, d))]
        explained = Explained(plan.sql, request.analyze, request.format, tuple(plan.system_tables) + tuple(derived))
        placeholders = [p.sql(dialect=self.backend_dialect) for p in
                        sqlglot.parse_one(plan.sql, read=self.backend_dialect).find_all(exp.Placeholder)
                        ] if ("?" in plan.sql or "$" in plan.sql) else []
        shape = f'SELECT CAST(NULL AS VARCHAR) AS "{explained.column}"'
        if placeholders:  # the same parameters as the query: describing and binding see the same ones
            shape += f" FROM (SELECT {', '.join(placeholders)}) AS quanta_parameters"
        return replace(plan, sql=shape + " WHERE false", explain=explained)

    def resolve_definition(self, sql: str, principal: Principal) -> Definition:
        """Resolve a derived dataset's SQL (mesh names -> backend relations, derived -> inlined)."""
        expression = self.parse(sql)
        ctx = Context(self.namespace, principal, sql)
        for rewrite in (only_reads, check_nodes, resolve_tables):
            expression = rewrite(expression, ctx)
        marks = {id(n): ctx.marks[id(n)] for n in expression.walk() if id(n) in ctx.marks}
        return Definition(expression, marks)  # type: ignore[arg-type]

    def clear_cache(self) -> None:
        with self._lock:
            self._cache.clear()
