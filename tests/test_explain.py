"""EXPLAIN and EXPLAIN ANALYZE of the governed query, through every interface, red-teamed.

The plan is of what really runs (the governed SQL), rendered from DuckDB's JSON plan through an
allow-list (federation/explain.py): operator names and join types only; no constant, expression, path,
estimate, per-operator count or timing; under ANALYZE the rows of the result and the time. When a row
filter shaped the query, the operators themselves are withheld (their shape follows statistics of the
hidden rows). The red team: a row filter hiding N rows cannot be counted; mask keys, SQL-mask literals
and row filter constants never appear; an EXPLAIN of a denied query is denied and audited like the query.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pgkit
import pyarrow as pa
import pytest
import requests
from meshkit import shop_mesh

import federation
from federation import errors
from federation.engine.masks import derive_key
from federation.platform import Platform

psycopg = pytest.importorskip("psycopg")

SALT = "salt-Xq7-never-shown"
FILTER_SECRET = "zz-filter-secret-9931"  # a literal of the row filter
MASK_SECRET = "pepper-4471"  # a literal of a SQL mask
GOVERNANCE = {
    "settings": {"mask_salt_env": "QUANTA_TEST_EXPLAIN_SALT"},
    "roles": [{"name": "analyst"}, {"name": "finance"}, {"name": "global"}],
    "principals": [
        {"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
        {"name": "pia", "roles": ["analyst", "finance"], "attributes": {"regions": ["EU", "US", "CA"]}},
        {"name": "mia", "roles": ["analyst", "global"], "attributes": {"regions": ["US"]}},  # masked, not filtered
    ],
    "grants": [{"to": {"role": "analyst"}, "on": "shop"}, {"to": {"role": "analyst"}, "on": "crm.customers"}],
    "policies": [
        {"name": "mask-mail", "kind": "mask", "on": {"column": "email"}, "mask": "hash",
         "unless": {"roles": ["finance"]}},
        {"name": "mask-name", "kind": "mask", "on": {"column": "full_name"},
         "mask": {"type": "sql", "sql": f"md5({{column}} || '{MASK_SECRET}')"}, "unless": {"roles": ["finance"]}},
        {"name": "residency", "kind": "row_filter", "on": {"column": "region"},
         "filter": f"({{column}} <> 'EU' AND {{column}} <> '{FILTER_SECRET}') OR list_contains(principal.regions, 'EU')",
         "unless": {"roles": ["finance", "global"]}},
        {"name": "amounts-for-finance", "kind": "deny", "on": {"column": "amount", "dataset": "shop.orders"},
         "unless": {"roles": ["finance"]}},
    ],
}
# what must never show in a plan: the policies' literals, the mask salt and key, file paths, the raw rows' counts
FORBIDDEN = re.compile("|".join(re.escape(s) for s in (
    FILTER_SECRET, MASK_SECRET, SALT, derive_key(SALT), "'EU'", "customers.csv", "/data/", "md5", "hash(")), re.I)

ANA_ROWS = 20  # of the 30 customers, ana reads the 20 outside the EU
MESH_ROOT: list = []
JOIN = ("select c.region, count(*) from shop.orders o join crm.customers c on o.customer_id = c.id "
        "group by c.region")


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    mp = pytest.MonkeyPatch()
    mp.setenv("QUANTA_TEST_EXPLAIN_SALT", SALT)
    root = shop_mesh(tmp_path_factory.mktemp("explain"), governance=GOVERNANCE)
    MESH_ROOT[:] = [root]
    p = Platform.open(root)
    yield p
    mp.undo()


def plan_text(result) -> str:
    assert result.columns == ["QUERY PLAN"] and result.types == ["VARCHAR"]
    return "\n".join(r[0] for r in result.fetchall())


def explain(platform, sql, user="ana", **kw) -> str:
    return plan_text(platform.query(sql, platform.principal(user), **kw))


def numbers(text: str) -> set[int]:
    """The numbers a plan shows, but for the query's time (any number of milliseconds)."""
    text = re.sub(r"Execution Time: [\d.]+ ms|\"execution_time_ms\": [\d.]+", "", text)
    return {int(n) for n in re.findall(r"\d+", text)}


# -- what a plan shows -----------------------------------------------------------------------------------


def test_explain_shows_the_operators_of_the_governed_query(platform):
    # pia: no row filter hides rows from her (masks and denials hide none): the operator tree is shown
    text = explain(platform, f"EXPLAIN {JOIN}", user="pia")
    lines = text.splitlines()
    assert lines[0] in ("HASH_GROUP_BY", "PERFECT_HASH_GROUP_BY", "PROJECTION")
    assert any("HASH_JOIN (INNER)" in line and "->" in line for line in lines)
    assert "READ_PARQUET" in text and "READ_CSV" in text
    assert "Policy: residency (row_filter" not in text  # pia is exempt from the row filter
    assert not FORBIDDEN.search(text)


def test_explain_is_of_the_governed_query_not_the_text(platform):
    # ana's query reads a masked column: the plan lists the masks the governed query applies, by name
    text = explain(platform, "EXPLAIN select email, full_name from crm.customers")
    assert "Policy: mask-mail (mask on crm.customers.email)" in text
    assert "Policy: mask-name (mask on crm.customers.full_name)" in text
    assert "Policy: residency (row_filter on crm.customers)" in text
    assert not FORBIDDEN.search(text)


def test_masked_columns_show_operators_but_no_mask_secret(platform):
    """mia reads every row (no filter) with the masks applied: her operators are shown; the SQL mask's literal,
    the hash mask's salt and key, and the masks' functions are not."""
    for prefix in ("EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN (ANALYZE, FORMAT JSON)"):
        text = explain(platform, f"{prefix} select email, full_name, count(*) from crm.customers "
                                 f"where email like '%' group by all", user="mia")
        assert "READ_CSV" in text and "mask-mail" in text and "mask-name" in text
        assert not FORBIDDEN.search(text), text


def test_explain_analyze_reports_only_the_rows_the_principal_reads(platform):
    ana = explain(platform, "EXPLAIN ANALYZE select * from crm.customers")
    pia = explain(platform, "EXPLAIN ANALYZE select * from crm.customers", user="pia")
    assert "Rows: 20" in ana and "Rows: 30" in pia
    assert re.search(r"Execution Time: \d+\.\d{3} ms", ana)
    # the row filter hides 10 rows from ana: no number of ana's plan may tell 30 (the rows scanned) or 10
    assert not numbers(ana) & {30, 10}, ana
    assert "(operators withheld)" in ana and "READ_CSV" not in ana
    assert not FORBIDDEN.search(ana)
    assert "READ_CSV" in pia  # no filter hides a row from pia: her operators are shown, without counts
    assert numbers(pia) == {30}


@pytest.mark.parametrize("probe", [
    "select order_id from crm.customers c join shop.orders o on o.customer_id = c.id where c.id > 1000",
    "select id from crm.customers where id > 25",  # the file's max id is 30: DuckDB would prune by statistics
    "select id from crm.customers where id > 1000",
    "select region, count(*) from crm.customers group by region",
])
def test_a_row_filter_hiding_rows_cannot_be_counted_or_probed(platform, probe):
    """The plan of a filtered dataset is the same whatever the hidden rows hold: statistics-driven shapes
    (EMPTY_RESULT for a filter the file's min/max cannot meet, a perfect-hash aggregate) would tell."""
    for prefix in ("EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN (FORMAT JSON)", "EXPLAIN (ANALYZE, FORMAT JSON)"):
        text = explain(platform, f"{prefix} {probe}")
        assert "EMPTY_RESULT" not in text and "PERFECT_HASH" not in text and "SCAN" not in text, text
        assert not FORBIDDEN.search(text), text
        if "ANALYZE" in prefix:
            rows = len(platform.query(probe, platform.principal("ana")).fetchall())
            shown = json.loads(text)["rows"] if "JSON" in prefix else int(re.search(r"Rows: (\d+)", text)[1])
            assert shown == rows


def test_the_row_count_of_the_analyze_is_the_result_count(platform):
    text = explain(platform, "EXPLAIN ANALYZE select * from crm.customers where region = 'US' limit 3")
    assert "Rows: 3" in text
    for n in (0, 1, 7):
        text = explain(platform, f"EXPLAIN ANALYZE select id from crm.customers order by id limit {n}")
        assert f"Rows: {n}" in text


def test_json_format(platform):
    out = json.loads(explain(platform, "EXPLAIN (ANALYZE, FORMAT JSON) " + JOIN, user="pia"))
    assert out["rows"] == 3 and out["execution_time_ms"] >= 0
    assert out["plan"]["operator"] and out["plan"]["children"]

    def keys(node):
        yield set(node)
        for c in node["children"]:
            yield from keys(c)

    assert set().union(*keys(out["plan"])) <= {"operator", "join", "function", "children"}
    ana = json.loads(explain(platform, "EXPLAIN (FORMAT JSON) " + JOIN))
    assert ana["plan"] is None and "withheld" in ana["withheld"]
    assert "residency" in {p["policy"] for p in ana["policies"]}


def test_explain_options(platform):
    for sql in ("explain verbose select 1", "EXPLAIN (COSTS off, VERBOSE) select 1", "/* c */ explain select 1",
                "-- a comment\nEXPLAIN\n(ANALYZE false) select 1"):
        assert "Rows:" not in explain(platform, sql)
    for sql in ("explain analyse select 1", "EXPLAIN (ANALYZE) select 1", "EXPLAIN (ANALYZE on, FORMAT TEXT) select 1"):
        assert "Rows: 1" in explain(platform, sql)
    ana = platform.principal("ana")
    with pytest.raises(errors.NotSupportedError, match="FORMAT XML"):
        platform.query("EXPLAIN (FORMAT XML) select 1", ana)
    with pytest.raises(errors.SyntaxError, match="unknown EXPLAIN option 'bogus'"):
        platform.query("EXPLAIN (bogus) select 1", ana)
    with pytest.raises(errors.SyntaxError, match="EXPLAIN of nothing"):
        platform.query("EXPLAIN ANALYZE", ana)
    with pytest.raises(errors.StatementRefused, match="EXPLAIN"):
        platform.query("EXPLAIN EXPLAIN select 1", ana)
    with pytest.raises(errors.StatementRefused, match="DELETE"):
        platform.query("EXPLAIN ANALYZE delete from crm.customers", ana)
    # the query keeps its position in the text as sent
    with pytest.raises(errors.SyntaxError) as info:
        platform.query("EXPLAIN ANALYZE\n  select id from crm.customers where", ana)
    assert info.value.position is not None and info.value.position[0] == 2


def test_explain_with_parameters(platform):
    ana = platform.principal("ana")
    assert "Rows: 2" in plan_text(platform.query("EXPLAIN ANALYZE select id from crm.customers where id in (?, ?)",
                                                 ana, [1, 2]))
    plan = platform.compile("EXPLAIN select id from crm.customers where id = ?", ana)
    assert plan.params == 1 and plan.explain is not None and "?" in plan.sql  # described with its parameter


# -- denied like the query, audited like the query -------------------------------------------------------------


def test_explain_of_a_denied_query_is_denied_and_audited(platform):
    ana = platform.principal("ana")
    for sql in ("EXPLAIN select amount from shop.orders", "EXPLAIN ANALYZE select amount from shop.orders",
                "EXPLAIN select * from report.sales_by_region"):
        with pytest.raises(errors.AccessDenied) as info:
            platform.query(sql, ana)
        assert not FORBIDDEN.search(str(info.value))
    log = platform.audit.history().to_pylist()
    denied = [e for e in log if e["sql"] == "EXPLAIN ANALYZE select amount from shop.orders"]
    assert denied and denied[-1]["status"] == "denied" and denied[-1]["principal"] == "ana"


def test_explain_is_audited_like_a_query(platform):
    sql = "EXPLAIN ANALYZE select id from crm.customers where id < 7 -- audited"
    explain(platform, sql)
    entry = [e for e in platform.audit.history().to_pylist() if e["sql"] == sql][-1]
    assert entry["status"] == "ok" and entry["datasets"] == ["crm.customers"]
    assert entry["rewritten_sql"].startswith("EXPLAIN ANALYZE SELECT")
    assert "residency" in entry["policies"]


# -- every interface -----------------------------------------------------------------------------------------


def test_python_pep249_cursor(platform):
    conn = federation.connect(str(MESH_ROOT[0]), user="ana")
    cur = conn.cursor()
    cur.execute("EXPLAIN ANALYZE select * from crm.customers")
    assert [d[0] for d in cur.description] == ["QUERY PLAN"]
    text = "\n".join(r[0] for r in cur.fetchall())
    assert f"Rows: {ANA_ROWS}" in text and not numbers(text) & {30, 10}


def test_pgwire_clients_get_a_query_plan_column(platform):
    tokens = pgkit.issue_tokens(platform, ["ana", "pia"])
    with pgkit.running_server(platform) as server:
        with psycopg.connect(pgkit.dsn(server.port, tokens), autocommit=True) as conn:
            for binary in (False, True):
                cur = conn.cursor(binary=binary)
                cur.execute("EXPLAIN ANALYZE select * from crm.customers")
                assert [d.name for d in cur.description] == ["QUERY PLAN"]
                assert cur.description[0].type_code == 25 or cur.description[0].type_code == 1043  # text/varchar
                text = "\n".join(r[0] for r in cur.fetchall())
                assert f"Rows: {ANA_ROWS}" in text and not FORBIDDEN.search(text) and not numbers(text) & {30, 10}
            cur = conn.cursor()
            cur.execute("EXPLAIN select id from crm.customers where id = %s", [3])  # extended protocol
            assert [d.name for d in cur.description] == ["QUERY PLAN"] and cur.fetchall()
            with pytest.raises(psycopg.Error) as info:
                cur.execute("EXPLAIN ANALYZE select amount from shop.orders")
            assert info.value.sqlstate == "42501"
        if shutil.which("psql"):  # psql prints the plan as it prints PostgreSQL's: one column, QUERY PLAN
            done = subprocess.run(["psql", "-X", "-h", "127.0.0.1", "-p", str(server.port), "-U", "ana", "-d",
                                   pgkit.DATABASE, "-c", "EXPLAIN ANALYZE select * from crm.customers"],
                                  capture_output=True, text=True, timeout=60,
                                  env={**os.environ, "PGPASSWORD": tokens["ana"], "PGSSLMODE": "disable"})
            assert done.returncode == 0, done.stderr
            lines = done.stdout.splitlines()
            assert lines[0].strip() == "QUERY PLAN" and set(lines[1].strip()) == {"-"}
            assert f"Rows: {ANA_ROWS}" in done.stdout and not FORBIDDEN.search(done.stdout)


def test_http_query_api(platform):
    from federation.server.http import Server, create_app

    token = platform.tokens.create("ana", 1)[0]
    server = Server(create_app(platform), port=0).start()
    try:
        headers = {"Authorization": f"Bearer {token}"}
        r = requests.post(server.url + "/api/v1/query", json={"sql": "EXPLAIN ANALYZE select * from crm.customers"},
                          headers=headers, timeout=60)
        assert r.status_code == 200, r.text
        body = r.json()
        assert [c["name"] for c in body["columns"]] == ["QUERY PLAN"]
        text = "\n".join(row[0] for row in body["rows"])
        assert f"Rows: {ANA_ROWS}" in text and not FORBIDDEN.search(r.text) and not numbers(text) & {30, 10}
        r = requests.post(server.url + "/api/v1/query", json={"sql": "EXPLAIN select amount from shop.orders"},
                          headers=headers, timeout=60)
        assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    finally:
        server.stop()


def test_flight_sql(platform):
    adbc_dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    import adbc_driver_flightsql
    from federation.server.flight.server import FlightSqlServer

    token = platform.tokens.create("ana", 1)[0]
    options = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as server:
        with adbc_dbapi.connect(f"grpc://127.0.0.1:{server.port}", db_kwargs=options, autocommit=True) as conn:
            cur = conn.cursor()
            cur.execute("EXPLAIN ANALYZE select * from crm.customers")
            table: pa.Table = cur.fetch_arrow_table()
            assert table.column_names == ["QUERY PLAN"]
            text = "\n".join(table.column(0).to_pylist())
            assert f"Rows: {ANA_ROWS}" in text and not FORBIDDEN.search(text) and not numbers(text) & {30, 10}
            cur.close()


def test_explain_on_the_spark_engine_is_refused_clearly(platform):
    """With Spark as the data engine, a query on mesh data runs on the cluster: its EXPLAIN is refused with a
    clear error (the pipeline of the same namespace, rendering for Spark with the real Spark dialect)."""
    from federation.engine import spark_dialect
    from federation.rewrite.pipeline import EngineSQL, Pipeline

    state = platform.state
    spark = Pipeline(state.namespace, engine=EngineSQL(spark_dialect.check, lambda tree: spark_dialect.render(
        tree, lambda table: f"spark_{table.name}")))
    ana = platform.principal("ana")
    assert spark.compile("select id from crm.customers", ana).engine_sql  # a data query runs on Spark
    with pytest.raises(errors.NotSupportedError, match="EXPLAIN of a query on mesh data is not supported on the "
                                                       "Spark engine"):
        spark.compile("EXPLAIN select id from crm.customers", ana)
    assert spark.compile("EXPLAIN select 1", ana).explain is not None  # no mesh data: explained on DuckDB


def test_the_cli_prints_the_plan_lines_whole(platform):
    """`quanta query "explain ..."` prints each line of the plan as it is (a table would cut them), and what it
    prints is the same governed plan: the policies' names, never their literals."""
    env = dict(os.environ, QUANTA_TEST_EXPLAIN_SALT=SALT)
    quanta = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
    p = subprocess.run([quanta, "query", "EXPLAIN ANALYZE select * from crm.customers", "-u", "ana",
                        "--mesh", str(MESH_ROOT[0])], capture_output=True, text=True, env=env, timeout=300)
    assert p.returncode == 0, p.stderr
    lines = p.stdout.splitlines()
    assert lines[0] == "QUERY PLAN"
    assert f"Rows: {ANA_ROWS}" in lines
    note = next(line for line in lines if line.startswith("Note:"))
    assert note.endswith("hidden") and "…" not in p.stdout  # whole, not cut to a column's width
    assert not FORBIDDEN.search(p.stdout)
