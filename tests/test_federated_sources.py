"""Quanta whose data lives in PostgreSQL (a real server), SQLite, Delta and Iceberg tables, joined with
file-based quanta under the same contracts and policies."""

from __future__ import annotations

import sqlite3
import subprocess

import pyarrow as pa
import pytest
import yaml
from meshkit import contract, local_server, product, prop, shop_mesh, write_yaml
from pgserver import PostgresServer

import federation
from federation import errors
from federation.platform import Platform

PASSWORD = "s3cret-Reader-pw"

GOVERNANCE = {
    "principals": [{"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
                   {"name": "pia", "roles": ["analyst", "pii_reader"], "attributes": {"regions": ["EU", "US", "CA"]}}],
    "grants": [{"to": {"role": "analyst"}, "on": "*"}],
    "policies": [
        {"name": "mask-contact", "kind": "mask", "on": {"tag": "contact"}, "mask": "email_domain",
         "unless": {"roles": ["pii_reader"]}},
        {"name": "residency", "kind": "row_filter", "on": {"column": "region"},
         "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')"},
    ],
}


@pytest.fixture(scope="module")
def pg():
    server = PostgresServer()
    server.sql(
        f"CREATE ROLE quanta_reader LOGIN PASSWORD '{PASSWORD}'",
        "CREATE SCHEMA b2b",
        "CREATE TABLE b2b.accounts (account_id bigint primary key, company text not null, contact_email text, "
        "region text, customer_id bigint, credit numeric(12,2))",
        "INSERT INTO b2b.accounts SELECT i, 'company ' || i, 'buyer' || i || '@corp' || (i % 3) || '.example', "
        "CASE i % 3 WHEN 0 THEN 'EU' WHEN 1 THEN 'US' ELSE 'CA' END, (i % 30) + 1, i * 10 "
        "FROM generate_series(1, 3000) i",
        "GRANT USAGE ON SCHEMA b2b TO quanta_reader",
        "GRANT SELECT ON ALL TABLES IN SCHEMA b2b TO quanta_reader",
    )
    yield server
    server.stop()


def pg_quantum(root, pg, port=None, declared=None, secrets_in="env"):
    props = declared or [
        prop("account_id", "integer", "bigint", primaryKey=True),
        prop("company"),
        prop("contact_email", classification="pii", tags=["contact"]),
        prop("region"),
        prop("customer_id", "integer", "bigint"),
        prop("credit", "number", "decimal(12,2)"),
    ]
    write_yaml(root / "products" / "b2b.odps.yaml", product("b2b", domain="shop"))
    write_yaml(root / "contracts" / "b2b.odcs.yaml", contract("b2b-contract", [
        {"name": "accounts", "description": "B2B accounts, live from the operational database", "properties": props}],
        servers=[{"server": "b2b-db", "type": "postgres", "host": pg.host, "port": port or pg.port,
                  "database": "postgres", "schema": "b2b"}]))
    if secrets_in == "file":
        mesh = yaml.safe_load((root / "mesh.yaml").read_text())
        mesh["secrets"] = "secrets.yaml"
        write_yaml(root / "mesh.yaml", mesh)
        write_yaml(root / "secrets.yaml", {"servers": {"b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"}}})
    return root


@pytest.fixture
def creds(monkeypatch):
    monkeypatch.setenv("QUANTA_B2B_DB_USER", "quanta_reader")
    monkeypatch.setenv("QUANTA_B2B_DB_PASSWORD", PASSWORD)


def test_postgres_quantum_is_served_live(tmp_path, pg, creds):
    p = Platform(pg_quantum(shop_mesh(tmp_path), pg))
    assert not [x for x in p.mesh.problems if x.severity == "error"], p.mesh.problems
    conn = federation.Connection(p, p.principal("x"))
    r = conn.sql("select * from b2b.accounts order by account_id limit 2")
    assert r.columns == ["account_id", "company", "contact_email", "region", "customer_id", "credit"]
    assert r.types[-1] == "DECIMAL(12,2)"
    assert r.fetchall()[0][:2] == (1, "company 1")
    # live: a change in PostgreSQL is seen at once, without copying
    pg.sql("UPDATE b2b.accounts SET company = 'renamed' WHERE account_id = 1")
    assert conn.sql("select company from b2b.accounts where account_id = 1").fetchone() == ("renamed",)


def test_credentials_from_the_secrets_file(tmp_path, pg, monkeypatch):
    monkeypatch.setenv("B2B_PW", PASSWORD)
    p = Platform(pg_quantum(shop_mesh(tmp_path), pg, secrets_in="file"))
    assert federation.Connection(p, p.principal("x")).sql("select count(*) from b2b.accounts").fetchone() == (3000,)


def test_cross_source_governed_join(tmp_path, pg, creds):
    p = Platform(pg_quantum(shop_mesh(tmp_path, governance=GOVERNANCE), pg))
    sql = ("select a.region, count(distinct a.account_id) as accounts, min(a.contact_email) as an_email, "
           "sum(o.amount) as revenue from b2b.accounts a join shop.orders o on o.customer_id = a.customer_id "
           "group by a.region order by a.region")
    ana = federation.Connection(p, p.principal("ana")).sql(sql)
    rows = ana.fetchall()
    assert [r[0] for r in rows] == ["CA", "US"]  # EU rows filtered at the source
    assert all(r[2].startswith("***@") for r in rows)
    assert {x["policy"] for x in ana.policies} >= {"mask-contact", "residency"}
    pia = federation.Connection(p, p.principal("pia")).sql(sql).fetchall()
    assert [r[0] for r in pia] == ["CA", "EU", "US"] and "buyer" in pia[0][2]


def test_filters_and_row_filters_are_pushed_down_to_postgres(tmp_path, pg, creds):
    p = Platform(pg_quantum(shop_mesh(tmp_path, governance=GOVERNANCE), pg))
    plan = p.compile("select company from b2b.accounts where account_id < 10", p.principal("ana"))
    explain = "\n".join(str(r[1]) for r in p.state.backend.db.execute("EXPLAIN " + plan.sql).fetchall())
    scan = explain[explain.index("POSTGRES_SCAN"):]
    assert "account_id<10" in scan.replace(" ", "")  # the user's filter reaches PostgreSQL
    filters = scan[scan.index("Filters:"):].replace(" ", "")
    assert "region!='EU'" in filters  # and the governance row filter too (ana's regions exclude EU)
    assert "contact_email" not in scan  # projection pushdown: unread columns are not fetched


def test_contract_checked_against_the_live_table(tmp_path, pg, creds):
    declared = [prop("account_id", "integer", "bigint"), prop("vat_number")]
    mesh = Platform(pg_quantum(shop_mesh(tmp_path), pg, declared=declared)).mesh
    problem = next(x for x in mesh.problems if "vat_number" in x.message)
    assert problem.severity == "error" and "the data has" in problem.message and "company" in problem.message
    assert "b2b" not in mesh.quanta and "shop" in mesh.quanta


def test_unreachable_source_degrades_gracefully(tmp_path, pg, creds):
    import socket

    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    root = pg_quantum(shop_mesh(tmp_path), pg, port=dead)
    p = Platform(root)
    assert "b2b" not in p.mesh.quanta and "shop" in p.mesh.quanta  # the rest of the mesh is served
    conn = federation.Connection(p, p.principal("x"))
    status = conn.sql("select availability from system.quanta where quantum = 'b2b'").fetchone()[0]
    assert status.startswith("unavailable") and "unreachable" in status
    with pytest.raises(errors.Unavailable, match="quantum b2b is unavailable"):
        conn.sql("select * from b2b.accounts")
    assert conn.sql("select count(*) from shop.orders").fetchone() == (100,)
    out = subprocess.run(["quanta", "validate", str(root)], capture_output=True, text=True)
    assert out.returncode == 0 and "unreachable" in out.stdout  # an operational state, not a broken contract
    everything = out.stdout + out.stderr + status + repr(p.mesh.problems)
    assert PASSWORD not in everything


def test_credentials_in_a_contract_are_refused(tmp_path, pg):
    root = pg_quantum(shop_mesh(tmp_path), pg)
    c = yaml.safe_load((root / "contracts" / "b2b.odcs.yaml").read_text())
    c["servers"][0]["customProperties"] = [{"property": "password", "value": "hunter2"}]
    write_yaml(root / "contracts" / "b2b.odcs.yaml", c)
    mesh = Platform(root).mesh
    assert any("credentials never go in a contract" in x.message for x in mesh.problems)
    assert "hunter2" not in repr(mesh.problems)


def test_sqlite_delta_and_iceberg_sources(tmp_path):
    from deltalake import write_deltalake
    from pyiceberg.catalog.sql import SqlCatalog

    root = shop_mesh(tmp_path)
    data = root / "data" / "lake"
    data.mkdir(parents=True)
    db = sqlite3.connect(data / "stores.sqlite")
    db.execute("create table stores (store_id integer, city text)")
    db.executemany("insert into stores values (?, ?)", [(1, "Lyon"), (2, "Porto")])
    db.commit()
    db.close()
    table = pa.table({"part_id": pa.array([1, 2, 3], pa.int64()), "name": ["brake", "filter", "wiper"]})
    write_deltalake(str(data / "parts_delta"), table)
    catalog = SqlCatalog("local", uri=f"sqlite:///{data / 'iceberg.db'}", warehouse=f"file://{data / 'wh'}")
    catalog.create_namespace("lake")
    iceberg = catalog.create_table("lake.parts", schema=table.schema)
    iceberg.append(table)
    metadata = iceberg.metadata_location.removeprefix("file://")
    write_yaml(root / "products" / "lake.odps.yaml", product("lake"))
    write_yaml(root / "contracts" / "lake.odcs.yaml", contract("lake-contract", [
        {"name": "stores", "customProperties": [{"property": "server", "value": "sqlite"}],
         "properties": [prop("store_id", "integer", "bigint"), prop("city")]},
        {"name": "parts", "customProperties": [{"property": "server", "value": "delta"}],
         "properties": [prop("part_id", "integer", "bigint"), prop("name")]},
        {"name": "parts_iceberg", "customProperties": [{"property": "server", "value": "iceberg"}],
         "properties": [prop("part_id", "integer", "bigint"), prop("name")]},
    ], servers=[local_server("lake/stores.sqlite", "sqlite", name="sqlite"),
                local_server("lake/parts_delta", "delta", name="delta"),
                local_server(metadata, "iceberg", name="iceberg")]))
    p = Platform(root)
    assert not [x for x in p.mesh.problems if x.severity == "error"], p.mesh.problems
    conn = federation.Connection(p, p.principal("x"))
    assert conn.sql("select city from lake.stores order by store_id").fetchall() == [("Lyon",), ("Porto",)]
    assert conn.sql("select count(*) from lake.parts p join lake.parts_iceberg i using (part_id)").fetchone() == (3,)
    # one query over SQLite, Delta, Iceberg, Parquet and CSV
    assert conn.sql("select count(*) from lake.stores s, lake.parts p, lake.parts_iceberg i, shop.orders o, "
                    "crm.customers c where s.store_id = 1 and p.part_id = i.part_id and i.part_id = 1 "
                    "and o.customer_id = c.id").fetchone() == (100,)


def test_demo_serves_b2b_accounts_live_from_postgres(demo_path, pg, tmp_path):
    """`quanta demo --postgres DSN`: the B2B accounts move to PostgreSQL and are joined live with files."""
    import shutil

    from federation import demo

    mesh = tmp_path / "greatparts"
    shutil.copytree(demo_path, mesh, ignore=shutil.ignore_patterns(".quanta"))
    pg.sql("CREATE DATABASE greatparts_ops")
    summary = demo.setup_postgres(mesh, pg.dsn(dbname="greatparts_ops"))
    assert summary["b2b_live.accounts"] > 0
    assert (mesh / "live" / "secrets.yaml").stat().st_mode & 0o077 == 0  # readable by its owner only
    assert list(yaml.safe_load((mesh / "live" / "secrets.yaml").read_text())["servers"]) == ["b2b_live/b2b-operational"]
    assert "postgres-admin" not in (mesh / "live" / "b2b_live.odcs.yaml").read_text()
    p = Platform(mesh)
    assert "b2b_live" in p.mesh.quanta, p.mesh.problems
    fiona = federation.Connection(p, p.principal("fiona"))
    rows = fiona.sql("select a.region, count(distinct a.account_id), sum(o.amount) from b2b_live.accounts a "
                     "join b2b.b2b_orders o using (account_id) group by 1 order by 1").fetchall()
    assert [r[0] for r in rows] == ["CA", "EU", "US"]
    ana = federation.Connection(p, p.principal("ana"))
    assert "credit_limit" not in ana.sql("select * from b2b_live.accounts limit 1").columns  # restricted: denied


def test_onboard_a_snapshot_from_a_postgres_query(tmp_path, pg, creds):
    """A domain that wants immutable versions onboards from its operational database."""
    from federation.onboarding.pipeline import onboard
    from federation.onboarding.sources import from_postgres

    root = pg_quantum(shop_mesh(tmp_path), pg)  # b2b-db is a server of the b2b contract
    write_yaml(root / "products" / "archive.odps.yaml", product("archive", owner="olivia"))
    write_yaml(root / "contracts" / "archive.odcs.yaml", contract("archive-contract", [{
        "name": "accounts", "properties": [prop("account_id", "integer", "bigint", required=True),
                                           prop("company"), prop("region")]}],
        servers=[{"server": "wh", "type": "local", "path": "../warehouse/archive/accounts/*/*.parquet",
                  "format": "parquet"}]))
    p = Platform(root)
    batch = from_postgres(p, "b2b-db", "select account_id, company, region from b2b.accounts where region = 'US'",
                          p.principal("olivia"))  # olivia owns b2b too: she may read its server
    assert batch.num_rows == 1000
    report = onboard(p, "archive.accounts", batch, p.principal("olivia"))
    assert report.version == 1 and report.rows_published == 1000
    conn = federation.Connection(p, p.principal("olivia"))
    assert conn.sql("select count(*), min(region), max(region) from archive.accounts").fetchone() == (1000, "US", "US")
    before = dict(zip(batch.column("account_id").to_pylist(), batch.column("company").to_pylist()))[4]
    pg.sql("UPDATE b2b.accounts SET company = 'later' WHERE account_id = 4")  # a snapshot: later changes don't show
    assert conn.sql("select company from archive.accounts where account_id = 4").fetchone() == (before,)
    assert before != "later"
    out = subprocess.run(["quanta", "onboard", "archive.accounts", "--mesh", str(root), "-u", "olivia",
                          "--postgres", "b2b-db", "--query", "select account_id, company, region from b2b.accounts"],
                         capture_output=True, text=True, env={**__import__("os").environ})
    assert out.returncode == 0, out.stderr
    assert "v2" in out.stdout and PASSWORD not in out.stdout + out.stderr
    with pytest.raises(errors.Unavailable):
        from_postgres(p, f"host=127.0.0.1 port=1 dbname=x user=u password={PASSWORD}", "select 1",
                      p.principal("olivia"))
    # b2b's server with b2b's credentials: not for the owner of another quantum (raw rows, around b2b's policies)
    gov = yaml.safe_load((root / "products" / "b2b.odps.yaml").read_text())
    assert gov["team"]["members"][0]["username"] == "olivia"
    write_yaml(root / "products" / "archive.odps.yaml", product("archive", owner="ana"))
    q = Platform(root)
    with pytest.raises(errors.AccessDenied, match="b2b"):
        from_postgres(q, "b2b-db", "select account_id from b2b.accounts", q.principal("ana"))
