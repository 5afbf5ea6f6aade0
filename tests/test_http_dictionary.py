"""The open dictionary API (no token), "my access" (token), and the OpenAPI description."""

from __future__ import annotations

import re

import pytest
import requests
import yaml
from openapi_spec_validator import validate

from federation.server.http.openapi import SPEC


def get(server, path, token=None, **params):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return requests.get(server.url + path, params=params, headers=headers, timeout=60)


def test_quanta_list_and_search(demo_server):
    r = get(demo_server, "/api/v1/quanta")
    assert r.status_code == 200
    names = {q["quantum"] for q in r.json()["quanta"]}
    assert names == set(demo_server.platform.mesh.quanta)
    first = r.json()["quanta"][0]
    assert {"quantum", "domain", "owner", "description", "datasets", "tags", "links"} <= set(first)
    # ?q= searches names, descriptions, tags, domains and column names
    by_column = {q["quantum"] for q in get(demo_server, "/api/v1/quanta", q="points_balance").json()["quanta"]}
    assert "loyalty" in by_column and "sales" not in by_column
    by_domain = {q["quantum"] for q in get(demo_server, "/api/v1/quanta", q="analytics").json()["quanta"]}
    assert "sales_analytics" in by_domain
    assert get(demo_server, "/api/v1/quanta", q="zzz-nothing").json()["count"] == 0


def test_one_quantum(demo_server):
    q = get(demo_server, "/api/v1/quanta/sales").json()
    assert q["quantum"] == "sales" and q["domain"] == "sales" and q["owner"] == "liam"
    assert {d["dataset"] for d in q["datasets"]} == {"orders", "order_lines", "stores"}
    assert any(p["direction"] == "output" for p in q["ports"])
    r = get(demo_server, "/api/v1/quanta/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_one_dataset_with_columns_contract_lineage_and_examples(demo_server):
    d = get(demo_server, "/api/v1/datasets/customer360/customer_360").json()
    assert d["kind"] == "derived" and d["contract_id"] and d["contract_version"]
    cols = {c["column"]: c for c in d["columns"]}
    assert cols["email"]["classification"] == "pii" and cols["email"]["data_type"] == "VARCHAR"
    up = {f"{n['quantum']}.{n['dataset']}" for n in d["lineage"]["upstream"]}
    down = {f"{n['quantum']}.{n['dataset']}" for n in d["lineage"]["downstream"]}
    assert up == {"customers.customers", "loyalty.members", "returns.returns", "sales.orders"}
    assert down == {"marketing.campaign_audience"}
    assert {"source": "sales.orders", "target": "customer360.customer_360"} in d["lineage"]["edges"]
    assert d["examples"] and all("customer360.customer_360" in e["sql"] for e in d["examples"])
    assert d["links"]["contract"] == f"/api/v1/contracts/{d['contract_id']}"
    # transitive lineage: sales.orders reaches marketing through customer360
    orders = get(demo_server, "/api/v1/datasets/sales/orders").json()
    far = {(n["quantum"], n["dataset"]): n["distance"] for n in orders["lineage"]["downstream"]}
    assert far[("customer360", "customer_360")] == 1 and far[("marketing", "campaign_audience")] == 2
    assert orders["quality"]["declared_rules"]
    assert orders["slo"]["declared"][:3] == [  # the contract's slaProperties (the ODCS models read them)
        {"property": "latency", "value": 1, "unit": "h", "element": "orders.order_ts",
         "description": "Data is available at most 1 hour after the event."},
        {"property": "frequency", "value": 1, "unit": "h", "element": "orders.order_ts"},
        {"property": "retention", "value": 7, "unit": "y", "element": "orders.order_ts"}]
    assert get(demo_server, "/api/v1/datasets/sales/nothing").status_code == 404


def test_dataset_example_queries_run(demo_server):
    d = get(demo_server, "/api/v1/datasets/sales/orders").json()
    for example in d["examples"]:
        r = requests.post(demo_server.url + "/api/v1/query", json={"sql": example["sql"]},
                          headers={"Authorization": f"Bearer {demo_server.tokens['ana']}"}, timeout=60)
        assert r.status_code == 200, (example, r.text)


def test_contract_as_yaml(demo_server):
    d = get(demo_server, "/api/v1/datasets/sales/orders").json()
    r = get(demo_server, f"/api/v1/contracts/{d['contract_id']}")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/yaml")
    mesh = demo_server.platform.mesh
    assert r.content == (mesh.path / mesh.contracts[d["contract_id"]].file).read_bytes()
    assert yaml.safe_load(r.text)["id"] == d["contract_id"]
    assert get(demo_server, "/api/v1/contracts/urn:nothing").status_code == 404


def test_search_customer_email(demo_server):
    r = get(demo_server, "/api/v1/search", q="customer email")
    hits = r.json()["datasets"]
    names = [f"{h['quantum']}.{h['dataset']}" for h in hits]
    assert set(names[:2]) == {"customers.customers", "customer360.customer_360"}
    assert "sales.stores" not in names  # no e-mail column
    assert all(h["score"] > 0 and h["matched"] for h in hits)
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert get(demo_server, "/api/v1/search").status_code == 400
    datasets = get(demo_server, "/api/v1/datasets", q="customer email").json()["datasets"]
    assert [f"{h['quantum']}.{h['dataset']}" for h in datasets] == names


def test_my_access_needs_a_token_and_reads_column_access(demo_server):
    r = get(demo_server, "/api/v1/datasets/loyalty/members/access")
    assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
    ana = get(demo_server, "/api/v1/datasets/loyalty/members/access", token=demo_server.tokens["ana"]).json()
    cols = {c["column"]: c for c in ana["columns"]}
    assert ana["principal"] == "ana" and ana["granted"] is True
    assert cols["email"] == {"column": "email", "access": "masked", "policy": "pii-email-domain"}
    assert cols["tier"]["access"] == "visible"
    paul = get(demo_server, "/api/v1/datasets/loyalty/members/access", token=demo_server.tokens["paul"]).json()
    assert {c["column"]: c["access"] for c in paul["columns"]}["email"] == "visible"
    denied = get(demo_server, "/api/v1/datasets/b2b/accounts/access", token=demo_server.tokens["ana"]).json()
    assert denied["granted"] is False and denied["approvers"]
    assert get(demo_server, "/api/v1/datasets/b2b/nothing/access", token=demo_server.tokens["ana"]).status_code == 404


def test_domains(demo_server):
    body = get(demo_server, "/api/v1/domains").json()
    assert body["mesh"] == "greatparts"
    by_name = {d["domain"]: d for d in body["domains"]}
    assert "customer360" in by_name["customers"]["quanta"] and "customers" in by_name["customers"]["quanta"]


# -- OpenAPI --------------------------------------------------------------------------------------------


def test_openapi_is_valid_and_served(demo_server):
    validate(SPEC)
    served = get(demo_server, "/api/v1/openapi.json").json()
    assert served == SPEC


def test_every_route_is_described(demo_server):
    paths = SPEC["paths"]
    missing = []
    for rule in demo_server.app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        path = re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            if path not in paths or method.lower() not in paths[path]:
                missing.append(f"{method} {path}")
    assert not missing, missing
    # and nothing described that does not exist
    rules = {re.sub(r"<(?:[a-z]+:)?([a-z_]+)>", r"{\1}", r.rule) for r in demo_server.app.url_map.iter_rules()}
    assert set(paths) <= rules


@pytest.mark.parametrize("path", ["/api/v1/quanta", "/api/v1/datasets", "/api/v1/domains", "/api/v1/search?q=x",
                                  "/api/v1/quanta/sales", "/api/v1/datasets/sales/orders", "/healthz", "/readyz"])
def test_open_endpoints_need_no_token(demo_server, path):
    r = requests.get(demo_server.url + path, timeout=60)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/json")


def test_dataset_shows_the_latest_quality_check_and_slo_status(demo_server):
    """Shown to a principal who may read the dataset (ana); not to an anonymous visitor."""
    control = pytest.importorskip("federation.onboarding.control")
    ana = demo_server.tokens["ana"]
    before = get(demo_server, "/api/v1/datasets/sales/stores", ana).json()
    assert before["quality"]["status"] == "not checked yet" and before["quality"]["results"] == []
    platform = demo_server.platform
    run = control.check(platform, "sales.stores", platform.principal("liam"))
    after = get(demo_server, "/api/v1/datasets/sales/stores", ana).json()
    quality = after["quality"]
    assert quality["status"] in ("pass", "warn", "fail", "error") and quality["results"]
    assert sum(quality["counts"].values()) == len(quality["results"]) == len(run.results)
    assert re.match(r"\d{4}-\d\d-\d\dT", quality["checked_at"])  # ISO 8601
    assert after["slo"]["status"] in ("met", "at risk", "breached", "not measured yet")
    page = requests.get(demo_server.url + "/quanta/sales/stores", headers={"Authorization": f"Bearer {ana}"},
                        timeout=60).text
    assert f'id="quality-status">{quality["status"]}<' in page and 'id="quality-results"' in page
    anonymous = get(demo_server, "/api/v1/datasets/sales/stores").json()
    assert anonymous["quality"]["status"] == "not shown" and anonymous["quality"]["results"] == []
