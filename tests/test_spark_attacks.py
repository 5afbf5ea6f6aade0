"""Red team of the Spark engine (settings.engine spark_connect): every byte of a query is hostile.

Each test is an attack that worked (or would work without its fix) on a real Spark Connect server: the
query is compiled by the pipeline (proved safe by DuckDB's verifier), rendered by engine/spark_dialect.py and
run on the cluster's session of the platform state. A test fails if the attack succeeds, and fails too if
the query errors for an unrelated reason (the safe answer is asserted, not only the absence of a leak).

Spark comes from S1's session fixture ``spark_cluster`` (tests/sparkkit.py); ``QUANTA_TEST_SPARK_URL=
sc://localhost:PORT/;token=...`` uses a running server instead.
"""

from __future__ import annotations


import pytest
import sparkkit
from meshkit import mesh_yaml, shop_mesh
from test_governance import GOVERNANCE

from federation import errors
from federation.platform import Platform

pytest.importorskip("pyspark.sql.connect.session")

TOKEN_ENV = "QUANTA_TEST_SPARK_TOKEN"
SALT = "rt2-spark-attacks-salt-0123456789"
HASHED = {**GOVERNANCE, "policies": [
    {"name": "hash-ids", "kind": "mask", "on": {"column": "customer_id", "dataset": "shop.orders"}, "mask": "hash",
     "unless": {"roles": ["finance"]}},
    *GOVERNANCE["policies"]]}


@pytest.fixture(scope="module")
def endpoint(request):
    base, token = sparkkit.endpoint_of(request)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TOKEN_ENV, token or "")
        mp.setenv("QUANTA_MASK_SALT", SALT)
        yield base, token


@pytest.fixture(scope="module")
def spark(endpoint, tmp_path_factory):
    root = shop_mesh(tmp_path_factory.mktemp("rt2"), governance=HASHED)
    mesh_yaml(root, settings={"engine": {"kind": "spark_connect", "url": endpoint[0], "token_env": TOKEN_ENV}})
    p = Platform(root)
    assert p.state.engine is not None and p.state.engine.available, p.mesh.problems
    yield p
    p.state.engine.close()


@pytest.fixture(scope="module")
def duck(spark, tmp_path_factory):
    """The same mesh (the same data and salt) on the embedded DuckDB."""
    return Platform(shop_mesh(tmp_path_factory.mktemp("rt2duck"), governance=HASHED))


def rows(platform: Platform, sql: str, user: str, params=None) -> list[dict]:
    result = platform.query(sql, platform.principal(user), params=params)
    assert result.plan.engine_sql is not None  # it ran on the cluster
    return result.arrow().to_pylist()


# -- 1. Spark substitutes ${...} in SQL text before parsing: env, JVM properties, confs ---------------------


def test_variable_substitution_reads_no_environment_conf_or_token(spark, endpoint):
    """Spark's parser replaces ``${env:X}``, ``${system:X}`` and ``${spark.conf}`` anywhere in the SQL text,
    string literals included: any principal read the Connect server's token (sparkkit passes it in the
    server's environment), its environment and its confs. A literal must stay a literal."""
    texts = ["${env:SPARK_CONNECT_AUTHENTICATE_TOKEN}", "${env:HOME}", "${system:user.name}", "${spark.master}",
             "${spark.app.name}"]
    items = ", ".join(f"'{t}' AS c{i}" for i, t in enumerate(texts))
    got = rows(spark, f"select {items} from crm.customers limit 1", "ana")
    assert got == [{f"c{i}": t for i, t in enumerate(texts)}]
    # a column alias too (an identifier is substituted alike)
    got = rows(spark, 'select id as "${env:HOME}" from crm.customers where id = 1', "ana")
    assert got == [{"${env:HOME}": 1}]
    if endpoint[1]:
        assert endpoint[1] not in str(got)


# -- 2. flat view names: <quantum>__<dataset> is not one-to-one ------------------------------------------------


def test_datasets_whose_view_names_collide_never_serve_each_others_data(endpoint, tmp_path):
    """``hr.pay__slips`` and ``hr__pay.slips`` were both the temporary view ``hr__pay__slips``. Registered at
    the same time (four at once), both passed the collision check and the last one replaced the other: one
    dataset answered with the other quantum's rows (under its own governance). View names now carry the
    lengths of both names (no two datasets share one), and each dataset serves its own data."""
    from meshkit import contract, local_server, product, prop, sql_to_file, write_yaml

    root = shop_mesh(tmp_path / "collide")
    for quantum, dataset, secret in (("hr", "pay__slips", "salary"), ("hr__pay", "slips", "public")):
        sql_to_file(root / "data" / quantum / f"{dataset}.parquet",
                    f"select i as id, '{secret}' || i as note from range(3) t(i)")
        write_yaml(root / "products" / f"{quantum}.odps.yaml", product(quantum))
        write_yaml(root / "contracts" / f"{quantum}.odcs.yaml", contract(f"{quantum}-contract", [{
            "name": dataset, "properties": [prop("id", "integer", "bigint"), prop("note")]}],
            servers=[local_server(f"{quantum}/{{model}}.parquet")]))
    duck = Platform(root)
    assert {"hr", "hr__pay"} <= set(duck.mesh.quanta)  # DuckDB serves both (schema.table: no collision)
    mesh_yaml(root, settings={"engine": {"kind": "spark_connect", "url": endpoint[0], "token_env": TOKEN_ENV}})
    for _ in range(3):  # the race: registrations run four at a time
        p = Platform(root)
        try:
            served = [q for q in ("hr", "hr__pay") if q in p.mesh.quanta]
            assert served == ["hr", "hr__pay"], [x.message for x in p.mesh.problems]
            sql = {"hr": "select * from hr.pay__slips order by id", "hr__pay": "select * from hr__pay.slips order by id"}
            for quantum in served:
                expected = duck.query(sql[quantum], duck.principal("ana")).arrow().to_pylist()
                assert expected and rows(p, sql[quantum], "ana") == expected
            assert {r["note"][:6] for r in rows(p, sql["hr"], "ana")} == {"salary"}
            assert {r["note"][:6] for r in rows(p, sql["hr__pay"], "ana")} == {"public"}
        finally:
            p.state.engine.close()


# -- 3. errors echo no value -----------------------------------------------------------------------------------


def test_a_value_ending_a_spark_error_sentence_is_blanked(spark):
    """Spark ends its messages with a period: ``Invalid value for MonthOfYear (valid values 1 - 12): 13.``
    kept the row's value (a number followed by a period was taken for a version number). Errors go to the
    client and the audit log: no value in either."""
    with pytest.raises(errors.DataError) as e:
        rows(spark, "select make_date(2020, cast(id as int) + 4236, 1) as d from crm.customers where id = 3", "pia")
    assert "MonthOfYear" in e.value.message and "4239" not in e.value.message, e.value.message
    logged = spark.audit.history().to_pylist()[-1]
    assert logged["status"] == "error" and "4239" not in str(logged), logged


# -- 4. result columns: DuckDB's names on Spark's columns -------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "select * from shop.orders o join (select region, id as customer_id from crm.customers) c using (customer_id) "
    "order by order_id limit 5",
    "select * from (select region, id as customer_id from crm.customers) c natural join shop.orders o "
    "order by order_id limit 5",
])
def test_a_star_over_a_using_join_keeps_each_value_under_its_own_name(spark, duck, sql):
    """Spark puts a USING join's key first in ``*``, DuckDB where the left side has it; DuckDB's names were
    put on Spark's columns by position: ``order_id`` showed customer ids (and the other way round), or the
    query failed on a type. Each column must carry its own values, as on DuckDB."""
    for user in ("pia", "ana"):
        expected = duck.query(sql, duck.principal(user)).arrow()
        got = spark.query(sql, spark.principal(user)).arrow()
        assert got.schema == expected.schema and got.to_pylist() == expected.to_pylist(), user


# -- 5. row filters mean on Spark what they mean on DuckDB ------------------------------------------------------


def test_a_row_filter_with_a_backslash_in_like_hides_the_same_rows(endpoint, tmp_path):
    """DuckDB's LIKE has no escape character (``'CORP\\%'`` is CORP, a backslash, anything); Spark's escapes
    with a backslash by default (``CORP%`` literally). A row filter hiding the domain's accounts hid nothing on
    Spark: every CORP\\ account was shown. User patterns drift alike (``ILIKE``, ``LIKE ANY``, a pattern column)."""
    from meshkit import contract, local_server, product, prop, sql_to_file, write_yaml

    governance = {"roles": [{"name": "staff"}], "principals": [{"name": "sam", "roles": ["staff"]}],
                  "grants": [{"to": {"role": "staff"}, "on": "*"}],
                  "policies": [{"name": "no-domain-accounts", "kind": "row_filter", "on": {"column": "login"},
                                "filter": "{column} NOT LIKE 'CORP\\%'"}]}
    roots = {}
    for name in ("duck", "spark"):
        root = shop_mesh(tmp_path / name, governance=governance)
        sql_to_file(root / "data" / "hr" / "accounts.parquet",
                    "select * from (values (1, 'CORP\\alice'), (2, 'CORP\\bob'), (3, 'guest'), (4, 'CORP%x'), "
                    "(5, 'CORP_y')) t(id, login)")
        write_yaml(root / "products" / "hr.odps.yaml", product("hr"))
        write_yaml(root / "contracts" / "hr.odcs.yaml", contract("hr-contract", [{
            "name": "accounts", "properties": [prop("id", "integer", "bigint"), prop("login")]}],
            servers=[local_server("hr/{model}.parquet")]))
        if name == "spark":
            mesh_yaml(root, settings={"engine": {"kind": "spark_connect", "url": endpoint[0], "token_env": TOKEN_ENV}})
        roots[name] = root
    duck, spark = Platform(roots["duck"]), Platform(roots["spark"])
    try:
        base = "select id, login from hr.accounts"
        expected = duck.query(base + " order by id", duck.principal("sam")).arrow().to_pylist()
        assert [r["id"] for r in expected] == [3, 4, 5]  # the domain's accounts hidden
        for sql in (base + " order by id",
                    base + " where login like 'CORP\\_%' or login ilike 'guest\\%' order by id",
                    base + " where login like any ('CORP\\%', 'g%') order by id",
                    base + " where 'CORP\\alice' like login || '\\%' or login like 'CORP\\_y' escape '\\' order by id"):
            assert rows(spark, sql, "sam") == duck.query(sql, duck.principal("sam")).arrow().to_pylist(), sql
    finally:
        spark.state.engine.close()


# -- 6. a time-out stops the query on the cluster, whenever it falls --------------------------------------------

LONG = ("select count(*) as n from shop.orders a, shop.orders b, shop.orders c, shop.orders d "
        "where a.order_id + b.order_id + c.order_id + d.order_id >= 0")


def test_a_time_out_falling_before_the_query_reaches_the_cluster_still_stops_it(spark):
    """The time-out interrupts the query's tag once; when it fell between two requests of the query (after
    ``spark.sql``, before the server registered the execution) the interrupt found nothing and the query ran
    to its end on the cluster, its rows returned long after the time-out (a 0.09 s time-out, 31 s of a
    5-way join). Time-outs spread over that window must all end as time-outs."""
    aud = spark.principal("aud")
    outcomes = []
    for i in range(50):
        try:
            spark.query(LONG, aud, timeout=0.04 + i * 0.003).arrow()
            outcomes.append("rows")
        except errors.QueryTimeout:
            outcomes.append("timeout")
    assert outcomes == ["timeout"] * 50, outcomes
    assert rows(spark, "select count(*) as n from crm.customers", "aud") == [{"n": 30}]  # still serving


# -- 7. regexp_replace / regexp_extract: RE2's options and rewrites are not Java's -----------------------------


def test_a_regexp_replace_mask_is_never_weaker_on_spark(endpoint, tmp_path, spark, duck):
    """sqlglot drops regexp_replace's options on Spark: a mask ``regexp_replace({column}, 'NAME', '#', 'gi')``
    was case-sensitive there and showed every name in clear. RE2's ``\\1`` is Java's ``$1`` (and ``$`` is
    literal in RE2), without 'g' DuckDB replaces the first match only, and regexp_extract's default group is
    the whole match in DuckDB, group 1 in Spark. Spark must answer as DuckDB or refuse at compile time."""
    governance = {**HASHED, "policies": [
        {"name": "scrub-names", "kind": "mask", "on": {"column": "full_name"},
         "mask": {"type": "sql", "sql": "regexp_replace({column}, 'NAME', '#', 'gi')"}},
        *GOVERNANCE["policies"][1:]]}
    roots = {}
    for name in ("duck", "spark"):
        roots[name] = shop_mesh(tmp_path / name, governance=governance)
    mesh_yaml(roots["spark"], settings={"engine": {"kind": "spark_connect", "url": endpoint[0], "token_env": TOKEN_ENV}})
    masked_duck, masked_spark = Platform(roots["duck"]), Platform(roots["spark"])
    try:
        sql = "select full_name from crm.customers where id = 1"
        assert masked_duck.query(sql, masked_duck.principal("pia")).fetchall() == [("#1",)]
        with pytest.raises(errors.NotSupportedError, match="regexp_replace"):  # refused, never in clear
            rows(masked_spark, sql, "pia")
    finally:
        masked_spark.state.engine.close()
    ran = 0
    for sql in ("select regexp_replace(email, '[a-z]', '*') as r from crm.customers where id = 1",
                "select regexp_replace(email, '(.*)@(.*)', '\\2 $1 \\\\', 'g') as r from crm.customers where id = 1",
                "select regexp_extract(email, '(U)SER', 0, 'i') as r from crm.customers where id = 1",
                "select regexp_replace(email, 'e', 'E', 'g') as r, regexp_extract(email, '@(ex)(.*)$') as x, "
                "regexp_extract(email, '@(ex)(.*)$', 2) as y from crm.customers where id = 1"):
        expected = duck.query(sql, duck.principal("pia")).arrow().to_pylist()
        try:
            got = rows(spark, sql, "pia")
        except errors.NotSupportedError as e:
            assert "regexp" in e.message, e.message
            continue
        assert got == expected, sql
        ran += 1
    assert ran >= 2  # not all refused
