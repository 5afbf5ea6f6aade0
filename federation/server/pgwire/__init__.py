"""A PostgreSQL wire protocol (v3) endpoint for Quanta: psql, psycopg, asyncpg, SQLAlchemy, JDBC and the
BI tools built on them query the mesh, every query through the same pipeline and governance.

    from federation.server.pgwire import PgServer
    server = PgServer(platform, host="127.0.0.1", port=5433).start()   # .port, .stop()

Passwords are Quanta tokens (SCRAM-SHA-256; ``auth.register_token`` keeps the verifier).
"""

from .auth import register_token
from .server import PgServer

__all__ = ["PgServer", "register_token"]
