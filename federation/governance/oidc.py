"""Identities from an identity provider: OpenID Connect access tokens (JWTs) verified against the issuer's
published keys (JWKS), and the principal their claims name.

``governance.yaml`` declares the issuers it trusts (``issuers:``, read by ``loader``)::

    issuers:
      - issuer: https://idp.example.com/realms/acme   # the token's iss, exactly
        audience: quanta                              # the token's aud must hold it (a string or a list)
        jwks_url: https://idp.example.com/realms/acme/protocol/openid-connect/certs  # default: discovered
        principal_claim: preferred_username           # default sub
        principal_prefix: ""                          # e.g. "partner:" so that this issuer names only its own
        roles_claim: realm_access.roles               # dotted paths into the claims; none by default
        groups_claim: groups
        attribute_claims: {region: region}            # principal attribute -> claim
        algorithms: [RS256]                           # default: every asymmetric one
        leeway_seconds: 60                            # clock skew allowed on exp, nbf, iat
        jwks_cache_seconds: 300

Verification (PyJWT: no hand-written JOSE): the token's ``iss`` chooses the issuer (an undeclared issuer is
refused before any key is fetched); its header's ``alg`` must be an asymmetric algorithm the issuer allows
(``none`` and HS* are refused whatever the key: the classic confusion of an RSA public key used as an HMAC
secret cannot happen), its ``kid`` must name a key of the issuer's JWKS whose type fits the algorithm; the
signature, ``exp`` (required), ``nbf``, ``iat``, ``iss`` and ``aud`` are checked with the leeway. Errors say
what is wrong without echoing the token or its claims; tokens are never logged.

Without ``jwks_url``, the keys' address is the ``jwks_uri`` of the issuer's OpenID configuration
(``<issuer>/.well-known/openid-configuration``), read on each fetch of the keys with the same rules; its
``issuer`` must be the declared one, exactly (so the issuer itself must be an acceptable address).
The JWKS is fetched over HTTPS (plain HTTP only from a loopback address) with a time-out and a size cap,
kept ``jwks_cache_seconds``, and fetched again when a token names an unknown ``kid`` (a key rotation), at
most once per ``REFRESH_INTERVAL`` seconds per issuer, so a flood of made-up key ids cannot hammer the
identity provider. When it cannot be fetched, tokens are refused (fail closed).

What claims may grant (``principal_of``): the principal's name comes from ``principal_claim`` and must not
be one of Quanta's own (``quanta-*``, ``anonymous``); roles, groups and the mapped attributes come from the
named claims. A claim may not carry ``system`` (Quanta's own principal's), the auditor role or the
data-engineer role (the governance settings' ``auditor_role`` and ``data_engineer_role``): those come only
from ``governance.yaml``, and a token claiming one is refused. When the governance declares its ``roles``,
claimed roles it does not declare are ignored (an identity provider sends many of its own). Approvers and
grants name users and groups alike, so a token is refused when its principal is named like a group of the
governance, or one of its groups like a principal or an owner. Attributes
come only from the claims the issuer maps (``attribute_claims``), never ``name``, ``roles`` or ``groups``.
A principal also defined in ``governance.yaml`` holds both (roles and groups united), the file's
attributes winning. Each issuer is trusted for every name it asserts (the owners named by products, the
principals of the file): an issuer that should speak only for its own users gets a ``principal_prefix``.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from typing import Any

import jwt
from cachetools import LRUCache
from jwt.exceptions import InvalidKeyError, PyJWKError, PyJWTError

from .principals import Principal

ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
KEY_TYPES = {"RS": "RSA", "PS": "RSA", "ES": "EC", "Ed": "OKP"}  # the JWK kty each algorithm family needs
EC_CURVES = {"ES256": "P-256", "ES384": "P-384", "ES512": "P-521"}
RESERVED_ROLES = ("system",)  # Quanta's own principal's; the settings' auditor and data-engineer roles too
RESERVED_ATTRIBUTES = ("name", "roles", "groups")  # principal.name/roles/groups in filters are not attributes
RESERVED_NAMES = ("anonymous",)  # and every name starting with RESERVED_PREFIX
RESERVED_PREFIX = "quanta-"
DEFAULT_LEEWAY = 60
DEFAULT_CACHE = 300
FETCH_TIMEOUT = 5.0  # seconds to fetch a JWKS
MAX_JWKS_BYTES = 1 << 20
REFRESH_INTERVAL = 10.0  # at most one fetch per issuer per this many seconds on unknown key ids
MAX_NAME = 256
VERIFIED_SECONDS = 60.0  # a verified token is remembered at most this long (and never past its expiry)
VERIFIED_TOKENS = 10_000  # remembered tokens (least recently used first out)


class TokenError(Exception):
    """Why a JWT is refused (the message names the problem, never the token); ``reason``: its category for
    the log of failed logins (``governance.logins.REASONS``); ``claimed``: the principal the token claims,
    unverified, and ``issuer``: the declared issuer it names, when known (both for that log)."""

    def __init__(self, message: str, reason: str = "invalid_claims"):
        super().__init__(message)
        self.reason = reason
        self.claimed: str | None = None
        self.issuer: str | None = None


@dataclass(frozen=True)
class Issuer:
    """One issuer ``governance.yaml`` declares."""

    issuer: str
    audience: tuple[str, ...]
    jwks_url: str | None  # None: read from the issuer's OpenID configuration (``discovery_url``)
    principal_claim: str = "sub"
    roles_claim: str | None = None
    groups_claim: str | None = None
    attribute_claims: tuple[tuple[str, str], ...] = ()
    algorithms: tuple[str, ...] = ASYMMETRIC
    leeway_seconds: float = DEFAULT_LEEWAY
    jwks_cache_seconds: float = DEFAULT_CACHE
    jwks_refresh_seconds: float = REFRESH_INTERVAL
    principal_prefix: str = ""  # put before the claimed name ("partner:"): an issuer that may not speak for others


@dataclass(frozen=True)
class Claims:
    """What a verified token says of its principal (before the governance's rules of ``principal_of``)."""

    issuer: str
    name: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    attributes: dict[str, list] = field(default_factory=dict, hash=False, compare=False)
    expires_at: float | None = None  # when the token stops being accepted: its exp plus the leeway (epoch s)


def looks_like_jwt(token: str) -> bool:
    """Three base64url parts (JWS compact serialisation)."""
    parts = token.split(".")
    return len(parts) == 3 and all(parts[:2]) and len(token) < 16384


def discovery_url(issuer: str) -> str:
    """Where an issuer publishes its OpenID configuration (OpenID Connect Discovery 1.0, section 4)."""
    return issuer.rstrip("/") + "/.well-known/openid-configuration"


def check_jwks_url(url: str) -> str | None:
    """Why a JWKS address is not acceptable, or None: HTTPS, or HTTP to a loopback address only."""
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme == "https" and parsed.hostname:
        return None
    if parsed.scheme == "http" and parsed.hostname:
        host = parsed.hostname
        try:
            if host == "localhost" or ipaddress.ip_address(host).is_loopback:
                return None
        except ValueError:
            pass
        return "must be an https:// address (plain http only to a loopback address: the keys must not be " \
               "replaceable on the way)"
    return "must be an https:// address"


# -- the keys -------------------------------------------------------------------------------------------


class _Redirects(urllib.request.HTTPRedirectHandler):
    """A JWKS address may redirect only to another acceptable address (never from https:// to plain http)."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        if check_jwks_url(newurl) is not None:
            raise urllib.error.URLError("redirected to an address that is not acceptable for keys")
        return super().redirect_request(req, fp, code, msg, headers, newurl)


_OPENER = urllib.request.build_opener(_Redirects)


class _KeySet:
    """One issuer's JWKS: ``current`` = (kid -> JWK as a dict, the monotonic time of the fetch)."""

    def __init__(self):
        self.current: tuple[dict[str | None, dict], float] = ({}, float("-inf"))  # (keys, monotonic time of
        # the fetch that found them): one attribute, replaced whole, so a reader sees keys and time together
        self.tried = float("-inf")  # monotonic time of the last fetch attempt
        self.lock = threading.Lock()


class KeyCache:
    """The JWKS of every issuer, fetched on demand and kept (one per platform: it outlives governance
    reloads; keyed by the issuer and its JWKS address)."""

    def __init__(self, timeout: float = FETCH_TIMEOUT):
        self.timeout = timeout
        self._sets: dict[tuple[str, str], _KeySet] = {}
        self._lock = threading.Lock()
        self._verified: LRUCache = LRUCache(maxsize=VERIFIED_TOKENS)  # (sha256, issuers) -> (claims, until)
        self.fetches = 0  # how many times a JWKS was fetched (tests, metrics)

    def remembered(self, digest: bytes, issuers: tuple, now: float) -> Claims | None:
        """A token verified before, while it is not expired and its issuer's keys were not fetched again
        since (a key withdrawn from the JWKS stops its tokens at once)."""
        with self._lock:
            hit = self._verified.get((digest, issuers))
        if hit is None:
            return None
        claims, until, ks, fetched = hit
        return claims if now < until and ks.current[1] == fetched else None

    def remember(self, digest: bytes, issuers: tuple, claims: Claims, until: float, ks: "_KeySet",
                 fetched: float) -> None:
        with self._lock:
            self._verified[(digest, issuers)] = (claims, until, ks, fetched)

    def keyset(self, issuer: Issuer) -> "_KeySet":
        with self._lock:
            return self._sets.setdefault((issuer.issuer, issuer.jwks_url), _KeySet())

    def key(self, issuer: Issuer, kid: str | None) -> tuple[dict, _KeySet, float]:
        """The JWK ``kid`` names (the only key when the token names none and the set holds one), its set and
        when that set was fetched."""
        ks = self.keyset(issuer)
        if time.monotonic() - ks.current[1] > issuer.jwks_cache_seconds:  # never fetched or too old (fail closed)
            self._refresh(issuer, ks, force=True)
        found, fetched = self._find(ks, kid)
        if found is None and kid is not None:  # a rotated key, perhaps: fetch again (rate-limited)
            self._refresh(issuer, ks, force=False)
            found, fetched = self._find(ks, kid)
        if found is None:
            raise TokenError("the token's key id (kid) is not one of the issuer's keys" if kid is not None else
                             "the token names no key id (kid) and the issuer publishes several keys", "unknown_key")
        return found, ks, fetched

    @staticmethod
    def _find(ks: _KeySet, kid: str | None) -> tuple[dict | None, float]:
        keys, fetched = ks.current
        if kid is None:
            return (next(iter(keys.values())) if len(keys) == 1 else None), fetched
        return keys.get(kid), fetched

    def _refresh(self, issuer: Issuer, ks: _KeySet, force: bool) -> None:
        """Fetch the set again: ``force`` when it is missing or too old, else for an unknown kid. Either way at
        most once per ``jwks_refresh_seconds`` after an attempt that failed or found no such kid."""
        with ks.lock:
            now = time.monotonic()
            if force and now - ks.current[1] <= issuer.jwks_cache_seconds:
                return  # another thread fetched it meanwhile
            if now - ks.tried < issuer.jwks_refresh_seconds:
                if force:  # the last attempt failed a moment ago: do not hammer a failing identity provider
                    raise TokenError("the identity provider's keys (JWKS) could not be fetched", "keys_unavailable")
                return  # fetched a moment ago: an unknown kid does not fetch again before the interval
            ks.tried = now
            try:
                keys = self._fetch(issuer)
                ks.current = (keys, time.monotonic())
            except TokenError:
                if force:  # keys older than jwks_cache_seconds are not used when a fresh set cannot be had
                    ks.current = ({}, ks.current[1])
                    raise

    def _get(self, url: str, what: str) -> bytes:
        """The body at ``url`` (an acceptable address: ``check_jwks_url``), within the time-out and the size cap;
        ``TokenError`` naming ``what`` otherwise."""
        request = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            deadline = time.monotonic() + 2 * self.timeout  # the whole answer, not only each read (a slow drip)
            with _OPENER.open(request, timeout=self.timeout) as response:  # noqa: S310 - checked url
                chunks, size = [], 0
                while size <= MAX_JWKS_BYTES:
                    chunk = response.read(65536)
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
                    if time.monotonic() > deadline:
                        raise TimeoutError
                body = b"".join(chunks)
        except (urllib.error.URLError, OSError, ValueError):  # TimeoutError is an OSError
            raise TokenError(f"the identity provider's {what} could not be fetched", "keys_unavailable") from None
        if len(body) > MAX_JWKS_BYTES:
            raise TokenError(f"the identity provider's {what} is too large", "keys_unavailable")
        return body

    def jwks_url(self, issuer: Issuer) -> str:
        """The issuer's JWKS address: declared, or the ``jwks_uri`` of its OpenID configuration (OpenID Connect
        Discovery 1.0, read with the same rules as the keys), which must name the same issuer and an
        acceptable address."""
        if issuer.jwks_url:
            return issuer.jwks_url
        what = "OpenID configuration"
        try:
            config = json.loads(self._get(discovery_url(issuer.issuer), what))
        except ValueError:
            raise TokenError(f"the identity provider's {what} is not JSON", "keys_unavailable") from None
        if not isinstance(config, dict) or config.get("issuer") != issuer.issuer:
            raise TokenError(f"the identity provider's {what} names another issuer than {issuer.issuer}",
                             "keys_unavailable")
        url = config.get("jwks_uri")
        if not isinstance(url, str) or not url:
            raise TokenError(f"the identity provider's {what} has no jwks_uri", "keys_unavailable")
        problem = check_jwks_url(url)
        if problem:
            raise TokenError(f"the jwks_uri of the identity provider's {what} {problem}", "keys_unavailable")
        return url

    def _fetch(self, issuer: Issuer) -> dict[str | None, dict]:
        self.fetches += 1
        body = self._get(self.jwks_url(issuer), "keys (JWKS)")
        try:
            data = json.loads(body)
            keys = data["keys"]
            if not isinstance(keys, list):
                raise TypeError
        except (ValueError, KeyError, TypeError):
            raise TokenError("the identity provider's JWKS is not a JSON key set", "keys_unavailable") from None
        out: dict[str | None, dict] = {}
        for k in keys:
            if isinstance(k, dict) and k.get("use", "sig") == "sig" and k.get("kty") in ("RSA", "EC", "OKP"):
                out[str(k["kid"]) if "kid" in k else None] = k
        return out


# -- verification ---------------------------------------------------------------------------------------


def verify(token: str, issuers: tuple[Issuer, ...], cache: KeyCache) -> Claims:
    """The claims of a valid token of one of ``issuers``; ``TokenError`` says why not. A token verified
    a moment ago is remembered by its SHA-256 (``KeyCache.verified``) until it expires, at most
    ``VERIFIED_SECONDS``: a client sending the same token on each request pays the signature once."""
    digest = hashlib.sha256(token.encode()).digest()
    now = time.time()
    remembered = cache.remembered(digest, issuers, now)
    if remembered is not None:
        return remembered
    claims, ks, fetched = _verify(token, issuers, cache)
    if claims.expires_at is not None:
        cache.remember(digest, issuers, claims, min(claims.expires_at, now + VERIFIED_SECONDS), ks, fetched)
    return claims


def _verify(token: str, issuers: tuple[Issuer, ...], cache: KeyCache) -> tuple[Claims, _KeySet, float]:
    """The claims, and the key set (and when it was fetched) whose key verified them."""
    try:
        unverified = jwt.decode_complete(token, options={"verify_signature": False})
    except PyJWTError:
        raise TokenError("not a well-formed JWT", "malformed_jwt") from None
    try:
        return _verify_decoded(token, unverified, issuers, cache)
    except TokenError as e:  # for the log of failed logins: whom the token claims, unverified
        e.issuer, e.claimed = _claimed(unverified["payload"], issuers)
        raise


def claimed(token: str, issuers: tuple[Issuer, ...]) -> str | None:
    """The principal a JWT claims, unverified (``_claimed``): the failed-login throttle's key only."""
    return _claimed(jwt.decode(token, options={"verify_signature": False}), issuers)[1]


def _claimed(payload: dict, issuers: tuple[Issuer, ...]) -> tuple[str | None, str | None]:
    """(the declared issuer a token names, the principal it claims: its issuer's principal claim, else
    ``sub``), unverified: for the log of failed logins only."""
    iss = payload.get("iss")
    issuer = next((i for i in issuers if isinstance(iss, str) and i.issuer == iss), None)
    try:
        name = _path(payload, issuer.principal_claim if issuer else "sub")
    except Exception:  # noqa: BLE001 - a hostile payload's shape
        name = None
    if not isinstance(name, str):
        return (issuer.issuer if issuer else None), None
    return (issuer.issuer if issuer else None), (issuer.principal_prefix if issuer else "") + name


def _verify_decoded(token: str, unverified: dict, issuers: tuple[Issuer, ...],
                    cache: KeyCache) -> tuple[Claims, _KeySet, float]:
    header, iss = unverified["header"], unverified["payload"].get("iss")
    alg = header.get("alg")
    if not isinstance(alg, str):
        raise TokenError("the token's header names no algorithm (alg)", "malformed_jwt")
    if alg.lower() == "none":
        raise TokenError("unsigned tokens (alg none) are refused", "algorithm_refused")
    if alg.startswith("HS"):
        raise TokenError(f"symmetric algorithm {alg} is refused: identity providers sign with their private key",
                         "algorithm_refused")
    issuer = next((i for i in issuers if isinstance(iss, str) and i.issuer == iss), None)
    if issuer is None:
        raise TokenError("the token's issuer (iss) is not one declared in governance.yaml", "unknown_issuer")
    if alg not in issuer.algorithms or alg not in ASYMMETRIC:
        raise TokenError(f"algorithm {alg} is not accepted for this issuer (accepted: {', '.join(issuer.algorithms)})",
                         "algorithm_refused")
    kid = header.get("kid")
    if kid is not None and not isinstance(kid, str):
        raise TokenError("the token's key id (kid) is not a string", "malformed_jwt")
    jwk, ks, fetched = cache.key(issuer, kid)
    if jwk.get("kty") != KEY_TYPES[alg[:2]] or (alg in EC_CURVES and jwk.get("crv") != EC_CURVES[alg]) \
            or (jwk.get("alg") not in (None, alg)):
        raise TokenError(f"the issuer's key {kid or ''} is not a key for algorithm {alg}".replace("  ", " "), "unknown_key")
    try:
        key = jwt.PyJWK(jwk, alg)
    except (PyJWKError, InvalidKeyError, ValueError, TypeError):
        raise TokenError("the issuer's key could not be read", "unknown_key") from None
    try:
        claims = jwt.decode(token, key, algorithms=[alg], audience=list(issuer.audience), issuer=issuer.issuer,
                            leeway=issuer.leeway_seconds,
                            options={"require": ["exp", "iss", "aud"], "verify_signature": True})
    except jwt.ExpiredSignatureError:
        raise TokenError("the token expired", "expired") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("the token is not valid yet (nbf or iat in the future)", "not_yet_valid") from None
    except jwt.InvalidAudienceError:
        raise TokenError(f"the token's audience (aud) is not {' or '.join(issuer.audience)}", "wrong_audience") from None
    except jwt.InvalidIssuerError:
        raise TokenError("the token's issuer (iss) is not one declared in governance.yaml", "unknown_issuer") from None
    except jwt.MissingRequiredClaimError as e:
        raise TokenError(f"the token has no {e.claim} claim", "missing_claim") from None
    except jwt.InvalidSignatureError:
        raise TokenError("the token's signature does not verify", "bad_signature") from None
    except PyJWTError as e:  # PyJWT's own words name the claim at fault, never its value
        raise TokenError(f"the token is not valid: {str(e)[:200] or type(e).__name__}") from None
    return _claims(issuer, claims), ks, fetched


def _path(claims: dict, path: str) -> Any:
    """A claim by name, or by a dotted path into nested objects (``realm_access.roles``)."""
    if path in claims:
        return claims[path]
    value: Any = claims
    for part in path.split("."):
        if not isinstance(value, dict) or part not in value:
            return None
        value = value[part]
    return value


def _strings(claims: dict, path: str | None, what: str) -> tuple[str, ...]:
    if not path:
        return ()
    value = _path(claims, path)
    if value is None:
        return ()
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenError(f"the token's {what} claim {path!r} is not a string or a list of strings")
    return tuple(dict.fromkeys(value))


def _claims(issuer: Issuer, claims: dict) -> Claims:
    name = _path(claims, issuer.principal_claim)
    if not isinstance(name, str) or not name.strip():
        raise TokenError(f"the token has no principal: claim {issuer.principal_claim!r} is missing or not a string",
                         "missing_claim")
    name = issuer.principal_prefix + name
    if len(name) > MAX_NAME or any(ord(c) < 32 or ord(c) == 127 for c in name):
        raise TokenError(f"the token's principal claim {issuer.principal_claim!r} is not an acceptable name")
    if name.lower() in RESERVED_NAMES or name.lower().startswith(RESERVED_PREFIX):
        raise TokenError(f"the token's principal claim {issuer.principal_claim!r} names one of Quanta's own "
                         "principals", "reserved_claim")
    attributes = {}
    for attr, path in issuer.attribute_claims:
        values = _strings(claims, path, f"attribute {attr}")
        if values:
            attributes[attr] = list(values)
    exp = claims.get("exp")
    # an issuer with a prefix speaks for its own users only: its roles and groups are its own too ("partner:"
    # + "finance" is not the mesh's group finance), so it cannot claim the mesh's roles or approver groups
    roles = tuple(issuer.principal_prefix + r for r in _strings(claims, issuer.roles_claim, "roles"))
    groups = tuple(issuer.principal_prefix + g for g in _strings(claims, issuer.groups_claim, "groups"))
    return Claims(issuer.issuer, name, roles, groups, attributes,
                  float(exp) + issuer.leeway_seconds if isinstance(exp, (int, float)) else None)


# -- the principal --------------------------------------------------------------------------------------


def reserved_roles(gov) -> frozenset[str]:
    """Roles a claim may never carry: Quanta's own and those the governance treats specially."""
    return frozenset({*RESERVED_ROLES, gov.auditor_role, gov.engineer_role})


def check_claims(gov, claims: Claims) -> None:
    """``TokenError`` when a token claims what only ``governance.yaml`` may grant: a reserved role, or a name
    that would pass for another (approvers and grants name users and groups alike): a principal named like a
    group of the governance, or a group named like one of its principals or owners."""
    reserved = reserved_roles(gov)
    bad = [r for r in claims.roles if r in reserved]
    if bad:
        raise TokenError(f"the token claims the role {bad[0]!r}, which only governance.yaml grants", "reserved_claim")
    groups, people = _names(gov)
    if claims.name not in gov.principals and claims.name in groups:
        raise TokenError("the token's principal is named like a group of the governance", "reserved_claim")
    bad = [g for g in claims.groups if g in people]
    if bad:
        raise TokenError(f"the token claims the group {bad[0]!r}, which is the name of a principal", "reserved_claim")


def _names(gov) -> tuple[frozenset[str], frozenset[str]]:
    """(the groups the governance names: its principals' and its grants' to a group; the people it names: its
    principals and the quanta's owners), kept on the governance while its principals and grants stay."""
    key = (len(gov.principals), len(gov.grants))
    cached = gov.__dict__.get("_oidc_names")
    if cached is not None and cached[0] == key:
        return cached[1]
    groups = frozenset({g for p in gov.principals.values() for g in p.groups} |
                       {g.grantee for g in gov.grants if g.grantee_kind == "group"})
    people = frozenset(set(gov.principals) | {o for owners in getattr(gov, "owners", {}).values() for o in owners})
    gov.__dict__["_oidc_names"] = (key, (groups, people))
    return groups, people


def principal_of(gov, claims: Claims) -> Principal:
    """The principal of verified claims under the governance ``gov``: the file's principal of that name (if
    any) united with what the claims may grant (reserved roles never; undeclared roles ignored when the
    governance declares its roles; groups named like a principal never; the file's attributes win). Claims
    of an issuer the governance no longer declares grant nothing (an open session after a reload)."""
    file = gov.principals.get(claims.name)
    if not any(i.issuer == claims.issuer for i in getattr(gov, "issuers", ())):
        return file or Principal(claims.name, known=False)
    groups_of_gov, people = _names(gov)
    if file is None and claims.name in groups_of_gov:  # a reload made the name a group's: nothing from claims
        return Principal(claims.name, known=False)
    reserved = reserved_roles(gov)
    roles = [r for r in claims.roles if r not in reserved and r != "public" and (not gov.roles or r in gov.roles)]
    groups = tuple(g for g in claims.groups if g not in people)
    attributes = {**claims.attributes, **(file.attributes if file else {})}
    if file is None:
        return Principal(claims.name, tuple(roles), groups, attributes, known=True)
    return Principal(claims.name, tuple(dict.fromkeys(file.roles + tuple(roles))),
                     tuple(dict.fromkeys(file.groups + groups)), attributes, known=True)
