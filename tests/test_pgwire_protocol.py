"""The wire protocol with real clients: positional parameters written without spaces, COPY ... TO STDOUT
(text, CSV, binary) governed like any query, and SCRAM-SHA-256 for tokens made through the Python API."""

from __future__ import annotations

import asyncio
import datetime as dt

import pgkit
import pytest

import federation
from federation.server.pgwire.dollar import space_parameters

psycopg = pytest.importorskip("psycopg")

@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return pgkit.governed_shop(tmp_path_factory.mktemp("pgwire_protocol"))


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "pia"))


@pytest.fixture(scope="module")
def server(platform, tokens):
    with pgkit.running_server(platform) as srv:
        yield srv


def dsn(server, tokens, user="ana", **extra) -> str:
    return pgkit.dsn(server.port, tokens, user, **extra)


def python_rows(platform, user, sql):
    return federation.Connection(platform, platform.principal(user)).sql(sql).fetchall()


# -- $1,$2 ------------------------------------------------------------------------------------------------------


def test_space_parameters_leaves_strings_comments_and_dollar_quotes_alone():
    assert space_parameters("select $1,$2") == "select $1 ,$2"
    assert space_parameters("select $1, $2") == "select $1, $2"  # already readable: unchanged
    kept = ["select '$1,$2'", 'select "$1,$2"', "select $q$$1,$2$q$", "select $$a$1,$$", "-- $1,$2\nselect 1",
            "/* /* $1,$2 */ $1,$2 */ select 1", "select a$1,$2x"]
    for sql in kept:
        assert space_parameters(sql) == sql, sql
    assert space_parameters(r"select E'\'$1,$2', $1,$2") == r"select E'\'$1,$2', $1 ,$2"


def test_psycopg_parameters_without_spaces(server, tokens, platform):
    with psycopg.connect(dsn(server, tokens)) as conn:
        assert conn.execute("select %s,%s", (1, "two")).fetchone() == (1, "two")
        rows = conn.execute("select order_id from shop.orders where order_id in (%s,%s,%s) order by 1",
                            (3, 5, 7)).fetchall()
        assert rows == [(3,), (5,), (7,)]
        # the string constant holding $1,$2 is left as it is
        assert conn.execute("select '$1,$2' as s, %s::int+%s::int as n", (2, 3)).fetchone() == ("$1,$2", 5)


def test_asyncpg_parameters_without_spaces(server, tokens):
    asyncpg = pytest.importorskip("asyncpg")

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh", ssl=False)
        try:
            pair = await conn.fetchrow("select $1::int,$2::text", 4, "x")
            ids = await conn.fetch("select order_id from shop.orders where order_id in ($1,$2,$3) order by 1",
                                   10, 20, 30)
            return tuple(pair), [r[0] for r in ids]
        finally:
            await conn.close()

    assert asyncio.run(run()) == ((4, "x"), [10, 20, 30])


# -- COPY ... TO STDOUT -------------------------------------------------------------------------------------------

VALUES = (r"""select * from (values (1::int4, 'a	b'::text, E'back\\slash\nnew\rline'::text, null::text, ''::text, """
          r"""'say "hi", ok'::text, date '2026-03-01', 2.50::numeric(10,2), true, 1.5::float8, """
          r"""timestamp '2026-01-02 03:04:05.5', 'NULL'::text, E'\\.'::text), """
          r"""(2, null, 'x;y', 'z', null, 'q''uote', null, null, false, null, null, null, null)) """
          r"""t(i, a, b, c, d, e, f, g, h, k, ts, n, dot)""")
OPTIONS = ["", "(FORMAT text)", "(FORMAT csv)", "(FORMAT csv, HEADER)", "(HEADER)",
           "(FORMAT csv, HEADER true, DELIMITER ';', NULL 'NULL', QUOTE '''', FORCE_QUOTE (a, c))",
           "(FORMAT csv, FORCE_QUOTE *, ESCAPE '\\')", "(FORMAT text, DELIMITER ';', NULL '')",
           "WITH CSV HEADER DELIMITER AS '|' NULL AS 'n' FORCE QUOTE a, b", "csv header"]


def copy_out(dsn_text: str, sql: str) -> tuple[bytes, int]:
    with psycopg.connect(dsn_text, autocommit=True) as conn, conn.cursor() as cur:
        with cur.copy(sql) as copy:
            data = b"".join(bytes(chunk) for chunk in copy)
        return data, cur.rowcount


@pytest.fixture(scope="module")
def postgres():
    with pgkit.real_postgres() as server:
        yield server


def test_copy_text_and_csv_are_postgresqls_byte_for_byte(server, tokens, postgres):
    """Escapes (tab, newline, backslash, the delimiter), NULL strings, quoting, FORCE_QUOTE, ESCAPE, HEADER,
    both spellings of the options: the same bytes as PostgreSQL's for the same query."""
    for options in OPTIONS:
        sql = f"COPY ({VALUES}) TO STDOUT {options}"
        assert copy_out(dsn(server, tokens), sql) == copy_out(postgres.dsn(), sql), options


def test_copy_binary_rows_typed_like_postgresqls(server, tokens, postgres):
    """psycopg reads the binary COPY stream (signature, tuples, trailer) typed: the same values as PostgreSQL's."""
    types = ["int4", "text", "text", "text", "text", "text", "date", "numeric", "bool", "float8", "timestamp", "text",
             "text"]

    def rows(dsn_text, options):
        with psycopg.connect(dsn_text, autocommit=True) as conn, conn.cursor() as cur:
            with cur.copy(f"COPY ({VALUES}) TO STDOUT {options}") as copy:
                copy.set_types(types)
                out = list(copy.rows())
            return out, cur.rowcount

    expected = rows(postgres.dsn(), "(FORMAT binary)")
    assert expected[0][0][:3] == (1, "a\tb", "back\\slash\nnew\rline")
    for options in ("(FORMAT binary)", "(FORMAT 'binary')", 'WITH (FORMAT "binary")', "WITH BINARY", "BINARY"):
        assert rows(dsn(server, tokens), options) == expected, options


def test_copy_is_governed_like_a_query(platform, server, tokens):
    """The query of a COPY runs through the pipeline as ana: masks, row filters and denials apply, and it is
    audited; COPY table is COPY (SELECT * FROM table)."""
    data, count = copy_out(dsn(server, tokens), "COPY crm.customers (id, email, region) TO STDOUT (FORMAT csv)")
    lines = data.decode().splitlines()
    expected = python_rows(platform, "ana", "select id, email, region from crm.customers")
    assert count == len(lines) == len(expected) == 20  # the EU customers are filtered out for ana
    assert sorted(lines) == sorted(f"{i},{e},{r}" for i, e, r in expected)
    assert all(line.split(",")[1] == "***@example.com" and line.split(",")[2] != "EU" for line in lines)
    data, count = copy_out(dsn(server, tokens, user="pia"), "COPY crm.customers TO STDOUT")
    assert count == 30 and b"user3@example.com" in data  # pia reads everything, unmasked
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="amount"):
        copy_out(dsn(server, tokens), "COPY (select order_id, amount from shop.orders) TO STDOUT")
    log = federation.Connection(platform, platform.principal("ana")).sql(
        "select sql, status, rows from system.query_log where interface = 'pgwire' order by query_id").fetchall()
    assert ("SELECT id, email, region FROM crm.customers", "ok", 20) in log
    assert any("amount" in s and st != "ok" for s, st, _ in log)


def test_copy_writes_are_refused_as_on_a_read_only_server(server, tokens):
    with psycopg.connect(dsn(server, tokens), autocommit=True) as conn, conn.cursor() as cur:
        for sql in ("COPY crm.customers FROM STDIN", "copy crm.customers (id) from stdin with csv",
                    "COPY crm.customers TO '/tmp/quanta-copy.csv'", "COPY (select 1) TO PROGRAM 'cat'"):
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction, match="read.only"), cur.copy(sql) as copy:
                copy.write(b"1\n") if "FROM" in sql.upper() else list(copy)
        bad = {"COPY (select 1) TO STDOUT (FORMAT xml)": psycopg.errors.InvalidParameterValue,
               "COPY (select 1) TO STDOUT (FORMAT binary, HEADER)": psycopg.errors.SyntaxError,
               "COPY (select 1) TO STDOUT (QUOTE '\"')": psycopg.errors.FeatureNotSupported,
               "COPY (select 1) TO STDOUT (DELIMITER ',,')": psycopg.errors.FeatureNotSupported,
               "COPY (select 1) TO STDOUT (SPEED 'fast')": psycopg.errors.SyntaxError,
               "COPY (select 1) TO STDOUT (FORCE_NULL (a))": psycopg.errors.FeatureNotSupported,
               "COPY (select 1 as a) TO STDOUT (FORMAT csv, FORCE_QUOTE (b))": psycopg.errors.UndefinedTable,
               "COPY (select 1 from nowhere.at_all) TO STDOUT": psycopg.errors.UndefinedTable}
        for sql, error in bad.items():
            with pytest.raises(error), cur.copy(sql) as copy:
                list(copy)
        assert conn.execute("select 1").fetchone() == (1,)  # the session goes on


def test_psql_backslash_copy_to_a_csv_file(server, tokens, platform, tmp_path):
    import os
    import shutil
    import subprocess

    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    target = tmp_path / "f.csv"
    command = (r"\copy (select id, email, region from crm.customers where id <= 5 order by id) to "
               f"'{target}' csv header")
    done = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", "ana", "-d", "testmesh",
                           "-c", command], check=False, capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, PGPASSWORD=tokens["ana"], PGCONNECT_TIMEOUT="10"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "COPY 4"
    assert target.read_text() == ("id,email,region\n1,***@example.com,US\n2,***@example.com,CA\n"
                                  "4,***@example.com,US\n5,***@example.com,CA\n")


def test_asyncpg_copy_from_query_and_table(server, tokens, tmp_path):
    asyncpg = pytest.importorskip("asyncpg")

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh", ssl=False)
        try:
            query = await conn.copy_from_query("select order_id, order_date from shop.orders where order_id < 3 "
                                               "order by 1", output=str(tmp_path / "q.csv"), format="csv",
                                               header=True)
            table = await conn.copy_from_table("customers", schema_name="crm", columns=["id", "region"],
                                               output=str(tmp_path / "t.txt"))
            binary = await conn.copy_from_query("select order_id from shop.orders", output=str(tmp_path / "b.bin"),
                                                format="binary")
            return query, table, binary
        finally:
            await conn.close()

    assert asyncio.run(run()) == ("COPY 3", "COPY 20", "COPY 100")
    assert (tmp_path / "q.csv").read_text() == "order_id,order_date\n0,2026-01-01\n1,2026-01-02\n2,2026-01-03\n"
    lines = (tmp_path / "t.txt").read_text().splitlines()
    assert len(lines) == 20 and "1\tUS" in lines and not any(line.endswith("EU") for line in lines)
    data = (tmp_path / "b.bin").read_bytes()
    assert data.startswith(b"PGCOPY\n\xff\r\n\x00") and data.endswith(b"\xff\xff")


def test_duckdb_postgres_extension_attaches_with_its_defaults(server, tokens):
    """DuckDB's postgres extension reads with COPY (...) TO STDOUT (FORMAT binary): ATTACH, read (masked and
    filtered as ana), a filter pushed down, a join with a local table."""
    import pathlib

    import duckdb

    module = pytest.importorskip("duckdb_extension_postgres_scanner")
    path = pathlib.Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / \
        "postgres_scanner.duckdb_extension"
    db = duckdb.connect()
    try:
        db.execute(f"LOAD '{path}'")
        db.execute(f"ATTACH 'host=127.0.0.1 port={server.port} user=ana password={tokens['ana']} dbname=testmesh "
                   f"sslmode=disable' AS q (TYPE postgres)")
        rows = db.sql("select id, full_name, email, region from q.crm.customers order by id").fetchall()
        assert len(rows) == 20 and rows[0] == (1, "****", "***@example.com", "US")
        assert {r[3] for r in rows} == {"US", "CA"}  # the residency row filter applies
        assert db.sql("select order_id, order_date from q.shop.orders where order_id > 97 order by 1").fetchall() == [
            (98, dt.date(2026, 2, 8)), (99, dt.date(2026, 2, 9))]
        db.execute("create table local_regions as select * from (values ('US', 'United States'), ('CA', 'Canada')) "
                   "t(region, name)")
        joined = db.sql("select l.name, count(*) from q.crm.customers c join local_regions l using (region) "
                        "group by 1 order by 1").fetchall()
        assert joined == [("Canada", 10), ("United States", 10)]
        with pytest.raises(duckdb.Error, match="amount"):
            db.sql("select amount from q.shop.orders").fetchall()
    finally:
        db.close()


# -- SCRAM-SHA-256 (scramp) -------------------------------------------------------------------------------------


def test_a_token_made_through_the_python_api_logs_in_over_the_wire(platform, server):
    """platform.tokens.create keeps the token's SCRAM verifier (no register_token): psycopg (libpq) and asyncpg
    log in with it at once; a wrong token, another user's token and a revoked one are refused (28P01)."""
    asyncpg = pytest.importorskip("asyncpg")
    token, info = platform.tokens.create("ana", 1)
    other, _ = platform.tokens.create("ana", 1)  # two tokens of one principal: one salt, a verifier each
    assert {v.token_id for v in platform.tokens.scram.verifiers("ana")} >= {info.token_id, other[3:].split("_")[0]}
    base = {"host": "127.0.0.1", "port": server.port, "dbname": "testmesh", "sslmode": "disable"}

    def connect(user, password):
        return psycopg.connect(" ".join(f"{k}={v}" for k, v in {**base, "user": user, "password": password}.items()))

    for password in (token, other):
        with connect("ana", password) as conn:
            assert conn.execute("select current_user").fetchone() == ("ana",)

    async def with_asyncpg():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=token,
                                     database="testmesh", ssl=False)
        try:
            return await conn.fetchval("select count(*) from shop.orders")
        finally:
            await conn.close()

    assert asyncio.run(with_asyncpg()) == 100
    for user, password in (("ana", token[:-2] + "xx"), ("pia", token), ("nobody", token)):
        with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
            connect(user, password)
    platform.tokens.revoke(info.token_id)
    with pytest.raises(psycopg.OperationalError, match="password authentication failed"):
        connect("ana", token)
    with connect("ana", other) as conn:  # the other token still works
        assert conn.execute("select 1").fetchone() == (1,)


# -- portals reached by MOVE, reserved words as labels ----------------------------------------------------------


def test_asyncpg_cursor_forward_moves_a_protocol_portal(server, tokens):
    """asyncpg's Cursor.forward(n) sends MOVE FORWARD n <portal of Bind>: the portal skips n rows and the next
    fetch goes on from there; past the end, fewer rows are moved."""
    asyncpg = pytest.importorskip("asyncpg")

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh", ssl=False)
        try:
            async with conn.transaction():
                cur = await conn.cursor("select order_id from shop.orders where order_id < $1 order by 1", 50)
                first = [r[0] for r in await cur.fetch(3)]
                moved = await cur.forward(10)
                after = [r[0] for r in await cur.fetch(2)]
                fresh = await conn.cursor("select order_id from shop.orders order by 1")
                skipped = await fresh.forward(98)  # before any fetch: the portal's query starts here
                last = await fresh.fetchrow()
                beyond = await fresh.forward(5)
            return first, moved, after, skipped, last[0], beyond
        finally:
            await conn.close()

    assert asyncio.run(run()) == ([0, 1, 2], 10, [13, 14], 98, 98, 1)


METABASE_PRIVILEGES = """with table_privileges as (
 select
   NULL as role,
   t.schemaname as schema,
   t.objectname as table,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',
                                  'UPDATE') as update,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',
                                  'SELECT') as select,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',
                                  'INSERT') as insert,
   pg_catalog.has_table_privilege(current_user, '"' || t.schemaname || '"' || '.' || '"' || t.objectname || '"',
                                  'DELETE') as delete
 from (
   select schemaname, tablename as objectname from pg_catalog.pg_tables
   union
   select schemaname, viewname as objectname from pg_catalog.pg_views
   union
   select schemaname, matviewname as objectname from pg_catalog.pg_matviews
 ) t
 where t.schemaname !~ '^pg_'
   and t.schemaname <> 'information_schema'
   and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'USAGE')
)
select t.*
from table_privileges t"""


def test_reserved_words_as_labels(server, tokens):
    from federation.server.pgwire.labels import quote_reserved_labels

    assert quote_reserved_labels("with t as not materialized (select 1) select * from t") == \
        "with t as not materialized (select 1) select * from t"
    assert quote_reserved_labels("select 'x as select' as Select") == "select 'x as select' as \"select\""
    with psycopg.connect(dsn(server, tokens)) as conn:
        cur = conn.execute("select 1 as select, 2 as not, t.select from (select 3 as select) t")
        assert [d.name for d in cur.description] == ["select", "not", "select"] and cur.fetchall() == [(1, 2, 3)]
        cur = conn.execute(METABASE_PRIVILEGES)  # Metabase's privilege query: its labels are reserved words
        assert [d.name for d in cur.description] == ["role", "schema", "table", "update", "select", "insert",
                                                     "delete"]
        rows = {(r[1], r[2]): r[3:] for r in cur.fetchall()}
        assert rows[("shop", "orders")] == (False, True, False, False)  # read-only: SELECT alone
        assert ("report", "sales_by_region") not in rows  # not granted to ana
