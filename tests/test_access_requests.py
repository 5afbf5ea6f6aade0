"""Access requests: a principal asks, an approver named in the contract grants for a while (effective at
once, audited, an event), or denies; through Python, the CLI and HTTP."""

from __future__ import annotations

import shutil
import subprocess

import pytest

import federation
from federation import errors
from federation.client import Client
from federation.platform import Platform
from federation.server.http import Server, create_app


@pytest.fixture
def mesh(demo_path, tmp_path):
    """The demo mesh with one approval level on b2b (its finance role names cfo-office as second-level
    approvers in the demo: tests/test_approvals.py covers two levels)."""
    target = tmp_path / "greatparts"
    shutil.copytree(demo_path, target, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    b2b = target / "contracts" / "b2b.odcs.yaml"
    text = b2b.read_text()
    b2b.write_text(text.replace("    secondLevelApprovers: cfo-office\n", ""))
    return target


def test_request_approve_and_read_at_once(mesh):
    p = Platform(mesh)
    ana = federation.Connection(p, p.principal("ana"))
    with pytest.raises(errors.AccessDenied, match="request access from lucas"):
        ana.sql("select count(*) from b2b.accounts")
    req = p.request_access(p.principal("ana"), "b2b.accounts", "B2B churn analysis", days=30)
    assert req.status == "pending"
    lucas = federation.Connection(p, p.principal("lucas"))  # first-level approver in the b2b contract's roles
    pending = lucas.sql("select request_id, principal, purpose, status from system.access_requests").fetchall()
    assert pending == [(req.request_id, "ana", "B2B churn analysis", "pending")]
    marco = p.principal("marco")
    assert federation.Connection(p, marco).sql("select count(*) from system.access_requests").fetchone() == (0,)
    with pytest.raises(errors.AccessDenied, match="approvers: lucas"):
        p.decide_access(marco, req.request_id, True)
    with pytest.raises(errors.AccessDenied):
        p.decide_access(p.principal("ana"), req.request_id, True)  # not one's own request
    done = p.decide_access(p.principal("lucas"), req.request_id, True, days=14)
    assert done.status == "approved" and done.expires
    # effective at once, with the same policies as ever (credit_limit is restricted: denied to ana)
    rows = ana.sql("select * from b2b.accounts limit 3")
    assert "credit_limit" not in rows.columns and len(rows.fetchall()) == 3
    grant = ana.sql("select grantee, \"on\", source, active, expires from system.grants where grantee = 'ana' "
                    "and source like 'request%'").fetchone()
    assert grant[:4] == ("ana", "b2b.accounts", f"request {req.request_id}", True) and grant[4] is not None
    with pytest.raises(errors.Conflict, match=f"access request {req.request_id} was already approved by lucas"):
        p.decide_access(p.principal("lucas"), req.request_id, False)  # decided once
    # recorded: audit log and events; and kept across a restart
    audrey = federation.Connection(p, p.principal("audrey"))
    log = [r[0] for r in audrey.sql("select sql from system.query_log where interface = 'control'").fetchall()]
    assert any(s.startswith("ACCESS REQUEST") for s in log) and any(s.startswith("ACCESS APPROVED") for s in log)
    kinds = {r[0] for r in audrey.sql("select kind from system.events").fetchall()}
    assert {"access_requested", "access_granted"} <= kinds
    again = Platform(mesh)
    assert federation.Connection(again, again.principal("ana")).sql(
        "select count(*) from b2b.accounts").fetchone()[0] > 0


def test_deny_and_bad_requests(mesh):
    p = Platform(mesh)
    req = p.request_access(p.principal("ana"), "b2b.accounts", None, days=7)
    denied = p.decide_access(p.principal("dev"), req.request_id, False, reason="use b2b_orders")  # a data engineer
    assert denied.status == "denied" and denied.reason == "use b2b_orders"
    with pytest.raises(errors.AccessDenied):
        federation.Connection(p, p.principal("ana")).sql("select * from b2b.accounts")
    with pytest.raises(errors.ProgrammingError, match="already read"):
        p.request_access(p.principal("ana"), "sales.orders", None)
    with pytest.raises(errors.UnknownObject):
        p.request_access(p.principal("ana"), "b2b.nothing", None)
    with pytest.raises(errors.ProgrammingError, match="between 1 and 366"):
        p.request_access(p.principal("ana"), "b2b.accounts", None, days=1000)
    with pytest.raises(errors.AccessDenied):
        p.request_access(p.principal("stranger"), "b2b.accounts", None)


def test_access_requests_cli(mesh):
    def quanta(*args):
        return subprocess.run(["quanta", *args, "--mesh", str(mesh)], capture_output=True, text=True)

    out = quanta("access", "request", "b2b.accounts", "-u", "ana", "--purpose", "audit prep", "--days", "10")
    assert out.returncode == 0 and "pending; approvers: lucas" in out.stdout, out.stderr
    request_id = out.stdout.split()[2].rstrip(":")
    listing = quanta("access", "list", "-u", "lucas")
    assert "audit prep" in listing.stdout and "pending" in listing.stdout
    refused = quanta("access", "approve", request_id, "-u", "marco")
    assert refused.returncode == 1 and "may not decide access" in refused.stderr
    ok = quanta("access", "approve", request_id, "-u", "lucas")
    assert ok.returncode == 0 and "ana may read b2b.accounts until" in ok.stdout
    assert quanta("query", "select count(*) from b2b.accounts", "-u", "ana").returncode == 0
    refused = quanta("access", "revoke", request_id, "-u", "marco")  # not an approver
    assert refused.returncode == 1 and "marco may not" in refused.stderr and "lucas" in refused.stderr
    assert "Traceback" not in refused.stderr
    gone = quanta("access", "revoke", request_id, "-u", "lucas", "--reason", "audit done")
    assert gone.returncode == 0 and gone.stdout.startswith(f"revoked {request_id}: ana may no longer read b2b.accounts")
    denied = quanta("query", "select count(*) from b2b.accounts", "-u", "ana")
    assert denied.returncode == 1 and "b2b.accounts" in denied.stderr  # in a new process: the grant is gone
    again = quanta("access", "revoke", request_id, "-u", "lucas")
    assert again.returncode == 1 and "no approved access request" in again.stderr
    listing = quanta("access", "list", "-u", "audrey")
    assert "revoked" in listing.stdout
    bad = quanta("access", "revoke", "nope", "-u", "lucas")
    assert bad.returncode == 2 and "Traceback" not in bad.stderr


def test_access_requests_over_http(mesh):
    platform = Platform(mesh)
    server = Server(create_app(platform), port=0).start()
    try:
        tokens = {u: platform.tokens.create(u, 1)[0] for u in ("ana", "lucas", "paul")}
        ana, lucas, paul = (Client(server.url, tokens[u]) for u in ("ana", "lucas", "paul"))
        with pytest.raises(errors.AccessDenied):
            ana.sql("select count(*) from b2b.b2b_orders")
        req = ana.request_access("b2b", "b2b_orders", purpose="payment terms study", days=90)
        assert req["status"] == "pending"
        assert [r["request_id"] for r in lucas.access_requests()] == [req["request_id"]]
        assert paul.access_requests() == []
        with pytest.raises(errors.AccessDenied):
            paul.approve_access(req["request_id"])
        approved = lucas.approve_access(req["request_id"], days=30)
        assert approved["status"] == "approved"
        assert ana.sql("select count(*) from b2b.b2b_orders").fetchone()[0] > 0
        assert ana.access_requests()[0]["status"] == "approved"
    finally:
        server.stop()


def test_revoke_is_effective_at_once_audited_and_shown(mesh):
    p = Platform(mesh)
    ana = federation.Connection(p, p.principal("ana"))
    req = p.request_access(p.principal("ana"), "b2b.accounts", "churn", days=30)
    p.decide_access(p.principal("lucas"), req.request_id, True)
    assert ana.sql("select count(*) from b2b.accounts").fetchone()[0] > 0
    with pytest.raises(errors.AccessDenied, match="marco may not decide access to b2b.accounts; its approvers: lucas"):
        p.revoke_access(p.principal("marco"), req.request_id)  # not an approver
    revoked = p.revoke_access(p.principal("lucas"), req.request_id, "project ended")
    assert revoked.status == "revoked" and revoked.revoked_by == "lucas" and revoked.revoke_reason == "project ended"
    with pytest.raises(errors.AccessDenied, match="request access from lucas"):
        ana.sql("select count(*) from b2b.accounts")
    with pytest.raises(errors.UnknownObject, match="no approved access request"):
        p.revoke_access(p.principal("lucas"), req.request_id)  # revoked once
    audrey = federation.Connection(p, p.principal("audrey"))
    assert audrey.sql("select status, revoked_by from system.access_requests where request_id = ?",
                      [req.request_id]).fetchone() == ("revoked", "lucas")
    log = [r[0] for r in audrey.sql("select sql from system.query_log where interface = 'control'").fetchall()]
    assert any(s.startswith(f"ACCESS REVOKED {req.request_id}") for s in log)
    assert "access_revoked" in {r[0] for r in audrey.sql("select kind from system.events").fetchall()}
    again = Platform(mesh)  # and after a restart
    with pytest.raises(errors.AccessDenied):
        federation.Connection(again, again.principal("ana")).sql("select count(*) from b2b.accounts")


def test_revoke_over_http(mesh):
    platform = Platform(mesh)
    server = Server(create_app(platform), port=0).start()
    try:
        tokens = {u: platform.tokens.create(u, 1)[0] for u in ("ana", "lucas", "paul")}
        ana, lucas, paul = (Client(server.url, tokens[u]) for u in ("ana", "lucas", "paul"))
        req = ana.request_access("b2b", "b2b_orders", purpose="study", days=90)
        lucas.approve_access(req["request_id"])
        assert ana.sql("select count(*) from b2b.b2b_orders").fetchone()[0] > 0
        with pytest.raises(errors.AccessDenied):
            paul.revoke_access(req["request_id"])
        assert lucas.revoke_access(req["request_id"], "done")["status"] == "revoked"
        with pytest.raises(errors.AccessDenied):
            ana.sql("select count(*) from b2b.b2b_orders")
        with pytest.raises(errors.UnknownObject):
            lucas.revoke_access(req["request_id"])
    finally:
        server.stop()


def test_expired_grants_show_as_expired_and_grant_nothing(mesh):
    import sqlite3

    p = Platform(mesh)
    req = p.request_access(p.principal("ana"), "b2b.accounts", "churn", days=30)
    p.decide_access(p.principal("lucas"), req.request_id, True)
    with sqlite3.connect(p.state_dir / "access.db") as db:  # its last day was yesterday
        db.execute("UPDATE access_requests SET expires = date('now', '-1 day') WHERE request_id = ?",
                   (req.request_id,))
    again = Platform(mesh)
    audrey = federation.Connection(again, again.principal("audrey"))
    assert audrey.sql("select status from system.access_requests where request_id = ?",
                      [req.request_id]).fetchone() == ("expired",)
    with pytest.raises(errors.AccessDenied, match="request access from lucas"):
        federation.Connection(again, again.principal("ana")).sql("select count(*) from b2b.accounts")
