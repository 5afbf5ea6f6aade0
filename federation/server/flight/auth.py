"""Who calls: the ``authorization`` header of every Flight call, checked by a server middleware.

Two forms, the same credentials as HTTP (``platform.identify``: a Quanta token, or a JWT of an identity
provider ``governance.yaml`` declares):

- ``Bearer <token>``: a Quanta token (``quanta token create``), a JWT, or a session token this server gave.
- ``Basic base64(principal:token)``: what ADBC and JDBC send for a user name and password. The driver
  calls ``Handshake`` with it and reads ``authorization: Bearer <session token>`` from the response
  headers, then sends that bearer on every call (the scheme of pyarrow's own
  ``authenticate_basic_token``). The token's principal must be the user name given.

A session token is random, kept only in this server's memory, and tied to its principal and to the token
it was opened with: it ends when that token is revoked or expires (checked on each call: one indexed read
of the token store; a JWT's expiry), and after ``flight_session_timeout_seconds`` without a call. A refusal
of a Quanta token says the same "invalid credentials" whatever was wrong, so a caller never learns whether a
user exists; a JWT's refusal says why (expired, wrong audience...), which names no user. Every refusal is
recorded (``platform.login_failed``: ``system.login_failures``), without the client's address, which a Flight
middleware is not told.

The principal is looked up on each call in the platform's current state, so a governance reload (roles,
groups, attributes taken away) applies to the next call of an open client. A declared purpose travels as
the ``x-quanta-purpose`` call header; the platform checks it (``require_purpose``).

``pyarrow.flight`` answers ``Handshake`` only when the server has a ``ServerAuthHandler``: ``NoOpAuthHandler``
accepts every handshake, the middleware being the one check.
"""

from __future__ import annotations

import base64
import binascii
import secrets
import threading
import time
from dataclasses import dataclass

import pyarrow.flight as flight

from ... import errors

PURPOSE_HEADER = "x-quanta-purpose"
SESSION_PREFIX = "qfs_"
MAX_PER_PRINCIPAL = 1000  # open sessions of one principal (each Handshake opens one)
INVALID = "invalid credentials: send 'authorization: Bearer <token>' (a Quanta token) or basic authentication " \
          "with a principal and one of its tokens"


@dataclass
class Session:
    principal: str
    token_id: str | None  # the Quanta token it was opened with (None: a JWT)
    expires: float  # monotonic; moved on by each call
    claims: object = None  # the JWT's claims (governance.oidc.Claims)
    credential_expires: float | None = None  # the JWT's expiry (epoch seconds)

    def ended(self, platform) -> bool:
        """Whether the credential it was opened with is no longer valid."""
        if self.credential_expires is not None and time.time() > self.credential_expires:
            return True
        return self.token_id is not None and not platform.tokens.active(self.token_id)


class Sessions:
    """The session tokens handed out by ``Handshake`` (in memory: a restarted server asks clients to log in
    again)."""

    def __init__(self, timeout):
        self.timeout = timeout  # a callable: the mesh's flight_session_timeout_seconds, read on each call
        self._lock = threading.Lock()
        self._sessions: dict[str, Session] = {}

    def open(self, principal: str, token_id: str | None, claims=None, credential_expires: float | None = None) -> str:
        """A new session token (a principal holding MAX_PER_PRINCIPAL sessions loses its least recently used)."""
        token = SESSION_PREFIX + secrets.token_urlsafe(32)
        with self._lock:
            mine = [(s.expires, t) for t, s in self._sessions.items() if s.principal == principal]
            if len(mine) >= MAX_PER_PRINCIPAL:
                del self._sessions[min(mine)[1]]
            self._sessions[token] = Session(principal, token_id, time.monotonic() + self.timeout(), claims,
                                            credential_expires)
        return token

    def get(self, token: str) -> Session | None:
        now = time.monotonic()
        with self._lock:
            session = self._sessions.get(token)
            if session is None:
                return None
            if session.expires < now:
                del self._sessions[token]
                return None
            session.expires = now + self.timeout()
            return session

    def end(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def sweep(self) -> None:
        now = time.monotonic()
        with self._lock:
            for token in [t for t, s in self._sessions.items() if s.expires < now]:
                del self._sessions[token]


class Caller(flight.ServerMiddleware):
    """One call's authenticated caller: a principal name and its JWT's claims if any (the principal is made
    again on each call: ``platform.principal(user, claims)``), the purpose it declares, and the session token
    to send back from a basic-auth ``Handshake``."""

    def __init__(self, user: str, purpose: str | None, answer: str | None = None, claims=None):
        self.user = user
        self.purpose = purpose
        self.claims = claims
        self._answer = answer

    def sending_headers(self):
        return {"authorization": f"Bearer {self._answer}"} if self._answer else {}


class AuthMiddlewareFactory(flight.ServerMiddlewareFactory):
    def __init__(self, platform, sessions: Sessions):
        self.platform = platform
        self.sessions = sessions

    def start_call(self, info, headers):
        try:
            return self._start(info, headers)
        except flight.FlightError:
            raise
        except Exception:  # never a traceback to the client; whatever failed, the answer is the same
            raise flight.FlightUnauthenticatedError(INVALID) from None

    def _start(self, info, headers) -> Caller:
        values = headers.get("authorization") or headers.get("Authorization") or []
        if len(values) != 1:
            self.platform.login_failed("flight", "malformed_credentials" if values else "no_credentials")
            raise flight.FlightUnauthenticatedError(INVALID if values else "no credentials: " + INVALID[21:])
        scheme, _, credential = values[0].strip().partition(" ")
        credential = credential.strip()
        purposes = headers.get(PURPOSE_HEADER) or []
        if len(purposes) > 1:
            raise flight.FlightUnauthenticatedError(f"one {PURPOSE_HEADER} header at most")
        purpose = purposes[0].strip() or None if purposes else None
        scheme = scheme.lower()
        if scheme == "bearer" and credential.startswith(SESSION_PREFIX):
            session = self.sessions.get(credential)
            if session is None or session.ended(self.platform):
                if session is not None:
                    self.sessions.end(credential)
                self.platform.login_failed("flight", "session_ended", session.principal if session else None,
                                           token_id=session.token_id if session else None)
                raise flight.FlightUnauthenticatedError("invalid credentials: the session ended (its token was "
                                                        "revoked or expired, or it was idle too long): log in again")
            return Caller(session.principal, purpose, claims=session.claims)
        if scheme == "bearer":
            identity = self._identify(credential)
            return Caller(identity.name, purpose, claims=identity.claims)
        if scheme == "basic":
            try:
                padded = credential + "=" * (-len(credential) % 4)  # ADBC's Go driver sends it unpadded
                user, sep, token = base64.b64decode(padded, validate=True).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError, ValueError):
                self.platform.login_failed("flight", "malformed_credentials")
                raise flight.FlightUnauthenticatedError("invalid credentials: malformed basic authentication") \
                    from None
            if not sep:
                self.platform.login_failed("flight", "malformed_credentials")  # no user: it may be the secret
                raise flight.FlightUnauthenticatedError(INVALID)
            identity = self._identify(token, user)
            answer = None
            if info.method == flight.FlightMethod.HANDSHAKE:
                answer = self.sessions.open(user, identity.token_id, identity.claims, identity.expires_at)
            return Caller(user, purpose, answer, identity.claims)
        self.platform.login_failed("flight", "malformed_credentials")
        raise flight.FlightUnauthenticatedError(INVALID)

    def _identify(self, credential: str, user: str | None = None):
        """``platform.identify`` (which records a refusal; a middleware does not know the client's address),
        its refusal as UNAUTHENTICATED (a JWT's says why; a Quanta token's never)."""
        try:
            return self.platform.identify(credential, "flight", None, user)
        except errors.LoginThrottled as e:  # too many failed logins of this user lately: unchecked
            raise flight.FlightUnauthenticatedError(f"invalid credentials: {e.message}") from None
        except errors.AuthenticationError as e:
            if credential.startswith("qt_") or not e.message.startswith("JWT"):
                raise flight.FlightUnauthenticatedError(INVALID) from None
            raise flight.FlightUnauthenticatedError(f"invalid credentials: {e.message}") from None


class NoOpAuthHandler(flight.ServerAuthHandler):
    """Lets ``Handshake`` through (the middleware authenticates every call, the handshake included)."""

    def authenticate(self, outgoing, incoming):
        pass

    def is_valid(self, token):
        return ""
