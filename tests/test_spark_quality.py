"""Quality checks and mart refreshes on the Spark cluster (settings.engine: spark_connect), through the
platform's one gateway for its own reads (``Platform.read``): the same contract measures the same value for
every metric on DuckDB and on Spark, the one-scan metrics query ran on Spark (``CheckRun.engine``), a mart
refreshed on Spark publishes the same rows (``OnboardReport.built_on``), and DuckDB's regular expressions
(RE2) keep their meaning on Spark (translated to Java's syntax, or refused).

The cluster is S1's session fixture ``spark_cluster`` (tests/sparkkit.py), through ``endpoint`` of
tests/test_spark_backend.py.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlglot
import yaml
from meshkit import mesh_yaml, shop_mesh, write_yaml
from test_quality import GOV
from test_spark_backend import endpoint, spark_settings  # noqa: F401 - the fixture

from federation import errors
from federation.engine import spark_dialect
from federation.governance.principals import Principal
from federation.engine.spark_regex import Untranslatable, java_pattern
from federation.onboarding import control
from federation.onboarding.marts import refresh
from federation.platform import Platform
from federation.result import ran_on
from federation.quality.rules import FORMATS

pytest.importorskip("pyspark.sql.connect.session")

ENGINEER = Principal("eng", roles=("data_engineer", "pii_reader"))  # sees the e-mails its rules measure

# every metric, every argument kind; the patterns' '.', '$' and '\s' differ between RE2 and Java as written
RULES = {
    "shop.orders": [
        {"metric": "rowCount", "mustBeGreaterThan": 10},
        {"column": "customer_id", "metric": "duplicateValues", "mustBe": 0},  # integer: DuckDB's bitmap count
        {"column": "customer_id", "metric": "duplicateValues", "mustBeLessThan": 50, "unit": "percent"},
        {"column": "amount", "metric": "duplicateValues", "mustBe": 0},  # a decimal: count(DISTINCT)
        {"column": "amount", "metric": "nullValues", "mustBeLessOrEqualTo": 1, "unit": "percent"},
        {"column": "amount", "metric": "missingValues", "mustBe": 0, "arguments": {"missingValues": [None, "", 0]}},
        {"column": "amount", "metric": "invalidValues", "mustBeLessThan": 20,
         "arguments": {"validValues": [0, 7, 14, 21, 28]}},
        {"column": "customer_id", "metric": "invalidValues", "mustBe": 0, "arguments": {"pattern": r"^\d$"}},
        {"column": "order_date", "metric": "invalidValues", "mustBe": 0,
         "arguments": {"pattern": r"^2026-01-0.$"}},
    ],
    "crm.customers": [
        {"column": "email", "metric": "invalidValues", "mustBe": 0, "arguments": {"pattern": FORMATS["email"]}},
        {"column": "email", "metric": "invalidValues", "mustBe": 0,
         "arguments": {"pattern": r"^user[12]\d?@example\.com$"}},
        {"column": "full_name", "metric": "invalidValues", "mustNotBeBetween": [0, 5],
         "arguments": {"pattern": r"name(1|2)[^\s]"}},
        {"column": "region", "metric": "invalidValues", "mustBe": 0, "arguments": {"validValues": ["EU", "US"]}},
        {"column": "region", "metric": "missingValues", "mustBe": 0, "arguments": {"missingValues": ["CA", ""]}},
        {"column": "full_name", "metric": "nullValues", "mustBe": 0},
        {"column": "id", "metric": "duplicateValues", "mustBe": 0},
    ],
}


@pytest.fixture(scope="module")
def meshes(endpoint, tmp_path_factory):  # noqa: F811 - the imported fixture
    roots = []
    for name, url in (("duck", None), ("spark", endpoint[0])):
        root = shop_mesh(tmp_path_factory.mktemp(name), governance=GOV)
        if url:
            mesh_yaml(root, settings=spark_settings(url))
        roots.append(root)
    duck, spark = Platform(roots[0]), Platform(roots[1])
    assert spark.state.engine is not None and spark.state.engine.available, spark.mesh.problems
    yield duck, spark
    spark.state.engine.close()


def results(platform: Platform, dataset: str):
    control.set_rules(platform, dataset, RULES[dataset], ENGINEER)
    try:
        run = control.check(platform, dataset, ENGINEER)
    finally:
        control.set_rules(platform, dataset, [], ENGINEER)
    measured = [(r.rule, r.metric, r.column, r.measured, r.status, r.failing_rows, r.message,
                 len(r.sample or [])) for r in run.results if r.type != "anomaly"]
    return run, measured


@pytest.mark.parametrize("dataset", sorted(RULES))
def test_quality_metrics_are_measured_on_spark_with_duckdb_s_values(meshes, dataset):
    duck, spark = meshes
    on_duck, duck_values = results(duck, dataset)
    on_spark, spark_values = results(spark, dataset)
    assert on_duck.engine == "duckdb" and on_spark.engine == "spark_connect"  # the one-scan query ran on Spark
    assert spark_values == duck_values
    assert on_spark.rows == on_duck.rows > 0
    statuses = {v[4] for v in spark_values}
    assert {"pass", "fail"} <= statuses and "error" not in statuses  # real measurements, both ways


def test_a_platform_read_says_where_it_ran(meshes):
    duck, spark = meshes
    sql = 'SELECT count(*) FILTER (WHERE regexp_matches("email", \'@example\\.com$\')) AS n FROM ' \
          + ".".join(f'"{p}"' for p in spark.state.backend.relation("crm", "customers"))
    on_spark = spark.read(sql, "quality", ENGINEER, ["crm.customers"])
    on_duck = duck.read(sql, "quality", ENGINEER, ["crm.customers"])
    assert ran_on(on_spark) == "spark_connect" and ran_on(on_duck) == "duckdb"
    assert on_spark.to_pylist() == on_duck.to_pylist() == [{"n": 30}]
    assert on_spark.schema.field("n").type == on_duck.schema.field("n").type  # DuckDB's types


def test_a_mart_refreshed_on_spark_publishes_duckdb_s_rows(endpoint, tmp_path):  # noqa: F811
    published = {}
    for name, url in (("duck", None), ("spark", endpoint[0])):
        root = shop_mesh(tmp_path / name, governance={
            "principals": [{"name": "olivia", "roles": ["data_engineer"]}],
            "grants": [{"to": {"role": "data_engineer"}, "on": "*"}]})
        c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
        c["schema"][0]["customProperties"].append({"property": "materialize", "value": True})
        write_yaml(root / "contracts" / "report.odcs.yaml", c)
        if url:
            mesh_yaml(root, settings=spark_settings(url))
        p = Platform(root)
        try:
            report = refresh(p, "report.sales_by_region", p.principal("olivia"))
            assert report.status == "published" and report.version == 1 and report.rows_published == 3
            result = p.query("select * from report.sales_by_region order by region", p.principal("olivia"))
            assert "memory.report.sales_by_region" in result.plan.sql  # the published version, not recomputed
            published[name] = (report.built_on, result.arrow())
        finally:
            if p.state.engine is not None:
                p.state.engine.close()
    assert published["duck"][0] == "duckdb" and published["spark"][0] == "spark_connect"
    assert published["spark"][1].to_pylist() == published["duck"][1].to_pylist()
    assert published["spark"][1].schema == published["duck"][1].schema


# -- regular expressions: RE2 (DuckDB) and Java (Spark) ------------------------------------------------------

TRICKY = ["a\nb", "a\rb", "ab\n", "ab", "a b", "a\x0bb", "a\tb", "x{", "a{2}", "é", "A", "a\u2028b", "", "ab\r"]
PATTERNS = [r"a.b", r"ab$", r"^a\sb$", r"a\Sb", r"[\s]", r"x{", r"a\{2\}", r"^.$", r"[^a-z]", r"\x41",
            r"(a|b)+?$", r"a\vb", r"^$", r"b.$", FORMATS["email"], FORMATS["uuid"]]


def test_translated_patterns_match_what_duckdb_matches(spark_cluster):
    session = spark_cluster.session()
    try:
        for pattern in PATTERNS:
            java = java_pattern(pattern)
            rows = session.sql("SELECT s, s RLIKE ? AS m FROM VALUES " + ", ".join("(?)" for _ in TRICKY)
                               + " AS t(s)", args=[java, *TRICKY]).collect()
            on_spark = {r["s"]: r["m"] for r in rows}
            on_duck = dict(duckdb.execute("SELECT s, regexp_matches(s, ?) FROM unnest(?) AS t(s)",
                                          [pattern, TRICKY]).fetchall())
            assert on_spark == on_duck, (pattern, java)
    finally:
        session.stop()


@pytest.mark.parametrize("pattern", [r"(?i)a", r"[[:alpha:]]", r"a*+", r"[a&&b]", r"\bx", r"(a)\1", r"\pL",
                                     r"a{1001}", r"(?=a)", r"\Z", r"\Qa\E", "\U0001F600"])
def test_patterns_whose_meaning_could_differ_are_refused(pattern):
    with pytest.raises(Untranslatable):
        java_pattern(pattern)
    tree = sqlglot.parse_one(f"SELECT regexp_matches(s, '{pattern}') FROM memory.q.t", read="duckdb")
    with pytest.raises(errors.NotSupportedError, match="regular expression"):
        spark_dialect.check(tree)
