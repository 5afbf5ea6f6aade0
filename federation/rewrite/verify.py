"""The verifier: the last wall between a rewritten query and the engine. Read this file as a lock.

After the passes, the SQL that will run is parsed again by DuckDB's own parser (``engine.parser``), and
this module proves, on that tree and on nothing the passes left behind, that the query reads only what the
pipeline placed in it:

- every relation is either a CTE in scope by DuckDB's exact rules, or a fully qualified relation that the
  pipeline placed, and then only in a shape the pipeline built: inside one of the *secure selects* the
  policy code generated for this principal (row filters, masks, denials), or bare as many times as the
  pipeline placed it bare (a dataset the principal reads in clear);
- every function, operator and expression kind is on an allow-list (``functions.py`` for functions); a
  qualified function name, a table function other than ``unnest``/``range``/``generate_series``, a time
  travel clause and any node kind this module does not know are refused.

DuckDB's CTE scoping, checked against DuckDB 1.5.5 (``tests/test_verifier.py``): a CTE sees the CTEs written
before it in its WITH and the outer ones, never the later ones (those names fall through to the catalog);
a CTE sees itself only when the WITH is RECURSIVE, its body is a UNION (DuckDB's ``RECURSIVE_CTE_NODE``),
and only in the recursive (right-most) operand: in the anchor, its own name is the catalog's.

Anything the verifier cannot prove is refused (``UnverifiedQuery``): it never repairs.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from ..engine.parser import ParseFailure, parse_tree
from ..errors import StatementRefused
from . import functions

Relation = tuple[str, str, str]  # (catalog, schema, name), lower case


class UnverifiedQuery(StatementRefused):
    """The rewritten query could not be proven safe: a defect of the pipeline, refused and audited."""

    code = "unverified"
    sqlstate = "XX000"


@dataclass
class Placements:
    """What the pipeline put in the query: the only relations and secure shapes the verifier accepts."""

    bare: Counter = field(default_factory=Counter)  # relation -> times placed without a wrapper
    secure: dict[Relation, set[str]] = field(default_factory=dict)  # relation -> canonical secure selects
    wrappers: Counter = field(default_factory=Counter)  # canonical secure selects over a derived dataset -> times

    def place(self, relation: Relation) -> None:
        self.bare[_rel(relation)] += 1

    def place_secure(self, relation: Relation, canonical_select: str) -> None:
        """A placed relation is now read through a secure select instead of bare."""
        rel = _rel(relation)
        self.bare[rel] -= 1
        self.secure.setdefault(rel, set()).add(canonical_select)


def _rel(relation) -> Relation:
    return tuple(part.lower() for part in relation)  # type: ignore[return-value]


QUERY_NODES = {"SELECT_NODE", "SET_OPERATION_NODE", "RECURSIVE_CTE_NODE"}
TABLE_REFS = {"BASE_TABLE", "SUBQUERY", "JOIN", "EXPRESSION_LIST", "EMPTY", "TABLE_FUNCTION", "PIVOT", "SHOW_REF"}
# dicts with a "type" that are neither queries nor relations: result modifiers and sort orders
PLAIN = {"LIMIT_MODIFIER", "ORDER_MODIFIER", "DISTINCT_MODIFIER", "LIMIT_PERCENT_MODIFIER",
         "ORDER_DEFAULT", "ASCENDING", "DESCENDING"}
EXPRESSIONS = {"CONSTANT", "COLUMN_REF", "FUNCTION", "OPERATOR", "COMPARISON", "CONJUNCTION", "CASE", "CAST",
               "BETWEEN", "SUBQUERY", "STAR", "WINDOW", "PARAMETER", "LAMBDA", "LAMBDA_REF", "COLLATE",
               "POSITIONAL_REFERENCE"}
LEAVES = {"CONSTANT", "COLUMN_REF", "PARAMETER", "POSITIONAL_REFERENCE"}  # hold no expression or query
TABLE_FUNCTIONS = {"unnest", "range", "generate_series"}  # pure generators over their arguments
OPERATORS = {"+", "-", "*", "/", "//", "%", "**", "^", "||", "&", "|", "<<", ">>", "~", "!", "@", "->", "->>",
             "~~", "!~~", "~~*", "!~~*", "~~~", "!~~~", "^@", "<->", "<=>", "&&", "@>", "<@", "<#>"}
# names DuckDB's parser (not the user) gives to syntax: [..], {..}, SIMILAR TO, INTERVAL, ...
PARSER_FUNCTIONS = {"list_value", "struct_pack", "regexp_full_match", "to_years", "to_months", "to_days",
                    "to_hours", "to_minutes", "to_seconds", "to_milliseconds", "to_microseconds", "to_weeks",
                    "to_quarters", "to_decades", "to_centuries", "to_millennia", "array_slice", "list_slice",
                    "row"}
WINDOW_FUNCTIONS = {"row_number", "rank", "dense_rank", "rank_dense", "percent_rank", "cume_dist", "ntile",
                    "lag", "lead", "first_value", "last_value", "nth_value", "first", "last", "any_value"}


def canonical(node: dict) -> str:
    """A parse-tree node as text, without source positions: equal for equal SQL wherever it stands."""
    return json.dumps(_strip(node), sort_keys=True, separators=(",", ":"))


def _strip(value):
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if k != "query_location"}
    if isinstance(value, list):
        return [_strip(v) for v in value]
    return value


@lru_cache(maxsize=4096)
def canonical_select(sql: str) -> str:
    """The canonical form of a secure select built by the policy code (registered in ``Placements``)."""
    return canonical(parse_tree(sql))


@lru_cache(maxsize=4096)
def canonical_wrapper(sql: str) -> str:
    """The canonical form of a secure select over a derived dataset, its FROM left out."""
    node = dict(parse_tree(sql))
    node.pop("from_table", None)
    return canonical(node)


def verify(sql: str, placements: Placements) -> None:
    """Prove ``sql`` reads only what ``placements`` allows; ``UnverifiedQuery`` otherwise."""
    try:
        tree = parse_tree(sql)
    except ParseFailure as e:
        raise _refuse(f"the engine does not parse the rewritten query as one SELECT ({e})") from None
    except Exception as e:  # noqa: BLE001 - a parser failure of any kind refuses
        raise _refuse(f"the engine's parser failed ({type(e).__name__})") from None
    Walk(placements).visit(tree, frozenset())


def _refuse(reason: str) -> UnverifiedQuery:
    return UnverifiedQuery(f"internal error: Quanta could not prove the rewritten query safe ({reason}); "
                           "it was refused and audited")


class Walk:
    """The proof over DuckDB's parse tree (the pgwire catalog's verifier extends it with its own relations)."""

    def __init__(self, placements: Placements):
        self.bare = Counter(placements.bare)
        self.secure = placements.secure
        self.wrappers = Counter(placements.wrappers)  # each placed wrapper accepted once: none can be forged

    def visit(self, value, scope: frozenset) -> None:
        if isinstance(value, list):
            for item in value:
                self.visit(item, scope)
            return
        if not isinstance(value, dict):
            return
        if "class" in value:
            self.expression(value, scope)
            return
        kind = value.get("type")
        if isinstance(kind, str):
            if kind in QUERY_NODES:
                self.query(value, scope)
            elif kind in TABLE_REFS:
                self.table_ref(value, scope)
            elif kind in PLAIN or kind.endswith("_TYPE_INFO"):  # modifiers, orders, types (no expressions)
                self.children(value, scope)
            else:
                raise _refuse(f"unknown parse node {kind}")
            return
        self.children(value, scope)

    def children(self, node: dict, scope: frozenset, skip: tuple[str, ...] = ()) -> None:
        for key, child in node.items():
            if key not in skip and isinstance(child, (dict, list)):
                self.visit(child, scope)

    # -- queries and their CTEs -------------------------------------------------------------------

    def query(self, node: dict, scope: frozenset, cte_name: str | None = None) -> None:
        ctes = (node.get("cte_map") or {}).get("map") or []
        for entry in ctes:
            name = str(entry["key"]).lower()
            body = entry["value"]["query"]["node"]
            self.visit(entry["value"].get("key_targets"), scope)
            if body.get("type") == "RECURSIVE_CTE_NODE" and str(body.get("cte_name", "")).lower() == name:
                self.query(body, scope, cte_name=name)
            else:
                self.visit(body, scope)
            scope = scope | {name}  # visible to the CTEs after it and to the query
        kind = node["type"]
        if kind == "RECURSIVE_CTE_NODE":
            self.visit(node["left"], scope)  # the anchor does not see the CTE itself
            self.visit(node["right"], scope | {cte_name} if cte_name else scope)
            self.children(node, scope, skip=("cte_map", "left", "right"))
            return
        if kind == "SELECT_NODE" and self._trusted(node, scope):
            return
        self.children(node, scope, skip=("cte_map",))

    def _trusted(self, node: dict, scope: frozenset) -> bool:
        """A secure select placed by the pipeline: accepted whole (its masks may call internal functions)."""
        source = node.get("from_table") or {}
        if source.get("type") == "BASE_TABLE" and source.get("catalog_name") and source.get("schema_name"):
            allowed = self.secure.get(_rel((source["catalog_name"], source["schema_name"], source["table_name"])))
            return bool(allowed) and canonical(node) in allowed
        if source.get("type") == "SUBQUERY" and self.wrappers and source.get("alias") == "_derived":
            rest = canonical({k: v for k, v in node.items() if k != "from_table"})
            if self.wrappers[rest] > 0:
                self.wrappers[rest] -= 1
                self.visit(source, scope)
                return True
        return False

    # -- relations --------------------------------------------------------------------------------

    def table_ref(self, ref: dict, scope: frozenset) -> None:
        kind = ref["type"]
        if kind == "BASE_TABLE":
            self.base_table(ref, scope)
        elif kind == "TABLE_FUNCTION":
            function = ref.get("function") or {}
            name = str(function.get("function_name", "")).lower()
            if name not in TABLE_FUNCTIONS or function.get("schema") or function.get("catalog"):
                raise _refuse(f"table function {name}()")
            self.children(function, scope)
            self.children(ref, scope, skip=("function",))
        elif kind == "SHOW_REF":  # DESCRIBE <query>: the query's column names and types, nothing else
            if ref.get("show_type") != "DESCRIBE" or ref.get("table_name") or not ref.get("query"):
                raise _refuse(f"{ref.get('show_type')} {ref.get('table_name') or ''}".strip())
            self.visit(ref["query"], scope)
        else:
            self.children(ref, scope)

    def base_table(self, ref: dict, scope: frozenset) -> None:
        catalog, schema, name = (str(ref.get(k) or "").lower() for k in ("catalog_name", "schema_name", "table_name"))
        if ref.get("at_clause"):
            raise _refuse(f"a time-travel clause on {name}")
        if not catalog and not schema:
            if name not in scope:
                raise _refuse(f"relation {name!r} is neither a CTE in scope nor placed by the pipeline")
        elif catalog and schema:
            relation = (catalog, schema, name)
            if self.bare[relation] <= 0:
                raise _refuse(f"relation {catalog}.{schema}.{name} is read outside its secure select")
            self.bare[relation] -= 1
        else:
            raise _refuse(f"partly qualified relation {schema or catalog}.{name}")
        self.children(ref, scope)

    # -- expressions ------------------------------------------------------------------------------

    def expression(self, node: dict, scope: frozenset) -> None:
        cls = node["class"]
        if cls in LEAVES:
            return
        if cls not in EXPRESSIONS:
            raise _refuse(f"unknown expression {cls}")
        if cls in ("FUNCTION", "WINDOW"):
            name = str(node.get("function_name", "")).lower()
            # DuckDB's parser itself writes main.date_part for EXTRACT, main.list_value for [..]: "main" with no
            # catalog is the built-ins' schema (Quanta creates nothing there); any other qualifier is refused
            if node.get("catalog") or node.get("schema") not in ("", None, "main"):
                raise _refuse(f"qualified function {node.get('schema') or node.get('catalog')}.{name}()")
            if cls == "FUNCTION" and node.get("is_operator"):
                if name not in OPERATORS:
                    raise _refuse(f"operator {name}")
            elif not (name in functions.ALLOWED_FUNCTION_NAMES or name in PARSER_FUNCTIONS
                      or (cls == "WINDOW" and name in WINDOW_FUNCTIONS)):
                raise _refuse(f"function {name}() is not on the allow-list")
        self.children(node, scope)
