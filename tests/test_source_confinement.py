"""A quantum's local sources read its own folders only (engine/source_files.py): a contract written by a domain
team cannot serve another domain's files (nor the mesh's state) under its own contract and policies."""

from __future__ import annotations

import os

import pytest
import yaml
from meshkit import (
    contract,
    local_server,
    product,
    prop,
    shop_mesh,
    sql_to_file,
    write_yaml,
)

from federation import errors
from federation.platform import Platform

CUSTOMER_COLUMNS = [prop("id", "integer", "bigint"), prop("email"), prop("region")]


def _evil(root, server: dict, name: str = "customers", columns=None) -> None:
    write_yaml(root / "products" / "evil.odps.yaml", product("evil", domain="shop", owner="eve"))
    write_yaml(root / "contracts" / "evil.odcs.yaml", contract("evil-contract", [
        {"name": "loot", "physicalName": name, "description": "x", "properties": columns or CUSTOMER_COLUMNS}],
        servers=[server]))


def _refused(root, reason: str) -> str:
    p = Platform(root)
    [problem] = [x for x in p.mesh.problems if x.quantum == "evil"]
    assert reason in problem.message and problem.path == "servers[0]", problem
    assert "evil" not in p.mesh.quanta and {"crm", "shop"} <= set(p.mesh.quanta), p.mesh.problems
    with pytest.raises(errors.Error):
        p.query("select * from evil.loot", p.principal("x")).fetchall()
    return problem.message


@pytest.mark.parametrize("path", ["*/customers.csv", "**/*.csv", "c*/{model}.csv", "../data/crm/../crm/customers.csv",
                                  "evil/*/../../crm/customers.csv"])
def test_a_glob_or_a_detour_into_another_quantums_folder_is_refused(tmp_path, path):
    root = shop_mesh(tmp_path / "mesh")
    _evil(root, local_server(path, "csv"))
    _refused(root, "the folder of quantum 'crm'")


def test_a_glob_that_can_reach_another_quantums_folder_later_is_refused(tmp_path):
    """No file of crm matches now (its folder holds no .parquet): the pattern could, once crm writes one."""
    root = shop_mesh(tmp_path / "mesh")
    sql_to_file(root / "data" / "evil" / "x.parquet", "select 1 as id, 'a' as email, 'EU' as region")
    _evil(root, local_server("*/x.parquet"))
    _refused(root, "the folder of quantum 'crm'")


def test_a_symbolic_link_in_the_own_folder_is_followed(tmp_path):
    root = shop_mesh(tmp_path / "mesh")
    (root / "data" / "evil").mkdir()
    os.symlink(root / "data" / "crm" / "customers.csv", root / "data" / "evil" / "customers.csv")
    _evil(root, local_server("evil/{model}.csv", "csv"))
    _refused(root, "the folder of quantum 'crm'")


def test_the_state_folder_is_not_a_source(tmp_path):
    root = shop_mesh(tmp_path / "mesh")
    Platform(root)  # creates .quanta/state.db (tokens, access requests, audit)
    assert (root / ".quanta" / "state.db").exists()
    _evil(root, local_server("../.quanta/state.db", "sqlite"), name="tokens",
          columns=[prop("token_hash")])
    message = _refused(root, "the mesh's state folder or secrets file")
    assert "a quantum's sources read its own data only" in message


def test_a_table_folder_that_is_another_quantums_folder_is_refused(tmp_path):
    root = shop_mesh(tmp_path / "mesh")
    _evil(root, local_server("crm", "delta"))
    _refused(root, "the folder of quantum 'crm'")


def test_a_file_outside_every_quantums_folder_is_served_by_one_quantum(tmp_path):
    """A file at the data root (no quantum's folder) may be read by one quantum; when two read it, which one
    owns it cannot be proved: both are refused and told to move it into the owner's folder."""
    root = shop_mesh(tmp_path / "mesh")
    sql_to_file(root / "data" / "shared.parquet", "select 1 as id, 'a@b.c' as email, 'EU' as region")
    _evil(root, local_server("shared.parquet"))
    p = Platform(root)
    assert p.query("select id from evil.loot", p.principal("x")).fetchall() == [(1,)]
    write_yaml(root / "products" / "twin.odps.yaml", product("twin", domain="shop"))
    write_yaml(root / "contracts" / "twin.odcs.yaml", contract("twin-contract", [
        {"name": "copy", "description": "x", "properties": CUSTOMER_COLUMNS}], servers=[local_server("shared.parquet")]))
    p = Platform(root)
    problems = {x.quantum: x for x in p.mesh.problems}
    assert {"evil", "twin"} <= set(problems) and not {"evil", "twin"} & set(p.mesh.quanta)
    assert "quanta evil, twin all read" in problems["twin"].message and problems["twin"].path == "servers[0]"


def test_the_own_folders_stay_readable(tmp_path):
    """evil's own data folder (a glob of it included) and its warehouse folder are served."""
    root = shop_mesh(tmp_path / "mesh")
    sql_to_file(root / "data" / "evil" / "part-1.parquet", "select 7 as id, 'a@b.c' as email, 'EU' as region")
    _evil(root, local_server("evil/*.parquet"))
    p = Platform(root)
    assert p.query("select id from evil.loot", p.principal("x")).fetchall() == [(7,)]
    assert not [x for x in p.mesh.problems if x.quantum == "evil"]
    data = yaml.safe_load((root / "contracts" / "evil.odcs.yaml").read_text())
    data["servers"] = [local_server("../warehouse/evil/loot/*/*.parquet")]
    write_yaml(root / "contracts" / "evil.odcs.yaml", data)
    p = Platform(root)
    assert p.query("select count(*) from evil.loot", p.principal("x")).fetchall() == [(0,)]  # no version yet
    assert not [x for x in p.mesh.problems if x.quantum == "evil"]


def test_a_view_of_a_duckdb_file_is_not_served(tmp_path):
    """A DuckDB file in evil's own folder whose 'table' is a view reading crm's file: the path rule cannot see
    what a view reads, so a DuckDB file serves its tables only."""
    import duckdb

    root = shop_mesh(tmp_path / "mesh")
    (root / "data" / "evil").mkdir()
    con = duckdb.connect(str(root / "data" / "evil" / "evil.duckdb"))
    con.execute(f"CREATE VIEW customers AS SELECT * FROM read_csv('{root}/data/crm/customers.csv')")
    con.execute("CREATE TABLE own AS SELECT 1 AS id, 'a@b.c' AS email, 'EU' AS region")
    con.close()
    _evil(root, {"server": "s", "type": "duckdb", "database": "evil/evil.duckdb"})
    _refused(root, "is a view: a view of a DuckDB file can read any file")
    _evil(root, {"server": "s", "type": "duckdb", "database": "evil/evil.duckdb"}, name="own")
    p = Platform(root)
    assert p.query("select email from evil.loot", p.principal("x")).fetchall() == [("a@b.c",)]


def test_a_delta_log_naming_another_quantums_files_is_refused(tmp_path):
    """A Delta table in evil's own folder whose log adds shop's order file ('../../shop/orders/part-0.parquet'):
    DuckDB follows the log; so does the folder rule."""
    import json

    import pyarrow.parquet as pq
    from deltalake import write_deltalake

    root = shop_mesh(tmp_path / "mesh")
    target = root / "data" / "shop" / "orders" / "part-0.parquet"
    table = root / "data" / "evil" / "t"
    write_deltalake(str(table), pq.read_table(target))
    columns = [prop("order_id", "integer", "bigint"), prop("amount", "number", "decimal(10,2)")]
    _evil(root, local_server("evil/t", "delta"), columns=columns)
    p = Platform(root)  # the table's own files: served
    assert p.query("select count(*) from evil.loot", p.principal("x")).fetchall() == [(50,)]
    [log] = list((table / "_delta_log").glob("*.json"))
    actions = [json.loads(line) for line in log.read_text().splitlines()]
    for action in actions:
        if "add" in action:
            action["add"]["path"] = "../../shop/orders/part-0.parquet"
    log.write_text("\n".join(json.dumps(a) for a in actions) + "\n")
    _refused(root, "the folder of quantum 'shop'")


def test_an_iceberg_manifest_naming_another_quantums_files_is_refused(tmp_path):
    """An Iceberg table's manifests name its data files by absolute path: a table in evil's folder whose
    data files are in shop's folder is refused; one in its own folder is served."""
    import pyarrow.parquet as pq
    from pyiceberg.catalog.sql import SqlCatalog

    root = shop_mesh(tmp_path / "mesh")
    rows = pq.read_table(root / "data" / "shop" / "orders" / "part-0.parquet")
    columns = [prop("order_id", "integer", "bigint"), prop("amount", "number", "decimal(10,2)")]

    def table(warehouse: str, namespace: str):
        catalog = SqlCatalog(namespace, uri=f"sqlite:///{tmp_path / (namespace + '.db')}",
                             warehouse=f"file://{root / 'data' / warehouse}")
        catalog.create_namespace(namespace)
        t = catalog.create_table(f"{namespace}.t", schema=rows.schema)
        t.append(rows)
        return t.metadata_location.removeprefix("file://")

    own = table("evil", "lake")
    _evil(root, local_server(own, "iceberg"), columns=columns)
    p = Platform(root)
    assert p.query("select count(*) from evil.loot", p.principal("x")).fetchall() == [(50,)]
    # metadata moved into evil's folder, its data files left in shop's
    import shutil

    elsewhere = table("shop", "lake2")
    moved = root / "data" / "evil" / "moved" / "metadata"
    shutil.copytree(os.path.dirname(elsewhere), moved)
    _evil(root, local_server(str(moved / os.path.basename(elsewhere)), "iceberg"), columns=columns)
    _refused(root, "the folder of quantum 'shop'")


def test_a_link_then_dot_dot_is_resolved_as_the_system_does(tmp_path):
    """'evil/l/../orders/part-0.parquet' with l -> shop's orders folder: read lexically it is in evil's folder;
    the system reads shop's file (the folder above the link's target)."""
    root = shop_mesh(tmp_path / "mesh")
    (root / "data" / "evil").mkdir()
    os.symlink(root / "data" / "shop" / "orders", root / "data" / "evil" / "l")
    columns = [prop("order_id", "integer", "bigint")]
    _evil(root, local_server("evil/l/../orders/part-0.parquet"), columns=columns)
    _refused(root, "the folder of quantum 'shop'")
