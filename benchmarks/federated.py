"""Federated sources: a selective join between a quantum served live from PostgreSQL (1 million rows)
and a Parquet quantum, through Quanta versus the same query in raw DuckDB with the postgres extension
attached by hand, in one run.

    python benchmarks/federated.py [--rows 1000000] [--repeat 7]

Starts a real PostgreSQL server (Debian's postgresql) on a loopback port in a temporary folder.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from _common import REPO, WORK, environment_lines, geomean, median, progress, table, write_section

sys.path.insert(0, str(REPO / "tests"))

QUERIES = {
    "selective join": (
        "select a.region, count(*) as orders, sum(o.amount) as revenue from {accounts} a join {orders} o "
        "on o.account_id = a.account_id where a.account_id between 1000 and 1999 group by a.region order by 1"),
    "point lookup": "select company, credit from {accounts} where account_id = 424242",
    "filtered scan": "select count(*), avg(credit) from {accounts} where region = 'EU' and credit > 500000",
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    import duckdb
    import yaml
    from meshkit import contract, local_server, mesh_yaml, product, prop, sql_to_file, write_yaml
    from pgserver import PostgresServer

    import federation
    from federation.platform import Platform

    progress("starting PostgreSQL ...")
    pg = PostgresServer()
    try:
        progress(f"loading {args.rows:,} accounts into PostgreSQL ...")
        pg.sql("CREATE SCHEMA b2b",
               "CREATE TABLE b2b.accounts (account_id bigint primary key, company text, region text, "
               "credit numeric(12,2))",
               f"INSERT INTO b2b.accounts SELECT i, 'company ' || i, (ARRAY['EU','US','CA'])[1 + i % 3], "
               f"(i % 1000) * 1000 FROM generate_series(1, {args.rows}) i",
               "ANALYZE b2b.accounts")
        root = WORK / "federated"
        if root.exists():
            import shutil

            shutil.rmtree(root)
        mesh_yaml(root, domains=("shop",))
        write_yaml(root / "governance.yaml", {"principals": [{"name": "bench", "roles": ["analyst"]}],
                                              "grants": [{"to": {"role": "analyst"}, "on": "*"}]})
        orders = root / "data" / "orders.parquet"
        progress("writing 2,000,000 orders to Parquet ...")
        sql_to_file(orders, f"select i as order_id, 1 + (i * 7919) % {args.rows} as account_id, "
                            "((i % 500) + 0.5)::decimal(10,2) as amount from range(2000000) t(i)")
        write_yaml(root / "products" / "b2b.odps.yaml", product("b2b"))
        write_yaml(root / "contracts" / "b2b.odcs.yaml", contract("b2b-contract", [{"name": "accounts", "properties": [
            prop("account_id", "integer", "bigint"), prop("company"), prop("region"),
            prop("credit", "number", "decimal(12,2)")]}],
            servers=[{"server": "pg", "type": "postgres", "host": pg.host, "port": pg.port, "database": "postgres",
                      "schema": "b2b"}]))
        write_yaml(root / "products" / "shop.odps.yaml", product("shop"))
        write_yaml(root / "contracts" / "shop.odcs.yaml", contract("shop-contract", [{"name": "orders", "properties": [
            prop("order_id", "integer", "bigint"), prop("account_id", "integer", "bigint"),
            prop("amount", "number", "decimal(10,2)")]}], servers=[local_server(str(orders))]))
        import os

        os.environ["QUANTA_PG_USER"], os.environ["QUANTA_PG_PASSWORD"] = "postgres", "postgres-admin"
        platform = Platform(root)
        conn = federation.Connection(platform, platform.principal("bench"))

        raw = duckdb.connect(config={"threads": "2"})
        ext = Path(importlib.import_module("duckdb_extension_postgres_scanner").__file__).parent
        raw.execute(f"LOAD '{ext / 'extensions' / f'v{duckdb.__version__}' / 'postgres_scanner.duckdb_extension'}'")
        raw.execute(f"ATTACH '{pg.dsn()}' AS pg (TYPE postgres, READ_ONLY)")
        raw.execute(f"CREATE VIEW orders AS SELECT * FROM read_parquet('{orders}')")

        rows, ratios = [], []
        for name, template in QUERIES.items():
            q_sql = template.format(accounts="b2b.accounts", orders="shop.orders")
            r_sql = template.format(accounts="pg.b2b.accounts", orders="orders")
            a = conn.sql(q_sql).arrow()
            b = raw.execute(r_sql).fetch_arrow_table()
            assert a.to_pylist() == b.to_pylist(), f"{name}: results differ"
            tq, tr = [], []
            for i in range(args.repeat):
                for who in ((0, 1) if i % 2 == 0 else (1, 0)):
                    t = time.perf_counter()
                    (conn.sql(q_sql).arrow() if who == 0 else raw.execute(r_sql).fetch_arrow_table())
                    (tq if who == 0 else tr).append(time.perf_counter() - t)
            mq, mr = median(tq) * 1000, median(tr) * 1000
            ratios.append(mq / mr)
            rows.append([name, f"{a.num_rows}", f"{mq:.1f}", f"{mr:.1f}", f"{mq / mr:.3f}"])
            progress(f"  {name}: Quanta {mq:.1f} ms, raw {mr:.1f} ms")
        gm = geomean(ratios)
        plan = platform.compile(QUERIES["selective join"].format(accounts="b2b.accounts", orders="shop.orders"),
                                platform.principal("bench"))
        explain = "\n".join(str(r[1]) for r in platform.state.backend.db.execute("EXPLAIN " + plan.sql).fetchall())
        pushed = "POSTGRES_SCAN" in explain and "account_id>=1000" in explain.replace(" ", "")
        body = "\n".join([
            *environment_lines(),
            f"- Command: `python benchmarks/federated.py --rows {args.rows} --repeat {args.repeat}`",
            "",
            f"Method: a real PostgreSQL 15 server on loopback holding `b2b.accounts` ({args.rows:,} rows), served "
            "live as a quantum; `shop.orders` (2,000,000 rows) in Parquet. Quanta: `federation.Connection(...).sql(q)"
            ".arrow()` on the mesh; raw: a plain `duckdb.connect()` with the postgres extension attached by hand and a "
            f"view over the same Parquet file. One warm-up each (results compared), then {args.repeat} runs "
            "alternating; medians.",
            "",
            table(["Query", "Rows", "Quanta ms", "Raw ms", "Ratio"], rows, "lrrrr"),
            "",
            f"- Geometric mean ratio: **{gm:.3f}**; target <= 1.10: **{'met' if gm <= 1.10 else 'not met'}**",
            f"- Filter pushdown into PostgreSQL (EXPLAIN of the compiled query shows the range filter in "
            f"POSTGRES_SCAN): **{'yes' if pushed else 'no'}**",
        ])
        print(body)
        if not args.no_write:
            write_section("Federated sources: PostgreSQL x Parquet join", body)
    finally:
        pg.stop()


if __name__ == "__main__":
    main()
