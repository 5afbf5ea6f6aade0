"""The PostgreSQL wire protocol endpoint with real clients: psql, psycopg 3, asyncpg, SQLAlchemy 2 (+ pandas)
and pgjdbc, against a governed mesh. Every client must see exactly what the Python interface shows the
same principal (masks, row filters, denials), and errors carry their SQLSTATE."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal
import glob
import json
import os
import shutil
import socket
import subprocess
import threading
import time
import uuid

import duckdb
import pgkit
import pytest
from meshkit import contract, local_server, mesh_yaml, product, prop, shop_mesh, sql_to_file, write_yaml

import federation
from federation.platform import Platform
from federation.server.pgwire import PgServer, register_token

psycopg = pytest.importorskip("psycopg")

GOVERNANCE = pgkit.shop_governance(principals=[{"name": "nobody"}])


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return pgkit.governed_shop(tmp_path_factory.mktemp("pgwire"), governance=GOVERNANCE)


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "pia", "nobody"))


@pytest.fixture(scope="module")
def server(platform, tokens):
    with pgkit.running_server(platform) as srv:
        yield srv


def dsn(server, tokens, user="ana", **extra) -> str:
    return pgkit.dsn(server.port, tokens, user, **{"sslmode": "prefer", **extra})


def python_rows(platform, user, sql):
    return federation.Connection(platform, platform.principal(user)).sql(sql).fetchall()


# -- startup and authentication ------------------------------------------------------------------------------


def test_startup_reports_parameters_and_key(server, tokens):
    with psycopg.connect(dsn(server, tokens)) as conn:
        info = conn.info
        assert int(info.parameter_status("server_version").split(".")[0]) >= 14
        for name in ("server_encoding", "client_encoding", "DateStyle", "IntervalStyle", "TimeZone",
                     "integer_datetimes", "standard_conforming_strings", "application_name", "is_superuser",
                     "session_authorization"):
            assert info.parameter_status(name) is not None, name
        assert info.parameter_status("session_authorization") == "ana"
        assert info.backend_pid > 0
        assert info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_wrong_or_revoked_token_is_refused(platform, server, tokens):
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn(server, tokens, password="qt_nope_nope"))
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn(server, tokens, user="pia", password=tokens["ana"]))  # ana's token is not pia's
    token, info = platform.tokens.create("ana", 1)
    register_token(platform, token)
    psycopg.connect(dsn(server, tokens, password=token)).close()
    platform.tokens.revoke(info.token_id)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        psycopg.connect(dsn(server, tokens, password=token))


def test_cleartext_only_when_configured(platform, tokens):
    srv = PgServer(platform, port=0, allow_cleartext=True).start()
    try:
        with psycopg.connect(dsn(srv, tokens)) as conn:
            assert conn.execute("select count(*) from shop.orders").fetchone()[0] > 0
        with pytest.raises(psycopg.OperationalError):
            psycopg.connect(dsn(srv, tokens, password="wrong"))
    finally:
        srv.stop()


def test_scram_matches_rfc7677_example():
    from federation.server.pgwire import auth

    salt = __import__("base64").b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    stored, server_key = auth.derive("pencil", salt, 4096)

    class Store:
        def salt(self, principal):
            return salt, 4096, True

        def verifiers(self, principal):
            return [auth.Verifier("t1", "user", stored, server_key)]

    nonce = "rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0"
    scram = auth.ScramServer(Store(), "user", s_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    assert scram.first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO") == f"r={nonce},s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
    verifier, final = scram.final(f"c=biws,r={nonce},p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
    assert final == "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=" and verifier.token_id == "t1"
    scram = auth.ScramServer(Store(), "user", s_nonce="%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
    scram.first("n,,n=user,r=rOprNGfwEbeRWgbNEkqO")
    with pytest.raises(auth.ScramError):
        scram.final(f"c=biws,r={nonce},p=" + __import__("base64").b64encode(b"x" * 32).decode())


# -- psql ------------------------------------------------------------------------------------------------------


def psql(server, tokens, *commands, user="ana"):
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    args = ["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", user, "-d", "testmesh", "-v",
            "VERBOSITY=verbose"]
    for c in commands:
        args += ["-c", c]
    env = dict(os.environ, PGPASSWORD=tokens[user], PGCONNECT_TIMEOUT="10")
    return subprocess.run(args, capture_output=True, text=True, env=env, timeout=60)


def test_psql_browses_and_queries(server, tokens):
    out = psql(server, tokens, r"\dn", r"\dt *.*", r"\d shop.orders", r"\d+ crm.customers",
               "select order_id, order_date from shop.orders order by order_id limit 2")
    assert out.returncode == 0, out.stderr
    text = out.stdout
    assert "List of schemas" in text and " shop " in text and " crm " in text
    assert "report" not in text  # ana holds no grant on report: the catalog does not show it
    assert "customers" in text and "orders" in text
    assert 'Table "shop.orders"' in text and "order_id" in text and "bigint" in text
    assert "amount" not in text.split('Table "shop.orders"')[1].split('Table "crm.customers"')[0]  # denied column
    assert "Residency region" in text  # column comment from the contract
    assert '"orders_pkey" PRIMARY KEY, btree (order_id)' in text  # the contract's primary key
    assert "2026-01-01" in text and "(2 rows)" in text


def test_psql_access_denied_has_sqlstate(server, tokens):
    out = psql(server, tokens, "select amount from shop.orders")
    assert out.returncode != 0
    assert "42501" in out.stderr


def test_psql_multiple_statements_and_empty_query(server, tokens):
    out = psql(server, tokens, "select 1 as a; select 'x' as b", ";")
    assert out.returncode == 0, out.stderr
    assert " a " in out.stdout and " b " in out.stdout


# -- psycopg ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_results_equal_python_with_policies(platform, server, tokens, binary):
    sql = "select id, full_name, email, region from crm.customers order by id"
    for user in ("ana", "pia"):
        with psycopg.connect(dsn(server, tokens, user=user)) as conn:
            got = conn.cursor(binary=binary).execute(sql).fetchall()
        assert got == python_rows(platform, user, sql)
    masked = python_rows(platform, "ana", sql)
    assert all(r[3] != "EU" for r in masked)  # the residency filter
    assert all("user" not in (r[2] or "") for r in masked)  # the email is masked


VALUES = [
    ("int2", 7), ("int4", -12), ("int8", 2 ** 40), ("float4", 1.5), ("float8", -2.25),
    ("numeric", decimal.Decimal("12345.678")), ("numeric", decimal.Decimal("-0.001")), ("text", "hé'\"\\"),
    ("bytea", b"\x00\x01\xff"), ("date", dt.date(2024, 2, 29)), ("time", dt.time(1, 2, 3, 4)),
    ("timestamp", dt.datetime(2024, 1, 1, 2, 3, 4, 5)),
    ("timestamptz", dt.datetime(2024, 1, 1, 2, 3, 4, tzinfo=dt.timezone.utc)),
    ("interval", dt.timedelta(days=3, seconds=5, microseconds=7)), ("bool", True), ("bool", False),
    ("int4[]", [1, None, 3]), ("text[]", ["a", "b c", None, ""]), ("float8[]", [1.5, -2.0]),
    ("date[]", [dt.date(2020, 1, 1)]),
]


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg_parameters_and_types_round_trip(server, tokens, binary):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        cur = conn.cursor(binary=binary)
        for pg_type, value in VALUES:
            got = cur.execute(f"select %s::{pg_type} as v", [value]).fetchone()[0]
            assert got == value, (pg_type, value, got)
        got = cur.execute("select %s::uuid as u", [uuid.UUID(int=5)]).fetchone()[0]
        assert str(got) == str(uuid.UUID(int=5))
        got = cur.execute("select null::int as n, 'x' as s").fetchone()
        assert got == (None, "x")


def test_psycopg_filters_with_parameters(platform, server, tokens):
    with psycopg.connect(dsn(server, tokens)) as conn:
        rows = conn.execute("select order_id, order_date from shop.orders where customer_id = %s and "
                            "order_date >= %s order by order_id", [4, dt.date(2026, 1, 1)]).fetchall()
    assert rows == python_rows(platform, "ana", "select order_id, order_date from shop.orders where customer_id = 4 "
                                              "and order_date >= date '2026-01-01' order by order_id")
    assert rows


def test_psycopg_server_side_prepared_statements(server, tokens):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        results = [conn.execute("select count(*) from shop.orders where order_id < %s", [i]).fetchone()[0]
                   for i in range(10)]  # prepared by psycopg from the 6th execution
        assert results == list(range(10))
        assert conn.execute("select order_id from shop.orders where order_id = %s", [3],
                            prepare=True).fetchone() == (3,)
        conn.execute("deallocate all")


def wire_entries(platform, since: int = 0) -> list[tuple]:
    """ana's audit entries (she reads her own) from the wire server, after entry ``since``: (id, sql, status,
    rows)."""
    return federation.Connection(platform, platform.principal("ana")).sql(
        "select query_id, sql, status, rows from system.query_log where interface = 'pgwire' and query_id > ? "
        "order by query_id", [since]).fetchall()


def test_describe_never_executes_one_audit_entry_per_execution(platform, server, tokens):
    """Parse/Describe/Bind/Execute: Describe learns the columns without running the query (no audit entry),
    masked columns keep their types, and every execution leaves exactly one entry."""
    sql = "select id, full_name, email, region from crm.customers where id < $1 order by id"
    since = max([e[0] for e in wire_entries(platform)], default=0)
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        pg = conn.pgconn  # libpq's asynchronous calls: its blocking ones would hold the in-process server's GIL

        def result():
            return conn.wait(psycopg.generators.execute(pg))[-1]

        pg.send_prepare(b"customers", sql.encode(), [20])  # Parse
        assert result().status == psycopg.pq.ExecStatus.COMMAND_OK
        pg.send_describe_prepared(b"customers")  # Describe (statement)
        described = result()
        assert [described.fname(i) for i in range(described.nfields)] == [b"id", b"full_name", b"email", b"region"]
        assert wire_entries(platform, since) == []
        for n in range(1, 4):
            pg.send_query_prepared(b"customers", [b"11"])  # Bind, Describe (portal), Execute
            executed = result()
            assert executed.status == psycopg.pq.ExecStatus.TUPLES_OK
            assert [executed.ftype(i) for i in range(executed.nfields)] == \
                [described.ftype(i) for i in range(described.nfields)]
            assert [e[1:] for e in wire_entries(platform, since)] == [(sql, "ok", executed.ntuples)] * n
        rows = [tuple(executed.get_value(r, c).decode() for c in range(executed.nfields))
                for r in range(executed.ntuples)]
        assert rows == [tuple(str(v) for v in r) for r in python_rows(
            platform, "ana", "select id, full_name, email, region from crm.customers where id < 11 order by id")]
        # psycopg's own prepared statements (prepare=True: Parse + Describe once, then Bind/Execute)
        query = "select order_id, order_date from shop.orders where order_id = %s"
        since = wire_entries(platform)[-1][0]
        for i in range(3):
            assert conn.execute(query, [i], prepare=True).fetchall() == python_rows(
                platform, "ana", f"select order_id, order_date from shop.orders where order_id = {i}")
        assert [e[1:] for e in wire_entries(platform, since)] == [(query.replace("%s", "$1"), "ok", 1)] * 3
        since = wire_entries(platform)[-1][0]
        denied = "select order_id, amount from shop.orders where order_id = %s"
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # governance applies before any execution
            conn.execute(denied, [1], prepare=True)
        assert [e[1:3] for e in wire_entries(platform, since)] == [(denied.replace("%s", "$1"), "denied")]


def test_psycopg_errors_map_to_exception_classes(server, tokens):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select amount from shop.orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from report.sales_by_region")  # no grant
        with pytest.raises(psycopg.errors.SyntaxError):
            conn.execute("selec 1")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from nope.nothing")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("delete from shop.orders")
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from pg_catalog.pg_nothing")
        assert conn.execute("select 1 as one").fetchone() == (1,)  # the session goes on


def test_database_qualified_names_keep_masks_filters_and_denials(platform, server, tokens):
    """testmesh.crm.customers is crm.customers: masked and filtered as Python gives it; a denied column stays denied."""
    expected = python_rows(platform, "ana", "select * from crm.customers order by 1")
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        assert conn.execute("select * from testmesh.crm.customers order by 1").fetchall() == expected
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select amount from testmesh.shop.orders")
        with pytest.raises(psycopg.errors.FeatureNotSupported):
            conn.execute("select * from postgres.crm.customers")


def test_transactions_are_tracked(server, tokens):
    with psycopg.connect(dsn(server, tokens)) as conn:  # psycopg opens a transaction with BEGIN
        conn.execute("select 1")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select amount from shop.orders")
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INERROR
        with pytest.raises(psycopg.errors.InFailedSqlTransaction):
            conn.execute("select 1")
        conn.rollback()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert conn.execute("select 2").fetchone() == (2,)
        conn.commit()
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("begin read write")


def test_session_statements(server, tokens):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        assert conn.execute("show transaction isolation level").fetchone() == ("read committed",)
        conn.execute("set application_name = 'bi tool'")
        assert conn.info.parameter_status("application_name") == "bi tool"
        assert conn.execute("show application_name").fetchone() == ("bi tool",)
        conn.execute("SET extra_float_digits = 3")
        conn.execute("SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED")
        conn.execute("set time zone 'Europe/Paris'")
        assert conn.execute("show timezone").fetchone() == ("Europe/Paris",)
        got = conn.execute("select timestamptz '2024-01-01 12:00:00+00' as t").fetchone()[0]
        assert got == dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc)
        assert conn.execute("select current_setting('application_name')").fetchone() == ("bi tool",)
        conn.execute("reset all")
        assert conn.execute("show application_name").fetchone() == ("",)
        conn.execute("discard all")
        with pytest.raises(psycopg.errors.UndefinedObject):
            conn.execute("show no_such_setting")
        row = conn.execute("select version(), current_user, current_database(), current_schema()").fetchone()
        assert row[0].startswith("PostgreSQL ") and row[1] == "ana" and row[2] == "testmesh"


def test_cursors_stream_with_declare_and_fetch(platform, server, tokens):
    expected = python_rows(platform, "ana", "select order_id, order_date from shop.orders order by order_id")
    with psycopg.connect(dsn(server, tokens)) as conn:
        with conn.cursor(name="orders_cursor") as cur:  # DECLARE ... CURSOR + FETCH FORWARD n
            cur.itersize = 7
            cur.execute("select order_id, order_date from shop.orders order by order_id")
            assert cur.fetchmany(3) == expected[:3]
            assert cur.fetchall() == expected[3:]
        conn.execute("declare c2 cursor for select order_id from shop.orders order by order_id")
        assert conn.execute("fetch 2 from c2").fetchall() == [(r[0],) for r in expected[:2]]
        assert conn.execute("move 3 in c2").statusmessage == "MOVE 3"
        assert conn.execute("fetch next from c2").fetchall() == [(expected[5][0],)]
        rest = conn.execute("fetch all from c2")
        assert rest.statusmessage == f"FETCH {len(expected) - 6}"
        conn.execute("close c2")
        conn.commit()


def test_cursors_binary_with_hold_and_no_scroll(platform, server, tokens):
    sql = "select id, email, region from crm.customers order by id"
    expected = python_rows(platform, "ana", sql)  # masked emails, EU rows filtered out
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"declare held binary no scroll cursor with hold for {sql}")  # outside a transaction: HOLD
        assert cur.execute("fetch 3 from held").fetchall() == expected[:3]  # simple query: binary rows
        assert [cur.pgresult.fformat(i) for i in range(3)] == [1, 1, 1]
        pg = conn.pgconn
        pg.send_query_params(b"fetch forward 2 from held", None)  # extended protocol: Bind's formats (text)
        text = conn.wait(psycopg.generators.execute(pg))[-1]
        assert [text.fformat(i) for i in range(3)] == [0, 0, 0]
        assert [tuple(text.get_value(r, c).decode() for c in range(3)) for r in range(2)] == [
            tuple(str(v) for v in row) for row in expected[3:5]]
        assert cur.execute("move 2 in held").statusmessage == "MOVE 2"
        assert cur.execute("fetch all from held").fetchall() == expected[7:]
        assert cur.statusmessage == f"FETCH {len(expected) - 7}"
        for direction in ("prior", "backward 2", "absolute 1", "relative -1", "last", "first", "-1", "absolute 0"):
            with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match="can only scan forward"):
                cur.execute(f"fetch {direction} from held")  # NO SCROLL, as in PostgreSQL (55000)
        assert cur.execute("fetch next from held").fetchall() == [] and cur.statusmessage == "FETCH 0"
        cur.execute("close held")
        with pytest.raises(psycopg.errors.InvalidCursorName):
            cur.execute("fetch 1 from held")
        # a transaction's cursors: WITH HOLD ones outlive its COMMIT, none outlives a ROLLBACK
        for end in ("commit", "rollback"):
            cur.execute("begin")
            cur.execute(f"declare kept cursor with hold for {sql}")
            cur.execute(f"declare plain cursor for {sql}")
            assert cur.execute("fetch 1 from kept").fetchall() == expected[:1]
            cur.execute(end)
            with pytest.raises(psycopg.errors.InvalidCursorName):
                cur.execute("fetch 1 from plain")
            if end == "commit":
                assert cur.execute("fetch 2 from kept").fetchall() == expected[1:3]
                cur.execute("close kept")
            else:
                with pytest.raises(psycopg.errors.InvalidCursorName):
                    cur.execute("fetch 1 from kept")


def _scroll_tables(server, conn) -> list:
    """The DuckDB connections holding the SCROLL cursors of a client's session (server side)."""
    return [c.connection for c in server._connections[conn.info.backend_pid].cursors.values() if c.scroll]


def _dropped(platform, connection) -> bool:
    """The cursor's DuckDB connection is closed (its temporary table with it) and no spill file is left."""
    try:
        connection.execute("select count(*) from scroll")
        return False
    except duckdb.ConnectionException:
        engine = platform.state.backend.db.cursor()
        try:
            return engine.execute("select count(*) from duckdb_temporary_files()").fetchone()[0] == 0
        finally:
            engine.close()


def test_scroll_cursors_governed_audited_once_and_dropped(platform, server, tokens):
    """SCROLL cursors (psycopg's scrollable=True, raw DECLARE, WITH HOLD, BINARY): the rows Python shows ana
    (masked, EU filtered out) in every direction, one audit entry however many FETCHes; the DuckDB table is
    gone after CLOSE, COMMIT, DISCARD ALL and a client that vanished without a word."""
    sql = "select id, full_name, email, region from crm.customers order by id"
    expected = python_rows(platform, "ana", sql)
    assert all(r[1] == "****" and r[2].startswith("***@") and r[3] != "EU" for r in expected)
    since = max([e[0] for e in wire_entries(platform)], default=0)
    with psycopg.connect(dsn(server, tokens)) as conn:
        with conn.cursor("sc", scrollable=True) as cur:  # DECLARE "sc" SCROLL CURSOR; MOVE [ABSOLUTE] n
            cur.execute(sql)
            assert cur.fetchmany(3) == expected[:3]
            cur.scroll(-2)
            assert cur.fetchone() == expected[1]
            cur.scroll(5, mode="absolute")
            assert cur.fetchone() == expected[5]
            cur.scroll(-1, mode="absolute")
            assert cur.fetchone() is None
            cur.scroll(0, mode="absolute")
            assert cur.fetchall() == expected
            [table] = _scroll_tables(server, conn)
        assert _dropped(platform, table)  # CLOSE
        assert [e[2:] for e in wire_entries(platform, since)] == [("ok", len(expected))]
        conn.execute(f"declare c scroll cursor for {sql}")
        assert conn.execute("fetch last from c").fetchall() == expected[-1:]
        [table] = _scroll_tables(server, conn)
        conn.commit()  # a cursor without HOLD ends with its transaction
        assert _dropped(platform, table)
        with pytest.raises(psycopg.errors.InvalidCursorName):
            conn.execute("fetch prior from c")
        conn.rollback()
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        cur = conn.cursor()
        cur.execute(f"declare b binary scroll cursor with hold for {sql}")  # outside a transaction: HOLD
        assert cur.execute("fetch absolute 4 from b").fetchall() == expected[3:4]
        assert [cur.pgresult.fformat(i) for i in range(4)] == [1] * 4
        assert cur.execute("fetch backward all from b").fetchall() == expected[2::-1]
        assert cur.statusmessage == "FETCH 3"
        assert cur.execute("move forward all in b").statusmessage == f"MOVE {len(expected)}"
        [table] = _scroll_tables(server, conn)
        cur.execute("discard all")
        assert _dropped(platform, table)
    conn = psycopg.connect(dsn(server, tokens), autocommit=True)
    conn.execute(f"declare gone scroll cursor with hold for {sql}")
    assert conn.execute("fetch 2 from gone").fetchall() == expected[:2]
    [table] = _scroll_tables(server, conn)
    pid = conn.info.backend_pid
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as raw:  # the client vanishes: no Terminate message
        raw.shutdown(socket.SHUT_RDWR)
    deadline = time.monotonic() + 10
    while (pid in server._connections or not _dropped(platform, table)) and time.monotonic() < deadline:
        time.sleep(0.05)  # the connection's thread ends, then its cursors are dropped: wait for the outcome
    assert _dropped(platform, table)
    conn.close()


def assert_cancelled(conn, worker: threading.Thread, errors: list) -> None:
    """Cancel the query ``worker`` runs on ``conn`` until it stops: it must end with QueryCanceled, and the
    session goes on."""
    for _ in range(100):
        conn.cancel_safe()  # cancel() holds the GIL in libpq's blocking PQcancel: the in-process server would wait
        worker.join(0.2)
        if not worker.is_alive():
            break
    assert not worker.is_alive(), "the query was not cancelled"
    assert errors and isinstance(errors[0], psycopg.errors.QueryCanceled)
    assert conn.execute("select 1").fetchone() == (1,)
    conn.close()


def test_cancel_request_interrupts_the_query(server, tokens):
    """CancelRequest interrupts a query while its rows stream."""
    conn = psycopg.connect(dsn(server, tokens), autocommit=True)
    errors = []

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute("select a.order_id from shop.orders a, shop.orders b, shop.orders c, shop.orders d")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    worker = threading.Thread(target=run, daemon=True)
    pid = conn.info.backend_pid
    worker.start()
    for _ in range(600):  # wait until the server streams the query's rows (no timing assumption)
        running = server._connections.get(pid)
        if running is not None and running.running_result is not None:
            break
        worker.join(0.1)
    assert_cancelled(conn, worker, errors)


# -- uuid and json ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iot(tmp_path_factory):
    """A quantum with UUID, JSON and UUID[] columns (a pii UUID masked for ana): (platform, server, token)."""
    root = tmp_path_factory.mktemp("pgwire-iot")
    mesh_yaml(root, domains=("iot",))
    write_yaml(root / "governance.yaml", {
        "roles": [{"name": "analyst"}], "principals": [{"name": "ana", "roles": ["analyst"]}],
        "grants": [{"to": {"role": "analyst"}, "on": "iot"}],
        "policies": [{"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact"}]})
    sql_to_file(root / "data" / "devices.parquet",
                "select i as id, ('00000000-0000-4000-8000-' || lpad(i::varchar, 12, '0'))::uuid as device_id, "
                "('10000000-0000-4000-8000-' || lpad(i::varchar, 12, '0'))::uuid as owner_id, "
                "json_object('n', i, 'ok', i % 2 = 0, 'tags', ['a', 'b']) as payload, "
                "case when i % 5 = 0 then null else [('2000000a-0000-4000-8000-' || lpad(i::varchar, 12, '0'))::uuid, "
                "null] end as peers from range(1, 251) t(i)")
    write_yaml(root / "products" / "iot.odps.yaml", product("iot", domain="iot"))
    write_yaml(root / "contracts" / "iot.odcs.yaml", contract("iot-contract", [{
        "name": "devices", "properties": [
            prop("id", "integer", "bigint"), prop("device_id", "string", "uuid"),
            prop("owner_id", "string", "uuid", classification="pii"), prop("payload", "object", "json"),
            prop("peers", "array", "uuid[]")]}], servers=[local_server("devices.parquet")]))
    platform = Platform(root)
    token, _ = platform.tokens.create("ana", 1)
    register_token(platform, token)
    srv = PgServer(platform, port=0).start()
    yield platform, srv, token
    srv.stop()


def iot_dsn(iot) -> str:
    platform, srv, token = iot
    return f"host=127.0.0.1 port={srv.port} user=ana dbname=testmesh password={token}"


def as_pg(row: tuple) -> tuple:
    """A row of the Python interface (UUIDs and JSON as text) as psycopg reads uuid and json."""
    i, device, owner, payload, peers = row
    return (i, uuid.UUID(device), owner and uuid.UUID(owner), json.loads(payload),
            None if peers is None else [p and uuid.UUID(p) for p in peers])


@pytest.mark.parametrize("binary", [False, True])
def test_uuid_and_json_columns_have_their_types(iot, binary):
    platform = iot[0]
    sql = "select id, device_id, owner_id, payload, peers from iot.devices order by id"
    expected = [as_pg(r) for r in python_rows(platform, "ana", sql)]
    assert expected[0][2] is None and isinstance(expected[0][3], dict)  # owner_id masked; payload a document
    with psycopg.connect(iot_dsn(iot), autocommit=True) as conn:
        for prepare in (False, True):  # simple rows, then Parse/Describe/Bind/Execute
            cur = conn.cursor(binary=binary)
            assert cur.execute(sql, prepare=prepare).fetchall() == expected
            assert [d.type_code for d in cur.description] == [20, 2950, 2950, 114, 2951]
        cur = conn.cursor(binary=binary)
        cur.execute("select %s::uuid as u, %s::json as j, %s as p, array[%s::json, null] as a, "
                    "count(*) as n from iot.devices where device_id = %s",
                    [uuid.UUID(int=7), json.dumps({"k": [1, "é"]}), psycopg.types.json.Json({"x": None}),
                     json.dumps([1]), uuid.UUID("00000000-0000-4000-8000-000000000003")])
        assert cur.fetchone() == (uuid.UUID(int=7), {"k": [1, "é"]}, {"x": None}, [[1], None], 1)
        assert [d.type_code for d in cur.description] == [2950, 114, 114, 199, 20]
        with pytest.raises(psycopg.errors.InvalidTextRepresentation):
            conn.execute("select %s::uuid", ["not-a-uuid"], binary=binary)


def test_asyncpg_uuid_and_json(iot):
    asyncpg = pytest.importorskip("asyncpg")
    platform, srv, token = iot

    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=srv.port, user="ana", password=token,
                                     database="testmesh")
        try:
            stmt = await conn.prepare("select device_id, owner_id, payload, peers from iot.devices "
                                      "where device_id = $1 or payload->>'n' = $2")
            types = [a.type.name for a in stmt.get_attributes()]
            rows = await stmt.fetch(uuid.UUID("00000000-0000-4000-8000-000000000003"), "4")
            echo = await conn.fetchrow("select $1::uuid as u, $2::json as j", uuid.UUID(int=9), '{"a": [1]}')
            return types, rows, echo
        finally:
            await conn.close()

    types, rows, echo = asyncio.run(main())
    assert types == ["uuid", "uuid", "json", "uuid[]"]  # as PostgreSQL names them
    expected = python_rows(platform, "ana", "select device_id, owner_id, payload, peers from iot.devices "
                                            "where id in (3, 4) order by id")
    assert [(str(r[0]), r[1], json.loads(r[2]), r[3] and [p and str(p) for p in r[3]]) for r in rows] == \
        [(d, o, json.loads(p), peers) for d, o, p, peers in expected]
    assert (str(echo["u"]), json.loads(echo["j"])) == (str(uuid.UUID(int=9)), {"a": [1]})


# -- asyncpg ---------------------------------------------------------------------------------------------------


def test_asyncpg_parameters_binary_types_and_prepared(platform, server, tokens):
    asyncpg = pytest.importorskip("asyncpg")

    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh")
        try:
            rows = await conn.fetch("select order_id, order_date from shop.orders where customer_id = $1 "
                                    "and order_date >= $2 order by order_id", 4, dt.date(2026, 1, 1))
            stmt = await conn.prepare("select order_id from shop.orders where order_id < $1 order by order_id")
            counts = [len(await stmt.fetch(i)) for i in range(7)]
            row = await conn.fetchrow(
                "select 1::int2 a, 2::int4 b, 3::int8 c, 1.5::float4 d, 2.5::float8 e, 12.345::numeric f, "
                "'hé'::text g, date '2024-02-29' i, time '01:02:03' j, timestamp '2024-01-01 02:03:04' k, "
                "timestamptz '2024-01-01 02:03:04+00' l, interval '1 day 5 seconds' m, true o, ARRAY[1,2,3] p")
            async with conn.transaction():
                cursor = await conn.cursor("select order_id from shop.orders order by order_id")
                first = await cursor.fetch(3)
            try:
                await conn.fetch("select amount from shop.orders")
                denied = None
            except asyncpg.PostgresError as e:
                denied = e.sqlstate
            return rows, counts, row, first, denied
        finally:
            await conn.close()

    rows, counts, row, first, denied = asyncio.run(main())
    assert [tuple(r) for r in rows] == python_rows(
        platform, "ana", "select order_id, order_date from shop.orders where customer_id = 4 and order_date >= "
                         "date '2026-01-01' order by order_id")
    assert counts == list(range(7))
    assert tuple(row) == (1, 2, 3, 1.5, 2.5, decimal.Decimal("12.345"), "hé", dt.date(2024, 2, 29),
                          dt.time(1, 2, 3), dt.datetime(2024, 1, 1, 2, 3, 4),
                          dt.datetime(2024, 1, 1, 2, 3, 4, tzinfo=dt.timezone.utc),
                          dt.timedelta(days=1, seconds=5), True, [1, 2, 3])
    assert [r[0] for r in first] == [0, 1, 2]
    assert denied == "42501"


# -- SQLAlchemy and pandas -------------------------------------------------------------------------------------


def test_sqlalchemy_inspect_and_pandas(platform, server, tokens):
    sa = pytest.importorskip("sqlalchemy")
    pd = pytest.importorskip("pandas")
    engine = sa.create_engine(f"postgresql+psycopg://ana:{tokens['ana']}@127.0.0.1:{server.port}/testmesh")
    try:
        insp = sa.inspect(engine)
        schemas = insp.get_schema_names()
        assert {"shop", "crm"} <= set(schemas) and "report" not in schemas
        assert insp.get_table_names(schema="shop") == ["orders"]
        columns = {c["name"]: c for c in insp.get_columns("customers", schema="crm")}
        assert list(columns) == ["id", "full_name", "email", "region"]
        assert columns["region"]["comment"] == "Residency region"
        assert not columns["id"]["nullable"]
        assert [c["name"] for c in insp.get_columns("orders", schema="shop")] == ["order_id", "customer_id",
                                                                                  "order_date"]
        assert insp.get_table_comment("orders", schema="shop") == {"text": "Orders"}
        assert insp.has_table("orders", schema="shop")
        assert insp.get_pk_constraint("orders", schema="shop")["constrained_columns"] == ["order_id"]
        frame = pd.read_sql("select id, email from crm.customers order by id", engine)
        assert list(frame.itertuples(index=False, name=None)) == python_rows(
            platform, "ana", "select id, email from crm.customers order by id")
    finally:
        engine.dispose()


# -- pgjdbc ----------------------------------------------------------------------------------------------------

JDBC_JAR = "/usr/share/java/postgresql.jar"


def test_pgjdbc_metadata_and_prepared_statement(server, tokens, tmp_path):
    if shutil.which("javac") is None or not os.path.exists(JDBC_JAR):
        pytest.skip("javac or pgjdbc is not installed")
    source = os.path.join(os.path.dirname(__file__), "pgjdbc", "MeshMetadata.java")
    subprocess.run(["javac", "-d", str(tmp_path), source], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["java", "-cp", f"{JDBC_JAR}:{tmp_path}", "MeshMetadata",
                          f"jdbc:postgresql://127.0.0.1:{server.port}/testmesh", "ana", tokens["ana"]],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "schema shop" in lines and "schema crm" in lines and "schema report" not in lines
    assert "table shop.orders remarks=Orders" in lines
    assert "table crm.customers remarks=Customers" in lines
    assert "column order_id int8 -5 remarks=null" in lines
    assert not any(line.startswith("column amount") for line in lines)  # denied to ana
    assert "column region varchar 12 remarks=Residency region" in lines
    assert "denied 42501" in lines
    assert "row 7 8 2026-01-08" in lines
    masked = [line for line in lines if line.startswith("masked ")]
    assert masked and "user4@" not in masked[0] and "name4" not in masked[0]


# -- psqlODBC ------------------------------------------------------------------------------------------------


def test_psqlodbc_declare_fetch_like_tableau(platform, server, tokens):
    """psqlODBC with UseDeclareFetch=1 (how Tableau reads): tables, columns, and a governed query of more rows
    than Fetch read through DECLARE ... WITH HOLD / FETCH 100, equal to the Python interface's rows."""
    pyodbc = pytest.importorskip("pyodbc")
    drivers = sorted(glob.glob("/usr/lib/*/odbc/psqlodbcw.so") + glob.glob("/usr/lib/odbc/psqlodbcw.so"))
    if not drivers:
        pytest.skip("psqlODBC is not installed (apt-get install odbc-postgresql unixodbc)")
    conn = pyodbc.connect(f"Driver={drivers[0]};Server=127.0.0.1;Port={server.port};Database=testmesh;UID=ana;"
                          f"PWD={tokens['ana']};UseDeclareFetch=1;Fetch=100", timeout=30)
    try:
        cur = conn.cursor()
        assert sorted((t.table_schem, t.table_name) for t in cur.tables(tableType="TABLE")) == [
            ("crm", "customers"), ("shop", "orders")]
        assert [c.column_name for c in cur.columns(table="orders", schema="shop")] == [
            "order_id", "customer_id", "order_date"]  # amount is denied to ana
        sql = ("select o.order_id, o.order_date, c.id, c.full_name, c.email, c.region from shop.orders o "
               "cross join crm.customers c order by o.order_id, c.id")
        expected = federation.connect(str(platform.path), "ana").sql(sql).fetchall()
        assert len(expected) > 1000 and all(r[3] == "****" and r[4].startswith("***@") for r in expected)
        cur.execute(sql)
        first = [tuple(r) for r in cur.fetchmany(150)]
        held = [c for wire in list(server._connections.values()) for c in wire.cursors.values()]
        assert len(held) == 1 and held[0].hold and not held[0].source.done  # the driver reads through a cursor
        assert first + [tuple(r) for r in cur.fetchall()] == expected
        with pytest.raises(pyodbc.Error, match="42501"):
            cur.execute("select amount from shop.orders").fetchall()
    finally:
        conn.close()


# -- the protocol itself, byte by byte ------------------------------------------------------------------------


class RawClient:
    """A minimal frontend speaking the protocol's messages directly (what drivers hide)."""

    def __init__(self, port: int):
        import socket

        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def send(self, kind: bytes, body: bytes = b"") -> None:
        import struct

        self.sock.sendall(kind + struct.pack("!i", len(body) + 4) + body)

    def read(self, n: int) -> bytes:
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "the server closed the connection"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def message(self) -> tuple[bytes, bytes]:
        import struct

        head = self.read(5)
        return head[:1], self.read(struct.unpack("!i", head[1:])[0] - 4)

    def until_ready(self) -> list[bytes]:
        kinds = []
        while True:
            kind, _ = self.message()
            kinds.append(kind)
            if kind == b"Z":
                return kinds


def _cstr(s: str) -> bytes:
    return s.encode() + b"\0"


def test_protocol_messages(platform, tokens):
    import struct

    srv = PgServer(platform, port=0, allow_cleartext=True).start()
    try:
        c = RawClient(srv.port)
        c.sock.sendall(struct.pack("!ii", 8, 80877103))  # SSLRequest: no certificate configured
        assert c.read(1) == b"N"
        body = struct.pack("!i", (3 << 16) | 2) + _cstr("user") + _cstr("ana") + _cstr("_pq_.future") + _cstr("x") + b"\0"
        c.sock.sendall(struct.pack("!i", len(body) + 4) + body)
        kind, data = c.message()
        assert kind == b"v" and struct.unpack("!i", data[:4])[0] == 0 and b"_pq_.future" in data
        kind, data = c.message()
        assert kind == b"R" and struct.unpack("!i", data)[0] == 3  # cleartext (configured)
        c.send(b"p", _cstr(tokens["ana"]))
        kinds = c.until_ready()
        assert kinds[0] == b"R" and b"K" in kinds and kinds.count(b"S") >= 11

        # Parse + Describe statement: parameter and row descriptions, without executing
        c.send(b"P", _cstr("s1") + _cstr("select order_id from shop.orders where order_id < $1 order by order_id")
               + struct.pack("!h", 0))
        c.send(b"D", b"S" + _cstr("s1"))
        c.send(b"S")
        msgs = []
        while True:
            kind, data = c.message()
            msgs.append((kind, data))
            if kind == b"Z":
                break
        assert [k for k, _ in msgs] == [b"1", b"t", b"T", b"Z"]
        assert struct.unpack("!hI", msgs[1][1]) == (1, 20)  # $1 inferred as int8 from order_id
        # Bind (text parameter) + Execute with a row limit: PortalSuspended, then the rest
        c.send(b"B", _cstr("p1") + _cstr("s1") + struct.pack("!hh", 0, 1) + struct.pack("!i", 1) + b"5"
               + struct.pack("!h", 0))
        c.send(b"E", _cstr("p1") + struct.pack("!i", 2))
        c.send(b"E", _cstr("p1") + struct.pack("!i", 2))
        c.send(b"E", _cstr("p1") + struct.pack("!i", 2))
        c.send(b"S")
        assert c.until_ready() == [b"2", b"D", b"D", b"s", b"D", b"D", b"s", b"D", b"C", b"Z"]
        # an error skips everything up to Sync
        c.send(b"P", _cstr("") + _cstr("selec 1") + struct.pack("!h", 0))
        c.send(b"B", _cstr("") + _cstr("") + struct.pack("!hhh", 0, 0, 0))
        c.send(b"E", _cstr("") + struct.pack("!i", 0))
        c.send(b"S")
        kind, data = c.message()
        assert kind == b"E" and b"C42601\0" in data
        assert c.until_ready() == [b"Z"]
        # simple query: an empty query, several statements, transaction status in ReadyForQuery
        c.send(b"Q", _cstr(""))
        assert c.until_ready() == [b"I", b"Z"]
        c.send(b"Q", _cstr("begin; select 1 as a; select 2 as b"))
        kinds = []
        while True:
            kind, data = c.message()
            kinds.append(kind)
            if kind == b"Z":
                assert data == b"T"
                break
        assert kinds == [b"C", b"T", b"D", b"C", b"T", b"D", b"C", b"Z"]
        c.send(b"Q", _cstr("select amount from shop.orders"))
        kind, data = c.message()
        assert kind == b"E" and b"C42501\0" in data
        kind, data = c.message()
        assert (kind, data) == (b"Z", b"E")  # failed transaction block
        c.send(b"Q", _cstr("rollback"))
        assert c.until_ready() == [b"C", b"Z"]
        c.send(b"X")
    finally:
        srv.stop()


def test_quanta_token_create_and_pgserve(platform, tokens):
    import re
    import sys

    quanta = [os.path.join(os.path.dirname(sys.executable), "quanta")]
    created = subprocess.run(quanta + ["token", "create", "pia", "--mesh", str(platform.path)], capture_output=True,
                             text=True, timeout=120)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip().splitlines()[-1]
    proc = subprocess.Popen(quanta + ["pgserve", str(platform.path), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        port = int(re.search(r":(\d+)", line).group(1))
        with psycopg.connect(f"host=127.0.0.1 port={port} user=pia dbname=testmesh password={token}") as conn:
            assert conn.execute("select count(*) from shop.orders where amount >= 0").fetchone()[0] > 0
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.mark.parametrize("user", ["ana", "paul"])
def test_demo_mesh_every_dataset_matches_python(demo_path, user):
    """Every dataset of the demo mesh the user may read, in text and binary: the same values (masked as
    for Python) and every type encodes."""
    platform = Platform(demo_path)
    token, _ = platform.tokens.create(user, 1)
    register_token(platform, token)
    py = federation.Connection(platform, platform.principal(user))
    srv = PgServer(platform, port=0).start()
    checked = 0
    try:
        with psycopg.connect(f"host=127.0.0.1 port={srv.port} user={user} dbname=greatparts password={token}",
                             autocommit=True) as conn:
            for ds in platform.mesh.datasets():
                if platform.state.governance.grant_for(platform.principal(user), ds) is None:
                    continue
                sql = f"select * from {ds.quantum}.{ds.name}"
                expected = sorted(py.sql(sql).fetchall(), key=repr)
                for binary in (False, True):
                    got = conn.cursor(binary=binary).execute(sql).fetchall()
                    assert sorted(got, key=repr) == expected, (sql, binary)
                checked += 1
    finally:
        srv.stop()
    assert checked >= 5


def test_catalog_functions_and_information_schema(server, tokens):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn:
        q = lambda sql, *p: conn.execute(sql, p or None).fetchall()  # noqa: E731
        assert q("select count(*) > 10 from pg_catalog.pg_get_keywords()") == [(True,)]
        oid = q("select 'shop.orders'::regclass::oid")[0][0]
        assert q("select c.relname, c.oid::regclass from pg_class c where c.oid = %s", oid) == [("orders",
                                                                                                  "shop.orders")]
        assert q("select obj_description(%s::oid, 'pg_class'), col_description(%s::oid, 1)", oid, oid) == [
            ("Orders", None)]
        assert q("select to_regtype('integer')::oid, 'bigint'::regtype::oid, format_type(1700, 655366)") == [
            (23, 20, "numeric(10,2)")]
        assert q("select has_table_privilege('shop.orders', 'SELECT'), has_schema_privilege('shop', 'USAGE')") == [
            (True, True)]
        assert q("select pg_catalog.pg_get_userbyid(10), current_user, session_user") == [("ana", "ana", "ana")]
        tables = q("select table_schema, table_name from information_schema.tables where table_schema <> 'system' "
                   "order by 1, 2")
        assert tables == [("crm", "customers"), ("shop", "orders")]  # filtered by ana's grants
        columns = q("select column_name, data_type from information_schema.columns where table_schema = 'shop' "
                    "order by ordinal_position")
        assert columns == [("order_id", "bigint"), ("customer_id", "bigint"), ("order_date", "date")]
        assert q("select datname from pg_database") == [("testmesh",)]
        assert q("select n.nspname from pg_namespace n where n.nspname = 'report'") == []
        assert q("select setting from pg_settings where name = 'TimeZone'") == [("UTC",)]


def test_tls_when_a_certificate_is_configured(platform, tokens, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "server.crt", tmp_path / "server.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1"], check=True, capture_output=True, timeout=120)
    srv = PgServer(platform, port=0, tls_cert=str(cert), tls_key=str(key)).start()
    try:
        with psycopg.connect(dsn(srv, tokens, sslmode="require")) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("select count(*) from shop.orders").fetchone()[0] > 0
    finally:
        srv.stop()


def test_cancel_request_interrupts_a_query_in_its_first_blocking_call(server, tokens):
    """An aggregate over a huge cross join produces no row before it ends: CancelRequest must reach the
    engine itself (a Cancellation bound before execution starts), not wait for rows or the time-out."""
    conn = psycopg.connect(dsn(server, tokens), autocommit=True)
    errors = []

    def run():
        try:
            with conn.cursor() as cur:
                cur.execute("select count(*) from shop.orders a, shop.orders b, shop.orders c, shop.orders d, "
                            "shop.orders e, shop.orders f")
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    worker = threading.Thread(target=run, daemon=True)
    pid = conn.info.backend_pid
    worker.start()
    for _ in range(600):  # wait until the engine runs the query
        running = server._connections.get(pid)
        if running is not None and running.running_cancel is not None:
            break
        worker.join(0.1)
    assert_cancelled(conn, worker, errors)


def test_scroll_cursor_rows_spill_to_disk_not_memory(tmp_path):
    """A SCROLL cursor's rows live in DuckDB, which spills them to the engine's temporary folder when they do
    not fit its memory limit: a result bigger than the limit scrolls both ways, and CLOSE removes the files."""
    import yaml

    root = shop_mesh(tmp_path / "spill", governance=GOVERNANCE)
    settings = yaml.safe_load((root / "mesh.yaml").read_text())
    settings["settings"] = {"threads": 2, "memory_limit": "64MB"}
    write_yaml(root / "mesh.yaml", settings)
    rows = 3_000_000  # ~100 MB in the cursor's table
    for part in range(2):
        sql_to_file(root / "data" / "shop" / "orders" / f"part-{part}.parquet",
                    f"select i as order_id, (i % 30) + 1 as cust_id, (i * 7 % 100)::decimal(10,2) as amount, "
                    f"date '2026-01-01' + (i % 60)::int as order_date "
                    f"from range({part * rows // 2}, {(part + 1) * rows // 2}) t(i)")
    big = Platform(root)
    token, _ = big.tokens.create("ana", 1)
    register_token(big, token)
    srv = PgServer(big, host="127.0.0.1", port=0).start()
    try:
        with psycopg.connect(dsn(srv, {"ana": token}), autocommit=True) as conn:
            conn.execute("declare s scroll cursor with hold for "
                         "select order_id, customer_id, order_date from shop.orders order by order_id")
            assert conn.execute("fetch last from s").fetchall() == [(rows - 1, (rows - 1) % 30 + 1,
                                                                     dt.date(2026, 1, 1) + dt.timedelta((rows - 1) % 60))]
            engine = big.state.backend.db.cursor()
            spilled = engine.execute("select count(*), coalesce(sum(size), 0) from duckdb_temporary_files()").fetchone()
            assert spilled[0] > 0 and spilled[1] > 16 << 20, spilled  # on disk, not in the 64 MB of memory
            assert [r[0] for r in conn.execute("fetch absolute 2 from s").fetchall()] == [1]
            assert [r[0] for r in conn.execute("fetch backward 3 from s").fetchall()] == [0]
            assert [r[0] for r in conn.execute("fetch relative 2000000 from s").fetchall()] == [1_999_999]
            [table] = _scroll_tables(srv, conn)
            conn.execute("close s")
            assert _dropped(big, table)
            engine.close()
    finally:
        srv.stop()
