"""The verifier on its own (federation/rewrite/verify.py), with queries a buggy pass could produce.

Each case is SQL as the pipeline would hand it to the engine, with the placements the pipeline would have
declared; the verifier must refuse everything it cannot prove. The first tests pin the DuckDB scoping
rules the verifier (and the resolver) rely on, against the real engine: if DuckDB changes them, they fail.
"""

from __future__ import annotations

import duckdb
import pytest
import sqlglot.expressions as exp

from federation.rewrite.verify import Placements, UnverifiedQuery, canonical_select, canonical_wrapper, verify

CUSTOMERS = ("memory", "crm", "customers")
SECURE = ("SELECT \"id\", CASE WHEN \"email\" IS NULL THEN NULL ELSE '***' END AS \"email\" "
          "FROM memory.crm.customers WHERE (\"region\" <> 'EU')")


# -- DuckDB's scoping rules, on the real engine ---------------------------------------------------------


@pytest.fixture(scope="module")
def engine():
    con = duckdb.connect()
    con.execute("create table t as select 42 as secret")
    return con


@pytest.mark.parametrize("sql", [
    "WITH RECURSIVE a AS (SELECT * FROM t), t AS (SELECT 1 AS secret) SELECT * FROM a",  # a later CTE
    "WITH a AS (SELECT * FROM t), t AS (SELECT 1 AS secret) SELECT * FROM a",
    "WITH RECURSIVE t AS (SELECT * FROM t) SELECT * FROM t",  # not a UNION: no self-reference
    "WITH RECURSIVE t AS (SELECT * FROM t UNION ALL SELECT 1) SELECT * FROM t",  # the anchor
    "WITH t AS (SELECT 1 AS secret UNION ALL SELECT * FROM t) SELECT * FROM t",  # not RECURSIVE
    "WITH RECURSIVE t AS (SELECT 1 AS secret UNION ALL BY NAME SELECT * FROM t) SELECT * FROM t",  # BY NAME
])
def test_duckdb_resolves_these_names_to_its_catalog(engine, sql):
    assert (42,) in engine.execute(sql).fetchall()
    with pytest.raises(UnverifiedQuery, match="neither a CTE in scope"):
        verify(sql, Placements())


def test_duckdb_sees_a_recursive_cte_in_its_recursive_operand(engine):
    sql = "WITH RECURSIVE t AS (SELECT 1 AS secret UNION ALL SELECT secret + 1 FROM t WHERE secret < 3) SELECT * FROM t"
    assert engine.execute(sql).fetchall() == [(1,), (2,), (3,)]
    verify(sql, Placements())
    verify("WITH a AS (SELECT 1 AS x), b AS (SELECT * FROM a) SELECT * FROM b, (WITH c AS (SELECT * FROM a) "
           "SELECT * FROM c) AS d WHERE x IN (SELECT x FROM b)", Placements())


# -- relations --------------------------------------------------------------------------------------------


def placed(*relations, secure: str | None = None) -> Placements:
    p = Placements()
    for r in relations:
        p.place(r)
    if secure is not None:
        p.place(CUSTOMERS)
        p.place_secure(CUSTOMERS, canonical_select(secure))
    return p


def test_a_relation_the_pipeline_did_not_place_is_refused():
    for sql in ("SELECT * FROM memory.crm.customers", "SELECT * FROM crm.customers", "SELECT * FROM customers",
                "SELECT * FROM '/data/customers.parquet'", "SELECT * FROM system.main.duckdb_views",
                "SELECT * FROM memory._quanta_system.query_log"):
        with pytest.raises(UnverifiedQuery):
            verify(sql, Placements())


def test_bare_relations_count_as_placed():
    verify("SELECT * FROM memory.crm.customers", placed(CUSTOMERS))
    with pytest.raises(UnverifiedQuery, match="outside its secure select"):
        verify("SELECT * FROM memory.crm.customers a, memory.crm.customers b", placed(CUSTOMERS))
    verify("SELECT * FROM memory.crm.customers a, memory.crm.customers b", placed(CUSTOMERS, CUSTOMERS))


def test_secure_select_is_the_only_way_to_read_a_secured_relation():
    p = placed(secure=SECURE)
    verify(f"SELECT email FROM ({SECURE}) AS c WHERE email LIKE 'x%'", p)
    no_filter = SECURE.split(" WHERE ")[0]
    no_mask = SECURE.replace("'***'", "email")
    for sql in (
        "SELECT email FROM memory.crm.customers",  # the raw relation instead of its secure select
        f"SELECT email FROM ({no_filter}) AS c",  # the row filter gone
        f"SELECT email FROM ({no_mask}) AS c",  # the mask gone
        f"SELECT * FROM ({SECURE}) AS c, memory.crm.customers AS d",  # and once more, bare
    ):
        with pytest.raises(UnverifiedQuery):
            verify(sql, placed(secure=SECURE))


def test_a_hand_made_ast_from_a_buggy_pass_is_refused():
    # a pass that "forgot" to wrap: the raw relation, fully qualified, with no placement
    tree = exp.select("email").from_(exp.Table(this=exp.to_identifier("customers"), db=exp.to_identifier("crm"),
                                               catalog=exp.to_identifier("memory")))
    with pytest.raises(UnverifiedQuery):
        verify(tree.sql("duckdb"), placed(secure=SECURE))
    # a pass that let a user CTE shadow nothing and fall through to a file
    tree = exp.select("*").from_("a").with_("a", as_=exp.select("*").from_(exp.to_identifier("/etc/passwd", quoted=True)))
    with pytest.raises(UnverifiedQuery):
        verify(tree.sql("duckdb"), Placements())


def test_derived_wrapper_must_have_the_declared_shape():
    wrapper = "SELECT CASE WHEN region IS NULL THEN NULL ELSE '***' END AS region FROM (SELECT 1) AS _derived"
    p = Placements()
    p.place(CUSTOMERS)
    p.wrappers[canonical_wrapper(wrapper)] += 1
    verify("SELECT * FROM (SELECT CASE WHEN region IS NULL THEN NULL ELSE '***' END AS region "
           "FROM (SELECT region FROM memory.crm.customers) AS _derived) AS r", p)
    with pytest.raises(UnverifiedQuery):  # one placed wrapper: a second one (forged around VALUES) is refused
        verify("SELECT * FROM (SELECT CASE WHEN region IS NULL THEN NULL ELSE '***' END AS region "
               "FROM (SELECT region FROM memory.crm.customers) AS _derived) AS r, "
               "(SELECT CASE WHEN region IS NULL THEN NULL ELSE '***' END AS region "
               "FROM (SELECT quanta_mask_hash('guess') AS region) AS _derived) AS f", p)
    with pytest.raises(UnverifiedQuery):  # the inside of a wrapper is still verified
        verify("SELECT * FROM (SELECT CASE WHEN region IS NULL THEN NULL ELSE '***' END AS region "
               "FROM (SELECT region FROM memory.crm.orders) AS _derived) AS r", p)


# -- functions and other shapes -----------------------------------------------------------------------------


@pytest.mark.parametrize("sql", [
    "SELECT getenv('HOME')",
    "SELECT quanta_mask_hash('1.2.3.4')",  # an internal mask function, outside a secure select
    "SELECT memory.main.lower('x')",  # a qualified function (a macro of the engine's catalog)
    "SELECT _quanta_system.lower('x')",
    "SELECT * FROM read_csv('/etc/passwd')",
    "SELECT * FROM duckdb_settings()",
    "SELECT current_setting('threads')",
    "SELECT * FROM memory.crm.customers AT (VERSION => 1)",
    "SUMMARIZE SELECT 1",
    "SELECT 1; SELECT 2",
    "SELECT * FROM (SHOW TABLES)",
])
def test_refused_shapes(sql):
    with pytest.raises(UnverifiedQuery):
        verify(sql, placed(CUSTOMERS))


@pytest.mark.parametrize("sql", [
    "SELECT [1, 2][1], {'a': 1}, CAST('1' AS DECIMAL(10, 2)), 'a' LIKE 'b', 'a' SIMILAR TO 'b', INTERVAL 1 DAY",
    "SELECT list_transform([1, 2], y -> y + 1), coalesce(NULL, 1), 1 BETWEEN 0 AND 2, ?",
    "SELECT count(*) FILTER (WHERE x > 0) OVER (PARTITION BY x ORDER BY x), row_number() OVER () "
    "FROM (VALUES (1), (2)) AS v(x) QUALIFY row_number() OVER () = 1",
    "SELECT * FROM unnest([1, 2]) AS u(x)",
    "DESCRIBE SELECT 1 AS x",
])
def test_accepted_shapes(sql):
    verify(sql, Placements())
