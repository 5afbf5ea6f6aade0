"""Authentication of PostgreSQL clients: SCRAM-SHA-256 (RFC 5802 / RFC 7677) by ``scramp``, the password
being the user's Quanta token.

Tokens are stored hashed by the token store, so the server cannot run SCRAM from them. Like PostgreSQL,
the token store keeps SCRAM *verifiers* instead (salt, iteration count, StoredKey, ServerKey: never the
token), derived when a token is created (``governance.tokens.ScramVerifiers``, ``<state dir>/pg_scram.db``).
Every token of a principal shares the principal's salt, so the server sends the salt before it knows
which token the client holds, then checks the client's proof against each of the principal's verifiers
(one scramp server each, all with the same nonce, hence the same server-first-message). A matching
verifier is accepted only while its token is still active (not revoked, not expired).

JWTs of an identity provider (``governance.oidc``) cannot go through SCRAM: the server must see the token to
verify its signature. When ``governance.yaml`` declares ``issuers``, the server asks for the password itself
(AuthenticationCleartextPassword, as Neon, Azure Database for PostgreSQL with Entra ID tokens and Amazon RDS
with IAM tokens do) on a TLS connection or one from a loopback address (``password_login``); the password is
then a JWT or a Quanta token, both checked by ``platform.identify``, and its principal must be the startup
packet's user. Other connections keep SCRAM (Quanta tokens only): a token never travels unencrypted over a
network. The choice depends on the connection and the mesh only, never on the user, so it does not tell
whether a user exists or holds tokens. (PostgreSQL 18's SASL OAUTHBEARER would carry a bearer token too, but
needs libpq 18 built with OAuth support and a token flow configured in each client: not what clients have.)
"""

from __future__ import annotations

import ipaddress
import secrets

from scramp import ScramException, ScramMechanism
from scramp.utils import ServerError

from ...governance.tokens import ScramVerifiers, Verifier, derive

__all__ = ["MECHANISM", "ScramError", "ScramServer", "Verifier", "derive", "password_login", "register_token",
           "store_for", "token_active"]

MECHANISM = "SCRAM-SHA-256"
_MECHANISM = ScramMechanism(MECHANISM)


def store_for(platform) -> ScramVerifiers:
    """The SCRAM verifiers of a platform's tokens."""
    return platform.tokens.scram


def register_token(platform, token: str) -> None:
    """Keep the SCRAM verifier of a valid token (``TokenStore.create`` already does: this is for a token
    whose verifier was lost, and for callers written before it did)."""
    principal = platform.tokens.verify(token)
    if principal is None:
        raise ValueError("not a valid token")
    store_for(platform).add(token[3:].partition("_")[0], principal, token)


def password_login(platform, tls_active: bool, sock) -> bool:
    """Whether to ask for the password itself (a JWT may be it): the mesh trusts identity providers and the
    password cannot be read on the way (TLS, or a loopback connection)."""
    if not getattr(platform.state.governance, "issuers", ()):
        return False
    if tls_active:
        return True
    try:
        host = sock.getpeername()[0]
        address = ipaddress.ip_address(host.partition("%")[0])
    except (OSError, ValueError, IndexError, TypeError):
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def token_active(platform, token_id: str) -> bool:
    return platform.tokens.active(token_id)


class ScramError(Exception):
    """The exchange failed (28P01 for a wrong password, 08P01 for a malformed message)."""

    def __init__(self, message: str, sqlstate: str = "28P01"):
        super().__init__(message)
        self.sqlstate = sqlstate


class ScramServer:
    """One server side of a SCRAM-SHA-256 exchange for ``principal`` (``s_nonce``: the server's part of the
    nonce, random unless given)."""

    def __init__(self, store, principal: str, s_nonce: str | None = None):
        self.principal = principal
        salt, iterations, known = store.salt(principal)
        verifiers = store.verifiers(principal) if known else []
        if not verifiers:  # an unknown user or one without tokens: the same exchange, which then fails
            verifiers = [Verifier("", principal, secrets.token_bytes(32), secrets.token_bytes(32))]
        nonce = s_nonce or secrets.token_urlsafe(18)
        self._servers = [(v, _MECHANISM.make_server(_auth(salt, iterations, v), s_nonce=nonce)) for v in verifiers]

    def first(self, client_first: str) -> str:
        """The server-first-message answering the client-first-message."""
        if client_first[:1] not in ("n", "y"):
            raise ScramError("channel binding is not supported by this server", "08P01")
        header, _, bare = client_first.partition(",")
        authzid, _, bare = bare.partition(",")
        given = client_first
        if bare.startswith("n=,"):  # libpq and asyncpg send no user name (the startup packet's is the user), which
            given = f"{header},{authzid},n=*,{bare[3:]}"  # scramp refuses: it reads "*", then signs what was sent
        out = None
        for _, server in self._servers:
            try:
                server.set_client_first(given)
                server.client_first_bare = bare  # the AuthMessage is made of the client's own message
                out = server.get_server_first()
            except ScramException as e:
                raise ScramError(f"malformed SCRAM client-first-message: {e}", "08P01") from None
        assert out is not None
        return out

    def final(self, client_final: str) -> tuple[Verifier, str]:
        """(the matching verifier, the server-final-message); ``ScramError`` when the proof is wrong."""
        for verifier, server in self._servers:
            try:
                server.set_client_final(client_final)
            except ScramException as e:
                if e.server_error == ServerError.INVALID_PROOF:
                    continue  # another of the principal's tokens, perhaps
                raise ScramError(f"SCRAM client-final-message refused: {e}", "08P01") from None
            if verifier.token_id:
                return verifier, server.get_server_final()
        raise ScramError(f'password authentication failed for user "{self.principal}"')


def _auth(salt: bytes, iterations: int, verifier: Verifier):
    def auth_fn(_username: str) -> tuple[bytes, bytes, bytes, int]:  # PostgreSQL clients send no SCRAM user name
        return salt, verifier.stored_key, verifier.server_key, iterations

    return auth_fn
