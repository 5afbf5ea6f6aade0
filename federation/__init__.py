"""Quanta: a data-mesh SQL federation layer.

    import federation
    conn = federation.connect("catalogs/greatparts", user="ana")
    conn.sql("select region, sum(amount) from sales.orders group by 1").pl()

The connection, the platform and the result are imported when first used (PEP 562), so that a command
or a module needing only part of Quanta (``quanta --help``, ``quanta diff``) does not load the engine.
"""

import importlib

from .errors import (
    AccessDenied,
    CatalogError,
    DatabaseError,
    DataError,
    Error,
    IntegrityError,
    InterfaceError,
    InternalError,
    NotSupportedError,
    OperationalError,
    ProgrammingError,
    QueryTimeout,
    StatementRefused,
    Warning,
)

__version__ = "0.1.0"

__all__ = [
    "connect", "Connection", "Cursor", "Platform", "Result", "apilevel", "paramstyle", "threadsafety",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError", "IntegrityError",
    "InternalError", "ProgrammingError", "NotSupportedError", "AccessDenied", "StatementRefused", "QueryTimeout",
    "CatalogError", "STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "Date", "Time", "Timestamp",
    "DateFromTicks", "TimeFromTicks", "TimestampFromTicks", "Binary",
]

_LAZY = {"connect": "connection", "Connection": "connection", "Cursor": "connection", "apilevel": "connection",
         "paramstyle": "connection", "threadsafety": "connection", "Platform": "platform", "Result": "result",
         **{name: "dbtypes" for name in ("STRING", "BINARY", "NUMBER", "DATETIME", "ROWID", "Date", "Time",
                                         "Timestamp", "DateFromTicks", "TimeFromTicks", "TimestampFromTicks",
                                         "Binary")}}


def __getattr__(name: str):
    if name in _LAZY:
        value = getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    elif name in ("connection", "platform", "result"):
        value = importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
