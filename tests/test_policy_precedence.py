"""Which policy decides a column when several select it (``governance/policies.py``'s docstring):

- within a layer, the most specific policy decides, and its exemption is exact (no fall-through to a
  less specific mask);
- equally specific policies are all in force: an exemption from one does not lift another;
- the global layer stands over the local one; a local policy still restricts what the global layer
  leaves in clear;
- a row filter written with ``{column}`` applies to every column its selector selects.
"""

from __future__ import annotations

import pytest
from meshkit import OPEN_GOVERNANCE, contract, local_server, product, prop, shop_mesh, sql_to_file, write_yaml

import federation
from federation.governance.policies import Selector
from federation.platform import Platform

PRINCIPALS = [
    {"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
    {"name": "sam", "roles": ["support"], "attributes": {"regions": ["US", "CA"]}},
    {"name": "pia", "roles": ["pii_reader"], "attributes": {"regions": ["US", "CA"]}},
]
SQL = "select full_name, email from crm.customers where id = 1"


def governed(tmp_path, policies, local=None):
    root = shop_mesh(tmp_path, governance={**OPEN_GOVERNANCE, "principals": PRINCIPALS, "policies": policies})
    if local is not None:
        write_yaml(root / "products" / "crm.odps.yaml",
                   product("crm", domain="crm", customProperties=[{"property": "policies", "value": local}]))
    return Platform(root)


def row(platform, user, sql=SQL):
    r = federation.Connection(platform, platform.principal(user)).sql(sql)
    return r.fetchone(), {(p["policy"], p["column"]) for p in r.policies}


def test_the_most_specific_policy_decides_and_its_exemption_is_exact(tmp_path):
    p = governed(tmp_path, [
        {"name": "pii-redact", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
         "unless": {"roles": ["pii_reader"]}},
        {"name": "email-domain", "kind": "mask", "on": {"column": "email"}, "mask": "email_domain",
         "unless": {"roles": ["support"]}},
    ])
    # sam is exempt from email-domain, the most specific policy on email: in clear, not redacted
    assert row(p, "sam") == (("****", "user1@example.com"), {("pii-redact", "full_name")})
    assert row(p, "ana")[0] == ("****", "***@example.com")
    # and the other way: pia's exemption from the catch-all does not lift the specific policy
    assert row(p, "pia") == (("name1", "***@example.com"), {("email-domain", "email")})


def test_equally_specific_policies_are_all_in_force(tmp_path):
    p = governed(tmp_path, [  # email is tagged pii and contact: two tag policies, equally specific
        {"name": "contact-domain", "kind": "mask", "on": {"tag": "contact"}, "mask": "email_domain",
         "unless": {"roles": ["support"]}},
        {"name": "pii-redact", "kind": "mask", "on": {"tag": "pii"}, "mask": "redact",
         "unless": {"roles": ["pii_reader"]}},
    ])
    assert row(p, "sam")[0] == ("****", "****")  # exempt from contact-domain only: pii-redact applies
    assert row(p, "pia")[0] == ("name1", "***@example.com")  # exempt from pii-redact only
    assert row(p, "ana")[0] == ("****", "***@example.com")  # the first of them, in file order


def test_a_dataset_scope_is_more_specific(tmp_path):
    p = governed(tmp_path, [
        {"name": "email-domain", "kind": "mask", "on": {"column": "email"}, "mask": "email_domain"},
        {"name": "crm-email-null", "kind": "mask", "on": {"column": "email", "dataset": "crm.customers"},
         "mask": "null", "unless": {"roles": ["support"]}},
    ])
    assert row(p, "ana")[0] == ("name1", None)
    assert row(p, "sam")[0] == ("name1", "user1@example.com")
    assert Selector(column=("email",), dataset=("crm.customers",)).specificity > Selector(column=("email",)).specificity
    assert Selector(tag=("pii",)).specificity > Selector(classification=("pii",)).specificity
    assert Selector(classification=("pii",), tag=("pii",)).specificity > Selector(tag=("pii",)).specificity
    assert Selector(column=("email",)).specificity > Selector(tag=("pii",), dataset=("crm.customers",)).specificity


def test_local_policies_only_add_restrictions(tmp_path):
    p = governed(tmp_path, [
        {"name": "email-domain", "kind": "mask", "on": {"column": "email"}, "mask": "email_domain",
         "unless": {"roles": ["support"]}},
    ], local=[{"name": "crm-email-null", "kind": "mask", "on": {"column": "email"}, "mask": "null"}])
    assert row(p, "ana") == (("name1", "***@example.com"), {("email-domain", "email")})  # global stands
    assert row(p, "sam") == (("name1", None), {("crm-email-null", "email")})  # global exemption, local mask


def test_a_denial_is_decided_before_masks(tmp_path):
    p = governed(tmp_path, [
        {"name": "email-domain", "kind": "mask", "on": {"column": "email"}, "mask": "email_domain"},
        {"name": "no-pii", "kind": "deny", "on": {"classification": "pii"}, "unless": {"roles": ["pii_reader"]}},
    ])
    conn = federation.Connection(p, p.principal("ana"))
    assert conn.sql("select * from crm.customers limit 1").columns == ["id", "region"]
    assert row(p, "pia")[0] == ("name1", "***@example.com")


def test_a_row_filter_applies_to_every_column_it_selects(tmp_path):
    root = shop_mesh(tmp_path, governance={**OPEN_GOVERNANCE, "principals": PRINCIPALS, "policies": [
        {"name": "eu-residency", "kind": "row_filter", "on": {"tag": "region"},
         "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')"}]})
    sql_to_file(root / "data" / "shipping" / "parcels.csv",
                "select i as parcel_id, case when i % 2 = 0 then 'EU' else 'US' end as sender_region, "
                "case when i % 3 = 0 then 'EU' else 'CA' end as recipient_region from range(1, 13) t(i)", "csv")
    write_yaml(root / "products" / "shipping.odps.yaml", product("shipping"))
    write_yaml(root / "contracts" / "shipping.odcs.yaml", contract("shipping-contract", [{
        "name": "parcels", "properties": [
            prop("parcel_id", "integer", "bigint"), prop("sender_region", tags=["region"]),
            prop("recipient_region", tags=["region"])]}], servers=[local_server("shipping/parcels.csv", "csv")]))
    p = Platform(root)
    rows = federation.Connection(p, p.principal("ana")).sql(
        "select parcel_id, sender_region, recipient_region from shipping.parcels order by 1").fetchall()
    assert [r[0] for r in rows] == [1, 5, 7, 11]  # neither region is EU
    assert all("EU" not in r for r in rows)


@pytest.mark.parametrize("user", ["ana", "sam"])
def test_column_policy_matches_the_rewrite(tmp_path, user):
    """``Governance.column_policy`` is what ``system.column_access`` and ``authorize`` report."""
    p = governed(tmp_path, [
        {"name": "pii-redact", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact"},
        {"name": "email-domain", "kind": "mask", "on": {"column": "email"}, "mask": "email_domain",
         "unless": {"roles": ["support"]}},
    ])
    access = dict(federation.Connection(p, p.principal(user)).sql(
        "select \"column\", coalesce(policy, access) from system.column_access where dataset = 'customers'").fetchall())
    expected = {"ana": "email-domain", "sam": "visible"}[user]
    assert access["email"] == expected and access["full_name"] == "pii-redact"
