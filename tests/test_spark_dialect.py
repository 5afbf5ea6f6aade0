"""Portable semantics (engine/spark_dialect.py, engine/masks.py): the same governed query gives the same answer
on DuckDB and on Spark.

Each query is compiled by the pipeline for a principal (grants, row filters, masks, denials), run on DuckDB
through the platform, and rendered by ``spark_dialect.render`` over the same data registered as Spark temporary
views (``<quantum>__<dataset>``, the mask key in ``quanta_mask_key``) on a real Spark Connect server: rows,
column names and normalised types must be equal. Masks must be identical on both engines; functions Spark
cannot run as DuckDB are refused at compile time with a Quanta error. TPC-H SF 0.01's 22 queries too.

Spark comes from S1's session fixture ``spark_cluster`` (tests/sparkkit.py: a standalone master, two workers and
a Connect server on 127.0.0.1); ``QUANTA_TEST_SPARK_URL=sc://...`` uses a running server instead.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest
import sqlglot
import sqlglot.expressions as exp
from meshkit import shop_mesh

import federation
from federation import errors
from federation.engine import masks, spark_dialect
from federation.platform import Platform
from federation.rewrite.context import Context

pytest.importorskip("pyspark")

GOVERNANCE = {
    "roles": [{"name": n} for n in ("analyst", "pii_reader", "finance", "auditor", "eu_support")],
    "principals": [
        {"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
        {"name": "pia", "roles": ["analyst", "pii_reader", "finance"], "attributes": {"regions": ["EU", "US", "CA"]}},
        {"name": "eve", "roles": ["eu_support"], "attributes": {"regions": ["EU"]}},
        {"name": "aud", "roles": ["auditor"]},
    ],
    "grants": [
        {"to": {"role": "analyst"}, "on": "shop"},
        {"to": {"role": "analyst"}, "on": "crm.customers"},
        {"to": {"role": "analyst"}, "on": "report"},
        {"to": {"role": "eu_support"}, "on": "crm"},
        {"to": {"role": "eu_support"}, "on": "shop"},
        {"to": {"role": "auditor"}, "on": "*"},
    ],
    "policies": [
        {"name": "hash-names", "kind": "mask", "on": {"column": "full_name"}, "mask": "hash",
         "unless": {"roles": ["pii_reader", "auditor"]}},
        {"name": "mask-contact", "kind": "mask", "on": {"tag": "contact"}, "mask": "email_domain",
         "unless": {"roles": ["pii_reader"]}},
        {"name": "hash-customer-ids", "kind": "mask", "on": {"column": "customer_id"}, "mask": "hash",
         "unless": {"roles": ["finance", "auditor"]}},
        {"name": "residency", "kind": "row_filter", "on": {"column": "region"},
         "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')", "unless": {"roles": ["auditor"]}},
        {"name": "amounts-for-finance", "kind": "deny", "on": {"column": "amount", "dataset": "shop.orders"},
         "unless": {"roles": ["finance", "auditor"]}},
    ],
}
PRINCIPALS = ("ana", "pia", "eve", "aud")

# (sql, principals it is run for: None = all)
CORPUS: list[tuple[str, tuple[str, ...] | None]] = [
    ("select * from crm.customers", None),
    ("select id, full_name, email, region from crm.customers order by id", None),
    ("select region, count(*), count(distinct email) from crm.customers group by region", None),
    ("select customer_id, count(*) as n from shop.orders group by customer_id order by n desc, customer_id limit 5",
     None),
    ("select * from report.sales_by_region", ("ana", "pia", "aud")),
    ("select o.order_id, c.full_name, c.id from shop.orders o join crm.customers c on o.customer_id = c.id "
     "where o.order_id < 20", None),
    ("select order_id, sum(order_id) over (partition by customer_id order by order_id) from shop.orders", None),
    ("select customer_id, order_id from shop.orders "
     "qualify row_number() over (partition by customer_id order by order_id desc) = 1", None),
    ("with t as (select region, count(*) c from crm.customers group by all) select * from t where c > 1", None),
    ("select upper(full_name), length(email), substring(email, 1, 3), email like '%@example.com', "
     "lower(region) || '-' || id from crm.customers", None),
    ("select id / 0, -id / 0, (id - id) / 0, id % 0, id // 0, id // 4, -id // 4, id / 4, id % 7, -id % 7 from crm.customers", None),
    ("select dayofweek(order_date), extract(dow from order_date), extract(year from order_date), month(order_date), "
     "date_trunc('month', order_date) from shop.orders", None),
    ("select coalesce(email, 'none'), nullif(region, 'US'), case when id > 10 then 'big' else 'small' end, "
     "greatest(id, 5), least(id, 5) from crm.customers", None),
    ("select region from crm.customers union select 'XX' order by 1", None),
    ("select * from (values (1, 'a'), (2, 'b')) t", ("ana",)),
    ("select 1 + 1, 'x' || 'y', cast(1.5 as int), cast(-2.5 as bigint), cast('7' as int), round(2.345, 2), 7 / 2, -3 % 2", ("ana",)),
    ("select id from crm.customers c where exists (select 1 from shop.orders o where o.customer_id = c.id)", None),
    ("select (select count(*) from shop.orders) as n, (select max(id) from crm.customers)", None),
    ("select min(order_date), max(order_date), stddev(order_id), median(order_id), avg(order_id) from shop.orders",
     None),
    ("select region, string_agg(email, ',' order by email) from crm.customers group by region", None),
    ("select customer_id, sum(amount), avg(amount), max(amount) from shop.orders group by 1", ("pia", "aud")),
    ("select count(*) filter (where region = 'US'), count_if(region = 'CA') from crm.customers", None),
    ("select full_name, count(*) from crm.customers group by full_name having count(*) >= 1 "
     "order by full_name nulls first limit 3", None),
    ("select * from shop.orders where order_id between 10 and 20 and order_id in (11, 12, 15)", None),
    ("select count(*), count(c.id) from shop.orders o left join crm.customers c on o.customer_id = c.id", None),
    ("select region, list(id) from crm.customers group by region", None),
    ("select region, sum(id)::bigint as s, avg(id) from crm.customers group by rollup(region) order by 1", None),
    ("select starts_with(email, 'user1'), contains(email, '@'), split_part(email, '@', 1), replace(email, '.', '_'), "
     "left(full_name, 3), right(full_name, 2), repeat('*', 2) from crm.customers", None),
    ("select order_date + interval 1 day, order_date - interval 1 month, cast(order_date as varchar), "
     "cast(order_id as varchar), cast(amount as varchar) from shop.orders", ("aud",)),
    ("select lag(order_id) over (order by order_id), lead(order_id, 2) over (order by order_id), "
     "rank() over (partition by customer_id order by order_date), ntile(3) over (order by order_id) from shop.orders",
     None),
    ("select * from crm.customers c1 join crm.customers c2 using (id)", ("ana",)),
    ("select distinct region from crm.customers", None),
    ("select count(*) from shop.orders where customer_id is distinct from 3", None),
]

REFUSED = [  # (sql, the function the error names)
    ("select hash(full_name) from crm.customers", "hash"),
    ("select list(id order by id) from crm.customers", "order by"),
    ("select region, list_sum(list(id)) from crm.customers group by region", "list_sum"),
    ("select epoch(order_date) from shop.orders", "epoch"),
    ("select * from crm.customers where strlen(email) > 3", "strlen"),
]


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def spark(request):
    url = os.environ.get("QUANTA_TEST_SPARK_URL")
    if url:
        from pyspark.sql import SparkSession

        session = SparkSession.builder.remote(url).create()
    else:
        session = request.getfixturevalue("spark_cluster").session()
    session.conf.set("spark.sql.timestampType", "TIMESTAMP_NTZ")
    session.conf.set("spark.sql.session.timeZone", "UTC")
    yield session
    session.stop()


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return Platform(shop_mesh(tmp_path_factory.mktemp("sparkparity"), governance=GOVERNANCE))


def _flat(relation: tuple[str, str, str]) -> str:
    return f"{relation[1]}__{relation[2]}".lower().replace("@v", "__v")


def _register(platform, spark) -> None:
    """The raw datasets as Spark temp views (Arrow data from DuckDB), and the mask key."""
    ns = platform.state.pipeline.namespace
    for ds in platform.state.mesh.datasets():
        if ds.sql is not None and ds.source is None:
            continue  # derived: inlined by the pipeline
        relation = ns.relation(ds.quantum, ds.name)
        table = platform.read(f"SELECT * FROM {relation[0]}.{relation[1]}.{relation[2]}", "spark parity test")
        spark.createDataFrame(table).createOrReplaceTempView(_flat(relation))
    salt = platform._mask_salt(platform.state.governance)  # noqa: SLF001
    spark.createDataFrame(masks.key_table(salt)).createOrReplaceTempView(masks.MASK_KEY_VIEW)


@pytest.fixture(scope="module")
def parity(platform, spark):
    _register(platform, spark)
    return platform, spark


def governed(platform, sql: str, user: str) -> exp.Expression:
    pipe = platform.state.pipeline
    expression = pipe.parse(sql)
    ctx = Context(pipe.namespace, platform.principal(user), sql)
    for rewrite in pipe.passes:
        expression = rewrite(expression, ctx)
    return expression


def relation_name(table: exp.Table) -> str | None:
    if table.catalog != "memory" or table.db.startswith("_"):
        return None  # system tables stay on DuckDB
    return _flat((table.catalog, table.db, table.name))


def on_spark(platform, spark, sql: str, user: str) -> pa.Table:
    text = spark_dialect.render(governed(platform, sql, user), relation_name)
    return spark.sql(text).toArrow()


def on_duckdb(platform, sql: str, user: str) -> pa.Table:
    return federation.Connection(platform, platform.principal(user)).sql(sql).arrow()


# -- comparing -----------------------------------------------------------------------------------------------


def family(t: pa.DataType) -> str:
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_decimal(t):
        return "integer" if t.scale == 0 and t.precision >= 38 else "decimal"  # DuckDB's HUGEINT sums
    if pa.types.is_floating(t):
        return "float"
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return "string"
    if pa.types.is_list(t) or pa.types.is_large_list(t):
        return f"list<{family(t.value_type)}>"
    return str(t).split("[")[0].split("(")[0]


def normal(v):
    if isinstance(v, float):
        return "NaN" if math.isnan(v) else v if math.isinf(v) else round(v, 6)
    if isinstance(v, decimal.Decimal):
        return round(float(v), 6)
    if isinstance(v, list):
        return sorted((normal(x) for x in v), key=lambda x: (x is None, repr(x)))  # list() has no order
    if isinstance(v, dt.datetime):
        return v.replace(tzinfo=None)
    return v


def rows(t: pa.Table) -> list[tuple]:
    return [tuple(normal(v) for v in r) for r in zip(*[c.to_pylist() for c in t.columns])] if t.num_columns else []


def ordered(sql: str) -> bool:
    return sqlglot.parse_one(sql, read="duckdb").args.get("order") is not None


def assert_same(duck: pa.Table, spark: pa.Table, sql: str, user: str) -> None:
    where = f"{user}: {sql}"
    assert spark.column_names == duck.column_names, where
    assert [family(t) for t in spark.schema.types] == [family(t) for t in duck.schema.types], where
    want, got = rows(duck), rows(spark)
    if not ordered(sql):
        want, got = sorted(want, key=repr), sorted(got, key=repr)
    assert got == want, where


# -- tests ---------------------------------------------------------------------------------------------------


CASES = [(sql, user) for sql, users in CORPUS for user in (users or PRINCIPALS)]


@pytest.mark.parametrize("sql,user", CASES, ids=[f"{u}-{i}" for i, (_, u) in enumerate(CASES)])
def test_governed_query_same_on_spark_and_duckdb(parity, sql, user):
    platform, spark = parity
    duck = on_duckdb(platform, sql, user)
    assert_same(duck, on_spark(platform, spark, sql, user), sql, user)


def test_masks_really_masked_and_equal(parity):
    """ana sees hashed names and customer ids: not the raw values, and the same hashes on both engines."""
    platform, spark = parity
    names = "select id, full_name from crm.customers"
    duck, sp = on_duckdb(platform, names, "ana"), on_spark(platform, spark, names, "ana")
    assert duck.num_rows > 0 and sorted(rows(duck)) == sorted(rows(sp))
    assert all(len(v) == 20 and not v.startswith("name") for v in duck.column("full_name").to_pylist())
    ids = "select order_id, customer_id from shop.orders"
    duck, sp = on_duckdb(platform, ids, "ana"), on_spark(platform, spark, ids, "ana")
    assert duck.num_rows == 100 and sorted(rows(duck)) == sorted(rows(sp))
    raw = on_duckdb(platform, ids, "aud").column("customer_id").to_pylist()
    assert set(duck.column("customer_id").to_pylist()).isdisjoint(raw)


def test_mask_formula_identical_on_spark_duckdb_and_python(spark):
    salt = "a-test-salt"
    values = ["", "a", "é漢字😀", "line\nbreak", "x" * 5000, None]
    ints = [0, 1, -1, 2**31 - 1, -2**31, 2**63 - 1, -2**63, None]
    con = duckdb.connect()
    masks.register(con, salt)
    hasher = masks.Hasher(salt)
    spark.createDataFrame(masks.key_table(salt)).createOrReplaceTempView(masks.MASK_KEY_VIEW)
    spark.createDataFrame(pa.table({"v": pa.array(values, pa.string())})).createOrReplaceTempView("mask_strings")
    spark.createDataFrame(pa.table({"i": pa.array(ints, pa.int64())})).createOrReplaceTempView("mask_ints")
    con.register("mask_strings", pa.table({"v": pa.array(values, pa.string())}))
    con.register("mask_ints", pa.table({"i": pa.array(ints, pa.int64())}))
    bits = (2, 8, 16, 32, 63, 64)
    on_spark = spark.sql("SELECT v, " + masks.spark_mask_sql(masks.HASH, "v") + " FROM mask_strings").collect()
    on_duck = con.execute(f"SELECT v, {masks.HASH}(v) FROM mask_strings").fetchall()
    assert sorted(map(tuple, on_spark), key=repr) == sorted(on_duck, key=repr)
    assert all(h == hasher.string(v) for v, h in on_duck)
    assert len({h for _, h in on_duck}) == len(values)  # NULL stays NULL, the others differ
    spark_ints = spark.sql("SELECT i, " + ", ".join(masks.spark_mask_sql(masks.HASH_INT, "CAST(i AS STRING)", b)
                                                    for b in bits) + " FROM mask_ints").collect()
    duck_ints = con.execute("SELECT i, " + ", ".join(f"{masks.HASH_INT}(CAST(i AS VARCHAR), {b})" for b in bits)
                            + " FROM mask_ints").fetchall()
    assert sorted(map(tuple, spark_ints), key=repr) == sorted(duck_ints, key=repr)
    for row in duck_ints:
        for b, h in zip(bits, row[1:]):
            if row[0] is None:
                assert h is None
            else:
                assert 0 <= h < 2 ** (b - 1) and h == hasher.integer(str(row[0]), b)
    # the key is in no SQL text
    key = masks.derive_key(salt)
    assert key not in masks.spark_mask_sql(masks.HASH, "v") and salt not in masks.spark_mask_sql(masks.HASH, "v")


@pytest.mark.parametrize("sql,name", REFUSED)
def test_functions_spark_cannot_run_are_refused_at_compile_time(platform, sql, name):
    on_duckdb(platform, sql, "aud")  # DuckDB runs it: the refusal is the Spark backend's own
    with pytest.raises(errors.NotSupportedError) as info:
        spark_dialect.render(governed(platform, sql, "aud"), relation_name)
    assert name in info.value.message.lower() and "spark" in info.value.message.lower()
    assert info.value.position is not None


def test_relations_spark_does_not_hold_are_refused(platform):
    with pytest.raises(errors.StatementRefused, match="system"):
        spark_dialect.render(governed(platform, "select * from system.datasets", "aud"), relation_name)


def test_render_does_not_touch_the_tree_and_hides_the_key(platform):
    tree = governed(platform, "select * from shop.orders", "ana")
    before = tree.sql("duckdb")
    text = spark_dialect.render(tree, relation_name)
    assert tree.sql("duckdb") == before
    assert "system.session.`shop__orders`" in text and f"system.session.{masks.MASK_KEY_VIEW}" in text
    salt = platform._mask_salt(platform.state.governance)  # noqa: SLF001
    assert salt not in text and masks.derive_key(salt) not in text


def test_a_cte_cannot_stand_in_for_the_key_or_a_dataset(platform):
    sql = ("with quanta_mask_key as (select 'x' as k), shop__orders as (select 1 as order_id) "
           "select * from shop.orders")
    text = spark_dialect.render(governed(platform, sql, "ana"), relation_name)
    assert "FROM quanta_mask_key" not in text and "FROM shop__orders" not in text.replace("`", "")


# -- TPC-H ---------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tpch(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import tpch as bench

    root = tmp_path_factory.mktemp("tpch")
    bench.generate(0.01, root / "data")
    bench.write_mesh(root, root / "data", 0.01)
    return bench, Platform(root)


def test_tpch_sf001_on_spark_equals_duckdb(tpch, spark):
    """The 22 queries, rendered for Spark, give DuckDB's rows (floats within 1e-9) and DuckDB's column names."""
    bench, platform = tpch
    _register(platform, spark)
    failures = []
    for n, q in bench.queries().items():
        sql = bench.qualify(q)
        duck = on_duckdb(platform, sql, "bench")
        got = on_spark(platform, spark, sql, "bench")
        status, detail = bench.compare(got, duck, bench.has_order_by(sql))
        if status == "MISMATCH" or got.column_names != duck.column_names:
            failures.append(f"Q{n}: {status} {detail} {got.column_names} vs {duck.column_names}")
    assert not failures, "\n".join(failures)


def test_parameters_bind_in_duckdb_order(parity):
    platform, spark = parity
    sql = "select id, id / ?, ? as tag from crm.customers where id between ? and ? and region in (?, ?) order by id"
    params = [2, "t", 3, 20, "US", "EU"]
    duck = federation.Connection(platform, platform.principal("pia")).sql(sql, params).arrow()
    text = spark_dialect.render(governed(platform, sql, "pia"), relation_name)
    got = spark.sql(text, args=params).toArrow()
    assert duck.num_rows > 0 and rows(got) == rows(duck) and got.column_names == duck.column_names
    for swapped in ("select strpos(?, ?) from crm.customers", "select $2, $1 from crm.customers"):
        with pytest.raises(errors.NotSupportedError, match="parameters"):
            spark_dialect.render(governed(platform, swapped, "pia"), relation_name)
