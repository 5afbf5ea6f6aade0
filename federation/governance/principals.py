"""Principals: who runs a query. Users with roles, groups and attributes, defined in the mesh's
governance file. Every principal implicitly holds the role ``public`` (like PostgreSQL's PUBLIC)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

PUBLIC = "public"


@dataclass(frozen=True)
class Principal:
    name: str
    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    attributes: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    known: bool = True  # defined in the governance file (an unknown user holds only ``public``)

    @property
    def all_roles(self) -> frozenset[str]:
        return frozenset({PUBLIC, *self.roles})

    def has_role(self, role: str) -> bool:
        return role == PUBLIC or role in self.roles

    def attribute(self, name: str) -> list:
        value = self.attributes.get(name)
        if value is None:
            return []
        return list(value) if isinstance(value, (list, tuple, set)) else [value]

    @property
    def fingerprint(self) -> str:
        attrs = sorted((k, tuple(self.attribute(k))) for k in self.attributes)
        return f"{self.name}|{','.join(sorted(self.roles))}|{','.join(sorted(self.groups))}|{attrs!r}"


SYSTEM_PRINCIPAL = Principal("quanta-system", roles=("system",))  # Quanta's own SQL (definitions, probes)
