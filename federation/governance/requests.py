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

SCHEMA = """
CREATE TABLE IF NOT EXISTS access_requests (
    request_id INTEGER PRIMARY KEY, principal TEXT NOT NULL, quantum TEXT NOT NULL, dataset TEXT NOT NULL,
    purpose TEXT, days INTEGER NOT NULL, status TEXT NOT NULL, requested_at TEXT NOT NULL,
    decided_by TEXT, decided_at TEXT, reason TEXT, expires TEXT)
"""


@dataclass
class AccessRequest:
    request_id: int
    principal: str
    quantum: str
    dataset: str
    purpose: str | None
    days: int
    status: str  # pending | approved | denied
    requested_at: str
    decided_by: str | None = None
    decided_at: str | None = None
    reason: str | None = None
    expires: str | None = None  # ISO date, for approved requests

    @property
    def dataset_name(self) -> str:
        return f"{self.quantum}.{self.dataset}"

    def to_dict(self) -> dict:
        return dict(self.__dict__)


class AccessRequests:
    def __init__(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(SCHEMA)
        self._lock = threading.Lock()

    def _row(self, row) -> AccessRequest:
        return AccessRequest(*row)

    def create(self, principal: str, quantum: str, dataset: str, purpose: str | None, days: int) -> AccessRequest:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO access_requests (principal, quantum, dataset, purpose, days, status, requested_at) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?)", (principal, quantum, dataset, purpose, days, now))
            return self.get(int(cur.lastrowid))

    def get(self, request_id: int) -> AccessRequest | None:
        row = self._db.execute("SELECT * FROM access_requests WHERE request_id = ?", (request_id,)).fetchone()
        return self._row(row) if row else None

    def all(self) -> list[AccessRequest]:
        return [self._row(r) for r in self._db.execute("SELECT * FROM access_requests ORDER BY request_id")]

    def decide(self, request_id: int, approver: str, approve: bool, days: int | None, reason: str | None) -> AccessRequest:
        """Approve or deny a pending request (atomically: a request is decided once)."""
        now = dt.datetime.now(dt.timezone.utc)
        with self._lock:
            req = self.get(request_id)
            if req is None or req.status != "pending":
                raise LookupError("no such pending request")
            expires = (now.date() + dt.timedelta(days=days or req.days)).isoformat() if approve else None
            cur = self._db.execute(
                "UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ?, reason = ?, expires = ?, "
                "days = ? WHERE request_id = ? AND status = 'pending'",
                ("approved" if approve else "denied", approver, now.isoformat(timespec="seconds"), reason, expires,
                 days or req.days, request_id))
            if cur.rowcount != 1:
                raise LookupError("no such pending request")
            return self.get(request_id)

    def close(self) -> None:
        self._db.close()
