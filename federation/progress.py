"""Progress of long-running work: steps as lines, long DuckDB statements as a bar.

A progress callback is ``progress(message, fraction=None)``: ``fraction`` (0..1) is the share done of
the statement running now, ``None`` a new step. ``watching(con, message, progress)`` polls DuckDB's
``query_progress()`` while a statement runs on ``con``; ``TerminalProgress`` draws it on stderr (a bar
redrawn in place on a terminal; step lines only when stderr is a file or a pipe, so logs stay short).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterator, TextIO

import duckdb

Progress = Callable[..., None]


class TerminalProgress:
    def __init__(self, stream: TextIO | None = None, width: int = 30):
        self.stream = stream or sys.stderr
        self.width = width
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, message: str, fraction: float | None = None) -> None:
        with self._lock:
            if fraction is None:
                self._clear()
                self.stream.write(f"  {message}\n")
            elif self.tty:
                done = int(self.width * max(0.0, min(1.0, fraction)))
                bar = "#" * done + "-" * (self.width - done)
                self.stream.write(f"\r  [{bar}] {fraction:4.0%} {message}\x1b[K")
                self._drawn = True
            self.stream.flush()

    def _clear(self) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False


@contextlib.contextmanager
def watching(con: duckdb.DuckDBPyConnection, message: str, progress: Progress | None,
             interval: float = 0.25) -> Iterator[None]:
    """Report the progress of the statements run on ``con`` inside the block (none when ``progress``
    is None). DuckDB tracks progress only with its progress bar on; it never prints it here."""
    if progress is None:
        yield
        return
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    con.execute("SET progress_bar_time = 0")  # track from the start, not after DuckDB's default 2 s
    stop = threading.Event()

    def poll() -> None:
        last = -1.0
        while not stop.wait(interval):
            try:
                percent = con.query_progress()
            except duckdb.Error:
                return
            if percent >= 0 and percent != last:
                last = percent
                progress(message, min(percent, 100.0) / 100)

    thread = threading.Thread(target=poll, name="quanta-progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
