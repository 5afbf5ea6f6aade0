"""The Server-Sent Events stream of query events, against a real server."""

from __future__ import annotations

import json

import requests

from federation.platform import Platform
from federation.server.http import Server, create_app


def auth(server, user):
    return {"Authorization": f"Bearer {server.tokens[user]}"}


def read_events(response, until):
    """Parse SSE events from a streaming response until ``until(event)`` is true or the stream ends."""
    seen, event = [], {}
    for line in response.iter_lines(decode_unicode=True):
        if line == "":
            if event:
                seen.append(event)
                if until(event):
                    return seen
            event = {}
        elif line.startswith(":"):
            continue
        else:
            field, _, value = line.partition(":")
            event[field] = value.lstrip(" ")
    return seen


def test_query_events_stream_only_what_the_principal_may_see(demo_server):
    url = demo_server.url
    last = requests.post(url + "/api/v1/query", json={"sql": "select coalesce(max(query_id), 0) from system.query_log"},
                         headers=auth(demo_server, "ana"), timeout=60).json()["rows"][0][0]
    with requests.get(url + "/api/v1/events", params={"since": last, "max_seconds": 60},
                      headers=auth(demo_server, "ana"), stream=True, timeout=120) as stream:
        assert stream.status_code == 200 and stream.headers["Content-Type"].startswith("text/event-stream")
        r = requests.post(url + "/api/v1/query", json={"sql": "select 7 as paul_marker"},
                          headers=auth(demo_server, "paul"), timeout=60)
        assert r.status_code == 200
        r = requests.post(url + "/api/v1/query", json={"sql": "select 7 as ana_marker"},
                          headers=auth(demo_server, "ana"), timeout=60)
        assert r.status_code == 200
        events = read_events(stream, lambda e: "ana_marker" in e.get("data", ""))
    queries = [json.loads(e["data"]) for e in events if e.get("event") == "query"]
    mine = [q for q in queries if q["sql"] == "select 7 as ana_marker"]
    assert len(mine) == 1 and mine[0]["principal"] == "ana" and mine[0]["status"] == "ok"
    assert mine[0]["interface"] == "http" and mine[0]["rows"] == 1
    assert int(events[-1]["id"]) == mine[0]["query_id"] > last
    assert all(q["principal"] == "ana" for q in queries)  # system.query_log shows ana her own queries only
    assert not any("paul_marker" in q["sql"] for q in queries)


def test_an_auditor_sees_everyones_queries_and_the_stream_ends(demo_server):
    url = demo_server.url
    last = requests.post(url + "/api/v1/query", json={"sql": "select coalesce(max(query_id), 0) from system.query_log"},
                         headers=auth(demo_server, "audrey"), timeout=60).json()["rows"][0][0]
    requests.post(url + "/api/v1/query", json={"sql": "select * from b2b.accounts"}, headers=auth(demo_server, "ana"),
                  timeout=60)
    with requests.get(url + "/api/v1/events", params={"since": last, "max_seconds": 1},
                      headers=auth(demo_server, "audrey"), stream=True, timeout=120) as stream:
        events = read_events(stream, lambda e: e.get("event") == "end")
    denied = [json.loads(e["data"]) for e in events if e.get("event") == "query"
              and json.loads(e["data"])["sql"] == "select * from b2b.accounts"]
    assert denied and denied[-1]["principal"] == "ana" and denied[-1]["status"] == "denied"
    assert events[-1]["event"] == "end"


def test_events_need_a_token_and_are_limited(demo_path):
    platform = Platform.open(demo_path)
    token = platform.tokens.create("ana", 1)[0]
    with Server(create_app(platform, {"QUANTA_EVENT_SUBSCRIBERS": 1}), port=0) as server:
        r = requests.get(server.url + "/api/v1/events", timeout=30)
        assert r.status_code == 401 and r.json()["error"]["code"] == "unauthenticated"
        headers = {"Authorization": f"Bearer {token}"}
        assert requests.get(server.url + "/api/v1/events", params={"max_seconds": "x"}, headers=headers,
                            timeout=30).status_code == 400
        with requests.get(server.url + "/api/v1/events", params={"max_seconds": 30}, headers=headers,
                          stream=True, timeout=60) as first:
            assert first.status_code == 200
            second = requests.get(server.url + "/api/v1/events", headers=headers, timeout=30)
            assert second.status_code == 503 and second.json()["error"]["code"] == "too_many_subscribers"


def test_mesh_events_are_streamed(demo_path, tmp_path):
    """An access request (a mesh event in system.events) reaches an open stream as ``event: mesh``."""
    import shutil

    mesh = tmp_path / "greatparts"
    shutil.copytree(demo_path, mesh, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    platform = Platform(mesh)
    server = Server(create_app(platform), port=0).start()
    try:
        token = platform.tokens.create("ana", 1)[0]
        headers = {"Authorization": f"Bearer {token}"}
        with requests.get(server.url + "/api/v1/events", params={"max_seconds": 60}, headers=headers,
                          stream=True, timeout=120) as stream:
            r = requests.post(server.url + "/api/v1/datasets/b2b/accounts/access-requests", headers=headers,
                              json={"purpose": "stream test", "days": 5}, timeout=60)
            assert r.status_code == 201
            events = read_events(stream, lambda e: e.get("event") == "mesh")
        mesh_events = [json.loads(e["data"]) for e in events if e.get("event") == "mesh"]
        assert mesh_events and mesh_events[-1]["kind"] == "access_requested"
        assert mesh_events[-1]["dataset"] == "accounts"
    finally:
        server.stop()
