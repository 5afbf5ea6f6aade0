"""Views over file sources (engine/registry.py): created straight from the contract, with the contract's names,
order and types, whatever the data's spelling and types (compatible ones are cast)."""

from __future__ import annotations

import pytest
from meshkit import (
    OPEN_GOVERNANCE,
    contract,
    local_server,
    mesh_yaml,
    product,
    prop,
    sql_to_file,
    write_yaml,
)

from federation.platform import Platform


def one_dataset_mesh(root, fmt: str, select: str, props: list[dict], physical: str = "items"):
    mesh_yaml(root)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE)
    sql_to_file(root / "data" / f"items.{fmt}", select, fmt)
    write_yaml(root / "products" / "lab.odps.yaml", product("lab"))
    write_yaml(root / "contracts" / "lab.odcs.yaml", contract(
        "lab-contract", [{"name": "items", "physicalName": physical, "properties": props}],
        [local_server("{model}." + fmt, fmt)]))
    return root


@pytest.mark.parametrize("fmt", ["parquet", "csv", "json"])
def test_view_has_the_contracts_names_order_and_types(tmp_path, fmt):
    root = one_dataset_mesh(
        tmp_path, fmt,
        "SELECT i::INTEGER AS \"ID\", 'n' || i AS label, (i * 1.5)::DOUBLE AS price FROM range(1, 4) t(i)",
        [prop("price", "number", "double"), prop("id", "integer", "bigint"),
         prop("name", "string", "varchar", physicalName="label")])
    p = Platform(root)
    assert not [x for x in p.mesh.problems if x.severity == "error"], p.mesh.problems
    assert [(c.name, c.type) for c in p.state.backend.describe("SELECT * FROM lab.items")] == [
        ("price", "DOUBLE"), ("id", "BIGINT"), ("name", "VARCHAR")]
    rows = p.query("select id, name, price from lab.items order by id", p.principal("olivia")).fetchall()
    assert rows == [(1, "n1", 1.5), (2, "n2", 3.0), (3, "n3", 4.5)]


def test_a_missing_column_and_an_incompatible_type_are_reported_as_before(tmp_path):
    root = one_dataset_mesh(tmp_path / "missing", "parquet", "SELECT 1 AS id",
                            [prop("id", "integer", "bigint"), prop("gone", "string", "varchar")])
    p = Platform(root)
    assert "lab" in p.mesh.excluded
    assert any("column 'gone' of lab.items is not in the data" in x.message and "the data has: id" in x.message
               for x in p.mesh.problems), p.mesh.problems
    root = one_dataset_mesh(tmp_path / "types", "parquet", "SELECT DATE '2024-01-01' AS d",
                            [prop("d", "boolean", "boolean")])
    p = Platform(root)
    assert any("column 'd' of lab.items is declared BOOLEAN but the data" in x.message and "DATE" in x.message
               for x in p.mesh.problems), p.mesh.problems


def view_sql(p, quantum, name):
    return p.state.backend.db.execute("SELECT sql FROM duckdb_views() WHERE schema_name = ? AND view_name = ?",
                                      [quantum, name]).fetchone()[0]


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_text_files_are_read_with_the_columns_detected_at_load(tmp_path, fmt):
    """A CSV or JSON view does not sniff its file again on every bind (each query): it reads it with the
    columns (and CSV dialect) found when the mesh loaded, and the rows are those an auto-detecting read gives."""
    root = one_dataset_mesh(
        tmp_path, fmt,
        "SELECT i AS id, strftime(DATE '2024-01-01' + i::INTEGER, '%d/%m/%Y') AS day, "
        "'a;b \"q\" ' || i AS note, i * 0.5 AS half, i % 2 = 0 AS even FROM range(1, 50) t(i)",
        [prop("id", "integer", "bigint"), prop("day", "date", "date") if fmt == "csv" else prop("day"), prop("note"),
         prop("half", "number", "double"), prop("even", "boolean", "boolean")])
    p = Platform(root)
    assert not [x for x in p.mesh.problems if x.severity == "error"], p.mesh.problems
    sql = view_sql(p, "lab", "items")
    assert "columns" in sql and "auto_detect = true" not in sql
    path = root / "data" / f"items.{fmt}"
    auto = (f"read_csv('{path}', header = true, auto_detect = true)" if fmt == "csv"
            else f"read_json('{path}', format = 'auto')")
    import duckdb
    expected = duckdb.sql(f"SELECT id, day, note, half, even FROM {auto} ORDER BY id").fetchall()
    got = p.query("SELECT id, day, note, half, even FROM lab.items ORDER BY id", p.principal("olivia")).fetchall()
    assert got == expected and len(got) == 49


def test_a_glob_of_csv_files_keeps_reading_by_name(tmp_path):
    root = one_dataset_mesh(tmp_path, "csv", "SELECT 1 AS id, 'x' AS label", [prop("id", "integer", "bigint")])
    contract_path = root / "contracts" / "lab.odcs.yaml"
    contract_path.write_text(contract_path.read_text().replace("'{model}.csv'", "'*.csv'").replace(
        "{model}.csv", "*.csv"))
    sql_to_file(root / "data" / "more.csv", "SELECT 2 AS id", "csv")
    p = Platform(root)
    assert "union_by_name" in view_sql(p, "lab", "items")
    assert p.query("SELECT id FROM lab.items ORDER BY id", p.principal("olivia")).fetchall() == [(1,), (2,)]


def backdate(root, seconds=60):
    """Data files written a while ago (a view cache is kept only for files not modified in the last seconds)."""
    import os
    import time

    for path in (root / "data").rglob("*"):
        if path.is_file():
            past = time.time() - seconds
            os.utime(path, (past, past))


def engine_views(p):
    return {r[0] for r in p.state.backend.db.execute(
        "SELECT schema_name || '.' || view_name FROM duckdb_views() WHERE NOT internal").fetchall()}


def test_a_warm_load_creates_file_views_when_first_used(tmp_path):
    from meshkit import shop_mesh

    root = shop_mesh(tmp_path)
    backdate(root)
    first = Platform(root)  # creates and checks every view, and keeps their SQL
    assert "crm.customers" in engine_views(first) and "shop.orders" in engine_views(first)
    expected = first.query("select * from crm.customers order by id", first.principal("olivia")).fetchall()
    warm = Platform(root)
    # the derived report reads both when it is typed at load, so both exist; a query names them anyway
    assert warm.query("select * from crm.customers order by id", warm.principal("olivia")).fetchall() == expected
    assert warm.query("select count(*) from shop.orders", warm.principal("olivia")).fetchall() == [(100,)]
    assert warm.query("select * from report.sales_by_region order by region", warm.principal("olivia")).fetchall() \
        == first.query("select * from report.sales_by_region order by region", first.principal("olivia")).fetchall()


def test_a_warm_load_does_not_bind_views_nobody_uses(tmp_path):
    root = one_dataset_mesh(tmp_path, "parquet", "SELECT i AS id FROM range(5) t(i)", [prop("id", "integer", "bigint")])
    backdate(root)
    Platform(root)
    warm = Platform(root)
    assert "lab.items" not in engine_views(warm)  # known to bind: created when first named
    assert warm.query("select count(*) from lab.items", warm.principal("olivia")).fetchall() == [(5,)]
    assert "lab.items" in engine_views(warm)


def test_changed_data_is_checked_again(tmp_path):
    root = one_dataset_mesh(tmp_path, "parquet", "SELECT i AS id FROM range(5) t(i)", [prop("id", "integer", "bigint")])
    backdate(root)
    Platform(root)
    sql_to_file(root / "data" / "items.parquet", "SELECT DATE '2024-01-01' AS id")  # same name, other type
    p = Platform(root)
    assert "lab" in p.mesh.excluded
    assert any("declared BIGINT but the data" in x.message for x in p.mesh.problems), p.mesh.problems


def test_recent_files_are_not_trusted_to_keep_their_mtime(tmp_path):
    root = one_dataset_mesh(tmp_path, "parquet", "SELECT i AS id FROM range(5) t(i)", [prop("id", "integer", "bigint")])
    Platform(root)  # the file was just written: nothing kept
    assert not list((root / ".quanta" / "cache").glob("views-*"))
    warm = Platform(root)
    assert "lab.items" in engine_views(warm)
