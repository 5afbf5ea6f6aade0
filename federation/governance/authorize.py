"""One authorization entry point, in the spirit of Datasette's ``allowed(actor, action, resource)``.

    allowed(platform_or_governance, principal, action, resource) -> Decision(allowed, reason)

Every decision of who may do what outside the query rewrite (masks and filters are decided by
``policies``) goes through this one call, with a declared action, and comes back with its reason
(the reason of a refusal is the message of the ``AccessDenied`` that reports it):

=================  ========================================  ===========================================
action             resource                                   allowed for
=================  ========================================  ===========================================
``read``           a dataset                                  holders of an active grant covering it
``check_quality``  a dataset or a quantum                     the quantum's owners, the data-engineer role
``set_rules``      a dataset or quantum, or ``Columns``       the same; with ``Columns(dataset, names)``
                                                              also only if each column is in clear for them
``publish``        a dataset or a quantum                     the same (onboard, roll back, refresh a mart,
                                                              change a contract's status)
``approve``        a dataset or an access request             approvers named in the contract's roles
                                                              (users or groups), the quantum's owners, the
                                                              data-engineer role; never one's own request
``audit``          none                                       the auditor role: every principal's queries
``review_requests``  none                                     the auditor and data-engineer roles: every
                                                              access request
``declare_purpose``  the purpose                              principals holding it: their attribute
                                                              ``purposes``, or a held grant's ``purposes``
=================  ========================================  ===========================================

The data-engineer and auditor roles are named in one place, the governance file's settings
(``data_engineer_role``, default ``data_engineer``; ``auditor_role``, default ``auditor``). A dataset is
a ``Dataset`` or its name ``"quantum.dataset"``; a quantum is its name. An unknown action is a
programming error (``ValueError``), never a silent refusal or permission.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..catalog.model import Dataset
from .policies import Governance
from .principals import Principal

ACTIONS = {
    "read": "read",
    "check_quality": "run quality checks",
    "set_rules": "change quality rules",
    "publish": "publish versions",
    "approve": "decide access",
    "audit": "read every principal's queries",
    "review_requests": "see every access request",
    "declare_purpose": "declare a purpose",
}
CONTROL = ("check_quality", "set_rules", "publish")  # the control plane of a quantum


@dataclass(frozen=True)
class Decision:
    """The answer and why; true when allowed."""

    allowed: bool
    reason: str

    def __bool__(self) -> bool:
        return self.allowed


@dataclass(frozen=True)
class Columns:
    """Columns of a dataset, as the resource of ``set_rules`` on those columns."""

    dataset: Dataset
    names: tuple[str, ...]


@dataclass(frozen=True)
class _Named:
    """A dataset known by name only (what grants and approvers need of it)."""

    quantum: str
    name: str

    @property
    def qualified_name(self) -> str:
        return f"{self.quantum}.{self.name}"


def is_person(gov: Governance, name: str) -> bool:
    """Whether approvers naming ``name`` name this principal: approvers name users and groups alike, so a name
    counts only for a person the governance knows (a principal of governance.yaml, an owner of a quantum). A
    name only an identity provider asserts may equal a group only the identity provider knows (a user named
    ``stewards``): such a principal is an approver through its groups only."""
    return name in gov.principals or any(name in owners for owners in gov.owners.values())


def allowed(source: Any, principal: Principal, action: str, resource: Any = None, *,
            what: str | None = None) -> Decision:
    """May ``principal`` do ``action`` on ``resource``? ``source`` is a ``Platform`` or a ``Governance``;
    ``what`` words the action in a refusal (default: the action's own words)."""
    if action not in ACTIONS:
        raise ValueError(f"unknown action {action!r}; actions: {', '.join(ACTIONS)}")
    gov = source if isinstance(source, Governance) else source.state.governance
    words = what or ACTIONS[action]
    if action == "declare_purpose":
        return _declare_purpose(gov, principal, str(resource))
    if action == "audit":
        if principal.has_role(gov.auditor_role):
            return Decision(True, f"{principal.name} holds the auditor role {gov.auditor_role}")
        return Decision(False, f"{principal.name} may not {words}: only the auditor role {gov.auditor_role} may")
    if action == "review_requests":
        for role in (gov.auditor_role, gov.engineer_role):
            if principal.has_role(role):
                return Decision(True, f"{principal.name} holds the role {role}")
        return Decision(False, f"{principal.name} may not {words}: only the roles {gov.auditor_role} and "
                        f"{gov.engineer_role} may")
    if action == "approve" and hasattr(resource, "request_id"):
        if resource.principal == principal.name:
            return Decision(False, f"{principal.name} may not decide its own access request {resource.request_id}")
        resource = _Named(resource.quantum, resource.dataset)
    if action in CONTROL and isinstance(resource, Columns):
        decision = _control(gov, principal, resource.dataset.quantum, words)
        return decision if not decision else _columns_in_clear(gov, principal, resource, words)
    if action in CONTROL:
        quantum = resource.quantum if hasattr(resource, "quantum") else str(resource).partition(".")[0]
        return _control(gov, principal, quantum, words)
    ds = _dataset(resource)
    if action == "read":
        grant = gov.grant_for(principal, ds)
        if grant is not None:
            return Decision(True, f"grant to {grant.grantee_kind} {grant.grantee} on {grant.on} ({grant.source})")
        approvers = gov.approvers(ds)
        ask = (f"request access from {', '.join(approvers)}" if approvers else
               f"ask the owners of {ds.quantum} ({', '.join(gov.owners.get(ds.quantum.lower(), ())) or 'none listed'})")
        return Decision(False, f"{principal.name} has no grant to read {ds.qualified_name}; {ask}")
    # approve
    approvers = gov.approvers(ds)
    owners = gov.owners.get(ds.quantum.lower(), ())
    if principal.name in approvers and is_person(gov, principal.name):
        return Decision(True, f"{principal.name} is an approver of {ds.qualified_name}")
    group = next((g for g in principal.groups if g in approvers), None)
    if group is not None:
        return Decision(True, f"{principal.name} is in the group {group}, an approver of {ds.qualified_name}")
    if principal.name in owners:
        return Decision(True, f"{principal.name} owns the quantum {ds.quantum}")
    if principal.has_role(gov.engineer_role):
        return Decision(True, f"{principal.name} holds the role {gov.engineer_role}")
    who = ", ".join(approvers) or "the quantum's owners"
    return Decision(False, f"{principal.name} may not {words} to {ds.qualified_name}; its approvers: {who}")


def purposes_held(gov: Governance, principal: Principal) -> list[str]:
    """The purposes a principal may declare: its attribute ``purposes`` and those of the grants it holds."""
    held = [str(p) for p in principal.attribute("purposes")]
    for g in gov.grants:
        if g.purposes and g.holder(principal) and g.active():
            held.extend(p for p in g.purposes if p not in held)
    return held


def _declare_purpose(gov: Governance, principal: Principal, purpose: str) -> Decision:
    if purpose in map(str, principal.attribute("purposes")):
        return Decision(True, f"{principal.name} holds the purpose {purpose!r} (attribute purposes)")
    for g in gov.grants:
        if purpose in g.purposes and g.holder(principal) and g.active():
            return Decision(True, f"{principal.name} holds the purpose {purpose!r} (grant to {g.grantee_kind} "
                            f"{g.grantee} on {g.on})")
    return Decision(False, f"{principal.name} may not declare the purpose {purpose!r}; purposes held: "
                    f"{', '.join(purposes_held(gov, principal)) or 'none'}")


def _control(gov: Governance, principal: Principal, quantum: str, words: str) -> Decision:
    owners = gov.owners.get(quantum.lower(), ())
    if principal.name in owners:
        return Decision(True, f"{principal.name} owns the quantum {quantum}")
    if principal.has_role(gov.engineer_role):
        return Decision(True, f"{principal.name} holds the role {gov.engineer_role}")
    return Decision(False, f"{principal.name} may not {words} on quantum {quantum}: only its owners "
                    f"({', '.join(owners) or 'none'}) and principals with the role {gov.engineer_role} may")


def _columns_in_clear(gov: Governance, principal: Principal, resource: Columns, words: str) -> Decision:
    ds = resource.dataset
    decided = {d.column.name.lower(): d for d in gov.decide(principal, ds).columns}
    for name in resource.names:
        d = decided.get(name.lower())
        if d is None:
            return Decision(False, f"{ds.qualified_name} has no column {name!r}")
        if d.access != "visible":
            why = f" (policy {d.policy.name})" if d.policy is not None else ""
            return Decision(False, f"{principal.name} may not {words} naming {d.column.name} of {ds.qualified_name}: "
                            f"it is {d.access} for {principal.name}{why}")
    return Decision(True, f"{principal.name} may {words} on {ds.quantum} and sees "
                    f"{', '.join(resource.names) or 'no column'} in clear")


def _dataset(resource: Any):
    if hasattr(resource, "qualified_name"):
        return resource
    quantum, _, name = str(resource).partition(".")
    if not name:
        raise ValueError(f"name a dataset as <quantum>.<dataset>, not {resource!r}")
    return _Named(quantum, name)
