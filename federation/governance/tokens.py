"""Bearer tokens for the remote interfaces (HTTP, PostgreSQL wire): each maps to a principal.

A token is ``qt_<id>_<secret>``; only the id, a random salt and SHA-256(salt + secret) are stored
(in the mesh's state database), so the file never holds a usable token. Verification looks the id
up and compares hashes in constant time. Tokens expire and can be revoked.
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

PREFIX = "qt_"


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


class TokenStore:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("CREATE TABLE IF NOT EXISTS tokens (token_id TEXT PRIMARY KEY, principal TEXT NOT NULL, "
                         "salt TEXT NOT NULL, hash TEXT NOT NULL, created_at TEXT NOT NULL, expires_at TEXT, "
                         "revoked_at TEXT)")

    def create(self, principal: str, expires_days: float | None = None) -> tuple[str, TokenInfo]:
        """A new token for ``principal``: returns the token (shown once) and what is stored about it."""
        token_id = secrets.token_hex(6)
        secret = secrets.token_urlsafe(32)
        salt = secrets.token_hex(16)
        now = datetime.now(timezone.utc)
        expires = now + timedelta(days=expires_days) if expires_days else None
        with self._lock:
            self._db.execute("INSERT INTO tokens VALUES (?, ?, ?, ?, ?, ?, NULL)",
                             (token_id, principal, salt, _hash(salt, secret), now.isoformat(),
                              expires.isoformat() if expires else None))
        return f"{PREFIX}{token_id}_{secret}", TokenInfo(token_id, principal, now, expires, None)

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

    def list(self) -> list[TokenInfo]:
        with self._lock:
            rows = self._db.execute("SELECT token_id, principal, created_at, expires_at, revoked_at FROM tokens "
                                    "ORDER BY created_at").fetchall()
        return [TokenInfo(r[0], r[1], datetime.fromisoformat(r[2]),
                          datetime.fromisoformat(r[3]) if r[3] else None,
                          datetime.fromisoformat(r[4]) if r[4] else None) for r in rows]

    def revoke(self, token_id: str) -> bool:
        token_id = token_id[len(PREFIX):].split("_")[0] if token_id.startswith(PREFIX) else token_id
        with self._lock:
            cur = self._db.execute("UPDATE tokens SET revoked_at = ? WHERE token_id = ? AND revoked_at IS NULL",
                                   (datetime.now(timezone.utc).isoformat(), token_id))
        return cur.rowcount == 1

    def close(self) -> None:
        self._db.close()
