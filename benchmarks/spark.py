"""TPC-H on Apache Spark through Quanta vs hand-written Spark SQL, and DuckDB embedded vs Spark, in one run.

    python benchmarks/spark.py                      # SF1, 3 repeats, the 22 queries
    python benchmarks/spark.py --sf 0.1 --repeat 2 --queries 1,6,18

1. Starts a real Spark standalone cluster on 127.0.0.1 (``tests/sparkkit.py``: a master, two workers of one
   core each, a Spark Connect server attached to it that requires a token) and generates TPC-H at ``--sf``
   with ``tpch.py`` (reused when the Parquet files exist).
2. Five ways to run each of the 22 queries, on the same Parquet files:
   - **Quanta on Spark**: ``federation.connect(mesh).sql(q).arrow()`` on a TPC-H mesh whose
     ``settings.engine`` is ``{kind: spark_connect, url, token_env}`` (``.work/tpch-sf{sf}-spark``);
   - **hand-written Spark**: a plain Spark Connect session of the same server, one temporary view per table
     (``spark.read.parquet(...)``), the query text translated from DuckDB's by sqlglot (``databricks``), and
     ``spark.sql(q).toArrow()``; the same session settings as Quanta's session;
   - **Quanta on Spark, governed**: the same with ``governance.py``'s mask (``customer.c_name`` redacted)
     and row filter (orders without ``5-LOW``) for principal ``bench`` (``.work/tpch-sf{sf}-spark-governed``);
   - **hand-written secure views on Spark**: another plain session whose temporary views apply the same
     mask and filter by hand;
   - **Quanta on DuckDB** (embedded, ``threads: 2``), the default engine, for the crossover.
   One warm-up each (results compared: Quanta on Spark vs hand-written, governed vs secure views), then
   ``--repeat`` rounds, the order of the five rotated every round; medians and ratios.

Targets: geometric mean Quanta-on-Spark / hand-written Spark <= 1.05, governed / secure views <= 1.05.
Prints a table and writes the section "Spark: TPC-H SF<sf> through Quanta vs hand-written Spark SQL" of
RESULTS.md. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from pathlib import Path

import sqlglot
import yaml

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests"))
import governance  # noqa: E402
import tpch  # noqa: E402
from _common import WORK, environment_lines, geomean, median, progress, report_failures, table, write_section  # noqa: E402
from sparkkit import SparkCluster  # noqa: E402

RATIO_TARGET = 1.05
TOKEN_ENV = "QUANTA_BENCH_SPARK_TOKEN"  # Quanta's token for the benchmark's cluster (never SPARK_CONNECT_*)
VARIANTS = ("quanta_spark", "hand_spark", "gov_spark", "secure_spark", "duckdb")


def spark_mesh(sf: float, data: Path, url: str, governed: bool) -> Path:
    """``.work/tpch-sf{sf}-spark[-governed]``: the TPC-H mesh over the same data, its engine the cluster."""
    root = WORK / f"tpch-sf{tpch.sf_label(sf)}-spark{'-governed' if governed else ''}"
    tpch.write_mesh(root, data, sf)
    mesh_file = root / "mesh.yaml"
    doc = yaml.safe_load(mesh_file.read_text())
    doc["name"] = f"{doc['name']}_spark{'_governed' if governed else ''}"
    doc["data"] = str(data)
    doc["settings"]["engine"] = {"kind": "spark_connect", "url": url, "token_env": TOKEN_ENV}
    mesh_file.write_text(yaml.safe_dump(doc, sort_keys=False))
    gov = root / "governance.yaml"
    if governed:
        gov.write_text(yaml.safe_dump(governance.TPCH_GOVERNANCE, sort_keys=False))
    elif gov.exists():
        gov.unlink()
    return root


def session_conf() -> dict[str, str]:
    """The settings Quanta gives its own Spark session, so that the hand-written side runs under the same."""
    try:
        from federation.engine.spark_backend import SESSION_CONF

        return dict(SESSION_CONF)
    except ImportError:
        return {"spark.sql.timestampType": "TIMESTAMP_NTZ", "spark.sql.session.timeZone": "UTC"}


def hand_session(cluster: SparkCluster, data: Path, secure: bool):
    """A plain Spark Connect session: one temporary view per table, or the hand-written secure views."""
    spark = cluster.session()
    for key, value in session_conf().items():
        spark.conf.set(key, value)
    for t in tpch.TABLES:
        df = spark.read.parquet(str(data / f"{t}.parquet"))
        if secure and t == "customer":
            df = df.selectExpr(*[f"{governance.REDACTED} AS c_name" if c == "c_name" else f"`{c}`"
                                 for c in df.columns])
        elif secure and t == "orders":
            df = df.where(governance.SECURE_FILTER)
        df.createOrReplaceTempView(t)
    return spark


def same_values(a, b, ordered: bool, rel: float = 1e-6) -> tuple[str, str]:
    """("ok" | "MISMATCH", detail): the same rows, numbers equal to ``rel`` (decimal or float alike)."""
    import math
    from decimal import Decimal

    if (a.num_rows, a.num_columns) != (b.num_rows, b.num_columns):
        return "MISMATCH", f"shape {a.num_rows}x{a.num_columns} vs {b.num_rows}x{b.num_columns}"

    def norm(v):
        return float(v) if isinstance(v, (float, Decimal)) else v

    def close(x, y):
        x, y = norm(x), norm(y)
        if isinstance(x, float) and isinstance(y, float):
            return math.isclose(x, y, rel_tol=rel, abs_tol=rel)
        return x == y

    xs, ys = tpch._rows(a), tpch._rows(b)  # noqa: SLF001
    if not ordered:
        key = lambda row: tuple((v is None, round(norm(v), 4) if isinstance(norm(v), float) else v) for v in row)  # noqa: E731
        xs, ys = sorted(xs, key=key), sorted(ys, key=key)
    for i, (x, y) in enumerate(zip(xs, ys)):
        if not all(close(p, q) for p, q in zip(x, y)):
            return "MISMATCH", f"row #{i}: {x} vs {y}"
    return "ok", ""


def spark_text(sql: str) -> str:
    """DuckDB's TPC-H text as one would write it for Spark (sqlglot's databricks dialect)."""
    return sqlglot.transpile(sql, read="duckdb", write="databricks")[0]


def main() -> int:  # noqa: C901 - one linear script
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    ap.add_argument("--repeat", type=int, default=3, help="timed rounds per query (default 3)")
    ap.add_argument("--queries", default="", help="comma-separated query numbers (default: all 22)")
    ap.add_argument("--worker-memory", default="2g", help="memory of each of the two workers (default 2g)")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    import federation

    data = (WORK / f"tpch-sf{tpch.sf_label(args.sf)}" / "data").resolve()
    tpch.generate(args.sf, data)
    duck_root = tpch.write_mesh(WORK / f"tpch-sf{tpch.sf_label(args.sf)}", data, args.sf)
    texts = tpch.queries()
    wanted = [int(x) for x in args.queries.split(",") if x.strip()] or sorted(texts)

    executor_memory = f"{max(512, int(_mb(args.worker_memory) * 0.75))}m"
    cluster = SparkCluster(worker_memory=args.worker_memory, executor_memory=executor_memory, driver_memory="2g")
    progress("spark: starting a master, 2 workers and a Spark Connect server on 127.0.0.1 ...", end="")
    cluster.start()
    progress(f" {cluster.startup_seconds:.1f} s")
    os.environ[TOKEN_ENV] = cluster.token
    results: list[dict] = []
    failures: list[str] = []
    mismatches: list[str] = []
    try:
        idle_rss = cluster.rss_mb()
        progress("quanta: loading the meshes (DuckDB, Spark, Spark governed) ...", end="")
        started = time.perf_counter()
        duck = federation.connect(str(duck_root), user="bench")
        q_spark = federation.connect(str(spark_mesh(args.sf, data, cluster.url_without_token, False)), user="bench")
        q_gov = federation.connect(str(spark_mesh(args.sf, data, cluster.url_without_token, True)), user="bench")
        for conn in (q_spark, q_gov):
            bad = [p for p in conn.platform.mesh.problems if getattr(p, "severity", "") == "error"]
            if bad or tpch.QUANTUM not in conn.platform.mesh.quanta:
                progress("\n!!! the Spark mesh did not load: " + "; ".join(str(p) for p in conn.platform.mesh.problems))
                return 2
        hand = hand_session(cluster, data, secure=False)
        secure = hand_session(cluster, data, secure=True)
        progress(f" {time.perf_counter() - started:.1f} s")

        def runner(n: int) -> dict:
            q_sql, s_sql = tpch.qualify(texts[n]), spark_text(texts[n])
            return {
                "quanta_spark": lambda: q_spark.sql(q_sql).arrow(),
                "hand_spark": lambda: hand.sql(s_sql).toArrow(),
                "gov_spark": lambda: q_gov.sql(q_sql).arrow(),
                "secure_spark": lambda: secure.sql(s_sql).toArrow(),
                "duckdb": lambda: duck.sql(q_sql).arrow(),
            }

        columns = [TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()]
        with Progress(*columns, transient=False) as bar:
            task = bar.add_task("TPC-H on Spark", total=len(wanted) * (args.repeat + 1))
            for n in wanted:
                row: dict = {"q": n}
                results.append(row)
                runs = runner(n)
                ordered = tpch.has_order_by(texts[n])
                bar.update(task, description=f"Q{n:02d} warm-up")
                try:
                    out = {name: fn() for name, fn in runs.items()}
                except Exception as e:  # noqa: BLE001 - reported, the run goes on
                    row["error"] = f"{type(e).__name__}: {str(e)[:300]}"
                    failures.append(f"Q{n}: {row['error']}")
                    bar.advance(task, args.repeat + 1)
                    continue
                bar.advance(task)
                row["rows"] = out["hand_spark"].num_rows
                # the engines' parity (Quanta's promise: the same answer on Spark as on DuckDB, to 1e-9), then
                # Quanta vs the hand-written SQL, whose types are Spark's own (AVG of decimals: a 6-digit decimal)
                row["parity"], parity = tpch.compare(out["quanta_spark"], out["duckdb"], ordered)
                row["check"], detail = same_values(out["quanta_spark"], out["hand_spark"], ordered)
                row["gov_check"], gov_detail = same_values(out["gov_spark"], out["secure_spark"], ordered)
                for label, status, text in (("Spark vs DuckDB through Quanta", row["parity"], parity),
                                            ("Quanta vs hand-written", row["check"], detail),
                                            ("governed vs secure views", row["gov_check"], gov_detail)):
                    if status == "MISMATCH":
                        mismatches.append(f"Q{n} {label}: {text}")
                del out
                gc.collect()
                times: dict[str, list[float]] = {name: [] for name in VARIANTS}
                for i in range(args.repeat):
                    bar.update(task, description=f"Q{n:02d} round {i + 1}/{args.repeat}")
                    order = VARIANTS[i % len(VARIANTS):] + VARIANTS[:i % len(VARIANTS)]
                    for name in order:
                        dt, _ = tpch.timed(runs[name])
                        times[name].append(dt)
                    bar.advance(task)
                row.update({name: median(ts) for name, ts in times.items()})
                row["ratio"] = row["quanta_spark"] / row["hand_spark"]
                row["gov_ratio"] = row["gov_spark"] / row["secure_spark"]
                row["spark_vs_duck"] = row["quanta_spark"] / row["duckdb"]
                bar.console.print(
                    f"Q{n:02d}: Quanta/Spark {row['quanta_spark']:.2f} s, hand {row['hand_spark']:.2f} s "
                    f"({row['ratio']:.3f}); governed {row['gov_spark']:.2f} s, secure views "
                    f"{row['secure_spark']:.2f} s ({row['gov_ratio']:.3f}); DuckDB {row['duckdb']:.3f} s "
                    f"[{row['parity']}, {row['check']}, {row['gov_check']}]", markup=False, highlight=False)
        busy_rss = cluster.rss_mb()
        for conn in (q_spark, q_gov, duck):
            conn.platform.close() if hasattr(conn.platform, "close") else None
    finally:
        cluster.stop()
        os.environ.pop(TOKEN_ENV, None)

    ok = [r for r in results if "ratio" in r]
    headers = ["Query", "Rows", "Quanta on Spark s", "Hand-written Spark s", "Ratio", "Governed s",
               "Secure views s", "Ratio", "DuckDB s", "Spark / DuckDB", "Result"]
    rows = []
    for r in results:
        if "ratio" not in r:
            rows.append([f"Q{r['q']:02d}", "", "", "", "", "", "", "", "", "", "FAILS: " + r.get("error", "?")[:80]])
            continue
        rows.append([f"Q{r['q']:02d}", f"{r['rows']:,}", f"{r['quanta_spark']:.2f}", f"{r['hand_spark']:.2f}",
                     f"{r['ratio']:.3f}", f"{r['gov_spark']:.2f}", f"{r['secure_spark']:.2f}", f"{r['gov_ratio']:.3f}",
                     f"{r['duckdb']:.3f}", f"{r['spark_vs_duck']:.1f}x", f"{r['parity']}, {r['check']}, {r['gov_check']}"])
    gm, gm_gov, gm_duck = (geomean(r[k] for r in ok) for k in ("ratio", "gov_ratio", "spark_vs_duck"))
    sums = {k: sum(r[k] for r in ok) for k in VARIANTS}
    rows.append(["**all**", "", f"{sums['quanta_spark']:.1f}", f"{sums['hand_spark']:.1f}", f"{gm:.3f} (geo)",
                 f"{sums['gov_spark']:.1f}", f"{sums['secure_spark']:.1f}", f"{gm_gov:.3f} (geo)",
                 f"{sums['duckdb']:.2f}", f"{gm_duck:.1f}x (geo)", f"{len(mismatches)} mismatch(es)"])
    md_table = table(headers, rows, align="lrrrrrrrrrl")
    faster = [f"Q{r['q']:02d}" for r in ok if r["spark_vs_duck"] < 1]
    summary = [
        f"- Quanta on Spark / hand-written Spark SQL, geometric mean over {len(ok)} queries: **{gm:.3f}** "
        f"(sums {sums['quanta_spark']:.1f} s vs {sums['hand_spark']:.1f} s); target <= {RATIO_TARGET}: "
        f"**{'met' if gm <= RATIO_TARGET else 'NOT met'}**",
        f"- With a mask and a row filter / hand-written secure views on Spark: **{gm_gov:.3f}**; target <= "
        f"{RATIO_TARGET}: **{'met' if gm_gov <= RATIO_TARGET else 'NOT met'}**",
        f"- Spark (2 workers x 1 core, loopback) / DuckDB embedded (2 threads): geometric mean **{gm_duck:.1f}x** "
        f"(sums {sums['quanta_spark']:.1f} s vs {sums['duckdb']:.2f} s); queries faster on Spark: "
        f"{', '.join(faster) or 'none'}. On one machine DuckDB wins; Spark pays off when the data or the "
        "work outgrow one machine (more executors, data already on the cluster's storage).",
        f"- Cluster: started in {cluster.startup_seconds:.1f} s; resident memory idle "
        f"{sum(idle_rss.values()):.0f} MB ({', '.join(f'{k} {v:.0f}' for k, v in idle_rss.items())}), after the "
        f"run {sum(busy_rss.values()):.0f} MB (workers include their executors)",
        f"- Results: {len(ok) - len(mismatches)} of {len(wanted)} queries return the same rows through Quanta as "
        "hand-written (and governed as secure views), numbers to 1e-6; Quanta on Spark equals Quanta on DuckDB "
        f"(to 1e-9, names and types) for {sum(r.get('parity', '').startswith('ok') for r in ok)} of {len(ok)}" + (f"; **MISMATCHES**: {'; '.join(mismatches)}" if mismatches
                                                        else "") + (f"; **FAILURES**: {'; '.join(failures)}"
                                                                    if failures else ""),
    ]
    print()
    print(md_table)
    print()
    print("\n".join(summary))
    report_failures(failures + mismatches)
    if not args.no_write:
        import pyspark

        method = (
            f"Method: TPC-H SF{tpch.sf_label(args.sf)} as Parquet (`tpch.py`'s files), the 22 queries of "
            "`tpch_queries()`. A Spark standalone cluster on 127.0.0.1 started by `tests/sparkkit.py`: a master, "
            f"2 workers of 1 core and {args.worker_memory} (executors {executor_memory}), a Spark Connect server "
            f"(driver 2g) requiring a token; pyspark {pyspark.__version__}, Java 17. Quanta on Spark: "
            "`federation.connect(mesh).sql(q).arrow()` with `settings.engine: {kind: spark_connect}`; "
            "hand-written: a plain Spark Connect session of the same server with a temporary view per table "
            "over the same files, the query translated from DuckDB's text by sqlglot (databricks), "
            "`spark.sql(q).toArrow()`, Quanta's session settings. Governed: `governance.py`'s mask "
            "(customer.c_name redacted) and row filter (orders without 5-LOW) vs hand-written secure views in "
            "another plain session. DuckDB: Quanta on the embedded engine, `threads: 2`. One warm-up each "
            f"(results compared), then {args.repeat} rounds with the order of the five rotated; medians."
        )
        body = "\n".join(environment_lines() + [
            f"- Command: `python benchmarks/spark.py --sf {tpch.sf_label(args.sf)} --repeat {args.repeat}"
            + (f" --queries {args.queries}" if args.queries else "") + "`", "", method, "", md_table, "",
            *summary])
        write_section(f"Spark: TPC-H SF{tpch.sf_label(args.sf)} through Quanta vs hand-written Spark SQL", body)
        progress("written: benchmarks/RESULTS.md")
    return 1 if (mismatches or failures) else 0


def _mb(size: str) -> float:
    size = size.strip().lower()
    unit = {"g": 1024, "m": 1, "k": 1 / 1024}.get(size[-1])
    return float(size[:-1]) * unit if unit else float(size) / 2**20


if __name__ == "__main__":
    sys.exit(main())
