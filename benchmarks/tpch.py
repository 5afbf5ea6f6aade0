"""TPC-H through Quanta vs raw DuckDB, side by side in one run.

    python benchmarks/tpch.py                 # SF1, 5 repeats
    python benchmarks/tpch.py --sf 0.1 --repeat 3 --queries 1,6,18

1. Generates TPC-H with DuckDB's tpch extension (loaded from the installed ``duckdb_extension_tpch``
   package) into ``benchmarks/.work/tpch-sf{sf}/data/<table>.parquet`` (skipped when the files exist).
2. Lays it out as a mesh (``mesh.yaml``, one ODPS product ``tpch``, one ODCS contract with the 8
   tables, every column typed with its DuckDB type), so the tables are ``tpch.lineitem`` etc.
3. Runs the 22 TPC-H queries (text from ``tpch_queries()``) through ``federation.connect(...).sql(q)
   .arrow()`` and through a plain DuckDB connection with one view per table over the same Parquet
   files and the same thread count; the only difference in the query text is the ``tpch.`` prefix of
   the table names. One warm-up each, then quanta/raw alternate ``--repeat`` times (the order flips
   every round); medians and their ratio are reported.
4. Measures Quanta's per-query overhead: the rewrite pipeline alone (``platform.compile``), cold
   (plan cache cleared before each compile) and cached.
5. Checks that Quanta returns the same rows as DuckDB for every query, and says so loudly if not.

Prints a table and writes the section "TPC-H SF<sf> through Quanta vs raw DuckDB" of RESULTS.md.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import math
import sys
import time
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow as pa
import sqlglot
import sqlglot.expressions as exp
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (WORK, environment_lines, geomean, median, progress, report_failures, table,  # noqa: E402
                     write_section)

TABLES = ("region", "nation", "supplier", "customer", "part", "partsupp", "orders", "lineitem")
QUANTUM = "tpch"
THREADS = 2
RATIO_TARGET = 1.05
OVERHEAD_TARGET_MS = 2.0


# -- data and mesh ------------------------------------------------------------------------------------


def sf_label(sf: float) -> str:
    return f"{sf:g}"


def tpch_extension() -> Path:
    spec = importlib.util.find_spec("duckdb_extension_tpch")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("the package duckdb-extension-tpch is not installed: pip install duckdb-extension-tpch")
    pkg = Path(list(spec.submodule_search_locations)[0])
    path = pkg / "extensions" / f"v{duckdb.__version__}" / "tpch.duckdb_extension"
    if not path.exists():
        found = sorted(pkg.glob("extensions/*/tpch.duckdb_extension"))
        if not found:
            sys.exit(f"no tpch.duckdb_extension under {pkg}/extensions")
        path = found[-1]
    return path


def tpch_connection() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(f"LOAD '{tpch_extension()}'")
    return con


def generate(sf: float, data: Path) -> None:
    files = [data / f"{t}.parquet" for t in TABLES]
    if all(f.exists() for f in files):
        progress(f"data: {data} exists, generation skipped")
        return
    data.mkdir(parents=True, exist_ok=True)
    con = tpch_connection()
    progress(f"data: dbgen(sf={sf:g}) ...", end="")
    started = time.perf_counter()
    con.execute(f"CALL dbgen(sf={sf!r})")
    progress(f" {time.perf_counter() - started:.1f} s")
    for t, f in zip(TABLES, files):
        started = time.perf_counter()
        rows = con.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
        progress(f"data: {t} ({rows:,} rows) -> {f.name} ...", end="")
        tmp = f.with_suffix(".parquet.tmp")
        con.execute(f"COPY {t} TO '{tmp}' (FORMAT parquet)")
        tmp.replace(f)
        progress(f" {time.perf_counter() - started:.1f} s")
    con.close()


LOGICAL = (("DECIMAL", "number"), ("DOUBLE", "number"), ("FLOAT", "number"), ("BIGINT", "integer"),
           ("INTEGER", "integer"), ("SMALLINT", "integer"), ("TINYINT", "integer"), ("VARCHAR", "string"),
           ("DATE", "date"), ("TIMESTAMP", "timestamp"), ("BOOLEAN", "boolean"))


def logical_type(duck_type: str) -> str:
    for prefix, logical in LOGICAL:
        if duck_type.upper().startswith(prefix):
            return logical
    return "string"


def write_mesh(root: Path, data: Path, sf: float) -> Path:
    """mesh.yaml, one ODPS product and one ODCS contract describing the 8 tables (names and DuckDB types)."""
    con = duckdb.connect()
    schema = []
    for t in TABLES:
        cols = con.execute(f"DESCRIBE SELECT * FROM read_parquet('{data / (t + '.parquet')}')").fetchall()
        schema.append({
            "name": t,
            "physicalName": t,
            "physicalType": "table",
            "description": f"TPC-H {t} (scale factor {sf:g})",
            "properties": [{"name": name, "logicalType": logical_type(typ), "physicalType": typ}
                           for name, typ, *_ in cols],
        })
    con.close()
    docs = {
        root / "mesh.yaml": {
            "name": f"tpch_sf{sf_label(sf).replace('.', '_')}",
            "description": f"TPC-H at scale factor {sf:g}, generated by benchmarks/tpch.py",
            "domains": [{"name": "benchmark", "description": "benchmark data"}],
            "data": "data",
            "settings": {"threads": THREADS},
        },
        root / "products" / "tpch.odps.yaml": {
            "apiVersion": "v1.0.0",
            "kind": "DataProduct",
            "id": "urn:quanta:benchmark:product:tpch",
            "name": QUANTUM,
            "domain": "benchmark",
            "status": "active",
            "description": {"purpose": "The TPC-H tables"},
            "team": {"name": "benchmark", "members": [{"username": "bench", "role": "owner"}]},
            "outputPorts": [{"name": "tpch", "version": "1.0.0", "contractId": "tpch-contract", "type": "tables"}],
        },
        root / "contracts" / "tpch.odcs.yaml": {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": "tpch-contract",
            "version": "1.0.0",
            "status": "active",
            "name": "TPC-H",
            "servers": [{"server": "local", "type": "local", "path": "{model}.parquet", "format": "parquet"}],
            "schema": schema,
        },
    }
    for path, doc in docs.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        text = yaml.safe_dump(doc, sort_keys=False)
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
    return root


# -- queries ------------------------------------------------------------------------------------------


def queries() -> dict[int, str]:
    con = tpch_connection()
    out = {int(n): q for n, q in con.execute("SELECT query_nr, query FROM tpch_queries() ORDER BY 1").fetchall()}
    con.close()
    return out


def _base_tables(tree: exp.Expression) -> list[exp.Table]:
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    return [t for t in tree.find_all(exp.Table)
            if not t.args.get("db") and t.name.lower() in TABLES and t.name.lower() not in ctes]


def qualify(sql: str) -> str:
    """The same text with every TPC-H table reference prefixed by ``tpch.`` (and nothing else changed).

    The positions come from sqlglot's parse (so column aliases named like a table, e.g. ``AS nation``
    in Q8/Q9, and string literals are left alone); the result is checked by parsing it again.
    """
    tree = sqlglot.parse_one(sql, read="duckdb")
    starts = sorted({t.this.meta["start"] for t in _base_tables(tree)}, reverse=True)
    out = sql
    for s in starts:
        out = out[:s] + f"{QUANTUM}." + out[s:]
    expected = tree.copy()
    for t in _base_tables(expected):
        t.set("db", exp.to_identifier(QUANTUM))
    got = sqlglot.parse_one(out, read="duckdb")
    if got != expected or _base_tables(got):
        raise AssertionError(f"qualifying the tables went wrong:\n{out}")
    return out


def has_order_by(sql: str) -> bool:
    tree = sqlglot.parse_one(sql, read="duckdb")
    return tree.args.get("order") is not None


# -- comparing results --------------------------------------------------------------------------------


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        a, b = float(a), float(b)
        return a == b or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, Decimal) and isinstance(b, Decimal):
        return a == b
    return a == b


def _rows(t: pa.Table) -> list[tuple]:
    return list(zip(*[c.to_pylist() for c in t.columns])) if t.num_columns else []


def _sort_key(row: tuple):
    return tuple((v is None, round(v, 6) if isinstance(v, float) else v) for v in row)


def compare(quanta: pa.Table, raw: pa.Table, ordered: bool) -> tuple[str, str]:
    """("ok" | "ok*" (same rows, other names or types) | "ok (order)" | "MISMATCH", details)."""
    notes = []
    if quanta.num_rows != raw.num_rows:
        return "MISMATCH", f"{quanta.num_rows} rows through Quanta, {raw.num_rows} raw"
    if quanta.num_columns != raw.num_columns:
        return "MISMATCH", f"{quanta.num_columns} columns through Quanta, {raw.num_columns} raw"
    if quanta.column_names != raw.column_names:
        notes.append(f"column names differ: {quanta.column_names} vs raw {raw.column_names}")
    if quanta.schema.types != raw.schema.types:
        diff = [f"{n}: {a} vs {b}" for n, a, b in zip(raw.column_names, quanta.schema.types, raw.schema.types)
                if a != b]
        notes.append("types differ: " + "; ".join(diff))
    qr, rr = _rows(quanta), _rows(raw)

    def same(xs, ys):
        return all(len(x) == len(y) and all(_close(a, b) for a, b in zip(x, y)) for x, y in zip(xs, ys))

    status = "ok"
    if ordered and same(qr, rr):
        pass
    elif same(sorted(qr, key=_sort_key), sorted(rr, key=_sort_key)):
        if ordered:
            status = "ok (order)"
            notes.append("same rows, but in another order than raw DuckDB (ties of the ORDER BY?)")
    else:
        for i, (x, y) in enumerate(zip(sorted(qr, key=_sort_key), sorted(rr, key=_sort_key))):
            if not same([x], [y]):
                return "MISMATCH", f"first differing row (sorted) #{i}: {x} vs raw {y}"
        return "MISMATCH", "rows differ"
    if notes and status == "ok":
        status = "ok*"
    return status, "; ".join(notes)


# -- measuring ----------------------------------------------------------------------------------------


def timed(fn) -> tuple[float, object]:
    started = time.perf_counter()
    out = fn()
    return time.perf_counter() - started, out


def raw_connection(data: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config={"threads": str(THREADS)})
    for t in TABLES:
        con.execute(f"CREATE VIEW {t} AS SELECT * FROM read_parquet('{data / (t + '.parquet')}')")
    return con


def raw_arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    out = con.sql(sql).arrow()
    return out.read_all() if isinstance(out, pa.RecordBatchReader) else out


def compile_times(platform, principal, sql: str, cold_repeat: int, cached_repeat: int) -> tuple[float, float]:
    pipeline = platform.state.pipeline
    cold = []
    for _ in range(cold_repeat):
        pipeline.clear_cache()
        started = time.perf_counter()
        platform.compile(sql, principal)
        cold.append(time.perf_counter() - started)
    platform.compile(sql, principal)
    cached = []
    for _ in range(cached_repeat):
        started = time.perf_counter_ns()
        platform.compile(sql, principal)
        cached.append((time.perf_counter_ns() - started) / 1e9)
    return median(cold), median(cached)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sf", type=float, default=1.0, help="TPC-H scale factor (default 1)")
    ap.add_argument("--repeat", type=int, default=5, help="timed runs per query and engine (default 5)")
    ap.add_argument("--compile-repeat", type=int, default=20, help="cold compiles per query (default 20)")
    ap.add_argument("--queries", default="", help="comma-separated query numbers (default: all 22)")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    args = ap.parse_args()

    import federation

    root = WORK / f"tpch-sf{sf_label(args.sf)}"
    data = root / "data"
    generate(args.sf, data)
    write_mesh(root, data, args.sf)

    texts = queries()
    wanted = [int(x) for x in args.queries.split(",") if x.strip()] or sorted(texts)

    progress("quanta: loading the mesh ...", end="")
    conn = federation.connect(str(root), user="bench")
    platform = conn.platform
    progress(f" {platform.state.load_seconds * 1000:.0f} ms")
    if platform.mesh.excluded or any(p.severity == "error" for p in platform.mesh.problems):
        for p in platform.mesh.problems:
            progress(f"  mesh problem: {p}")
        if QUANTUM not in platform.mesh.quanta:
            progress("!!! the tpch quantum did not load; giving up")
            return 2
    raw = raw_connection(data)

    results = []
    failures: list[str] = []
    mismatches: list[str] = []
    for n in wanted:
        raw_sql = texts[n]
        row: dict = {"q": n}
        results.append(row)
        try:
            q_sql = qualify(raw_sql)
            platform.compile(q_sql, conn.principal)
        except Exception as e:  # a query the pipeline refuses: report it, go on
            row["error"] = f"{type(e).__name__}: {e}"
            failures.append(f"Q{n}: does not compile: {row['error']}")
            progress(f"Q{n:02d}: !!! does not compile: {row['error']}")
            continue
        ordered = has_order_by(raw_sql)
        progress(f"Q{n:02d}: warm-up, runs ", end="")
        try:
            _, q_table = timed(lambda: conn.sql(q_sql).arrow())
        except Exception as e:
            row["error"] = f"{type(e).__name__}: {e}"
            failures.append(f"Q{n}: fails through Quanta: {row['error']}")
            progress(f" !!! fails through Quanta: {row['error']}")
            continue
        _, r_table = timed(lambda: raw_arrow(raw, raw_sql))
        row["rows"] = r_table.num_rows
        row["check"], row["check_detail"] = compare(q_table, r_table, ordered)
        if row["check"] == "MISMATCH":
            mismatches.append(f"Q{n}: {row['check_detail']}")
        del q_table, r_table
        gc.collect()
        qt, rt = [], []
        for i in range(args.repeat):
            runs = (("q", lambda: conn.sql(q_sql).arrow()), ("r", lambda: raw_arrow(raw, raw_sql)))
            for who, fn in (runs if i % 2 == 0 else runs[::-1]):
                dt, _ = timed(fn)
                (qt if who == "q" else rt).append(dt)
            progress(".", end="")
        row["quanta"], row["raw"] = median(qt), median(rt)
        row["ratio"] = row["quanta"] / row["raw"]
        row["cold"], row["cached"] = compile_times(platform, conn.principal, q_sql, args.compile_repeat, 200)
        progress(f" quanta {row['quanta'] * 1000:8.1f} ms  raw {row['raw'] * 1000:8.1f} ms  "
                 f"ratio {row['ratio']:.3f}  compile {row['cold'] * 1000:.2f} ms cold, "
                 f"{row['cached'] * 1e6:.1f} us cached  [{row['check']}]"
                 + (f"  {row['check_detail']}" if row["check_detail"] else ""))

    # fixed end-to-end overhead on a tiny query (plan cached, as for a repeated query)
    tiny_q, tiny_r = f"SELECT count(*) FROM {QUANTUM}.region", "SELECT count(*) FROM region"
    conn.sql(tiny_q).arrow(), raw_arrow(raw, tiny_r)
    tq, tr = [], []
    for i in range(200):
        runs = (("q", lambda: conn.sql(tiny_q).arrow()), ("r", lambda: raw_arrow(raw, tiny_r)))
        for who, fn in (runs if i % 2 == 0 else runs[::-1]):
            dt, _ = timed(fn)
            (tq if who == "q" else tr).append(dt)
    tiny = (median(tq), median(tr))

    ok = [r for r in results if "ratio" in r]
    headers = ["Query", "Rows", "Quanta ms", "Raw ms", "Ratio", "Compile cold ms", "Compile cached us", "Result"]
    rows = []
    for r in results:
        if "ratio" not in r:
            rows.append([f"Q{r['q']:02d}", "", "", "", "", "", "", "FAILS: " + r.get("error", "?")[:80]])
            continue
        rows.append([f"Q{r['q']:02d}", f"{r['rows']:,}", f"{r['quanta'] * 1000:.1f}", f"{r['raw'] * 1000:.1f}",
                     f"{r['ratio']:.3f}", f"{r['cold'] * 1000:.2f}", f"{r['cached'] * 1e6:.1f}", r["check"]])
    gm = geomean(r["ratio"] for r in ok)
    total_q, total_r = sum(r["quanta"] for r in ok), sum(r["raw"] for r in ok)
    cold_med = median(r["cold"] for r in ok) if ok else float("nan")
    cold_max = max((r["cold"] for r in ok), default=float("nan"))
    cached_med = median(r["cached"] for r in ok) if ok else float("nan")
    diff_med = median((r["quanta"] - r["raw"]) for r in ok) if ok else float("nan")
    rows.append(["**all**", "", f"{total_q * 1000:.0f}", f"{total_r * 1000:.0f}",
                 f"{gm:.3f} (geo)", f"{cold_med * 1000:.2f} (med)", f"{cached_med * 1e6:.1f} (med)",
                 f"{len(mismatches)} mismatch(es)"])
    md_table = table(headers, rows, align="lrrrrrrl")

    ratio_met = gm <= RATIO_TARGET
    overhead_met = cold_med * 1000 <= OVERHEAD_TARGET_MS
    summary = [
        f"- Geometric mean ratio Quanta / raw over {len(ok)} queries: **{gm:.3f}** "
        f"(sum of medians {total_q:.2f} s vs {total_r:.2f} s = {total_q / total_r:.3f}); "
        f"target <= {RATIO_TARGET}: **{'met' if ratio_met else 'NOT met'}**",
        f"- Quanta's per-query overhead, the rewrite pipeline (parse, passes, generate) with the plan cache "
        f"cleared: median **{cold_med * 1000:.2f} ms** over the queries (max {cold_max * 1000:.2f} ms); "
        f"with the plan cached: median {cached_med * 1e6:.1f} us; target <= {OVERHEAD_TARGET_MS:g} ms: "
        f"**{'met' if overhead_met else 'NOT met'}**",
        f"- Median per-query difference of end-to-end medians (Quanta - raw): {diff_med * 1000:+.1f} ms",
        f"- Fixed end-to-end cost on a tiny query (`count(*)` of region, plan cached, median of 200 "
        f"alternated runs): Quanta {tiny[0] * 1000:.3f} ms, raw {tiny[1] * 1000:.3f} ms "
        f"({(tiny[0] - tiny[1]) * 1000:+.3f} ms)",
        f"- Results: {len(ok) - len(mismatches)} of {len(wanted)} queries return the same rows through Quanta "
        "as raw DuckDB" + (f"; **MISMATCHES**: {'; '.join(mismatches)}" if mismatches else "")
        + (f"; **FAILURES**: {'; '.join(failures)}" if failures else ""),
    ]
    notes = [f"- Q{r['q']:02d}: {r['check_detail']}" for r in ok if r.get("check_detail")]

    print()
    print(md_table)
    print()
    print("\n".join(summary))
    if notes:
        print("\nNotes:\n" + "\n".join(notes))
    report_failures(failures + mismatches)

    if not args.no_write:
        method = (
            f"Method: TPC-H SF{sf_label(args.sf)} as Parquet (one file per table, generated by DuckDB's tpch "
            f"extension), the 22 queries from `tpch_queries()`. Quanta: `federation.connect(mesh).sql(q).arrow()` "
            f"on a mesh with one quantum `tpch` (`threads: {THREADS}`); raw: a plain `duckdb.connect()` with "
            f"`threads={THREADS}` and one view per table over the same files, `.sql(q).arrow()`, the same query "
            f"text except the `tpch.` prefix. One warm-up each, then {args.repeat} runs alternating "
            f"Quanta/raw (order flipped every round); medians. Ratio = Quanta median / raw median. Compile = "
            f"`platform.compile` alone (parse, passes, generate): cold = plan cache cleared before each of "
            f"{args.compile_repeat} compiles, cached = median of 200 cached look-ups. Result = Quanta's rows "
            f"equal the raw rows (in order when the query has ORDER BY; `ok (order)` = same rows, in another order "
            f"(ties); floats to 1e-9 relative). Quanta mesh load: "
            f"{platform.state.load_seconds * 1000:.0f} ms."
        )
        body = "\n".join(environment_lines() + [f"- Command: `python benchmarks/tpch.py --sf {sf_label(args.sf)} "
                                                f"--repeat {args.repeat}"
                                                + (f" --queries {args.queries}" if args.queries else "") + "`",
                                                "", method, "", md_table, "", *summary]
                         + (["", "Notes:", *notes] if notes else []))
        write_section(f"TPC-H SF{sf_label(args.sf)} through Quanta vs raw DuckDB", body)
        progress(f"written: benchmarks/RESULTS.md")
    return 1 if (mismatches or failures) else 0


if __name__ == "__main__":
    sys.exit(main())
