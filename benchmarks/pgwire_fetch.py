"""The PostgreSQL wire endpoint against a real PostgreSQL server and buenavista, side by side in one run.

    python benchmarks/pgwire_fetch.py [--rows 1000000] [--repeat 5] [--small 2000]

1. A wide table (10 columns: integers, decimal, text, date, timestamp, double, boolean) of ``--rows`` rows,
   written once as Parquet (a one-quantum mesh for Quanta; a DuckDB view for buenavista) and loaded with COPY
   into a throw-away PostgreSQL cluster (tests/pgserver.py: initdb + pg_ctl in a temporary folder, on a
   loopback port, as the ``postgres`` user when this script runs as root).
2. Three servers, each in its own process: Quanta (``quanta pgserve``), PostgreSQL, and buenavista (the
   Python PostgreSQL-wire server in front of DuckDB, from PyPI: ``pip install buenavista`` into the venv;
   it is not a dependency of Quanta). When buenavista is not installed its column says so.
3. Large fetch: ``SELECT *`` of the whole table through psycopg 3, four ways: text and binary results, each
   by ``fetchall()`` on a client cursor and by a server-side (named) cursor read with ``itersize`` rows
   per FETCH. Servers alternate (the order flips every round), ``--repeat`` times; medians. The rows of
   every server are checked against PostgreSQL's once per way (same multiset of row tuples).
4. Small-query round trips per second: ``select id, customer from bench.wide where id = %s``, ``--small``
   times on one connection.
5. The Quanta server's peak resident memory (VmHWM) before and after the large fetches: it must stream.

Not part of the test suite; results go to the section "PostgreSQL wire: fetch" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import _common as C  # noqa: N812

import yaml

sys.path.insert(0, str(C.REPO / "tests"))
from pgserver import PostgresServer  # noqa: E402  (the same throw-away cluster the tests use)

QUERY = "select * from bench.wide"
SMALL = "select id, customer from bench.wide where id = %s"
WAYS = [("text", False, False), ("binary", True, False), ("text", False, True), ("binary", True, True)]


def way_name(fmt: str, named: bool) -> str:
    return f"{fmt}, {'server-side cursor' if named else 'fetchall'}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vm_hwm(pid: int) -> int:
    """Peak resident memory of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def make_data(root: Path, rows: int) -> Path:
    import duckdb

    select = (f"select i as id, i % 1000 as store_id, (i * 7 % 100000)::decimal(12,2) as amount, "
              f"'customer ' || (i % 50000) as customer, date '2024-01-01' + (i % 365)::int as day, "
              f"timestamp '2024-01-01 00:00:00' + to_seconds(i) as ts, (i % 977) / 7.0 as score, "
              f"i % 2 = 0 as flag, 'SKU-' || lpad((i % 99991)::varchar, 6, '0') as sku, (i % 32000)::int as qty "
              f"from range({rows}) t(i)")
    (root / "data").mkdir(parents=True)
    con = duckdb.connect()
    con.execute(f"COPY ({select}) TO '{root / 'data' / 'wide.parquet'}' (FORMAT parquet)")
    con.execute(f"COPY ({select}) TO '{root / 'wide.csv'}' (FORMAT csv, HEADER false)")
    con.close()
    props = [("id", "integer", "bigint"), ("store_id", "integer", "bigint"), ("amount", "number", "decimal(12,2)"),
             ("customer", "string", None), ("day", "date", "date"), ("ts", "timestamp", "timestamp"),
             ("score", "number", "double"), ("flag", "boolean", "boolean"), ("sku", "string", None),
             ("qty", "integer", "integer")]
    (root / "mesh.yaml").write_text(yaml.safe_dump({"name": "bench", "description": "pgwire benchmark",
                                                    "domains": [{"name": "bench", "description": "bench"}]}))
    (root / "governance.yaml").write_text(yaml.safe_dump({
        "principals": [{"name": "bench"}], "grants": [{"to": {"role": "public"}, "on": "*"}]}))
    (root / "products").mkdir()
    (root / "contracts").mkdir()
    (root / "products" / "bench.odps.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v1.0.0", "kind": "DataProduct", "id": "urn:bench", "name": "bench", "domain": "bench",
        "status": "active", "team": {"name": "t", "members": [{"username": "bench", "role": "owner"}]},
        "outputPorts": [{"name": "c", "version": "1.0.0", "contractId": "bench-contract", "type": "tables"}]}))
    (root / "contracts" / "bench.odcs.yaml").write_text(yaml.safe_dump({
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "bench-contract", "version": "1.0.0",
        "status": "active", "servers": [{"server": "local", "type": "local", "path": "wide.parquet",
                                         "format": "parquet"}],
        "schema": [{"name": "wide", "properties": [
            dict({"name": n, "logicalType": lt}, **({"physicalType": pt} if pt else {})) for n, lt, pt in props]}]}))
    return root


def start_postgres(csv: Path) -> PostgresServer:
    import psycopg

    pg = PostgresServer()
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute("create schema bench")
        conn.execute("create table bench.wide (id bigint, store_id bigint, amount numeric(12,2), customer text, "
                     "day date, ts timestamp, score double precision, flag boolean, sku text, qty integer)")
        with conn.cursor().copy("copy bench.wide from stdin (format csv)") as copy:
            with open(csv, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        conn.execute("alter table bench.wide add primary key (id)")  # PostgreSQL answers the point queries by index
        conn.execute("vacuum analyze bench.wide")
    return pg


def start_quanta(mesh: Path) -> tuple[subprocess.Popen, int, str]:
    from federation.platform import Platform

    platform = Platform(mesh)
    token, _ = platform.tokens.create("bench", 1)  # its SCRAM verifier is derived at creation
    quanta = Path(sys.executable).parent / "quanta"
    proc = subprocess.Popen([str(quanta), "pgserve", str(mesh), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r":(\d+)", proc.stdout.readline()).group(1))
    return proc, port, token


BUENAVISTA = textwrap.dedent("""
    import sys, duckdb
    from buenavista.examples.duckdb_postgres import create
    db = duckdb.connect()
    db.execute("create schema bench")
    db.execute("create view bench.wide as select * from read_parquet('" + sys.argv[1] + "')")
    server = create(db, ("127.0.0.1", int(sys.argv[2])))
    print("listening", flush=True)
    server.serve_forever()
""")


def start_buenavista(parquet: Path) -> tuple[subprocess.Popen | None, int, str]:
    try:
        import buenavista  # noqa: F401
    except ImportError:
        return None, 0, "not installed (pip install buenavista)"
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BUENAVISTA, str(parquet), str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    if "listening" not in proc.stdout.readline():
        return None, 0, "did not start"
    return proc, port, ""


def fetch(dsn: str, binary: bool, named: bool, itersize: int) -> tuple[float, list]:
    import psycopg

    with psycopg.connect(dsn, autocommit=not named) as conn:
        started = time.perf_counter()
        if named:
            with conn.cursor("big", binary=binary) as cur:
                cur.itersize = itersize
                cur.execute(QUERY)
                rows = list(cur)
        else:
            rows = conn.cursor(binary=binary).execute(QUERY).fetchall()
        return time.perf_counter() - started, rows


def fingerprint(rows: list) -> tuple[int, int]:
    """The multiset of the rows, as (count, sum of row hashes): equal results give equal fingerprints."""
    return len(rows), sum(hash(r) for r in rows) & ((1 << 64) - 1)


def round_trips(dsn: str, n: int) -> float:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SMALL, [1]).fetchall()
        started = time.perf_counter()
        for i in range(n):
            conn.execute(SMALL, [i]).fetchall()
        return n / (time.perf_counter() - started)


def short(e: BaseException) -> str:
    return f"fails: {type(e).__name__}: {str(e).splitlines()[0][:60] if str(e) else ''}".rstrip(": ")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--bv-repeat", type=int, default=1, help="repeats for buenavista (much slower)")
    parser.add_argument("--small", type=int, default=2000, help="small queries per server")
    parser.add_argument("--itersize", type=int, default=10_000, help="rows per FETCH of the server-side cursor")
    parser.add_argument("--ways", default="0,1,2,3", help="which of the four fetch ways (text/binary x "
                                                          "fetchall/cursor) to run, as indexes")
    parser.add_argument("--no-buenavista", action="store_true")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    ways = [WAYS[int(i)] for i in args.ways.split(",")]
    work = Path(tempfile.mkdtemp(prefix="quanta-pgwire-bench-"))
    pg = quanta = bv = None
    bv_note = "skipped (--no-buenavista)"
    try:
        C.progress(f"data: {args.rows:,} rows ...")
        mesh = make_data(work / "mesh", args.rows)
        C.progress("starting PostgreSQL and loading the table ...")
        pg = start_postgres(mesh / "wide.csv")
        quanta, q_port, token = start_quanta(mesh)
        dsns = {"Quanta": f"host=127.0.0.1 port={q_port} user=bench dbname=bench password={token}",
                "PostgreSQL": pg.dsn()}
        if not args.no_buenavista:
            bv, bv_port, bv_note = start_buenavista(mesh / "data" / "wide.parquet")
            if bv is not None:
                dsns["buenavista"] = f"host=127.0.0.1 port={bv_port} user=bench dbname=memory"
        for dsn in dsns.values():  # warm up: the first query of a server binds its views, fills its caches
            import psycopg

            with psycopg.connect(dsn, autocommit=True) as conn:
                conn.execute(QUERY + " limit 1000").fetchall()
        memory_before = vm_hwm(quanta.pid)
        times: dict[tuple[str, str], list[float]] = {}
        notes: dict[tuple[str, str], str] = {}
        for fmt, binary, named in ways:
            way = way_name(fmt, named)
            prints: dict[str, tuple[int, int]] = {}
            for r in range(args.repeat):
                order = list(dsns) if r % 2 == 0 else list(reversed(dsns))
                for name in order:
                    key = (name, way)
                    if key in notes or (name == "buenavista" and r >= args.bv_repeat):
                        continue
                    try:
                        seconds, rows = fetch(dsns[name], binary, named, args.itersize)
                    except Exception as e:  # noqa: BLE001 - a server that cannot do this way is reported, not fatal
                        notes[key] = short(e)
                        C.progress(f"  {way:34} {name}: {notes[key]}")
                        continue
                    if name not in prints:
                        prints[name] = fingerprint(rows)
                    del rows
                    times.setdefault(key, []).append(seconds)
                    C.progress(f"  {way:34} {name}: {seconds:.2f} s")
            for name, fp in prints.items():
                if name != "PostgreSQL" and "PostgreSQL" in prints and fp != prints["PostgreSQL"]:
                    notes[(name, way)] = f"rows differ from PostgreSQL's ({fp[0]:,} rows)"
                    C.report_failures([f"{name} {way}: rows differ from PostgreSQL's"])
        memory_after = vm_hwm(quanta.pid)
        rps: dict[str, float | str] = {}
        for name, dsn in dsns.items():
            try:
                rps[name] = round_trips(dsn, args.small if name != "buenavista" else max(1, args.small // 10))
            except Exception as e:  # noqa: BLE001
                rps[name] = short(e)
            C.progress(f"  small queries {name}: {rps[name] if isinstance(rps[name], str) else round(rps[name])}/s")
    finally:
        for proc in (quanta, bv):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
        if pg is not None:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)

    names = list(dsns) + ([] if "buenavista" in dsns else ["buenavista"])

    def cell(name: str, way: str) -> str:
        if name not in dsns:
            return bv_note
        if (name, way) in notes:
            return notes[(name, way)]
        t = C.median(times[(name, way)])
        p = times.get(("PostgreSQL", way))
        return f"{t:.2f} s ({t / C.median(p):.2f}x)" if p else f"{t:.2f} s"

    way_names = [way_name(f, n) for f, _, n in ways]
    table_rows = [[w] + [cell(n, w) for n in names] for w in way_names]
    table_rows.append(["small queries / s"] + [
        bv_note if n not in dsns else (rps[n] if isinstance(rps[n], str) else f"{rps[n]:,.0f} "
                                       f"({rps[n] / rps['PostgreSQL']:.3f}x)" if not isinstance(
                                           rps["PostgreSQL"], str) else f"{rps[n]:,.0f}") for n in names])
    verdicts = []
    for w in way_names:
        q, p = times.get(("Quanta", w)), times.get(("PostgreSQL", w))
        if q and p:
            ratio = C.median(q) / C.median(p)
            b = times.get(("buenavista", w))
            if "buenavista" not in dsns:
                faster = f"buenavista {bv_note}"
            elif ("buenavista", w) in notes:
                faster = "buenavista cannot do this"
            else:
                faster = f"{C.median(b) / C.median(q):.1f}x faster than buenavista" if C.median(q) < C.median(b) \
                    else "NOT faster than buenavista"
            verdicts.append(f"- {w}: Quanta / PostgreSQL **{ratio:.2f}x** (target <= 1.0x: "
                            f"**{'met' if ratio <= 1.0 else 'not met'}**); {faster}")
    if isinstance(rps.get("Quanta"), float) and isinstance(rps.get("buenavista"), float):
        verdicts.append(f"- small queries: Quanta {rps['Quanta']:,.0f}/s, buenavista {rps['buenavista']:,.0f}/s: "
                        f"{'faster' if rps['Quanta'] > rps['buenavista'] else 'NOT faster'} than buenavista")
    body = "\n".join(C.environment_lines() + [
        f"- Command: `python benchmarks/pgwire_fetch.py --rows {args.rows} --repeat {args.repeat} "
        f"--bv-repeat {args.bv_repeat} --small {args.small}`", "",
        f"Method: one wide table ({args.rows:,} rows x 10 columns: bigint, decimal(12,2), text, date, timestamp, "
        "double, boolean, integer) as Parquet for Quanta (`quanta pgserve`) and for buenavista 0.5 (DuckDB "
        "in memory, a view over the same file), and loaded by COPY into a throw-away PostgreSQL cluster; each "
        "server in its own process on loopback. psycopg 3 reads `select * from bench.wide` whole, as text and "
        f"as binary results, by `fetchall()` and by a server-side cursor (`itersize` {args.itersize:,}); servers "
        f"alternate, medians of {args.repeat} runs ({args.bv_repeat} for buenavista); the rows of each server are "
        "checked against PostgreSQL's. Ratios are to PostgreSQL's time (lower is better). Small queries: "
        f"`{SMALL}` on one connection, {args.small} times ({max(1, args.small // 10)} for buenavista); "
        "PostgreSQL has a primary-key index, Quanta and buenavista read Parquet row-group statistics.", "",
        C.table(["Fetch of the whole table"] + names, table_rows, align="l" + "r" * len(names)), "",
        *verdicts,
        f"- Quanta server peak RSS: {memory_before / 1024:.0f} MiB before the fetches, "
        f"{memory_after / 1024:.0f} MiB after (streaming: the result is never held whole)",
    ])
    print(body)
    if not args.no_write:
        C.write_section("PostgreSQL wire: fetch", body)


if __name__ == "__main__":
    main()
