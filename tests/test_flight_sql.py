"""The Arrow Flight SQL endpoint with real clients: the ADBC Flight SQL driver (DB-API, pandas, Polars) and the
raw ``pyarrow.flight`` client sending Flight SQL commands, against the governed shop mesh (tests/pgkit.py).
Every client must see what the Python interface shows the same principal (masks, row filters, denials);
errors carry their gRPC status and never a traceback; the server keeps serving after bad input."""

from __future__ import annotations

import base64
import threading
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
