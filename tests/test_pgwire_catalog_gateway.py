"""The PostgreSQL catalog (pg_catalog, information_schema) goes through the engine's gateway: a catalog
query is verified (catalog relations, CTEs in scope and allow-listed functions only), runs on a locked-down
scratch database under the same time-out and CancelRequest as data queries, is audited, and its privilege
answers are the governance's decisions. Real server, real psycopg clients."""

from __future__ import annotations

import re
import threading

import pytest
from test_pgwire import assert_cancelled, dsn, platform, server, tokens  # noqa: F401 - the same fixtures

import federation
from federation import errors
from federation.engine.scratch import ScratchDatabase
from federation.result import Result
from federation.server.pgwire import PgServer
from federation.server.pgwire import catalog as catalog_module
from federation.server.pgwire.catalog_verify import prove_with_duckdb, verify
from federation.rewrite.verify import UnverifiedQuery

psycopg = pytest.importorskip("psycopg")

# ~5 namespaces x 1e9 rows of hashing: tens of seconds on one thread, so only a time-out or a cancel ends it
HEAVY = "select sum(hash(r)) from pg_catalog.pg_namespace, generate_series(1, 1000000000) r"


def connect(server, tokens, user="ana"):
    return psycopg.connect(dsn(server, tokens, user), autocommit=True)


def own_log(platform, user="ana"):
    """The principal's own pgwire entries of the audit log, as the principal reads them."""
    conn = federation.Connection(platform, platform.principal(user))
    return conn.sql("select sql, status, rows, error from system.query_log where interface = 'pgwire' "
                    "order by query_id").fetchall()


def run_in_thread(conn, sql):
    errors_seen: list[BaseException] = []

    def run():
        try:
            conn.execute(sql).fetchall()
        except Exception as e:  # noqa: BLE001
            errors_seen.append(e)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    return worker, errors_seen


# -- time-out and cancel ------------------------------------------------------------------------------------


def test_statement_timeout_stops_a_heavy_catalog_query(platform, server, tokens):
    with connect(server, tokens) as conn:
        conn.execute("set statement_timeout = '1s'")
        with pytest.raises(psycopg.errors.QueryCanceled) as info:
            conn.execute(HEAVY).fetchall()
        assert info.value.sqlstate == "57014"
        assert "time-out of 1 s" in str(info.value)
        # the session goes on: data and catalog queries
        assert conn.execute("select 1").fetchone() == (1,)
        assert conn.execute("select nspname from pg_namespace where nspname = 'shop'").fetchall() == [("shop",)]
    assert (HEAVY, "cancelled") in [(sql, status) for sql, status, _, _ in own_log(platform)]


def test_a_client_cannot_raise_the_servers_time_out(platform, tokens):
    srv = PgServer(platform, host="127.0.0.1", port=0, timeout=1).start()
    try:
        with connect(srv, tokens) as conn:
            conn.execute("set statement_timeout = '1h'")
            with pytest.raises(psycopg.errors.QueryCanceled, match="time-out of 1 s"):
                conn.execute(HEAVY).fetchall()
            assert conn.execute("select current_user").fetchone() == ("ana",)
    finally:
        srv.stop()


def test_cancel_request_stops_a_heavy_catalog_query(server, tokens):
    conn = connect(server, tokens)
    pid = conn.info.backend_pid
    worker, seen = run_in_thread(conn, HEAVY)
    for _ in range(600):  # until the engine runs it (no timing assumption)
        running = server._connections.get(pid)
        if running is not None and running.running_cancel is not None:
            break
        worker.join(0.1)
    assert_cancelled(conn, worker, seen)  # QueryCanceled, then `select 1` works


def test_statement_timeout_is_validated(server, tokens):
    with connect(server, tokens) as conn:
        with pytest.raises(psycopg.errors.InvalidParameterValue, match="statement_timeout"):
            conn.execute("set statement_timeout = 'soon'")  # refused when set, or else when it applies
            conn.execute("select nspname from pg_namespace").fetchall()
        conn.execute("set statement_timeout = '2min'")
        assert conn.execute("select count(*) > 0 from pg_namespace").fetchone() == (True,)


# -- what a catalog query may call and read ------------------------------------------------------------------


def test_the_reported_query_is_refused_range_is_not_a_catalog_table_function(server, tokens):
    with connect(server, tokens) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"table function range\(\)"):
            conn.execute("select sum(hash(r)) from pg_catalog.pg_namespace, range(150000000)").fetchall()
        assert conn.execute("select 1").fetchone() == (1,)


@pytest.mark.parametrize("call, name", [
    ("getenv('HOME')", "getenv"),
    ("stats(n.nspname)", "stats"),
    ("getvariable('x')", "getvariable"),
    ("sleep_ms(1)", "sleep_ms"),
    ("pg_sleep(0.001)", "pg_sleep"),
    ("pg_catalog.getenv('HOME')", "getenv"),
])
def test_functions_outside_the_allow_list_are_refused(platform, server, tokens, call, name):
    sql = f"select n.nspname, {call} from pg_catalog.pg_namespace n"
    with connect(server, tokens) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(sql).fetchall()
        assert info.value.sqlstate == "42501"
        assert f"function {name}()" in str(info.value) and "not allowed" in str(info.value)
        assert conn.execute("select 1").fetchone() == (1,)
    [(status, error)] = [(status, error) for s, status, _, error in own_log(platform) if s == sql]
    assert status == "error" and f"function {name}()" in error  # audited as a refused query, like Platform.query


def test_current_setting_answers_the_sessions_settings_never_the_engines(server, tokens):
    with connect(server, tokens) as conn:
        assert conn.execute("select current_setting('TimeZone')").fetchone() == ("UTC",)
        with pytest.raises(psycopg.errors.UndefinedObject, match='unrecognized configuration parameter "threads"'):
            conn.execute("select current_setting('threads') from pg_namespace").fetchall()
        assert conn.execute("select current_setting('memory_limit', true)").fetchone() == (None,)


@pytest.mark.parametrize("source", [
    "read_csv('/etc/passwd')",
    "read_text('/etc/passwd')",
    "'/etc/passwd'",
    '"/etc/passwd"',
    "duckdb_settings()",
    "query_table('pg_class')",
    "read_json_auto('/etc/passwd')",
])
def test_table_functions_and_file_paths_are_refused(server, tokens, source):
    with connect(server, tokens) as conn:
        with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.FeatureNotSupported)) as info:
            conn.execute(f"select * from pg_catalog.pg_namespace n, {source}").fetchall()
        assert "root:" not in str(info.value)
        assert "catalog query" in str(info.value)


def test_a_recursive_cte_cannot_shadow_a_file_path(server, tokens):
    """The issue's scoping trick: a later CTE named like a file does not make the file readable earlier."""
    sql = ('with recursive a as (select * from "/etc/passwd"), "/etc/passwd" as (select 1 as x) '
           "select * from a, pg_catalog.pg_namespace")
    with connect(server, tokens) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege) as info:
            conn.execute(sql).fetchall()
        assert "/etc/passwd" in str(info.value) and "root:" not in str(info.value)
        # CTEs in scope still work, recursive ones too
        assert conn.execute("with s as (select nspname from pg_namespace) select count(*) > 2 from s").fetchone() \
            == (True,)
        assert conn.execute("with recursive t(n) as (select 1 union all select n + 1 from t where n < 3) "
                            "select count(*) from t, pg_namespace where nspname = 'shop'").fetchone() == (3,)


# -- audit and governance -------------------------------------------------------------------------------------


def test_catalog_queries_are_audited_once_with_their_rows(platform, server, tokens):
    sql = "select table_schema, table_name from information_schema.tables where table_type = 'BASE TABLE' order by 1, 2"
    with connect(server, tokens, "pia") as conn:
        assert conn.execute(sql).fetchall() == [("crm", "customers"), ("shop", "orders")]
        prepared = "select relname from pg_class where relname = %s"
        for _ in range(2):  # extended protocol: Parse/Describe do not run it, each Execute is one entry
            assert conn.execute(prepared, ["orders"], prepare=True).fetchall() == [("orders",)]
    log = own_log(platform, "pia")
    assert [(s, status, rows) for s, status, rows, _ in log if s == sql] == [(sql, "ok", 2)]
    assert len([s for s, *_ in log if s.startswith("select relname from pg_class")]) == 2
    assert not any(s == sql for s, *_ in own_log(platform, "ana"))  # pia's entries are hers


def test_privileges_are_the_governance_decisions(server, tokens):
    checks = ("select has_table_privilege('shop.orders', 'SELECT'), "
              "has_table_privilege('report.sales_by_region', 'SELECT'), "
              "has_table_privilege('shop.orders', 'INSERT'), "
              "has_schema_privilege('shop', 'USAGE'), has_schema_privilege('report', 'USAGE'), "
              "has_column_privilege('shop.orders', 'amount', 'SELECT'), "
              "has_column_privilege('shop.orders', 'order_id', 'SELECT'), "
              "has_any_column_privilege('crm.customers', 'SELECT'), "
              "has_table_privilege('pg_catalog.pg_class', 'SELECT')")
    with connect(server, tokens, "ana") as conn:  # analyst: shop and crm.customers, amount denied
        assert conn.execute(checks).fetchone() == (True, False, False, True, False, False, True, True, True)
        assert conn.execute("select count(*) = count(*) filter (where has_table_privilege(c.oid, 'SELECT')) "
                            "from pg_class c where relkind = 'r'").fetchone() == (True,)
    with connect(server, tokens, "pia") as conn:  # finance: amount visible
        assert conn.execute(checks).fetchone() == (True, False, False, True, False, True, True, True, True)
    with connect(server, tokens, "nobody") as conn:  # no grant at all
        assert conn.execute(checks).fetchone() == (False, False, False, False, False, False, False, False, True)
        assert conn.execute("select count(*) from information_schema.tables where table_schema <> 'system'"
                            ).fetchone() == (0,)
        # the open dictionary is listed for everyone (its rows are filtered per principal)
        assert conn.execute("select count(*) > 0 from information_schema.tables where table_schema = 'system'"
                            ).fetchone() == (True,)


def test_the_answers_match_what_queries_may_read(platform, server, tokens):
    """Every table the catalog lists, the principal may query, with exactly the columns it lists."""
    for user in ("ana", "pia", "nobody"):
        with connect(server, tokens, user) as conn:
            listed = conn.execute("select table_schema, table_name, string_agg(column_name, ',' order by "
                                  "ordinal_position) from information_schema.columns group by 1, 2").fetchall()
        py = federation.Connection(platform, platform.principal(user))
        for schema, table, columns in listed:
            quoted = ", ".join(f'"{c}"' for c in columns.split(","))
            assert py.sql(f"select {quoted} from {schema}.{table} limit 1").columns == columns.split(",")
        listed_names = {f"{s}.{t}" for s, t, _ in listed}
        for name in ("shop.orders", "crm.customers", "report.sales_by_region"):
            if name not in listed_names:
                with pytest.raises(errors.AccessDenied):
                    py.sql(f"select * from {name}")


# -- the verifier on its own: SQL a buggy rewrite could produce ---------------------------------------------

RELATIONS = frozenset({("pgc", "pg_class"), ("pgc", "pg_namespace"), ("pgi", "tables"),
                       ("temp", "pg_settings_session")})
MACROS = frozenset({"format_type", "_privilege"})


@pytest.mark.parametrize("sql", [
    "select c.relname, pgc.format_type(1, 2) from pgc.pg_class c join pgc.pg_namespace n on n.oid = c.relnamespace",
    "select * from pgi.tables t where t.table_schema in (select nspname from pgc.pg_namespace)",
    "with a as (select 1 as x), b as (select * from a) select * from b, pgc.pg_class",
    "with recursive t(n) as (select 1 union all select n + 1 from t where n < 3) select * from t",
    "with a as (select 1 as x) select (select count(*) from a) from pgc.pg_class",
    "with a as (select 1 as x) select * from a union all select * from a",
    "select x from pgc.pg_class, unnest([1, 2]) as u(x)",
    "select s from generate_series(1, 3) as g(s)",
    "select setting from temp.pg_settings_session",
    "select upper(relname), regexp_matches(relname, '^a') from pgc.pg_class",
])
def test_verifier_lets_catalog_queries_through(sql):
    verify(sql, RELATIONS, MACROS)
    prove_with_duckdb(sql, RELATIONS, MACROS)


@pytest.mark.parametrize("sql, reason", [
    ("select * from pgc.pg_attribute", 'relation "pgc.pg_attribute"'),
    ("select * from main.pg_class", 'relation "main.pg_class"'),
    ("select * from memory.pgc.pg_class", 'relation "memory.pgc.pg_class"'),
    ("select * from pg_class", 'relation "pg_class"'),
    ("select * from '/etc/passwd'", 'relation "/etc/passwd"'),
    ('with recursive a as (select * from "/etc/passwd"), "/etc/passwd" as (select 1) select * from a',
     'relation "/etc/passwd"'),
    ("with a as (select * from a) select * from a", 'relation "a"'),
    ("with a as (select * from b), b as (select 1 as x) select * from a", 'relation "b"'),
    ("select (with a as (select 1) select 1), * from a", 'relation "a"'),
    ("select * from range(3)", "table function range()"),
    ("select * from read_parquet('/x.parquet')", "table function read_parquet()"),
    ("select * from query_table('pgc.pg_class')", "table function query_table()"),
    ("select * from pgc.pg_class, duckdb_settings()", "table function duckdb_settings()"),
    ("select getenv('HOME') from pgc.pg_class", "function getenv()"),
    ("select main.getenv('HOME') from pgc.pg_class", "function getenv()"),
    ("select relname.getenv() from pgc.pg_class", "function getenv()"),
    ("select pg_catalog.format_type(1, 2)", "function format_type()"),
    ("select format_type(1, 2)", "function format_type()"),
    ("select pgc.lower('x')", "function pgc.lower() is not a catalog function"),
    ("select current_setting('threads')", "function current_setting()"),
    ("select 1 /* a comment */ from pgc.pg_class", "cannot be verified"),
    ("select * from (describe pgc.pg_class)", "DESCRIBE"),
    ("select * into t from pgc.pg_class", "INTO"),
    ("insert into pgc.pg_class select * from pgc.pg_class", "one SELECT"),
    ("select 1; select 2", "one SELECT"),
])
def test_verifier_refuses_anything_else(sql, reason):
    with pytest.raises(errors.StatementRefused, match=re.escape(reason)):
        verify(sql, RELATIONS, MACROS)
    if "comment" not in sql:  # DuckDB's reading alone refuses it too (its parser drops comments)
        with pytest.raises(UnverifiedQuery):
            prove_with_duckdb(sql, RELATIONS, MACROS)


# -- the scratch database itself ------------------------------------------------------------------------------


def test_the_catalog_holds_no_duckdb_connection_of_its_own():
    assert not hasattr(catalog_module, "duckdb")


def test_scratch_database_is_locked_down():
    """The wall behind the verifier: even SQL that got past it cannot read files, change the database or its
    settings, use more memory than its limit or run past its time-out."""
    import pyarrow as pa

    db = ScratchDatabase(memory_limit="32MB")
    db.create_schema("s")
    db.create_table("s", "t", "a BIGINT", pa.table({"a": [1, 2, 3]}))
    db.lock()

    def rows(sql, **kw):
        return Result(db.execute(sql, **kw), None).fetchall()

    assert rows("select sum(a) from s.t") == [(6,)]
    with pytest.raises(errors.InternalError, match="locked"):
        db.create_table("s", "u", "a INT")
    for statement in ("set threads = 8", "attach ':memory:' as x", "copy s.t to '/tmp/x.csv'",
                      "create table s.u (a int)", "select 1; select 2", "explain select 1"):
        with pytest.raises(errors.StatementRefused, match="only one SELECT"):
            db.execute(statement)
    for sql in ("select * from read_text('/etc/passwd')", "select * from '/etc/passwd'",
                "select getenv('HOME')"):
        with pytest.raises(errors.Error) as info:
            rows(sql)
        assert "root:" not in str(info.value) and "/root" not in str(info.value)
    with pytest.raises(errors.OperationalError, match="ran out of memory"):
        rows("select list(r) from generate_series(1, 100000000) t(r)")
    with pytest.raises(errors.QueryTimeout):
        rows("select sum(hash(r)) from generate_series(1, 10000000000) t(r)", timeout=0.5)
    assert rows("select count(*) from s.t") == [(3,)]  # still usable
    assert rows("select current_setting('threads'), current_setting('enable_external_access')") == [(1, False)]
