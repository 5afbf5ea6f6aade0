"""psqlODBC (Debian's odbc-postgresql) through pyodbc, as Excel, Power BI and Tableau use it (issue 13,
item 6): SQLTables, SQLColumns, SQLPrimaryKeys, a preview, a join, a parameterised query (``?``), every type
of lab.readings, 100,000 rows read through the driver's DECLARE/FETCH cursor (UseDeclareFetch=1), and
denials with their SQLSTATE."""

from __future__ import annotations

import datetime as dt
import decimal
import glob

import clientkit
import pytest
from clientkit import ANA_CUSTOMERS, EVENTS, JOIN_ROWS, JOIN_SQL

pyodbc = pytest.importorskip("pyodbc")
served = pytest.fixture(scope="module")(clientkit.serve)


@pytest.fixture(scope="module")
def conn(served):
    drivers = sorted(glob.glob("/usr/lib/*/odbc/psqlodbcw.so") + glob.glob("/usr/lib/odbc/psqlodbcw.so"))
    if not drivers:
        pytest.skip("psqlODBC is not installed (apt-get install odbc-postgresql unixodbc)")
    conn = pyodbc.connect(f"Driver={drivers[0]};Server=127.0.0.1;Port={served.port};Database={clientkit.DATABASE};"
                          f"UID=ana;PWD={served.tokens['ana']};UseDeclareFetch=1;Fetch=2000", timeout=30)
    yield conn
    conn.close()


def test_odbc_catalog_functions(conn):
    cur = conn.cursor()
    assert [(t.table_cat, t.table_schem, t.table_name, t.table_type) for t in cur.tables(schema="lab")] == [
        (clientkit.DATABASE, "lab", "events", "TABLE"), (clientkit.DATABASE, "lab", "readings", "TABLE")]
    assert sorted((t.table_schem, t.table_name) for t in cur.tables(tableType="TABLE")) == [
        ("crm", "customers"), ("lab", "events"), ("lab", "readings"), ("shop", "orders")]  # not report
    columns = [(c.column_name, c.type_name, c.data_type, c.column_size, c.decimal_digits, c.nullable)
               for c in cur.columns(table="readings", schema="lab")]
    assert columns[:5] == [("id", "int8", pyodbc.SQL_BIGINT, 19, 0, 0), ("taken_on", "date", pyodbc.SQL_TYPE_DATE, 10,
                                                                           None, 1),
                           ("taken_at", "timestamptz", pyodbc.SQL_TYPE_TIMESTAMP, 26, 6, 1),
                           ("price", "numeric", pyodbc.SQL_NUMERIC, 12, 3, 1), ("ok", "bool", pyodbc.SQL_VARCHAR, 5, 0, 1)]
    assert [c[:2] for c in columns[5:]] == [("tags", "_varchar"), ("span", "interval"), ("note", "varchar")]
    assert [c.column_name for c in cur.columns(table="orders", schema="shop")] == ["order_id", "customer_id",
                                                                                  "order_date"]  # amount: denied
    assert [(k.column_name, k.key_seq, k.pk_name) for k in cur.primaryKeys(table="readings", schema="lab")] == [
        ("id", 1, "readings_pkey")]


def test_odbc_queries_parameters_types_and_streaming(conn):
    cur = conn.cursor()
    assert [tuple(r) for r in cur.execute("select * from crm.customers order by id limit 3")] == ANA_CUSTOMERS[:3]
    assert [tuple(r) for r in cur.execute(JOIN_SQL)] == JOIN_ROWS
    rows = cur.execute("select id, taken_on, price from lab.readings where taken_on >= ? and ok = ? order by id",
                       dt.date(2024, 3, 1), False).fetchall()
    assert [tuple(r) for r in rows] == [(2, dt.date(2024, 3, 1), decimal.Decimal("-0.125")),
                                        (5, dt.date(2030, 1, 1), decimal.Decimal("99999.999"))]
    assert [r[0] for r in cur.execute("select id from crm.customers where region = ? and id < ? order by id",
                                      "CA", 10)] == [2, 5, 8]
    rows = [tuple(r) for r in cur.execute("select * from lab.readings order by id")]
    assert rows[0][:5] == (1, dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 30), decimal.Decimal("1234.500"), "1")
    assert rows[0][5:] == ("{a,b}", "1 day 02:00:00", "first")  # arrays and intervals as PostgreSQL's text
    assert rows[2] == (3, None, None, None, None, None, None, None)
    assert rows[3][7] == "O'Brien" and rows[3][5] == '{"x y",NULL}'
    cur.execute("select event_id, reading from lab.events order by event_id")
    count = total = 0
    while batch := cur.fetchmany(10_000):
        count += len(batch)
        total += sum(r[1] for r in batch)
    assert count == EVENTS and total == sum((i % 1000) / 4.0 for i in range(EVENTS))
    with pytest.raises(pyodbc.Error, match="42501"):
        cur.execute("select * from report.sales_by_region").fetchall()
    with pytest.raises(pyodbc.Error, match="42501"):
        cur.execute("select amount from shop.orders").fetchall()
    assert cur.execute("select 1").fetchone()[0] == 1  # the session goes on


def test_odbc_statistics_lists_the_primary_key_index(served, conn, tmp_path):
    import subprocess
    import sys

    drivers = sorted(glob.glob("/usr/lib/*/odbc/psqlodbcw.so") + glob.glob("/usr/lib/odbc/psqlodbcw.so"))
    script = tmp_path / "statistics.py"  # in a process of its own: the driver may crash it
    script.write_text(
        "import pyodbc, sys\n"
        "conn = pyodbc.connect(sys.argv[1], timeout=30)\n"
        "print([(r.index_name, r.column_name, r.non_unique) for r in conn.cursor().statistics("
        "table='readings', schema='lab') if r.index_name])\n")
    dsn = (f"Driver={drivers[0]};Server=127.0.0.1;Port={served.port};Database={clientkit.DATABASE};UID=ana;"
           f"PWD={served.tokens['ana']}")
    done = subprocess.run([sys.executable, str(script), dsn], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[('readings_pkey', 'id', 0)]"
