"""The Flight SQL catalog: the result tables of the metadata commands (``CommandGetCatalogs``,
``CommandGetDbSchemas``, ``CommandGetTables``, ``CommandGetTableTypes``, ``CommandGetPrimaryKeys``, the
foreign-key commands, ``CommandGetSqlInfo``, ``CommandGetXdbcTypeInfo``), built for one principal and purpose.

The server (``server.py``) decodes a command and calls the function of the same name here; each returns a
``pa.Table`` with the command's schema (``SCHEMAS``). What is listed is the one rule of every catalog
(``governance/listing.py``, shared with the PostgreSQL catalog): the datasets a query may read, their
columns minus the denied ones, and the open ``system`` schema. A declared purpose must be one the principal
holds (``Platform.require_purpose``), as for a query. The catalog is the mesh (named like the database of
the PostgreSQL server), each quantum a schema, each dataset a ``TABLE`` and each system table a ``VIEW``.
Patterns are SQL LIKE patterns (``%``, ``_``, ``\\`` escapes), matched case-insensitively like identifiers.
A table's schema (``include_schema``) is the schema a ``select *`` of it returns to the principal: the
governed query is compiled by the platform and typed by the engine with ``LIMIT 0`` (no row is read).
Listings hold names, types and descriptions, never a value; each listing is audited (interface ``flight``).

The schemas follow ``format/FlightSql.proto`` as the reference implementations (C++, Java, Go) build
them: where the proto's comment and those differ (the primary keys' ``key_sequence`` before ``key_name``,
apache/arrow#44521; the list items named ``item``), the implementations win, since drivers are built on them.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import pyarrow as pa
from cachetools import LRUCache

from ... import __version__, errors
from ...governance import audit, listing

log = logging.getLogger("quanta.flight.catalog")

CATALOG_TYPES = ("TABLE", "VIEW")  # datasets, system tables (pgwire: BASE TABLE and VIEW)
ESCAPE = "\\"
MAX_PATTERN = 1024  # characters of a client's LIKE pattern: longer than any name (a pattern costs CPU and cache)

_STR, _BOOL, _BIGINT, _BITMASK, _LIST, _MAP = range(6)  # the SqlInfo value union's type codes

_KEYS_FIELDS = [
    pa.field("pk_catalog_name", pa.utf8()), pa.field("pk_db_schema_name", pa.utf8()),
    pa.field("pk_table_name", pa.utf8(), False), pa.field("pk_column_name", pa.utf8(), False),
    pa.field("fk_catalog_name", pa.utf8()), pa.field("fk_db_schema_name", pa.utf8()),
    pa.field("fk_table_name", pa.utf8(), False), pa.field("fk_column_name", pa.utf8(), False),
    pa.field("key_sequence", pa.int32(), False), pa.field("fk_key_name", pa.utf8()),
    pa.field("pk_key_name", pa.utf8()), pa.field("update_rule", pa.uint8(), False),
    pa.field("delete_rule", pa.uint8(), False),
]
_INFO_VALUE = pa.dense_union([
    pa.field("string_value", pa.utf8(), False),
    pa.field("bool_value", pa.bool_(), False),
    pa.field("bigint_value", pa.int64(), False),
    pa.field("int32_bitmask", pa.int32(), False),
    pa.field("string_list", pa.list_(pa.utf8()), False),
    pa.field("int32_to_int32_list_map", pa.map_(pa.int32(), pa.list_(pa.int32())), False),
])
_TABLES_FIELDS = [pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8()),
                  pa.field("table_name", pa.utf8(), False), pa.field("table_type", pa.utf8(), False)]

SCHEMAS: dict[str, pa.Schema] = {
    "CommandGetCatalogs": pa.schema([pa.field("catalog_name", pa.utf8(), False)]),
    "CommandGetDbSchemas": pa.schema([pa.field("catalog_name", pa.utf8()),
                                      pa.field("db_schema_name", pa.utf8(), False)]),
    "CommandGetTables": pa.schema(_TABLES_FIELDS),
    "CommandGetTablesWithSchema": pa.schema(_TABLES_FIELDS + [pa.field("table_schema", pa.binary(), False)]),
    "CommandGetTableTypes": pa.schema([pa.field("table_type", pa.utf8(), False)]),
    "CommandGetPrimaryKeys": pa.schema([
        pa.field("catalog_name", pa.utf8()), pa.field("db_schema_name", pa.utf8()),
        pa.field("table_name", pa.utf8(), False), pa.field("column_name", pa.utf8(), False),
        pa.field("key_sequence", pa.int32(), False), pa.field("key_name", pa.utf8())]),
    "CommandGetExportedKeys": pa.schema(_KEYS_FIELDS),
    "CommandGetImportedKeys": pa.schema(_KEYS_FIELDS),
    "CommandGetCrossReference": pa.schema(_KEYS_FIELDS),
    "CommandGetSqlInfo": pa.schema([pa.field("info_name", pa.uint32(), False),
                                    pa.field("value", _INFO_VALUE, False)]),
    "CommandGetXdbcTypeInfo": pa.schema([
        pa.field("type_name", pa.utf8(), False), pa.field("data_type", pa.int32(), False),
        pa.field("column_size", pa.int32()), pa.field("literal_prefix", pa.utf8()),
        pa.field("literal_suffix", pa.utf8()),
        pa.field("create_params", pa.list_(pa.field("item", pa.utf8(), False))),
        pa.field("nullable", pa.int32(), False), pa.field("case_sensitive", pa.bool_(), False),
        pa.field("searchable", pa.int32(), False), pa.field("unsigned_attribute", pa.bool_()),
        pa.field("fixed_prec_scale", pa.bool_(), False), pa.field("auto_increment", pa.bool_()),
        pa.field("local_type_name", pa.utf8()), pa.field("minimum_scale", pa.int32()),
        pa.field("maximum_scale", pa.int32()), pa.field("sql_data_type", pa.int32(), False),
        pa.field("datetime_subcode", pa.int32()), pa.field("num_prec_radix", pa.int32()),
        pa.field("interval_precision", pa.int32())]),
}

# -- patterns ------------------------------------------------------------------------------------------------


_ANY_RUN, _ANY_ONE = object(), object()  # the tokens of % and _


@functools.lru_cache(maxsize=256)
def like(pattern: str | None) -> Callable[[str], bool]:
    """A matcher of SQL LIKE ``pattern`` (``%`` any run, ``_`` one character, ``\\`` escapes the next
    character), case-insensitive like identifiers; None matches everything. No regular expression: the
    pattern is the client's, and a greedy match with one backtrack point is O(len(name) * len(pattern)).
    A pattern longer than ``MAX_PATTERN`` is refused (a client's megabytes of pattern would cost seconds of
    CPU under the GIL and stay in this cache)."""
    if pattern is None:
        return lambda name: True
    if len(pattern) > MAX_PATTERN:  # refused before any work (nothing cached: lru_cache keeps no exception)
        raise errors.ProgrammingError(f"a name pattern is at most {MAX_PATTERN} characters, not {len(pattern)}")
    tokens: list = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == ESCAPE and i + 1 < len(pattern):
            tokens.append(pattern[i + 1].lower())
            i += 2
            continue
        if ch == "%":
            if not tokens or tokens[-1] is not _ANY_RUN:
                tokens.append(_ANY_RUN)
        else:
            tokens.append(_ANY_ONE if ch == "_" else ch.lower())
        i += 1
    return functools.partial(_like_match, tuple(tokens))


def _like_match(tokens: tuple, name: str) -> bool:
    text = [c.lower() for c in name]
    i = j = 0
    star, mark = -1, 0  # the last % seen, and where in the text it began matching
    while i < len(text):
        if j < len(tokens) and tokens[j] is _ANY_RUN:
            star, mark = j, i
            j += 1
        elif j < len(tokens) and (tokens[j] is _ANY_ONE or tokens[j] == text[i]):
            i += 1
            j += 1
        elif star >= 0:  # let the last % take one more character
            mark += 1
            i, j = mark, star + 1
        else:
            return False
    while j < len(tokens) and tokens[j] is _ANY_RUN:
        j += 1
    return j == len(tokens)


def _catalog_matches(platform, catalog: str | None) -> bool:
    """None: any catalog; "": those without one (none: every table is in the mesh's); else the mesh's name."""
    return catalog is None or catalog == platform.mesh.name


def _schema_matches(schema: str | None, name: str) -> bool:
    """An exact schema argument (primary and foreign keys): None any, "" none, else the name."""
    return schema is None or schema.lower() == name


# -- what is listed ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Table:
    schema: str
    name: str
    table_type: str
    item: object  # listing.Listed or listing.SystemTable


def _tables(platform, principal, purpose: str | None) -> list[_Table]:
    """The tables of this principal's catalog, ordered by schema then name."""
    out = [_Table(i.dataset.quantum.lower(), i.dataset.name.lower(), "TABLE", i)
           for i in listing.visible_datasets(platform, principal, purpose)]
    out += [_Table(listing.SYSTEM_SCHEMA, t.name, "VIEW", t) for t in _system_tables(platform)]
    return sorted(out, key=lambda t: (t.schema, t.name, t.table_type))


_SCHEMA_CACHE: LRUCache = LRUCache(maxsize=1024)  # (principal, state version, purpose, table) -> schema
_SYSTEM_CACHE: LRUCache = LRUCache(maxsize=4)  # state version -> its system tables
_SCHEMA_LOCK = threading.Lock()


def _system_tables(platform) -> list[listing.SystemTable]:
    """The system schema's tables, described once per state (the same for every principal)."""
    version = platform.state.namespace.version
    with _SCHEMA_LOCK:
        found = _SYSTEM_CACHE.get(version)
    if found is None:
        found = listing.system_tables(platform)
        with _SCHEMA_LOCK:
            _SYSTEM_CACHE[version] = found
    return found


def _audited(platform, principal, purpose: str | None, command: str, build: Callable[[], pa.Table]) -> pa.Table:
    """Run one listing for ``principal`` (its purpose checked first) and audit it like a catalog query."""
    platform.require_purpose(principal, purpose, command, "flight")
    started = time.perf_counter()
    entry = audit.Entry(principal.name, command, "flight", purpose)
    try:
        table = build()
    except BaseException as e:
        entry.status = "denied" if isinstance(e, errors.AccessDenied) else "error"
        entry.error = str(e)
        raise
    else:
        entry.rows = table.num_rows
        return table
    finally:
        entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
        platform.audit.record(entry)


def _clip(value, limit: int = 200):
    """A client's argument as the audit log keeps it: at most ``limit`` characters."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit] + "..."
    if isinstance(value, list):
        return [_clip(v, limit) for v in value[:20]]
    return value


def _describe(command: str, **args) -> str:
    """The audit log's text of a command: its name and the arguments sent."""
    sent = ", ".join(f"{k}={_clip(v)!r}" for k, v in args.items() if v not in (None, [], ()))
    return f"{command}({sent})"


# -- CommandGetCatalogs, CommandGetDbSchemas, CommandGetTables, CommandGetTableTypes ---------------------------


def catalogs(platform, principal, purpose: str | None) -> pa.Table:
    """The one catalog: the mesh (its name is the PostgreSQL server's database name)."""
    return _audited(platform, principal, purpose, "CommandGetCatalogs()", lambda: pa.Table.from_pylist(
        [{"catalog_name": platform.mesh.name}], schema=SCHEMAS["CommandGetCatalogs"]))


def db_schemas(platform, principal, purpose: str | None, catalog: str | None,
               db_schema_filter_pattern: str | None) -> pa.Table:
    """The schemas holding a table this principal may read (the ``system`` schema always), by name."""
    def build() -> pa.Table:
        rows = []
        if _catalog_matches(platform, catalog):
            match = like(db_schema_filter_pattern)
            names = sorted({t.schema for t in _tables(platform, principal, purpose)})
            rows = [{"catalog_name": platform.mesh.name, "db_schema_name": n} for n in names if match(n)]
        return pa.Table.from_pylist(rows, schema=SCHEMAS["CommandGetDbSchemas"])

    command = _describe("CommandGetDbSchemas", catalog=catalog, db_schema_filter_pattern=db_schema_filter_pattern)
    return _audited(platform, principal, purpose, command, build)


def tables(platform, principal, purpose: str | None, catalog: str | None, db_schema_filter_pattern: str | None,
           table_name_filter_pattern: str | None, table_types: Sequence[str] | None = None,
           include_schema: bool = False) -> pa.Table:
    """The tables this principal may read, filtered; with ``include_schema`` each one's IPC-serialized
    Arrow schema, the schema a ``select *`` of it returns to this principal."""
    def build() -> pa.Table:
        rows = []
        if _catalog_matches(platform, catalog):
            schema_match, table_match = like(db_schema_filter_pattern), like(table_name_filter_pattern)
            types = {t.upper() for t in table_types or ()}
            for t in _tables(platform, principal, purpose):
                if schema_match(t.schema) and table_match(t.name) and (not types or t.table_type in types):
                    row = {"catalog_name": platform.mesh.name, "db_schema_name": t.schema, "table_name": t.name,
                           "table_type": t.table_type}
                    if include_schema:
                        row["table_schema"] = table_schema(platform, principal, purpose, t).serialize().to_pybytes()
                    rows.append(row)
        return pa.Table.from_pylist(rows, schema=SCHEMAS["CommandGetTablesWithSchema" if include_schema
                                                         else "CommandGetTables"])

    command = _describe("CommandGetTables", catalog=catalog, db_schema_filter_pattern=db_schema_filter_pattern,
                        table_name_filter_pattern=table_name_filter_pattern, table_types=list(table_types or ()),
                        include_schema=include_schema or None)
    return _audited(platform, principal, purpose, command, build)


def table_types(platform, principal, purpose: str | None) -> pa.Table:
    """TABLE (datasets) and VIEW (the system tables)."""
    return _audited(platform, principal, purpose, "CommandGetTableTypes()", lambda: pa.Table.from_pylist(
        [{"table_type": t} for t in sorted(CATALOG_TYPES)], schema=SCHEMAS["CommandGetTableTypes"]))


def table_schema(platform, principal, purpose: str | None, table: _Table) -> pa.Schema:
    """The Arrow schema a ``select *`` of ``table`` returns to this principal (masked columns with the type
    their mask gives, denied ones absent): the governed query compiled by the platform, typed by the engine
    under ``LIMIT 0`` (nothing read), with the Flight SQL column metadata."""
    state = platform.state
    key = (principal.fingerprint, state.namespace.version, purpose, table.schema, table.name)
    with _SCHEMA_LOCK:
        found = _SCHEMA_CACHE.get(key)
    if found is not None:
        return found
    sql = f'SELECT * FROM "{table.schema}"."{table.name}"'
    try:
        plan = platform.compile(sql, principal, purpose=purpose, interface="flight")
        execution = state.backend.execute(f"SELECT * FROM ({plan.sql}) LIMIT 0", None,
                                          state.mesh.settings["query_timeout_seconds"])
    except errors.Error as e:  # a source that cannot be read now: listed, its columns unknown (no guess)
        log.warning("the schema of %s.%s could not be typed for %s: %s", table.schema, table.name,
                    principal.name, e)
        return pa.schema([])
    try:
        schema = execution.schema
    finally:
        execution.close()
    types = {c.name.lower(): c.data_type for c in _columns(table)}
    fields = []
    for f in schema:
        metadata = {"ARROW:FLIGHT:SQL:CATALOG_NAME": platform.mesh.name, "ARROW:FLIGHT:SQL:DB_SCHEMA_NAME": table.schema,
                    "ARROW:FLIGHT:SQL:TABLE_NAME": table.name, "ARROW:FLIGHT:SQL:IS_READ_ONLY": "1",
                    "ARROW:FLIGHT:SQL:IS_SEARCHABLE": "1", "ARROW:FLIGHT:SQL:IS_AUTO_INCREMENT": "0",
                    "ARROW:FLIGHT:SQL:IS_CASE_SENSITIVE": "1" if pa.types.is_string(f.type) else "0"}
        declared = types.get(f.name.lower())
        if declared:
            metadata["ARROW:FLIGHT:SQL:TYPE_NAME"] = declared
        if pa.types.is_decimal(f.type):
            metadata["ARROW:FLIGHT:SQL:PRECISION"] = str(f.type.precision)
            metadata["ARROW:FLIGHT:SQL:SCALE"] = str(f.type.scale)
        fields.append(f.with_metadata(metadata))
    schema = pa.schema(fields)
    with _SCHEMA_LOCK:
        _SCHEMA_CACHE[key] = schema
    return schema


def _columns(table: _Table) -> tuple:
    return table.item.columns  # Listed.columns (contract columns) or SystemTable.columns


# -- CommandGetPrimaryKeys and the foreign keys ----------------------------------------------------------------


def _find(platform, principal, purpose: str | None, catalog: str | None, db_schema: str | None,
          table: str | None) -> list[listing.Listed]:
    """The listed datasets named ``table`` (exactly, case-insensitive) in the catalog and schema given."""
    if not table or not _catalog_matches(platform, catalog):
        return []
    return [i for i in listing.visible_datasets(platform, principal, purpose)
            if i.dataset.name.lower() == table.lower() and _schema_matches(db_schema, i.dataset.quantum.lower())]


def _pk_position(column) -> tuple[int, int]:
    position = (getattr(column, "raw", None) or {}).get("primaryKeyPosition")
    return (int(position) if isinstance(position, int) and position > 0 else 1 << 30, column.ordinal)


def _primary_key(item: listing.Listed) -> list:
    """The listed columns of the contract's primary key, in its primaryKeyPosition order (pgwire's too)."""
    return sorted((c for c in item.columns if c.primary_key), key=_pk_position)


def primary_keys(platform, principal, purpose: str | None, catalog: str | None, db_schema: str | None,
                 table: str) -> pa.Table:
    """The contract's primary key of a table this principal may read (its listed columns)."""
    def build() -> pa.Table:
        rows = []
        for item in _find(platform, principal, purpose, catalog, db_schema, table):
            name = item.dataset.name.lower()
            rows += [{"catalog_name": platform.mesh.name, "db_schema_name": item.dataset.quantum.lower(),
                      "table_name": name, "column_name": c.name, "key_sequence": n, "key_name": f"{name}_pkey"}
                     for n, c in enumerate(_primary_key(item), start=1)]
        return pa.Table.from_pylist(rows, schema=SCHEMAS["CommandGetPrimaryKeys"])

    command = _describe("CommandGetPrimaryKeys", catalog=catalog, db_schema=db_schema, table=table)
    return _audited(platform, principal, purpose, command, build)


@dataclass(frozen=True)
class ForeignKey:
    """A relationship a contract declares (ODCS 3.1 ``relationships``, type foreignKey) between two listed
    datasets: ``fk`` columns reference ``pk`` columns, in order."""

    fk: listing.Listed
    fk_columns: tuple[str, ...]
    pk: listing.Listed
    pk_columns: tuple[str, ...]

    @property
    def name(self) -> str:
        return f"{self.fk.dataset.name.lower()}_{'_'.join(c.lower() for c in self.fk_columns)}_fkey"


def foreign_keys(platform, principal, purpose: str | None) -> list[ForeignKey]:
    """The foreign keys between the datasets this principal's catalog lists, with only listed columns
    (a relationship to or from a dataset or column it may not read is not listed)."""
    visible = listing.visible_datasets(platform, principal, purpose)
    by_dataset = {(i.dataset.quantum.lower(), i.dataset.name.lower()): i for i in visible}
    out = []
    for item in visible:
        for fk_cols, target in _declared(platform, item.dataset):
            pk_ref = _resolve(platform, item.dataset, target)
            if pk_ref is None:
                continue
            pk_key, pk_cols = pk_ref
            pk_item = by_dataset.get(pk_key)
            if pk_item is None or len(pk_cols) != len(fk_cols):
                continue
            if not (_listed(item, fk_cols) and _listed(pk_item, pk_cols)):
                continue
            out.append(ForeignKey(item, tuple(_listed(item, fk_cols)), pk_item, tuple(_listed(pk_item, pk_cols))))
    return out


def _listed(item: listing.Listed, names: Iterable[str]) -> list[str] | None:
    """The listed columns named ``names`` (their listed spelling), or None when one is not listed."""
    columns = {c.name.lower(): c.name for c in item.columns}
    out = [columns.get(n.lower()) for n in names]
    return None if None in out else out  # type: ignore[return-value]


def _as_list(value) -> list[str]:
    return [str(v) for v in value] if isinstance(value, list) else [str(value)] if value else []


def _declared(platform, ds) -> list[tuple[list[str], list[str]]]:
    """(from columns, to references) of the foreign keys declared in a dataset's contract schema object:
    schema-level ``relationships`` (``from`` and ``to``) and property-level ones (``from`` is the property)."""
    raw = ds.raw or {}
    out = []
    for rel in raw.get("relationships") or ():
        if isinstance(rel, dict) and rel.get("type", "foreignKey") == "foreignKey":
            sources = [_column_of(platform, ds, r) for r in _as_list(rel.get("from"))]
            if sources and None not in sources:
                out.append((sources, _as_list(rel.get("to"))))
    for column in ds.columns:
        for rel in (column.raw or {}).get("relationships") or ():
            if isinstance(rel, dict) and rel.get("type", "foreignKey") == "foreignKey":
                out.append(([column.name], _as_list(rel.get("to"))))
    return out


def _column_of(platform, ds, reference: str) -> str | None:
    """The column of ``ds`` a ``from`` reference names (``table.column`` or ``schema/<id>/properties/<id>``)."""
    found = _resolve(platform, ds, [reference])
    if found is None or found[0] != (ds.quantum.lower(), ds.name.lower()):
        return None
    return found[1][0]


def _resolve(platform, ds, references: list[str]) -> tuple[tuple[str, str], list[str]] | None:
    """((quantum, dataset), columns) that ``references`` name, all in one dataset: shorthand
    ``table.column`` (a table of the same contract, else the same quantum, else the one dataset of that
    name in the mesh) or the contract's ids ``schema/<id>/properties/<id>``; None when not resolved."""
    target, columns = None, []
    for ref in references:
        if "#" in ref:  # another contract file: not resolved
            return None
        if "/" in ref:
            parts = [p for p in ref.split("/") if p]
            if len(parts) != 4 or parts[0] != "schema" or parts[2] != "properties":
                return None
            found = _by_ids(platform, ds, parts[1], parts[3])
        else:
            table, _, column = ref.partition(".")
            found = _by_name(platform, ds, table, column)
        if found is None or (target is not None and found[0] != target):
            return None
        target = found[0]
        columns.append(found[1])
    return (target, columns) if target is not None else None


def _by_name(platform, ds, table: str, column: str) -> tuple[tuple[str, str], str] | None:
    candidates = [d for d in platform.mesh.datasets() if d.name.lower() == table.lower()]
    for scope in (lambda d: d.contract_id == ds.contract_id, lambda d: d.quantum == ds.quantum, lambda d: True):
        chosen = [d for d in candidates if scope(d)]
        if len(chosen) == 1:
            col = chosen[0].column(column)
            return ((chosen[0].quantum.lower(), chosen[0].name.lower()), col.name) if col is not None else None
        if chosen:
            return None  # ambiguous
    return None


def _by_ids(platform, ds, object_id: str, property_id: str) -> tuple[tuple[str, str], str] | None:
    for d in platform.mesh.datasets():
        if d.contract_id == ds.contract_id and (d.raw or {}).get("id") == object_id:
            for c in d.columns:
                if (c.raw or {}).get("id") == property_id:
                    return (d.quantum.lower(), d.name.lower()), c.name
    return None


NO_ACTION = 3  # UpdateDeleteRules: the mesh is read only; its keys are declared, not enforced


def _key_rows(platform, keys: Iterable[ForeignKey]) -> list[dict]:
    rows = []
    for key in keys:
        pk_name = f"{key.pk.dataset.name.lower()}_pkey" if \
            [c.name.lower() for c in _primary_key(key.pk)] == [c.lower() for c in key.pk_columns] else None
        for n, (fk_col, pk_col) in enumerate(zip(key.fk_columns, key.pk_columns), start=1):
            rows.append({
                "pk_catalog_name": platform.mesh.name, "pk_db_schema_name": key.pk.dataset.quantum.lower(),
                "pk_table_name": key.pk.dataset.name.lower(), "pk_column_name": pk_col,
                "fk_catalog_name": platform.mesh.name, "fk_db_schema_name": key.fk.dataset.quantum.lower(),
                "fk_table_name": key.fk.dataset.name.lower(), "fk_column_name": fk_col, "key_sequence": n,
                "fk_key_name": key.name, "pk_key_name": pk_name, "update_rule": NO_ACTION, "delete_rule": NO_ACTION})
    return rows


def _keys_table(platform, command: str, keys: list[ForeignKey], order: tuple[str, ...]) -> pa.Table:
    rows = sorted(_key_rows(platform, keys), key=lambda r: tuple(r[k] or "" if k != "key_sequence" else r[k]
                                                                 for k in order))
    return pa.Table.from_pylist(rows, schema=SCHEMAS[command])


def _is(item: listing.Listed, platform, catalog, db_schema, table) -> bool:
    return (bool(table) and _catalog_matches(platform, catalog) and item.dataset.name.lower() == table.lower()
            and _schema_matches(db_schema, item.dataset.quantum.lower()))


_FK_ORDER = ("fk_catalog_name", "fk_db_schema_name", "fk_table_name", "fk_key_name", "key_sequence")
_PK_ORDER = ("pk_catalog_name", "pk_db_schema_name", "pk_table_name", "pk_key_name", "key_sequence")


def exported_keys(platform, principal, purpose: str | None, catalog: str | None, db_schema: str | None,
                  table: str) -> pa.Table:
    """The foreign keys that reference ``table`` (the keys it exports)."""
    def build() -> pa.Table:
        keys = [k for k in foreign_keys(platform, principal, purpose) if _is(k.pk, platform, catalog, db_schema, table)]
        return _keys_table(platform, "CommandGetExportedKeys", keys, _FK_ORDER)

    command = _describe("CommandGetExportedKeys", catalog=catalog, db_schema=db_schema, table=table)
    return _audited(platform, principal, purpose, command, build)


def imported_keys(platform, principal, purpose: str | None, catalog: str | None, db_schema: str | None,
                  table: str) -> pa.Table:
    """The foreign keys of ``table`` (the primary keys it imports)."""
    def build() -> pa.Table:
        keys = [k for k in foreign_keys(platform, principal, purpose) if _is(k.fk, platform, catalog, db_schema, table)]
        return _keys_table(platform, "CommandGetImportedKeys", keys, _PK_ORDER)

    command = _describe("CommandGetImportedKeys", catalog=catalog, db_schema=db_schema, table=table)
    return _audited(platform, principal, purpose, command, build)


def cross_reference(platform, principal, purpose: str | None, pk_catalog: str | None, pk_db_schema: str | None,
                    pk_table: str, fk_catalog: str | None, fk_db_schema: str | None, fk_table: str) -> pa.Table:
    """The foreign keys of ``fk_table`` that reference ``pk_table``."""
    def build() -> pa.Table:
        keys = [k for k in foreign_keys(platform, principal, purpose)
                if _is(k.pk, platform, pk_catalog, pk_db_schema, pk_table)
                and _is(k.fk, platform, fk_catalog, fk_db_schema, fk_table)]
        return _keys_table(platform, "CommandGetCrossReference", keys, _PK_ORDER)

    command = _describe("CommandGetCrossReference", pk_catalog=pk_catalog, pk_db_schema=pk_db_schema,
                        pk_table=pk_table, fk_catalog=fk_catalog, fk_db_schema=fk_db_schema, fk_table=fk_table)
    return _audited(platform, principal, purpose, command, build)


# -- CommandGetSqlInfo -------------------------------------------------------------------------------------------

# SqlInfo ids (FlightSql.proto's enum SqlInfo)
SERVER_NAME, SERVER_VERSION, SERVER_ARROW_VERSION, SERVER_READ_ONLY, SERVER_SQL, SERVER_SUBSTRAIT = 0, 1, 2, 3, 4, 5
SERVER_TRANSACTION, SERVER_CANCEL, SERVER_STATEMENT_TIMEOUT, SERVER_TRANSACTION_TIMEOUT = 8, 9, 100, 101
SQL_KEYWORDS, SQL_NUMERIC_FUNCTIONS, SQL_STRING_FUNCTIONS, SQL_SYSTEM_FUNCTIONS, SQL_DATETIME_FUNCTIONS = \
    508, 509, 510, 511, 512
SQL_SUPPORTS_CONVERT = 517

# SqlSupportsConvert codes
_BIGINT_, _BINARY, _BIT, _CHAR, _DATE, _DECIMAL, _FLOAT, _INTEGER, _INTERVAL_DT, _INTERVAL_YM, _LONGVARBINARY, \
    _LONGVARCHAR, _NUMERIC, _REAL, _SMALLINT, _TIME, _TIMESTAMP, _TINYINT, _VARBINARY, _VARCHAR = range(20)
_NUMBERS = [_BIGINT_, _BIT, _DECIMAL, _FLOAT, _INTEGER, _NUMERIC, _REAL, _SMALLINT, _TINYINT]
_TEXT = [_CHAR, _LONGVARCHAR, _VARCHAR]


def _conversions() -> dict[int, list[int]]:
    """What CAST converts (DuckDB): numbers to numbers and text; text to anything; dates and times
    among themselves and to text; binaries to binaries and text."""
    out = {n: sorted(_NUMBERS + _TEXT) for n in _NUMBERS}
    out.update({t: list(range(20)) for t in _TEXT})
    out.update({_DATE: sorted([_DATE, _TIMESTAMP] + _TEXT), _TIME: sorted([_TIME] + _TEXT),
                _TIMESTAMP: sorted([_DATE, _TIME, _TIMESTAMP] + _TEXT)})
    out.update({b: sorted([_BINARY, _LONGVARBINARY, _VARBINARY] + _TEXT) for b in (_BINARY, _LONGVARBINARY,
                                                                                   _VARBINARY)})
    out.update({i: sorted([_INTERVAL_DT, _INTERVAL_YM] + _TEXT) for i in (_INTERVAL_DT, _INTERVAL_YM)})
    return dict(sorted(out.items()))


@functools.lru_cache(maxsize=1)
def _keywords() -> list[str]:
    """DuckDB's reserved and unreserved keywords (its own list; no mesh data)."""
    from ...engine.private import keywords

    return keywords()


@functools.lru_cache(maxsize=1)
def _functions() -> dict[int, list[str]]:
    """The functions a query may call (the pipeline's allow-list, rewrite/functions.py), by SqlInfo family."""
    from ...rewrite import functions

    groups = functions.ALLOWED_FUNCTION_FAMILIES
    allowed = functions.ALLOWED_FUNCTION_NAMES

    def names(*families: str) -> list[str]:
        return sorted({n.upper() for f in families for n in groups.get(f, ()) if n in allowed})

    return {SQL_NUMERIC_FUNCTIONS: names("math and bits"),
            SQL_STRING_FUNCTIONS: names("strings", "regular expressions"),
            SQL_DATETIME_FUNCTIONS: names("dates and times"),
            SQL_SYSTEM_FUNCTIONS: names("types, enums and other value functions", "special forms")}


def _info_values(platform) -> dict[int, tuple[int, object]]:
    """Every SqlInfo this server answers: id -> (the union's type code, value)."""
    values: dict[int, tuple[int, object]] = {
        SERVER_NAME: (_STR, "Quanta"),
        SERVER_VERSION: (_STR, __version__),
        SERVER_ARROW_VERSION: (_STR, pa.__version__),
        SERVER_READ_ONLY: (_BOOL, True),
        SERVER_SQL: (_BOOL, True),
        SERVER_SUBSTRAIT: (_BOOL, False),
        SERVER_TRANSACTION: (_BITMASK, 0),  # SQL_SUPPORTED_TRANSACTION_NONE
        SERVER_CANCEL: (_BOOL, True),
        SERVER_STATEMENT_TIMEOUT: (_BITMASK, 0),  # the server's prepared-statement time-out (sql_info's argument)
        SERVER_TRANSACTION_TIMEOUT: (_BITMASK, 0),
        500: (_BOOL, False), 501: (_BOOL, False), 502: (_BOOL, False),  # no DDL of catalogs, schemas, tables
        503: (_BITMASK, 1),  # SQL_IDENTIFIER_CASE: case insensitive (DuckDB)
        504: (_STR, '"'),  # SQL_IDENTIFIER_QUOTE_CHAR
        505: (_BITMASK, 1),  # SQL_QUOTED_IDENTIFIER_CASE: case insensitive (DuckDB)
        506: (_BOOL, True),  # SQL_ALL_TABLES_ARE_SELECTABLE: only readable tables are listed
        507: (_BITMASK, 3),  # SQL_NULL_ORDERING: nulls sorted at end (DuckDB's NULLS LAST, both directions)
        SQL_KEYWORDS: (_LIST, _keywords()),
        **{k: (_LIST, v) for k, v in _functions().items()},
        513: (_STR, ESCAPE),  # SQL_SEARCH_STRING_ESCAPE
        514: (_STR, ""),  # SQL_EXTRA_NAME_CHARACTERS
        515: (_BOOL, True), 516: (_BOOL, True),  # column aliasing; NULL || x is NULL
        SQL_SUPPORTS_CONVERT: (_MAP, _conversions()),
        518: (_BOOL, True), 519: (_BOOL, True), 520: (_BOOL, True), 521: (_BOOL, True),
        522: (_BITMASK, 0b11),  # GROUP BY unrelated and beyond select
        523: (_BOOL, True),  # LIKE ... ESCAPE
        524: (_BOOL, False),  # no column definitions (read only)
        525: (_BITMASK, 0b011),  # ODBC minimum and core grammar
        526: (_BITMASK, 0b011),  # ANSI-92 entry and intermediate
        527: (_BOOL, False),
        528: (_BITMASK, 2),  # SQL_FULL_OUTER_JOINS
        529: (_STR, "schema"), 530: (_STR, "procedure"), 531: (_STR, "database"),
        532: (_BOOL, True),  # catalog at the start of a qualified name
        533: (_BITMASK, 0), 534: (_BITMASK, 0), 535: (_BITMASK, 0),  # no schema/catalog actions, no positioned
        536: (_BOOL, False), 537: (_BOOL, False),  # no SELECT FOR UPDATE, no stored procedures
        538: (_BITMASK, 0b1111),  # subqueries in comparisons, EXISTS, IN, quantified
        539: (_BOOL, True),  # correlated subqueries
        540: (_BITMASK, 0b11),  # UNION and UNION ALL
        541: (_BIGINT, 0), 542: (_BIGINT, 0), 543: (_BIGINT, 0), 544: (_BIGINT, 0), 545: (_BIGINT, 0),
        546: (_BIGINT, 0), 547: (_BIGINT, 0), 548: (_BIGINT, 0), 549: (_BIGINT, 0), 550: (_BIGINT, 0),
        551: (_BIGINT, 0), 552: (_BIGINT, 0), 553: (_BIGINT, 0), 554: (_BIGINT, 0), 555: (_BIGINT, 0),
        556: (_BOOL, False),
        557: (_BIGINT, int(platform.mesh.settings["max_sql_bytes"])),  # SQL_MAX_STATEMENT_LENGTH
        558: (_BIGINT, 0), 559: (_BIGINT, 0), 560: (_BIGINT, 0), 561: (_BIGINT, 0),
        562: (_BITMASK, 0),  # default isolation: SQL_TRANSACTION_NONE
        563: (_BOOL, False),  # no transactions
        564: (_BITMASK, 0), 565: (_BOOL, False), 566: (_BOOL, False),
        567: (_BITMASK, 1 << 1),  # result sets: forward only
        568: (_BITMASK, 0), 569: (_BITMASK, 1 << 1), 570: (_BITMASK, 0), 571: (_BITMASK, 0),  # read only
        572: (_BOOL, False), 573: (_BOOL, False), 574: (_BOOL, False), 575: (_BOOL, False), 576: (_BOOL, False),
    }
    return values


def sql_info(platform, info: Sequence[int] | None, *, statement_timeout_ms: int = 0) -> pa.Table:
    """The SqlInfo values asked for (all when ``info`` is empty), in the order asked; an id this server
    does not know is left out (the spec lets a server answer only what it knows). ``statement_timeout_ms``:
    how long the server keeps an unused prepared statement (0: no time-out)."""
    values = _info_values(platform)
    values[SERVER_STATEMENT_TIMEOUT] = (_BITMASK, int(statement_timeout_ms))
    ids = list(dict.fromkeys(int(i) for i in info)) if info else sorted(values)
    ids = [i for i in ids if i in values]
    types, offsets = [], []
    children: list[list] = [[] for _ in range(6)]
    for i in ids:
        code, value = values[i]
        types.append(code)
        offsets.append(len(children[code]))
        children[code].append(list(value.items()) if code == _MAP else value)
    child_types = [f.type for f in _INFO_VALUE]
    arrays = [pa.array(values_, type=t) for values_, t in zip(children, child_types)]
    union = pa.UnionArray.from_dense(pa.array(types, pa.int8()), pa.array(offsets, pa.int32()), arrays,
                                     [f.name for f in _INFO_VALUE], list(range(6)))
    return pa.Table.from_arrays([pa.array(ids, pa.uint32()), union.view(_INFO_VALUE)],
                                schema=SCHEMAS["CommandGetSqlInfo"])


# -- CommandGetXdbcTypeInfo -------------------------------------------------------------------------------------

_SEARCH_FULL, _SEARCH_BASIC, _NULLABLE = 3, 2, 1


def _type(name, data_type, column_size=None, prefix=None, suffix=None, params=None, case_sensitive=False,
          searchable=_SEARCH_BASIC, unsigned=None, fixed=False, min_scale=None, max_scale=None, sql_type=None,
          subcode=None, radix=None) -> dict:
    return {"type_name": name, "data_type": data_type, "column_size": column_size, "literal_prefix": prefix,
            "literal_suffix": suffix, "create_params": params, "nullable": _NULLABLE,
            "case_sensitive": case_sensitive, "searchable": searchable, "unsigned_attribute": unsigned,
            "fixed_prec_scale": fixed, "auto_increment": False if unsigned is not None else None,
            "local_type_name": name, "minimum_scale": min_scale, "maximum_scale": max_scale,
            "sql_data_type": data_type if sql_type is None else sql_type, "datetime_subcode": subcode,
            "num_prec_radix": radix, "interval_precision": None}


# The types of Quanta's results (DuckDB's, as the engine names them), with their XDBC codes
_TYPES = [
    _type("BOOLEAN", -7, 1, searchable=_SEARCH_BASIC),
    _type("TINYINT", -6, 3, unsigned=False, radix=10, min_scale=0, max_scale=0),
    _type("SMALLINT", 5, 5, unsigned=False, radix=10, min_scale=0, max_scale=0),
    _type("INTEGER", 4, 10, unsigned=False, radix=10, min_scale=0, max_scale=0),
    _type("BIGINT", -5, 19, unsigned=False, radix=10, min_scale=0, max_scale=0),
    _type("HUGEINT", 2, 38, unsigned=False, radix=10, min_scale=0, max_scale=0),
    _type("DECIMAL", 3, 38, params=["precision", "scale"], unsigned=False, radix=10, min_scale=0, max_scale=38),
    _type("FLOAT", 7, 24, unsigned=False, radix=2),
    _type("DOUBLE", 8, 53, unsigned=False, radix=2),
    _type("VARCHAR", 12, None, "'", "'", case_sensitive=True, searchable=_SEARCH_FULL),
    _type("UUID", 1, 36, "'", "'", searchable=_SEARCH_BASIC),
    _type("BLOB", -3, None, "'", "'::BLOB", searchable=_SEARCH_BASIC),
    _type("DATE", 91, 10, "DATE '", "'", sql_type=9, subcode=1),
    _type("TIME", 92, 15, "TIME '", "'", sql_type=9, subcode=2),
    _type("TIMESTAMP", 93, 26, "TIMESTAMP '", "'", sql_type=9, subcode=3),
    _type("TIMESTAMP WITH TIME ZONE", 93, 32, "TIMESTAMPTZ '", "'", sql_type=9, subcode=5),
    _type("INTERVAL", 10, None, "INTERVAL '", "'", sql_type=10, subcode=110),
]


def xdbc_type_info(platform, data_type: int | None) -> pa.Table:
    """The types Quanta returns, ordered by data_type then type_name; only ``data_type``'s when given."""
    rows = [t for t in _TYPES if data_type is None or t["data_type"] == data_type]
    rows.sort(key=lambda t: (t["data_type"], t["type_name"]))
    return pa.Table.from_pylist(rows, schema=SCHEMAS["CommandGetXdbcTypeInfo"])
