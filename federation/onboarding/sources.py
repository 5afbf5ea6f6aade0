"""Batches from outside the mesh's files: a query on a PostgreSQL database, snapshotted into versions.

For domains that want immutable versions rather than live reads: ``quanta onboard b2b.accounts
--postgres b2b-operational --query "select ... from erp.accounts"`` runs the query on that server and
onboards its rows like any batch (schema check, quality rules, atomic publishing).

The server is named like in the contracts (its host, port and database come from the contract's
``servers`` entry, its credentials from the environment or the mesh's secrets file), or given as a
libpq connection string. The connection is read-only.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from .. import errors
from ..engine import private
from ..engine import secrets as server_secrets
from ..engine.duckdb_backend import literal, redact


def _server_dsn(platform, server: str) -> str:
    return _server(platform, server)[1]


def _server(platform, server: str) -> tuple[str | None, str]:
    """``server``: a libpq string, or a server of the contracts (``name``, or ``quantum/name`` when several
    quanta name one alike), with the credentials of the quantum whose contract names it (engine/secrets.py):
    (that quantum, or None for a libpq string; the connection string)."""
    if "=" in server:  # a libpq string already: the caller's own credentials
        return None, server
    mesh = platform.mesh
    quantum, _, name = server.rpartition(server_secrets.SCOPE)
    found = []
    for contract in mesh.contracts.values():
        for entry in (contract.model.servers if contract.model else None) or []:
            if entry.server == name and entry.type in ("postgres", "postgresql") and contract.quantum \
                    and quantum in ("", contract.quantum):
                found.append((contract.quantum, entry))
    if len({q for q, _ in found}) > 1:
        raise errors.ProgrammingError(f"quanta {', '.join(sorted({q for q, _ in found}))} each name a PostgreSQL "
                                      f"server {name!r}: give it as quantum/{name}")
    if found:
        owner, entry = found[0]
        sharing = frozenset(c.quantum for c in mesh.contracts.values() if c.quantum and any(
            server_secrets.env_name(e.server or "", "") == server_secrets.env_name(name, "")
            and e.type in ("postgres", "postgresql") for e in (c.model.servers if c.model else None) or []))
        ref = server_secrets.ServerRef(name, owner, entry.host, entry.port, sharing)
        parts = {"host": entry.host, "port": entry.port, "dbname": entry.database}
        parts.update(server_secrets.provider(mesh.path, mesh.raw.get("secrets"))(ref))
        return owner, " ".join(f"{k}={v}" for k, v in parts.items() if v)
    raise errors.ProgrammingError(f"no PostgreSQL server named {server!r} in the mesh's contracts; give its name "
                                  "or a connection string (host=... port=... dbname=... user=...)")


def from_postgres(platform, server: str, query: str, principal) -> pa.Table:
    """The rows of ``query`` run on the PostgreSQL ``server`` (read-only), as an Arrow table. A server of the
    contracts is read with its quantum's credentials: only by who runs that quantum's control plane (its
    owners, data engineers), never by the owner of another quantum copying it raw into their own."""
    import duckdb_extension_postgres_scanner as ext

    from .common import authorize

    owner, dsn = _server(platform, server)
    if owner is not None:
        authorize(platform, principal, owner, f"read the server {server!r} of quantum {owner} with its credentials")

    path = Path(ext.__file__).parent / "extensions" / f"v{duckdb.__version__}" / "postgres_scanner.duckdb_extension"
    con = private.scratch()  # an incoming batch from the producer's own database: not a mesh read
    try:
        con.execute(f"LOAD {literal(str(path))}")
        try:
            con.execute(f"ATTACH {literal(dsn)} AS src (TYPE postgres, READ_ONLY)")
        except duckdb.Error as e:
            raise errors.Unavailable(f"PostgreSQL server {server if '=' not in server else ''} is unreachable: "
                                     f"{redact(str(e).splitlines()[0])}") from None
        try:
            return con.execute(f"SELECT * FROM postgres_query('src', {literal(query)})").to_arrow_table()
        except duckdb.Error as e:
            raise errors.ProgrammingError(f"the PostgreSQL query failed: {redact(str(e).splitlines()[0])}") from None
    finally:
        con.close()
