"""OpenLineage events: mesh lineage and query runs, to an NDJSON file and to a real HTTP consumer."""

from __future__ import annotations

import json
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import yaml
from meshkit import shop_mesh, write_yaml

import federation
from federation.platform import Platform

SPEC = "https://openlineage.io/spec/"


def _check_event(ev: dict) -> None:
    """The shape the OpenLineage spec requires of a run event."""
    assert ev["eventType"] in ("START", "COMPLETE", "FAIL") and ev["eventTime"] and ev["producer"]
    assert ev["schemaURL"].startswith(SPEC)
    assert len(ev["run"]["runId"]) == 36 and ev["job"]["namespace"] and ev["job"]["name"]
    for ds in ev.get("inputs", []) + ev.get("outputs", []):
        assert ds["namespace"].startswith("quanta://") and "." in ds["name"]
        for facet in ds.get("facets", {}).values():
            assert facet["_schemaURL"].startswith(SPEC) and facet["_producer"]


def test_mesh_lineage_to_ndjson_with_column_lineage(tmp_path):
    root = shop_mesh(tmp_path)
    out = tmp_path / "events.ndjson"
    p = subprocess.run(["quanta", "openlineage", "emit", "--mesh", str(root), "--file", str(out)],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    events = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(events) == 1
    ev = events[0]
    _check_event(ev)
    assert ev["eventType"] == "COMPLETE" and "sql" in ev["job"]["facets"]
    assert {i["name"] for i in ev["inputs"]} == {"shop.orders", "crm.customers"}
    out_ds = ev["outputs"][0]
    assert out_ds["name"] == "report.sales_by_region"
    fields = out_ds["facets"]["columnLineage"]["fields"]
    revenue = fields["revenue"]["inputFields"][0]
    assert (revenue["name"], revenue["field"]) == ("shop.orders", "amount")
    assert revenue["transformations"][0]["subtype"] == "AGGREGATION"
    assert [f["name"] for f in ev["inputs"][0]["facets"]["schema"]["fields"]]


def test_query_events_reach_an_http_consumer(tmp_path):
    received: list[dict] = []

    class Consumer(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(201)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Consumer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        root = shop_mesh(tmp_path)
        mesh = yaml.safe_load((root / "mesh.yaml").read_text())
        mesh["settings"] = {"openlineage": {"url": f"http://127.0.0.1:{server.server_port}", "queries": True}}
        write_yaml(root / "mesh.yaml", mesh)
        platform = Platform(root)
        conn = federation.Connection(platform, platform.principal("ana"))
        conn.sql("select count(*) from report.sales_by_region").fetchall()
        try:
            conn.sql("select nope from shop.orders").fetchall()
        except federation.Error:
            pass
    finally:
        server.shutdown()
    kinds = [e["eventType"] for e in received]
    assert kinds == ["START", "COMPLETE", "START", "FAIL"], kinds
    for ev in received:
        _check_event(ev)
    assert received[0]["run"]["runId"] == received[1]["run"]["runId"] != received[2]["run"]["runId"]
    assert {i["name"] for i in received[1]["inputs"]} >= {"report.sales_by_region", "shop.orders", "crm.customers"}
    assert "errorMessage" in received[3]["run"]["facets"]


def test_onboarding_and_mart_refresh_runs_with_quality_facets(tmp_path):
    from meshkit import contract, product, prop

    from federation.onboarding.marts import refresh
    from federation.onboarding.pipeline import OnboardingRejected, onboard

    root = shop_mesh(tmp_path, governance={"principals": [{"name": "olivia", "roles": ["data_engineer"]}],
                                           "grants": [{"to": {"role": "data_engineer"}, "on": "*"}]})
    out = tmp_path / "ol.ndjson"
    mesh = yaml.safe_load((root / "mesh.yaml").read_text())
    mesh["settings"] = {"openlineage": {"file": str(out)}}
    write_yaml(root / "mesh.yaml", mesh)
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    c["schema"][0]["customProperties"].append({"property": "materialize", "value": True})
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["schema"][0]["quality"] = [{"type": "library", "metric": "rowCount", "mustBeGreaterThan": 10,
                                  "severity": "error"}]
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    p = Platform(root)
    olivia = p.principal("olivia")
    batch = federation.Connection(p, olivia).sql("select * from shop.orders").arrow()
    onboard(p, "shop.orders", batch, olivia)
    try:
        onboard(p, "shop.orders", batch.slice(0, 3), olivia)  # too few rows: refused
    except OnboardingRejected:
        pass
    refresh(p, "report.sales_by_region", olivia)
    events = [json.loads(line) for line in out.read_text().splitlines()]
    for ev in events:
        _check_event(ev)
    runs = [(e["job"]["name"].split(".", 1)[1], e["eventType"]) for e in events]
    assert runs[:4] == [("onboard.shop.orders", "START"), ("onboard.shop.orders", "COMPLETE"),
                        ("onboard.shop.orders", "START"), ("onboard.shop.orders", "FAIL")]
    assert ("refresh.report.sales_by_region", "COMPLETE") in runs
    ok = events[1]
    assert ok["inputs"][0]["inputFacets"]["dataQualityMetrics"]["rowCount"] == 100
    assertions = ok["inputs"][0]["facets"]["dataQualityAssertions"]["assertions"]
    assert any(a["success"] for a in assertions)
    failed = events[3]
    assert any(not a["success"] for a in failed["inputs"][0]["facets"]["dataQualityAssertions"]["assertions"])
    assert "errorMessage" in failed["run"]["facets"]
    mart = next(e for e in events if e["job"]["name"].endswith("refresh.report.sales_by_region")
                and e["eventType"] == "COMPLETE")
    assert "columnLineage" in mart["outputs"][0]["facets"]
    assert {i["name"] for i in mart["inputs"]} == {"shop.orders", "crm.customers"}
