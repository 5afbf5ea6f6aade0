"""A contract for the tools a domain already uses: dbt sources YAML with tests (``export_dbt``), SQL DDL for
DuckDB and PostgreSQL (``export_sql``), JSON Schema (``export_jsonschema``). Metadata only: the sole values
written are those the contract itself declares (``validValues``)."""

from __future__ import annotations

import json
from typing import Any

import sqlglot
import sqlglot.expressions as exp

from .. import errors
from ..catalog import types as ctypes

_JSON_TYPES = {"string": "string", "integer": "integer", "number": "number", "boolean": "boolean",
               "object": "object", "array": "array"}
_JSON_OPTIONS = {"pattern", "minLength", "maxLength", "minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum",
                 "multipleOf", "minItems", "maxItems", "uniqueItems", "minProperties", "maxProperties"}
_JSON_FORMATS = {"date": "date", "timestamp": "date-time", "time": "time"}


def _text(value: Any) -> str | None:
    if isinstance(value, dict):
        return next((str(value[k]).strip() for k in ("purpose", "usage", "limitations") if value.get(k)), None)
    return str(value).strip() if value else None


def datasets(doc: dict, only: str | None = None) -> list[dict]:
    objs = [o for o in doc.get("schema") or [] if isinstance(o, dict)]
    if only:
        objs = [o for o in objs if o.get("name") == only]
        if not objs:
            raise errors.Error(f"the contract has no dataset {only!r}")
    if not objs:
        raise errors.Error("the contract declares no dataset (schema)")
    return objs


def columns(obj: dict) -> list[dict]:
    return [p for p in obj.get("properties") or [] if isinstance(p, dict) and p.get("name")]


def valid_values(prop: dict) -> list | None:
    """The values a column may hold: its ODCS v3.2 ``enum``, or an ``invalidValues`` rule's ``validValues``."""
    enum = prop.get("enum")
    if isinstance(enum, list) and enum:  # entries are objects with a value (RFC 0033)
        return [e.get("value") if isinstance(e, dict) else e for e in enum]
    for rule in prop.get("quality") or []:
        if isinstance(rule, dict) and rule.get("metric") == "invalidValues":
            values = (rule.get("arguments") or {}).get("validValues") or rule.get("validValues")
            if values and rule.get("mustBe", 0) == 0:
                return list(values)
    return None


def export_dbt(doc: dict, only: str | None = None, kind: str = "sources") -> str:
    """dbt YAML (version 2) with tests from required, unique and validValues: ``sources`` (one source per
    contract, a table per dataset) or ``models`` (a model per dataset, with its contract enforced)."""
    import yaml

    tables = []
    for obj in datasets(doc, only):
        cols = []
        for p in columns(obj):
            tests: list[Any] = []
            if p.get("required") or p.get("primaryKey"):
                tests.append("not_null")
            if p.get("unique") or p.get("primaryKey"):
                tests.append("unique")
            values = valid_values(p)
            if values:
                tests.append({"accepted_values": {"values": values}})
            col: dict[str, Any] = {"name": p.get("physicalName") or p["name"]}
            if _text(p.get("description")):
                col["description"] = _text(p.get("description"))
            col["data_type"] = _duck_type(p).lower()
            if p.get("classification") or p.get("tags"):
                col["meta"] = {k: p[k] for k in ("classification", "tags") if p.get(k)}
            if tests:
                col["data_tests"] = tests
            cols.append(col)
        table: dict[str, Any] = {"name": obj.get("physicalName") or obj["name"]}
        if _text(obj.get("description")):
            table["description"] = _text(obj.get("description"))
        table["columns"] = cols
        tables.append(table)
    if kind == "models":
        for t in tables:
            t["config"] = {"contract": {"enforced": True}, "meta": {"contract_id": doc.get("id"),
                                                                    "contract_version": doc.get("version")}}
            t["columns"] = [dict(c, constraints=[{"type": "not_null"}]) if "not_null" in c.get("data_tests", ())
                            else c for c in t["columns"]]
        return yaml.safe_dump({"version": 2, "models": tables}, sort_keys=False, allow_unicode=True)
    source: dict[str, Any] = {"name": str(doc.get("name") or doc.get("id") or "contract").replace(":", "_")}
    if _text(doc.get("description")):
        source["description"] = _text(doc.get("description"))
    server = next((s for s in doc.get("servers") or [] if isinstance(s, dict)), None)
    if server and server.get("schema"):
        source["schema"] = server["schema"]
    source["meta"] = {"contract_id": doc.get("id"), "contract_version": doc.get("version")}
    source["tables"] = tables
    return yaml.safe_dump({"version": 2, "sources": [source]}, sort_keys=False, allow_unicode=True)


def _duck_type(prop: dict) -> str:
    dtype, problem = ctypes.declared_type(prop.get("logicalType"), prop.get("physicalType"), prop.get("items"))
    if problem:
        raise errors.Error(f"column {prop.get('name')!r}: {problem}")
    return dtype


def _ident(name: str, dialect: str) -> str:
    return exp.to_identifier(name, quoted=True).sql(dialect=dialect)


def _str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def export_sql(doc: dict, dialect: str = "duckdb", only: str | None = None) -> str:
    """CREATE TABLE statements (NOT NULL, PRIMARY KEY, UNIQUE, CHECK for validValues) and COMMENT ON for
    descriptions, in DuckDB's or PostgreSQL's dialect."""
    if dialect not in ("duckdb", "postgres"):
        raise errors.Error(f"unknown dialect {dialect!r} (duckdb or postgres)")
    out = []
    for obj in datasets(doc, only):
        table = _ident(obj.get("physicalName") or obj["name"], dialect)
        lines, keys, comments = [], [], []
        for p in columns(obj):
            name = _ident(p.get("physicalName") or p["name"], dialect)
            dtype = sqlglot.parse_one(f"CAST(NULL AS {_duck_type(p)})", read="duckdb").to.sql(dialect=dialect)
            line = f"  {name} {dtype}"
            if p.get("required") or p.get("primaryKey"):
                line += " NOT NULL"
            if p.get("unique") and not p.get("primaryKey"):
                line += " UNIQUE"
            values = valid_values(p)
            if values and all(isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in values):
                line += f" CHECK ({name} IN ({', '.join(_str(v) if isinstance(v, str) else repr(v) for v in values)}))"
            lines.append(line)
            if p.get("primaryKey"):
                keys.append((p.get("primaryKeyPosition") or 0, name))
            if _text(p.get("description")):
                comments.append(f"COMMENT ON COLUMN {table}.{name} IS {_str(_text(p.get('description')))};")
        if keys:
            lines.append(f"  PRIMARY KEY ({', '.join(n for _, n in sorted(keys, key=lambda k: k[0]))})")
        out.append(f"CREATE TABLE {table} (\n" + ",\n".join(lines) + "\n);")
        if _text(obj.get("description")):
            out.append(f"COMMENT ON TABLE {table} IS {_str(_text(obj.get('description')))};")
        out.extend(comments)
    head = f"-- {doc.get('id')} version {doc.get('version')} ({dialect}), from quanta contract export"
    return head + "\n" + "\n".join(out) + "\n"


def _json_property(p: dict) -> dict:
    logical = p.get("logicalType") or "string"
    schema: dict[str, Any] = {}
    if logical in _JSON_FORMATS:
        schema = {"type": "string", "format": _JSON_FORMATS[logical]}
    else:
        schema = {"type": _JSON_TYPES.get(logical, "string")}
        if logical == "array" and isinstance(p.get("items"), dict):
            schema["items"] = _json_property(p["items"])
        if logical == "object" and p.get("properties"):
            schema.update(_json_object(p))
    options = p.get("logicalTypeOptions")
    if isinstance(options, dict):  # ODCS names these as JSON Schema does
        schema.update({k: v for k, v in options.items() if k in _JSON_OPTIONS})
    if not (p.get("required") or p.get("primaryKey")):
        schema["type"] = [schema["type"], "null"]
    if _text(p.get("description")):
        schema["description"] = _text(p.get("description"))
    values = valid_values(p)
    if values:
        schema["enum"] = values + ([] if p.get("required") else [None])
    return schema


def _json_object(obj: dict) -> dict:
    props = {(p.get("physicalName") or p["name"]): _json_property(p) for p in columns(obj)}
    required = [(p.get("physicalName") or p["name"]) for p in columns(obj) if p.get("required") or p.get("primaryKey")]
    out: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        out["required"] = required
    return out


def export_jsonschema(doc: dict, only: str | None = None) -> str:
    """A JSON Schema (2020-12) of one row: of the dataset when there is one (or ``only``), else ``$defs``
    with one schema per dataset."""
    objs = datasets(doc, only)
    base = {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": str(doc.get("name") or doc.get("id"))}
    if _text(doc.get("description")):
        base["description"] = _text(doc.get("description"))
    if len(objs) == 1:
        body = _json_object(objs[0])
        base["title"] = objs[0]["name"]
        base.update(body)
    else:
        base["$defs"] = {o["name"]: _json_object(o) for o in objs}
    return json.dumps(base, indent=2, ensure_ascii=False) + "\n"
