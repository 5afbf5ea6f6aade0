"""Positional parameters written without a space (``$1,$2``, ``in ($1,$2,$3)``) made readable by sqlglot.

sqlglot (30.x, Python and compiled tokenizer alike: both are built from ``sqlglot/tokenizer_core.py``)
reads ``$`` as the start of a dollar-quoted string and takes everything up to the next ``$`` as its tag;
it falls back to a parameter only when that "tag" is all digits or holds a space. ``$1,$2`` has the tag
``1,``, so it fails with "Error tokenizing". PostgreSQL's tags follow the rules of identifiers and never
start with a digit, so ``$<digits>`` is always a parameter: the upstream fix is
``patches/sqlglot-dollar-params.patch``. Until it is released, ``space_parameters`` puts a space after each
``$<digits>`` that sqlglot would misread (no space before the next ``$``), outside string constants, quoted
identifiers, dollar-quoted strings and comments (the SQL means the same)::

    >>> space_parameters("select $1,$2 where x in ($3,$4) and y = '$5,$6'")
    "select $1 ,$2 where x in ($3 ,$4) and y = '$5,$6'"
"""

from __future__ import annotations

import re

_TAG = re.compile(r"\$(?:[A-Za-z_\x80-\uffff][A-Za-z_0-9\x80-\uffff]*)?\$")  # a dollar quote's opening
_IDENT = re.compile(r"[A-Za-z_0-9\x80-\uffff$]")


def space_parameters(sql: str) -> str:
    if "$" not in sql:
        return sql
    out: list[str] = []
    i, n, start = 0, len(sql), 0
    while i < n:
        c = sql[i]
        if c == "-" and sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "/" and sql.startswith("/*", i):
            i = _comment_end(sql, i)
        elif c == "'":
            i = _string_end(sql, i, backslashes=i > 0 and sql[i - 1] in "eE" and (i < 2 or not _ident(sql[i - 2])))
        elif c == '"':
            i = _string_end(sql, i, backslashes=False)
        elif c == "$" and i > 0 and _ident(sql[i - 1]):
            i += 1  # a $ inside an identifier (a$b)
        elif c == "$":
            tag = _TAG.match(sql, i)
            if tag:
                end = sql.find(tag.group(), tag.end())
                i = n if end < 0 else end + len(tag.group())
                continue
            j = i + 1
            while j < n and sql[j].isdigit():
                j += 1
            following = sql.find("$", j)  # sqlglot's "tag" runs to there: a space in it makes $n a parameter
            if j > i + 1 and following >= 0 and not any(ch.isspace() for ch in sql[j:following]):
                out.append(sql[start:j])
                out.append(" ")
                start = j
            i = j
        else:
            i += 1
    out.append(sql[start:])
    return "".join(out)


def _ident(c: str) -> bool:
    return bool(_IDENT.match(c))


def _string_end(sql: str, i: int, backslashes: bool) -> int:
    """The index after the constant or quoted identifier opening at ``i`` (doubled quotes inside)."""
    quote, n, i = sql[i], len(sql), i + 1
    while i < n:
        c = sql[i]
        if backslashes and c == "\\":
            i += 2
        elif c == quote:
            if i + 1 < n and sql[i + 1] == quote:
                i += 2
            else:
                return i + 1
        else:
            i += 1
    return n


def _comment_end(sql: str, i: int) -> int:
    """The index after the (nested) block comment opening at ``i``."""
    depth, n = 0, len(sql)
    while i < n:
        if sql.startswith("/*", i):
            depth += 1
            i += 2
        elif sql.startswith("*/", i):
            depth -= 1
            i += 2
            if depth == 0:
                return i
        else:
            i += 1
    return n
