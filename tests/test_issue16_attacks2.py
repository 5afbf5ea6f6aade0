"""Issue 16, red-teamed again (RT2): the interactions of the new surfaces, as a hostile user and as a hostile
(semi-trusted) domain team writing contracts and products. Each leak found is a test; a leak whose fix is a
design decision is an ``xfail(strict=True)`` naming it. tests/test_issue16_attacks.py holds the first round.
"""

from __future__ import annotations

import socket
import struct
import threading
from pathlib import Path

import pytest
import yaml
from meshkit import contract, product, prop, shop_mesh, write_yaml

from federation import errors
from federation.platform import Platform

# -- OIDC identities and the approval workflow ------------------------------------------------------------


@pytest.fixture(scope="module")
def idp_keys():
    from test_oidc import rsa_key

    return {"k1": rsa_key()}


@pytest.fixture
def stewarded(tmp_path, idp_keys):
    """The shop mesh trusting one issuer; crm.customers' contract names IdP groups as its approvers: stewards
    (first level) and governors (second level), groups no principal of governance.yaml holds (the identity
    provider manages them, as a company does)."""
    import pgkit
    from test_oidc import IdP, issuers, public_jwk

    server = IdP()
    server.sets["/jwks"] = [public_jwk(idp_keys["k1"], "k1")]
    governance = {**pgkit.SHOP_GOVERNANCE, "issuers": [issuers(server)[0]]}
    root = shop_mesh(tmp_path / "mesh", governance=governance)
    crm = yaml.safe_load((root / "contracts" / "crm.odcs.yaml").read_text())
    crm["roles"] = [{"role": "crm_reader", "access": "read", "firstLevelApprovers": "stewards",
                     "secondLevelApprovers": "governors"}]
    write_yaml(root / "contracts" / "crm.odcs.yaml", crm)
    yield Platform(root)
    server.stop()


def test_a_claimed_name_equal_to_an_approver_group_does_not_approve(stewarded, idp_keys):
    """The legitimate path first: lucas (group stewards) then fiona (group governors) approve mallory's request.
    Then the attack: an IdP user whose *name* is 'stewards' and another named 'governors' (a self-chosen
    username, as many identity providers allow) approve mallory's second request, both levels, without being in
    either group. Approvers name users and groups alike: a token named like a group of the governance is
    refused (oidc.check_claims), but a group that only the identity provider knows is not one of those."""
    from test_oidc import mint

    p = stewarded
    who = {n: p.authenticate(mint(idp_keys, n, groups=g)) for n, g in
           (("mallory", []), ("lucas", ["stewards"]), ("fiona", ["governors"]), ("stewards", []), ("governors", []))}
    assert p.approval_levels("crm", "customers") == [("stewards",), ("governors",)]
    req = p.request_access(who["mallory"], "crm.customers", "churn study", days=3)
    p.decide_access(who["lucas"], req.request_id, True)
    assert p.decide_access(who["fiona"], req.request_id, True).status == "approved"  # the real approvers can
    p.revoke_access(who["fiona"], req.request_id, "done")

    req = p.request_access(who["mallory"], "crm.customers", "again", days=3)

    def listed(name):
        return [r[0] for r in p.query("select request_id from system.access_requests", who[name]).fetchall()]

    # the group's members see the request they may decide (their group comes from the claims); the look-alike
    # names see none of mallory's requests (other principals' activity: who asks for what, and why)
    assert listed("lucas") == listed("fiona") == [1, req.request_id]
    assert listed("stewards") == listed("governors") == []
    with pytest.raises(errors.AccessDenied):
        p.decide_access(who["stewards"], req.request_id, True)
    p.decide_access(who["lucas"], req.request_id, True)
    with pytest.raises(errors.AccessDenied):
        p.decide_access(who["governors"], req.request_id, True)
    assert p.access_requests.get(req.request_id).effective_status == "pending"
    with pytest.raises(errors.AccessDenied):
        p.query("select count(*) from crm.customers", who["mallory"]).fetchall()


# -- a hostile domain team's contract: the servers block ---------------------------------------------------


class PasswordCatcher:
    """A loopback TCP server speaking just enough of the PostgreSQL protocol to ask for a cleartext password,
    and remember each one it is sent (then it refuses the login)."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.passwords: list[str] = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @staticmethod
    def _read(conn, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = conn.recv(n - len(data))
            if not chunk:
                raise EOFError
            data += chunk
        return data

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                try:
                    conn.settimeout(30)
                    while True:
                        n, code = struct.unpack("!ii", self._read(conn, 8))
                        if code in (80877103, 80877104):  # SSLRequest, GSSENCRequest: not here
                            conn.sendall(b"N")
                            continue
                        self._read(conn, n - 8)  # the startup message
                        break
                    conn.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
                    if self._read(conn, 1) == b"p":
                        n = struct.unpack("!i", self._read(conn, 4))[0]
                        self.passwords.append(self._read(conn, n - 4).rstrip(b"\0").decode())
                    error = b"SFATAL\0C28P01\0Mno\0\0"
                    conn.sendall(b"E" + struct.pack("!i", len(error) + 4) + error)
                except (OSError, EOFError, struct.error):
                    pass

    def stop(self) -> None:
        self.sock.close()


def _evil_quantum(root: Path, dataset: dict, server: dict) -> None:
    """A quantum 'evil' whose product and contract a hostile domain team wrote (eve owns it)."""
    write_yaml(root / "products" / "evil.odps.yaml", product("evil", domain="shop", owner="eve"))
    write_yaml(root / "contracts" / "evil.odcs.yaml", contract("evil-contract", [dataset], servers=[server]))


def _b2b_and_evil(root: Path, b2b_port: int, evil_port: int, secrets: dict | None) -> None:
    """The b2b domain's quantum reads its PostgreSQL server 'b2b-db' (at ``b2b_port``); eve's quantum evil
    names its own server 'b2b-db' too, at a host she runs (``evil_port``)."""
    if secrets is not None:
        mesh = yaml.safe_load((root / "mesh.yaml").read_text())
        mesh["secrets"] = "secrets.yaml"
        write_yaml(root / "mesh.yaml", mesh)
        write_yaml(root / "secrets.yaml", {"servers": secrets})
        (root / "secrets.yaml").chmod(0o600)
    write_yaml(root / "products" / "b2b.odps.yaml", product("b2b", domain="shop"))
    write_yaml(root / "contracts" / "b2b.odcs.yaml", contract("b2b-contract", [
        {"name": "accounts", "description": "x", "properties": [prop("a", "integer", "bigint")]}], servers=[
        {"server": "b2b-db", "type": "postgres", "host": "127.0.0.1", "port": b2b_port, "database": "postgres",
         "schema": "b2b"}]))
    _evil_quantum(root, {"name": "loot", "description": "x", "properties": [prop("a", "integer", "bigint")]},
                  {"server": "b2b-db", "type": "postgres", "host": "127.0.0.1", "port": evil_port,
                   "database": "postgres", "schema": "b2b"})


@pytest.fixture
def catchers():
    pytest.importorskip("duckdb_extension_postgres_scanner")
    b2b, evil = PasswordCatcher(), PasswordCatcher()
    yield b2b, evil
    b2b.stop()
    evil.stop()


PW = "s3cret-Reader-pw"


def test_a_contract_cannot_borrow_another_servers_credentials(tmp_path, monkeypatch, catchers):
    """The mesh's secrets file holds the password of the b2b domain's PostgreSQL server 'b2b-db', unscoped (the
    form of earlier meshes). A hostile domain team writes a contract whose server is also named 'b2b-db', at a
    host it runs: it must not receive b2b's password. Two quanta declare the name, so the unscoped credentials
    are nobody's: neither server is sent them, and each quantum has a problem saying how to scope them."""
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"}})
    p = Platform(root)
    with pytest.raises(errors.Error):
        p.query("select * from evil.loot", p.principal("ana")).fetchall()
    assert evil.passwords == [] and b2b.passwords == []
    for quantum in ("b2b", "evil"):
        [problem] = [x for x in p.mesh.problems if x.quantum == quantum]
        assert problem.file == f"contracts/{quantum}.odcs.yaml" and problem.path == "servers[0]", problem
        assert "not scoped to a quantum" in problem.message and f"'{quantum}/b2b-db'" in problem.message
        assert f"QUANTA_{quantum.upper()}__B2B_DB_PASSWORD" in problem.message
    assert PW not in repr(p.mesh.problems)
    # the same, the password in the environment unscoped (QUANTA_B2B_DB_PASSWORD)
    (root / "secrets.yaml").unlink()
    monkeypatch.setenv("QUANTA_B2B_DB_PASSWORD", PW)
    p = Platform(root)
    assert {x.quantum for x in p.mesh.problems if "not scoped to a quantum" in x.message} == {"b2b", "evil"}
    assert evil.passwords == [] and b2b.passwords == []


@pytest.mark.parametrize("form", ["file", "env"])
def test_scoped_credentials_go_to_their_quantum_only(tmp_path, monkeypatch, catchers, form):
    """Scoped to b2b (secrets file key 'b2b/b2b-db', or QUANTA_B2B__B2B_DB_PASSWORD): b2b's server receives the
    password, eve's server of the same name nothing (and evil is not refused for ambiguity: it has no
    credentials, scoped or not). An unscoped entry next to the scoped one stays nobody's."""
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    if form == "file":
        secrets = {"b2b/b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"}}
    else:
        secrets = None
        monkeypatch.setenv("QUANTA_B2B__B2B_DB_USER", "quanta_reader")
        monkeypatch.setenv("QUANTA_B2B__B2B_DB_PASSWORD", PW)
    _b2b_and_evil(root, b2b.port, evil.port, secrets)
    p = Platform(root)
    assert b2b.passwords == [PW] and evil.passwords == []
    assert not [x for x in p.mesh.problems if "scoped" in x.message], p.mesh.problems
    assert {x.quantum for x in p.mesh.problems} == {"b2b", "evil"}  # the catchers refuse every login
    assert PW not in repr(p.mesh.problems)


def test_credentials_bound_to_an_address_are_sent_there_only(tmp_path, monkeypatch, catchers):
    """An unscoped entry with host and port: when only evil declares the server name (b2b's quantum not in the
    mesh yet), the unscoped entry would be evil's; its address binding keeps it from eve's host."""
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW",
                                                         "host": "127.0.0.1", "port": b2b.port}})
    (root / "contracts" / "b2b.odcs.yaml").unlink()
    (root / "products" / "b2b.odps.yaml").unlink()
    p = Platform(root)
    [problem] = [x for x in p.mesh.problems if x.quantum == "evil"]
    assert "bound to another address" in problem.message and problem.path == "servers[0]"
    assert evil.passwords == [] and b2b.passwords == []
    # b2b's own contract, at the bound address, receives them
    _b2b_and_evil(root, b2b.port, evil.port, None)
    (root / "contracts" / "evil.odcs.yaml").unlink()
    (root / "products" / "evil.odps.yaml").unlink()
    Platform(root)
    assert b2b.passwords == [PW] and evil.passwords == []


def test_a_contract_cannot_serve_another_domains_files_without_their_policies(tmp_path):
    """crm.customers' e-mails are pii (masked for everyone but pii readers). eve owns the quantum evil and
    writes its contract: a local server at crm's own file, the columns unclassified. As the owner, eve reads
    her dataset: crm's customers' e-mails in clear."""
    import pgkit

    root = shop_mesh(tmp_path / "mesh", governance=pgkit.shop_governance(principals=[{"name": "eve", "roles": []}]))
    crm = yaml.safe_load((root / "contracts" / "crm.odcs.yaml").read_text())
    crm_path = next(s["path"] for s in crm["servers"] if s.get("type") == "local")
    _evil_quantum(root, {"name": "loot", "physicalName": "customers", "description": "x",
                         "properties": [prop("id", "integer", "bigint"), prop("email"), prop("region")]},
                  {"server": "s", "type": "local", "format": "csv", "path": crm_path})
    p = Platform(root)
    clear = {r[0] for r in p.query("select email from crm.customers", p.principal("pia")).fetchall()}
    assert clear and all("@" in e and not e.startswith("*") for e in clear)
    try:
        got = {r[0] for r in p.query("select email from evil.loot", p.principal("eve")).fetchall()}
    except errors.Error:
        got = set()
    assert not got & clear
    # refused for that reason (the quantum evil is left out), crm served as before
    [problem] = [x for x in p.mesh.problems if x.quantum == "evil"]
    assert problem.file == "contracts/evil.odcs.yaml" and problem.path == "servers[0]", problem
    assert "the folder of quantum 'crm'" in problem.message and "evil" not in p.mesh.quanta


# -- quarantine ---------------------------------------------------------------------------------------------


def test_quarantined_rows_keep_the_classification_they_were_held_under(tmp_path):
    """lab.items v1 holds 3 rows in quarantine under contract 1.0.0, where email is pii (masked for ana). The
    owner then publishes 2.0.0, where email is no longer pii: the pinned version v1 stays masked (the stricter
    of its contract and today's), and so must the rows held under 1.0.0, in the quarantine relation and in
    system.quarantine."""
    from onboardkit import items, lab_mesh
    from test_pinned_contracts import v2_contract
    from test_quarantine import MAILS

    from federation.onboarding import onboard
    from federation.onboarding import quarantine as Q

    root = lab_mesh(tmp_path / "lab")
    p = Platform(root)
    assert onboard(p, "lab.items", items(8, mail=MAILS), p.principal("dev")).quarantined == 3
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    v2_contract(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    batch = items(8).drop_columns(["code"]).rename_columns(["id", "name", "rating", "mail", "kind"])
    assert onboard(p, "lab.items", batch, p.principal("dev")).version == 2

    def read(sql, user="ana"):
        return [r[0] for r in p.query(sql, p.principal(user)).fetchall()]

    assert read("select email from lab.items where id = 1") == ["user1@example.com"]  # 2.0.0: not pii
    assert set(read('select email from lab."items@v1"')) == {"****"}  # 1.0.0: pii
    assert read('select email from lab."items@quarantine" order by id', "pia") == ["bad", "x y", "zz"]
    assert read('select email from lab."items@quarantine"') == ["****"] * 3
    rows = read('select "row" from system.quarantine')
    assert len(rows) == 3 and not any(m in r for r in rows for m in ('"bad"', '"x y"', '"zz"')), rows
    # 2.0.0 renamed score to rating (the data keeps its name): the held rows' scores are their ratings, and a
    # release re-checks and publishes them under today's names (not an engine error, not NULL ratings)
    assert read('select rating from lab."items@quarantine" order by id', "pia") == [1.0, 3.0, 8.0]
    data = yaml.safe_load(path.read_text())
    email = next(c for c in data["schema"][0]["properties"] if c["name"] == "email")
    email["quality"][0]["arguments"] = {"pattern": "^[^ ]+$"}  # a fixed rule: only 'x y' (row 3) still fails
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    report, summary = Q.release(p, "lab.items.v1", p.principal("dev"))
    assert summary["rows"] == 1 and summary["released_into"] == report.version
    assert read("select count(*) from lab.items where rating is null", "pia") == [0]


def test_an_empty_quarantine_tells_a_filtered_reader_nothing(tmp_path):
    """ana's row filter (kinds) hides the rows of kind b. Whether a held batch of kind-b rows exists must not
    show: the quarantine relation reads the same (no row, the same columns) whether a hidden row is held or
    nothing is (an error 'has no rows in quarantine' told her, and so did a column missing from one of them)."""
    from meshkit import write_yaml as _write
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV

    from federation.onboarding import onboard
    from federation.onboarding import quarantine as Q

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", GOV)
    p = Platform(root)
    probes = ['select * from lab."items@quarantine"', 'select _quanta_reason, _quanta_row from lab."items@quarantine"',
              'select count(*) from lab."items@quarantine"', "select count(*) from system.quarantine"]

    def seen(user="ana"):
        out = []
        for sql in probes:
            try:
                result = p.query(sql, p.principal(user))
                out.append((result.columns, result.fetchall()))
            except errors.Error as e:
                out.append(type(e).__name__)
        return out

    never = seen()  # nothing onboarded yet
    assert never[2][1] == [(0,)], never
    # row 2 (kind b) fails the e-mail rule: one held row, hidden from ana
    report = onboard(p, "lab.items", items(5, mail=["a@b.c", "bad", "c@d.e", "f@g.h", "i@j.k"]), p.principal("dev"))
    assert report.quarantined == 1
    assert p.query('select kind from lab."items@quarantine"', p.principal("pia")).fetchall() == [("b",)]
    held = seen()
    Q.drop(p, "lab.items.v1", p.principal("dev"))
    assert held == never == seen()
    assert seen("out") == ["AccessDenied"] * 3 + [(["count_star()"], [(0,)])]


# -- quality figures of columns a reader may not see ------------------------------------------------------


def test_quality_figures_of_hidden_columns_are_not_shown(tmp_path):
    """ana may not see score (denied) and sees e-mails masked. The contract's rules measure them: a rule the
    schema implies (score.maximum, from logicalTypeOptions; an ODCS v3.2 enum implies one alike), a SQL rule over score ('select
    max(score)': its measured value is the largest score) and one over the e-mails. In system.quality_results
    she sees those rules and their status, never their figures; pia, who sees both in clear, sees the implied
    rules' figures, and the SQL rules' only the dataset's control plane does (a SQL rule may read any dataset)."""
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV

    from federation.onboarding import onboard

    root = lab_mesh(tmp_path / "lab")
    write_yaml(root / "governance.yaml", {**GOV, "policies": [x for x in GOV["policies"] if x["name"] != "kind-scope"]})
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["schema"][0]["quality"] += [
        {"type": "sql", "name": "max_score", "query": "select max(score) from {object}", "mustBeLessThan": 1000,
         "severity": "warning"},
        {"type": "sql", "name": "shortest_mail", "query": "select min(length(email)) from {object}",
         "mustBeLessThan": 1000, "severity": "warning"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    onboard(p, "lab.items", items(8, score=[1.0, 2, 3, 4, 5, 6, 7, 77.25]), p.principal("dev"))
    with pytest.raises(errors.AccessDenied):
        p.query("select max(score) from lab.items", p.principal("ana"))

    def figures(user):
        sql = ("select rule, status, measured, failing_rows from system.quality_results where rule in "
               "('max_score', 'shortest_mail', 'score.maximum', 'id.required', 'rowCount') order by rule")
        return {r[0]: r[1:] for r in p.query(sql, p.principal(user)).fetchall()}

    assert figures("pia") == {"id.required": ("pass", 0.0, 0), "max_score": ("pass", None, None),
                              "rowCount": ("pass", 8.0, None), "score.maximum": ("pass", 0.0, 0),
                              "shortest_mail": ("pass", None, None)}
    assert figures("dev")["max_score"] == ("pass", 77.25, None)  # a data engineer: lab's control plane
    assert figures("ana") == {"id.required": ("pass", 0.0, 0), "max_score": ("pass", None, None),
                              "rowCount": ("pass", 8.0, None), "score.maximum": ("pass", None, None),
                              "shortest_mail": ("pass", None, None)}


def test_slo_figures_of_a_hidden_element_column_are_not_shown(tmp_path):
    """The latency SLA of lab.items is measured on seen_at, denied to ana: its measured value is the newest
    seen_at, to the microsecond, and its message says how old it is. ana sees the SLA's status, not those."""
    import datetime as dt

    import pyarrow as pa
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV

    from federation.onboarding import control, onboard

    root = lab_mesh(tmp_path / "lab")
    deny = {"name": "seen-hidden", "kind": "deny", "on": {"column": "seen_at", "dataset": "lab.items"},
            "unless": {"roles": ["pii_reader"]}}
    write_yaml(root / "governance.yaml", {**GOV, "policies": [x for x in GOV["policies"] if x["name"] != "kind-scope"]
                                          + [deny]})
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["schema"][0]["properties"].append(prop("seen_at", "timestamp", "timestamp"))
    data["slaProperties"] = [{"property": "frequency", "value": 1, "unit": "d"},
                             {"property": "latency", "value": 2, "unit": "d", "element": "items.seen_at"}]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    newest = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(hours=1, microseconds=4321)
    onboard(p, "lab.items", items(3, seen_at=pa.array([newest - dt.timedelta(days=1), newest, newest],
                                                       pa.timestamp("us"))), p.principal("dev"))
    control.evaluate_slos(p, [p.mesh.dataset("lab", "items")])

    def slos(user, table):
        sql = f"select property, measured, message from system.{table} order by property"
        return {r[0]: r[1:] for r in p.query(sql, p.principal(user)).fetchall()}

    for table in ("slo_status", "slo_history"):
        seen = slos("pia", table)["latency"]
        assert seen[0].startswith(newest.isoformat()) and "newest seen_at" in seen[1], seen
        assert slos("ana", table)["latency"] == (None, None)
        assert slos("ana", table)["frequency"] == slos("pia", table)["frequency"]  # measured on versions


def test_rule_figures_quoted_in_events_and_versions_are_not_shown(tmp_path):
    """A batch refused by a SQL rule over score (denied to ana) records 'rule max_score failed: measured
    77.25' in the onboarding_failed event and the failed version's message: ana, a reader of lab.items, sees
    the event and the version (kind, status), not those texts; pia sees them."""
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV

    from federation.onboarding import onboard
    from federation.onboarding.pipeline import OnboardingRejected

    root = lab_mesh(tmp_path / "lab")
    write_yaml(root / "governance.yaml", {**GOV, "policies": [x for x in GOV["policies"] if x["name"] != "kind-scope"]})
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    data["schema"][0]["quality"].append({"type": "sql", "name": "max_score", "query": "select max(score) from {object}",
                                         "mustBeLessThan": 50, "severity": "error"})
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    onboard(p, "lab.items", items(5), p.principal("dev"))
    with pytest.raises(OnboardingRejected):
        onboard(p, "lab.items", items(5, score=[1.0, 2, 3, 4, 77.25]), p.principal("dev"))

    def texts(user):
        events = p.query("select kind, message, details from system.events where kind = 'onboarding_failed'",
                         p.principal(user)).fetchall()
        versions = p.query("select status, message from system.versions where version = 2",
                           p.principal(user)).fetchall()
        return events, versions

    events, versions = texts("pia")
    assert "77.25" in str(events) and "77.25" in str(versions)
    assert texts("ana") == ([("onboarding_failed", None, None)], [("failed", None)])


def test_the_versions_listing_shows_what_system_versions_shows(tmp_path):
    """GET /api/v1/datasets/lab/items/versions (and quanta versions) read the control store as it is: the row
    and quarantined counts a row filter makes NULL in system.versions ('5 rows, 3 quarantined' of a dataset
    ana sees a third of), the message, and the warehouse's file paths, to any reader."""
    import requests
    from meshkit import write_yaml as _write
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV, MAILS

    from federation.onboarding import onboard
    from federation.server.http import Server, create_app

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", GOV)
    p = Platform(root)
    assert onboard(p, "lab.items", items(8, mail=MAILS), p.principal("dev")).quarantined == 3
    tokens = {u: p.tokens.create(u, 1)[0] for u in ("ana", "dev")}
    server = Server(create_app(p), port=0).start()
    try:
        def listed(user):
            r = requests.get(f"{server.url}/api/v1/datasets/lab/items/versions",
                             headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)
            assert r.status_code == 200, r.text
            return r.text, r.json()["versions"]

        text, (v1,) = listed("ana")
        assert (v1["version"], v1["status"], v1["rows"], v1["quarantined"], v1["message"]) == (
            1, "published", None, None, None)
        assert str(root) not in text and "warehouse" not in text
        _, (v1,) = listed("dev")  # a data engineer, unfiltered: the figures
        assert (v1["rows"], v1["quarantined"]) == (5, 3)
    finally:
        server.stop()


def test_quality_samples_and_history_count_only_what_system_quality_results_shows(tmp_path):
    """GET /api/v1/datasets/lab/items/quality/samples (and quanta quality history) read the control store's
    results as they are: the failing rows counted on every row, and the rows checked per run, for ana whose
    row filter hides two thirds of lab.items (system.quality_results shows her NULL there)."""
    import requests
    from meshkit import write_yaml as _write
    from onboardkit import items, lab_mesh
    from test_quarantine import GOV

    from federation.onboarding import control, onboard
    from federation.quality import history
    from federation.server.http import Server, create_app

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", GOV)
    p = Platform(root)
    names = [None, "n/a", "item 3", "item 4", "", "item 6"]  # the name rule (a warning) fails 3 rows
    onboard(p, "lab.items", items(6, name=names), p.principal("dev"))
    tokens = {u: p.tokens.create(u, 1)[0] for u in ("ana", "dev")}
    server = Server(create_app(p), port=0).start()
    try:
        def sampled(user):
            r = requests.get(f"{server.url}/api/v1/datasets/lab/items/quality/samples",
                             headers={"Authorization": f"Bearer {tokens[user]}"}, timeout=60)
            assert r.status_code == 200, r.text
            return {s["rule"]: s["failing_rows"] for s in r.json()["samples"]}

        assert sampled("dev") == {"name.missingValues": 3}
        assert sampled("ana") == {"name.missingValues": None}  # listed, not counted
    finally:
        server.stop()
    ds = p.mesh.dataset("lab", "items")
    assert [r["rows"] for r in history.runs(control.results_as(p, ds, p.principal("dev")))] == [6.0]
    assert [r["rows"] for r in history.runs(control.results_as(p, ds, p.principal("ana")))] == [None]


def test_a_grant_from_an_access_request_is_shown_as_the_request_is(tmp_path):
    """zoe's approved request for lab.items becomes a grant whose reason quotes her purpose. system.access_requests
    shows the request to zoe, the dataset's approvers and owners, auditors and data engineers only; system.grants
    showed the grant (who, what, until when, and why) to everyone."""
    from meshkit import write_yaml as _write
    from onboardkit import GOVERNANCE as LAB
    from onboardkit import lab_mesh

    root = lab_mesh(tmp_path / "lab")
    _write(root / "governance.yaml", {**LAB, "principals": LAB["principals"] + [{"name": "zoe", "roles": []},
                                                                               {"name": "max", "roles": []}]})
    p = Platform(root)
    req = p.request_access(p.principal("zoe"), "lab.items", "project falcon", days=3)
    p.decide_access(p.principal("olivia"), req.request_id, True)

    def seen(user, table, where):
        return p.query(f"select count(*) from system.{table} where {where}", p.principal(user)).fetchall()[0][0]

    for user, sees in (("zoe", 1), ("olivia", 1), ("dev", 1), ("ana", 0), ("max", 0)):
        assert seen(user, "access_requests", "principal = 'zoe'") == sees, user
        assert seen(user, "grants", "grantee = 'zoe' or reason like '%falcon%'") == sees, user
    assert seen("max", "grants", "source = 'governance'") == 2  # the governance file's grants stay open
