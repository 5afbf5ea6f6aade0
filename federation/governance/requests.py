"""Access requests: a principal asks to read a dataset, for a purpose and a duration; an approver
named in the contract's ODCS ``roles`` (or an owner of the quantum, or a data engineer) approves or
denies; an approval is a grant to that user on that dataset, with an expiry.

Requests live in a transactional SQLite file in the mesh's state folder (``access.db``); approved ones
become grants when the mesh loads and, on the running platform, at once (``Platform.decide_access``).
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

from .. import errors, statedb

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_requests (
    request_id INTEGER PRIMARY KEY, principal TEXT NOT NULL, quantum TEXT NOT NULL, dataset TEXT NOT NULL,
    purpose TEXT, days INTEGER NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL,
    decided_by TEXT, decided_at TEXT, reason TEXT, expires TEXT);
CREATE TABLE IF NOT EXISTS revocations (
    request_id INTEGER PRIMARY KEY REFERENCES access_requests, revoked_by TEXT NOT NULL, revoked_at TEXT NOT NULL,
    reason TEXT);
"""
SELECT = ("SELECT a.request_id, a.principal, a.quantum, a.dataset, a.purpose, a.days, a.status, a.requested_at, "
          "a.decided_by, a.decided_at, a.reason, a.expires, r.revoked_by, r.revoked_at, r.reason FROM access_requests a "
          "LEFT JOIN revocations r USING (request_id)")


@dataclass
class AccessRequest:
    request_id: int
    principal: str
    quantum: str
    dataset: str
    purpose: str | None
    days: int
    status: str  # pending | approved | denied | revoked (``effective_status``: expired after ``expires``)
    requested_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    expires: str | None = None  # ISO date, for approved requests
    revoked_by: str | None = None
    revoked_at: str | None = None
    revoke_reason: str | None = None

    @property
    def effective_status(self) -> str:
        """``expired`` for an approved request past its expiry date, else its status."""
        if self.status == "approved" and self.expires and dt.date.fromisoformat(self.expires) < dt.date.today():
            return "expired"
        return self.status

    @property
    def dataset_name(self) -> str:
        return f"{self.quantum}.{self.dataset}"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class AlreadyDecided(errors.Conflict):
    """A decision on a request someone else decided first (two approvers at once: the first one wins)."""

    code = "already_decided"
    sqlstate = "55000"  # object_not_in_prerequisite_state: the request is no longer pending


class AccessRequests:
    """The access requests of one mesh (``access.db``), shared by processes (``statedb``: busy timeout, WAL).
    A decision reads and updates the request in one ``BEGIN IMMEDIATE`` transaction, so of two approvers
    deciding at once (two servers, a CLI) exactly one wins and the other gets ``AlreadyDecided``. In a
    state folder that cannot be written, requests list; asking or deciding raises ``statedb.ReadOnlyState``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db, self.read_only = statedb.connect(self.path, SCHEMA)
        self._lock = threading.RLock()

    def _row(self, row) -> AccessRequest:
        return AccessRequest(*row)

    def create(self, principal: str, quantum: str, dataset: str, purpose: str | None, days: int) -> AccessRequest:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            try:
                cur = self._db.execute(
                    "INSERT INTO access_requests (principal, quantum, dataset, purpose, days, status, requested_at) "
                    "VALUES (?, ?, ?, ?, ?, 'pending', ?)", (principal, quantum, dataset, purpose, days, now))
            except sqlite3.Error as e:
                raise statedb.write_error(self.path, e, f"record the access request of {principal}") from None
            return self.get(int(cur.lastrowid))

    def get(self, request_id: int) -> AccessRequest | None:
        with self._lock:
            row = self._db.execute(f"{SELECT} WHERE a.request_id = ?", (request_id,)).fetchone()
        return self._row(row) if row else None

    def all(self) -> list[AccessRequest]:
        with self._lock:
            rows = self._db.execute(f"{SELECT} ORDER BY a.request_id").fetchall()
        return [self._row(r) for r in rows]

    def decide(self, request_id: int, approver: str, approve: bool, days: int | None, reason: str | None) -> AccessRequest:
        """Approve or deny a pending request, once: ``LookupError`` when there is no such request,
        ``AlreadyDecided`` (naming who decided, and when) when another approver or process decided it first."""
        now = dt.datetime.now(dt.timezone.utc)
        what = f"decide access request {request_id}"
        with self._lock, statedb.transaction(self._db, self.path, what):
            row = self._db.execute(f"{SELECT} WHERE a.request_id = ?", (request_id,)).fetchone()
            if row is None:
                raise LookupError("no such pending request")
            req = self._row(row)
            if req.status != "pending":
                raise AlreadyDecided(f"access request {request_id} was already {req.status} by {req.decided_by} "
                                     f"at {req.decided_at}")
            expires = (now.date() + dt.timedelta(days=days or req.days)).isoformat() if approve else None
            self._db.execute(
                "UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ?, reason = ?, expires = ?, "
                "days = ? WHERE request_id = ? AND status = 'pending'",
                ("approved" if approve else "denied", approver, now.isoformat(timespec="seconds"), reason,
                 expires, days or req.days, request_id))
        return self.get(request_id)

    def revoke(self, request_id: int, by: str, reason: str | None) -> AccessRequest:
        """End an approved request's grant now; a grant is revoked once (``LookupError`` otherwise)."""
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._lock, statedb.transaction(self._db, self.path, f"revoke access request {request_id}"):
            cur = self._db.execute("UPDATE access_requests SET status = 'revoked' WHERE request_id = ? AND "
                                   "status = 'approved'", (request_id,))
            if cur.rowcount != 1:
                raise LookupError("no such approved request")
            self._db.execute("INSERT OR REPLACE INTO revocations VALUES (?, ?, ?, ?)", (request_id, by, now, reason))
        return self.get(request_id)

    def close(self) -> None:
        self._db.close()
