"""quanta contract init | export | lint: a contract from real data files, exports that other tools read,
best-practice gaps; bad input gets one clear line naming the file."""

from __future__ import annotations

import json
import sqlite3

import duckdb
import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from meshkit import OPEN_GOVERNANCE, mesh_yaml, product, sql_to_file, write_yaml

import federation
from federation.contracts.export import export_dbt, export_jsonschema, export_sql
from federation.contracts.lint import lint_contract, read_contract
from federation.contracts.infer import (
    init_contract,
    personal_by_name,
    personal_by_values,
)
from federation.catalog.loader import _validator, load_mesh
from federation.cli import main

PEOPLE = ("select i as person_id, 'Given' || i as first_name, 'someone' || i || '@example.org' as contact, "
          "'+32 470 ' || lpad((i % 97)::varchar, 2, '0') || ' 12 34' as mob, "
          "'10.1.' || (i % 200) || '.' || (i % 250) as origin, "
          "['gold', 'silver', 'bronze'][i % 3 + 1] as tier, "
          "case when i % 4 = 0 then null else (i * 1.25)::decimal(10,2) end as spend, "
          "timestamp '2026-01-01 00:00:00' + to_minutes(i) as updated_at "
          "from range(1, 501) t(i)")
SECRET_VALUES = ("Given1", "someone1@example.org", "+32 470 01 12 34", "10.1.1.1", "Given17")


@pytest.fixture()
def people(tmp_path):
    return sql_to_file(tmp_path / "mesh" / "data" / "people.parquet", PEOPLE)


def _props(doc):
    return {p["name"]: p for p in doc["schema"][0]["properties"]}


def test_init_profiles_types_keys_enums_and_personal_columns(people):
    doc = init_contract(str(people))
    assert list(_validator("odcs").iter_errors(doc)) == []
    props = _props(doc)
    assert props["person_id"]["logicalType"] == "integer" and props["person_id"]["primaryKey"] is True
    assert props["person_id"]["required"] and props["person_id"]["unique"]
    assert props["spend"]["logicalType"] == "number" and "required" not in props["spend"]
    assert props["updated_at"]["logicalType"] == "timestamp"
    # personal by name (first_name) and by values (contact: e-mails, mob: phones, origin: IPs)
    for name in ("first_name", "contact", "mob", "origin"):
        assert props[name]["classification"] == "pii", name
        sugg = props[name]["customProperties"][0]["value"]
        assert any(s.startswith("classification pii") for s in sugg), (name, sugg)
    assert "looks like an e-mail" in " ".join(props["contact"]["customProperties"][0]["value"])
    # the enum of a low-cardinality non-personal column, and only there
    assert props["tier"]["enum"] == [{"value": v} for v in ("bronze", "gold", "silver")]  # ODCS v3.2's enum
    assert all("enum" not in props[n] for n in ("first_name", "contact", "mob", "origin"))
    # every inferred fact is marked as a suggestion
    assert "suggestions" == props["person_id"]["customProperties"][0]["property"]
    # no data value of a personal column in the contract
    text = yaml.safe_dump(doc)
    for value in SECRET_VALUES:
        assert value not in text


def test_init_output_loads_and_queries_in_a_mesh(tmp_path, people):
    root = tmp_path / "mesh"
    mesh_yaml(root)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE)
    out = root / "contracts" / "people.odcs.yaml"
    out.parent.mkdir(parents=True)
    result = CliRunner().invoke(main, ["contract", "init", str(people), "--dataset", "people", "-o", str(out)])
    assert result.exit_code == 0, result.output
    doc = yaml.safe_load(out.read_text())
    write_yaml(root / "products" / "crm.odps.yaml", product("crm", domain="crm", outputs=[doc["id"]]))
    mesh = load_mesh(root)
    assert [p for p in mesh.problems if p.severity == "error"] == []
    assert "crm" in mesh.quanta
    con = federation.connect(str(root), user="ana")
    cur = con.cursor()
    cur.execute("select count(*), count(distinct tier) from crm.people")
    assert cur.fetchone() == (500, 3)


def test_init_from_csv_duckdb_and_sqlite_tables(tmp_path):
    csv = sql_to_file(tmp_path / "t.csv", "select i as id, 'x' || (i % 2) as kind from range(10) t(i)", "csv")
    assert _props(init_contract(str(csv)))["kind"]["enum"] == [{"value": "x0"}, {"value": "x1"}]
    db = tmp_path / "w.duckdb"
    con = duckdb.connect(str(db))
    con.execute("create table items as select i as item_id, 'e' || i || '@x.io' as email from range(20) t(i)")
    con.close()
    doc = init_contract(str(db), table="items")
    assert doc["servers"][0]["type"] == "duckdb" and _props(doc)["email"]["classification"] == "pii"
    assert list(_validator("odcs").iter_errors(doc)) == []
    lite = tmp_path / "s.sqlite"
    sc = sqlite3.connect(lite)
    sc.execute("create table t (a integer not null, phone text)")
    sc.executemany("insert into t values (?, ?)", [(i, f"+1 555 010 {i:04d}") for i in range(30)])
    sc.commit()
    sc.close()
    doc = init_contract(str(lite), table="t")
    assert _props(doc)["phone"]["classification"] == "pii" and _props(doc)["a"]["unique"] is True


def test_exports_parse_and_the_ddl_runs(tmp_path, people):
    doc = init_contract(str(people), dataset="people")
    dbt = yaml.safe_load(export_dbt(doc))
    cols = {c["name"]: c for c in dbt["sources"][0]["tables"][0]["columns"]}
    assert cols["person_id"]["data_tests"] == ["not_null", "unique"]
    assert {"accepted_values": {"values": ["bronze", "gold", "silver"]}} in cols["tier"]["data_tests"]
    assert "data_tests" not in cols["spend"]
    schema = json.loads(export_jsonschema(doc))
    jsonschema.Draft202012Validator.check_schema(schema)
    v = jsonschema.Draft202012Validator(schema)
    row = {"person_id": 1, "first_name": "a", "contact": "a@b.c", "mob": "1", "origin": "1.2.3.4", "tier": "gold",
           "spend": None, "updated_at": "2026-01-01T00:00:00"}
    assert v.is_valid(row)
    assert not v.is_valid(dict(row, tier="platinum")) and not v.is_valid(dict(row, person_id=None))
    ddl = export_sql(doc, "duckdb")
    con = duckdb.connect()
    con.execute(ddl)
    con.execute(f"insert into people select * from read_parquet('{people}')")
    assert con.execute("select count(*) from people").fetchone() == (500,)
    with pytest.raises(duckdb.ConstraintException):
        con.execute("insert into people (person_id, first_name, contact, mob, origin, tier, updated_at) "
                    "values (9999, 'z', 'z', 'z', 'z', 'platinum', now())")
    with pytest.raises(duckdb.ConstraintException):  # primary key
        con.execute("insert into people (person_id, first_name, contact, mob, origin, tier, updated_at) "
                    "values (1, 'zz', 'zz', 'zz', 'zz', 'gold', now())")
    pg = export_sql(doc, "postgres")
    assert 'CREATE TABLE "people"' in pg and "TEXT" in pg and 'PRIMARY KEY ("person_id")' in pg


def test_lint_finds_planted_gaps_with_paths(tmp_path):
    contract = {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "urn:x", "version": "1.0.0", "status": "active",
        "description": {"purpose": "Orders of the shop."},
        "team": {"name": "shop", "members": [{"username": "olivia", "role": "owner"}]},
        "support": [{"channel": "#shop", "url": "https://chat.example/shop"}],
        "schema": [{"name": "orders", "description": "One row per order.", "properties": [
            {"name": "order_id", "logicalType": "integer", "primaryKey": True, "description": "Key."},
            {"name": "customer_email", "logicalType": "string", "description": "Who ordered."},
            {"name": "placed_on", "logicalType": "date", "description": "When."},
            {"name": "note", "logicalType": "string"},
        ]}],
        "slaProperties": [{"property": "latency", "value": 1, "unit": "d"},
                          {"property": "retention", "value": 1, "unit": "y", "element": "orders.note"},
                          {"property": "frequency", "value": 1, "unit": "d", "element": "orders.placed_on"}],
    }
    path = write_yaml(tmp_path / "c.odcs.yaml", contract)
    doc, positions = read_contract(path)
    gaps = {g.path: g for g in lint_contract(doc, positions)}
    assert set(gaps) == {"schema[0].properties[1]", "schema[0].properties[3].description", "slaProperties[0]",
                         "slaProperties[1].element"}, gaps
    assert "e-mail" in gaps["schema[0].properties[1]"].message
    assert gaps["slaProperties[1].element"].line == path.read_text().splitlines().index(
        "  element: orders.note") + 1
    r = CliRunner().invoke(main, ["contract", "lint", str(path)])
    assert r.exit_code == 1 and "slaProperties[0]" in r.output
    # fixed: no gap, exit 0
    contract["schema"][0]["properties"][1]["classification"] = "pii"
    contract["schema"][0]["properties"][3]["description"] = "Free text."
    contract["slaProperties"] = [contract["slaProperties"][2]]
    write_yaml(path, contract)
    r = CliRunner().invoke(main, ["contract", "lint", str(path)])
    assert r.exit_code == 0, r.output
    # an owner-less, description-less contract
    del contract["team"], contract["description"]
    write_yaml(path, contract)
    r = CliRunner().invoke(main, ["contract", "lint", str(path)])
    assert r.exit_code == 1 and "team" in r.output and "description" in r.output


@pytest.mark.parametrize("args, expected", [
    (["contract", "init", "{d}/missing.parquet"], "missing.parquet: no such file"),
    (["contract", "init", "{d}/bad.parquet"], "bad.parquet: cannot read it as parquet"),
    (["contract", "init", "{d}/notes.txt"], "notes.txt: not a source"),
    (["contract", "lint", "{d}/broken.yaml"], "broken.yaml:2: invalid YAML"),
    (["contract", "lint", "{d}/product.yaml"], "product.yaml: not an ODCS data contract"),
    (["contract", "export", "{d}/missing.yaml", "--format", "dbt"], "missing.yaml"),
    (["contract", "export", "{d}/broken.yaml", "--format", "sql"], "broken.yaml:2: invalid YAML"),
])
def test_bad_input_is_one_clear_line(tmp_path, args, expected):
    (tmp_path / "bad.parquet").write_bytes(b"not parquet at all")
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "broken.yaml").write_text("kind: DataContract\n  schema: [\n")
    write_yaml(tmp_path / "product.yaml", product("p"))
    r = CliRunner().invoke(main, [a.replace("{d}", str(tmp_path)) for a in args])
    assert r.exit_code != 0 and isinstance(r.exception, SystemExit)  # an exit status, not an exception
    assert "Traceback" not in r.output and len(r.output.strip().splitlines()) == 1
    assert expected in r.output, r.output


def test_init_from_a_postgresql_table_writes_no_credentials():
    from pgserver import PostgresServer

    server = PostgresServer()
    try:
        server.sql("CREATE SCHEMA crm",
                   "CREATE TABLE crm.accounts (account_id bigint primary key, contact_email text, "
                   "segment text not null, credit numeric(12,2))",
                   "INSERT INTO crm.accounts SELECT i, 'buyer' || i || '@corp.example', "
                   "CASE i % 2 WHEN 0 THEN 'smb' ELSE 'enterprise' END, i * 10 FROM generate_series(1, 300) i")
        url = f"postgresql://postgres:postgres-admin@{server.host}:{server.port}/postgres"
        doc = init_contract(url, table="crm.accounts")
        assert list(_validator("odcs").iter_errors(doc)) == []
        props = _props(doc)
        assert props["account_id"]["primaryKey"] and props["credit"]["physicalType"] == "decimal(12,2)"
        assert props["contact_email"]["classification"] == "pii"
        assert props["segment"]["enum"] == [{"value": "enterprise"}, {"value": "smb"}]
        assert doc["servers"][0] == {"server": "postgres", "type": "postgres", "host": server.host,
                                     "port": server.port, "database": "postgres", "schema": "crm"}
        assert "postgres-admin" not in yaml.safe_dump(doc) and "buyer1@" not in yaml.safe_dump(doc)
        r = CliRunner().invoke(main, ["contract", "init", url, "--table", "crm.nope"])
        assert r.exit_code == 1 and "crm.nope" in r.output and "postgres-admin" not in r.output, r.output
    finally:
        server.stop()


def test_init_finds_a_two_column_key_and_reads_json(tmp_path):
    lines = sql_to_file(tmp_path / "lines.json", "select o as order_id, l as line_no, 'p' || (o * l % 7) as part "
                        "from range(1, 41) a(o), range(1, 4) b(l)", "json")
    props = _props(init_contract(str(lines)))
    assert (props["order_id"]["primaryKey"], props["order_id"]["primaryKeyPosition"]) == (True, 1)
    assert (props["line_no"]["primaryKey"], props["line_no"]["primaryKeyPosition"]) == (True, 2)
    assert "primaryKey" not in props["part"]
    assert "together are unique" in props["line_no"]["customProperties"][0]["value"][-1]


def test_dbt_models_and_json_schema_options():
    doc = {"apiVersion": "v3.1.0", "kind": "DataContract", "id": "urn:c", "version": "2.0.0", "status": "active",
           "schema": [{"name": "codes", "properties": [
               {"name": "code", "logicalType": "string", "required": True,
                "logicalTypeOptions": {"pattern": "^[A-Z]{3}$", "maxLength": 3}},
               {"name": "rank", "logicalType": "integer", "logicalTypeOptions": {"minimum": 1}}]}]}
    models = yaml.safe_load(export_dbt(doc, kind="models"))["models"]
    assert models[0]["name"] == "codes" and models[0]["config"]["contract"] == {"enforced": True}
    assert models[0]["columns"][0]["constraints"] == [{"type": "not_null"}]
    v = jsonschema.Draft202012Validator(json.loads(export_jsonschema(doc)))
    assert v.is_valid({"code": "EUR", "rank": 2}) and v.is_valid({"code": "EUR", "rank": None})
    assert not v.is_valid({"code": "eur"}) and not v.is_valid({"code": "EUR", "rank": 0})
    assert not v.is_valid({"rank": 1})


@pytest.mark.parametrize("values, expected", [
    (["someone@example.org", "x.y@corp.example", "q@w.io"], "an e-mail address"),
    (["+32 470 12 34 56", "(555) 010-1234", "0470/12.34.56"], "a phone number"),
    (["10.0.0.1", "192.168.1.20", "fe80::1"], "an IP address"),
    (["12 Main Street", "4 rue de la Paix, Paris", "Via Roma 12", "221B Baker St", "Kerkstraat 12"],
     "a postal address"),
    (["2024-01-01", "2024-02-03", "2025-12-31"], None),  # dates are not phones
    (["12:30", "13:45:00", "09:00:01"], None),             # times are not IPv6 addresses
    (["12.5", "-3", "100"], None),
    (["gold", "silver", "bronze"], None),
])
def test_personal_values(values, expected):
    assert personal_by_values(values) == expected


def test_personal_names():
    assert personal_by_name("customer_email") == "an e-mail address"
    assert personal_by_name("last_name") == "a person's name"
    assert personal_by_name("billing_address") == "an address"
    assert personal_by_name("client_ip") == "an IP address"
    assert personal_by_name("date_of_birth") == "an identity or account number"
    for name in ("email_id", "product_name", "tier", "shipping_cost", "zip_count"):
        assert personal_by_name(name) is None, name


def test_lint_reports_schema_errors_and_init_suggestions(tmp_path, people):
    out = tmp_path / "draft.odcs.yaml"
    assert CliRunner().invoke(main, ["contract", "init", str(people), "-o", str(out)]).exit_code == 0
    r = CliRunner().invoke(main, ["contract", "lint", str(out)])
    assert r.exit_code == 1
    assert "status is draft" in r.output and "suggestions not yet reviewed" in r.output
    assert "review is needed" in r.output and "no team" in r.output
    doc = yaml.safe_load(out.read_text())
    doc["schema"][0]["properties"][0]["logicalType"] = "text"
    write_yaml(out, doc)
    gaps = lint_contract(*read_contract(out))
    assert any(g.path == "schema[0].properties[0].logicalType" and "ODCS schema" in g.message for g in gaps)
    # an existing output is kept unless --force
    r = CliRunner().invoke(main, ["contract", "init", str(people), "-o", str(out)])
    assert r.exit_code == 1 and "exists" in r.output
