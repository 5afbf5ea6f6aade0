"""The Arrow Flight SQL endpoint with real clients: the ADBC Flight SQL driver (DB-API, pandas, Polars) and the
raw ``pyarrow.flight`` client sending Flight SQL commands, against the governed shop mesh (tests/pgkit.py).
Every client must see what the Python interface shows the same principal (masks, row filters, denials);
errors carry their gRPC status and never a traceback; the server keeps serving after bad input."""

from __future__ import annotations

import time

import pgkit
import pyarrow as pa
import pyarrow.flight as flight
import pytest

import federation
from federation.server.flight import FlightSqlServer
from federation.server.flight import messages as m

adbc = pytest.importorskip("adbc_driver_flightsql")
fsql = pytest.importorskip("adbc_driver_flightsql.dbapi")

GOVERNANCE = pgkit.shop_governance(principals=[{"name": "nobody"}])
AUTH = adbc.DatabaseOptions.AUTHORIZATION_HEADER.value
LONG = ("select a.order_id from shop.orders a, shop.orders b, shop.orders c, shop.orders d")  # 10^8 rows


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return pgkit.governed_shop(tmp_path_factory.mktemp("flight"), governance=GOVERNANCE)


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "pia", "nobody"))


@pytest.fixture(scope="module")
def server(platform, tokens):
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as srv:
        yield srv


def connect(server, token=None, **db_kwargs):
    if token is not None:
        db_kwargs[AUTH] = f"Bearer {token}"
    return fsql.connect(server.location, db_kwargs=db_kwargs, autocommit=True)


def python_rows(platform, user, sql, params=None):
    return federation.Connection(platform, platform.principal(user)).sql(sql, params).fetchall()


def raw_client(server, token):
    client = flight.connect(server.location)
    return client, flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {token}".encode())])


def query_info(client, options, sql):
    descriptor = flight.FlightDescriptor.for_command(m.pack(m.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def no_traceback(error: Exception) -> str:
    text = str(error)
    assert "Traceback" not in text and ".py\"" not in text and "line " not in text.split("Detail:")[-1], text
    return text


def audit(platform, user, interface="flight"):
    return [e for e in platform.audit.history().to_pylist() if e["principal"] == user and e["interface"] == interface]


# -- queries with ADBC ---------------------------------------------------------------------------------------

def test_adbc_bearer_token_query_is_governed(server, platform, tokens):
    sql = "select id, full_name, email, region from crm.customers order by id"
    with connect(server, tokens["ana"]) as conn, conn.cursor() as cur:
        cur.execute(sql)
        table = cur.fetch_arrow_table()
    assert table.to_pylist() == [dict(zip(table.column_names, row)) for row in python_rows(platform, "ana", sql)]
    assert set(table.column("region").to_pylist()) == {"US", "CA"}  # EU rows filtered
    assert set(table.column("full_name").to_pylist()) == {"****"}  # redacted
    assert all(e.startswith("***@") for e in table.column("email").to_pylist())  # masked
    with connect(server, tokens["pia"]) as conn, conn.cursor() as cur:
        cur.execute(sql)
        pia = cur.fetch_arrow_table()
    assert "EU" in pia.column("region").to_pylist() and "name1" in pia.column("full_name").to_pylist()


def test_adbc_user_password_and_parameters(server, platform, tokens):
    sql = "select id, email, region from crm.customers where id = ? or id = ? order by id"
    with connect(server, username="ana", password=tokens["ana"]) as conn, conn.cursor() as cur:
        cur.execute(sql, (3, 4))  # 3 is an EU customer: filtered for ana
        rows = cur.fetchall()
    assert rows == python_rows(platform, "ana", sql, [3, 4]) == [(4, "***@example.com", "US")]


def test_adbc_fetch_df_and_polars(server, platform, tokens):
    pl = pytest.importorskip("polars")
    sql = "select order_id, customer_id, order_date from shop.orders order by order_id"
    with connect(server, tokens["ana"]) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            df = cur.fetch_df()
        frame = pl.read_database(sql, connection=conn)
    expected = python_rows(platform, "ana", sql)
    assert len(df) == len(expected) == 100 and list(df["order_id"]) == [r[0] for r in expected]
    assert frame.rows() == expected


def test_denial_names_the_dataset_and_no_value(server, tokens):
    with connect(server, tokens["ana"]) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as info:
            cur.execute("select order_id, amount from shop.orders where amount > 10")
    text = no_traceback(info.value)
    assert "PERMISSION_DENIED" in text or "UNAUTHORIZED" in text
    assert "shop.orders" in text and "amount" in text and "request access" in text
    with connect(server, tokens["nobody"]) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as info:
            cur.execute("select email from crm.customers where email = 'user4@example.com'")
    text = no_traceback(info.value)
    assert "crm.customers" in text and "user4" not in text


def test_bad_credentials_are_unauthenticated(server, tokens):
    cases = [dict(token="qt_nope_nothing"), dict(token=tokens["ana"] + "x"),
             dict(username="pia", password=tokens["ana"]),  # a real token of another principal
             dict(username="ghost", password="qt_x_y")]
    messages = []
    for case in cases:
        with pytest.raises(Exception) as info:
            with connect(server, **case) as conn, conn.cursor() as cur:
                cur.execute("select 1")
        messages.append(no_traceback(info.value))
        assert "UNAUTHENTICATED" in messages[-1]
    # the same message whether the user exists or not
    assert "invalid credentials" in messages[2] and "invalid credentials" in messages[3]
    assert "ghost" not in messages[3] and "pia" not in messages[2]


def test_sql_error_is_invalid_argument(server, tokens):
    with connect(server, tokens["ana"]) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as info:
            cur.execute("select nope from shop.orders")
        assert "INVALID_ARGUMENT" in no_traceback(info.value) and "nope" in str(info.value)
        cur.execute("select count(*) from shop.orders")  # the connection keeps working
        assert cur.fetchall() == [(100,)]


# -- the raw pyarrow.flight client ---------------------------------------------------------------------------

def test_raw_flight_sql_statement(server, platform, tokens):
    client, options = raw_client(server, tokens["ana"])
    sql = "select id, email from crm.customers order by id"
    info = query_info(client, options, sql)
    assert info.schema.names == ["id", "email"] and len(info.endpoints) == 1
    name, ticket = m.unpack(info.endpoints[0].ticket.ticket)
    assert name == "TicketStatementQuery" and len(ticket.statement_handle) == 16
    table = client.do_get(info.endpoints[0].ticket, options).read_all()
    assert table.to_pylist() == [{"id": i, "email": e} for i, e in python_rows(platform, "ana", sql)]
    with pytest.raises(pa.ArrowKeyError) as err:  # a ticket is read once: NOT_FOUND
        client.do_get(info.endpoints[0].ticket, options).read_all()
    assert "already fetched" in no_traceback(err.value)
    descriptor = flight.FlightDescriptor.for_command(m.pack(m.CommandStatementQuery(query=sql)))
    assert client.get_schema(descriptor, options).schema.names == ["id", "email"]


def test_audit_log_names_the_flight_interface(server, platform, tokens):
    with connect(server, tokens["pia"]) as conn, conn.cursor() as cur:
        cur.execute("select count(*) as n from shop.orders where order_id < 7")
        assert cur.fetchall() == [(7,)]
    entries = [e for e in audit(platform, "pia") if "order_id < 7" in e["sql"]]
    assert entries and entries[-1]["status"] == "ok" and entries[-1]["rows"] == 1
    assert entries[-1]["datasets"] == ["shop.orders"]


def test_basic_auth_session_token_ends_with_its_token(server, platform):
    token, info = platform.tokens.create("pia", 1)
    client = flight.connect(server.location)
    header = client.authenticate_basic_token("pia", token)  # Handshake: basic in, bearer session out
    assert header[0].lower() == b"authorization" and header[1].startswith(b"Bearer qfs_")
    options = flight.FlightCallOptions(headers=[header])
    table = client.do_get(query_info(client, options, "select count(*) as n from shop.orders").endpoints[0].ticket,
                          options).read_all()
    assert table.to_pylist() == [{"n": 100}]
    platform.tokens.revoke(info.token_id)
    with pytest.raises(flight.FlightUnauthenticatedError) as err:
        query_info(client, options, "select 1 as x from shop.orders")
    assert "session ended" in no_traceback(err.value)
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.authenticate_basic_token("pia", token)


def test_purpose_header_is_checked_by_the_platform(server, platform, tokens):
    header = "adbc.flight.sql.rpc.call_header.x-quanta-purpose"
    with connect(server, tokens["pia"], **{header: "marketing"}) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as info:
            cur.execute("select count(*) from shop.orders")
    text = no_traceback(info.value)
    assert "PERMISSION_DENIED" in text or "UNAUTHORIZED" in text
    assert "marketing" in text
    assert any(e["purpose"] == "marketing" and e["status"] == "denied" for e in audit(platform, "pia"))


# -- prepared statements -------------------------------------------------------------------------------------

def create_prepared(client, options, sql):
    body = m.pack(m.ActionCreatePreparedStatementRequest(query=sql))
    results = list(client.do_action(flight.Action(m.CREATE_PREPARED_STATEMENT, body), options))
    name, result = m.unpack(results[0].body.to_pybytes())
    assert name == "ActionCreatePreparedStatementResult"
    return result


def bind(client, options, handle, batch):
    descriptor = flight.FlightDescriptor.for_command(m.pack(m.CommandPreparedStatementQuery(
        prepared_statement_handle=handle)))
    writer, metadata = client.do_put(descriptor, batch.schema, options)
    writer.write_batch(batch)
    writer.done_writing()
    answer = metadata.read()
    writer.close()
    return answer


def test_raw_prepared_statement(server, platform, tokens):
    client, options = raw_client(server, tokens["ana"])
    sql = "select id, email, region from crm.customers where id > ? order by id"
    result = create_prepared(client, options, sql)
    assert pa.ipc.read_schema(pa.py_buffer(result.dataset_schema)).names == ["id", "email", "region"]
    assert len(pa.ipc.read_schema(pa.py_buffer(result.parameter_schema))) == 1
    handle = result.prepared_statement_handle
    answer = bind(client, options, handle, pa.record_batch([pa.array([25])], names=["p"]))
    assert m.parse(m.DoPutPreparedStatementResult, answer.to_pybytes()).prepared_statement_handle == handle
    descriptor = flight.FlightDescriptor.for_command(m.pack(m.CommandPreparedStatementQuery(
        prepared_statement_handle=handle)))
    info = client.get_flight_info(descriptor, options)
    rows = client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist()
    assert [tuple(r.values()) for r in rows] == python_rows(platform, "ana", sql, [25])
    assert {r["region"] for r in rows} <= {"US", "CA"} and rows  # filtered, masked
    # another principal cannot use it; its owner still can
    other, other_options = raw_client(server, tokens["pia"])
    with pytest.raises(flight.FlightUnauthorizedError) as err:
        other.get_flight_info(descriptor, other_options)
    assert "not issued to you" in no_traceback(err.value)
    assert client.get_flight_info(descriptor, options).schema.names == ["id", "email", "region"]
    # too many rows, too large
    with pytest.raises(pa.ArrowInvalid) as err:
        bind(client, options, handle, pa.record_batch([pa.array([1, 2])], names=["p"]))
    assert "one row of parameters" in no_traceback(err.value)
    with pytest.raises(pa.ArrowInvalid) as err:
        bind(client, options, handle, pa.record_batch([pa.array(["x" * 2_000_000])], names=["p"]))
    assert "flight_max_parameter_bytes" in no_traceback(err.value)
    # closed: gone
    close = m.pack(m.ActionClosePreparedStatementRequest(prepared_statement_handle=handle))
    assert list(client.do_action(flight.Action(m.CLOSE_PREPARED_STATEMENT, close), options)) == []
    with pytest.raises(pa.ArrowKeyError) as err:
        client.get_flight_info(descriptor, options)
    assert "was closed" in no_traceback(err.value)


def test_prepared_statement_refusal_is_audited_at_prepare(server, platform, tokens):
    client, options = raw_client(server, tokens["ana"])
    sql = "select amount from shop.orders where order_id = ?"
    with pytest.raises(flight.FlightUnauthorizedError) as err:
        create_prepared(client, options, sql)
    assert "shop.orders" in no_traceback(err.value)
    assert any(e["sql"] == sql and e["status"] == "denied" for e in audit(platform, "ana"))


# -- cancellation and clients that go away -------------------------------------------------------------------

def test_cancel_flight_info_stops_a_running_query(server, platform, tokens):
    client, options = raw_client(server, tokens["pia"])
    sql = LONG + " where a.order_id >= 0"
    info = query_info(client, options, sql)
    reader = client.do_get(info.endpoints[0].ticket, options)
    assert reader.read_chunk().data.num_rows > 0
    body = m.CancelFlightInfoRequest(info=info.serialize()).SerializeToString()
    results = list(client.do_action(flight.Action(m.CANCEL_FLIGHT_INFO, body), options))
    assert m.parse(m.CancelFlightInfoResult, results[0].body.to_pybytes()).status == m.CANCEL_CANCELLED
    with pytest.raises(flight.FlightCancelledError):
        while True:
            reader.read_chunk()
    entry = wait_for_entry(platform, "pia", sql)
    assert entry["status"] == "cancelled" and entry["rows"] < 10**8


def test_cancel_query_action_before_the_ticket_is_fetched(server, platform, tokens):
    client, options = raw_client(server, tokens["pia"])
    sql = LONG + " where b.order_id >= 0"
    info = query_info(client, options, sql)
    other, other_options = raw_client(server, tokens["ana"])  # not hers to cancel
    body = m.pack(m.ActionCancelQueryRequest(info=info.serialize()))
    with pytest.raises(flight.FlightUnauthorizedError):
        list(other.do_action(flight.Action(m.CANCEL_QUERY, body), other_options))
    results = list(client.do_action(flight.Action(m.CANCEL_QUERY, body), options))
    name, result = m.unpack(results[0].body.to_pybytes())
    assert name == "ActionCancelQueryResult" and result.result == m.CANCEL_CANCELLED
    with pytest.raises(pa.ArrowKeyError) as err:
        client.do_get(info.endpoints[0].ticket, options).read_all()
    assert "cancelled" in no_traceback(err.value)
    assert wait_for_entry(platform, "pia", sql)["status"] == "cancelled"


def test_client_disconnecting_mid_stream_cancels_its_query(server, platform, tokens):
    client, options = raw_client(server, tokens["pia"])
    sql = LONG + " where c.order_id >= 0"
    reader = client.do_get(query_info(client, options, sql).endpoints[0].ticket, options)
    assert reader.read_chunk().data.num_rows > 0
    client.close()  # the connection goes away with the stream unread
    del reader
    entry = wait_for_entry(platform, "pia", sql)
    assert entry["status"] == "cancelled" and entry["rows"] < 10**8
    with connect(server, tokens["pia"]) as conn, conn.cursor() as cur:  # the server serves on
        cur.execute("select count(*) from shop.orders")
        assert cur.fetchall() == [(100,)]


def test_client_deadline_while_the_query_computes_cancels_it(server, platform, tokens):
    client = flight.connect(server.location)
    sql = ("select count(distinct a.order_id * 1000003 + b.order_id * 1009 + c.order_id * 7 + d.order_id) "
           "from shop.orders a, shop.orders b, shop.orders c, shop.orders d")
    short = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {tokens['pia']}".encode())], timeout=0.5)
    with pytest.raises(flight.FlightTimedOutError):
        query_info(client, short, sql)
    entry = wait_for_entry(platform, "pia", sql)
    assert entry["status"] == "cancelled"


def wait_for_entry(platform, user, sql, seconds=30.0):
    """The audit entry of ``sql`` once its query has ended (a hang guard, not a timed assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entries = [e for e in audit(platform, user) if e["sql"] == sql]
        if entries:
            return entries[-1]
        time.sleep(0.1)
    raise AssertionError(f"no audit entry for {sql!r}")


# -- tickets ---------------------------------------------------------------------------------------------------

def test_a_stolen_ticket_is_refused(server, platform, tokens):
    client, options = raw_client(server, tokens["ana"])
    info = query_info(client, options, "select id, email from crm.customers order by id")
    thief, thief_options = raw_client(server, tokens["pia"])
    with pytest.raises(flight.FlightUnauthorizedError) as err:
        thief.do_get(info.endpoints[0].ticket, thief_options).read_all()
    assert "not issued to you" in no_traceback(err.value)
    rows = client.do_get(info.endpoints[0].ticket, options).read_all()  # still its owner's
    assert rows.num_rows == 20


def test_unknown_and_expired_tickets(tmp_path, tokens):
    root = tmp_path / "mesh"
    platform = pgkit.governed_shop(root, governance=GOVERNANCE)
    from meshkit import mesh_yaml
    mesh_yaml(root, settings={"flight_ticket_timeout_seconds": 0.2})
    platform.reload()
    token = platform.tokens.create("pia", 1)[0]
    with FlightSqlServer(platform) as srv:
        client, options = raw_client(srv, token)
        forged = flight.Ticket(m.pack(m.TicketStatementQuery(statement_handle=b"\0" * 16)))
        with pytest.raises(pa.ArrowKeyError) as err:
            client.do_get(forged, options).read_all()
        assert "unknown ticket" in no_traceback(err.value)
        sql = "select order_id from shop.orders where order_id < 3"
        info = query_info(client, options, sql)
        assert wait_for_entry(platform, "pia", sql)["status"] == "cancelled"  # closed, unfetched, audited
        with pytest.raises(pa.ArrowKeyError) as err:
            client.do_get(info.endpoints[0].ticket, options).read_all()
        assert "expired" in no_traceback(err.value)


# -- bad input, read-only ------------------------------------------------------------------------------------

def test_malformed_messages_are_refused_and_the_server_serves_on(server, tokens):
    client, options = raw_client(server, tokens["ana"])
    cases = [
        (lambda: client.get_flight_info(flight.FlightDescriptor.for_command(b"\xff\x00garbage"), options),
         pa.ArrowInvalid, "not a Flight SQL command"),
        (lambda: client.get_flight_info(flight.FlightDescriptor.for_path("crm", "customers"), options),
         pa.ArrowInvalid, "CMD"),
        (lambda: client.get_flight_info(flight.FlightDescriptor.for_command(
            m.any_pb2.Any(type_url="type.googleapis.com/evil.Thing", value=b"x").SerializeToString()), options),
         pa.ArrowInvalid, "evil.Thing"),
        (lambda: client.get_flight_info(flight.FlightDescriptor.for_command(
            m.any_pb2.Any(type_url=m.type_url("CommandStatementQuery"), value=b"\x0a\xff").SerializeToString()),
            options), pa.ArrowInvalid, "malformed CommandStatementQuery"),
        (lambda: client.get_flight_info(flight.FlightDescriptor.for_command(
            m.any_pb2.Any(type_url=m.type_url("CommandFutureThing")).SerializeToString()), options),
         pa.ArrowNotImplementedError, "CommandFutureThing"),
        (lambda: client.do_get(flight.Ticket(b"\x01\x02\x03"), options).read_all(), pa.ArrowInvalid, "not a"),
        (lambda: list(client.do_action(flight.Action("DropEverything", b""), options)), pa.ArrowNotImplementedError,
         "unknown action"),
        (lambda: list(client.do_action(flight.Action(m.CANCEL_FLIGHT_INFO, b"\xff\xff"), options)),
         pa.ArrowInvalid, ""),
        (lambda: list(client.do_action(flight.Action(m.CREATE_PREPARED_STATEMENT, m.pack(
            m.CommandStatementQuery(query="select 1"))), options)), pa.ArrowInvalid, "expected an"),
    ]
    for call, expected, words in cases:
        with pytest.raises(expected) as err:
            call()
        assert words in no_traceback(err.value)
    info = query_info(client, options, "select count(*) as n from shop.orders")
    assert client.do_get(info.endpoints[0].ticket, options).read_all().to_pylist() == [{"n": 100}]


def test_updates_and_transactions_are_unimplemented(server, tokens):
    client, options = raw_client(server, tokens["pia"])
    update = flight.FlightDescriptor.for_command(m.pack(m.CommandStatementUpdate(query="delete from shop.orders")))
    with pytest.raises(pa.ArrowNotImplementedError) as err:
        writer, _ = client.do_put(update, pa.schema([]), options)
        writer.close()
    assert "read only" in no_traceback(err.value)
    for action in ("BeginTransaction", "EndTransaction", "BeginSavepoint"):
        with pytest.raises(pa.ArrowNotImplementedError) as err:
            list(client.do_action(flight.Action(action, m.pack(m.ActionBeginTransactionRequest())), options))
        assert "read only" in no_traceback(err.value)
    transaction = m.pack(m.CommandStatementQuery(query="select 1", transaction_id=b"t1"))
    with pytest.raises(pa.ArrowNotImplementedError):
        client.get_flight_info(flight.FlightDescriptor.for_command(transaction), options)
    with connect(server, tokens["pia"]) as conn, conn.cursor() as cur:
        with pytest.raises(Exception) as info:
            cur.adbc_ingest("new_table", pa.table({"x": [1]}), mode="create")
        assert "read only" in no_traceback(info.value)


# -- TLS -------------------------------------------------------------------------------------------------------

def test_tls_with_a_self_signed_certificate(tmp_path, platform, tokens):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj",
                    "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    with FlightSqlServer(platform, tls=(cert, key)) as srv:
        assert srv.location.startswith("grpc+tls://127.0.0.1:")
        conn = fsql.connect(srv.location, autocommit=True, db_kwargs={
            AUTH: f"Bearer {tokens['ana']}", "adbc.flight.sql.client_option.tls_root_certs": cert.read_text()})
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from crm.customers")
            assert cur.fetchall() == [(20,)]  # EU rows filtered for ana
        plain = flight.connect(f"grpc://127.0.0.1:{srv.port}")  # no TLS: refused
        with pytest.raises(flight.FlightError):
            query_info(plain, raw_client(srv, tokens["ana"])[1], "select 1")


# -- the catalog through ADBC (catalog.py builds the listings; tests/test_flight_catalog.py checks them) ------

def test_adbc_catalog_calls_follow_governance(server, tokens):
    with connect(server, tokens["ana"]) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        schemas = {d["db_schema_name"]: [t["table_name"] for t in d["db_schema_tables"]]
                   for c in objects for d in c["catalog_db_schemas"]}
        assert schemas["shop"] == ["orders"] and schemas["crm"] == ["customers"] and "system" in schemas
        assert "report" not in schemas  # granted to no one
        schema = conn.adbc_get_table_schema("orders", db_schema_filter="shop")
        assert schema.names == ["order_id", "customer_id", "order_date"]  # amount is denied to ana
        assert conn.adbc_get_info()["vendor_name"] == "Quanta"
    with connect(server, tokens["nobody"]) as conn:
        objects = conn.adbc_get_objects(depth="tables").read_all().to_pylist()
        assert {d["db_schema_name"] for c in objects for d in c["catalog_db_schemas"]} == {"system"}
        with pytest.raises(Exception) as info:
            conn.adbc_get_table_schema("orders", db_schema_filter="shop")
        assert "NOT_FOUND" in no_traceback(info.value)


# -- live governance, the command line -----------------------------------------------------------------------

def test_an_open_client_follows_a_governance_reload(tmp_path):
    from meshkit import write_yaml

    root = tmp_path / "mesh"
    platform = pgkit.governed_shop(root, governance=GOVERNANCE)
    token = platform.tokens.create("pia", 1)[0]
    sql = "select sum(amount) as total from shop.orders"
    with FlightSqlServer(platform) as srv, connect(srv, username="pia", password=token) as conn:
        with conn.cursor() as cur:
            cur.execute(sql)
            assert cur.fetchall()[0][0] is not None  # pia is in finance
        principals = [dict(p, roles=["analyst", "pii_reader"]) if p["name"] == "pia" else p
                      for p in GOVERNANCE["principals"]]
        write_yaml(root / "governance.yaml", {**GOVERNANCE, "principals": principals})
        assert platform.reload()
        with conn.cursor() as cur:  # the same session: the principal is looked up again
            with pytest.raises(Exception) as info:
                cur.execute(sql)
        assert "amount" in no_traceback(info.value) and "shop.orders" in str(info.value)


def test_quanta_flightserve_command(tmp_path):
    import os
    import re
    import signal
    import subprocess
    import sys

    root = tmp_path / "mesh"
    platform = pgkit.governed_shop(root, governance=GOVERNANCE)
    token = platform.tokens.create("ana", 1)[0]
    process = subprocess.Popen([sys.executable, "-m", "federation.cli", "flightserve", str(root), "--port", "0"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = process.stdout.readline()
        location = re.search(r"grpc://127\.0\.0\.1:\d+", line)
        assert location, line + process.stderr.read() if process.poll() is not None else line
        conn = fsql.connect(location.group(0), autocommit=True, db_kwargs={AUTH: f"Bearer {token}"})
        with conn, conn.cursor() as cur:
            cur.execute("select count(*) from crm.customers")
            assert cur.fetchall() == [(20,)]
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
    entries = [e for e in platform.audit.history().to_pylist() if e["interface"] == "flight"]
    assert entries and entries[-1]["principal"] == "ana"
