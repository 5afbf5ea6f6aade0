"""Differential test: SQL over the PostgreSQL wire means PostgreSQL.

The same two tables are loaded into a real PostgreSQL server (tests/pgserver.py) and into a mesh served by
Quanta's pgwire server; every query of the corpus (tests/pg_corpus.py, ~500 queries typical of BI tools and
ORMs) runs through both with psycopg, and the rows (floats with a tolerance), the column names and the type
OIDs must be the same, or the same SQLSTATE when PostgreSQL refuses the query. What still differs is listed
in ``EXPECTED_DIFFERENCES`` with its reason (and in the README's pgwire section), and asserted to still
differ, so the list stays true.

``python tests/test_pg_differential.py`` prints every difference (the figures of the README).
"""

from __future__ import annotations

import decimal
import math
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlglot
from meshkit import contract, local_server, mesh_yaml, product, prop, write_yaml
from pg_corpus import SALES, STORES, queries, sales_rows, stores_rows
from pgserver import PostgresServer

from federation.platform import Platform
from federation.server.pgwire import PgServer, register_token

psycopg = pytest.importorskip("psycopg")

USER = "bi_user"
_VARCHAR = "a cast to varchar is sent as text (25, not 1043): Arrow has one string type (the values are PostgreSQL's)"
EXPECTED_DIFFERENCES: dict[str, str] = {
    "select id, cast(id as varchar) from bi.sales order by 1 limit 8": _VARCHAR,
    "select id, '  x '::varchar(3) from bi.sales order by 1 limit 8": _VARCHAR,
    "select id, product::varchar(4), category::character varying(3), id::varchar(1) from bi.sales order by 1 limit 8":
        _VARCHAR,
    "select id, to_char(price, '999.99') from bi.sales order by 1 limit 8":
        "to_char with a numeric format is not available (to_char of dates and timestamps is)",
    "select * from generate_series(1, 4) as g(n)":
        "table functions in FROM are refused by the governance passes (only mesh datasets are read)",
}


# -- the two servers --------------------------------------------------------------------------------------------


ARROW = {"integer": pa.int32(), "bigint": pa.int64(), "smallint": pa.int16(), "numeric(10,2)": pa.decimal128(10, 2),
         "double precision": pa.float64(), "text": pa.string(), "date": pa.date32(),
         "timestamp": pa.timestamp("us"), "boolean": pa.bool_()}


def build_mesh(root: Path) -> Path:
    mesh_yaml(root, domains=("bi",))
    write_yaml(root / "governance.yaml", {"principals": [{"name": USER}],
                                          "grants": [{"to": {"role": "public"}, "on": "*", "reason": "test"}]})
    for name, columns, rows in (("sales", SALES, sales_rows()), ("stores", STORES, stores_rows())):
        arrays = [pa.array([r[i] for r in rows], ARROW[c[1]]) for i, c in enumerate(columns)]
        (root / "data" / "bi").mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.table(arrays, names=[c[0] for c in columns]), root / "data" / "bi" / f"{name}.parquet")
    write_yaml(root / "products" / "bi.odps.yaml", product("bi", domain="bi"))
    write_yaml(root / "contracts" / "bi.odcs.yaml", contract("bi-contract", [
        {"name": name, "physicalName": name, "properties": [prop(c[0], c[2], c[3]) for c in columns]}
        for name, columns in (("sales", SALES), ("stores", STORES))], servers=[local_server("bi/{model}.parquet")]))
    return root


def load_postgres(server: PostgresServer) -> None:
    with psycopg.connect(server.dsn(), autocommit=True) as conn:
        conn.execute("create schema bi")
        for name, columns, rows in (("sales", SALES, sales_rows()), ("stores", STORES, stores_rows())):
            conn.execute(f"create table bi.{name} ({', '.join(f'{c[0]} {c[1]}' for c in columns)})")
            with conn.cursor().copy(f"copy bi.{name} from stdin") as copy:
                for row in rows:
                    copy.write_row(row)
        conn.execute("analyze")


class Targets:
    """A PostgreSQL server and a Quanta pgwire server over the same rows, one psycopg connection to each."""

    def __init__(self, root: Path) -> None:
        self.postgres = PostgresServer()
        try:
            load_postgres(self.postgres)
            self.platform = Platform(build_mesh(root))
            token, _ = self.platform.tokens.create(USER, 1)
            register_token(self.platform, token)
            self.quanta = PgServer(self.platform, host="127.0.0.1", port=0).start()
            self.pg_conn = psycopg.connect(self.postgres.dsn() + " options='-c TimeZone=UTC'", autocommit=True)
            self.q_conn = psycopg.connect(f"host=127.0.0.1 port={self.quanta.port} user={USER} dbname=testmesh "
                                          f"password={token}", autocommit=True)
        except BaseException:
            self.postgres.stop()
            raise

    def close(self) -> None:
        for closing in (self.pg_conn.close, self.q_conn.close, self.quanta.stop, self.postgres.stop):
            try:
                closing()
            except Exception as e:  # noqa: BLE001 - close the others regardless
                print(f"closing: {e}", file=sys.stderr)


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    t = Targets(tmp_path_factory.mktemp("pgdiff"))
    yield t
    t.close()


# -- running and comparing --------------------------------------------------------------------------------------


def _value(v):
    if isinstance(v, bool) or v is None:
        return v
    if isinstance(v, (int, float, decimal.Decimal)):
        f = float(v)
        return "NaN" if math.isnan(f) else f"{f:.9g}"
    if isinstance(v, (list, tuple)):
        return [_value(x) for x in v]
    if isinstance(v, (bytes, memoryview)):
        return bytes(v)
    return v


def run(conn, sql: str, params: tuple) -> tuple:
    """("ok", names, type oids, rows) or ("error", sqlstate)."""
    try:
        cur = conn.execute(sql, params or None)
        names = tuple(d.name for d in cur.description)
        oids = tuple(d.type_code for d in cur.description)
        rows = [tuple(_value(v) for v in row) for row in cur.fetchall()]
    except psycopg.Error as e:
        return ("error", e.sqlstate)
    except Exception as e:  # noqa: BLE001 - the client could not read what the server sent
        return ("error", f"client: {type(e).__name__}: {e}")
    ordered = isinstance(tree := sqlglot.parse_one(sql.replace("%s", "NULL"), read="postgres"), exp_query) \
        and tree.args.get("order") is not None
    if not ordered:
        rows.sort(key=lambda r: repr(r))
    return ("ok", names, oids, rows)


exp_query = sqlglot.exp.Query


def describe(a: tuple, b: tuple) -> str:
    if a[0] != b[0] or a[0] == "error":
        return f"postgres {a[:2]} / quanta {b[:2]}"
    parts = []
    if a[1] != b[1]:
        parts.append(f"names {a[1]} / {b[1]}")
    if a[2] != b[2]:
        parts.append(f"oids {a[2]} / {b[2]}")
    if a[3] != b[3]:
        first = next((i for i, (x, y) in enumerate(zip(a[3], b[3])) if x != y), min(len(a[3]), len(b[3])))
        rows = (a[3][first] if first < len(a[3]) else None, b[3][first] if first < len(b[3]) else None)
        parts.append(f"rows ({len(a[3])}/{len(b[3])}) first differing #{first}: {rows[0]} / {rows[1]}")
    return "; ".join(parts)


def compare(targets: Targets) -> tuple[int, dict[str, str]]:
    """(number of queries, {sql: what differs})."""
    corpus = queries()
    differing = {}
    for sql, params in corpus:
        a, b = run(targets.pg_conn, sql, params), run(targets.q_conn, sql, params)
        if a != b:
            differing[sql] = describe(a, b)
    return len(corpus), differing


def test_corpus_is_large_and_distinct():
    corpus = queries()
    assert len(corpus) >= 300
    assert len({sql for sql, _ in corpus}) == len(corpus)
    assert set(EXPECTED_DIFFERENCES) <= {sql for sql, _ in corpus}


def test_quanta_answers_as_postgresql(targets):
    total, differing = compare(targets)
    unexpected = {sql: d for sql, d in differing.items() if sql not in EXPECTED_DIFFERENCES}
    no_longer = [sql for sql in EXPECTED_DIFFERENCES if sql not in differing]
    report = "\n".join(f"{sql}\n    {d}" for sql, d in unexpected.items())
    assert not unexpected, f"{len(unexpected)} of {total} queries differ from PostgreSQL:\n{report}"
    assert not no_longer, f"these queries now match PostgreSQL: remove them from EXPECTED_DIFFERENCES: {no_longer}"


def test_division_by_zero_is_22012(targets):
    for sql in ("select 1 / 0", "select id / (rating - rating) from bi.sales", "select 5 % 0",
                "select price / 0 from bi.sales", "select discount / 0 from bi.sales"):
        with pytest.raises(psycopg.errors.DivisionByZero):
            targets.q_conn.execute(sql).fetchall()
    assert targets.q_conn.execute("select 10 / 4, -7 / 2, 7 % 3").fetchone() == (2, -3, 1)



def test_postgres_semantics_leave_governance_alone(tmp_path):
    """The pass runs after the governance passes and touches only the user's expressions: masks, row filters
    and denials hold for PostgreSQL SQL exactly as for DuckDB SQL, and the verifier accepts the result."""
    from meshkit import shop_mesh
    from test_pgwire import GOVERNANCE

    from federation import errors

    platform = Platform(shop_mesh(tmp_path, governance=GOVERNANCE))
    ana = platform.principal("ana")

    def rows(sql, dialect):
        return platform.query(sql, ana, dialect=dialect).fetchall()

    masked = "select id, full_name, email, region from crm.customers order by id"
    assert rows(masked, "postgres") == rows(masked, "duckdb")
    assert all(r[1] == "****" and r[2].startswith("***@") and r[3] != "EU" for r in rows(masked, "postgres"))
    divided = rows("select id / 2, length(email), count(*) over (), email || null, id / (id - id + 1) "
                   "from crm.customers order by id", "postgres")
    assert [r[0] for r in divided] == [i // 2 for i, *_ in rows(masked, "duckdb")]
    assert {r[1] for r in divided} == {len(r[2]) for r in rows(masked, "duckdb")}
    with pytest.raises(errors.AccessDenied):
        rows("select sum(amount) / count(*) from shop.orders", "postgres")
    with pytest.raises(errors.DivisionByZero):
        rows("select count(*) / (count(*) - count(*)) from crm.customers", "postgres")
    plan = platform.compile("select count(*), avg(id) from crm.customers", ana, dialect="postgres")
    assert '"count"' in plan.sql and "memory.crm.customers" in plan.sql and "'****'" in plan.sql


if __name__ == "__main__":
    import tempfile

    t = Targets(Path(tempfile.mkdtemp()))
    try:
        n, diff = compare(t)
    finally:
        t.close()
    for sql, d in diff.items():
        print(("EXPECTED " if sql in EXPECTED_DIFFERENCES else "") + sql + "\n    " + d)
    print(f"{n} queries, {n - len(diff)} match PostgreSQL, {len(diff)} differ", file=sys.stderr)
