"""Versions: pinned reads through governance, rollback, retention, and crash safety under real SIGKILLs."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from onboardkit import items, lab_mesh

from federation import errors
from federation.onboarding import control, onboard
from federation.onboarding.pipeline import PAUSE_ENV, STEPS
from federation.onboarding.serving import warehouse
from federation.onboarding.store import Store
from federation.platform import Platform

TESTS = Path(__file__).parent


def q(p, sql, user="ana"):
    return p.query(sql, p.principal(user)).fetchall()


@pytest.fixture
def lab(tmp_path):
    return Platform(lab_mesh(tmp_path / "lab"))


def test_pinned_versions_go_through_governance(lab):
    dev = lab.principal("dev")
    onboard(lab, "lab.items", items(5), dev)
    onboard(lab, "lab.items", items(7), dev)
    assert q(lab, "select count(*) from lab.items") == [(7,)]
    assert q(lab, 'select count(*) from lab."items@v1"') == [(5,)]
    assert q(lab, 'select count(*) from lab."items@V2" as x where x.id > 0') == [(7,)]
    # masks apply to pinned reads exactly as to the dataset
    assert q(lab, 'select distinct email from lab."items@v1"') == [("****",)]
    assert q(lab, 'select email from lab."items@v1" where id = 1', "pia") == [("user1@example.com",)]
    # joins between versions: what changed
    assert q(lab, 'select count(*) from lab.items n left join lab."items@v1" o using (id) where o.id is null') == [(2,)]
    with pytest.raises(errors.UnknownObject,
                       match=r"version 9 of lab.items is not available \(kept versions: v1, v2\)"):
        q(lab, 'select * from lab."items@v9"')
    # the audit log names the dataset, and a fresh platform serves the same pins
    fresh = Platform(lab.path)
    assert q(fresh, 'select count(*) from lab."items@v1"') == [(5,)]
    assert q(fresh, "select count(*) from lab.items") == [(7,)]


def test_pinned_read_needs_a_grant(tmp_path):
    import yaml

    root = lab_mesh(tmp_path / "lab")
    gov = yaml.safe_load((root / "governance.yaml").read_text())
    gov["principals"].append({"name": "eve", "roles": ["visitor"]})
    (root / "governance.yaml").write_text(yaml.safe_dump(gov))
    p = Platform(root)
    onboard(p, "lab.items", items(5), p.principal("dev"))
    with pytest.raises(errors.AccessDenied):
        q(p, 'select * from lab."items@v1"', "eve")


def test_rollback_and_history(lab):
    dev = lab.principal("dev")
    for n in (5, 6, 7):
        onboard(lab, "lab.items", items(n), dev)
    v = control.rollback(lab, "lab.items", 1, lab.principal("olivia"))
    assert v.version == 1 and v.status == "published"
    assert q(lab, "select count(*) from lab.items") == [(5,)]
    assert q(lab, "select version, status, current from system.versions order by version") == [
        (1, "published", True), (2, "rolled_back", False), (3, "rolled_back", False)]
    assert q(lab, 'select count(*) from lab."items@v3"') == [(7,)]  # rolled back versions stay pinnable
    assert Platform(lab.path).query("select count(*) from lab.items", lab.principal("ana")).fetchall() == [(5,)]
    kinds = [e["kind"] for e in control.store_of(lab).events()]
    assert kinds[-1] == "version_rolled_back"
    # a new version after a rollback gets a new number and becomes current
    assert onboard(lab, "lab.items", items(9), dev).version == 4
    assert q(lab, "select count(*) from lab.items") == [(9,)]
    # forward again to v3 is a rollback too
    control.rollback(lab, "lab.items", 3, dev)
    assert q(lab, "select count(*) from lab.items") == [(7,)]
    with pytest.raises(errors.ProgrammingError, match="has no version 42"):
        control.rollback(lab, "lab.items", 42, dev)


def test_retention_keeps_n_versions(tmp_path):
    p = Platform(lab_mesh(tmp_path / "lab", versions_kept=2, extra_settings={"expired_version_grace_seconds": 0}))
    dev = p.principal("dev")
    for n in (3, 4, 5, 6):
        onboard(p, "lab.items", items(n), dev)
    folder = warehouse(p.mesh) / "lab" / "items"
    assert sorted(x.name for x in folder.iterdir() if x.name.startswith("v")) == ["v3", "v4"]
    assert q(p, "select version, status from system.versions order by version") == [
        (1, "expired"), (2, "expired"), (3, "published"), (4, "published")]
    with pytest.raises(errors.UnknownObject, match="kept versions: v3, v4"):
        q(p, 'select * from lab."items@v1"')
    assert q(p, 'select count(*) from lab."items@v3"') == [(5,)]
    with pytest.raises(errors.ProgrammingError, match="no version 1"):
        control.rollback(p, "lab.items", 1, dev)


def test_expired_files_stay_for_their_grace_period(tmp_path):
    """A query that started before a version expired (here: a result still open) reads on: the files of an
    expired version stay for the grace period (by default the query time-out plus a minute)."""
    p = Platform(lab_mesh(tmp_path / "lab", versions_kept=1))
    dev, ana = p.principal("dev"), p.principal("ana")
    onboard(p, "lab.items", items(3), dev)
    result = p.query("select id from lab.items order by id", ana)  # runs on the state serving v1
    onboard(p, "lab.items", items(4), dev)  # v1 expires
    folder = warehouse(p.mesh) / "lab" / "items"
    assert sorted(x.name for x in folder.iterdir() if x.name.startswith("v")) == ["v1", "v2"]
    assert (folder / "v1" / ".expired").exists()
    assert [r[0] for r in result.fetchall()] == [1, 2, 3]
    assert q(p, "select count(*) from lab.items") == [(4,)]
    with pytest.raises(errors.UnknownObject, match="kept versions: v2"):
        q(p, 'select * from lab."items@v1"')
    onboard(p, "lab.items", items(5), dev)  # a later publish sweeps nothing still in its grace period
    assert sorted(x.name for x in folder.iterdir() if x.name.startswith("v")) == ["v1", "v2", "v3"]


# -- crash safety ---------------------------------------------------------------------------------------

CHILD = textwrap.dedent("""
    import sys
    sys.path.insert(0, {tests!r})
    from onboardkit import items
    from federation.platform import Platform
    from federation.onboarding import onboard
    p = Platform({root!r})
    batch = items({rows})
    print("START", flush=True)
    onboard(p, "lab.items", batch, p.principal("dev"))
    print("DONE", flush=True)
""")


def _child(root: Path, rows: int, pause: str | None) -> subprocess.Popen:
    env = dict(os.environ)
    env.pop(PAUSE_ENV, None)
    if pause:
        env[PAUSE_ENV] = pause
    code = CHILD.format(tests=str(TESTS), root=str(root), rows=rows)
    return subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
                            text=True)


def _assert_consistent(root: Path, allowed_counts: set[int]) -> int:
    """The served data is one whole published version, every kept version is intact, metadata agrees."""
    p = Platform(root)
    store = Store.open(p.state_dir)
    try:
        current = store.current("lab", "items")
        count = q(p, "select count(*) from lab.items")[0][0]
        assert count in allowed_counts
        assert current is not None and current.rows == count
        for v in store.versions("lab", "items"):
            if v.status in ("published", "rolled_back"):
                files = list(Path(v.path).glob("*.parquet"))
                assert files and sum(pq.read_metadata(f).num_rows for f in files) == v.rows
                assert q(p, f'select count(*) from lab."items@v{v.version}"') == [(v.rows,)]
        return count
    finally:
        store.close()


@pytest.mark.parametrize("step", STEPS)
def test_sigkill_at_each_step_loses_nothing(tmp_path, step):
    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    onboard(p, "lab.items", items(10), p.principal("dev"))  # v1: the last good version
    child = _child(root, 20, step)
    line = ""
    while not line.startswith(f"PAUSE {step}"):
        line = child.stderr.readline()
        assert line or child.poll() is None, f"the child ended before step {step}: {child.stderr.read()}"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert child.returncode == -signal.SIGKILL
    committed = STEPS.index(step) >= STEPS.index("committed")
    count = _assert_consistent(root, {20} if committed else {10})
    assert count == (20 if committed else 10)
    # the next onboarding recovers: no temp or orphan folders, numbering goes on
    p2 = Platform(root)
    report = onboard(p2, "lab.items", items(30), p2.principal("dev"))
    assert report.version == 3 if committed else report.version == 2
    folder = warehouse(p2.mesh) / "lab" / "items"
    assert not [x for x in folder.iterdir() if x.name.startswith(".tmp-")]
    assert sorted(x.name for x in folder.iterdir() if x.name.startswith("v")) == (
        ["v1", "v2", "v3"] if committed else ["v1", "v2"])
    _assert_consistent(root, {30})


def test_sigkill_at_random_moments(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    onboard(p, "lab.items", items(1000), p.principal("dev"))
    rng = random.Random(4)
    allowed = {1000}
    for i in range(8):
        rows = 200_000 + i
        child = _child(root, rows, None)
        assert child.stdout.readline().strip() == "START"  # killed while onboarding, at a random moment
        delay = rng.uniform(0.0, 0.9)
        try:
            child.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            child.send_signal(signal.SIGKILL)
            child.wait()
        allowed.add(rows)
        _assert_consistent(root, allowed)
    p2 = Platform(root)
    onboard(p2, "lab.items", items(77), p2.principal("dev"))
    assert _assert_consistent(root, {77}) == 77
