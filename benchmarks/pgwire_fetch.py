"""The PostgreSQL wire endpoint against a real PostgreSQL server, side by side in one run.

    python benchmarks/pgwire_fetch.py [--rows 1000000] [--repeat 3]

1. A wide table (10 columns: integers, decimal, text, date, timestamp, double, boolean) of ``--rows`` rows,
   written once as Parquet (a one-quantum mesh for Quanta) and loaded with COPY into a throw-away
   PostgreSQL cluster (Debian's ``postgresql``: initdb + postgres on a loopback port, run as the
   ``postgres`` user when this script runs as root).
2. Large fetch: ``SELECT *`` of the whole table through psycopg (text results, default cursor), from Quanta
   (``quanta pgserve`` in its own process) and from PostgreSQL, alternating, ``--repeat`` times; medians.
3. Small-query round trips per second (``SELECT ... WHERE id = %s``, one row), both servers.
4. The Quanta server's peak resident memory (VmHWM of its process) before and after the large fetches:
   it must stream, not materialise.

Not part of the test suite; results go to the section "PostgreSQL wire: fetch" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _common as C  # noqa: N812

import yaml


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pg_bin() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"))
    if not found:
        sys.exit("PostgreSQL is not installed (Debian: apt-get install postgresql)")
    return found[-1].parent


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


def start_postgres(work: Path, csv: Path) -> tuple[subprocess.Popen, int]:
    bindir = pg_bin()
    data = work / "pgdata"
    as_postgres = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_postgres:  # the cluster belongs to the postgres user, who must reach its folder
        os.chmod(work.parent, 0o755)
        shutil.chown(work, "postgres")
        os.chmod(work, 0o755)
    subprocess.run(as_postgres + [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "bench",
                                  "--no-sync"], check=True, capture_output=True)
    port = free_port()
    proc = subprocess.Popen(as_postgres + [str(bindir / "postgres"), "-D", str(data), "-p", str(port),
                                           "-h", "127.0.0.1", "-k", str(work), "-c", "fsync=off"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    import psycopg

    for _ in range(200):
        try:
            conn = psycopg.connect(f"host=127.0.0.1 port={port} user=bench dbname=postgres", autocommit=True)
            break
        except psycopg.OperationalError:
            time.sleep(0.1)
    else:
        proc.terminate()
        sys.exit("PostgreSQL did not start")
    with conn:
        conn.execute("create schema bench")
        conn.execute("create table bench.wide (id bigint, store_id bigint, amount numeric(12,2), customer text, "
                     "day date, ts timestamp, score double precision, flag boolean, sku text, qty integer)")
        with conn.cursor().copy("copy bench.wide from stdin (format csv)") as copy:
            with open(csv, "rb") as f:
                while chunk := f.read(1 << 20):
                    copy.write(chunk)
        conn.execute("alter table bench.wide add primary key (id)")  # PostgreSQL answers the point queries by index
        conn.execute("vacuum analyze bench.wide")
    return proc, port


def start_quanta(mesh: Path) -> tuple[subprocess.Popen, int, str]:
    from federation.platform import Platform
    from federation.server.pgwire import register_token

    platform = Platform(mesh)
    token, _ = platform.tokens.create("bench", 1)
    register_token(platform, token)
    quanta = Path(sys.executable).parent / "quanta"
    proc = subprocess.Popen([str(quanta), "pgserve", str(mesh), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    port = int(re.search(r":(\d+)", proc.stdout.readline()).group(1))
    return proc, port, token


def fetch_all(dsn: str) -> tuple[float, int]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        rows = conn.execute("select * from bench.wide").fetchall()
        return time.perf_counter() - started, len(rows)


def round_trips(dsn: str, n: int) -> float:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select customer from bench.wide where id = %s", [1]).fetchall()
        started = time.perf_counter()
        for i in range(n):
            conn.execute("select customer from bench.wide where id = %s", [i]).fetchall()
        return n / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--small", type=int, default=300, help="small queries per server")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="quanta-pgwire-bench-"))
    pg = quanta = None
    try:
        C.progress(f"data: {args.rows:,} rows ...")
        mesh = make_data(work / "mesh", args.rows)
        C.progress("starting PostgreSQL and loading the table ...")
        (work / "pg").mkdir()
        pg, pg_port = start_postgres(work / "pg", mesh / "wide.csv")
        quanta, q_port, token = start_quanta(mesh)
        dsns = {"Quanta": f"host=127.0.0.1 port={q_port} user=bench dbname=bench password={token}",
                "PostgreSQL": f"host=127.0.0.1 port={pg_port} user=bench dbname=postgres"}
        memory_before = vm_hwm(quanta.pid)
        times: dict[str, list[float]] = {k: [] for k in dsns}
        counts = {}
        for r in range(args.repeat):
            for name in (list(dsns) if r % 2 == 0 else list(reversed(dsns))):
                seconds, counts[name] = fetch_all(dsns[name])
                times[name].append(seconds)
                C.progress(f"  fetch {name}: {seconds:.2f} s")
        memory_after = vm_hwm(quanta.pid)
        rps = {name: round_trips(dsn, args.small) for name, dsn in dsns.items()}
    finally:
        for proc in (quanta, pg):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=60)
        shutil.rmtree(work, ignore_errors=True)
    q, p = C.median(times["Quanta"]), C.median(times["PostgreSQL"])
    rows = [[name, f"{counts[name]:,}", f"{C.median(times[name]):.2f}", f"{rps[name]:.0f}"] for name in dsns]
    body = "\n".join(C.environment_lines() + [
        f"- Command: `python benchmarks/pgwire_fetch.py --rows {args.rows} --repeat {args.repeat}`", "",
        "Method: one wide table (10 columns) as Parquet for Quanta (`quanta pgserve`, its own process) and "
        "loaded by COPY into a throw-away PostgreSQL cluster on a loopback port; psycopg 3 `fetchall()` of "
        "`select * from bench.wide` (text results), alternating servers, medians; round trips: "
        f"{args.small} one-row parameterised queries on one connection (`where id = %s`: a primary-key index "
        "in PostgreSQL, Parquet row-group statistics in Quanta).", "",
        C.table(["Server", "Rows", "Large fetch s (median)", "Small queries / s"], rows), "",
        f"- Quanta / PostgreSQL time for the large fetch: **{q / p:.2f}x** (target <= 1.5x: "
        f"**{'met' if q / p <= 1.5 else 'not met'}**)",
        f"- Quanta server peak RSS: {memory_before / 1024:.0f} MiB before the fetches, "
        f"{memory_after / 1024:.0f} MiB after (streaming: the result is never held whole)",
    ])
    print(body)
    C.write_section("PostgreSQL wire: fetch", body)


if __name__ == "__main__":
    main()
