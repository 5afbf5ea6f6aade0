"""Limits that belong to the server: how long a query may run, and how many one principal runs at once.

Every interface (Python, HTTP, PostgreSQL wire) hands its query to ``Platform.query``, which applies
both here, in one place:

* ``effective_timeout(requested, mesh_limit)``: a client may lower the mesh's ``query_timeout_seconds``,
  never raise it; a requested time-out must be a finite number of seconds above 0 (and at most
  PostgreSQL's own ceiling for ``statement_timeout``, about 24.8 days), else ``InvalidParameter``.

      >>> effective_timeout(None, 300)
      300.0
      >>> effective_timeout(20, 5)     # asking for more than the mesh allows gets the mesh's limit
      5.0
      >>> effective_timeout(0.5, 300)
      0.5

* ``Admission``: each principal runs at most ``max_queries_per_principal`` queries at once (a query
  runs from ``Platform.query`` until its result is read to the end or closed); the next ones wait in a
  short queue (``max_queued_queries_per_principal``, at most ``queue_timeout_seconds`` and never past
  the query's own time-out); beyond that ``TooManyQueries`` (HTTP 429, SQLSTATE 53300). One principal
  cannot take every server thread, and other principals are never queued behind it.
"""

from __future__ import annotations

import math
import threading
import time
import weakref
from dataclasses import dataclass
from typing import Any, Mapping

from . import errors
from .settings import DEFAULTS, MAX_SECONDS, Settings

MAX_TIMEOUT = MAX_SECONDS  # seconds: PostgreSQL's largest statement_timeout (INT_MAX milliseconds)
DEFAULT_TIMEOUT = DEFAULTS["query_timeout_seconds"]
DEFAULT_RUNNING = DEFAULTS["max_queries_per_principal"]
DEFAULT_QUEUED = DEFAULTS["max_queued_queries_per_principal"]
DEFAULT_QUEUE_SECONDS = DEFAULTS["queue_timeout_seconds"]
_POLL = 0.1  # seconds between looks at a waiting query's cancellation


def check_timeout(value: Any, name: str = "timeout") -> float:
    """``value`` as seconds, or ``InvalidParameter`` naming ``name`` when it is not a valid time-out."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise errors.InvalidParameter(f"'{name}' must be a number of seconds, not {type(value).__name__} "
                                      f"{_show(value)}")
    seconds = float(value)
    if not math.isfinite(seconds) or seconds <= 0 or seconds > MAX_TIMEOUT:
        raise errors.InvalidParameter(f"'{name}' must be a finite number of seconds above 0 and at most "
                                      f"{MAX_TIMEOUT} (about 24.8 days), not {_show(value)}")
    return seconds


def effective_timeout(requested: Any, mesh_limit: Any) -> float:
    """The time-out a query runs with: the mesh's limit, lowered (never raised) by the client's request."""
    limit = DEFAULT_TIMEOUT if mesh_limit is None else check_timeout(mesh_limit, "query_timeout_seconds")
    if requested is None:
        return limit
    return min(check_timeout(requested), limit)


def timed_out(timeout: float, detail: str | None = None) -> errors.QueryTimeout:
    """The error of a query stopped at its time-out (the whole time-out, however much was left for the engine)."""
    return errors.QueryTimeout(f"query cancelled: it ran longer than its time-out of {timeout:g} s"
                               + (f" ({detail})" if detail else ""))


@dataclass(frozen=True)
class Limits:
    running: int = DEFAULT_RUNNING  # queries one principal runs at once
    queued: int = DEFAULT_QUEUED  # queries one principal may have waiting for a free slot
    queue_seconds: float = DEFAULT_QUEUE_SECONDS  # the longest wait for a slot

    @classmethod
    def of(cls, settings: Mapping[str, Any]) -> "Limits":
        """The limits of a mesh's ``settings`` (checked by the loader: ``federation/settings.py``)."""
        settings = Settings.of(settings)
        return cls(settings["max_queries_per_principal"], settings["max_queued_queries_per_principal"],
                   settings["queue_timeout_seconds"])


class Slot:
    """One running query of a principal; ``release()`` (idempotent) frees it for the next one."""

    def __init__(self, admission: "Admission", who: str):
        self._admission: Admission | None = admission
        self.who = who

    def release(self) -> None:
        admission, self._admission = self._admission, None
        if admission is not None:
            admission._leave(self.who)


class Admission:
    """Per-principal slots for running queries, with a short queue."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._running: dict[str, int] = {}
        self._waiting: dict[str, int] = {}

    def running(self, who: str) -> int:
        with self._cv:
            return self._running.get(who, 0)

    def waiting(self, who: str) -> int:
        with self._cv:
            return self._waiting.get(who, 0)

    def enter(self, who: str, limits: Limits, deadline: float | None = None, cancel=None) -> Slot:
        """A slot for one query of ``who``, waiting for one if need be (until ``deadline``, a
        ``time.monotonic()`` value, at the latest); ``cancel`` (a ``Cancellation``) stops the wait."""
        with self._cv:
            free = self._running.get(who, 0) < limits.running
            waiting = self._waiting.get(who, 0)
            if free and (not waiting or waiting >= limits.queued):
                return self._take(who)  # (others waiting go first, unless no more may wait)
            if waiting >= limits.queued:
                raise self._refusal(who, limits, f"its queue is full ({limits.queued} waiting; setting "
                                                f"max_queued_queries_per_principal)")
            end = time.monotonic() + limits.queue_seconds
            if deadline is not None:
                end = min(end, deadline)
            self._waiting[who] = self._waiting.get(who, 0) + 1
            try:
                while self._running.get(who, 0) >= limits.running:
                    if cancel is not None and cancel.cancelled:
                        raise errors.QueryCancelled("query cancelled while it waited for a free slot")
                    left = end - time.monotonic()
                    if left <= 0:
                        raise self._refusal(who, limits, "none finished while this one waited (setting "
                                                    "queue_timeout_seconds, and the query's time-out)")
                    self._cv.wait(min(left, _POLL) if cancel is not None else left)
                return self._take(who)
            finally:
                self._waiting[who] -= 1
                if not self._waiting[who]:
                    del self._waiting[who]

    def _take(self, who: str) -> Slot:
        self._running[who] = self._running.get(who, 0) + 1
        return Slot(self, who)

    def _leave(self, who: str) -> None:
        with self._cv:
            left = self._running.get(who, 0) - 1
            if left > 0:
                self._running[who] = left
            else:
                self._running.pop(who, None)
            self._cv.notify_all()

    @staticmethod
    def _refusal(who: str, limits: Limits, why: str) -> errors.TooManyQueries:
        return errors.TooManyQueries(
            f"too many queries: {who} already runs {limits.running} queries at once, the most this server allows "
            f"(setting max_queries_per_principal; an open result counts until it is read to the end or closed), "
            f"and {why}; try again when one has finished")


_ADMISSIONS: "weakref.WeakKeyDictionary[Any, Admission]" = weakref.WeakKeyDictionary()
_ADMISSIONS_LOCK = threading.Lock()


def of(platform: Any) -> Admission:
    """The admission of a platform (one per platform, shared by its interfaces, kept across reloads)."""
    with _ADMISSIONS_LOCK:
        found = _ADMISSIONS.get(platform)
        if found is None:
            found = _ADMISSIONS[platform] = Admission()
        return found


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
