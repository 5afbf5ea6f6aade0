"""``quanta serve`` (HTTP, optionally the PostgreSQL wire protocol and Arrow Flight SQL too), ``quanta pgserve``
and ``quanta flightserve``: every server of one process shares one platform (pipeline, audit, limits, live
state)."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import default_mesh
from .common import fail, friendly, main, mesh_option


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=8080, show_default=True, type=int, help="The HTTP port (0: any free port).")
@click.option("--threads", default=16, show_default=True, type=int, help="Worker threads of the HTTP server.")
@click.option("--pg-port", default=None, type=int, help="Also serve the PostgreSQL wire protocol on this port.")
@click.option("--flight-port", default=None, type=int, help="Also serve Arrow Flight SQL on this port (ADBC, "
              "Flight SQL JDBC/ODBC).")
@click.option("--flight-tls-cert", default=None, metavar="FILE", help="Certificate for Flight SQL over TLS "
              "(grpc+tls://).")
@click.option("--flight-tls-key", default=None, metavar="FILE", help="The Flight SQL certificate's private key.")
@friendly
def serve(mesh_path: str | None, mesh: str | None, host: str, port: int, threads: int, pg_port: int | None,
          flight_port: int | None, flight_tls_cert: str | None, flight_tls_key: str | None) -> None:
    """Serve the mesh over HTTP: the query API, the open dictionary (HTML and JSON), health and metrics."""
    from ..platform import Platform
    from ..server.http import Server, create_app

    path = Path(mesh_path or mesh or default_mesh())
    if not (mesh_path or mesh) and (path / "mesh.yaml").exists() and not (path / "data").exists():
        from .. import demo as demo_data  # the demo mesh on a fresh clone: generate its data first

        click.echo(f"generating the demo data under {path / 'data'} ...", err=True)
        demo_data.generate(path, progress=lambda msg: click.echo(f"  {msg}", err=True))
    platform = Platform.open(path)
    server = Server(create_app(platform), host=host, port=port, threads=threads)
    pg = None
    if pg_port is not None:
        try:
            from ..server.pgwire import PgServer
        except ImportError:
            fail("the PostgreSQL interface is not available in this installation")
        pg = PgServer(platform, host, pg_port)
        pg.start()
    fl = _flight_server(platform, host, flight_port, flight_tls_cert, flight_tls_key) if flight_port is not None \
        else None
    m = platform.mesh
    click.echo(f"mesh {m.name}: {len(m.quanta)} quanta, loaded in {platform.state.load_seconds:.2f} s")
    click.echo(f"dictionary  {server.url}/")
    click.echo(f"API         {server.url}/api/v1/  (POST /api/v1/query with a bearer token; "
               f"description at /api/v1/openapi.json)")
    if pg is not None:
        click.echo(f"PostgreSQL  {host}:{pg.port}")
    if fl is not None:
        click.echo(f"Flight SQL  {fl.location}")

    def stop() -> None:
        server.stop()
        if pg is not None:
            pg.stop()
        if fl is not None and not fl.stop():
            _exit_now()

    _run_until_stopped(stop, server.start)


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=5433, show_default=True, type=int, help="The PostgreSQL port (0: any free port).")
@click.option("--tls-cert", default=None, metavar="FILE", help="Certificate for TLS (SSLRequest answered 'S').")
@click.option("--tls-key", default=None, metavar="FILE", help="The certificate's private key.")
@friendly
def pgserve(mesh_path: str | None, mesh: str | None, host: str, port: int, tls_cert: str | None,
            tls_key: str | None) -> None:
    """Serve the mesh over the PostgreSQL wire protocol only (psql, JDBC, BI tools; passwords are tokens)."""
    from ..platform import Platform
    from ..server.pgwire import PgServer

    platform = Platform.open(Path(mesh_path or mesh or default_mesh()))
    pg = PgServer(platform, host, port, tls_cert=tls_cert, tls_key=tls_key)
    pg.start()
    click.echo(f"PostgreSQL  {host}:{pg.port}  (user: a principal, password: a token from `quanta token create`)")
    _run_until_stopped(pg.stop)


def _run_until_stopped(stop, start=None) -> None:
    """``start()`` (if given), serve until Ctrl+C or SIGTERM (which stops as cleanly), then ``stop()``."""
    import signal
    import threading

    def _interrupt(signum, frame):
        raise KeyboardInterrupt

    click.echo("press Ctrl+C to stop", err=True)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        if start is not None:
            start()
        threading.Event().wait()
    finally:
        stop()


def _exit_now() -> None:
    """Leave at once: the Flight server stopped with calls still blocked (clients that stopped reading),
    and the interpreter's exit would wait for them for ever. Everything else has stopped; the audit log is
    written as each query ends."""
    import logging
    import os
    import sys

    click.echo("Flight SQL: calls still open by clients that stopped reading; exiting", err=True)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _flight_server(platform, host: str, port: int, tls_cert: str | None, tls_key: str | None):
    """A started FlightSqlServer (a clear error for half a TLS pair or a port in use)."""
    if bool(tls_cert) != bool(tls_key):
        fail("Flight SQL over TLS needs both --flight-tls-cert and --flight-tls-key")
    try:
        from ..server.flight import FlightSqlServer
    except ImportError:
        fail("the Flight SQL interface is not available in this installation (pyarrow without Flight)")
    try:
        return FlightSqlServer(platform, host, port, tls=(tls_cert, tls_key) if tls_cert else None).start()
    except OSError as e:
        fail(f"cannot serve Flight SQL on {host}:{port}: {e}")
    except Exception as e:  # pyarrow reports a port in use or an unreadable certificate as ArrowException
        fail(f"cannot serve Flight SQL on {host}:{port}: {str(e).splitlines()[0]}")


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--host", default="127.0.0.1", show_default=True, help="The address to listen on.")
@click.option("--port", default=31337, show_default=True, type=int, help="The Flight SQL port (0: any free port).")
@click.option("--tls-cert", default=None, metavar="FILE", help="Certificate for TLS (grpc+tls://).")
@click.option("--tls-key", default=None, metavar="FILE", help="The certificate's private key.")
@friendly
def flightserve(mesh_path: str | None, mesh: str | None, host: str, port: int, tls_cert: str | None,
                tls_key: str | None) -> None:
    """Serve the mesh over Arrow Flight SQL only (ADBC, Flight SQL JDBC/ODBC; a bearer token, or basic
    authentication with a principal and its token)."""
    from ..platform import Platform

    platform = Platform.open(Path(mesh_path or mesh or default_mesh()))
    fl = _flight_server(platform, host, port, tls_cert, tls_key)
    click.echo(f"Flight SQL  {fl.location}  (authorization: Bearer <token>, or user: a principal, password: "
               f"a token from `quanta token create`)")
    _run_until_stopped(lambda: fl.stop() or _exit_now())
