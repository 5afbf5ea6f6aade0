"""The ``quanta`` command, run as a real subprocess (the installed console script)."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from meshkit import shop_mesh, write_yaml

import federation
from federation.platform import Platform

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")


def run(*args, env=None, check=None):
    e = dict(os.environ)
    e.pop("QUANTA_MESH", None)
    e.update(env or {})
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=e, timeout=120)
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    assert "Traceback" not in p.stderr, p.stderr
    return p


@pytest.fixture(scope="module")
def mesh(tmp_path_factory):
    gov = {
        "principals": [{"name": "ana", "roles": ["analyst"]}, {"name": "pia", "roles": ["analyst", "pii_reader"]}],
        "grants": [{"to": {"role": "analyst"}, "on": "*"}],
        "policies": [{"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
                      "unless": {"roles": ["pii_reader"]}}],
    }
    return str(shop_mesh(tmp_path_factory.mktemp("cli"), governance=gov))


def test_validate_ok(mesh):
    p = run("validate", mesh, check=0)
    assert "3 quanta" in p.stdout and "valid" in p.stdout


def test_validate_reports_every_problem_and_fails(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["schema"][0]["properties"][0]["logicalType"] = "money"
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    (root / "products" / "crm.odps.yaml").write_text("name: [unclosed\n")
    p = run("validate", str(root), check=1)
    assert "contracts/shop.odcs.yaml" in p.stdout and "schema[0].properties[0].logicalType" in p.stdout
    assert "products/crm.odps.yaml:" in p.stdout and "invalid YAML" in p.stdout
    j = json.loads(run("validate", str(root), "--json", check=1).stdout)
    assert "shop" in {pr["quantum"] for pr in j["problems"]}
    assert any(pr["file"] == "products/crm.odps.yaml" and pr["line"] for pr in j["problems"])


def test_validate_missing_mesh(tmp_path):
    p = run("validate", str(tmp_path / "nowhere"), check=1)
    assert "does not exist" in p.stderr


def test_query_table_and_users(mesh):
    p = run("query", "select full_name from crm.customers where id = 1", "--mesh", mesh, "--user", "ana", check=0)
    assert "****" in p.stdout and "name1" not in p.stdout and "(1 row" in p.stdout
    p = run("query", "select full_name from crm.customers where id = 1", "--mesh", mesh, "--user", "pia", check=0)
    assert "name1" in p.stdout


def test_query_formats(mesh, tmp_path):
    sql = "select order_id, amount from shop.orders order by order_id limit 3"
    p = run("query", sql, "--mesh", mesh, "-u", "ana", "--format", "csv", check=0)
    rows = list(csv.reader(io.StringIO(p.stdout)))
    assert rows[0] == ["order_id", "amount"] and rows[1] == ["0", "0.00"] and len(rows) == 4
    p = run("query", sql, "--mesh", mesh, "-u", "ana", "--format", "json", check=0)
    assert json.loads(p.stdout)[1] == {"order_id": 1, "amount": "7.00"}
    out = tmp_path / "o.parquet"
    run("query", sql, "--mesh", mesh, "-u", "ana", "--format", "parquet", "--output", str(out), check=0)
    assert pq.read_table(out).num_rows == 3
    p = run("query", "select count(*) from shop.orders where amount > ?", "-p", "50", "--mesh", mesh, "-u", "ana",
            "--format", "ndjson", check=0)
    assert json.loads(p.stdout.splitlines()[0]) == {"count_star()": 49}


def test_query_errors_are_one_line(mesh):
    p = run("query", "select * from shop.nothing", "--mesh", mesh, "-u", "ana", check=1)
    assert p.stderr.startswith("error: shop.nothing does not exist") and len(p.stderr.splitlines()) == 1
    p = run("query", "select getenv('HOME')", "--mesh", mesh, "-u", "ana", check=1)
    assert "getenv" in p.stderr
    p = run("query", "select * from shop.orders", "--mesh", mesh, "-u", "stranger", check=1)
    assert "access denied" in p.stderr
    p = run("query", "select (", "--mesh", mesh, check=1)
    assert "syntax error" in p.stderr and "line 1" in p.stderr


def test_describe(mesh):
    p = run("describe", "shop.orders", "--mesh", mesh, check=0)
    assert "customer_id" in p.stdout and "DECIMAL(10,2)" in p.stdout and "shop-contract" in p.stdout
    p = run("describe", "report", "--mesh", mesh, check=0)
    assert "report.sales_by_region" in p.stdout and "input" in p.stdout
    p = run("describe", "nothing", "--mesh", mesh, check=1)
    assert "no quantum 'nothing'" in p.stderr


def test_tokens(mesh):
    p = run("token", "create", "ana", "--mesh", mesh, "--expires", "30", check=0)
    token = p.stdout.strip().splitlines()[-1]
    assert token.startswith("qt_")
    platform = Platform(mesh)
    assert platform.authenticate(token).name == "ana"
    with pytest.raises(federation.errors.AuthenticationError):
        platform.authenticate(token + "x")
    # stored only as a salted hash
    stored = (Path(mesh) / ".quanta" / "tokens.db").read_bytes()
    assert token.split("_", 2)[2].encode() not in stored
    listing = run("token", "list", "--mesh", mesh, check=0).stdout
    token_id = token.split("_")[1]
    assert token_id in listing and "active" in listing and token.split("_", 2)[2] not in listing
    run("token", "revoke", token_id, "--mesh", mesh, check=0)
    with pytest.raises(federation.errors.AuthenticationError):
        Platform(mesh).authenticate(token)
    assert "revoked" in run("token", "list", "--mesh", mesh, check=0).stdout
    p = run("token", "create", "mallory", "--mesh", mesh, check=1)
    assert "no principal 'mallory'" in p.stderr


def test_help_lists_commands():
    p = run("--help", check=0)
    for cmd in ("validate", "query", "describe", "generate", "demo", "token"):
        assert cmd in p.stdout


def test_validate_reports_approvers_that_match_no_principal(tmp_path, demo_path):
    root = tmp_path / "gp"
    shutil.copytree(demo_path, root, ignore=shutil.ignore_patterns(".quanta", "warehouse"))
    contract = root / "contracts" / "b2b.odcs.yaml"
    data = yaml.safe_load(contract.read_text())
    data["roles"][0]["firstLevelApprovers"] = "nobody-here"
    contract.write_text(yaml.safe_dump(data, sort_keys=False))
    p = run("validate", str(root), check=0)
    assert ("warning contracts/b2b.odcs.yaml at roles[0].firstLevelApprovers: approver 'nobody-here' of role "
            in p.stdout), p.stdout
    # a group name is a valid approver (fiona is in cfo-office)
    warnings = [w for w in Platform(root).mesh.problems if "approver" in w.message]
    assert [w.path for w in warnings] == ["roles[0].firstLevelApprovers"]
