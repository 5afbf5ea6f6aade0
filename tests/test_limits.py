"""Limits belong to the server (issue 11, finding 10: denial of service by one principal).

Each finding is reproduced through the interfaces it concerns, on real servers on 127.0.0.1:

* a client's time-out may lower the mesh's ``query_timeout_seconds``, never raise it, and must be a
  finite number of seconds (``NaN``, ``1e308``, strings, negatives are refused, naming the field);
* the text of a query is capped in size and nesting depth before anything parses it (400 / 54001), and
  compiling counts against the time-out;
* a query whose HTTP client disconnected is cancelled;
* one principal runs a bounded number of queries at once, with a short queue, then 429 / 53300, while
  other principals are served;
* idle and half-open connections neither lock HTTP clients out nor hold server threads; PostgreSQL
  connections are bounded and time out at startup and when idle.

Nothing here asserts on durations: tests wait (with generous bounds) for outcomes.
"""

from __future__ import annotations

import json
import socket
import sqlite3
import struct
import threading
import time

import pytest
import requests
from meshkit import mesh_yaml, shop_mesh

import federation
from federation import admission, errors
from federation.platform import Platform
from federation.server.http import Server, create_app
from federation.server.pgwire import PgServer, register_token

psycopg = pytest.importorskip("psycopg")

HEAVY = ("select count(*) from shop.orders a, shop.orders b, shop.orders c, shop.orders d, shop.orders e, "
         "shop.orders f")  # 10^12 rows: runs until it is interrupted
USERS = ("ana", "bob", "dev", "eve")


def make_platform(root, **settings) -> Platform:
    path = shop_mesh(root)
    mesh_yaml(path, settings=settings)  # the shop mesh with these settings
    platform = Platform(path)
    platform.test_tokens = {}
    for user in USERS:
        token, _ = platform.tokens.create(user, 1)
        register_token(platform, token)
        platform.test_tokens[user] = token
    return platform


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """A mesh whose queries may run 1 s at most."""
    return make_platform(tmp_path_factory.mktemp("quick"), query_timeout_seconds=1)


@pytest.fixture(scope="module")
def limited(tmp_path_factory):
    """A mesh with small limits: 2 running queries per principal, 1 waiting, SQL of 20,000 bytes and depth 40."""
    return make_platform(tmp_path_factory.mktemp("limited"), query_timeout_seconds=600, max_queries_per_principal=2,
                         max_queued_queries_per_principal=1, queue_timeout_seconds=300, max_sql_bytes=20_000,
                         max_sql_depth=40)


@pytest.fixture(scope="module")
def default(tmp_path_factory):
    """A mesh with the default limits."""
    return make_platform(tmp_path_factory.mktemp("default"))


@pytest.fixture(scope="module")
def http(quick, limited, default):
    servers = {name: Server(create_app(p), port=0).start() for name, p in
               (("quick", quick), ("limited", limited), ("default", default))}
    yield servers
    for server in servers.values():
        server.stop()


@pytest.fixture(scope="module")
def pg(quick, limited, default):
    servers = {name: PgServer(p, port=0).start() for name, p in
               (("quick", quick), ("limited", limited), ("default", default))}
    yield servers
    for server in servers.values():
        server.stop()


def post(server, platform, sql, user="ana", **body):
    return requests.post(server.url + "/api/v1/query", json={"sql": sql, **body}, timeout=120,
                         headers={"Authorization": f"Bearer {platform.test_tokens[user]}"})


def post_raw(server, platform, data: bytes, user="ana"):
    return requests.post(server.url + "/api/v1/query", data=data, timeout=120,
                         headers={"Authorization": f"Bearer {platform.test_tokens[user]}",
                                  "Content-Type": "application/json"})


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and "Traceback" not in response.text
    return body["error"]


def pg_connect(server, platform, user="ana", **extra):
    parts = {"host": "127.0.0.1", "port": server.port, "user": user, "dbname": "testmesh",
             "password": platform.test_tokens[user], "sslmode": "disable", "connect_timeout": 30, **extra}
    return psycopg.connect(" ".join(f"{k}={v}" for k, v in parts.items()), autocommit=True)


def wait_for(condition, what: str, seconds: float = 120) -> None:
    """Wait until ``condition()`` holds (an outcome, not a duration: the bound only stops a broken test)."""
    end = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < end, f"never happened: {what}"
        time.sleep(0.02)


def audit_rows(platform, sql: str) -> list[tuple]:
    """(status, error) of the audit entries of ``sql``, read from the audit store itself."""
    db = sqlite3.connect(str(platform.state_dir / "state.db"))
    try:
        return db.execute("SELECT status, error FROM query_log WHERE sql = ? ORDER BY query_id", (sql,)).fetchall()
    finally:
        db.close()


def raw_request(server, platform, sql: str, user: str, accept: str = "application/json",
                rcvbuf: int | None = None) -> socket.socket:
    """A query request sent on a socket of our own, to hold, leave unread or close at will."""
    sock = socket.socket()
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.connect(("127.0.0.1", server.port))
    body = json.dumps({"sql": sql}).encode()
    sock.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                 + f"Authorization: Bearer {platform.test_tokens[user]}\r\nAccept: {accept}\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return sock


def closed_by_server(sock: socket.socket, seconds: float = 120) -> bool:
    """Read until the server closes the connection (True), or ``seconds`` pass without it (False)."""
    sock.settimeout(seconds)
    try:
        while sock.recv(65536):
            pass
        return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


# -- time-outs: lowered by a client, never raised -------------------------------------------------------------


def test_python_timeout_lowers_the_mesh_limit_and_never_raises_it(quick):
    conn = federation.Connection(quick, quick.principal("ana"), timeout=20)
    with pytest.raises(errors.QueryTimeout, match=r"time-out of 1 s"):  # the mesh's 1 s, not the asked 20 s
        conn.sql(HEAVY).fetchall()
    with pytest.raises(errors.QueryTimeout, match=r"time-out of 1 s"):
        conn.sql(HEAVY, timeout=3600).fetchall()
    with pytest.raises(errors.QueryTimeout, match=r"time-out of 0\.2 s"):  # lowering is the client's right
        conn.sql(HEAVY, timeout=0.2).fetchall()
    assert conn.sql("select 42", timeout=0.5).fetchall() == [(42,)]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 1e308, -1, 0, "5", True, [1]])
def test_python_invalid_timeouts_are_refused(quick, value):
    conn = federation.Connection(quick, quick.principal("ana"))
    with pytest.raises(errors.InvalidParameter, match="'timeout' must be") as e:
        conn.sql("select 1", timeout=value)
    assert e.value.sqlstate == "22023"
    with pytest.raises(errors.QueryTimeout, match=r"time-out of 1 s"):  # time-outs still work afterwards
        conn.sql(HEAVY).fetchall()


def test_http_timeout_cannot_raise_the_mesh_limit(http, quick):
    err = error_of(post(http["quick"], quick, HEAVY, timeout=20), 504)
    assert err["code"] == "timeout" and "time-out of 1 s" in err["message"]
    err = error_of(post(http["quick"], quick, HEAVY, timeout=0.3), 504)
    assert "time-out of 0.3 s" in err["message"]


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-Infinity", b"1e308", b"-1", b"0", b'"5"', b"true",
                                 b"[20]"])
def test_http_invalid_timeouts_are_400_naming_the_field(http, quick, raw):
    r = post_raw(http["quick"], quick, b'{"sql": "select 1", "timeout": ' + raw + b"}")
    err = error_of(r, 400)
    assert "'timeout'" in err["message"] and "seconds" in err["message"], err
    assert post(http["quick"], quick, "select 7").json()["rows"] == [[7]]
    err = error_of(post(http["quick"], quick, HEAVY), 504)  # the server's time-outs still hold
    assert "time-out of 1 s" in err["message"]


@pytest.mark.parametrize("raw", [b"NaN", b"Infinity", b"-3", b"0", b'"9"', b"2.5", b"true"])
def test_http_invalid_max_rows_are_400_naming_the_field(http, quick, raw):
    err = error_of(post_raw(http["quick"], quick, b'{"sql": "select 1", "max_rows": ' + raw + b"}"), 400)
    assert "'max_rows'" in err["message"]


def test_pgwire_statement_timeout_cannot_raise_the_mesh_limit(pg, quick):
    with pg_connect(pg["quick"], quick) as conn:
        conn.execute("set statement_timeout = '20s'")
        with pytest.raises(psycopg.errors.QueryCanceled, match=r"time-out of 1 s"):
            conn.execute(HEAVY)
        conn.execute("set statement_timeout = 300")  # milliseconds
        with pytest.raises(psycopg.errors.QueryCanceled, match=r"time-out of 0\.3 s"):
            conn.execute(HEAVY)
        for bad in ("'abc'", "'1e308'", "'-5s'", "'99999999999'"):
            with pytest.raises(psycopg.errors.InvalidParameterValue, match="statement_timeout"):
                conn.execute(f"set statement_timeout = {bad}")
        assert conn.execute("select 5").fetchone() == (5,)


def test_compiling_counts_against_the_time_out(quick):
    """A query whose compiling alone outlasts its time-out never starts in the engine."""
    conn = federation.Connection(quick, quick.principal("ana"))
    sql = "select count(*) from shop.orders where " + " or ".join(f"order_id = {i}" for i in range(5000))
    with pytest.raises(errors.QueryTimeout, match="compiling"):
        conn.sql(sql, timeout=0.001)
    assert audit_rows(quick, sql)[-1][0] == "cancelled"


# -- the size and depth of a query's text ----------------------------------------------------------------------


def nested(shape: str, n: int) -> str:
    return {
        "parentheses": "select " + "(" * n + "1" + ")" * n,
        "functions": "select " + "abs(" * n + "1" + ")" * n,
        "subqueries": "select count(*) from " + "(select * from " * n + "shop.orders" + ") t" * n,
        "scalar subqueries": "select " + "(select " * n + "1" + ")" * n,
        "operators": "select " + " + ".join(["1"] * (n + 1)),
        "casts": "select 1" + "::bigint" * n,
        "case": "select " + "case when true then " * n + "1" + " end" * n,
        "lists": "select " + "[" * n + "1" + "]" * n,
    }[shape]


SHAPES = ("parentheses", "functions", "subqueries", "operators", "casts", "case", "lists")


@pytest.mark.parametrize("shape", SHAPES)
def test_nesting_depth_is_capped_in_python(limited, shape):
    conn = federation.Connection(limited, limited.principal("ana"))
    depth = 39 if shape == "subqueries" else 40  # the limit of the mesh: 40
    assert len(conn.sql(nested(shape, depth)).fetchall()) == 1  # at the limit: answered
    with pytest.raises(errors.QueryTooComplex, match=r"more than 40 levels deep \(setting max_sql_depth\)") as e:
        conn.sql(nested(shape, 41))
    assert e.value.sqlstate == "54001"


def cte_chain(n: int) -> str:
    """n CTEs, each reading the previous one in a scalar subquery: nested n - 1 deep though no text nests."""
    ctes = ["c0 as (select order_id as x from shop.orders)"]
    ctes += [f'"C{i}"(x) as not materialized (select (select max(x) from c{i - 1}) as x)' for i in range(1, n)]
    return "with " + ", ".join(ctes) + f" select * from c{n - 1}"


def tree(n: int) -> str:
    """Two subqueries per level, n levels: 2^n - 1 subqueries."""
    e = "1"
    for _ in range(n):
        e = f"(select max(order_id) from shop.orders where order_id < {e} and amount < {e})"
    return "select count(*) from shop.orders where order_id = " + e


def test_subqueries_nested_in_expressions_are_capped(default, http):
    """The engine's planning is exponential in subqueries nested in expressions and cannot be interrupted
    (twelve nested scalar subqueries: 15 s, sixteen chained through CTEs: 5 minutes): at most 8 levels by
    default, CTE references included, and a bounded total for wide trees."""
    conn = federation.Connection(default, default.principal("ana"))
    assert conn.sql(nested("scalar subqueries", 8)).fetchall() == [(1,)]
    assert conn.sql(cte_chain(9)).fetchall() == [(99,)]  # 8 nested through the CTEs
    assert conn.sql(tree(6)).fetchall() == [(0,)]
    for sql in (nested("scalar subqueries", 9), cte_chain(10)):
        with pytest.raises(errors.QueryTooComplex, match=r"subqueries in expressions more than 8 levels deep.*"
                                                         r"setting max_sql_subquery_depth"):
            conn.sql(sql)
    with pytest.raises(errors.QueryTooComplex, match=r"too many nested subqueries.*max_sql_subquery_depth"):
        conn.sql(tree(7))
    flat = "select " + ", ".join(f"(select max(order_id) from shop.orders where order_id < {i})" for i in range(50))
    assert len(conn.sql(flat).fetchall()[0]) == 50  # side by side: no limit
    derived = "select count(*) from " + "(select * from " * 30 + "shop.orders" + ") t" * 30
    assert conn.sql(derived).fetchall() == [(100,)]  # tables of FROM are not expression levels
    err = error_of(post(http["default"], default, cte_chain(16)), 400)  # the finding: 5 minutes of planning
    assert err["code"] == "too_complex" and "max_sql_subquery_depth" in err["message"]


def test_long_lists_strings_and_comments_are_not_depth(limited):
    conn = federation.Connection(limited, limited.principal("ana"))
    ors = "select count(*) from shop.orders where " + " or ".join(f"(order_id = {i})" for i in range(500))
    assert conn.sql(ors).fetchall() == [(100,)]
    ins = "select count(*) from shop.orders where order_id in (" + ", ".join(str(i) for i in range(2000)) + ")"
    assert conn.sql(ins).fetchall() == [(100,)]
    text = "select '" + "(" * 200 + "' as \"" + "[" * 50 + "\" -- " + "(" * 100 + "\n /* " + "((" * 50 + " */"
    assert conn.sql(text).fetchall() == [("(" * 200,)]


def test_size_is_capped_in_python(limited):
    conn = federation.Connection(limited, limited.principal("ana"))
    sql = "select 1 where " + " or ".join(["1=1"] * 3000)  # 21,011 bytes
    with pytest.raises(errors.QueryTooComplex, match=r"21,011 bytes long, above this mesh's limit of 20,000 bytes "
                                                     r"\(setting max_sql_bytes\)"):
        conn.sql(sql)
    assert audit_rows(limited, sql)[-1][0] == "error"  # refused and audited


def test_the_megabyte_query_is_refused_at_once_by_default(default, http):
    """The finding: a 1 MB ``1=1 or ...`` held the server for minutes. Refused before parsing now."""
    sql = "select 1 where " + " or ".join(["1=1"] * 140_000)  # 980,011 bytes
    conn = federation.Connection(default, default.principal("ana"))
    with pytest.raises(errors.QueryTooComplex, match="setting max_sql_bytes"):
        conn.sql(sql)
    err = error_of(post(http["default"], default, sql), 400)
    assert err["code"] == "too_complex" and err["sqlstate"] == "54001" and "max_sql_bytes" in err["message"]
    err = error_of(post(http["default"], default, "select " + " + ".join(["1"] * 800)), 400)
    assert err["code"] == "too_complex" and "max_sql_depth" in err["message"]  # 800 terms: 12 s in the engine


def test_a_deep_text_past_a_raised_limit_is_too_complex_not_a_crash(tmp_path):
    """A mesh may raise max_sql_depth beyond what the parser's stack holds: still a clear refusal."""
    platform = make_platform(tmp_path, max_sql_depth=100_000)
    conn = federation.Connection(platform, platform.principal("ana"))
    with pytest.raises(errors.QueryTooComplex, match="nests too deeply to compile"):
        conn.sql(nested("parentheses", 5000))
    assert conn.sql("select 1").fetchall() == [(1,)]


def test_http_size_and_depth_are_400_too_complex(http, limited):
    err = error_of(post(http["limited"], limited, nested("subqueries", 41)), 400)
    assert err["code"] == "too_complex" and err["sqlstate"] == "54001" and "max_sql_depth" in err["message"]
    err = error_of(post(http["limited"], limited, "select 1 where " + " or ".join(["1=1"] * 3000)), 400)
    assert err["code"] == "too_complex" and "max_sql_bytes" in err["message"]
    assert post(http["limited"], limited, nested("functions", 40)).json()["rows"] == [[1]]


def test_pgwire_size_and_depth_are_54001(pg, limited):
    with pg_connect(pg["limited"], limited) as conn:
        for sql in (nested("parentheses", 41), "select 1 where " + " or ".join(["1=1"] * 3000)):
            with pytest.raises(psycopg.errors.StatementTooComplex, match="statement too complex"):
                conn.execute(sql)  # simple protocol
            with pytest.raises(psycopg.errors.StatementTooComplex, match="statement too complex"):
                conn.execute(sql + " and 1 = %s", [1], prepare=True)  # extended protocol (Parse)
        assert conn.execute(nested("parentheses", 40)).fetchone() == (1,)


# -- a client that goes away cancels its query -----------------------------------------------------------------


def test_http_client_disconnect_cancels_its_query(http, limited):
    sql = HEAVY + " where a.order_id > 0"
    slots = admission.of(limited)
    sock = raw_request(http["limited"], limited, sql, "eve")
    wait_for(lambda: slots.running("eve") == 1, "the query runs")
    sock.close()  # the client goes away
    wait_for(lambda: slots.running("eve") == 0, "the query stops")  # else it would run for 10 minutes
    wait_for(lambda: audit_rows(limited, sql), "the query is audited")
    status, error = audit_rows(limited, sql)[-1]
    assert status == "cancelled" and "cancelled" in error
    assert post(http["limited"], limited, "select 3", user="eve").json()["rows"] == [[3]]


# -- per-principal concurrency ---------------------------------------------------------------------------------


def test_in_process_caller_is_not_limited_by_its_own_open_results(limited):
    """An in-process caller (Python, CLI) owns its process and its open results: three open results of ana
    (whose limit is 2) do not queue her fourth query; the limit is for a shared server's clients (below)."""
    slots = admission.of(limited)
    ana = federation.Connection(limited, limited.principal("ana"))
    results = [ana.sql("select order_id from shop.orders") for _ in range(3)]
    assert ana.sql("select 42").fetchall() == [(42,)]
    assert slots.running("ana") == 0 and slots.waiting("ana") == 0
    assert [len(r.fetchall()) for r in results] == [100, 100, 100]


def test_http_principal_limit_queues_then_429_and_others_are_served(http, limited):
    """The finding: 16 heavy queries of one principal filled every server thread. Now dev runs 2, one waits,
    the next gets 429 at once, and ana's query is answered meanwhile."""
    server, slots = http["limited"], admission.of(limited)
    heavy = [raw_request(server, limited, HEAVY + f" where a.order_id > {i}", "dev") for i in range(2)]
    wait_for(lambda: slots.running("dev") == 2, "dev's two heavy queries run")
    queued: list = []
    waiter = threading.Thread(target=lambda: queued.append(post(server, limited, "select 99", user="dev")))
    waiter.start()
    wait_for(lambda: slots.waiting("dev") == 1, "dev's third query waits")
    r = post(server, limited, "select 1", user="dev")
    err = error_of(r, 429)
    assert err["code"] == "too_many_queries" and err["sqlstate"] == "53300"
    assert "max_queries_per_principal" in err["message"] and r.headers["Retry-After"]
    assert post(server, limited, "select 2", user="ana").json()["rows"] == [[2]]
    for sock in heavy:  # their clients go away: cancelled, their slots freed, the waiting query runs
        sock.close()
    waiter.join(120)
    assert queued and queued[0].status_code == 200 and queued[0].json()["rows"] == [[99]]


def test_http_client_gone_while_its_query_waits_for_a_slot(http, limited):
    server, slots = http["limited"], admission.of(limited)
    heavy = [raw_request(server, limited, HEAVY + f" where b.order_id > {i}", "eve") for i in range(2)]
    try:
        wait_for(lambda: slots.running("eve") == 2, "eve's two heavy queries run")
        sql = "select 'never run'"
        waiting = raw_request(server, limited, sql, "eve")
        wait_for(lambda: slots.waiting("eve") == 1, "eve's third query waits")
        waiting.close()
        wait_for(lambda: slots.waiting("eve") == 0, "the waiting query gives up")
        wait_for(lambda: audit_rows(limited, sql), "the query is audited")
        assert audit_rows(limited, sql)[-1] == ("cancelled", "query cancelled while it waited for a free slot")
        assert slots.running("eve") == 2  # the running ones are not disturbed
    finally:
        for sock in heavy:
            sock.close()
    wait_for(lambda: slots.running("eve") == 0, "the heavy queries stop with their clients")


def test_pgwire_principal_limit_is_53300(pg, limited):
    server, slots = pg["limited"], admission.of(limited)
    conns = [pg_connect(server, limited, "bob") for _ in range(4)]
    failures: list = []

    def run(conn):
        try:
            conn.execute(HEAVY)
        except psycopg.Error as e:
            failures.append(e)

    workers = [threading.Thread(target=run, args=(c,)) for c in conns[:2]]
    for w in workers:
        w.start()
    wait_for(lambda: slots.running("bob") == 2, "bob's two heavy queries run")
    queued: list = []
    waiter = threading.Thread(target=lambda: queued.append(conns[2].execute("select 77").fetchone()))
    waiter.start()
    wait_for(lambda: slots.waiting("bob") == 1, "bob's third query waits")
    with pytest.raises(psycopg.errors.TooManyConnections, match="bob already runs 2 queries at once"):
        conns[3].execute("select 1")
    with pg_connect(server, limited, "ana") as other:
        assert other.execute("select 8").fetchone() == (8,)
    for conn, worker in zip(conns[:2], workers):
        while worker.is_alive():
            conn.cancel_safe()
            worker.join(0.2)
    assert len(failures) == 2 and all(isinstance(e, psycopg.errors.QueryCanceled) for e in failures)
    waiter.join(120)
    assert queued == [(77,)]
    assert conns[3].execute("select 1").fetchone() == (1,)  # the session went on after its refusal
    for conn in conns:
        conn.close()


# -- HTTP connections -------------------------------------------------------------------------------------------


def idle_sockets(server, n: int) -> list[socket.socket]:
    """``n`` connections: half sending nothing, half stopping in the middle of a request's headers."""
    out = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", server.port), timeout=30)
        if i % 2:
            s.sendall(b"POST /api/v1/query HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
        out.append(s)
    return out


@pytest.mark.parametrize("limit", [None, 20])
def test_idle_connections_do_not_lock_http_clients_out(default, limit):
    """The finding: about 100 idle connections locked every client out. With 150 idle or half-open ones open
    (and a connection limit of 20 in the second run), a client still gets its answer."""
    kwargs = {} if limit is None else {"connection_limit": limit}
    with Server(create_app(default), port=0, **kwargs) as server:
        held = idle_sockets(server, 150)
        try:
            r = requests.post(server.url + "/api/v1/query", json={"sql": "select 12 as n"}, timeout=60,
                              headers={"Authorization": f"Bearer {default.test_tokens['ana']}"})
            assert r.status_code == 200 and r.json()["rows"] == [[12]]
            assert requests.get(server.url + "/healthz", timeout=60).status_code == 200
        finally:
            for s in held:
                s.close()


def test_idle_and_half_open_http_connections_are_closed(default):
    with Server(create_app(default), port=0, channel_timeout=1, cleanup_interval=1) as server:
        held = idle_sockets(server, 10)
        try:
            assert all(closed_by_server(s) for s in held)
        finally:
            for s in held:
                s.close()


def test_http_client_that_stops_reading_is_closed_and_its_query_cancelled(default):
    """A half-open client (it asked for a large answer and reads none of it) does not hold a server thread."""
    sql = "select a.*, b.order_id as b_id, c.order_id as c_id from shop.orders a, shop.orders b, shop.orders c, " \
          "shop.orders d"  # 10^8 rows: the answer never fits the buffers
    with Server(create_app(default), port=0, channel_timeout=1, cleanup_interval=1) as server:
        sock = raw_request(server, default, sql, "dev", accept="application/vnd.apache.arrow.stream", rcvbuf=4096)
        try:
            wait_for(lambda: audit_rows(default, sql), "the stalled answer ends", 300)
            assert audit_rows(default, sql)[-1][0] == "cancelled"
            assert admission.of(default).running("dev") == 0
        finally:
            sock.close()


# -- PostgreSQL connections --------------------------------------------------------------------------------------


def test_pgwire_connections_are_bounded(limited):
    with PgServer(limited, port=0, max_connections=3) as server:
        conns = [pg_connect(server, limited) for _ in range(3)]
        with pytest.raises(psycopg.OperationalError, match="too many clients already") as e:
            pg_connect(server, limited, "bob")
        assert "pg_max_connections" in str(e.value)
        assert all(c.execute("select 1").fetchone() == (1,) for c in conns)  # those in keep working
        conns.pop().close()
        wait_for(lambda: server.open_connections == 2, "the closed connection frees its place")
        with pg_connect(server, limited, "bob") as again:
            assert again.execute("select 4").fetchone() == (4,)
        for c in conns:
            c.close()


def read_messages(sock: socket.socket) -> list[tuple[bytes, bytes]]:
    """Every backend message until the server closes the connection."""
    data = b""
    sock.settimeout(120)
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    out = []
    while len(data) >= 5:
        n = struct.unpack("!i", data[1:5])[0]
        out.append((data[:1], data[5:1 + n]))
        data = data[1 + n:]
    return out


def fields(body: bytes) -> dict[str, str]:
    return {part[:1].decode(): part[1:].decode() for part in body.split(b"\0") if part}


def test_pgwire_startup_must_finish_in_time(limited):
    with PgServer(limited, port=0, startup_timeout=2) as server:
        silent = socket.create_connection(("127.0.0.1", server.port))
        partial = socket.create_connection(("127.0.0.1", server.port))
        partial.sendall(struct.pack("!ii", 40, 196608) + b"user\0ana\0")  # a startup packet cut short
        try:
            with pg_connect(server, limited) as conn:  # a normal client meanwhile
                assert conn.execute("select 6").fetchone() == (6,)
            for sock in (silent, partial):
                messages = read_messages(sock)
                assert messages and messages[-1][0] == b"E"
                error = fields(messages[-1][1])
                assert error["C"] == "57014" and "pg_startup_timeout_seconds" in error["M"]
            wait_for(lambda: server.open_connections == 0, "the connections are closed")
        finally:
            silent.close()
            partial.close()


def cleartext_session(server, platform, user="ana") -> socket.socket:
    """A session opened by hand (the server allows cleartext passwords), ready for queries."""
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=60)
    params = b"user\0" + user.encode() + b"\0database\0testmesh\0\0"
    sock.sendall(struct.pack("!ii", 8 + len(params), 196608) + params)
    assert sock.recv(1) == b"R"
    sock.recv(65536)
    token = platform.test_tokens[user].encode() + b"\0"
    sock.sendall(b"p" + struct.pack("!i", 4 + len(token)) + token)
    data = b""
    while not data.endswith(b"Z\x00\x00\x00\x05I"):
        data += sock.recv(65536)
    return sock


def test_pgwire_idle_session_is_closed(limited):
    with PgServer(limited, port=0, idle_timeout=1, allow_cleartext=True) as server:
        sock = cleartext_session(server, limited)
        try:
            messages = read_messages(sock)
            error = fields(messages[-1][1])
            assert messages[-1][0] == b"E" and error["C"] == "57P05" and "idle-session timeout" in error["M"]
            wait_for(lambda: server.open_connections == 0, "the connection is closed")
        finally:
            sock.close()


def test_pgwire_client_that_stops_reading_is_closed_and_its_query_cancelled(limited):
    sql = "select a.*, b.order_id from shop.orders a, shop.orders b, shop.orders c, shop.orders d"
    with PgServer(limited, port=0, idle_timeout=1, allow_cleartext=True) as server:
        sock = cleartext_session(server, limited, "eve")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        try:
            query = sql.encode() + b"\0"
            sock.sendall(b"Q" + struct.pack("!i", 4 + len(query)) + query)  # and never read the rows
            wait_for(lambda: server.open_connections == 0, "the stalled connection is closed", 300)
            wait_for(lambda: audit_rows(limited, sql), "the query is audited")
            assert audit_rows(limited, sql)[-1][0] == "cancelled"
            assert admission.of(limited).running("eve") == 0
        finally:
            sock.close()


def test_the_plan_cache_is_bounded_by_size_and_keeps_no_statement_text(tmp_path):
    """Red-team finding 9 (issue 14): the plan cache kept every distinct statement's full text in its key and
    was bounded by a count, so one principal sending long distinct statements held memory without bound. Its
    keys hold a digest and its total is bounded by the plans' size."""
    from federation.rewrite.pipeline import CACHE_BYTES

    platform = Platform.open(shop_mesh(tmp_path))
    principal = platform.principal("ana")
    pipeline = platform.state.pipeline
    filler = " or ".join(f"order_id = {i}" for i in range(2_000))  # ~35 KB of SQL per statement
    for n in range(20):
        sql = f"select order_id from shop.orders where order_id = {n} or {filler}"
        pipeline.compile(sql, principal)
    keys = list(pipeline._cache.keys())
    assert len(keys) == 20  # compiled and cached
    assert all(isinstance(k[0], bytes) and len(k[0]) == 32 for k in keys)  # a digest, not the text
    assert pipeline._cache.currsize <= CACHE_BYTES
    assert pipeline._cache.currsize >= 20 * 2 * len(filler)  # the bound counts the plans' SQL
    again = pipeline.compile(f"select order_id from shop.orders where order_id = 3 or {filler}", principal)
    assert again is pipeline.compile(f"select order_id from shop.orders where order_id = 3 or {filler}", principal)
