"""The control plane's transactional store: versions, events, quality results, SLO history, rules.

One SQLite file, ``<state>/control.db`` (WAL, ``synchronous=FULL``), next to the audit log. A version
is *visible* only once its row says ``published``: the pipeline writes the data first (temp folder,
fsync, atomic rename) and commits this row last, so a crash at any point leaves either the previous
state or the new one, never half of one. Every write is one transaction.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .. import errors, statedb

SCHEMA = """
CREATE TABLE IF NOT EXISTS versions (
    quantum TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL,
    contract_version TEXT, created_at TEXT NOT NULL, rows INTEGER, bytes INTEGER, files INTEGER,
    status TEXT NOT NULL, quality_summary TEXT, path TEXT, principal TEXT, message TEXT,
    quarantined INTEGER DEFAULT 0, quarantine_path TEXT,
    PRIMARY KEY (quantum, dataset, version));
CREATE TABLE IF NOT EXISTS events (
    event_id INTEGER PRIMARY KEY AUTOINCREMENT, at TEXT NOT NULL, kind TEXT NOT NULL, quantum TEXT,
    dataset TEXT, version INTEGER, principal TEXT, message TEXT, details TEXT);
CREATE TABLE IF NOT EXISTS quality_results (
    result_id INTEGER PRIMARY KEY AUTOINCREMENT, run_id TEXT NOT NULL, at TEXT NOT NULL, quantum TEXT,
    dataset TEXT, version INTEGER, target TEXT, rule TEXT, type TEXT, metric TEXT, "column" TEXT,
    dimension TEXT, severity TEXT, measured DOUBLE, threshold TEXT, status TEXT, failing_rows INTEGER,
    sample TEXT, message TEXT, principal TEXT);
CREATE TABLE IF NOT EXISTS slo_history (
    at TEXT NOT NULL, quantum TEXT, dataset TEXT, property TEXT, target TEXT, measured TEXT,
    status TEXT, message TEXT);
CREATE TABLE IF NOT EXISTS probes (
    at TEXT NOT NULL, quantum TEXT NOT NULL, dataset TEXT NOT NULL, ok INTEGER NOT NULL, reason TEXT);
CREATE INDEX IF NOT EXISTS probes_by_dataset ON probes (quantum, dataset, at);
CREATE TABLE IF NOT EXISTS rule_overrides (
    quantum TEXT NOT NULL, dataset TEXT NOT NULL, rules TEXT NOT NULL, updated_at TEXT, principal TEXT,
    PRIMARY KEY (quantum, dataset));
CREATE TABLE IF NOT EXISTS contract_snapshots (
    quantum TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL, contract_version TEXT, contract TEXT,
    PRIMARY KEY (quantum, dataset, version));
CREATE TABLE IF NOT EXISTS quarantine (
    quantum TEXT NOT NULL, dataset TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, path TEXT,
    rows INTEGER, rules TEXT, updated_at TEXT, principal TEXT, released_into INTEGER,
    PRIMARY KEY (quantum, dataset, version));
CREATE TABLE IF NOT EXISTS contract_status (
    contract_id TEXT NOT NULL, version TEXT NOT NULL, status TEXT NOT NULL, updated_at TEXT, principal TEXT,
    PRIMARY KEY (contract_id, version));
"""

FILE = "control.db"


def now() -> datetime:
    return datetime.now(timezone.utc)


def iso(t: datetime | None = None) -> str:
    return (t or now()).isoformat()


@dataclass
class Version:
    quantum: str
    dataset: str
    version: int
    contract_version: str | None
    created_at: str
    rows: int | None
    bytes: int | None
    files: int | None
    status: str
    quality_summary: dict | None
    path: str | None
    principal: str | None
    message: str | None
    quarantined: int = 0
    quarantine_path: str | None = None


class Store:
    """The control store of one mesh. Thread-safe (one connection, a lock) and shared by processes (every
    write is one ``BEGIN IMMEDIATE`` transaction; ``statedb`` sets the busy timeout and WAL). On a state
    folder that cannot be written it reads what is there and refuses writes (``statedb.ReadOnlyState``)."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._lock = threading.RLock()
        self._db, self.read_only = statedb.connect(self.path, SCHEMA, synchronous="FULL")

    @staticmethod
    def exists(state_dir: Path) -> bool:
        return (Path(state_dir) / FILE).exists()

    @classmethod
    def open(cls, state_dir: Path) -> "Store":
        return cls(Path(state_dir) / FILE)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- transactions ------------------------------------------------------------------------------

    def _tx(self, statements: list[tuple[str, tuple]], what: str = "record the change") -> None:
        with self._lock:
            try:
                with statedb.transaction(self._db, self.path, what):
                    for sql, args in statements:
                        self._db.execute(sql, args)
            except errors.Error as e:
                if "UNIQUE constraint failed: versions." in str(e):
                    raise errors.IntegrityError(f"{what}: that version number is already taken ({e}); versions "
                                                f"are numbered under the dataset lock (pipeline.dataset_lock)") from None
                raise

    def _rows(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    # -- versions ----------------------------------------------------------------------------------

    @staticmethod
    def _version(row: tuple) -> Version:
        v = Version(*row)
        v.quality_summary = json.loads(row[9]) if row[9] else None
        return v

    def versions(self, quantum: str | None = None, dataset: str | None = None) -> list[Version]:
        sql, args = "SELECT * FROM versions", []
        if quantum:
            sql += " WHERE quantum = ? AND dataset = ?"
            args = [quantum.lower(), (dataset or "").lower()]
        return [self._version(r) for r in self._rows(sql + " ORDER BY quantum, dataset, version", tuple(args))]

    def version(self, quantum: str, dataset: str, version: int) -> Version | None:
        rows = self._rows("SELECT * FROM versions WHERE quantum = ? AND dataset = ? AND version = ?",
                          (quantum.lower(), dataset.lower(), version))
        return self._version(rows[0]) if rows else None

    def current(self, quantum: str, dataset: str) -> Version | None:
        """The version served: the newest ``published`` one."""
        rows = self._rows("SELECT * FROM versions WHERE quantum = ? AND dataset = ? AND status = 'published' "
                          "ORDER BY version DESC LIMIT 1", (quantum.lower(), dataset.lower()))
        return self._version(rows[0]) if rows else None

    def served(self) -> dict[tuple[str, str], Version]:
        out: dict[tuple[str, str], Version] = {}
        for v in self.versions():
            if v.status == "published":
                out[(v.quantum, v.dataset)] = v  # ordered by version: the newest wins
        return out

    def next_version(self, quantum: str, dataset: str, taken: int = 0) -> int:
        """The number the next version of a dataset takes (above ``taken`` too: the highest ``v<N>`` folder).
        Callers hold ``pipeline.dataset_lock`` from here to ``record_version``, so two writers (threads or
        processes) never take the same number; a read-only store refuses here, before any data is written."""
        if self.read_only:
            raise statedb.write_error(self.path, sqlite3.OperationalError(self.read_only),
                                      f"publish a version of {quantum}.{dataset}")
        row = self._rows("SELECT max(version) FROM versions WHERE quantum = ? AND dataset = ?",
                         (quantum.lower(), dataset.lower()))[0]
        return max(row[0] or 0, taken) + 1

    def record_version(self, v: Version, events: list[dict], contract: dict | None = None,
                       also: list[tuple[str, tuple]] | None = None) -> None:
        """Insert a version row, the contract it was published under, and its events in one transaction
        (the commit point of a publish); ``also``: more statements of the same commit (a quarantine
        release records what it released with the version that publishes it)."""
        stmts = []
        if contract is not None:
            stmts.append(("INSERT OR REPLACE INTO contract_snapshots VALUES (?, ?, ?, ?, ?)",
                          (v.quantum.lower(), v.dataset.lower(), v.version, v.contract_version,
                           json.dumps(contract, default=str))))
        stmts += [("INSERT INTO versions VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                  (v.quantum.lower(), v.dataset.lower(), v.version, v.contract_version, v.created_at, v.rows,
                   v.bytes, v.files, v.status, json.dumps(v.quality_summary) if v.quality_summary else None,
                   v.path, v.principal, v.message, v.quarantined, v.quarantine_path))]
        stmts += [self._event_stmt(**e) for e in events] + list(also or [])
        self._tx(stmts, f"record version {v.version} of {v.quantum}.{v.dataset}")

    def set_status(self, quantum: str, dataset: str, changes: dict[int, str], events: list[dict]) -> None:
        stmts = [("UPDATE versions SET status = ? WHERE quantum = ? AND dataset = ? AND version = ?",
                  (status, quantum.lower(), dataset.lower(), version)) for version, status in changes.items()]
        stmts += [self._event_stmt(**e) for e in events]
        self._tx(stmts)

    def contract_snapshot(self, quantum: str, dataset: str, version: int) -> dict | None:
        rows = self._rows("SELECT contract FROM contract_snapshots WHERE quantum = ? AND dataset = ? AND version = ?",
                          (quantum.lower(), dataset.lower(), version))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    # -- events --------------------------------------------------------------------------------------

    @staticmethod
    def _event_stmt(kind: str, quantum: str | None = None, dataset: str | None = None, version: int | None = None,
                    principal: str | None = None, message: str | None = None, details: Any = None,
                    at: str | None = None) -> tuple[str, tuple]:
        return ("INSERT INTO events (at, kind, quantum, dataset, version, principal, message, details) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (at or iso(), kind, quantum.lower() if quantum else None, dataset.lower() if dataset else None,
                 version, principal, message, json.dumps(details, default=str) if details is not None else None))

    def emit(self, kind: str, **fields) -> None:
        self._tx([self._event_stmt(kind, **fields)])

    def events(self, kind: str | None = None) -> list[dict]:
        sql = "SELECT event_id, at, kind, quantum, dataset, version, principal, message, details FROM events"
        args: tuple = ()
        if kind:
            sql, args = sql + " WHERE kind = ?", (kind,)
        names = ["event_id", "at", "kind", "quantum", "dataset", "version", "principal", "message", "details"]
        return [dict(zip(names, r)) for r in self._rows(sql + " ORDER BY event_id", args)]

    # -- quality ---------------------------------------------------------------------------------------

    def record_results(self, rows: list[dict], events: list[dict]) -> None:
        cols = ["run_id", "at", "quantum", "dataset", "version", "target", "rule", "type", "metric", "column",
                "dimension", "severity", "measured", "threshold", "status", "failing_rows", "sample", "message",
                "principal"]
        sql = (f"INSERT INTO quality_results ({', '.join(chr(34) + c + chr(34) for c in cols)}) "
               f"VALUES ({', '.join('?' for _ in cols)})")
        stmts = [(sql, tuple(r.get(c) for c in cols)) for r in rows]
        stmts += [self._event_stmt(**e) for e in events]
        self._tx(stmts)

    def results(self, quantum: str | None = None, dataset: str | None = None) -> list[dict]:
        sql, args = "SELECT * FROM quality_results", ()
        if quantum:
            sql, args = sql + " WHERE quantum = ? AND dataset = ?", (quantum.lower(), (dataset or "").lower())
        with self._lock:
            cur = self._db.execute(sql + " ORDER BY result_id", args)
            names = [d[0] for d in cur.description]
            return [dict(zip(names, r)) for r in cur.fetchall()]

    def record_slo(self, rows: list[dict], events: list[dict]) -> None:
        stmts = [("INSERT INTO slo_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                  (r["at"], r["quantum"], r["dataset"], r["property"], r["target"], r["measured"], r["status"],
                   r["message"])) for r in rows]
        stmts += [self._event_stmt(**e) for e in events]
        self._tx(stmts)

    def slo_history(self) -> list[dict]:
        names = ["at", "quantum", "dataset", "property", "target", "measured", "status", "message"]
        return [dict(zip(names, r)) for r in self._rows("SELECT * FROM slo_history ORDER BY at")]

    def record_probe(self, quantum: str, dataset: str, ok: bool, reason: str | None) -> None:
        self._tx([("INSERT INTO probes VALUES (?, ?, ?, ?, ?)", (iso(), quantum.lower(), dataset.lower(), int(ok),
                                                                 reason))])

    def probes(self, quantum: str | None = None, dataset: str | None = None, since: str | None = None) -> list[dict]:
        """Availability probes (oldest first): at, quantum, dataset, ok, reason."""
        sql, args = "SELECT at, quantum, dataset, ok, reason FROM probes WHERE at >= ?", [since or ""]
        if quantum:
            sql, args = sql + " AND quantum = ? AND dataset = ?", args + [quantum.lower(), (dataset or "").lower()]
        names = ["at", "quantum", "dataset", "ok", "reason"]
        return [{**dict(zip(names, r)), "ok": bool(r[3])} for r in self._rows(sql + " ORDER BY at", tuple(args))]

    # -- rules and contract status ----------------------------------------------------------------------

    def set_rules(self, quantum: str, dataset: str, rules: list[dict], principal: str, event: dict) -> None:
        self._tx([("INSERT OR REPLACE INTO rule_overrides VALUES (?, ?, ?, ?, ?)",
                   (quantum.lower(), dataset.lower(), json.dumps(rules), iso(), principal)),
                  self._event_stmt(**event)])

    def clear_rules(self, quantum: str, dataset: str, event: dict) -> None:
        """Back to the contract's own rules (after they were written into it)."""
        self._tx([("DELETE FROM rule_overrides WHERE quantum = ? AND dataset = ?", (quantum.lower(), dataset.lower())),
                  self._event_stmt(**event)])

    def rule_sets(self) -> dict[tuple[str, str], dict]:
        """(quantum, dataset) -> {rules, updated_at, principal}: the control plane's rules, who set them, when."""
        return {(q, d): {"rules": json.loads(r), "updated_at": at, "principal": who}
                for q, d, r, at, who in self._rows("SELECT * FROM rule_overrides")}

    def rules(self) -> dict[tuple[str, str], list[dict]]:
        return {k: v["rules"] for k, v in self.rule_sets().items()}

    def set_contract_status(self, contract_id: str, version: str, status: str, principal: str, event: dict) -> None:
        self._tx([("INSERT OR REPLACE INTO contract_status VALUES (?, ?, ?, ?, ?)",
                   (contract_id, version, status, iso(), principal)), self._event_stmt(**event)])

    def contract_statuses(self) -> dict[tuple[str, str], str]:
        return {(c, v): s for c, v, s, _, _ in self._rows("SELECT * FROM contract_status")}

    # -- quarantine ------------------------------------------------------------------------------------
    # A version's quarantined rows are a *batch* (``<q>.<d>.v<N>``): held until released or dropped. Its row in
    # ``quarantine`` (written with the version, then by release and drop) says where its file is now and how
    # many rows it holds; a version from before this table counts as held with the file it was published with.

    @staticmethod
    def quarantine_stmt(quantum: str, dataset: str, version: int, status: str, path: str | None, rows: int,
                        rules: dict, principal: str | None, released_into: int | None = None) -> tuple[str, tuple]:
        return ("INSERT OR REPLACE INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (quantum.lower(), dataset.lower(), version, status, path, rows, json.dumps(rules), iso(), principal,
                 released_into))

    def quarantine_batches(self, quantum: str | None = None, dataset: str | None = None) -> list[dict]:
        """Every quarantine batch: quantum, dataset, version, status (held | released | dropped), path, rows,
        rules ({rule: rows}), quarantined_at, updated_at, principal, released_into."""
        state = {(q, d, v): dict(status=s, path=p, rows=n, rules=json.loads(r) if r else {}, updated_at=at,
                                 principal=who, released_into=into)
                 for q, d, v, s, p, n, r, at, who, into in self._rows("SELECT * FROM quarantine")}
        out = []
        for v in self.versions(quantum, dataset):
            if not v.quarantine_path:
                continue
            row = state.get((v.quantum, v.dataset, v.version)) or dict(
                status="held", path=v.quarantine_path, rows=v.quarantined, rules={}, updated_at=v.created_at,
                principal=v.principal, released_into=None)
            out.append({"quantum": v.quantum, "dataset": v.dataset, "version": v.version,
                        "quarantined_at": v.created_at, **row})
        return out

    def set_quarantine(self, stmt: tuple[str, tuple], events: list[dict]) -> None:
        self._tx([stmt] + [self._event_stmt(**e) for e in events], "record the quarantine change")
