"""The HTTP service: small-query throughput and latency, Arrow stream throughput, server memory.

    python benchmarks/http_service.py                 # 10M-row stream, 8 clients x 200 small queries
    python benchmarks/http_service.py --rows 2000000 --clients 4 --queries 100 --no-write

The server is the real ``quanta serve`` in its own process (waitress, 16 threads) on a loopback port;
the clients are threads of this process using ``requests``. Measured in one run:

- small queries: ``--clients`` threads each post ``--queries`` point queries (JSON answers) over
  keep-alive connections; throughput, median and p99 latency;
- a ``--rows``-row result (default 10 million) as an Arrow stream read with pyarrow's IPC reader,
  against the in-process ``.arrow()`` of the same query, alternated ``--repeat`` times (medians);
- the server's resident memory above idle while it streams that result (sampled every 10 ms from
  /proc, and the kernel's peak after resetting it);
- what an identity provider's JWT costs (``--auth-only`` runs just this): the mesh declares an OIDC issuer
  whose JWKS a loopback HTTP server of this process serves (an RSA-2048 key made here, RS256 tokens).
  In-process ``Platform.identify`` per call with the JWKS cached: a token seen for the first time (the
  signature checked), the same token again (remembered by its SHA-256), a Quanta ``qt_`` token; then the
  HTTP round trip of one point query by one client with a ``qt_`` token, the same JWT, and a new JWT on
  each request, interleaved (medians).
"""

from __future__ import annotations

import argparse
import json
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from _common import WORK, environment_lines, median, progress, table, write_section  # noqa: E402

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402

ARROW = "application/vnd.apache.arrow.stream"
SMALL_ROWS = 1000
ISSUER = "https://idp.bench.test"
POINT = "select id, name, score from bench.small where id = ?"


class IdentityProvider:
    """An RSA key and its JWKS served on a loopback port (a thread of this process), minting RS256 tokens."""

    def __init__(self):
        import jwt
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
        from cryptography.hazmat.primitives.asymmetric import rsa

        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwks = json.dumps({"keys": [{**json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key())),
                                     "kid": "bench", "use": "sig", "alg": "RS256"}]}).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(jwks)))
                self.end_headers()
                self.wfile.write(jwks)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/jwks"
        self._n = 0

    def mint(self, ttl: int = 3600) -> str:
        import jwt
        self._n += 1  # a distinct token each time
        now = int(time.time())
        return jwt.encode({"iss": ISSUER, "aud": "quanta", "sub": "bench", "iat": now, "exp": now + ttl,
                           "jti": str(self._n)}, self.key, algorithm="RS256", headers={"kid": "bench"})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


def auth_costs(mesh: Path, url: str, token: str, idp: IdentityProvider, n: int) -> list[list[str]]:
    """Rows of the JWT table: in-process identify per call, and the HTTP round trip per credential."""
    from federation.platform import Platform

    platform = Platform(mesh)
    platform.identify(idp.mint())  # fetches the JWKS once
    fresh = [idp.mint() for _ in range(n)]
    same = idp.mint()

    def per_call(credentials) -> float:
        t = time.perf_counter()
        for c in credentials:
            platform.identify(c)
        return (time.perf_counter() - t) / len(credentials) * 1e6

    first, again, quanta = per_call(fresh), per_call([same] * n), per_call([token] * n)
    rows = [["JWT, first time seen (RS256 signature checked)", f"{n:,} calls", f"{first:.0f} us/call",
             "Platform.identify, JWKS cached", ""],
            ["JWT, the same token again (remembered)", f"{n:,} calls", f"{again:.1f} us/call",
             "Platform.identify", ""],
            ["Quanta qt_ token", f"{n:,} calls", f"{quanta:.0f} us/call", "Platform.identify (SQLite lookup)", ""]]
    times: dict[str, list[float]] = {"qt_ token": [], "same JWT": [], "new JWT each request": []}
    credentials = {"qt_ token": lambda i: token, "same JWT": lambda i: same,
                   "new JWT each request": lambda i: fresh_http[i]}
    fresh_http = [idp.mint() for _ in range(n)]
    with requests.Session() as s:
        for kind in credentials:  # warm up: connection, plan cache, the server's JWKS
            s.post(url + "/api/v1/query", json={"sql": POINT, "parameters": [1]},
                   headers={"Authorization": f"Bearer {credentials[kind](0)}"}).raise_for_status()
        for i in range(n):
            for kind, credential in credentials.items():
                t = time.perf_counter()
                r = s.post(url + "/api/v1/query", json={"sql": POINT, "parameters": [i % SMALL_ROWS]},
                           headers={"Authorization": f"Bearer {credential(i)}"})
                times[kind].append(time.perf_counter() - t)
                if r.status_code != 200:
                    raise SystemExit(f"{kind}: HTTP {r.status_code} {r.text[:200]}")
    base = median(times["qt_ token"])
    for kind, values in times.items():
        m = median(values)
        rows.append([f"HTTP point query, {kind}", f"median of {n:,}", f"{m * 1000:.2f} ms",
                     "one client, keep-alive", "" if kind == "qt_ token" else f"{(m - base) * 1e6:+.0f} us vs qt_"])
    return rows


def build_mesh(root: Path, rows: int, jwks_url: str | None = None) -> Path:
    """A one-quantum mesh: ``bench.events`` (``rows`` rows of Parquet) and ``bench.small`` (1,000 rows)."""
    data = root / "data"
    data.mkdir(parents=True, exist_ok=True)
    events = data / f"events-{rows}.parquet"
    if not events.exists():
        progress(f"generating {rows:,} rows ...")
        con = duckdb.connect()
        con.execute(f"COPY (SELECT i AS id, i % 1000 AS customer_id, (i % 10000) / 100 :: DECIMAL(10,2) AS amount, "
                    f"['EU','US','CA'][1 + i % 3] AS region, TIMESTAMP '2025-01-01' + INTERVAL (i) SECOND AS ts "
                    f"FROM range({rows}) t(i)) TO '{events}' (FORMAT parquet)")
        con.execute(f"COPY (SELECT i AS id, 'name ' || i AS name, i * 1.5 AS score FROM range({SMALL_ROWS}) t(i)) "
                    f"TO '{data / 'small.parquet'}' (FORMAT parquet)")
        con.close()
    dump = lambda path, obj: path.write_text(yaml.safe_dump(obj, sort_keys=False))  # noqa: E731
    dump(root / "mesh.yaml", {"name": "httpbench", "description": "HTTP benchmark", "domains": [{"name": "bench"}],
                              "settings": {"threads": 2}})
    governance = {"principals": [{"name": "bench"}], "grants": [{"to": {"user": "bench"}, "on": "*"}]}
    if jwks_url:
        governance["issuers"] = [{"issuer": ISSUER, "audience": "quanta", "jwks_url": jwks_url}]
    dump(root / "governance.yaml", governance)
    (root / "products").mkdir(exist_ok=True)
    (root / "contracts").mkdir(exist_ok=True)
    dump(root / "products" / "bench.odps.yaml", {
        "apiVersion": "v1.0.0", "kind": "DataProduct", "id": "urn:bench:product", "name": "bench", "domain": "bench",
        "status": "active", "team": {"name": "bench", "members": [{"username": "bench", "role": "owner"}]},
        "outputPorts": [{"name": "bench", "version": "1.0.0", "contractId": "bench-contract", "type": "tables"}]})
    prop = lambda n, lt, pt: {"name": n, "logicalType": lt, "physicalType": pt}  # noqa: E731
    dump(root / "contracts" / "bench.odcs.yaml", {
        "apiVersion": "v3.1.0", "kind": "DataContract", "id": "bench-contract", "version": "1.0.0", "status": "active",
        "servers": [{"server": "events", "type": "local", "format": "parquet", "path": events.name},
                    {"server": "small", "type": "local", "format": "parquet", "path": "small.parquet"}],
        "schema": [
            {"name": "events", "properties": [prop("id", "integer", "bigint"), prop("customer_id", "integer", "bigint"),
                                              prop("amount", "number", "decimal(10,2)"),
                                              prop("region", "string", "varchar"),
                                              prop("ts", "timestamp", "timestamp")]},
            {"name": "small", "customProperties": [{"property": "server", "value": "small"}],
             "properties": [prop("id", "integer", "bigint"), prop("name", "string", "varchar"),
                            prop("score", "number", "double")]}]})
    return root


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+)", text, re.M).group(1))


def start_server(mesh: Path, port: int) -> tuple[subprocess.Popen, str]:
    quanta = Path(sys.executable).parent / "quanta"
    proc = subprocess.Popen([str(quanta), "serve", str(mesh), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    for _ in range(10):
        line = proc.stdout.readline()
        m = re.search(r"dictionary\s+(http://\S+?)/\s*$", line)
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit("the server did not start")


def small_queries(url: str, token: str, clients: int, queries: int) -> dict:
    latencies: list[float] = []
    lock = threading.Lock()
    failures = []
    barrier = threading.Barrier(clients + 1)

    def client(i: int) -> None:
        mine = []
        with requests.Session() as s:
            s.headers["Authorization"] = f"Bearer {token}"
            s.post(url + "/api/v1/query", json={"sql": "select 1"})  # connect, warm up
            barrier.wait()
            for q in range(queries):
                t = time.perf_counter()
                r = s.post(url + "/api/v1/query", json={"sql": "select id, name, score from bench.small where id = ?",
                                                        "parameters": [(i * queries + q) % SMALL_ROWS]})
                mine.append(time.perf_counter() - t)
                if r.status_code != 200 or len(r.json()["rows"]) != 1:
                    failures.append(r.text[:200])
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    started = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - started
    latencies.sort()
    return {"n": len(latencies), "qps": len(latencies) / elapsed, "median_ms": median(latencies) * 1000,
            "p99_ms": latencies[int(0.99 * (len(latencies) - 1))] * 1000, "failures": len(failures)}


def stream_arrow(url: str, token: str, sql: str, pid: int) -> tuple[float, int, int, int]:
    """Seconds, rows, peak RSS above idle (sampled) and the kernel's peak above idle (KB)."""
    idle = rss_kb(pid)
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")  # reset VmHWM to the current RSS
        hwm_ok = True
    except OSError:
        hwm_ok = False
    peak = [idle]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], rss_kb(pid))
            done.wait(0.01)

    sampler = threading.Thread(target=sample)
    sampler.start()
    t = time.perf_counter()
    with requests.post(url + "/api/v1/query", json={"sql": sql}, stream=True,
                       headers={"Authorization": f"Bearer {token}", "Accept": ARROW}) as r:
        r.raise_for_status()
        table = pa.ipc.open_stream(r.raw).read_all()
    seconds = time.perf_counter() - t
    done.set()
    sampler.join()
    hwm = rss_kb(pid, "VmHWM") - idle if hwm_ok else -1
    return seconds, table.num_rows, peak[0] - idle, hwm


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--queries", type=int, default=200, help="small queries per client")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--auth-requests", type=int, default=300, help="calls and requests per credential kind")
    ap.add_argument("--auth-only", action="store_true", help="only the JWT costs (no throughput, no stream)")
    args = ap.parse_args()

    import federation
    from federation.platform import Platform

    idp = IdentityProvider()
    mesh = build_mesh(WORK / "http", SMALL_ROWS if args.auth_only else args.rows, idp.url)
    token = Platform(mesh).tokens.create("bench", 1)[0]
    proc, url = start_server(mesh, args.port)
    try:
        progress(f"JWT costs: {args.auth_requests} calls and requests per credential ...")
        auth = auth_costs(mesh, url, token, idp, args.auth_requests)
        auth_md = table(["measure", "runs", "result", "detail", "note"], auth, align="lllll")
        if args.auth_only:
            print(auth_md)
            return 0
        progress(f"server {url} (pid {proc.pid}); small queries: {args.clients} clients x {args.queries} ...")
        small = small_queries(url, token, args.clients, args.queries)
        sql = "select * from bench.events"
        conn = federation.connect(str(mesh), user="bench")
        http_times, local_times, peaks, hwms = [], [], [], []
        for i in range(args.repeat):
            for side in (("http", "local") if i % 2 == 0 else ("local", "http")):
                if side == "http":
                    s, n, peak, hwm = stream_arrow(url, token, sql, proc.pid)
                    assert n == args.rows, n
                    http_times.append(s)
                    peaks.append(peak)
                    hwms.append(hwm)
                else:
                    t = time.perf_counter()
                    n = conn.sql(sql).arrow().num_rows
                    local_times.append(time.perf_counter() - t)
                    assert n == args.rows
                progress(f"  round {i + 1} {side} done")
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        idp.stop()

    http_s, local_s = median(http_times), median(local_times)
    ratio = local_s / http_s
    rows = [
        ["small queries (JSON, point lookups)", f"{small['n']:,} by {args.clients} clients",
         f"{small['qps']:.0f} q/s", f"median {small['median_ms']:.1f} ms, p99 {small['p99_ms']:.1f} ms",
         f"{small['failures']} failures"],
        [f"Arrow stream of {args.rows:,} rows over HTTP", f"median of {args.repeat}", f"{http_s:.2f} s",
         f"{args.rows / http_s / 1e6:.1f} M rows/s", ""],
        [f"in-process .arrow() of the same query", f"median of {args.repeat}", f"{local_s:.2f} s",
         f"{args.rows / local_s / 1e6:.1f} M rows/s", f"HTTP = {ratio:.0%} of in-process"],
        ["server memory above idle while streaming", "max of runs", f"{max(peaks) / 1024:.0f} MB (sampled)",
         f"{max(hwms) / 1024:.0f} MB (kernel peak)" if max(hwms) >= 0 else "", ""],
    ]
    md = table(["measure", "runs", "result", "detail", "note"], rows, align="lllll")
    targets = [f"- Targets: >= 300 small queries/s on 2 cores: {'met' if small['qps'] >= 300 else 'NOT met'}; "
               f"Arrow over HTTP >= 70% of in-process: {'met' if ratio >= 0.7 else 'NOT met'}; "
               f"< 300 MB extra server memory: {'met' if max(peaks) / 1024 < 300 else 'NOT met'}."]
    print(md)
    print("\n".join(targets))
    print(auth_md)
    if not args.no_write:
        body = "\n".join(environment_lines() + [
            f"- Command: `python benchmarks/http_service.py --rows {args.rows} --clients {args.clients} "
            f"--queries {args.queries} --repeat {args.repeat}`", "",
            "Method: the real `quanta serve` (waitress, 16 threads) in its own process on loopback; clients are "
            "threads of the benchmark process (sharing the same cores). Small queries are point lookups in a "
            "1,000-row Parquet dataset answered as JSON over keep-alive connections. The stream is read with "
            "pyarrow's IPC reader into a table; the in-process side is `federation.connect(...).sql(q).arrow()`; "
            "the two alternate. Memory is the server's RSS above its idle RSS, sampled every 10 ms.", "",
            md, "", *targets, "",
            "Identities from an identity provider: the mesh declares an OIDC issuer whose JWKS a loopback server "
            "of the benchmark serves (RSA-2048, RS256). In-process `Platform.identify` per call with the JWKS "
            "cached, then one client's point query over HTTP with each credential, interleaved.", "", auth_md])
        write_section("HTTP service: throughput, Arrow streaming, memory", body)
        progress("written: benchmarks/RESULTS.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
