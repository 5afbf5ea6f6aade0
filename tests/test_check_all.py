"""`quanta check --all` and ``control.check_all``: every dataset the principal may check (owner or data
engineer), one after the other, with progress, a summary and an exit status; the others are skipped."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from federation.onboarding import control
from federation.platform import Platform

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")


@pytest.fixture
def mesh(demo_path, tmp_path) -> Path:
    """A private copy of the demo mesh where liam owns sales but is no longer a data engineer."""
    root = tmp_path / "greatparts"
    shutil.copytree(demo_path, root, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    gov = root / "governance.yaml"
    text = gov.read_text()
    assert "{name: liam, roles: [data_engineer, employee]" in text
    gov.write_text(text.replace("{name: liam, roles: [data_engineer, employee]", "{name: liam, roles: [employee]"))
    return root


def cli(*args, user):
    env = dict(os.environ, QUANTA_USER=user)
    env.pop("QUANTA_MESH", None)
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=env, timeout=600)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def test_check_all_in_python(mesh):
    p = Platform(mesh)
    every = sorted(ds.qualified_name for ds in p.mesh.datasets())
    seen = []
    checks = control.check_all(p, p.principal("liam"), progress=lambda i, n, name: seen.append((i, n, name)))
    assert [c.dataset for c in checks] == every  # one row per dataset, in order
    mine = [c for c in checks if c.status != "skipped"]
    assert [c.dataset for c in mine] == ["sales.order_lines", "sales.orders", "sales.stores"]
    assert seen == [(1, 3, "sales.order_lines"), (2, 3, "sales.orders"), (3, 3, "sales.stores")]
    assert all(c.status in ("pass", "warn") and c.run.results and c.slo for c in mine)
    skipped = next(c for c in checks if c.dataset == "b2b.accounts")
    assert skipped.status == "skipped" and "liam is not an owner of b2b" in skipped.message
    row = next(c for c in checks if c.dataset == "sales.orders").to_dict()
    assert row["rules"] == row["pass"] + row["warn"] + row["fail"] + row["error"] and row["rows"] > 0
    # the results joined the history, as for one check
    assert {r["dataset"] for r in control.store_of(p).results()} == {"order_lines", "orders", "stores"}
    # a data engineer checks everything
    assert not [c for c in control.check_all(p, p.principal("dev"), slo=False) if c.status == "skipped"]


def test_cli_check_all(mesh):
    out = cli("check", "--all", "--mesh", str(mesh), user="liam")
    assert out.returncode == 0, out.stderr
    assert out.stderr.splitlines() == ["[1/3] sales.order_lines ...", "[2/3] sales.orders ...", "[3/3] sales.stores ..."]
    header = next(line for line in out.stdout.splitlines() if "dataset" in line)
    assert [h.strip() for h in header.strip("│").split("│")][:6] == ["dataset", "rules", "pass", "warn", "fail", "error"]
    assert "sales.orders" in out.stdout and "b2b.accounts" not in out.stdout.split("skipped")[0]
    assert "skipped 13 dataset(s) you may not check: b2b.accounts, b2b.b2b_orders" in out.stdout
    assert "3 dataset(s) checked, 0 failing" in out.stdout
    # a failing rule makes the exit status 1, in the table and in JSON
    p = Platform(mesh)
    control.set_rules(p, "sales.stores", [{"name": "too_few", "metric": "rowCount", "mustBeGreaterThan": 10 ** 9}],
                      p.principal("liam"))
    out = cli("check", "--all", "--json", "--no-slo", "--mesh", str(mesh), user="liam")
    assert out.returncode == 1 and out.stderr == ""  # no progress lines in machine output
    rows = {r["dataset"]: r for r in json.loads(out.stdout)["datasets"]}
    assert rows["sales.stores"]["status"] == "fail" and rows["sales.stores"]["fail"] == 1
    assert rows["sales.orders"]["status"] in ("pass", "warn") and rows["sales.orders"]["slo"] is None
    assert rows["b2b.accounts"]["status"] == "skipped" and json.loads(out.stdout)["failed"] == 1
    # someone who may check nothing: everything skipped, not an error
    out = cli("check", "--all", "--mesh", str(mesh), user="ana")
    assert out.returncode == 0 and "skipped 16 dataset(s)" in out.stdout and "0 dataset(s) checked" in out.stdout
    usage = cli("check", "--mesh", str(mesh), user="liam")
    assert usage.returncode == 2 and "give a DATASET, or --all" in usage.stderr
