"""Cancel the query of an HTTP client that went away.

waitress keeps reading a connection while its request runs (``channel_request_lookahead``, see
``serve.py``), so it notices a client that closed its side and says so through the WSGI environ's
``waitress.client_disconnected()``. One watcher thread looks at every running query's connection a
few times a second and cancels the query (its ``Cancellation``: waiting for a slot, compiling is
left to finish, running in the engine is interrupted) when its client has gone:

    key = start(request.environ, cancel)   # ... platform.query(..., cancel=cancel), read the result ...
    stop(key)                              # once the answer is complete
"""

from __future__ import annotations

import logging
import threading
from typing import Callable

log = logging.getLogger("federation.server.http")

INTERVAL = 0.2  # seconds between two looks at the watched connections


class Watcher:
    def __init__(self, interval: float = INTERVAL):
        self.interval = interval
        self._watched: dict[int, tuple[Callable[[], bool], object]] = {}
        self._ids = iter(range(1, 1 << 62))
        self._cv = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, gone: Callable[[], bool], cancel) -> int:
        with self._cv:
            key = next(self._ids)
            self._watched[key] = (gone, cancel)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="quanta-http-disconnects", daemon=True)
                self._thread.start()
            self._cv.notify()
            return key

    def remove(self, key: int) -> None:
        with self._cv:
            self._watched.pop(key, None)

    def _run(self) -> None:
        while True:
            with self._cv:
                while not self._watched:
                    self._cv.wait()
                watched = list(self._watched.items())
            for key, (gone, cancel) in watched:
                try:
                    if gone():
                        self.remove(key)
                        log.info("client disconnected: its query is cancelled")
                        cancel.cancel()
                except Exception:  # noqa: BLE001 - one bad entry must not stop the watcher
                    self.remove(key)
            with self._cv:
                self._cv.wait(self.interval)


WATCHER = Watcher()


def start(environ: dict, cancel) -> int | None:
    """Watch the request's connection for ``cancel``; the key for ``stop`` (None when it cannot be watched)."""
    gone = environ.get("waitress.client_disconnected")
    return WATCHER.add(gone, cancel) if callable(gone) else None


def stop(key: int | None) -> None:
    if key is not None:
        WATCHER.remove(key)
