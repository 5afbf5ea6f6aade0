"""Contract.model: the ODCS pydantic models as a typed view of a loaded contract. Parsed on first use only:
a mesh load and a query never import pydantic, and the loader's pickled mesh never carries the models."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

from meshkit import contract, prop, shop_mesh, write_yaml

from federation.catalog.model import Contract
from federation.platform import Platform

SLA = [{"property": "retention", "value": 30, "unit": "d", "element": "orders.order_date"},
       {"property": "latency", "value": 4, "unit": "h", "description": "Orders within four hours"}]


def mesh(root: Path) -> Path:
    root = shop_mesh(root)
    write_yaml(root / "contracts" / "shop.odcs.yaml", contract("shop-contract", [{
        "name": "orders", "description": "Orders",
        "properties": [prop("order_id", "integer", "bigint", primaryKey=True),
                       prop("customer_id", "integer", "bigint", physicalName="cust_id"),
                       prop("amount", "number", "decimal(10,2)"), prop("order_date", "date", "date")]}],
        servers=[{"server": "local", "type": "local", "format": "parquet", "path": "shop/orders/*.parquet"},
                 {"server": "erp", "type": "postgres", "host": "erp.example", "port": 5432, "database": "shop",
                  "schema": "public"}],
        slaProperties=SLA, roles=[{"role": "analyst", "access": "read"}]))
    return root


def test_the_typed_view_of_a_contract(tmp_path):
    p = Platform(mesh(tmp_path / "m"))
    assert not p.mesh.errors
    c = p.mesh.contracts["shop-contract"]
    model = c.model
    assert model is c.model  # parsed once
    assert [(s.property, s.value, s.unit) for s in model.slaProperties] == [("retention", 30, "d"), ("latency", 4, "h")]
    erp = next(s for s in model.servers if s.server == "erp")
    assert (erp.type, erp.host, erp.port, erp.database) == ("postgres", "erp.example", 5432, "shop")
    assert model.schema_[0].properties[1].physicalName == "cust_id" and model.roles[0].role == "analyst"
    # what the loader accepts but the models refuse gives no view, never an exception
    assert Contract("x", None, None, None, "x.yaml", raw={"apiVersion": "v3.1.0", "unknown": 1}).model is None
    # the loader's mesh cache is pickled without the parsed models
    copy = pickle.loads(pickle.dumps(c))
    assert "model" not in copy.__dict__ and copy.raw == c.raw and copy.model == model


def test_a_mesh_load_and_a_query_import_no_pydantic(tmp_path):
    root = mesh(tmp_path / "m")
    script = f"""
import json, sys
from federation.platform import Platform
p = Platform({str(root)!r})
rows = p.query("select count(*) from shop.orders", p.principal("ana")).fetchall()
before = "pydantic" in sys.modules
retention = p.mesh.contracts["shop-contract"].model.slaProperties[0].value
print(json.dumps([rows[0][0], before, retention, "pydantic" in sys.modules]))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    count, before, retention, after = json.loads(out.stdout.strip().splitlines()[-1])
    # the contract's 30-day retention filters the orders (their dates are in 2026-01..03): the SLA was read
    assert 0 <= count < 100
    assert before is False and retention == 30 and after is True
