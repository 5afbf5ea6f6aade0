"""Contract tooling: start an ODCS 3.1 contract from existing data (``init_contract``), hand a contract to
the tools a domain already uses (``export_dbt``, ``export_sql``, ``export_jsonschema``) and report best
practice gaps (``lint_contract``).

``init_contract`` profiles the data in a private, locked-down DuckDB (``engine.private.scratch``; reads
only below the source's folder): types, ``required`` (no NULL), unique and primary-key candidates, enums
for low-cardinality strings (as an ODCS v3.2 ``enum``), classification
suggestions for columns that look personal (by name, and by a sample of values that stays in memory).
Every inferred fact is listed in the property's ``customProperties`` ``suggestions`` for review. No data
value goes into the contract except the enum values of low-cardinality columns that do not look personal.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

from .. import errors

FILE_FORMATS = {".parquet": "parquet", ".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json",
                ".ndjson": "json"}
DB_FORMATS = {".duckdb": "duckdb", ".ddb": "duckdb", ".db": "duckdb", ".sqlite": "sqlite", ".sqlite3": "sqlite"}
ENUM_MAX = 12          # at most this many distinct strings make an enum
ENUM_MAX_LENGTH = 64   # ... each at most this long
SAMPLE = 200           # values looked at (in memory only) to recognise personal data

# column names that look personal -> what they look like
PERSONAL_NAMES = [
    (re.compile(r"e_?mail"), "an e-mail address"),
    (re.compile(r"phone|mobile|^tel(ephone)?$|_tel$|fax"), "a phone number"),
    (re.compile(r"(^|_)(first|last|given|family|middle|full|maiden|sur|nick|user)_?name$|^name$|^surname$"
                r"|(customer|person|contact|employee|owner)_name"), "a person's name"),
    (re.compile(r"address|street|zip|postcode|postal|(^|_)city$"), "an address"),
    (re.compile(r"(^|_)ip(_?addr(ess)?|v4|v6)?$|ip_address"), "an IP address"),
    (re.compile(r"birth|(^|_)dob$|(^|_)ssn$|passport|national_id|tax_id|iban|credit_card|card_number"),
     "an identity or account number"),
]
_STREET = (r"street|st|avenue|ave|road|rd|lane|ln|boulevard|blvd|drive|dr|way|place|pl|court|ct|square|sq"
           r"|straat|strasse|straße|weg|laan|rue|via|calle|avenida|chemin")
_VALUE_PATTERNS = [
    (re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"), "an e-mail address"),
    (re.compile(r"^\+?[\d\s()./-]{7,20}$"), "a phone number"),
    (re.compile(r"^(\d{1,3}\.){3}\d{1,3}$|^(?=.*(::|(:.*){3}))([0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}$"),
     "an IP address"),
    (re.compile(rf"^(?=.*\d)(?=.*(\b({_STREET})\b|\w(straat|strasse|straße|weg|laan|gasse|vej|gatan)\b))"
                rf"[\w .,'/-]{{6,120}}$", re.IGNORECASE), "a postal address"),
]
_DATE_LIKE = re.compile(r"^\d{4}-\d{2}-\d{2}|^\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}$")

_LOGICAL = [("DECIMAL", "number"), ("DOUBLE", "number"), ("FLOAT", "number"), ("REAL", "number"),
            ("HUGEINT", "integer"), ("INT", "integer"), ("BOOL", "boolean"), ("TIMESTAMP", "timestamp"),
            ("DATE", "date"), ("TIME", "time"), ("STRUCT", "object"), ("MAP", "object"), ("JSON", "object")]


def personal_by_name(name: str) -> str | None:
    n = re.sub(r"\W+", "_", name.strip().lower())
    if n.endswith(("_id", "_count")) or n == "id":
        return None
    for pattern, what in PERSONAL_NAMES:
        if pattern.search(n):
            return what
    return None


def personal_by_values(values: list[str]) -> str | None:
    values = [v.strip() for v in values if isinstance(v, str) and v.strip()]
    if len(values) < 3:
        return None
    for pattern, what in _VALUE_PATTERNS:
        hits = sum(1 for v in values if pattern.match(v))
        if what == "a phone number":  # digits alone are numbers, and dates are dates, not phones
            hits = sum(1 for v in values if pattern.match(v) and re.search(r"[\s+().-]", v)
                       and sum(ch.isdigit() for ch in v) >= 8 and not _DATE_LIKE.match(v))
        if hits >= 0.8 * len(values):
            return what
    return None


def logical_type(duck_type: str) -> str:
    t = duck_type.upper()
    if t.endswith("[]") or t.startswith("LIST") or "[" in t:
        return "array"
    for prefix, logical in _LOGICAL:
        if prefix in t.split("(")[0]:
            return logical
    return "string"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _load_extension(con, name: str) -> None:
    import importlib

    try:
        module = importlib.import_module("duckdb_extension_" + name)
    except ImportError:
        raise errors.Error(f"the DuckDB extension {name} is not installed (pip install "
                           f"duckdb-extension-{name.replace('_', '-')}=={duckdb.__version__})") from None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}" / f"{name}.duckdb_extension"
    con.execute(f"LOAD {_lit(str(path))}")


def _open_source(source: str, table: str | None):
    """A private DuckDB with a view ``src`` over the source, the server entry for the contract, and the
    dataset's default name."""
    from ..engine.private import scratch

    con = scratch()
    if source.startswith(("postgresql://", "postgres://")):
        if not table:
            raise errors.Error("a PostgreSQL source needs --table ([schema.]table)")
        from urllib.parse import urlsplit

        u = urlsplit(source)  # host, port and database only: credentials never go in a contract nor a message
        where = f"postgresql://{u.hostname or 'localhost'}:{u.port or 5432}{u.path}"
        _load_extension(con, "postgres_scanner")
        schema, _, name = table.rpartition(".")
        try:
            con.execute(f"ATTACH {_lit(source)} AS pg (TYPE postgres, READ_ONLY)")
            con.execute(f"CREATE VIEW src AS SELECT * FROM pg.{_quote(schema or 'public')}.{_quote(name)}")
        except duckdb.Error as e:
            message = str(e).splitlines()[0]
            if u.password:
                message = message.replace(u.password, "***")
            raise errors.Error(f"{where}: cannot read table {table!r}: {message}") from None
        server = {"server": "postgres", "type": "postgres", "host": u.hostname or "localhost",
                  "port": u.port or 5432, "database": u.path.lstrip("/") or "postgres",
                  "schema": schema or "public"}
        return con, server, name
    path = Path(source).expanduser()
    if not path.is_file():
        raise errors.Error(f"{source}: no such file")
    suffix = path.suffix.lower()
    resolved = path.resolve()
    if DB_FORMATS.get(suffix) == "sqlite":
        _load_extension(con, "sqlite_scanner")  # before the lock-down, which forbids loading
    con.execute(f"SET allowed_directories = [{_lit(str(resolved.parent))}]")
    con.execute("SET enable_external_access = false")
    if suffix in FILE_FORMATS:
        fmt = FILE_FORMATS[suffix]
        reader = {"parquet": "read_parquet", "csv": "read_csv", "json": "read_json_auto"}[fmt]
        try:
            con.execute(f"CREATE VIEW src AS SELECT * FROM {reader}({_lit(str(resolved))})")
        except duckdb.Error as e:
            raise errors.Error(f"{source}: cannot read it as {fmt}: {str(e).splitlines()[0]}") from None
        server = {"server": "local", "type": "local", "format": fmt, "path": str(path)}
        return con, server, re.sub(r"\W", "_", path.name.split(".")[0]).lower() or "data"
    if suffix in DB_FORMATS:
        kind = DB_FORMATS[suffix]
        if not table:
            raise errors.Error(f"{source}: a {kind} database needs --table")
        try:
            if kind == "sqlite":
                con.execute(f"ATTACH {_lit(str(resolved))} AS db (TYPE sqlite, READ_ONLY)")
                con.execute(f"CREATE VIEW src AS SELECT * FROM db.{_quote(table)}")
                server = {"server": "local", "type": "local", "format": "sqlite", "path": str(path)}
            else:
                con.execute(f"ATTACH {_lit(str(resolved))} AS db (READ_ONLY)")
                schema, _, name = table.rpartition(".")
                con.execute(f"CREATE VIEW src AS SELECT * FROM db.{_quote(schema or 'main')}.{_quote(name)}")
                server = {"server": "local", "type": "duckdb", "database": str(path), "schema": schema or "main"}
        except errors.Error:
            raise
        except duckdb.Error as e:
            raise errors.Error(f"{source}: cannot read table {table!r}: {str(e).splitlines()[0]}") from None
        return con, server, table.rpartition(".")[2]
    raise errors.Error(f"{source}: not a source Quanta can profile (a Parquet, CSV or JSON file, a DuckDB or "
                       "SQLite database with --table, or a postgresql:// URL with --table)")


def _run(con, sql: str, progress, message: str):
    """Run one query; ``progress(message, fraction)`` (``federation.progress``) sees DuckDB's progress."""
    from ..progress import watching

    try:
        with watching(con, message, progress):
            return con.execute(sql).fetchall()
    except errors.Error:
        raise
    except duckdb.Error as e:
        raise errors.Error(f"profiling failed: {str(e).splitlines()[0]}") from None


def profile(con, progress: Callable[..., None] | None = None) -> tuple[int, list[dict]]:
    """Row count and one profile per column of the view ``src`` (name, type, nulls, distinct)."""
    cols = con.execute("DESCRIBE src").fetchall()
    if not cols:
        raise errors.Error("the source has no columns")
    parts = ["count(*)"]
    for name, ctype, *_ in cols:
        q = _quote(name)
        parts.append(f"count({q})")
        parts.append(f"approx_count_distinct({q})" if _comparable(ctype) else "NULL")
    rows = _run(con, f"SELECT {', '.join(parts)} FROM src", progress, "profiling the columns")[0]
    total = rows[0]
    out = []
    for i, (name, ctype, *_) in enumerate(cols):
        out.append({"name": name, "type": ctype, "non_null": rows[1 + 2 * i], "approx_distinct": rows[2 + 2 * i]})
    # exact distinct counts for the unique candidates only
    cands = [c for c in out if c["approx_distinct"] is not None and c["non_null"] == total and total > 0
             and c["approx_distinct"] >= 0.9 * total]
    if cands:
        exact = _run(con, "SELECT " + ", ".join(f"count(DISTINCT {_quote(c['name'])})" for c in cands)
                     + " FROM src", progress, "checking unique candidates")[0]
        for c, n in zip(cands, exact):
            c["distinct"] = n
    return total, out


def _comparable(ctype: str) -> bool:
    t = ctype.upper()
    return not any(k in t for k in ("STRUCT", "MAP", "[]", "LIST", "BLOB", "JSON", "UNION"))


def _is_string(ctype: str) -> bool:
    return ctype.upper() in ("VARCHAR", "TEXT", "STRING") or ctype.upper().startswith("VARCHAR")


def init_contract(source: str, table: str | None = None, dataset: str | None = None,
                  progress: Callable[..., None] | None = None) -> dict:
    """An ODCS v3.1.0 contract (a dict) for one dataset read from ``source``; every inferred fact is a
    suggestion listed in ``customProperties``."""
    con, server, default_name = _open_source(source, table)
    try:
        total, cols = profile(con, progress)
        name = dataset or default_name
        if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
            name = re.sub(r"\W", "_", name)
        props = []
        pk_done = False
        for c in cols:
            props.append(_property(con, c, total, pk_done))
            pk_done = pk_done or props[-1].get("primaryKey", False)
        if not pk_done:
            _composite_key(con, cols, props, total, progress)
    finally:
        con.close()
    return {
        "apiVersion": "v3.2.0",
        "kind": "DataContract",
        "id": f"urn:contract:{name}",
        "name": name,
        "version": "0.1.0",
        "status": "draft",
        "description": {"purpose": "TODO: what this data is and what it is for (written by quanta contract init)."},
        "servers": [server],
        "schema": [{
            "name": name,
            "physicalName": name,
            "physicalType": "table",
            "description": "TODO: describe one row.",
            "properties": props,
        }],
        "customProperties": [
            {"property": "generatedBy", "value": f"quanta contract init ({total} rows profiled)"},
            {"property": "reviewNeeded", "value": "required, unique, primaryKey, enum and classification "
                                                  "are suggestions from the data: see each property's suggestions"},
        ],
    }


_KEY_LIKE = re.compile(r"(^id$|_?id$|key$|_?(no|num|number|code|line|seq)$)", re.IGNORECASE)


def _composite_key(con, cols: list[dict], props: list[dict], total: int, progress) -> None:
    """A two-column primary-key candidate (order_id + line_no) when no single column is one: required,
    key-like columns (by name) whose pairs are all distinct."""
    if total < 2:
        return
    keys = [i for i, c in enumerate(cols) if c["non_null"] == total and _comparable(c["type"])
            and logical_type(c["type"]) in ("integer", "string") and _KEY_LIKE.search(c["name"])][:6]
    pairs = [(a, b) for n, a in enumerate(keys) for b in keys[n + 1:]]
    if not pairs:
        return

    def row(a, b):
        return f"row({_quote(cols[a]['name'])}, {_quote(cols[b]['name'])})"

    approx = _run(con, "SELECT " + ", ".join(f"approx_count_distinct({row(a, b)})" for a, b in pairs)
                  + " FROM src", progress, "looking for a two-column key")[0]
    for (a, b), n in sorted(zip(pairs, approx), key=lambda x: -x[1]):
        if n < 0.9 * total:
            break
        exact = _run(con, f"SELECT count(DISTINCT {row(a, b)}) FROM src", progress, "checking a two-column key")
        if exact[0][0] == total:
            for pos, i in enumerate((a, b), 1):
                props[i]["primaryKey"] = True
                props[i]["primaryKeyPosition"] = pos
                note = (f"primaryKey (position {pos}): {cols[a]['name']} and {cols[b]['name']} together are "
                        "unique and required in the data")
                custom = props[i].setdefault("customProperties", [{"property": "suggestions", "value": []}])
                custom[0]["value"].append(note)
                props[i]["customProperties"] = props[i].pop("customProperties")  # last, as elsewhere
            return


def _property(con, c: dict, total: int, pk_done: bool) -> dict:
    name, ctype = c["name"], c["type"]
    logical = logical_type(ctype)
    prop: dict[str, Any] = {"name": name, "logicalType": logical, "physicalType": ctype.lower()}
    if logical == "array":
        inner = ctype[:-2] if ctype.endswith("[]") else "VARCHAR"
        prop["items"] = {"logicalType": logical_type(inner), "physicalType": inner.lower()}
    if not re.match(r"^[A-Za-z_][A-Za-z0-9_]*$", name):
        prop["name"] = re.sub(r"\W", "_", name).strip("_") or "column"
        prop["physicalName"] = name
    suggestions = []
    if total and c["non_null"] == total:
        prop["required"] = True
        suggestions.append("required: no NULL in the data")
    if c.get("distinct") == total and total > 1:
        prop["unique"] = True
        suggestions.append("unique: every value differs in the data")
        if not pk_done and (logical in ("integer", "string")) and (name.lower() == "id" or name.lower().endswith(
                ("_id", "_key", "_code", "_number", "id")) or logical == "integer"):
            prop["primaryKey"] = True
            prop["primaryKeyPosition"] = 1
            suggestions.append("primaryKey: the first unique, required key-like column")
    personal = personal_by_name(name)
    how = "its name"
    if personal is None and _is_string(ctype) and c["non_null"]:
        sample = [r[0] for r in con.execute(
            f"SELECT {_quote(name)} FROM src WHERE {_quote(name)} IS NOT NULL LIMIT {SAMPLE}").fetchall()]
        personal = personal_by_values(sample)
        how = "a sample of its values"
        del sample
    if personal:
        prop["classification"] = "pii"
        prop["tags"] = ["pii"]
        suggestions.append(f"classification pii: {how} looks like {personal}")
    elif (_is_string(ctype) and c["approx_distinct"] is not None and 0 < c["approx_distinct"] <= ENUM_MAX + 2
          and c["non_null"] >= 2 * c["approx_distinct"]):
        values = [r[0] for r in con.execute(
            f"SELECT DISTINCT {_quote(name)} FROM src WHERE {_quote(name)} IS NOT NULL ORDER BY 1 "
            f"LIMIT {ENUM_MAX + 1}").fetchall()]
        if len(values) <= ENUM_MAX and all(len(v) <= ENUM_MAX_LENGTH for v in values):
            prop["enum"] = [{"value": v} for v in values]  # ODCS v3.2 (RFC 0033): an implied quality rule
            suggestions.append(f"enum: {len(values)} distinct values in the data")
    if suggestions:
        prop["customProperties"] = [{"property": "suggestions", "value": suggestions}]
    return prop
