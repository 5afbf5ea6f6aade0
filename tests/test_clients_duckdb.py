"""DuckDB's postgres extension with its defaults (binary COPY reads), as a DuckDB or MotherDuck user attaches
Quanta (issue 13, item 6): ATTACH, the attached catalog's schemas and tables, every type of lab.readings,
a filter pushed down to Quanta (seen in the audit log), a join with a local table, 100,000 rows, masks, a
row filter and a denied dataset."""

from __future__ import annotations

import pathlib

import clientkit
import duckdb
import pytest
from clientkit import ANA_CUSTOMERS, EVENTS, READINGS

import federation

served = pytest.fixture(scope="module")(clientkit.serve)


@pytest.fixture(scope="module")
def db(served):
    module = pytest.importorskip("duckdb_extension_postgres_scanner")
    path = pathlib.Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / \
        "postgres_scanner.duckdb_extension"
    db = duckdb.connect()
    db.execute(f"LOAD '{path}'")
    db.execute(f"ATTACH '{served.dsn()}' AS q (TYPE postgres, READ_ONLY)")
    yield db
    db.close()


def test_duckdb_attaches_and_lists(db):
    tables = db.sql("select schema_name, table_name from duckdb_tables() where database_name = 'q' "
                    "order by 1, 2").fetchall()
    assert ("lab", "events") in tables and ("lab", "readings") in tables and ("crm", "customers") in tables
    assert not any(schema == "report" for schema, _ in tables)
    columns = db.sql("select column_name, data_type from duckdb_columns() where database_name = 'q' and "
                     "schema_name = 'lab' and table_name = 'readings' order by column_index").fetchall()
    assert columns == [("id", "BIGINT"), ("taken_on", "DATE"), ("taken_at", "TIMESTAMP WITH TIME ZONE"),
                       ("price", "DECIMAL(12,3)"), ("ok", "BOOLEAN"), ("tags", "VARCHAR[]"), ("span", "INTERVAL"),
                       ("note", "VARCHAR")]


def test_duckdb_reads_types_pushes_filters_and_joins(served, db):
    rows = db.sql("select id, taken_on, epoch_ms(taken_at), price, ok, tags, span, note from q.lab.readings "
                  "order by id").fetchall()  # timestamptz as epoch milliseconds (no pytz needed)
    assert [r[:2] + r[3:] for r in rows] == [r[:2] + r[3:] for r in READINGS]
    assert [r[2] for r in rows] == [r[2] and round(r[2].timestamp() * 1000) for r in READINGS]
    assert db.sql("select * from q.crm.customers order by id").fetchall() == ANA_CUSTOMERS  # masked, filtered
    assert db.sql("select id from q.lab.readings where taken_on >= date '2024-03-01' and ok order by id"
                  ).fetchall() == []
    assert db.sql("select event_id from q.lab.events where event_id between 10 and 12 order by 1").fetchall() == [
        (10,), (11,), (12,)]
    log = federation.Connection(served.platform, served.platform.principal("ana")).sql(
        "select sql from system.query_log where interface = 'pgwire' and sql like '%\"events\"%' "
        "order by query_id").fetchall()
    assert any(""""event_id" >= '10'""" in s and """"event_id" <= '12'""" in s for (s,) in log), log  # the filter ran in Quanta, not after a scan
    db.execute("create or replace table local_regions as select * from (values ('US', 'United States'), "
               "('CA', 'Canada')) t(region, name)")
    assert db.sql("select l.name, count(*) from q.shop.orders o join q.crm.customers c on o.customer_id = c.id "
                  "join local_regions l using (region) group by 1 order by 1").fetchall() == [
        ("Canada", 33), ("United States", 34)]
    assert db.sql("select count(*), sum(reading) from q.lab.events").fetchone() == (
        EVENTS, sum((i % 1000) / 4.0 for i in range(EVENTS)))
    with pytest.raises(duckdb.Error, match="42501|report.sales_by_region|does not exist"):
        db.sql("select * from q.report.sales_by_region").fetchall()
    with pytest.raises(duckdb.Error, match="amount"):
        db.sql("select amount from q.shop.orders").fetchall()
