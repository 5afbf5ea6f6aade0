"""SQLAlchemy sessions as ORMs, notebooks and BI back ends run them (issue 13, item 6): the Inspector
(schemas, tables, columns with comments, primary keys, indexes), ``Table`` reflection, Core ``select(Table)``
(columns qualified by schema and table), a join and an aggregate, bound parameters, every type of
lab.readings, ``pandas.read_sql_table``, ``stream_results`` over 100,000 rows, masks and denials.

SQLAlchemy 2.x (installed) runs with psycopg 3 and psycopg2; SQLAlchemy 1.4 is installed once into
tests/.cache/sqlalchemy-1.4 (pip, from PyPI) and runs the same reflection in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import clientkit
import pytest
from clientkit import ANA_CUSTOMERS, EVENTS, JOIN_ROWS, READINGS

sa = pytest.importorskip("sqlalchemy")

served = pytest.fixture(scope="module")(clientkit.serve)
CACHE = Path(__file__).parent / ".cache"


@pytest.fixture(scope="module", params=["psycopg", "psycopg2"])
def engine(request, served):
    pytest.importorskip(request.param)
    engine = sa.create_engine(served.url(f"postgresql+{request.param}"))
    yield engine
    engine.dispose()


def test_inspector(engine):
    from sqlalchemy.dialects.postgresql import ARRAY, INTERVAL, NUMERIC, TIMESTAMP

    insp = sa.inspect(engine)
    schemas = insp.get_schema_names()
    assert {"crm", "lab", "shop", "system"} <= set(schemas) and "report" not in schemas
    assert insp.get_table_names(schema="lab") == ["events", "readings"]
    assert insp.get_table_comment("readings", schema="lab") == {"text": "Instrument readings"}
    columns = insp.get_columns("readings", schema="lab")
    assert [(c["name"], c["nullable"], c["comment"]) for c in columns] == [
        ("id", False, "Reading id"), ("taken_on", True, "Day of the reading"), ("taken_at", True, "When it was taken"),
        ("price", True, "Cost"), ("ok", True, "Passed the check"), ("tags", True, "Labels"),
        ("span", True, "Duration"), ("note", True, "Free text")]
    types = {c["name"]: c["type"] for c in columns}
    assert isinstance(types["taken_at"], TIMESTAMP) and types["taken_at"].timezone
    assert isinstance(types["price"], NUMERIC) and (types["price"].precision, types["price"].scale) == (12, 3)
    assert isinstance(types["tags"], ARRAY) and isinstance(types["span"], INTERVAL)
    assert insp.get_pk_constraint("readings", schema="lab")["constrained_columns"] == ["id"]
    assert insp.get_pk_constraint("customers", schema="crm") == {
        "constrained_columns": ["id"], "name": "customers_pkey", "comment": None,
        "dialect_options": {"postgresql_include": []}}
    assert insp.get_indexes("readings", schema="lab") == []  # the primary key's index is not listed
    assert insp.get_foreign_keys("readings", schema="lab") == []
    assert insp.get_unique_constraints("readings", schema="lab") == []
    assert [c["name"] for c in insp.get_columns("orders", schema="shop")] == ["order_id", "customer_id",
                                                                              "order_date"]  # amount: denied
    assert "datasets" in insp.get_view_names(schema="system")
    assert not insp.has_table("sales_by_region", schema="report")


def test_reflection_core_and_types(engine):
    metadata = sa.MetaData()
    readings = sa.Table("readings", metadata, schema="lab", autoload_with=engine)
    customers = sa.Table("customers", metadata, schema="crm", autoload_with=engine)
    orders = sa.Table("orders", metadata, schema="shop", autoload_with=engine)
    assert [c.name for c in readings.primary_key] == ["id"]
    assert readings.c.note.comment == "Free text"
    with engine.connect() as conn:
        assert conn.execute(sa.select(readings).order_by(readings.c.id)).fetchall() == READINGS
        assert conn.execute(sa.select(customers).order_by(customers.c.id).limit(3)).fetchall() == ANA_CUSTOMERS[:3]
        joined = (sa.select(customers.c.region, sa.func.count().label("orders"))
                  .select_from(orders.join(customers, orders.c.customer_id == customers.c.id))
                  .group_by(customers.c.region).order_by(customers.c.region))
        assert conn.execute(joined).fetchall() == JOIN_ROWS
        since = sa.select(readings.c.id).where(readings.c.taken_on >= sa.bindparam("day"),
                                               readings.c.ok.is_(False)).order_by(readings.c.id)
        assert conn.execute(since, {"day": READINGS[1][1]}).scalars().all() == [2, 5]
        assert conn.execute(sa.select(readings.c.id).where(readings.c.id.in_([1, 4, 9]))).scalars().all() == [1, 4]
        assert conn.execute(sa.select(readings.c.id).where(readings.c.note.is_(None)).order_by(readings.c.id)
                            ).scalars().all() == [2, 3]
        assert conn.execute(sa.select(sa.func.sum(readings.c.price), sa.func.max(readings.c.taken_at))).one() == (
            sum(r[3] for r in READINGS if r[3] is not None), READINGS[4][2])
        with pytest.raises(sa.exc.ProgrammingError, match="report.sales_by_region"):
            conn.execute(sa.text("select * from report.sales_by_region"))


def test_pandas_and_stream_results(engine):
    pd = pytest.importorskip("pandas")
    frame = pd.read_sql_table("readings", engine, schema="lab")
    assert list(frame.columns) == ["id", "taken_on", "taken_at", "price", "ok", "tags", "span", "note"]
    assert frame.shape == (5, 8) and frame["id"].tolist() == [1, 2, 3, 4, 5]
    assert str(frame["taken_at"].dtype).startswith("datetime64") and str(frame["taken_at"].dt.tz) == "UTC"
    customers = pd.read_sql_table("customers", engine, schema="crm")
    assert sorted(customers.itertuples(index=False, name=None)) == ANA_CUSTOMERS
    events = sa.Table("events", sa.MetaData(), schema="lab", autoload_with=engine)
    with engine.connect() as conn:
        result = conn.execute(sa.select(events).order_by(events.c.event_id).execution_options(
            stream_results=True, yield_per=5000))
        count = total = 0
        for partition in result.partitions():
            count += len(partition)
            total += sum(r.reading for r in partition)
        assert count == EVENTS and total == sum((i % 1000) / 4.0 for i in range(EVENTS))
        chunks = pd.read_sql(sa.select(events.c.event_id), conn, chunksize=40_000)  # a server-side cursor
        assert [len(c) for c in chunks] == [40_000, 40_000, 20_000]


SA14_SESSION = textwrap.dedent("""
    import json, sys
    import sqlalchemy as sa
    assert sa.__version__.startswith("1.4"), sa.__version__
    engine = sa.create_engine(sys.argv[1], future=True)
    insp = sa.inspect(engine)
    out = {"version": sa.__version__, "schemas": insp.get_schema_names(),
           "tables": insp.get_table_names(schema="lab"),
           "columns": [[c["name"], str(c["type"].compile(dialect=engine.dialect)), c["nullable"], c.get("comment")]
                       for c in insp.get_columns("readings", schema="lab")],
           "pk": insp.get_pk_constraint("readings", schema="lab")["constrained_columns"],
           "indexes": insp.get_indexes("readings", schema="lab"),
           "comment": insp.get_table_comment("readings", schema="lab")["text"]}
    metadata = sa.MetaData()
    readings = sa.Table("readings", metadata, schema="lab", autoload_with=engine)
    events = sa.Table("events", metadata, schema="lab", autoload_with=engine)
    with engine.connect() as conn:
        out["rows"] = [[r.id, str(r.taken_at), str(r.price), r.ok, r.tags, str(r.span), r.note]
                       for r in conn.execute(sa.select(readings).order_by(readings.c.id))]
        out["param"] = conn.execute(sa.select(readings.c.id).where(readings.c.id.in_([1, 4]))).scalars().all()
        result = conn.execution_options(stream_results=True).execute(sa.select(events))
        out["streamed"] = sum(len(p) for p in result.partitions(10000))
    print(json.dumps(out))
""")


@pytest.fixture(scope="session")
def sqlalchemy14():
    """SQLAlchemy 1.4 in a folder of its own (pip --target, kept in tests/.cache between runs)."""
    target = CACHE / "sqlalchemy-1.4"
    if not (target / "sqlalchemy").is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        "--target", str(target), "sqlalchemy>=1.4,<2"], check=True, timeout=300)
    return target


def test_sqlalchemy_14_inspector_and_reflection(served, sqlalchemy14, tmp_path):
    pytest.importorskip("psycopg2")  # 1.4 has no psycopg 3 dialect
    script = tmp_path / "sa14.py"
    script.write_text(SA14_SESSION)
    done = subprocess.run([sys.executable, str(script), served.url("postgresql+psycopg2")], capture_output=True,
                          text=True, timeout=120, check=False,
                          env=dict(os.environ, PYTHONPATH=str(sqlalchemy14)))
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["version"].startswith("1.4")
    assert {"crm", "lab", "shop"} <= set(out["schemas"]) and "report" not in out["schemas"]
    assert out["tables"] == ["events", "readings"]
    assert out["columns"] == [["id", "BIGINT", False, "Reading id"], ["taken_on", "DATE", True, "Day of the reading"],
                              ["taken_at", "TIMESTAMP WITH TIME ZONE", True, "When it was taken"],
                              ["price", "NUMERIC(12, 3)", True, "Cost"], ["ok", "BOOLEAN", True, "Passed the check"],
                              ["tags", "VARCHAR[]", True, "Labels"], ["span", "INTERVAL", True, "Duration"],
                              ["note", "VARCHAR", True, "Free text"]]
    assert out["pk"] == ["id"] and out["indexes"] == [] and out["comment"] == "Instrument readings"
    assert out["rows"][0] == [1, "2024-02-29 12:30:00+00:00", "1234.500", True, ["a", "b"], "1 day, 2:00:00", "first"]
    assert out["rows"][2] == [3, "None", "None", None, None, "None", None]
    assert out["param"] == [1, 4] and out["streamed"] == EVENTS
