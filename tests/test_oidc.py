"""Identities from an identity provider: JWTs of the issuers governance.yaml declares, verified against a JWKS
served by a real HTTP server on 127.0.0.1 (keys generated here), over the platform's one authentication
(``Platform.identify``) and every interface: HTTP (requests), the PostgreSQL wire (psycopg) and Flight SQL
(ADBC). A JWT principal is governed exactly like the same principal with a Quanta token (masks, filters)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pgkit
import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from federation import errors
from federation.platform import Platform

ISSUER = "https://idp.test/realms/acme"
FLOOD_ISSUER = "https://idp.test/realms/flood"  # the default refresh interval: unknown kids are rate-limited
DOWN_ISSUER = "https://idp.test/realms/down"  # its JWKS address answers nothing
MOVED_ISSUER = "https://idp.test/realms/moved"  # its JWKS address redirects to plain http elsewhere
AUDIENCE = "quanta"
CUSTOMERS = "select id, full_name, email, region from crm.customers order by id"


# -- the identity provider: keys and a JWKS on loopback ------------------------------------------------------

def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def public_jwk(key, kid: str) -> dict:
    algorithm = jwt.algorithms.RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else jwt.algorithms.ECAlgorithm
    jwk = json.loads(algorithm.to_jwk(key.public_key()))
    return {**jwk, "kid": kid, "use": "sig"}


class IdP:
    """A JWKS per path served by ThreadingHTTPServer in a thread; ``hits`` counts the fetches of each path."""

    def __init__(self, host: str = "127.0.0.1"):
        self.sets: dict[str, list[dict]] = {}
        self.docs: dict[str, object] = {}  # path -> an OpenID configuration (a dict) or a raw body (bytes)
        self.moved_to = "http://192.0.2.1/jwks"  # where /moved redirects
        self.hits: dict[str, int] = {}
        idp = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                idp.hits[self.path] = idp.hits.get(self.path, 0) + 1
                if self.path in idp.docs:
                    doc = idp.docs[self.path]
                    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if self.path == "/moved":
                    self.send_response(302)
                    self.send_header("Location", idp.moved_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                keys = idp.sets.get(self.path)
                body = json.dumps({"keys": keys}).encode() if keys is not None else b"{}"
                self.send_response(200 if keys is not None else 404)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://{host}:{self.httpd.server_address[1]}"

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture(scope="module")
def keys():
    return {"k1": rsa_key(), "k2": rsa_key(), "ec": ec.generate_private_key(ec.SECP256R1())}


@pytest.fixture(scope="module")
def idp(keys):
    server = IdP()
    server.sets["/jwks"] = [public_jwk(keys["k1"], "k1"), public_jwk(keys["ec"], "ec")]
    server.sets["/flood"] = [public_jwk(keys["k1"], "k1")]
    yield server
    server.stop()


def issuers(idp) -> list[dict]:
    return [
        {"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": f"{idp.url}/jwks", "principal_claim": "preferred_username",
         "roles_claim": "realm_access.roles", "groups_claim": "groups", "attribute_claims": {"regions": "regions"},
         "leeway_seconds": 5, "jwks_refresh_seconds": 0},
        {"issuer": FLOOD_ISSUER, "audience": [AUDIENCE, "other"], "jwks_url": f"{idp.url}/flood",
         "principal_prefix": "partner:", "roles_claim": "realm_access.roles", "groups_claim": "groups"},
        {"issuer": DOWN_ISSUER, "audience": AUDIENCE, "jwks_url": "http://127.0.0.1:9/jwks"},
        {"issuer": MOVED_ISSUER, "audience": AUDIENCE, "jwks_url": f"{idp.url}/moved"},
    ]


@pytest.fixture(scope="module")
def platform(tmp_path_factory, idp):
    governance = {**pgkit.shop_governance(principals=[{"name": "gus", "groups": ["finance-team"]}]),
                  "issuers": issuers(idp)}
    return pgkit.governed_shop(tmp_path_factory.mktemp("oidc"), governance=governance)


@pytest.fixture(scope="module")
def tokens(platform):
    return pgkit.issue_tokens(platform, ("ana", "pia"))


def mint(keys, name="zoe", *, kid="k1", alg="RS256", key=None, iss=ISSUER, aud=AUDIENCE, ttl=300, nbf=None,
         roles=(), groups=(), **claims) -> str:
    now = int(time.time())
    payload = {"iss": iss, "aud": aud, "sub": f"id-{name}", "preferred_username": name, "iat": now, "exp": now + ttl,
               "realm_access": {"roles": list(roles)}, "groups": list(groups), **claims}
    if nbf is not None:
        payload["nbf"] = now + nbf
    headers = {"kid": kid} if kid else {}
    return jwt.encode(payload, key or keys[kid if kid in keys else "k1"], algorithm=alg, headers=headers)


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refused(platform, token: str, *words: str) -> str:
    with pytest.raises(errors.AuthenticationError) as info:
        platform.identify(token)
    message = info.value.message
    for w in words:
        assert w in message, message
    for part in token.split("."):  # the token is never echoed, not even a part of it
        assert len(part) < 8 or part not in message
    return message


# -- verification ---------------------------------------------------------------------------------------------

def test_a_valid_token_names_a_principal_with_its_claims(platform, keys):
    token = mint(keys, "zoe", roles=["analyst", "offline_access"], groups=["sales"], regions=["EU"])
    identity = platform.identify(token)
    assert identity.name == "zoe" and identity.token_id is None and identity.expires_at > time.time()
    p = platform.authenticate(token)
    assert p.name == "zoe" and p.known
    assert p.roles == ("analyst",)  # offline_access is no role of this governance: ignored
    assert p.groups == ("sales",) and p.attribute("regions") == ["EU"]


def test_an_ec_key_verifies_es256(platform, keys):
    assert platform.authenticate(mint(keys, "zoe", kid="ec", alg="ES256")).name == "zoe"


def test_file_principal_and_claims_merge_with_the_file_attributes_winning(platform, keys):
    p = platform.authenticate(mint(keys, "ana", roles=["pii_reader"], groups=["sales"], regions=["EU"]))
    assert p.name == "ana" and set(p.roles) == {"analyst", "pii_reader"} and p.groups == ("sales",)
    assert p.attribute("regions") == ["US", "CA"]  # governance.yaml's, not the claim's
    assert platform.authenticate(mint(keys, "ana")).roles == ("analyst",)


def test_reserved_roles_in_claims_are_refused(platform, keys):
    for role in ("system", "data_engineer", "auditor"):
        refused(platform, mint(keys, "zoe", roles=["analyst", role]), "JWT refused", repr(role), "governance.yaml")


def test_names_cannot_pass_for_groups_or_principals(platform, keys):
    refused(platform, mint(keys, "zoe", groups=["ana"]), "group 'ana'", "name of a principal")
    refused(platform, mint(keys, "zoe", groups=["olivia"]), "group 'olivia'")  # an owner of the quanta
    refused(platform, mint(keys, "finance-team"), "named like a group")
    assert platform.authenticate(mint(keys, "zoe", groups=["sales"])).groups == ("sales",)


def test_unmapped_claims_grant_nothing(platform, keys):
    p = platform.authenticate(mint(keys, "zoe", purposes=["marketing"], department="finance", roles=["analyst"]))
    assert p.attributes == {} and p.roles == ("analyst",)  # only attribute_claims' claims become attributes


def test_a_claim_cannot_name_quantas_own_principal(platform, keys):
    for name in ("quanta-system", "Quanta-System", "anonymous"):
        refused(platform, mint(keys, name), "Quanta's own")
    refused(platform, mint(keys, "zoe", preferred_username=None), "no principal")


def test_expired_and_not_yet_valid_tokens(platform, keys):
    refused(platform, mint(keys, ttl=-60), "expired")
    assert platform.identify(mint(keys, ttl=-2)).name == "zoe"  # within the 5 s leeway
    refused(platform, mint(keys, nbf=120), "not valid yet")
    now = int(time.time())
    no_exp = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "zoe", "iat": now}, keys["k1"],
                        algorithm="RS256", headers={"kid": "k1"})
    refused(platform, no_exp, "no exp claim")


def test_wrong_audience_and_issuer(platform, keys):
    refused(platform, mint(keys, aud="someone-else"), "audience")
    refused(platform, mint(keys, iss="https://evil.test/"), "issuer", "not one declared")
    assert platform.identify(mint(keys, iss=FLOOD_ISSUER, aud="other", preferred_username=None, sub="zoe")).name \
        == "partner:zoe"  # the second issuer: two audiences, the default principal claim sub, a prefix


def test_a_prefixed_issuer_cannot_speak_for_file_principals(platform, keys):
    p = platform.authenticate(mint(keys, iss=FLOOD_ISSUER, sub="pia", roles=["pii_reader"]))
    assert p.name == "partner:pia" and p.roles == () and "pii_reader" not in p.all_roles


def test_a_prefixed_issuer_cannot_claim_the_meshs_roles_or_groups(platform, keys):
    """A partner's issuer (prefix "partner:") claims the mesh's role analyst and group finance-team (gus's): its
    roles and groups are its own, prefixed, so neither the analyst grants nor the finance-team ones apply."""
    p = platform.authenticate(mint(keys, iss=FLOOD_ISSUER, sub="zed", roles=["analyst"], groups=["finance-team"]))
    assert p.name == "partner:zed" and "analyst" not in p.all_roles and "finance-team" not in p.groups
    assert p.groups == ("partner:finance-team",)
    with pytest.raises(errors.AccessDenied):
        platform.query("select count(*) from shop.orders", p).fetchall()
    same = platform.authenticate(mint(keys, "zed", roles=["analyst"]))  # the mesh's own issuer may name the role
    assert "analyst" in same.all_roles
    assert platform.query("select count(*) from shop.orders", same).fetchall()[0][0] > 0


def test_tampered_signature_and_payload(platform, keys):
    token = mint(keys, "zoe", roles=["analyst"])
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["realm_access"]["roles"] = ["pii_reader"]
    forged = f"{header}.{b64(json.dumps(claims).encode())}.{signature}"
    refused(platform, forged, "signature does not verify")
    sig = bytearray(base64.urlsafe_b64decode(signature + "=="))
    sig[10] ^= 1
    refused(platform, f"{header}.{payload}.{b64(bytes(sig))}", "signature does not verify")
    refused(platform, mint(keys, "zoe", key=rsa_key()), "signature does not verify")  # someone else's key, k1's kid


def test_alg_none_is_refused(platform, keys):
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "pia", "exp": now + 300}
    for alg in ("none", "None", "NONE"):
        unsigned = f"{b64(json.dumps({'alg': alg, 'kid': 'k1'}).encode())}.{b64(json.dumps(claims).encode())}."
        refused(platform, unsigned, "alg none")


def test_hs256_signed_with_the_public_key_is_refused(platform, keys):
    """The classic confusion: the RSA public key (which anyone can fetch) used as an HMAC secret."""
    now = int(time.time())
    claims = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "pia", "exp": now + 300}
    pem = keys["k1"].public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    for alg, digest in (("HS256", hashlib.sha256), ("HS512", hashlib.sha512)):
        signing = f"{b64(json.dumps({'alg': alg, 'kid': 'k1', 'typ': 'JWT'}).encode())}.{b64(json.dumps(claims).encode())}"
        token = f"{signing}.{b64(hmac.new(pem, signing.encode(), digest).digest())}"
        refused(platform, token, "symmetric algorithm")


def test_keys_named_by_the_token_itself_are_ignored(platform, keys, idp):
    """jwk, jku and x5u headers would let the token bring its own key: only the issuer's JWKS counts."""
    attacker = rsa_key()
    jwk = public_jwk(attacker, "evil")
    before = dict(idp.hits)
    for header in ({"kid": "evil", "jwk": jwk}, {"kid": "evil", "jku": f"{idp.url}/evil"},
                   {"kid": "k1", "jwk": jwk}, {"kid": "k1", "x5u": f"{idp.url}/evil"}):
        token = jwt.encode({"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "pia", "exp": int(time.time()) + 60},
                           attacker, algorithm="RS256", headers=header)
        refused(platform, token, "key id" if header["kid"] == "evil" else "signature does not verify")
    assert "/evil" not in idp.hits and set(idp.hits) <= set(before) | {"/jwks"}


def test_algorithm_must_fit_the_key(platform, keys):
    # an ES256 header naming the RSA key's kid, signed by the EC key: the key's type does not fit
    refused(platform, mint(keys, "zoe", kid="k1", alg="ES256", key=keys["ec"]), "not a key for algorithm ES256")


def test_key_rotation_is_picked_up(platform, keys, idp):
    assert platform.identify(mint(keys, "zoe")).name == "zoe"
    refused(platform, mint(keys, "zoe", kid="k2"), "key id")  # not published yet
    idp.sets["/jwks"] = [public_jwk(keys["k2"], "k2"), public_jwk(keys["ec"], "ec")]  # the IdP rotates
    before = idp.hits.get("/jwks", 0)
    assert platform.identify(mint(keys, "zoe", kid="k2")).name == "zoe"
    assert idp.hits["/jwks"] == before + 1
    refused(platform, mint(keys, "zoe", kid="k1"), "key id")  # the retired key: gone with the new set
    idp.sets["/jwks"] = [public_jwk(keys["k1"], "k1"), public_jwk(keys["k2"], "k2"), public_jwk(keys["ec"], "ec")]
    assert platform.identify(mint(keys, "zoe", kid="k1")).name == "zoe"


def test_a_flood_of_unknown_key_ids_does_not_hammer_the_idp(platform, keys, idp):
    def token(kid):
        return mint(keys, "zoe", kid=kid, key=keys["k1"], iss=FLOOD_ISSUER, sub="zoe")

    assert platform.identify(token("k1")).name == "partner:zoe"
    before = idp.hits["/flood"]
    for _ in range(50):
        refused(platform, token(secrets.token_hex(8)), "key id")
    assert idp.hits["/flood"] <= before + 1
    assert platform.identify(token("k1")).name == "partner:zoe"  # the known key still verifies


def test_claims_of_an_issuer_no_longer_declared_grant_nothing(platform, keys):
    import copy

    from federation.governance import oidc
    claims = platform.identify(mint(keys, "ana", roles=["pii_reader"], groups=["sales"])).claims
    gov = copy.copy(platform.state.governance)
    assert set(oidc.principal_of(gov, claims).roles) == {"analyst", "pii_reader"}
    gov.issuers = ()  # a reload that removed the issuer: an open session keeps only what the file grants
    assert oidc.principal_of(gov, claims).roles == ("analyst",) and oidc.principal_of(gov, claims).groups == ()
    claims = platform.identify(mint(keys, "zoe", roles=["analyst"])).claims
    assert oidc.principal_of(gov, claims).roles == () and not oidc.principal_of(gov, claims).known


def test_an_unreachable_jwks_refuses(platform, keys):
    refused(platform, mint(keys, "zoe", iss=DOWN_ISSUER), "could not be fetched")


def test_a_jwks_redirect_to_plain_http_is_not_followed(platform, keys, idp):
    """/moved redirects to a JWKS served over plain http on a network address: a man in the middle's keys."""
    host = non_loopback_address()
    if host is None:
        pytest.skip("no non-loopback address on this machine")
    elsewhere = IdP(host)
    try:
        elsewhere.sets["/jwks"] = [public_jwk(keys["k1"], "k1")]
        idp.moved_to = f"{elsewhere.url}/jwks"
        refused(platform, mint(keys, "zoe", iss=MOVED_ISSUER), "could not be fetched")
        assert idp.hits["/moved"] == 1 and elsewhere.hits == {}
    finally:
        elsewhere.stop()


def signed(keys, header: dict, payload) -> str:
    """A JWS over any header and payload, signed by k1 (RS256): what PyJWT would never write."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    signing = f"{b64(json.dumps(header).encode())}.{b64(body)}"
    signature = keys["k1"].sign(signing.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing}.{b64(signature)}"


def test_malformed_tokens_are_refused_cleanly(platform, keys):
    """Whatever the header or claims hold, the answer is an AuthenticationError, never another exception."""
    now = int(time.time())
    good = {"iss": ISSUER, "aud": AUDIENCE, "preferred_username": "zoe", "exp": now + 300}
    rs = {"alg": "RS256", "kid": "k1"}
    cases = [
        (rs, b"not json"), (rs, b"[1, 2]"), ({"alg": 5, "kid": "k1"}, good), ({"alg": "RS256", "kid": ["k1"]}, good),
        ({"alg": "RS256"}, good), ({"alg": "XX999", "kid": "k1"}, good), (rs, {**good, "iss": [ISSUER]}),
        (rs, {**good, "exp": "tomorrow"}), (rs, {**good, "aud": 5}), (rs, {**good, "nbf": "x"}),
        (rs, {**good, "preferred_username": 5}), (rs, {**good, "preferred_username": "a\nb"}),
        (rs, {**good, "preferred_username": "x" * 300}), (rs, {**good, "realm_access": {"roles": "analyst"}}),
        (rs, {**good, "realm_access": {"roles": [1, 2]}}), (rs, {**good, "groups": {"a": 1}}),
        (rs, {**good, "regions": [["EU"]]}),
    ]
    outcomes = []
    for header, payload in cases:
        try:
            outcomes.append(platform.authenticate(signed(keys, header, payload)).roles)
        except errors.AuthenticationError as e:
            outcomes.append(e.message)
    assert outcomes[13] == ("analyst",)  # a single role as a string is a list of one
    refusals = [o for i, o in enumerate(outcomes) if i != 13]
    assert all(isinstance(o, str) and o.startswith("JWT refused") for o in refusals), outcomes
    assert platform.authenticate(signed(keys, rs, good)).name == "zoe"  # the same signer, well-formed: accepted


def test_garbage_and_qt_tokens(platform, tokens):
    for bad in ("", "x", "a.b.c", "eyJ.eyJ.sig", "qt_nope_nope"):
        with pytest.raises(errors.AuthenticationError):
            platform.identify(bad)
    identity = platform.identify(tokens["ana"])
    assert identity.name == "ana" and identity.token_id and identity.claims is None


# -- the governance file --------------------------------------------------------------------------------------

@pytest.mark.parametrize("issuer, path, words", [
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "http://idp.example.com/jwks"}, "issuers[0].jwks_url",
     "https://"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://idp.test/jwks", "algorithms": ["HS256"]},
     "issuers[0].algorithms[0]", "HS256"),
    ({"issuer": ISSUER, "jwks_url": "https://idp.test/jwks"}, "issuers[0]", "audience"),
    ({"issuer": ISSUER, "audience": AUDIENCE, "jwks_url": "https://idp.test/jwks",
      "attribute_claims": {"roles": "roles"}}, "issuers[0].attribute_claims", "roles"),
    # no jwks_url: the issuer's OpenID configuration is read from the issuer's address, which must be safe
    ({"issuer": "http://idp.example.com/realms/x", "audience": AUDIENCE}, "issuers[0].issuer", "https://"),
    ({"issuer": "https://idp.test/realms/x?a=1", "audience": AUDIENCE}, "issuers[0].issuer", "no query"),
])
def test_bad_issuer_declarations_are_clear_errors(tmp_path, issuer, path, words):
    from meshkit import shop_mesh
    root = shop_mesh(tmp_path, governance={**pgkit.shop_governance(), "issuers": [issuer]})
    with pytest.raises(errors.CatalogError) as info:
        Platform(root)
    problems = [p for p in info.value.problems if p.path == path]
    assert problems and words in problems[0].message, info.value.problems
    assert problems[0].line is not None  # the line of governance.yaml


# -- every interface --------------------------------------------------------------------------------------------

def python_rows(platform, user):
    from federation.connection import Connection
    return [tuple(r) for r in Connection(platform, platform.principal(user)).sql(CUSTOMERS).fetchall()]


@pytest.fixture(scope="module")
def http(platform):
    from federation.server.http import Server, create_app
    server = Server(create_app(platform), port=0).start()
    yield server
    server.stop()


def http_query(http, credential, sql=CUSTOMERS):
    return requests.post(http.url + "/api/v1/query", json={"sql": sql},
                         headers={"Authorization": f"Bearer {credential}"}, timeout=60)


def test_http_bearer_jwt_is_governed_like_a_token(http, platform, keys, tokens):
    expected = python_rows(platform, "ana")
    assert any(r[1] != f"name{r[0]}" for r in expected)  # names are masked for ana
    by_token = http_query(http, tokens["ana"])
    by_jwt = http_query(http, mint(keys, "ana"))
    assert by_token.status_code == by_jwt.status_code == 200, by_jwt.text
    assert [tuple(r) for r in by_jwt.json()["rows"]] == [tuple(r) for r in by_token.json()["rows"]] == expected
    # a claim adding pii_reader unmasks, as the same role in the file would
    clear = http_query(http, mint(keys, "ana", roles=["pii_reader"])).json()["rows"]
    assert all(r[1] == f"name{r[0]}" for r in clear)


def test_http_refusals_are_401_without_the_token(http, keys, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    token = mint(keys, "ana", ttl=-120)
    r = http_query(http, token)
    assert r.status_code == 401 and "expired" in r.text
    assert token.split(".")[1] not in r.text and token.split(".")[2] not in r.text
    r = http_query(http, mint(keys, "ana", roles=["data_engineer"]))
    assert r.status_code == 401 and "data_engineer" in r.text
    good = mint(keys, "ana")
    assert http_query(http, good).status_code == 200
    for t in (token, good):  # nothing the server logged holds a token or a part of one
        assert t.split(".")[1] not in caplog.text and t.split(".")[2] not in caplog.text


def test_pgwire_password_may_be_a_jwt(platform, keys, tokens):
    psycopg = pytest.importorskip("psycopg")
    expected = python_rows(platform, "ana")
    with pgkit.running_server(platform) as server:
        dsn = f"host=127.0.0.1 port={server.port} user=ana dbname={pgkit.DATABASE} sslmode=disable"
        with psycopg.connect(dsn, password=mint(keys, "ana")) as conn:
            assert [tuple(r) for r in conn.execute(CUSTOMERS).fetchall()] == expected
        with psycopg.connect(dsn, password=tokens["ana"]) as conn:  # a Quanta token still logs in
            assert [tuple(r) for r in conn.execute(CUSTOMERS).fetchall()] == expected
        with psycopg.connect(dsn.replace("user=ana", "user=zoe"),
                             password=mint(keys, "zoe", roles=["analyst"], regions=["EU"])) as conn:
            rows = conn.execute("select count(*) from crm.customers where region = 'EU'").fetchone()
            assert rows[0] == 10  # the claimed regions attribute lets EU rows through the filter
        with pytest.raises(psycopg.OperationalError) as info:  # the JWT names pia, the user is ana
            psycopg.connect(dsn, password=mint(keys, "pia"))
        assert "password authentication failed" in str(info.value)
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dsn, password=mint(keys, "ana", aud="other"))
        assert "audience" in str(info.value)
        with psycopg.connect(dsn, password=tokens["ana"]) as conn:  # the server keeps serving
            assert conn.execute("select 1").fetchone() == (1,)
        token = mint(keys, "ana", ttl=-1)  # accepted within the 5 s leeway: valid for about four more seconds
        with psycopg.connect(dsn, password=token) as conn:
            until = platform.identify(token).expires_at
            time.sleep(max(until - time.time(), 0) + 1.1)
            with pytest.raises(psycopg.OperationalError) as info:  # the session ends with its JWT
                conn.execute("select 1").fetchone()
            assert "expired" in str(info.value)


def test_flight_bearer_and_basic_jwt(platform, keys, tokens):
    pytest.importorskip("adbc_driver_flightsql")
    import adbc_driver_flightsql as adbc
    import adbc_driver_flightsql.dbapi as fsql
    import pyarrow.flight as flight
    from federation.server.flight import FlightSqlServer

    expected = python_rows(platform, "ana")
    auth = adbc.DatabaseOptions.AUTHORIZATION_HEADER.value
    with FlightSqlServer(platform, host="127.0.0.1", port=0) as server:
        for credential in (mint(keys, "ana"), tokens["ana"]):
            with fsql.connect(server.location, db_kwargs={auth: f"Bearer {credential}"}, autocommit=True) as conn:
                with conn.cursor() as cur:
                    cur.execute(CUSTOMERS)
                    assert [tuple(r) for r in cur.fetchall()] == expected
        with fsql.connect(server.location, db_kwargs={"username": "ana", "password": mint(keys, "ana")},
                          autocommit=True) as conn:
            with conn.cursor() as cur:
                cur.execute(CUSTOMERS)
                assert [tuple(r) for r in cur.fetchall()] == expected
        from federation.server.flight import messages as m

        def info(client, options):
            command = m.pack(m.CommandStatementQuery(query="select count(*) as n from crm.customers"))
            return client.get_flight_info(flight.FlightDescriptor.for_command(command), options)

        token = mint(keys, "ana", ttl=-1)  # a basic-auth session opened with a JWT ends with it
        until = platform.identify(token).expires_at
        client = flight.connect(server.location)
        header = client.authenticate_basic_token("ana", token)
        assert header[1].startswith(b"Bearer qfs_")
        session = flight.FlightCallOptions(headers=[header])
        assert client.do_get(info(client, session).endpoints[0].ticket, session).read_all().to_pylist() == [{"n": 20}]
        time.sleep(max(until - time.time(), 0) + 1.1)
        with pytest.raises(flight.FlightUnauthenticatedError) as err:
            info(client, session)
        assert "session ended" in str(err.value)
        bad = flight.FlightCallOptions(headers=[(b"authorization", f"Bearer {mint(keys, 'ana', ttl=-120)}".encode())])
        with pytest.raises(flight.FlightUnauthenticatedError) as info:
            list(client.list_actions(bad))
        assert "expired" in str(info.value)
        client.close()


def non_loopback_address() -> str | None:
    import socket
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # no packet is sent: the route's source address
            address = s.getsockname()[0]
    except OSError:
        return None
    return None if address.startswith("127.") else address


def self_signed(tmp_path, host: str):
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID
    key = rsa_key()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address(host))]), critical=False)
            .sign(key, hashes.SHA256()))
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return str(cert_file), str(key_file)


def test_pgwire_jwt_needs_tls_off_loopback(platform, keys, tokens, tmp_path):
    """From another address, a JWT travels only over TLS: without it the server asks for SCRAM (a Quanta token
    still logs in, a JWT cannot); with TLS it asks for the password and the JWT logs in."""
    psycopg = pytest.importorskip("psycopg")
    from federation.server.pgwire import PgServer
    host = non_loopback_address()
    if host is None:
        pytest.skip("no non-loopback address on this machine")
    cert, key = self_signed(tmp_path, host)
    srv = PgServer(platform, host=host, port=0, tls_cert=cert, tls_key=key).start()
    try:
        dsn = f"host={host} port={srv.port} user=ana dbname={pgkit.DATABASE}"
        with pytest.raises(psycopg.OperationalError) as info:
            psycopg.connect(dsn + " sslmode=disable", password=mint(keys, "ana"))
        assert "password authentication failed" in str(info.value)
        with psycopg.connect(dsn + " sslmode=disable require_auth=scram-sha-256", password=tokens["ana"]) as conn:
            assert conn.execute("select count(*) from crm.customers").fetchone() == (20,)
        with psycopg.connect(dsn + " sslmode=require", password=mint(keys, "ana")) as conn:
            assert conn.pgconn.ssl_in_use
            assert conn.execute("select count(*) from crm.customers").fetchone() == (20,)
    finally:
        srv.stop()


# -- OpenID Connect discovery: no jwks_url, the issuer's configuration names the keys ------------------------

WELL_KNOWN = "/.well-known/openid-configuration"


def test_an_issuer_without_jwks_url_discovers_its_keys(tmp_path, keys, idp):
    good, liar, plain, broken = (f"{idp.url}/realms/{n}" for n in ("disc", "liar", "plain", "broken"))
    idp.sets["/disc-keys"] = [public_jwk(keys["k2"], "k2")]
    idp.docs["/realms/disc" + WELL_KNOWN] = {"issuer": good, "jwks_uri": f"{idp.url}/disc-keys"}
    idp.docs["/realms/liar" + WELL_KNOWN] = {"issuer": "https://idp.test/realms/acme", "jwks_uri": f"{idp.url}/disc-keys"}
    idp.docs["/realms/plain" + WELL_KNOWN] = {"issuer": plain, "jwks_uri": "http://192.0.2.1/keys"}
    idp.docs["/realms/broken" + WELL_KNOWN] = b"<html>not json</html>"
    governance = {**pgkit.shop_governance(), "issuers": [
        {"issuer": i, "audience": AUDIENCE, "jwks_refresh_seconds": 0, "principal_claim": "preferred_username"}
        for i in (good, liar, plain, broken)]}
    platform = pgkit.governed_shop(tmp_path / "disc", governance=governance)
    before = idp.hits.get("/disc-keys", 0)
    identity = platform.identify(mint(keys, "ana", kid="k2", iss=good))
    assert identity.name == "ana"
    assert idp.hits["/realms/disc" + WELL_KNOWN] >= 1 and idp.hits["/disc-keys"] == before + 1
    assert platform.identify(mint(keys, "pia", kid="k2", iss=good)).name == "pia"  # the keys are cached
    assert idp.hits["/disc-keys"] == before + 1
    # a configuration naming another issuer is not believed: its keys are not even fetched
    refused(platform, mint(keys, "ana", kid="k2", iss=liar), "another issuer")
    assert idp.hits["/disc-keys"] == before + 1
    refused(platform, mint(keys, "ana", kid="k2", iss=plain), "jwks_uri", "https")
    assert "/keys" not in idp.hits
    refused(platform, mint(keys, "ana", kid="k2", iss=broken), "not JSON")
    # a token of the discovering issuer signed by another key still fails its signature
    refused(platform, mint(keys, "ana", kid="k2", key=keys["k1"], iss=good), "signature")

