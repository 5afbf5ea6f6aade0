"""The versions of ODCS and ODPS Quanta reads, each validated against its own JSON Schema.

A document's ``apiVersion`` chooses the schema: ODCS ``v3.2.0`` the v3.2.0 schema, ``v3.1.0`` (and the
v3.0.x it still accepts) the v3.1.0 schema; ODPS ``v1.1.0`` the v1.1.0 schema, ``v1.0.0`` (and ``v0.9.0``,
which the official examples still say) the v1.0.0 schema. So a v3.2-only field (``enum``, ``synonyms``,
``deprecated``...) in a v3.1.0 contract is refused, as its standard says. The schemas are vendored in
``schemas/`` (Apache 2.0, ``ODCS-LICENSE``, ``ODPS-LICENSE``), copied unchanged from the Bitol project.

``${VAR}`` and ``${VAR:-default}`` in strings (ODCS v3.2.0 / ODPS v1.1.0, RFC 0050) resolve from the
environment: ``resolve_variables``. Older versions have no variables: their strings are read as written.
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


def has_variables(kind: str, doc: Any) -> bool:
    return isinstance(doc, dict) and doc.get("apiVersion") in WITH_VARIABLES[kind]


def resolve_variables(doc: Any, environ: dict[str, str] | None = None) -> tuple[Any, dict[str, str | None], list]:
    """``doc`` with every ``${VAR}`` / ``${VAR:-default}`` in its strings replaced from the environment,
    the variables used (name -> value, None when unset and defaulted: for the cache and the mesh's
    fingerprint, never shown), and the
    unset ones as ``UnsetVariable`` (a YAML path and a name: an unset variable without a default is never
    quietly an empty string). Keys are not resolved, only values. ``doc`` itself is not changed."""
    env = os.environ if environ is None else environ
    used: dict[str, str | None] = {}
    unset: list[UnsetVariable] = []

    def text(value: str, path: list) -> str:
        if "${" not in value:
            return value

        def one(m: re.Match) -> str:
            name, default = m.group(1), m.group(2)
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
