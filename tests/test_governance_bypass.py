"""Regression tests of the security review's bypasses (issue 11, findings 1, 2 and 8), through every interface.

Each test asserts the *specific* refusal (error class and what it says) or the governed result, so that it
fails both when the leak comes back and when the query errors for an unrelated reason.
"""

from __future__ import annotations

import pytest
import requests
from meshkit import contract, local_server, mesh_yaml, product, prop, shop_mesh, sql_to_file, write_yaml
from test_governance import GOVERNANCE

import federation
from federation import errors
from federation.platform import Platform
from federation.server.http import Server, create_app

RAW_EMAIL = "user3@example.com"  # customer 3 is in the EU: ana sees neither the row nor any raw e-mail


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return Platform(shop_mesh(tmp_path_factory.mktemp("bypass"), governance=GOVERNANCE))


def run(platform, user, sql):
    return federation.Connection(platform, platform.principal(user)).sql(sql).fetchall()


# -- finding 1: comments cannot steer the rewrite ---------------------------------------------------------------

META = ["/* sqlglot.meta quanta=dataset */", "/* sqlglot.meta quanta_via=x */",
        "/* sqlglot.meta quanta=dataset,quanta_via=crm.customers */"]


@pytest.mark.parametrize("comment", META)
def test_meta_comment_does_not_skip_masks_or_filters(platform, comment):
    rows = run(platform, "ana", f"SELECT id, email, region FROM crm.customers {comment} ORDER BY id")
    assert len(rows) == 20 and {r[2] for r in rows} == {"US", "CA"}
    assert all(r[1] == "***@example.com" for r in rows)


@pytest.mark.parametrize("comment", META)
def test_meta_comment_does_not_skip_the_grant_check(platform, comment):
    with pytest.raises(errors.AccessDenied, match="nobody has no grant to read crm.customers"):
        run(platform, "nobody", f"SELECT email FROM crm.customers {comment}")


@pytest.mark.parametrize("comment", META)
def test_meta_comment_on_an_engine_relation_is_refused(platform, comment):
    for name in ("memory.crm.customers", "memory._quanta_system.query_log"):
        with pytest.raises(errors.UnknownObject, match="the mesh is the only catalog"):
            run(platform, "ana", f"SELECT * FROM {name} {comment}")


def test_meta_comment_does_not_show_other_principals_audit_rows(platform):
    run(platform, "pia", "select 'pia-secret-marker' as m")
    rows = run(platform, "ana", "SELECT principal, sql FROM system.query_log /* sqlglot.meta quanta=dataset */")
    assert rows and {r[0] for r in rows} == {"ana"}
    assert "pia-secret-marker" not in repr(rows)


# -- finding 2: WITH RECURSIVE scoping is DuckDB's --------------------------------------------------------------


def test_later_recursive_cte_name_cannot_reach_a_file(platform):
    path = str(platform.path / "data" / "crm" / "customers.csv")
    for sql in (f'WITH RECURSIVE a AS (SELECT * FROM "{path}"), "{path}" AS (SELECT 1 AS x) SELECT * FROM a',
                f'WITH a AS (SELECT * FROM "{path}"), "{path}" AS (SELECT 1 AS x) SELECT * FROM a',
                f'WITH RECURSIVE "{path}" AS (SELECT * FROM "{path}" UNION ALL SELECT 1) SELECT * FROM "{path}"'):
        with pytest.raises(errors.StatementRefused, match="reading files is not allowed") as e:
            run(platform, "ana", sql)
        assert "email" not in str(e.value) and "full_name" not in str(e.value)  # no binder error on the file


@pytest.mark.parametrize("name", ["duckdb_views", "duckdb_tables", "pg_proc", "duckdb_functions", "duckdb_settings"])
def test_later_or_anchor_cte_name_cannot_reach_the_engine_catalog(platform, name):
    shapes = [f"WITH RECURSIVE a AS (SELECT * FROM {name}), {name} AS (SELECT 1 AS x) SELECT * FROM a",
              f"WITH RECURSIVE {name} AS (SELECT * FROM {name} UNION ALL SELECT 1) SELECT * FROM {name}",
              f"WITH RECURSIVE {name} AS (SELECT * FROM {name}) SELECT * FROM {name}",
              f"WITH {name} AS (SELECT 1 AS x UNION ALL SELECT * FROM {name}) SELECT * FROM {name}"]
    for sql in shapes:
        with pytest.raises(errors.UnknownObject, match=f"table {name} does not exist"):
            run(platform, "ana", sql)


def test_recursive_ctes_still_work(platform):
    assert run(platform, "ana", "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 5) "
                                "SELECT count(*), sum(n) FROM r") == [(5, 15)]
    assert run(platform, "ana", "WITH a AS (SELECT count(*) AS n FROM crm.customers), b AS (SELECT n * 2 AS m FROM a) "
                                "SELECT m FROM b") == [(40,)]


# -- secrets out of reach of SQL --------------------------------------------------------------------------------


def test_mask_salt_is_in_no_catalog_even_for_sql_that_bypasses_the_pipeline(platform):
    """Simulates a rewrite bug that let catalog functions through: the engine itself holds no salt text."""
    salt = (platform.state_dir / "mask_salt").read_text().strip()
    assert len(salt) >= 16
    backend = platform.state.backend
    for sql in ("SELECT * FROM duckdb_functions()", "SELECT * FROM duckdb_views()", "SELECT * FROM duckdb_tables()",
                "SELECT * FROM duckdb_settings()", "SELECT * FROM duckdb_schemas()"):
        execution = backend.execute(sql)
        try:
            dump = repr(execution.reader().read_all().to_pylist())
        finally:
            execution.close()
        assert salt not in dump, sql


def test_mask_functions_are_not_callable_by_users(platform):
    for sql in ("SELECT quanta_mask_hash('10.0.0.1')", "SELECT quanta_mask_hash_int('1', 32)"):
        with pytest.raises(errors.StatementRefused, match="not in Quanta's allow-list"):
            run(platform, "ana", sql)


# -- finding 8: the integer hash mask fits its column's type ----------------------------------------------------


def test_integer_hash_mask_fits_every_integer_type(tmp_path):
    mesh_yaml(tmp_path, domains=("shop",))
    sql_to_file(tmp_path / "data" / "ids.parquet",
                "SELECT i::TINYINT AS t, (i * 300)::SMALLINT AS s, (i * 100000)::INTEGER AS n, "
                "(i * 10000000000)::BIGINT AS b FROM range(1, 101) r(i)")
    write_yaml(tmp_path / "products" / "shop.odps.yaml", product("shop"))
    write_yaml(tmp_path / "contracts" / "shop.odcs.yaml", contract("shop-contract", [{
        "name": "ids", "properties": [prop("t", "integer", "tinyint", classification="restricted"),
                                      prop("s", "integer", "smallint", classification="restricted"),
                                      prop("n", "integer", "integer", classification="restricted"),
                                      prop("b", "integer", "bigint", classification="restricted")]}],
        servers=[local_server("ids.parquet")]))
    write_yaml(tmp_path / "governance.yaml", {
        "principals": [{"name": "ana"}], "grants": [{"to": {"user": "ana"}, "on": "shop"}],
        "policies": [{"name": "hash-ids", "kind": "mask", "on": {"classification": "restricted"}, "mask": "hash"}]})
    conn = federation.connect(str(tmp_path), user="ana")
    r = conn.sql("SELECT t, s, n, b FROM shop.ids")
    assert r.types == ["TINYINT", "SMALLINT", "INTEGER", "BIGINT"]
    rows = r.fetchall()
    assert len(rows) == 100
    for i, bits in enumerate((8, 16, 32, 64)):
        values = [row[i] for row in rows]
        assert all(0 <= v < 2 ** (bits - 1) for v in values)
        assert len(set(values)) > (40 if bits == 8 else 95)  # a hash, not a constant
    raw = set(range(1, 101))
    assert len(raw & {row[2] // 100000 for row in rows if row[2] % 100000 == 0}) < 5  # not the raw ids
    assert conn.sql("SELECT n FROM shop.ids ORDER BY n LIMIT 3").fetchall() == \
        conn.sql("SELECT n FROM shop.ids ORDER BY n LIMIT 3").fetchall()  # deterministic


# -- the same bypasses over HTTP and the PostgreSQL wire ----------------------------------------------------------


@pytest.fixture(scope="module")
def http(platform):
    server = Server(create_app(platform), port=0).start()
    tokens = {u: platform.tokens.create(u, 1)[0] for u in ("ana", "nobody")}
    yield server, tokens
    server.stop()


def test_http_meta_comment_bypass(http):
    server, tokens = http

    def post(user, sql):
        return requests.post(server.url + "/api/v1/query", json={"sql": sql},
                             headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)

    r = post("ana", "SELECT id, email, region FROM crm.customers /* sqlglot.meta quanta=dataset */ WHERE region='EU'")
    assert r.status_code == 200 and RAW_EMAIL not in r.text and r.json()["rows"] == []
    r = post("nobody", "SELECT email FROM crm.customers /* sqlglot.meta quanta_via=x */")
    assert r.status_code == 403 and r.json()["error"]["code"] == "access_denied"


def test_pgwire_meta_comment_bypass(platform):
    psycopg = pytest.importorskip("psycopg")
    from federation.server.pgwire import PgServer, register_token

    token, _ = platform.tokens.create("ana", 1)
    register_token(platform, token)
    server = PgServer(platform, host="127.0.0.1", port=0).start()
    try:
        with psycopg.connect(host="127.0.0.1", port=server.port, user="ana", password=token,
                             dbname=platform.mesh.name) as conn:
            rows = conn.execute("SELECT id, email, region FROM crm.customers /* sqlglot.meta quanta=dataset */ "
                                "ORDER BY id").fetchall()
            assert len(rows) == 20 and RAW_EMAIL not in repr(rows)
            path = str(platform.path / "data" / "crm" / "customers.csv")
            with pytest.raises(psycopg.Error) as e:
                conn.execute(f'WITH RECURSIVE a AS (SELECT * FROM "{path}"), "{path}" AS (SELECT 1 AS x) '
                             'SELECT * FROM a')
            assert e.value.sqlstate == "42501" and "reading files is not allowed" in str(e.value)
    finally:
        server.stop()


# -- found by the red team after the verifier landed ----------------------------------------------------------------


def test_time_travel_on_a_dataset_is_a_clear_refusal(platform):
    with pytest.raises(errors.StatementRefused, match="time-travel clause"):
        run(platform, "ana", "SELECT * FROM crm.customers AT (VERSION => 1)")


def test_a_scalar_subquery_column_is_named_as_written(platform):
    r = federation.Connection(platform, platform.principal("ana")).sql(
        "SELECT (SELECT email FROM crm.customers ORDER BY id LIMIT 1), count(*) FROM crm.customers")
    names = r.arrow().schema.names
    assert names[0] == "(SELECT email FROM crm.customers ORDER BY id LIMIT 1)"
    assert not any("memory" in n or "CASE" in n or "'EU'" in n for n in names)


@pytest.mark.parametrize("sql, value", [
    ("SELECT CAST(email || '9' AS INTEGER) FROM crm.customers WHERE id = 1", "example.com"),
    ("SELECT strptime(email, '%Y') FROM crm.customers WHERE id = 1", "example.com"),
    ("SELECT CAST(id * 100000 + 7 AS SMALLINT) FROM crm.customers WHERE id = 4", "400007"),
])
def test_conversion_errors_echo_no_value(platform, sql, value):
    with pytest.raises(errors.DataError) as e:
        run(platform, "pia", sql)  # pia sees these values in clear: the error still must not echo them
    assert value not in str(e.value) and "\n" not in str(e.value)
