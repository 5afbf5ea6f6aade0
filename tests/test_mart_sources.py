"""``system.marts.built_from`` and the ``mart_refreshed`` events name the version of each source a mart was
built from: the sources a reader may not read are left out for them (``authorize.allowed(..., "read", ...)``),
while a reader of every source sees them all."""

from __future__ import annotations

import json

import yaml
from test_marts import mart_mesh

import federation
from federation.governance.authorize import allowed
from federation.onboarding import onboard
from federation.onboarding.marts import refresh
from federation.platform import Platform


def built_from(p, who: str) -> dict:
    row = federation.Connection(p, p.principal(who)).sql(
        "select built_from from system.marts where dataset = 'sales_by_region'").fetchone()
    assert row is not None, f"{who} does not see the mart"
    return json.loads(row[0])


def refreshed_events(p, who: str) -> list[tuple]:
    return federation.Connection(p, p.principal(who)).sql(
        "select message, details from system.events where kind = 'mart_refreshed' order by event_id").fetchall()


def test_built_from_leaves_out_the_sources_a_reader_may_not_read(tmp_path):
    root = mart_mesh(tmp_path, on_publish=False)
    gov = yaml.safe_load((root / "governance.yaml").read_text())
    gov["principals"].append({"name": "sam", "roles": ["shopper"]})  # reads the mart and shop.orders only
    gov["grants"] += [{"to": {"role": "shopper"}, "on": "report"}, {"to": {"role": "shopper"}, "on": "shop"}]
    (root / "governance.yaml").write_text(yaml.safe_dump(gov))
    p = Platform(root)
    olivia, ana, sam = p.principal("olivia"), p.principal("ana"), p.principal("sam")
    gv, mart, orders, customers = (p.state.governance, p.mesh.dataset("report", "sales_by_region"),
                                   p.mesh.dataset("shop", "orders"), p.mesh.dataset("crm", "customers"))
    assert {f"{q}.{d}" for q, d in mart.reads} == {"shop.orders", "crm.customers"}
    # the premise: who reads what (the one authorization call)
    assert [allowed(gv, who, "read", ds).allowed for who in (olivia, ana, sam) for ds in (mart, orders, customers)] \
        == [True, True, True, True, False, False, True, True, False]

    onboard(p, "shop.orders", federation.Connection(p, olivia).sql("select * from shop.orders").arrow(), olivia)
    refresh(p, "report.sales_by_region", olivia)
    assert built_from(p, "olivia") == {"shop.orders": 1, "crm.customers": None}  # every source, its version
    assert built_from(p, "sam") == {"shop.orders": 1}  # the one source sam reads
    assert built_from(p, "ana") == {}  # none of the sources, nor their versions
    quoted = "report.sales_by_region v1 built from shop.orders v1, crm.customers"
    assert [m for m, _ in refreshed_events(p, "olivia")] == [quoted]
    for who in ("ana", "sam"):  # the event quotes a source they may not read: its message and details are NULL
        assert refreshed_events(p, who) == [(None, None)]
