"""Issue 16, red-teamed: the new surfaces attacked as a hostile consumer would, each leak found kept as a test.

EXPLAIN (federation/explain.py): a plan's shape follows DuckDB's statistics of every row of the relations read
(a filter the min/max cannot meet becomes EMPTY_RESULT). It must not follow rows the principal may not read:
other principals' rows of ``system.query_log`` (their activity), nor the rows of the datasets a derived
dataset reads and leaves out (definer's rights: the reader has the derived dataset's grant only).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from meshkit import prop, shop_mesh, write_yaml

from federation.platform import Platform

GOVERNANCE = {
    "roles": [{"name": "analyst"}, {"name": "shopper"}],
    "principals": [{"name": "ana", "roles": ["analyst"]}, {"name": "zed", "roles": ["analyst", "shopper"]}],
    "grants": [{"to": {"role": "analyst"}, "on": "crm.customers"}, {"to": {"role": "analyst"}, "on": "report"},
               {"to": {"role": "shopper"}, "on": "shop"}],
}
# report.cheap_orders: the orders of an amount under 10, the only orders ana may read (she has no grant on
# shop.orders): order ids up to 87 of 0..99
CHEAP = "select order_id, order_date from shop.orders where amount < 10"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = shop_mesh(Path(tmp_path_factory.mktemp("rt16")), governance=GOVERNANCE)
    report = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    report["schema"].append({"name": "cheap_orders", "customProperties": [{"property": "sql", "value": CHEAP}],
                             "properties": [prop("order_id", "integer", "bigint"), prop("order_date", "date", "date")]})
    write_yaml(root / "contracts" / "report.odcs.yaml", report)
    return Platform.open(root)


def rows(platform, sql, user="ana", params=None):
    return platform.query(sql, platform.principal(user), params).fetchall()


def plan(platform, sql, user="ana") -> str:
    return "\n".join(r[0] for r in rows(platform, sql, user))


PREFIXES = ("EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN (FORMAT JSON)")


def same_plans(platform, probes: list[str]) -> None:
    """The probes differ only in a constant across a statistic of rows the principal cannot read: their plans
    (but for the time) must not differ."""
    import re

    for prefix in PREFIXES:
        texts = {re.sub(r"Execution Time: [\d.]+ ms", "", plan(platform, f"{prefix} {p}")) for p in probes}
        assert len(texts) == 1, texts
        assert "EMPTY_RESULT" not in next(iter(texts)) and "withheld" in next(iter(texts)), texts


# -- EXPLAIN ----------------------------------------------------------------------------------------------


def test_explain_does_not_probe_other_principals_query_log(platform):
    """zed's queries returned 100 rows; ana sees only her own rows of system.query_log. The statistics of the
    engine's query_log table are of everyone's rows: ``rows > 99`` vs ``rows > 100`` told ana (EMPTY_RESULT)
    the largest result anyone had read."""
    for _ in range(2):
        assert len(rows(platform, "select * from shop.orders", "zed")) == 100
    assert all(r[0] == "ana" for r in rows(platform, "select principal from system.query_log"))
    assert not rows(platform, "select 1 from system.query_log where rows > 50")  # ana's rows are all small
    same_plans(platform, ["select 1 from system.query_log where rows > 99",
                          "select 1 from system.query_log where rows > 100",
                          "select 1 from system.query_log where rows > 1000000"])


def test_explain_does_not_probe_rows_a_derived_dataset_leaves_out(platform):
    """ana reads report.cheap_orders (order ids up to 87), never shop.orders (ids up to 99): the Parquet
    statistics of shop.orders must not tell her that an order id 98 < id <= 99 exists."""
    assert rows(platform, "select max(order_id) from report.cheap_orders") == [(87,)]
    assert not rows(platform, "select 1 from report.cheap_orders where order_id > 98")
    same_plans(platform, ["select 1 from report.cheap_orders where order_id > 98",
                          "select 1 from report.cheap_orders where order_id > 99",
                          "select 1 from report.cheap_orders where order_id > 100000"])


def test_explain_probes_are_withheld_on_every_interface(platform):
    """The same probes over HTTP, the PostgreSQL wire (simple and extended protocol) and Flight SQL."""
    import pgkit
    import psycopg
    import requests

    from federation.server.http import Server, create_app

    token = platform.tokens.create("ana", 1)[0]
    probes = ["select 1 from report.cheap_orders where order_id > 98", "select 1 from report.cheap_orders where order_id > 99",
              "select 1 from system.query_log where rows > 99", "select 1 from system.query_log where rows > 100"]
    server = Server(create_app(platform), port=0).start()
    try:
        for probe in probes:
            r = requests.post(server.url + "/api/v1/query", json={"sql": f"EXPLAIN {probe}"},
                              headers={"Authorization": f"Bearer {token}"}, timeout=60)
            assert r.status_code == 200 and "(operators withheld)" in r.text and "EMPTY_RESULT" not in r.text, r.text
    finally:
        server.stop()
    with pgkit.running_server(platform) as pg, psycopg.connect(pgkit.dsn(pg.port, {"ana": token}),
                                                                autocommit=True) as conn:
        for probe in probes:
            for sql, params in ((f"EXPLAIN {probe}", None), (f"EXPLAIN {probe} and %s = 1", [1])):
                text = "\n".join(r[0] for r in conn.execute(sql, params).fetchall())
                assert "(operators withheld)" in text and "EMPTY_RESULT" not in text, text
    adbc_dbapi = pytest.importorskip("adbc_driver_flightsql.dbapi")
    import adbc_driver_flightsql

    from federation.server.flight.server import FlightSqlServer

    options = {adbc_driver_flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: f"Bearer {token}"}
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as flight, adbc_dbapi.connect(
            f"grpc://127.0.0.1:{flight.port}", db_kwargs=options, autocommit=True) as conn:
        cur = conn.cursor()
        for probe in probes:
            cur.execute(f"EXPLAIN {probe}")
            text = "\n".join(cur.fetch_arrow_table().column(0).to_pylist())
            assert "(operators withheld)" in text and "EMPTY_RESULT" not in text, text
        cur.close()


# -- quarantine -------------------------------------------------------------------------------------------


@pytest.fixture
def lab(tmp_path):
    from meshkit import write_yaml as _write
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV, MAILS

    from federation.onboarding import onboard

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", GOV)
    p = Platform(root)
    report = onboard(p, "lab.items", items(8, mail=MAILS), p.principal("dev"))
    assert report.status == "published" and report.quarantined == 3  # batch lab.items.v1 is held
    return p


def test_quarantine_control_plane_tells_no_one_else_which_batches_exist(lab):
    """ana (a reader) and out (no grant) run no control plane: the held batch lab.items.v1 and the batch
    lab.items.v7 that never was must be refused alike, else the errors enumerate the onboardings that kept
    rows out (and for out, of a dataset it may not even read)."""
    from federation import errors
    from federation.onboarding import quarantine as Q

    for user in ("ana", "out"):
        for fn in (Q.show, Q.release, Q.drop):
            for ident in ("lab.items.v1", "lab.items.v7"):
                with pytest.raises(errors.AccessDenied):
                    fn(lab, ident, lab.principal(user))
    with pytest.raises(errors.UnknownObject):  # the owner is told
        Q.show(lab, "lab.items.v7", lab.principal("olivia"))
    with pytest.raises(errors.UnknownObject):  # a malformed id says so to anyone: it tells nothing
        Q.show(lab, "lab.items", lab.principal("ana"))


def test_quarantine_relation_escapes_are_governed(lab):
    """Spellings of the quarantine relation: case, the mesh as a catalog, a look-alike '@', a trailing space.
    Each is either the governed relation (ana: e-mails masked, kinds b and c filtered, score denied) or unknown."""
    from federation import errors

    ana = lab.principal("ana")
    for name in ('LAB."ITEMS@QUARANTINE"', '"lab"."items@Quarantine"', 'testmesh.lab."items@quarantine"'):
        got = lab.query(f"select * from {name}", ana).arrow().to_pylist()
        assert [r["id"] for r in got] == [1] and got[0]["email"] != "bad" and "score" not in got[0]
        with pytest.raises(errors.AccessDenied):
            lab.query(f"select * from {name}", lab.principal("out"))
    for name in ('lab."items\uff20quarantine"', 'lab."items@quarantine "', 'lab."items@quarantine@v1"'):
        with pytest.raises(errors.UnknownObject):
            lab.query(f"select * from {name}", ana)
    # joined, in a subquery, aggregated: still ana's one row
    assert lab.query('select count(*) from lab."items@quarantine" a join lab."items@quarantine" b using (id)',
                     ana).fetchall() == [(1,)]
    assert lab.query('select count(*) from lab.items where id in (select id from lab."items@quarantine")',
                     ana).fetchall() == [(0,)]
    assert lab.query("select count(*) from system.quarantine where \"row\"::varchar like '%zz%'",
                     ana).fetchall() == [(0,)]


def test_quarantine_and_versions_of_a_dataset_one_may_not_read_are_refused_alike(lab):
    """out holds no grant on lab.items: naming its quarantine or a version must be refused the same way whether
    rows are held, which versions are kept (the error listed them) or not."""
    from federation import errors
    from federation.onboarding import quarantine as Q

    def refusal(sql):
        with pytest.raises(errors.AccessDenied) as info:
            lab.query(sql, lab.principal("out"))
        return str(info.value)

    shapes = ['select * from lab."items@{}"', 'select email\n  from lab."items@{}" as q',
              'select 1 from lab.items x, lab."items@{}"']
    held = [refusal(s.format("quarantine")) for s in shapes]
    assert [refusal(s.format("v1")) for s in shapes] == [refusal(s.format("v9")) for s in shapes]
    Q.drop(lab, "lab.items.v1", lab.principal("dev"))
    assert [refusal(s.format("quarantine")) for s in shapes] == held
    # a reader reads it empty (an error would tell one whose row filter hides held rows that they exist)
    assert lab.query('select * from lab."items@quarantine"', lab.principal("ana")).fetchall() == []


# -- OIDC / JWT -------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def idp_keys():
    from test_oidc import rsa_key

    return {"k1": rsa_key()}


@pytest.fixture(scope="module")
def oidc(tmp_path_factory, idp_keys):
    """The shop mesh (pgkit's governance) trusting one issuer whose JWKS a real loopback server publishes."""
    import pgkit
    from test_oidc import IdP, issuers, public_jwk

    server = IdP()
    server.sets["/jwks"] = [public_jwk(idp_keys["k1"], "k1")]
    governance = {**pgkit.SHOP_GOVERNANCE, "issuers": [{**issuers(server)[0], "leeway_seconds": 0}]}
    p = pgkit.governed_shop(tmp_path_factory.mktemp("rt16oidc"), governance=governance)
    yield p, server
    server.stop()


def test_jwt_attributes_with_sql_in_them_stay_literals(oidc, idp_keys):
    """An identity provider may let users edit their profile: a claimed attribute that the residency row filter
    binds (principal.regions) is a literal, whatever quotes, backslashes or comments it holds."""
    from test_oidc import mint

    p, _ = oidc
    sql = "select count(*) from crm.customers where region = 'EU'"
    for regions in (["x' OR true OR 'a"], ["EU') OR true --"], ["x\\' OR true OR \\'a", "US"], ["\u2019 or 1=1 --"]):
        zoe = p.authenticate(mint(idp_keys, "zoe", roles=["analyst"], regions=regions))
        assert zoe.attributes == {"regions": regions}
        assert p.query(sql, zoe).fetchall() == [(0,)]  # no EU row: the filter's literal list holds no 'EU'
    eve = p.authenticate(mint(idp_keys, "eve", roles=["analyst"], regions=["EU"]))
    assert p.query(sql, eve).fetchall() == [(10,)]  # the same claim path does grant when it says EU


def test_jwt_names_like_a_file_principal_are_not_that_principal(oidc, idp_keys):
    """Case, spaces, zero-width and Cyrillic look-alikes of 'pia' (pii_reader, finance in the file) get only
    what their own claims give: none of pia's roles or attributes, none of her query-log rows."""
    from test_oidc import mint

    p, _ = oidc
    pia = p.principal("pia")
    p.query("select 1 as pia_was_here", pia).fetchall()
    for name in ("PIA", "Pia", " pia", "pia ", "pia\u200b", "\u0440ia", "pia\u00a0"):
        other = p.authenticate(mint(idp_keys, name, roles=["analyst"]))
        assert other.name == name and other.roles == ("analyst",) and other.attributes == {}
        assert "pii_reader" not in other.all_roles
        log = p.query("select principal, sql from system.query_log", other).fetchall()
        assert all(r[0] == name for r in log) and not any("pia_was_here" in r[1] for r in log)


def test_jwt_kid_injection_and_huge_tokens(oidc, idp_keys):
    """A kid is only a key of the issuer's JWKS: a path, a URL or a long string is an unknown key, nothing is
    fetched but the JWKS; a token past the size limit is refused as no token, not parsed."""
    import jwt as pyjwt
    from test_oidc import mint

    from federation import errors

    p, server = oidc
    for kid in ("../../../../etc/passwd", f"{server.url}/evil", "k1\u0000", "k" * 4000, "*", "k1 "):
        token = pyjwt.encode({"iss": "https://idp.test/realms/acme", "aud": "quanta", "preferred_username": "pia",
                              "exp": 2_000_000_000}, idp_keys["k1"], algorithm="RS256", headers={"kid": kid})
        with pytest.raises(errors.AuthenticationError, match="key id"):
            p.identify(token)
    assert set(server.hits) <= {"/jwks"}
    huge = mint(idp_keys, "zoe", roles=["analyst"], padding="x" * 20000)
    with pytest.raises(errors.AuthenticationError) as info:
        p.identify(huge)
    assert "x" * 50 not in str(info.value)
    for bad in ({"preferred_username": ["pia"]}, {"preferred_username": {"name": "pia"}},
                {"preferred_username": 7}, {"preferred_username": "   "}, {"realm_access": {"roles": {"a": 1}}},
                {"preferred_username": "pia\nadmin"}):
        with pytest.raises(errors.AuthenticationError):
            p.identify(mint(idp_keys, "zoe", **bad))


def test_a_remembered_jwt_stops_at_its_expiry(oidc, idp_keys):
    """The verification cache remembers a good token by its digest: it must not outlive the token's exp (the
    issuer allows no leeway here). Waits for a 2-second token to expire: nothing is timed but the token."""
    import time

    from test_oidc import mint

    from federation import errors

    p, _ = oidc
    token = mint(idp_keys, "zoe", roles=["analyst"], ttl=2)
    exp = int(time.time()) + 2
    for _ in range(3):
        assert p.identify(token).name == "zoe"  # verified once, then remembered
    while time.time() <= exp + 0.5:
        time.sleep(0.1)
    with pytest.raises(errors.AuthenticationError, match="expired"):
        p.identify(token)


def test_hostile_credentials_over_http_and_pgwire_are_refused_cleanly(oidc, idp_keys):
    """A huge JWT, a JWT of a reserved role, a token of garbage: 401 over HTTP, 28P01 over the wire (cleartext
    password on loopback), never a 500 or a dropped server; the server serves a good JWT afterwards."""
    import pgkit
    import psycopg
    import requests
    from test_oidc import mint

    from federation.server.http import Server, create_app

    p, _ = oidc
    hostile = [mint(idp_keys, "zoe", padding="x" * 20000), mint(idp_keys, "zoe", roles=["auditor"]),
               "a.b.c", "e30.e30.", "x" * 70000, mint(idp_keys, "quanta-system")]
    good = mint(idp_keys, "ana")
    server = Server(create_app(p), port=0).start()
    try:
        for credential in hostile:
            r = requests.post(server.url + "/api/v1/query", json={"sql": "select 1"},
                              headers={"Authorization": f"Bearer {credential}"}, timeout=60)
            assert r.status_code in (401, 431), r.text[:200]
            assert credential.split(".")[-1][:40] not in r.text or len(credential.split(".")[-1]) < 8
        r = requests.post(server.url + "/api/v1/query", json={"sql": "select 1 as one"},
                          headers={"Authorization": f"Bearer {good}"}, timeout=60)
        assert r.status_code == 200 and r.json()["rows"] == [[1]]
    finally:
        server.stop()
    with pgkit.running_server(p) as pg:
        for credential in hostile[:4] + [hostile[5]]:
            with pytest.raises(psycopg.OperationalError) as info:
                psycopg.connect(pgkit.dsn(pg.port, {"ana": credential}), connect_timeout=30).close()
            assert "password authentication failed" in str(info.value)
        with psycopg.connect(pgkit.dsn(pg.port, {"ana": good}), autocommit=True) as conn:
            assert conn.execute("select 1").fetchall() == [(1,)]


def test_quarantine_follows_grants_of_access_requests(tmp_path):
    """zoe has no grant: an approved access request lets her read lab.items and its quarantine alike (the
    dataset's masks on both), and its revocation takes both away, in system.quarantine too."""
    from meshkit import write_yaml as _write
    from onboardkit import GOVERNANCE as LAB
    from onboardkit import items, lab_mesh
    from test_quarantine import MAILS

    from federation import errors
    from federation.onboarding import onboard

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", {**LAB, "principals": LAB["principals"] + [{"name": "zoe", "roles": []}]})
    p = Platform(root)
    assert onboard(p, "lab.items", items(8, mail=MAILS), p.principal("dev")).quarantined == 3

    def zoe_reads():
        zoe = p.principal("zoe")
        out = {}
        for name, sql in (("dataset", "select email from lab.items"),
                          ("quarantine", 'select email from lab."items@quarantine"'),
                          ("system", "select \"row\" from system.quarantine")):
            try:
                out[name] = [str(r[0]) for r in p.query(sql, zoe).fetchall()]
            except errors.AccessDenied:
                out[name] = None
        return out

    assert zoe_reads() == {"dataset": None, "quarantine": None, "system": []}
    req = p.request_access(p.principal("zoe"), "lab.items", "checking the held rows", days=3)
    p.decide_access(p.principal("olivia"), req.request_id, True)
    granted = zoe_reads()
    assert len(granted["dataset"]) == 5 and len(granted["quarantine"]) == 3 and len(granted["system"]) == 3
    assert not {"bad", "x y", "zz"} & set(granted["quarantine"])  # masked for her as in the dataset
    assert not any(m in r for r in granted["system"] for m in ("\"bad\"", "x y", "\"zz\""))
    p.revoke_access(p.principal("olivia"), req.request_id, "done")
    assert zoe_reads() == {"dataset": None, "quarantine": None, "system": []}


def test_an_unquoted_at_after_a_table_is_a_clear_syntax_error(lab):
    """``lab.items@quarantine`` parses as the table aliased by a parameter: a syntax error naming the quoted
    form, not an internal error of the verifier."""
    from federation import errors

    for user in ("ana", "out"):
        with pytest.raises(errors.SyntaxError, match='"<dataset>@quarantine"'):
            lab.query("select id from lab.items@quarantine", lab.principal(user))


# -- webhooks ---------------------------------------------------------------------------------------------


def test_one_pending_request_per_principal_and_dataset(tmp_path, monkeypatch):
    """zoe (no grant) files the same request again and again: only the first may page the approvers."""
    from meshkit import write_yaml as _write
    from onboardkit import GOVERNANCE as LAB
    from onboardkit import lab_mesh

    from federation import errors
    from federation.webhooks import outbox_of, pump

    monkeypatch.setenv("QUANTA_RT16_HOOK_SECRET", "rt16-secret")
    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", {**LAB, "principals": LAB["principals"] + [{"name": "zoe", "roles": []}]})
    mesh = yaml.safe_load((root / "mesh.yaml").read_text())
    mesh["webhooks"] = [{"name": "approvers", "url": "http://127.0.0.1:9/hook", "events": ["access_requested"],
                         "secret_env": "QUANTA_RT16_HOOK_SECRET"}]
    write_yaml(root / "mesh.yaml", mesh)
    p = Platform(root)
    pump(p)  # the outbox starts at the end of the event tables
    zoe = p.principal("zoe")
    p.request_access(zoe, "lab.items", None, days=3)
    for _ in range(20):
        with pytest.raises(errors.Conflict):
            p.request_access(zoe, "lab.items", None, days=3)
    pump(p)
    assert len(outbox_of(p).deliveries()) == 1
