"""Results larger than one engine batch over the PostgreSQL wire: rows are read and encoded one batch ahead
in a worker thread while the current batch is sent (pgwire/rows.py). Real servers, real clients: the rows,
their order and their bytes stay the ones Python gives, across batch boundaries, Execute row limits,
binary and text, and the audit entry (written when the result ends, in the worker) keeps the
connection's application name and row count."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal

import pytest
from meshkit import OPEN_GOVERNANCE, contract, local_server, mesh_yaml, product, prop, sql_to_file, write_yaml

import federation
from federation.engine.duckdb_backend import BATCH_ROWS
from federation.platform import Platform
from federation.server.pgwire import PgServer
from federation.server.pgwire import types as pgt

psycopg = pytest.importorskip("psycopg")

ROWS = 2 * BATCH_ROWS + 1234  # three engine batches, the last one short
SQL = "select id, amount, label, day, ts, score, flag from big.wide order by id"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("rows")
    mesh_yaml(root, domains=("big",))
    write_yaml(root / "governance.yaml", {"principals": [{"name": "ana"}], **OPEN_GOVERNANCE})
    sql_to_file(root / "data" / "wide.parquet",
                f"select i as id, (i * 7 % 100000)::decimal(12,2) as amount, "
                f"case when i % 13 = 0 then null else 'label ' || i end as label, "
                f"date '2024-01-01' + (i % 365)::int as day, timestamp '2024-01-01' + to_microseconds(i * 1000003) "
                f"as ts, case when i % 11 = 0 then null else i / 7.0 end as score, i % 2 = 0 as flag "
                f"from range({ROWS}) t(i)")
    write_yaml(root / "products" / "big.odps.yaml", product("big", domain="big", owner="ana"))
    write_yaml(root / "contracts" / "big.odcs.yaml", contract("big-contract", [{"name": "wide", "properties": [
        prop("id", "integer", "bigint"), prop("amount", "number", "decimal(12,2)"), prop("label"),
        prop("day", "date", "date"), prop("ts", "timestamp", "timestamp"), prop("score", "number", "double"),
        prop("flag", "boolean", "boolean")]}], servers=[local_server("wide.parquet")]))
    return Platform(root)


@pytest.fixture(scope="module")
def server(platform):
    srv = PgServer(platform, host="127.0.0.1", port=0).start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def token(platform):
    return platform.tokens.create("ana", 1)[0]


@pytest.fixture(scope="module")
def expected(platform):
    return federation.Connection(platform, platform.principal("ana")).execute(SQL).fetchall()


def dsn(server, token, **extra) -> str:
    more = "".join(f" {k}={v}" for k, v in extra.items())
    return f"host=127.0.0.1 port={server.port} dbname=testmesh user=ana password={token}{more}"


@pytest.mark.parametrize("binary", [False, True])
def test_large_results_equal_python_across_batches(server, token, expected, binary):
    assert len(expected) == ROWS
    assert isinstance(expected[0][1], decimal.Decimal) and isinstance(expected[0][4], dt.datetime)
    with psycopg.connect(dsn(server, token), autocommit=True) as conn:
        for _ in range(2):  # twice on one connection: nothing of the first result is left behind
            assert conn.cursor(binary=binary).execute(SQL).fetchall() == expected
        assert conn.execute("select count(*) from big.wide").fetchone() == (ROWS,)


def test_text_bytes_equal_postgresql_text_of_python_values(server, token, expected):
    """The raw text cells (libpq, no client parsing) of rows on both sides of a batch boundary."""
    with psycopg.connect(dsn(server, token), autocommit=True) as conn:
        res = conn.pgconn.exec_(SQL.encode())
        assert res.ntuples == ROWS
        around = [*range(BATCH_ROWS - 2, BATCH_ROWS + 2), *range(ROWS - 2, ROWS)]
        cells = [[res.get_value(r, c) for c in range(res.nfields)] for r in around]
    for row, want in zip(cells, [expected[r] for r in around]):
        i, amount, label, day, ts, score, flag = want
        assert row[0] == str(i).encode() and row[1] == str(amount).encode()
        assert row[2] == (None if label is None else label.encode())
        assert row[3] == day.isoformat().encode() and row[4] == ts.isoformat(" ").encode()
        assert row[5] == (None if score is None else pgt.format_float(score).encode()) and row[6] == (b"t" if flag else b"f")


def test_execute_row_limits_across_batches_and_a_query_between(server, token, expected):
    """asyncpg's cursor: Execute with a row limit (portal suspended), limits that do not divide the batches,
    then another query on the connection while a portal is suspended, then the rest."""
    asyncpg = pytest.importorskip("asyncpg")

    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=token,
                                     database="testmesh")
        try:
            async with conn.transaction():
                cur = await conn.cursor(SQL)
                first = await cur.fetch(BATCH_ROWS - 5)
                middle = await cur.fetch(7)  # across the first boundary
                other = await conn.fetchval("select count(*) from big.wide where flag")
                rest = []
                while chunk := await cur.fetch(50_000):
                    rest += chunk
            return first + middle + rest, other
        finally:
            await conn.close()

    rows, other = asyncio.run(main())
    assert [tuple(r) for r in rows] == expected
    assert other == (ROWS + 1) // 2


def test_audit_entry_of_a_streamed_result_keeps_the_application(server, token, platform):
    with psycopg.connect(dsn(server, token, application_name="rows-dashboard"), autocommit=True) as conn:
        assert len(conn.execute(f"{SQL} /* streamed */").fetchall()) == ROWS
        logged = conn.execute("select application, rows, status from system.query_log "
                              "where sql like '%/* streamed */' order by query_id").fetchall()
    assert logged and logged[-1][0] == "rows-dashboard" and logged[-1][1] == ROWS, logged
