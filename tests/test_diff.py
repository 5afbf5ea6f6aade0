"""``quanta diff OLD NEW``: every change between two versions of an ODCS contract or an ODPS product,
the version bump it needs, the JSON shape and the exit codes, through the real console script, on copies
of the Great Parts demo files."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from federation.onboarding.evolution import (
    DiffInputError,
    declared_bump,
    diff,
    diff_files,
)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "catalogs" / "greatparts"
SALES = DEMO / "contracts" / "sales.odcs.yaml"
KPIS = DEMO / "products" / "sales_analytics.odps.yaml"
QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")


def quanta_diff(*args, check=None):
    env = dict(os.environ)
    env.pop("QUANTA_MESH", None)
    p = subprocess.run([QUANTA, "diff", *map(str, args)], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    if check is not None:
        assert p.returncode == check, (p.returncode, p.stdout, p.stderr)
    return p


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def write(tmp_path: Path, name: str, doc: dict) -> Path:
    out = tmp_path / name
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


def prop(doc: dict, dataset: str, column: str) -> dict:
    ds = next(d for d in doc["schema"] if d["name"] == dataset)
    return next(p for p in ds["properties"] if p["name"] == column)


def sla(doc: dict, name: str) -> dict:
    return next(s for s in doc["slaProperties"] if s["property"] == name)


def kinds(old: dict, new: dict) -> dict[str, tuple[bool, str, bool]]:
    return {c.kind: (c.breaking, c.bump, c.review) for c in diff(old, new)}


def test_identical_contract_has_no_change(tmp_path):
    out = quanta_diff(SALES, SALES, "--json", check=0)
    j = json.loads(out.stdout)
    assert j["changes"] == [] and j["required_bump"] == "none" and j["version_ok"] and not j["breaking"]


def test_sla_cuts_are_breaking():
    old = load(SALES)
    new = load(SALES)
    sla(new, "retention")["value"] = 1  # 7 years -> 1
    sla(new, "latency")["value"] = 48  # 1 h -> 48 h
    sla(new, "frequency")["unit"] = "d"  # every hour -> every day
    sla(new, "timeOfAvailability")["value"] = "11:00Z"  # later
    changes = {c.path: c for c in diff(old, new)}
    for path in ("slaProperties.retention[orders.order_ts]", "slaProperties.latency[orders.order_ts]",
                 "slaProperties.frequency[orders.order_ts]", "slaProperties.timeOfAvailability[orders.order_ts]"):
        assert changes[path].kind == "sla_weakened" and changes[path].breaking and changes[path].bump == "major", path
    assert "7 y to 1 y" in changes["slaProperties.retention[orders.order_ts]"].message
    # the other way round: strengthened, additive
    back = {c.kind: c.breaking for c in diff(new, old)}
    assert back == {"sla_strengthened": False}
    # a removed SLA is a lost guarantee; an added one is minor
    fewer = load(SALES)
    fewer["slaProperties"] = [s for s in fewer["slaProperties"] if s["property"] != "retention"]
    assert kinds(old, fewer) == {"sla_removed": (True, "major", False)}
    assert kinds(fewer, old) == {"sla_added": (False, "minor", False)}


def test_availability_percent():
    a = {"slaProperties": [{"property": "availability", "value": "99.9%"}]}
    b = {"slaProperties": [{"property": "availability", "value": "99%"}]}
    assert kinds(a, b) == {"sla_weakened": (True, "major", False)}
    assert kinds(b, a) == {"sla_strengthened": (False, "minor", False)}


def test_status_servers_roles_approvers():
    old = load(SALES)
    new = load(SALES)
    new["status"] = "deprecated"
    new["servers"][0]["path"] = "sales/orders-v2/*.parquet"
    new["servers"][1]["description"] = "reworded"
    new["servers"] = [s for s in new["servers"] if s["server"] != "stores-sheet"]
    new["roles"] = [r for r in new["roles"] if r["role"] != "store_ops"]
    fin = next(r for r in new["roles"] if r["role"] == "finance")
    fin["secondLevelApprovers"] = "cfo-office, audit"
    analyst = next(r for r in new["roles"] if r["role"] == "analyst")
    analyst["access"] = "write"
    by_path = {c.path: c for c in diff(old, new)}
    status = by_path["status"]
    assert status.kind == "status_changed" and status.breaking and "active to deprecated" in status.message
    assert by_path["servers.orders-lake.path"].kind == "server_changed" and by_path["servers.orders-lake.path"].breaking
    assert not by_path["servers.sales-lake.description"].breaking
    assert by_path["servers.sales-lake.description"].bump == "patch"
    assert by_path["servers.stores-sheet"].kind == "server_removed" and by_path["servers.stores-sheet"].breaking
    assert by_path["roles.store_ops"].kind == "role_removed" and by_path["roles.store_ops"].breaking
    assert by_path["roles.analyst.access"].breaking and by_path["roles.analyst.access"].review
    appr = by_path["roles.finance.secondLevelApprovers"]
    assert appr.kind == "approvers_changed" and not appr.breaking and appr.review and appr.bump == "patch"


def test_classification_tighter_breaks_looser_needs_review():
    old = load(SALES)
    tight = load(SALES)
    prop(tight, "orders", "order_id")["classification"] = "pii"
    assert kinds(old, tight) == {"classification_tightened": (True, "major", True)}
    loose = load(SALES)
    prop(loose, "orders", "region")["classification"] = "public"
    assert kinds(old, loose) == {"classification_loosened": (False, "minor", True)}
    odd = load(SALES)
    prop(odd, "orders", "region")["classification"] = "top-secret-ish"
    assert kinds(old, odd) == {"classification_changed": (True, "major", True)}


def test_schema_types_keys_enums_quality():
    old = load(SALES)
    new = load(SALES)
    prop(new, "orders", "order_id")["physicalType"] = "integer"  # narrowed
    prop(new, "orders", "order_id")["unique"] = False
    prop(new, "orders", "order_id")["primaryKeyPosition"] = 2
    region = prop(new, "orders", "region")
    region["quality"][0]["arguments"]["validValues"] = ["EU", "US", "MX"]  # CA removed, MX added
    stores = next(d for d in new["schema"] if d["name"] == "stores")
    stores["properties"] = [p for p in stores["properties"] if p["name"] != "city"]
    lines = next(d for d in new["schema"] if d["name"] == "order_lines")
    lines["properties"].append({"name": "gift_wrap", "logicalType": "boolean"})
    got = {(c.kind, c.path): c for c in diff(old, new)}
    assert got[("type_narrowed", "schema.orders.order_id")].breaking
    assert got[("key_changed", "schema.orders.order_id")].breaking
    keys = [c.message for c in diff(old, new) if c.kind == "key_changed"]
    assert sorted(keys) == ["primaryKeyPosition of orders.order_id changed from 1 to 2",
                            "unique of orders.order_id changed from True to False"]
    assert got[("enum_values_removed", "schema.orders.region")].breaking
    assert not got[("enum_values_added", "schema.orders.region")].breaking
    assert got[("column_removed", "schema.stores.city")].breaking
    assert got[("column_added", "schema.order_lines.gift_wrap")].bump == "minor"
    # quality rules other than enums: removed breaks (a lost guarantee), added is minor
    q_old = load(SALES)
    q_new = load(SALES)
    oid = prop(q_new, "orders", "order_id")
    removed = oid.pop("quality")
    assert {c.kind for c in diff(q_old, q_new)} == {"quality_rule_removed"}
    assert all(c.breaking for c in diff(q_old, q_new)) and len(removed) >= 1
    assert {c.kind: c.breaking for c in diff(q_new, q_old)} == {"quality_rule_added": False}


def test_odcs_32_enum():
    def doc(values):
        return {"schema": [{"name": "t", "properties": [
            {"name": "c", "logicalType": "string", "enum": [{"value": v} for v in values]}]}]}

    assert kinds(doc(["a", "b"]), doc(["a"])) == {"enum_values_removed": (True, "major", False)}
    assert kinds(doc(["a"]), doc(["a", "b"])) == {"enum_values_added": (False, "minor", False)}


def test_declared_bump():
    assert declared_bump("1.2.0", "2.0.0") == "major"
    assert declared_bump("1.2.0", "1.3.0") == "minor"
    assert declared_bump("1.2.0", "1.2.1") == "patch"
    assert declared_bump("1.2.0", "1.2.0") == "none"
    assert declared_bump("2.0.0", "1.9.0") == "downgrade"
    assert declared_bump(None, "1.0.0") == "unknown"
    assert declared_bump("1.0.0", "v2.0.0-rc.1") == "major" and declared_bump("1.0.0", "next") == "unknown"


def test_cli_breaking_without_major_exits_1_and_json_shape(tmp_path):
    new = load(SALES)
    sla(new, "retention")["value"] = 1
    sla(new, "latency")["value"] = 48
    new["status"] = "deprecated"
    new["servers"][0]["path"] = "elsewhere/*.parquet"
    prop(new, "orders", "order_id")["classification"] = "pii"
    path = write(tmp_path, "new.yaml", new)
    text = quanta_diff(SALES, path, check=1).stdout
    assert "BREAKING  major  SLA retention[orders.order_ts] changed from 7 y to 1 y" in text
    assert "SLA latency[orders.order_ts] changed from 1 h to 48 h" in text
    assert "status changed from active to deprecated" in text and "path of server orders-lake" in text
    assert "from internal to pii" in text and "governance team's review" in text
    assert "a breaking change needs a new major version" in text
    j = json.loads(quanta_diff(SALES, path, "--json", check=1).stdout)
    assert set(j) == {"kind", "old", "new", "old_version", "new_version", "breaking", "required_bump",
                      "declared_bump", "version_ok", "needs_major_version", "needs_review", "changes"}
    assert j["kind"] == "contract" and j["old"] == {"file": str(SALES), "version": "1.2.0"}
    assert (j["required_bump"], j["declared_bump"], j["version_ok"], j["needs_major_version"]) == (
        "major", "none", False, True)
    assert j["breaking"] and j["needs_review"] and len(j["changes"]) == 5
    for c in j["changes"]:
        assert set(c) == {"path", "kind", "breaking", "bump", "review", "message"}
        assert c["bump"] in ("major", "minor", "patch")
    new["version"] = "2.0.0"
    j = json.loads(quanta_diff(SALES, write(tmp_path, "v2.yaml", new), "--json", check=0).stdout)
    assert j["declared_bump"] == "major" and j["version_ok"] and not j["needs_major_version"]


def test_cli_addition_needs_minor(tmp_path):
    new = load(SALES)
    next(d for d in new["schema"] if d["name"] == "stores")["properties"].append({"name": "phone",
                                                                                  "logicalType": "string"})
    out = quanta_diff(SALES, write(tmp_path, "n.yaml", new), check=1)
    assert "the changes need a new minor version" in out.stdout
    new["version"] = "1.3.0"
    out = quanta_diff(SALES, write(tmp_path, "n.yaml", new), check=0)
    assert "needs a minor bump; version 1.2.0 -> 1.3.0 (minor)" in out.stdout


def test_products_ports(tmp_path):
    old = load(KPIS)
    new = load(KPIS)
    new["inputPorts"] = [p for p in new["inputPorts"] if p["name"] != "products"]
    new["inputPorts"].append({"name": "returns", "version": "1.0.0", "contractId": "urn:x"})
    removed_out = new["outputPorts"].pop(0)
    new["outputPorts"].append({"name": "kpis-v2", "version": "2.0.0", "contractId": "urn:y"})
    j = json.loads(quanta_diff(KPIS, write(tmp_path, "p.yaml", new), "--json", check=1).stdout)
    assert j["kind"] == "product"
    got = {c["path"]: (c["kind"], c["breaking"]) for c in j["changes"]}
    assert got["inputPorts.products"] == ("input_port_removed", False)
    assert got["inputPorts.returns"] == ("input_port_added", False)
    assert got[f"outputPorts.{removed_out['name']}"] == ("output_port_removed", True)
    assert got["outputPorts.kpis-v2"] == ("output_port_added", False)
    assert not any("dataset" in c["kind"] for c in j["changes"])
    assert json.loads(quanta_diff(KPIS, KPIS, "--json", check=0).stdout)["changes"] == []
    assert old["outputPorts"][0] == removed_out


@pytest.mark.parametrize("content, expected", [
    ("kind: DataContract\nschema: [\n  - name: x\n", "invalid YAML"),
    ("just a string\n", "not a data contract nor a data product"),
    ("kind: Governance\nprincipals: []\n", "kind is 'Governance'"),
    ("", "empty document"),
])
def test_cli_bad_input_exits_2(tmp_path, content, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(content)
    out = quanta_diff(SALES, bad, check=2)
    assert expected in out.stderr and str(bad) in out.stderr and out.stdout == ""
    with pytest.raises(DiffInputError):
        diff_files(SALES, bad)


def test_cli_invalid_yaml_names_the_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("kind: DataContract\nversion: 1.0.0\nschema: [a,\nb: 1\n")
    assert f"{bad}:5: invalid YAML" in quanta_diff(SALES, bad, check=2).stderr


def test_cli_different_kinds_and_missing_file_exit_2(tmp_path):
    out = quanta_diff(SALES, KPIS, check=2)
    assert "is a data contract but" in out.stderr and "is a data product" in out.stderr
    assert "datasets" not in out.stdout + out.stderr and "removed" not in out.stdout
    missing = tmp_path / "nope.yaml"
    assert f"{missing}: cannot be read" in quanta_diff(SALES, missing, check=2).stderr


def test_help_documents_exit_codes():
    out = subprocess.run([QUANTA, "diff", "--help"], capture_output=True, text=True, timeout=60, check=False).stdout
    assert "Exit status" in out and "0  the declared versions" in out and "1  a breaking change" in out
    assert "2  bad input" in out


def test_products_status_and_port_contract(tmp_path):
    new = load(KPIS)
    new["status"] = "retired"
    new["id"] = "urn:greatparts:product:other"
    new["outputPorts"][0]["contractId"] = "urn:greatparts:contract:sales_analytics:other"
    got = {c["kind"]: c for c in diff_files(KPIS, write(tmp_path, "p.yaml", new))["changes"]}
    assert got["port_contract_changed"]["breaking"] and got["port_contract_changed"]["bump"] == "major"
    assert got["status_changed"]["breaking"] and "active to retired" in got["status_changed"]["message"]
    assert got["id_changed"]["breaking"]


def test_publish_refuses_a_weakened_sla_without_a_major_version(tmp_path):
    """publish runs the same comparison (schema and SLAs of the dataset's contract snapshot)."""
    from onboardkit import items, lab_mesh

    from federation.onboarding import onboard
    from federation.onboarding.pipeline import OnboardingRejected
    from federation.platform import Platform

    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    onboard(p, "lab.items", items(5), p.principal("dev"))
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    next(s for s in data["slaProperties"] if s["property"] == "frequency")["value"] = 7  # daily -> weekly
    data["version"] = "1.1.0"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    with pytest.raises(OnboardingRejected, match=r"SLA frequency changed from 1 d to 7 d"):
        onboard(p, "lab.items", items(5), p.principal("dev"))
    data["version"] = "2.0.0"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    assert onboard(p, "lab.items", items(5), p.principal("dev")).status == "published"


def test_malformed_sections_are_compared_not_crashed_on(tmp_path):
    """A document of the right kind with odd values (a list for a type, a number for rules, a mapping for
    the servers) is compared as written: no traceback, a classified change."""
    new = load(SALES)
    prop(new, "orders", "order_id")["physicalType"] = ["bigint"]
    prop(new, "orders", "region")["quality"] = 3
    new["servers"] = {"orders-lake": "elsewhere"}
    new["slaProperties"][0] = {"property": ["latency"], "value": {"a": 1}}
    new["version"] = "next"  # not a semantic version
    new["domain"] = "2026-12-03"  # YAML may read it as a date
    path = tmp_path / "odd.yaml"
    path.write_text(yaml.safe_dump(new, sort_keys=False).replace("'2026-12-03'", "2026-12-03"))
    j = json.loads(quanta_diff(SALES, path, "--json", check=1).stdout)
    kinds_ = {c["kind"] for c in j["changes"]}
    assert {"type_narrowed", "enum_removed", "server_removed"} <= kinds_
    assert j["declared_bump"] == "unknown" and not j["version_ok"]


# -- the gates: publish compares always; validate refuses a breaking change without a new major version ----------

QUANTA_ENV = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}


def _lab(tmp_path):
    from onboardkit import items, lab_mesh

    from federation.onboarding import onboard
    from federation.platform import Platform

    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    onboard(p, "lab.items", items(5), p.principal("dev"))
    return root


def _edit_lab(root: Path, edit) -> Path:
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    edit(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _publish(root: Path):
    from onboardkit import items

    from federation.onboarding import onboard
    from federation.platform import Platform

    p = Platform(root)
    return onboard(p, "lab.items", items(5), p.principal("dev"))


def quanta_validate(root: Path):
    p = subprocess.run([QUANTA, "validate", str(root)], capture_output=True, text=True, env=QUANTA_ENV, timeout=180,
                       check=False)
    assert "Traceback" not in p.stderr + p.stdout, p.stderr
    return p


def test_publish_compares_even_when_schema_and_version_are_unchanged(tmp_path):
    """An SLA cut with the same schema and the same version was not compared: now it is refused."""
    from federation.onboarding.pipeline import OnboardingRejected

    root = _lab(tmp_path)
    _edit_lab(root, lambda d: next(s for s in d["slaProperties"] if s["property"] == "frequency").update(value=7))
    with pytest.raises(OnboardingRejected, match=r"SLA frequency changed from 1 d to 7 d.*publish it as version 2\.0\.0"):
        _publish(root)


def test_publish_compares_servers_roles_and_status(tmp_path):
    from federation.onboarding.pipeline import OnboardingRejected

    root = _lab(tmp_path)
    _edit_lab(root, lambda d: d.update(roles=[{"role": "readers", "access": "read"}], version="1.1.0"))
    assert _publish(root).status == "published"  # a role added: minor, declared minor
    _edit_lab(root, lambda d: d.update(roles=[{"role": "readers", "access": "write"}], version="1.1.1"))
    with pytest.raises(OnboardingRejected, match=r"access of role readers changed.*publish it as version 2\.0\.0"):
        _publish(root)
    _edit_lab(root, lambda d: d.update(roles=[{"role": "readers", "access": "read"}], status="deprecated"))
    report = _publish(root)  # a status moving on is the version's own lifecycle (patch): published, warned
    assert report.status == "published" and any("deprecated" in w for w in report.warnings)


def test_validate_refuses_a_breaking_change_since_the_published_version(tmp_path):
    root = _lab(tmp_path)
    assert quanta_validate(root).returncode == 0

    def drop_kind(d):
        d["schema"][0]["properties"] = [p for p in d["schema"][0]["properties"] if p["name"] != "kind"]
        d["version"] = "1.1.0"

    path = _edit_lab(root, drop_kind)
    p = quanta_validate(root)
    assert p.returncode == 1, p.stdout
    assert str(path) in p.stdout or "lab.odcs.yaml" in p.stdout
    assert "column items.kind was removed" in p.stdout and "declare version 2.0.0" in p.stdout
    assert "lab.items v1 was published" in p.stdout
    _edit_lab(root, lambda d: d.update(version="2.0.0"))
    assert quanta_validate(root).returncode == 0


def test_validate_refuses_a_breaking_change_since_the_committed_copy(tmp_path):
    """A mesh in a git work tree, nothing published: the contract is compared with its copy at HEAD."""
    import shutil as sh

    from meshkit import shop_mesh

    if sh.which("git") is None:
        pytest.skip("git is not installed")
    root = shop_mesh(tmp_path / "shop")
    git = ["git", "-C", str(root), "-c", "user.name=t", "-c", "user.email=t@example.com"]
    subprocess.run(git + ["init", "-q"], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "contracts"], check=True)
    assert quanta_validate(root).returncode == 0
    path = root / "contracts" / "shop.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["slaProperties"] = [{"property": "retention", "value": 1, "unit": "y"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    subprocess.run(git + ["commit", "-q", "-am", "retention"], check=True)
    data["slaProperties"][0]["value"] = 30
    data["slaProperties"][0]["unit"] = "d"  # a retention cut, version still 1.0.0
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = quanta_validate(root)
    assert p.returncode == 1, p.stdout
    assert "shop.odcs.yaml" in p.stdout and "git HEAD" in p.stdout and "retention" in p.stdout
    assert "declare version 2.0.0" in p.stdout
    data["version"] = "2.0.0"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert quanta_validate(root).returncode == 0
