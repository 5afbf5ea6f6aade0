"""A hung PostgreSQL source (every process of the server stopped with SIGSTOP) never blocks the mesh: the
mesh loads within a bound with that quantum unavailable (retried in the background) and the others
serving; a query on the source while it hangs obeys the query time-out."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml
from pgserver import PostgresServer

import federation
from federation import errors
from federation.engine import hung
from federation.engine.duckdb_backend import DuckDBBackend
from federation.platform import Platform

PASSWORD = "hung-Reader-pw"


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    server.sql(f"CREATE ROLE quanta_reader LOGIN PASSWORD '{PASSWORD}'",
               "CREATE SCHEMA b2b",
               "CREATE TABLE b2b.accounts (account_id bigint primary key, company text not null)",
               "INSERT INTO b2b.accounts SELECT i, 'company ' || i FROM generate_series(1, 100) i",
               "GRANT USAGE ON SCHEMA b2b TO quanta_reader",
               "GRANT SELECT ON ALL TABLES IN SCHEMA b2b TO quanta_reader")
    yield server
    server.stop()


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("QUANTA_B2B_DB_USER", "quanta_reader")
    monkeypatch.setenv("QUANTA_B2B_DB_PASSWORD", PASSWORD)


def _server_pids(pg: PostgresServer) -> list[int]:
    """The postmaster and every process it forked (backends, writers)."""
    postmaster = int((pg.dir / "data" / "postmaster.pid").read_text().split()[0])
    pids = [postmaster]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == postmaster:
                pids.append(int(entry))
    return pids


@contextlib.contextmanager
def stopped(pg: PostgresServer):
    """The whole server frozen (SIGSTOP): it accepts TCP connections (the kernel does) and answers nothing."""
    pids = _server_pids(pg)
    # a safety net: should this test process die or hang while the server is stopped, the server resumes
    net = subprocess.Popen(["sh", "-c", f"sleep 90; kill -CONT {' '.join(map(str, pids))}"])
    try:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):  # a backend that just ended
                os.kill(pid, signal.SIGSTOP)
        yield
    finally:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        net.kill()
        net.wait()


def hung_mesh(root: Path, pg: PostgresServer, **settings) -> Path:
    shop_mesh(root)
    mesh = yaml.safe_load((root / "mesh.yaml").read_text())
    mesh["settings"] = settings
    write_yaml(root / "mesh.yaml", mesh)
    write_yaml(root / "products" / "b2b.odps.yaml", product("b2b", domain="shop"))
    write_yaml(root / "contracts" / "b2b.odcs.yaml", contract("b2b-contract", [
        {"name": "accounts", "description": "B2B accounts, live",
         "properties": [prop("account_id", "integer", "bigint", primaryKey=True), prop("company")]}],
        servers=[{"server": "b2b-db", "type": "postgres", "host": pg.host, "port": pg.port,
                  "database": "postgres", "schema": "b2b"}]))
    return root


def test_the_probe_tells_a_stopped_server(pg):
    assert hung.responds(pg.host, pg.port)
    with stopped(pg):
        assert not hung.responds(pg.host, pg.port, timeout=0.5)
    assert hung.responds(pg.host, pg.port)


def test_describing_a_source_that_hangs_after_attach_is_bounded(pg):
    backend = DuckDBBackend({"source_connect_timeout_seconds": 1},
                            credentials=lambda server: {"user": "quanta_reader", "password": PASSWORD})
    try:
        relation = backend.source_sql("postgres", f"postgresql://{pg.host}:{pg.port}/postgres", "b2b", "accounts",
                                      "b2b-db")
        with stopped(pg):
            started = time.monotonic()
            with pytest.raises(errors.Unavailable, match=re.escape(f'{pg.host}:{pg.port} did not describe "b2b"."accounts" within 1 s')):
                backend.source_columns(relation, cursor=True)
            assert time.monotonic() - started < 30
            # the other tables of that server are not waited for again in this load
            with pytest.raises(errors.Unavailable, match="did not describe"):
                backend.source_columns(relation.replace('"accounts"', '"others"'), cursor=True)
    finally:
        backend.close()
    backend = DuckDBBackend({"source_connect_timeout_seconds": 1},
                            credentials=lambda server: {"user": "quanta_reader", "password": PASSWORD})
    try:  # the next load, once the server is back
        relation = backend.source_sql("postgres", f"postgresql://{pg.host}:{pg.port}/postgres", "b2b", "accounts",
                                      "b2b-db")
        assert set(backend.source_columns(relation, cursor=True).columns) == {"account_id", "company"}
    finally:
        backend.close()


def test_mesh_loads_while_a_source_hangs(tmp_path, pg, creds):
    root = hung_mesh(tmp_path, pg, source_connect_timeout_seconds=2)
    with stopped(pg):
        started = time.monotonic()
        p = Platform(root)
        took = time.monotonic() - started
        assert took < 60, took  # without a bound: minutes (libpq waits for the server forever)

        # the quantum is left out, reported, and marked for retry; the rest serves
        assert "b2b" in p.mesh.excluded and "shop" in p.mesh.quanta and "crm" in p.mesh.quanta
        [problem] = [x for x in p.mesh.problems if x.quantum == "b2b"]
        assert problem.retry and problem.severity == "warning"
        assert f"{pg.host}:{pg.port}" in problem.message and "b2b-db" in problem.message
        assert "did not answer within 2 s" in problem.message and "retrying in the background" in problem.message
        assert PASSWORD not in problem.message

        conn = federation.Connection(p, p.principal("x"))
        assert conn.sql("select count(*) from shop.orders").fetchone() == (100,)
        assert conn.sql("select count(*) from report.sales_by_region").fetchone() == (3,)
        with pytest.raises(errors.Unavailable, match="b2b is unavailable.*did not answer"):
            conn.sql("select * from b2b.accounts")
        rows = conn.sql("select severity, quantum, message from system.problems where quantum = 'b2b'").fetchall()
        assert rows and "retrying in the background" in rows[0][2]

        # quanta validate: a warning naming the source, not an error (the mesh itself is valid)
        quanta = str(Path(sys.executable).parent / "quanta")
        out = subprocess.run([quanta, "validate", str(root)], capture_output=True,
                             text=True, timeout=120, env=os.environ.copy(), check=False)
        assert "did not answer within 2 s" in out.stdout and f"{pg.host}:{pg.port}" in out.stdout, out
        assert out.returncode == 0, out
        # quanta query starts and answers; naming the hung quantum is a clear error, not a hang
        out = subprocess.run([quanta, "query", "--mesh", str(root), "-u", "x", "--format", "csv",
                              "select count(*) as n from shop.orders"], capture_output=True, text=True, timeout=120,
                             check=False)
        assert out.returncode == 0 and out.stdout.split() == ["n", "100"], out
        out = subprocess.run([quanta, "query", "--mesh", str(root), "-u", "x", "select * from b2b.accounts"],
                             capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode != 0 and "b2b is unavailable" in out.stderr and "Traceback" not in out.stderr, out

    # the server is back: a reload serves the quantum again
    p.reload()
    assert "b2b" not in p.mesh.excluded
    assert not [x for x in p.mesh.problems if x.retry]
    conn = federation.Connection(p, p.principal("x"))
    assert conn.sql("select count(*) from b2b.accounts").fetchone() == (100,)


def test_a_query_on_a_hung_source_obeys_its_time_out(tmp_path, pg, creds):
    root = hung_mesh(tmp_path, pg, source_connect_timeout_seconds=2, query_timeout_seconds=1.5)
    p = Platform(root)
    conn = federation.Connection(p, p.principal("x"))
    assert conn.sql("select count(*) from b2b.accounts").fetchone() == (100,)  # connections open, then it hangs
    with stopped(pg):
        started = time.monotonic()
        with pytest.raises(errors.QueryTimeout, match="time-out of 1.5 s"):
            conn.sql("select * from b2b.accounts order by account_id").fetchall()
        took = time.monotonic() - started
        assert took < 30, took  # without the bound: forever
        # the next query on it needs a new connection, which the server never answers: a time-out or
        # "unavailable" (libpq's connect_timeout), never a hang nor a leaked password
        with pytest.raises((errors.QueryTimeout, errors.Unavailable)) as failed:
            conn.sql("select count(*) from b2b.accounts", timeout=10).fetchall()
        assert PASSWORD not in str(failed.value)
        # the rest of the mesh goes on serving meanwhile
        assert conn.sql("select count(*) from shop.orders").fetchone() == (100,)
    # once the server is back, queries on it succeed again (the severed connections are replaced)
    assert conn.sql("select count(*) from b2b.accounts").fetchone() == (100,)
