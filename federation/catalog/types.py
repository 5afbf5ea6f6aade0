"""Contract types to DuckDB types, and whether a type found in the data fits a declared one.

``physicalType`` wins when it is a DuckDB type (``decimal(12,2)``, ``varchar(18)``, ``timestamptz``);
otherwise ``logicalType`` decides. Compatibility is by family: the data may be narrower than the
contract (an INTEGER column for a declared BIGINT, a DATE for a TIMESTAMP), and text formats (CSV,
JSON) may hold strings for anything, which the view casts.
"""

from __future__ import annotations

from functools import lru_cache

import sqlglot.expressions as exp
from sqlglot.errors import ParseError

LOGICAL_TO_DUCKDB = {
    "string": "VARCHAR",
    "integer": "BIGINT",
    "number": "DOUBLE",
    "boolean": "BOOLEAN",
    "date": "DATE",
    "timestamp": "TIMESTAMP",
    "time": "TIME",
    "object": "JSON",
    "array": "VARCHAR[]",
    "map": "MAP(VARCHAR, VARCHAR)",  # ODCS v3.2; with its map.key/map.value: see _v32_type
    "vector": "FLOAT[]",  # ODCS v3.2; with its dimensions: FLOAT[n]
}

_T = exp.DataType.Type


def _types(*names: str) -> set:
    return {getattr(_T, n) for n in names if hasattr(_T, n)}


_FAMILIES: dict[str, set] = {
    "integer": _types("TINYINT", "SMALLINT", "MEDIUMINT", "INT", "BIGINT", "INT128", "UTINYINT", "USMALLINT",
                      "UINT", "UBIGINT", "UINT128"),
    "decimal": {_T.DECIMAL},
    "float": {_T.FLOAT, _T.DOUBLE},
    "string": {_T.VARCHAR, _T.CHAR, _T.TEXT, _T.NVARCHAR, _T.NCHAR},
    "boolean": {_T.BOOLEAN},
    "date": {_T.DATE},
    "timestamp": _types("TIMESTAMP", "TIMESTAMPTZ", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS",
                        "TIMESTAMPLTZ", "TIMESTAMPNTZ", "DATETIME"),
    "time": _types("TIME", "TIMETZ", "TIME_NS"),
    "blob": _types("VARBINARY", "BINARY", "BLOB"),
    "uuid": {_T.UUID},
    "json": {_T.JSON},
    "list": {_T.ARRAY, _T.LIST},
    "struct": {_T.STRUCT},
    "map": {_T.MAP},
    "interval": {_T.INTERVAL},
}
_FAMILY_OF = {t: fam for fam, types in _FAMILIES.items() for t in types}

# data family -> declared families it may be read as without losing meaning
_WIDENING = {
    "integer": {"integer", "decimal", "float"},
    "decimal": {"decimal", "float"},
    "float": {"float", "decimal"},
    "date": {"date", "timestamp"},
    "string": {"string", "uuid", "json"},
    "json": {"json", "string", "struct", "list"},
    "struct": {"struct", "json"},
    "list": {"list", "json"},
}


@lru_cache(maxsize=4096)
def parse_type(text: str) -> exp.DataType | None:
    """A DuckDB type from text, or None when the text is not a DuckDB type (``table``, ``object``)."""
    try:
        dt = exp.DataType.build(text, dialect="duckdb", udt=True)
    except (ParseError, ValueError, TypeError):
        return None
    if dt.this == _T.USERDEFINED:
        return None
    return dt


def family(type_text: str) -> str | None:
    dt = parse_type(type_text)
    return _FAMILY_OF.get(dt.this) if dt is not None else None


_NESTED = {_T.ARRAY, _T.LIST, _T.STRUCT, _T.MAP}
# PostgreSQL spellings that contracts written for PostgreSQL sources use
_PG_NAMES = {"serial": "INTEGER", "serial4": "INTEGER", "bigserial": "BIGINT", "serial8": "BIGINT",
             "smallserial": "SMALLINT", "serial2": "SMALLINT", "bpchar": "VARCHAR", "int4": "INTEGER",
             "int2": "SMALLINT", "int8": "BIGINT", "float8": "DOUBLE", "float4": "REAL", "bytea": "BLOB"}


def _is_sized_string(dt: exp.DataType) -> bool:
    """``varchar[50]``: PostgreSQL-style length written with brackets, parsed as a fixed-size array."""
    if dt.this not in (_T.ARRAY, _T.LIST) or len(dt.expressions) != 1:
        return False
    inner = dt.expressions[0]
    return isinstance(inner, exp.DataType) and _FAMILY_OF.get(inner.this) == "string" and bool(dt.args.get("values"))


# ODCS v3.2 vector element types (RFC 0042) -> DuckDB; bfloat16/float16 are read as FLOAT, binary bits as BOOLEAN
VECTOR_ELEMENTS = {"float32": "FLOAT", "float64": "DOUBLE", "float16": "FLOAT", "bfloat16": "FLOAT", "int8": "TINYINT",
                   "uint8": "UTINYINT", "binary": "BOOLEAN"}


def declared_type(logical_type: str | None, physical_type: str | None,
                  items: dict | None = None, prop: dict | None = None) -> tuple[str, str | None]:
    """The DuckDB type for a contract property, and a problem message when the types are unusable.
    ``prop``: the whole property, for the ODCS v3.2 ``map`` (its ``map.key``/``map.value``) and ``vector``
    (``logicalTypeOptions.dimensions``/``elementType``) logical types."""
    if logical_type in ("map", "vector") and isinstance(prop, dict) and not physical_type:
        return _v32_type(logical_type, prop)
    if items is None and isinstance(logical_type, (str, type(None))) and isinstance(physical_type, (str, type(None))):
        return _declared_scalar(logical_type, physical_type)  # a large mesh repeats a few dozen spellings
    return _declared_type(logical_type, physical_type, items)


@lru_cache(maxsize=4096)
def _declared_scalar(logical_type: str | None, physical_type: str | None) -> tuple[str, str | None]:
    return _declared_type(logical_type, physical_type, None)


def _declared_type(logical_type: str | None, physical_type: str | None,
                   items: dict | None = None) -> tuple[str, str | None]:
    if physical_type:
        dt = parse_type(_PG_NAMES.get(physical_type.strip().lower(), physical_type))
        if dt is not None and (_FAMILY_OF.get(dt.this) == "string" or _is_sized_string(dt)):
            return "VARCHAR", None  # lengths (varchar(18), varchar[50]) are not enforced by DuckDB views
        # a bare LIST/STRUCT/MAP says too little: the logical type (and its items) decides
        if dt is not None and not (dt.this in _NESTED and not dt.expressions):
            return dt.sql("duckdb"), None
    if logical_type == "array" and isinstance(items, dict):
        inner, problem = declared_type(items.get("logicalType"), items.get("physicalType"), items.get("items"))
        return f"{inner}[]", problem
    if logical_type:
        t = LOGICAL_TO_DUCKDB.get(logical_type)
        if t:
            return t, None
        return "VARCHAR", f"unknown logicalType {logical_type!r}"
    if physical_type:
        return "VARCHAR", f"physicalType {physical_type!r} is not a DuckDB type and no logicalType is given"
    return "VARCHAR", None


def _v32_type(logical_type: str, prop: dict) -> tuple[str, str | None]:
    if logical_type == "map":
        m = prop.get("map") if isinstance(prop.get("map"), dict) else {}
        k, v = m.get("key") or {}, m.get("value") or {}
        key, p1 = declared_type(k.get("logicalType"), k.get("physicalType"), k.get("items"), k)
        value, p2 = declared_type(v.get("logicalType"), v.get("physicalType"), v.get("items"), v)
        return f"MAP({key}, {value})", p1 or p2
    opts = prop.get("logicalTypeOptions") if isinstance(prop.get("logicalTypeOptions"), dict) else {}
    element = VECTOR_ELEMENTS.get(str(opts.get("elementType") or "float32"), "FLOAT")
    dims = opts.get("dimensions")
    if not isinstance(dims, int) or isinstance(dims, bool) or dims < 1:
        return f"{element}[]", "a vector needs logicalTypeOptions.dimensions (a positive integer)"
    return f"{element}[{dims}]", None


def compatible(data_type: str, declared: str, text_format: bool = False) -> bool:
    """Can a column of ``data_type`` (found in the data) be served as ``declared``?"""
    df, cf = family(data_type), family(declared)
    if df is None or cf is None:
        return True  # a type we cannot classify (e.g. an enum): let DuckDB's cast decide
    if df == cf:
        return True
    if text_format and df == "string":
        return True
    return cf in _WIDENING.get(df, set())
