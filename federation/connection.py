"""The Python interface: a PEP 249 (DB-API 2.0) connection plus DuckDB's ``.sql()`` feel.

    conn = federation.connect("catalogs/greatparts", user="ana")
    conn.sql("select region, sum(amount) from sales.orders group by 1").pl()
    cur = conn.cursor(); cur.execute("select * from loyalty.members where tier = ?", ["gold"]); cur.fetchall()

Every call goes through ``Platform.query`` (the one pipeline). A connection is bound to one
principal; many threads may share a connection or a platform, each query runs on its own engine
cursor.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from . import errors
from .platform import Platform
from .result import Result
from .rewrite.context import Principal

apilevel = "2.0"
threadsafety = 2  # threads may share the module and connections
paramstyle = "qmark"  # also "numeric" ($1), "named" (:name, $name) and "pyformat" (%(name)s): see bind


class Connection:
    def __init__(self, platform: Platform, principal: Principal, purpose: str | None = None,
                 timeout: float | None = None):
        self.platform = platform
        self.principal = principal
        self.purpose = purpose
        self.timeout = timeout
        self._closed = False

    # -- DuckDB-like ------------------------------------------------------------------------------

    def sql(self, query: str, params: Sequence[Any] | dict | None = None, *, timeout: float | None = None) -> Result:
        """Run one query; the result streams (``.arrow()``, ``.pl()``, ``.record_batches()``...).

        ``timeout`` (seconds; else the connection's) may lower the mesh's ``query_timeout_seconds``, never
        raise it. Parameters: ``?`` or ``$1`` with a sequence, ``:name``, ``$name`` or ``%(name)s`` with a dict
        (``federation.parameters.bind``, run by ``Platform.query``: a mismatch is audited like a refused query)."""
        self._check()
        return self.platform.query(query, self.principal, params, timeout=self.timeout if timeout is None else timeout,
                                   purpose=self.purpose, named_parameters=True)

    def execute(self, query: str, params: Sequence[Any] | dict | None = None) -> "Cursor":
        cur = self.cursor()
        cur.execute(query, params)
        return cur

    # -- PEP 249 ------------------------------------------------------------------------------------

    def cursor(self) -> "Cursor":
        self._check()
        return Cursor(self)

    def commit(self) -> None:
        self._check()  # read-only: nothing to commit

    def rollback(self) -> None:
        self._check()

    def close(self) -> None:
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def _check(self) -> None:
        if self._closed:
            raise errors.InterfaceError("the connection is closed")

    def __enter__(self) -> "Connection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # PEP 249 optional extension: exceptions as connection attributes
    Warning = errors.Warning
    Error = errors.Error
    InterfaceError = errors.InterfaceError
    DatabaseError = errors.DatabaseError
    DataError = errors.DataError
    OperationalError = errors.OperationalError
    IntegrityError = errors.IntegrityError
    InternalError = errors.InternalError
    ProgrammingError = errors.ProgrammingError
    NotSupportedError = errors.NotSupportedError


class Cursor:
    arraysize = 1000

    def __init__(self, connection: Connection):
        self.connection = connection
        self._result: Result | None = None
        self._fetched = 0
        self._closed = False
        self.rowcount = -1

    @property
    def description(self):
        if self._result is None:
            return None
        return [(name, type_code, None, None, None, None, None)
                for name, type_code in zip(self._result.columns, self._result.types)]

    @property
    def result(self) -> Result | None:
        """The current Result (with ``.policies`` and ``.warnings``)."""
        return self._result

    def execute(self, query: str, params: Sequence[Any] | dict | None = None) -> "Cursor":
        self._check()
        if self._result is not None:
            self._result.close()
        self._result = None
        self.rowcount = -1
        self._fetched = 0
        self._result = self.connection.sql(query, params)
        return self

    def executemany(self, query: str, seq_of_params: Iterable[Sequence[Any] | dict]) -> "Cursor":
        total = 0
        for params in seq_of_params:
            self.execute(query, params)
            total += len(self.fetchall())
        self.rowcount = total
        return self

    def _need(self) -> Result:
        self._check()
        if self._result is None:
            raise errors.ProgrammingError("no query has been executed on this cursor")
        return self._result

    def fetchone(self) -> tuple | None:
        row = self._need().fetchone()
        if row is None:
            self.rowcount = self._fetched
        else:
            self._fetched += 1
        return row

    def fetchmany(self, size: int | None = None) -> list[tuple]:
        rows = self._need().fetchmany(size or self.arraysize)
        self._fetched += len(rows)
        if len(rows) < (size or self.arraysize):
            self.rowcount = self._fetched
        return rows

    def fetchall(self) -> list[tuple]:
        rows = self._need().fetchall()
        self._fetched += len(rows)
        self.rowcount = self._fetched
        return rows

    def arrow(self):
        return self._need().arrow()

    def pl(self):
        return self._need().pl()

    def df(self):
        return self._need().df()

    def setinputsizes(self, sizes) -> None:
        pass

    def setoutputsize(self, size, column=None) -> None:
        pass

    def close(self) -> None:
        if self._result is not None:
            self._result.close()
        self._closed = True

    def _check(self) -> None:
        if self._closed:
            raise errors.InterfaceError("the cursor is closed")
        self.connection._check()

    def __iter__(self):
        while True:
            row = self.fetchone()
            if row is None:
                return
            yield row

    def __enter__(self) -> "Cursor":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def connect(path: str | None = None, user: str | None = None, *, purpose: str | None = None,
            timeout: float | None = None) -> Connection:
    """Connect to the mesh at ``path`` (default ``$QUANTA_MESH`` or ``catalogs/greatparts``) as ``user``.

    ``user`` names a principal for trusted in-process use; remote interfaces authenticate with tokens.
    """
    from .config import default_mesh

    platform = Platform.open(path or default_mesh())
    return Connection(platform, platform.principal(user), purpose=purpose, timeout=timeout)
