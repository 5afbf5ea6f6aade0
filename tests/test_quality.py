"""The quality engine: every metric and operator (passing and failing data), sql rules through the
pipeline's safety passes, masked samples, one scan for all metrics, rule management, SLOs, anomalies,
contract diffs, and the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import yaml
from meshkit import shop_mesh
from onboardkit import items, lab_mesh

from federation import errors
from federation.governance.principals import Principal
from federation.onboarding import control, onboard
from federation.onboarding.evolution import diff, widens
from federation.platform import Platform
from federation.quality import engine, rules as R, slo

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
ENGINEER = Principal("eng", roles=("data_engineer",))
GOV = {
    "principals": [{"name": "olivia", "roles": ["analyst"]}, {"name": "ana", "roles": ["analyst"]}],
    "grants": [{"to": {"role": "analyst"}, "on": "*"}, {"to": {"role": "data_engineer"}, "on": "*"}],
    "policies": [{"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
                  "unless": {"roles": ["pii_reader"]}}],
}


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    """shop.orders: 100 rows, order_id 0..99, customer_id = i % 30 + 1 (70 duplicates), amount a permutation
    of 0..99; crm.customers: 30 rows, region EU/US/CA (10 CA), PII names and e-mails, owner olivia."""
    return Platform(shop_mesh(tmp_path_factory.mktemp("quality"), governance=GOV))


def run_one(p, dataset, rule, who=ENGINEER):
    control.set_rules(p, dataset, [rule], who)
    try:
        result = control.check(p, dataset, who)
    finally:
        control.set_rules(p, dataset, [], who)
    mine = [r for r in result.results if r.type != "anomaly" and not r.rule.endswith((".required", ".primaryKey"))]
    assert len(mine) == 1
    return mine[0]


OPERATOR_CASES = [
    ("mustBe", 100, "pass"), ("mustBe", 99, "fail"),
    ("mustNotBe", 99, "pass"), ("mustNotBe", 100, "fail"),
    ("mustBeGreaterThan", 99, "pass"), ("mustBeGreaterThan", 100, "fail"),
    ("mustBeGreaterOrEqualTo", 100, "pass"), ("mustBeGreaterOrEqualTo", 101, "fail"),
    ("mustBeLessThan", 101, "pass"), ("mustBeLessThan", 100, "fail"),
    ("mustBeLessOrEqualTo", 100, "pass"), ("mustBeLessOrEqualTo", 99, "fail"),
    ("mustBeBetween", [90, 110], "pass"), ("mustBeBetween", [0, 50], "fail"),
    ("mustNotBeBetween", [0, 50], "pass"), ("mustNotBeBetween", [90, 110], "fail"),
]


@pytest.mark.parametrize("operator,threshold,expected", OPERATOR_CASES)
def test_row_count_operators(shop, operator, threshold, expected):
    r = run_one(shop, "shop.orders", {"type": "library", "metric": "rowCount", operator: threshold})
    assert (r.rule, r.measured, r.status) == ("rowCount", 100, expected)


@pytest.mark.parametrize("rule,column,measured,expected", [
    ({"metric": "duplicateValues", "mustBe": 0}, "customer_id", 70, "fail"),
    ({"metric": "duplicateValues", "mustBeLessThan": 80, "unit": "percent"}, "customer_id", 70.0, "pass"),
    ({"metric": "duplicateValues", "mustBeLessThan": 50, "unit": "percent"}, "customer_id", 70.0, "fail"),
    ({"metric": "duplicateValues", "mustBe": 0}, "amount", 0, "pass"),
    ({"metric": "nullValues", "mustBe": 0}, "customer_id", 0, "pass"),
    ({"metric": "nullValues", "mustBeLessOrEqualTo": 1, "unit": "percent"}, "amount", 0, "pass"),
    ({"metric": "missingValues", "mustBe": 0, "arguments": {"missingValues": [None, "", 0]}}, "amount", 1, "fail"),
    ({"metric": "invalidValues", "arguments": {"validValues": [1, 2, 3]}, "mustBeGreaterThan": 90}, "customer_id", 88,
     "fail"),
    ({"metric": "invalidValues", "arguments": {"pattern": "^[0-9]+\\.[0-9]{2}$"}, "mustBe": 0}, "amount", 0, "pass"),
    ({"metric": "invalidValues", "arguments": {"pattern": "^9"}, "mustBe": 0}, "amount", 89, "fail"),
])
def test_column_metrics(shop, rule, column, measured, expected):
    r = run_one(shop, "shop.orders", {"type": "library", "column": column, **rule})
    assert (r.column, r.measured, r.status) == (column, measured, expected)


def test_warning_severity_warns(shop):
    r = run_one(shop, "shop.orders", {"metric": "duplicateValues", "column": "customer_id", "severity": "warning"})
    assert r.status == "warn"


def test_all_metrics_in_one_scan(shop):
    ds = shop.mesh.dataset("crm", "customers")
    rules = R.dataset_rules(ds, [
        {"metric": "nullValues", "column": "email"}, {"metric": "duplicateValues", "column": "email"},
        {"metric": "invalidValues", "column": "region", "arguments": {"validValues": ["EU", "US"]}},
        {"metric": "missingValues", "column": "full_name"}, {"metric": "rowCount", "mustBe": 30}])
    sql, measured = R.metrics_query(rules, ds, "t")
    assert sql.count("FROM t") == 1 and len(measured) == len(rules)  # one scan of the relation
    run = control.check(shop, "crm.customers", ENGINEER)
    # no sql rules: one query for every metric and the row count, after one for the integer key's bounds
    assert run.queries == 2


def test_integer_keys_are_counted_with_a_bitmap(shop):
    """Duplicates of an integer key: a bitmap over [min, max] when the range is small, hashing otherwise;
    the same counts either way (NULLs, negatives, one value, a range too wide for a bitmap)."""
    import duckdb

    con = duckdb.connect()
    ds = shop.mesh.dataset("shop", "orders")
    rule = [r for r in R.dataset_rules(ds, [{"metric": "duplicateValues", "column": "order_id"}])
            if r.metric == "duplicateValues"]
    assert R.bitmap_columns(rule, ds) == ["order_id"]
    for values in ([1, 2, 2, None, 5], [-3, -3], [None], [0, 1 << 40, 1 << 40], list(range(1000)) * 2):
        relation = "(SELECT unnest(" + "[" + ", ".join("NULL" if v is None else str(v) for v in values) \
            + "]::BIGINT[]) AS order_id)"
        lo, hi = con.execute(R.bounds_query(["order_id"], relation)).fetchone()
        with_bitmap, _ = R.metrics_query(rule, ds, relation, {"order_id": (lo, hi)})
        plain, _ = R.metrics_query(rule, ds, relation)
        assert ("bitstring_agg" in with_bitmap) == (lo is not None and hi - lo < R.BITMAP_RANGE)
        expected = sum(1 for v in values if v is not None) - len({v for v in values if v is not None})
        assert con.execute(with_bitmap).fetchone()[1] == con.execute(plain).fetchone()[1] == expected


def test_sql_rules_run_through_the_pipeline(shop):
    ok = run_one(shop, "shop.orders", {"type": "sql", "name": "neg", "query": "select count(*) from {object} where "
                                       "amount < 0", "mustBe": 0})
    assert (ok.rule, ok.measured, ok.status) == ("neg", 0, "pass")
    prop = run_one(shop, "shop.orders", {"type": "sql", "name": "big", "column": "amount",
                                         "query": "select max({property}) from {object}", "mustBeLessThan": 50})
    assert (prop.measured, prop.status) == (99, "fail")
    for query, error in [("delete from {object}", "only"),
                         ("select count(*) from {object}; drop table x", "one statement")]:
        r = run_one(shop, "shop.orders", {"type": "sql", "name": "bad", "query": query, "mustBe": 0})
        assert r.status == "error" and error in r.message, (query, r.message)
    # a control-plane sql rule reading more than its dataset is refused when it is set (it could be an
    # oracle, see test_observability_governance); should such a rule come from a contract, the pipeline
    # refuses what it reads when the check runs it
    ds = shop.mesh.dataset("shop", "orders")
    for query, error in [("select count(*) from read_csv('/etc/passwd')", "is not allowed"),
                         ("select count(*) from system.nothing", "does not exist")]:
        raw = {"type": "sql", "name": "bad", "query": query, "mustBe": 0}
        with pytest.raises(errors.AccessDenied, match="reads only its own dataset"):
            control.set_rules(shop, "shop.orders", [raw], ENGINEER)
        rules = [r for r in R.dataset_rules(ds, [raw]) if r.type == "sql"]
        r = engine.run_rules(rules, ds, engine.registered_target(shop, ds, ENGINEER)).results[0]
        assert r.status == "error" and error in r.message, (query, r.message)


def test_samples_are_masked(shop):
    owner = shop.principal("olivia")  # owns crm; PII is masked for her (no pii_reader role)
    pia = Principal("pia", roles=("pii_reader", "data_engineer"))  # sees e-mails: may set a rule on them
    control.set_rules(shop, "crm.customers", [{"metric": "invalidValues", "column": "email",
                                               "arguments": {"pattern": "^nomatch"}}], pia)
    try:
        run = control.check(shop, "crm.customers", owner)
    finally:
        control.set_rules(shop, "crm.customers", [], pia)
    r = next(x for x in run.results if x.rule == "email.invalidValues")
    assert r.status == "fail" and r.failing_rows == 30 and len(r.sample) == 5
    assert {row["email"] for row in r.sample} == {"****"} and {row["full_name"] for row in r.sample} == {"****"}
    # the history keeps no sample: another reader reads the failing rows as they may see them
    assert "sample" not in shop.query("select * from system.quality_results limit 0", shop.principal("ana")).columns


def test_rules_are_validated_persisted_and_listed(shop):
    with pytest.raises(errors.ProgrammingError, match="unknown metric 'nulls'"):
        control.set_rules(shop, "shop.orders", [{"metric": "nulls", "column": "amount"}], ENGINEER)
    with pytest.raises(errors.ProgrammingError, match="give one operator"):
        control.set_rules(shop, "shop.orders", [{"metric": "rowCount", "mustBe": 1, "mustNotBe": 2}], ENGINEER)
    with pytest.raises(errors.ProgrammingError, match="does not have"):
        control.set_rules(shop, "shop.orders", [{"metric": "nullValues", "column": "nope"}], ENGINEER)
    with pytest.raises(errors.ProgrammingError, match="bounds"):
        control.set_rules(shop, "shop.orders", [{"metric": "rowCount", "mustBeBetween": [5, 1]}], ENGINEER)
    with pytest.raises(errors.AccessDenied, match="ana may not change quality rules"):
        control.set_rules(shop, "shop.orders", [], shop.principal("ana"))
    control.set_rules(shop, "shop.orders", [{"metric": "rowCount", "mustBeGreaterThan": 5, "name": "enough"}],
                      ENGINEER)
    rows = shop.query("select rule, origin, threshold from system.quality_rules where dataset = 'orders'",
                      shop.principal("ana")).fetchall()
    assert ("enough", "control-plane", "mustBeGreaterThan 5 rows") in rows
    assert ("order_id.primaryKey", "schema", "mustBe 0 rows") in rows
    # persisted: a new platform on the same mesh uses them
    again = Platform(shop.path)
    assert [r.rule for r in control.check(again, "shop.orders", ENGINEER).results if r.rule == "enough"] == ["enough"]
    assert control.store_of(shop).events("rules_changed")
    control.set_rules(shop, "shop.orders", [], ENGINEER)


def test_greatparts_contract_rules_compile(demo_path):
    p = Platform(demo_path)
    total = 0
    for ds in p.mesh.datasets():
        rules = R.dataset_rules(ds)
        total += len(rules)
        R.metrics_query(rules, ds, "t")
    assert total > 100
    run = control.check(p, "sales.orders", p.principal("liam"))
    assert run.queries == 5 and {r.status for r in run.results} <= {"pass", "warn"}
    assert any(r.rule == "store_orders_have_store" and r.status == "pass" for r in run.results)


def test_volume_anomaly_warns(tmp_path):
    p = Platform(lab_mesh(tmp_path / "lab"))
    dev = p.principal("dev")
    for n in (100, 101, 99, 100, 102, 98):
        onboard(p, "lab.items", items(n), dev)
    assert control.check(p, "lab.items", dev).results[-1].status == "pass"
    report = onboard(p, "lab.items", items(300), dev)  # far outside mean +/- 3 sigma
    anomaly = report.checks.results[-1]
    assert anomaly.rule == "volume.anomaly" and anomaly.status == "warn" and "300 rows" in anomaly.message
    assert control.store_of(p).events("anomaly_detected")


def test_slo_status(tmp_path):
    p = Platform(lab_mesh(tmp_path / "lab"))
    onboard(p, "lab.items", items(10), p.principal("dev"))
    ds = p.mesh.dataset("lab", "items")
    statuses = {s.property: s for s in slo.evaluate(p, ds, control.store_of(p))}
    assert statuses["frequency"].status == "met"  # a version was just published; one a day is promised
    later = datetime.now(timezone.utc) + timedelta(hours=20)
    assert {s.property: s.status for s in slo.evaluate(p, ds, control.store_of(p), now=later)}["frequency"] == "at risk"
    much_later = datetime.now(timezone.utc) + timedelta(days=3)
    assert {s.property: s.status for s in slo.evaluate(p, ds, control.store_of(p), now=much_later)}["frequency"] == "breached"
    # latency: the element column (a score here, not a time) cannot be judged as a time
    out = control.evaluate_slos(p, [ds])
    rows = p.query("select property, status from system.slo_status order by 1", p.principal("ana")).fetchall()
    assert ("frequency", "met") in rows and len(rows) == len(out)


def test_slo_on_the_demo(demo_path):
    p = Platform(demo_path)
    ds = p.mesh.dataset("sales", "orders")
    newest = p.query("select max(order_ts) from sales.orders", p.principal("liam")).fetchall()[0][0]
    now = newest.replace(tzinfo=timezone.utc) + timedelta(minutes=30)
    by = {s.property: s for s in slo.evaluate(p, ds, control.store_of(p), now=now)}
    assert by["latency"].status == "met" and by["retention"].status == "met"
    assert by["latency"].target == "1 h"
    late = {s.property: s.status for s in slo.evaluate(p, ds, control.store_of(p), now=now + timedelta(hours=5))}
    assert late["latency"] == "breached"
    recorded = control.evaluate_slos(p, [ds])
    breached = [s for s in recorded if s.status == "breached"]
    assert len(control.store_of(p).events("slo_breached")) == len(breached)
    control.evaluate_slos(p, [ds])  # still breached: no new event
    assert len(control.store_of(p).events("slo_breached")) == len(breached)


def test_contract_diff_classification():
    base = {"version": "1.0.0", "schema": [{"name": "orders", "properties": [
        {"name": "id", "logicalType": "integer", "physicalType": "integer", "primaryKey": True},
        {"name": "amount", "logicalType": "number", "physicalType": "decimal(10,2)"},
        {"name": "status", "logicalType": "string", "quality": [
            {"metric": "invalidValues", "arguments": {"validValues": ["a", "b"]}}]},
        {"name": "note", "logicalType": "string", "physicalName": "remark"},
        {"name": "old", "logicalType": "string"}]}]}
    new = yaml.safe_load(yaml.safe_dump(base))
    props = new["schema"][0]["properties"]
    props[0]["physicalType"] = "bigint"  # widened
    props[1]["physicalType"] = "decimal(8,2)"  # narrowed
    props[2]["quality"][0]["arguments"]["validValues"] = ["a", "c"]  # b removed, c added
    props[2]["required"] = True
    props[3]["name"] = "comment"  # renamed (same physical column)
    del props[4]  # removed
    props.append({"name": "extra", "logicalType": "string"})
    kinds = {(c.kind, c.breaking) for c in diff(base, new)}
    assert {("type_widened", False), ("type_narrowed", True), ("enum_values_removed", True),
            ("enum_values_added", False), ("required_added", True), ("column_renamed", True),
            ("column_removed", True), ("column_added", False)} <= kinds
    assert widens("INTEGER", "BIGINT") and widens("VARCHAR(2)", "VARCHAR") and not widens("BIGINT", "INTEGER")
    assert widens("DECIMAL(10,2)", "DECIMAL(12,2)") and not widens("DOUBLE", "BIGINT")
    same = diff(base, yaml.safe_load(yaml.safe_dump(base)))
    assert same == []
    key = yaml.safe_load(yaml.safe_dump(base))
    key["schema"][0]["properties"][0]["primaryKey"] = False
    assert [c.kind for c in diff(base, key)] == ["key_changed"]


# -- the CLI (the real console script) -------------------------------------------------------------------


def cli(*args, user="dev", check=None):
    env = dict(os.environ, QUANTA_USER=user)
    env.pop("QUANTA_MESH", None)
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=env, timeout=120)
    assert "Traceback" not in p.stderr, p.stderr
    if check is not None:
        assert p.returncode == check, (p.stdout, p.stderr)
    return p


def test_cli_onboard_check_versions_rollback_history(tmp_path):
    import polars as pl

    root = lab_mesh(tmp_path / "lab")
    mesh = str(root)
    pl.from_arrow(items(12)).write_parquet(tmp_path / "good.parquet")
    pl.from_arrow(items(12, kind=["zz"] * 12)).write_parquet(tmp_path / "bad.parquet")
    out = cli("onboard", "lab.items", str(tmp_path / "good.parquet"), "--mesh", mesh, check=0)
    assert "published lab.items v1: 12 rows" in out.stdout and "kind.invalidValues" in out.stdout
    assert "reading lab.items" in out.stderr  # progress on the terminal
    dry = cli("onboard", "lab.items", str(tmp_path / "good.parquet"), "--dry-run", "--mesh", mesh, check=0)
    assert "the batch of 12 rows would be published" in dry.stdout
    refused = cli("onboard", "lab.items", str(tmp_path / "bad.parquet"), "--mesh", mesh, check=2)
    assert "refused: lab.items" in refused.stdout and "rule kind.invalidValues failed: measured 12" in refused.stdout
    j = json.loads(cli("onboard", "lab.items", str(tmp_path / "bad.parquet"), "--quarantine", "--json", "--mesh", mesh,
                       check=2).stdout)
    assert j["status"] == "rejected" and any("rowCount" in p for p in j["problems"])  # all 12 rows quarantined
    j = json.loads(cli("onboard", "lab.items", str(tmp_path / "good.parquet"), "--json", "--mesh", mesh,
                       check=0).stdout)
    assert j["status"] == "published" and j["version"] == 4 and j["checks"]["status"] == "pass"
    denied = cli("onboard", "lab.items", str(tmp_path / "good.parquet"), "--mesh", mesh, user="ana", check=1)
    assert "ana may not onboard data on quantum lab" in denied.stderr
    check = cli("check", "lab.items", "--mesh", mesh, check=0)
    assert "lab.items: pass (12 rows" in check.stdout and "frequency" in check.stdout
    versions = json.loads(cli("versions", "lab.items", "--json", "--mesh", mesh, check=0).stdout)
    assert [(v["version"], v["status"]) for v in versions] == [(1, "published"), (2, "failed"), (3, "failed"),
                                                              (4, "published")]
    assert "v1 (12 rows)" in cli("rollback", "lab.items", "v1", "--mesh", mesh, check=0).stdout
    svg = tmp_path / "history.svg"
    hist = cli("quality", "history", "lab.items", "--svg", str(svg), "--mesh", mesh, check=0)
    assert "worst" in hist.stdout
    text = svg.read_text()
    assert text.startswith("<svg") and text.count("<circle") == 5 and "lab.items" in text
    import xml.dom.minidom

    xml.dom.minidom.parseString(text)  # well-formed
    assert "is deprecated" in cli("deprecate", "lab-contract", "1.0.0", "--mesh", mesh, check=0).stdout
    assert "ana may not mark contracts retired" in cli("retire", "lab-contract", "1.0.0", "--mesh", mesh, user="ana",
                                                       check=1).stderr
    ev = json.loads(cli("events", "--json", "--mesh", mesh, check=0).stdout)
    assert {"version_published", "onboarding_failed", "check_failed", "version_rolled_back",
            "contract_deprecated"} <= {e["kind"] for e in ev}


def test_cli_diff(tmp_path):
    root = Path(__file__).resolve().parent.parent / "catalogs" / "greatparts" / "contracts" / "sales.odcs.yaml"
    data = yaml.safe_load(root.read_text())
    data["schema"][0]["properties"] = [p for p in data["schema"][0]["properties"] if p["name"] != "currency"]
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(data))
    out = cli("diff", str(root), str(tmp_path / "new.yaml"), check=1)
    assert "BREAKING  major  column orders.currency was removed" in out.stdout and "needs a new major version" in out.stdout
    data["version"] = "2.0.0"
    (tmp_path / "new.yaml").write_text(yaml.safe_dump(data))
    j = json.loads(cli("diff", str(root), str(tmp_path / "new.yaml"), "--json", check=0).stdout)
    assert j["breaking"] and not j["needs_major_version"]


def test_samples_are_read_for_each_reader(tmp_path):
    """A principal exempt from a mask sees raw values in the samples returned to them; the history keeps
    no sample, and another reader reads the failing rows through their own governed view."""
    p = Platform(lab_mesh(tmp_path / "lab"))
    onboard(p, "lab.items", items(6), p.principal("dev"))
    pia = Principal("pia", roles=("analyst", "pii_reader", "data_engineer"))
    control.set_rules(p, "lab.items", [{"metric": "invalidValues", "column": "email", "arguments": {"pattern": "^z"}}],
                      pia)
    run = control.check(p, "lab.items", pia)
    r = next(x for x in run.results if x.rule == "email.invalidValues")
    assert r.sample[0]["email"].endswith("@example.com")  # pia may read e-mails
    stored = p.query("select * from system.quality_results where rule = 'email.invalidValues'",
                     p.principal("ana")).arrow().to_pylist()
    assert stored and not any("example.com" in str(v) for row in stored for v in row.values())
    theirs = next(s for s in control.samples(p, "lab.items", p.principal("ana")) if s["rule"] == "email.invalidValues")
    assert theirs["sample"] and {row["email"] for row in theirs["sample"]} == {"****"}
