"""Opaque handles a client holds for state kept on the server: statement tickets and prepared statements.

A handle is 16 random bytes mapped here to its owner (the principal it was issued to), a value and an
expiry. Only the owner may use it: a handle presented by another principal is refused (PERMISSION_DENIED)
and stays valid for its owner. An unknown handle and one that expired, was closed or was already used are
told apart (NOT_FOUND either way) from a short memory of the handles that ended, so a client reads why.

``sweep()`` (the server's janitor, every second) removes the handles past their expiry and returns their
values, for the server to close them (an unfetched result is cancelled and audited).
"""

from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any

import pyarrow.flight as flight
from cachetools import LRUCache

from .statuses import NotFound


@dataclass
class Entry:
    owner: str
    value: Any
    expires: float | None  # monotonic; None: kept until removed


class Handles:
    def __init__(self, kind: str, hint: str):
        self.kind = kind  # "ticket", "prepared statement": for messages
        self.hint = hint  # what to do about a handle that ended
        self._lock = threading.Lock()
        self._entries: dict[bytes, Entry] = {}
        self._ended: LRUCache[bytes, str] = LRUCache(maxsize=4096)

    def add(self, owner: str, value: Any, ttl: float | None, limit: int | None = None) -> bytes:
        """A new handle of ``owner`` for ``value``; ``limit``: how many ``owner`` may hold at once."""
        handle = secrets.token_bytes(16)
        with self._lock:
            if limit is not None and sum(1 for e in self._entries.values() if e.owner == owner) >= limit:
                raise flight.FlightUnavailableError(f"too many open {self.kind}s ({limit}): close some first")
            self._entries[handle] = Entry(owner, value, None if ttl is None else time.monotonic() + ttl)
        return handle

    def _entry(self, handle: bytes, owner: str) -> Entry:
        entry = self._entries.get(handle)
        if entry is None:
            why = self._ended.get(handle)
            if why is not None:
                raise NotFound(f"this {self.kind} {why}: {self.hint}")
            raise NotFound(f"unknown {self.kind}: {self.hint}")
        if entry.owner != owner:
            raise flight.FlightUnauthorizedError(f"this {self.kind} was not issued to you")
        return entry

    def get(self, handle: bytes, owner: str, ttl: float | None = None) -> Any:
        """The value of ``owner``'s handle (its expiry moved on by ``ttl`` when given)."""
        with self._lock:
            entry = self._entry(handle, owner)
            if ttl is not None:
                entry.expires = time.monotonic() + ttl
            return entry.value

    def hold(self, handle: bytes, owner: str) -> Any:
        """The value of ``owner``'s handle, kept without expiry (a result being streamed)."""
        with self._lock:
            entry = self._entry(handle, owner)
            entry.expires = None
            return entry.value

    def pop(self, handle: bytes, owner: str, why: str) -> Any:
        with self._lock:
            entry = self._entry(handle, owner)
            del self._entries[handle]
            self._ended[handle] = why
            return entry.value

    def end(self, handle: bytes, why: str) -> None:
        with self._lock:
            if self._entries.pop(handle, None) is not None:
                self._ended[handle] = why

    def sweep(self, why: str = "expired") -> list[Any]:
        now = time.monotonic()
        with self._lock:
            gone = [h for h, e in self._entries.items() if e.expires is not None and e.expires < now]
            values = []
            for handle in gone:
                values.append(self._entries.pop(handle).value)
                self._ended[handle] = why
        return values

    def owned(self, owner: str) -> list[Any]:
        """The values of ``owner``'s handles."""
        with self._lock:
            return [e.value for e in self._entries.values() if e.owner == owner]

    def clear(self) -> list[Any]:
        with self._lock:
            values = [e.value for e in self._entries.values()]
            self._entries.clear()
        return values

    def __len__(self) -> int:
        return len(self._entries)
