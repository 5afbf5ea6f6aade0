"""Progress of long-running work: steps as lines, long DuckDB statements as a bar.

A progress callback is ``progress(message, fraction=None)``: ``fraction`` (0..1) is the share done of
the statement running now, ``None`` a new step. ``watching(con, message, progress)`` polls DuckDB's
``query_progress()`` while a statement runs on ``con``; ``TerminalProgress`` shows it on stderr with
``rich.progress`` (a bar drawn in place on a terminal, removed when the step ends; step lines only
when stderr is a file or a pipe, so logs stay short).
"""

from __future__ import annotations

import contextlib
import sys
import threading
from typing import Callable, Iterator, TextIO

import duckdb

Progress = Callable[..., None]


class TerminalProgress:
    def __init__(self, stream: TextIO | None = None):
        from rich.console import Console

        self.console = Console(file=stream or sys.stderr, highlight=False, markup=False, emoji=False)
        self.tty = self.console.is_terminal
        self._bar = None  # rich.progress.Progress while a statement reports its share done
        self._task = None
        self._lock = threading.Lock()

    def __call__(self, message: str, fraction: float | None = None) -> None:
        with self._lock:
            if fraction is None:
                self._stop()
                self.console.print(f"  {message}", soft_wrap=True)
            elif self.tty:
                fraction = max(0.0, min(1.0, fraction))
                if self._bar is None:
                    from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

                    self._bar = Progress(TextColumn("  "), BarColumn(bar_width=30), TaskProgressColumn(),
                                         TextColumn("{task.description}"), TimeElapsedColumn(),
                                         console=self.console, transient=True, redirect_stdout=False,
                                         redirect_stderr=False)
                    self._task = self._bar.add_task(message, total=1.0, completed=fraction)
                    self._bar.start()
                self._bar.update(self._task, completed=fraction, description=message)
                self._bar.refresh()

    def close(self) -> None:
        """Remove a bar still drawn (the work ended without a last step)."""
        with self._lock:
            self._stop()

    def _stop(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = self._task = None


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
