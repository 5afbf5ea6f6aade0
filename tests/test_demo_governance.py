"""The demo mesh's own governance (issue 11, findings 6 and 9): each hole found by the security review,
as a regression test on the generated demo mesh (``demo_path``: the embedded mesh, data regenerated).

- the points ledger gave exact balances that ``loyalty-points-banded`` masks;
- ``sales.orders`` and ``b2b_live.accounts`` showed EU rows that ``eu-residency`` hides elsewhere;
- data engineers and auditors exempt from ``pii-ip-hash`` fell through to ``pii-redact``;
- purposes were self-asserted (``dev`` read the marketing audience by declaring ``purpose="marketing"``).

The policies now select by tag, so a dataset added later is covered without editing a list: that is
tested too, with a new quantum added to a copy of the mesh.
"""

from __future__ import annotations

import re
import shutil

import pytest
import requests
from meshkit import contract, local_server, product, prop, sql_to_file, write_yaml

import federation
from federation import errors
from federation.platform import Platform

IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")


@pytest.fixture(scope="module")
def platform(demo_path):
    return Platform(demo_path)


def as_(platform, user, **kw):
    return federation.Connection(platform, platform.principal(user), **kw)


def policies_of(result) -> set[str]:
    return {p["policy"] for p in result.policies}


# -- loyalty: the ledger must not give the balances that the banded mask hides ---------------------------


def test_points_ledger_gives_no_exact_balance(platform):
    sql = ("select count(*) filter (where balance % 100 <> 0), count(*) from "
           "(select member_id, sum(points) as balance from loyalty.points_ledger group by 1)")
    exact, members = as_(platform, "dev").sql(sql).fetchone()  # data engineers see exact points
    assert members > 100 and exact > members / 2  # the check below could fail
    r = as_(platform, "ana").sql(sql)  # an analyst granted the loyalty quantum
    assert r.fetchone() == (0, members)  # every summed balance is banded, like points_balance
    assert "loyalty-points-banded" in policies_of(r)
    entries = as_(platform, "ana").sql("select count(*) filter (where points % 100 <> 0) from loyalty.points_ledger")
    assert entries.fetchone() == (0,)


def test_banded_points_follow_the_tag_into_derived_datasets(platform):
    ana = as_(platform, "ana")
    access = dict(ana.sql("select dataset || '.' || \"column\", policy from system.column_access "
                          "where \"column\" in ('points', 'points_balance')").fetchall())
    assert access["points_ledger.points"] == access["members.points_balance"] == "loyalty-points-banded"
    sql = "select count(*) filter (where points_balance % 100 <> 0) from customer360.customer_360"
    assert as_(platform, "dev").sql(sql).fetchone()[0] > 0
    assert ana.sql(sql).fetchone() == (0,)  # the derived dataset reads the banded source (invoker's policies)
    tags = ana.sql("select tags from system.columns where quantum = 'customer360' and \"column\" = 'points_balance'")
    assert "loyalty-points" in tags.fetchone()[0]  # inherited along lineage
    on = ana.sql("select selects from system.policies where policy = 'loyalty-points-banded'").fetchone()[0]
    assert "loyalty-points" in on and "points_balance" not in on  # by tag, not by column list


# -- residency: every dataset with a region column, by tag -----------------------------------------------


@pytest.mark.parametrize("dataset", ["sales.orders", "sales_analytics.daily_sales_by_region", "sales.stores",
                                     "loyalty.members", "customer360.customer_360", "returns.returns"])
def test_eu_rows_hidden_in_every_dataset_with_a_region(platform, dataset):
    sql = f"select count(*) filter (where region = 'EU'), count(*) from {dataset}"
    eu, total = as_(platform, "dev").sql(sql).fetchone()  # dev's regions include EU
    assert eu > 0
    r = as_(platform, "ana").sql(sql)  # ana: US and CA
    ana_eu, ana_total = r.fetchone()
    assert ana_eu == 0 and ana_total == total - eu
    assert "eu-residency" in policies_of(r)


def test_eu_residency_selects_a_tag_not_a_list(platform):
    on = as_(platform, "ana").sql("select selects from system.policies where policy = 'eu-residency'").fetchone()[0]
    assert "region" in on and "quantum" not in on and "dataset" not in on


def test_a_new_dataset_is_covered_without_editing_a_policy(demo_path, tmp_path):
    """A quantum added later, whose contract tags its columns like the others, is governed at once."""
    mesh = tmp_path / "greatparts"
    shutil.copytree(demo_path, mesh, ignore=shutil.ignore_patterns(".quanta"))
    sql_to_file(mesh / "data" / "partners" / "partners.csv",
                "select i as partner_id, 'partner' || i || '@example.com' as email, 'name' || i as contact_name, "
                "case i % 3 when 0 then 'EU' when 1 then 'US' else 'CA' end as region "
                "from range(1, 31) t(i)", "csv")
    write_yaml(mesh / "products" / "partners.odps.yaml", product("partners", domain="b2b", owner="lucas"))
    write_yaml(mesh / "contracts" / "partners.odcs.yaml", contract("partners-contract", [{
        "name": "partners", "properties": [
            prop("partner_id", "integer", "bigint", classification="internal"),
            prop("email", classification="pii", tags=["pii", "contact"]),
            prop("contact_name", classification="pii", tags=["pii", "name"]),
            prop("region", classification="internal", tags=["region"])]}],
        servers=[local_server("partners/partners.csv", "csv")],
        roles=[{"role": "analyst", "access": "read"}]))
    p = Platform(mesh)
    assert "partners" in p.mesh.quanta, p.mesh.problems
    r = as_(p, "ana").sql("select email, contact_name, region from partners.partners")
    rows = r.fetchall()
    assert len(rows) == 20 and {row[2] for row in rows} == {"US", "CA"}  # eu-residency, by tag
    assert all(row[0].startswith("***@") and row[1] == "****" for row in rows)  # by column name, by classification
    assert {"eu-residency", "pii-redact", "pii-email-domain"} <= policies_of(r)


def test_b2b_live_accounts_hide_eu_rows(demo_path, tmp_path):
    """`quanta demo --postgres`: the live accounts are governed like the file-based ones."""
    from pgserver import PostgresServer

    from federation import demo

    mesh = tmp_path / "greatparts"
    shutil.copytree(demo_path, mesh, ignore=shutil.ignore_patterns(".quanta"))
    pg = PostgresServer()
    try:
        pg.sql("CREATE DATABASE greatparts_ops")
        demo.setup_postgres(mesh, pg.dsn(dbname="greatparts_ops"))
        p = Platform(mesh)
        assert "b2b_live" in p.mesh.quanta, p.mesh.problems
        sql = "select count(*) filter (where region = 'EU'), count(*) from b2b_live.accounts"
        eu, total = as_(p, "fiona").sql(sql).fetchone()
        assert eu > 0
        r = as_(p, "ana").sql(sql)  # analysts read b2b_live (its contract's roles)
        assert r.fetchone() == (0, total - eu) and "eu-residency" in policies_of(r)
    finally:
        pg.stop()


# -- the IP address: an exemption from the most specific policy is exact ---------------------------------


def test_ip_hash_exemption_is_exact(platform):
    sql = "select ip_address from clickstream.web_events where ip_address is not null limit 20"
    for user in ("dev", "audrey"):  # exempt from pii-ip-hash: in clear, not redacted by pii-redact
        r = as_(platform, user).sql(sql)
        values = [row[0] for row in r.fetchall()]
        assert values and all(IPV4.match(v) for v in values), (user, values[:3])
        assert not policies_of(r) & {"pii-ip-hash", "pii-redact"}
    r = as_(platform, "marco").sql(sql)  # not exempt: the salted hash (joinable), not the redaction
    values = [row[0] for row in r.fetchall()]
    assert values and all(re.fullmatch(r"[0-9a-f]{20}", v) for v in values)
    assert "pii-ip-hash" in policies_of(r) and "pii-redact" not in policies_of(r)


# -- purposes are granted, not asserted ------------------------------------------------------------------

AUDIENCE = "select value_band, count(*) from marketing.campaign_audience group by 1"


def test_a_purpose_not_held_is_refused_and_audited(platform):
    dev = as_(platform, "dev", purpose="marketing")  # dev's attributes hold no purpose
    with pytest.raises(errors.AccessDenied, match=r"dev may not declare the purpose 'marketing'; purposes held: none"):
        dev.sql(AUDIENCE)
    with pytest.raises(errors.AccessDenied, match="may not declare the purpose"):
        platform.prepare(AUDIENCE, platform.principal("dev"), purpose="marketing")
    with pytest.raises(errors.AccessDenied, match="may not declare the purpose"):
        platform.compile(AUDIENCE, platform.principal("dev"), purpose="marketing")
    log = as_(platform, "audrey").sql(
        "select status, purpose, error from system.query_log where principal = 'dev' and sql = ? "
        "order by query_id", [AUDIENCE]).fetchall()
    assert len(log) == 3 and all(row[:2] == ("denied", "marketing") for row in log)
    assert "may not declare the purpose 'marketing'" in log[0][2]
    # ana holds 'analytics' only: the refusal names what she holds
    with pytest.raises(errors.AccessDenied, match="purposes held: analytics"):
        as_(platform, "ana", purpose="marketing").sql("select 1")


def test_a_held_purpose_is_accepted_and_audited(platform):
    r = as_(platform, "marco", purpose="marketing").sql(AUDIENCE)
    assert sum(row[1] for row in r.fetchall()) > 0
    log = as_(platform, "marco").sql("select status, purpose from system.query_log where sql = ? "
                                     "order by query_id desc limit 1", [AUDIENCE]).fetchall()
    assert log == [("ok", "marketing")]


def test_purpose_over_http(demo_server):
    def post(user, purpose):
        return requests.post(f"{demo_server.url}/api/v1/query", json={"sql": AUDIENCE, "purpose": purpose},
                             headers={"Authorization": f"Bearer {demo_server.tokens[user]}"}, timeout=60)

    refused = post("dev", "marketing")
    assert refused.status_code == 403
    assert "dev may not declare the purpose 'marketing'" in refused.text
    ok = post("marco", "marketing")
    assert ok.status_code == 200 and ok.json()["row_count"] > 0
