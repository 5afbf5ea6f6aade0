"""Several processes on one mesh (issue 12, item 3): onboardings, servers, approvers and token makers writing
the state databases and the warehouse at once lose nothing, corrupt nothing and never number two versions
alike; and a state folder that cannot be written still serves queries, read-only, with one warning."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
import yaml
from onboardkit import GOVERNANCE, items, lab_mesh

from federation.client import Client
from federation.governance.audit import AuditLog
from federation.governance.requests import AccessRequests
from federation.governance.tokens import TokenStore
from federation.onboarding.serving import warehouse
from federation.onboarding.store import Store
from federation.platform import Platform

TESTS = Path(__file__).parent
QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
SIZES = {k: [10 * (k + 1) + i for i in range(5)] for k in range(3)}  # every batch a distinct row count

PUBLISHER = textwrap.dedent("""
    import json, sys
    sys.path.insert(0, {tests!r})
    from onboardkit import items
    from federation.platform import Platform
    from federation.onboarding import onboard
    from federation.onboarding.pipeline import OnboardingRejected
    p = Platform({root!r})
    dev = p.principal("dev")
    print("READY", flush=True)
    sys.stdin.readline()
    for n in {sizes!r}:
        print(json.dumps(["published", n, onboard(p, "lab.items", items(n), dev).version]), flush=True)
        if n == {sizes!r}[2]:  # a refused batch in the middle: its failed version is numbered too
            try:
                onboard(p, "lab.items", items(5, kind=["zz"] * 5), dev)
            except OnboardingRejected as e:
                print(json.dumps(["failed", 5, e.report.status]), flush=True)
""")


def _start(code: str, env: dict | None = None) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    line = proc.stdout.readline()
    assert line.strip() == "READY", proc.communicate(timeout=60)
    return proc


def _go(procs: list[subprocess.Popen], timeout: float = 120) -> list[list]:
    """Release every child at once; their JSON lines once they are done (each must succeed)."""
    for proc in procs:
        proc.stdin.write("go\n")
        proc.stdin.flush()
    out = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=timeout)
        assert proc.returncode == 0 and "Traceback" not in stderr, stderr
        out.append([json.loads(line) for line in stdout.splitlines() if line.startswith("[")])
    return out


def _assert_versions_consistent(root: Path, published: dict[int, int], failed: int) -> None:
    """``published``: version -> rows; ``failed``: how many batches were refused. Numbers 1..N once each, every published version whole and readable,
    its folder the one its row names, no stray folder, one event per version, in commit order."""
    p = Platform(root)
    store = Store.open(p.state_dir)
    try:
        versions = store.versions("lab", "items")
        events = store.events()
    finally:
        store.close()
    assert [v.version for v in versions] == list(range(1, len(published) + failed + 1))
    assert {v.version: v.rows for v in versions if v.status == "published"} == published
    refused = {v.version for v in versions if v.status == "failed"}
    assert len(refused) == failed and all(v.rows == 5 for v in versions if v.status == "failed")
    folder = warehouse(p.mesh) / "lab" / "items"
    assert sorted(x.name for x in folder.iterdir() if not x.name.startswith(".lock")) == sorted(
        f"v{n}" for n in published)  # no temp folder, no orphan, no folder of a failed version
    dev = p.principal("dev")
    for v in versions:
        if v.status != "published":
            continue
        assert Path(v.path) == folder / f"v{v.version}"
        assert sum(pq.read_metadata(f).num_rows for f in Path(v.path).glob("*.parquet")) == v.rows
        assert p.query(f'select count(*) from lab."items@v{v.version}"', dev).fetchall() == [(v.rows,)]
    newest = max(published)
    assert p.query("select count(*) from lab.items", dev).fetchall() == [(published[newest],)]
    assert [e["event_id"] for e in events] == sorted({e["event_id"] for e in events})
    by_kind = {k: sorted(e["version"] for e in events if e["kind"] == k)
               for k in ("version_published", "onboarding_failed")}
    assert by_kind == {"version_published": sorted(published), "onboarding_failed": sorted(refused)}
    commits = [e["version"] for e in events if e["kind"] in ("version_published", "onboarding_failed")]
    assert commits == sorted(commits)  # numbered and committed in one order: under the dataset lock


def test_three_processes_publish_at_once_without_a_duplicate_or_lost_version(tmp_path):
    root = lab_mesh(tmp_path / "lab", versions_kept=50)
    procs = [_start(PUBLISHER.format(tests=str(TESTS), root=str(root), sizes=SIZES[k])) for k in range(3)]
    reports = _go(procs)
    published = {v: n for rows in reports for kind, n, v in rows if kind == "published"}
    failed = [v for rows in reports for kind, _, v in rows if kind == "failed"]
    assert sorted(published.values()) == sorted(n for sizes in SIZES.values() for n in sizes)  # none lost
    assert len(published) == 15 and failed == ["rejected"] * 3
    _assert_versions_consistent(root, published, 3)


def _serve(root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([QUANTA, "serve", str(root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    text = ""
    for _ in range(10):
        line = proc.stdout.readline()
        text += line
        found = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1/", line)
        if found:
            return proc, found.group(1)
        if not line:
            break
    proc.kill()
    raise AssertionError(text + proc.stderr.read())


def _stop(proc: subprocess.Popen) -> str:
    proc.terminate()
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
    return err


def test_two_servers_and_the_cli_publish_at_once(tmp_path):
    root = lab_mesh(tmp_path / "lab", versions_kept=50)
    secret, _ = Platform(root).tokens.create("dev", 1)
    batches = {}
    for n in (11, 12, 13, 21, 22, 23, 31, 32):
        batches[n] = tmp_path / f"batch{n}.parquet"
        pq.write_table(items(n), batches[n])
    servers = [_serve(root) for _ in range(2)]
    results: dict[int, int] = {}
    problems: list[str] = []

    def upload(url: str, sizes: tuple[int, ...]) -> None:
        for n in sizes:
            with open(batches[n], "rb") as f:
                r = requests.post(f"{url}/api/v1/datasets/lab/items/versions", files={"file": (f"b{n}.parquet", f)},
                                  headers={"Authorization": f"Bearer {secret}"}, timeout=120)
            if r.status_code != 201:
                problems.append(f"{url}: {r.status_code} {r.text}")
            else:
                results[r.json()["version"]] = n

    def cli(sizes: tuple[int, ...]) -> None:
        for n in sizes:
            out = subprocess.run([QUANTA, "onboard", "lab.items", str(batches[n]), "-u", "dev", "--mesh", str(root),
                                  "--json"], check=False, capture_output=True, text=True, timeout=120)
            if out.returncode != 0:
                problems.append(f"cli: {out.stderr}")
            else:
                results[json.loads(out.stdout)["version"]] = n

    try:
        threads = [threading.Thread(target=upload, args=(servers[0][1], (11, 12, 13))),
                   threading.Thread(target=upload, args=(servers[1][1], (21, 22, 23))),
                   threading.Thread(target=cli, args=((31, 32),))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not problems, problems
        assert sorted(results.values()) == sorted(batches)
        for _, url in servers:  # each server lists every version, whoever published it
            listed = requests.get(f"{url}/api/v1/datasets/lab/items/versions",
                                  headers={"Authorization": f"Bearer {secret}"}, timeout=30).json()["versions"]
            assert sorted(v["version"] for v in listed) == list(range(1, 9))
        newest = results[max(results)]
        for _, url in servers:  # and serves the newest, whoever published it (hot reload: within 10 s)
            client, deadline, seen = Client(url, secret), time.monotonic() + 10, None
            while seen != newest and time.monotonic() < deadline:
                seen = client.sql("select count(*) from lab.items").fetchone()[0]
                time.sleep(0.05)
            assert seen == newest
    finally:
        errs = [_stop(proc) for proc, _ in servers]
    assert not any("Traceback" in e for e in errs), errs
    _assert_versions_consistent(root, results, 0)


DECIDER = textwrap.dedent("""
    import json, sys
    from federation.platform import Platform
    p = Platform({root!r})
    who = p.principal({who!r})
    print("READY", flush=True)
    sys.stdin.readline()
    for request_id in {ids!r}:
        try:
            req = p.decide_access(who, request_id, {approve!r}, reason={who!r})
            print(json.dumps([request_id, "won", req.status]), flush=True)
        except Exception as e:
            print(json.dumps([request_id, getattr(e, "code", type(e).__name__), str(e)]), flush=True)
""")


def test_two_processes_deciding_the_same_requests_one_wins_each(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    governance = {**GOVERNANCE, "principals": GOVERNANCE["principals"] + [{"name": "zoe", "roles": []}]}
    (root / "governance.yaml").write_text(yaml.safe_dump(governance, sort_keys=False))
    p = Platform(root)
    # fifteen pending requests, one per requester (a principal has one pending request per dataset)
    ids = [p.access_requests.create(f"zoe{i}", "lab", "items", "a race", 5).request_id for i in range(15)]
    procs = [_start(DECIDER.format(root=str(root), who=who, approve=approve, ids=ids))
             for who, approve in (("olivia", True), ("dev", False))]  # the owner approves, an engineer denies
    approver, denier = _go(procs)
    final = {r.request_id: r for r in Platform(root).access_requests.all()}
    for (rid, a, a_msg), (rid2, d, d_msg) in zip(approver, denier):
        assert rid == rid2
        assert [a, d].count("won") == 1, (a, a_msg, d, d_msg)  # exactly one decision per request
        loser, message = (d, d_msg) if a == "won" else (a, a_msg)
        assert loser in ("already_decided", "unknown_object"), message
        assert re.search(rf"(already (approved|denied) by (olivia|dev)|no pending access request {rid})", message)
        winner = "olivia" if a == "won" else "dev"
        assert final[rid].decided_by == winner and final[rid].reason == winner
        assert final[rid].status == ("approved" if winner == "olivia" else "denied")
    assert sorted(final) == sorted(ids)


TOKENS_AND_QUERIES = textwrap.dedent("""
    import json, sys
    from federation.platform import Platform
    print("READY", flush=True)
    sys.stdin.readline()
    p = Platform({root!r})  # all at once, on a mesh without a state folder yet: every state file made at once
    from federation.server.pgwire.auth import register_token
    made = [p.tokens.create("ana", 1)[0] for _ in range(10)]
    for secret in made:  # as `quanta token create` does: a SCRAM verifier (one salt per principal, shared)
        register_token(p, secret)
    for i in range(20):
        p.query(f"select {{i}} as n, count(*) from lab.items", p.principal("ana"), interface="test:{tag}").fetchall()
    print(json.dumps(made), flush=True)
""")


def test_three_processes_make_the_state_files_create_tokens_and_audit_queries_at_once(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    procs = [_start(TOKENS_AND_QUERIES.format(root=str(root), tag=tag)) for tag in ("a", "b", "c")]
    made = [secret for rows in _go(procs) for secret in rows[0]]
    p = Platform(root)
    assert len(made) == 30 and all(p.tokens.verify(s) == "ana" for s in made)
    assert len(p.tokens.list()) == 30
    log = p.audit.history().to_pylist()
    for tag in ("a", "b", "c"):
        assert len([e for e in log if e["interface"] == f"test:{tag}"]) == 20  # no audit record lost
    assert len({e["query_id"] for e in log}) == len(log)
    from federation.server.pgwire.auth import store_for

    assert len(store_for(p).verifiers("ana")) == 30


OPENER = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from federation.governance.audit import AuditLog, Entry
    from federation.governance.requests import AccessRequests
    from federation.governance.tokens import TokenStore
    from federation.onboarding.store import Store
    folder, start = Path(sys.argv[1]), float(sys.argv[2])
    time.sleep(max(0.0, start - time.time()))  # every process opens the new files at the same instant
    Store.open(folder).emit("opened")
    TokenStore(folder / "tokens.db").create("ana")
    AccessRequests(folder / "access.db").create(f"zoe{os.getpid()}", "lab", "items", None, 1)  # one pending each
    AuditLog(folder / "state.db").record(Entry("ana", "select 1"))
""")


def test_six_processes_creating_the_state_files_at_once(tmp_path):
    """Switching a new SQLite file to WAL answers "locked" at once, without the busy time-out, when another
    process is creating it too: statedb.connect tries again (this failed about once in 50 processes)."""
    for round_ in range(2):
        folder = tmp_path / f"state{round_}"
        start = time.time() + 1.5
        procs = [subprocess.Popen([sys.executable, "-c", OPENER, str(folder), str(start)], stderr=subprocess.PIPE,
                                  text=True) for _ in range(6)]
        for proc in procs:
            _, err = proc.communicate(timeout=60)
            assert proc.returncode == 0, err
        assert len(Store.open(folder).events("opened")) == 6
        assert len(TokenStore(folder / "tokens.db").list()) == 6
        assert len(AccessRequests(folder / "access.db").all()) == 6
        assert AuditLog(folder / "state.db").history().num_rows == 6


# -- a state folder that cannot be written ----------------------------------------------------------------

WARNING = "warning: the state folder"


def _quanta(*args: str, env: dict | None = None, wrap: list[str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([*(wrap or []), QUANTA, *args], check=False, capture_output=True, text=True, env=env,
                          timeout=120)


def test_a_state_folder_that_cannot_be_created_serves_queries_with_one_warning(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    # QUANTA_MASK_SALT: the platform keeps its hash-mask salt in the state folder too (a LEAD follow-up)
    env = {**os.environ, "QUANTA_STATE_DIR": str(blocker / "state"), "QUANTA_MASK_SALT": "s3cr3t"}
    out = _quanta("query", "select count(*) as n from lab.items", "-u", "ana", "--mesh", str(root),
                  "--format", "json", env=env)
    assert out.returncode == 0, out.stderr
    assert out.stderr.count(WARNING) == 1 and "Traceback" not in out.stderr, out.stderr
    assert str(blocker / "state") in out.stderr
    for args, what in ((("token", "create", "ana"), "create a token"),
                       (("access", "request", "lab.items", "-u", "pia"), "")):
        refused = _quanta(*args, "--mesh", str(root), env=env)
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert what in refused.stderr


def _read_only_bind(folder: Path) -> list[str] | None:
    """A command prefix running the rest with ``folder`` mounted read-only (a user and mount namespace: works
    as root, where chmod does not stop writes); None where namespaces are not allowed."""
    wrap = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
            f'mount --bind -o ro "{folder}" "{folder}" && exec "$0" "$@"']
    if shutil.which("unshare") is None:
        return None
    probe = subprocess.run([*wrap, "sh", "-c", f'touch "{folder}/probe"'], check=False, capture_output=True,
                           text=True)
    return wrap if probe.returncode != 0 and "Read-only" in probe.stderr else None


def test_a_read_only_state_folder_serves_the_published_version_and_refuses_writes(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    from federation.onboarding import onboard

    onboard(p, "lab.items", items(7), p.principal("dev"))
    p.tokens.create("ana", 1)
    state = p.state_dir
    wrap = _read_only_bind(state)
    if wrap is None:
        pytest.skip("no user/mount namespaces here to mount the state folder read-only (chmod does not stop root)")
    out = _quanta("query", "select count(*) as n from lab.items", "-u", "ana", "--mesh", str(root),
                  "--format", "json", wrap=wrap)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)[0]["n"] == 7  # the published version, read from the read-only control.db
    assert out.stderr.count(WARNING) == 1 and "Traceback" not in out.stderr, out.stderr
    batch = tmp_path / "b.parquet"
    pq.write_table(items(9), batch)
    refused = _quanta("onboard", "lab.items", str(batch), "-u", "dev", "--mesh", str(root), wrap=wrap)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert "cannot publish a version of lab.items" in refused.stderr and "control.db" in refused.stderr, refused.stderr
    assert sorted(x.name for x in (warehouse(p.mesh) / "lab" / "items").iterdir() if x.name.startswith("v")) == ["v1"]


def test_audit_required_refuses_queries_when_the_audit_log_cannot_be_written(tmp_path):
    """Fail closed on demand: with ``audit_required: true`` and no audit log, no data is read (the same mesh
    without the setting serves, as the test above shows); the salt of hash masks falls back to one of the
    process, with a warning, instead of failing."""
    root = lab_mesh(tmp_path / "lab", extra_settings={"audit_required": True})
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    env = {k: v for k, v in os.environ.items() if k not in ("QUANTA_MASK_SALT", "QUANTA_MESH")}
    env["QUANTA_STATE_DIR"] = str(blocker / "state")
    out = _quanta("query", "select count(*) as n from lab.items", "-u", "ana", "--mesh", str(root), env=env)
    assert out.returncode == 1 and "Traceback" not in out.stderr, out.stderr
    assert "the mesh requires an audit trail (setting audit_required)" in out.stderr, out.stderr
    assert "mask salt cannot be kept" in out.stderr, out.stderr
