"""Two-level access approvals: when a contract's ODCS roles name first- and second-level approvers, a
request needs both approvals, in order, by two different principals (never the requester); approvers and
requesters are checked against the governance's principals and groups.

The demo's b2b contract names lucas (first level) and the group cfo-office (fiona, second level) for its
finance role: a request for b2b.accounts needs both."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest
import yaml

import federation
from federation import errors
from federation.client import Client
from federation.governance.requests import AccessRequests, AlreadyDecided, SameApprover
from federation.platform import Platform
from federation.server.http import Server, create_app


@pytest.fixture
def mesh(demo_path, tmp_path):
    target = tmp_path / "greatparts"
    shutil.copytree(demo_path, target, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    return target


def add_groups(mesh, groups: dict[str, list[str]]) -> None:
    """Principals of the demo's governance.yaml given groups (its principals are one flow mapping a line)."""
    path = mesh / "governance.yaml"
    text = path.read_text()
    for name, names in groups.items():
        line = f"  - {{name: {name}, "
        assert text.count(line) == 1, name
        text = text.replace(line, f"{line}groups: [{', '.join(names)}], ")
    path.write_text(text)


def set_b2b_approvers(mesh, first: str, second: str | None) -> None:
    """The b2b contract's finance role with these approvers (and its other roles' first level the same)."""
    path = mesh / "contracts" / "b2b.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    for role in data["roles"]:
        role["firstLevelApprovers"] = first
        role.pop("secondLevelApprovers", None)
        if second and role["role"] == "finance":
            role["secondLevelApprovers"] = second
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def reads(p: Platform, user: str) -> bool:
    try:
        federation.Connection(p, p.principal(user)).sql("select count(*) from b2b.accounts").fetchone()
        return True
    except errors.AccessDenied:
        return False


def test_two_levels_in_order_by_two_principals(mesh):
    p = Platform(mesh)
    assert p.approval_levels("b2b", "accounts") == [("lucas",), ("cfo-office",)]
    req = p.request_access(p.principal("ana"), "b2b.accounts", "credit study", days=30)
    assert (req.status, req.levels, req.pending_level, req.approvals) == ("pending", 2, 1, [])
    # the second level cannot go first; nor may an owner or a data engineer stand in for a named level
    with pytest.raises(errors.AccessDenied, match="waits for its level-1 approval, by lucas"):
        p.decide_access(p.principal("fiona"), req.request_id, True)
    with pytest.raises(errors.AccessDenied, match="level-1 approval"):
        p.decide_access(p.principal("dev"), req.request_id, True)
    with pytest.raises(errors.AccessDenied, match="its own access request"):
        p.decide_access(p.principal("ana"), req.request_id, True)
    first = p.decide_access(p.principal("lucas"), req.request_id, True)
    assert (first.status, first.pending_level) == ("pending", 2)
    assert [(a["level"], a["approver"]) for a in first.approvals] == [(1, "lucas")]
    assert not reads(p, "ana")  # one level is not an approval
    with pytest.raises(errors.AccessDenied, match="waits for its level-2 approval, by cfo-office"):
        p.decide_access(p.principal("lucas"), req.request_id, True)
    # shown: the pending level and who approved each level
    audrey = federation.Connection(p, p.principal("audrey"))
    row = audrey.sql("select status, levels, pending_level, approved_by from system.access_requests "
                     "where request_id = ?", [req.request_id]).fetchone()
    assert row == ("pending", 2, 2, ["lucas"])
    done = p.decide_access(p.principal("fiona"), req.request_id, True, days=10)  # cfo-office
    assert (done.status, done.decided_by, done.pending_level) == ("approved", "fiona", None)
    assert [(a["level"], a["approver"]) for a in done.approvals] == [(1, "lucas"), (2, "fiona")]
    assert reads(p, "ana")
    row = audrey.sql("select status, pending_level, approved_by, decided_by from system.access_requests "
                     "where request_id = ?", [req.request_id]).fetchone()
    assert row == ("approved", None, ["lucas", "fiona"], "fiona")
    log = [r[0] for r in audrey.sql("select sql from system.query_log where interface = 'control'").fetchall()]
    assert any(s.startswith(f"ACCESS APPROVED LEVEL 1 {req.request_id}") for s in log)
    kinds = [r[0] for r in audrey.sql("select kind from system.events where kind like 'access%' "
                                      "order by event_id").fetchall()]
    assert kinds == ["access_requested", "access_level_approved", "access_granted"]
    with pytest.raises(errors.Conflict, match="already approved by fiona"):
        p.decide_access(p.principal("lucas"), req.request_id, False)
    again = Platform(mesh)  # kept across a restart
    assert reads(again, "ana")
    assert again.access_requests.get(req.request_id).approvals == done.approvals


def test_a_denial_at_either_level_ends_the_request(mesh):
    p = Platform(mesh)
    a = p.request_access(p.principal("ana"), "b2b.accounts", None, days=5)
    denied = p.decide_access(p.principal("dev"), a.request_id, False, reason="no")  # a data engineer may deny
    assert (denied.status, denied.pending_level) == ("denied", None)
    b = p.request_access(p.principal("ana"), "b2b.accounts", None, days=5)
    p.decide_access(p.principal("lucas"), b.request_id, True)
    denied = p.decide_access(p.principal("fiona"), b.request_id, False, reason="not needed")
    assert denied.status == "denied" and [x["approver"] for x in denied.approvals] == ["lucas"]
    assert not reads(p, "ana")


def test_one_level_named_one_approval_suffices(mesh):
    set_b2b_approvers(mesh, "lucas", None)
    p = Platform(mesh)
    assert p.approval_levels("b2b", "accounts") == [("lucas",)]
    req = p.request_access(p.principal("ana"), "b2b.accounts", None, days=5)
    assert req.levels == 1
    assert p.decide_access(p.principal("lucas"), req.request_id, True).status == "approved"
    req = p.request_access(p.principal("marco"), "b2b.accounts", None, days=5)
    assert p.decide_access(p.principal("dev"), req.request_id, True).status == "approved"  # today's rule


def test_the_same_principal_cannot_give_both_levels(mesh):
    add_groups(mesh, {"lucas": ["cfo-office"]})  # lucas is named at both levels (by name, then by group)
    p = Platform(mesh)
    req = p.request_access(p.principal("ana"), "b2b.accounts", None, days=5)
    p.decide_access(p.principal("lucas"), req.request_id, True)
    with pytest.raises(SameApprover, match="lucas gave the level-1 approval"):
        p.decide_access(p.principal("lucas"), req.request_id, True)
    assert p.access_requests.get(req.request_id).pending_level == 2
    assert p.decide_access(p.principal("fiona"), req.request_id, True).status == "approved"


def test_two_first_level_approvers_at_once_one_is_the_first(mesh):
    set_b2b_approvers(mesh, "b2b-leads", "cfo-office")
    add_groups(mesh, {"lucas": ["b2b-leads"], "sofia": ["b2b-leads"]})
    p = Platform(mesh)
    # eight pending requests (one per requester: a principal has one pending request per dataset)
    ids = [p.access_requests.create(f"ana{i}", "b2b", "accounts", None, 5, levels=2).request_id for i in range(8)]
    # the gap between the check and the write: both checked level 1, the second write finds it given
    other = AccessRequests(p.state_dir / "access.db")
    p.access_requests.decide(ids[0], "lucas", True, None, None, level=1, levels=2)
    with pytest.raises(AlreadyDecided, match="level-1 approval of access request .* already given by lucas"):
        other.decide(ids[0], "sofia", True, None, None, level=1, levels=2)
    # and for real: two platforms (two connections to access.db) approving the same requests at once
    platforms = {"lucas": Platform(mesh), "sofia": Platform(mesh)}
    barrier = threading.Barrier(2)
    outcomes: dict[str, list] = {"lucas": [], "sofia": []}

    def approve(who):
        q = platforms[who]
        for rid in ids[1:]:
            barrier.wait()
            try:
                q.decide_access(q.principal(who), rid, True)
                outcomes[who].append((rid, "won"))
            except errors.Error as e:
                outcomes[who].append((rid, str(e)))

    threads = [threading.Thread(target=approve, args=(w,)) for w in platforms]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads)
    for (rid, a), (rid2, b) in zip(outcomes["lucas"], outcomes["sofia"]):
        assert rid == rid2 and [a, b].count("won") == 1, (a, b)
        loser = b if a == "won" else a
        # the first won; the other finds level 1 given (in the transaction, or already at its check)
        assert ("level-1 approval of access request" in loser and "already given" in loser) or \
            "may not give the level-2 approval" in loser, loser
        req = Platform(mesh).access_requests.get(rid)
        assert req.status == "pending" and req.pending_level == 2 and len(req.approvals) == 1


def test_unknown_approvers_are_reported_by_validate(mesh):
    set_b2b_approvers(mesh, "lucas", "cfo-ofice")  # a typo: no principal, no group
    out = subprocess.run(["quanta", "validate", str(mesh)], capture_output=True, text=True, check=False)
    assert "Traceback" not in out.stderr
    text = out.stdout + out.stderr
    line = next(ln for ln in text.splitlines() if "cfo-ofice" in ln)
    assert "b2b.odcs.yaml" in line and "secondLevelApprovers" in line and "no principal and no group" in line


def test_an_unknown_requester_is_refused_clearly(mesh):
    p = Platform(mesh)
    with pytest.raises(errors.AccessDenied, match="stranger is not a principal of this mesh"):
        p.request_access(p.principal("stranger"), "b2b.accounts", None)
    out = subprocess.run(["quanta", "access", "request", "b2b.accounts", "-u", "stranger", "--mesh", str(mesh)],
                         capture_output=True, text=True, check=False)
    assert out.returncode != 0 and "stranger is not a principal of this mesh" in out.stderr
    assert "Traceback" not in out.stderr
    assert p.access_requests.all() == []


def test_two_levels_over_http_and_the_cli(mesh):
    platform = Platform(mesh)
    server = Server(create_app(platform), port=0).start()
    try:
        tokens = {u: platform.tokens.create(u, 1)[0] for u in ("ana", "lucas", "fiona")}
        ana, lucas, fiona = (Client(server.url, tokens[u]) for u in ("ana", "lucas", "fiona"))
        req = ana.request_access("b2b", "accounts", purpose="study", days=9)
        assert (req["levels"], req["pending_level"]) == (2, 1)
        with pytest.raises(errors.AccessDenied):
            fiona.approve_access(req["request_id"])
        half = lucas.approve_access(req["request_id"])
        assert half["status"] == "pending" and half["pending_level"] == 2
        assert [a["approver"] for a in half["approvals"]] == ["lucas"]
        listed = {r["request_id"]: r for r in fiona.access_requests()}[req["request_id"]]
        assert listed["pending_level"] == 2 and listed["approved_by"] == ["lucas"]
        assert fiona.approve_access(req["request_id"])["status"] == "approved"
    finally:
        server.stop()

    def quanta(*args):
        return subprocess.run(["quanta", *args, "--mesh", str(mesh)], capture_output=True, text=True, check=False)

    out = quanta("access", "request", "b2b.accounts", "-u", "marco", "--days", "3")
    assert out.returncode == 0 and "approvers: level 1: lucas, then level 2: cfo-office" in out.stdout, out.stderr
    rid = out.stdout.split()[2].rstrip(":")
    out = quanta("access", "approve", rid, "-u", "lucas")
    assert out.returncode == 0 and f"approved level 1 of access request {rid}: it waits for its level-2 approval by cfo-office" \
        in out.stdout, out.stderr
    listing = quanta("access", "list", "-u", "audrey")
    assert listing.returncode == 0 and "lucas" in listing.stdout, listing.stderr
    out = quanta("access", "approve", rid, "-u", "fiona")
    assert out.returncode == 0 and "marco may read b2b.accounts until" in out.stdout, out.stderr


def test_a_watching_server_shows_a_first_level_approval_made_elsewhere(mesh):
    import time

    server = Platform(mesh)
    server.watch(0.05)
    other = Platform(mesh)  # another process's view of the same state folder
    req = other.request_access(other.principal("ana"), "b2b.accounts", None, days=5)
    other.decide_access(other.principal("lucas"), req.request_id, True)
    audrey = federation.Connection(server, server.principal("audrey"))
    deadline = time.monotonic() + 60
    while True:
        row = audrey.sql("select pending_level, approved_by from system.access_requests where request_id = ?",
                         [req.request_id]).fetchone()
        if row == (2, ["lucas"]) or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert row == (2, ["lucas"])


def test_an_access_db_of_an_older_quanta_is_upgraded(tmp_path):
    import sqlite3

    path = tmp_path / "access.db"
    with sqlite3.connect(path) as db:  # the schema before approval levels
        db.executescript("""
            CREATE TABLE access_requests (
                request_id INTEGER PRIMARY KEY, principal TEXT NOT NULL, quantum TEXT NOT NULL, dataset TEXT NOT NULL,
                purpose TEXT, days INTEGER NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL,
                decided_by TEXT, decided_at TEXT, reason TEXT, expires TEXT);
            INSERT INTO access_requests VALUES (1, 'ana', 'b2b', 'accounts', 'old', 5, 'pending',
                                                '2026-01-01T00:00:00+00:00', NULL, NULL, NULL, NULL);
        """)
    db.close()
    store = AccessRequests(path)
    old = store.get(1)
    assert (old.levels, old.pending_level, old.approvals) == (1, 1, [])
    # the contract asks two levels now: the old request needs them too
    half = store.decide(1, "lucas", True, None, None, level=1, levels=2)
    assert (half.status, half.levels, half.pending_level) == ("pending", 2, 2)
    assert store.decide(1, "fiona", True, None, None, level=2, levels=2).status == "approved"
    assert [e["kind"] for e in store.events_after(0)] == ["access_level_approved", "access_approved"]
    store.close()


def test_a_read_only_access_db_of_an_older_quanta_still_lists(tmp_path):
    import json
    import sqlite3
    import sys

    from test_multiprocess import _read_only_bind

    folder = tmp_path / "state"
    folder.mkdir()
    path = folder / "access.db"
    with sqlite3.connect(path) as db:
        db.executescript("""
            CREATE TABLE access_requests (
                request_id INTEGER PRIMARY KEY, principal TEXT NOT NULL, quantum TEXT NOT NULL, dataset TEXT NOT NULL,
                purpose TEXT, days INTEGER NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL,
                decided_by TEXT, decided_at TEXT, reason TEXT, expires TEXT);
            INSERT INTO access_requests VALUES (1, 'ana', 'b2b', 'accounts', 'old', 5, 'approved',
                                                '2026-01-01T00:00:00+00:00', 'lucas', NULL, NULL, '2099-01-01');
        """)
    db.close()
    wrap = _read_only_bind(folder)
    if wrap is None:
        pytest.skip("no user/mount namespaces here to mount the folder read-only (chmod does not stop root)")
    code = ("import json, sys; from federation.governance.requests import AccessRequests; "
            "s = AccessRequests(sys.argv[1]); [r] = s.all(); "
            "print(json.dumps([s.read_only is not None, r.status, r.levels, r.approvals, s.events_after(0)]))")
    out = subprocess.run([*wrap, sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                         check=False)
    assert out.returncode == 0 and "Traceback" not in out.stderr, out.stderr
    assert json.loads(out.stdout.splitlines()[-1]) == [True, "approved", 1, [], []]
