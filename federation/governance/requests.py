"""Access requests: a principal asks to read a dataset, for a purpose and a duration; an approver
named in the contract's ODCS ``roles`` (or an owner of the quantum, or a data engineer) approves or
denies; an approval is a grant to that user on that dataset, with an expiry.

Two levels: when the contract's roles name ``secondLevelApprovers`` as well as ``firstLevelApprovers``
(``approval_levels``), a request needs both approvals, in order, by two different principals: a
first-level approver (by name or group) first, then a second-level approver. Until then it stays
``pending`` at its ``pending_level``; a denial at any level ends it. With one level named (or none), one
approval suffices, by the named approvers, the quantum's owners or a data engineer.

Requests live in a transactional SQLite file in the mesh's state folder (``access.db``); approved ones
become grants when the mesh loads and, on the running platform, at once (``Platform.decide_access``).
Every change is also written, in the same transaction, to the ``access_events`` table, which the
webhook outbox (``federation.webhooks``) reads: no change is recorded without its event.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from dataclasses import dataclass, field
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
CREATE TABLE IF NOT EXISTS approvals (
    request_id INTEGER NOT NULL REFERENCES access_requests, level INTEGER NOT NULL, approver TEXT NOT NULL,
    approved_at TEXT NOT NULL, PRIMARY KEY (request_id, level), UNIQUE (request_id, approver));
CREATE TABLE IF NOT EXISTS access_events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, request_id INTEGER NOT NULL,
    level INTEGER, principal TEXT);
"""
# the number of approval levels a request needs, kept with it (older files: added on open)
LEVELS_COLUMN = "ALTER TABLE access_requests ADD COLUMN levels INTEGER NOT NULL DEFAULT 1"
SELECT = ("SELECT a.request_id, a.principal, a.quantum, a.dataset, a.purpose, a.days, a.status, a.requested_at, "
          "a.decided_by, a.decided_at, a.reason, a.expires, r.revoked_by, r.revoked_at, r.reason, {levels} "
          "FROM access_requests a LEFT JOIN revocations r USING (request_id)")


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
    levels: int = 1  # approvals needed, in order (2 when the contract names second-level approvers)
    approvals: list[dict] = field(default_factory=list)  # [{level, approver, approved_at}], in level order

    @property
    def pending_level(self) -> int | None:
        """The level whose approval a pending request waits for (1, then 2); ``None`` once decided."""
        return len(self.approvals) + 1 if self.status == "pending" else None

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
        out = dict(self.__dict__)
        out["approvals"] = [dict(a) for a in self.approvals]
        out["pending_level"] = self.pending_level
        return out


class AlreadyDecided(errors.Conflict):
    """A decision on a request someone else decided first (two approvers at once: the first one wins)."""

    code = "already_decided"
    sqlstate = "55000"  # object_not_in_prerequisite_state: the request is no longer pending


class SameApprover(errors.AccessDenied):
    """A second-level approval by the principal who gave the first one: two levels are two people."""

    code = "same_approver"


def approval_levels(mesh, governance, quantum: str, dataset: str) -> list[tuple[str, ...]]:
    """The approvers of a dataset's access requests, level by level: ``[]`` when nobody is named (the
    quantum's owners and data engineers approve), ``[first]`` for one level, ``[first, second]`` when a
    role of a contract covering the dataset names ``secondLevelApprovers`` (the strictest role decides:
    the request is for the dataset, whatever role the requester holds). First-level approvers are the
    contracts' ``firstLevelApprovers`` and the approvers of governance.yaml grants covering the dataset.
    Names are principals or groups of the governance."""
    first: list[str] = []
    second: list[str] = []
    q = mesh.quanta.get(quantum.lower()) if mesh is not None else None
    for cid in (q.contracts if q is not None else ()):
        contract = mesh.contracts.get(cid)
        if contract is None or dataset.lower() not in {str(d).lower() for d in contract.datasets}:
            continue
        for role in contract.raw.get("roles") or []:
            if not isinstance(role, dict):
                continue
            for level, out in (("firstLevelApprovers", first), ("secondLevelApprovers", second)):
                names = role.get(level)
                for name in ([names] if isinstance(names, str) else names if isinstance(names, list) else []):
                    if str(name) not in out:
                        out.append(str(name))
    ds = mesh.dataset(quantum, dataset) if mesh is not None else None
    if ds is not None and governance is not None:
        for g in governance.grants:
            if g.source == "governance" and g.approvers and g.covers(ds):
                first.extend(a for a in g.approvers if a not in first)
    if first and second:
        return [tuple(first), tuple(second)]
    return [tuple(first or second)] if (first or second) else []


def names_principal(names, principal, person: bool = True) -> str | None:
    """How ``principal`` is among ``names`` (its name, or one of its groups), or ``None``; its name counts only
    when ``person`` (``authorize.is_person``: a name only an identity provider asserts may be a group's)."""
    if person and principal.name in names:
        return principal.name
    return next((f"group {g}" for g in principal.groups if g in names), None)


class AccessRequests:
    """The access requests of one mesh (``access.db``), shared by processes (``statedb``: busy timeout, WAL).
    A decision reads and updates the request in one ``BEGIN IMMEDIATE`` transaction, so of two approvers
    deciding at once (two servers, a CLI) exactly one wins and the other gets ``AlreadyDecided``. In a
    state folder that cannot be written, requests list; asking or deciding raises ``statedb.ReadOnlyState``."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._db, self.read_only = statedb.connect(self.path, SCHEMA)
        self._lock = threading.RLock()
        self._select = SELECT.format(levels="a.levels")
        if self.read_only:  # a file of an older Quanta that cannot be upgraded: its missing tables read empty
            present = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            for stmt in SCHEMA.split(";"):
                name = stmt.split("IF NOT EXISTS", 1)[1].split("(", 1)[0].strip() if "IF NOT EXISTS" in stmt else None
                if name and name not in present:
                    try:
                        self._db.execute(stmt.replace("CREATE TABLE", "CREATE TEMP TABLE", 1))
                    except sqlite3.Error:
                        pass
        columns = {r[1] for r in self._db.execute("PRAGMA table_info(access_requests)")}
        if "levels" not in columns:  # a file of an older Quanta
            if self.read_only:
                self._select = SELECT.format(levels="1")
            else:
                try:
                    with statedb.transaction(self._db, self.path, "add approval levels to access requests"):
                        if "levels" not in {r[1] for r in self._db.execute("PRAGMA table_info(access_requests)")}:
                            self._db.execute(LEVELS_COLUMN)
                except errors.Error:
                    self._select = SELECT.format(levels="1")

    def _rows(self, where: str, args: tuple) -> list[AccessRequest]:
        with self._lock:
            rows = self._db.execute(f"{self._select} {where}", args).fetchall()
            ids = [r[0] for r in rows]
            approvals: dict[int, list[dict]] = {}
            if ids:
                marks = ", ".join("?" for _ in ids) if len(ids) < 500 else None
                sql = ("SELECT request_id, level, approver, approved_at FROM approvals"
                       + (f" WHERE request_id IN ({marks})" if marks else "") + " ORDER BY request_id, level")
                try:
                    found = self._db.execute(sql, tuple(ids) if marks else ()).fetchall()
                except sqlite3.OperationalError:  # a read-only file of an older Quanta: no approvals table
                    found = []
                for rid, level, approver, at in found:
                    approvals.setdefault(rid, []).append({"level": level, "approver": approver, "approved_at": at})
        return [AccessRequest(*r[:15], levels=int(r[15] or 1), approvals=approvals.get(r[0], [])) for r in rows]

    def _event(self, kind: str, request_id: int, level: int | None, principal: str, at: str) -> None:
        self._db.execute("INSERT INTO access_events (at, kind, request_id, level, principal) VALUES (?, ?, ?, ?, ?)",
                         (at, kind, request_id, level, principal))

    def events_after(self, event_id: int, limit: int = 500) -> list[dict]:
        """The access events after ``event_id``, oldest first (what the webhook outbox reads)."""
        names = ["event_id", "at", "kind", "request_id", "level", "principal"]
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(names)} FROM access_events WHERE event_id > ? "
                                    "ORDER BY event_id LIMIT ?", (event_id, limit)).fetchall()
        return [dict(zip(names, r)) for r in rows]

    def last_event_id(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT coalesce(max(event_id), 0) FROM access_events").fetchone()[0])

    def create(self, principal: str, quantum: str, dataset: str, purpose: str | None, days: int,
               levels: int = 1) -> AccessRequest:
        now = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
        with self._lock, statedb.transaction(self._db, self.path, f"record the access request of {principal}"):
            # one pending request per principal and dataset: asking again must not page the approvers again
            # (each request is an ``access_requested`` event, hence a webhook delivery)
            pending = self._db.execute(
                "SELECT request_id FROM access_requests WHERE principal = ? AND lower(quantum) = lower(?) AND "
                "lower(dataset) = lower(?) AND status = 'pending'", (principal, quantum, dataset)).fetchone()
            if pending is not None:
                raise errors.Conflict(f"{principal} already has a pending access request for {quantum}.{dataset} "
                                      f"(request {pending[0]}): wait for its decision")
            cur = self._db.execute(
                "INSERT INTO access_requests (principal, quantum, dataset, purpose, days, status, requested_at, levels) "
                "VALUES (?, ?, ?, ?, ?, 'pending', ?, ?)", (principal, quantum, dataset, purpose, days, now, levels))
            request_id = int(cur.lastrowid)
            self._event("access_requested", request_id, None, principal, now)
        return self.get(request_id)

    def get(self, request_id: int) -> AccessRequest | None:
        found = self._rows("WHERE a.request_id = ?", (request_id,))
        return found[0] if found else None

    def all(self) -> list[AccessRequest]:
        return self._rows("ORDER BY a.request_id", ())

    def decide(self, request_id: int, approver: str, approve: bool, days: int | None, reason: str | None,
               level: int = 1, levels: int = 1) -> AccessRequest:
        """Approve or deny a pending request at ``level`` (the level the caller checked ``approver`` for),
        once, in one ``BEGIN IMMEDIATE`` transaction: ``LookupError`` when there is no such request,
        ``AlreadyDecided`` (naming who decided, and when) when another approver or process decided it, or
        gave this level's approval, first; ``SameApprover`` when ``approver`` gave an earlier level's
        approval. The request is approved when its approvals reach ``levels`` (and the request's own)."""
        now = dt.datetime.now(dt.timezone.utc)
        at = now.isoformat(timespec="seconds")
        with self._lock, statedb.transaction(self._db, self.path, f"decide access request {request_id}"):
            found = self._rows("WHERE a.request_id = ?", (request_id,))
            if not found:
                raise LookupError("no such pending request")
            req = found[0]
            if req.status != "pending":
                raise AlreadyDecided(f"access request {request_id} was already {req.status} by {req.decided_by} "
                                     f"at {req.decided_at}")
            if req.pending_level != level:
                done = req.approvals[level - 1] if 0 < level <= len(req.approvals) else None
                raise AlreadyDecided(
                    f"the level-{level} approval of access request {request_id} was already given"
                    + (f" by {done['approver']} at {done['approved_at']}" if done else "")
                    + f"; it waits for its level-{req.pending_level} approval")
            if approve and any(a["approver"] == approver for a in req.approvals):
                raise SameApprover(f"{approver} gave the level-{req.approvals[0]['level']} approval of access "
                                   f"request {request_id}: another principal gives the level-{level} approval")
            needed = max(int(levels), req.levels)
            if approve and level < needed:  # one level of several: the request stays pending
                self._db.execute("INSERT INTO approvals VALUES (?, ?, ?, ?)", (request_id, level, approver, at))
                self._db.execute("UPDATE access_requests SET levels = ? WHERE request_id = ?", (needed, request_id))
                self._event("access_level_approved", request_id, level, approver, at)
            else:
                if approve:
                    self._db.execute("INSERT INTO approvals VALUES (?, ?, ?, ?)", (request_id, level, approver, at))
                expires = (now.date() + dt.timedelta(days=days or req.days)).isoformat() if approve else None
                self._db.execute(
                    "UPDATE access_requests SET status = ?, decided_by = ?, decided_at = ?, reason = ?, expires = ?, "
                    "days = ?, levels = ? WHERE request_id = ? AND status = 'pending'",
                    ("approved" if approve else "denied", approver, at, reason, expires, days or req.days, needed,
                     request_id))
                self._event("access_approved" if approve else "access_denied", request_id, level, approver, at)
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
            self._event("access_revoked", request_id, None, by, now)
        return self.get(request_id)

    def close(self) -> None:
        self._db.close()
