"""Build small real meshes on disk for tests: mesh.yaml, ODPS products, ODCS contracts and data files."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import yaml


def write_yaml(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def product(name: str, domain: str = "shop", outputs: list[str] | None = None, inputs: list[str] | None = None,
            owner: str = "olivia", **extra) -> dict:
    p = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": f"urn:test:product:{name}",
        "name": name,
        "domain": domain,
        "status": "active",
        "description": {"purpose": f"The {name} quantum"},
        "team": {"name": f"{name}-team", "members": [{"username": owner, "role": "owner"}]},
        "outputPorts": [{"name": c, "version": "1.0.0", "contractId": c, "type": "tables"}
                        for c in (outputs or [f"{name}-contract"])],
    }
    if inputs:
        p["inputPorts"] = [{"name": c, "version": "1.0.0", "contractId": c} for c in inputs]
    p.update(extra)
    return p


def prop(name: str, logical: str = "string", physical: str | None = None, **extra) -> dict:
    p = {"name": name, "logicalType": logical}
    if physical:
        p["physicalType"] = physical
    p.update(extra)
    return p


def contract(cid: str, schema: list[dict], servers: list[dict] | None = None, **extra) -> dict:
    c = {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": cid,
        "version": "1.0.0",
        "status": "active",
        "schema": schema,
    }
    if servers is not None:
        c["servers"] = servers
    c.update(extra)
    return c


def local_server(path: str, fmt: str = "parquet", name: str = "local") -> dict:
    return {"server": name, "type": "local", "path": path, "format": fmt}


def mesh_yaml(root: Path, name: str = "testmesh", domains: tuple[str, ...] = ("shop", "crm"), **extra) -> Path:
    data = {"name": name, "description": "a test mesh",
            "domains": [{"name": d, "description": f"the {d} domain"} for d in domains]}
    data.update(extra)
    return write_yaml(root / "mesh.yaml", data)


def sql_to_file(path: Path, select: str, fmt: str = "parquet") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    opts = {"parquet": "(FORMAT parquet)", "csv": "(FORMAT csv, HEADER true)", "json": "(FORMAT json)"}[fmt]
    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{path}' {opts}")
    con.close()
    return path


OPEN_GOVERNANCE = {"grants": [{"to": {"role": "public"}, "on": "*", "reason": "test mesh: everyone reads"}]}


def shop_mesh(root: Path, governance: dict | None = None) -> Path:
    """A two-quantum mesh (customers in CSV, orders in Parquet) and one derived quantum; everyone may read
    unless ``governance`` says otherwise."""
    mesh_yaml(root)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE if governance is None else governance)
    data = root / "data"
    sql_to_file(data / "crm" / "customers.csv",
                "select i as id, 'name' || i as full_name, 'user' || i || '@example.com' as email, "
                "case i % 3 when 0 then 'EU' when 1 then 'US' else 'CA' end as region "
                "from range(1, 31) t(i)", "csv")
    for part in range(2):
        sql_to_file(data / "shop" / "orders" / f"part-{part}.parquet",
                    f"select i as order_id, (i % 30) + 1 as cust_id, (i * 7 % 100)::decimal(10,2) as amount, "
                    f"date '2026-01-01' + (i % 60)::int as order_date "
                    f"from range({part * 50}, {part * 50 + 50}) t(i)")
    write_yaml(root / "products" / "crm.odps.yaml", product("crm", domain="crm"))
    write_yaml(root / "contracts" / "crm.odcs.yaml", contract("crm-contract", [{
        "name": "customers", "physicalName": "customers", "description": "Customers",
        "properties": [
            prop("id", "integer", "bigint", primaryKey=True, required=True, unique=True),
            prop("full_name", classification="pii", tags=["pii"]),
            prop("email", classification="pii", tags=["pii", "contact"]),
            prop("region", description="Residency region"),
        ]}], servers=[local_server("crm/{model}.csv", "csv")]))
    write_yaml(root / "products" / "shop.odps.yaml", product("shop"))
    write_yaml(root / "contracts" / "shop.odcs.yaml", contract("shop-contract", [{
        "name": "orders", "description": "Orders",
        "properties": [
            prop("order_id", "integer", "bigint", primaryKey=True),
            prop("customer_id", "integer", "bigint", physicalName="cust_id"),
            prop("amount", "number", "decimal(10,2)"),
            prop("order_date", "date", "date"),
        ]}], servers=[local_server("shop/orders/*.parquet")]))
    write_yaml(root / "products" / "report.odps.yaml",
               product("report", inputs=["crm-contract", "shop-contract"]))
    write_yaml(root / "contracts" / "report.odcs.yaml", contract("report-contract", [{
        "name": "sales_by_region",
        "customProperties": [{"property": "sql", "value":
                              "select c.region, count(*) as orders, sum(o.amount) as revenue "
                              "from shop.orders o join crm.customers c on o.customer_id = c.id group by c.region"}],
        "properties": [prop("region"), prop("orders", "integer", "bigint"), prop("revenue", "number",
                                                                                  "decimal(38,2)")],
    }]))
    return root
