"""Refuse a query text too large or too deeply nested, before anything parses it.

Parsing, rewriting and the engine's planning are not interruptible (a time-out only stops a query once
the engine executes it) and some grow much faster than the text:

* a 1 MB ``1=1 or 1=1 ...`` kept a server busy for minutes;
* ``1+1+...+1`` with 800 terms takes the engine 12 s to plan; a few hundred nested parentheses or
  subqueries exhaust Python's stack;
* the engine's filter pushdown is exponential in subqueries nested in expressions: twelve nested
  ``(select max(x) from t where x < (select ...))`` take 15 s to plan, sixteen scalar subqueries
  chained through CTEs five minutes, and neither can be interrupted.

So the pipeline first checks three limits of the mesh's settings on the text alone, with a light scan
that skips strings and comments:

* ``max_sql_bytes`` (256 KiB): the size of the text in UTF-8;
* ``max_sql_depth`` (128): the nesting depth: each open ``(``, ``[``, ``{`` or ``CASE`` is one level,
  and each operator in a chain (``a + b + c``, ``x::int::text``, ``NOT NOT x``) one more, since each
  nests the expression tree; ``AND``/``OR``, commas and clause keywords end a chain (the parser and
  the engine flatten those lists, so long ``OR`` lists and ``IN`` lists stay cheap);
* ``max_sql_subquery_depth`` (8): how deeply subqueries nest inside expressions (scalar, ``IN``,
  ``EXISTS``, ``LATERAL``; a table in ``FROM`` is not a level), counting through CTE references
  (a CTE referenced at depth d adds its own depth to d); and, since the planning cost grows as
  4 to the power of that depth, the sum over such subqueries of 4^depth may not pass 4^(limit + 1)
  (many subqueries side by side are fine, many nested ones are not).

      >>> check_sql("select (1 + 2) * 3", {})
      >>> scan("select (1 + 2) * 3").depth, scan("select (select (select 1))").subquery_depth
      (2, 2)

A refusal is ``QueryTooComplex`` (HTTP 400, SQLSTATE 54001) naming the limit and where the text
passed it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Mapping

from ..errors import QueryTooComplex
from ..settings import DEFAULTS, Settings

MAX_SQL_BYTES = DEFAULTS["max_sql_bytes"]
MAX_SQL_DEPTH = DEFAULTS["max_sql_depth"]
MAX_SQL_SUBQUERY_DEPTH = DEFAULTS["max_sql_subquery_depth"]

_SCAN = re.compile(r"""
    (?P<skip> '(?:[^']|'')*'?                        # a string ('' inside)
            | --[^\n]*                               # comments
            | /\*.*?(?:\*/|\Z)
            | \$(?P<tag>[A-Za-z_][A-Za-z0-9_]*)?\$.*?(?:\$(?P=tag)\$|\Z)   # a dollar-quoted string
            | [0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)? | \.[0-9]+ )
  | (?P<name> "(?:[^"]|"")*"? | `[^`]*`? )          # a quoted name
  | (?P<open>[(\[{])
  | (?P<close>[)\]}])
  | (?P<word>[A-Za-z_][A-Za-z0-9_$]*)
  | (?P<sep>[,;])
  | (?P<op>::|->>|->|\|\||<=|>=|<>|!=|==|\*\*|//|<<|>>|[-+*/%<>=~^&|!])
""", re.VERBOSE | re.DOTALL)

# words that end a chain of operators: boolean connectives (flattened by the parser and the engine) and
# clause keywords (what follows is another expression)
_CHAIN_ENDS = frozenset("""AND OR SELECT FROM WHERE GROUP BY HAVING ORDER LIMIT OFFSET FETCH ON USING JOIN
    UNION INTERSECT EXCEPT ALL DISTINCT WHEN THEN ELSE AS WITH RECURSIVE QUALIFY WINDOW OVER PARTITION ROWS
    RANGE VALUES IN IS BETWEEN LIKE ILIKE ASC DESC NULLS LATERAL EXISTS""".split())
_CLAUSES = frozenset("SELECT FROM WHERE GROUP HAVING ORDER QUALIFY WINDOW LIMIT ON USING".split())
_QUERY_STARTS = frozenset("SELECT WITH VALUES FROM TABLE PIVOT UNPIVOT SUMMARIZE".split())
_TABLE_POSITIONS = frozenset("FROM JOIN UNION INTERSECT EXCEPT ALL".split())  # "(" here starts a table
_NOISE = frozenset("MATERIALIZED".split())  # WITH x AS [NOT] MATERIALIZED (


@dataclass
class Scan:
    depth: int = 0  # the deepest level of brackets, CASE and operator chains
    depth_at: int = 0  # where it was reached
    subquery_depth: int = 0  # the deepest nesting of subqueries in expressions (CTE references included)
    subquery_at: int = 0
    subquery_cost: int = 0  # sum of 4^depth over those subqueries


def check_sql(sql: Any, settings: Mapping[str, Any]) -> None:
    """Raise ``QueryTooComplex`` when ``sql`` is over the mesh's ``max_sql_bytes``, ``max_sql_depth`` or
    ``max_sql_subquery_depth``."""
    if not isinstance(sql, str):
        return  # not a query text: the parser says so
    settings = Settings.of(settings)
    max_bytes = settings["max_sql_bytes"]
    size = len(sql) if sql.isascii() else len(sql.encode("utf-8", "surrogatepass"))
    if size > max_bytes:
        raise QueryTooComplex(f"statement too complex: the query is {size:,} bytes long, above this mesh's "
                              f"limit of {max_bytes:,} bytes (setting max_sql_bytes)")
    max_depth, max_sub = settings["max_sql_depth"], settings["max_sql_subquery_depth"]
    if sql.count("(") <= max_sub and _bound(sql, sql.lower()) <= max_depth:
        return  # not enough brackets and operators to pass any limit: no need to scan
    found = scan(sql)
    if found.depth > max_depth:
        raise QueryTooComplex(f"statement too complex: the query nests expressions, parentheses or subqueries "
                              f"more than {max_depth} levels deep (setting max_sql_depth)",
                              position=_position(sql, found.depth_at))
    if found.subquery_depth > max_sub:
        raise QueryTooComplex(f"statement too complex: the query nests subqueries in expressions more than {max_sub} "
                              f"levels deep, counting those of the CTEs it reads (setting max_sql_subquery_depth)",
                              position=_position(sql, found.subquery_at))
    if found.subquery_cost > 4 ** (max_sub + 1):
        raise QueryTooComplex(f"statement too complex: the query has too many nested subqueries in expressions for "
                              f"the engine to plan them in time (setting max_sql_subquery_depth: {max_sub})")


def _bound(sql: str, lower: str) -> int:
    """An upper bound of the depth, counted fast: every level needs a bracket, an operator, CASE or NOT."""
    return sum(map(sql.count, _LEVEL_CHARS)) + lower.count("case") + lower.count("not")


_LEVEL_CHARS = tuple("([{-+*/%<>=~^&|!:")


def _position(sql: str, at: int) -> tuple[int, int]:
    return sql.count("\n", 0, at) + 1, at - (sql.rfind("\n", 0, at) + 1) + 1


class _Level:
    """An open bracket or CASE."""

    __slots__ = ("case", "chain", "clause", "before", "outer_clause", "fresh", "expression_query", "cte")

    def __init__(self, case: bool, before: str | None, outer_clause: str | None, cte: str | None):
        self.case = case
        self.chain = 0  # operators in the current chain
        self.clause: str | None = None  # the clause keyword last seen at this level
        self.before = before  # the significant token before the opening bracket
        self.outer_clause = outer_clause  # the clause of the level around it
        self.fresh = True  # nothing seen inside yet
        self.expression_query = False  # a subquery in an expression
        self.cte = cte  # the CTE this bracket defines


class _Costs:
    """Subquery depth and cost of the main query or of one CTE's body (relative to where it starts)."""

    __slots__ = ("base", "depth", "at", "cost")

    def __init__(self, base: int):
        self.base, self.depth, self.at, self.cost = base, 0, 0, 0

    def add(self, depth: int, cost: int, at: int) -> None:
        if depth > self.depth:
            self.depth, self.at = depth, at
        self.cost += cost


def scan(sql: str) -> Scan:
    """The nesting of a query text (see the module's docstring)."""
    out = Scan()
    levels = [_Level(False, None, None, None)]
    chained = 0  # the operators of the open chains, all levels together
    nested = 0  # open subqueries in expressions
    costs = [_Costs(0)]  # the main query's, then one per CTE body being read
    ctes: dict[str, tuple[int, int]] = {}  # name -> (subquery depth, cost) of its body
    before: list[str | None] = [None, None]  # the two significant tokens before this one
    closed_before: str | None = None  # the token before the bracket closed last (``name(cols) AS (``)
    for m in _SCAN.finditer(sql):
        kind = m.lastgroup
        if kind == "skip" or kind == "tag":
            continue
        text = m.group()
        word = text.upper() if kind == "word" else None
        name = text[1:-1].replace('""', '"').lower() if kind == "name" else \
            (text.lower() if kind == "word" else None)
        level = levels[-1]
        if level.fresh:
            level.fresh = False
            if word in _QUERY_STARTS and level.cte is None and len(levels) > 1 and _in_expression(level):
                level.expression_query = True
                nested += 1
                depth = nested - costs[-1].base
                costs[-1].add(depth, 4 ** min(depth, 40), m.start())
        if word in _NOISE or (word == "NOT" and before[-1] == "AS"):
            continue
        if word == "CASE":
            kind = "open"
        elif word == "END" and len(levels) > 1 and levels[-1].case:
            kind = "close"
        elif word == "NOT":
            kind = "op"
        elif word in _CHAIN_ENDS:
            if word in _CLAUSES:
                level.clause = word
            kind = "sep"
        elif name is not None:
            found = ctes.get(name)
            if found is not None:  # a CTE read here: its subqueries nest below this point
                depth = nested - costs[-1].base
                costs[-1].add(depth + found[0], found[1] * 4 ** min(depth, 40), m.start())
        if kind == "open":
            cte = None
            if text == "(" and before[-1] == "AS" and level.clause == "WITH":
                cte = before[-2] if before[-2] != ")" else closed_before
                cte = cte.lower() if cte else None
            levels.append(_Level(text not in "([{", before[-1], level.clause, cte))
            if cte is not None:
                costs.append(_Costs(nested))
        elif kind == "close":
            if len(levels) > 1:
                done = levels.pop()
                chained -= done.chain
                if done.expression_query:
                    nested -= 1
                if done.cte is not None and len(costs) > 1:
                    body = costs.pop()
                    ctes[done.cte] = (body.depth, body.cost)
                closed_before = done.before
            before = [before[-1], ")"]
            continue
        elif kind == "op":
            level.chain += 1
            chained += 1
        elif kind == "sep":  # a separator ends the chain of its level
            chained -= level.chain
            level.chain = 0
            if word == "WITH":
                level.clause = "WITH"
        before = [before[-1], word if word is not None else (name if name is not None else text)]
        if kind in ("open", "op"):
            depth = len(levels) - 1 + chained
            if depth > out.depth:
                out.depth, out.depth_at = depth, m.start()
    main = costs[0]
    out.subquery_depth, out.subquery_at, out.subquery_cost = main.depth, main.at, main.cost
    return out


def _in_expression(level: _Level) -> bool:
    """Whether a subquery opened by this bracket sits in an expression (not a table of FROM or JOIN, nor a
    member of a set operation)."""
    if level.before is None or level.before in _TABLE_POSITIONS:
        return False
    return not (level.before == "," and level.outer_clause == "FROM")
