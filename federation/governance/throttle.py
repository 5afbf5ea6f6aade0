"""The failed-login throttle: a client that keeps failing to log in is refused at once, before its credential
is verified (a JWT's signature, a SCRAM exchange), so a flood of bad credentials cannot burn the server's CPU.

Failures are counted per key (``keys``): the client's address (HTTP); the address and the user it claims
(PostgreSQL wire), with the address alone counted too, at ``ADDRESS_FACTOR`` times the limit, so a client
cycling through user names is throttled as well; the claimed user alone for Flight SQL, whose middleware
knows no address (a basic-auth user, or the principal a bearer JWT claims, unverified). After
``max_failed_logins`` failures of one key within ``failed_login_window_seconds`` (the mesh's settings; 0
failures: no throttle), the key is refused for one window: ``LoginThrottled`` (HTTP 429 with Retry-After,
SQLSTATE 53300, Flight UNAUTHENTICATED), recorded in ``system.login_failures`` as reason ``throttled``.
A refused attempt does not count as a failure (the key is let in again when the window ends). A success never
waits and clears nothing (a valid credential of another key is not slowed). The keys are an LRU of at most
``MAX_KEYS`` entries (cachetools): a flood of distinct addresses evicts the oldest, never grows memory.
"""

from __future__ import annotations

import threading
import time

from cachetools import LRUCache

MAX_KEYS = 50_000  # keys remembered (least recently used go first)
SERVERS = ("http", "pgwire", "flight")  # an in-process caller (Python, the CLI) is never throttled
ADDRESS_FACTOR = 5  # an address's failures over every user it claims (PostgreSQL wire) before it is refused


class LoginThrottle:
    """Counts failed logins per key and says whether a key is refused (thread-safe; a dictionary update)."""

    def __init__(self, limit: int = 20, window: float = 60.0, max_keys: int = MAX_KEYS):
        self.limit, self.window = int(limit), float(window)
        self._lock = threading.Lock()
        self._keys: LRUCache = LRUCache(maxsize=max_keys)  # key -> [window start, failures, refused until]
        self._until = 0.0  # no key is refused after this (monotonic): a login then needs no look-up

    def configure(self, limit: int, window: float) -> None:
        """The mesh's settings (read again at each reload; the counts are kept)."""
        with self._lock:
            self.limit, self.window = int(limit), float(window)

    @staticmethod
    def keys(interface: str, client: str | None, user: str | None) -> list[tuple[tuple, int]]:
        """The keys of an attempt and each one's limit factor."""
        if interface not in SERVERS:
            return []
        user = user[:128] if isinstance(user, str) and user else None
        if interface == "pgwire":
            if not client:
                return []
            return ([((interface, client, user), 1)] if user else []) + [((interface, client, None), ADDRESS_FACTOR)]
        if client:
            return [(("address", client), 1)]
        return [((interface, None, user), 1)] if user else []

    @property
    def refusing(self) -> bool:
        """Whether some key may be refused now."""
        return self.limit > 0 and time.monotonic() < self._until

    def refused(self, interface: str, client: str | None, user: str | None) -> float | None:
        """The seconds until one of the attempt's keys is let in again, or None when none is refused."""
        now = time.monotonic()
        if self.limit <= 0 or now >= self._until:
            return None
        with self._lock:
            waits = [entry[2] - now for key, _ in self.keys(interface, client, user)
                     if (entry := self._keys.get(key)) is not None and entry[2] > now]
        return max(waits) if waits else None

    def failed(self, interface: str, client: str | None, user: str | None) -> None:
        """Count one failed login of the attempt's keys."""
        if self.limit <= 0:
            return
        now = time.monotonic()
        with self._lock:
            for key, factor in self.keys(interface, client, user):
                entry = self._keys.get(key)
                if entry is None or now - entry[0] >= self.window:
                    entry = self._keys[key] = [now, 0, entry[2] if entry else 0.0]
                entry[1] += 1
                if entry[1] >= self.limit * factor:
                    entry[:] = [now, 0, now + self.window]
                    self._until = max(self._until, entry[2])
