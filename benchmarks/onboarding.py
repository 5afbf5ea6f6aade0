"""Onboarding throughput and the cost of quality checks, side by side with ``datacontract test``.

    python benchmarks/onboarding.py --rows 10000000 [--datacontract /tmp/dcvenv/bin/datacontract]

A copy of the Great Parts mesh (scale 0.05) and one batch of ``--rows`` rows of ``sales.orders``
(Parquet, every value valid). Measured in one run:

1. plain scan: one aggregate reading every column of the served dataset once (``min`` of each);
2. the metrics query of ``quanta check`` (every library and schema rule, ONE scan), and the whole
   check (that query plus the contract's 3 ``sql`` rules, through the pipeline), as multiples of 1;
3. ``onboard``: read, schema check, all rules, write the version (zstd Parquet), switch: rows/s;
4. ``datacontract test`` (PyPI ``datacontract-cli``, soda-core on DuckDB) on the same file and the
   same ODCS contract, when its executable is given: wall time and rows/s.

Results go to the section "Onboarding and quality checks" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import time
from pathlib import Path

import _common as C
import duckdb
import yaml

from federation import demo
from federation.engine.duckdb_backend import quote
from federation.onboarding import control, onboard
from federation.platform import Platform
from federation.quality import rules as R

ORDERS_SQL = """
select i as order_id, cast(hash(i) % 200000 + 1 as bigint) as customer_id,
       case when i % 3 = 0 then cast(hash(i * 7) % 40 + 1 as bigint) else null end as store_id,
       timestamp '2024-11-01' + to_seconds(i * 6 + hash(i * 11) % 6) as order_ts,
       cast(timestamp '2024-11-01' + to_seconds(i * 6 + hash(i * 11) % 6) as date) as order_date,
       ['EU', 'US', 'CA'][(i % 3) + 1] as region,
       case when i % 3 = 0 then 'store' when i % 3 = 1 then 'web' else 'mobile' end as channel,
       cast((hash(i * 31) % 50000) / 100.0 as decimal(12,2)) as amount,
       ['EUR', 'USD', 'CAD'][(i % 3) + 1] as currency,
       ['pending', 'shipped', 'completed', 'cancelled', 'returned'][cast(hash(i * 13) % 5 as bigint) + 1] as status
from range(1, {rows} + 1) t(i)
"""


def timed(fn, repeat: int = 1):
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--datacontract", default=shutil.which("datacontract") or "/tmp/dcvenv/bin/datacontract")
    args = ap.parse_args()

    work = C.WORK / "onboarding"
    shutil.rmtree(work, ignore_errors=True)
    mesh = work / "greatparts"
    shutil.copytree(C.REPO / "catalogs" / "greatparts", mesh, ignore=shutil.ignore_patterns("data", ".quanta"))
    C.progress("generating the demo mesh (scale 0.05) ...")
    demo.generate(mesh, scale=0.05, seed=1)
    batch = work / "drop" / "orders.parquet"
    batch.parent.mkdir(parents=True)
    C.progress(f"writing a batch of {args.rows:,} orders ...")
    con = duckdb.connect()
    con.execute(f"COPY ({ORDERS_SQL.format(rows=args.rows)}) TO '{batch}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    size = batch.stat().st_size

    p = Platform(mesh)
    liam = p.principal("liam")  # owner of sales, data engineer
    C.progress("onboarding ...")
    t_onboard, report = timed(lambda: onboard(p, "sales.orders", str(batch), liam))
    assert report.status == "published" and report.rows_published == args.rows, report.to_dict()
    # the same rows in another shape (amount as DOUBLE, one undeclared column): converted and rewritten
    reshaped = work / "drop" / "orders-reshaped.parquet"
    con = duckdb.connect()
    con.execute(f"COPY (SELECT * REPLACE (CAST(amount AS DOUBLE) AS amount), 'x' AS note FROM "
                f"read_parquet('{batch}')) TO '{reshaped}' (FORMAT parquet, COMPRESSION zstd)")
    con.close()
    C.progress("onboarding a batch that needs converting ...")
    t_rewrite, rewrite = timed(lambda: onboard(p, "sales.orders", str(reshaped), liam))
    assert rewrite.status == "published" and rewrite.rows_published == args.rows, rewrite.to_dict()

    ds = p.mesh.dataset("sales", "orders")
    backend = p.state.backend
    rel = ".".join(quote(x) for x in backend.relation("sales", "orders"))
    scan_sql = "SELECT " + ", ".join(f"min({quote(c.name)})" for c in ds.columns) + f" FROM {rel}"
    rules = control.rules_of(p, ds)

    def run(sql):
        e = backend.execute(sql)
        try:
            return e.reader().read_all()
        finally:
            e.close()

    keys = R.bitmap_columns(rules, ds)
    bounds_row = run(R.bounds_query(keys, rel)).to_pylist()[0] if keys else {}
    values = list(bounds_row.values())
    metrics_sql, measured = R.metrics_query(rules, ds, rel, {c: (values[2 * i], values[2 * i + 1])
                                                             for i, c in enumerate(keys)})

    C.progress("plain scan vs checks ...")
    run(scan_sql)
    t_scan, _ = timed(lambda: run(scan_sql), args.repeat)
    t_metrics, _ = timed(lambda: run(metrics_sql), args.repeat)
    t_check, result = timed(lambda: control.check(p, "sales.orders", liam, samples=False), args.repeat)
    sql_rules = sum(1 for r in rules if r.type == "sql")

    dc_line = "not run (no `datacontract` executable; `pip install datacontract-cli` in a separate venv)"
    t_dc = None
    dc_path = Path(args.datacontract)
    if dc_path.exists():
        contract = yaml.safe_load((mesh / "contracts" / "sales.odcs.yaml").read_text())
        contract["servers"] = [{"server": "local", "type": "local", "format": "parquet", "path": str(batch)}]
        contract["schema"] = [s for s in contract["schema"] if s["name"] == "orders"]
        contract.pop("slaProperties", None)
        (work / "dc.odcs.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
        C.progress("datacontract test ...")
        t0 = time.perf_counter()
        proc = subprocess.run([str(dc_path), "test", str(work / "dc.odcs.yaml")], capture_output=True, text=True,
                              cwd=work)
        t_dc = time.perf_counter() - t0
        tail = (proc.stdout + proc.stderr).strip().splitlines()[-3:]
        dc_line = f"exit {proc.returncode}; {t_dc:.1f} s; last lines: {' / '.join(x.strip() for x in tail)[:300]}"
        (work / "datacontract.log").write_text(proc.stdout + proc.stderr)

    rows = args.rows
    table = C.table(
        ["What", "Seconds", "Rows/s", "x plain scan"],
        [["plain scan (every column once)", f"{t_scan:.3f}", f"{rows / t_scan:,.0f}", "1.00"],
         [f"metrics query ({len(measured)} rules + row count, one scan)", f"{t_metrics:.3f}",
          f"{rows / t_metrics:,.0f}", f"{t_metrics / t_scan:.2f}"],
         [f"quanta check (metrics + {sql_rules} sql rules via the pipeline)", f"{t_check:.3f}",
          f"{rows / t_check:,.0f}", f"{t_check / t_scan:.2f}"],
         ["quanta onboard, batch in the contract's shape (copied as is)", f"{t_onboard:.3f}",
          f"{rows / t_onboard:,.0f}", f"{t_onboard / t_scan:.2f}"],
         ["quanta onboard, batch to convert (a cast, a column dropped: rewritten)", f"{t_rewrite:.3f}",
          f"{rows / t_rewrite:,.0f}", f"{t_rewrite / t_scan:.2f}"]]
        + ([["datacontract test (same file, same contract)", f"{t_dc:.3f}", f"{rows / t_dc:,.0f}",
             f"{t_dc / t_scan:.2f}"]] if t_dc else []),
        "lrrr")
    body = "\n".join(C.environment_lines() + [
        f"- Command: `python benchmarks/onboarding.py --rows {rows}`", "",
        f"Method: a batch of {rows:,} `sales.orders` rows ({size / 1e6:.0f} MB zstd Parquet, all valid) against the "
        f"Great Parts sales contract: {len(rules)} rules ({len(measured)} library/schema metrics and row count "
        f"compiled to one aggregate query after one for the key's bounds, {sql_rules} sql rules). Scan and check timings: best of {args.repeat}; "
        "onboarding and datacontract: one run each (cold).", "", table, "",
        f"- Onboarding steps (s): in shape {report.seconds}; to convert {rewrite.seconds} (stage = read the batch "
        "and write the version's files; checks = every rule on those files; publish = fsync and rename)",
        f"- Column metrics: {len(measured)} in **1 scan** (target: at most 2); whole check = "
        f"{t_check / t_scan:.2f} x one plain scan",
        f"- datacontract-cli: {dc_line}",
    ] + ([f"- Throughput ratio quanta onboard / datacontract test: **{t_dc / t_onboard:.1f}x** for a batch in the "
          f"contract's shape, **{t_dc / t_rewrite:.1f}x** for one to convert (target >= 5x: "
          f"{'met' if t_dc / t_onboard >= 5 else 'not met'} / {'met' if t_dc / t_rewrite >= 5 else 'not met'}; "
          "onboarding also writes the version, datacontract test only reads)",
          f"- Throughput ratio quanta check / datacontract test (both only check): **{t_dc / t_check:.1f}x**"]
         if t_dc else []))
    C.write_section("Onboarding and quality checks", body)
    print(body)


if __name__ == "__main__":
    main()
