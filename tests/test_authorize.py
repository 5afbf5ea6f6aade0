"""The one authorization entry point, ``allowed(platform, principal, action, resource)``: each declared
action, its reasons, and the data-engineer and auditor roles named once in the governance settings."""

from __future__ import annotations

import pytest
import yaml
from meshkit import shop_mesh, write_yaml

import federation
from federation import errors
from federation.governance.authorize import ACTIONS, Columns, allowed, purposes_held
from federation.platform import Platform

GOVERNANCE = {
    "settings": {"data_engineer_role": "platform", "auditor_role": "dpo"},
    "roles": [{"name": n} for n in ("analyst", "platform", "dpo", "data_engineer", "marketing", "pii_reader")],
    "principals": [
        {"name": "ana", "roles": ["analyst"], "attributes": {"purposes": ["analytics"]}},
        {"name": "pat", "roles": ["platform"]},
        {"name": "dora", "roles": ["dpo"]},
        {"name": "ed", "roles": ["data_engineer"]},  # the default name, not this mesh's engineer role
        {"name": "mark", "roles": ["marketing"]},
        {"name": "gus", "groups": ["crm-approvers"]},
        {"name": "sam"},
        {"name": "olivia"},
    ],
    "grants": [
        {"to": {"role": "analyst"}, "on": "shop", "reason": "sales reporting"},
        {"to": {"role": "marketing"}, "on": "crm", "purposes": ["campaigns"]},
        {"to": {"role": "platform"}, "on": "*"},
        {"to": {"role": "dpo"}, "on": "*"},
        {"to": {"user": "ana"}, "on": "crm", "purposes": ["lapsed"], "expires": "2020-01-01"},
    ],
    "policies": [{"name": "pii-redact", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
                  "unless": {"roles": ["pii_reader"]}}],
}


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = shop_mesh(tmp_path_factory.mktemp("authorize"), governance=GOVERNANCE)
    path = root / "contracts" / "crm.odcs.yaml"
    c = yaml.safe_load(path.read_text())
    c["roles"] = [{"role": "support", "access": "read", "firstLevelApprovers": "sam",
                   "secondLevelApprovers": "crm-approvers"}]
    write_yaml(path, c)
    return Platform(root)


def check(platform, user, action, resource=None):
    return allowed(platform, platform.principal(user), action, resource)


def test_read(platform):
    d = check(platform, "ana", "read", "shop.orders")
    assert d and "grant to role analyst on shop" in d.reason
    d = check(platform, "ana", "read", platform.mesh.dataset("crm", "customers"))
    assert not d and d.reason == "ana has no grant to read crm.customers; request access from sam, crm-approvers"


@pytest.mark.parametrize("action", ["check_quality", "set_rules", "publish"])
def test_control_plane_owners_and_the_configured_engineer_role(platform, action):
    assert check(platform, "olivia", action, "shop").reason == "olivia owns the quantum shop"
    assert check(platform, "pat", action, "shop.orders").reason == "pat holds the role platform"
    d = check(platform, "ed", action, "shop")  # data_engineer is not this mesh's engineer role
    assert not d and d.reason.startswith(f"ed may not {ACTIONS[action]} on quantum shop: only its owners (olivia) "
                                         "and principals with the role platform may")


def test_rules_naming_a_column_not_in_clear_are_refused(platform):
    ds = platform.mesh.dataset("crm", "customers")
    assert check(platform, "pat", "set_rules", Columns(ds, ("id", "region")))
    d = check(platform, "pat", "set_rules", Columns(ds, ("id", "email")))
    assert not d and d.reason == ("pat may not change quality rules naming email of crm.customers: it is masked "
                                  "for pat (policy pii-redact)")
    assert not check(platform, "ana", "set_rules", Columns(ds, ("id",)))  # not the control plane's
    assert "no column 'nope'" in check(platform, "pat", "set_rules", Columns(ds, ("nope",))).reason


def test_approve(platform):
    ds = platform.mesh.dataset("crm", "customers")
    assert check(platform, "sam", "approve", ds).reason == "sam is an approver of crm.customers"
    assert "group crm-approvers" in check(platform, "gus", "approve", ds).reason
    assert check(platform, "olivia", "approve", ds)
    assert check(platform, "pat", "approve", ds).reason == "pat holds the role platform"
    d = check(platform, "ed", "approve", ds)
    assert not d and d.reason == "ed may not decide access to crm.customers; its approvers: sam, crm-approvers"


def test_approving_a_request_goes_through_allowed(platform):
    req = platform.request_access(platform.principal("mark"), "shop.orders", "baskets", days=5)
    with pytest.raises(errors.AccessDenied, match="ed may not decide access to shop.orders"):
        platform.decide_access(platform.principal("ed"), req.request_id, True)
    d = check(platform, "mark", "approve", req)
    assert not d and d.reason == f"mark may not decide its own access request {req.request_id}"
    assert platform.decide_access(platform.principal("pat"), req.request_id, True).status == "approved"


def test_audit_and_review_requests_follow_the_configured_roles(platform):
    assert check(platform, "dora", "audit").reason == "dora holds the auditor role dpo"
    assert not check(platform, "ed", "audit") and not check(platform, "pat", "audit")
    assert check(platform, "dora", "review_requests") and check(platform, "pat", "review_requests")
    d = check(platform, "ana", "review_requests")
    assert not d and "only the roles dpo and platform may" in d.reason
    # the pipeline reads the same setting: the dpo role sees everyone's queries, others their own
    federation.Connection(platform, platform.principal("ana")).sql("select count(*) from shop.orders").fetchall()
    seen = federation.Connection(platform, platform.principal("dora")).sql(
        "select distinct principal from system.query_log").fetchall()
    assert ("ana",) in seen
    mine = federation.Connection(platform, platform.principal("pat")).sql(
        "select distinct principal from system.query_log").fetchall()
    assert mine in ([], [("pat",)])


def test_declare_purpose(platform):
    d = check(platform, "ana", "declare_purpose", "analytics")
    assert d and d.reason == "ana holds the purpose 'analytics' (attribute purposes)"
    d = check(platform, "mark", "declare_purpose", "campaigns")
    assert d and d.reason == "mark holds the purpose 'campaigns' (grant to role marketing on crm)"
    d = check(platform, "ana", "declare_purpose", "campaigns")
    assert not d and d.reason == "ana may not declare the purpose 'campaigns'; purposes held: analytics"
    assert not check(platform, "ana", "declare_purpose", "lapsed")  # its grant expired
    assert check(platform, "stranger", "declare_purpose", "analytics").reason.endswith("purposes held: none")
    assert purposes_held(platform.state.governance, platform.principal("mark")) == ["campaigns"]


def test_a_purpose_held_by_a_grant_runs_and_is_audited(platform):
    mark = federation.Connection(platform, platform.principal("mark"), purpose="campaigns")
    assert mark.sql("select count(*) from crm.customers").fetchone() == (30,)
    with pytest.raises(errors.AccessDenied, match="mark may not declare the purpose 'analytics'"):
        federation.Connection(platform, platform.principal("mark"), purpose="analytics").sql("select 1")
    log = federation.Connection(platform, platform.principal("dora")).sql(
        "select status, purpose from system.query_log where principal = 'mark' and sql <> '' "
        "order by query_id").fetchall()
    assert ("ok", "campaigns") in log and ("denied", "analytics") in log
    purposes = federation.Connection(platform, platform.principal("ana")).sql(
        "select purposes from system.grants where grantee = 'marketing'").fetchone()
    assert purposes == (["campaigns"],)


def test_an_unknown_action_is_a_programming_error(platform):
    with pytest.raises(ValueError, match="unknown action 'delete'"):
        check(platform, "pat", "delete", "shop")
