"""Column lineage of derived datasets and contract inheritance along it."""

from __future__ import annotations

import subprocess
import xml.etree.ElementTree as ET

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml

import federation
from federation import errors
from federation.catalog import load_mesh
from federation.lineage.columns import column_lineage, mesh_schema
from federation.lineage.inheritance import effective_contract, inherit
from federation.lineage.svg import lineage_svg
from federation.platform import Platform


def derived(root, name, sql, props=None, inputs=("crm-contract", "shop-contract")):
    write_yaml(root / "products" / f"{name}.odps.yaml", product(name, inputs=list(inputs)))
    obj = {"name": "d", "customProperties": [{"property": "sql", "value": sql}]}
    if props:
        obj["properties"] = props
    write_yaml(root / "contracts" / f"{name}.odcs.yaml", contract(f"{name}-contract", [obj]))


def edges_of(root, quantum):
    p = Platform(root)
    return {(e.target_column, f"{e.source_dataset}.{e.source_column}", e.transformation)
            for e in p.lineage.edges if e.target_quantum == quantum}


@pytest.mark.parametrize("sql,expected", [
    ("select c.email, o.amount from shop.orders o join crm.customers c on o.customer_id = c.id",
     {("email", "customers.email", "identity"), ("amount", "orders.amount", "identity")}),
    ("with x as (select id, upper(full_name) as n from crm.customers) select n from x",
     {("n", "customers.full_name", "expression")}),
    ("select email as contact from crm.customers union all select full_name from crm.customers",
     {("contact", "customers.email", "identity"), ("contact", "customers.full_name", "identity")}),
    ("select region, sum(o.amount) as revenue, count(*) as n from shop.orders o join crm.customers c "
     "on o.customer_id = c.id group by region",
     {("region", "customers.region", "identity"), ("revenue", "orders.amount", "aggregate")}),
    ("select order_id, sum(amount) over (partition by customer_id) as running from shop.orders",
     {("order_id", "orders.order_id", "identity"), ("running", "orders.amount", "expression"),
      ("running", "orders.customer_id", "expression")}),
    ("select * from crm.customers",
     {("id", "customers.id", "identity"), ("full_name", "customers.full_name", "identity"),
      ("email", "customers.email", "identity"), ("region", "customers.region", "identity")}),
    ("select md5(email) as email_key from crm.customers", {("email_key", "customers.email", "hash")}),
])
def test_column_lineage(tmp_path, sql, expected):
    root = shop_mesh(tmp_path)
    derived(root, "x", sql)
    got = edges_of(root, "x")
    assert expected <= got, got
    if "count(*)" in sql:
        assert not any(t == "n" for t, _, _ in got)  # count(*) reads no column


def test_classification_is_inherited_and_most_restrictive_wins(tmp_path):
    root = shop_mesh(tmp_path)
    derived(root, "x", "select id, full_name || ' ' || region as label, region from crm.customers")
    mesh = Platform(root).mesh
    ds = mesh.dataset("x", "d")
    assert ds.column("label").classification == "pii"  # computed from a pii column
    assert "pii" in ds.column("label").tags
    assert ds.column("region").classification is None
    assert ds.column("label").transform_source_objects == ("crm.customers",)
    assert "full_name" in ds.column("label").transform_logic


def test_declaring_weaker_than_inherited_is_an_error_naming_the_source(tmp_path):
    root = shop_mesh(tmp_path)
    derived(root, "x", "select lower(email) as contact from crm.customers",
            props=[prop("contact", classification="public")])
    mesh = Platform(root).mesh
    assert "x" not in mesh.quanta
    problem = next(p for p in mesh.problems if p.quantum == "x" and "declared 'public'" in p.message)
    assert "crm.customers.email" in problem.message and "'pii'" in problem.message
    p = subprocess.run(["quanta", "validate", str(root)], capture_output=True, text=True)
    assert p.returncode == 1 and "crm.customers.email" in p.stdout


def test_declassification_by_aggregation(tmp_path):
    root = shop_mesh(tmp_path)
    derived(root, "x", "select region, count(distinct email) as contacts from crm.customers group by region",
            props=[prop("region"), prop("contacts", "integer", "bigint", classification="public")])
    mesh = Platform(root).mesh
    assert "x" in mesh.quanta
    assert mesh.dataset("x", "d").column("contacts").classification == "public"


def test_declassification_can_be_turned_off_by_governance(tmp_path):
    gov = {"settings": {"anonymising_transformations": []}, "grants": [{"to": {"role": "public"}, "on": "*"}]}
    root = shop_mesh(tmp_path, governance=gov)
    derived(root, "x", "select region, count(distinct email) as contacts from crm.customers group by region",
            props=[prop("region"), prop("contacts", "integer", "bigint", classification="public")])
    assert "x" not in Platform(root).mesh.quanta


def test_two_levels_of_derivation_inherit_and_enforce(tmp_path):
    gov = {"principals": [{"name": "ana", "roles": ["analyst"]}],
           "grants": [{"to": {"role": "analyst"}, "on": "y"}],
           "policies": [{"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact"}]}
    root = shop_mesh(tmp_path, governance=gov)
    derived(root, "x", "select id, email from crm.customers")
    derived(root, "y", "select id, 'to: ' || email as line from x.d", inputs=("x-contract",))
    p = Platform(root)
    assert p.mesh.dataset("y", "d").column("line").classification == "pii"
    ana = federation.Connection(p, p.principal("ana"))
    rows = ana.sql("select line from y.d").fetchall()
    assert rows and all("user" not in r[0] for r in rows)  # masked at the source, two levels down
    with pytest.raises(errors.AccessDenied):
        ana.sql("select * from x.d")  # the grant is on y only


def test_sla_composition(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["slaProperties"] = [{"property": "latency", "value": 1, "unit": "d", "element": "orders.order_date"},
                          {"property": "retention", "value": 1, "unit": "y", "element": "orders.order_date"}]
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    derived(root, "x", "select order_id from shop.orders")
    c = yaml.safe_load((root / "contracts" / "x.odcs.yaml").read_text())
    c["slaProperties"] = [{"property": "latency", "value": 1, "unit": "h"},
                          {"property": "retention", "value": 5, "unit": "y"}]
    write_yaml(root / "contracts" / "x.odcs.yaml", c)
    mesh = load_mesh(root)
    messages = [p.message for p in inherit(mesh).problems]
    assert any("latency of 1 h, lower than its input shop.orders (24 h)" in m for m in messages)
    assert any("retention" in m and "longer than its input shop.orders" in m for m in messages)
    composed = next(p for p in effective_contract(mesh, "x")[0]["schema"][0]["customProperties"]
                    if p["property"] == "composedSla")["value"]
    assert composed == {"latency": {"atLeast": 24.0, "input": "shop.orders", "refresh": 0.0},
                        "retention": {"atMost": 365 * 24.0, "input": "shop.orders"}}
    # a materialised mart adds its own refresh time: daily refreshes of a 1-day input promise no less than 2 days
    c = yaml.safe_load((root / "contracts" / "x.odcs.yaml").read_text())
    c["schema"][0]["customProperties"].append({"property": "materialize", "value": True})
    c["schema"][0]["properties"] = [prop("order_id", "integer", "bigint")]
    c["slaProperties"] = [{"property": "latency", "value": 30, "unit": "h"},
                          {"property": "frequency", "value": 1, "unit": "d"}]
    write_yaml(root / "contracts" / "x.odcs.yaml", c)
    mesh = load_mesh(root)
    messages = [p.message for p in inherit(mesh).problems + mesh.problems]
    assert any("latency of 30 h, lower than its input shop.orders (24 h) plus its own refresh every 24 h" in m
               for m in messages), messages


def test_demo_lineage_effective_contract_and_picture(demo_path):
    p = Platform(demo_path)
    rows = federation.Connection(p, p.principal("ana")).sql(
        "select source_quantum, source_dataset, source_column, transformation from system.column_lineage "
        "where target_dataset = 'customer_360' and target_column = 'full_name'").fetchall()
    assert set(rows) == {("customers", "customers", "first_name", "expression"),
                         ("customers", "customers", "last_name", "expression")}
    docs = effective_contract(p.mesh, "marketing")
    props = {x["name"]: x for x in docs[0]["schema"][0]["properties"]}
    assert props["email"]["classification"] == "pii"
    assert props["value_band"]["transformSourceObjects"] == ["customer360.customer_360"]
    assert any(c["property"] == "inputContracts" for c in docs[0]["customProperties"])
    svg = lineage_svg(p.mesh, p.lineage.edges, p.mesh.dataset("marketing", "campaign_audience"))
    tree = ET.fromstring(svg)
    texts = "".join(tree.itertext())
    assert "customers.customers" in texts and "marketing.campaign_audience" in texts
    assert len([e for e in tree.iter() if e.tag.endswith("path")]) >= 20


def test_lineage_and_effective_contract_cli(demo_path, tmp_path):
    out = tmp_path / "l.svg"
    p = subprocess.run(["quanta", "lineage", "customer360.customer_360", "--mesh", str(demo_path), "--svg", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0 and "sales.orders.amount" in p.stdout and "aggregate" in p.stdout
    ET.parse(out)
    p = subprocess.run(["quanta", "contract", "effective", "customer360", "--mesh", str(demo_path)],
                       capture_output=True, text=True)
    assert p.returncode == 0
    doc = yaml.safe_load(p.stdout.split("---", 1)[1])
    assert doc["kind"] == "DataContract"


def test_column_lineage_api(tmp_path):
    root = shop_mesh(tmp_path)
    mesh = load_mesh(root)
    edges = column_lineage(mesh.dataset("report", "sales_by_region"), mesh_schema(mesh))
    assert {(e.target_column, e.source_column, e.transformation) for e in edges} >= {
        ("region", "region", "identity"), ("revenue", "amount", "aggregate")}


def test_quality_rules_on_inherited_keys_carry_over(tmp_path):
    from federation.quality import rules

    root = shop_mesh(tmp_path)
    derived(root, "x", "select id, email from crm.customers where region <> 'EU'", inputs=("crm-contract",))
    derived(root, "y", "select c.id, o.order_id from crm.customers c join shop.orders o on o.customer_id = c.id")
    derived(root, "z", "select customer_id, count(*) as n from shop.orders group by customer_id",
            inputs=("shop-contract",))
    mesh = Platform(root).mesh
    x = mesh.dataset("x", "d").column("id")
    assert x.required and x.unique  # a filtered projection keeps the key
    y = mesh.dataset("y", "d").column("id")
    assert not y.unique  # a join multiplies rows: the key does not survive
    assert mesh.dataset("z", "d").column("customer_id").unique  # the GROUP BY key is unique
    names = {r.name for r in rules.dataset_rules(mesh.dataset("x", "d"), None)}
    assert {"id.required"} <= names or {"id.unique"} <= names
    props = {p["name"]: p for p in effective_contract(mesh, "x")[0]["schema"][0]["properties"]}
    assert props["id"]["required"] and props["id"]["unique"]
