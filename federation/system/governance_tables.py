"""Governance as system tables: principals (no secrets), grants, policies, and each column's access
for the current principal (like Databricks' ``information_schema.column_masks``)."""

from __future__ import annotations

import json

import pyarrow as pa
import sqlglot.expressions as exp

from ..catalog.model import Mesh
from ..governance.policies import Governance
from ..governance.principals import Principal

STR = pa.string()
LIST_STR = pa.list_(pa.string())


def principals(gov: Governance) -> pa.Table:
    rows = [(p.name, list(p.roles), list(p.groups), json.dumps(p.attributes, sort_keys=True))
            for p in sorted(gov.principals.values(), key=lambda p: p.name)]
    return pa.table({
        "principal": pa.array([r[0] for r in rows], STR), "roles": pa.array([r[1] for r in rows], LIST_STR),
        "groups": pa.array([r[2] for r in rows], LIST_STR), "attributes": pa.array([r[3] for r in rows], STR)})


def grants(gov: Governance) -> pa.Table:
    names = ["grantee_kind", "grantee", "on", "access", "granted_by", "reason", "expires", "source", "approvers",
             "active", "purposes"]
    rows = [(g.grantee_kind, g.grantee, g.on, g.access, g.granted_by, g.reason, g.expires, g.source,
             list(g.approvers), g.active(), list(g.purposes)) for g in gov.grants]
    types = [STR, STR, STR, STR, STR, STR, pa.date32(), STR, LIST_STR, pa.bool_(), LIST_STR]
    return pa.table({n: pa.array([r[i] for r in rows], t) for i, (n, t) in enumerate(zip(names, types))})


def policies(gov: Governance) -> pa.Table:
    names = ["policy", "kind", "scope", "selects", "mask", "expression", "unless", "description", "file"]
    rows = []
    for p in gov.policies:
        s = p.selector
        selects = ", ".join(f"{k}={'|'.join(v)}" for k, v in (("classification", s.classification), ("tag", s.tag),
                            ("column", s.column), ("dataset", s.dataset), ("quantum", s.quantum)) if v)
        rows.append((p.name, p.kind, p.scope, selects, p.mask, p.sql, p.unless.describe() if p.unless else None,
                     p.description, p.file))
    return pa.table({n: pa.array([r[i] for r in rows], STR) for i, n in enumerate(names)})


COLUMN_ACCESS_COLUMNS = ("quantum", "dataset", "column", "access", "policy")


def column_access_query(gov: Governance, mesh: Mesh, principal: Principal) -> exp.Query:
    """``system.column_access`` for one principal, as a VALUES query (computed at rewrite time)."""
    rows = []
    for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower()):
        for ds in q.datasets.values():
            decision = gov.decide(principal, ds)
            granted = decision.grant is not None
            for d in decision.columns:
                access = d.access if granted else "denied"
                policy = d.policy.name if d.policy else (None if granted else "no grant")
                rows.append((q.name, ds.name, d.column.name, access, policy))
    if not rows:
        rows.append((None, None, None, None, None))
    values = exp.values([tuple(exp.Literal.string(v) if v is not None else exp.Null() for v in r) for r in rows],
                        alias="column_access", columns=list(COLUMN_ACCESS_COLUMNS))
    select = exp.select(*[exp.column(c, quoted=True) for c in COLUMN_ACCESS_COLUMNS]).from_(values)
    if rows[0][0] is None:
        select = select.where(exp.false())
    return select


POLICY_COVERAGE_COLUMNS = ("policy", "kind", "scope", "quantum", "dataset", "column", "coverage", "reason", "like",
                           "detail")


def policy_coverage(gov: Governance, mesh: Mesh, edges=()) -> pa.Table:
    """``system.policy_coverage``: for each policy the datasets and columns it covers, and warnings for the
    columns that look covered but are not (see ``governance.coverage``)."""
    from ..governance.coverage import coverage

    rows = [tuple(getattr(r, c) for c in POLICY_COVERAGE_COLUMNS) for r in coverage(gov, mesh, edges)]
    return pa.table({c: pa.array([r[i] for r in rows], STR) for i, c in enumerate(POLICY_COVERAGE_COLUMNS)})
