"""PostgreSQL types of Arrow columns: OIDs for RowDescription, text and binary encoders of result
columns, decoders of Bind parameters.

Encoders work a column (an Arrow array) at a time and return one ``bytes | None`` per row.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import json
import struct
import uuid
from dataclasses import dataclass
from typing import Any, Callable
from zoneinfo import ZoneInfo

import pyarrow as pa
import pyarrow.compute as pc

# -- OIDs ------------------------------------------------------------------------------------------------

BOOL, BYTEA, CHAR, NAME, INT8, INT2, INT2VECTOR, INT4, REGPROC, TEXT, OID = 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26
OIDVECTOR, JSON, XML, FLOAT4, FLOAT8, UNKNOWN, VARCHAR, BPCHAR = 30, 114, 142, 700, 701, 705, 1043, 1042
DATE, TIME, TIMESTAMP, TIMESTAMPTZ, INTERVAL, TIMETZ, NUMERIC, UUID, JSONB = 1082, 1083, 1114, 1184, 1186, 1266, 1700, 2950, 3802
REGCLASS, REGTYPE, REGNAMESPACE, VOID, ANY, ANYARRAY, RECORD = 2205, 2206, 4089, 2278, 2276, 2277, 2249

ARRAY_OF = {BOOL: 1000, BYTEA: 1001, CHAR: 1002, NAME: 1003, INT2: 1005, INT4: 1007, REGPROC: 1008, TEXT: 1009,
            OID: 1028, JSON: 199, FLOAT4: 1021, FLOAT8: 1022, VARCHAR: 1015, BPCHAR: 1014, INT8: 1016, DATE: 1182,
            TIME: 1183, TIMESTAMP: 1115, TIMESTAMPTZ: 1185, INTERVAL: 1187, NUMERIC: 1231, UUID: 2951, JSONB: 3807,
            REGCLASS: 2210, REGTYPE: 2211}
ELEMENT_OF = {v: k for k, v in ARRAY_OF.items()}


@dataclass(frozen=True)
class PgType:
    oid: int
    name: str  # pg_type.typname
    size: int  # typlen
    category: str  # typcategory
    display: str  # format_type()


TYPES: dict[int, PgType] = {t.oid: t for t in [
    PgType(BOOL, "bool", 1, "B", "boolean"), PgType(BYTEA, "bytea", -1, "U", "bytea"),
    PgType(CHAR, "char", 1, "S", '"char"'), PgType(NAME, "name", 64, "S", "name"),
    PgType(INT8, "int8", 8, "N", "bigint"), PgType(INT2, "int2", 2, "N", "smallint"),
    PgType(INT2VECTOR, "int2vector", -1, "A", "int2vector"),
    PgType(INT4, "int4", 4, "N", "integer"), PgType(REGPROC, "regproc", 4, "N", "regproc"),
    PgType(TEXT, "text", -1, "S", "text"), PgType(OID, "oid", 4, "N", "oid"),
    PgType(OIDVECTOR, "oidvector", -1, "A", "oidvector"),
    PgType(JSON, "json", -1, "U", "json"), PgType(XML, "xml", -1, "U", "xml"),
    PgType(FLOAT4, "float4", 4, "N", "real"), PgType(FLOAT8, "float8", 8, "N", "double precision"),
    PgType(UNKNOWN, "unknown", -2, "X", "unknown"), PgType(BPCHAR, "bpchar", -1, "S", "character"),
    PgType(VARCHAR, "varchar", -1, "S", "character varying"), PgType(DATE, "date", 4, "D", "date"),
    PgType(TIME, "time", 8, "D", "time without time zone"),
    PgType(TIMESTAMP, "timestamp", 8, "D", "timestamp without time zone"),
    PgType(TIMESTAMPTZ, "timestamptz", 8, "D", "timestamp with time zone"),
    PgType(INTERVAL, "interval", 16, "T", "interval"), PgType(TIMETZ, "timetz", 12, "D", "time with time zone"),
    PgType(NUMERIC, "numeric", -1, "N", "numeric"), PgType(UUID, "uuid", 16, "U", "uuid"),
    PgType(JSONB, "jsonb", -1, "U", "jsonb"), PgType(REGCLASS, "regclass", 4, "N", "regclass"),
    PgType(REGTYPE, "regtype", 4, "N", "regtype"), PgType(REGNAMESPACE, "regnamespace", 4, "N", "regnamespace"),
    PgType(VOID, "void", 4, "P", "void"), PgType(RECORD, "record", -1, "P", "record"),
    PgType(ANY, "any", 4, "P", '"any"'), PgType(ANYARRAY, "anyarray", -1, "P", "anyarray"),
]}
for _elem, _arr in ARRAY_OF.items():
    _e = TYPES[_elem]
    TYPES[_arr] = PgType(_arr, "_" + _e.name, -1, "A", _e.display + "[]")

# PostgreSQL's input / output / receive / send functions of each type (pg_type.typinput ...): an array type's
# are array_in... (pgjdbc tells arrays by typinput = 'array_in'), a row type's record_in...; the others are
# named after the type, some with an underscore (date_in), some without (int4in), as in PostgreSQL
_UNDERSCORED = {"json", "xml", "date", "time", "timestamp", "timestamptz", "interval", "timetz", "numeric", "uuid",
                "jsonb", "record", "void", "any", "anyarray"}


def io_functions(oid: int, name: str) -> tuple[str, str, str, str]:
    """(typinput, typoutput, typreceive, typsend) function names of the type ``oid`` named ``name``."""
    if oid in ELEMENT_OF:
        base = "array_"
    elif oid not in TYPES:  # a table's row type
        base = "record_"
    else:
        base = name + "_" if name in _UNDERSCORED else name
    return base + "in", base + "out", base + "recv", base + "send"


# DuckDB type names (upper case, without parameters) -> PostgreSQL OID
DUCKDB_TYPES = {
    "BOOLEAN": BOOL, "TINYINT": INT2, "SMALLINT": INT2, "INTEGER": INT4, "BIGINT": INT8, "HUGEINT": NUMERIC,
    "UTINYINT": INT2, "USMALLINT": INT4, "UINTEGER": OID, "UBIGINT": NUMERIC, "UHUGEINT": NUMERIC,
    "FLOAT": FLOAT4, "REAL": FLOAT4, "DOUBLE": FLOAT8, "DECIMAL": NUMERIC, "NUMERIC": NUMERIC,
    "VARCHAR": VARCHAR, "TEXT": TEXT, "STRING": TEXT, "BLOB": BYTEA, "DATE": DATE, "TIME": TIME,
    "TIMESTAMP": TIMESTAMP, "TIMESTAMP_NS": TIMESTAMP, "TIMESTAMP_MS": TIMESTAMP, "TIMESTAMP_S": TIMESTAMP,
    "TIMESTAMP WITH TIME ZONE": TIMESTAMPTZ, "TIMESTAMPTZ": TIMESTAMPTZ, "INTERVAL": INTERVAL, "UUID": UUID,
    "JSON": JSON, "TIME WITH TIME ZONE": TIMETZ,
}


def duckdb_type_oid(type_name: str) -> tuple[int, int]:
    """(OID, typmod) of a DuckDB type name as contracts spell it: ``decimal(12,2)``, ``varchar[]``..."""
    t = type_name.strip().upper()
    if t.endswith("[]"):
        elem, _ = duckdb_type_oid(t[:-2])
        return ARRAY_OF.get(elem, 1009), -1
    base, _, args = t.partition("(")
    base = base.strip()
    if base in ("DECIMAL", "NUMERIC"):
        nums = [int(x) for x in args.rstrip(")").split(",") if x.strip().isdigit()]
        precision, scale = (nums + [18, 3])[:2] if nums else (18, 3)
        if len(nums) == 1:
            scale = 0
        return NUMERIC, ((precision << 16) | scale) + 4
    if base in ("VARCHAR", "CHAR", "BPCHAR", "STRING", "TEXT"):
        return VARCHAR, -1
    if base.startswith(("STRUCT", "MAP", "UNION")):
        return JSON, -1
    return DUCKDB_TYPES.get(base, TEXT), -1


# -- int2vector and oidvector ----------------------------------------------------------------------------------


class PgVector(pa.ExtensionType):
    """PostgreSQL's int2vector or oidvector (pg_index.indkey, pg_proc.proargtypes): a list of int16 or uint32
    that goes out as its own type, space-separated in text ('1 2') and as a one-dimensional array with lower
    bound 0 in binary (psqlODBC reads them so); the catalog's DuckDB side keeps a list."""

    def __init__(self, oid: int):
        self.oid = oid
        super().__init__(pa.list_(pa.int16() if oid == INT2VECTOR else pa.uint32()),
                         "postgres." + TYPES[oid].name)

    def __arrow_ext_serialize__(self) -> bytes:
        return str(self.oid).encode()

    @classmethod
    def __arrow_ext_deserialize__(cls, storage_type: pa.DataType, serialized: bytes) -> PgVector:
        return cls(int(serialized))


def vector(oid: int) -> PgVector:
    """The Arrow type of an int2vector (INT2VECTOR) or oidvector (OIDVECTOR) column."""
    return PgVector(oid)


def _vector_oid(t: pa.DataType) -> int | None:
    return t.oid if isinstance(t, PgVector) else None


def _vector_text(v: list) -> str:
    return " ".join(str(x) for x in v)


def _vector_binary(oid: int) -> Callable[[list], bytes]:
    """array_send of a vector: one dimension, lower bound 0 (no dimension at all when empty)."""
    elem, item = (INT2, _i16) if oid == INT2VECTOR else (OID, struct.Struct("!I"))

    def send(v: list) -> bytes:
        if not v:
            return struct.pack("!iii", 0, 0, elem)
        return struct.pack("!iiiii", 1, 0, elem, len(v), 0) + \
            b"".join(_i32.pack(item.size) + item.pack(x) for x in v)
    return send


def arrow_oid(t: pa.DataType) -> tuple[int, int, int]:
    """(OID, typlen, typmod) of an Arrow type."""
    if _vector_oid(t) is not None:
        return t.oid, -1, -1
    if isinstance(t, pa.BaseExtensionType):
        if t.extension_name == "arrow.uuid":
            return UUID, 16, -1
        if t.extension_name in ("arrow.json", "duckdb.json"):
            return JSON, -1, -1
        t = t.storage_type
    if pa.types.is_boolean(t):
        return BOOL, 1, -1
    if pa.types.is_int8(t) or pa.types.is_int16(t) or pa.types.is_uint8(t):
        return INT2, 2, -1
    if pa.types.is_int32(t) or pa.types.is_uint16(t):
        return INT4, 4, -1
    if pa.types.is_uint32(t):  # the catalog's oid columns and arrays
        return OID, 4, -1
    if pa.types.is_int64(t):
        return INT8, 8, -1
    if pa.types.is_uint64(t):
        return NUMERIC, -1, -1
    if pa.types.is_float16(t) or pa.types.is_float32(t):
        return FLOAT4, 4, -1
    if pa.types.is_float64(t):
        return FLOAT8, 8, -1
    if pa.types.is_decimal(t):
        return NUMERIC, -1, ((t.precision << 16) | t.scale) + 4
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return TEXT, -1, -1
    if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
        return UUID, 16, -1
    if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or \
            pa.types.is_fixed_size_binary(t):
        return BYTEA, -1, -1
    if pa.types.is_date(t):
        return DATE, 4, -1
    if pa.types.is_time(t):
        return TIME, 8, -1
    if pa.types.is_timestamp(t):
        return (TIMESTAMPTZ if t.tz else TIMESTAMP), 8, -1
    if pa.types.is_duration(t) or pa.types.is_interval(t):
        return INTERVAL, 16, -1
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t) or \
            pa.types.is_list_view(t):
        elem = arrow_oid(t.value_type)[0]
        return ARRAY_OF.get(elem, JSON if elem == JSON else 1009), -1, -1
    if pa.types.is_struct(t) or pa.types.is_map(t):
        return JSON, -1, -1
    if pa.types.is_dictionary(t):
        return arrow_oid(t.value_type)
    if pa.types.is_null(t):
        return TEXT, -1, -1
    return TEXT, -1, -1


# -- DuckDB types that reach Arrow as strings ----------------------------------------------------------------

# DuckDB exports UUID and JSON as plain strings (its ``arrow_lossless_conversion`` would type them, but it also
# turns HUGEINT, what sum() returns, into an opaque extension): their DuckDB type names (``DESCRIBE``) give
# them Arrow's canonical extension types, hence their PostgreSQL OIDs.
_EXTENSIONS = {"UUID": "arrow.uuid", "JSON": "arrow.json"}


def _is_string(t: pa.DataType) -> bool:
    return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)


def _is_list(t: pa.DataType) -> bool:
    return pa.types.is_list(t) or pa.types.is_large_list(t)


def has_strings(schema: pa.Schema) -> bool:
    """Whether a column could be a UUID or JSON column in disguise (strings, lists of strings)."""
    return any(_is_string(f.type) or (_is_list(f.type) and _is_string(f.type.value_type)) for f in schema)


def is_extension(t: pa.DataType) -> bool:
    """Whether a type of ``pg_schema`` is Arrow's uuid or json, or a list of them (DuckDB's strings)."""
    return isinstance(t, pa.ExtensionType) or (_is_list(t) and isinstance(t.value_type, pa.ExtensionType))


def _extension(name: str, storage: pa.DataType) -> pa.DataType:
    return pa.uuid() if name == "arrow.uuid" else pa.json_(storage)


def pg_schema(schema: pa.Schema, duckdb_types: list[str]) -> pa.Schema:
    """``schema`` with DuckDB's UUID and JSON columns, and lists of them, typed as Arrow's uuid and json."""
    if len(duckdb_types) != len(schema):
        return schema
    fields = []
    for f, name in zip(schema, duckdb_types):
        t, element = f.type, name.upper().endswith("[]")
        extension = _EXTENSIONS.get(name.upper()[:-2] if element else name.upper())
        if extension is not None and not element and _is_string(t):
            f = f.with_type(_extension(extension, t))
        elif extension is not None and element and _is_list(t) and _is_string(t.value_type):
            inner = _extension(extension, t.value_type)
            f = f.with_type(pa.list_(inner) if pa.types.is_list(t) else pa.large_list(inner))
        fields.append(f)
    return pa.schema(fields, schema.metadata)


def conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.RecordBatch:
    """A batch of the engine with the types of ``pg_schema`` (JSON zero-copy, UUID strings parsed)."""
    columns = [c if c.type == f.type else _conform(c, f.type) for c, f in zip(batch.columns, schema)]
    return pa.RecordBatch.from_arrays(columns, schema=schema)


def _conform(array: pa.Array, t: pa.DataType) -> pa.Array:
    if _is_list(t):
        values = _conform(array.values, t.value_type)  # the whole child: the offsets and validity are kept
        return pa.Array.from_buffers(t, len(array), array.buffers()[:2], array.null_count, array.offset, [values])
    storage = uuid_from_text(array) if t.extension_name == "arrow.uuid" else array
    return pa.ExtensionArray.from_storage(t, storage)


# where the 32 hex digits of a UUID stand in its 36 characters (8-4-4-4-12)
_UUID_DIGITS = [i for i in range(36) if i not in (8, 13, 18, 23)]


def uuid_from_text(array: pa.Array) -> pa.Array:
    """UUID strings as 16-byte values, vectorised (DuckDB prints every UUID in 36 characters)."""
    import numpy as np

    n = len(array)
    text = pc.cast(array.fill_null("00000000-0000-0000-0000-000000000000"), pa.large_binary())
    if n and not pc.all(pc.equal(pc.binary_length(text), 36)).as_py():
        raise ValueError("a UUID column holds a value that is not a UUID")
    offsets = np.frombuffer(text.buffers()[1], np.int64, count=n + 1, offset=8 * text.offset)
    data = np.frombuffer(text.buffers()[2], np.uint8, count=36 * n, offset=int(offsets[0])) if n else \
        np.empty(0, np.uint8)
    digits = data.reshape(n, 36)[:, _UUID_DIGITS]
    nibbles = np.where(digits >= ord("a"), digits - (ord("a") - 10),
                       np.where(digits >= ord("A"), digits - (ord("A") - 10), digits - ord("0")))
    raw = (nibbles[:, 0::2] << 4 | nibbles[:, 1::2]).astype(np.uint8)
    values = pa.FixedSizeBinaryArray.from_buffers(pa.binary(16), n, [None, pa.py_buffer(raw.tobytes())])
    return pc.if_else(array.is_valid(), values, pa.scalar(None, pa.binary(16))) if array.null_count else values


def uuid_text(array: pa.Array) -> pa.Array:
    """16-byte UUIDs as PostgreSQL prints them (lower-case hex, 8-4-4-4-12), vectorised."""
    import numpy as np

    n = len(array)
    raw = np.frombuffer(array.buffers()[1], np.uint8, count=16 * n, offset=16 * array.offset).reshape(n, 16) \
        if n else np.empty((0, 16), np.uint8)
    hexdigits = np.frombuffer(b"0123456789abcdef", np.uint8)
    text = np.full((n, 36), ord("-"), np.uint8)
    text[:, _UUID_DIGITS[0::2]] = hexdigits[raw >> 4]
    text[:, _UUID_DIGITS[1::2]] = hexdigits[raw & 15]
    values = _fixed(text, 36)
    return pc.if_else(array.is_valid(), values, pa.scalar(None, pa.large_binary())) if array.null_count else values


# -- text output --------------------------------------------------------------------------------------------

_EPOCH_DATE = dt.date(2000, 1, 1)
_EPOCH = dt.datetime(2000, 1, 1)
_EPOCH_TZ = dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)


# PostgreSQL prints the shortest digits that read back to the same value (extra_float_digits = 1, the
# default since PostgreSQL 12) in fixed notation when the decimal exponent is in [-4, 15) for float8 and
# [-4, 6) for float4, otherwise as d.ddde+XX (printf's %g thresholds, DBL_DIG and FLT_DIG).
_FIXED_BELOW = {64: 15, 32: 6}


def _shortest_digits(v: float, bits: int) -> tuple[str, int]:
    """The shortest round-trip decimal digits of ``abs(v)`` (no leading or trailing zeros) and the
    exponent of the first one: 1234.5 -> ('12345', 3)."""
    if bits == 32:
        import numpy as np

        text = np.format_float_scientific(np.float32(abs(v)), unique=True, trim="-")
    else:
        text = repr(abs(v))
    if "e" in text:
        mantissa, _, exponent = text.partition("e")
        digits = mantissa.replace(".", "").rstrip("0")
        return digits or "0", int(exponent)
    whole, _, fraction = text.partition(".")
    if whole.strip("0"):
        return (whole + fraction).lstrip("0").rstrip("0"), len(whole.lstrip("0")) - 1
    stripped = fraction.lstrip("0")
    return stripped.rstrip("0"), -(len(fraction) - len(stripped)) - 1


def _pg_digits(v: float, bits: int) -> tuple[str, int]:
    """PostgreSQL's shortest digits (Ryu with the rounding interval's bounds excluded): Python's and
    NumPy's shortest digits, unless they fall exactly halfway to a neighbouring float, which PostgreSQL
    never prints. Only integers beyond the float's exact range (2^53, 2^24) have such short halfway points."""
    digits, exp = _shortest_digits(v, bits)
    if abs(v) < (2.0 ** 53 if bits == 64 else 2.0 ** 24):
        return digits, exp
    import numpy as np

    kind = np.float64 if bits == 64 else np.float32
    x = kind(abs(v))
    with np.errstate(over="ignore"):
        neighbours = [np.nextafter(x, kind(d)) for d in (0, np.inf)]
    halfway = {(decimal.Decimal(float(x)) + decimal.Decimal(float(n))) / 2 for n in neighbours}
    if decimal.Decimal(f"{digits[0]}.{digits[1:]}e{exp}") not in halfway:
        return digits, exp
    for n in range(len(digits), 18):  # the next shortest that reads back and is not a halfway point
        text = f"{float(x):.{n}e}"
        if kind(float(text)) == x and decimal.Decimal(text) not in halfway:
            mantissa, _, exponent = text.partition("e")
            return mantissa.replace(".", "").rstrip("0"), int(exponent)
    return digits, exp


def format_float(v: float, bits: int = 64) -> str:
    """``v`` as PostgreSQL's float8out (``bits=64``) or float4out (``bits=32``) prints it."""
    if v != v:
        return "NaN"
    if v in (float("inf"), float("-inf")):
        return "Infinity" if v > 0 else "-Infinity"
    sign = "-" if math.copysign(1.0, v) < 0 else ""
    if v == 0:
        return sign + "0"
    digits, exp = _pg_digits(v, bits)
    if exp < -4 or exp >= _FIXED_BELOW[bits]:
        mantissa = digits[0] + ("." + digits[1:] if len(digits) > 1 else "")
        return f"{sign}{mantissa}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if exp < 0:
        return f"{sign}0.{'0' * (-exp - 1)}{digits}"
    if len(digits) <= exp + 1:
        return sign + digits + "0" * (exp + 1 - len(digits))
    return f"{sign}{digits[:exp + 1]}.{digits[exp + 1:]}"


def float_text(array: pa.Array) -> pa.Array:
    """A float32/float64 column as PostgreSQL's text, vectorised: Arrow's cast gives the same shortest
    digits, and in fixed notation the same text, for magnitudes in [1e-4, 10^15) (10^6 for float4); the
    other values (exponents, NaN, infinities: rare in real data) go through ``format_float``."""
    import numpy as np

    bits = 32 if pa.types.is_float32(array.type) else 64
    if pa.types.is_float16(array.type):
        array, bits = array.cast(pa.float32()), 32
    text = pc.cast(array, pa.string())
    values = array.to_numpy(zero_copy_only=False)  # NULLs as NaN
    with np.errstate(invalid="ignore"):
        magnitude = np.abs(values)
        odd = ~((magnitude >= 1e-4) & (magnitude < 10.0 ** _FIXED_BELOW[bits])) & (magnitude != 0)
        # Arrow writes an exponent from 1e10 up (double-conversion's decimal_in_shortest_high is 10): only
        # such magnitudes are looked at for one (the others of the fixed range are fixed notation)
        large = np.flatnonzero(~odd & (magnitude >= 1e9))
    if large.size:
        odd[large[pc.match_substring(text.take(pa.array(large)), "e").to_numpy(zero_copy_only=False)]] = True
    if array.null_count:
        odd &= array.is_valid().to_numpy(zero_copy_only=False)
    if not odd.any():
        return text
    where = np.flatnonzero(odd)
    values = array.take(pa.array(where)).to_pylist()
    return pc.replace_with_mask(text, pa.array(odd), pa.array([format_float(v, bits) for v in values], pa.string()))


def format_interval(months: int, days: int, nanos: int) -> str:
    parts = []
    years, months = divmod(months, 12) if months >= 0 else (-((-months) // 12), -((-months) % 12))
    if years:
        parts.append(f"{years} year{'s' if abs(years) != 1 else ''}")
    if months:
        parts.append(f"{months} mon{'s' if abs(months) != 1 else ''}")
    if days:
        parts.append(f"{days} day{'s' if abs(days) != 1 else ''}")
    micros = nanos // 1000 if nanos >= 0 else -((-nanos) // 1000)
    if micros or not parts:
        sign = "-" if micros < 0 else ("+" if parts and (months < 0 or days < 0) else "")
        micros = abs(micros)
        seconds, frac = divmod(micros, 1_000_000)
        hours, rem = divmod(seconds, 3600)
        minutes, secs = divmod(rem, 60)
        text = f"{sign}{hours:02d}:{minutes:02d}:{secs:02d}"
        if frac:
            text += f".{frac:06d}".rstrip("0")
        parts.append(text)
    return " ".join(parts)


def format_offset(offset: dt.timedelta | None) -> str:
    seconds = int(offset.total_seconds()) if offset else 0
    sign = "-" if seconds < 0 else "+"
    seconds = abs(seconds)
    hours, rem = divmod(seconds, 3600)
    minutes, secs = divmod(rem, 60)
    text = f"{sign}{hours:02d}"
    if minutes or secs:
        text += f":{minutes:02d}"
    if secs:
        text += f":{secs:02d}"
    return text


def _array_item(text: str | None) -> str:
    if text is None:
        return "NULL"
    if text == "" or text.upper() == "NULL" or any(ch in text for ch in '{},"\\ \t\n\r'):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _to_json(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _to_json(x) for k, x in v.items()}
    if isinstance(v, list) and v and isinstance(v[0], tuple) and len(v[0]) == 2:  # a map
        return {str(k): _to_json(x) for k, x in v}
    if isinstance(v, (list, tuple)):
        return [_to_json(x) for x in v]
    if isinstance(v, (dt.date, dt.time, dt.datetime, decimal.Decimal, uuid.UUID, dt.timedelta)):
        return str(v)
    if isinstance(v, bytes):
        return "\\x" + v.hex()
    return v


class TextFormatter:
    """Text output of Python values (from Arrow) of one PostgreSQL type, in the session's time zone."""

    def __init__(self, t: pa.DataType, timezone: str = "UTC"):
        self.type = t
        self.tz = _zone(timezone)
        self.value: Callable[[Any], str] = self._build(t)

    def _build(self, t: pa.DataType) -> Callable[[Any], str]:
        if _vector_oid(t) is not None:
            return _vector_text
        if isinstance(t, pa.BaseExtensionType):
            t = t.storage_type
        if pa.types.is_boolean(t):
            return lambda v: "t" if v else "f"
        if pa.types.is_integer(t):
            return str
        if pa.types.is_floating(t):
            bits = 32 if (pa.types.is_float32(t) or pa.types.is_float16(t)) else 64
            return lambda v: format_float(v, bits)
        if pa.types.is_decimal(t):
            return lambda v: format(v, "f")
        if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
            return lambda v: v
        if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:  # uuid (Arrow's extension gives uuid.UUID)
            return lambda v: str(v if isinstance(v, uuid.UUID) else uuid.UUID(bytes=v))
        if pa.types.is_binary(t) or pa.types.is_large_binary(t) or pa.types.is_binary_view(t) or \
                pa.types.is_fixed_size_binary(t):
            return lambda v: "\\x" + v.hex()
        if pa.types.is_date(t):
            return lambda v: v.isoformat()
        if pa.types.is_time(t):
            return lambda v: _trim(v.isoformat())
        if pa.types.is_timestamp(t):
            if t.tz:
                tz = self.tz

                def tstz(v: dt.datetime) -> str:
                    local = v.astimezone(tz)
                    return _trim(local.replace(tzinfo=None).isoformat(sep=" ")) + format_offset(local.utcoffset())
                return tstz
            return lambda v: _trim(v.isoformat(sep=" ")) if isinstance(v, dt.datetime) else str(v)
        if pa.types.is_interval(t):
            return lambda v: format_interval(v.months, v.days, v.nanoseconds)
        if pa.types.is_duration(t):
            return lambda v: format_interval(0, v.days, (v.seconds * 1_000_000 + v.microseconds) * 1000)
        if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
            inner = self._build(t.value_type)
            return lambda v: "{" + ",".join(_array_item(None if x is None else inner(x)) for x in v) + "}"
        if pa.types.is_struct(t) or pa.types.is_map(t):
            return lambda v: json.dumps(_to_json(v), ensure_ascii=False)
        if pa.types.is_dictionary(t):
            return self._build(t.value_type)
        return str


def _trim(text: str) -> str:
    """PostgreSQL prints fractional seconds without trailing zeros."""
    return text.rstrip("0").rstrip(".") if "." in text else text


def _zone(name: str) -> dt.tzinfo:
    if not name or name.upper() in ("UTC", "ETC/UTC", "GMT", "Z"):
        return dt.timezone.utc
    try:
        return ZoneInfo(name)
    except Exception:
        return dt.timezone.utc


def text_column(array: pa.Array, timezone: str = "UTC") -> list[bytes | None]:
    """The text encoding of every value of a column."""
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    if pa.types.is_integer(t):
        return [None if v is None else v.encode() for v in pc.cast(array, pa.string()).to_pylist()]
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return [None if v is None else v.encode() for v in array.to_pylist()]
    fmt = TextFormatter(t, timezone).value
    if pa.types.is_timestamp(t) and t.unit == "ns":
        array = pc.cast(array, pa.timestamp("us", t.tz), safe=False)
    return [None if v is None else fmt(v).encode() for v in array.to_pylist()]


# -- binary output -------------------------------------------------------------------------------------------

_i16, _i32, _i64 = struct.Struct("!h"), struct.Struct("!i"), struct.Struct("!q")
_f32, _f64 = struct.Struct("!f"), struct.Struct("!d")


def numeric_binary(value: decimal.Decimal | int) -> bytes:
    d = decimal.Decimal(value)
    if d.is_nan():
        return struct.pack("!hhHh", 0, 0, 0xC000, 0)
    if d.is_infinite():
        return struct.pack("!hhHh", 0, 0, 0xD000 if d > 0 else 0xF000, 0)
    sign, digits, exponent = d.as_tuple()
    dscale = max(0, -exponent)
    # the digits as a string of decimal digits with the point at len(intpart)
    text = "".join(map(str, digits))
    if exponent >= 0:
        int_part, frac_part = text + "0" * exponent, ""
    else:
        int_part, frac_part = text[:exponent] if len(text) > -exponent else "", text[exponent:].rjust(-exponent, "0")
    int_part = int_part.lstrip("0")
    # pad to groups of 4
    int_part = int_part.rjust((len(int_part) + 3) // 4 * 4, "0")
    frac_part = frac_part.ljust((len(frac_part) + 3) // 4 * 4, "0")
    groups = [int(int_part[i:i + 4]) for i in range(0, len(int_part), 4)] + \
             [int(frac_part[i:i + 4]) for i in range(0, len(frac_part), 4)]
    weight = len(int_part) // 4 - 1
    while groups and groups[0] == 0:  # leading zero groups
        groups.pop(0)
        weight -= 1
    while groups and groups[-1] == 0:
        groups.pop()
    if not groups:
        weight = 0
    return struct.pack(f"!hhHh{len(groups)}h", len(groups), weight, 0x4000 if sign else 0, dscale, *groups)


def numeric_from_binary(data: bytes) -> decimal.Decimal:
    ndigits, weight, sign, dscale = struct.unpack_from("!hhHh", data)
    if sign == 0xC000:
        return decimal.Decimal("NaN")
    if sign in (0xD000, 0xF000):
        return decimal.Decimal("Infinity" if sign == 0xD000 else "-Infinity")
    groups = struct.unpack_from(f"!{ndigits}h", data, 8)
    digits = "".join(f"{g:04d}" for g in groups) or "0"
    point = (weight + 1) * 4  # the decimal point comes after weight + 1 groups
    if point <= 0:
        text = "0." + "0" * (-point) + digits
    elif point >= len(digits):
        text = digits + "0" * (point - len(digits))
    else:
        text = digits[:point] + "." + digits[point:]
    with decimal.localcontext() as ctx:
        ctx.prec = len(text) + dscale + 2
        value = decimal.Decimal(("-" if sign == 0x4000 else "") + text).quantize(decimal.Decimal(1).scaleb(-dscale))
    return value


def _interval_binary(months: int, days: int, micros: int) -> bytes:
    return struct.pack("!qii", micros, days, months)


def binary_encoder(t: pa.DataType, timezone: str = "UTC") -> Callable[[Any], bytes]:
    """The binary encoding of one (non-null) Python value of an Arrow type."""
    if _vector_oid(t) is not None:
        return _vector_binary(t.oid)
    if isinstance(t, pa.BaseExtensionType):
        t = t.storage_type
    oid = arrow_oid(t)[0]
    if oid == BOOL:
        return lambda v: b"\x01" if v else b"\x00"
    if oid == INT2:
        return _i16.pack
    if oid == INT4:
        return _i32.pack
    if oid == INT8:
        return _i64.pack
    if oid == OID:
        return struct.Struct("!I").pack
    if oid == FLOAT4:
        return _f32.pack
    if oid == FLOAT8:
        return _f64.pack
    if oid == NUMERIC:
        return numeric_binary
    if oid == TEXT:
        return lambda v: v.encode()
    if oid == UUID:
        return lambda v: v if isinstance(v, bytes) else uuid.UUID(str(v)).bytes
    if oid == BYTEA:
        return bytes
    if oid == DATE:
        return lambda v: _i32.pack((v - _EPOCH_DATE).days)
    if oid == TIME:
        return lambda v: _i64.pack(((v.hour * 60 + v.minute) * 60 + v.second) * 1_000_000 + v.microsecond)
    if oid == TIMESTAMP:
        return lambda v: _i64.pack(_micros(v - _EPOCH))
    if oid == TIMESTAMPTZ:
        return lambda v: _i64.pack(_micros(v - _EPOCH_TZ))
    if oid == INTERVAL:
        if pa.types.is_duration(t):
            return lambda v: _interval_binary(0, 0, _micros(v))
        return lambda v: _interval_binary(v.months, v.days, v.nanoseconds // 1000)
    if oid == JSON:
        fmt = TextFormatter(t, timezone).value
        return lambda v: fmt(v).encode()
    if oid in ELEMENT_OF:
        elem_type = t.value_type
        elem_oid = arrow_oid(elem_type)[0]
        inner = binary_encoder(elem_type, timezone)

        def array(v: list) -> bytes:
            has_null = any(x is None for x in v)
            parts = [struct.pack("!iiiii", 1, 1 if has_null else 0, elem_oid, len(v), 1)]
            for x in v:
                if x is None:
                    parts.append(b"\xff\xff\xff\xff")
                else:
                    data = inner(x)
                    parts.append(_i32.pack(len(data)) + data)
            return b"".join(parts)
        return array
    fmt = TextFormatter(t, timezone).value
    return lambda v: fmt(v).encode()


def _micros(delta: dt.timedelta) -> int:
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def binary_column(array: pa.Array, timezone: str = "UTC") -> list[bytes | None]:
    t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    if pa.types.is_timestamp(t) and t.unit == "ns":
        array = pc.cast(array, pa.timestamp("us", t.tz), safe=False)
        t = array.type
    enc = binary_encoder(t, timezone)
    return [None if v is None else enc(v) for v in array.to_pylist()]


# -- parameters ------------------------------------------------------------------------------------------------


def _text_bool(s: str) -> bool:
    s = s.strip().lower()
    if s in ("t", "true", "y", "yes", "on", "1"):
        return True
    if s in ("f", "false", "n", "no", "off", "0"):
        return False
    raise ValueError(f"invalid input syntax for type boolean: {s!r}")


def _text_array(s: str, elem_oid: int) -> list:
    """Parse a one-dimensional PostgreSQL array literal."""
    s = s.strip()
    if not (s.startswith("{") and s.endswith("}")):
        raise ValueError("malformed array literal")
    body, out, i = s[1:-1], [], 0
    while i < len(body):
        if body[i] == '"':
            j, buf = i + 1, []
            while body[j] != '"':
                if body[j] == "\\":
                    j += 1
                buf.append(body[j])
                j += 1
            out.append(decode_text("".join(buf), elem_oid))
            i = j + 1
        else:
            j = body.find(",", i)
            j = len(body) if j < 0 else j
            item = body[i:j].strip()
            out.append(None if item.upper() == "NULL" else decode_text(item, elem_oid))
            i = j
        if i < len(body) and body[i] == ",":
            i += 1
    return out


def decode_text(s: str, oid: int) -> Any:
    """A text-format parameter as a Python value for DuckDB (unknown types stay strings)."""
    if oid == BOOL:
        return _text_bool(s)
    if oid in (INT2, INT4, INT8, OID):
        return int(s)
    if oid in (FLOAT4, FLOAT8):
        return float(s)
    if oid == NUMERIC:
        return decimal.Decimal(s)
    if oid == BYTEA:
        return bytes.fromhex(s[2:]) if s.startswith("\\x") else s.encode()
    if oid == DATE:
        return dt.date.fromisoformat(s.strip()[:10])  # pgjdbc sends '2026-01-01 +00'
    if oid == TIME:
        return dt.time.fromisoformat(s.strip())
    if oid == TIMESTAMP:
        return _timestamp(s).replace(tzinfo=None)
    if oid == TIMESTAMPTZ:
        v = _timestamp(s)
        return v if v.tzinfo else v.replace(tzinfo=dt.timezone.utc)
    if oid == UUID:
        return str(uuid.UUID(s))
    if oid in ELEMENT_OF:
        return _text_array(s, ELEMENT_OF[oid])
    return s


def _timestamp(s: str) -> dt.datetime:
    s = s.strip()
    for sign in ("+", "-"):  # '2026-01-01 10:00:00 +02' -> '2026-01-01 10:00:00+02'
        at = s.rfind(" " + sign)
        if at > 10:
            s = s[:at] + s[at + 1:]
    return dt.datetime.fromisoformat(s)


def decode_binary(data: bytes, oid: int) -> Any:
    """A binary-format parameter as a Python value."""
    if oid == BOOL:
        return data != b"\x00"
    if oid == INT2:
        return _i16.unpack(data)[0]
    if oid in (INT4,):
        return _i32.unpack(data)[0]
    if oid == OID:
        return struct.unpack("!I", data)[0]
    if oid == INT8:
        return _i64.unpack(data)[0]
    if oid == FLOAT4:
        return _f32.unpack(data)[0]
    if oid == FLOAT8:
        return _f64.unpack(data)[0]
    if oid == NUMERIC:
        return numeric_from_binary(data)
    if oid == BYTEA:
        return bytes(data)
    if oid in (TEXT, VARCHAR, BPCHAR, NAME, UNKNOWN, CHAR, JSON, XML):
        return data.decode("utf-8")
    if oid == JSONB:
        return data[1:].decode("utf-8")
    if oid == DATE:
        return _EPOCH_DATE + dt.timedelta(days=_i32.unpack(data)[0])
    if oid == TIME:
        micros = _i64.unpack(data)[0]
        seconds, micro = divmod(micros, 1_000_000)
        return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, micro)
    if oid == TIMESTAMP:
        return _EPOCH + dt.timedelta(microseconds=_i64.unpack(data)[0])
    if oid == TIMESTAMPTZ:
        return _EPOCH_TZ + dt.timedelta(microseconds=_i64.unpack(data)[0])
    if oid == INTERVAL:
        micros, days, months = struct.unpack("!qii", data)
        if months:
            raise ValueError("binary intervals with months are not supported as parameters")
        return dt.timedelta(days=days, microseconds=micros)
    if oid == UUID:
        return str(uuid.UUID(bytes=bytes(data)))
    if oid in ELEMENT_OF:
        ndim, _flags, elem_oid = struct.unpack_from("!iii", data)
        if ndim == 0:
            return []
        if ndim != 1:
            raise ValueError("only one-dimensional arrays are supported as parameters")
        size, _lower = struct.unpack_from("!ii", data, 12)
        pos, out = 20, []
        for _ in range(size):
            n = _i32.unpack_from(data, pos)[0]
            pos += 4
            if n < 0:
                out.append(None)
            else:
                out.append(decode_binary(data[pos:pos + n], elem_oid))
                pos += n
        return out
    raise ValueError(f"binary parameters of type {oid} are not supported")


def sql_type_name(oid: int) -> str | None:
    """The DuckDB type a parameter of this OID is cast to (None: leave it to inference)."""
    return {BOOL: "BOOLEAN", INT2: "SMALLINT", INT4: "INTEGER", INT8: "BIGINT", FLOAT4: "REAL", FLOAT8: "DOUBLE",
            NUMERIC: "DECIMAL(38,10)", TEXT: "VARCHAR", VARCHAR: "VARCHAR", BYTEA: "BLOB", DATE: "DATE",
            TIME: "TIME", TIMESTAMP: "TIMESTAMP", TIMESTAMPTZ: "TIMESTAMPTZ", INTERVAL: "INTERVAL",
            UUID: "UUID", JSON: "JSON"}.get(oid)


# -- whole batches: DataRow messages built column-wise ------------------------------------------------------------
#
# A batch's DataRow messages are assembled by one Arrow kernel (binary_join_element_wise) over a few columns of
# bytes: runs of fixed-width bytes (the row header, fixed-width binary cells, and the length prefix of each
# variable-width cell) are packed side by side into one numpy block per run, and each variable-width column
# (text, strings) is joined as it is. So a row costs no Python call, and every byte is copied about twice.

_EPOCH_DAYS = 10957  # 2000-01-01 in days since 1970-01-01
_EPOCH_MICROS = _EPOCH_DAYS * 86_400_000_000
_EMPTY = pa.scalar(b"", pa.large_binary())
_I16, _I32 = struct.Struct("!h"), struct.Struct("!i")


def _fixed(values, width: int) -> pa.Array:
    """A numpy array of fixed-width values as a large_binary Arrow array."""
    return _block_array(values.view("u1").reshape(len(values), width) if len(values) else
                        __import__("numpy").empty((0, width), "u1"))


def _block_array(block, validity=None) -> pa.Array:
    """The rows of a C-contiguous (n, width) uint8 block as a large_binary array (no copy), NULL where
    ``validity`` (an Arrow bitmap) is unset."""
    import numpy as np

    n, width = block.shape
    offsets = np.arange(0, (n + 1) * width, width, dtype=np.int64)
    return pa.LargeBinaryArray.from_buffers(pa.large_binary(), n, [validity, pa.py_buffer(offsets),
                                                                   pa.py_buffer(np.ascontiguousarray(block))])


def _records_part(array: pa.Array, records):
    """A column of fixed-width binary cells from a numpy structured array whose first field is the int32 length:
    a block of whole cells when no value is NULL, else the values alone (NULL where NULL)."""
    block = records.view("u1").reshape(len(records), records.dtype.itemsize)
    if not array.null_count:
        return "fixed", block
    return "var", _block_array(block[:, 4:], array.is_valid().buffers()[1])


def _fixed_cells(array: pa.Array, numbers, width: int, dtype: str):
    """Binary cells of a fixed-width type from a numpy array of the values (NULLs' values ignored)."""
    import numpy as np

    records = np.empty(len(numbers), dtype=[("len", ">i4"), ("v", dtype)])
    records["len"] = width
    records["v"] = numbers
    return _records_part(array, records)


def _column_part(array: pa.Array, fmt: int, timezone: str):
    """One column's cells: ("fixed", uint8 block (rows, width) of whole cells, length included) or ("var",
    large_binary array of the values, NULL where the cell is NULL)."""
    import numpy as np

    t = array.type
    if _vector_oid(t) is not None:
        cells = text_column(array, timezone) if fmt == 0 else binary_column(array, timezone)
        return "var", pa.array(cells, pa.large_binary())
    if isinstance(t, pa.BaseExtensionType):
        array = array.storage if hasattr(array, "storage") else array
        t = array.type
    if pa.types.is_dictionary(t):
        array = array.cast(t.value_type)
        t = array.type
    if fmt == 0:
        if pa.types.is_string(t) or pa.types.is_large_string(t):
            return "var", array
        if pa.types.is_fixed_size_binary(t) and t.byte_width == 16:
            return "var", uuid_text(array)
        if pa.types.is_integer(t) or pa.types.is_decimal(t) or pa.types.is_date32(t):
            return "var", pc.cast(array, pa.string())
        if pa.types.is_boolean(t):
            if array.null_count:
                return "var", pc.if_else(array, "t", "f")
            letters = np.where(array.to_numpy(zero_copy_only=False), ord("t"), ord("f")).astype("u1")
            return _fixed_cells(array, letters, 1, "u1")
        if pa.types.is_floating(t):
            return "var", float_text(array)
        if pa.types.is_timestamp(t) and (not t.tz or _zone(timezone) is dt.timezone.utc):
            micros = pc.cast(array, pa.timestamp("us", t.tz), safe=False).cast(pa.int64())
            values = micros.fill_null(0).to_numpy()
            seconds = pa.array(np.floor_divide(values, 1_000_000), pa.int64()).cast(pa.timestamp("s"))
            text = pc.cast(seconds, pa.string())  # 'YYYY-MM-DD HH:MM:SS' (UTC wall clock when zoned)
            fraction = np.mod(values, 1_000_000)
            if fraction.any():
                digits = pc.utf8_lpad(pc.cast(pa.array(fraction), pa.string()), 6, "0")
                digits = pc.utf8_rtrim(digits, "0")
                text = pc.if_else(pa.array(fraction != 0), pc.binary_join_element_wise(text, ".", digits, ""), text)
            text = pc.if_else(array.is_valid(), text, pa.scalar(None, pa.string()))
            if t.tz:
                text = pc.binary_join_element_wise(text, "+00", "")
            return "var", text
        return "var", pa.array(text_column(array, timezone), pa.large_binary())
    oid = arrow_oid(t)[0]
    filled = None
    if oid in (INT2, INT4, INT8, FLOAT4, FLOAT8, BOOL, DATE, TIMESTAMP, TIMESTAMPTZ) and \
            not pa.types.is_uint64(t):
        if pa.types.is_date32(t):
            filled = array.cast(pa.int32()).fill_null(0).to_numpy() - _EPOCH_DAYS
        elif pa.types.is_timestamp(t):
            micros = pc.cast(array, pa.timestamp("us", t.tz), safe=False).cast(pa.int64()).fill_null(0)
            filled = micros.to_numpy() - _EPOCH_MICROS
        elif pa.types.is_boolean(t):
            filled = array.fill_null(False).to_numpy(zero_copy_only=False).astype("u1")
        elif pa.types.is_integer(t) or pa.types.is_floating(t):
            filled = array.fill_null(0).to_numpy(zero_copy_only=False)
    if oid == NUMERIC and pa.types.is_decimal128(t) and t.precision <= 15 and t.scale >= 0:
        return _numeric_cells(array, t.precision, t.scale)
    if filled is not None:
        dtype, width = {INT2: (">i2", 2), INT4: (">i4", 4), INT8: (">i8", 8), FLOAT4: (">f4", 4), FLOAT8: (">f8", 8),
                        BOOL: ("u1", 1), DATE: (">i4", 4), TIMESTAMP: (">i8", 8), TIMESTAMPTZ: (">i8", 8)}[oid]
        return _fixed_cells(array, np.asarray(filled).astype(dtype), width, dtype)
    if oid in (TEXT, UUID):  # UUID: the 16 bytes themselves
        return "var", array
    return "var", pa.array(binary_column(array, timezone), pa.large_binary())


def _numeric_cells(array: pa.Array, precision: int, scale: int):
    """Binary numeric cells of a decimal128(p <= 15, s), vectorised: a fixed number of base-10000 digits per
    value (leading and trailing zero digits are valid in the wire format, which is all weights)."""
    import numpy as np

    n = len(array)
    raw = np.frombuffer(array.buffers()[1], dtype="<i8", count=2 * (n + array.offset))[2 * array.offset::2]
    unscaled = raw.copy()
    if array.null_count:
        unscaled[~np.asarray(array.is_valid().to_numpy(zero_copy_only=False))] = 0
    frac_groups = (scale + 3) // 4
    value = np.abs(unscaled) * (10 ** (4 * frac_groups - scale))  # < 10**18: fits
    int_groups = max(1, (precision - scale + 3) // 4)
    groups = int_groups + frac_groups
    digits = np.empty((n, groups), dtype=">i2")
    for i in range(groups - 1, -1, -1):
        value, digit = np.divmod(value, 10000)
        digits[:, i] = digit
    records = np.empty(n, dtype=[("len", ">i4"), ("ndigits", ">i2"), ("weight", ">i2"), ("sign", ">u2"),
                                 ("dscale", ">i2"), ("digits", ">i2", (groups,))])
    records["len"] = 8 + 2 * groups
    records["ndigits"] = groups
    records["weight"] = int_groups - 1
    records["sign"] = np.where(unscaled < 0, 0x4000, 0)
    records["dscale"] = scale
    records["digits"] = digits
    return _records_part(array, records)


_PACKED_ROWS = 256  # below this many rows, a few blocks are put side by side by numpy.hstack (less set-up)


def _side_by_side(blocks: list):
    """C-contiguous (rows, width) uint8 blocks side by side in one block: each block seen as one fixed-size
    void value per row and assigned as a field of a record (several times faster than numpy.hstack for
    narrow blocks)."""
    import numpy as np

    n = blocks[0].shape[0]
    record = np.dtype([(f"f{i}", f"V{b.shape[1]}") for i, b in enumerate(blocks) if b.shape[1]])
    out = np.empty(n, record)
    for i, b in enumerate(blocks):
        if b.shape[1]:
            out[f"f{i}"] = np.ascontiguousarray(b).view(f"V{b.shape[1]}").reshape(n)
    return out.view("u1").reshape(n, record.itemsize)


def _same_width_block(part: pa.Array, sizes):
    """The values of a variable-width column as a (rows, width) uint8 block, without copying, when no cell
    is NULL and every cell has the same width (None otherwise)."""
    import numpy as np

    n = len(part)
    if not n or part.null_count or sizes[0] != sizes[-1] or sizes.min() != sizes.max():
        return None
    width = int(sizes[0])
    wide = pa.types.is_large_binary(part.type) or pa.types.is_large_string(part.type)
    offsets = part.buffers()[1]
    start = int(np.frombuffer(offsets, dtype=np.int64 if wide else np.int32, count=1,
                              offset=part.offset * (8 if wide else 4))[0])
    data = part.buffers()[2]
    if width == 0 or data is None:
        return np.empty((n, 0), "u1")
    return np.frombuffer(data, dtype="u1", count=n * width, offset=start).reshape(n, width)


_FEW_ROWS = 32  # a batch this short (a point query's answer) is assembled row by row: less set-up than the kernels


def _few_rows(batch: pa.RecordBatch, formats: list[int], timezone: str):
    """``data_rows`` of a short batch: the same column parts, put together in Python."""
    import numpy as np

    n = batch.num_rows
    columns = []
    for i in range(batch.num_columns):
        array, fmt = batch.column(i), formats[i] if i < len(formats) else 0
        t = array.type
        if fmt == 0 and (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)):
            part = array  # Python's str of an integer is Arrow's cast (no kernel set-up for a few values)
            kind = "ints" if pa.types.is_integer(t) else "var"
        else:
            kind, part = _column_part(array, fmt, timezone)
        if kind == "fixed":
            columns.append([row.tobytes() for row in part])
            continue
        cells = []
        for v in part.to_pylist():
            if v is None:
                cells.append(b"\xff\xff\xff\xff")
            else:
                v = str(v).encode() if kind == "ints" else v.encode() if isinstance(v, str) else v
                cells.append(_I32.pack(len(v)) + v)
        columns.append(cells)
    head = _I16.pack(batch.num_columns)
    rows = []
    for cells in zip(*columns) if columns else [()] * n:
        body = b"".join(cells)
        rows.append(b"D" + _I32.pack(len(body) + 6) + head + body)
    offsets, end = [0], 0
    for r in rows:
        end += len(r)
        offsets.append(end)
    return pa.py_buffer(b"".join(rows)), np.array(offsets, dtype=np.int64)


def data_rows(batch: pa.RecordBatch, formats: list[int], timezone: str = "UTC"):
    """Every row of a batch as DataRow messages: (one buffer, the byte offset of each row, n + 1 of them)."""
    import numpy as np

    n = batch.num_rows
    if n <= _FEW_ROWS:
        return _few_rows(batch, formats, timezone)
    header = np.empty(n, dtype=[("kind", "S1"), ("len", ">i4"), ("ncols", ">i2")])
    lengths = np.full(n, 4 + 2, dtype=np.int64)
    runs: list[list] = [[header.view("u1").reshape(n, 7)]]  # runs of fixed-width blocks, between variable columns
    variable: list[pa.Array] = []
    for i in range(batch.num_columns):
        kind, part = _column_part(batch.column(i), formats[i] if i < len(formats) else 0, timezone)
        if kind == "fixed":
            runs[-1].append(part)
            lengths += part.shape[1]
            continue
        sizes = pc.binary_length(part).fill_null(-1).to_numpy(zero_copy_only=False)
        runs[-1].append(sizes.astype(">i4").view("u1").reshape(n, 4))
        block = _same_width_block(part, sizes) if n >= _PACKED_ROWS else None
        if block is not None:  # every cell as wide (codes, dates, timestamps): packed with its neighbours
            runs[-1].append(block)
            lengths += 4 + block.shape[1]
            continue
        lengths += 4 + np.maximum(sizes, 0)
        variable.append(part if pa.types.is_large_binary(part.type) else part.cast(pa.large_binary()))
        runs.append([])
    header["kind"] = b"D"
    header["len"] = lengths
    header["ncols"] = batch.num_columns
    pieces: list[pa.Array] = []
    for j, run in enumerate(runs):
        if run:
            pieces.append(_block_array(run[0] if len(run) == 1 else _side_by_side(run) if n >= _PACKED_ROWS else
                                       np.hstack(run)))
        if j < len(variable):
            pieces.append(variable[j])
    if len(pieces) == 1:  # every cell fixed-width
        rows = pieces[0]
    else:
        rows = pc.binary_join_element_wise(*pieces, _EMPTY, null_handling="replace", null_replacement="")
    offsets = np.frombuffer(rows.buffers()[1], dtype=np.int64, count=n + 1, offset=rows.offset * 8)
    return rows.buffers()[2], offsets
