"""The control plane over HTTP: onboarding by upload or allowed path, checks, rules, rollback, versions;
owners and data engineers only. A real server on loopback, on a private copy of the demo mesh."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
import pytest
import requests

import federation
from federation.platform import Platform
from federation.server.http import Server, create_app


@pytest.fixture
def control(demo_path, tmp_path):
    mesh = tmp_path / "greatparts"
    shutil.copytree(demo_path, mesh, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    drop = tmp_path / "drop"
    drop.mkdir()
    platform = Platform(mesh)
    server = Server(create_app(platform, {"QUANTA_ONBOARD_FOLDERS": [str(drop)]}), port=0).start()
    tokens = {u: platform.tokens.create(u, 1)[0] for u in ("liam", "ana")}
    batch = federation.Connection(platform, platform.principal("liam")).sql(
        "select * from sales.orders").arrow()
    pq.write_table(batch, drop / "orders.parquet")
    yield server.url, tokens, drop, batch.num_rows, platform
    server.stop()


def call(method, url, token, **kw):
    return requests.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


def test_onboard_by_upload_then_rollback(control):
    url, tokens, drop, rows, platform = control
    base = f"{url}/api/v1/datasets/sales/orders"
    with open(drop / "orders.parquet", "rb") as f:
        r = call("POST", f"{base}/versions", tokens["ana"], files={"file": ("orders.parquet", f)})
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"
    with open(drop / "orders.parquet", "rb") as f:
        r = call("POST", f"{base}/versions", tokens["liam"], files={"file": ("orders.parquet", f)})
    assert r.status_code == 201, r.text
    assert r.json()["version"] == 1 and r.json()["rows_published"] == rows
    r = call("POST", f"{base}/versions", tokens["liam"], json={"path": str(drop / "orders.parquet")})
    assert r.status_code == 201 and r.json()["version"] == 2
    versions = call("GET", f"{base}/versions", tokens["ana"]).json()["versions"]
    assert [v["version"] for v in versions] == [1, 2]
    r = call("POST", f"{base}/rollback", tokens["liam"], json={"version": 1})
    assert r.status_code == 200
    liam = federation.Connection(platform, platform.principal("liam"))
    assert liam.sql("select count(*) from sales.orders").fetchone() == (rows,)


def test_refusals_and_bad_batches(control, tmp_path):
    url, tokens, drop, _, _ = control
    base = f"{url}/api/v1/datasets/sales/orders"
    outside = tmp_path / "elsewhere.parquet"
    shutil.copy(drop / "orders.parquet", outside)
    r = call("POST", f"{base}/versions", tokens["liam"], json={"path": str(outside)})
    assert r.status_code == 403 and "may not read that path" in r.json()["error"]["message"]
    r = call("POST", f"{base}/versions", tokens["liam"], files={"file": ("x.txt", b"nope")})
    assert r.status_code == 400
    bad = drop / "bad.csv"
    bad.write_text("order_id,amount\n1,2\n")
    r = call("POST", f"{base}/versions", tokens["liam"], json={"path": str(bad)})
    assert r.status_code == 422 and r.json()["error"]["code"] == "batch_refused"
    assert r.json()["report"]["problems"]
    assert call("POST", f"{base}/versions", None, json={"path": str(bad)}).status_code == 401


def test_checks_and_rules(control):
    url, tokens, _, _, _ = control
    base = f"{url}/api/v1/datasets/sales/orders"
    r = call("POST", f"{base}/checks", tokens["liam"])
    assert r.status_code == 200 and r.json()["results"]
    rules = [{"type": "library", "metric": "rowCount", "mustBeGreaterThan": 10, "severity": "error"}]
    assert call("PUT", f"{base}/rules", tokens["ana"], json=rules).status_code == 403
    r = call("PUT", f"{base}/rules", tokens["liam"], json=rules)
    assert r.status_code == 200
    r = call("PUT", f"{base}/rules", tokens["liam"], json=[{"type": "library", "metric": "nonsense"}])
    assert r.status_code == 400
