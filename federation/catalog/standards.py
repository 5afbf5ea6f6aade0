"""The versions of ODCS and ODPS Quanta reads, each validated against its own JSON Schema.

A document's ``apiVersion`` chooses the schema: ODCS ``v3.2.0`` the v3.2.0 schema, ``v3.1.0`` (and the
v3.0.x it still accepts) the v3.1.0 schema; ODPS ``v1.1.0`` the v1.1.0 schema, ``v1.0.0`` (and ``v0.9.0``,
which the official examples still say) the v1.0.0 schema. So a v3.2-only field (``enum``, ``synonyms``,
``deprecated``...) in a v3.1.0 contract is refused, as its standard says. The schemas are vendored in
``schemas/`` (Apache 2.0, ``ODCS-LICENSE``, ``ODPS-LICENSE``), copied unchanged from the Bitol project.

``${VAR}`` and ``${VAR:-default}`` in strings (ODCS v3.2.0 / ODPS v1.1.0, RFC 0050) resolve from the
server's environment: ``resolve_variables``. Older versions have no variables: their strings are read as written.
A contract is written by a domain team and served to anyone, so a variable resolves only when the mesh's
``VariablePolicy`` allows it (fail closed): its name is listed in the ``contract_variables`` setting, it is not
one of the mesh's secrets (a ``*_env`` of mesh.yaml, governance.yaml or the secrets file) nor named like one
(``settings.secret_like``), and it sits in a contract's ``servers`` block, where a deployment differs (host,
port, database, path). Any other is a ``RefusedVariable``: left as written, never read, an error.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import jsonschema_rs

from ..settings import secret_like

NAMES = {"odcs": "ODCS", "odps": "ODPS"}
# apiVersion -> schema file, newest first
SCHEMAS: dict[str, dict[str, str]] = {
    "odcs": {"v3.2.0": "odcs-json-schema-v3.2.0.json", "v3.1.0": "odcs-json-schema-v3.1.0.json",
             "v3.0.2": "odcs-json-schema-v3.1.0.json", "v3.0.1": "odcs-json-schema-v3.1.0.json",
             "v3.0.0": "odcs-json-schema-v3.1.0.json"},
    "odps": {"v1.1.0": "odps-json-schema-v1.1.0.json", "v1.0.0": "odps-json-schema-v1.0.0.json",
             "v0.9.0": "odps-json-schema-v1.0.0.json"},
}
# the versions whose strings may hold ${VAR} variables (RFC 0050)
WITH_VARIABLES = {"odcs": {"v3.2.0"}, "odps": {"v1.1.0"}}
LATEST = {"odcs": "v3.2.0", "odps": "v1.1.0"}


def accepted(kind: str) -> str:
    return ", ".join(SCHEMAS[kind])


@dataclass(frozen=True)
class SchemaError:
    """One schema violation: where (a JSON path as a list) and what (jsonschema-rs errors have the same two)."""

    instance_path: list
    message: str


@cache
def compiled(kind: str, api_version: str):
    """The compiled validator of one version (jsonschema-rs: the ODCS schema's ``unevaluatedProperties``
    makes the pure-Python validator ~100x slower)."""
    text = resources.files("federation.catalog").joinpath(f"schemas/{SCHEMAS[kind][api_version]}").read_text()
    return jsonschema_rs.validator_for(json.loads(text))


class VersionedValidator:
    """Validates a document against the schema its ``apiVersion`` names (``iter_errors`` as jsonschema-rs);
    an unknown version is one error naming the versions accepted."""

    def __init__(self, kind: str):
        self.kind = kind

    def iter_errors(self, doc: Any) -> Iterator[Any]:
        version = doc.get("apiVersion") if isinstance(doc, dict) else None
        if isinstance(doc, dict) and "apiVersion" in doc and version not in SCHEMAS[self.kind]:
            shown = repr(version) if isinstance(version, str) and len(version) <= 40 else "this value"
            yield SchemaError(["apiVersion"], f"apiVersion {shown} is not an {NAMES[self.kind]} version Quanta "
                              f"reads (accepted: {accepted(self.kind)})")
            return
        # no apiVersion: the newest schema says it is required (and checks the rest)
        yield from compiled(self.kind, version or LATEST[self.kind]).iter_errors(doc)

    def is_valid(self, doc: Any) -> bool:
        return next(iter(self.iter_errors(doc)), None) is None


# -- ${VAR} variables ------------------------------------------------------------------------------------

VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class UnsetVariable(Exception):
    def __init__(self, path: list, name: str):
        super().__init__(name)
        self.path, self.name = path, name


class RefusedVariable(UnsetVariable):
    """A variable the mesh does not let a contract read: ``reason`` says why (never a value)."""

    def __init__(self, path: list, name: str, reason: str):
        super().__init__(path, name)
        self.reason = reason


# where a document's variables may be: the top-level keys of each kind (ODPS has no server block)
PLACES = {"odcs": ("servers",), "odps": ()}


@dataclass(frozen=True)
class VariablePolicy:
    """Which ``${VAR}`` a document may read: ``allowed`` names and ``PREFIX_*`` patterns (the mesh's
    ``contract_variables``), never one of ``secrets`` (the mesh's ``*_env`` names) nor a secret-like name,
    and only under the top-level keys ``places``. The default allows nothing."""

    allowed: tuple[str, ...] = ()
    secrets: frozenset[str] = frozenset()
    places: tuple[str, ...] = ()

    def refusal(self, path: list, name: str) -> str | None:
        """Why ``${name}`` at ``path`` may not be resolved, or None when it may."""
        if not path or path[0] not in self.places:
            where = " or ".join(self.places or PLACES["odcs"])
            return (f"variables are resolved only in a contract's {where} block (the mesh's rule: what a contract "
                    "or a data product says is served to anyone); write the value itself")
        if not any(name == a or (a.endswith("*") and name.startswith(a[:-1])) for a in self.allowed):
            return ("the mesh does not allow it: the platform team lists the variables contracts may read in "
                    "mesh.yaml (settings: contract_variables)")
        if name.upper() in {s.upper() for s in self.secrets}:
            return "it is one of the mesh's secrets (a *_env of mesh.yaml, governance.yaml or the secrets file)"
        reason = secret_like(name)
        if reason:
            return f"{reason}: secrets are never readable by a contract"
        return None

    def stamp(self) -> bytes:
        """What a loaded mesh depends on of this policy (part of the cache key)."""
        return repr((self.allowed, sorted(self.secrets), self.places)).encode()


def has_variables(kind: str, doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("apiVersion") in WITH_VARIABLES[kind]


def resolve_variables(doc: Any, environ: dict[str, str] | None = None, policy: VariablePolicy | None = None
                      ) -> tuple[Any, dict[str, str | None], list]:
    """``doc`` with every ``${VAR}`` / ``${VAR:-default}`` in its strings that ``policy`` allows (by default
    none) replaced from the environment, the variables used (name -> value, None when unset and defaulted:
    for the cache and the mesh's fingerprint, never shown), and the problems: ``RefusedVariable`` for one
    the policy refuses (left as written, its environment never read, even with a default), ``UnsetVariable``
    for an unset one without a default (never quietly an empty string); each a YAML path and a name. Keys are
    not resolved, only values. ``doc`` itself is not changed."""
    env = os.environ if environ is None else environ
    policy = policy or VariablePolicy()
    used: dict[str, str | None] = {}
    unset: list[UnsetVariable] = []

    def text(value: str, path: list) -> str:
        if "${" not in value:
            return value

        def one(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
            reason = policy.refusal(path, name)
            if reason is not None:
                unset.append(RefusedVariable(path, name, reason))
                return m.group(0)
            if name in env:
                used[name] = env[name]
                return env[name]
            if default is not None:
                used[name] = None  # unset: the default was used (part of the fingerprint too)
                return default
            unset.append(UnsetVariable(path, name))
            return m.group(0)

        return VARIABLE.sub(one, value)

    def walk(node: Any, path: list) -> Any:
        if isinstance(node, str):
            return text(node, path)
        if isinstance(node, dict):
            return {k: walk(v, path + [k]) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v, path + [i]) for i, v in enumerate(node)]
        return node

    return walk(doc, []), used, unset


def fingerprint(name: str, value: str | None) -> str:
    """What a loaded mesh remembers of a variable: a digest of its value, never the value."""
    import hashlib

    return hashlib.sha256(f"{name}\0{'-' if value is None else '=' + value}".encode()).hexdigest()[:16]


def environment_changed(variables: dict[str, str]) -> bool:
    """Whether a variable a mesh was loaded with has another value now (``variables``: name -> fingerprint)."""
    return any(fingerprint(n, os.environ.get(n)) != f for n, f in variables.items())
