"""Authentication of PostgreSQL clients: SCRAM-SHA-256 (RFC 5802 / RFC 7677), the password being the
user's Quanta token.

Tokens are stored hashed by the token store, so the server cannot run SCRAM from them. Like
PostgreSQL, this module keeps SCRAM *verifiers* instead (salt, iteration count, StoredKey, ServerKey:
never the token), in ``<state dir>/pg_scram.db``; ``register_token(platform, token)`` adds one when a
token is created (``quanta token create`` and the tests call it). Every token of a principal shares
the principal's salt, so the server can send the salt before it knows which token the client holds
and then check the client proof against each of the principal's verifiers. A matching verifier is
accepted only while its token is still active in the token store (not revoked, not expired).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from ... import statedb

MECHANISM = "SCRAM-SHA-256"
ITERATIONS = 4096


def _hmac(key: bytes, msg: bytes) -> bytes:
    return hmac.new(key, msg, hashlib.sha256).digest()


def _h(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def derive(password: str, salt: bytes, iterations: int = ITERATIONS) -> tuple[bytes, bytes]:
    """(StoredKey, ServerKey) of a password (tokens are ASCII: SASLprep leaves them unchanged)."""
    salted = hashlib.pbkdf2_hmac("sha256", password.encode("utf-8"), salt, iterations)
    return _h(_hmac(salted, b"Client Key")), _hmac(salted, b"Server Key")


@dataclass(frozen=True)
class Verifier:
    token_id: str
    principal: str
    stored_key: bytes
    server_key: bytes


class VerifierStore:
    def __init__(self, path: Path):
        # shared by processes (busy timeout, WAL); read-only where the state folder cannot be written
        self._db, _ = statedb.connect(path, "CREATE TABLE IF NOT EXISTS salts (principal TEXT PRIMARY KEY, salt BLOB "
                                      "NOT NULL, iterations INTEGER NOT NULL); CREATE TABLE IF NOT EXISTS verifiers "
                                      "(token_id TEXT PRIMARY KEY, principal TEXT NOT NULL, stored_key BLOB NOT NULL, "
                                      "server_key BLOB NOT NULL);")
        self._lock = threading.Lock()
        self._fake = secrets.token_bytes(32)  # salts for unknown users: stable, reveal nothing

    def salt(self, principal: str, create: bool = False) -> tuple[bytes, int, bool]:
        """(salt, iterations, known) of a principal; a made-up stable salt for an unknown one."""
        with self._lock:
            row = self._db.execute("SELECT salt, iterations FROM salts WHERE principal = ?", (principal,)).fetchone()
            if row is None and create:  # another process may make it at the same time: the first one stays
                self._db.execute("INSERT OR IGNORE INTO salts VALUES (?, ?, ?)",
                                 (principal, secrets.token_bytes(16), ITERATIONS))
                row = self._db.execute("SELECT salt, iterations FROM salts WHERE principal = ?",
                                       (principal,)).fetchone()
        if row is None:
            return _hmac(self._fake, principal.encode())[:16], ITERATIONS, False
        return bytes(row[0]), int(row[1]), True

    def add(self, token_id: str, principal: str, password: str) -> None:
        salt, iterations, _ = self.salt(principal, create=True)
        stored, server = derive(password, salt, iterations)
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO verifiers VALUES (?, ?, ?, ?)",
                             (token_id, principal, stored, server))

    def verifiers(self, principal: str) -> list[Verifier]:
        with self._lock:
            rows = self._db.execute("SELECT token_id, principal, stored_key, server_key FROM verifiers "
                                    "WHERE principal = ?", (principal,)).fetchall()
        return [Verifier(r[0], r[1], bytes(r[2]), bytes(r[3])) for r in rows]


_stores: dict[Path, VerifierStore] = {}
_stores_lock = threading.Lock()


def store_for(platform) -> VerifierStore:
    path = Path(platform.state_dir) / "pg_scram.db"
    with _stores_lock:
        store = _stores.get(path)
        if store is None:
            store = _stores[path] = VerifierStore(path)
        return store


def register_token(platform, token: str) -> None:
    """Keep a SCRAM verifier of a valid token so PostgreSQL clients can log in with it."""
    principal = platform.tokens.verify(token)
    if principal is None:
        raise ValueError("not a valid token")
    token_id = token[3:].partition("_")[0]
    store_for(platform).add(token_id, principal, token)


def token_active(platform, token_id: str) -> bool:
    return any(i.token_id == token_id and i.status == "active" for i in platform.tokens.list())


class ScramError(Exception):
    """The exchange failed (28P01 for a wrong password, 08P01 for a malformed message)."""

    def __init__(self, message: str, sqlstate: str = "28P01"):
        super().__init__(message)
        self.sqlstate = sqlstate


def _attributes(text: str) -> dict[str, str]:
    out = {}
    for part in text.split(","):
        if len(part) >= 2 and part[1] == "=":
            out[part[0]] = part[2:]
    return out


class ScramServer:
    """One server side of a SCRAM-SHA-256 exchange for ``principal``."""

    def __init__(self, store: VerifierStore, principal: str):
        self.store = store
        self.principal = principal
        self.salt, self.iterations, self.known = store.salt(principal)
        self.nonce = ""
        self.client_first_bare = ""
        self.server_first = ""
        self.gs2_header = ""

    def first(self, client_first: str) -> str:
        """The server-first-message answering the client-first-message."""
        if client_first[:1] not in ("n", "y"):
            raise ScramError("channel binding is not supported by this server", "08P01")
        first_comma = client_first.find(",")
        second = client_first.find(",", first_comma + 1)
        if first_comma < 0 or second < 0:
            raise ScramError("malformed SCRAM client-first-message", "08P01")
        self.gs2_header = client_first[:second + 1]
        self.client_first_bare = client_first[second + 1:]
        attrs = _attributes(self.client_first_bare)
        client_nonce = attrs.get("r")
        if not client_nonce or "m" in attrs:
            raise ScramError("malformed SCRAM client-first-message", "08P01")
        self.nonce = client_nonce + base64.b64encode(secrets.token_bytes(18)).decode()
        self.server_first = f"r={self.nonce},s={base64.b64encode(self.salt).decode()},i={self.iterations}"
        return self.server_first

    def final(self, client_final: str) -> tuple[Verifier, str]:
        """(the matching verifier, the server-final-message); ``ScramError`` when the proof is wrong."""
        without_proof, sep, proof_b64 = client_final.rpartition(",p=")
        if not sep:
            raise ScramError("malformed SCRAM client-final-message", "08P01")
        attrs = _attributes(without_proof)
        if attrs.get("r") != self.nonce:
            raise ScramError("SCRAM nonce mismatch", "08P01")
        if attrs.get("c") != base64.b64encode(self.gs2_header.encode()).decode():
            raise ScramError("SCRAM channel binding mismatch", "08P01")
        try:
            proof = base64.b64decode(proof_b64, validate=True)
        except ValueError:
            raise ScramError("malformed SCRAM proof", "08P01") from None
        auth_message = f"{self.client_first_bare},{self.server_first},{without_proof}".encode()
        for verifier in self.store.verifiers(self.principal) if self.known else []:
            signature = _hmac(verifier.stored_key, auth_message)
            if len(proof) != len(signature):
                break
            client_key = bytes(a ^ b for a, b in zip(proof, signature))
            if hmac.compare_digest(_h(client_key), verifier.stored_key):
                server_signature = base64.b64encode(_hmac(verifier.server_key, auth_message)).decode()
                return verifier, f"v={server_signature}"
        raise ScramError(f'password authentication failed for user "{self.principal}"')
