"""Queries through the one pipeline: results, views' typing, derived datasets, refusals, DB-API, threads."""

from __future__ import annotations

import datetime
import threading
from decimal import Decimal

import pyarrow as pa
import pytest

import federation
from federation import errors


# -- results and typing ------------------------------------------------------------------------------


def test_views_have_contract_names_order_and_types(shop):
    r = shop.sql("select * from shop.orders limit 1")
    assert r.columns == ["order_id", "customer_id", "amount", "order_date"]
    assert r.types == ["BIGINT", "BIGINT", "DECIMAL(10,2)", "DATE"]
    row = r.fetchone()
    assert isinstance(row[2], Decimal) and isinstance(row[3], datetime.date)


def test_physical_name_is_mapped(shop):
    # the Parquet column is cust_id; the contract exposes it as customer_id
    assert shop.sql("select count(distinct customer_id) from shop.orders").fetchone() == (30,)
    with pytest.raises(federation.ProgrammingError, match="cust_id"):
        shop.sql("select cust_id from shop.orders").fetchall()


def test_csv_and_parquet_glob_sources(shop):
    assert shop.sql("select count(*) from crm.customers").fetchone() == (30,)
    assert shop.sql("select count(*) from shop.orders").fetchone() == (100,)  # two Parquet files


def test_arrow_polars_and_batches(shop):
    sql = "select region, count(*) as n from crm.customers group by region order by region"
    table = shop.sql(sql).arrow()
    assert isinstance(table, pa.Table) and table.column("n").to_pylist() == [10, 10, 10]
    df = shop.sql(sql).pl()
    assert df["region"].to_list() == ["CA", "EU", "US"]
    reader = shop.sql("select * from shop.orders").record_batches()
    assert isinstance(reader, pa.RecordBatchReader)
    assert sum(b.num_rows for b in reader) == 100


def test_pandas_df(shop):
    pytest.importorskip("pandas")
    df = shop.sql("select order_id from shop.orders order by order_id limit 3").df()
    assert list(df["order_id"]) == [0, 1, 2]


def test_result_is_consumed_once_but_arrow_is_kept(shop):
    r = shop.sql("select 1 as x")
    assert r.arrow().num_rows == 1
    assert r.arrow().num_rows == 1  # kept
    r2 = shop.sql("select 1 as x")
    list(r2.record_batches())
    with pytest.raises(federation.InterfaceError, match="consumed"):
        r2.record_batches()


def test_derived_dataset(shop):
    rows = shop.sql("select region, orders, revenue from report.sales_by_region order by region").fetchall()
    raw = shop.sql("select c.region, count(*), sum(o.amount) from shop.orders o join crm.customers c "
                   "on o.customer_id = c.id group by 1 order by 1").fetchall()
    assert rows == raw
    assert shop.sql("describe report.sales_by_region").fetchall()[2][:2] == ("revenue", "DECIMAL(38,2)")


def test_derived_dataset_in_joins_and_ctes(shop):
    rows = shop.sql("""
        with r as (select * from report.sales_by_region)
        select r.region, r.orders, c.n from r join (select region, count(*) n from crm.customers group by 1) c
        using (region) order by 1""").fetchall()
    assert [r[0] for r in rows] == ["CA", "EU", "US"] and all(r[2] == 10 for r in rows)


def test_parameters(shop):
    assert shop.sql("select count(*) from crm.customers where region = ?", ["EU"]).fetchone() == (10,)
    assert shop.sql("select count(*) from crm.customers where region = $1", ("US",)).fetchone() == (10,)
    assert shop.sql("select count(*) from crm.customers where region = $r", {"r": "CA"}).fetchone() == (10,)
    # a parameter is a value, never SQL
    assert shop.sql("select count(*) from crm.customers where region = ?", ["EU' or '1'='1"]).fetchone() == (0,)


def test_set_operations_values_and_ctes(shop):
    assert shop.sql("select 1 union all select 2 order by 1").fetchall() == [(1,), (2,)]
    assert shop.sql("values (1, 'a'), (2, 'b')").fetchall() == [(1, "a"), (2, "b")]
    assert shop.sql("select id from crm.customers where id < 3 intersect select customer_id from shop.orders "
                    "order by 1").fetchall() == [(1,), (2,)]
    assert shop.sql("with recursive t(n) as (select 1 union all select n + 1 from t where n < 5) "
                    "select sum(n) from t").fetchone() == (15,)


def test_cte_named_like_a_dataset_or_engine_table(shop):
    # a CTE is visible only in its scope: an outer reference to the same name must not reach the engine
    assert shop.sql("with orders as (select 42 as x) select x from orders").fetchone() == (42,)
    assert shop.sql("with pg_tables as (select 1 as a) select * from (select * from pg_tables)").fetchone() == (1,)
    with pytest.raises(federation.ProgrammingError, match="pg_tables does not exist"):
        shop.sql("select * from (with pg_tables as (select 1 a) select * from pg_tables) t, pg_tables")
    with pytest.raises(federation.ProgrammingError, match="does not exist"):
        shop.sql("with a as (select * from b), b as (select 1) select * from a")


def test_identifiers_are_case_insensitive_and_quotable(shop):
    assert shop.sql('select count(*) from "SHOP"."Orders"').fetchone() == (100,)
    assert shop.sql("SELECT COUNT(*) FROM Shop.ORDERS").fetchone() == (100,)


# -- refusals ----------------------------------------------------------------------------------------

REFUSED = [
    ("select * from read_csv('/etc/passwd')", errors.StatementRefused, "not allowed"),
    ("select * from read_parquet('data/*.parquet')", errors.StatementRefused, "not allowed"),
    ("select * from '/etc/passwd'", errors.StatementRefused, "reading files is not allowed"),
    ("select * from 'data.csv'", errors.StatementRefused, "reading files is not allowed"),
    ("select getenv('HOME')", errors.StatementRefused, "getenv"),
    ("select current_setting('threads')", errors.StatementRefused, "current_setting"),
    ("select * from duckdb_settings()", errors.StatementRefused, "not allowed"),
    ("select * from duckdb_tables()", errors.StatementRefused, "not allowed"),
    ("select * from glob('/*')", errors.StatementRefused, "not allowed"),
    ("select * from generate_series(1, 3)", errors.StatementRefused, "table functions are not allowed"),
    ("select version()", errors.StatementRefused, "version"),
    ("select user", errors.StatementRefused, "not a column"),
    ("select current_schema", errors.StatementRefused, "not a column"),
    ("select read_text('/etc/passwd')", errors.StatementRefused, "read_text"),
    ("copy shop.orders to '/tmp/out.csv'", errors.StatementRefused, "COPY is not"),
    ("attach '/tmp/x.duckdb'", errors.StatementRefused, "is not"),
    ("install httpfs", errors.StatementRefused, "is not"),
    ("load httpfs", errors.StatementRefused, "is not"),
    ("pragma version", errors.StatementRefused, "is not"),
    ("set threads = 1", errors.StatementRefused, "is not"),
    ("create table t as select 1", errors.StatementRefused, "is not"),
    ("insert into shop.orders values (1, 2, 3, '2024-01-01')", errors.StatementRefused, "is not"),
    ("delete from shop.orders", errors.StatementRefused, "is not"),
    ("drop view shop.orders", errors.StatementRefused, "is not"),
    ("export database '/tmp/x'", errors.StatementRefused, "EXPORT is not"),
    ("select 1 into t", errors.StatementRefused, "INTO"),
    ("select 1; select 2", errors.StatementRefused, "one statement per query"),
    ("select 1; drop view shop.orders", errors.StatementRefused, "one statement per query"),
    ("summarize shop.orders", errors.StatementRefused, "is not"),
    ("select * from memory.shop.orders", errors.UnknownObject, "the mesh is the only catalog"),
    ("select * from _quanta_system.columns", errors.UnknownObject, "no quantum"),
    ("select * from main.orders", errors.UnknownObject, "no quantum"),
    ("select * from pg_catalog.pg_class", errors.UnknownObject, "no quantum"),
    ("select * from information_schema.views", errors.UnknownObject, "does not exist"),
    ("select * from duckdb_settings", errors.UnknownObject, "does not exist"),
    ("select * from shop.nothing", errors.UnknownObject, "quantum shop has orders"),
    ("select * from orders", errors.UnknownObject, "did you mean shop.orders"),
]


@pytest.mark.parametrize("sql,cls,message", REFUSED, ids=[r[0][:40] for r in REFUSED])
def test_refused(shop, sql, cls, message):
    with pytest.raises(cls, match=message):
        shop.sql(sql)


def test_refusal_in_nested_positions(shop):
    for sql in [
        "select (select getenv('HOME')) as x",
        "select * from shop.orders where order_id in (select i from read_csv('/etc/passwd'))",
        "with x as (select * from read_csv('/etc/passwd')) select * from x",
        "select * from shop.orders o, lateral (select * from glob('/*')) g",
        "select list_transform([1], x -> getenv('HOME'))",
        "select 1 union all select * from read_csv('/etc/passwd')",
    ]:
        with pytest.raises(errors.StatementRefused):
            shop.sql(sql)


def test_syntax_error_has_a_position(shop):
    with pytest.raises(errors.SyntaxError) as e:
        shop.sql("select amount\nfrom shop.orders\nwhere (")
    assert e.value.position is not None and e.value.position[0] == 3
    assert e.value.sqlstate == "42601"


def test_unknown_dataset_error_has_position(shop):
    with pytest.raises(errors.UnknownObject) as e:
        shop.sql("select *\n  from shop.ordrs")
    assert e.value.position == (2, 8)


def test_engine_errors_are_quanta_errors(shop):
    with pytest.raises(federation.ProgrammingError, match="nope"):
        shop.sql("select nope from shop.orders")
    with pytest.raises(federation.DataError) as e:
        shop.sql("select cast(full_name as integer) from crm.customers").fetchall()
    assert "name1" not in str(e.value)  # conversion errors never echo values


def test_time_out_interrupts_the_query(shop_path):
    conn = federation.connect(str(shop_path), user="ana", timeout=0.5)
    with pytest.raises(federation.QueryTimeout):
        conn.sql("select count(*) from shop.orders a, shop.orders b, shop.orders c, shop.orders d, "
                 "shop.orders e, shop.orders f").fetchall()
    assert conn.sql("select 1").fetchone() == (1,)  # the platform goes on


# -- system tables ---------------------------------------------------------------------------------


def test_system_tables(shop):
    q = {r[0]: r for r in shop.sql("select quantum, domain, status, owner, kind from system.quanta").fetchall()}
    assert q["crm"][1:] == ("crm", "active", "olivia", "source") and q["report"][4] == "derived"
    ds = shop.sql("select quantum, dataset, kind, contract_id, format from system.datasets order by 1, 2").fetchall()
    assert ds == [("crm", "customers", "source", "crm-contract", "csv"),
                  ("report", "sales_by_region", "derived", "report-contract", "sql"),
                  ("shop", "orders", "source", "shop-contract", "parquet")]
    pii = shop.sql("select dataset, \"column\" from system.columns where classification = 'pii' order by 2").fetchall()
    assert pii == [("customers", "email"), ("customers", "full_name")]
    col = shop.sql("select ordinal, data_type, physical_name, primary_key, required, tags from system.columns "
                   "where dataset = 'orders' and \"column\" = 'customer_id'").fetchone()
    assert col == (2, "BIGINT", "cust_id", False, False, [])
    assert shop.sql("select * from system.lineage order by source_quantum").fetchall() == [
        ("crm", "customers", "report", "sales_by_region"), ("shop", "orders", "report", "sales_by_region")]
    ports = shop.sql("select direction, contract_id, source_quantum from system.ports where quantum = 'report' "
                     "order by direction, contract_id").fetchall()
    assert ports == [("input", "crm-contract", "crm"), ("input", "shop-contract", "shop"),
                     ("output", "report-contract", None)]
    c = shop.sql("select contract_id, version, status, api_version, quantum, datasets from system.contracts "
                 "where contract_id = 'shop-contract'").fetchone()
    assert c == ("shop-contract", "1.0.0", "active", "v3.1.0", "shop", ["orders"])
    assert shop.sql("select domain from system.domains order by 1").fetchall() == [("crm",), ("shop",)]


def test_information_schema_shows_mesh_and_system_only(shop):
    schemas = {r[0] for r in shop.sql("select schema_name from information_schema.schemata").fetchall()}
    assert schemas == {"crm", "shop", "report", "system", "information_schema"}
    tables = shop.sql("select table_schema, table_name from information_schema.tables").fetchall()
    assert ("shop", "orders") in tables and ("system", "columns") in tables
    assert not any(t[0].startswith("_") or t[1].startswith("_") for t in tables)
    cols = shop.sql("select column_name from information_schema.columns where table_schema = 'shop' "
                    "order by ordinal_position").fetchall()
    assert [c[0] for c in cols] == ["order_id", "customer_id", "amount", "order_date"]


def test_describe_and_show(shop):
    d = shop.sql("describe shop.orders").fetchall()
    assert [r[:2] for r in d] == [("order_id", "BIGINT"), ("customer_id", "BIGINT"), ("amount", "DECIMAL(10,2)"),
                                  ("order_date", "DATE")]
    assert d[0][3] == "PRI"
    assert ("shop", "orders") in [r[1:3] for r in shop.sql("show tables").fetchall()]
    q = shop.sql("describe select amount * 2 as double_amount from shop.orders").fetchall()
    assert q[0][:2] == ("double_amount", "DECIMAL(18,2)")
    assert [r[0] for r in shop.sql("describe system.datasets").fetchall()][:2] == ["quantum", "dataset"]
    with pytest.raises(errors.UnknownObject):
        shop.sql("describe shop.nothing")


# -- DB-API ----------------------------------------------------------------------------------------


def test_dbapi_module_attributes():
    assert federation.apilevel == "2.0" and federation.paramstyle == "qmark" and federation.threadsafety >= 1
    assert issubclass(federation.ProgrammingError, federation.DatabaseError)
    assert issubclass(federation.DatabaseError, federation.Error)


def test_dbapi_cursor(shop):
    cur = shop.cursor()
    assert cur.description is None
    cur.execute("select order_id, amount from shop.orders where order_id < ? order by order_id", [5])
    assert [d[0] for d in cur.description] == ["order_id", "amount"]
    assert cur.description[1][1] == "DECIMAL(10,2)"
    assert cur.fetchone() == (0, Decimal("0.00"))
    assert len(cur.fetchmany(2)) == 2
    assert cur.fetchall() == [(3, Decimal("21.00")), (4, Decimal("28.00"))]
    assert cur.rowcount == 5
    assert cur.fetchone() is None
    cur.arraysize = 3
    cur.execute("select * from shop.orders")
    assert len(cur.fetchmany()) == 3
    assert list(shop.execute("select 1 union all select 2 order by 1")) == [(1,), (2,)]
    cur.executemany("select count(*) from crm.customers where region = ?", [["EU"], ["US"]])
    cur.close()
    with pytest.raises(federation.InterfaceError):
        cur.execute("select 1")


def test_dbapi_connection_lifecycle(shop_path):
    with federation.connect(str(shop_path), user="bob") as conn:
        conn.commit()
        conn.rollback()
        with conn.cursor() as cur:
            cur.execute("select 1")
            assert cur.fetchone() == (1,)
    assert conn.closed
    with pytest.raises(federation.InterfaceError, match="closed"):
        conn.sql("select 1")
    with pytest.raises(federation.ProgrammingError, match="no query"):
        federation.connect(str(shop_path)).cursor().fetchone()


def test_eight_threads_query_one_engine(shop):
    expected = {
        "count": shop.sql("select count(*) from shop.orders").fetchone(),
        "region": shop.sql("select region, count(*) from crm.customers group by 1 order by 1").fetchall(),
        "derived": shop.sql("select * from report.sales_by_region order by 1").fetchall(),
        "system": shop.sql("select count(*) from system.columns").fetchone(),
    }
    queries = {
        "count": lambda: shop.sql("select count(*) from shop.orders").fetchone(),
        "region": lambda: shop.sql("select region, count(*) from crm.customers group by 1 order by 1").fetchall(),
        "derived": lambda: shop.sql("select * from report.sales_by_region order by 1").fetchall(),
        "system": lambda: shop.sql("select count(*) from system.columns").fetchone(),
    }
    failures: list = []
    barrier = threading.Barrier(8)

    def worker(i: int) -> None:
        barrier.wait()
        for n in range(25):
            name = list(queries)[(i + n) % len(queries)]
            try:
                got = queries[name]()
                if got != expected[name]:
                    failures.append((name, got))
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                failures.append((name, repr(e)))

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_plan_cache_returns_same_plan_and_is_keyed_by_mesh_version(shop):
    p1 = shop.platform.compile("select * from shop.orders", shop.principal)
    p2 = shop.platform.compile("select * from shop.orders", shop.principal)
    assert p1 is p2
    assert p1.datasets == (("shop", "orders"),)
    assert "memory.shop.orders" in p1.sql
