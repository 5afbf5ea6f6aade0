"""Bearer tokens for the remote interfaces (HTTP, PostgreSQL wire): each maps to a principal.

A token is ``qt_<id>_<secret>``; only the id, a random salt and SHA-256(salt + secret) are stored
(in the mesh's state database), so the file never holds a usable token. Verification looks the id
up and compares hashes in constant time. Tokens expire and can be revoked.

A token is also the password of its principal over the PostgreSQL wire (SCRAM-SHA-256), so its SCRAM
verifier (salt, iteration count, StoredKey, ServerKey: never the token) is derived by ``scramp`` when the
token is created and kept in ``pg_scram.db`` beside ``tokens.db`` (``ScramVerifiers``): a token made by
the CLI, the HTTP service or the Python API (``platform.tokens.create``) logs in at once. Every token of
a principal shares the principal's salt, so the server can send the salt before it knows which token
the client holds.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from .. import statedb

PREFIX = "qt_"
SCRAM_ITERATIONS = 4096  # PostgreSQL's scram_iterations default


@dataclass(frozen=True)
class TokenInfo:
    token_id: str
    principal: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None

    @property
    def status(self) -> str:
        if self.revoked_at:
            return "revoked"
        if self.expires_at and self.expires_at < datetime.now(timezone.utc):
            return "expired"
        return "active"


def _hash(salt: str, secret: str) -> str:
    return hashlib.sha256((salt + secret).encode()).hexdigest()


SCHEMA = ("CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, principal TEXT NOT NULL, "
          "salt TEXT NOT NULL, hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, revoked_at TEXT)")


@dataclass(frozen=True)
class Verifier:
    """The SCRAM-SHA-256 verifier of one token."""

    token_id: str
    principal: str
    stored_key: bytes
    server_key: bytes


def derive(password: str, salt: bytes, iterations: int = SCRAM_ITERATIONS) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of a password (RFC 5802), by scramp (SASLprep included)."""
    # imported when a token is made, not with the store
    from scramp import ScramMechanism

    _, stored, server, _ = ScramMechanism("SCRAM-SHA-256").make_auth_info(password, iterations, salt)
    return stored, server


SCRAM_SCHEMA = ("CREATE TABLE IF NOT EXISTS salts (principal TEXT PRIMARY KEY, salt BLOB NOT NULL, "
                "iterations INTEGER NOT NULL); CREATE TABLE IF NOT EXISTS verifiers (token_id TEXT PRIMARY KEY, "
                "principal TEXT NOT NULL, stored_key BLOB NOT NULL, server_key BLOB NOT NULL);")


class ScramVerifiers:
    """The SCRAM verifiers of a mesh's tokens (``pg_scram.db``): one salt per principal, one verifier per token."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db, self.read_only = statedb.connect(self.path, SCRAM_SCHEMA)
        self._lock = threading.Lock()
        self._fake = secrets.token_bytes(32)  # salts for unknown users: stable, reveal nothing

    def _write(self, sql: str, args: tuple, what: str) -> None:
        try:
            self._db.execute(sql, args)
        except sqlite3.Error as e:
            raise statedb.write_error(self.path, e, what) from None

    def salt(self, principal: str, create: bool = False, what: str = "") -> tuple[bytes, int, bool]:
        """(salt, iterations, known) of a principal; a made-up stable salt for an unknown one."""
        with self._lock:
            row = self._db.execute("SELECT salt, iterations FROM salts WHERE principal = ?", (principal,)).fetchone()
            if row is None and create:  # another process may make it at the same time: the first one stays
                self._write("INSERT OR IGNORE INTO salts VALUES (?, ?, ?)",
                            (principal, secrets.token_bytes(16), SCRAM_ITERATIONS),
                            what or f"keep the SCRAM salt of {principal}")
                row = self._db.execute("SELECT salt, iterations FROM salts WHERE principal = ?",
                                       (principal,)).fetchone()
        if row is None:
            return hmac.new(self._fake, principal.encode(), hashlib.sha256).digest()[:16], SCRAM_ITERATIONS, False
        return bytes(row[0]), int(row[1]), True

    def add(self, token_id: str, principal: str, token: str, what: str = "") -> None:
        """Keep the verifier of ``token`` (the password) for ``principal`` (``what``: the action a failed write
        names)."""
        salt, iterations, _ = self.salt(principal, create=True, what=what)
        stored, server = derive(token, salt, iterations)
        with self._lock:
            self._write("INSERT OR REPLACE INTO verifiers VALUES (?, ?, ?, ?)", (token_id, principal, stored, server),
                        what or f"keep the SCRAM verifier of token {token_id}")

    def verifiers(self, principal: str) -> list[Verifier]:
        with self._lock:
            rows = self._db.execute("SELECT token_id, principal, stored_key, server_key FROM verifiers "
                                    "WHERE principal = ?", (principal,)).fetchall()
        return [Verifier(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]

    def close(self) -> None:
        self._db.close()


class TokenStore:
    """The tokens of one mesh (``tokens.db``), shared by processes (``statedb``: busy timeout, WAL; each write
    is one statement). In a state folder that cannot be written, tokens verify and list; creating or revoking
    one raises ``statedb.ReadOnlyState``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db, self.read_only = statedb.connect(self.path, SCHEMA)
        self._lock = threading.Lock()
        self._scram: ScramVerifiers | None = None

    @property
    def scram(self) -> ScramVerifiers:
        """The SCRAM verifiers of these tokens (``pg_scram.db`` beside ``tokens.db``), opened when first used."""
        with self._lock:
            if self._scram is None:
                self._scram = ScramVerifiers(self.path.with_name("pg_scram.db"))
            return self._scram

    def _write(self, sql: str, args: tuple, what: str) -> sqlite3.Cursor:
        with self._lock:
            try:
                return self._db.execute(sql, args)
            except sqlite3.Error as e:
                raise statedb.write_error(self.path, e, what) from None

    def create(self, principal: str, expires_days: float | None = None) -> tuple[str, TokenInfo]:
        """A new token for ``principal``: returns the token (shown once) and what is stored about it. Its SCRAM
        verifier is kept first (a verifier without its token never authenticates: the token must be active)."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = datetime.now(timezone.utc)
        expires = now + timedelta(days=expires_days) if expires_days else None
        token = f"{PREFIX}{token_id}_{secret}"
        self.scram.add(token_id, principal, token, f"create a token for {principal}")
        self._write("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                    (token_id, principal, salt, _hash(salt, secret), now.isoformat(),
                     expires.isoformat() if expires else None), f"create a token for {principal}")
        return token, TokenInfo(token_id, principal, now, expires, None)

    def verify(self, token: str) -> str | None:
        """The principal a token belongs to, or None when it is unknown, wrong, expired or revoked."""
        if not isinstance(token, str) or not token.startswith(PREFIX) or token.count("_") < 2:
            return None
        token_id, _, secret = token[len(PREFIX):].partition("_")
        with self._lock:
            row = self._db.execute("SELECT principal, salt, hash, expires_at, revoked_at FROM tokens "
                                   "WHERE token_id = ?", (token_id,)).fetchone()
        if row is None:
            _hash("0" * 32, secret)  # same work either way
            return None
        principal, salt, stored, expires, revoked = row
        if not hmac.compare_digest(_hash(salt, secret), stored):
            return None
        if revoked or (expires and datetime.fromisoformat(expires) < datetime.now(timezone.utc)):
            return None
        return principal

    def active(self, token_id: str) -> bool:
        """Whether the token ``token_id`` is neither revoked nor expired (one indexed read)."""
        with self._lock:
            row = self._db.execute("SELECT expires_at, revoked_at FROM tokens WHERE token_id = ?",
                                   (token_id,)).fetchone()
        if row is None or row[1]:
            return False
        return not row[0] or datetime.fromisoformat(row[0]) > datetime.now(timezone.utc)

    def status(self, token_id: str) -> str | None:
        """'active', 'revoked' or 'expired' for a token id the store knows, None for another (one indexed read;
        the log of failed logins records only ids the store knows)."""
        with self._lock:
            row = self._db.execute("SELECT expires_at, revoked_at FROM tokens WHERE token_id = ?",
                                   (token_id,)).fetchone()
        if row is None:
            return None
        if row[1]:
            return "revoked"
        return "expired" if row[0] and datetime.fromisoformat(row[0]) <= datetime.now(timezone.utc) else "active"

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute("SELECT token_id, principal, created_at, expires_at, revoked_at FROM tokens "
                                    "ORDER BY created_at").fetchall()
        return [TokenInfo(r[0], r[1], datetime.fromisoformat(r[2]),
                          datetime.fromisoformat(r[3]) if r[3] else None,
                          datetime.fromisoformat(r[4]) if r[4] else None) for r in rows]

    def revoke(self, token_id: str) -> bool:
        token_id = token_id[len(PREFIX):].split("_")[0] if token_id.startswith(PREFIX) else token_id
        cur = self._write("UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                          (datetime.now(timezone.utc).isoformat(), token_id), f"revoke token {token_id}")
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()
        if self._scram is not None:
            self._scram.close()
