"""Issue 16, red-teamed again (RT2): the interactions of the new surfaces, as a hostile user and as a hostile
(semi-trusted) domain team writing contracts and products. Each leak found is a test; a leak whose fix is a
design decision is an ``xfail(strict=True)`` naming it. tests/test_issue16_attacks.py holds the first round.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml

from federation import errors
from federation.platform import Platform


# -- OIDC identities and the approval workflow ------------------------------------------------------------


@pytest.fixture(scope="module")
def idp_keys():
    from test_oidc import rsa_key

    return {"k1": rsa_key()}


@pytest.fixture
def stewarded(tmp_path, idp_keys):
    """The shop mesh trusting one issuer; crm.customers' contract names IdP groups as its approvers: stewards
    (first level) and governors (second level), groups no principal of governance.yaml holds (the identity
    provider manages them, as a company does)."""
    import pgkit
    from test_oidc import IdP, issuers, public_jwk

    server = IdP()
    server.sets["/jwks"] = [public_jwk(idp_keys["k1"], "k1")]
    governance = {**pgkit.SHOP_GOVERNANCE, "issuers": [issuers(server)[0]]}
    root = shop_mesh(tmp_path / "mesh", governance=governance)
    crm = yaml.safe_load((root / "contracts" / "crm.odcs.yaml").read_text())
    crm["roles"] = [{"role": "crm_reader", "access": "read", "firstLevelApprovers": "stewards",
                     "secondLevelApprovers": "governors"}]
    write_yaml(root / "contracts" / "crm.odcs.yaml", crm)
    yield Platform(root)
    server.stop()


def test_a_claimed_name_equal_to_an_approver_group_does_not_approve(stewarded, idp_keys):
    """The legitimate path first: lucas (group stewards) then fiona (group governors) approve mallory's request.
    Then the attack: an IdP user whose *name* is 'stewards' and another named 'governors' (a self-chosen
    username, as many identity providers allow) approve mallory's second request, both levels, without being in
    either group. Approvers name users and groups alike: a token named like a group of the governance is
    refused (oidc.check_claims), but a group that only the identity provider knows is not one of those."""
    from test_oidc import mint

    p = stewarded
    who = {n: p.authenticate(mint(idp_keys, n, groups=g)) for n, g in
           (("mallory", []), ("lucas", ["stewards"]), ("fiona", ["governors"]), ("stewards", []), ("governors", []))}
    assert p.approval_levels("crm", "customers") == [("stewards",), ("governors",)]
    req = p.request_access(who["mallory"], "crm.customers", "churn study", days=3)
    p.decide_access(who["lucas"], req.request_id, True)
    assert p.decide_access(who["fiona"], req.request_id, True).status == "approved"  # the real approvers can
    p.revoke_access(who["fiona"], req.request_id, "done")

    req = p.request_access(who["mallory"], "crm.customers", "again", days=3)

    def listed(name):
        return [r[0] for r in p.query("select request_id from system.access_requests", who[name]).fetchall()]

    # the group's members see the request they may decide (their group comes from the claims); the look-alike
    # names see none of mallory's requests (other principals' activity: who asks for what, and why)
    assert listed("lucas") == listed("fiona") == [1, req.request_id]
    assert listed("stewards") == listed("governors") == []
    with pytest.raises(errors.AccessDenied):
        p.decide_access(who["stewards"], req.request_id, True)
    p.decide_access(who["lucas"], req.request_id, True)
    with pytest.raises(errors.AccessDenied):
        p.decide_access(who["governors"], req.request_id, True)
    assert p.access_requests.get(req.request_id).effective_status == "pending"
    with pytest.raises(errors.AccessDenied):
        p.query("select count(*) from crm.customers", who["mallory"]).fetchall()
