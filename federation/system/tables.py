"""The dictionary as system tables, built from the loaded mesh.

``system.*`` uses the same column names wherever the same thing appears (``quantum``, ``dataset``,
``column``, ``contract_id``...), like Unity Catalog's system tables. ``information_schema`` shows
mesh datasets and system tables only, never the engine's internal objects.

Each builder returns ``(description, pyarrow.Table)``; ``dictionary_tables(mesh)`` returns them all.
Other layers (governance, observability) add their own tables through ``Platform.put_system_table``.
"""

from __future__ import annotations

import json
from typing import Callable
from urllib.parse import urlsplit, urlunsplit

import pyarrow as pa

from .. import settings as msettings
from ..catalog.model import Mesh
from ..result import sql_type

STR = pa.string()
LIST_STR = pa.list_(pa.string())


def _table(schema: list[tuple[str, pa.DataType]], rows: list[tuple]) -> pa.Table:
    cols = list(zip(*rows)) if rows else [[] for _ in schema]
    return pa.table({name: pa.array(list(col), type=t) for (name, t), col in zip(schema, cols)})


def domains(mesh: Mesh) -> pa.Table:
    rows = [(d.name, d.description, sum(1 for q in mesh.quanta.values() if (q.domain or "").lower() == key))
            for key, d in sorted(mesh.domains.items())]
    return _table([("domain", STR), ("description", STR), ("quanta", pa.int64())], rows)


def quanta(mesh: Mesh) -> pa.Table:
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        rows.append((q.name, q.domain, q.status, ", ".join(q.owners) or None, q.description, q.version, q.id,
                     len(q.datasets), "derived" if any(d.sql for d in q.datasets.values()) else "source",
                     list(q.tags), q.file, "available", q.type, q.api_version, list(q.synonyms), q.deprecated))
    for name, why in sorted(mesh.excluded.items()):
        rows.append((name, None, None, None, None, None, None, 0, None, [], None, "unavailable: " + why,
                     None, None, [], None))
    return _table([("quantum", STR), ("domain", STR), ("status", STR), ("owner", STR), ("description", STR),
                   ("version", STR), ("product_id", STR), ("datasets", pa.int64()), ("kind", STR),
                   ("tags", LIST_STR), ("file", STR), ("availability", STR),
                   # ODPS v1.1: the product's architectural type (sourceAligned, aggregate, consumerAligned...)
                   ("product_type", STR), ("api_version", STR), ("synonyms", LIST_STR), ("deprecated", pa.bool_())],
                  rows)


def datasets(mesh: Mesh) -> pa.Table:
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for ds in q.datasets.values():
            contract = mesh.contracts.get(ds.contract_id)
            src = ds.source
            rows.append((q.name, ds.name, ds.description, ds.kind, ds.contract_id,
                         contract.version if contract else None, contract.status if contract else None,
                         ds.business_name, list(ds.tags), len(ds.columns),
                         src.kind if src else "sql", ds.sql, q.domain, list(ds.synonyms), ds.deprecated))
    return _table([("quantum", STR), ("dataset", STR), ("description", STR), ("kind", STR), ("contract_id", STR),
                   ("contract_version", STR), ("contract_status", STR), ("business_name", STR), ("tags", LIST_STR),
                   ("columns", pa.int64()), ("format", STR), ("sql", STR), ("domain", STR),
                   ("synonyms", LIST_STR), ("deprecated", pa.bool_())], rows)


def columns(mesh: Mesh) -> pa.Table:
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for ds in q.datasets.values():
            for c in ds.columns:
                rows.append((q.name, ds.name, c.name, c.ordinal, c.data_type, c.logical_type, c.physical_type,
                             c.physical_name, c.description, c.business_name, c.classification, list(c.tags),
                             c.required, c.unique, c.primary_key, list(c.examples),
                             list(c.transform_source_objects), c.transform_logic,
                             list(c.enum_values) or None, list(c.synonyms), c.deprecated))
    return _table([("quantum", STR), ("dataset", STR), ("column", STR), ("ordinal", pa.int64()),
                   ("data_type", STR), ("logical_type", STR), ("physical_type", STR), ("physical_name", STR),
                   ("description", STR), ("business_name", STR), ("classification", STR), ("tags", LIST_STR),
                   ("required", pa.bool_()), ("unique", pa.bool_()), ("primary_key", pa.bool_()),
                   ("examples", LIST_STR), ("transform_source_objects", LIST_STR), ("transform_logic", STR),
                   # ODCS v3.2: the allowed values (NULL: any), synonyms, deprecated
                   ("enum_values", LIST_STR), ("synonyms", LIST_STR), ("deprecated", pa.bool_())], rows)


def contracts(mesh: Mesh) -> pa.Table:
    rows = [(c.id, c.version, c.status, c.api_version, c.quantum, list(c.datasets), c.file)
            for c in sorted(mesh.contracts.values(), key=lambda c: c.id)]
    return _table([("contract_id", STR), ("version", STR), ("status", STR), ("api_version", STR),
                   ("quantum", STR), ("datasets", LIST_STR), ("file", STR)], rows)


def ports(mesh: Mesh) -> pa.Table:
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for p in q.ports:
            contract = mesh.contracts.get(p.contract_id or "")
            rows.append((q.name, p.direction, p.name, p.type, p.contract_id, p.version, p.source_quantum,
                         list(contract.datasets) if contract and p.direction == "output" else [], p.description))
    return _table([("quantum", STR), ("direction", STR), ("port", STR), ("type", STR), ("contract_id", STR),
                   ("version", STR), ("source_quantum", STR), ("datasets", LIST_STR), ("description", STR)], rows)


def lineage(mesh: Mesh) -> pa.Table:
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for ds in q.datasets.values():
            for src_q, src_d in ds.reads:
                sq = mesh.quanta.get(src_q)
                sd = sq.datasets.get(src_d) if sq else None
                rows.append((sq.name if sq else src_q, sd.name if sd else src_d, q.name, ds.name))
    return _table([("source_quantum", STR), ("source_dataset", STR), ("target_quantum", STR),
                   ("target_dataset", STR)], rows)


def column_lineage(edges, mesh: Mesh) -> pa.Table:
    """Column-level lineage (``federation.lineage.columns.ColumnEdge``) of the datasets still loaded."""
    rows = [(e.target_quantum, e.target_dataset, e.target_column, e.source_quantum, e.source_dataset, e.source_column,
             e.transformation, e.logic) for e in edges
            if mesh.dataset(e.target_quantum, e.target_dataset) and mesh.dataset(e.source_quantum, e.source_dataset)]
    return _table([("target_quantum", STR), ("target_dataset", STR), ("target_column", STR), ("source_quantum", STR),
                   ("source_dataset", STR), ("source_column", STR), ("transformation", STR), ("transform_logic", STR)],
                  rows)


def problems(mesh: Mesh) -> pa.Table:
    return problems_table(mesh.problems)


def problems_table(problems) -> pa.Table:
    rows = [(p.severity, p.quantum, p.file, p.path, p.line, p.message) for p in problems]
    return _table([("severity", STR), ("quantum", STR), ("file", STR), ("path", STR), ("line", pa.int64()),
                   ("message", STR)], rows)


def settings(mesh: Mesh) -> pa.Table:
    rows = [(s.name, _setting(mesh.settings[s.name]), _setting(s.default), s.name in mesh.settings.explicit,
             s.type_name, s.help) for s in msettings.SETTINGS]
    return _table([("setting", STR), ("value", STR), ("default", STR), ("is_set", pa.bool_()), ("type", STR),
                   ("description", STR)], rows)


def _setting(value) -> str | None:
    """A setting's value as text; a URL without its user, password and query (they may hold a key)."""
    if isinstance(value, dict):
        shown = dict(value)
        if shown.get("url"):
            u = urlsplit(str(shown["url"]))
            host = u.netloc.rpartition("@")[2]  # without user and password
            shown["url"] = urlunsplit((u.scheme, host, u.path, "", ""))
        return json.dumps(shown, sort_keys=True)
    return None if value is None else (f"{value:g}" if isinstance(value, float) else str(value))


DICTIONARY: dict[str, tuple[str, Callable[[Mesh], pa.Table]]] = {
    "domains": ("Business domains of the mesh", domains),
    "quanta": ("Data quanta (data products): domain, status, owner, type", quanta),
    "datasets": ("Datasets of every quantum: source or derived, contract", datasets),
    "columns": ("Columns of every dataset: types, descriptions, classification, tags, keys", columns),
    "contracts": ("ODCS data contracts: version, status, the datasets they describe", contracts),
    "ports": ("Input and output ports of the data products and the contracts they reference", ports),
    "lineage": ("Dataset-level lineage of derived datasets", lineage),
    "problems": ("Validation problems found when the mesh loaded", problems),
    "settings": ("The mesh's settings (mesh.yaml): value, default, type and description of each", settings),
}


def dictionary_tables(mesh: Mesh) -> dict[str, tuple[str, pa.Table]]:
    return {name: (desc, build(mesh)) for name, (desc, build) in DICTIONARY.items()}


def information_schema(mesh: Mesh, system: dict[str, tuple[str, pa.Table]]) -> dict[str, tuple[str, pa.Table]]:
    """``information_schema.schemata/tables/columns`` over mesh datasets and system tables only."""
    schemata = [("quanta", q.name, "mesh") for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower())]
    schemata += [("quanta", "system", "system"), ("quanta", "information_schema", "system")]
    tables, cols = [], []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for ds in q.datasets.values():
            tables.append(("quanta", q.name, ds.name, "VIEW", ds.description))
            for c in ds.columns:
                cols.append(("quanta", q.name, ds.name, c.name, c.ordinal, c.data_type,
                             "NO" if c.required else "YES", c.description))
    for name, (desc, table) in sorted(system.items()):
        tables.append(("quanta", "system", name, "SYSTEM TABLE", desc))
        for i, field in enumerate(table.schema, start=1):
            cols.append(("quanta", "system", name, field.name, i, sql_type(field.type), "YES", None))
    own = {
        "schemata": [("catalog_name", STR), ("schema_name", STR), ("schema_kind", STR)],
        "tables": [("table_catalog", STR), ("table_schema", STR), ("table_name", STR), ("table_type", STR),
                   ("table_comment", STR)],
        "columns": [("table_catalog", STR), ("table_schema", STR), ("table_name", STR), ("column_name", STR),
                    ("ordinal_position", pa.int64()), ("data_type", STR), ("is_nullable", STR),
                    ("column_comment", STR)],
    }
    for name, schema in own.items():  # information_schema describes itself too
        tables.append(("quanta", "information_schema", name, "SYSTEM TABLE", None))
        for i, (col, t) in enumerate(schema, start=1):
            cols.append(("quanta", "information_schema", name, col, i, sql_type(t), "YES", None))
    return {
        "schemata": ("Schemas: one per quantum, plus system and information_schema", _table(own["schemata"], schemata)),
        "tables": ("Mesh datasets and system tables", _table(own["tables"], tables)),
        "columns": ("Columns of mesh datasets and system tables", _table(own["columns"], cols)),
    }
