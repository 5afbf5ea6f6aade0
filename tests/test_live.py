"""One live mesh: a running server (a real ``quanta serve`` process) sees what CLI processes change, without
a restart: published versions (and retention never pulls files from under it), edits of contracts and of
governance, grants revoked; a broken edit keeps the last good state serving and says why."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import requests
import yaml
from onboardkit import items, lab_mesh

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
BOUND = 15.0  # the bound is one second; a shared CI machine gets slack, the figures are in benchmarks/live.py


def quanta(*args: str, check: int | None = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, timeout=120, env=env)
    if check is not None:
        assert p.returncode == check, (args, p.stdout, p.stderr)
    return p


@pytest.fixture()
def live(tmp_path):
    root = lab_mesh(tmp_path / "lab", versions_kept=2, extra_settings={"expired_version_grace_seconds": 0})
    token = quanta("token", "create", "ana", "--mesh", str(root)).stdout.strip().splitlines()[-1]
    env = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}
    proc = subprocess.Popen([QUANTA, "serve", str(root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    url = None
    for _ in range(10):
        line = proc.stdout.readline()
        m = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1/", line)
        if m:
            url = m.group(1)
            break
    assert url, proc.stderr.read() if proc.poll() is not None else "no URL printed"
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    try:
        yield root, url, session
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()


def ask(url: str, session: requests.Session, sql: str) -> requests.Response:
    return session.post(url + "/api/v1/query", json={"sql": sql}, timeout=60)


def until(check, what: str) -> float:
    """Seconds until ``check()`` is true (fails after BOUND)."""
    started = time.monotonic()
    last = None
    while time.monotonic() - started < BOUND:
        last = check()
        if last is True:
            return time.monotonic() - started
        time.sleep(0.05)
    pytest.fail(f"{what}: not seen within {BOUND} s (last: {last})")


def publish(root: Path, n: int) -> None:
    batch = root.parent / f"batch{n}.parquet"
    pq.write_table(items(n), batch)
    quanta("onboard", "lab.items", str(batch), "--mesh", str(root), "-u", "dev")


def test_server_sees_versions_published_by_another_process(live):
    root, url, s = live

    def count(n):
        def check():
            r = ask(url, s, "select count(*) from lab.items")
            return True if r.status_code == 200 and r.json()["rows"] == [[n]] else (r.status_code, r.text[:200])
        return check

    for n in (3, 4, 5, 6, 7):  # versions_kept is 2: the first versions expire while the server reads on
        publish(root, n)
        until(count(n), f"version with {n} rows")
    r = ask(url, s, "select version, status from system.versions order by version")
    assert r.json()["rows"] == [[1, "expired"], [2, "expired"], [3, "expired"], [4, "published"], [5, "published"]]
    # expired versions' files go once no server's state reads them (the server's lease held them meanwhile)
    folder = root / "warehouse" / "lab" / "items"
    until(lambda: sorted(p.name for p in folder.iterdir() if p.name.startswith("v")) == ["v4", "v5"] or
          sorted(p.name for p in folder.iterdir()), "expired versions swept")
    assert ask(url, s, 'select count(*) from lab."items@v4"').json()["rows"] == [[6]]


def test_server_sees_contract_and_governance_edits(live):
    root, url, s = live
    publish(root, 3)
    until(lambda: ask(url, s, "select count(*) from lab.items").json().get("rows") == [[3]] or "not yet",
          "first version")
    assert ask(url, s, "select name from lab.items order by id limit 1").json()["rows"] == [["item 1"]]

    contract = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(contract.read_text())
    data["schema"][0]["description"] = "Lab items, described again"
    contract.write_text(yaml.safe_dump(data, sort_keys=False))
    until(lambda: ask(url, s, "select description from system.datasets where dataset = 'items'").json()["rows"]
          == [["Lab items, described again"]] or "old description", "contract edit")

    gov_file = root / "governance.yaml"
    gov = yaml.safe_load(gov_file.read_text())
    gov["policies"].append({"name": "hide-names", "kind": "mask", "on": {"column": "name"},
                            "mask": "redact"})
    gov_file.write_text(yaml.safe_dump(gov, sort_keys=False))

    def masked():
        r = ask(url, s, "select name from lab.items order by id limit 1")
        return True if r.status_code == 200 and r.json()["rows"][0][0] != "item 1" else r.text[:200]
    until(masked, "new mask policy")


def test_broken_edit_keeps_the_last_good_state(live):
    root, url, s = live
    publish(root, 4)
    until(lambda: ask(url, s, "select count(*) from lab.items").json().get("rows") == [[4]] or "not yet",
          "first version")
    contract = root / "contracts" / "lab.odcs.yaml"
    good = contract.read_text()
    contract.write_text(good.replace("kind: DataContract", "kind: [unclosed"))

    def reported():
        ready = requests.get(url + "/readyz", timeout=30).json()
        return True if ready.get("reload_problems") else ready
    until(reported, "the broken edit reported by /readyz")
    r = ask(url, s, "select count(*) from lab.items")
    assert r.status_code == 200 and r.json()["rows"] == [[4]]  # the last good state serves
    problems = ask(url, s, "select message from system.problems").json()["rows"]
    assert any("lab.odcs.yaml" in str(p) or "last good state" in p[0] for p in problems), problems
    contract.write_text(good)
    until(lambda: not requests.get(url + "/readyz", timeout=30).json().get("reload_problems") or "still", "fixed")
    assert ask(url, s, "select count(*) from lab.items").json()["rows"] == [[4]]


def test_state_changes_apply_while_the_files_are_broken(tmp_path):
    """A broken edit keeps the last good *files*, not the last state: a version published (or a grant
    revoked) meanwhile is served at once, on the last good files, and the edit's problems are reported."""
    from federation.onboarding import onboard
    from federation.platform import Platform

    root = lab_mesh(tmp_path / "lab")
    server, cli = Platform(root), Platform(root)  # two processes' platforms (the server watches)
    onboard(cli, "lab.items", items(3), cli.principal("dev"))
    watcher = server.watch(interval=0.05)
    ana = server.principal("ana")
    count = lambda: server.query("select count(*) from lab.items", ana).fetchall()  # noqa: E731
    until(lambda: count() == [(3,)] or count(), "first version")
    contract = root / "contracts" / "lab.odcs.yaml"
    contract.write_text(contract.read_text().replace("kind: DataContract", "kind: [unclosed"))
    until(lambda: bool(server.reload_problems) or "no problem yet", "the broken edit")
    onboard(cli, "lab.items", items(5), cli.principal("dev"))  # the CLI's platform also serves its last good files
    until(lambda: count() == [(5,)] or count(), "a version published while the files are broken")
    assert server.reload_problems
    assert server.query("select count(*) from system.problems where message like '%last good state serves%'",
                        ana).fetchall()[0][0] >= 1
    watcher.stop()


def test_nothing_changed_means_no_reload(tmp_path):
    """A server's first polls see what its first state was built from (state databases created by the load
    itself are not a change): no reload, the same state serves."""
    from federation.onboarding import onboard
    from federation.platform import Platform

    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    watcher = p.watch(interval=0.05)
    time.sleep(1.0)
    assert (watcher.reloads, watcher.failures, p.state.serial) == (0, 0, 1)
    onboard(p, "lab.items", items(3), p.principal("dev"))  # an in-process change reloads once, here
    serial = p.state.serial
    time.sleep(1.0)
    assert p.state.serial == serial and watcher.failures == 0  # and the watcher does not build it again
    watcher.stop()
