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
