"""Quanta's exceptions.

The hierarchy is PEP 249's (``Error``, ``DatabaseError``, ``ProgrammingError``...), so DB-API code
catches them as it would any driver's, and each query error also carries what the HTTP and PostgreSQL
interfaces need: a stable ``code``, a PostgreSQL ``sqlstate`` and, when known, the ``position`` in the
SQL text. Messages never contain data values.
"""

from __future__ import annotations

from dataclasses import dataclass


class Warning(Exception):  # noqa: A001 - PEP 249 name
    """PEP 249 Warning."""


class Error(Exception):
    """Base of every Quanta error (PEP 249 ``Error``)."""

    code = "error"
    sqlstate = "XX000"

    def __init__(self, message: str, *, position: tuple[int, int] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.position = position  # (line, column), 1-based, in the submitted SQL
        if code:
            self.code = code

    def __str__(self) -> str:
        if self.position:
            return f"{self.message} (line {self.position[0]}, column {self.position[1]})"
        return self.message

    def to_dict(self) -> dict:
        out = {"code": self.code, "message": self.message, "sqlstate": self.sqlstate}
        if self.position:
            out["line"], out["column"] = self.position
        return out


class InterfaceError(Error):
    code = "interface_error"
    sqlstate = "08000"


class DatabaseError(Error):
    code = "database_error"


class DataError(DatabaseError):
    code = "data_error"
    sqlstate = "22000"


class DivisionByZero(DataError):
    code = "division_by_zero"
    sqlstate = "22012"


class OperationalError(DatabaseError):
    code = "operational_error"
    sqlstate = "58000"


class IntegrityError(DatabaseError):
    code = "integrity_error"
    sqlstate = "23000"


class InternalError(DatabaseError):
    code = "internal_error"
    sqlstate = "XX000"


class ProgrammingError(DatabaseError):
    code = "invalid_query"
    sqlstate = "42000"


class NotSupportedError(DatabaseError):
    code = "not_supported"
    sqlstate = "0A000"


class SyntaxError(ProgrammingError):  # noqa: A001 - mirrors SQLSTATE class 42601
    code = "syntax_error"
    sqlstate = "42601"


class UnknownObject(ProgrammingError):
    code = "unknown_object"
    sqlstate = "42P01"


class StatementRefused(NotSupportedError):
    """A statement, function or table reference that Quanta does not allow (not a read of the mesh)."""

    code = "refused"
    sqlstate = "42501"


class AccessDenied(ProgrammingError):
    """The principal may not read this dataset or column."""

    code = "access_denied"
    sqlstate = "42501"


class AuthenticationError(InterfaceError):
    """No valid token (unknown, wrong, expired or revoked)."""

    code = "unauthenticated"
    sqlstate = "28000"


class LoginThrottled(AuthenticationError):
    """Too many failed logins from this client lately (``governance.throttle``): refused before its credential
    is checked, until ``retry_after`` seconds have passed (HTTP 429 with Retry-After, SQLSTATE 53300)."""

    code = "too_many_failed_logins"
    sqlstate = "53300"  # PostgreSQL's class for "too many at once"

    def __init__(self, retry_after: float):
        self.retry_after = max(1, int(retry_after + 0.999))
        super().__init__(f"too many failed logins from this client: try again in {self.retry_after} seconds")


class QueryTimeout(OperationalError):
    code = "timeout"
    sqlstate = "57014"


class QueryCancelled(OperationalError):
    code = "cancelled"
    sqlstate = "57014"


class Unavailable(OperationalError):
    code = "unavailable"
    sqlstate = "55000"


class QueryTooComplex(ProgrammingError):
    """The query's text is larger or more deeply nested than the server's limits (``max_sql_bytes``,
    ``max_sql_depth``): refused before it is parsed."""

    code = "too_complex"
    sqlstate = "54001"  # statement_too_complex


class TooManyQueries(OperationalError):
    """The principal already runs as many queries as the server allows, and its queue is full or the
    wait ran out (``max_queries_per_principal``): try again later."""

    code = "too_many_queries"
    sqlstate = "53300"  # too_many_connections: PostgreSQL's class for "too many at once"


class Conflict(ProgrammingError):
    """A change that another one made first (an access request already decided, a grant already revoked):
    HTTP 409."""

    code = "conflict"
    sqlstate = "55000"  # object_not_in_prerequisite_state


class InvalidParameter(ProgrammingError):
    """A parameter of the request itself (not of the SQL) is invalid: a time-out that is not a number of
    seconds, for example."""

    code = "invalid_parameter"
    sqlstate = "22023"  # invalid_parameter_value


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a mesh: where (file, YAML path, line) and what."""

    file: str
    path: str
    message: str
    line: int | None = None
    quantum: str | None = None
    severity: str = "error"  # error | warning
    retry: bool = False  # an operational state (a source unreachable or hung): retried in the background

    def __str__(self) -> str:
        where = self.file
        if self.line:
            where += f":{self.line}"
        if self.path:
            where += f" at {self.path}"
        return f"{where}: {self.message}"


class CatalogError(Error):
    """The mesh cannot be loaded at all (for example ``mesh.yaml`` is missing or invalid)."""

    code = "catalog_error"

    def __init__(self, message: str, problems: list[Problem] | None = None):
        super().__init__(message)
        self.problems = list(problems or [])

    def __str__(self) -> str:
        if not self.problems:
            return self.message
        return self.message + "\n" + "\n".join(f"  {p}" for p in self.problems)
