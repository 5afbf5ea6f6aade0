"""The HTTP service's query endpoint, against a real waitress server on a loopback port.

Every query goes through the platform's pipeline: the same query by two tokens returns what the two
principals get in-process; errors are JSON with stable codes and never a stack trace.
"""

from __future__ import annotations

import csv
import io
import json
import threading
import time

import pyarrow as pa
import requests

import federation
from federation.platform import Platform
from federation.server.http import Server, create_app

ARROW = "application/vnd.apache.arrow.stream"


def post(server, sql, user="ana", accept=None, token=None, **body):
    headers = {}
    if accept:
        headers["Accept"] = accept
    tok = token if token is not None else server.tokens.get(user)
    if tok:
        headers["Authorization"] = f"Bearer {tok}"
    return requests.post(server.url + "/api/v1/query", json={"sql": sql, **body}, headers=headers, timeout=120)


def assert_json_error(response, status, code):
    assert response.status_code == status, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    assert body["error"]["message"] and body["error"]["sqlstate"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body["error"]


# -- formats ----------------------------------------------------------------------------------------


def test_json_answer_has_columns_types_rows_policies(demo_server):
    r = post(demo_server, "select member_id, email, region from loyalty.members order by member_id limit 5")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["columns"] == [{"name": "member_id", "type": "BIGINT"}, {"name": "email", "type": "VARCHAR"},
                               {"name": "region", "type": "VARCHAR"}]
    assert len(body["rows"]) == 5 and body["row_count"] == 5 and body["truncated"] is False
    assert all(row[1].startswith("***@") for row in body["rows"] if row[1])  # ana sees e-mail domains only
    applied = {(p["policy"], p["column"]) for p in body["policies"]}
    assert ("pii-email-domain", "email") in applied and ("eu-residency", None) in applied
    assert all(row[2] != "EU" for row in body["rows"])  # the residency filter


def test_json_is_truncated_at_max_rows(demo_server):
    total = federation.connect(str(demo_server.platform.path), user="ana").sql(
        "select count(*) from sales.orders").fetchall()[0][0]
    r = post(demo_server, "select order_id from sales.orders", max_rows=7)
    body = r.json()
    assert body["truncated"] is True and body["row_count"] == 7 and len(body["rows"]) == 7 and total > 7
    r = post(demo_server, "select order_id from sales.orders limit 7", max_rows=7)
    assert r.json()["truncated"] is False


def test_json_row_cap_of_the_app_config(demo_path):
    platform = Platform.open(demo_path)
    token = platform.tokens.create("ana", 1)[0]
    with Server(create_app(platform, {"QUANTA_MAX_ROWS": 3}), port=0) as server:
        r = requests.post(server.url + "/api/v1/query", json={"sql": "select order_id from sales.orders",
                                                               "max_rows": 100},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
    assert r.json()["row_count"] == 3 and r.json()["truncated"] is True and r.json()["max_rows"] == 3


def test_json_values_decimals_dates_and_parameters(demo_server):
    r = post(demo_server, "select order_id, amount, order_date from sales.orders where order_id = ?",
             parameters=[1])
    body = r.json()
    assert body["rows"] and body["rows"][0][0] == 1
    expected = federation.connect(str(demo_server.platform.path), user="ana").sql(
        "select order_id, amount, order_date from sales.orders where order_id = 1").fetchall()[0]
    assert body["rows"][0] == [1, str(expected[1]), expected[2].isoformat()]
    assert body["columns"][1]["type"].startswith("DECIMAL")


def test_csv_stream(demo_server):
    sql = "select order_id, region, amount from sales.orders order by order_id"
    r = post(demo_server, sql, accept="text/csv")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["order_id", "region", "amount"]
    expected = federation.connect(str(demo_server.platform.path), user="ana").sql(sql).fetchall()
    assert len(rows) - 1 == len(expected) > 1000  # no row cap on streams
    assert [int(rows[1][0]), rows[1][1]] == [expected[0][0], expected[0][1]]
    assert json.loads(r.headers["X-Quanta-Column-Types"])[0] == "BIGINT"


def test_ndjson_stream(demo_server):
    r = post(demo_server, "select member_id, email from loyalty.members order by 1 limit 50",
             accept="application/x-ndjson")
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in r.text.splitlines()]
    assert len(lines) == 50 and set(lines[0]) == {"member_id", "email"}
    policies = json.loads(r.headers["X-Quanta-Policies"])
    assert any(p["policy"] == "pii-email-domain" for p in policies)


def test_arrow_stream_equals_in_process_result(demo_server):
    sql = "select * from sales.order_lines order by order_id, line_no"
    r = post(demo_server, sql, accept=ARROW)
    assert r.status_code == 200 and r.headers["Content-Type"] == ARROW
    assert "Content-Length" not in r.headers and r.headers.get("Transfer-Encoding") == "chunked"  # streamed
    reader = pa.ipc.open_stream(r.content)
    table = reader.read_all()
    expected = federation.connect(str(demo_server.platform.path), user="ana").sql(sql).arrow()
    assert table.num_rows == expected.num_rows > 10_000
    assert table.equals(expected)


def test_arrow_stream_of_an_empty_result(demo_server):
    r = post(demo_server, "select order_id from sales.orders where order_id < 0", format="arrow")
    table = pa.ipc.open_stream(r.content).read_all()
    assert table.num_rows == 0 and table.column_names == ["order_id"]


def test_format_field_overrides_accept_and_unknown_accept_is_406(demo_server):
    r = post(demo_server, "select 1 as x", accept="application/json", format="csv")
    assert r.text.splitlines() == ["\"x\"", "1"] or r.text.splitlines() == ["x", "1"]
    assert_json_error(post(demo_server, "select 1", accept="application/xml"), 406, "not_acceptable")


# -- identities and governance ------------------------------------------------------------------------


def test_two_tokens_same_query_different_masks_equal_to_in_process(demo_server):
    sql = "select member_id, email, phone from loyalty.members order by member_id limit 20"
    got = {}
    for user in ("ana", "paul"):
        r = post(demo_server, sql, user=user, accept=ARROW)
        assert r.status_code == 200
        got[user] = pa.ipc.open_stream(r.content).read_all()
        expected = federation.connect(str(demo_server.platform.path), user=user).sql(sql).arrow()
        assert got[user].equals(expected), user
    assert got["ana"].column("email").to_pylist() != got["paul"].column("email").to_pylist()
    assert all(e is None or e.startswith("***@") for e in got["ana"].column("email").to_pylist())
    assert any(e and not e.startswith("***@") for e in got["paul"].column("email").to_pylist())


def test_purpose_is_passed_to_the_pipeline(demo_server):
    sql = "select count(*) from marketing.campaign_audience"
    denied = post(demo_server, sql, user="marco")
    assert denied.status_code in (400, 403)
    ok = post(demo_server, sql, user="marco", purpose="marketing")
    assert ok.status_code == 200, ok.text and ok.json()["rows"][0][0] >= 0


def test_queries_are_audited_as_http(demo_server):
    post(demo_server, "select 42 as audited_marker", user="ana")
    r = post(demo_server, "select interface, sql from system.query_log where sql like '%audited_marker%' "
                          "and sql not like '%query_log%'", user="audrey")
    assert r.status_code == 200, r.text
    assert ["http", "select 42 as audited_marker"] in r.json()["rows"]


# -- errors ---------------------------------------------------------------------------------------------


def test_401_without_or_with_a_bad_token(demo_server):
    r = requests.post(demo_server.url + "/api/v1/query", json={"sql": "select 1"}, timeout=30)
    assert_json_error(r, 401, "unauthenticated")
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    assert_json_error(post(demo_server, "select 1", token="not-a-token"), 401, "unauthenticated")
    r = requests.post(demo_server.url + "/api/v1/query", json={"sql": "select 1"},
                      headers={"Authorization": "Basic YW5hOmFuYQ=="}, timeout=30)
    assert_json_error(r, 401, "unauthenticated")


def test_403_when_the_policy_refuses(demo_server):
    err = assert_json_error(post(demo_server, "select * from b2b.accounts"), 403, "access_denied")
    assert "b2b.accounts" in err["message"] and err["sqlstate"] == "42501"
    assert_json_error(post(demo_server, "select * from read_csv('/etc/passwd')"), 403, "refused")
    assert_json_error(post(demo_server, "drop table sales.orders"), 403, "refused")


def test_400_for_bad_sql_and_bad_bodies(demo_server):
    err = assert_json_error(post(demo_server, "selec 1 from"), 400, "syntax_error")
    assert err["sqlstate"] == "42601"
    assert_json_error(post(demo_server, "select * from sales.nothing_here"), 400, "unknown_object")
    headers = {"Authorization": f"Bearer {demo_server.tokens['ana']}", "Content-Type": "application/json"}
    url = demo_server.url + "/api/v1/query"
    assert_json_error(requests.post(url, data=b"{not json", headers=headers, timeout=30), 400, "malformed_json")
    assert_json_error(requests.post(url, data=b"[1, 2]", headers=headers, timeout=30), 400, "bad_request")
    assert_json_error(requests.post(url, json={"sql": ""}, headers=headers, timeout=30), 400, "bad_request")
    assert_json_error(requests.post(url, json={"sql": "select 1", "parameters": "x"}, headers=headers, timeout=30),
                      400, "bad_request")
    assert_json_error(requests.post(url, json={"sql": "select 1", "max_rows": -1}, headers=headers, timeout=30),
                      400, "bad_request")
    assert_json_error(requests.post(url, data=b"", headers=headers, timeout=30), 400, "bad_request")


def test_413_for_an_oversized_body(demo_server):
    big = "select 1 -- " + "x" * (2 << 20)
    err = assert_json_error(post(demo_server, big), 413, "payload_too_large")
    assert err["message"]


def test_404_and_405_are_json(demo_server):
    assert_json_error(requests.get(demo_server.url + "/api/v1/nothing", timeout=30), 404, "not_found")
    assert_json_error(requests.get(demo_server.url + "/api/v1/query", timeout=30), 405, "method_not_allowed")


def test_timeout_interrupts_the_query_and_answers_json(demo_server):
    sql = "select count(*) from sales.orders a, sales.orders b, sales.orders c where a.amount + b.amount > c.amount"
    for fmt in ("json", "arrow"):
        err = assert_json_error(post(demo_server, sql, user="dev", timeout=0.3, format=fmt), 504, "timeout")
        assert err["sqlstate"] == "57014" and "time-out" in err["message"]


def test_timeout_of_the_app_config_caps_the_request(demo_path):
    platform = Platform.open(demo_path)
    token = platform.tokens.create("dev", 1)[0]
    sql = "select count(*) from sales.orders a, sales.orders b, sales.orders c where a.amount + b.amount > c.amount"
    with Server(create_app(platform, {"QUANTA_QUERY_TIMEOUT": 0.3}), port=0) as server:
        r = requests.post(server.url + "/api/v1/query", json={"sql": sql, "timeout": 3600},
                          headers={"Authorization": f"Bearer {token}"}, timeout=120)
    assert_json_error(r, 504, "timeout")


def test_unexpected_errors_are_500_without_details(demo_path):
    platform = Platform.open(demo_path)
    app = create_app(platform)

    @app.get("/api/v1/boom")
    def boom():
        raise RuntimeError("secret internal detail /etc/quanta")

    with Server(app, port=0) as server:
        r = requests.get(server.url + "/api/v1/boom", timeout=30)
    err = assert_json_error(r, 500, "internal")
    assert "secret" not in r.text and "RuntimeError" not in r.text and "incident" in err["message"]


# -- many at once ---------------------------------------------------------------------------------------


def test_32_concurrent_clients_mixing_small_and_large_queries(demo_server):
    large = "select * from sales.order_lines"
    expected_large = federation.connect(str(demo_server.platform.path), user="ana").sql(
        "select count(*) from sales.order_lines").fetchall()[0][0]
    failures: list[str] = []
    results: dict[int, int] = {}
    start = threading.Barrier(32)

    def polite(session):  # the server may throttle a principal's burst (429, per-principal limits): retry then
        post = session.post

        def retrying(*args, **kwargs):
            for _ in range(100):
                r = post(*args, **kwargs)
                if r.status_code != 429:
                    return r
                time.sleep(float(r.headers.get("Retry-After", 1)))
            return r
        session.post = retrying
        return session

    def client(i: int) -> None:
        try:
            start.wait(timeout=60)
            with polite(requests.Session()) as s:
                for round_ in range(3):
                    if (i + round_) % 4 == 0:
                        r = s.post(demo_server.url + "/api/v1/query", json={"sql": large},
                                   headers={"Authorization": f"Bearer {demo_server.tokens['ana']}",
                                            "Accept": ARROW}, timeout=300)
                        if r.status_code != 200:
                            failures.append(f"{i}: {r.status_code} {r.text[:200]}")
                            continue
                        rows = pa.ipc.open_stream(r.content).read_all().num_rows
                        if rows != expected_large:
                            failures.append(f"{i}: {rows} rows")
                    else:
                        user = "paul" if i % 2 else "ana"
                        r = s.post(demo_server.url + "/api/v1/query",
                                   json={"sql": "select region, count(*) from sales.orders where order_id > ? "
                                                "group by 1 order by 1", "parameters": [i]},
                                   headers={"Authorization": f"Bearer {demo_server.tokens[user]}"}, timeout=300)
                        if r.status_code != 200 or not r.json()["rows"]:
                            failures.append(f"{i}: {r.status_code} {r.text[:200]}")
            results[i] = 1
        except Exception as e:  # noqa: BLE001
            failures.append(f"{i}: {type(e).__name__}: {e}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(32)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(600)
    assert not failures, failures[:5]
    assert len(results) == 32


# -- observability ---------------------------------------------------------------------------------------


def test_health_readiness_and_metrics(demo_server):
    assert requests.get(demo_server.url + "/healthz", timeout=30).json() == {"status": "ok"}
    ready = requests.get(demo_server.url + "/readyz", timeout=30).json()
    assert ready["status"] == "ready" and ready["quanta"] == 10
    post(demo_server, "select 1")
    post(demo_server, "select * from b2b.accounts")
    text = requests.get(demo_server.url + "/metrics", timeout=30).text
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)
    assert samples['quanta_queries_total{status="ok"}'] >= 1
    assert samples['quanta_queries_total{status="denied"}'] >= 1
    assert samples['quanta_errors_total{code="access_denied"}'] >= 1
    count = samples["quanta_query_duration_seconds_count"]
    assert samples['quanta_query_duration_seconds_bucket{le="+Inf"}'] == count >= 2
    buckets = [v for k, v in samples.items() if k.startswith("quanta_query_duration_seconds_bucket")]
    assert buckets == sorted(buckets)  # cumulative
    assert samples["quanta_query_rows_total"] >= 1
    assert "# TYPE quanta_query_duration_seconds histogram" in text
    assert any(k.startswith("quanta_http_requests_total{endpoint=\"/api/v1/query\"") for k in samples)


def test_a_client_that_goes_away_cancels_its_query(demo_server):
    import time

    def sample(name):
        for line in requests.get(demo_server.url + "/metrics", timeout=30).text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    cancelled = 'quanta_queries_total{status="cancelled"}'
    before = sample(cancelled)
    huge = "select * from sales.orders a, sales.order_lines b"  # far more than the server's buffers
    r = requests.post(demo_server.url + "/api/v1/query", json={"sql": huge}, stream=True, timeout=60,
                      headers={"Authorization": f"Bearer {demo_server.tokens['ana']}", "Accept": ARROW})
    assert r.status_code == 200
    assert len(next(r.iter_content(1 << 16))) > 0
    r.close()
    for _ in range(600):  # the server notices when it next writes; wait for it, whatever the speed
        if sample(cancelled) > before and sample("quanta_queries_in_flight") == 0:
            break
        time.sleep(0.1)
    assert sample(cancelled) == before + 1
    assert sample("quanta_queries_in_flight") == 0
