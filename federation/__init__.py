"""Quanta: a data-mesh SQL federation layer.

    import federation
    conn = federation.connect("catalogs/greatparts", user="ana")
    conn.sql("select region, sum(amount) from sales.orders group by 1").pl()
"""

from .connection import Connection, Cursor, apilevel, connect, paramstyle, threadsafety
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
from .platform import Platform
from .result import Result

__version__ = "0.1.0"

__all__ = [
    "connect", "Connection", "Cursor", "Platform", "Result", "apilevel", "paramstyle", "threadsafety",
    "Warning", "Error", "InterfaceError", "DatabaseError", "DataError", "OperationalError", "IntegrityError",
    "InternalError", "ProgrammingError", "NotSupportedError", "AccessDenied", "StatementRefused", "QueryTimeout",
    "CatalogError",
]
