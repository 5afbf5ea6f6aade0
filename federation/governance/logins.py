"""Failed logins: every refused credential of every interface (HTTP 401, PostgreSQL wire 28P01/28000,
Flight SQL UNAUTHENTICATED), recorded by ``Platform.login_failed`` (which ``Platform.identify`` calls for
each refusal it makes) and shown to auditors only as ``system.login_failures``.

A row says: when (``first_at`` .. ``last_at``), on which ``interface``, why (``reason``, a category: see
``REASONS``), who the client *claimed* to be (``claimed_user``: the PostgreSQL user, the Flight basic user, or
the unverified principal claim of a JWT; nothing proves it), the issuer a JWT named when the governance
declares it, the id of a Quanta token the store knows (``token_id``: an id is not secret; an id the store does
not know is never recorded, as a mistyped token could put its secret there), the client's address when the
server knows it, and how many such failures (``failures``). Never a password, a token, a JWT or a part of one.

A flood cannot fill the disk or slow the server: failures are counted in memory, identical ones (same
interface, reason, claimed user, issuer, token id and address) in one row per ``INTERVAL`` seconds; at most
``MAX_KEYS`` distinct rows per interval, the rest folded into one row per interface and reason with no user,
token or address (``folded``). Rows are written to ``state.db`` in one batch per interval (a timer, or at once
when an auditor reads the table) and the table keeps the newest ``MAX_ROWS``. Recording a failure is a
dictionary update under a lock. A state folder that cannot be written keeps the rows in memory.
"""

from __future__ import annotations

import atexit
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pyarrow as pa

from .. import statedb

INTERVAL = 10.0  # seconds: identical failures within one interval are one row
MAX_KEYS = 50  # distinct rows per interval before failures are folded
MAX_ROWS = 200_000  # rows kept on disk (the oldest go first)
MAX_NAME = 128  # characters of a claimed user name kept

REASONS = {  # category -> what it means (the README and the table's readers)
    "no_credentials": "no token, password or authorization header",
    "malformed_credentials": "the credential is neither a Quanta token nor a JWT, or its encoding is broken",
    "unknown_token": "a Quanta token whose id the store does not know",
    "wrong_token_secret": "a Quanta token id the store knows, with the wrong secret",
    "token_revoked_or_expired": "a Quanta token that was revoked or expired",
    "wrong_password": "the SCRAM proof matches none of the user's tokens (PostgreSQL wire)",
    "user_mismatch": "the credential is valid but names another principal than the user given",
    "no_issuers": "a JWT, but governance.yaml declares no issuer",
    "malformed_jwt": "not a well-formed JWT",
    "algorithm_refused": "alg none, a symmetric algorithm, or one the issuer does not allow",
    "unknown_issuer": "the JWT's iss is not an issuer governance.yaml declares",
    "unknown_key": "the JWT's kid is not one of the issuer's keys, or its key does not fit the algorithm",
    "keys_unavailable": "the issuer's keys (JWKS) could not be fetched",
    "bad_signature": "the JWT's signature does not verify",
    "expired": "the JWT expired",
    "not_yet_valid": "the JWT's nbf or iat is in the future",
    "wrong_audience": "the JWT's aud is not the issuer's audience",
    "missing_claim": "the JWT lacks a required claim (exp, iss, aud, the principal)",
    "invalid_claims": "a claim is not acceptable (a name, roles or groups of the wrong shape)",
    "reserved_claim": "the JWT claims what only governance.yaml grants (a reserved role, a group's or a principal's name)",
    "session_ended": "a session's token is unknown, ended, or its credential was revoked or expired",
    "protocol_error": "the authentication exchange was malformed",
    "throttled": "refused unchecked: the client failed to log in too often lately (max_failed_logins)",
}

SCHEMA = pa.schema([
    ("id", pa.int64()), ("first_at", pa.timestamp("us", tz="UTC")), ("last_at", pa.timestamp("us", tz="UTC")),
    ("interface", pa.string()), ("reason", pa.string()), ("claimed_user", pa.string()), ("issuer", pa.string()),
    ("token_id", pa.string()), ("client_address", pa.string()), ("failures", pa.int64()), ("folded", pa.bool_()),
])

TABLE = ("CREATE TABLE IF NOT EXISTS login_failures (id INTEGER PRIMARY KEY, first_at TEXT, last_at TEXT, "
         "interface TEXT, reason TEXT, claimed_user TEXT, issuer TEXT, token_id TEXT, client_address TEXT, "
         "failures INTEGER, folded INTEGER)")


def clean(value, limit: int = MAX_NAME) -> str | None:
    """A claimed string as it may be shown: a string, control characters replaced, at most ``limit``
    characters (a longer one is cut and marked)."""
    if not isinstance(value, str) or not value:
        return None
    text = "".join("?" if ord(c) < 32 or 127 <= ord(c) < 160 else c for c in value)
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass
class _Count:
    first: float
    last: float
    n: int = 0


class LoginFailures:
    """The failed logins of one mesh (``<state>/state.db``, table ``login_failures``)."""

    def __init__(self, path: Path | None, interval: float = INTERVAL, max_keys: int = MAX_KEYS,
                 max_rows: int = MAX_ROWS):
        self.path = path
        self.interval, self.max_keys, self.max_rows = interval, max_keys, max_rows
        self._lock = threading.Lock()
        self._counts: dict[tuple, _Count] = {}
        self._started = 0.0  # monotonic start of the interval being counted
        self._timer: threading.Timer | None = None
        self._fresh: list[tuple] = []  # rows written since the engine's copy was made
        self._memory: list[tuple] = []  # every row, when the state folder cannot be written
        self._next_id = 1
        self._db: sqlite3.Connection | None = None
        self.problem: str | None = None
        if path is not None:
            self._db, self.problem = statedb.connect(Path(path), TABLE)
        _OPEN.add(self)  # counted failures are written when the process exits

    def record(self, interface: str, reason: str, claimed_user: str | None = None, issuer: str | None = None,
               token_id: str | None = None, client_address: str | None = None) -> None:
        """Count one failure (cheap: the rows are written once per interval)."""
        now = time.time()
        key = (interface, reason if reason in REASONS else "protocol_error", clean(claimed_user), clean(issuer, 512),
               clean(token_id, 64), clean(client_address, 64), False)
        with self._lock:
            if not self._counts:
                self._started = time.monotonic()
                if self._timer is None:
                    self._timer = threading.Timer(self.interval, self._tick)
                    self._timer.daemon = True
                    self._timer.start()
            elif time.monotonic() - self._started >= self.interval:
                self._flush_locked()
                self._started = time.monotonic()
            count = self._counts.get(key)
            if count is None:
                if len(self._counts) >= self.max_keys:  # a flood of distinct failures: fold the rest
                    key = (interface, key[1], None, None, None, None, True)
                    count = self._counts.get(key)
                if count is None:
                    count = self._counts[key] = _Count(now, now)
            count.last = now
            count.n += 1

    def _tick(self) -> None:
        with self._lock:
            self._timer = None
            self._flush_locked()

    def flush(self) -> None:
        """Write the counted failures now (an auditor reads the table)."""
        with self._lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if not self._counts:
            return
        counts, self._counts = self._counts, {}
        rows = [(datetime.fromtimestamp(c.first, timezone.utc).isoformat(),
                 datetime.fromtimestamp(c.last, timezone.utc).isoformat(), *key[:6], c.n, int(key[6]))
                for key, c in counts.items()]
        ids = None
        if self._db is not None and self.problem is None:
            try:
                with statedb.transaction(self._db, Path(self.path), "record failed logins") as db:
                    ids = [int(db.execute("INSERT INTO login_failures VALUES (NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                                          row).lastrowid) for row in rows]
                    db.execute("DELETE FROM login_failures WHERE id <= ?", (ids[-1] - self.max_rows,))
            except Exception as e:  # noqa: BLE001 - a full or read-only disk: keep serving, keep them in memory
                self.problem = str(e)
                statedb.warn_once(Path(self.path).parent, self.problem)
                ids = None
        if ids is None:
            ids = list(range(self._next_id, self._next_id + len(rows)))
        self._next_id = ids[-1] + 1
        written = [(i, *row) for i, row in zip(ids, rows)]
        self._fresh.extend(written)
        del self._fresh[:-self.max_rows]
        if self.problem is not None or self._db is None:
            self._memory.extend(written)
            del self._memory[:-self.max_rows]

    def history(self, limit: int = 100_000) -> pa.Table:
        """The rows on disk (the newest ``limit``, as many as the audit log's copy), for the engine's copy when
        a state is built."""
        with self._lock:
            self._flush_locked()
            if self._db is None or self.problem is not None:
                rows = self._memory[-limit:]
            else:
                rows = self._db.execute("SELECT * FROM (SELECT * FROM login_failures ORDER BY id DESC LIMIT ?) "
                                        "ORDER BY id", (limit,)).fetchall()
            self._fresh = []
        return _arrow(rows)

    def drain(self) -> pa.Table | None:
        """Rows written since the engine's copy was made (counted failures written first)."""
        with self._lock:
            self._flush_locked()
            rows, self._fresh = self._fresh, []
        return _arrow(rows) if rows else None

    def close(self) -> None:
        with self._lock:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            try:
                self._flush_locked()
            finally:
                if self._db is not None:
                    self._db.close()
                    self._db = None


_OPEN: "weakref.WeakSet[LoginFailures]" = weakref.WeakSet()


@atexit.register
def _flush_all() -> None:
    for log in list(_OPEN):
        try:
            log.flush()
        except Exception:  # noqa: BLE001,S110 - exiting: nothing more to do
            pass


def _arrow(rows: list[tuple]) -> pa.Table:
    cols: dict[str, list] = {name: [] for name in SCHEMA.names}
    for r in rows:
        for name, value in zip(SCHEMA.names, r):
            if name in ("first_at", "last_at"):
                value = datetime.fromisoformat(value)
            elif name == "folded":
                value = bool(value)
            cols[name].append(value)
    return pa.table({name: pa.array(values, type=SCHEMA.field(name).type) for name, values in cols.items()})
