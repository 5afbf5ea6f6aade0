"""Credentials of database servers: never in a contract, never logged, never lent to another quantum.

A contract names its server (``servers: [{server: b2b-db, type: postgres, host: ...}]``); the credentials of
that server come from the environment or the mesh's secrets file (``secrets: secrets.yaml`` in
``mesh.yaml``, outside the contracts, readable only by its owner). A server name is chosen by whoever writes
the contract, so credentials are *scoped to the quantum* whose contract names the server::

    servers:
      b2b/b2b-db:                         # quantum b2b, server b2b-db: only b2b's contract receives them
        user: quanta_reader
        password_env: B2B_DB_PASSWORD     # or password: ... in this file
        host: db.b2b.internal             # optional: sent only to this host (and port, default 5432)
        port: 5432

and in the environment ``QUANTA_<QUANTUM>__<SERVER>_USER`` / ``_PASSWORD`` (two underscores between the
quantum and the server; each upper-cased, every character other than a letter or a digit as ``_``).

An *unscoped* entry (``b2b-db:``, ``QUANTA_B2B_DB_PASSWORD``: the form of earlier meshes) is used only
while exactly one quantum of the mesh declares a PostgreSQL server of that name; when two do, neither
receives it and each is told how to scope it (fail closed: a team cannot borrow another's credentials by
naming its server alike). Scoped credentials win over unscoped ones; within one form the environment wins
over the file. A ``host`` (``port``) in the entry binds the credentials to that address: a contract whose
server is elsewhere is refused, without connecting. No message ever holds a credential.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import yaml

from .. import errors

SCOPE = "/"  # "<quantum>/<server>" in the secrets file
DEFAULT_PORT = 5432
ENTRY_KEYS = ("user", "password", "password_env", "host", "port")


class CredentialsRefused(errors.OperationalError):
    """The mesh's credentials of a server cannot be proved to be this quantum's: nothing is sent."""


class ServerRef(str):
    """A server as the contract of one quantum names it (the string is the server's name, for messages):
    its quantum, the address the contract gives, and ``sharing``: the quanta of the mesh declaring a
    PostgreSQL server whose unscoped credentials would be the same (the same name, or the same
    environment name)."""

    quantum: str
    host: str | None
    port: int | None
    sharing: frozenset[str]

    def __new__(cls, name: str, quantum: str, host: str | None = None, port: int | str | None = None,
                sharing: frozenset[str] = frozenset()):
        self = super().__new__(cls, name)
        self.quantum, self.host, self.sharing = quantum, host, frozenset(sharing)
        self.port = _port(port)
        return self


def _port(value) -> int | None:
    try:
        return int(value) if value not in (None, "", "None") else None
    except (TypeError, ValueError):
        return None


def _upper(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


def env_name(server: str, what: str, quantum: str | None = None) -> str:
    """``QUANTA_<SERVER>_<WHAT>`` (unscoped), ``QUANTA_<QUANTUM>__<SERVER>_<WHAT>`` (scoped)."""
    return "QUANTA_" + (_upper(quantum) + "__" if quantum else "") + _upper(server) + "_" + what


def server_refs(mesh) -> dict[tuple[str, str], ServerRef]:
    """(quantum, server name) -> its ServerRef, for every PostgreSQL source of the mesh."""
    declared: dict[tuple[str, str], tuple[str | None, object]] = {}
    for q in mesh.quanta.values():
        for ds in q.datasets.values():
            src = ds.source
            if src is not None and src.kind == "postgres" and src.server:
                declared.setdefault((q.name, src.server), (src.options.get("host"), src.options.get("port")))
    by_env: dict[str, set[str]] = {}
    for quantum, server in declared:
        by_env.setdefault(_upper(server), set()).add(quantum)
    return {(quantum, server): ServerRef(server, quantum, host, port, frozenset(by_env[_upper(server)]))
            for (quantum, server), (host, port) in declared.items()}


def _entry(stored: dict, key: str) -> dict | None:
    entry = stored.get(key)
    return entry if isinstance(entry, dict) else None


def _values(entry: dict | None, env_user: str, env_password: str) -> dict:
    out: dict = {}
    if entry:
        if entry.get("user"):
            out["user"] = str(entry["user"])
        if entry.get("password_env") and os.environ.get(str(entry["password_env"])):
            out["password"] = os.environ[str(entry["password_env"])]
        elif entry.get("password"):
            out["password"] = str(entry["password"])
    for key, name in (("user", env_user), ("password", env_password)):
        if os.environ.get(name):
            out[key] = os.environ[name]
    return out


def provider(mesh_path: Path, secrets_file: str | None) -> Callable[[str], dict]:
    stored: dict = {}
    if secrets_file:
        path = (mesh_path / secrets_file).resolve()
        if path.exists():
            data = yaml.safe_load(path.read_text()) or {}
            stored = data.get("servers") or {} if isinstance(data, dict) else {}
    where = f"the secrets file {secrets_file}" if secrets_file else "the secrets file"

    def credentials(server: str) -> dict:
        """The user and password to send to ``server`` (a ServerRef); {} for a bare name (its quantum
        unknown: nothing can be proved)."""
        if not isinstance(server, ServerRef):
            return {}
        q, name = server.quantum, str(server)
        scoped_key = q + SCOPE + name
        entry = _entry(stored, scoped_key)
        out = _values(entry, env_name(name, "USER", q), env_name(name, "PASSWORD", q))
        if entry is None and not out:
            entry = _entry(stored, name)
            out = _values(entry, env_name(name, "USER"), env_name(name, "PASSWORD"))
            if not out:
                return {}
            if len(server.sharing) > 1:
                raise CredentialsRefused(
                    f"the credentials of server {name!r} ({where} entry {name!r} or {env_name(name, 'PASSWORD')}) "
                    f"are not scoped to a quantum, and quanta {', '.join(sorted(server.sharing))} each declare a "
                    f"PostgreSQL server of that name: none receives them. Scope them to the quantum they belong "
                    f"to: key {scoped_key!r} in the secrets file (servers: {{{scoped_key}: {{user, password_env}}}}) "
                    f"or {env_name(name, 'USER', q)} / {env_name(name, 'PASSWORD', q)} in the environment")
        unknown = sorted(str(k) for k in (entry or {}) if k not in ENTRY_KEYS)
        if unknown:  # e.g. a 'quanta:' list meant as a scope: not one, so nothing is sent on a guess
            raise CredentialsRefused(
                f"the entry of server {name!r} in {where} has keys Quanta does not know ({', '.join(unknown)}; it "
                f"knows {', '.join(ENTRY_KEYS)}): to scope credentials to a quantum, key them "
                f"'<quantum>{SCOPE}{name}'")
        if entry and entry.get("host") is not None:
            bound = (str(entry["host"]).lower(), _port(entry.get("port")) or DEFAULT_PORT)
            if (str(server.host or "").lower(), server.port or DEFAULT_PORT) != bound:
                raise CredentialsRefused(
                    f"the credentials of server {name!r} in {where} are bound to another address (its 'host' "
                    f"and 'port'); they are not sent to {server.host}:{server.port or DEFAULT_PORT}, the address "
                    f"this contract gives")
        return out

    return credentials
