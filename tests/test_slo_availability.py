"""The availability SLO, measured: every SLO evaluation and every check probes whether the dataset can
be read, the probes are stored, and availability is the share of successful probes over the window.
A real PostgreSQL server that stops shows failed probes and a breached availability."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml
from onboardkit import items, lab_mesh
from pgserver import PostgresServer

from federation import errors
from federation.onboarding import control, onboard
from federation.platform import Platform
from federation.quality import slo

AVAILABILITY = {"property": "availability", "value": 99.9, "unit": "percent"}


def availability(p, ds) -> slo.SloStatus:
    return next(s for s in control.evaluate_slos(p, [ds]) if s.property == "availability")


def with_availability(root, settings: dict):
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["slaProperties"].append(AVAILABILITY)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    mesh = yaml.safe_load((root / "mesh.yaml").read_text())
    mesh["settings"].update(settings)
    write_yaml(root / "mesh.yaml", mesh)
    return root


def test_too_few_probes_are_at_risk_then_met(tmp_path):
    p = Platform(with_availability(lab_mesh(tmp_path / "lab"), {"availability_min_probes": 3}))
    onboard(p, "lab.items", items(5), p.principal("dev"))
    ds = p.mesh.dataset("lab", "items")
    first = availability(p, ds)
    assert first.status == "at risk" and first.measured == "100.00%"
    assert "1 of 1 probe(s) in the last 30.0 d read the data; too few probes to judge (3 needed)" == first.message
    control.check(p, "lab.items", p.principal("dev"))  # a check probes too
    third = availability(p, ds)
    assert third.status == "met" and third.message == "3 of 3 probe(s) in the last 30.0 d read the data"
    rows = p.query("select property, target, measured, status from system.slo_status where property = "
                   "'availability'", p.principal("ana")).fetchall()
    assert rows == [("availability", "99.9 percent", "100.00%", "met")]
    history = p.query("select status from system.slo_history where property = 'availability' order by at",
                      p.principal("ana")).fetchall()
    assert history == [("at risk",), ("met",)]
    assert p.query("select count(*), bool_and(ok) from system.availability_probes", p.principal("ana")).fetchall() \
        == [(3, True)]
    # probes older than the window do not count (31 days on, every probe so far is older)
    later = datetime.now(timezone.utc) + timedelta(days=31)
    gone = next(s for s in slo.evaluate(p, ds, control.store_of(p), now=later) if s.property == "availability")
    assert (gone.status, gone.message) == ("unknown", "no probe in the last 30.0 d")


@pytest.fixture
def pg():
    server = PostgresServer()
    server.sql("CREATE ROLE quanta_reader LOGIN PASSWORD 'reader-pw'", "CREATE SCHEMA ops",
               "CREATE TABLE ops.accounts (account_id bigint primary key, region text)",
               "INSERT INTO ops.accounts SELECT i, 'EU' FROM generate_series(1, 50) i",
               "GRANT USAGE ON SCHEMA ops TO quanta_reader", "GRANT SELECT ON ALL TABLES IN SCHEMA ops TO quanta_reader")
    yield server
    if server.dir.exists():
        server.stop()


def test_a_stopped_postgres_source_breaches_availability(tmp_path, pg, monkeypatch):
    monkeypatch.setenv("QUANTA_OPS_DB_USER", "quanta_reader")
    monkeypatch.setenv("QUANTA_OPS_DB_PASSWORD", "reader-pw")
    root = shop_mesh(tmp_path / "mesh")
    write_yaml(root / "products" / "ops.odps.yaml", product("ops", domain="shop", owner="olivia"))
    write_yaml(root / "contracts" / "ops.odcs.yaml", contract("ops-contract", [
        {"name": "accounts", "properties": [prop("account_id", "integer", "bigint", primaryKey=True), prop("region")]}],
        servers=[{"server": "ops-db", "type": "postgres", "host": pg.host, "port": pg.port, "database": "postgres",
                  "schema": "ops"}], slaProperties=[AVAILABILITY]))
    p = Platform(root)
    ds = p.mesh.dataset("ops", "accounts")
    engineer = p.principal("olivia")  # the owner
    assert control.check(p, "ops.accounts", engineer).rows == 50
    assert availability(p, ds).status == "at risk"  # 2 good probes: too few to say met
    pg.stop()
    down = availability(p, ds)
    assert down.status == "breached" and down.measured == "66.67%"
    assert "2 of 3 probe(s)" in down.message and "last failure at" in down.message
    with pytest.raises(errors.Unavailable, match="ops.accounts cannot be read"):
        control.check(p, "ops.accounts", engineer)
    probes = control.store_of(p).probes("ops", "accounts")
    assert [x["ok"] for x in probes] == [True, True, False, False]
    assert probes[-1]["reason"] and "reader-pw" not in probes[-1]["reason"]  # the reason, never the password
    ana = p.principal("ana")
    assert p.query("select status from system.slo_status where dataset = 'accounts' and property = 'availability'",
                   ana).fetchall() == [("breached",)]
    assert p.query("select count(*) filter (where not ok) from system.availability_probes where dataset = 'accounts'",
                   ana).fetchall() == [(2,)]
    assert [e for e in control.store_of(p).events("slo_breached") if "availability" in e["message"]]
    # the other quanta are still served
    assert p.query("select count(*) from shop.orders", ana).fetchall() == [(100,)]
