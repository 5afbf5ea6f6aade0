"""An Arrow Flight SQL endpoint for Quanta: ADBC (Python, R, Go, Java), the Flight SQL JDBC and ODBC
drivers and the BI tools built on them read the mesh as Arrow, every statement through the same pipeline
and governance as the other interfaces.

    from federation.server.flight import FlightSqlServer
    server = FlightSqlServer(platform, host="127.0.0.1", port=0).start()   # .port, .location, .stop()

Credentials: ``authorization: Bearer <token>`` or basic authentication with a principal and its token
(answered with a session token); a purpose in the ``x-quanta-purpose`` header.
"""

from .server import FlightSqlServer

__all__ = ["FlightSqlServer"]
