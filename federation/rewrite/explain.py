"""``EXPLAIN [ANALYZE] <query>``: the statement's prefix read off, the query compiled like any other.

An EXPLAIN is the plan of the governed query, never of the text sent: the pipeline compiles the query
after the prefix (grants, row filters, masks, denials apply; a refused query is refused, and audited,
the same way) and the platform renders the engine's plan of the governed SQL (``federation/explain.py``).

Accepted, as PostgreSQL and DuckDB write them::

    EXPLAIN <query>
    EXPLAIN ANALYZE [VERBOSE] <query>            (ANALYSE too)
    EXPLAIN (ANALYZE [bool], VERBOSE, COSTS off, BUFFERS, TIMING, SUMMARY, SETTINGS, FORMAT TEXT|JSON) <query>

Options that only change the detail PostgreSQL prints are accepted and have no effect (Quanta shows
what is safe to show, see ``federation/explain.py``). The query keeps its positions: the prefix is
blanked, not cut, so an error in the query names its line and column in the text as sent.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import TokenType

from ..errors import NotSupportedError, SyntaxError

_TRUE = {"true", "on", "1", "yes"}
_FALSE = {"false", "off", "0", "no"}
# PostgreSQL's options that change only what its own plan prints: accepted, without effect here
_DETAIL = {"verbose", "costs", "buffers", "timing", "summary", "settings", "wal", "memory", "serialize",
           "generic_plan"}
_LEADING = re.compile(r"\s*(?:--[^\n]*\n\s*|/\*.*?\*/\s*)*", re.S)


@dataclass(frozen=True)
class ExplainRequest:
    analyze: bool  # run the query and report what it did (EXPLAIN ANALYZE)
    format: str  # "text" (one row per line, column "QUERY PLAN") or "json" (one row)
    sql: str  # the query to explain, the prefix blanked (same length: positions hold)


def explain_request(sql: str, dialect: str = "duckdb") -> ExplainRequest | None:
    """The EXPLAIN of ``sql``, or None when it is not an EXPLAIN statement."""
    if not isinstance(sql, str):
        return None
    start = _LEADING.match(sql).end()  # type: ignore[union-attr]
    if sql[start:start + 7].upper() != "EXPLAIN" or (sql[start + 7:start + 8] and
                                                     (sql[start + 7].isalnum() or sql[start + 7] == "_")):
        return None
    pos = start + 7
    try:
        tokens = Dialect.get_or_raise(dialect).tokenize(sql[pos:])
    except TokenError as e:
        raise SyntaxError(f"syntax error: {e}") from None
    analyze, fmt, i = False, "text", 0

    def word(k: int) -> str:
        return tokens[k].text.lower() if k < len(tokens) else ""

    if tokens and tokens[0].token_type == TokenType.L_PAREN:  # EXPLAIN (option [value], ...)
        i = 1
        while True:
            name = word(i)
            if not name:
                raise SyntaxError("syntax error: EXPLAIN's options are not closed by ')'")
            i += 1
            value = None
            if i < len(tokens) and tokens[i].token_type not in (TokenType.COMMA, TokenType.R_PAREN):
                value = word(i)
                i += 1
            if name in ("analyze", "analyse"):
                if value is not None and value not in _TRUE | _FALSE:
                    raise SyntaxError(f"syntax error: EXPLAIN option ANALYZE takes a boolean, not {value!r}")
                analyze = value is None or value in _TRUE
            elif name == "format":
                if value not in ("text", "json"):
                    raise NotSupportedError(f"EXPLAIN (FORMAT {(value or '').upper()}) is not supported: "
                                            "Quanta explains in FORMAT TEXT or FORMAT JSON")
                fmt = value
            elif name not in _DETAIL:
                raise SyntaxError(f"syntax error: unknown EXPLAIN option {tokens[i - 1 - (value is not None)].text!r}"
                                  f" (Quanta accepts ANALYZE and FORMAT TEXT|JSON; PostgreSQL's VERBOSE, COSTS, "
                                  f"BUFFERS, TIMING, SUMMARY, SETTINGS have no effect)")
            if word(i) == ",":
                i += 1
                continue
            if i < len(tokens) and tokens[i].token_type == TokenType.R_PAREN:
                i += 1
                break
            raise SyntaxError("syntax error: EXPLAIN's options are a list in parentheses, separated by commas")
    else:  # EXPLAIN [ANALYZE] [VERBOSE]
        if word(i) in ("analyze", "analyse"):
            analyze, i = True, i + 1
        if word(i) == "verbose":
            i += 1
    if i >= len(tokens):
        raise SyntaxError("syntax error: EXPLAIN of nothing: EXPLAIN is followed by the query to explain")
    body = pos + tokens[i].start
    blank = "".join(c if c in "\r\n" else " " for c in sql[:body])  # keeps lines and columns
    return ExplainRequest(analyze, fmt, blank + sql[body:])
