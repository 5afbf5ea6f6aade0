"""The embedded demo mesh, Great Parts: generated data, what it must show, and the README's examples."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import pytest

import federation
from federation import demo, errors
from federation.platform import Platform

ROOT = Path(__file__).resolve().parent.parent


def test_demo_mesh_loads_without_problems(demo_path):
    mesh = Platform(demo_path).mesh
    assert [p for p in mesh.problems if p.severity == "error"] == []
    assert len(mesh.domains) >= 5 and len(mesh.quanta) >= 8
    derived = {q.name for q in mesh.quanta.values() if any(d.sql for d in q.datasets.values())}
    assert {"customer360", "sales_analytics", "marketing"} <= derived
    kinds = {d.source.kind for d in mesh.datasets() if d.source}
    assert kinds == {"parquet", "csv", "json", "duckdb"}


def test_demo_has_pii_regions_quality_and_slas(demo_conn):
    pii = {r[0] for r in demo_conn.sql("select \"column\" from system.columns where classification = 'pii'").fetchall()}
    assert {"first_name", "email", "phone", "street_address", "ip_address"} <= pii
    dev = federation.Connection(demo_conn.platform, demo_conn.platform.principal("dev"))
    regions = {r[0] for r in dev.sql("select distinct region from customers.customers").fetchall()}
    assert regions == {"EU", "US", "CA"}
    mesh = demo_conn.platform.mesh
    assert sum(len(d.quality) + sum(len(c.quality) for c in d.columns) for d in mesh.datasets()) >= 10
    with_sla = [cid for q in mesh.quanta.values() for cid in q.contracts if mesh.contracts[cid].raw.get("slaProperties")]
    assert len(with_sla) >= 8


def test_generation_is_seeded_and_scaled(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for target in (a, b):
        shutil.copytree(ROOT / "catalogs" / "greatparts", target, ignore=shutil.ignore_patterns("data", ".quanta"))
    sa = demo.generate(a, scale=0.01, seed=3)
    sb = demo.generate(b, scale=0.01, seed=3)
    assert sa == sb

    def digest(root: Path) -> str:
        h = hashlib.sha256()
        for f in sorted((root / "data").rglob("*")):
            if f.is_file() and f.suffix in (".parquet", ".csv", ".json") and not f.name.startswith("_"):
                h.update(f.read_bytes())
        return h.hexdigest()

    assert digest(a) == digest(b)
    bigger = demo.generate(b, scale=0.02, seed=3)
    assert sum(bigger.values()) > 1.8 * sum(sa.values())


def test_same_query_two_users(demo_conn):
    """The README's example: ana (analyst, US/CA) and paul (cleared for personal data, all regions)."""
    sql = ("select customer_id, full_name, email, region from customer360.customer_360 "
           "order by customer_id limit 200")
    ana = demo_conn.sql(sql).fetchall()
    paul = federation.Connection(demo_conn.platform, demo_conn.platform.principal("paul")).sql(sql).fetchall()
    assert {r[3] for r in ana} <= {"US", "CA"} and "EU" in {r[3] for r in paul}
    assert all(r[1] == "****" and r[2].startswith("***@") for r in ana)
    assert all("@" in r[2] and not r[2].startswith("***") for r in paul)


def test_readme_examples_run(demo_path):
    conn = federation.connect(str(demo_path), user="ana")
    assert conn.sql("select region, sum(amount) from sales.orders group by 1").pl().height == 2  # no EU (residency)
    assert conn.sql("select * from system.columns where classification = 'pii'").arrow().num_rows > 10
    assert conn.sql("select count(*) from loyalty.members").fetchone()[0] > 0
    with pytest.raises(errors.AccessDenied):
        conn.sql("select * from b2b.accounts")
    marco = federation.connect(str(demo_path), user="marco", purpose="marketing")
    assert marco.sql("select count(*) from marketing.campaign_audience").fetchone()[0] > 0


def test_readme_code_blocks_name_real_things():
    """Every dataset the README queries exists in the demo mesh."""
    text = (ROOT / "README.md").read_text()
    mesh = Platform.open(ROOT / "catalogs" / "greatparts").mesh if (ROOT / "catalogs" / "greatparts" / "data").exists() \
        else None
    names = {n for n in re.findall(r"\b(?:from|join)\s+([a-z_0-9]+\.[a-z_0-9]+)", text)
             if not n.startswith("federation.")}  # python imports, not datasets
    from federation.catalog import load_mesh

    mesh = mesh or load_mesh(ROOT / "catalogs" / "greatparts")
    known = {f"{d.quantum}.{d.name}" for d in mesh.datasets()} | {
        f"system.{t}" for t in ("domains", "quanta", "datasets", "columns", "contracts", "ports", "lineage", "problems",
                                "principals", "grants", "policies", "column_access", "query_log", "column_lineage")} | {
        "b2b_live.accounts"}  # set up by `quanta demo --postgres` (tests/test_federated_sources.py)
    assert names and names <= known, names - known
