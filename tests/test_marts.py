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
from federation.onboarding.pipeline import onboard
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
