"""Loading meshes: valid ones, every kind of invalid input, and the official ODCS examples."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from meshkit import contract, local_server, mesh_yaml, product, prop, shop_mesh, sql_to_file, write_yaml

from federation import CatalogError
from federation.catalog import load_mesh
from federation.platform import Platform

EXAMPLES = Path(__file__).resolve().parent.parent.parent / "shared" / "standards" / "odcs" / "examples"


def problems_of(mesh, severity="error"):
    return [p for p in mesh.problems if p.severity == severity]


def test_valid_mesh_loads(tmp_path):
    mesh = load_mesh(shop_mesh(tmp_path))
    assert problems_of(mesh) == []
    assert set(mesh.quanta) == {"crm", "shop", "report"}
    orders = mesh.dataset("shop", "orders")
    assert [c.name for c in orders.columns] == ["order_id", "customer_id", "amount", "order_date"]
    assert orders.column("customer_id").physical_name == "cust_id"
    assert mesh.dataset("report", "sales_by_region").reads == (("shop", "orders"), ("crm", "customers"))
    assert mesh.quanta["crm"].owners == ("olivia",)


def test_missing_mesh_yaml_is_a_catalog_error(tmp_path):
    with pytest.raises(CatalogError, match="no mesh.yaml"):
        load_mesh(tmp_path)
    with pytest.raises(CatalogError, match="does not exist"):
        load_mesh(tmp_path / "nowhere")


def test_invalid_mesh_yaml_names_line(tmp_path):
    (tmp_path / "mesh.yaml").write_text("name: x\ndomains: [\n")
    with pytest.raises(CatalogError) as e:
        load_mesh(tmp_path)
    assert e.value.problems[0].file == "mesh.yaml"
    assert e.value.problems[0].line is not None
    (tmp_path / "mesh.yaml").write_text("description: no name\n")
    with pytest.raises(CatalogError) as e:
        load_mesh(tmp_path)
    assert '"name" is a required property' in str(e.value)


def test_schema_violation_names_file_path_and_line(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["schema"][0]["properties"][2]["logicalType"] = "money"
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    mesh = load_mesh(root)
    errs = problems_of(mesh)
    assert any(p.file == "contracts/shop.odcs.yaml" and p.path == "schema[0].properties[2].logicalType"
               and p.line is not None and "money" in p.message for p in errs), errs
    # the broken quantum is left out, the others load; the derived one that reads it is left out too
    assert "shop" not in mesh.quanta and "crm" in mesh.quanta
    assert "report" not in mesh.quanta and "report" in mesh.excluded


def test_invalid_yaml_in_one_product(tmp_path):
    root = shop_mesh(tmp_path)
    (root / "products" / "crm.odps.yaml").write_text("name: crm\n  bad: indent: here\n")
    mesh = load_mesh(root)
    errs = problems_of(mesh)
    assert any(p.file == "products/crm.odps.yaml" and "invalid YAML" in p.message and p.line for p in errs)
    assert "shop" in mesh.quanta


def test_duplicate_names_and_ids(tmp_path):
    root = shop_mesh(tmp_path)
    write_yaml(root / "products" / "crm2.odps.yaml", product("crm", domain="crm", outputs=["crm-contract"]))
    dup = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    write_yaml(root / "contracts" / "shop-copy.odcs.yaml", dup)
    mesh = load_mesh(root)
    messages = [str(p) for p in problems_of(mesh)]
    assert any("quantum 'crm' is also defined by" in m for m in messages), messages
    assert any("contract id 'shop-contract' is also used by" in m for m in messages), messages


def test_unknown_contract_domain_and_identifiers(tmp_path):
    root = shop_mesh(tmp_path)
    write_yaml(root / "products" / "bad.odps.yaml", product("bad-name", domain="nowhere", outputs=["missing"]))
    mesh = load_mesh(root)
    messages = [str(p) for p in problems_of(mesh)]
    assert any("not a SQL identifier" in m and "products/bad.odps.yaml" in m for m in messages)
    assert any("domain 'nowhere' is not one of the mesh's domains" in m for m in messages)
    assert any("contract 'missing'" in m and "no *.odcs.yaml" in m for m in messages)


def test_column_not_identifier_is_mapped_or_refused(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "crm.odcs.yaml").read_text())
    c["schema"][0]["properties"][1]["name"] = "full name"
    write_yaml(root / "contracts" / "crm.odcs.yaml", c)
    mesh = load_mesh(root)
    assert any(p.path == "schema[0].properties[1].name" and "not a SQL identifier" in p.message
               for p in problems_of(mesh))


def test_declared_column_missing_in_data(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["schema"][0]["properties"].append(prop("discount", "number", "double"))
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    mesh = Platform(root).mesh
    errs = problems_of(mesh)
    assert any(p.path == "schema[0].properties[4]" and "'discount'" in p.message and "the data has" in p.message
               for p in errs), errs
    assert "shop" not in mesh.quanta and "crm" in mesh.quanta


def test_incompatible_type_in_data(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "shop.odcs.yaml").read_text())
    c["schema"][0]["properties"][3] = prop("order_date", "boolean", "boolean")
    write_yaml(root / "contracts" / "shop.odcs.yaml", c)
    errs = problems_of(Platform(root).mesh)
    assert any("declared BOOLEAN but the data" in p.message and "DATE" in p.message for p in errs), errs


def test_missing_data_files(tmp_path):
    root = shop_mesh(tmp_path)
    shutil.rmtree(root / "data" / "shop")
    mesh = Platform(root).mesh
    assert any("cannot read the data of shop.orders" in p.message for p in problems_of(mesh))
    assert "crm" in mesh.quanta


def test_derived_unknown_input_and_missing_port(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    c["schema"][0]["customProperties"][0]["value"] = "select * from shop.nothing"
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    assert any("has no dataset 'nothing'" in p.message for p in problems_of(load_mesh(root)))
    write_yaml(root / "products" / "report.odps.yaml", product("report", inputs=["crm-contract"]))
    c["schema"][0]["customProperties"][0]["value"] = "select amount from shop.orders"
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    assert any("has no input port for a contract of 'shop'" in p.message for p in problems_of(load_mesh(root)))


def test_derived_cycle_is_an_error(tmp_path):
    root = shop_mesh(tmp_path)
    write_yaml(root / "products" / "a.odps.yaml", product("qa", inputs=["qb-contract"]))
    write_yaml(root / "products" / "b.odps.yaml", product("qb", inputs=["qa-contract"]))
    write_yaml(root / "contracts" / "a.odcs.yaml", contract("qa-contract", [{
        "name": "x", "customProperties": [{"property": "sql", "value": "select * from qb.y"}]}]))
    write_yaml(root / "contracts" / "b.odcs.yaml", contract("qb-contract", [{
        "name": "y", "customProperties": [{"property": "sql", "value": "select * from qa.x"}]}]))
    mesh = load_mesh(root)
    assert any("cycle" in p.message and "qa.x" in p.message and "qb.y" in p.message for p in problems_of(mesh))
    assert "qa" not in mesh.quanta and "qb" not in mesh.quanta and "shop" in mesh.quanta


def test_derived_sql_that_does_not_parse(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    c["schema"][0]["customProperties"][0]["value"] = "select from where ("
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    assert any("does not parse" in p.message and "line" in p.message for p in problems_of(load_mesh(root)))


def test_derived_column_not_produced(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    c["schema"][0]["properties"].append(prop("margin", "number", "double"))
    write_yaml(root / "contracts" / "report.odcs.yaml", c)
    mesh = Platform(root).mesh
    assert any("'margin'" in p.message and "does not produce it" in p.message for p in problems_of(mesh))
    assert "report" not in mesh.quanta and "shop" in mesh.quanta


def test_unsupported_server_type(tmp_path):
    root = shop_mesh(tmp_path)
    c = yaml.safe_load((root / "contracts" / "crm.odcs.yaml").read_text())
    c["servers"] = [{"server": "k", "type": "kafka", "host": "localhost:9092"}]
    write_yaml(root / "contracts" / "crm.odcs.yaml", c)
    assert any(p.path == "servers[0].type" and "'kafka' is not supported" in p.message
               for p in problems_of(load_mesh(root)))


# -- the official ODCS examples ----------------------------------------------------------------------

# What each official example does when it is served as a quantum, as it is: most describe tables with no
# server Quanta can read (none at all, or postgres/kafka), so they are rejected with that reason.
EXPECTED_AS_IS = {
    "all/full-example.odcs.yaml": "is unavailable",  # its PostgreSQL server (localhost:5432/pypl-edw) is not there
    "all/postgresql-adventureworks-contract.odcs.yaml": "has no data: the contract has no servers",
    "data-types/all-data-types.odcs.yaml": "has no data: the contract has no servers",
    "fundamentals/table-column-description.odcs.yaml": "has no data: the contract has no servers",
    "quality/column-accuracy.odcs.yaml": "has no data: the contract has no servers",
    "quality/column-completeness.odcs.yaml": "has no data: the contract has no servers",
    "quality/column-custom.odcs.yaml": "has no data: the contract has no servers",
    "quality/column-validity.odcs.yaml": "has no data: the contract has no servers",
    "roles/service-and-operational-roles.odcs.yaml": None,  # no schema: loads, with no datasets
    "schema/all-schema-types.odcs.yaml": "has no data: the contract has no servers",
    "schema/kafka-schema.odcs.yaml": "server type 'kafka' is not supported",
    "schema/kafka-schemaregistry.odcs.yaml": "server type 'kafka' is not supported",
    "schema/table-column.odcs.yaml": "has no data: the contract has no servers",
    "schema/table-columns-with-partition.odcs.yaml": "has no data: the contract has no servers",
    "server/azure-server.odcs.yaml": None,
    "server/kafka-server.odcs.yaml": "server type 'kafka' is not supported",
    "sla/database-table-sla.odcs.yaml": None,
    "stakeholders/basic-four-dpo.odcs.yaml": None,
}


def _example_mesh(root: Path, example: Path) -> dict:
    mesh_yaml(root, domains=("seller", "shop"))
    data = yaml.safe_load(example.read_text())
    (root / "contracts").mkdir(parents=True)
    shutil.copy(example, root / "contracts" / example.name)
    write_yaml(root / "products" / "p.odps.yaml", product("example", domain="shop", outputs=[str(data["id"])]))
    return data


@pytest.mark.skipif(not EXAMPLES.exists(), reason="../shared/standards is not beside the project")
def test_every_official_example_is_known():
    found = {str(p.relative_to(EXAMPLES)) for p in EXAMPLES.rglob("*.odcs.yaml")}
    assert found == set(EXPECTED_AS_IS)


@pytest.mark.skipif(not EXAMPLES.exists(), reason="../shared/standards is not beside the project")
@pytest.mark.parametrize("name", sorted(EXPECTED_AS_IS))
def test_official_example_as_is(tmp_path, name):
    _example_mesh(tmp_path, EXAMPLES / name)
    mesh = Platform(tmp_path).mesh
    schema_errors = [p for p in mesh.problems if "ODCS schema" in p.message]
    assert schema_errors == [], "every official example is valid ODCS 3.1"
    reason = EXPECTED_AS_IS[name]
    if reason is None:
        assert "example" in mesh.quanta, mesh.problems
    else:
        assert "example" not in mesh.quanta
        assert any(reason in p.message for p in mesh.problems), mesh.problems


@pytest.mark.skipif(not EXAMPLES.exists(), reason="../shared/standards is not beside the project")
@pytest.mark.parametrize("name", ["all/full-example.odcs.yaml", "data-types/all-data-types.odcs.yaml",
                                  "fundamentals/table-column-description.odcs.yaml",
                                  "quality/column-validity.odcs.yaml", "schema/table-column.odcs.yaml",
                                  "schema/table-columns-with-partition.odcs.yaml",
                                  "all/postgresql-adventureworks-contract.odcs.yaml"])
def test_official_example_with_data_loads_and_types_views(tmp_path, name):
    """Given a local server and data shaped like the contract, the example's tables become typed views."""
    data = _example_mesh(tmp_path, EXAMPLES / name)
    data["servers"] = [local_server("{model}.parquet", "parquet")]
    from federation.catalog.types import declared_type

    for obj in data["schema"]:
        cols = []
        for p in obj.get("properties") or []:
            dtype, _ = declared_type(p.get("logicalType"), p.get("physicalType"), p.get("items"))
            cols.append(f"CAST(NULL AS {dtype}) AS \"{p.get('physicalName') or p['name']}\"")
        sql_to_file(tmp_path / "data" / f"{obj.get('physicalName') or obj['name']}.parquet",
                    "select " + ", ".join(cols))
    write_yaml(tmp_path / "contracts" / Path(name).name, data)
    platform = Platform(tmp_path)
    assert problems_of(platform.mesh) == []
    conn_q = platform.query
    from federation.rewrite.context import Principal

    for obj in data["schema"]:
        result = conn_q(f'describe example."{obj["name"]}"', Principal("t")).fetchall()
        assert [r[0] for r in result] == [p["name"] for p in obj["properties"]]
        declared = {p["name"]: declared_type(p.get("logicalType"), p.get("physicalType"), p.get("items"))[0]
                    for p in obj["properties"]}
        typed = platform.mesh.dataset("example", obj["name"])
        for c in typed.columns:
            assert c.data_type.replace(" ", "").upper().startswith(
                declared[c.name].replace(" ", "").upper().replace("TEXT", "VARCHAR").split("(")[0])
