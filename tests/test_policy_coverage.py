"""The policy coverage report for the governance team: system.policy_coverage and ``quanta validate``."""

from __future__ import annotations

import json
import subprocess

from meshkit import contract, local_server, product, prop, shop_mesh, sql_to_file, write_yaml

import federation
from federation.platform import Platform

POLICIES = [
    {"name": "contact-mask", "kind": "mask", "on": {"classification": "pii", "tag": "contact"}, "mask": "redact"},
    {"name": "name-mask", "kind": "mask", "on": {"column": "full_name", "dataset": "crm.customers"},
     "mask": "redact"},
    {"name": "residency", "kind": "row_filter", "on": {"column": "region", "dataset": "crm.customers"},
     "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')"},
    {"name": "ssn-null", "kind": "mask", "on": {"column": "ssn"}, "mask": "null"},
]


def holey_mesh(root):
    """shop_mesh with holes: a partners quantum whose e-mail is unclassified and whose region is not
    filtered, a pii full_name that no policy selects, a derived copy of the e-mail classified otherwise."""
    shop_mesh(root, governance={"principals": [{"name": "ana", "attributes": {"regions": ["US"]}}],
                                "grants": [{"to": {"role": "public"}, "on": "*"}], "policies": POLICIES})
    sql_to_file(root / "data" / "partners" / "contacts.csv",
                "select i as partner_id, 'p' || i || '@example.com' as email, "
                "case i % 2 when 0 then 'EU' else 'US' end as region, 'Partner ' || i as full_name "
                "from range(1, 11) t(i)", "csv")
    write_yaml(root / "products" / "partners.odps.yaml", product("partners", domain="crm"))
    write_yaml(root / "contracts" / "partners.odcs.yaml", contract("partners-contract", [{
        "name": "contacts", "properties": [
            prop("partner_id", "integer", "bigint"), prop("email"), prop("region"),
            prop("full_name", classification="pii", tags=["pii"])]}],
        servers=[local_server("partners/contacts.csv", "csv")]))
    write_yaml(root / "products" / "x.odps.yaml", product("x", inputs=["crm-contract"]))
    write_yaml(root / "contracts" / "x.odcs.yaml", contract("x-contract", [{
        "name": "d", "customProperties": [{"property": "sql", "value":
                                           "select id, email as contact, region from crm.customers"}],
        "properties": [prop("id", "integer", "bigint"), prop("contact", classification="restricted"),
                       prop("region")]}]))
    return root


def test_policy_coverage_system_table(tmp_path):
    p = Platform(holey_mesh(tmp_path))
    assert not p.mesh.excluded, p.mesh.excluded
    conn = federation.Connection(p, p.principal("ana"))
    rows = conn.sql("select policy, quantum, dataset, \"column\", coverage, reason, \"like\", detail "
                    "from system.policy_coverage").fetchall()
    covered = {(r[0], f"{r[1]}.{r[2]}.{r[3]}") for r in rows if r[4] == "covered"}
    assert covered == {("contact-mask", "crm.customers.email"), ("name-mask", "crm.customers.full_name"),
                       ("residency", "crm.customers.region")}
    warnings = {(r[0], f"{r[1]}.{r[2]}.{r[3]}", r[5], r[6]) for r in rows if r[4] == "warning"}
    assert warnings == {
        # an unclassified e-mail: same name as the covered one, in clear
        ("contact-mask", "partners.contacts.email", "same_name", "crm.customers.email"),
        # pii but not tagged contact, and nothing else masks it (crm's full_name is masked by name-mask)
        ("contact-mask", "partners.contacts.full_name", "same_classification", "crm.customers.email"),
        ("name-mask", "partners.contacts.full_name", "same_name", "crm.customers.full_name"),
        # a derived copy of the covered e-mail, classified restricted: contact-mask does not select it
        ("contact-mask", "x.d.contact", "derived_copy", "crm.customers.email"),
        # a region the residency filter does not reach (the derived x.d.region reads crm's filtered one)
        ("residency", "partners.contacts.region", "same_name", "crm.customers.region"),
        ("ssn-null", "None.None.None", "selects_nothing", None),
    }
    detail = next(r[7] for r in rows if r[0] == "residency" and r[4] == "warning")
    assert detail == ("partners.contacts.region has the name of crm.customers.region, which residency covers, but "
                      "residency does not select it and no row filter with its condition applies to it")
    # the hole is real: ana (US only) sees EU partners, and no EU customer
    assert conn.sql("select count(*) from partners.contacts where region = 'EU'").fetchone() == (5,)
    assert conn.sql("select count(*) from crm.customers where region = 'EU'").fetchone() == (0,)


def test_validate_prints_the_policy_coverage(tmp_path):
    root = holey_mesh(tmp_path)
    out = subprocess.run(["quanta", "validate", str(root)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr  # warnings, not errors
    assert "policy coverage (4 policies, 6 warnings; system.policy_coverage):" in out.stdout
    assert "contact-mask                 mask          1 column" in out.stdout
    assert ("coverage warning (residency, same_name): partners.contacts.region has the name of "
            "crm.customers.region") in out.stdout
    assert "coverage warning (ssn-null, selects_nothing): ssn-null selects no column" in out.stdout
    assert "(6 policy coverage warnings)" in out.stdout
    out = subprocess.run(["quanta", "validate", str(root), "--json"], capture_output=True, text=True)
    doc = json.loads(out.stdout)
    assert doc["policy_coverage"]["covered"] == {"contact-mask": 1, "name-mask": 1, "residency": 1, "ssn-null": 0}
    assert {(w["policy"], w["dataset"], w["column"], w["reason"]) for w in doc["policy_coverage"]["warnings"]} >= {
        ("residency", "contacts", "region", "same_name"), ("contact-mask", "d", "contact", "derived_copy")}


def test_demo_policy_coverage(demo_path):
    p = Platform(demo_path)
    conn = federation.Connection(p, p.principal("ana"))
    policies = {r[0] for r in conn.sql("select policy from system.policies").fetchall()}
    rows = conn.sql("select policy, quantum, dataset, \"column\", coverage, detail from system.policy_coverage") \
        .fetchall()
    assert {r[0] for r in rows} == policies  # every policy is reported
    covered = {(r[0], f"{r[1]}.{r[2]}.{r[3]}") for r in rows if r[4] == "covered"}
    assert ("pii-email-domain", "customers.customers.email") in covered
    assert ("eu-residency", "customers.customers.region") in covered
    assert all(r[5] and r[5].startswith(f"{r[1]}.{r[2]}.{r[3]} ") for r in rows if r[4] == "warning" and r[3])
