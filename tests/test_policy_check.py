"""Policy expressions are checked against typed empty relations of the datasets (governance/loader.py
check_expressions): the same verdicts as against the views, one DESCRIBE per dataset, the faulty policy named."""

from __future__ import annotations

import pytest
from meshkit import shop_mesh

from federation import errors
from federation.governance import loader as gloader
from federation.platform import Platform

GRANT = [{"to": {"role": "public"}, "on": "*"}]


def load_with(tmp_path, policies):
    return Platform(shop_mesh(tmp_path, governance={"grants": GRANT, "policies": policies}))


def test_one_describe_per_dataset_when_all_bind(tmp_path, monkeypatch):
    monkeypatch.setattr(gloader, "_TYPED", {})  # no result kept from another test's load
    policies = [
        {"name": "pii-null", "kind": "mask", "on": {"classification": "pii"}, "mask": "null"},
        {"name": "eu-only", "kind": "row_filter", "on": {"dataset": "crm.customers"}, "filter": "region = 'EU'"},
        {"name": "big-orders", "kind": "row_filter", "on": {"column": "amount"}, "filter": "amount > 1"},
        {"name": "regions", "kind": "row_filter", "on": {"dataset": "report.sales_by_region"},
         "filter": "region <> 'CA' and revenue >= 0"},
    ]
    seen: list[str] = []
    real = gloader.check_expressions

    def spy(gov, mesh, describe):
        return real(gov, mesh, lambda sql: seen.append(sql) or describe(sql))

    monkeypatch.setattr("federation.platform.check_expressions", spy)
    p = load_with(tmp_path, policies)
    assert {"crm", "shop", "report"} <= set(p.mesh.quanta)
    assert len(seen) == 3  # customers (2 masks + a filter), orders, sales_by_region: one each
    assert all("FROM (SELECT CAST(NULL AS" in s for s in seen)
    # the policies apply as before
    ana = p.principal("ana")
    assert p.query("select distinct region, email from crm.customers", ana).fetchall() == [("EU", None)]
    assert p.query("select count(*) from report.sales_by_region where region = 'CA'", ana).fetchall() == [(0,)]


def test_the_faulty_policy_is_named_with_the_engines_message(tmp_path):
    policies = [
        {"name": "fine", "kind": "row_filter", "on": {"dataset": "crm.customers"}, "filter": "region = 'EU'"},
        {"name": "typo", "kind": "row_filter", "on": {"dataset": "crm.customers"}, "filter": "regoin = 'EU'"},
        {"name": "number", "kind": "row_filter", "on": {"dataset": "shop.orders"}, "filter": "amount * 2"},
    ]
    with pytest.raises(errors.CatalogError) as e:
        load_with(tmp_path, policies)
    found = [p.message for p in e.value.problems if p.message.startswith("policy ")]
    assert len(found) == 2, found
    assert found[0].startswith("policy typo on crm.customers: Binder Error: Referenced column \"regoin\" not found")
    assert found[1] == "policy number on shop.orders: a row filter must be boolean, and this one is DECIMAL(18,2)"
    assert not any("policy fine" in m for m in found)


def test_verdicts_equal_those_against_the_views(tmp_path):
    """Each expression typed over the typed relation has the type (or the first line of error) it has
    over the dataset's view."""
    p = load_with(tmp_path, [])
    backend = p.state.backend

    def describe(sql):
        return [(c.name, c.type) for c in backend.describe(sql)]

    exprs = ["amount > 1", "customer_id + 1", "order_date - 1", "amount || 'x'", "nothing", "upper(amount)",
             "coalesce(amount, 0)", "CASE WHEN order_id > 1 THEN amount END", "region = 'EU'", "email"]
    for q, name in (("shop", "orders"), ("crm", "customers"), ("report", "sales_by_region")):
        ds = p.mesh.quanta[q].datasets[name]
        typed = gloader._type_all(describe, gloader._typed_relation(q, ds), exprs)
        gloader._TYPED.clear()
        for expr, got in zip(exprs, typed):
            try:
                want = (describe(f"SELECT {expr} AS _quanta_0 FROM {q}.{name}")[0][1], None)
            except Exception as err:  # noqa: BLE001
                want = (None, str(err).split("\n")[0])
            if want[1] is not None:  # the candidates the binder lists name the relation: compare the start
                assert got[0] is None and got[1].split(".")[0] == want[1].split(".")[0], (q, expr, got, want)
            else:
                assert got == want, (q, expr)
