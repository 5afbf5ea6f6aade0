"""Webhooks: the mesh tells other systems what happened, from a durable outbox, signed, never with data.

Declared in ``mesh.yaml`` (checked by ``webhook_config`` when the mesh loads: clear errors with YAML paths)::

    webhooks:
      - name: approvals                       # optional (default: host#digest of the URL); its key
        url: https://hooks.example.com/quanta # http or https; no credentials in it; redirects are not followed
        events: [access_requested, access_approved, access_denied]   # or ["*"]: every kind below
        secret_env: QUANTA_WEBHOOK_SECRET     # the environment variable holding the HMAC secret
        timeout: 10                           # seconds for a whole attempt (connect, send, answer); default 10
        max_attempts: 12                      # then the delivery is "dead" (listed; ``quanta webhooks retry``)

Event kinds (``EVENTS``): ``access_requested``, ``access_level_approved`` (the first of two levels),
``access_approved``, ``access_denied``, ``access_revoked`` (from ``access.db``'s ``access_events``, written in
the transaction of the change), ``version_published``, ``version_refused``, ``slo_breached``,
``quality_failed`` (from ``control.db``'s ``events``, written in the transaction of the publish, check or
SLO evaluation).

The outbox (``webhooks.db`` in the state folder, through ``statedb``) is fed from those two tables: ``pump``
reads the events after its cursor and, in one transaction, writes a delivery per matching hook and moves the
cursor, so an event is enqueued once, and an event recorded while no process pumped (a crash, a CLI
publish, a server down) is enqueued by the next one. The cursors start at the end of the tables the
first time a process sees webhooks declared: older history is not sent. The ``Deliverer`` (a thread of every
server, started by ``Platform.watch``; or ``quanta webhooks deliver``) takes due deliveries under a lease
(another process takes them only when the lease runs out: a delivery is sent at least once, rarely
twice), POSTs each hook's in order and the hooks side by side (a silent receiver delays only its own), marks them delivered on a 2xx answer only, and otherwise retries with exponential
back-off (2 s, 4 s, ... at most 30 min) until ``max_attempts``, then marks them ``dead``. Auditors and
data engineers list them (``quanta webhooks list``, ``GET /api/v1/webhook-deliveries``) and put a dead one
back (``quanta webhooks retry``).

A body is JSON: the event id (``id``, also ``X-Quanta-Event-Id``: receivers drop ids they have seen),
``kind``, ``mesh``, ``occurred_at``, ``quantum``, ``dataset``, the version or quality run id, and for
access events the request id, the requester, who acted, the level and the expiry. Never a data value: no
row, no sample, no rule failure example, no free text (purposes and reasons stay in Quanta: receivers
look the request up through the API with their own identity).

Signature (verify it before trusting a body)::

    X-Quanta-Timestamp: 1767225600                     (Unix seconds of this attempt)
    X-Quanta-Signature: sha256=<hex of HMAC-SHA256(secret, "<timestamp>." + raw body bytes)>

A receiver computes the HMAC of the timestamp header, a dot and the raw body with the secret, compares it
with ``hmac.compare_digest``, refuses timestamps older than a few minutes (a replayed request), and
deduplicates on ``X-Quanta-Event-Id`` (a retried event keeps its id). ``verify`` does the first two.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import logging
import os
import socket
import sqlite3
import ssl
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlsplit

from . import errors, statedb
from .webhook_config import DEFAULT_TIMEOUT, EVENTS, Hook, check_config, hooks_of  # noqa: F401 - re-exported

log = logging.getLogger("quanta.webhooks")

CONTROL_KINDS = {"version_published": "version_published", "onboarding_failed": "version_refused",
                 "slo_breached": "slo_breached", "check_failed": "quality_failed",
                 "quarantine_held": "quarantine_held", "quarantine_released": "quarantine_released",
                 "quarantine_dropped": "quarantine_dropped"}  # control.db kind -> event
FILE = "webhooks.db"
BASE_DELAY = 2.0
MAX_DELAY = 1800.0
BATCH = 500  # events read at once
BATCH_SENT = 10  # deliveries taken at once (under one lease)
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS cursors (source TEXT PRIMARY KEY, last_id INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS deliveries (
    delivery_id INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL, hook TEXT NOT NULL, url TEXT NOT NULL,
    kind TEXT NOT NULL, body TEXT NOT NULL, created_at TEXT NOT NULL, status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0, next_at REAL NOT NULL, lease_until REAL NOT NULL DEFAULT 0,
    last_status INTEGER, last_error TEXT, delivered_at TEXT, UNIQUE (event_id, hook));
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_at);
"""
COLUMNS = ["delivery_id", "event_id", "hook", "url", "kind", "body", "created_at", "status", "attempts", "next_at",
           "lease_until", "last_status", "last_error", "delivered_at"]


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The ``X-Quanta-Signature`` value of ``body`` sent at ``timestamp``."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify(secret: str, body: bytes, timestamp: str, signature: str, tolerance: float = 300.0,
           now: float | None = None) -> bool:
    """What a receiver checks: the signature of ``timestamp.body`` and a timestamp within ``tolerance`` s."""
    try:
        fresh = abs((time.time() if now is None else now) - int(timestamp)) <= tolerance
    except (TypeError, ValueError):
        return False
    return fresh and hmac.compare_digest(sign(secret, timestamp, body), str(signature))


def backoff(attempts: int, base: float = BASE_DELAY) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones: base, 2 base, 4 base, ... capped."""
    return min(base * 2 ** max(0, attempts - 1), MAX_DELAY)


# -- what the outbox reads --------------------------------------------------------------------------


def _control_events(state_dir: Path, after: int | None) -> tuple[list[dict], int]:
    """Control-plane events after ``after`` (None: only the last id), and the last id of the table."""
    path = Path(state_dir) / "control.db"
    if not path.exists():
        return [], 0
    db = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True, timeout=statedb.BUSY_TIMEOUT)
    try:
        if after is None:
            return [], int(db.execute("SELECT coalesce(max(event_id), 0) FROM events").fetchone()[0])
        names = ["event_id", "at", "kind", "quantum", "dataset", "version", "details"]
        rows = db.execute(f"SELECT {', '.join(names)} FROM events WHERE event_id > ? ORDER BY event_id LIMIT ?",
                          (after, BATCH)).fetchall()
        events = [dict(zip(names, r)) for r in rows]
        return events, events[-1]["event_id"] if events else after
    except sqlite3.OperationalError:  # no events table yet
        return [], after or 0
    finally:
        db.close()


def _control_body(e: dict) -> dict | None:
    kind = CONTROL_KINDS.get(e["kind"])
    if kind is None:
        return None
    body = {"kind": kind, "occurred_at": e["at"], "quantum": e["quantum"], "dataset": e["dataset"],
            "version": e["version"]}
    if kind == "quality_failed":
        try:
            run_id = (json.loads(e["details"]) or {}).get("run_id") if e["details"] else None
        except (ValueError, AttributeError):
            run_id = None
        body["run_id"] = str(run_id) if run_id is not None else None
    if kind.startswith("quarantine_"):  # the batch's id only: its counts and rules are for those who read it
        try:
            ident = (json.loads(e["details"]) or {}).get("quarantine") if e["details"] else None
        except (ValueError, AttributeError):
            ident = None
        body["quarantine"] = str(ident) if ident is not None else None
    return body


def _access_body(e: dict, requests) -> dict | None:
    if e["kind"] not in EVENTS:
        return None
    req = requests.get(e["request_id"])
    if req is None:
        return None
    body = {"kind": e["kind"], "occurred_at": e["at"], "quantum": req.quantum, "dataset": req.dataset,
            "request": {"id": req.request_id, "requester": req.principal, "by": e["principal"], "level": e["level"],
                        "levels": req.levels}}
    if e["kind"] == "access_approved":
        body["request"]["expires"] = req.expires
    return body


# -- the outbox ---------------------------------------------------------------------------------------


@dataclass
class Attempt:
    delivery_id: int
    hook: str
    status: str  # delivered | retry | dead
    http_status: int | None
    error: str | None


class Outbox:
    """The deliveries of one state folder (``webhooks.db``), shared by processes."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self.path = self.state_dir / FILE
        self._db, self.read_only = statedb.connect(self.path, SCHEMA, synchronous="FULL")
        self._lock = threading.RLock()

    def close(self) -> None:
        self._db.close()

    def _nonce(self) -> str:
        row = self._db.execute("SELECT value FROM outbox_meta WHERE key = 'nonce'").fetchone()
        if row:
            return row[0]
        nonce = uuid.uuid4().hex
        self._db.execute("INSERT INTO outbox_meta VALUES ('nonce', ?)", (nonce,))
        return nonce

    def pump(self, mesh_name: str, hooks: list[Hook], requests) -> int:
        """Enqueue the events recorded since the cursors, one delivery per matching hook; the number
        enqueued. Idempotent and safe between processes (one ``BEGIN IMMEDIATE`` per batch)."""
        if not hooks or self.read_only:
            return 0
        added = 0
        for source in ("control", "access"):
            while True:
                with self._lock, statedb.transaction(self._db, self.path, "enqueue webhook deliveries"):
                    nonce = self._nonce()
                    row = self._db.execute("SELECT last_id FROM cursors WHERE source = ?", (source,)).fetchone()
                    after = row[0] if row else None
                    if source == "control":
                        events, last = _control_events(self.state_dir, after)
                        bodies = [(e["event_id"], _control_body(e)) for e in events]
                    elif after is None:
                        events, last, bodies = [], requests.last_event_id(), []
                    else:
                        events = requests.events_after(after, BATCH)
                        last = events[-1]["event_id"] if events else after
                        bodies = [(e["event_id"], _access_body(e, requests)) for e in events]
                    for source_id, body in bodies:
                        if body is None:
                            continue
                        event_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"quanta:{nonce}:{source}:{source_id}"))
                        text = json.dumps({"id": event_id, "mesh": mesh_name, **body}, sort_keys=True,
                                          separators=(",", ":"), default=str)
                        for hook in hooks:
                            if hook.wants(body["kind"]):
                                cur = self._db.execute(
                                    "INSERT OR IGNORE INTO deliveries (event_id, hook, url, kind, body, created_at, "
                                    "status, next_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', 0)",
                                    (event_id, hook.name, hook.url, body["kind"], text, iso_now()))
                                added += cur.rowcount
                    self._db.execute("INSERT OR REPLACE INTO cursors VALUES (?, ?)", (source, last))
                if len(events) < BATCH:
                    break
        return added

    def _claim(self, now: float, due_by: float, limit: int, lease: float,
               after: dict[str, int]) -> dict[str, list[dict]]:
        """Up to ``limit`` due deliveries of each hook (above ``after[hook]``), leased, by hook."""
        out: dict[str, list[dict]] = {}
        with self._lock, statedb.transaction(self._db, self.path, "take webhook deliveries"):
            hooks = [h for (h,) in self._db.execute("SELECT DISTINCT hook FROM deliveries WHERE status = 'pending' "
                                                    "AND next_at <= ? AND lease_until <= ?", (due_by, now))]
            for hook in hooks:
                rows = self._db.execute(
                    f"SELECT {', '.join(COLUMNS)} FROM deliveries WHERE hook = ? AND status = 'pending' AND "
                    "next_at <= ? AND lease_until <= ? AND delivery_id > ? ORDER BY delivery_id LIMIT ?",
                    (hook, due_by, now, after.get(hook, 0), limit)).fetchall()
                for r in rows:
                    self._db.execute("UPDATE deliveries SET lease_until = ? WHERE delivery_id = ?",
                                     (now + lease, r[0]))
                if rows:
                    out[hook] = [dict(zip(COLUMNS, r)) for r in rows]
        return out

    def _record(self, row: dict, hook: Hook | None, ok: bool, http_status: int | None, error: str | None,
                base_delay: float) -> Attempt:
        attempts = row["attempts"] + 1
        dead = not ok and (hook is None or attempts >= hook.max_attempts)
        status = "delivered" if ok else "dead" if dead else "pending"
        with self._lock, statedb.transaction(self._db, self.path, "record a webhook delivery"):
            self._db.execute(
                "UPDATE deliveries SET status = ?, attempts = ?, next_at = ?, lease_until = 0, last_status = ?, "
                "last_error = ?, delivered_at = ? WHERE delivery_id = ? AND status = 'pending'",
                (status, attempts, time.time() + backoff(attempts, base_delay), http_status, error,
                 iso_now() if ok else None, row["delivery_id"]))
        return Attempt(row["delivery_id"], row["hook"], "retry" if status == "pending" else status, http_status,
                       error)

    def deliver_due(self, hooks: list[Hook], base_delay: float = BASE_DELAY, limit: int = BATCH_SENT,
                    stop: threading.Event | None = None, due_by: float | None = None,
                    after: dict[str, int] | None = None) -> list[Attempt]:
        """Send up to ``limit`` due deliveries of each hook (``next_at`` before ``due_by``, default now;
        ``delivery_id`` above ``after[hook]``), each once under a lease, recording every outcome. Each
        hook's deliveries go in order, the hooks side by side: a slow receiver delays only its own."""
        if self.read_only:
            return []
        by_name = {h.name: h for h in hooks}
        # taken for as long as sending them all may take (each attempt is bounded by its hook's time-out)
        lease = limit * max([h.timeout for h in hooks] + [DEFAULT_TIMEOUT]) + 30.0
        now = time.time()
        claimed = self._claim(now, now if due_by is None else due_by, limit, lease, after or {})

        def deliver(rows: list[dict]) -> list[Attempt]:
            done = []
            for row in rows:
                if stop is not None and stop.is_set():
                    with self._lock:  # give it back at once
                        self._db.execute("UPDATE deliveries SET lease_until = 0 WHERE delivery_id = ?",
                                         (row["delivery_id"],))
                    continue
                hook = by_name.get(row["hook"])
                if hook is None:
                    done.append(self._record(row, None, False, None, "the webhook is no longer declared in "
                                             "mesh.yaml", base_delay))
                    continue
                status, error = send(hook, row)
                done.append(self._record(row, hook, status is not None and 200 <= status < 300, status, error,
                                         base_delay))
            return done

        groups = list(claimed.values())
        if len(groups) <= 1:
            results = [deliver(g) for g in groups]
        else:
            with ThreadPoolExecutor(max_workers=min(8, len(groups)), thread_name_prefix="quanta-webhook") as pool:
                results = list(pool.map(deliver, groups))
        return sorted((a for r in results for a in r), key=lambda a: a.delivery_id)

    def deliveries(self, status: str | None = None) -> list[dict]:
        sql = f"SELECT {', '.join(COLUMNS)} FROM deliveries"
        args: tuple = ()
        if status:
            sql, args = sql + " WHERE status = ?", (status,)
        with self._lock:
            return [dict(zip(COLUMNS, r)) for r in self._db.execute(sql + " ORDER BY delivery_id", args)]

    def retry(self, delivery_id: int) -> bool:
        """A dead delivery back to pending, with its attempts counted from zero again."""
        with self._lock, statedb.transaction(self._db, self.path, f"retry webhook delivery {delivery_id}"):
            cur = self._db.execute("UPDATE deliveries SET status = 'pending', attempts = 0, next_at = 0, "
                                   "lease_until = 0 WHERE delivery_id = ? AND status = 'dead'", (delivery_id,))
            return cur.rowcount == 1


def send(hook: Hook, row: dict) -> tuple[int | None, str | None]:
    """POST one delivery: ``(HTTP status, None)`` or ``(status or None, why it failed)``. No redirect is
    followed (a 3xx is a failure), every step has the hook's time-out, nothing of the secret is reported."""
    secret = os.environ.get(hook.secret_env)
    if not secret:
        return None, f"the environment variable {hook.secret_env} holding the secret is not set: not sent unsigned"
    body = row["body"].encode()
    timestamp = str(int(time.time()))
    headers = {"Content-Type": "application/json", "User-Agent": "quanta-webhooks/1",
               "X-Quanta-Event": row["kind"], "X-Quanta-Event-Id": row["event_id"],
               "X-Quanta-Delivery": str(row["delivery_id"]), "X-Quanta-Timestamp": timestamp,
               "X-Quanta-Signature": sign(secret, timestamp, body)}
    parts = urlsplit(hook.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            parts.hostname, parts.port, timeout=hook.timeout, context=ssl.create_default_context())
    else:
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=hook.timeout)
    cut = threading.Event()

    def deadline() -> None:  # the whole attempt, not each read: a receiver dripping bytes is cut too
        cut.set()
        sock = conn.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    timer = threading.Timer(hook.timeout, deadline)
    timer.daemon = True
    timer.start()
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        status = response.status
        try:
            response.read(65536)  # the answer is not used; read a little so the connection closes cleanly
        except (OSError, http.client.HTTPException):
            pass
        if 200 <= status < 300:
            return status, None
        if 300 <= status < 400:
            return status, f"HTTP {status}: redirects are not followed (declare the final URL)"
        return status, f"HTTP {status} {response.reason}"[:200]
    except (OSError, http.client.HTTPException) as e:
        if cut.is_set():
            return None, f"timed out: no answer within {hook.timeout:g} s"
        return None, f"{type(e).__name__}: {e}"[:200]
    finally:
        timer.cancel()
        conn.close()


# -- in a process -------------------------------------------------------------------------------------

_outboxes: dict[Path, Outbox] = {}
_outboxes_lock = threading.Lock()


def outbox_of(platform) -> Outbox:
    """The outbox of ``platform``'s state folder (one per folder and process)."""
    key = Path(platform.state_dir).resolve()
    with _outboxes_lock:
        box = _outboxes.get(key)
        if box is None:
            box = _outboxes[key] = Outbox(key)
        return box


def deliveries_for(platform, principal, status: str | None = None) -> list[dict]:
    """The deliveries, for the auditor and data-engineer roles only (they name requesters and approvers):
    ``errors.AccessDenied`` for anyone else, ``errors.ProgrammingError`` for an unknown status."""
    from .governance.authorize import allowed

    decision = allowed(platform, principal, "review_requests", what="see webhook deliveries")
    if not decision:
        raise errors.AccessDenied(decision.reason)
    if status not in (None, "pending", "delivered", "dead"):
        raise errors.ProgrammingError(f"no delivery status {status!r}: pending, delivered or dead")
    rows = outbox_of(platform).deliveries(status)
    for r in rows:
        r["body"] = json.loads(r["body"])
        r.pop("lease_until", None)
        r.pop("url", None)  # receivers' URLs often hold a secret path (Slack, Teams): the hook's name says which
    return rows


def pump(platform) -> int:
    """Enqueue ``platform``'s new events for its mesh's hooks (nothing when none is declared)."""
    hooks = hooks_of(platform.mesh)
    if not hooks:
        return 0
    return outbox_of(platform).pump(platform.mesh.name, hooks, platform.access_requests)


class Deliverer:
    """The background deliverer of a process: every ``interval`` seconds (and at once on ``wake``), it
    enqueues new events and sends the due deliveries. Never raises: a failure is logged, and retried."""

    def __init__(self, platform, interval: float = 1.0, base_delay: float = BASE_DELAY):
        self.platform = platform
        self.interval = interval
        self.base_delay = base_delay
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> list[Attempt]:
        hooks = hooks_of(self.platform.mesh)
        if not hooks:
            return []
        box = outbox_of(self.platform)
        box.pump(self.platform.mesh.name, hooks, self.platform.access_requests)
        return box.deliver_due(hooks, self.base_delay, stop=self._stop)

    def _loop(self) -> None:
        while not self._stop.is_set():
            if not Path(self.platform.path).exists():  # the mesh folder is gone (a removed test mesh)
                return
            sent = []
            try:
                sent = self.run_once()
            except (errors.Error, sqlite3.Error, OSError) as e:
                log.warning("quanta: webhook deliveries: %s (retried)", e)
            if len(sent) >= BATCH_SENT:
                continue  # more may be due: go on at once
            self._wake.wait(self.interval)
            self._wake.clear()

    def start(self) -> Deliverer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="quanta-webhooks", daemon=True)
            self._thread.start()
        return self

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
