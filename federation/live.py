"""One live mesh for every process: what a state was built from, and the watcher that hot-reloads.

A platform's state is built from two things that other processes change:

- **the mesh's files** (``mesh.yaml``, products, contracts, ``governance.yaml``): their fingerprint is
  the (path, size, mtime) of every YAML and JSON file of the mesh folder, outside hidden folders, the
  data folder and the warehouse;
- **the state databases** in ``.quanta/``: every change a process commits to the control store
  (versions published, rolled back or expired, control-plane rules, contract status, access requests
  approved, denied or revoked) is written with an event in the same transaction, so the newest event
  id of ``control.db`` is a change counter that costs one indexed read to poll. Access decisions also
  change ``access.db``, whose row count and newest decision are polled too (a decision is effective
  even if its event could not be written).

``Watcher`` polls both (``live_poll_seconds``, default 0.2 s: a change is served within about one
poll plus one build) and calls ``Platform.reload()``, which builds the new state beside the old one and
swaps it in one step. A change whose events only feed the observability tables (quality results, SLO
status, probes) refreshes those tables without a rebuild. A reload that fails keeps the last good state
serving and reports why (``Platform.reload_problems``, ``system.problems``, an event, the log and
``/readyz``). Tokens need no reload: every login reads ``tokens.db``.
"""

from __future__ import annotations

import atexit
import logging
import os
import sqlite3
import threading
import time
import weakref
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("quanta.live")

SUFFIXES = (".yaml", ".yml", ".json")
# events that only change what the observability tables show (no new state needed)
OBSERVABILITY_EVENTS = frozenset({"check_failed", "anomaly_detected", "slo_breached", "onboarding_failed",
                                  "access_requested", "reload_failed"})


@dataclass(frozen=True)
class Fingerprint:
    """What a state was built from: the mesh files, and the state databases' change counters."""

    files: int  # hash of (path, size, mtime_ns) of the mesh's files
    events: int  # newest event id of control.db (0: none)
    access: tuple  # (decisions, newest decision) of access.db
    observations: tuple = ()  # newest quality result, SLO check and probe; access requests (refreshed, not rebuilt)


def files_fingerprint(root: Path, skip: tuple[Path, ...] = ()) -> int:
    """A hash of the (path, size, mtime) of the mesh's YAML and JSON files (hidden folders, the data folder
    and the warehouse are not walked)."""
    skipped = {str(p) for p in skip}
    items = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(folder, d) not in skipped)
        for name in sorted(files):
            if name.endswith(SUFFIXES) and not name.startswith("."):
                path = os.path.join(folder, name)
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                items.append((path, st.st_size, st.st_mtime_ns))
    return hash(tuple(items))


class Counters:
    """Cheap reads of the state databases' change counters, on connections kept open."""

    def __init__(self, state_dir: Path):
        self.state_dir = Path(state_dir)
        self._dbs: dict[str, sqlite3.Connection] = {}
        self._lock = threading.Lock()

    def _read(self, file: str, sql: str, missing: tuple) -> tuple:
        """One row of ``file``; ``missing`` when the file or its table does not exist yet (as a file created
        empty reads: a database appearing is not a change)."""
        path = self.state_dir / file
        with self._lock:
            db = self._dbs.get(file)
            if db is None:
                if not path.exists():
                    return missing
                db = self._dbs[file] = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False,
                                                       timeout=5)
            try:
                return tuple(db.execute(sql).fetchone() or ())
            except sqlite3.OperationalError:  # no such table yet, or locked: read again next time
                db.close()
                self._dbs.pop(file, None)
                return missing

    def events(self) -> int:
        row = self._read("control.db", "SELECT max(event_id) FROM events", (None,))
        return int(row[0] or 0)

    def access(self) -> tuple:
        return self._read("access.db", "SELECT count(decided_at), max(decided_at) FROM access_requests", (0, None))

    def observations(self) -> tuple:
        return (self._read("control.db", "SELECT (SELECT max(result_id) FROM quality_results), "
                           "(SELECT max(rowid) FROM slo_history), (SELECT max(rowid) FROM probes)", (None,) * 3)
                + self._read("access.db", "SELECT max(request_id) FROM access_requests", (None,)))

    def kinds_since(self, event_id: int) -> set[str]:
        path = self.state_dir / "control.db"
        if not path.exists():
            return set()
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5) as db:
            return {k for (k,) in db.execute("SELECT DISTINCT kind FROM events WHERE event_id > ?", (event_id,))}

    def close(self) -> None:
        with self._lock:
            for db in self._dbs.values():
                db.close()
            self._dbs.clear()


def fingerprint(root: Path, counters: Counters, skip: tuple[Path, ...] = ()) -> Fingerprint:
    return Fingerprint(files_fingerprint(root, skip), counters.events(), counters.access(), counters.observations())


class Watcher:
    """Polls a platform's sources of state and hot-reloads it when they change (one daemon thread)."""

    def __init__(self, platform, interval: float | None = None):
        self.platform = platform
        self.interval = float(interval if interval is not None else platform.mesh.settings["live_poll_seconds"])
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="quanta-live", daemon=True)
        self.reloads = 0  # successful reloads (for tests and metrics)
        self.failures = 0

        self.leases = Leases(platform.state_dir)

    def start(self) -> "Watcher":
        self.leases.hold(self.platform.held_folders())
        self._thread.start()
        _RUNNING.add(self)
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout=timeout)
        self.leases.release()
        _RUNNING.discard(self)

    def _run(self) -> None:
        renewed = swept = time.monotonic()
        while not self._stop.wait(self.interval):
            try:
                if self.check():
                    self.leases.hold(self.platform.held_folders())
                    self.platform.sweep_expired()  # what the old state held may go now
                if time.monotonic() - renewed > LEASE_SECONDS / 6:
                    renewed = time.monotonic()
                    self.leases.renew()
                if time.monotonic() - swept > LEASE_SECONDS:
                    swept = time.monotonic()
                    self.platform.sweep_expired()
            except Exception:  # noqa: BLE001 - the watcher must outlive any one failure
                log.exception("live reload check failed")

    def check(self) -> bool:
        """Reload when the mesh's files or state changed since the current state was built (refresh the
        observability tables when only observations changed); True if it reloaded."""
        p = self.platform
        now = p.fingerprint()
        seen = p.seen
        if now == seen:
            return p.retry_unavailable()
        rebuild = (now.files, now.access) != (seen.files, seen.access)
        if not rebuild and now.events != seen.events:
            kinds = p.counters.kinds_since(seen.events)
            rebuild = not kinds <= OBSERVABILITY_EVENTS
        if not rebuild:
            p.refresh_observability(now)
            return False
        started = time.perf_counter()
        ok = p.reload(fingerprint=now, changed=True)
        if ok:
            self.reloads += 1
            log.info("mesh reloaded in %.3f s", time.perf_counter() - started)
        else:
            self.failures += 1
        return ok


_RUNNING: "weakref.WeakSet[Watcher]" = weakref.WeakSet()
EXIT_WAIT_SECONDS = 60.0


@atexit.register
def _stop_running() -> None:
    """When the process exits, the watchers stop and a reload in progress is waited for: a daemon thread still
    inside the engine while the interpreter tears it down aborts the process ("terminate called without an
    active exception")."""
    running = list(_RUNNING)
    for w in running:
        w._stop.set()  # noqa: SLF001 - all of them at once, then wait
    deadline = time.monotonic() + EXIT_WAIT_SECONDS
    for w in running:
        try:
            w.stop(timeout=max(0.0, deadline - time.monotonic()))
        except Exception:  # noqa: BLE001,S110 - exiting: nothing more to do
            pass


# -- versions in use: retention never deletes the files a running query or a serving state may read ---------

LEASE_SECONDS = 60.0  # a server renews its lease every few seconds; an older lease is a dead process
EXPIRED_MARK = ".expired"  # written into a version's folder when it expires; its time starts the grace


class Leases:
    """Which version folders each serving process's current state reads (``.quanta/leases/<host>-<pid>``)."""

    def __init__(self, state_dir: Path):
        self.folder = Path(state_dir) / "leases"
        self.file = self.folder / f"{os.uname().nodename}-{os.getpid()}"

    def hold(self, folders: set[str]) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            tmp = self.file.with_suffix(".tmp")
            tmp.write_text("\n".join(sorted(folders)))
            os.replace(tmp, self.file)
        except OSError as e:  # a read-only state folder: nothing is deleted by this process either
            log.warning("cannot write the lease of the versions this server reads: %s", e)

    def renew(self) -> None:
        try:
            os.utime(self.file)
        except OSError:
            pass

    def release(self) -> None:
        try:
            self.file.unlink()
        except OSError:
            pass

    def held(self) -> set[str]:
        """The folders held by the leases of live processes."""
        out: set[str] = set()
        if not self.folder.is_dir():
            return out
        now = time.time()
        for f in self.folder.iterdir():
            try:
                if f.suffix == ".tmp" or now - f.stat().st_mtime > LEASE_SECONDS:
                    continue
                out.update(line for line in f.read_text().splitlines() if line)
            except OSError:
                continue
        return out


def mark_expired(folder: Path) -> None:
    """Start the grace period of an expired version's folder (its files stay readable meanwhile)."""
    try:
        (folder / EXPIRED_MARK).touch()
    except OSError:
        pass


def sweep(folders: list[Path], grace: float, leases: Leases, remove) -> list[Path]:
    """Remove the folders of expired versions whose grace period has passed and that no live lease holds;
    returns those removed. ``grace`` covers a query that started before the version expired."""
    held = leases.held()
    removed = []
    now = time.time()
    for folder in folders:
        mark = folder / EXPIRED_MARK
        try:
            age = now - mark.stat().st_mtime
        except OSError:
            continue  # no mark: not expired by this version of Quanta, or already removed
        if age >= grace and str(folder) not in held:
            remove(folder)
            removed.append(folder)
    return removed
