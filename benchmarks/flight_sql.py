"""Arrow Flight SQL against the other interfaces, side by side in one run: a large result, small queries, memory.

    python benchmarks/flight_sql.py                      # 10M rows x 10 columns, 3 rounds, 500 small queries each
    python benchmarks/flight_sql.py --rows 1000000 --repeat 2 --small 200 --no-write

1. One wide dataset ``bench.wide`` (``--rows`` rows x 10 columns: bigint, decimal(12,2), text, date,
   timestamp, double, boolean, integer) as Parquet, and ``bench.small`` (1,000 rows) for point queries, in a
   one-quantum mesh under benchmarks/.work/flight (the data is generated once per row count).
2. One real server process: ``quanta serve MESH --port 0 --pg-port 0 --flight-port 0`` (HTTP, the
   PostgreSQL wire and Flight SQL sharing one platform, as in production); the clients run in this process,
   so the client's decoding and the server's encoding are both counted (on the same cores).
3. ``select * from bench.wide`` read whole, four ways, rotating the order each round (``--repeat`` rounds,
   medians): Flight SQL with the ADBC driver (``cursor.fetch_arrow_table()``), the HTTP Arrow stream
   (pyarrow's IPC reader over ``requests``), the PostgreSQL wire (psycopg 3, binary results, a server-side
   cursor read ``--itersize`` rows per FETCH: 10M rows of Python tuples would not fit in memory whole; pgwire
   runs ``--pg-repeat`` rounds, it is far slower) and the in-process ``federation.connect(...).sql(q).arrow()``.
   Every read is checked: row count, and the sum of ``id`` for the Arrow readers.
4. Small-query round trips per second: ``select id, name, score from bench.small where id = ?`` with a bound
   parameter, ``--small`` times sequentially on one connection per interface.
5. The server's memory overhead while each remote interface streams: its resident memory above the idle
   value, sampled every 10 ms from /proc, and the kernel's peak (VmHWM, reset before each read).

Targets (issue 14): Flight SQL >= 0.8 of in-process throughput, faster than every other remote interface;
server memory overhead < 300 MB while streaming. Results go to the section "Arrow Flight SQL" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import _common as C  # noqa: N812

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.compute as pc  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

WIDE = "select * from bench.wide"
SMALL = "select id, name, score from bench.small where id = ?"
SMALL_ROWS = 1000
ARROW = "application/vnd.apache.arrow.stream"
FLIGHT, HTTP, PG, LOCAL = "Flight SQL (ADBC)", "HTTP Arrow stream", "pgwire (psycopg binary)", "in-process .arrow()"
FLIGHT_PA = "Flight SQL (pyarrow.flight)"  # the same server read by Arrow's C++ client: the ADBC driver's own cost
REMOTE = (FLIGHT, FLIGHT_PA, HTTP, PG)
SQL_COMMAND = "type.googleapis.com/arrow.flight.protocol.sql.CommandStatementQuery"

# -- the mesh ------------------------------------------------------------------------------------------------


def build_mesh(root: Path, rows: int) -> Path:
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    wide = data / f"wide-{rows}.parquet"
    if not wide.exists():
        C.progress(f"generating {rows:,} rows ...")
        con = duckdb.connect()
        con.execute(f"COPY (select i as id, i % 1000 as store_id, (i * 7 % 100000)::decimal(12,2) as amount, "
                    f"'customer ' || (i % 50000) as customer, date '2024-01-01' + (i % 365)::int as day, "
                    f"timestamp '2024-01-01 00:00:00' + to_seconds(i) as ts, (i % 977) / 7.0 as score, "
                    f"i % 2 = 0 as flag, 'SKU-' || lpad((i % 99991)::varchar, 6, '0') as sku, "
                    f"(i % 32000)::int as qty from range({rows}) t(i)) TO '{wide}' (FORMAT parquet)")
        con.execute(f"COPY (select i as id, 'name ' || i as name, i * 1.5 as score from range({SMALL_ROWS}) t(i)) "
                    f"TO '{data / 'small.parquet'}' (FORMAT parquet)")
        con.close()
    dump = lambda path, obj: path.write_text(yaml.safe_dump(obj, sort_keys=False))  # noqa: E731
    dump(root / "mesh.yaml", {"name": "flightbench", "description": "Flight SQL benchmark",
                              "domains": [{"name": "bench", "description": "bench"}]})
    dump(root / "governance.yaml", {"principals": [{"name": "bench"}],
                                    "grants": [{"to": {"user": "bench"}, "on": "*"}]})
    (root / "products").mkdir(exist_ok=True)
    (root / "contracts").mkdir(exist_ok=True)
    dump(root / "products" / "bench.odps.yaml", {
        "apiVersion": "v1.0.0", "kind": "DataProduct", "id": "urn:bench:product", "name": "bench", "domain": "bench",
        "status": "active", "team": {"name": "bench", "members": [{"username": "bench", "role": "owner"}]},
        "outputPorts": [{"name": "bench", "version": "1.0.0", "contractId": "bench-contract", "type": "tables"}]})
    prop = lambda n, lt, pt: {"name": n, "logicalType": lt, "physicalType": pt}  # noqa: E731
    dump(root / "contracts" / "bench.odcs.yaml", {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "bench-contract", "version": "1.0.0", "status": "active",
        "servers": [{"server": "wide", "type": "local", "format": "parquet", "path": wide.name},
                    {"server": "small", "type": "local", "format": "parquet", "path": "small.parquet"}],
        "schema": [
            {"name": "wide", "properties": [
                prop("id", "integer", "bigint"), prop("store_id", "integer", "bigint"),
                prop("amount", "number", "decimal(12,2)"), prop("customer", "string", "varchar"),
                prop("day", "date", "date"), prop("ts", "timestamp", "timestamp"), prop("score", "number", "double"),
                prop("flag", "boolean", "boolean"), prop("sku", "string", "varchar"),
                prop("qty", "integer", "integer")]},
            {"name": "small", "customProperties": [{"property": "server", "value": "small"}],
             "properties": [prop("id", "integer", "bigint"), prop("name", "string", "varchar"),
                            prop("score", "number", "double")]}]})
    return root


# -- the server process ----------------------------------------------------------------------------------------


class ServerProcess:
    """``quanta serve`` with HTTP, the PostgreSQL wire and Flight SQL on free loopback ports."""

    def __init__(self, mesh: Path, cpus: set[int] | None = None):
        quanta = Path(sys.executable).parent / "quanta"
        env = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}
        self.proc = subprocess.Popen([str(quanta), "serve", str(mesh), "--port", "0", "--pg-port", "0",
                                      "--flight-port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True, env=env,
                                     preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None)
        self.pid = self.proc.pid
        self.url = self.pg_port = self.flight_uri = None
        lines = []
        for _ in range(12):
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"API\s+(http://[\d.]+:\d+)/api/v1/", line):
                self.url = m.group(1)
            elif m := re.search(r"PostgreSQL\s+[\d.]+:(\d+)", line):
                self.pg_port = int(m.group(1))
            elif line.lower().startswith("flight") and (m := re.search(r"([\d.]+):(\d+)", line)):
                self.flight_uri = f"grpc://{m.group(1)}:{m.group(2)}"
            if self.url and self.pg_port and self.flight_uri:
                return
        self.stop()
        raise SystemExit("quanta serve did not start with its three ports:\n" + "".join(lines)
                         + (self.proc.stderr.read() if self.proc.poll() is not None else ""))

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def status_kb(pid: int, field: str) -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1))


class MemoryWatch:
    """The server's resident memory above its idle value while a read runs: sampled every 10 ms, and the
    kernel's peak (VmHWM, reset to the current RSS first through /proc/PID/clear_refs when allowed)."""

    def __init__(self, pid: int):
        self.pid = pid

    def __enter__(self) -> "MemoryWatch":
        self.idle = status_kb(self.pid, "VmRSS")
        try:
            Path(f"/proc/{self.pid}/clear_refs").write_text("5")
            self.hwm_reset = True
        except OSError:
            self.hwm_reset = False
        self.peak = self.idle
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()
        return self

    def _sample(self) -> None:
        while not self.done.is_set():
            self.peak = max(self.peak, status_kb(self.pid, "VmRSS"))
            self.done.wait(0.01)

    def __exit__(self, *exc) -> None:
        self.done.set()
        self.thread.join()
        self.sampled_mb = (self.peak - self.idle) / 1024
        self.kernel_mb = (status_kb(self.pid, "VmHWM") - self.idle) / 1024 if self.hwm_reset else float("nan")


# -- the clients ---------------------------------------------------------------------------------------------------


class Clients:
    """One open connection per interface (connecting is not what is measured)."""

    def __init__(self, mesh: Path, server: ServerProcess, token: str, itersize: int):
        import adbc_driver_flightsql
        import adbc_driver_flightsql.dbapi
        import psycopg

        import federation

        self.itersize = itersize
        self.local = federation.connect(str(mesh), user="bench")
        self.flight = adbc_driver_flightsql.dbapi.connect(server.flight_uri, db_kwargs={
            adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}, autocommit=True)
        import pyarrow.flight as flight

        self.pa_flight = flight.FlightClient(server.flight_uri)
        self.pa_options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {token}"
        self.url = server.url
        self.pg = psycopg.connect(host="127.0.0.1", port=server.pg_port, user="bench", password=token,
                                  dbname="flightbench", sslmode="disable", autocommit=True)
        # named cursors need a transaction: a second connection, not in autocommit
        self.pg_cursor_conn = psycopg.connect(host="127.0.0.1", port=server.pg_port, user="bench", password=token,
                                              dbname="flightbench", sslmode="disable")

    def close(self) -> None:
        for c in (self.flight, self.pa_flight, self.http, self.pg, self.pg_cursor_conn):
            c.close()

    # a whole result: (rows, sum of id or None)

    def read(self, way: str, sql: str) -> tuple[int, int | None]:
        if way == LOCAL:
            return self._table(self.local.sql(sql).arrow())
        if way == FLIGHT:
            with self.flight.cursor() as cur:
                cur.execute(sql)
                return self._table(cur.fetch_arrow_table())
        if way == FLIGHT_PA:
            import pyarrow.flight as flight

            info = self.pa_flight.get_flight_info(flight.FlightDescriptor.for_command(statement(sql)), self.pa_options)
            return self._table(self.pa_flight.do_get(info.endpoints[0].ticket, self.pa_options).read_all())
        if way == HTTP:
            with self.http.post(self.url + "/api/v1/query", json={"sql": sql}, headers={"Accept": ARROW},
                                stream=True, timeout=600) as r:
                r.raise_for_status()
                return self._table(pa.ipc.open_stream(r.raw).read_all())
        rows = 0
        with self.pg_cursor_conn.cursor("wide", binary=True) as cur:  # a server-side cursor, binary results
            cur.execute(sql)
            while batch := cur.fetchmany(self.itersize):
                rows += len(batch)
        self.pg_cursor_conn.commit()
        return rows, None

    @staticmethod
    def _table(table: pa.Table) -> tuple[int, int]:
        return table.num_rows, pc.sum(table["id"]).as_py() if table.num_rows else 0

    # one small query with a bound parameter: its rows

    def small(self, way: str, i: int) -> list:
        if way == FLIGHT_PA:  # no prepared statements in this client: the literal in the SQL
            return self.read(FLIGHT_PA, SMALL.replace("?", str(int(i))))[0] * [None]
        if way == LOCAL:
            return self.local.sql(SMALL, [i]).fetchall()
        if way == FLIGHT:
            with self.flight.cursor() as cur:
                cur.execute(SMALL, [i])
                return cur.fetchall()
        if way == HTTP:
            r = self.http.post(self.url + "/api/v1/query", json={"sql": SMALL, "parameters": [i]}, timeout=60)
            r.raise_for_status()
            return r.json()["rows"]
        return self.pg.execute(SMALL.replace("?", "%s"), [i]).fetchall()


def statement(sql: str) -> bytes:
    """A Flight SQL ``CommandStatementQuery`` in its ``google.protobuf.Any`` (the command of a descriptor)."""
    from google.protobuf import any_pb2

    query = sql.encode("utf-8")
    return any_pb2.Any(type_url=SQL_COMMAND, value=b"\x0a" + varint(len(query)) + query).SerializeToString()


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """This process's CPU seconds (every thread: the ADBC driver's Go runtime, DuckDB in-process)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- the run -----------------------------------------------------------------------------------------------------


LAYOUTS = {  # name: (server CPUs, client CPUs, what it models); None: every CPU
    "shared": (None, None, "server and clients share every core (this machine's 2 cores)"),
    "split": ({0}, {1}, "the server on core 0, the clients (and in-process DuckDB) on core 1: a client with its "
                        "own CPU, as on another machine, and the same one core for in-process"),
}


def measure(args, layout: str) -> dict:
    """One layout's run (in its own process, whose CPUs the parent chose): the figures as JSON-able data."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from federation.platform import Platform

    console = Console(stderr=True)
    mesh = build_mesh(C.WORK / "flight", args.rows)
    token = Platform(mesh).tokens.create("bench", 1)[0]
    server_cpus = LAYOUTS[layout][0]
    console.print(f"[bold]{layout}[/]: starting quanta serve (HTTP, pgwire, Flight SQL) on {mesh}"
                  + (f", pinned to CPU {sorted(server_cpus)}" if server_cpus else "") + " ...")
    server = ServerProcess(mesh, server_cpus)
    console.print(f"server pid {server.pid}: {server.url}, pgwire :{server.pg_port}, {server.flight_uri}")
    clients = Clients(mesh, server, token, args.itersize)
    ways = [FLIGHT, FLIGHT_PA, HTTP, PG, LOCAL]
    seconds: dict[str, list[float]] = {w: [] for w in ways}
    cpu: dict[str, list[tuple[float, float]]] = {w: [] for w in ways}  # (server, client) CPU seconds per read
    memory: dict[str, list[tuple[float, float]]] = {w: [] for w in REMOTE}
    rps: dict[str, float] = {}
    problems: list[str] = []
    expected_sum = args.rows * (args.rows - 1) // 2
    rounds = [(r, w) for r in range(max(args.repeat, args.pg_repeat))
              for w in (ways[r % len(ways):] + ways[:r % len(ways)])  # rotate the order every round
              if r < (args.pg_repeat if w == PG else args.repeat)]
    try:
        with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                      TextColumn("{task.fields[last]}"), console=console) as progress:
            warm = progress.add_task(f"{layout}: warm-up (first queries bind views, fill caches)", total=len(ways),
                                     last="")
            for w in ways:
                clients.read(w, WIDE + " limit 1000")
                clients.small(w, 1)
                progress.advance(warm)
            big = progress.add_task(f"{layout}: {args.rows:,}-row reads", total=len(rounds), last="")
            for r, w in rounds:
                progress.update(big, description=f"{layout}: {args.rows:,}-row reads, round {r + 1}, {w}")
                with MemoryWatch(server.pid) as watch:
                    server_cpu, client_cpu = cpu_seconds(server.pid), own_cpu_seconds()
                    started = time.perf_counter()
                    n, total = clients.read(w, WIDE)
                    took = time.perf_counter() - started
                    cpu[w].append((cpu_seconds(server.pid) - server_cpu, own_cpu_seconds() - client_cpu))
                if w in REMOTE:
                    memory[w].append((watch.sampled_mb, watch.kernel_mb))
                if n != args.rows or total not in (None, expected_sum):
                    problems.append(f"{layout}, {w}: {n:,} rows, sum(id) {total} (expected {args.rows:,}, "
                                    f"{expected_sum})")
                seconds[w].append(took)
                progress.update(big, advance=1, last=f"{w}: {took:.2f} s ({args.rows / took / 1e6:.1f} M rows/s)")
            small = progress.add_task(f"{layout}: small queries", total=args.small * len(ways), last="")
            for w in ways:
                progress.update(small, description=f"{layout}: small queries, {w}")
                started = time.perf_counter()
                for i in range(args.small):
                    got = clients.small(w, i % SMALL_ROWS)
                    if len(got) != 1:
                        problems.append(f"{layout}, {w}: small query {i}: {len(got)} rows")
                    progress.advance(small)
                rps[w] = args.small / (time.perf_counter() - started)
                progress.update(small, last=f"{w}: {rps[w]:,.0f}/s")
    finally:
        clients.close()
        server.stop()
    return {"seconds": seconds, "cpu": cpu, "memory": memory, "rps": rps, "problems": problems}


def run_layout(args, layout: str) -> dict:
    """``measure`` in a child process started on the layout's client CPUs (set before it starts a thread, so
    every thread of it, DuckDB's and the ADBC driver's included, stays there)."""
    import json

    client_cpus = LAYOUTS[layout][1]
    command = [sys.executable, __file__, "--layout", layout, "--rows", str(args.rows), "--repeat", str(args.repeat),
               "--pg-repeat", str(args.pg_repeat), "--small", str(args.small), "--itersize", str(args.itersize)]
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True,
                          preexec_fn=(lambda: os.sched_setaffinity(0, client_cpus)) if client_cpus else None)
    if done.returncode != 0:
        raise SystemExit(f"the {layout} run failed (exit {done.returncode})")
    return json.loads(done.stdout)


def report(args, layout: str, data: dict) -> tuple[str, list[str]]:
    """The Markdown table and the verdicts of one layout."""
    seconds, cpu, memory, rps = data["seconds"], data["cpu"], data["memory"], data["rps"]
    ways = list(seconds)
    med = {w: C.median(seconds[w]) for w in ways}
    local = med[LOCAL]
    rows_out = []
    for w in ways:
        mem = memory.get(w)
        rows_out.append([
            w, f"{len(seconds[w])}", f"{med[w]:.2f} s", f"{args.rows / med[w] / 1e6:.1f}",
            f"{local / med[w]:.2f}", f"{med[w] / med[FLIGHT]:.2f}x" if w != FLIGHT else "1.00x",
            f"{C.median(c[0] for c in cpu[w]):.2f} + {C.median(c[1] for c in cpu[w]):.2f} s",
            f"{rps[w]:,.0f}",
            f"{max(m[0] for m in mem):.0f} MB / {max(m[1] for m in mem):.0f} MB" if mem else "(no server)"])
    md = C.table(["interface", "runs", f"{args.rows / 1e6:g}M rows (median)", "M rows/s", "x in-process",
                  "time / Flight's", "CPU: server + client", "small queries/s",
                  "server memory above idle (sampled / kernel peak)"], rows_out, align="lrrrrrrrr")
    ratio = local / med[FLIGHT]
    faster = all(med[FLIGHT] < med[w] for w in (HTTP, PG))
    flight_cpu = [C.median(c[i] for c in cpu[FLIGHT]) for i in (0, 1)]
    local_cpu = C.median(c[1] for c in cpu[LOCAL])
    peak = max(max(m[0], m[1] if m[1] == m[1] else 0) for m in memory[FLIGHT])
    cores = len(LAYOUTS[layout][0] or ()) + len(LAYOUTS[layout][1] or ()) or os.cpu_count() or 1
    # the least wall time the CPU work allows: both sides on shared cores, or the busier side on its own
    server_cpus = LAYOUTS[layout][0]
    bound = max(flight_cpu[0] / len(server_cpus), flight_cpu[1]) if server_cpus else sum(flight_cpu) / cores
    verdicts = [
        f"- {layout}: Flight SQL throughput = **{ratio:.2f}** of in-process (target >= 0.8: "
        f"**{'met' if ratio >= 0.8 else 'NOT met'}**)",
        f"- {layout}: Flight SQL faster than every other remote interface: **{'met' if faster else 'NOT met'}** "
        f"(HTTP Arrow stream {med[HTTP] / med[FLIGHT]:.2f}x Flight's time, pgwire binary "
        f"{med[PG] / med[FLIGHT]:.2f}x)",
        f"- {layout}: server memory overhead while Flight streams: **{peak:.0f} MB** (target < 300 MB: "
        f"**{'met' if peak < 300 else 'NOT met'}**)",
        f"- {layout}: small queries (one connection, a bound parameter): Flight {rps[FLIGHT]:,.0f}/s "
        f"(pyarrow.flight, literal SQL: {rps[FLIGHT_PA]:,.0f}/s), HTTP JSON {rps[HTTP]:,.0f}/s, pgwire "
        f"{rps[PG]:,.0f}/s, in-process {rps[LOCAL]:,.0f}/s",
        f"- {layout}: where Flight's time goes: the server spends {flight_cpu[0]:.2f} CPU-s per read (in-process "
        f"DuckDB alone: {local_cpu:.2f}), the ADBC client {flight_cpu[1]:.2f} CPU-s receiving and decoding "
        f"(HTTP's client: {C.median(c[1] for c in cpu[HTTP]):.2f}); on {cores} core(s) the read needs at least "
        f"{bound:.2f} s "
        f"of the {med[FLIGHT]:.2f} s measured; Arrow's C++ Flight client reads the same server in "
        f"{med[FLIGHT_PA]:.2f} s ({local / med[FLIGHT_PA]:.2f} of in-process)",
    ]
    return md, verdicts


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--repeat", type=int, default=3, help="rounds of the large read (Flight, HTTP, in-process)")
    ap.add_argument("--pg-repeat", type=int, default=1, help="rounds of the large read over pgwire (slow)")
    ap.add_argument("--small", type=int, default=500, help="small queries per interface")
    ap.add_argument("--itersize", type=int, default=50_000, help="rows per FETCH of the pgwire server-side cursor")
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--layouts", default="shared,split", help="CPU layouts to run: " + ", ".join(LAYOUTS))
    ap.add_argument("--layout", help=argparse.SUPPRESS)  # internal: one layout's measuring process
    args = ap.parse_args()
    if args.layout:  # the measuring child: JSON on stdout
        import json

        print(json.dumps(measure(args, args.layout)))
        return 0

    layouts = [name.strip() for name in args.layouts.split(",") if name.strip()]
    results = {name: run_layout(args, name) for name in layouts}
    problems = [p for data in results.values() for p in data["problems"]]
    C.report_failures(problems)
    sections = []
    for name, data in results.items():
        md, verdicts = report(args, name, data)
        sections += [f"**{name}**: {LAYOUTS[name][2]}.", "", md, "", *verdicts, ""]
    if problems:
        sections.append(f"- **{len(problems)} reads returned wrong results** (see the run's output)")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else []
    if load:  # other work on a shared machine moves the figures: say how busy it was at the end too
        sections.append(f"- Load average at the end of the run: {' '.join(load)}")
    print("\n".join(sections))
    if not args.no_write and not problems:
        body = "\n".join(C.environment_lines() + [
            f"- Command: `python benchmarks/flight_sql.py --rows {args.rows} --repeat {args.repeat} "
            f"--pg-repeat {args.pg_repeat} --small {args.small} --itersize {args.itersize} --layouts "
            f"{','.join(layouts)}`", "",
            f"Method: one real `quanta serve --port 0 --pg-port 0 --flight-port 0` process (HTTP, PostgreSQL wire "
            f"and Flight SQL sharing one platform) on loopback; the clients run in another process, so the "
            f"server's encoding and the client's decoding are both counted. `{WIDE}` "
            f"({args.rows:,} rows x 10 columns: bigint, decimal(12,2), text, date, timestamp, double, boolean, "
            f"integer, from Parquet) is read whole: Flight SQL by the ADBC driver's `fetch_arrow_table()`; the HTTP "
            f"Arrow stream by pyarrow's IPC reader over `requests`; the row 'Flight SQL (pyarrow.flight)' reads the "
            f"same server with Arrow's C++ Flight client (GetFlightInfo + DoGet, `read_all()`) to separate the "
            f"server's cost from the ADBC driver's; pgwire by psycopg 3 with binary results through "
            f"a server-side cursor ({args.itersize:,} rows per FETCH; the rows become Python tuples, {args.pg_repeat} "
            f"round(s)); in-process by `federation.connect(...).sql(q).arrow()`. The order rotates every round; "
            f"medians of {args.repeat}; every read is checked (row count, sum of id). Small queries: `{SMALL}` with a "
            f"bound parameter, {args.small} times in a row on one connection per interface (Flight: ADBC `execute` "
            f"with parameters: CreatePreparedStatement, DoPut, GetFlightInfo, DoGet, ClosePreparedStatement; HTTP: "
            f"JSON answers; pgwire: psycopg's extended protocol). Server memory: resident memory above idle while "
            f"each remote read runs, sampled every 10 ms and the kernel's peak (VmHWM reset before each read); the "
            f"maximum over the rounds. CPU: the server process's and the client process's (every thread) user + "
            f"system seconds during each read, medians. Two CPU layouts, one after the other in the same run.", "",
            *sections])
        C.write_section("Arrow Flight SQL: throughput, round trips, memory", body)
        print("written: benchmarks/RESULTS.md", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
