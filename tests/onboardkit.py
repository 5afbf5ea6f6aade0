"""A small mesh for onboarding tests: quantum ``lab`` whose dataset ``items`` lives in the warehouse
(so it has no data before its first onboarding), with quality rules of every kind, a PII column
masked for everyone but ``pii_reader``, an owner ``olivia``, an engineer ``dev`` and an analyst ``ana``."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from meshkit import contract, mesh_yaml, product, prop, write_yaml

GOVERNANCE = {
    "principals": [
        {"name": "olivia", "roles": ["analyst"]},  # owner of lab (from the product), not an engineer
        {"name": "dev", "roles": ["data_engineer"]},
        {"name": "ana", "roles": ["analyst"]},
        {"name": "pia", "roles": ["analyst", "pii_reader"]},
    ],
    "grants": [{"to": {"role": "analyst"}, "on": "*"}, {"to": {"role": "data_engineer"}, "on": "*"}],
    "policies": [{"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
                  "unless": {"roles": ["pii_reader"]}}],
}


def lab_mesh(root: Path, versions_kept: int | None = None, extra_settings: dict | None = None) -> Path:
    settings = {"threads": 2}
    if versions_kept is not None:
        settings["versions_kept"] = versions_kept
    settings.update(extra_settings or {})
    mesh_yaml(root, domains=("shop", "lab"), settings=settings)
    (root / "data").mkdir(parents=True, exist_ok=True)
    write_yaml(root / "governance.yaml", GOVERNANCE)
    write_yaml(root / "products" / "lab.odps.yaml", product("lab", domain="lab", owner="olivia"))
    write_yaml(root / "contracts" / "lab.odcs.yaml", contract("lab-contract", [{
        "name": "items", "description": "Lab items",
        "properties": [
            prop("id", "integer", "bigint", primaryKey=True, required=True),
            prop("name", quality=[{"type": "library", "metric": "missingValues", "mustBe": 0, "severity": "warning",
                                   "arguments": {"missingValues": [None, "", "n/a"]}}]),
            prop("code", logicalTypeOptions={"pattern": "^[A-Z]{3}$"}),
            prop("score", "number", "double", logicalTypeOptions={"minimum": 0, "maximum": 100}),
            prop("email", physicalName="mail", classification="pii", quality=[{
                "type": "library", "metric": "invalidValues", "arguments": {"pattern": "^[^@]+@[^@]+$"},
                "mustBe": 0, "severity": "error",
                "customProperties": [{"property": "onFailure", "value": "quarantine"}]}]),
            prop("kind", quality=[{"type": "library", "metric": "invalidValues",
                                   "arguments": {"validValues": ["a", "b", "c"]}, "mustBe": 0, "severity": "error"}]),
        ],
        "quality": [
            {"type": "library", "metric": "rowCount", "mustBeGreaterThan": 2, "severity": "error"},
            {"type": "sql", "name": "few_perfect_scores", "query": "select count(*) from {object} where score > 99",
             "mustBe": 0, "severity": "warning"},
        ]}], servers=[{"server": "warehouse", "type": "local", "format": "parquet",
                       "path": "../warehouse/lab/items/*/*.parquet"}],
        slaProperties=[{"property": "frequency", "value": 1, "unit": "d"},
                       {"property": "latency", "value": 2, "unit": "d", "element": "items.score"}]))
    return root


def items(n: int = 10, **overrides) -> pa.Table:
    """A good batch of ``n`` rows; ``overrides`` replace whole columns."""
    cols = {
        "id": pa.array(list(range(1, n + 1)), pa.int64()),
        "name": pa.array([f"item {i}" for i in range(1, n + 1)]),
        "code": pa.array(["ABC"] * n),
        "score": pa.array([float(i % 90) for i in range(1, n + 1)]),
        "mail": pa.array([f"user{i}@example.com" for i in range(1, n + 1)]),
        "kind": pa.array(["a", "b", "c"][i % 3] for i in range(n)),
    }
    for k, v in overrides.items():
        cols[k] = v if isinstance(v, pa.Array) else pa.array(v)
    return pa.table(cols)
