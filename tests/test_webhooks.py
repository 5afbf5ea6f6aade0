"""Webhooks: declared in mesh.yaml, fed from the state's event tables into a durable outbox, signed with
HMAC-SHA256, retried with back-off until a 2xx, never lost across a restart, dead after their attempts,
and never carrying a data value. The receiver is a real HTTP server on 127.0.0.1 that fails first."""

from __future__ import annotations

import hashlib
import hmac
import http.server
import json
import os
import subprocess
import threading
import time

import pytest
import yaml
from onboardkit import GOVERNANCE, items
from onboardkit import lab_mesh as onboard_mesh

from federation import errors
from federation.client import Client
from federation.onboarding.pipeline import OnboardingRejected, onboard
from federation.platform import Platform
from federation.server.http import Server, create_app
from federation.webhooks import Deliverer, check_config, outbox_of, verify

SECRET = "whsec-test-7c1f0b9e"
ENV = "QUANTA_TEST_WEBHOOK_SECRET"


class Receiver:
    """An HTTP receiver on loopback. ``script``: what to do with the next requests ("500", "close", "302",
    then ``default`` for the rest); every request is recorded with its headers and raw body."""

    def __init__(self, script: list[str] | None = None, default: str = "200"):
        self.script, self.default = list(script or []), default
        self.requests: list[dict] = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with receiver.lock:
                    action = receiver.script.pop(0) if receiver.script else receiver.default
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers), "body": body,
                                              "action": action})
                if action == "close":  # the connection dropped without an answer
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                self.send_response(int(action))
                if action == "302":
                    self.send_header("Location", f"http://127.0.0.1:{receiver.port}/elsewhere")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def accepted(self) -> list[dict]:
        with self.lock:
            return [r for r in self.requests if r["action"].startswith("2")]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(script=None, default="200"):
        made.append(Receiver(script, default))
        return made[-1]

    yield make
    for r in made:
        r.stop()


@pytest.fixture(autouse=True)
def secret(monkeypatch):
    monkeypatch.setenv(ENV, SECRET)


def lab_mesh(root):
    """The onboarding lab mesh with two principals who hold no grant (zoe, yan): they request access."""
    onboard_mesh(root)
    governance = {**GOVERNANCE, "principals": GOVERNANCE["principals"] + [{"name": "zoe", "roles": []},
                                                                          {"name": "yan", "roles": []}]}
    (root / "governance.yaml").write_text(yaml.safe_dump(governance, sort_keys=False))
    return root


def with_hooks(root, hooks: list[dict]):
    path = root / "mesh.yaml"
    data = yaml.safe_load(path.read_text())
    data["webhooks"] = hooks
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return root


def verified(request: dict) -> dict:
    """The receiver's check, by hand: HMAC-SHA256 of "<timestamp>.<body>" with the shared secret."""
    ts = request["headers"]["X-Quanta-Timestamp"]
    expected = "sha256=" + hmac.new(SECRET.encode(), ts.encode() + b"." + request["body"], hashlib.sha256).hexdigest()
    assert hmac.compare_digest(request["headers"]["X-Quanta-Signature"], expected)
    assert verify(SECRET, request["body"], ts, request["headers"]["X-Quanta-Signature"])
    assert not verify("another secret", request["body"], ts, request["headers"]["X-Quanta-Signature"])
    body = json.loads(request["body"])
    assert body["id"] == request["headers"]["X-Quanta-Event-Id"] and body["kind"] == request["headers"][
        "X-Quanta-Event"]
    return body


def wait_for(predicate, seconds: float = 60.0):
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("not reached in time")
        time.sleep(0.02)


def data_values(batch) -> set[str]:
    """The batch's values as text (the ones long enough not to be mistaken for an id or a version)."""
    return {str(v) for col in batch.columns for v in col.to_pylist() if v is not None and len(str(v)) >= 5}


def test_deliveries_are_retried_signed_and_carry_no_data(tmp_path, receiver):
    recv = receiver(["500", "close", "500"])
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"name": "all", "url": recv.url, "events": ["*"],
                                                   "secret_env": ENV, "timeout": 5}])
    p = Platform(root)
    dev = p.principal("dev")
    secret_mails = [f"secret.person{i}@hidden.example" for i in range(1, 13)]
    good = items(12, mail=secret_mails)
    onboard(p, "lab.items", good, dev)  # version_published (+ the emails are masked for most readers)
    bad = items(12, kind=["forbidden-kind-value"] * 12, mail=secret_mails)
    with pytest.raises(OnboardingRejected):
        onboard(p, "lab.items", bad, dev)  # quality_failed and version_refused, with failing values
    req = p.request_access(p.principal("zoe"), "lab.items", "a purpose nobody else reads", days=3)
    p.decide_access(p.principal("olivia"), req.request_id, False, reason="a reason nobody else reads")
    deliverer = Deliverer(p, interval=0.05, base_delay=0.05).start()
    try:
        wait_for(lambda: len({r["headers"]["X-Quanta-Event-Id"] for r in recv.accepted()}) >= 5)
    finally:
        deliverer.stop()
    bodies = [verified(r) for r in recv.accepted()]
    kinds = sorted(b["kind"] for b in bodies)
    assert kinds == ["access_denied", "access_requested", "quality_failed", "version_published",
                     "version_refused"]
    assert [r["action"] for r in recv.requests[:3]] == ["500", "close", "500"]  # failed first, then retried
    failed_ids = {r["headers"]["X-Quanta-Event-Id"] for r in recv.requests[:3] if r["action"] != "close"}
    assert failed_ids <= {r["headers"]["X-Quanta-Event-Id"] for r in recv.accepted()}  # the same event again
    rows = outbox_of(p).deliveries()
    assert {r["status"] for r in rows} == {"delivered"} and sum(r["attempts"] for r in rows) == 5 + 3
    by_kind = {b["kind"]: b for b in bodies}
    assert by_kind["version_published"]["quantum"] == "lab" and by_kind["version_published"]["version"] == 1
    assert by_kind["access_denied"]["request"] == {"id": req.request_id, "requester": "zoe", "by": "olivia",
                                                   "level": 1, "levels": 1}
    assert all(b["mesh"] == p.mesh.name and b["occurred_at"] for b in bodies)
    # never a data value, nor free text: no email, no failing value, no purpose, no reason
    everything = b"".join(r["body"] + json.dumps(r["headers"]).encode() for r in recv.requests).decode()
    leaked = [v for v in data_values(good) | data_values(bad) if v in everything]
    assert leaked == []
    assert "nobody else reads" not in everything and SECRET not in everything


def test_a_server_delivers_in_the_background(tmp_path, receiver):
    recv = receiver(["500"])
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": recv.url, "secret_env": ENV,
                                                   "events": ["access_requested", "access_approved"]}])
    p = Platform(root)
    server = Server(create_app(p), port=0).start()  # its platform's deliverer starts with its watcher
    try:
        tokens = {u: p.tokens.create(u, 1)[0] for u in ("zoe", "olivia")}
        req = Client(server.url, tokens["zoe"]).request_access("lab", "items", purpose="over http", days=2)
        Client(server.url, tokens["olivia"]).approve_access(req["request_id"])
        wait_for(lambda: len(recv.accepted()) == 2)
    finally:
        server.stop()
        p._deliverer.stop()
    bodies = sorted((verified(r) for r in recv.accepted()), key=lambda b: b["occurred_at"] + b["kind"])
    assert {b["kind"] for b in bodies} == {"access_requested", "access_approved"}
    assert all(b["request"]["id"] == req["request_id"] for b in bodies) and recv.requests[0]["action"] == "500"
    approved = next(b for b in bodies if b["kind"] == "access_approved")
    assert approved["request"]["by"] == "olivia" and approved["request"]["expires"]


def test_nothing_is_lost_across_a_restart(tmp_path, receiver):
    recv = receiver(default="503")  # down for now
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"name": "approvals", "url": recv.url, "secret_env": ENV,
                                                   "events": ["access_requested", "access_approved"]}])
    p = Platform(root)
    onboard(p, "lab.items", items(5), p.principal("dev"))  # not subscribed: never sent
    first = p.request_access(p.principal("zoe"), "lab.items", None, days=3)
    deliverer = Deliverer(p, interval=0.05, base_delay=0.05).start()
    wait_for(lambda: len(recv.requests) >= 2)  # tried, and retried, in vain
    deliverer.stop()
    # a CLI process approves (it enqueues, it does not deliver)
    env = {**os.environ, ENV: SECRET}
    out = subprocess.run(["quanta", "access", "approve", str(first.request_id), "-u", "olivia", "--mesh", str(root)],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0, out.stderr
    pending = [r for r in outbox_of(p).deliveries() if r["status"] == "pending"]
    assert sorted(r["kind"] for r in pending) == ["access_approved", "access_requested"]
    assert [r["attempts"] >= 2 for r in pending if r["kind"] == "access_requested"] == [True]
    # a change recorded by a process that dies before any pump: in access.db, not in the outbox
    p.access_requests.create("yan", "lab", "items", None, 3)
    assert len(outbox_of(p).deliveries()) == 2
    recv.default = "204"  # the receiver is back
    # "restart": a new process picks the undelivered rows up, and enqueues the change no one pumped
    out = subprocess.run(["quanta", "webhooks", "deliver", "--now", "-u", "dev", "--mesh", str(root)],
                         capture_output=True, text=True, env=env, check=False)
    assert out.returncode == 0 and "3 delivered, 0 failed" in out.stdout, out.stdout + out.stderr
    bodies = [verified(r) for r in recv.accepted()]
    seen = sorted((b["kind"], b["request"]["requester"]) for b in bodies)
    assert seen == [("access_approved", "zoe"), ("access_requested", "yan"), ("access_requested", "zoe")]
    listing = subprocess.run(["quanta", "webhooks", "list", "-u", "dev", "--mesh", str(root)], capture_output=True, check=False,
                             text=True, env=env)
    assert listing.returncode == 0 and listing.stdout.count("delivered") >= 3, listing.stderr
    refused = subprocess.run(["quanta", "webhooks", "list", "-u", "ana", "--mesh", str(root)], capture_output=True, check=False,
                             text=True, env=env)
    assert refused.returncode == 1 and "ana may not see webhook deliveries" in refused.stderr
    assert "Traceback" not in refused.stderr
    # delivered once: a new platform over the same state sends nothing again
    again = Platform(root)
    assert Deliverer(again, base_delay=0.05).run_once() == []
    assert len(recv.accepted()) == 3


def test_bounded_attempts_then_dead_redirects_not_followed(tmp_path, receiver):
    recv = receiver(default="302")
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": recv.url, "secret_env": ENV, "max_attempts": 3,
                                                   "events": ["access_requested"]}])
    p = Platform(root)
    p.request_access(p.principal("zoe"), "lab.items", None, days=3)
    deliverer = Deliverer(p, interval=0.05, base_delay=0.05).start()
    try:
        wait_for(lambda: outbox_of(p).deliveries("dead"))
    finally:
        deliverer.stop()
    dead = outbox_of(p).deliveries("dead")[0]
    assert dead["attempts"] == 3 and dead["last_status"] == 302 and "redirects are not followed" in dead["last_error"]
    assert [r["path"] for r in recv.requests] == ["/hook"] * 3  # never /elsewhere
    assert outbox_of(p).retry(dead["delivery_id"]) and not outbox_of(p).retry(dead["delivery_id"])
    assert outbox_of(p).deliveries("pending")[0]["attempts"] == 0


def test_a_missing_secret_never_sends_unsigned(tmp_path, receiver, monkeypatch):
    recv = receiver()
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": recv.url, "secret_env": "QUANTA_TEST_NO_SUCH_SECRET",
                                                   "events": ["access_requested"]}])
    p = Platform(root)
    p.request_access(p.principal("zoe"), "lab.items", None, days=3)
    attempts = Deliverer(p).run_once()
    assert [a.status for a in attempts] == ["retry"] and "QUANTA_TEST_NO_SUCH_SECRET" in attempts[0].error
    assert recv.requests == []


def test_a_slow_receiver_times_out(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)  # accepts the connection, never answers
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": url, "secret_env": ENV, "timeout": 0.5,
                                                       "events": ["access_requested"]}])
        p = Platform(root)
        p.request_access(p.principal("zoe"), "lab.items", None, days=3)
        attempts = Deliverer(p).run_once()
        assert [a.status for a in attempts] == ["retry"] and "timed out" in attempts[0].error.lower()
    finally:
        listener.close()


def test_a_receiver_dripping_its_answer_is_cut_at_the_time_out(tmp_path):
    import socket

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    stop = threading.Event()

    def drip():  # a byte of a 200 answer every 0.1 s, for up to a minute: each read is quick, the whole is not
        conn, _ = listener.accept()
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\n" + b"X-Slow: " + b"." * 600:
                if stop.wait(0.1):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/hook"
        root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": url, "secret_env": ENV, "timeout": 1,
                                                       "events": ["access_requested"]}])
        p = Platform(root)
        p.request_access(p.principal("zoe"), "lab.items", None, days=3)
        attempts = Deliverer(p).run_once()
        assert [a.status for a in attempts] == ["retry"]
        assert attempts[0].error == "timed out: no answer within 1 s"
    finally:
        stop.set()
        listener.close()


def test_a_silent_receiver_delays_only_its_own_deliveries(tmp_path, receiver):
    import socket

    silent = socket.socket()  # accepts connections (the backlog), never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    good = receiver()
    try:
        root = with_hooks(lab_mesh(tmp_path / "lab"), [
            {"name": "silent", "url": f"http://127.0.0.1:{silent.getsockname()[1]}/h", "secret_env": ENV,
             "timeout": 60, "events": ["access_requested"]},  # listed first: its deliveries have the lower ids
            {"name": "good", "url": good.url, "secret_env": ENV, "events": ["access_requested"]}])
        p = Platform(root)
        for who in ("zoe", "yan"):
            p.request_access(p.principal(who), "lab.items", None, days=3)
        deliverer = Deliverer(p, interval=0.05).start()
        try:  # one after the other, the good receiver would wait a minute per silent attempt
            wait_for(lambda: len(good.accepted()) == 2, seconds=30)
        finally:
            silent.close()  # the silent attempts end (reset)
            deliverer.stop()
        assert {r["hook"]: r["status"] for r in outbox_of(p).deliveries() if r["status"] == "delivered"} == {
            "good": "delivered"}
    finally:
        silent.close()


def test_the_webhooks_block_is_validated(tmp_path):
    hooks, problems = check_config([
        {"url": "ftp://example.com/x", "events": ["access_requested"], "secret_env": ENV},
        {"url": "https://user:pw@example.com/x", "events": ["access_requested"], "secret_env": ENV},
        {"url": "https://example.com/x", "events": ["access_exploded"], "secret_env": "not a name"},
        {"url": "https://example.com/y", "events": ["*"], "secret_env": "QUANTA_TEST_UNSET_SECRET", "colour": 1},
        {"url": "https://example.com/z", "events": ["slo_breached"], "secret_env": ENV, "timeout": 600},
    ])
    text = {(tuple(path), severity): message for path, message, severity in problems}
    assert "is an http(s) URL with a host, not 'ftp' scheme" in text[((0, "url"), "error")]
    assert "no credentials" in text[((1, "url"), "error")]
    assert "unknown event kind 'access_exploded'" in text[((2, "events", 0), "error")]
    assert "secret_env names the environment variable" in text[((2, "secret_env"), "error")]
    assert "QUANTA_TEST_UNSET_SECRET is not set" in text[((3, "secret_env"), "warning")]
    assert "unknown webhook property 'colour'" in text[((3, "colour"), "error")]
    assert "timeout" in text[((4, "timeout"), "error")]
    assert [h.url for h in hooks] == []  # a hook with any error is not used
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": "gopher://example.com/", "events": ["*"],
                                                   "secret_env": ENV}])
    out = subprocess.run(["quanta", "validate", str(root)], capture_output=True, text=True, check=False)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    line = next(ln for ln in (out.stdout + out.stderr).splitlines() if "webhooks[0].url" in ln)
    assert "mesh.yaml" in line and "'gopher' scheme" in line
    with pytest.raises(errors.Error, match="webhooks"):
        Platform(root)


def test_deliveries_over_http_for_engineers_only(tmp_path, receiver):
    recv = receiver()
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"url": recv.url, "secret_env": ENV,
                                                   "events": ["access_requested"]}])
    p = Platform(root)
    p.request_access(p.principal("zoe"), "lab.items", "between us", days=2)
    server = Server(create_app(p), port=0).start()
    try:
        wait_for(lambda: len(recv.accepted()) == 1)
        tokens = {u: p.tokens.create(u, 1)[0] for u in ("dev", "ana")}
        import requests

        r = requests.get(server.url + "/api/v1/webhook-deliveries", params={"status": "delivered"}, timeout=30,
                         headers={"Authorization": f"Bearer {tokens['dev']}"})
        assert r.status_code == 200, r.text
        [row] = r.json()["deliveries"]
        assert row["kind"] == "access_requested" and row["body"]["request"]["requester"] == "zoe"
        assert "between us" not in r.text and recv.url not in r.text
        r = requests.get(server.url + "/api/v1/webhook-deliveries", timeout=30,
                         headers={"Authorization": f"Bearer {tokens['ana']}"})
        assert r.status_code == 403 and "may not see webhook deliveries" in r.text
        r = requests.get(server.url + "/api/v1/webhook-deliveries", params={"status": "lost"}, timeout=30,
                         headers={"Authorization": f"Bearer {tokens['dev']}"})
        assert r.status_code == 400 and "pending, delivered or dead" in r.text
    finally:
        server.stop()
        p._deliverer.stop()


def test_demo_events_never_carry_demo_values(demo_path, tmp_path, receiver):
    """On the demo: a failed check of customers (its failing rows are e-mails, masked for most readers) and a
    two-level access request; no value of the customers file reaches the receiver."""
    import shutil

    import duckdb

    from federation.onboarding import control

    recv = receiver()
    root = tmp_path / "greatparts"
    shutil.copytree(demo_path, root, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    with (root / "mesh.yaml").open("a") as f:
        f.write(f"webhooks:\n  - name: demo\n    url: {recv.url}\n    events: ['*']\n    secret_env: {ENV}\n")
    contract = root / "contracts" / "customers.odcs.yaml"  # a rule every e-mail fails (in the contract)
    text = contract.read_text()
    anchor = "        examples: [sofia.muller84@gmx.de]\n        quality:\n"
    assert text.count(anchor) == 1
    contract.write_text(text.replace(anchor, anchor + "          - {type: library, metric: invalidValues, "
                                     "arguments: {pattern: '^nobody$'}, mustBe: 0, severity: error}\n"))
    p = Platform(root)
    dev = p.principal("dev")
    assert control.check(p, "customers.customers", dev).status == "fail"
    req = p.request_access(p.principal("ana"), "customers.customers", "a purpose", days=3)
    p.decide_access(p.principal("sofia"), req.request_id, True)
    assert p.decide_access(p.principal("audrey"), req.request_id, True).status == "approved"  # dpo
    deliverer = Deliverer(p)
    while outbox_of(p).deliveries("pending"):
        assert all(a.status == "delivered" for a in deliverer.run_once())
    bodies = [verified(r) for r in recv.accepted()]
    assert sorted(b["kind"] for b in bodies) == ["access_approved", "access_level_approved", "access_requested",
                                                 "quality_failed"]
    with duckdb.connect() as con:
        rows = con.execute(f"select * from read_parquet('{root}/data/customers/customers.parquet')").fetchall()
    values = {str(v) for row in rows for v in row if v is not None and len(str(v)) >= 5}
    assert any("@" in v for v in values)  # the e-mails are among them
    everything = b"".join(r["body"] for r in recv.requests).decode()
    assert [v for v in values if v in everything] == []


def test_quarantine_events_name_the_batch_and_carry_no_value(tmp_path, receiver):
    """An onboarding that holds rows back, and the batch dropped: quarantine_held and quarantine_dropped name the
    batch (its id), never its rows, counts or rules' failing values."""
    from federation.onboarding import quarantine

    recv = receiver()
    root = with_hooks(lab_mesh(tmp_path / "lab"), [{"name": "q", "url": recv.url, "secret_env": ENV, "timeout": 5,
                                                   "events": ["quarantine_held", "quarantine_dropped"]}])
    p = Platform(root)
    dev = p.principal("dev")
    mails = [f"kept.person{i}@hidden.example" for i in range(1, 11)]
    mails[3] = "not-an-address-held-back"  # fails the email rule whose onFailure is quarantine
    report = onboard(p, "lab.items", items(10, mail=mails), dev)
    assert report.quarantined == 1
    quarantine.drop(p, "lab.items.v1", dev)
    deliverer = Deliverer(p, interval=0.05, base_delay=0.05).start()
    try:
        wait_for(lambda: len(recv.accepted()) >= 2)
    finally:
        deliverer.stop()
    bodies = [verified(r) for r in recv.accepted()]
    assert [(b["kind"], b["quarantine"], b["version"]) for b in bodies] == [
        ("quarantine_held", "lab.items.v1", 1), ("quarantine_dropped", "lab.items.v1", 1)]
    everything = b"".join(r["body"] for r in recv.requests).decode()
    assert "not-an-address-held-back" not in everything and not any(m in everything for m in mails)
    assert "rows" not in bodies[0] and "rules" not in bodies[0]
