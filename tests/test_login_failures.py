"""Failed logins (``governance.logins``, ``system.login_failures``): every interface's refusals over real
clients (requests, psycopg, ADBC Flight SQL) are recorded through ``Platform.login_failed`` with the
interface, the reason category, the claimed user and the client's address; auditors see them, a consumer
sees none; no credential nor a part of one reaches the table, the state files or stderr; a flood is folded."""

from __future__ import annotations

import base64

import pgkit
import pytest
import requests

from federation import errors
from federation.connection import Connection
from federation.governance import logins
from test_oidc import ISSUER, IdP, issuers, mint, public_jwk, rsa_key

COLUMNS = "interface, reason, claimed_user, issuer, token_id, client_address, failures, folded"


@pytest.fixture(scope="module")
def keys():
    return {"k1": rsa_key()}


@pytest.fixture(scope="module")
def idp(keys):
    server = IdP()
    server.sets["/jwks"] = [public_jwk(keys["k1"], "k1")]
    server.sets["/flood"] = [public_jwk(keys["k1"], "k1")]
    yield server
    server.stop()


def governance(idp=None) -> dict:
    gov = pgkit.shop_governance(principals=[{"name": "aud", "roles": ["auditor"]}])
    gov["roles"] = gov["roles"] + [{"name": "auditor"}]
    return {**gov, "issuers": issuers(idp)} if idp is not None else gov


@pytest.fixture()
def platform(tmp_path, idp):
    return pgkit.governed_shop(tmp_path / "mesh", governance=governance(idp))


def failures(platform, who: str = "aud", where: str = "true") -> list[dict]:
    return Connection(platform, platform.principal(who)).sql(
        f"select {COLUMNS} from system.login_failures where {where} order by id").arrow().to_pylist()


def state_bytes(platform) -> bytes:
    """Every byte of the state folder's files (databases and their write-ahead logs)."""
    return b"".join(p.read_bytes() for p in sorted(platform.state_dir.rglob("*")) if p.is_file())


def assert_nowhere(secret: str, platform, rows, *texts: str) -> None:
    for part in {secret, *[p for p in secret.split(".") if len(p) > 8],
                 *([secret.split("_", 2)[-1]] if secret.startswith("qt_") else [])}:
        assert part not in repr(rows), "a credential reached system.login_failures"
        assert part.encode() not in state_bytes(platform), "a credential reached the state folder"
        for text in texts:
            assert part not in text


def test_identify_records_each_refusal_with_its_reason_never_the_credential(platform, keys, capfd):
    good = platform.tokens.create("ana", 1)[0]
    token_id = good[3:].partition("_")[0]
    wrong_secret = f"qt_{token_id}_{'x' * 40}"
    mistyped = "qt_" + good[3:].replace("_", "")  # no id separator: the "id" would be the secret
    expired = mint(keys, "ana", ttl=-120)
    forged = mint(keys, "ana")[:-6] + "AAAAAA"
    refused = [(None, "no_credentials"), ("qt_nosuchid_secretsecret", "unknown_token"),
               (wrong_secret, "wrong_token_secret"), (mistyped, "unknown_token"), ("hello", "malformed_credentials"),
               (expired, "expired"), (forged, "bad_signature"),
               (mint(keys, "ana", roles=["auditor"]), "reserved_claim"),
               (mint(keys, "ana", iss="https://evil.example/"), "unknown_issuer"),
               (mint(keys, "ana", aud="other"), "wrong_audience")]
    for credential, _ in refused:
        with pytest.raises(errors.AuthenticationError):
            platform.identify(credential, "http", "192.0.2.7")
    with pytest.raises(errors.AuthenticationError):  # a valid token of another principal than the user given
        platform.identify(good, "pgwire", "192.0.2.8", user="pia")
    rows = failures(platform)
    got = [(r["reason"], r["interface"], r["failures"]) for r in rows]
    expected = [(reason, "http", 2 if reason == "unknown_token" else 1)  # identical failures: one row
                for reason in dict.fromkeys(reason for _, reason in refused)]
    assert got == expected + [("user_mismatch", "pgwire", 1)]
    by_reason = {r["reason"]: r for r in rows}
    assert all(r["client_address"] == "192.0.2.7" and not r["folded"] for r in rows[:-1])
    assert by_reason["wrong_token_secret"]["token_id"] == token_id  # a known id, not secret
    assert by_reason["unknown_token"]["token_id"] is None  # an id the store does not know: never
    assert by_reason["expired"]["claimed_user"] == "ana" and by_reason["expired"]["issuer"] == ISSUER
    assert by_reason["unknown_issuer"]["issuer"] is None and by_reason["unknown_issuer"]["claimed_user"] == "id-ana"
    assert by_reason["user_mismatch"]["claimed_user"] == "pia" and by_reason["user_mismatch"]["token_id"] == token_id
    out, err = capfd.readouterr()
    for credential, _ in refused:
        if credential:
            assert_nowhere(credential, platform, rows, out, err)
    assert_nowhere(good, platform, rows, out, err)


def test_only_auditors_see_login_failures(platform):
    for _ in range(3):
        with pytest.raises(errors.AuthenticationError):
            platform.identify("qt_nosuchid_secretsecret", "http", "192.0.2.7", user="ana")
    audited = failures(platform)
    assert [(r["claimed_user"], r["failures"]) for r in audited] == [("ana", 3)]
    assert failures(platform, "ana") == [] and failures(platform, "pia") == []  # not even their own name's
    count = Connection(platform, platform.principal("ana")).sql(
        "select count(*) from system.login_failures").fetchone()[0]
    assert count == 0


def test_a_flood_is_folded_into_few_rows(platform, keys):
    platform.logins.flush()
    n = 3 * logins.MAX_KEYS
    for i in range(n):  # distinct claimed users: past MAX_KEYS, folded into one row without user or address
        with pytest.raises(errors.AuthenticationError):
            platform.identify(f"qt_x{i}_secret", "pgwire", f"192.0.2.{i % 250}", user=f"user{i}")
    rows = failures(platform)
    assert sum(r["failures"] for r in rows) == n
    assert len(rows) == logins.MAX_KEYS + 1
    folded = [r for r in rows if r["folded"]]
    assert len(folded) == 1 and folded[0]["claimed_user"] is None and folded[0]["client_address"] is None
    assert folded[0]["failures"] == n - logins.MAX_KEYS


def test_the_table_keeps_its_newest_rows(tmp_path):
    log = logins.LoginFailures(tmp_path / "state.db", max_keys=5, max_rows=7)
    for i in range(30):
        log.record("http", "unknown_token", f"u{i}")
        log.flush()
    rows = log.history().to_pylist()
    assert [r["claimed_user"] for r in rows] == [f"u{i}" for i in range(23, 30)]
    log.record("http", "expired", "x\n\x1b[31m" + "y" * 500)  # control characters and length are cut
    log.flush()
    name = log.history().to_pylist()[-1]["claimed_user"]
    assert name.startswith("x??[31m") and len(name) == logins.MAX_NAME + 1
    log.close()


# -- over real clients ------------------------------------------------------------------------------------


def test_http_401s_are_recorded(platform, keys, capfd):
    from federation.server.http import Server, create_app
    server = Server(create_app(platform), port=0).start()
    try:
        expired = mint(keys, "ana", ttl=-120)
        for credential in (expired, "qt_nosuchid_secretsecret"):
            r = requests.post(server.url + "/api/v1/query", json={"sql": "select 1"},
                              headers={"Authorization": f"Bearer {credential}"}, timeout=60)
            assert r.status_code == 401
        assert requests.post(server.url + "/api/v1/query", json={"sql": "select 1"}, timeout=60).status_code == 401
        tokens = pgkit.issue_tokens(platform, ("aud", "ana"))
        seen = {}
        for who in ("aud", "ana"):  # over the same interface: an auditor sees the failures, a consumer none
            r = requests.post(server.url + "/api/v1/query", headers={"Authorization": f"Bearer {tokens[who]}"},
                              json={"sql": "select reason, claimed_user from system.login_failures"}, timeout=60)
            assert r.status_code == 200, r.text
            seen[who] = sorted(tuple(row) for row in r.json()["rows"])
        assert seen["aud"] == [("expired", "ana"), ("no_credentials", None), ("unknown_token", None)]
        assert seen["ana"] == []
    finally:
        server.stop()
    rows = failures(platform, where="interface = 'http'")
    assert [(r["reason"], r["claimed_user"], r["client_address"]) for r in rows] == [
        ("expired", "ana", "127.0.0.1"), ("unknown_token", None, "127.0.0.1"), ("no_credentials", None, "127.0.0.1")]
    out, err = capfd.readouterr()
    assert_nowhere(expired, platform, rows, out, err)


def test_pgwire_refusals_are_recorded(platform, keys, tmp_path, capfd):
    psycopg = pytest.importorskip("psycopg")
    expired = mint(keys, "ana", ttl=-120)
    with pgkit.running_server(platform) as server:  # issuers declared, loopback: the password itself
        dsn = f"host=127.0.0.1 port={server.port} user=ana dbname={pgkit.DATABASE} sslmode=disable"
        for password in (expired, "qt_nosuchid_secretsecret"):
            with pytest.raises(psycopg.OperationalError) as info:
                psycopg.connect(dsn, password=password)
            assert "password authentication failed" in str(info.value)
    plain = pgkit.governed_shop(tmp_path / "plain", governance=governance())  # no issuers: SCRAM
    tokens = pgkit.issue_tokens(plain, ("ana",))
    with pgkit.running_server(plain) as server:
        dsn = f"host=127.0.0.1 port={server.port} user=pia dbname={pgkit.DATABASE} sslmode=disable"
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dsn, password=tokens["ana"])  # ana's token is not one of pia's
        assert "password authentication failed" in str(info.value)
        with psycopg.connect(dsn.replace("user=pia", "user=ana"), password=tokens["ana"]) as conn:
            assert conn.execute("select 1").fetchone() == (1,)  # still serving; a success is not recorded
    rows = failures(platform, where="interface = 'pgwire'")
    assert [(r["reason"], r["claimed_user"], r["client_address"]) for r in rows] == [
        ("expired", "ana", "127.0.0.1"), ("unknown_token", "ana", "127.0.0.1")]
    scram = failures(plain)
    assert [(r["interface"], r["reason"], r["claimed_user"], r["client_address"]) for r in scram] == [
        ("pgwire", "wrong_password", "pia", "127.0.0.1")]
    out, err = capfd.readouterr()
    assert_nowhere(expired, platform, rows, out, err)
    assert_nowhere(tokens["ana"], plain, scram, out, err)


def test_flight_refusals_are_recorded(platform, keys, capfd):
    pytest.importorskip("adbc_driver_flightsql")
    import adbc_driver_flightsql as adbc
    import adbc_driver_flightsql.dbapi as fsql
    import pyarrow.flight as flight
    from federation.server.flight import FlightSqlServer

    auth = adbc.DatabaseOptions.AUTHORIZATION_HEADER.value
    expired = mint(keys, "ana", ttl=-120)
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as server:
        with pytest.raises(Exception) as info:
            with fsql.connect(server.location, db_kwargs={auth: f"Bearer {expired}"}, autocommit=True) as conn:
                with conn.cursor() as cur:
                    cur.execute("select 1")
        assert "expired" in str(info.value) or "nauthenticated" in str(info.value)
        with pytest.raises(Exception):  # a valid JWT of ana, given for pia
            with fsql.connect(server.location, db_kwargs={"username": "pia", "password": mint(keys, "ana")},
                              autocommit=True) as conn:
                with conn.cursor() as cur:
                    cur.execute("select 1")
        client = flight.connect(server.location)
        basic = base64.b64encode(b"no-colon").decode()
        with pytest.raises(flight.FlightUnauthenticatedError):
            list(client.list_actions(flight.FlightCallOptions(headers=[(b"authorization", f"Basic {basic}".encode())])))
        client.close()
    rows = failures(platform, where="interface = 'flight'")
    reasons = [(r["reason"], r["claimed_user"]) for r in rows]
    assert ("expired", "ana") in reasons and ("user_mismatch", "pia") in reasons
    assert ("malformed_credentials", "no-colon") not in reasons  # basic without ':' names no user
    assert any(r == "malformed_credentials" for r, _ in reasons)
    assert {r["reason"] for r in rows} <= {"expired", "user_mismatch", "malformed_credentials"}
    out, err = capfd.readouterr()
    assert_nowhere(expired, platform, rows, out, err)


def test_failures_counted_before_an_exit_are_written(tmp_path):
    import subprocess
    import sys
    code = ("from federation.governance import logins\n"
            f"log = logins.LoginFailures(__import__('pathlib').Path({str(tmp_path / 'state.db')!r}))\n"
            "for _ in range(4):\n"
            "    log.record('pgwire', 'wrong_password', 'ana', client_address='127.0.0.1')\n")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    log = logins.LoginFailures(tmp_path / "state.db")
    rows = log.history().to_pylist()
    assert [(r["reason"], r["claimed_user"], r["failures"]) for r in rows] == [("wrong_password", "ana", 4)]
    log.close()
