"""The Spark Connect backend through the platform (settings.engine: {kind: spark_connect}).

A mesh on Spark answers like the same mesh on the embedded DuckDB, for several principals (masks, row
filters, denials, derived datasets, pinned versions); time-outs and cancellations stop the query on the
cluster; a function Spark cannot run is refused at compile time; a cluster that is down (or goes down) is a
clear ``Unavailable`` for data queries while system tables are still served; sources Spark cannot read are
refused at load naming the dataset; each platform state has its own session, released when the state is
replaced, with temporary views only; no token, SQL value or JVM stack trace reaches a log.

Spark comes from S1's session fixture ``spark_cluster`` (tests/sparkkit.py: a standalone master, two workers and
a Connect server on 127.0.0.1, with a token); ``QUANTA_TEST_SPARK_URL=sc://localhost:PORT/;token=...`` uses a
running server instead.
"""

from __future__ import annotations

import gc
import logging
import re
import socket
import threading
import weakref
from pathlib import Path

import duckdb
import pytest
import sparkkit
import yaml
from meshkit import contract, mesh_yaml, product, prop, shop_mesh, write_yaml
from test_governance import GOVERNANCE

from federation import errors
from federation.engine.duckdb_backend import Cancellation
from federation.engine.spark_backend import flat_name
from federation.platform import Platform

pytest.importorskip("pyspark.sql.connect.session")

TOKEN_ENV = "QUANTA_TEST_SPARK_TOKEN"
SALT = "s2sparksalt0123456789"
USERS = ("ana", "pia", "eve", "aud", "nobody")
# a string and an integer hash mask beside the corpus's redact, email_domain, row filter and denial
HASHED = {**GOVERNANCE, "policies": [
    {"name": "hash-ids", "kind": "mask", "on": {"column": "customer_id", "dataset": "shop.orders"}, "mask": "hash",
     "unless": {"roles": ["finance"]}},
    {"name": "hash-regions", "kind": "mask", "on": {"column": "region", "dataset": "report.sales_by_region"},
     "mask": "hash", "unless": {"roles": ["auditor"]}},
    *GOVERNANCE["policies"]]}
QUERIES = [
    "select * from crm.customers order by id",
    "select region, count(*) as n, min(email) as first_email from crm.customers group by region order by region",
    "select order_id, customer_id, order_date from shop.orders where order_id < 30 order by order_id",
    "select order_id, amount from shop.orders order by order_id",  # denied to most
    "select * from report.sales_by_region order by revenue",
    "select c.full_name, c.region, o.order_id, o.customer_id from shop.orders o join crm.customers c "
    "on o.customer_id = c.id where o.order_id between 10 and 40 order by o.order_id",
    "select region, avg(id) as mean_id, count(distinct full_name) as names from crm.customers group by all "
    "order by 1",
    "with r as (select region, row_number() over (partition by region order by id desc) as rn, id "
    "from crm.customers) select * from r where rn <= 2 order by region, rn",
]


# -- fixtures ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def endpoint(request):
    """(url without the token, token) of a Spark Connect server; the token in the environment variable
    TOKEN_ENV for the meshes' ``token_env``."""
    base, token = sparkkit.endpoint_of(request)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(TOKEN_ENV, token or "")
        mp.setenv("QUANTA_MASK_SALT", SALT)  # the same hash masks on both meshes
        yield base, token


def spark_settings(url: str, **extra) -> dict:
    return {"engine": {"kind": "spark_connect", "url": url, "token_env": TOKEN_ENV}, **extra}


def governed_mesh(root: Path, url: str | None) -> Path:
    shop_mesh(root, governance=HASHED)
    if url:
        mesh_yaml(root, settings=spark_settings(url))
    return root


@pytest.fixture(scope="module")
def meshes(endpoint, tmp_path_factory):
    duck = Platform(governed_mesh(tmp_path_factory.mktemp("duck"), None))
    spark = Platform(governed_mesh(tmp_path_factory.mktemp("spark"), endpoint[0]))
    assert spark.state.engine is not None and spark.state.engine.available, spark.mesh.problems
    assert not [p for p in spark.mesh.problems if p.severity == "error"], spark.mesh.problems
    yield duck, spark
    spark.state.engine.close()


def answer(platform: Platform, sql: str, user: str, **kw):
    """The rows (as Python values, with the column names and Arrow types), or the error's class and message."""
    try:
        result = platform.query(sql, platform.principal(user), **kw)
        table = result.arrow()
        return ("rows", [(f.name, str(f.type)) for f in table.schema], table.to_pylist(), result.plan.engine_sql)
    except errors.Error as e:
        return ("error", type(e).__name__, e.message, None)


def same(a, b) -> None:
    assert a[:3] == b[:3], (a, b)


# -- parity --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sql", QUERIES)
def test_spark_answers_as_duckdb_for_every_principal(meshes, sql):
    duck, spark = meshes
    ran = 0
    for user in USERS:
        on_duck, on_spark = answer(duck, sql, user), answer(spark, sql, user)
        same(on_duck, on_spark)
        if on_spark[0] == "rows":
            ran += 1
            assert on_spark[3] is not None and "system.session." in on_spark[3]  # it ran on the cluster
            assert on_duck[3] is None
    assert ran >= 2  # not only refusals


def test_parameters_bind_alike(meshes):
    duck, spark = meshes
    sql = "select id, email, region from crm.customers where id < ? and region <> ? order by id"
    for user in ("ana", "pia", "eve"):
        on_spark = answer(spark, sql, user, params=[12, "CA"])
        same(answer(duck, sql, user, params=[12, "CA"]), on_spark)
        assert on_spark[0] == "rows" and on_spark[2] and on_spark[3]


def test_the_platforms_own_reads_of_mesh_data_run_on_the_cluster(endpoint, tmp_path):
    p = Platform(governed_mesh(tmp_path / "reads", endpoint[0]))
    count = 'SELECT count(*) AS n FROM "memory"."crm"."customers"'
    assert p.read(count, "test", datasets=["crm.customers"]).to_pylist() == [{"n": 30}]
    only_duckdb = 'SELECT count(DISTINCT hash(email)) AS n FROM "memory"."crm"."customers"'
    p.state.engine.close()  # the cluster's session is gone: a read routed there fails, DuckDB's still work
    with pytest.raises(errors.Unavailable):
        p.read(count, "test", datasets=["crm.customers"])
    assert p.read(only_duckdb, "test", datasets=["crm.customers"]).to_pylist() == [{"n": 30}]  # not renderable
    assert p.read(count, "test").to_pylist() == [{"n": 30}]  # no dataset declared: the embedded engine


def test_masks_and_filters_really_apply_on_spark(meshes):
    _, spark = meshes
    ana = answer(spark, "select email, full_name, region from crm.customers order by id", "ana")
    assert ana[0] == "rows" and ana[2]
    assert {r["region"] for r in ana[2]} == {"US", "CA"} and len(ana[2]) == 20  # the residency filter
    assert {(r["email"], r["full_name"]) for r in ana[2]} == {("***@example.com", "****")}  # masked
    hashed = answer(spark, "select region from report.sales_by_region", "pia")
    assert len(hashed[2]) == 3 and all(re.fullmatch("[0-9a-f]{20}", r["region"]) for r in hashed[2])  # string hash
    pia = answer(spark, "select email from crm.customers where id = 1", "pia")
    assert pia[2] == [{"email": "user1@example.com"}]  # pii_reader: in clear
    ids = answer(spark, "select customer_id from shop.orders where order_id = 5", "ana")
    raw = answer(spark, "select customer_id from shop.orders where order_id = 5", "pia")
    assert raw[2] == [{"customer_id": 6}] and ids[2] != raw[2]  # integer hash for ana, in clear for finance
    denied = answer(spark, "select amount from shop.orders", "ana")
    assert denied[:2] == ("error", "AccessDenied")


def test_pinned_versions_and_warehouse_datasets_on_spark(endpoint, tmp_path):
    from onboardkit import items, lab_mesh

    from federation.onboarding import onboard

    results = {}
    for name, extra in (("duck", {}), ("spark", spark_settings(endpoint[0]))):
        root = lab_mesh(tmp_path / name, extra_settings=extra)
        p = Platform(root)
        before = answer(p, "select * from lab.items", "ana")  # the warehouse's dataset before a version: empty
        assert before[0] == "rows" and before[2] == [], before
        dev = p.principal("dev")
        assert onboard(p, "lab.items", items(5), dev).version == 1
        assert onboard(p, "lab.items", items(8), dev).version == 2
        got = [before]
        for sql in ('select * from lab."items@v1" order by id', "select * from lab.items order by id",
                    'select count(*) as n from lab."items@v2"'):
            for user in ("ana", "pia", "dev"):
                got.append(answer(p, sql, user))
        if name == "spark":
            assert p.state.engine is not None
            assert {flat_name("lab", "items@v1"), flat_name("lab", "items@v2"), flat_name("lab", "items")} <= set(p.state.engine.views())
            assert all(g[3] for g in got if g[0] == "rows" and g is not before)  # ran on the cluster
            p.state.engine.close()
        results[name] = got
    for a, b in zip(results["duck"], results["spark"]):
        same(a, b)


# -- time-outs, cancellation, refusals -----------------------------------------------------------------------

HEAVY = ("select count(*) as n from shop.orders a, shop.orders b, shop.orders c, shop.orders d, "
         "shop.orders e where a.order_id + b.order_id + c.order_id + d.order_id + e.order_id >= 0")


def test_a_time_out_stops_the_query_on_spark(meshes):
    _, spark = meshes
    with pytest.raises(errors.QueryTimeout, match="time-out of 2 s"):
        spark.query(HEAVY, spark.principal("aud"), timeout=2).arrow()
    assert spark.audit.history().to_pylist()[-1]["status"] == "cancelled"
    assert answer(spark, "select count(*) as n from crm.customers", "aud")[2] == [{"n": 30}]  # still serving


def test_a_cancellation_stops_the_query_on_spark(meshes):
    _, spark = meshes
    cancel = Cancellation()
    timer = threading.Timer(1.5, cancel.cancel)
    timer.start()
    try:
        with pytest.raises(errors.QueryCancelled):
            spark.query(HEAVY, spark.principal("aud"), cancel=cancel, timeout=120).arrow()
    finally:
        timer.cancel()
    assert cancel.cancelled
    assert answer(spark, "select count(*) as n from shop.orders", "aud")[2] == [{"n": 100}]


def test_a_function_spark_cannot_run_is_refused_at_compile_time(meshes):
    duck, spark = meshes
    sql = "select hash(full_name) as h from crm.customers"
    assert answer(duck, sql, "aud")[0] == "rows"  # DuckDB runs it
    with pytest.raises(errors.NotSupportedError, match="(?i)hash.*spark|spark.*hash"):
        spark.compile(sql, spark.principal("aud"))
    # on system tables only, the query runs on DuckDB: no refusal
    assert answer(spark, "select hash(dataset) is not null as h from system.datasets limit 1", "aud")[0] == "rows"


def test_system_tables_stay_local_and_a_mix_is_refused_clearly(meshes):
    _, spark = meshes
    local = answer(spark, "select count(*) as n from system.datasets", "aud")
    assert local[0] == "rows" and local[2][0]["n"] >= 3 and local[3] is None
    with pytest.raises(errors.NotSupportedError, match="system tables, not both"):
        spark.query("select * from crm.customers c join system.datasets d on d.name = c.region",
                    spark.principal("aud"))


def test_errors_name_no_value_no_sql_and_no_stack_trace(meshes, caplog, capfd, endpoint):
    _, spark = meshes
    caplog.set_level(logging.DEBUG)
    with pytest.raises(errors.DataError) as e:
        spark.query("select cast(full_name as int) as x from crm.customers where full_name = 'name7'",
                    spark.principal("pia")).arrow()
    with pytest.raises(errors.DataError) as missing:
        spark.query("select id from crm.customers where id = cast(? as int)", spark.principal("pia"),
                    params=["user9@example.com"]).arrow()
    out, err = capfd.readouterr()
    text = caplog.text + out + err + str(e.value) + str(missing.value)
    for leak in ("name7", "user9@example", "JVM stacktrace", "org.apache.spark", endpoint[1], "select cast"):
        assert leak not in text, leak
    assert "cast" in str(e.value).lower()


# -- availability --------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_cluster_that_is_down_at_load_is_unavailable_for_data_only(endpoint, tmp_path):
    p = Platform(governed_mesh(tmp_path / "down", f"sc://localhost:{free_port()}"))
    assert set(p.mesh.quanta) == {"crm", "shop", "report"}  # every quantum stays: the cluster is the problem
    with pytest.raises(errors.Unavailable, match="Spark Connect server at sc://localhost:.* is unavailable"):
        p.query("select * from crm.customers", p.principal("aud"))
    problems = p.query("select severity, path, message from system.problems", p.principal("aud")).fetchall()
    assert any(r[1] == "settings.engine" and "unavailable" in r[2] for r in problems), problems
    assert p.query("select count(*) from system.datasets", p.principal("aud")).fetchone()[0] >= 3
    assert p.audit.history().to_pylist()[-3]["status"] == "error"


class Proxy:
    """A TCP forwarder on 127.0.0.1 to the Spark Connect server: stopping it is the cluster going down."""

    def __init__(self, target_port: int, port: int | None = None):
        self.target = target_port
        self.server = socket.create_server(("127.0.0.1", port or 0))
        self.port = self.server.getsockname()[1]
        self.conns: list[socket.socket] = []
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            if self.stopped:
                client.close()
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        self.stopped = True
        try:
            self.server.shutdown(socket.SHUT_RDWR)  # wakes the accepting thread
        except OSError:
            pass
        self.server.close()
        self.thread.join(5)
        for s in self.conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


def test_a_cluster_that_goes_down_then_returns(endpoint, tmp_path):
    target = int(endpoint[0].rsplit(":", 1)[1])
    proxy = Proxy(target)
    p = Platform(governed_mesh(tmp_path / "flaky", f"sc://localhost:{proxy.port}"))
    aud = p.principal("aud")
    assert p.query("select count(*) from crm.customers", aud).fetchone() == (30,)
    proxy.stop()
    with pytest.raises(errors.Unavailable, match="is unavailable .*system tables are still served"):
        p.query("select count(*) from crm.customers", aud).fetchall()
    assert p.query("select count(*) from system.datasets", aud).fetchone()[0] >= 3  # DuckDB-local
    proxy = Proxy(target, proxy.port)  # back
    try:
        assert p.retry_unavailable(every=0)  # a new state, a new session
        assert p.query("select count(*) from crm.customers", aud).fetchone() == (30,)
    finally:
        p.state.engine.close()
        proxy.stop()


def test_sources_spark_cannot_read_are_refused_at_load_naming_the_dataset(endpoint, tmp_path):
    root = governed_mesh(tmp_path / "mixed", endpoint[0])
    db = tmp_path / "mixed" / "data" / "stock.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table stock as select 1 as sku, 5 as qty")
    con.close()
    write_yaml(root / "products" / "stock.odps.yaml", product("stock"))
    write_yaml(root / "contracts" / "stock.odcs.yaml", contract("stock-contract", [{
        "name": "stock", "physicalName": "stock",
        "properties": [prop("sku", "integer", "integer"), prop("qty", "integer", "integer")]}],
        servers=[{"server": "db", "type": "duckdb", "database": str(db)}]))
    duck = Platform(governed_mesh(tmp_path / "plain", None))  # noqa: F841 - the same mesh serves it on DuckDB
    p = Platform(root)
    try:
        assert "stock" not in p.mesh.quanta and {"crm", "shop", "report"} <= set(p.mesh.quanta)
        [problem] = [x for x in p.mesh.problems if x.quantum == "stock"]
        assert problem.severity == "error" and "stock.stock" in problem.message and "duckdb" in problem.message
        assert "Spark" in problem.message and problem.file.endswith("stock.odcs.yaml")
        assert p.query("select count(*) from crm.customers", p.principal("aud")).fetchone() == (30,)
    finally:
        p.state.engine.close()
    plain = tmp_path / "plain2"
    governed_mesh(plain, None)
    (plain / "products" / "stock.odps.yaml").write_text((root / "products" / "stock.odps.yaml").read_text())
    (plain / "contracts" / "stock.odcs.yaml").write_text((root / "contracts" / "stock.odcs.yaml").read_text())
    assert "stock" in Platform(plain).mesh.quanta  # DuckDB reads it


def test_each_state_has_its_own_session_with_temporary_views_only(meshes, endpoint, tmp_path):
    from pyspark.sql.connect.client import DefaultChannelBuilder
    from pyspark.sql.connect.session import SparkSession

    p = Platform(governed_mesh(tmp_path / "sessions", endpoint[0]))
    first = p.state.engine
    first_id = first.session().session_id
    views = {flat_name("crm", "customers"), flat_name("shop", "orders")}
    assert views <= set(first.views())
    tables = first.session().catalog.listTables()
    assert {t.name for t in tables} >= views and all(t.isTemporary for t in tables)
    assert p.reload()
    second = p.state.engine
    assert second is not first and second.session().session_id != first_id
    gone = weakref.ref(first)
    del first
    gc.collect()
    assert gone() is None  # the old state's engine went with it, and released its session
    # another client of the same server (the cluster's token) sees nothing of Quanta's
    builder = DefaultChannelBuilder(endpoint[0])
    builder.set("token", endpoint[1])
    other = SparkSession(connection=builder)
    try:
        assert not {t.name for t in other.catalog.listTables()} & views
        with pytest.raises(Exception, match="TABLE_OR_VIEW_NOT_FOUND"):
            other.sql(f"select * from `{flat_name('crm', 'customers')}`").collect()
        # the released session cannot be used again
        stale = DefaultChannelBuilder(endpoint[0])
        stale.set("token", endpoint[1])
        stale.set("session_id", first_id)
        with pytest.raises(Exception, match="SESSION_CLOSED|SESSION_NOT_FOUND|INVALID_HANDLE"):
            SparkSession(connection=stale).sql("select 1").collect()
    finally:
        other.stop()
        p.state.engine.close()
    assert answer(p, "select count(*) as n from crm.customers", "aud")[0] == "error"  # closed: no session


def test_the_engine_setting_is_checked_at_load(tmp_path):
    from meshkit import shop_mesh as plain_mesh

    from federation import CatalogError
    from federation.catalog import load_mesh

    root = plain_mesh(tmp_path / "bad")
    for value, says in (({"kind": "spark"}, "kind must be one of duckdb, spark_connect"),
                        ({"kind": "spark_connect"}, "url must be the Spark Connect server's address"),
                        ({"kind": "spark_connect", "url": "sc://h:1/;token=hunter2"}, "token_env"),
                        ({"kind": "spark_connect", "url": "sc://h:1", "token_env": "no-such var"}, "token_env")):
        mesh_yaml(root, settings={"engine": value})
        with pytest.raises(CatalogError) as e:
            load_mesh(root)
        [p] = e.value.problems
        assert p.path == "settings.engine" and says in p.message and "hunter2" not in p.message, p
        assert yaml.safe_load((root / "mesh.yaml").read_text())["settings"]["engine"] == value


def test_tpch_through_the_gateway_on_spark_equals_duckdb_with_the_same_schemas(endpoint, tmp_path):
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
    import tpch as bench

    root = tmp_path / "tpch"
    bench.generate(0.01, root / "data")
    bench.write_mesh(root, root / "data", 0.01)
    duck = Platform(root)
    data = yaml.safe_load((root / "mesh.yaml").read_text())
    data.setdefault("settings", {}).update(spark_settings(endpoint[0]))
    (root / "mesh.yaml").write_text(yaml.safe_dump(data))
    spark = Platform(root)
    try:
        for n, sql in bench.queries().items():
            q = bench.qualify(sql)
            expected = duck.query(q, duck.principal("bench")).arrow()
            result = spark.query(q, spark.principal("bench"))
            got = result.arrow()
            assert result.plan.engine_sql, n  # on the cluster
            assert got.schema == expected.schema, n  # DuckDB's names and types
            status, why = bench.compare(got, expected, bench.has_order_by(q))
            assert status == "ok", (n, why)
    finally:
        spark.state.engine.close()
