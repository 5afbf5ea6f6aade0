"""Reserved words as column labels (``select 1 as select``, ``t.select``) made readable by sqlglot.

PostgreSQL takes any keyword, reserved or not, as a column label after ``AS`` and after a dot (its
grammar's ``ColLabel``); Metabase's privilege query names its columns ``select``, ``insert``,
``update``, ``delete``. sqlglot (30.x) takes every keyword there but ``SELECT`` and ``NOT`` (its
``RESERVED_TOKENS``), so ``quote_reserved_labels`` quotes those two where they are labels, in lower
case as PostgreSQL folds them (the SQL means the same)::

    >>> quote_reserved_labels("select 1 as select, t.not from t")
    'select 1 as "select", t."not" from t'
"""

from __future__ import annotations

import re

from sqlglot.tokens import TokenType

from .session import tokens

_WORDS = {TokenType.SELECT, TokenType.NOT}
_CANDIDATE = re.compile(r"(?:\bas|\.)\s*(?:select|not)\b", re.IGNORECASE)
_FOLLOW = {TokenType.COMMA, TokenType.R_PAREN, TokenType.SEMICOLON, TokenType.FROM, TokenType.WHERE,
           TokenType.GROUP_BY, TokenType.HAVING, TokenType.ORDER_BY, TokenType.LIMIT, TokenType.OFFSET,
           TokenType.UNION, TokenType.INTERSECT, TokenType.EXCEPT, TokenType.WINDOW, TokenType.FETCH}


def quote_reserved_labels(sql: str) -> str:
    if not _CANDIDATE.search(sql):
        return sql
    toks = tokens(sql)
    spans = []
    for i in range(1, len(toks)):
        t, before = toks[i], toks[i - 1]
        if t.token_type not in _WORDS or sql[t.start:t.end + 1].lower() != t.text.lower():
            continue  # not the bare word
        after = toks[i + 1] if i + 1 < len(toks) else None
        if before.token_type == TokenType.DOT or (
                before.token_type == TokenType.ALIAS and (after is None or after.token_type in _FOLLOW)):
            spans.append((t.start, t.end))
    for start, end in reversed(spans):
        sql = f'{sql[:start]}"{sql[start:end + 1].lower()}"{sql[end + 1:]}'
    return sql
