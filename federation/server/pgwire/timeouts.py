"""A session's ``statement_timeout`` as PostgreSQL reads it, and the time-out a statement runs with.

The server's limit (``quanta pgserve --timeout``, else the mesh's ``query_timeout_seconds``) is a
ceiling: a client may lower it with ``SET statement_timeout``, never raise it.

    >>> statement_timeout("1500")      # milliseconds when no unit is given
    1.5
    >>> statement_timeout("2min")
    120.0
    >>> statement_timeout("0") is None  # 0 turns the client's limit off (the server's still holds)
    True
"""

from __future__ import annotations

import math
import re

from ...errors import ProgrammingError

_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "min": 60.0, "h": 3600.0, "d": 86400.0}
_VALUE = re.compile(r"\s*([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(us|ms|s|min|h|d)?\s*", re.IGNORECASE)


class InvalidParameterValue(ProgrammingError):
    code = "invalid_setting"
    sqlstate = "22023"


def statement_timeout(value: str | None) -> float | None:
    """Seconds, or None for no limit of the client's own."""
    if value is None:
        return None
    match = _VALUE.fullmatch(str(value))
    if match is None:
        raise InvalidParameterValue(f'invalid value for parameter "statement_timeout": "{value}" (a number of '
                                    "milliseconds, or a number with a unit: us, ms, s, min, h, d)")
    seconds = float(match.group(1)) * _UNITS[(match.group(2) or "ms").lower()]
    if not math.isfinite(seconds):
        raise InvalidParameterValue(f'invalid value for parameter "statement_timeout": "{value}"')
    return seconds or None


def effective_timeout(limit: float | None, session) -> float | None:
    """The time-out of one statement: the server's ``limit``, lowered by the session's statement_timeout."""
    asked = statement_timeout(session.get("statement_timeout"))
    if asked is None:
        return limit
    return asked if not limit else min(limit, asked)
