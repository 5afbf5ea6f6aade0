"""Quarantine you can work with: the rows an onboarding kept out are governed like their dataset
(``system.quarantine``, ``lab."items@quarantine"``), listed, shown, released as a new version and dropped
from Python, the CLI and the HTTP control plane. Real onboardings of a small mesh, real DuckDB, a real
server on loopback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner
from meshkit import write_yaml
from onboardkit import GOVERNANCE, items, lab_mesh

from federation import errors
from federation.cli import main
from federation.onboarding import control, onboard
from federation.onboarding import quarantine as Q
from federation.onboarding.pipeline import OnboardingRejected
from federation.platform import Platform

# the lab mesh's governance, plus: a row filter on ``kind`` by the principal's attribute ``kinds``, the column
# ``score`` denied to all but pii readers, and ``out``, who holds no grant
KINDS = {"olivia": ["a", "b", "c"], "dev": ["a", "b", "c"], "ana": ["a"], "pia": ["a", "b", "c"], "out": ["a"]}
GOV = {
    **GOVERNANCE,
    "principals": [{**p, "attributes": {"kinds": KINDS[p["name"]]}} for p in GOVERNANCE["principals"]
                   if p["name"] != "dev"]
    + [{"name": "dev", "roles": ["data_engineer", "pii_reader"]},  # sets rules on e-mails: sees them in clear
       {"name": "out", "roles": ["visitor"], "attributes": {"kinds": ["a"]}}],
    "policies": GOVERNANCE["policies"] + [
        {"name": "kind-scope", "kind": "row_filter", "on": {"column": "kind", "dataset": "lab.items"},
         "filter": "list_contains(principal.kinds, {column})", "unless": {"roles": ["data_engineer"]}},
        {"name": "score-hidden", "kind": "deny", "on": {"column": "score", "dataset": "lab.items"},
         "unless": {"roles": ["pii_reader", "data_engineer"]}},
    ],
}
# rows 1, 3 and 8 fail the contract's e-mail rule (onFailure: quarantine); their kinds are a, c and b
MAILS = ["bad", "x@y.z", "x y", "a@b.c", "e@f.g", "h@i.j", "k@l.m", "zz"]
# a fixed rule: an e-mail without a space passes; "x y" (row 3) still fails
NO_SPACE = [{"type": "library", "metric": "invalidValues", "column": "email", "arguments": {"pattern": "^[^ ]+$"},
             "mustBe": 0, "severity": "error", "customProperties": [{"property": "onFailure", "value": "quarantine"}]}]


@pytest.fixture
def lab(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    write_yaml(root / "governance.yaml", GOV)
    platform = Platform(root)
    report = onboard(platform, "lab.items", items(8, mail=MAILS), platform.principal("dev"))
    assert report.status == "published" and report.quarantined == 3 and report.rows_published == 5
    return platform


def rows(p, sql, user, params=None):
    result = p.query(sql, p.principal(user), params)
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


def test_system_quarantine_lists_the_rows_with_their_rule_for_a_full_reader(lab):
    found = rows(lab, "select * from system.quarantine order by row_number", "pia")
    assert [(r["quarantine_id"], r["quantum"], r["dataset"], r["version"], r["row_number"], r["rules"])
            for r in found] == [("lab.items.v1", "lab", "items", 1, n, "email.invalidValues") for n in (1, 3, 8)]
    values = [json.loads(r["row"]) for r in found]
    assert [v["email"] for v in values] == ["bad", "x y", "zz"]  # pia reads PII in clear
    assert [v["id"] for v in values] == [1, 3, 8] and all("score" in v for v in values)
    assert not any(k.startswith("_quanta") for v in values for k in v)
    # the dataset's own quarantine relation, the same rows
    own = rows(lab, 'select id, email, _quanta_reason, _quanta_version, _quanta_row from lab."items@quarantine" '
                    "order by id", "pia")
    assert [(r["id"], r["email"], r["_quanta_reason"], r["_quanta_row"]) for r in own] == [
        (1, "bad", "email.invalidValues", 1), (3, "x y", "email.invalidValues", 3), (8, "zz", "email.invalidValues", 8)]


def test_masks_row_filters_and_denials_apply_to_quarantined_rows(lab):
    # ana: kinds [a] (row filter), PII masked, score denied
    found = rows(lab, "select * from system.quarantine", "ana")
    assert [r["row_number"] for r in found] == [1]  # rows 3 (kind c) and 8 (kind b) are filtered out
    value = json.loads(found[0]["row"])
    assert value["id"] == 1 and value["kind"] == "a"
    assert value["email"] != "bad" and "bad" not in found[0]["row"]  # masked, never the raw value
    assert "score" not in value  # denied: not even the key
    assert rows(lab, "select count(*) as n from system.quarantine", "ana") == [{"n": 1}]
    direct = lab.query('select * from lab."items@quarantine"', lab.principal("ana"))
    try:
        assert "score" not in direct.columns
        table = direct.arrow().to_pylist()
    finally:
        direct.close()
    assert [r["id"] for r in table] == [1] and table[0]["email"] != "bad"
    with pytest.raises(errors.AccessDenied, match="score"):
        lab.query('select score from lab."items@quarantine"', lab.principal("ana"))
    # a filter on a hidden row's raw value finds nothing: filters and masks come first
    assert rows(lab, "select count(*) as n from system.quarantine where \"row\"::varchar like '%zz%'", "ana") == [
        {"n": 0}]
    assert rows(lab, "select count(*) as n from system.quarantine where \"row\"::varchar like '%zz%'", "pia") == [
        {"n": 1}]


def test_a_principal_without_access_sees_no_quarantined_row(lab):
    assert len(rows(lab, "select * from system.quarantine", "pia")) == 3  # the table works: the rows exist
    assert rows(lab, "select * from system.quarantine", "out") == []
    assert rows(lab, "select count(*) as n from system.quarantine", "out") == [{"n": 0}]
    with pytest.raises(errors.AccessDenied):
        lab.query('select * from lab."items@quarantine"', lab.principal("out"))


def test_control_plane_only_owners_and_engineers(lab):
    assert [b["id"] for b in Q.list_batches(lab, lab.principal("olivia"))] == ["lab.items.v1"]
    batch = Q.list_batches(lab, lab.principal("dev"), "lab.items")[0]
    assert batch["rows"] == 3 and batch["rules"] == {"email.invalidValues": 3} and batch["status"] == "held"
    assert Q.list_batches(lab, lab.principal("ana")) == []  # a consumer runs no control plane
    for fn in (Q.show, Q.release, Q.drop):
        with pytest.raises(errors.AccessDenied):
            fn(lab, "lab.items.v1", lab.principal("ana"))
    with pytest.raises(errors.AccessDenied):
        Q.list_batches(lab, lab.principal("ana"), "lab.items")
    with pytest.raises(errors.UnknownObject, match="no quarantine lab.items.v7"):
        Q.show(lab, "lab.items.v7", lab.principal("dev"))
    with pytest.raises(errors.UnknownObject, match="not a quarantine id"):
        Q.drop(lab, "lab.items", lab.principal("dev"))
    # show reads through governance: olivia (owner, not a PII reader) sees the e-mails masked
    summary, table = Q.show(lab, "lab.items.v1", lab.principal("olivia"))
    assert summary["rows"] == 3 and table.column("id").to_pylist() == [1, 3, 8]
    assert not set(table.column("email").to_pylist()) & {"bad", "x y", "zz"}


def test_release_after_fixing_the_rule_publishes_a_new_version(lab):
    dev = lab.principal("dev")
    with pytest.raises(Q.NothingToRelease, match=r"all 3 row\(s\) still fail.*email.invalidValues \(3 rows\)"):
        Q.release(lab, "lab.items.v1", dev)
    control.set_rules(lab, "lab.items", NO_SPACE, dev)
    report, summary = Q.release(lab, "lab.items.v1", dev)
    assert report.status == "published" and report.version == 2 and report.rows_published == 7
    assert summary["status"] == "held" and summary["rows"] == 1 and summary["released_into"] == 2
    assert summary["rules"] == {"email.invalidValues": 1}
    # queried back: the released rows are in the dataset, the one still failing is not
    assert [r["id"] for r in rows(lab, "select id from lab.items order by id", "pia")] == [1, 2, 4, 5, 6, 7, 8]
    assert rows(lab, "select email from lab.items where id in (1, 8) order by id", "pia") == [
        {"email": "bad"}, {"email": "zz"}]
    left = rows(lab, "select quarantine_id, row_number, rules, \"row\" from system.quarantine", "pia")
    assert [(r["quarantine_id"], r["row_number"], r["rules"]) for r in left] == [
        ("lab.items.v1", 3, "email.invalidValues")]
    assert json.loads(left[0]["row"])["email"] == "x y"
    published = [v.version for v in control.versions(lab, "lab.items") if v.status == "published"]
    assert published == [1, 2]
    event = control.store_of(lab).events("quarantine_released")[-1]
    assert event["version"] == 2 and event["principal"] == "dev"
    assert json.loads(event["details"])["released"] == 2
    assert "bad" not in event["details"] and "zz" not in event["details"]  # counts and rules, never values
    with pytest.raises(Q.NothingToRelease):
        Q.release(lab, "lab.items.v1", dev)


def test_a_refused_release_changes_nothing(lab):
    dev = lab.principal("dev")
    # the rows pass the fixed rule, but the new version is refused by a dataset-level rule
    control.set_rules(lab, "lab.items", NO_SPACE + [
        {"type": "library", "metric": "rowCount", "mustBeGreaterThan": 100, "severity": "error"}], dev)
    path = Q.list_batches(lab, dev)[0]
    with pytest.raises(OnboardingRejected, match="rowCount"):
        Q.release(lab, "lab.items.v1", dev)
    after = Q.list_batches(lab, dev)[0]
    assert after == path and after["status"] == "held" and after["rows"] == 3
    assert [v.version for v in control.versions(lab, "lab.items") if v.status == "published"] == [1]
    assert len(rows(lab, "select * from system.quarantine", "pia")) == 3
    assert rows(lab, "select count(*) as n from lab.items", "pia") == [{"n": 5}]
    quarantine_dir = Path(control.store_of(lab).quarantine_batches()[0]["path"]).parent
    assert [p.name for p in quarantine_dir.iterdir()] == ["v1.parquet"]  # no file of the refused release left


def test_drop_discards_the_batch_and_is_audited(lab):
    dev = lab.principal("dev")
    path = Path(control.store_of(lab).quarantine_batches()[0]["path"])
    assert path.exists()
    summary = Q.drop(lab, "lab.items.v1", dev)
    assert summary["status"] == "dropped" and not path.exists()
    assert rows(lab, "select * from system.quarantine", "pia") == []
    assert rows(lab, 'select * from lab."items@quarantine"', "pia") == []  # empty, as when none was held
    event = control.store_of(lab).events("quarantine_dropped")[-1]
    assert event["principal"] == "dev" and event["version"] == 1 and "bad" not in (event["details"] or "")
    assert rows(lab, "select kind, principal from system.events where kind = 'quarantine_dropped'", "pia") == [
        {"kind": "quarantine_dropped", "principal": "dev"}]
    with pytest.raises(errors.Conflict, match="dropped already"):
        Q.drop(lab, "lab.items.v1", dev)
    with pytest.raises(errors.Conflict):
        Q.release(lab, "lab.items.v1", dev)
    assert Q.list_batches(lab, dev) == [] and Q.list_batches(lab, dev, every=True)[0]["status"] == "dropped"
    # a fresh platform (another process) serves the same state
    assert rows(Platform(lab.path), "select * from system.quarantine", "pia") == []


def cli(lab, *args, user):
    return CliRunner().invoke(main, ["quarantine", *args, "--mesh", str(lab.path), "--user", user])


def test_cli_exit_codes(lab):
    r = cli(lab, "list", "--json", user="dev")
    assert r.exit_code == 0 and [b["id"] for b in json.loads(r.output)] == ["lab.items.v1"]
    r = cli(lab, "show", "lab.items.v1", "--json", user="olivia")
    assert r.exit_code == 0, r.output
    shown = json.loads(r.output)
    assert [x["id"] for x in shown["rows_shown"]] == [1, 3, 8] and "bad" not in r.output
    assert cli(lab, "show", "lab.items.v9", user="dev").exit_code == 3
    assert cli(lab, "drop", "nope", user="dev").exit_code == 3
    assert cli(lab, "release", "lab.items.v1", user="ana").exit_code == 4
    assert cli(lab, "drop", "lab.items.v1", user="ana").exit_code == 4
    r = cli(lab, "release", "lab.items.v1", user="dev")
    assert r.exit_code == 5 and "nothing to release" in r.output
    control.set_rules(lab, "lab.items", NO_SPACE, lab.principal("dev"))
    r = cli(lab, "release", "lab.items.v1", "--json", user="dev")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["report"]["version"] == 2 and out["quarantine"]["rows"] == 1
    assert cli(lab, "drop", "lab.items.v1", user="dev").exit_code == 0
    assert cli(lab, "drop", "lab.items.v1", user="dev").exit_code == 5
    assert "no rows in quarantine" in cli(lab, "list", user="dev").output


@pytest.fixture
def served(lab):
    from federation.server.http import Server, create_app

    server = Server(create_app(lab, {}), port=0).start()
    tokens = {u: lab.tokens.create(u, 1)[0] for u in ("dev", "ana", "olivia")}
    yield server.url, tokens
    server.stop()


def call(method, url, token, **kw):
    return requests.request(method, url, headers={"Authorization": f"Bearer {token}"}, timeout=60, **kw)


def test_http_control_plane(lab, served):
    url, tokens = served
    base = f"{url}/api/v1/quarantine"
    r = call("GET", base, tokens["dev"])
    assert r.status_code == 200 and [b["id"] for b in r.json()["quarantine"]] == ["lab.items.v1"]
    assert call("GET", base, tokens["ana"]).json()["quarantine"] == []
    assert requests.get(base, timeout=60).status_code == 401
    r = call("GET", f"{base}/lab.items.v1", tokens["olivia"])
    assert r.status_code == 200 and [x["id"] for x in r.json()["rows_shown"]] == [1, 3, 8] and "bad" not in r.text
    assert call("GET", f"{base}/lab.items.v1", tokens["ana"]).status_code == 403
    r = call("GET", f"{base}/lab.items.v5", tokens["dev"])
    assert r.status_code == 404 and "no quarantine" in r.json()["error"]["message"]
    assert call("GET", f"{base}/lab.items.v1?limit=x", tokens["dev"]).status_code == 400
    r = call("POST", f"{base}/lab.items.v1/release", tokens["dev"])
    assert r.status_code == 409 and "nothing to release" in r.json()["error"]["message"]
    assert call("POST", f"{base}/lab.items.v1/release", tokens["ana"]).status_code == 403
    r = call("PUT", f"{url}/api/v1/datasets/lab/items/rules", tokens["dev"], json=NO_SPACE)
    assert r.status_code == 200, r.text
    r = call("POST", f"{base}/lab.items.v1/release", tokens["dev"])
    assert r.status_code == 201, r.text
    assert r.json()["report"]["version"] == 2 and r.json()["quarantine"]["rows"] == 1
    assert call("DELETE", f"{base}/lab.items.v1", tokens["ana"]).status_code == 403
    r = call("DELETE", f"{base}/lab.items.v1", tokens["dev"])
    assert r.status_code == 200 and r.json()["quarantine"]["status"] == "dropped"
    assert call("DELETE", f"{base}/lab.items.v1", tokens["dev"]).status_code == 409
    assert call("DELETE", f"{base}/lab.items.v8", tokens["dev"]).status_code == 404
    r = call("POST", f"{url}/api/v1/query", tokens["dev"], json={"sql": "select count(*) as n from lab.items"})
    assert r.status_code == 200 and "7" in r.text


def test_a_contract_purpose_governs_the_quarantine_too(lab):
    import yaml

    path = lab.path / "contracts" / "lab.odcs.yaml"
    contract = yaml.safe_load(path.read_text())
    contract["customProperties"] = [{"property": "purposes", "value": ["audit"]}]
    path.write_text(yaml.safe_dump(contract, sort_keys=False))
    p = Platform(lab.path)
    with pytest.raises(errors.AccessDenied, match="purposes audit"):
        p.query("select * from lab.items", p.principal("pia"))  # the dataset refuses: so does its quarantine
    with pytest.raises(errors.AccessDenied, match="purposes audit"):
        p.query('select * from lab."items@quarantine"', p.principal("pia"))
    assert rows(p, "select * from system.quarantine", "pia") == []  # left out, not refused


def test_a_crashed_release_leaves_no_file_behind(lab):
    dev = lab.principal("dev")
    batch = Path(control.store_of(lab).quarantine_batches()[0]["path"])
    orphan = batch.with_name("v1.deadbeef.parquet")  # what a release that crashed before its commit wrote
    orphan.write_bytes(batch.read_bytes())
    control.set_rules(lab, "lab.items", NO_SPACE, dev)
    Q.release(lab, "lab.items.v1", dev)
    left = control.store_of(lab).quarantine_batches()[0]["path"]
    assert sorted(p.name for p in batch.parent.iterdir()) == [Path(left).name]
    assert len(rows(lab, "select * from system.quarantine", "pia")) == 1
