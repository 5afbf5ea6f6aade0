"""``GET /api/v1/events``: a Server-Sent Events stream of query events and mesh events.

Mesh events (``system.events``: versions published, onboardings refused, checks failed, SLOs breached,
access requested or granted, marts refreshed) are sent as ``event: mesh`` as they appear.

Each time the query endpoint finishes a query, the ``EventBus`` wakes the subscribers; each runs one
SQL query over ``system.query_log`` as its own principal, so the pipeline decides what it may see
(its own queries; every query for auditors), and sends each new entry as an ``event: query`` with
the query id as the event id (``Last-Event-ID`` or ``?since=`` resume after it). The polling queries
themselves run with interface ``http-events`` and are not streamed. A stream ends after
``?max_seconds=`` (default 300; clients reconnect); at most ``QUANTA_EVENT_SUBSCRIBERS`` streams run
at once (each holds a server thread), more are answered 503.
"""

from __future__ import annotations

import json
import threading
import time

from flask import Blueprint, Response, current_app, request

from .auth import current_principal
from .encoders import dumps
from .errors import ApiError

bp = Blueprint("events", __name__)

INTERFACE = "http-events"
KEEPALIVE_SECONDS = 15.0
COLUMNS = ("query_id, principal, started_at, interface, purpose, sql, datasets, policies, status, error, rows, "
           "duration_ms")


class EventBus:
    """A sequence number and a condition: ``publish()`` bumps it, ``wait(seen)`` returns once it moved."""

    def __init__(self, subscribers: int):
        self._cond = threading.Condition()
        self.seq = 0
        self.closed = False
        self.slots = threading.BoundedSemaphore(subscribers)

    def publish(self) -> None:
        with self._cond:
            self.seq += 1
            self._cond.notify_all()

    def wait(self, seen: int, timeout: float) -> int:
        with self._cond:
            self._cond.wait_for(lambda: self.seq != seen or self.closed, timeout)
            return self.seq

    def close(self) -> None:
        """End every stream (the server is stopping)."""
        with self._cond:
            self.closed = True
            self._cond.notify_all()


def _new_entries(platform, principal, after: int) -> list[dict]:
    result = platform.query(f"select {COLUMNS} from system.query_log where query_id > ? and interface <> ? "
                            "order by query_id", principal, [after, INTERFACE], interface=INTERFACE)
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


def _new_mesh_events(platform, principal, after: int) -> list[dict]:
    result = platform.query("select event_id, at, kind, quantum, dataset, version, principal, message "
                            "from system.events where event_id > ? order by event_id", principal, [after],
                            interface=INTERFACE)
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


def _last_mesh_event(platform, principal) -> int:
    result = platform.query("select coalesce(max(event_id), 0) from system.events", principal, interface=INTERFACE)
    try:
        return int(result.fetchall()[0][0])
    finally:
        result.close()


def _last_id(platform, principal) -> int:
    result = platform.query("select coalesce(max(query_id), 0) from system.query_log", principal,
                            interface=INTERFACE)
    try:
        return int(result.fetchall()[0][0])
    finally:
        result.close()


@bp.get("/api/v1/events")
def events() -> Response:
    """Stream query events (Server-Sent Events) for the token's principal."""
    principal = current_principal()
    platform = current_app.extensions["quanta.platform"]
    bus: EventBus = current_app.extensions["quanta.events"]
    try:
        since_text = request.args.get("since") or request.headers.get("Last-Event-ID")
        since = int(since_text) if since_text else None
        max_seconds = float(request.args.get("max_seconds", 300))
    except ValueError:
        raise ApiError(400, "bad_request", "'since' is a query id and 'max_seconds' a number") from None
    if not 0 < max_seconds <= 3600:
        raise ApiError(400, "bad_request", "'max_seconds' must be between 0 and 3600")
    if since is None:
        since = _last_id(platform, principal)
    last_mesh = _last_mesh_event(platform, principal)
    if not bus.slots.acquire(blocking=False):
        raise ApiError(503, "too_many_subscribers", "too many event streams are open; try again later", "53300")

    def stream():
        nonlocal last_mesh
        try:
            last = since
            deadline = time.monotonic() + max_seconds
            yield "retry: 3000\n\n"
            while True:
                seen = bus.seq
                for entry in _new_entries(platform, principal, last):
                    last = entry["query_id"]
                    yield f"id: {last}\nevent: query\ndata: {dumps(entry)}\n\n"
                for entry in _new_mesh_events(platform, principal, last_mesh):
                    last_mesh = entry["event_id"]
                    yield f"event: mesh\ndata: {dumps(entry)}\n\n"
                remaining = deadline - time.monotonic()
                if remaining <= 0 or bus.closed:
                    yield f"event: end\ndata: {json.dumps({'last_event_id': last})}\n\n"
                    return
                if bus.wait(seen, min(KEEPALIVE_SECONDS, remaining)) == seen:
                    yield ": keep-alive\n\n"
        finally:
            bus.slots.release()

    return Response(stream(), mimetype="text/event-stream",
                    headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
