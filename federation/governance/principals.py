"""Principals: who runs a query. Users with roles, groups and attributes, defined in the mesh's
governance file or vouched for by an identity provider it trusts (a JWT's claims, ``oidc``). Every
principal implicitly holds the role ``public`` (like PostgreSQL's PUBLIC).

An ``Identity`` is who a credential proved to be: a name, and the Quanta token or the JWT claims it came
with. Its principal is made again from the current governance whenever it changes (``Platform.principal``),
so a reload applies to open connections while a JWT's claims keep counting."""

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
    known: bool = True  # in the governance file or a trusted issuer's token (an unknown user holds only ``public``)

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


@dataclass(frozen=True)
class Identity:
    """Who a credential proved to be (``Platform.identify``)."""

    name: str
    token_id: str | None = None  # the Quanta token's id (its revocation ends sessions opened with it)
    claims: Any = None  # a JWT's ``oidc.Claims``
    expires_at: float | None = None  # epoch seconds when the credential stops being valid (a JWT's exp)
