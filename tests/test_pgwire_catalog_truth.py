"""The PostgreSQL catalog tells the truth (issue 13, items 4 and 5), with real clients against a real server:
``has_*_privilege`` answers what a query would get (grants, the contract's purposes, read only, 42P01 for a
name that names nothing), the ``system`` schema is listed, the database must be the mesh's or an alias,
``search_path`` resolves unqualified names, ``pg_type`` has real I/O functions (pgjdbc), pgjdbc's and
SQLAlchemy's metadata calls work (primary keys from the contracts), pgcli/pgspecial's array parameters work,
a purpose is declared by ``SET quanta.purpose`` or the connection's options, and ``application_name`` is in
the audit log."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess

import pgkit
import pytest
from meshkit import (
    contract,
    local_server,
    mesh_yaml,
    product,
    prop,
    shop_mesh,
    sql_to_file,
    write_yaml,
)

import federation
from federation.platform import Platform

psycopg = pytest.importorskip("psycopg")

GOVERNANCE = {
    "roles": [{"name": "analyst"}, {"name": "marketer"}],
    "principals": [
        {"name": "ana", "roles": ["analyst"]},
        {"name": "mia", "roles": ["analyst", "marketer"], "attributes": {"purposes": ["marketing"]}},
    ],
    "grants": [
        {"to": {"role": "analyst"}, "on": "shop"},
        {"to": {"role": "analyst"}, "on": "sales"},
        {"to": {"role": "analyst"}, "on": "crm.customers"},
    ],
}
JDBC_JAR = "/usr/share/java/postgresql.jar"


def truth_mesh(root):
    """shop_mesh plus a quantum ``sales``: visits (composite primary key, an interval column, comments) and
    campaigns (its contract limits reading to the purpose marketing); two database aliases."""
    shop_mesh(root, governance=GOVERNANCE)
    mesh_yaml(root, domains=("shop", "crm", "sales"), settings={"pg_database_aliases": "warehouse, analytics"})
    sql_to_file(root / "data" / "sales" / "visits.parquet",
                "select i as region_id, i % 3 as day, interval (i) hour as duration, 'r' || i as note "
                "from range(1, 6) t(i)")
    sql_to_file(root / "data" / "sales" / "campaigns.parquet",
                "select i as campaign_id, 'c' || i as name from range(1, 4) t(i)")
    write_yaml(root / "products" / "sales.odps.yaml",
               product("sales", domain="sales", outputs=["sales-contract", "campaigns-contract"]))
    write_yaml(root / "contracts" / "sales.odcs.yaml", contract("sales-contract", [
        {"name": "visits", "description": "Store visits",
         "properties": [prop("day", "integer", "bigint", primaryKey=True, primaryKeyPosition=2),
                        prop("region_id", "integer", "bigint", primaryKey=True, primaryKeyPosition=1),
                        prop("duration", "string", "interval", description="How long"),
                        prop("note", description="A note")]},
    ], servers=[local_server("sales/{model}.parquet")]))
    write_yaml(root / "contracts" / "campaigns.odcs.yaml", contract("campaigns-contract", [
        {"name": "campaigns", "description": "Campaigns",
         "properties": [prop("campaign_id", "integer", "bigint", primaryKey=True), prop("name")]},
    ], servers=[local_server("sales/{model}.parquet")],
        customProperties=[{"property": "purposes", "value": ["marketing"]}]))
    return root


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return Platform(truth_mesh(tmp_path_factory.mktemp("truth")))


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "mia"))


@pytest.fixture(scope="module")
def server(platform, tokens):
    with pgkit.running_server(platform) as srv:
        yield srv


def connect(server, tokens, user="ana", dbname="testmesh", **extra):
    return psycopg.connect(host="127.0.0.1", port=server.port, user=user, password=tokens[user], dbname=dbname,
                           autocommit=True, **extra)


def one(conn, sql, params=None):
    return conn.execute(sql, params).fetchone()


# -- privileges: the decision a query gets -----------------------------------------------------------------


def test_privileges_are_the_decisions_of_queries(server, tokens):
    with connect(server, tokens) as conn:
        assert one(conn, "select has_table_privilege('sales.visits', 'SELECT'), "
                         "has_table_privilege('report.sales_by_region', 'SELECT'), "  # exists, no grant
                         "has_table_privilege('sales.campaigns', 'SELECT'), "  # granted, but no purpose declared
                         "has_table_privilege('system.datasets', 'SELECT'), "  # the open dictionary
                         "has_table_privilege('pg_catalog.pg_class', 'SELECT')") == (True, False, False, True, True)
        for privilege in ("INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER", "INSERT, UPDATE"):
            assert one(conn, f"select has_table_privilege('sales.visits', '{privilege}')") == (False,), privilege
        assert one(conn, "select has_table_privilege('sales.visits', 'INSERT, SELECT')") == (True,)  # any of them
        assert one(conn, "select has_table_privilege('ana', 'sales.visits', 'select'), "
                         "has_column_privilege('sales.visits', 'note', 'SELECT'), "
                         "has_any_column_privilege('sales.visits', 'UPDATE'), "
                         "has_schema_privilege('sales', 'USAGE'), has_schema_privilege('sales', 'CREATE'), "
                         "has_schema_privilege('system', 'USAGE')") == (True, True, False, True, False, True)
        with pytest.raises(psycopg.errors.UndefinedTable, match='relation "sales.nothere" does not exist'):
            conn.execute("select has_table_privilege('sales.nothere', 'SELECT')")
        with pytest.raises(psycopg.errors.UndefinedTable, match='relation "visits" does not exist'):
            conn.execute("select has_table_privilege('visits', 'SELECT')")  # not on the search_path
        with pytest.raises(psycopg.errors.InvalidSchemaName):
            conn.execute("select has_schema_privilege('nowhere', 'USAGE')")
        # an oid that names nothing: NULL, like PostgreSQL; every listed table is readable
        assert one(conn, "select has_table_privilege(123456789, 'SELECT')") == (None,)
        assert one(conn, "select bool_and(has_table_privilege(c.oid, 'SELECT')) from pg_class c "
                         "where relkind in ('r', 'v')") == (True,)
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from report.sales_by_region")  # what has_table_privilege said


# -- listings --------------------------------------------------------------------------------------------------


def test_system_and_information_schema_are_listed(server, tokens):
    with connect(server, tokens) as conn:
        schemas = [r[0] for r in conn.execute("select nspname from pg_namespace order by 1")]
        assert {"system", "information_schema", "pg_catalog", "sales", "shop", "crm"} <= set(schemas)
        assert "report" not in schemas  # nothing readable there
        schemata = [r[0] for r in conn.execute("select schema_name from information_schema.schemata")]
        assert "system" in schemata and "information_schema" in schemata
        system = [r[0] for r in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = 'system' and c.relkind = 'v' order by 1")]
        assert {"datasets", "columns", "query_log", "grants"} <= set(system)
        columns = [r[0] for r in conn.execute(
            "select a.attname from pg_attribute a join pg_class c on c.oid = a.attrelid "
            "join pg_namespace n on n.oid = c.relnamespace where n.nspname = 'system' and c.relname = 'query_log' "
            "order by a.attnum")]
        assert {"principal", "sql", "application"} <= set(columns)
        # what is listed can be read
        assert conn.execute("select count(*) from system.datasets").fetchone()[0] > 0


# -- the database --------------------------------------------------------------------------------------------


def test_only_the_mesh_and_its_aliases_are_databases(server, tokens):
    with pytest.raises(psycopg.OperationalError, match='database "nowhere" does not exist'):
        connect(server, tokens, dbname="nowhere")
    asyncpg = pytest.importorskip("asyncpg")

    async def refused():
        with pytest.raises(asyncpg.InvalidCatalogNameError):  # SQLSTATE 3D000
            await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                  database="nowhere")

    asyncio.run(refused())
    for name in ("testmesh", "warehouse", "analytics"):
        with connect(server, tokens, dbname=name) as conn:
            assert one(conn, "select current_database()") == ("testmesh",)
            assert conn.execute("select datname from pg_database").fetchall() == [("testmesh",)]  # \l: one


def test_names_qualified_by_the_mesh_or_an_alias_are_read_governed(server, tokens):
    """select * from <database>.crm.customers, as PostgreSQL accepts the current database's name: the mesh's name
    and its aliases name the same relation, governed alike; any other database is refused (0A000)."""
    with connect(server, tokens) as conn:
        cur = conn.execute("select * from crm.customers order by 1")
        plain, first = cur.fetchall(), cur.description[0].name
        assert plain
        for name in ("testmesh", "warehouse", '"analytics"'):
            assert conn.execute(f"select * from {name}.crm.customers order by 1").fetchall() == plain
        assert conn.execute(f"select testmesh.crm.customers.{first} from testmesh.crm.customers order by 1"
                            ).fetchall() == [(r[0],) for r in plain]  # a column qualified by all three
        with pytest.raises(psycopg.errors.InsufficientPrivilege):  # no grant: refused whatever names it
            conn.execute("select * from warehouse.report.sales_by_region")
        for sql in ("select * from nowhere.crm.customers", "select count(*) from other.pg_catalog.pg_class c"):
            with pytest.raises(psycopg.errors.FeatureNotSupported, match="cross-database references are not "
                                                                         "implemented: (nowhere|other)[.]"):
                conn.execute(sql)
        assert one(conn, "select count(*) > 0 from testmesh.pg_catalog.pg_class") == (True,)


def test_postgres_forms_answer_or_refuse_with_a_sqlstate(server, tokens):
    """What used to reach the client as a raw engine error, or to be accepted and ignored."""
    with connect(server, tokens) as conn:
        cur = conn.execute("select quote_literal(current_setting('search_path'))")
        assert cur.fetchone() == ("'\"$user\", public'",) and cur.description[0].name == "quote_literal"
        assert one(conn, "select quote_nullable(current_setting('application_name', true))") == ("''",)
        assert one(conn, "select '1 2'::int2vector from pg_catalog.pg_class limit 1") == ([1, 2],)
        with pytest.raises(psycopg.errors.FeatureNotSupported, match="type int2vector is not supported"):
            conn.execute("select '1 2'::int2vector, order_id from shop.orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match=r"call foo\(\) unqualified"):
            conn.execute("select myschema.foo(order_id) from shop.orders")
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match='permission denied to set role "mia"'):
            conn.execute("set role mia")  # no role of another principal, ever
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match='set role "mia"'):
            conn.execute("set role to 'mia'")
        assert one(conn, "show role") == ("none",)
        conn.execute("set role ana")  # the session's own
        assert one(conn, "show role") == ("ana",)
        conn.execute("set role none")
        assert one(conn, "select current_user") == ("ana",)


# -- search_path ---------------------------------------------------------------------------------------------


def test_search_path_resolves_unqualified_names(platform, server, tokens):
    with connect(server, tokens) as conn:
        conn.execute("SET search_path TO sales, public")
        assert one(conn, "show search_path") == ("sales, public",)
        assert one(conn, "select current_schema(), current_schemas(false)") == ("sales", ["sales", "public"])
        assert conn.execute("select region_id, note from visits order by region_id limit 2").fetchall() == \
            [(1, "r1"), (2, "r2")]
        assert conn.execute("select count(*) from visits v join shop.orders o on o.order_id = v.region_id"
                            ).fetchone() == (5,)
        # a CTE named like a dataset is the CTE
        assert conn.execute("with visits as (select 42 as x) select x from visits").fetchall() == [(42,)]
        # extended protocol: Parse, Describe, Execute of the same unqualified query
        assert conn.execute("select note from visits where region_id = %s", [3], prepare=True).fetchall() == \
            [("r3",)]
        assert one(conn, "select has_table_privilege('visits', 'SELECT')") == (True,)
        # \dt: the tables visible on the search_path
        visible = conn.execute("select c.relname from pg_class c where c.relkind = 'r' and "
                               "pg_table_is_visible(c.oid) order by 1").fetchall()
        assert visible == [("visits",)]
        with pytest.raises(psycopg.errors.UndefinedTable):
            conn.execute("select * from orders")  # not on the path
        conn.execute("set search_path = shop")
        assert one(conn, "select count(*) from orders") == (100,)
    with connect(server, tokens, options="-c search_path=sales") as conn:
        assert one(conn, "select count(*) from visits") == (5,)
        assert one(conn, "select current_schema") == ("sales",)
    # the audit log holds the query as it was resolved on the search_path
    logged = federation.Connection(platform, platform.principal("ana")).sql(
        "select sql from system.query_log where sql like '%FROM sales.visits' order by query_id").fetchall()
    assert ("SELECT COUNT(*) FROM sales.visits",) in logged


# -- purpose and application_name ------------------------------------------------------------------------------


def test_purpose_by_set_and_by_options(platform, server, tokens):
    with connect(server, tokens, "mia") as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="purposes marketing"):
            conn.execute("select * from sales.campaigns")
        assert one(conn, "select has_table_privilege('sales.campaigns', 'SELECT')") == (False,)
        conn.execute("SET quanta.purpose = 'marketing'")
        assert one(conn, "show quanta.purpose") == ("marketing",)
        assert one(conn, "select count(*) from sales.campaigns") == (3,)
        assert one(conn, "select name from sales.campaigns where campaign_id = %s", [2]) == ("c2",)  # prepared
        assert one(conn, "select has_table_privilege('sales.campaigns', 'SELECT')") == (True,)
        assert one(conn, "select current_setting('quanta.purpose')") == ("marketing",)
        conn.execute("RESET quanta.purpose")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from sales.campaigns")
    with connect(server, tokens, "ana") as conn:  # ana does not hold the purpose
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="may not declare the purpose 'marketing'"):
            conn.execute("set quanta.purpose = 'marketing'")
        assert one(conn, "show quanta.purpose") == ("",)
    with connect(server, tokens, "mia", options="-c quanta.purpose=marketing") as conn:
        assert one(conn, "select count(*) from sales.campaigns") == (3,)
        assert one(conn, "show quanta.purpose") == ("marketing",)
    with pytest.raises(psycopg.OperationalError, match="may not declare the purpose 'marketing'"):
        connect(server, tokens, "ana", options="-c quanta.purpose=marketing")
    entries = federation.Connection(platform, platform.principal("mia")).sql(
        "select purpose, status from system.query_log where sql = 'select count(*) from sales.campaigns'"
    ).fetchall()
    assert ("marketing", "ok") in entries


def test_application_name_is_in_the_audit_log(platform, server, tokens):
    with connect(server, tokens, application_name="truth-dashboard") as conn:
        conn.execute("select count(*) from shop.orders /* app 1 */").fetchall()
        conn.execute("set application_name = 'truth-notebook'")
        conn.execute("select count(*) from shop.orders /* app 2 */").fetchall()
        conn.execute("select count(*) from pg_class /* app 3 */").fetchall()  # catalog queries too
        rows = dict(conn.execute("select sql, application from system.query_log where sql like '%/* app _ */' "
                                 "order by query_id").fetchall())
    assert rows == {"select count(*) from shop.orders /* app 1 */": "truth-dashboard",
                    "select count(*) from shop.orders /* app 2 */": "truth-notebook",
                    "select count(*) from pg_class /* app 3 */": "truth-notebook"}
    with connect(server, tokens) as conn:  # a new connection without a name: none
        conn.execute("select 1 /* app 4 */").fetchall()
    python = federation.Connection(platform, platform.principal("ana"))
    assert python.sql("select application from system.query_log where sql = 'select 1 /* app 4 */'"
                      ).fetchall() == [(None,)]


# -- pg_type, pgjdbc, SQLAlchemy, pgcli ------------------------------------------------------------------------


def test_pg_type_has_real_io_functions(server, tokens):
    with connect(server, tokens) as conn:
        rows = {r[0]: r[1:] for r in conn.execute(
            "select typname, typinput::regproc::text, typoutput::regproc::text, typinput = 'array_in'::regproc "
            "from pg_type where typname in ('int4', 'interval', 'date', '_int4', 'int2vector', 'visits')")}
    assert rows == {"int4": ("int4in", "int4out", False), "interval": ("interval_in", "interval_out", False),
                    "date": ("date_in", "date_out", False), "_int4": ("array_in", "array_out", True),
                    "int2vector": ("int2vectorin", "int2vectorout", False),
                    "visits": ("record_in", "record_out", False)}


def test_primary_keys_from_the_contracts_in_pg_catalog_and_information_schema(server, tokens):
    with connect(server, tokens) as conn:
        assert conn.execute(
            "select con.conname, con.contype, con.conkey, i.indisprimary, i.indkey from pg_constraint con "
            "join pg_class c on c.oid = con.conrelid join pg_index i on i.indexrelid = con.conindid "
            "where c.relname = 'visits'").fetchall() == [("visits_pkey", "p", [2, 1], True, "2 1")]
        assert conn.execute(
            "select k.column_name, k.ordinal_position from information_schema.table_constraints t "
            "join information_schema.key_column_usage k on k.constraint_name = t.constraint_name "
            "and k.table_schema = t.table_schema where t.constraint_type = 'PRIMARY KEY' and t.table_name = 'visits' "
            "order by k.ordinal_position").fetchall() == [("region_id", 1), ("day", 2)]
        assert conn.execute("select obj_description('sales.visits'::regclass, 'pg_class'), "
                            "col_description('sales.visits'::regclass, 3)").fetchone() == ("Store visits", "How long")


def test_index_and_function_vectors_are_int2vector_and_oidvector(server, tokens):
    """pg_index.indkey/indoption/indclass/indcollation and pg_proc.proargtypes go out as PostgreSQL's int2vector
    (22) and oidvector (30): '2 1' in text, array_send with lower bound 0 in binary (psqlODBC reads them so),
    while indexing them in a query still counts from 0."""
    import struct

    sql = ("select i.indkey, i.indoption, i.indclass, i.indcollation, i.indkey[0] as first, i.indkey::int2[] as arr "
           "from pg_index i join pg_class c on c.oid = i.indrelid where c.relname = 'visits'")
    with connect(server, tokens) as conn:
        cur = conn.execute(sql)
        types = [d.type_code for d in cur.description]
        assert types[:5] == [22, 22, 30, 30, 21] and types[5] in (1005, 1028)  # a cast: an array again
        assert cur.fetchone() == ("2 1", "0 0", "0 0", "0 0", 2, [2, 1])
        cur = conn.cursor(binary=True)
        raw = cur.execute("select i.indkey, i.indclass from pg_index i join pg_class c on c.oid = i.indrelid "
                          "where c.relname = 'visits'").fetchone()
        assert bytes(raw[0]) == struct.pack("!iiiii", 1, 0, 21, 2, 0) + struct.pack("!ihih", 2, 2, 2, 1)
        assert bytes(raw[1]) == struct.pack("!iiiii", 1, 0, 26, 2, 0) + struct.pack("!iIiI", 4, 0, 4, 0)
        proc = conn.execute("select proargtypes from pg_proc where pronargs = 1 limit 1")
        assert proc.description[0].type_code == 30 and proc.fetchone()[0].strip().isdigit()


def test_catalog_result_columns_have_postgresql_names(server, tokens):
    """A catalog query's columns are named as PostgreSQL names them (FigureColname), not as DuckDB does
    (count_star(), CAST(...)), in the simple and the extended protocol (Describe) alike; a star's columns
    keep theirs, and an aliased vector is still an int2vector."""
    sql = ("select count(*), relname, c.relkind::text, coalesce(relname, 'x'), 1 + 1, lower(relname) as low, "
           "upper(relname), pg_catalog.format_type(23, null) from pg_class c where relname = 'visits' "
           "group by relname, relkind")
    expected = ["count", "relname", "relkind", "coalesce", "?column?", "low", "upper", "format_type"]
    with connect(server, tokens) as conn:
        assert [d.name for d in conn.execute(sql).description] == expected
        assert [d.name for d in conn.execute(sql, prepare=True).description] == expected  # Parse/Describe
        cur = conn.execute("select i.*, 1 from pg_index i join pg_class c on c.oid = i.indrelid "
                           "where c.relname = 'visits' union all select i.*, 2 from pg_index i where false")
        names = [d.name for d in cur.description]
        assert names[0] == "indexrelid" and "indkey" in names and names[-1] == "?column?"
        assert cur.description[names.index("indkey")].type_code == 22
        cur = conn.execute("select i.indkey as k, max(c.relname) from pg_index i join pg_class c "
                           "on c.oid = i.indrelid where c.relname = %s group by i.indkey", ["visits"])
        assert [(d.name, d.type_code) for d in cur.description] == [("k", 22), ("max", 25)]
        assert cur.fetchall() == [("2 1", "visits")]


def test_pgjdbc_primary_keys_index_info_and_interval(server, tokens, tmp_path):
    if shutil.which("javac") is None or not os.path.exists(JDBC_JAR):
        pytest.skip("javac or pgjdbc is not installed")
    source = os.path.join(os.path.dirname(__file__), "pgjdbc", "CatalogTruth.java")
    subprocess.run(["javac", "-d", str(tmp_path), source], check=True, capture_output=True, timeout=120)
    out = subprocess.run(["java", "-cp", f"{JDBC_JAR}:{tmp_path}", "CatalogTruth",
                          f"jdbc:postgresql://127.0.0.1:{server.port}/testmesh", "ana", tokens["ana"], "sales",
                          "visits"], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert [line for line in lines if line.startswith("pk ")] == ["pk region_id 1 visits_pkey",
                                                                 "pk day 2 visits_pkey"]
    assert [line for line in lines if line.startswith("index ")] == ["index visits_pkey region_id 1 unique=true",
                                                                    "index visits_pkey day 2 unique=true"]
    assert "column duration interval 1111 remarks=How long" in lines  # Types.OTHER, not Types.ARRAY (2003)
    assert "result duration interval 1111" in lines
    assert "value 03:00:00" in lines
    assert "types true" in lines
    assert "schema system" in lines and "schema sales" in lines


def test_sqlalchemy_inspector_reflection_and_stream_results(platform, server, tokens):
    sa = pytest.importorskip("sqlalchemy")
    pd = pytest.importorskip("pandas")
    from sqlalchemy.dialects.postgresql import INTERVAL

    engine = sa.create_engine(f"postgresql+psycopg://ana:{tokens['ana']}@127.0.0.1:{server.port}/testmesh")
    try:
        insp = sa.inspect(engine)
        assert {"sales", "system"} <= set(insp.get_schema_names())
        assert insp.get_pk_constraint("visits", schema="sales") == {
            "constrained_columns": ["region_id", "day"], "name": "visits_pkey", "comment": None,
            "dialect_options": {"postgresql_include": []}}
        assert insp.get_indexes("visits", schema="sales") == []  # the primary key's index is not listed
        columns = {c["name"]: c for c in insp.get_columns("visits", schema="sales")}
        assert isinstance(columns["duration"]["type"], INTERVAL) and columns["duration"]["comment"] == "How long"
        assert "datasets" in insp.get_view_names(schema="system")
        table = sa.Table("visits", sa.MetaData(), schema="sales", autoload_with=engine)
        assert [c.name for c in table.primary_key] == ["region_id", "day"]
        with engine.connect() as conn:
            assert conn.execute(sa.select(table.c.note).where(table.c.region_id == 2)).fetchall() == [("r2",)]
            streamed = conn.execution_options(stream_results=True, max_row_buffer=2)
            assert streamed.execute(sa.text("select relname from pg_class where relkind = 'r' order by 1")
                                    ).fetchall() == [("customers",), ("orders",), ("visits",)]
            assert len(streamed.execute(sa.select(table)).fetchall()) == 5
        assert pd.read_sql_table("visits", engine, schema="sales").shape == (5, 4)
    finally:
        engine.dispose()


PGSPECIAL_DT = """SELECT n.nspname as schema, c.relname as name,
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'p' THEN 'partitioned table'
    WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 's' THEN 'special'
    WHEN 'f' THEN 'foreign table' END as type,
  pg_catalog.pg_get_userbyid(c.relowner) as owner
FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind = ANY(%s) AND n.nspname <> 'pg_catalog' AND n.nspname <> 'information_schema'
  AND n.nspname !~ '^pg_toast' AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2"""
PGCLI_COLUMNS = """SELECT nsp.nspname schema_name, cls.relname table_name, att.attname column_name,
  att.atttypid::regtype::text type_name, att.atthasdef AS has_default,
  pg_catalog.pg_get_expr(def.adbin, def.adrelid, true) as default
FROM pg_catalog.pg_attribute att
  INNER JOIN pg_catalog.pg_class cls ON att.attrelid = cls.oid
  INNER JOIN pg_catalog.pg_namespace nsp ON cls.relnamespace = nsp.oid
  LEFT OUTER JOIN pg_attrdef def ON def.adrelid = att.attrelid AND def.adnum = att.attnum
WHERE cls.relkind = ANY(%s) AND NOT att.attisdropped AND att.attnum > 0
ORDER BY 1, 2, att.attnum"""


def test_pgcli_and_pgspecial_array_parameters(server, tokens):
    """pgcli's start-up refresh and pgspecial's \\dt, as they send them (a list parameter for = ANY)."""
    with connect(server, tokens, options="-c search_path=sales") as conn:
        assert conn.execute(PGSPECIAL_DT, [["r", "p", ""]]).fetchall() == [("sales", "visits", "table", "ana")]
        columns = conn.execute(PGCLI_COLUMNS, [["r", "p", "f", "v", "m"]]).fetchall()
        assert ("sales", "visits", "duration", "interval", False, None) in columns
        assert conn.execute("select relname from pg_class where relkind = ANY('{r,p}') order by 1").fetchall() == \
            [("customers",), ("orders",), ("visits",)]
        assert conn.execute("SELECT * FROM unnest(current_schemas(true))").fetchall() == [("pg_catalog",),
                                                                                           ("sales",)]
    asyncpg = pytest.importorskip("asyncpg")

    async def untyped():  # the parameter's type is the server's to infer (postgres.js, asyncpg): text[]
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh")
        try:
            kinds = await conn.fetch("select relname from pg_class where relkind = any($1) order by 1", ["r"])
            orders = await conn.fetch("select order_id from shop.orders where order_id = any($1) order by 1", [3, 4])
            return [r[0] for r in kinds], [r[0] for r in orders]
        finally:
            await conn.close()

    assert asyncio.run(untyped()) == (["customers", "orders", "visits"], [3, 4])
