"""Quality rules set through the control plane are the rules of the served contract (HTTP, CLI), and are
written back into the contract's YAML file atomically: the mesh reloaded from the files has the same rules."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
import yaml
from onboardkit import lab_mesh

from federation import errors
from federation.onboarding import contracts, control
from federation.platform import Platform
from federation.server.http import Server, create_app

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
RULES = [{"name": "enough", "metric": "rowCount", "mustBeGreaterThan": 5},
         {"column": "name", "metric": "nullValues", "mustBe": 0, "severity": "warning"},
         {"column": "id", "metric": "duplicateValues", "dimension": "uniqueness"}]


def cli(*args, user="dev"):
    env = dict(os.environ, QUANTA_USER=user)
    env.pop("QUANTA_MESH", None)
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=env, timeout=120, check=False)
    assert "Traceback" not in p.stderr, p.stderr
    return p


def in_force(platform) -> list[dict]:
    """The rules a check runs, without where they came from, by name."""
    rules = control.rules_of(platform, platform.mesh.dataset("lab", "items"))
    return sorted(({k: v for k, v in r.describe().items() if k != "origin"} for r in rules), key=lambda r: r["rule"])


def items_object(doc: dict) -> dict:
    return next(o for o in doc["schema"] if o["name"] == "items")


@pytest.fixture
def lab(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    path = root / "contracts" / "lab.odcs.yaml"
    path.write_text("# owned by the lab team; reviewed in git\n" + path.read_text())
    return Platform(root)


def test_served_contract_shows_the_rules_in_force(lab):
    assert contracts.served_contract(lab, "lab-contract") == lab.mesh.contracts["lab-contract"].raw
    control.set_rules(lab, "lab.items", RULES, lab.principal("olivia"))  # an owner
    doc = contracts.served_contract(lab, "lab-contract")
    obj = items_object(doc)
    assert obj["quality"] == [{"name": "enough", "metric": "rowCount", "mustBeGreaterThan": 5}]
    props = {p["name"]: p for p in obj["properties"]}
    assert props["name"]["quality"] == [{"metric": "nullValues", "mustBe": 0, "severity": "warning"}]
    assert props["id"]["quality"] == [{"metric": "duplicateValues", "dimension": "uniqueness", "mustBe": 0}]
    assert "quality" not in props["email"] and "quality" not in props["kind"]  # replaced, not added to
    marker = next(p for p in obj["customProperties"] if p["property"] == contracts.MARKER)
    assert marker["value"]["source"] == "control-plane" and marker["value"]["setBy"] == "olivia"
    assert marker["value"]["setAt"][:4].isdigit()
    # the served text is the file with the rules spliced in: its comment stays, and it loads to the same document
    text = contracts.served_contract_text(lab, "lab-contract")
    assert text.startswith("# owned by the lab team") and yaml.safe_load(text) == doc
    # the contract file is untouched until someone writes the rules back
    assert "enough" not in (lab.path / "contracts" / "lab.odcs.yaml").read_text()
    # `quanta contract effective` shows the same rules
    out = cli("contract", "effective", "lab", "--mesh", str(lab.path))
    assert out.returncode == 0, out.stderr
    shown = items_object(yaml.safe_load(out.stdout.split("---", 1)[1]))
    assert shown["quality"] == obj["quality"] and contracts.MARKER in json.dumps(shown["customProperties"])


def test_write_back_gives_the_same_rules_from_the_files(lab):
    path = lab.path / "contracts" / "lab.odcs.yaml"
    before = path.read_text()
    with pytest.raises(errors.ProgrammingError, match="no rules set through the control plane"):
        contracts.write_rules(lab, "lab.items", lab.principal("dev"))
    control.set_rules(lab, "lab.items", RULES, lab.principal("dev"))
    expected = in_force(lab)
    with pytest.raises(errors.AccessDenied, match="ana may not write quality rules into the contract"):
        contracts.write_rules(lab, "lab.items", lab.principal("ana"))
    assert path.read_text() == before
    assert contracts.write_rules(lab, "lab.items", lab.principal("dev")) == path.resolve()
    text = path.read_text()
    assert text.startswith("# owned by the lab team")  # the rest of the file as it was
    assert "servers:\n- server: warehouse" in text and "slaProperties:" in text
    assert not [f for f in path.parent.iterdir() if f.name != path.name]  # no temporary file left
    fresh = Platform(lab.path)
    assert not [p for p in fresh.mesh.problems if p.severity == "error"]  # still a valid ODCS contract
    assert in_force(fresh) == expected
    assert {r.origin for r in control.rules_of(fresh, fresh.mesh.dataset("lab", "items"))} == {"schema", "contract"}
    assert control.store_of(fresh).rules() == {}  # the contract is their source again
    assert in_force(lab) == expected  # the running platform reloaded
    assert contracts.MARKER not in text  # written rules are the contract's own: no marker in the file
    assert control.store_of(lab).events("rules_written")


def outside_quality(text: str) -> list[str]:
    """The lines of a contract's text that are not ``quality`` entries (the key and everything under it)."""
    out, skip = [], None
    for line in text.splitlines():
        indent = len(line) - len(line.lstrip())
        if skip is not None and line.strip() and (indent > skip or (indent == skip and line.lstrip().startswith("- "))):
            continue
        skip = None
        if line.lstrip().startswith("quality:"):
            skip = indent
            continue
        out.append(line)
    return out


def test_write_back_keeps_comments_quoting_and_key_order_elsewhere(lab):
    path = lab.path / "contracts" / "lab.odcs.yaml"
    text = path.read_text()
    for old, new in [("version: 1.0.0\n", "version: 1.0.0  # bumped by the release job\n"),
                     ("status: active\n", "status: active\ntags: [lab, items]\n"),
                     ("  description: Lab items\n", "  description: 'Lab items'\n"),
                     ("  - name: id\n", "  # ids come from the LIMS\n  - name: id\n"),
                     ("  - name: name\n", "  # after id, which gets rules\n  - name: name\n"),
                     ("  - name: kind\n", "  # after email, whose rules go\n  - name: kind\n"),
                     ("servers:\n", "# where the published versions are\nservers:\n")]:
        assert old in text
        text = text.replace(old, new, 1)
    path.write_text(text)
    path.chmod(0o640)
    lab.reload()
    control.set_rules(lab, "lab.items", RULES, lab.principal("dev"))
    expected = in_force(lab)
    contracts.write_rules(lab, "lab.items", lab.principal("dev"))
    written = path.read_text()
    # every line but the quality entries is as it was, in the same order: comments, flow style, quotes, keys
    assert outside_quality(written) == outside_quality(text)
    assert re.findall(r"^(\w+):", written, re.MULTILINE) == re.findall(r"^(\w+):", text, re.MULTILINE)
    assert "  # ids come from the LIMS\n  - name: id\n" in written and "enough" in written
    assert "few_perfect_scores" not in written  # the contract's own rules were replaced
    assert path.stat().st_mode & 0o777 == 0o640
    fresh = Platform(lab.path)
    assert not fresh.mesh.errors and in_force(fresh) == expected


def test_yaml_edits_keep_each_style_of_the_demo_contracts():
    """The demo's contracts indent sequences under their key ("key:\\n  - item"); a 4-space file keeps its own."""
    from federation.catalog.yamledit import edited
    from federation.catalog.yamlio import parse_yaml

    demo = Path(__file__).resolve().parent.parent / "catalogs" / "greatparts" / "contracts"
    four = "# four spaces\nschema:\n    - name: t\n      properties:\n          - name: a\n      quality:\n" \
           "          - metric: rowCount\n            mustBeGreaterThan: 1\n# the end\n"
    texts = [f.read_text() for f in sorted(demo.glob("*.odcs.yaml"))] + [four]
    for text in texts:
        doc = parse_yaml(text.encode())[0]
        rule = [{"metric": "rowCount", "mustBeGreaterThan": 0}]
        doc["schema"][0]["quality"] = rule
        out = edited(text, doc, [(["schema", 0], "quality", rule)])
        assert parse_yaml(out.encode())[0] == doc
        comments = [line for line in text.splitlines() if line.lstrip().startswith("#")]
        assert [line for line in out.splitlines() if line.lstrip().startswith("#")] == comments
        if "limitations: '" not in text:  # ruamel joins a quoted scalar folded over lines; plain ones stay
            assert outside_quality(out) == outside_quality(text)
    assert "      quality:\n          - metric: rowCount\n            mustBeGreaterThan: 0\n# the end" in out


def test_write_back_refuses_a_contract_changed_since_it_was_loaded(lab):
    control.set_rules(lab, "lab.items", RULES, lab.principal("dev"))
    path = lab.path / "contracts" / "lab.odcs.yaml"
    path.write_text(path.read_text().replace("Lab items", "Lab items, edited in git"))
    with pytest.raises(errors.ProgrammingError, match="lab.odcs.yaml changed since the mesh was loaded"):
        contracts.write_rules(lab, "lab.items", lab.principal("dev"))
    assert "enough" not in path.read_text()


def test_cli_set_and_write_contract(lab, tmp_path):
    mesh = str(lab.path)
    rules_file = tmp_path / "rules.yaml"
    rules_file.write_text(yaml.safe_dump(RULES))
    denied = cli("quality", "rules", "lab.items", "--set", str(rules_file), "--write-contract", "--mesh", mesh,
                 user="ana")
    assert denied.returncode == 1 and "ana may not change quality rules on quantum lab" in denied.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text("- metric: rowCount\n  mustBe: [1\n")
    out = cli("quality", "rules", "lab.items", "--set", str(bad), "--mesh", mesh)
    assert out.returncode == 1 and "bad.yaml, line" in out.stderr and "invalid YAML" in out.stderr
    out = cli("quality", "rules", "lab.items", "--set", str(rules_file), "--write-contract", "--mesh", mesh)
    assert out.returncode == 0, out.stderr
    assert "wrote the rules of lab.items into" in out.stderr and "enough" in out.stdout
    assert "enough" in (lab.path / "contracts" / "lab.odcs.yaml").read_text()
    denied = cli("quality", "rules", "lab.items", "--write-contract", "--mesh", mesh, user="ana")
    assert denied.returncode == 1 and "ana may not write quality rules into the contract" in denied.stderr
    nothing = cli("quality", "rules", "lab.items", "--write-contract", "--mesh", mesh)
    assert nothing.returncode == 1 and "no rules set through the control plane" in nothing.stderr


def test_http_rules_are_served_in_the_contract(lab):
    server = Server(create_app(lab), port=0).start()
    try:
        tokens = {u: lab.tokens.create(u, 1)[0] for u in ("olivia", "ana")}
        base = f"{server.url}/api/v1"

        def put(user):
            return requests.put(f"{base}/datasets/lab/items/rules", json=RULES, timeout=60,
                                headers={"Authorization": f"Bearer {tokens[user]}"})

        assert put("ana").status_code == 403
        served = requests.get(f"{base}/contracts/lab-contract", timeout=60)
        assert served.status_code == 200 and "enough" not in served.text and served.text.startswith("# owned by")
        assert put("olivia").status_code == 200
        served = requests.get(f"{base}/contracts/lab-contract", timeout=60)
        doc = yaml.safe_load(served.text)
        assert served.text.startswith("# owned by") and doc == contracts.served_contract(lab, "lab-contract")
        assert items_object(doc)["quality"][0]["name"] == "enough"
        dataset = requests.get(f"{base}/datasets/lab/items", timeout=60).json()["quality"]
        assert dataset["rules_source"]["source"] == "control-plane" and dataset["rules_source"]["set_by"] == "olivia"
        assert sorted((r["column"] or "", r["metric"]) for r in dataset["declared_rules"]) == [
            ("", "rowCount"), ("id", "duplicateValues"), ("name", "nullValues")]
    finally:
        server.stop()
