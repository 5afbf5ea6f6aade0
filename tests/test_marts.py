"""Materialised data marts: published as versions, refreshed on demand or when a source publishes,
flagged stale, and read like any dataset."""

from __future__ import annotations

import subprocess

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml

import federation
from federation import errors
from federation.onboarding.marts import refresh
from federation.onboarding import onboard  # the facade: publishes, then refreshes the marts reading it
from federation.platform import Platform


def mart_mesh(root, on_publish: bool):
    gov = {"principals": [{"name": "olivia", "roles": ["data_engineer"]}, {"name": "ana", "roles": ["analyst"]}],
           "grants": [{"to": {"role": "analyst"}, "on": "report"}]}
    shop_mesh(root, governance=gov)
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    props = [{"property": "sql", "value": c["schema"][0]["customProperties"][0]["value"]},
             {"property": "materialize", "value": True}]
    if on_publish:
        props.append({"property": "refresh", "value": "on_source_publish"})
    c["schema"][0]["customProperties"] = props
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    return root


def marts_row(p):
    conn = federation.Connection(p, p.principal("olivia"))
    return conn.sql("select version, stale, why from system.marts where dataset = 'sales_by_region'").fetchone()


def test_refresh_publishes_a_version_and_queries_read_it(tmp_path):
    p = Platform(mart_mesh(tmp_path, on_publish=False))
    ana = federation.Connection(p, p.principal("ana"))
    computed = ana.sql("select * from report.sales_by_region order by region").fetchall()
    assert marts_row(p) == (None, True, "never built")
    with pytest.raises(errors.AccessDenied):
        refresh(p, "report.sales_by_region", p.principal("ana"))  # owners and data engineers only
    report = refresh(p, "report.sales_by_region", p.principal("olivia"))
    assert report.version == 1 and report.rows_published == 3
    plan = p.compile("select * from report.sales_by_region", p.principal("ana"))
    assert "memory.report.sales_by_region" in plan.sql and "memory.shop.orders" not in plan.sql  # read, not computed
    assert ana.sql("select * from report.sales_by_region order by region").fetchall() == computed
    assert marts_row(p)[:2] == (1, False)
    # served from its version after a restart too
    again = Platform(tmp_path)
    assert "memory.report.sales_by_region" in again.compile("select * from report.sales_by_region",
                                                             again.principal("ana")).sql


def test_stale_when_a_source_publishes_and_refresh_on_publish(tmp_path):
    root = mart_mesh(tmp_path, on_publish=False)
    p = Platform(root)
    refresh(p, "report.sales_by_region", p.principal("olivia"))
    orders = federation.Connection(p, p.principal("olivia")).sql("select * from shop.orders where order_id < 50").arrow()
    onboard(p, "shop.orders", orders, p.principal("olivia"))  # a new version of a source
    version, stale, why = marts_row(p)
    assert stale and "shop.orders" in why
    out = subprocess.run(["quanta", "refresh", "report.sales_by_region", "--mesh", str(root), "-u", "olivia"],
                         capture_output=True, text=True)
    assert out.returncode == 0 and "v2" in out.stdout, out.stderr

    root2 = mart_mesh(tmp_path / "auto", on_publish=True)
    p2 = Platform(root2)
    refresh(p2, "report.sales_by_region", p2.principal("olivia"))
    olivia = federation.Connection(p2, p2.principal("olivia"))
    report = onboard(p2, "shop.orders", olivia.sql("select * from shop.orders where order_id < 50").arrow(),
                     p2.principal("olivia"))
    assert [m.version for m in report.marts] == [2]  # refreshed because a source published
    assert marts_row(p2)[:2] == (2, False)
    total = federation.Connection(p2, p2.principal("ana")).sql("select sum(orders) from report.sales_by_region")
    assert total.fetchone() == (50,)


def test_a_mart_must_declare_its_columns(tmp_path):
    root = shop_mesh(tmp_path)
    write_yaml(root / "products" / "m.odps.yaml", product("m", inputs=["shop-contract"]))
    write_yaml(root / "contracts" / "m.odcs.yaml", contract("m-contract", [{
        "name": "d", "customProperties": [{"property": "sql", "value": "select order_id from shop.orders"},
                                          {"property": "materialize", "value": True}]}]))
    mesh = Platform(root).mesh
    assert "m" not in mesh.quanta and any("must declare its columns" in x.message for x in mesh.problems)


def governed_mart_mesh(root, policies: list[dict]):
    mart_mesh(root, on_publish=False)
    write_yaml(root / "governance.yaml", {
        "roles": [{"name": n} for n in ("analyst", "finance", "data_engineer")],
        "principals": [{"name": "olivia", "roles": ["data_engineer"], "attributes": {"regions": ["EU", "US", "CA"]}},
                       {"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
                       {"name": "pia", "roles": ["analyst", "finance"], "attributes": {"regions": ["EU", "US", "CA"]}}],
        "grants": [{"to": {"role": "analyst"}, "on": "report"}, {"to": {"role": "data_engineer"}, "on": "*"}],
        "policies": policies})
    return root


def test_a_mart_shows_a_reader_no_more_than_its_sources(tmp_path):
    """A mart is built with its owner's rights; a reader sees of it what the mart's SQL would show them if
    they ran it: a denied source column stays denied (even summed), a column-level row filter applies."""
    p = Platform(governed_mart_mesh(tmp_path, [
        {"name": "amounts-for-finance", "kind": "deny", "on": {"column": "amount", "dataset": "shop.orders"},
         "unless": {"roles": ["finance"]}},
        {"name": "residency", "kind": "row_filter", "on": {"column": "region"},
         "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')"}]))
    sql = "select region, orders, revenue from report.sales_by_region order by region"
    computed = {u: federation.Connection(p, p.principal(u)).sql(sql).fetchall() for u in ("ana", "pia")}
    assert [r[0] for r in computed["ana"]] == ["CA", "US"] and {r[2] for r in computed["ana"]} == {None}
    assert len(computed["pia"]) == 3 and all(r[2] is not None for r in computed["pia"])
    refresh(p, "report.sales_by_region", p.principal("olivia"))
    for user in ("ana", "pia"):
        plan = p.compile(sql, p.principal(user))
        assert "memory.shop.orders" not in plan.sql  # read from the mart's version, not computed
        assert federation.Connection(p, p.principal(user)).sql(sql).fetchall() == computed[user], user
    applied = {x["policy"] for x in p.compile(sql, p.principal("ana")).policies}
    assert {"amounts-for-finance", "residency"} <= applied


def test_a_mart_hides_rows_a_source_filter_cannot_select_and_keeps_identity_masks(tmp_path):
    """A source's row filter on columns the mart does not copy cannot be applied to the mart's rows (they
    mix rows the reader may not see): the reader sees none. A copied masked column keeps its mask."""
    p = Platform(governed_mart_mesh(tmp_path, [
        {"name": "recent-orders-only", "kind": "row_filter", "on": {"dataset": "shop.orders"},
         "filter": "order_date >= date '2026-02-01'", "unless": {"roles": ["finance"]}},
        {"name": "region-redacted", "kind": "mask", "on": {"column": "region", "dataset": "crm.customers"},
         "mask": "redact", "unless": {"roles": ["data_engineer"]}}]))
    refresh(p, "report.sales_by_region", p.principal("olivia"))
    sql = "select region, orders from report.sales_by_region order by region"
    assert federation.Connection(p, p.principal("ana")).sql(sql).fetchall() == []
    pia = federation.Connection(p, p.principal("pia")).sql(sql).fetchall()  # no filter for finance, but masked
    assert len(pia) == 3 and {r[0] for r in pia} == {"****"}  # the copied region keeps crm.customers' mask
    assert sum(r[1] for r in pia) == 100


def test_a_mart_over_a_derived_dataset_carries_the_policies_of_its_sources(tmp_path):
    """Mart -> derived dataset -> sources: the deny on shop.orders.amount reaches the mart's column two
    levels down, as it does when the reader queries the derived dataset itself."""
    root = governed_mart_mesh(tmp_path, [
        {"name": "amounts-for-finance", "kind": "deny", "on": {"column": "amount", "dataset": "shop.orders"},
         "unless": {"roles": ["finance"]}}])
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    derived = c["schema"][0]
    derived["customProperties"] = [p for p in derived["customProperties"] if p["property"] == "sql"]
    c["schema"].append({"name": "region_totals", "customProperties": [
        {"property": "sql", "value": "select region, revenue as total from report.sales_by_region"},
        {"property": "materialize", "value": True}],
        "properties": [prop("region"), prop("total", "number", "decimal(38,2)")]})
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    p = Platform(root)
    sql = "select region, total from report.region_totals order by region"
    computed = {u: federation.Connection(p, p.principal(u)).sql(sql).fetchall() for u in ("ana", "pia")}
    refresh(p, "report.region_totals", p.principal("olivia"))
    assert "memory.shop.orders" not in p.compile(sql, p.principal("ana")).sql
    for user in ("ana", "pia"):
        assert federation.Connection(p, p.principal(user)).sql(sql).fetchall() == computed[user], user
    assert {r[1] for r in computed["ana"]} == {None} and None not in {r[1] for r in computed["pia"]}
