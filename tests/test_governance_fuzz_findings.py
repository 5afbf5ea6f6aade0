"""What the governance fuzzer found (tests/test_governance_fuzz.py), each as a regression test.

No planted secret leaked: the verifier stopped every query below that the passes let through. But a query
that only the verifier stops is a defect of the passes (the fuzzer's property), a forged position crashes a
refusal, and three clauses attached to a dataset were silently dropped by the rewrite (wrong results).
"""

from __future__ import annotations

import pytest
from governance_fuzzkit import RAW_PII, Reference, make_oracle

from federation import errors
from federation.rewrite.verify import UnverifiedQuery


@pytest.fixture(scope="module")
def oracle(tmp_path_factory):
    return make_oracle(tmp_path_factory.mktemp("findings") / "mesh")


@pytest.fixture(scope="module")
def reference(oracle):
    return Reference(oracle)


def refusal(oracle, user: str, sql: str) -> errors.Error:
    with pytest.raises(errors.Error) as e:
        oracle.connections[user].sql(sql).fetchall()
    return e.value


# -- a WITH inside a set operation: sqlglot keeps it on the operand, its generator drops it ----------------------


def test_a_with_on_a_set_operation_operand_is_refused_by_the_passes(oracle):
    """``X UNION WITH c AS (...) SELECT ... FROM c UNION Y``: sqlglot attaches the WITH to the nested union and
    resolves ``c`` as a CTE, then generates SQL without the WITH, so ``c`` reaches the engine as a bare name:
    a file path or a catalog view. DuckDB itself does not accept this syntax. Today only the verifier stops
    it (an internal error); the passes must refuse it themselves."""
    path = f"{oracle.root}/data/crm/customers.csv"
    for sql in (f'SELECT NULL AS a, NULL AS b UNION WITH "{path}" AS (SELECT 1) '
                f'SELECT full_name, email FROM "{path}" UNION SELECT 1, 2',
                "SELECT 'x' AS sql UNION WITH duckdb_views AS (SELECT 'y' AS sql) "
                "SELECT sql FROM duckdb_views UNION SELECT 'z'",
                "SELECT 1 AS n EXCEPT WITH a AS (SELECT 1 AS n) SELECT * FROM a"):
        error = refusal(oracle, "ana", sql)
        assert not RAW_PII.search(str(error))
        assert not isinstance(error, UnverifiedQuery), f"only the verifier stopped: {sql}"


def test_a_qualified_function_is_refused_by_the_passes(oracle):
    """The function allow-list of the passes reads the name only: ``system.main.md5('x')`` passes it and only
    the verifier refuses the qualified name."""
    for sql in ("SELECT system.main.md5('x')", "SELECT pg_catalog.md5('x')", "SELECT memory.main.md5('x')"):
        try:
            assert oracle.connections["ana"].sql(sql).fetchall() == [("9dd4e461268c8034f5c8564e155c67a6",)]
        except errors.Error as e:
            assert not isinstance(e, UnverifiedQuery), f"only the verifier stopped: {sql}"


def test_a_pivot_statement_in_a_subquery_is_run_or_refused_by_the_passes(oracle):
    """``(PIVOT crm.customers ON ...)`` as a subquery passes the passes (the top-level PIVOT is refused), and
    DuckDB's serializer cannot represent it, so the verifier refuses it as an internal error."""
    sql = "SELECT * FROM (PIVOT crm.customers ON region USING count(*)) p"
    try:
        rows = oracle.connections["ana"].sql(sql).fetchall()
    except errors.Error as e:
        assert not isinstance(e, UnverifiedQuery), "only the verifier stopped it"
        assert isinstance(e, errors.StatementRefused) and "PIVOT" in str(e)
    else:
        assert rows and not RAW_PII.search(repr(rows))


# -- a recursive CTE over UNION BY NAME: DuckDB does not recurse, its name is the catalog's ------------------------


@pytest.mark.parametrize("union", ["UNION BY NAME", "UNION ALL BY NAME"])
def test_a_recursive_cte_over_union_by_name_does_not_see_itself(oracle, union):
    """DuckDB makes a RECURSIVE CTE over ``UNION [ALL] BY NAME`` a plain set operation: in its right operand the
    CTE's own name is looked up in the catalog (a file path, ``duckdb_views``). The passes treat it as the
    recursive operand, where the CTE is in scope, and hand the engine ``SELECT email FROM "<data file>"``:
    only the verifier stops it today. The passes must refuse the name as DuckDB would resolve it."""
    path = f"{oracle.root}/data/crm/customers.csv"
    for name, column in ((f'"{path}"', "email"), ("duckdb_views", "sql"), ("a", "email")):
        sql = (f"WITH RECURSIVE {name} AS (SELECT NULL AS {column} {union} SELECT {column} FROM {name}) "
               f"SELECT * FROM {name}")
        error = refusal(oracle, "ana", sql)
        assert not RAW_PII.search(str(error))
        assert not isinstance(error, UnverifiedQuery), f"only the verifier stopped: {sql}"
        assert isinstance(error, (errors.StatementRefused, errors.UnknownObject)), repr(error)


# -- a forged position crashes the refusal ---------------------------------------------------------------------


@pytest.mark.parametrize("comment", ["/* sqlglot.meta line=1 */", "/* sqlglot.meta line=1,col=2 */",
                                     "/* sqlglot.meta line=1,col=x,start=1,end=2 */"])
def test_a_forged_position_does_not_crash_the_refusal(oracle, comment):
    """``context.position`` reads ``node._meta``, which the parser fills from ``/* sqlglot.meta */`` comments:
    a refusal then raises KeyError/TypeError instead of the Quanta error, and is not audited."""
    sql = f"SELECT * FROM customers {comment}"
    error = refusal(oracle, "ulla", sql)
    assert isinstance(error, errors.UnknownObject) and "table customers does not exist" in str(error), repr(error)
    log = oracle.connections["ulla"].sql("SELECT status FROM system.query_log WHERE sql = ?", [sql]).fetchall()
    assert log and log[-1] == ("error",)


# -- clauses attached to a dataset are dropped when the rewrite wraps it ---------------------------------------


@pytest.mark.parametrize("sql", [
    "FROM crm.customers l JOIN shop.orders r ON true SELECT count(*)",  # FROM-first: sqlglot hangs the join on
    "FROM crm.customers c LEFT JOIN report.sales_by_region s USING (region) SELECT c.region, s.orders",  # the table
    "SELECT * FROM crm.customers PIVOT (count(*) FOR region IN ('US', 'CA')) p",
    "SELECT * FROM crm.customers UNPIVOT (v FOR k IN (full_name, email)) p",
    "SELECT count(*) FROM crm.customers TABLESAMPLE 5 ROWS",
])
def test_clauses_on_a_dataset_survive_the_rewrite(reference, sql):
    """The secure wrapper replaces the dataset's table node and loses what sqlglot attached to it (joins of a
    FROM-first query, PIVOT/UNPIVOT, TABLESAMPLE): the query silently answers something else."""
    outcome = reference.compare(sql)
    assert outcome.ok and not outcome.failures, "\n".join(outcome.failures) or outcome.error
