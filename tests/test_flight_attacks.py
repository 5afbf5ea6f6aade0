"""Red-team tests of the Arrow Flight SQL endpoint (issue 14): every byte a client sends is hostile.

Each test is an attack that once worked (or a hole that must stay shut), against a real ``FlightSqlServer``
on 127.0.0.1 with the raw ``pyarrow.flight`` client: stolen and replayed handles, revoked tokens, forged
credentials, hostile parameters and catalog arguments, clients that go away, error messages and logs that
must never carry a value, a parameter or a token. Each test fails if its hole reopens, and checks that the
server still serves others afterwards."""

from __future__ import annotations

import base64
import datetime
import logging
import time

import pgkit
import pyarrow as pa
import pyarrow.flight as flight
import pytest
from meshkit import mesh_yaml

from federation.server.flight import FlightSqlServer
from federation.server.flight import messages as m

GOVERNANCE = pgkit.shop_governance(principals=[{"name": "nobody"}])
LONG = "select a.order_id from shop.orders a, shop.orders b, shop.orders c, shop.orders d"  # 10^8 rows
SECRET = "S3CR3T(PARAM"  # an invalid regular expression: the engine's error quotes it


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return pgkit.governed_shop(tmp_path_factory.mktemp("flight-attacks"), governance=GOVERNANCE)


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "pia", "nobody"))


@pytest.fixture(scope="module")
def server(platform, tokens):
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as srv:
        yield srv


# -- helpers ---------------------------------------------------------------------------------------------------

def client_of(server, token=None, header=None):
    client = flight.connect(server.location)
    value = header if header is not None else f"Bearer {token}"
    return client, flight.FlightCallOptions(headers=[(b"authorization", value.encode())])


def query_info(client, options, sql):
    descriptor = flight.FlightDescriptor.for_command(m.pack(m.CommandStatementQuery(query=sql)))
    return client.get_flight_info(descriptor, options)


def run(client, options, sql) -> pa.Table:
    return client.do_get(query_info(client, options, sql).endpoints[0].ticket, options).read_all()


def prepare(client, options, sql) -> bytes:
    body = m.pack(m.ActionCreatePreparedStatementRequest(query=sql))
    result = list(client.do_action(flight.Action(m.CREATE_PREPARED_STATEMENT, body), options))
    name, message = m.unpack(result[0].body.to_pybytes())
    assert name == "ActionCreatePreparedStatementResult"
    return message.prepared_statement_handle


def prepared_descriptor(handle: bytes):
    return flight.FlightDescriptor.for_command(m.pack(m.CommandPreparedStatementQuery(
        prepared_statement_handle=handle)))


def bind(client, options, handle, batch: pa.RecordBatch) -> None:
    writer, metadata = client.do_put(prepared_descriptor(handle), batch.schema, options)
    writer.write_batch(batch)
    writer.done_writing()
    metadata.read()
    writer.close()


def execute(client, options, handle) -> pa.Table:
    info = client.get_flight_info(prepared_descriptor(handle), options)
    return client.do_get(info.endpoints[0].ticket, options).read_all()


def close(client, options, handle) -> None:
    body = m.pack(m.ActionClosePreparedStatementRequest(prepared_statement_handle=handle))
    list(client.do_action(flight.Action(m.CLOSE_PREPARED_STATEMENT, body), options))


def no_traceback(error: Exception) -> str:
    text = str(error)
    assert "Traceback" not in text and ".py\"" not in text, text
    return text


def audit(platform, user):
    return [e for e in platform.audit.history().to_pylist() if e["principal"] == user and e["interface"] == "flight"]


def wait_for_entry(platform, user, sql, seconds=30.0):
    """The audit entry of ``sql`` once its query has ended (a hang guard, not a timed assertion)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        entries = [e for e in audit(platform, user) if e["sql"] == sql]
        if entries:
            return entries[-1]
        time.sleep(0.1)
    raise AssertionError(f"no audit entry for {sql!r}")


def serves(server, tokens, user="pia"):
    client, options = client_of(server, tokens[user])
    return run(client, options, "select count(*) as n from shop.orders").to_pylist() == [{"n": 100}]


def own_mesh(tmp_path, **settings):
    """A platform of its own (settings changed) with a token for pia and nobody."""
    root = tmp_path / "mesh"
    platform = pgkit.governed_shop(root, governance=GOVERNANCE)
    if settings:
        mesh_yaml(root, settings=settings)
        assert platform.reload()
    return platform, pgkit.issue_tokens(platform, ("pia", "nobody"))


# -- catalog commands: the client's patterns ---------------------------------------------------------------------

def test_catalog_name_patterns_are_bounded(server, tokens):
    """A LIKE pattern of millions of characters cost ~2 s of CPU under the GIL (the whole server stalls) and
    ~250 MB kept in the matcher cache per distinct pattern: any principal, even one without a grant, could
    take the server down with a few GetTables calls. A pattern longer than any name is refused."""
    client, options = client_of(server, tokens["nobody"])
    huge = "%a_" * 40_000
    commands = [m.CommandGetTables(table_name_filter_pattern=huge), m.CommandGetTables(db_schema_filter_pattern=huge),
                m.CommandGetDbSchemas(db_schema_filter_pattern=huge)]
    for command in commands:
        with pytest.raises(pa.ArrowInvalid) as err:
            client.do_get(flight.Ticket(m.pack(command)), options).read_all()
        assert "pattern" in no_traceback(err.value) and "INVALID_ARGUMENT" in str(err.value)
    # an ordinary pattern (and a long one within the limit) is answered
    ordinary = client.do_get(flight.Ticket(m.pack(m.CommandGetTables(table_name_filter_pattern="%"))), options)
    assert {r["db_schema_name"] for r in ordinary.read_all().to_pylist()} == {"system"}  # nobody: no grant
    within = client.do_get(flight.Ticket(m.pack(m.CommandGetTables(table_name_filter_pattern="%" * 1000))), options)
    assert {r["db_schema_name"] for r in within.read_all().to_pylist()} == {"system"}
    assert serves(server, tokens)


# -- prepared statements: hostile parameters ---------------------------------------------------------------------

def test_parameter_values_never_reach_an_error_or_the_audit_log(server, platform, tokens):
    """Engine errors quoted a parameter (an invalid regular expression, the operands of an overflow) to the
    client and into the audit log; the audit log must record Flight queries without parameter values."""
    client, options = client_of(server, tokens["ana"])
    cases = [("select id from crm.customers where regexp_matches(region, ?)", pa.array([SECRET]), SECRET),
             ("select id + ? as n from crm.customers", pa.array([9_223_372_036_854_775_800]), "9223372036854775800"),
             ("select abs(cast(? as tinyint)) as n", pa.array([-128]), "-128")]
    for sql, value, shown in cases:
        handle = prepare(client, options, sql)
        bind(client, options, handle, pa.record_batch([value], names=["p"]))
        with pytest.raises(pa.ArrowInvalid) as err:  # a data error, INVALID_ARGUMENT
            execute(client, options, handle)
        assert shown not in no_traceback(err.value)
        entry = wait_for_entry(platform, "ana", sql)
        assert entry["status"] == "error" and entry["error"]
        assert all(shown not in str(v) for v in entry.values()), entry
    assert serves(server, tokens, "ana")


def test_a_parameter_out_of_pythons_range_is_invalid_argument(server, tokens):
    """A date32 of 2^31-1 days (and a timestamp past year 9999) failed converting to Python: INTERNAL
    "internal error" for a client's bad input, instead of INVALID_ARGUMENT naming the parameter."""
    client, options = client_of(server, tokens["pia"])
    handle = prepare(client, options, "select ? as v")
    for value in (pa.array([2**31 - 1], pa.date32()), pa.array([2**62], pa.timestamp("s"))):
        with pytest.raises(pa.ArrowInvalid) as err:
            bind(client, options, handle, pa.record_batch([value], names=["p"]))
        assert "parameter" in no_traceback(err.value) and "internal error" not in str(err.value)
    bind(client, options, handle, pa.record_batch([pa.array([datetime.date(2024, 2, 29)])], names=["p"]))
    assert execute(client, options, handle).to_pylist() == [{"v": datetime.date(2024, 2, 29)}]


def test_prepared_statements_of_one_principal_hold_bounded_memory(tmp_path):
    """Each prepared statement kept its SQL (up to max_sql_bytes) and its bound row (up to
    flight_max_parameter_bytes) for an hour: 1000 statements per principal, ~1.3 GB of server memory that
    any principal, even one without a grant, could pin. What one principal's statements hold is capped
    (SQL and bound parameters); beyond it: UNAVAILABLE, and closing a statement frees its share."""
    platform, tokens = own_mesh(tmp_path)
    with FlightSqlServer(platform) as srv:
        client, options = client_of(srv, tokens["nobody"])
        big = pa.record_batch([pa.array(["x" * 1_000_000])], names=["p"])  # within flight_max_parameter_bytes
        handles, refused = [], None
        for _ in range(200):  # 200 MB if nothing is capped
            try:
                handle = prepare(client, options, "select length(?) as n")
                handles.append(handle)
                bind(client, options, handle, big)
            except flight.FlightUnavailableError as e:
                refused = e
                break
        assert refused is not None, "200 statements with 1 MB bound each were all kept"
        assert "prepared statement" in no_traceback(refused) and len(handles) < 200
        for handle in handles[:5]:
            close(client, options, handle)
        handle = prepare(client, options, "select length(?) as n")  # room again
        bind(client, options, handle, big)
        assert execute(client, options, handle).to_pylist() == [{"n": 1_000_000}]
        other, other_options = client_of(srv, tokens["pia"])  # another principal is not affected
        assert run(other, other_options, "select count(*) as n from shop.orders").to_pylist() == [{"n": 100}]


def test_another_principals_prepared_statement_cannot_be_bound_or_closed(server, platform, tokens):
    """Rebinding someone else's statement would change what its owner's next execution returns."""
    owner, owner_options = client_of(server, tokens["ana"])
    sql = "select id, region from crm.customers where id = ?"
    handle = prepare(owner, owner_options, sql)
    bind(owner, owner_options, handle, pa.record_batch([pa.array([4])], names=["p"]))
    thief, thief_options = client_of(server, tokens["pia"])
    with pytest.raises(flight.FlightUnauthorizedError) as err:
        bind(thief, thief_options, handle, pa.record_batch([pa.array([1])], names=["p"]))
    assert "not issued to you" in no_traceback(err.value)
    with pytest.raises(flight.FlightUnauthorizedError):
        close(thief, thief_options, handle)
    with pytest.raises(pa.ArrowException) as err:  # GetSchema: see test_get_schema_refusals_carry_no_traceback
        thief.get_schema(prepared_descriptor(handle), thief_options)
    assert "not issued to you" in no_traceback(err.value)
    assert execute(owner, owner_options, handle).to_pylist() == [{"id": 4, "region": "US"}]  # still ana's binding


def test_get_schema_refusals_carry_no_traceback(server, tokens):
    """pyarrow's GetSchema handler (alone among the Flight handlers) does not turn a raised FlightError into
    its status: a refusal went out as UNKNOWN with the server's Python traceback (file paths, source lines)."""
    client, options = client_of(server, tokens["ana"])
    denied = flight.FlightDescriptor.for_command(m.pack(m.CommandStatementQuery(
        query="select order_id, amount from shop.orders")))
    with pytest.raises(pa.ArrowException) as err:
        client.get_schema(denied, options)
    text = no_traceback(err.value)
    assert "shop.orders" in text and "amount" in text and "File " not in text
    owner, owner_options = client_of(server, tokens["pia"])
    handle = prepare(owner, owner_options, "select order_id from shop.orders where order_id = ?")
    with pytest.raises(pa.ArrowException) as err:  # another principal's prepared statement
        client.get_schema(prepared_descriptor(handle), options)
    assert "not issued to you" in no_traceback(err.value) and "File " not in str(err.value)
    assert client.get_schema(flight.FlightDescriptor.for_command(m.pack(m.CommandStatementQuery(
        query="select order_id from shop.orders"))), options).schema.names == ["order_id"]


def test_a_prepared_statement_follows_a_governance_reload(tmp_path):
    """A statement prepared while a grant held must not keep it: each execution is governed anew."""
    from meshkit import write_yaml

    platform, tokens = own_mesh(tmp_path)
    with FlightSqlServer(platform) as srv:
        client, options = client_of(srv, tokens["pia"])
        handle = prepare(client, options, "select sum(amount) as total from shop.orders where order_id < ?")
        bind(client, options, handle, pa.record_batch([pa.array([10])], names=["p"]))
        assert execute(client, options, handle).to_pylist()[0]["total"] is not None  # pia is in finance
        principals = [dict(p, roles=["analyst", "pii_reader"]) if p["name"] == "pia" else p
                      for p in GOVERNANCE["principals"]]
        write_yaml(tmp_path / "mesh" / "governance.yaml", {**GOVERNANCE, "principals": principals})
        assert platform.reload()
        with pytest.raises(flight.FlightUnauthorizedError) as err:
            execute(client, options, handle)
        assert "amount" in no_traceback(err.value)


def test_cancel_flight_info_of_another_principal_is_refused(server, platform, tokens):
    owner, owner_options = client_of(server, tokens["pia"])
    sql = LONG + " where d.order_id >= 0"
    info = query_info(owner, owner_options, sql)
    thief, thief_options = client_of(server, tokens["ana"])
    body = m.CancelFlightInfoRequest(info=info.serialize()).SerializeToString()
    with pytest.raises(flight.FlightUnauthorizedError):
        list(thief.do_action(flight.Action(m.CANCEL_FLIGHT_INFO, body), thief_options))
    reader = owner.do_get(info.endpoints[0].ticket, owner_options)  # still running, still hers
    assert reader.read_chunk().data.num_rows > 0
    list(owner.do_action(flight.Action(m.CANCEL_FLIGHT_INFO, body), owner_options))
    with pytest.raises(flight.FlightCancelledError):  # its own cancel ends it
        while True:
            reader.read_chunk()
    assert wait_for_entry(platform, "pia", sql)["status"] == "cancelled"


# -- tickets, tokens, sessions -------------------------------------------------------------------------------

def test_a_revoked_token_cannot_fetch_its_tickets(server, platform):
    """GetFlightInfo starts the query; a token revoked before DoGet must not read its rows, through the
    token itself or through a session opened with it (both checked on every call)."""
    token, info = platform.tokens.create("pia", 1)
    client, options = client_of(server, token)
    session = flight.connect(server.location)
    header = session.authenticate_basic_token("pia", token)
    session_options = flight.FlightCallOptions(headers=[header])
    sql = "select order_id, amount from shop.orders where order_id < 5"
    ticket = query_info(client, options, sql).endpoints[0].ticket
    session_ticket = query_info(session, session_options, sql + " ").endpoints[0].ticket
    platform.tokens.revoke(info.token_id)
    with pytest.raises(flight.FlightUnauthenticatedError):
        client.do_get(ticket, options).read_all()
    with pytest.raises(flight.FlightUnauthenticatedError):
        session.do_get(session_ticket, session_options).read_all()


def test_authentication_refusals_do_not_tell_principals_apart(server, tokens):
    """Whether a principal exists, whether the token belongs to someone else, or is wrong: one message."""
    def basic(user, password):
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    headers = [basic("pia", tokens["ana"]),  # a real principal with another's real token
               basic("ghost", tokens["ana"]),  # no such principal
               basic("pia", "qt_000000000000_" + "x" * 43),  # a real principal, a forged token
               basic("ANA", tokens["ana"]),  # the token's principal, another spelling
               basic("ana\r\nx-quanta-purpose: finance", tokens["ana"]),  # header injection in a user name
               f"Bearer {tokens['ana']}x", "Bearer qt_" + "_" * 5000, "Negotiate abc"]
    messages = set()
    for header in headers:
        client, options = client_of(server, header=header)
        with pytest.raises(flight.FlightUnauthenticatedError) as err:
            run(client, options, "select 1 as x")
        text = no_traceback(err.value).split(". Detail")[0]
        assert "ghost" not in text and "pia" not in text and tokens["ana"] not in text
        messages.add(text)
    assert len(messages) == 1, messages


def test_a_client_gone_mid_stream_frees_its_slot(tmp_path):
    """With one running query allowed per principal, a client that goes away mid-stream must give its
    slot back: its next query runs instead of waiting for a result nobody reads."""
    platform, tokens = own_mesh(tmp_path, max_queries_per_principal=1, max_queued_queries_per_principal=0)
    with FlightSqlServer(platform) as srv:
        client, options = client_of(srv, tokens["pia"])
        reader = client.do_get(query_info(client, options, LONG).endpoints[0].ticket, options)
        assert reader.read_chunk().data.num_rows > 0
        other, other_options = client_of(srv, tokens["pia"])
        with pytest.raises(flight.FlightUnavailableError):  # the slot is taken while it streams
            run(other, other_options, "select 1 as x")
        client.close()
        del reader
        assert wait_for_entry(platform, "pia", LONG)["status"] == "cancelled"
        assert run(other, other_options, "select count(*) as n from shop.orders").to_pylist() == [{"n": 100}]


# -- logs --------------------------------------------------------------------------------------------------------

def test_the_server_log_holds_no_token_value_or_parameter(server, platform, tokens, caplog):
    """Attacks that end in errors (internal ones included) leave no token, session token, parameter or value
    of the mesh in the server's log."""
    caplog.set_level(logging.DEBUG)
    client = flight.connect(server.location)
    session_header = client.authenticate_basic_token("pia", tokens["pia"])
    options = flight.FlightCallOptions(headers=[session_header])
    handle = prepare(client, options, "select ? as v")
    for value in (pa.array([2**31 - 1], pa.date32()), pa.array([SECRET])):
        try:
            bind(client, options, handle, pa.record_batch([value], names=["p"]))
            execute(client, options, handle)
        except flight.FlightError:
            pass
        except pa.ArrowException:
            pass
    for sql in ("select cast(full_name as int) from crm.customers", "select regexp_matches('a', email) from crm.customers"):
        try:
            run(client, options, sql)
        except pa.ArrowException:
            pass
    bad, bad_options = client_of(server, tokens["ana"] + "x")
    with pytest.raises(flight.FlightUnauthenticatedError):
        run(bad, bad_options, "select 1 as x")
    text = caplog.text
    secrets_ = [tokens["pia"], tokens["ana"], session_header[1].decode().split()[-1], SECRET, "name1", "user1@"]
    assert not [s for s in secrets_ if s in text], text


def test_a_client_that_stops_reading_cannot_keep_the_server_from_stopping(tmp_path):
    """A client that opens a stream and stops reading (its connection kept open) blocked the server's write;
    gRPC's shutdown waits for every call, so `quanta flightserve` ignored SIGTERM for as long as that client
    pleased. Stopping waits a short grace for the open calls, then the server stops anyway."""
    import os
    import re
    import signal
    import subprocess
    import sys

    _, tokens = own_mesh(tmp_path)
    process = subprocess.Popen([sys.executable, "-m", "federation.cli", "flightserve", str(tmp_path / "mesh"),
                                "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        location = re.search(r"grpc://127\.0\.0\.1:\d+", process.stdout.readline())
        assert location, process.stderr.read() if process.poll() is not None else "no location"
        client = flight.connect(location.group(0))
        options = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {tokens['pia']}".encode())])
        sql = "select a.order_id, a.customer_id, a.order_date from shop.orders a, shop.orders b, shop.orders c"
        reader = client.do_get(query_info(client, options, sql).endpoints[0].ticket, options)
        assert reader.read_chunk().data.num_rows > 0  # then reads no more, its connection open
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=90)  # a hang guard: the grace is seconds
        except subprocess.TimeoutExpired:
            pytest.fail("the server did not stop while a client held a stream open without reading")
        client.close()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
