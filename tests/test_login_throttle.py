"""The failed-login throttle (``governance.throttle``): over real clients (requests, psycopg, ADBC Flight SQL),
a client that fails ``max_failed_logins`` times is refused at once, even with a valid credential, before it is
checked (HTTP 429 with Retry-After, SQLSTATE 53300, Flight UNAUTHENTICATED), recorded as ``throttled``; another
client's valid credential still works; the refusal lifts after ``failed_login_window_seconds``."""

from __future__ import annotations

import time

import pgkit
import pytest
import requests
import yaml
from requests.adapters import HTTPAdapter

from federation import errors
from federation.connection import Connection
from federation.platform import Platform

LIMIT, WINDOW = 5, 2.0


def throttled_shop(root, limit: int = LIMIT, window: float = WINDOW) -> Platform:
    """The governed shop with an auditor, its mesh.yaml setting the throttle."""
    gov = pgkit.shop_governance(principals=[{"name": "aud", "roles": ["auditor"]}])
    gov["roles"] = gov["roles"] + [{"name": "auditor"}]
    path = pgkit.shop_mesh(root, governance=gov)
    mesh = yaml.safe_load((path / "mesh.yaml").read_text())
    mesh["settings"] = {"max_failed_logins": limit, "failed_login_window_seconds": window}
    (path / "mesh.yaml").write_text(yaml.safe_dump(mesh))
    return Platform(path)


def failures(platform, interface: str) -> list[tuple]:
    rows = Connection(platform, platform.principal("aud")).sql(
        "select reason, claimed_user, client_address, failures from system.login_failures "
        f"where interface = '{interface}' order by id").arrow().to_pylist()
    return [(r["reason"], r["claimed_user"], r["client_address"], r["failures"]) for r in rows]


def wait_out_the_window() -> None:
    time.sleep(WINDOW + 0.5)


class FromAddress(HTTPAdapter):
    """Requests sent from another loopback address (127.0.0.2): another client."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = ("127.0.0.2", 0)
        super().init_poolmanager(*args, **kwargs)


def test_identify_refuses_a_key_over_the_limit_and_lifts_after_the_window(tmp_path):
    platform = throttled_shop(tmp_path / "mesh")
    good = pgkit.issue_tokens(platform, ("ana",))["ana"]
    for _ in range(LIMIT):
        with pytest.raises(errors.AuthenticationError) as info:
            platform.identify("qt_nosuchid_secretsecret", "http", "10.0.0.9")
        assert not isinstance(info.value, errors.LoginThrottled)
    with pytest.raises(errors.LoginThrottled) as info:  # a valid credential too: refused unchecked
        platform.identify(good, "http", "10.0.0.9")
    assert info.value.sqlstate == "53300" and "too many failed logins" in info.value.message
    assert 1 <= info.value.retry_after <= WINDOW + 1
    assert platform.identify(good, "http", "10.0.0.8").name == "ana"  # another client
    wait_out_the_window()
    assert platform.identify(good, "http", "10.0.0.9").name == "ana"


def test_a_client_cycling_through_user_names_is_refused_too(tmp_path):
    from federation.governance.throttle import ADDRESS_FACTOR
    platform = throttled_shop(tmp_path / "mesh")
    good = pgkit.issue_tokens(platform, ("ana",))["ana"]
    for i in range(LIMIT * ADDRESS_FACTOR):  # never LIMIT failures for one user
        with pytest.raises(errors.AuthenticationError) as info:
            platform.identify("qt_nosuchid_secretsecret", "pgwire", "10.0.0.7", f"user{i}")
        assert not isinstance(info.value, errors.LoginThrottled)
    with pytest.raises(errors.LoginThrottled):
        platform.identify(good, "pgwire", "10.0.0.7", "ana")
    assert platform.identify(good, "pgwire", "10.0.0.6", "ana").name == "ana"  # another address
    assert platform.identify(good, "python", None, "ana").name == "ana"  # in-process callers: never throttled


def test_zero_turns_the_throttle_off(tmp_path):
    platform = throttled_shop(tmp_path / "mesh", limit=0)
    good = pgkit.issue_tokens(platform, ("ana",))["ana"]
    for _ in range(3 * LIMIT):
        with pytest.raises(errors.AuthenticationError) as info:
            platform.identify("qt_nosuchid_secretsecret", "http", "10.0.0.9")
        assert not isinstance(info.value, errors.LoginThrottled)
    assert platform.identify(good, "http", "10.0.0.9").name == "ana"


def test_http_flood_gets_429_with_retry_after(tmp_path):
    from federation.server.http import Server, create_app
    platform = throttled_shop(tmp_path / "mesh")
    tokens = pgkit.issue_tokens(platform, ("ana", "aud"))
    server = Server(create_app(platform), port=0).start()
    query = server.url + "/api/v1/query"

    def ask(token, session=requests):
        return session.post(query, json={"sql": "select 1 as x"}, headers={"Authorization": f"Bearer {token}"},
                            timeout=60)
    try:
        for _ in range(LIMIT):
            assert ask("qt_nosuchid_secretsecret").status_code == 401
        for token in ("qt_nosuchid_secretsecret", tokens["ana"]):  # refused unchecked, a valid token too
            r = ask(token)
            assert r.status_code == 429, r.text
            assert r.json()["error"]["code"] == "too_many_failed_logins"
            assert "too many failed logins" in r.json()["error"]["message"]
            assert 1 <= int(r.headers["Retry-After"]) <= WINDOW + 1
        other = requests.Session()
        other.mount("http://", FromAddress())
        r = ask(tokens["ana"], other)  # another client (127.0.0.2): served
        assert r.status_code == 200, r.text
        assert r.json()["rows"] == [[1]]
        wait_out_the_window()
        r = ask(tokens["ana"])
        assert r.status_code == 200, r.text
    finally:
        server.stop()
    rows = failures(platform, "http")
    assert rows[0] == ("unknown_token", None, "127.0.0.1", LIMIT)
    assert [r[:3] for r in rows[1:]] == [("throttled", None, "127.0.0.1")] * (len(rows) - 1)
    assert sum(r[3] for r in rows[1:]) == 2  # each refused attempt, folded; none verified


def test_pgwire_flood_is_refused_with_53300(tmp_path):
    psycopg = pytest.importorskip("psycopg")
    platform = throttled_shop(tmp_path / "mesh")  # no issuers: SCRAM
    tokens = pgkit.issue_tokens(platform, ("ana", "pia"))
    with pgkit.running_server(platform) as server:
        for _ in range(LIMIT):  # a SCRAM exchange each
            with pytest.raises(psycopg.OperationalError) as info:
                psycopg.connect(pgkit.dsn(server.port, tokens, "pia", password=tokens["ana"]))
            assert "password authentication failed" in str(info.value)
        with pytest.raises(psycopg.OperationalError) as info:  # pia's own token: refused before the exchange
            psycopg.connect(pgkit.dsn(server.port, tokens, "pia"))
        assert "too many failed logins" in str(info.value)
        assert info.value.sqlstate in (None, "53300")
        with psycopg.connect(pgkit.dsn(server.port, tokens, "ana")) as conn:  # another user: served
            assert conn.execute("select 1").fetchone() == (1,)
        wait_out_the_window()
        with psycopg.connect(pgkit.dsn(server.port, tokens, "pia")) as conn:
            assert conn.execute("select 1").fetchone() == (1,)
    assert failures(platform, "pgwire") == [("wrong_password", "pia", "127.0.0.1", LIMIT),
                                            ("throttled", "pia", "127.0.0.1", 1)]


def test_flight_basic_flood_is_refused_by_claimed_user(tmp_path):
    pytest.importorskip("adbc_driver_flightsql")
    import adbc_driver_flightsql.dbapi as fsql

    from federation.server.flight import FlightSqlServer

    platform = throttled_shop(tmp_path / "mesh")
    tokens = pgkit.issue_tokens(platform, ("ana", "pia"))

    def select_one(user: str, password: str):
        with fsql.connect(server.location, db_kwargs={"username": user, "password": password},
                          autocommit=True) as conn, conn.cursor() as cur:
            cur.execute("select 1 as x")
            return cur.fetchall()

    with FlightSqlServer(platform, host="127.0.0.1", port=0) as server:
        for _ in range(LIMIT):
            with pytest.raises(Exception) as info:
                select_one("pia", tokens["ana"])
            assert "too many failed logins" not in str(info.value)
        with pytest.raises(Exception) as info:  # pia's own token: refused unchecked
            select_one("pia", tokens["pia"])
        assert "too many failed logins" in str(info.value) and "nauthenticated" in str(info.value).lower()
        assert select_one("ana", tokens["ana"]) == [(1,)]  # another user: served
        wait_out_the_window()
        assert select_one("pia", tokens["pia"]) == [(1,)]
    rows = failures(platform, "flight")
    assert rows[0][:3] == ("user_mismatch", "pia", None) and rows[0][3] == LIMIT
    assert ("throttled", "pia", None) in [r[:3] for r in rows]
