"""Sound declassification (issue 11, finding 3): aggregates that return source values (min, max,
string_agg...) keep their sources' classification and masks, in a materialised mart as in
system.columns; only count and an explicit, checked ``declassify: {minGroupSize: k}`` lower them."""

from __future__ import annotations

import pytest
import requests
from meshkit import contract, local_server, product, prop, shop_mesh, sql_to_file, write_yaml

import federation
from federation import errors
from federation.catalog.model import Column, Dataset
from federation.lineage.columns import column_lineage, mesh_schema
from federation.onboarding.marts import refresh
from federation.platform import Platform

LEAKY_MART = ("select region, string_agg(contact_name, '; ') as contacts, min(contact_phone) as phone, "
              "max(vat_number) as vat, count(*) as accounts, count(distinct vat_number) as vats, "
              "avg(credit_limit) as avg_credit from b2b.accounts group by region")
GOVERNANCE = {
    "roles": [{"name": n} for n in ("analyst", "data_engineer", "finance")],
    "principals": [{"name": "olivia", "roles": ["data_engineer"]}, {"name": "ana", "roles": ["analyst"]}],
    "grants": [{"to": {"role": "analyst"}, "on": "*"}, {"to": {"role": "data_engineer"}, "on": "*"}],
    "policies": [
        {"name": "phone-last4", "kind": "mask", "on": {"column": "contact_phone"},
         "mask": {"type": "partial", "keep_last": 4}, "unless": {"roles": ["data_engineer"]}},
        {"name": "pii-redact", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
         "unless": {"roles": ["data_engineer"]}},
        {"name": "confidential-null", "kind": "mask", "on": {"classification": "confidential"}, "mask": "null",
         "unless": {"roles": ["data_engineer", "finance"]}}]}


def b2b_mesh(root, sql=LEAKY_MART, avg_credit: dict | None = None, dataset_props: list | None = None,
             accounts: int = 20):
    """shop_mesh plus b2b.accounts (personal contact data, a confidential credit limit) and a materialised
    mart over it, b2bmart.by_region, owned by olivia."""
    shop_mesh(root, governance=GOVERNANCE)
    sql_to_file(root / "data" / "b2b" / "accounts.parquet",
                "select i as account_id, case when i % 2 = 0 then 'EU' else 'US' end as region, "
                "'Contact ' || i as contact_name, '+32 470 00 00 ' || lpad(i::varchar, 2, '0') as contact_phone, "
                f"'BE0' || (400000000 + i) as vat_number, (i * 1000)::decimal(12,2) as credit_limit "
                f"from range(1, {accounts + 1}) t(i)")
    write_yaml(root / "products" / "b2b.odps.yaml", product("b2b"))
    write_yaml(root / "contracts" / "b2b.odcs.yaml", contract("b2b-contract", [{"name": "accounts", "properties": [
        prop("account_id", "integer", "bigint"), prop("region"),
        prop("contact_name", classification="pii", tags=["pii", "name"]),
        prop("contact_phone", classification="pii", tags=["pii", "contact"]),
        prop("vat_number", classification="pii", tags=["pii", "tax"]),
        prop("credit_limit", "number", "decimal(12,2)", classification="confidential", tags=["finance"])]}],
        servers=[local_server("b2b/accounts.parquet")]))
    write_yaml(root / "products" / "b2bmart.odps.yaml", product("b2bmart", inputs=["b2b-contract"]))
    write_yaml(root / "contracts" / "b2bmart.odcs.yaml", contract("b2bmart-contract", [{
        "name": "by_region",
        "customProperties": [{"property": "sql", "value": sql}, {"property": "materialize", "value": True}]
        + (dataset_props or []),
        "properties": [prop("region"), prop("contacts"), prop("phone"), prop("vat"),
                       prop("accounts", "integer", "bigint"), prop("vats", "integer", "bigint"),
                       prop("avg_credit", "number", "double", **(avg_credit or {}))]}]))
    return root


def raw_values(p):
    olivia = federation.Connection(p, p.principal("olivia"))  # exempt from the masks: the raw values
    return {v for row in olivia.sql("select contact_name, contact_phone, vat_number from b2b.accounts").fetchall()
            for v in row}


def assert_masked(rows, raw, vats_seen=10):
    assert len(rows) == 2
    for region, contacts, phone, vat, accounts, vats, avg_credit in rows:
        assert contacts == "****" and phone == "****" and vat == "****", (contacts, phone, vat)
        assert not any(r in str(v) for r in raw for v in (contacts, phone, vat))
        assert accounts == 10 and vats == vats_seen  # counts are numbers, not values: visible
        assert avg_credit is None  # computed from a masked (null) column, not declassified


MART_SQL = "select region, contacts, phone, vat, accounts, vats, avg_credit from b2bmart.by_region order by region"


def test_a_mart_of_value_aggregates_shows_a_reader_the_source_masks(tmp_path):
    """The finding: string_agg/min/max in a mart refreshed by its owner showed the reader raw names,
    phones and VAT numbers that are masked for them in the source."""
    p = Platform(b2b_mesh(tmp_path))
    raw = raw_values(p)
    assert "BE0400000020" in raw and "Contact 2" in raw
    ana = federation.Connection(p, p.principal("ana"))
    # computed at read time before the first refresh, with ana's own masks (so count(distinct vat) counts '****')
    assert_masked(ana.sql(MART_SQL).fetchall(), raw, vats_seen=1)
    refresh(p, "b2bmart.by_region", p.principal("olivia"))
    assert "memory.b2b.accounts" not in p.compile(MART_SQL, p.principal("ana")).sql  # read from the mart's version
    olivia_rows = federation.Connection(p, p.principal("olivia")).sql(MART_SQL).fetchall()
    assert ("EU", "BE0400000020") in {(r[0], r[3]) for r in olivia_rows}  # the mart does hold raw values
    assert_masked(ana.sql(MART_SQL).fetchall(), raw)
    assert ana.sql("select count(*) from b2bmart.by_region where vat = 'BE0400000020' or phone like '%00 20'"
                   " or contacts like '%Contact 2%'").fetchone() == (0,)  # filters see masked values too


def test_system_columns_show_the_inherited_classification(tmp_path):
    p = Platform(b2b_mesh(tmp_path))
    ana = federation.Connection(p, p.principal("ana"))
    got = {r[0]: (r[1], set(r[2])) for r in ana.sql(
        "select \"column\", classification, tags from system.columns where quantum = 'b2bmart'").fetchall()}
    assert got["vat"] == ("pii", {"pii", "tax"})  # max(vat_number)
    assert got["phone"] == ("pii", {"pii", "contact"})  # min(contact_phone)
    assert got["contacts"] == ("pii", {"pii", "name"})  # string_agg(contact_name)
    assert got["avg_credit"] == ("confidential", {"finance"})  # avg: not declassified without a declaration
    assert got["vats"] == (None, set())  # count(distinct vat_number): a number
    kinds = dict(ana.sql("select target_column, transformation from system.column_lineage "
                         "where target_quantum = 'b2bmart'").fetchall())
    assert kinds == {"region": "identity", "contacts": "collection", "phone": "value", "vat": "value",
                     "vats": "count", "avg_credit": "aggregate"}


def test_the_mart_leak_through_http(tmp_path):
    from federation.server.http import Server, create_app

    p = Platform(b2b_mesh(tmp_path))
    raw = raw_values(p)
    refresh(p, "b2bmart.by_region", p.principal("olivia"))
    server = Server(create_app(p), port=0).start()
    try:
        token = p.tokens.create("ana", 1)[0]
        r = requests.post(server.url + "/api/v1/query", json={"sql": MART_SQL},
                          headers={"Authorization": f"Bearer {token}"}, timeout=60)
        assert r.status_code == 200, r.text
        assert_masked([tuple(row) for row in r.json()["rows"]], raw)
    finally:
        server.stop()


@pytest.mark.parametrize("sql,expected", [
    ("select string_agg(vat_number, ',' order by contact_name) as v from b2b.accounts",
     {("vat_number", "collection"), ("contact_name", "expression")}),
    ("select arg_max(contact_name, credit_limit) as v from b2b.accounts",
     {("contact_name", "value"), ("credit_limit", "expression")}),
    ("select any_value(vat_number) as v from b2b.accounts", {("vat_number", "value")}),
    ("select mode(vat_number) as v from b2b.accounts", {("vat_number", "value")}),
    ("select quantile_disc(credit_limit, 0.5) as v from b2b.accounts", {("credit_limit", "value")}),
    ("select median(credit_limit) as v from b2b.accounts", {("credit_limit", "value")}),
    ("select list(vat_number) as v from b2b.accounts", {("vat_number", "collection")}),
    ("select max(vat_number, 3) as v from b2b.accounts", {("vat_number", "collection")}),
    ("select histogram(vat_number) as v from b2b.accounts", {("vat_number", "expression")}),
    ("select list_distinct(list(vat_number)) as v from b2b.accounts", {("vat_number", "expression")}),
    ("with x as (select region, max(vat_number) as m from b2b.accounts group by region) select m as v from x",
     {("vat_number", "value")}),
    ("with x as (select max(vat_number) as m from b2b.accounts) select count(m) as v from x",
     {("vat_number", "count")}),
    ("select count(vat_number) || max(vat_number) as v from b2b.accounts", {("vat_number", "expression")}),
    ("select count(case when vat_number = 'BE0400000001' then 1 end) as v from b2b.accounts",
     {("vat_number", "aggregate")}),
    ("select count(*) filter (where vat_number = 'BE0400000001') as v from b2b.accounts",
     {("vat_number", "expression")}),
    ("select max(vat_number) over (partition by region) as v from b2b.accounts",
     {("vat_number", "expression"), ("region", "expression")}),
    ("select sum(length(contact_name)) as v from b2b.accounts", {("contact_name", "aggregate")}),
])
def test_lineage_kind_of_each_source_column(tmp_path, sql, expected):
    from federation.catalog import load_mesh

    mesh = load_mesh(b2b_mesh(tmp_path))
    ds = Dataset("t", "d", "c", "f", "", sql=sql, columns=[Column("v", 1, "varchar")])
    assert {(e.source_column, e.transformation) for e in column_lineage(ds, mesh_schema(mesh))} == expected


def test_every_value_aggregate_keeps_the_classification(tmp_path):
    sql = ("select region, first(vat_number) as contacts, last(contact_phone) as phone, mode(vat_number) as vat, "
           "count(*) as accounts, count(vat_number) as vats, max(credit_limit) as avg_credit "
           "from b2b.accounts group by region")
    root = b2b_mesh(tmp_path, sql=sql)
    p = Platform(root)
    mart = p.mesh.dataset("b2bmart", "by_region")
    assert [mart.column(c).classification for c in ("contacts", "phone", "vat", "avg_credit", "vats")] == [
        "pii", "pii", "pii", "confidential", None]
    refresh(p, "b2bmart.by_region", p.principal("olivia"))
    rows = federation.Connection(p, p.principal("ana")).sql(MART_SQL).fetchall()
    assert {(r[1], r[2], r[3], r[6]) for r in rows} == {("****", "****", "****", None)}


# -- declassify: {minGroupSize: k} ---------------------------------------------------------------------------


def test_declared_declassification_passes_when_groups_are_large_enough(tmp_path):
    root = b2b_mesh(tmp_path, avg_credit={"classification": "internal", "customProperties": [
        {"property": "declassify", "value": {"minGroupSize": 10}}]})
    p = Platform(root)
    assert not p.mesh.excluded, p.mesh.excluded
    assert p.mesh.dataset("b2bmart", "by_region").column("avg_credit").classification == "internal"
    assert p.mesh.dataset("b2bmart", "by_region").column("vat").classification == "pii"  # only the declared one
    report = refresh(p, "b2bmart.by_region", p.principal("olivia"))
    assert report.version == 1
    rows = federation.Connection(p, p.principal("ana")).sql(MART_SQL).fetchall()
    assert {r[0]: float(r[6]) for r in rows} == {"EU": 11000.0, "US": 10000.0}  # declassified: visible
    assert {r[3] for r in rows} == {"****"}  # the value aggregates stay masked


def test_declared_declassification_fails_the_refresh_when_a_group_is_too_small(tmp_path):
    root = b2b_mesh(tmp_path, dataset_props=[{"property": "declassify", "value": {"minGroupSize": 11}}],
                    avg_credit={"classification": "internal"})
    p = Platform(root)
    assert not p.mesh.excluded, p.mesh.excluded
    mart = p.mesh.dataset("b2bmart", "by_region")
    assert mart.column("avg_credit").classification == "internal"  # the schema object's declaration
    assert mart.column("vat").classification == "pii"  # max() is not declassified by a dataset-wide declaration
    with pytest.raises(errors.DataError) as e:
        refresh(p, "b2bmart.by_region", p.principal("olivia"))
    message = str(e.value)
    assert "column avg_credit is declassified with minGroupSize 11" in message
    assert "aggregates only 10 source rows" in message and "region=" in message
    olivia = federation.Connection(p, p.principal("olivia"))
    assert olivia.sql("select version from system.marts where dataset = 'by_region'").fetchone() == (None,)
    # an uneven mesh: the group of one account is refused at 2
    root2 = b2b_mesh(tmp_path / "one", sql=LEAKY_MART.replace("group by region", "group by region, account_id = 1"),
                     avg_credit={"classification": "internal", "customProperties": [
                         {"property": "declassify", "value": {"minGroupSize": 2}}]})
    p2 = Platform(root2)
    with pytest.raises(errors.DataError, match="aggregates only 1 source row;"):
        refresh(p2, "b2bmart.by_region", p2.principal("olivia"))


@pytest.mark.parametrize("avg_credit,sql,message", [
    ({"customProperties": [{"property": "declassify", "value": {"minGroupSize": 1}}]}, LEAKY_MART,
     "integer k >= 2"),
    ({"customProperties": [{"property": "declassify", "value": 10}]}, LEAKY_MART, "integer k >= 2"),
    ({"classification": "internal", "customProperties": [{"property": "declassify", "value": {"minGroupSize": 5}}]},
     LEAKY_MART.replace("avg(credit_limit)", "max(credit_limit)"), "cannot be declassified"),
    ({"classification": "internal", "customProperties": [{"property": "declassify", "value": {"minGroupSize": 5}}]},
     "select region, contact_name as contacts, contact_phone as phone, vat_number as vat, 1 as accounts, "
     "2 as vats, credit_limit / 2 as avg_credit from b2b.accounts", "not one aggregate SELECT"),
])
def test_a_declassification_that_cannot_hold_is_an_error(tmp_path, avg_credit, sql, message):
    p = Platform(b2b_mesh(tmp_path, sql=sql, avg_credit=avg_credit))
    assert "b2bmart" in p.mesh.excluded
    assert message in p.mesh.excluded["b2bmart"], p.mesh.excluded["b2bmart"]


def test_a_value_aggregate_declared_weaker_than_its_source_is_an_error(tmp_path):
    p = Platform(b2b_mesh(tmp_path, avg_credit={"classification": "internal"}))
    why = p.mesh.excluded.get("b2bmart", "")
    assert "avg_credit" in why and "b2b.accounts.credit_limit" in why and "declassify" in why


def test_only_count_may_be_anonymising_by_setting(tmp_path):
    """The governance setting that lowered classifications by aggregate or hash accepts only count now."""
    root = shop_mesh(tmp_path, governance={"settings": {"anonymising_transformations": ["aggregate"]}})
    with pytest.raises(errors.CatalogError, match="'aggregate' is not one of \\['count'\\]"):
        Platform(root)


# -- shapes column lineage cannot follow: fail closed (found by the second red-team pass) ------------------------

UNTRACEABLE = [
    "first(a).vat_number",  # a table alias used as a row value, then a field of it
    "struct_extract(first(a), 'vat_number')",
    "first(a)::varchar",  # the whole row as text
    "max(accounts)::varchar",  # the table's own name as a row value (no alias below)
    "max(columns('vat_number'))",  # COLUMNS: selected by pattern
    "max(columns(c -> c = 'vat_number'))",
]


@pytest.mark.parametrize("vat", UNTRACEABLE)
def test_a_mart_column_lineage_cannot_trace_is_null_for_a_reader(tmp_path, vat):
    sql = (f"select region, string_agg(contact_name, '; ') as contacts, min(contact_phone) as phone, {vat} as vat, "
           "count(*) as accounts, count(distinct vat_number) as vats, avg(credit_limit) as avg_credit "
           f"from b2b.accounts{'' if 'accounts)' in vat else ' a'} group by region")
    p = Platform(b2b_mesh(tmp_path, sql=sql))
    raw = raw_values(p)
    refresh(p, "b2bmart.by_region", p.principal("olivia"))
    olivia = federation.Connection(p, p.principal("olivia")).sql(MART_SQL).fetchall()
    assert any("BE04" in str(r[3]) for r in olivia)  # the mart holds raw values: the check below can fail
    rows = federation.Connection(p, p.principal("ana")).sql(MART_SQL).fetchall()
    assert len(rows) == 2 and all(r[3] is None for r in rows)
    assert not any(v in repr(rows) for v in raw)
