"""Query parameters of the Python API: ``?`` and ``$1`` with a sequence, ``:name``, ``%(name)s`` and ``$name``
with a dict.

``bind`` runs once, in ``Platform.query`` (the connection asks for it: ``named_parameters=True``), before the
statement is compiled, so a mismatch is audited like any refused query: it reads the statement with sqlglot's
DuckDB tokenizer (so a ``:x`` inside a string literal, a ``$$...$$`` string or a comment, a ``::`` cast, a
``[lo:hi]`` or ``[:hi]`` slice or a ``{'k':v}`` struct is never taken for a parameter), spells every named parameter
``$name`` (DuckDB binds those from a dict natively) and checks that the values match the placeholders:
a missing or extra name, a count that differs, a dict for positional SQL or a sequence for named SQL is a
``ProgrammingError`` naming the parameter, before anything is compiled or run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlglot.dialects.dialect import Dialect
from sqlglot.errors import TokenError
from sqlglot.tokens import Token, TokenType

from .errors import ProgrammingError

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_DIGITS = re.compile(r"[0-9]+\Z")
# a ':' after one of these ends a value (a slice bound, a struct key, a prefix alias), it opens no parameter
# (or ``[`` : ``x[:hi]`` is a slice)
_NOT_BEFORE = {TokenType.VAR, TokenType.STRING, TokenType.NUMBER, TokenType.R_PAREN, TokenType.R_BRACKET,
               TokenType.R_BRACE, TokenType.IDENTIFIER, TokenType.HEREDOC_STRING, TokenType.L_BRACKET}


@dataclass(frozen=True)
class Placeholder:
    kind: str  # "?" (qmark), "$n" (numbered), "named"
    name: str  # the name, or the number of a "$n"
    spelled: str  # as the statement writes it: "?", "$1", ":id", "%(id)s", "$id"
    start: int
    end: int  # inclusive, as sqlglot's tokens


def _adjacent(a: Token, b: Token) -> bool:
    return a.end + 1 == b.start


def placeholders(sql: str) -> list[Placeholder] | None:
    """The parameters of ``sql``, in order; None when the tokenizer cannot read it (an unterminated string):
    the pipeline reports that syntax error."""
    try:
        tokens = Dialect.get_or_raise("duckdb").tokenize(sql)
    except TokenError:
        return None
    found: list[Placeholder] = []
    i = 0
    while i < len(tokens):
        tok = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        kind = tok.token_type
        if kind == TokenType.PLACEHOLDER and tok.text == "?":
            found.append(Placeholder("?", str(len(found) + 1), "?", tok.start, tok.end))
        elif kind == TokenType.QDCOLON:  # "?::type", one token; respelled "? ::type" for the parser
            found.append(Placeholder("?", str(len(found) + 1), "?::", tok.start, tok.end))
        elif kind == TokenType.PARAMETER and nxt is not None and _adjacent(tok, nxt):
            if _DIGITS.match(nxt.text):
                found.append(Placeholder("$n", nxt.text, f"${nxt.text}", tok.start, nxt.end))
                i += 1
            elif _NAME.match(nxt.text):
                found.append(Placeholder("named", nxt.text, f"${nxt.text}", tok.start, nxt.end))
                i += 1
        elif (kind == TokenType.COLON and nxt is not None and _adjacent(tok, nxt)
              and _NAME.match(nxt.text) and nxt.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
              and (i == 0 or tokens[i - 1].token_type not in _NOT_BEFORE)):
            found.append(Placeholder("named", nxt.text, f":{nxt.text}", tok.start, nxt.end))
            i += 1
        elif kind == TokenType.MOD and i + 4 < len(tokens):
            paren, name, close, s = tokens[i + 1:i + 5]
            if (paren.token_type == TokenType.L_PAREN and close.token_type == TokenType.R_PAREN and s.text == "s"
                    and _NAME.match(name.text) and name.token_type not in (TokenType.STRING, TokenType.IDENTIFIER)
                    and _adjacent(tok, paren) and _adjacent(paren, name) and _adjacent(name, close)
                    and _adjacent(close, s)):
                found.append(Placeholder("named", name.text, f"%({name.text})s", tok.start, s.end))
                i += 4
        i += 1
    return found


def bind(sql: str, params: Any) -> tuple[str, list | dict | None]:
    """``sql`` with its named parameters spelled ``$name``, and the values to bind (a list, a dict, or None
    when the statement has no parameter); a mismatch is a ``ProgrammingError``."""
    if not isinstance(sql, str):
        return sql, params  # the platform reports it
    if params is not None and (isinstance(params, (str, bytes)) or not isinstance(params, (Mapping, Sequence))):
        raise ProgrammingError(f"parameters are a sequence (for ?) or a dict (for :name), not a "
                               f"{type(params).__name__}")
    found = placeholders(sql)
    if found is None:
        return sql, params  # unreadable: the pipeline's syntax error says where
    if not found:
        if params:
            raise ProgrammingError(f"the query has no parameter placeholder but {len(params)} value(s) were given")
        return sql, None
    named = [p for p in found if p.kind == "named"]
    positional = [p for p in found if p.kind != "named"]
    if named and positional:
        raise ProgrammingError(f"the query mixes positional ({positional[0].spelled}) and named "
                               f"({named[0].spelled}) parameters: use one style")
    if named:
        return _bind_named(sql, named, params)
    values = _bind_positional(positional, params)
    for p in reversed(positional):
        if p.spelled == "?::":
            sql = f"{sql[:p.start]}? ::{sql[p.end + 1:]}"
    return sql, values


def _bind_named(sql: str, named: list[Placeholder], params: Any) -> tuple[str, dict]:
    if not isinstance(params, Mapping):
        given = "none were" if params is None else f"a {type(params).__name__} was"
        raise ProgrammingError(f"the query uses named parameters ({named[0].spelled}): pass a dict of values; "
                               f"{given} given")
    for key in params:
        if not isinstance(key, str):
            raise ProgrammingError(f"parameter names are strings, not {key!r}")
    missing = [p.spelled for p in _first_of_each(named) if p.name not in params]
    if missing:
        raise ProgrammingError(f"no value for parameter {', '.join(missing)}")
    used = {p.name for p in named}
    extra = [k for k in params if k not in used]
    if extra:
        raise ProgrammingError(f"the query has no parameter named {', '.join(extra)} (it uses "
                               f"{', '.join(p.spelled for p in _first_of_each(named))})")
    out, last = [], 0
    for p in named:
        out.append(sql[last:p.start])
        out.append(f"${p.name}")
        last = p.end + 1
    out.append(sql[last:])
    return "".join(out), dict(params)


def _bind_positional(positional: list[Placeholder], params: Any) -> list:
    kinds = {p.kind for p in positional}
    if len(kinds) > 1:
        numbered = next(p for p in positional if p.kind == "$n")
        raise ProgrammingError(f"the query mixes ? and {numbered.spelled} parameters: use one style")
    if isinstance(params, Mapping):
        raise ProgrammingError(f"the query uses positional parameters ({positional[0].spelled}): pass a list or "
                               f"a tuple of values, not a dict")
    values = list(params or ())
    if kinds == {"?"}:
        if len(values) != len(positional):
            raise ProgrammingError(f"the query has {len(positional)} ? parameter(s) but {len(values)} value(s) "
                                   f"were given")
        return values
    numbers = {int(p.name) for p in positional}
    if 0 in numbers:
        raise ProgrammingError("numbered parameters start at $1, not $0")
    wanted = max(numbers)
    if len(values) < wanted:
        raise ProgrammingError(f"no value for parameter ${len(values) + 1}: the query uses up to ${wanted} and "
                               f"{len(values)} value(s) were given")
    if len(values) > wanted:
        raise ProgrammingError(f"the query uses up to ${wanted} but {len(values)} values were given")
    gap = next((n for n in range(1, wanted + 1) if n not in numbers), None)
    if gap is not None:
        raise ProgrammingError(f"the query uses up to ${wanted} but not ${gap}")
    return values


def _first_of_each(named: list[Placeholder]) -> list[Placeholder]:
    seen: dict[str, Placeholder] = {}
    for p in named:
        seen.setdefault(p.name, p)
    return list(seen.values())
