"""The last check before a catalog query runs: the SQL about to run, parsed again as DuckDB SQL, reads
only the PostgreSQL catalog and calls only allowed functions. Fail-closed: anything it does not know
is refused (``StatementRefused``, SQLSTATE 42501).

Relations: a table of the principal's catalog (``pgc.*``, ``pgi.*``, ``temp.pg_settings_session``),
a CTE in scope by DuckDB's rules (earlier CTEs of the same WITH, itself when RECURSIVE, every CTE of
an enclosing query's WITH), or one of PostgreSQL's set-returning functions the catalog serves
(``unnest``, ``generate_series``, ``generate_subscripts``). No other table function, no file path,
no other schema or database.

Functions: Quanta's allow-list (``rewrite/functions.py``), plus the catalog's own macros called as
``pgc.<macro>(...)``. No nested statement (``SELECT ... INTO``, DML, PRAGMA, ATTACH, DESCRIBE...) and
no comment (the catalog generates its SQL without them, so both parsers read the same tokens).

Two readings, both must pass. First sqlglot's (clear refusals for the user: which function, which
relation); then DuckDB's own parser (``engine/parser.py``), walked by the query verifier of the
pipeline (``rewrite/verify.py``: DuckDB's exact CTE scoping, expression kinds and function allow-list),
with the catalog's relations and macros as the only things placed: what DuckDB reads differently from
sqlglot is refused there (``UnverifiedQuery``, an internal error).

    >>> verify("select getenv('HOME') from pgc.pg_namespace", relations, macros)
    StatementRefused: function getenv() is not allowed in Quanta queries (it reads the environment)
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import SqlglotError

from ...engine.parser import parse_tree
from ...errors import StatementRefused
from ...rewrite import functions
from ...rewrite.safety import FORBIDDEN
from ...rewrite.verify import Placements, UnverifiedQuery, Walk

MACRO_SCHEMA = "pgc"
TABLE_FUNCTIONS = frozenset({"unnest", "generate_series", "generate_subscripts"})
NOT_READS = FORBIDDEN + tuple(c for c in (getattr(exp, n, None) for n in ("Describe", "Show", "Pragma"))
                              if isinstance(c, type))


def verify(sql: str, relations: frozenset[tuple[str, str]], macros: frozenset[str]) -> None:
    """Raise ``StatementRefused`` unless ``sql`` (DuckDB) reads only ``relations`` ((schema, table),
    lower case), CTEs in scope and catalog set-returning functions, and calls only allowed functions
    and ``macros``."""
    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
    except SqlglotError:  # what cannot be read back cannot be proved safe
        raise StatementRefused("this catalog query cannot be verified: Quanta does not run it") from None
    if not isinstance(tree, exp.Query):
        raise StatementRefused("a catalog query must be one SELECT statement")
    _read(tree, relations, macros)
    prove_with_duckdb(sql, relations, macros)


def _read(tree: exp.Expression, relations: frozenset[tuple[str, str]], macros: frozenset[str]) -> None:
    for node in tree.walk():
        if node.comments:  # the catalog generates none: a comment here is one the parsers may read apart
            raise StatementRefused("this catalog query cannot be verified: Quanta does not run it")
        if isinstance(node, NOT_READS):
            raise StatementRefused(f"{node.key.upper()} is not allowed in a catalog query")
        if isinstance(node, exp.Table):
            _check_relation(node, relations)
        elif isinstance(node, exp.Func):
            _check_function(node, macros)


def _check_relation(table: exp.Table, relations: frozenset[tuple[str, str]]) -> None:
    if not isinstance(table.this, exp.Identifier):  # a table function
        name = table.this.sql("duckdb").split("(", 1)[0].strip().strip('"').lower()
        if name not in TABLE_FUNCTIONS:
            raise StatementRefused(f"table function {name}() is not allowed in a catalog query (it reads "
                                   "pg_catalog and information_schema, and unnest/generate_series)")
        return
    db, name = table.text("db").lower(), table.name.lower()
    if table.args.get("catalog") is None and (db, name) in relations:
        return
    if not db and table.args.get("catalog") is None and _cte_in_scope(table):
        return
    shown = ".".join(p for p in (table.text("catalog"), table.text("db"), table.name) if p)
    raise StatementRefused(f'relation "{shown}" is not allowed in a catalog query: it reads pg_catalog, '
                           "information_schema and its own CTEs")


def _cte_in_scope(table: exp.Table) -> bool:
    """Does DuckDB resolve this unqualified name to a CTE? Only if the CTE comes before the reference in
    the same WITH (or is the CTE itself, in a WITH RECURSIVE), or belongs to an enclosing query's WITH."""
    name = table.name.lower()
    path: exp.Expression = table
    while path.parent is not None:
        parent = path.parent
        if isinstance(parent, exp.With):  # ``path`` is one of its CTEs: only those before it are visible
            position = next(i for i, cte in enumerate(parent.expressions) if cte is path)
            visible = parent.expressions[:position + 1 if parent.args.get("recursive") else position]
            if any(cte.alias_or_name.lower() == name for cte in visible):
                return True
        else:
            with_ = parent.args.get("with_") or parent.args.get("with")
            if isinstance(with_, exp.With) and with_ is not path and \
                    any(cte.alias_or_name.lower() == name for cte in with_.expressions):
                return True
        path = parent
    return False


def _check_function(node: exp.Func, macros: frozenset[str]) -> None:
    parent = node.parent
    if isinstance(parent, exp.Dot) and parent.expression is node:
        qualifier = parent.this
        if isinstance(qualifier, exp.Identifier) and qualifier.name.lower() == MACRO_SCHEMA:
            if isinstance(node, exp.Anonymous) and node.name.lower() in macros:
                return
            raise StatementRefused(f"function {MACRO_SCHEMA}.{functions.function_name(node)}() is not a "
                                   "catalog function")
    if isinstance(parent, exp.Table) and parent.this is node:
        return  # a table function: decided by _check_relation (its arguments are checked as usual)
    if not functions.is_allowed(node):
        raise StatementRefused(functions.explain_refusal(node))


# -- DuckDB's reading ---------------------------------------------------------------------------------------


def prove_with_duckdb(sql: str, relations: frozenset[tuple[str, str]], macros: frozenset[str]) -> None:
    """The second reading alone: ``UnverifiedQuery`` unless DuckDB's parse tree reads only what it may."""
    try:
        tree = parse_tree(sql)
    except Exception as e:  # noqa: BLE001 - a parser failure of any kind refuses
        raise _unverified(f"the engine does not parse it as one SELECT ({type(e).__name__})") from None
    _CatalogWalk(relations, macros).visit(tree, frozenset())


def _unverified(reason: str) -> UnverifiedQuery:
    return UnverifiedQuery(f"internal error: Quanta could not prove the catalog query safe ({reason}); "
                           "it was refused and audited")


class _CatalogWalk(Walk):
    """The pipeline's verifier walk, where the placed relations are the catalog's tables (schema-qualified,
    any number of times), the table functions PostgreSQL's set-returning ones, and ``pgc.<macro>()`` calls
    the catalog's functions. Everything else (CTE scoping, expression kinds, allow-list) is the walk's."""

    def __init__(self, relations: frozenset[tuple[str, str]], macros: frozenset[str]):
        super().__init__(Placements())
        self.relations, self.macros = relations, macros

    def base_table(self, ref: dict, scope: frozenset) -> None:
        catalog, schema, name = (str(ref.get(k) or "").lower() for k in ("catalog_name", "schema_name", "table_name"))
        if ref.get("at_clause") or catalog or not ((schema, name) in self.relations or (not schema and name in scope)):
            raise _unverified(f"relation {'.'.join(p for p in (catalog, schema, name) if p)}")
        self.children(ref, scope)

    def table_ref(self, ref: dict, scope: frozenset) -> None:
        if ref["type"] == "TABLE_FUNCTION":
            function = ref.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
                raise _unverified(f"table function {name}()")
            self.children(function, scope)
            self.children(ref, scope, skip=("function",))
            return
        if ref["type"] == "SHOW_REF":
            raise _unverified(str(ref.get("show_type")))
        super().table_ref(ref, scope)

    def expression(self, node: dict, scope: frozenset) -> None:
        if node.get("class") == "FUNCTION" and str(node.get("schema") or "").lower() == MACRO_SCHEMA \
                and not node.get("catalog") and not node.get("is_operator"):
            if str(node.get("function_name", "")).lower() not in self.macros:
                raise _unverified(f"function {MACRO_SCHEMA}.{node.get('function_name')}()")
            self.children(node, scope)
            return
        super().expression(node, scope)
