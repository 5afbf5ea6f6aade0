"""The Flight SQL catalog (issue 14, item 3): the result tables of the metadata commands, called directly against a
real governed mesh, and compared with the PostgreSQL catalog of a real pgwire server (psycopg) for the same
principal and purpose: one rule of what is listed (``governance/listing.py``). Denied datasets and columns are
absent, purpose-limited datasets appear only with the purpose, the system schema is listed, patterns follow SQL
LIKE, keys come from the contracts, SqlInfo's dense union decodes, and a table's schema is what a ``select *``
through the platform returns to that principal."""

from __future__ import annotations

import pgkit
import pyarrow as pa
import pytest
from meshkit import (
    contract,
    local_server,
    mesh_yaml,
    product,
    prop,
    shop_mesh,
    sql_to_file,
    write_yaml,
)

import federation
from federation import errors
from federation.platform import Platform
from federation.server.flight import catalog as fc

psycopg = pytest.importorskip("psycopg")

GOVERNANCE = pgkit.shop_governance(
    principals=[{"name": "mia", "roles": ["analyst"], "attributes": {"regions": ["US"], "purposes": ["marketing"]}}],
    grants=[{"to": {"role": "analyst"}, "on": "sales"}])
GOVERNANCE["policies"] = GOVERNANCE["policies"] + [
    {"name": "visitors-for-finance", "kind": "deny", "on": {"column": "customer_id", "dataset": "sales.visits"},
     "unless": {"roles": ["finance"]}}]
USERS = ("ana", "pia", "mia")


def catalog_mesh(root):
    """shop_mesh (pgkit's governance) plus a quantum ``sales``: stores, visits (a composite primary key, a foreign
    key to stores declared on the property, one to crm.customers declared on the schema object; its customer_id
    denied to non-finance) and campaigns (its contract limits reading to the purpose marketing)."""
    shop_mesh(root, governance=GOVERNANCE)
    mesh_yaml(root, domains=("shop", "crm", "sales"))
    sql_to_file(root / "data" / "sales" / "stores.parquet", "select i as store_id, 's' || i as name from range(1, 4) t(i)")
    sql_to_file(root / "data" / "sales" / "visits.parquet",
                "select i % 3 + 1 as store_id, i as day, i % 30 + 1 as customer_id, 'note' || i as note "
                "from range(1, 10) t(i)")
    sql_to_file(root / "data" / "sales" / "campaigns.parquet",
                "select i as campaign_id, 'c' || i as name from range(1, 4) t(i)")
    write_yaml(root / "products" / "sales.odps.yaml",
               product("sales", domain="sales", outputs=["sales-contract", "campaigns-contract"]))
    write_yaml(root / "contracts" / "sales.odcs.yaml", contract("sales-contract", [
        {"name": "stores", "id": "stores_obj", "description": "Stores",
         "properties": [prop("store_id", "integer", "bigint", primaryKey=True, id="store_id_prop"), prop("name")]},
        {"name": "visits", "description": "Store visits",
         "relationships": [{"type": "foreignKey", "from": "visits.customer_id", "to": "customers.id"}],
         "properties": [prop("day", "integer", "bigint", primaryKey=True, primaryKeyPosition=2),
                        prop("store_id", "integer", "bigint", primaryKey=True, primaryKeyPosition=1,
                             relationships=[{"to": "schema/stores_obj/properties/store_id_prop"}]),
                        prop("customer_id", "integer", "bigint"),
                        prop("note", description="A note")]},
    ], servers=[local_server("sales/{model}.parquet")]))
    write_yaml(root / "contracts" / "campaigns.odcs.yaml", contract("campaigns-contract", [
        {"name": "campaigns", "description": "Campaigns",
         "properties": [prop("campaign_id", "integer", "bigint", primaryKey=True), prop("name")]},
    ], servers=[local_server("sales/{model}.parquet")],
        customProperties=[{"property": "purposes", "value": ["marketing"]}]))
    return root


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    platform = Platform(catalog_mesh(tmp_path_factory.mktemp("flightcat")))
    assert not [p for p in platform.mesh.problems if p.severity == "error"], platform.mesh.problems
    return platform


@pytest.fixture(scope="module")
def server(platform):
    with pgkit.running_server(platform) as server:
        yield server


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, USERS)


def who(platform, name):
    return platform.principal(name)


def listed(platform, user, purpose=None, **filters) -> dict[tuple[str, str], str]:
    table = fc.tables(platform, who(platform, user), purpose, filters.get("catalog"), filters.get("schema"),
                      filters.get("table"), filters.get("types"), False)
    assert table.schema.equals(fc.SCHEMAS["CommandGetTables"])
    return {(r["db_schema_name"], r["table_name"]): r["table_type"] for r in table.to_pylist()}


def schemas_of(platform, user, purpose=None) -> dict[tuple[str, str], pa.Schema]:
    table = fc.tables(platform, who(platform, user), purpose, None, None, None, None, True)
    assert table.schema.equals(fc.SCHEMAS["CommandGetTablesWithSchema"])
    return {(r["db_schema_name"], r["table_name"]): pa.ipc.read_schema(pa.py_buffer(r["table_schema"]))
            for r in table.to_pylist()}


# -- the same rule as the PostgreSQL catalog -------------------------------------------------------------------


CASES = [("ana", None), ("pia", None), ("mia", None), ("mia", "marketing")]


@pytest.mark.parametrize(("user", "purpose"), CASES)
def test_listing_equals_the_pgwire_catalog(platform, server, tokens, user, purpose):
    options = {"options": f"'-c quanta.purpose={purpose}'"} if purpose else {}
    with psycopg.connect(pgkit.dsn(server.port, tokens, user, **options), autocommit=True) as conn:
        pg_tables = {(s, t): {"BASE TABLE": "TABLE"}.get(k, k) for s, t, k in conn.execute(
            "select table_schema, table_name, table_type from information_schema.tables "
            "where table_schema not in ('pg_catalog', 'information_schema')").fetchall()}
        pg_columns: dict[tuple[str, str], list[str]] = {}
        for s, t, c in conn.execute("select table_schema, table_name, column_name from information_schema.columns "
                                    "where table_schema not in ('pg_catalog', 'information_schema') "
                                    "order by table_schema, table_name, ordinal_position").fetchall():
            pg_columns.setdefault((s, t), []).append(c)
        pg_schemas = {r[0] for r in conn.execute("select nspname from pg_namespace where nspname not in "
                                                 "('pg_catalog', 'information_schema', 'public')").fetchall()}
        pg_keys = conn.execute(
            "select tc.table_schema, tc.table_name, k.column_name, k.ordinal_position, tc.constraint_name "
            "from information_schema.table_constraints tc join information_schema.key_column_usage k "
            "on k.constraint_name = tc.constraint_name and k.table_schema = tc.table_schema "
            "where tc.constraint_type = 'PRIMARY KEY'").fetchall()
    assert listed(platform, user, purpose) == pg_tables
    flight_columns = {k: s.names for k, s in schemas_of(platform, user, purpose).items()}
    assert flight_columns == pg_columns
    schemas = fc.db_schemas(platform, who(platform, user), purpose, None, None)
    assert {r["db_schema_name"] for r in schemas.to_pylist()} == pg_schemas
    flight_keys = set()
    for schema, table in pg_tables:
        keys = fc.primary_keys(platform, who(platform, user), purpose, platform.mesh.name, schema, table)
        flight_keys |= {(r["db_schema_name"], r["table_name"], r["column_name"], r["key_sequence"], r["key_name"])
                        for r in keys.to_pylist()}
    assert flight_keys == set(pg_keys) and flight_keys


# -- governance: denied datasets and columns, purposes ---------------------------------------------------------


def test_denied_datasets_and_columns_are_absent(platform):
    ana, pia = listed(platform, "ana"), listed(platform, "pia")
    assert ("report", "sales_by_region") not in ana and ("report", "sales_by_region") not in pia  # no grant
    assert {("crm", "customers"), ("shop", "orders"), ("sales", "stores"), ("sales", "visits")} <= set(ana)
    ana_cols, pia_cols = schemas_of(platform, "ana"), schemas_of(platform, "pia")
    assert ana_cols[("shop", "orders")].names == ["order_id", "customer_id", "order_date"]  # amount denied
    assert pia_cols[("shop", "orders")].names == ["order_id", "customer_id", "amount", "order_date"]
    assert "customer_id" not in ana_cols[("sales", "visits")].names
    assert "customer_id" in pia_cols[("sales", "visits")].names
    schemas = {r["db_schema_name"] for r in fc.db_schemas(platform, who(platform, "ana"), None, None, None).to_pylist()}
    assert schemas == {"crm", "sales", "shop", "system"}  # report: nothing readable in it, not listed


def test_purpose_limited_dataset_needs_the_purpose(platform):
    assert ("sales", "campaigns") not in listed(platform, "mia")
    assert listed(platform, "mia", "marketing")[("sales", "campaigns")] == "TABLE"
    assert fc.primary_keys(platform, who(platform, "mia"), None, None, "sales", "campaigns").num_rows == 0
    assert fc.primary_keys(platform, who(platform, "mia"), "marketing", None, "sales", "campaigns").num_rows == 1
    # a purpose is granted, not asserted: ana may not declare it, so nothing is listed (refused and audited)
    with pytest.raises(errors.AccessDenied, match="marketing"):
        fc.tables(platform, who(platform, "ana"), "marketing", None, None, None, None, False)
    with pytest.raises(errors.AccessDenied, match="marketing"):
        fc.db_schemas(platform, who(platform, "ana"), "marketing", None, None)


def test_system_schema_is_listed_as_views(platform):
    tables = listed(platform, "ana")
    system = {t for (s, t), kind in tables.items() if s == "system"}
    assert {"datasets", "columns", "query_log", "grants"} <= system
    assert {kind for (s, _), kind in tables.items() if s == "system"} == {"VIEW"}
    assert {kind for (s, _), kind in tables.items() if s != "system"} == {"TABLE"}
    types = fc.table_types(platform, who(platform, "ana"), None)
    assert types.schema.equals(fc.SCHEMAS["CommandGetTableTypes"])
    assert types.column("table_type").to_pylist() == ["TABLE", "VIEW"]
    assert set(listed(platform, "ana", types=["VIEW"])) == {("system", t) for t in system}
    assert set(listed(platform, "ana", types=["table"])) == {k for k in tables if k[0] != "system"}


# -- patterns and catalogs -------------------------------------------------------------------------------------


def test_patterns_follow_sql_like(platform):
    def schemas(pattern):
        table = fc.db_schemas(platform, who(platform, "ana"), None, None, pattern)
        assert table.schema.equals(fc.SCHEMAS["CommandGetDbSchemas"])
        return [r["db_schema_name"] for r in table.to_pylist()]

    assert schemas(None) == ["crm", "sales", "shop", "system"]  # ordered by name
    assert schemas("s%") == ["sales", "shop", "system"]
    assert schemas("s_op") == ["shop"]
    assert schemas("SHOP") == ["shop"]  # identifiers are case-insensitive
    assert schemas("") == []
    assert schemas("%o%") == ["shop"]
    names = {t for _, t in listed(platform, "ana", schema="system", table="column_%")}
    assert {"columns", "column_access", "column_lineage"} <= names  # _ is any one character
    assert {t for _, t in listed(platform, "ana", schema="system", table="column\\_%")} == \
        {"column_access", "column_lineage"}  # an escaped _ is itself
    assert set(listed(platform, "ana", table="visits")) == {("sales", "visits")}
    assert set(listed(platform, "ana", table="vis_ts")) == {("sales", "visits")}
    assert listed(platform, "ana", table="visit") == {}  # the whole name matches, not a prefix
    assert set(listed(platform, "ana", schema="sa%", table="%s")) == {("sales", "stores"), ("sales", "visits")}
    assert listed(platform, "ana", table="%s%t%o%r%e%s%x") == {}
    # a client's pattern is matched without a regular expression: a hostile one answers, it does not backtrack
    assert listed(platform, "ana", table="%_" * 200 + "%x") == {}
    assert fc.like("100\\%")("100%") and not fc.like("100\\%")("1000")


def test_the_catalog_is_the_mesh(platform):
    ana = who(platform, "ana")
    assert fc.catalogs(platform, ana, None).to_pylist() == [{"catalog_name": "testmesh"}]
    assert fc.catalogs(platform, ana, None).schema.equals(fc.SCHEMAS["CommandGetCatalogs"])
    assert set(listed(platform, "ana", catalog="testmesh")) == set(listed(platform, "ana"))
    assert listed(platform, "ana", catalog="other") == {}
    assert listed(platform, "ana", catalog="") == {}  # tables without a catalog: none
    assert fc.db_schemas(platform, ana, None, "other", None).num_rows == 0
    rows = fc.tables(platform, ana, None, None, "crm", None, None, False).to_pylist()
    assert rows == [{"catalog_name": "testmesh", "db_schema_name": "crm", "table_name": "customers",
                     "table_type": "TABLE"}]


# -- keys --------------------------------------------------------------------------------------------------


def test_primary_keys_from_the_contracts(platform):
    ana = who(platform, "ana")
    keys = fc.primary_keys(platform, ana, None, None, None, "visits")
    assert keys.schema.equals(fc.SCHEMAS["CommandGetPrimaryKeys"])
    assert [(r["column_name"], r["key_sequence"], r["key_name"]) for r in keys.to_pylist()] == \
        [("store_id", 1, "visits_pkey"), ("day", 2, "visits_pkey")]  # primaryKeyPosition order
    assert fc.primary_keys(platform, ana, None, "testmesh", "crm", "customers").column("column_name").to_pylist() \
        == ["id"]
    assert fc.primary_keys(platform, ana, None, None, "shop", "customers").num_rows == 0  # wrong schema
    assert fc.primary_keys(platform, ana, None, None, "system", "datasets").num_rows == 0
    assert fc.primary_keys(platform, ana, None, None, None, "sales_by_region").num_rows == 0  # not readable


def test_foreign_keys_from_contract_relationships(platform):
    def keys(fn, user, *args):
        table = fn(platform, who(platform, user), None, *args)
        assert table.schema.equals(fc.SCHEMAS["CommandGetImportedKeys"])
        return {(r["fk_db_schema_name"], r["fk_table_name"], r["fk_column_name"], r["pk_db_schema_name"],
                 r["pk_table_name"], r["pk_column_name"], r["key_sequence"], r["update_rule"])
                for r in table.to_pylist()}

    to_stores = ("sales", "visits", "store_id", "sales", "stores", "store_id", 1, 3)
    to_customers = ("sales", "visits", "customer_id", "crm", "customers", "id", 1, 3)
    assert keys(fc.imported_keys, "pia", None, "sales", "visits") == {to_stores, to_customers}
    # customer_id is denied to ana: the key through it is not listed
    assert keys(fc.imported_keys, "ana", None, "sales", "visits") == {to_stores}
    assert keys(fc.exported_keys, "pia", None, "sales", "stores") == {to_stores}
    assert keys(fc.exported_keys, "pia", None, "crm", "customers") == {to_customers}
    assert keys(fc.exported_keys, "ana", None, "crm", "customers") == set()
    assert keys(fc.imported_keys, "pia", None, "sales", "stores") == set()
    cross = fc.cross_reference(platform, who(platform, "pia"), None, None, "sales", "stores", None, "sales", "visits")
    assert cross.schema.equals(fc.SCHEMAS["CommandGetCrossReference"])
    assert [(r["fk_column_name"], r["pk_column_name"], r["pk_key_name"]) for r in cross.to_pylist()] == \
        [("store_id", "store_id", "stores_pkey")]
    assert fc.cross_reference(platform, who(platform, "pia"), None, None, None, "stores", None, None,
                              "orders").num_rows == 0


# -- a table's schema is its select * ---------------------------------------------------------------------------


@pytest.mark.parametrize(("user", "purpose"), CASES)
def test_include_schema_is_what_select_star_returns(platform, user, purpose):
    principal = who(platform, user)
    schemas = schemas_of(platform, user, purpose)
    assert ("crm", "customers") in schemas and ("system", "datasets") in schemas
    for (schema, table), listed_schema in schemas.items():
        result = platform.query(f'select * from "{schema}"."{table}"', principal, purpose=purpose)
        try:
            assert listed_schema.equals(result.schema), (schema, table)  # names, types, order (not metadata)
        finally:
            result.close()
        assert all(f.metadata[b"ARROW:FLIGHT:SQL:TABLE_NAME"] == table.encode() for f in listed_schema)


def test_masked_columns_keep_the_type_their_mask_gives(platform):
    ana, pia = schemas_of(platform, "ana")[("crm", "customers")], schemas_of(platform, "pia")[("crm", "customers")]
    assert ana.names == pia.names == ["id", "full_name", "email", "region"]  # masked, not denied: listed
    assert ana.field("id").metadata[b"ARROW:FLIGHT:SQL:TYPE_NAME"] == b"BIGINT"
    orders = schemas_of(platform, "pia")[("shop", "orders")]
    assert orders.field("amount").type == pa.decimal128(10, 2)
    assert orders.field("amount").metadata[b"ARROW:FLIGHT:SQL:PRECISION"] == b"10"


def test_no_value_of_the_mesh_in_a_listing(platform):
    pia = who(platform, "pia")
    everything = [fc.catalogs(platform, pia, None), fc.db_schemas(platform, pia, None, None, None),
                  fc.tables(platform, pia, None, None, None, None, None, True),
                  fc.primary_keys(platform, pia, None, None, None, "customers"),
                  fc.imported_keys(platform, pia, None, None, None, "visits")]
    text = " ".join(str(t.to_pylist()) for t in everything)
    for value in ("user1@example.com", "name1", "note1", "'EU'", "c1"):
        assert value not in text


def test_listings_are_audited(platform):
    fc.tables(platform, who(platform, "ana"), None, None, "sh%", None, None, False)
    logged = federation.Connection(platform, who(platform, "ana")).sql(
        "select sql, status, rows from system.query_log where interface = 'flight' and principal = 'ana' "
        "order by query_id").fetchall()
    assert ("CommandGetTables(db_schema_filter_pattern='sh%')", "ok", 1) in logged


# -- CommandGetSqlInfo, CommandGetXdbcTypeInfo ------------------------------------------------------------------


def test_sql_info_dense_union(platform):
    everything = fc.sql_info(platform, [])
    assert everything.schema.equals(fc.SCHEMAS["CommandGetSqlInfo"])
    value = everything.schema.field("value").type
    assert value.mode == "dense" and value.type_codes == [0, 1, 2, 3, 4, 5]
    assert [value.field(i).name for i in range(6)] == ["string_value", "bool_value", "bigint_value", "int32_bitmask",
                                                        "string_list", "int32_to_int32_list_map"]
    info = dict(zip(everything.column("info_name").to_pylist(), everything.column("value").to_pylist()))
    assert info[0] == "Quanta" and info[1] == federation.__version__ and info[2] == pa.__version__
    assert info[3] is True and info[4] is True and info[5] is False and info[9] is True  # read only, SQL, cancel
    assert info[8] == 0 and info[504] == '"' and info[513] == "\\" and info[507] == 3
    assert "SELECT" in info[508] and "ABS" in info[509] and "LOWER" in info[510] and "DATE_TRUNC" in info[512]
    assert "READ_CSV" not in info[511] + info[510]  # only the pipeline's allow-list
    assert dict(info[517])[0]  # BIGINT converts to something
    # the union's type ids say which child holds each value
    union = everything.column("value").chunk(0)
    kinds = dict(zip(everything.column("info_name").to_pylist(), union.type_codes.to_pylist()))
    assert (kinds[0], kinds[3], kinds[557], kinds[8], kinds[508], kinds[517]) == (0, 1, 2, 3, 4, 5)
    assert fc.sql_info(platform, [100], statement_timeout_ms=60000).to_pylist() == [{"info_name": 100, "value": 60000}]
    some = fc.sql_info(platform, [504, 0, 99999])  # in the order asked; an unknown id left out
    assert some.to_pylist() == [{"info_name": 504, "value": '"'}, {"info_name": 0, "value": "Quanta"}]


def test_xdbc_type_info(platform):
    types = fc.xdbc_type_info(platform, None)
    assert types.schema.equals(fc.SCHEMAS["CommandGetXdbcTypeInfo"])
    rows = types.to_pylist()
    assert [(r["data_type"], r["type_name"]) for r in rows] == sorted((r["data_type"], r["type_name"]) for r in rows)
    assert {"BIGINT", "VARCHAR", "DECIMAL", "DATE", "TIMESTAMP", "BOOLEAN", "DOUBLE"} <= {r["type_name"] for r in rows}
    assert [r["type_name"] for r in fc.xdbc_type_info(platform, 4).to_pylist()] == ["INTEGER"]
    assert fc.xdbc_type_info(platform, 12345).num_rows == 0


# -- end to end: the ADBC Flight SQL driver against a running server --------------------------------------------


@pytest.fixture(scope="module")
def flight_server(platform):
    from federation.server.flight import FlightSqlServer

    server = FlightSqlServer(platform, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


def adbc(flight_server, tokens, user, purpose=None):
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    kwargs = {"adbc.flight.sql.authorization_header": f"Bearer {tokens[user]}"}
    if purpose:
        kwargs["adbc.flight.sql.rpc.call_header.x-quanta-purpose"] = purpose
    return dbapi.connect(flight_server.location, db_kwargs=kwargs, autocommit=True)


def objects(conn, **filters) -> dict[tuple[str, str], list[str]]:
    """(schema, table) -> its columns, from ADBC's GetObjects (every depth)."""
    tree = conn.adbc_get_objects(depth="all", **filters).read_all().to_pylist()
    out = {}
    for catalog in tree:
        assert catalog["catalog_name"] == "testmesh"
        for schema in catalog["catalog_db_schemas"] or ():
            for table in schema["db_schema_tables"] or ():
                out[(schema["db_schema_name"], table["table_name"])] = \
                    [c["column_name"] for c in sorted(table["table_columns"] or (), key=lambda c: c["ordinal_position"])]
    return out


@pytest.mark.parametrize(("user", "purpose"), CASES)
def test_adbc_get_objects_lists_what_the_catalog_lists(platform, flight_server, tokens, user, purpose):
    with adbc(flight_server, tokens, user, purpose) as conn:
        seen = objects(conn)
    expected = {k: s.names for k, s in schemas_of(platform, user, purpose).items()}
    assert seen == expected
    if user == "ana":
        assert "amount" not in seen[("shop", "orders")] and ("report", "sales_by_region") not in seen
    assert (("sales", "campaigns") in seen) == (purpose == "marketing")


def test_adbc_filters_table_schema_and_types(platform, flight_server, tokens):
    with adbc(flight_server, tokens, "ana") as conn:
        assert set(objects(conn, db_schema_filter="s_op")) == {("shop", "orders")}
        assert set(objects(conn, db_schema_filter="system", table_name_filter="column\\_%")) == \
            {("system", "column_access"), ("system", "column_lineage")}
        assert {k for k in objects(conn, table_types_filter=["VIEW"])} == \
            {k for k in objects(conn) if k[0] == "system"}
        assert objects(conn, catalog_filter="elsewhere") == {}
        assert conn.adbc_get_table_types() == ["TABLE", "VIEW"]
        schema = conn.adbc_get_table_schema("customers", db_schema_filter="crm")
        result = platform.query("select * from crm.customers", who(platform, "ana"))
        try:
            assert schema.equals(result.schema)  # the masked columns' types: what the query gives
        finally:
            result.close()
        assert conn.adbc_get_table_schema("orders", db_schema_filter="shop").names == \
            ["order_id", "customer_id", "order_date"]  # amount denied to ana
        with pytest.raises(pytest.importorskip("adbc_driver_flightsql.dbapi").ProgrammingError, match="NOT_FOUND"):
            conn.adbc_get_table_schema("sales_by_region", db_schema_filter="report")  # not listed for ana
        info = conn.adbc_get_info()
        assert info["vendor_name"] == "Quanta" and info["vendor_version"] == federation.__version__
        assert info["vendor_arrow_version"] == pa.__version__


def test_adbc_purpose_not_held_lists_nothing(flight_server, tokens):
    dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    with adbc(flight_server, tokens, "ana", "marketing") as conn, \
            pytest.raises(dbapi.Error, match="marketing"):  # ana does not hold the purpose
        conn.adbc_get_objects(depth="tables").read_all()
