"""The platform: one loaded mesh, its engine and its query pipeline, shared by every interface.

``Platform.open(path)`` loads a mesh folder (catalog), registers its datasets in a locked-down
DuckDB (engine), compiles the derived datasets and builds the system tables; ``platform.query(sql,
principal)`` runs one query through the pipeline and returns a streaming ``Result``. Python
connections, the CLI (and the HTTP and PostgreSQL servers) all call ``query``: no interface has a
path of its own to the data.

A platform's ``State`` is immutable once built. A change (a published version, an approved or revoked
grant, an edited contract: from this process or any other) never edits it: ``reload()`` builds a new
state beside it from the files and the state databases and swaps it in one step, so queries already
running finish on the state they started with. Servers run a ``federation.live.Watcher`` that polls for
changes and reloads; a reload that fails keeps the last good state serving and reports why.

Where queries run (``settings.engine``): the embedded DuckDB always holds a state's system tables, the audit
log's copy, the typing of derived datasets and policies, and the verifier's proof. With ``{kind:
spark_connect}`` each state also opens its own Spark Connect session (``engine/spark_backend.py``) with every
served dataset and kept version as that session's temporary views; a query reading mesh data runs there as
``Plan.engine_sql`` (the same governed tree, rendered by ``engine/spark_dialect.py``), with DuckDB's result
names and types; queries of system tables alone stay embedded, and a query mixing both is refused. So do
queries of quarantined rows (``<quantum>."<dataset>@quarantine"``, ``system.quarantine``: small local files the
cluster does not hold), governed the same; a query mixing them with mesh data is refused. A cluster
that does not answer makes data queries ``Unavailable`` while system tables are still served, and the state
is rebuilt (a new session) until it answers.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import gc
import hashlib
import os
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import pyarrow as pa
import sqlglot.expressions as exp

from . import admission, errors, live
from .catalog.loader import exclude, from_files, load_mesh, recording
from .governance import audit
from .governance.authorize import allowed, is_person
from .governance.loader import check_expressions, load_governance
from .governance.policies import Governance
from .governance import logins, oidc, throttle
from .governance.principals import Identity, Principal
from .governance.policies import Grant
from .governance.requests import AccessRequest, AccessRequests, approval_levels, names_principal
from .governance.tokens import TokenStore
from .lineage.inheritance import DEFAULT_ANONYMISING, Lineage, inherit
from .lineage.openlineage import OpenLineage
from .parameters import bind
from .catalog.model import Dataset, Mesh
from .engine.backend import Backend
from .engine.duckdb_backend import CATALOG, Cancellation, DuckDBBackend, quote
from .engine import secrets as server_secrets
from .engine.registry import register_sources
from .errors import Problem
from .result import ENGINE_KEY, Result
from .rewrite.context import Definition, Namespace, SystemTable
from .rewrite.pipeline import PASSES, EngineSQL, Pipeline, Plan
from .system import governance_tables
from .system import tables as system_tables

SYSTEM_PRINCIPAL = Principal("quanta-system", roles=("system",))
SHARED_INTERFACES = ("http", "pgwire", "flight")  # a server's clients: per-principal concurrency limits apply


@dataclass(frozen=True)
class State:
    """Everything a query reads, built at once and never changed (a change builds a new state)."""

    mesh: Mesh
    backend: DuckDBBackend  # the embedded state: system tables, typing, the verifier's engine; data too by default
    namespace: Namespace
    pipeline: Pipeline
    governance: Governance
    lineage: "Lineage"
    load_seconds: float
    openlineage: "OpenLineage"
    fingerprint: live.Fingerprint  # what it was built from (files, state databases), read before building
    serial: int  # 1 for the first state of a platform, then one more per reload
    files: dict = field(default_factory=dict, repr=False)  # the bytes of the mesh files it was built from
    engine: Backend | None = None  # where data queries run (settings.engine): None or ``backend`` is DuckDB
    schemas: dict = field(default_factory=dict, repr=False, compare=False)  # engine SQL -> DuckDB's result schema

    @property
    def data_engine(self) -> Backend:
        return self.engine if self.engine is not None else self.backend


def state_dir(mesh_path: Path) -> Path:
    """Where Quanta keeps the mesh's state (audit log, tokens, salt): ``$QUANTA_STATE_DIR`` or ``<mesh>/.quanta``."""
    env = os.environ.get("QUANTA_STATE_DIR")
    return Path(env) if env else mesh_path / ".quanta"


class Platform:
    _open: dict[Path, "Platform"] = {}
    _open_lock = threading.Lock()

    def __init__(self, path: str | Path):
        self.path = Path(path).expanduser().resolve()
        self._lock = threading.Lock()
        self.state_dir = state_dir(self.path)
        self.audit: audit.AuditLog | None = None  # opened once the folder is known to be a mesh
        self.logins: logins.LoginFailures | None = None  # failed logins (system.login_failures), opened with it
        self.throttle = throttle.LoginThrottle()  # clients refused after too many failed logins (settings)
        self._tokens: TokenStore | None = None
        self.keys = oidc.KeyCache()  # the identity providers' JWKS (kept across governance reloads)
        self._access: AccessRequests | None = None
        self.counters = live.Counters(self.state_dir)
        self._build_lock = threading.Lock()  # one build at a time (the watcher and in-process writers)
        self._serial = 0
        self.reload_problems: list[Problem] = []  # why the newest reload failed (the last good state serves)
        self._watcher: live.Watcher | None = None
        self._deliverer = None  # webhooks.Deliverer of a serving process (started by ``watch``)
        self._unavailable_retry = 0.0
        self._ephemeral_salt: str | None = None
        self._state = self._build(self.fingerprint())
        self.seen = self._state.fingerprint  # the changes applied (a refresh of observations moves it on)
        self._webhooks_changed()  # the outbox takes the events recorded while no process pumped

    @property
    def lineage(self):
        """Column lineage and what derived datasets inherit (``federation.lineage.inheritance.Lineage``)."""
        return self._state.lineage

    @property
    def access_requests(self) -> AccessRequests:
        if self._access is None:
            self._access = AccessRequests(self.state_dir / "access.db")
        return self._access

    def may_approve(self, principal: Principal, ds: Dataset) -> bool:
        """Approvers named in the contract's roles, the quantum's owners, and data engineers."""
        return allowed(self, principal, "approve", ds).allowed

    def approval_levels(self, quantum: str, dataset: str) -> list[tuple[str, ...]]:
        """Who approves a dataset's access requests, level by level (``governance.requests.approval_levels``)."""
        return approval_levels(self._state.mesh, self._state.governance, quantum, dataset)

    def request_access(self, principal: Principal, dataset: str, purpose: str | None, days: int = 90) -> AccessRequest:
        """Ask for read access to ``quantum.dataset`` for ``days`` days; the approvers see it pending (one
        approval, or two in order when the contract names second-level approvers)."""
        if not principal.known:
            raise errors.AccessDenied(f"{principal.name} is not a principal of this mesh: only principals of the "
                                      "governance may request access")
        ds = self._dataset(dataset)
        if not 1 <= int(days) <= 366:
            raise errors.ProgrammingError("an access request lasts between 1 and 366 days")
        if self._state.governance.grant_for(principal, ds) is not None:
            raise errors.ProgrammingError(f"{principal.name} can already read {ds.qualified_name}")
        levels = max(1, len(self.approval_levels(ds.quantum, ds.name)))
        req = self.access_requests.create(principal.name, ds.quantum, ds.name, purpose, int(days), levels)
        self._access_changed(principal, f"ACCESS REQUEST {req.request_id}: {ds.qualified_name} for {days} days"
                             f" ({purpose or 'no purpose given'})", "access_requested", req)
        return req

    def decide_access(self, principal: Principal, request_id: int, approve: bool, days: int | None = None,
                      reason: str | None = None) -> AccessRequest:
        """Approve (a grant with an expiry, effective at once) or deny a pending access request."""
        req = self.access_requests.get(int(request_id))
        if req is None:
            raise errors.UnknownObject(f"there is no pending access request {request_id}")
        if req.status != "pending":
            from .governance.requests import AlreadyDecided

            raise AlreadyDecided(f"access request {request_id} was already {req.status} by {req.decided_by} at "
                                 f"{req.decided_at}")
        ds = self._dataset(req.dataset_name)
        decision = allowed(self, principal, "approve", req)
        if not decision:
            raise errors.AccessDenied(decision.reason)
        if days is not None and not 1 <= int(days) <= 366:
            raise errors.ProgrammingError("an access grant lasts between 1 and 366 days")
        named = self.approval_levels(ds.quantum, ds.name)
        levels, level = max(req.levels, len(named), 1), req.pending_level or 1
        if approve and levels > 1:  # each level by its own approvers, by name or group (owners do not stand in)
            person = is_person(self.state.governance, principal.name)
            if level > len(named) or names_principal(named[level - 1], principal, person) is None:
                who = ", ".join(named[level - 1]) if level <= len(named) else "nobody is named"
                raise errors.AccessDenied(
                    f"{principal.name} may not give the level-{level} approval of access request {req.request_id} "
                    f"to {ds.qualified_name}: it waits for its level-{level} approval, by {who}")
        try:
            req = self.access_requests.decide(req.request_id, principal.name, approve, days, reason, level, levels)
        except LookupError:
            raise errors.UnknownObject(f"there is no pending access request {request_id}") from None
        if req.status == "pending":  # one level given, the next one waits
            self._access_changed(principal, f"ACCESS APPROVED LEVEL {level} {req.request_id}: {ds.qualified_name} "
                                 f"for {req.principal}; waits for level {req.pending_level}", "access_level_approved",
                                 req)
            return req
        verb = "APPROVED" if approve else "DENIED"
        self._access_changed(principal, f"ACCESS {verb} {req.request_id}: {ds.qualified_name} for {req.principal}"
                             + (f" until {req.expires}" if req.expires else ""),
                             "access_granted" if approve else "access_denied", req)
        if approve:
            self.reload(changed=True)  # effective at once here; other processes see the event within a poll
        return req

    def revoke_access(self, principal: Principal, request_id: int, reason: str | None = None) -> AccessRequest:
        """Revoke an approved access request (a grant from a request) before it expires: effective at once
        here, and in every process that watches the mesh within a poll. Who may approve may revoke."""
        req = self.access_requests.get(int(request_id))
        if req is None or req.status != "approved":
            raise errors.UnknownObject(f"there is no approved access request {request_id} to revoke")
        # no need of the dataset: a grant is revoked even while its quantum is left out of the mesh (a broken
        # file), when data engineers may still revoke it (its contract's approvers are not loaded then)
        decision = allowed(self, principal, "approve", req)
        if not decision:
            raise errors.AccessDenied(decision.reason)  # who may decide access may revoke it
        try:
            req = self.access_requests.revoke(req.request_id, principal.name, reason)
        except LookupError:
            raise errors.UnknownObject(f"there is no approved access request {request_id} to revoke") from None
        self._access_changed(principal, f"ACCESS REVOKED {req.request_id}: {req.dataset_name} for {req.principal}"
                             + (f" ({reason})" if reason else ""), "access_revoked", req)
        self.reload(changed=True)
        return req

    def _dataset(self, name: str) -> Dataset:
        q, _, d = str(name).partition(".")
        ds = self._state.mesh.dataset(q, d) if d else None
        if ds is None:
            raise errors.UnknownObject(f"there is no dataset {name!r} (name it <quantum>.<dataset>)")
        return ds

    def _access_changed(self, principal: Principal, what: str, kind: str, req: AccessRequest) -> None:
        """Audit, event, and the system table, for a request or a decision."""
        self.audit.record(audit.Entry(principal.name, what, "control", req.purpose, status="ok"))
        try:
            from .onboarding.common import store_of

            store_of(self).emit(kind, quantum=req.quantum, dataset=req.dataset, principal=principal.name,
                                        message=what, details=req.to_dict())
        except Exception:  # noqa: BLE001 - the event stream must not undo a recorded decision
            pass
        self._webhooks_changed()
        self.refresh_observability()

    def _webhooks_changed(self) -> None:
        """Enqueue the new events for the mesh's webhooks now (the deliverer sends them; a process without
        one leaves them to the next that pumps: the events are in the state files, nothing is lost)."""
        from . import webhooks

        try:
            if webhooks.pump(self) and self._deliverer is not None:
                self._deliverer.wake()
        except Exception as e:  # noqa: BLE001 - nor the outbox: the events stay, the next pump takes them
            import logging

            logging.getLogger("quanta.webhooks").warning("quanta: webhooks: %s", e)

    def _access_table(self, mesh: Mesh, governance: Governance) -> pa.Table:
        rows = self.access_requests.all()
        members: dict[str, set[str]] = {}  # group -> its principals: a group's members see what it may approve
        for p in governance.principals.values():
            for g in p.groups:
                members.setdefault(g, set()).add(p.name)
        approvers = []
        for r in rows:
            ds = mesh.dataset(r.quantum, r.dataset)
            q = mesh.quanta.get(r.quantum.lower())
            named = set(governance.approvers(ds) if ds else [])
            named |= {a for level in approval_levels(mesh, governance, r.quantum, r.dataset) for a in level}
            approvers.append(sorted(named | set(q.owners if q else ()) | {m for n in named for m in members.get(n, ())}))
        names = ["request_id", "principal", "quantum", "dataset", "purpose", "days", "status", "requested_at",
                 "decided_by", "decided_at", "reason", "expires", "revoked_by", "revoked_at", "levels",
                 "pending_level"]
        cols = {n: [getattr(r, "effective_status" if n == "status" else n) for r in rows] for n in names}
        table = pa.table({n: pa.array(v, pa.int64() if n in ("request_id", "days", "levels", "pending_level")
                                      else pa.string()) for n, v in cols.items()})
        strings = pa.list_(pa.string())
        table = table.append_column("approved_by", pa.array([[a["approver"] for a in r.approvals] for r in rows],
                                                            strings))  # who gave level 1, level 2
        table = table.append_column("approved_at", pa.array([[a["approved_at"] for a in r.approvals] for r in rows],
                                                            strings))
        return table.append_column("approvers", pa.array(approvers, strings))

    @property
    def tokens(self) -> TokenStore:
        if self._tokens is None:
            self._tokens = TokenStore(self.state_dir / "tokens.db")
        return self._tokens

    @classmethod
    def open(cls, path: str | Path) -> "Platform":
        """The platform of a mesh folder, loaded once per process and shared."""
        key = Path(path).expanduser().resolve()
        with cls._open_lock:
            platform = cls._open.get(key)
            if platform is None:
                platform = cls(key)
                cls._open[key] = platform
            return platform

    # -- state ------------------------------------------------------------------------------------

    @property
    def mesh(self) -> Mesh:
        return self._state.mesh

    @property
    def state(self) -> State:
        return self._state

    def fingerprint(self) -> live.Fingerprint:
        """What the mesh's files and state databases are now (compared with what a state was built from)."""
        skip: tuple[Path, ...] = (self.path / "warehouse", self.path / "data")  # the defaults, before a load
        state = getattr(self, "_state", None)
        if state is not None:
            from .onboarding import serving

            skip = (serving.warehouse(state.mesh), (self.path / str(state.mesh.raw.get("data", "data"))).resolve())
        return live.fingerprint(self.path, self.counters, skip)

    def reload(self, fingerprint: live.Fingerprint | None = None, changed: bool = False) -> bool:
        """Build a new state from the mesh's files and state databases beside the current one and swap it in
        one step (queries already running finish on theirs). A build that fails, or that a new error in the
        mesh's files would leave without a quantum the current state serves, keeps the current state and
        reports why (``reload_problems``, ``system.problems``, a ``reload_failed`` event, the log).
        ``changed``: the caller knows of a change of the files or state databases (the watcher, a writer of
        this process): nothing is built when the current state was already built from them (both asked).
        Returns whether the new state serves."""
        with self._build_lock:
            fp = fingerprint or self.fingerprint()
            read: dict[Path, bytes] = {}
            built = self._state.fingerprint
            unavailable = any(getattr(p, "retry", False) for p in self._state.mesh.problems)  # to try again
            if changed and (fp.files, fp.events, fp.access) == (built.files, built.events, built.access) \
                    and not self.reload_problems and not unavailable:
                self.seen = fp  # already built from these (the watcher and a writer of this process both asked)
                return True
            new, why, problems = self._try_build(fp, read=read)
            current = self._state
            if new is None:
                # each broken file keeps its last good bytes; the other files (a governance tightening) and
                # the state databases (a version, a revoked grant) apply now
                broken = {(self.path / p.file).resolve() for p in problems if p.file}
                mixed = {**current.files, **{f: b for f, b in read.items() if f.resolve() not in broken}}
                new, _, _ = self._try_build(dataclasses.replace(fp, files=current.fingerprint.files), mixed)
            if new is None and (fp.events, fp.access) != (current.fingerprint.events, current.fingerprint.access):
                # then the last good files with the state databases' changes
                kept = dataclasses.replace(fp, files=current.fingerprint.files)
                new, _, _ = self._try_build(kept, current.files)
            if new is None:
                return self._reload_failed(fp, why, problems)
            with self._lock:
                old, self._state = self._state, new
                self.seen, self.reload_problems = fp, []
            if why:  # served on the last good files: say why the new ones are not
                self._reload_failed(fp, why + " (the last good files serve, with the state's changes)", problems)
        del old  # the old database closes when the last query using it is done
        return True

    def _try_build(self, fp: live.Fingerprint, files: dict | None = None, read: dict | None = None
                   ) -> tuple[State | None, str, list[Problem]]:
        """A new state, or None with why and the problems (a build that fails, or one whose files bring errors
        that leave out a quantum the current state serves)."""
        try:
            new = self._build(fp, files, read)
        except Exception as e:  # noqa: BLE001 - a broken edit must not stop the serving state
            problems = list(getattr(e, "problems", None) or []) or [Problem("", "", str(e).split("\n")[0])]
            return None, f"{e}".split("\n")[0], problems
        broken = _new_errors(self._state.mesh, new.mesh)
        if broken:
            new.backend.close()
            if new.engine is not None:
                new.engine.close()
            return None, "a change to the mesh's files has errors", broken
        return new, "", []

    def _reload_failed(self, fp: live.Fingerprint, why: str, problems: list[Problem]) -> bool:
        import logging

        self.seen, self.reload_problems = fp, problems
        detail = "; ".join(f"{p.file}{':' + str(p.line) if p.line else ''} {p.path} {p.message}".strip()
                           for p in problems[:5])
        logging.getLogger("quanta.live").error("reload failed, the last good state serves: %s: %s", why, detail)
        state = self._state
        if ("system", "problems") in state.namespace.system_tables:
            state.backend.put_table("problems", system_tables.problems_table(
                list(state.mesh.problems) + [_as_reload_problem(p) for p in problems]))
        try:
            from .onboarding.common import store_of

            store_of(self).emit("reload_failed", message=f"reload failed, the last good state serves: "
                                        f"{why}: {detail}")
        except Exception:  # noqa: BLE001 - a read-only state folder: the log and the problems table say it
            pass
        return False

    def refresh_observability(self, fingerprint: live.Fingerprint | None = None) -> None:
        """Rewrite the tables that show observations (quality results, SLO status, access requests) from the
        state databases; the state itself does not change. With ``fingerprint`` (the watcher's, whose new
        events it checked are observations only), those changes count as applied; without, nothing is marked
        applied (another process's change since then is still the watcher's to see)."""
        state = self._state
        try:
            from .onboarding.tables import refresh

            refresh(self)
        except Exception:  # noqa: BLE001 - observations are best effort; the data path is unaffected
            pass
        state.backend.put_table("access_requests", self._access_table(state.mesh, state.governance))
        if fingerprint is None:
            return
        with self._lock:
            if self._state is state:
                self.seen = live.Fingerprint(self.seen.files, fingerprint.events, self.seen.access,
                                             fingerprint.observations)

    def retry_unavailable(self, every: float = 30.0) -> bool:
        """Reload now and then while a source of the current state is unavailable (a hung or stopped server)."""
        if not any(getattr(p, "retry", False) for p in self._state.mesh.problems) and \
                not getattr(self._state.engine, "broken", False):  # a data engine that stopped answering
            return False
        if time.monotonic() - self._unavailable_retry < every:
            return False
        self._unavailable_retry = time.monotonic()
        return self.reload()

    def held_folders(self) -> set[str]:
        """The warehouse folders (version directories) the current state reads: a server's lease holds them."""
        from .onboarding import serving

        state = self._state
        out = {str(serving.version_dir(state.mesh, q, d, n)) for (q, d, n) in state.namespace.pinned}
        for ds in state.mesh.datasets():
            if ds.source is not None and ds.source.kind == "parquet" and serving.in_warehouse(state.mesh, ds):
                out.add(str(Path(ds.source.location).parent))
        return out

    def sweep_expired(self) -> list[Path]:
        """Delete the files of expired versions nobody may read any more (``onboarding.pipeline.sweep_expired``)."""
        from .onboarding.store import Store

        if not Store.exists(self.state_dir):
            return []
        from .onboarding.common import store_of
        from .onboarding.pipeline import sweep_expired

        return sweep_expired(self, store_of(self))

    def watch(self, interval: float | None = None) -> live.Watcher:
        """Start (once) the watcher that hot-reloads this platform when its mesh changes (servers call it)."""
        with self._lock:
            if self._watcher is None:
                self._watcher = live.Watcher(self, interval).start()
                from .webhooks import Deliverer

                self._deliverer = Deliverer(self).start()  # and deliver the mesh's webhooks from its outbox
            return self._watcher

    def _build(self, fingerprint: live.Fingerprint, files: dict[Path, bytes] | None = None,
               read: dict[Path, bytes] | None = None) -> State:
        """A new state from the mesh's files (``files``: these bytes instead of the disk's) and the state
        databases. ``read``, when given, receives the bytes of the files read from disk, even if it fails."""
        paused = gc.isenabled()  # a build allocates many long-lived objects: collections meanwhile find nothing
        gc.disable()
        try:
            if files is not None:
                with from_files(files):
                    state = self._build_state(fingerprint)
                return dataclasses.replace(state, files=files)
            with recording() as recorded:
                try:
                    state = self._build_state(fingerprint)
                finally:
                    if read is not None:
                        read.update(recorded)
            return dataclasses.replace(state, files=recorded)
        finally:
            if paused:
                gc.enable()

    def _build_state(self, fingerprint: live.Fingerprint) -> State:
        started = time.perf_counter()
        mesh = load_mesh(self.path)
        if self.audit is None:
            self.audit = audit.AuditLog(self.state_dir / "state.db")
        if self.logins is None:
            self.logins = logins.LoginFailures(self.state_dir / "state.db")
        self.audit.required = bool(mesh.settings["audit_required"])  # read again at each reload
        self.throttle.configure(mesh.settings["max_failed_logins"], mesh.settings["failed_login_window_seconds"])
        backend = DuckDBBackend(mesh.settings, credentials=server_secrets.provider(mesh.path, mesh.raw.get("secrets")))
        engine = None
        try:
            from .onboarding import serving  # published versions are served instead of the contract's server

            serving.allow_warehouse(mesh, backend)
            served = serving.served_sources(mesh, self.state_dir)
            register_sources(mesh, backend, served)
            engine = _data_engine(mesh, served)  # Spark: the same datasets as this session's temporary views
            namespace = Namespace(mesh, mesh.version, backend.relation,
                                  prepare=lambda relation: backend.ensure_table(relation[2]))
            pipeline = Pipeline(namespace, backend.dialect, PASSES, engine=_engine_sql(engine))
            self._compile_derived(mesh, backend, namespace, pipeline)
            governance, lineage = self._load_governance(mesh, backend)
            self._serial += 1
            namespace.governance = governance
            namespace.version = f"{mesh.version}:{governance.version}#{self._serial}"  # plan caches key on it
            self._build_system_tables(mesh, backend, namespace, governance, lineage)
            namespace.pinned, namespace.pinned_datasets = serving.register_pinned(mesh, backend, self.state_dir)
            if engine is not None:
                _register_pinned(mesh, engine, namespace)
                engine.register_masks(self._mask_salt(governance))
            backend.lock()
        except BaseException:
            backend.close()
            if engine is not None:
                engine.close()
            raise
        return State(mesh, backend, namespace, pipeline, governance, lineage, time.perf_counter() - started,
                     OpenLineage(mesh, mesh.settings["openlineage"]), fingerprint, self._serial, engine=engine)

    def _load_governance(self, mesh: Mesh, backend: DuckDBBackend) -> tuple[Governance, Lineage]:
        """Governance fails closed: a global problem stops the load, a local one leaves its quantum out."""
        governance, problems, local = load_governance(mesh)
        mesh.problems.extend(problems)
        today = dt.date.today()
        for req in self.access_requests.all():  # approved access requests are grants until they expire
            if req.status == "approved" and req.expires and dt.date.fromisoformat(req.expires) >= today:
                governance.grants.append(_request_grant(req))
        # contracts inherited along column lineage (classifications feed the policies' selectors)
        anonymising = tuple(governance.settings.get("anonymising_transformations", DEFAULT_ANONYMISING))
        lineage = inherit(mesh, anonymising)
        derived: dict[str, list] = {}  # the column lineage of every derived dataset, marts included
        for e in lineage.edges:
            derived.setdefault(f"{e.target_quantum}.{e.target_dataset}", []).append(e)
        governance.follow_marts(derived, mesh.dataset, anonymising)
        for problem in lineage.problems:
            if problem.severity == "error" and problem.quantum:
                exclude(mesh, problem.quantum, problem)
            else:
                mesh.problems.append(problem)

        def describe(sql: str):
            return [(c.name, c.type) for c in backend.describe(sql)]

        backend.register_masks(self._mask_salt(governance))
        global_problems, local_checked = check_expressions(governance, mesh, describe)
        if global_problems:
            raise errors.CatalogError("invalid governance: a global policy does not fit the mesh",
                                      problems + global_problems)
        for quantum, found in list(local.items()) + list(local_checked.items()):
            for problem in found:
                exclude(mesh, quantum, problem)
        return governance, lineage

    def _mask_salt(self, governance: Governance) -> str:
        """The secret salt of hash masks: from the environment, else a random one kept in the state folder."""
        env = os.environ.get(str(governance.settings.get("mask_salt_env", "QUANTA_MASK_SALT")))
        if env:
            return "".join(ch for ch in env if ch.isalnum())
        path = self.state_dir / "mask_salt"
        try:
            if not path.exists():  # written whole, then linked: a process never reads half a salt
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_name(f".mask_salt.{os.getpid()}.{secrets.token_hex(4)}")
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(secrets.token_hex(16))
                    f.flush()
                    os.fsync(f.fileno())
                try:
                    os.link(tmp, path)  # fails if another process made it first: theirs is the salt
                except FileExistsError:
                    pass
                finally:
                    os.unlink(tmp)
            return "".join(ch for ch in path.read_text().strip() if ch.isalnum())
        except OSError as e:  # a state folder that cannot be written: a salt of this process, said once
            if self._ephemeral_salt is None:
                import logging

                logging.getLogger("quanta").warning(
                    "the mask salt cannot be kept in %s (%s): hash masks use a salt of this process only, so "
                    "hashed values differ between processes and restarts; set %s to share one", path, e,
                    governance.settings.get("mask_salt_env", "QUANTA_MASK_SALT"))
                self._ephemeral_salt = secrets.token_hex(16)
            return self._ephemeral_salt

    @staticmethod
    def _compile_derived(mesh: Mesh, backend: DuckDBBackend, namespace: Namespace, pipeline: Pipeline) -> None:
        """Resolve each derived dataset's SQL (sources first), type it, and fit it to its contract."""
        for ds in mesh.derived_sources_first():
            if mesh.quanta.get(ds.quantum.lower()) is None:
                continue  # excluded meanwhile
            try:
                resolved = pipeline.resolve_definition(ds.sql or "", SYSTEM_PRINCIPAL)
                definition = resolved.tree
                produced = backend.describe(definition.sql(backend.dialect))
            except errors.Error as e:
                exclude(mesh, ds.quantum, Problem(ds.file, ds.yaml_path, f"the SQL of {ds.qualified_name}: {e}",
                                                  None, ds.quantum))
                continue
            except Exception as e:  # a DuckDB binder error in the definition
                first = str(e).split("\n")[0]
                exclude(mesh, ds.quantum, Problem(ds.file, ds.yaml_path, f"the SQL of {ds.qualified_name} fails: "
                                                  f"{first}", None, ds.quantum))
                continue
            problem, definition = _fit_to_contract(ds, definition, produced, backend)
            if problem is not None:
                exclude(mesh, ds.quantum, problem)
                continue
            for node in definition.walk():
                node._meta = None  # noqa: SLF001 - positions in the contract's SQL, not the user's
            namespace.definitions[(ds.quantum.lower(), ds.name.lower())] = Definition(definition, resolved.marks)
            if ds.source is None:  # a mart served from its versions keeps its view
                backend.create_view(ds.quantum, ds.name, definition.sql(backend.dialect))  # for typing policies

    def _build_system_tables(self, mesh: Mesh, backend: DuckDBBackend, namespace: Namespace,
                             governance: Governance, lineage: Lineage) -> None:
        dictionary = system_tables.dictionary_tables(mesh)
        dictionary.update({
            "principals": ("Principals: roles, groups and attributes (no secrets)",
                           governance_tables.principals(governance)),
            "grants": ("Grants of datasets to roles, users and groups", governance_tables.grants(governance)),
            "policies": ("Global and local policies: masks, row filters, denials", governance_tables.policies(governance)),
            "policy_coverage": ("For each policy, the datasets and columns it covers, and warnings for columns that "
                                "look covered but are not", governance_tables.policy_coverage(
                                    governance, mesh, lineage.edges)),
            "column_access": ("For the current principal, each column's access: visible, masked or denied",
                              _empty(governance_tables.COLUMN_ACCESS_COLUMNS)),
            "query_log": ("Every query: who, when, what it read, which policies applied (own queries; all for auditors)",
                          self.audit.history()),
            "login_failures": ("Failed logins of every interface: when, why, the user claimed, the client (auditors "
                               "only)", self.logins.history()),
            "column_lineage": ("Column lineage of derived datasets: source columns and transformation",
                               system_tables.column_lineage(lineage.edges, mesh)),
            "access_requests": ("Access requests: who asked for which dataset, why, and the decision "
                                "(own requests and those one may approve; all for auditors)",
                                self._access_table(mesh, governance)),
        })
        from .onboarding.tables import observability_tables

        dictionary.update(observability_tables(mesh, self.state_dir))
        info = system_tables.information_schema(mesh, dictionary)
        for schema, tables in (("system", dictionary), ("information_schema", info)):
            for name, (description, table) in tables.items():
                internal = name if schema == "system" else f"information_schema_{name}"
                backend.put_table(internal, table, lazy=True)
                namespace.system_tables[(schema, name)] = SystemTable(
                    name, schema, backend.system_relation(internal), tuple(table.column_names), description)

    # -- queries ----------------------------------------------------------------------------------

    def principal(self, user: str | None, claims: oidc.Claims | None = None) -> Principal:
        """The principal named ``user`` in the governance file (an unknown name holds only ``public``); with
        a verified JWT's ``claims``, united with what they may grant (``oidc.principal_of``)."""
        if claims is None:
            return self._state.governance.principal(user)
        return oidc.principal_of(self._state.governance, claims)

    def identify(self, credential: str | None, interface: str = "python", client: str | None = None,
                 user: str | None = None) -> Identity:
        """Who a credential proves to be: the one authentication of every interface (HTTP bearer, the
        PostgreSQL wire password, Flight SQL bearer and basic). A Quanta token (``qt_...``), or a JWT of an
        issuer ``governance.yaml`` declares (``oidc.verify``); with ``user`` (the PostgreSQL or basic-auth
        user), it must prove that principal. ``AuthenticationError`` says why not, never echoing the
        credential; each refusal is recorded (``login_failed``) with the ``interface`` and the ``client``'s
        address. A client with too many failed logins is refused first (``check_login``), unverified."""
        self.check_login(interface, client, user if user is not None or client else self._claimed(credential))
        try:
            identity = self._identify(credential)
        except errors.AuthenticationError as e:
            reason, claimed, issuer, token_id = getattr(e, "failure", ("malformed_credentials", None, None, None))
            self.login_failed(interface, reason, user or claimed, client, issuer, token_id)
            raise
        if user is not None and identity.name != user:
            self.login_failed(interface, "user_mismatch", user, client,
                              identity.claims.issuer if identity.claims else None, identity.token_id)
            raise errors.AuthenticationError(f'the credential does not prove the user "{user}"')
        return identity

    def login_failed(self, interface: str, reason: str, claimed_user: str | None = None, client: str | None = None,
                     issuer: str | None = None, token_id: str | None = None) -> None:
        """Record a failed login (``governance.logins``: ``system.login_failures``, auditors only): every
        interface's refusals come here, those of ``identify`` and those a server decides itself (a wrong SCRAM
        proof, an ended session). Never pass a credential or a part of one: ``token_id`` only for a token the
        store knows."""
        self.throttle.failed(interface, client, claimed_user)
        if self.logins is not None:
            try:
                self.logins.record(interface, reason, claimed_user, issuer, token_id, client)
            except Exception:  # noqa: BLE001,S110 - the login is refused anyway; the refusal must stay a 401
                pass

    def check_login(self, interface: str, client: str | None = None, user: str | None = None) -> None:
        """``LoginThrottled`` (recorded as ``throttled``) when the client (its address, or the user it claims:
        ``governance.throttle``) failed to log in too often lately: before any credential is verified."""
        wait = self.throttle.refused(interface, client, user)
        if wait is None:
            return
        if self.logins is not None:
            try:
                self.logins.record(interface, "throttled", user, None, None, client)
            except Exception:  # noqa: BLE001,S110 - refused anyway
                pass
        raise errors.LoginThrottled(wait)

    def _claimed(self, credential: str | None) -> str | None:
        """The principal a JWT claims, unverified (the throttle's key of a client without an address)."""
        if not self.throttle.refusing or not credential or credential.startswith("qt_"):
            return None
        issuers = getattr(self._state.governance, "issuers", ())
        if not issuers or not oidc.looks_like_jwt(credential):
            return None
        try:
            return oidc.claimed(credential, issuers)
        except Exception:  # noqa: BLE001 - a hostile token: no key
            return None

    def _identify(self, credential: str | None) -> Identity:
        """``identify`` without the record: a refusal's ``failure`` is (reason, claimed user, issuer, token id)."""
        def refuse(message: str, reason: str, claimed=None, issuer=None, token_id=None):
            error = errors.AuthenticationError(message)
            error.failure = (reason, claimed, issuer, token_id)
            return error

        if not credential:
            raise refuse("no token given", "no_credentials")
        if credential.startswith("qt_"):
            name = self.tokens.verify(credential)
            token_id = credential[3:].partition("_")[0]
            if name is None:
                status = self.tokens.status(token_id) if credential.count("_") >= 2 else None
                reason = {None: "unknown_token", "active": "wrong_token_secret"}.get(status, "token_revoked_or_expired")
                raise refuse("a valid token is required", reason, token_id=token_id if status else None)
            return Identity(name, token_id=token_id)
        gov = self._state.governance
        issuers = getattr(gov, "issuers", ())
        if not oidc.looks_like_jwt(credential):
            raise refuse("a valid token is required", "malformed_credentials")
        if not issuers:
            raise refuse("a valid token is required", "no_issuers")
        try:
            claims = oidc.verify(credential, issuers, self.keys)
        except oidc.TokenError as e:
            raise refuse(f"JWT refused: {e}", e.reason, e.claimed, e.issuer) from None
        try:
            oidc.check_claims(gov, claims)
        except oidc.TokenError as e:
            raise refuse(f"JWT refused: {e}", e.reason, claims.name, claims.issuer) from None
        return Identity(claims.name, claims=claims, expires_at=claims.expires_at)

    def authenticate(self, token: str | None, interface: str = "python", client: str | None = None) -> Principal:
        """The principal of a bearer token (``identify``); ``AuthenticationError`` when there is no valid token."""
        identity = self.identify(token, interface, client)
        return self.principal(identity.name, identity.claims)

    def require_purpose(self, principal: Principal, purpose: str | None, sql: Any = None,
                        interface: str | None = None) -> None:
        """Purposes are granted, not asserted: ``AccessDenied`` unless ``principal`` holds the purpose it
        declares (``authorize``'s ``declare_purpose``). With ``interface``, the refusal is audited here."""
        if not purpose:  # none declared: contracts limited to purposes refuse the query
            return
        decision = allowed(self._state.governance, principal, "declare_purpose", purpose)
        if not decision:
            if interface is not None:
                self.audit.record(audit.Entry(principal.name, sql if isinstance(sql, str) else repr(sql), interface,
                                              purpose, status="denied", error=decision.reason, duration_ms=0.0))
            raise errors.AccessDenied(decision.reason)

    def compile(self, sql: str, principal: Principal, dialect: str = "duckdb", purpose: str | None = None,
                interface: str = "python") -> Plan:
        self.require_purpose(principal, purpose, sql, interface)
        return self._state.pipeline.compile(sql, principal, dialect, purpose)

    def prepare(self, sql: str, principal: Principal, dialect: str = "duckdb", purpose: str | None = None,
                interface: str = "python") -> Plan:
        """Compile a statement to run later (a prepared statement): a refusal now is audited as a denied
        query, like one refused by ``query``; the executions are audited when they run."""
        try:
            self.require_purpose(principal, purpose)
            return self._state.pipeline.compile(sql, principal, dialect, purpose)
        except errors.AccessDenied as e:
            self.audit.record(audit.Entry(principal.name, sql, interface, purpose, status="denied", error=str(e),
                                          duration_ms=0.0))
            raise

    def query(self, sql: str, principal: Principal, params: Sequence[Any] | dict | None = None,
              dialect: str = "duckdb", timeout: float | None = None, purpose: str | None = None,
              interface: str = "python", cancel: Cancellation | None = None,
              named_parameters: bool = False) -> Result:
        """Run one query for ``principal``: compile (cached), execute, stream; every query is audited.

        ``named_parameters``: the Python API's parameters (``:name``, ``%(name)s``, ``$name`` with a dict; ``?``
        and ``$1`` with a sequence) are checked and bound here (``federation.parameters.bind``), so a mismatch
        is refused and audited like any other refused query.

        The server's limits hold here for every interface (``federation.admission``): ``timeout`` may lower
        the mesh's ``query_timeout_seconds``, never raise it, and counts from now (waiting for a slot and
        compiling included). On a shared server (``SHARED_INTERFACES``: HTTP, PostgreSQL wire) the principal's
        running queries are capped (``TooManyQueries`` beyond); an in-process caller (Python, CLI) owns its
        process and its open results, and is not queued behind itself."""
        state = self._state
        started = time.perf_counter()
        entry = audit.Entry(principal.name, sql if isinstance(sql, str) else repr(sql), interface, purpose)
        run_id = str(uuid.uuid4())  # the OpenLineage run of this query, when query events are on
        slot: list[admission.Slot] = []  # the principal's running-query slot, freed when the query ends

        def finish(status: str, error: BaseException | None = None, rows: int | None = None) -> None:
            while slot:
                slot.pop().release()
            entry.status, entry.rows = status, rows
            entry.error = str(error) if error is not None else None
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self.audit.record(entry)
            if state.openlineage.queries and hasattr(entry, "_plan_datasets"):  # a START was sent
                state.openlineage.emit_query(run_id, "COMPLETE" if status == "ok" else "FAIL", principal.name,
                                             entry.sql, getattr(entry, "_plan_datasets", ()), entry.error)

        def failed(e: BaseException) -> str:
            if isinstance(e, errors.AccessDenied):
                return "denied"
            return "cancelled" if isinstance(e, (errors.QueryTimeout, errors.QueryCancelled)) else "error"

        try:
            if named_parameters:
                sql, params = bind(sql, params)
            if params is not None and not isinstance(params, (list, tuple, dict)):
                raise errors.ProgrammingError("parameters are a list, a tuple or a dict")
            timeout = admission.effective_timeout(timeout, state.mesh.settings["query_timeout_seconds"])
            deadline = time.monotonic() + timeout
            if interface in SHARED_INTERFACES:
                slot.append(admission.of(self).enter(principal.name, admission.Limits.of(state.mesh.settings),
                                                     deadline, cancel))
            self.audit.check()  # audit_required and no audit log: no data (fail closed)
            self.require_purpose(principal, purpose)  # audited as denied below
            try:
                plan = state.pipeline.compile(sql, principal, dialect, purpose)
            except RecursionError:
                raise errors.QueryTooComplex("statement too complex: the query nests too deeply to compile "
                                             "(setting max_sql_depth)") from None
            entry.rewritten_sql = plan.sql if plan.explain is None else (
                f"EXPLAIN {'ANALYZE ' if plan.explain.analyze else ''}{plan.explain.sql}")
            entry._plan_datasets = plan.datasets  # type: ignore[attr-defined]
            if state.openlineage.queries:
                state.openlineage.emit_query(run_id, "START", principal.name, entry.sql, plan.datasets)
            entry.datasets = [f"{q}.{d}" for q, d in plan.datasets]
            entry.columns = list(plan.columns)
            entry.policies = sorted({p["policy"] for p in plan.policies})
            if "system.query_log" in plan.system_tables:
                pending = self.audit.drain()
                if pending is not None:
                    state.backend.append_table("query_log", pending)
            if "system.login_failures" in plan.system_tables:
                pending = self.logins.drain()
                if pending is not None:
                    state.backend.append_table("login_failures", pending)
            remaining = deadline - time.monotonic()  # the wait for a slot and the compile count
            if remaining <= 0:
                raise admission.timed_out(timeout, f"waiting for a slot and compiling took {timeout - remaining:.2f} s")
            try:
                if plan.explain is not None:  # the plan of the governed query, shown as governance allows
                    from . import explain

                    execution = explain.run(state.backend, plan, params, remaining, cancel)
                elif plan.engine_sql is not None:  # mesh data on the data engine (Spark)
                    execution = _run_on_engine(state, plan, params, remaining, cancel)
                else:
                    execution = state.backend.execute(plan.sql, params, remaining, cancel)
            except errors.QueryTimeout:
                raise admission.timed_out(timeout) from None
            execution.timeout = timeout  # the engine stops it at the deadline; its message names the whole time-out
        except BaseException as e:
            finish(failed(e), e)
            raise
        return Result(execution, plan, on_close=lambda rows, error: finish(
            "ok" if error is None else failed(error), error, rows))

    def read(self, sql: str, reason: str, principal: Principal | None = None, datasets: Sequence[str] = ()) -> pa.Table:
        """A read of mesh data by Quanta itself, outside the pipeline (quality metrics on raw data, SLO probes,
        mart refreshes), with a declared ``reason``: the one gateway for the platform's own reads. Each read
        is audited (interface ``system:<reason>``, on behalf of ``principal``) and obeys the mesh time-out;
        its result goes to the platform's code, never to a principal as it is. A read of ``datasets`` runs on
        the data engine (Spark) when its SQL renders there, else on the embedded DuckDB; the result says
        where it ran (``ran_on(table)``: ``"spark_connect"`` or ``"duckdb"``)."""
        state = self._state
        who = principal or SYSTEM_PRINCIPAL
        entry = audit.Entry(who.name, sql, f"system:{reason}", rewritten_sql=sql, datasets=list(datasets))
        started = time.perf_counter()
        timeout = state.mesh.settings["query_timeout_seconds"]
        try:
            self.audit.check()
            execution = _read_on_engine(state, sql, timeout) if datasets and state.engine is not None else None
            engine = state.data_engine.kind if execution is not None else state.backend.kind
            if execution is None:
                execution = state.backend.execute(sql, None, timeout)
            try:
                table = execution.reader().read_all()
            finally:
                execution.close()
            table = table.replace_schema_metadata({**(table.schema.metadata or {}), ENGINE_KEY: engine.encode()})
        except BaseException as e:
            entry.status, entry.error = "error", str(e)
            raise
        else:
            entry.rows = table.num_rows
            return table
        finally:
            entry.duration_ms = round((time.perf_counter() - started) * 1000, 3)
            self.audit.record(entry)


def _problem_key(p: Problem) -> tuple:
    return (p.file, p.path, p.message)


def _new_errors(old: Mesh, new: Mesh) -> list[Problem]:
    """Errors of the new mesh's files that the old one did not have and that leave out a quantum the old
    state serves (a broken edit): a reload that would bring them keeps the last good state instead. A
    source that is unavailable for now (``retry``) is not an edit."""
    had = {_problem_key(p) for p in old.problems}
    lost = {q for q in old.quanta if q not in new.quanta}
    return [p for p in new.problems if p.severity == "error" and not getattr(p, "retry", False)
            and _problem_key(p) not in had and (p.quantum is None or p.quantum.lower() in lost)]


def _as_reload_problem(p: Problem) -> Problem:
    import dataclasses

    return dataclasses.replace(p, message=f"not served (the last good state serves until this is fixed): {p.message}")


def _request_grant(req: AccessRequest) -> Grant:
    return Grant("user", req.principal, f"{req.quantum}.{req.dataset}", "read", granted_by=req.decided_by,
                 reason=f"access request {req.request_id}" + (f": {req.purpose}" if req.purpose else ""),
                 expires=dt.date.fromisoformat(req.expires) if req.expires else None,
                 source=f"request {req.request_id}")


def _empty(columns: tuple[str, ...]) -> pa.Table:
    return pa.table({c: pa.array([], pa.string()) for c in columns})


def _fit_to_contract(ds: Dataset, definition: exp.Query, produced, backend: DuckDBBackend):
    """The definition projected on the contract's columns, cast to their types; or a problem."""
    from .catalog import types as ctypes
    from .catalog.model import Column

    found = {c.name.lower(): c for c in produced}
    if not ds.columns:
        ds.columns = [Column(name=c.name, ordinal=i + 1, data_type=c.type) for i, c in enumerate(produced)]
        return None, definition
    select = []
    for c in ds.columns:
        got = found.get(c.name.lower())
        if got is None:
            return Problem(ds.file, c.yaml_path, f"column {c.name!r} of {ds.qualified_name} is declared in the "
                           f"contract but its SQL does not produce it; it produces: "
                           f"{', '.join(x.name for x in produced)}", None, ds.quantum), definition
        if not ctypes.compatible(got.type, c.data_type):
            return Problem(ds.file, c.yaml_path, f"column {c.name!r} of {ds.qualified_name} is declared "
                           f"{c.data_type} but its SQL produces {got.type}", None, ds.quantum), definition
        expr = quote(got.name)
        if got.type != c.data_type:
            expr = f"CAST({expr} AS {c.data_type})"
        select.append(f"{expr} AS {quote(c.name)}")
    if [c.name for c in produced] == [c.name for c in ds.columns] and all(
            found[c.name.lower()].type == c.data_type for c in ds.columns):
        return None, definition
    wrapper = exp.select(*select, dialect="duckdb").from_(
        exp.Subquery(this=definition, alias=exp.TableAlias(this=exp.to_identifier("_derived"))))
    return None, wrapper


# -- the data engine (settings.engine) ------------------------------------------------------------------


def _data_engine(mesh: Mesh, served: dict) -> Backend | None:
    """The data engine of a new state: None for the embedded DuckDB; for Spark Connect, a new session with
    every source dataset DuckDB registered as its temporary view. A dataset Spark cannot read leaves its
    quantum out (a problem naming it); a cluster that does not answer leaves every quantum in (data queries
    say it is unavailable; the state is rebuilt in the background until it answers)."""
    if mesh.settings["engine"].get("kind", "duckdb") != "spark_connect":
        return None
    from .engine.spark_backend import EngineDown, SparkConnectBackend

    engine = SparkConnectBackend(mesh.settings)
    if not engine.available:
        mesh.problems.append(Problem("mesh.yaml", "settings.engine", f"{engine.unavailable}; data queries fail "
                                     f"until it answers (retrying in the background)", severity="warning",
                                     retry=True))
        return engine
    jobs = [ds for q in mesh.quanta.values() for ds in q.datasets.values() if ds.source is not None]

    def register(ds: Dataset) -> BaseException | None:
        relation = (CATALOG, ds.quantum.lower(), ds.name.lower())
        try:
            if served.get(relation[1:], ...) is None:  # a warehouse dataset without a version yet: empty
                engine.register_empty(relation, ds)
            else:
                engine.register_dataset(relation, ds, ds.source)
        except errors.Error as e:
            return e
        return None

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=4) as pool:  # two round trips each: a few at once
        outcomes = list(pool.map(register, jobs))
    for ds, e in zip(jobs, outcomes):
        if isinstance(e, EngineDown):
            mesh.problems.append(Problem("mesh.yaml", "settings.engine", f"{e}; retrying in the background",
                                         severity="warning", retry=True))
            return engine
    for ds, e in zip(jobs, outcomes):
        if e is not None and ds.quantum.lower() in mesh.quanta:
            exclude(mesh, ds.quantum, Problem(ds.file, ds.source.yaml_path, str(e), None, ds.quantum))
    return engine


def _register_pinned(mesh: Mesh, engine: Backend, namespace: Namespace) -> None:
    """The kept versions (``quantum."dataset@vN"``) as temporary views of the data engine too."""
    from .catalog.model import Source
    from .onboarding import serving

    if not getattr(engine, "available", True):
        return
    for (q, d, n), relation in list(namespace.pinned.items()):
        ds = namespace.pinned_datasets.get((q, d, n))
        if ds is None:
            continue
        if not isinstance(n, int):  # a dataset's quarantine (onboarding/quarantine.py): on the embedded engine only
            continue
        source = Source("parquet", str(serving.version_dir(mesh, q, d, n) / "*.parquet"))
        try:
            engine.register_dataset(relation, ds, source, pinned=True)
        except errors.Error:
            namespace.pinned.pop((q, d, n), None)  # not served on this engine: refused as an unknown version


def _engine_sql(engine: Backend | None) -> EngineSQL | None:
    if engine is None or engine.kind == "duckdb":
        return None
    from .engine import spark_dialect

    def relation_name(table: exp.Table) -> str | None:
        if (table.db or "").lower() == "_quanta_system" or table.name.lower().endswith("@quarantine"):
            return None  # system tables and held rows stay in the embedded state (refused, never run on Spark)
        return engine.relation_name((table.catalog, table.db, table.name))

    return EngineSQL(spark_dialect.check, lambda tree: spark_dialect.render(tree, relation_name))


def _run_on_engine(state: State, plan: Plan, params, timeout: float, cancel: Cancellation | None):
    """Run a data query on the data engine, its result with the names and types DuckDB gives the same
    governed query (its schema read from the embedded engine, which binds the same views)."""
    schema = _duckdb_schema(state, plan, params)
    execution = state.data_engine.execute(plan.engine_sql, params, timeout, cancel)
    if schema is not None and hasattr(execution, "conform"):
        execution.conform(schema)
    return execution


def _duckdb_schema(state: State, plan: Plan, params) -> pa.Schema | None:
    cache = state.schemas if not params else None
    key = hashlib.sha256(plan.sql.encode("utf-8", "surrogatepass")).digest()  # not the text: it may be long
    if cache is not None and key in cache:
        return cache[key]
    # DuckDB's answer is the reference: a query it cannot bind is refused with its error (never run on the
    # cluster with types nobody checked)
    probe = state.backend.execute(f"SELECT * FROM ({plan.sql}) AS quanta_schema LIMIT 0", params, 30.0)
    try:
        schema = probe.schema
    finally:
        probe.close()
    if cache is not None:
        if len(cache) > 1024:
            cache.clear()
        cache[key] = schema
    return schema




def _read_on_engine(state: State, sql: str, timeout: float):
    """A platform read (quality rules, mart refreshes) on the data engine when its SQL renders there; None:
    it runs on the embedded engine (it names what only DuckDB has: staged batches, a function Spark lacks)."""
    pipeline = state.pipeline
    if pipeline.engine is None:
        return None
    import sqlglot

    try:
        tree = sqlglot.parse_one(sql, read="duckdb")
        rendered = pipeline.engine.render(tree)
    except Exception:  # noqa: BLE001 - not renderable for the engine: the embedded engine reads it
        return None
    schema = _duckdb_schema(state, _ReadPlan(sql), None)  # DuckDB's names and types (a mart's contract types)
    execution = state.data_engine.execute(rendered, None, timeout)
    if schema is not None and hasattr(execution, "conform"):
        execution.conform(schema)
    return execution


@dataclass(frozen=True)
class _ReadPlan:
    sql: str  # what _duckdb_schema reads of a plan
