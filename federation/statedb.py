"""How every process opens the SQLite files of a mesh's state folder (``control.db``, ``access.db``,
``tokens.db``, ``state.db``).

Several processes share one state folder: servers for availability, CLI commands, onboardings. So
each connection

- waits up to ``BUSY_TIMEOUT`` seconds for another process's write lock (SQLite's busy timeout)
  instead of failing at once with "database is locked";
- uses WAL: readers never block the writer, the writer never blocks readers;
- writes that read first (allocate, decide once) run in ``BEGIN IMMEDIATE`` transactions, which take
  the write lock before reading, so two processes never both act on the same old value.

A state folder that cannot be written (read-only, full, or not even creatable) is not fatal: the file
is opened read-only (or, when it does not exist, as an empty read-only copy of its schema), reads
work, and a write raises ``errors.Unavailable`` naming the file. The process warns once per folder.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from pathlib import Path
from typing import Iterator
from urllib.parse import quote

from . import errors

BUSY_TIMEOUT = 30.0  # seconds a connection waits for another process's lock
log = logging.getLogger("quanta.state")
_warned: set[str] = set()
_warned_lock = threading.Lock()

# what SQLite or the OS says when the folder or the disk refuses a write (not a lock held by someone else)
_UNWRITABLE = ("readonly", "read-only", "unable to open", "disk is full", "disk i/o error", "permission denied",
               "not a directory", "no space left")


class ReadOnlyState(errors.Unavailable):
    """A write to a state file that cannot be written (read-only or full folder)."""

    code = "state_read_only"


def unwritable(e: BaseException) -> bool:
    return isinstance(e, OSError) or (isinstance(e, sqlite3.Error) and any(s in str(e).lower() for s in _UNWRITABLE))


def _busy(e: BaseException) -> bool:
    return isinstance(e, sqlite3.OperationalError) and any(s in str(e).lower() for s in ("locked", "busy"))


def warn_once(folder: Path, reason: str) -> None:
    """One warning per state folder and process: queries go on, nothing is recorded."""
    key = str(folder)
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    log.warning("quanta: warning: the state folder %s cannot be written (%s): queries are served read-only; "
                "audit records, versions, access decisions and tokens cannot be written until it is writable "
                "(set QUANTA_STATE_DIR to a writable folder)", folder, reason)


def connect(path: Path, schema: str, synchronous: str = "NORMAL") -> tuple[sqlite3.Connection, str | None]:
    """``(connection, None)`` on a writable file (created with ``schema`` when new), or ``(read-only
    connection, why)`` when the folder or disk refuses writes. Autocommit mode (``isolation_level=None``):
    callers open transactions themselves. Other errors (a corrupt file, a lock held for longer than the
    busy timeout) raise ``errors.Unavailable``."""
    path = Path(path)
    deadline = time.monotonic() + BUSY_TIMEOUT
    while True:
        db = None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None, timeout=BUSY_TIMEOUT)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={synchronous}")
            db.executescript(schema)
            if os.access(path, os.W_OK) and os.access(path.parent, os.W_OK):
                return db, None
            # SQLite opens a file it may not write read-only, silently: say so now, not at the first write
            db.close()
            why = "a read-only file or folder"
            break
        except (OSError, sqlite3.Error) as e:
            if db is not None:
                db.close()
            if _busy(e) and time.monotonic() < deadline:
                # processes creating the file at once: switching a new file to WAL answers "locked" at
                # once, without SQLite's busy handler; try again
                time.sleep(0.01)
                continue
            if not unwritable(e):
                raise errors.Unavailable(f"cannot open the state file {path}: {e}") from None
            why = str(e)
            break
    warn_once(path.parent, why)
    return _read_only(path, schema), why


def _read_only(path: Path, schema: str) -> sqlite3.Connection:
    """The file opened read-only; with ``immutable=1`` when its WAL index cannot be made (a read-only folder
    after a clean close: nothing is in the WAL); an empty in-memory copy of the schema when there is no file."""
    if path.is_file():
        for mode in ("mode=ro", "immutable=1"):
            db = None
            try:
                db = sqlite3.connect(f"file:{quote(str(path))}?{mode}", uri=True, check_same_thread=False,
                                     isolation_level=None, timeout=BUSY_TIMEOUT)
                db.execute("SELECT count(*) FROM sqlite_master").fetchone()
                return db
            except sqlite3.Error:
                if db is not None:
                    db.close()
    db = sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)
    db.executescript(schema)
    db.execute("PRAGMA query_only=ON")
    return db


def write_error(path: Path, e: BaseException, what: str) -> errors.Error:
    """The error to raise for a failed write: ``ReadOnlyState`` for a folder or disk that refuses it,
    ``errors.Unavailable`` for a lock held too long, else ``errors.OperationalError``."""
    if unwritable(e):
        return ReadOnlyState(f"cannot {what}: the state file {path} cannot be written ({e}); make the state "
                             f"folder writable (or set QUANTA_STATE_DIR)")
    if _busy(e):
        return errors.Unavailable(f"cannot {what}: {path} stayed locked by another process for more than "
                                  f"{BUSY_TIMEOUT:g} s")
    return errors.OperationalError(f"cannot {what}: {path}: {e}")


@contextlib.contextmanager
def transaction(db: sqlite3.Connection, path: Path, what: str) -> Iterator[sqlite3.Connection]:
    """One write transaction (``BEGIN IMMEDIATE``: the write lock first, so nobody writes between a read
    and an update): committed when the block ends, rolled back when it raises; SQLite's errors become
    ``write_error``'s. The caller holds its connection's lock."""
    try:
        db.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as e:
        raise write_error(path, e, what) from None
    try:
        yield db
        db.execute("COMMIT")
    except BaseException as e:
        if db.in_transaction:
            db.execute("ROLLBACK")
        if isinstance(e, sqlite3.Error):
            raise write_error(path, e, what) from None
        raise
