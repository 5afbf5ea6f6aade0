"""Pass: enforce grants, policies and contract constraints (Trino's semantics).

Every resolved reference to a dataset becomes a subquery that applies the row filters to the raw
values, then the masks, and leaves denied columns out:

    FROM crm.customers c
      -> FROM (SELECT id, '***@' || split_part(email, '@', 2) AS email, region
               FROM memory.crm.customers
               WHERE region <> 'EU' OR list_contains(['US'], 'EU')) AS c

The policy's table is fully qualified, so no user CTE can capture it, and everything the user wrote
(WHERE, JOIN, GROUP BY, windows, set operations, ``*``, whole-row references, derived datasets) sees
the masked values only. Access needs a grant on each dataset the query names; datasets read through a
derived dataset need only the derived dataset's grant (definer's rights for access), while their
masks and filters still apply for the reader (invoker's rights for policies).

Contract constraints: a ``retired`` contract refuses, a ``deprecated`` one warns, an SLA
``retention`` becomes a row filter on its element column, and a contract that lists ``purposes``
(custom property) requires the query's declared purpose to be one of them.
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp

from ..catalog.model import Dataset
from ..catalog.model import custom_property as _custom
from ..errors import AccessDenied
from ..governance.authorize import allowed, is_person
from ..governance.policies import Decision
from .context import Context, swap
from .verify import canonical_select, canonical_wrapper


def secure_datasets(expression: exp.Expression, ctx: Context) -> exp.Expression:
    gov = ctx.namespace.governance
    if gov is None:
        return expression
    secured: list[tuple[exp.Expression, Decision, exp.Expression | None]] = []
    for node in list(expression.find_all(exp.Table, exp.Subquery)):
        tag = ctx.mark_of(node)
        if not tag:
            continue
        if tag[0] == "system":
            _secure_system_table(node, tag, ctx)
            continue
        ds = ctx.namespace.dataset(tag[1], tag[2])
        if ds is None:
            continue
        _contract_constraints(ds, ctx, node)
        pinned = ctx.namespace.pinned_datasets.get(tag[1:]) if len(tag) > 3 else None
        decision = gov.decide(ctx.principal, ds) if pinned is None else _pinned_decision(gov, ctx, ds, pinned, tag[3])
        ds = decision.dataset
        if id(node) not in ctx.via:  # read through a derived dataset: its own grant was checked (definer's)
            verdict = allowed(gov, ctx.principal, "read", ds)
            if not verdict:
                raise ctx.error(AccessDenied, f"access denied: {verdict.reason}", node)
        retention = _retention_filter(ds, ctx)
        secured.append((node, decision, retention))
    _check_denied_references(expression, secured, ctx)
    _columns_read(expression, secured, ctx)
    for node, decision, retention in secured:
        _record(ctx, decision, retention, _read_columns_of(node, decision, ctx))
    for node, decision, retention in secured:
        inlined = id(node) in ctx.via
        if isinstance(node, exp.Table):
            _wrap_table(node, decision, retention, inlined, ctx)
        else:
            _wrap_derived(node, decision, retention, inlined, ctx)
    return expression


STRICTNESS = {"visible": 0, "masked": 1, "denied": 2}


def _pinned_decision(gov, ctx: Context, today: Dataset, pinned: Dataset, version: int) -> Decision:
    """A pinned version's columns are those of its contract snapshot; each is governed by the stricter of
    the snapshot's classification and tags and today's (the same column: same name, else same data name)."""
    import dataclasses

    from ..onboarding.quarantine_relation import SNAPSHOTS

    def shadow(of: Dataset) -> Dataset:
        by_name = {c.name.lower(): c for c in of.columns}
        by_source = {c.source_name.lower(): c for c in of.columns}
        now = [by_name.get(c.name.lower()) or by_source.get(c.source_name.lower()) for c in pinned.columns]
        return dataclasses.replace(pinned, columns=[
            dataclasses.replace(c, classification=t.classification, tags=t.tags) if t is not None else c
            for c, t in zip(pinned.columns, now)])

    then = gov.decide(ctx.principal, pinned, f"v{version}")
    columns, filters = list(then.columns), list(then.filters)
    # today's contract, and for a quarantine the contract of each held batch's version (a column declassified
    # since stays masked in the rows held under the contract that classified it)
    others = [("today", today)] + [(None, s) for s in pinned.raw.get(SNAPSHOTS) or ()]
    for variant, of in others:
        seen = shadow(of)  # a snapshot's variant names what decides (the decisions are cached by variant)
        variant = variant or repr([(c.name, c.classification, c.tags) for c in seen.columns])
        also = gov.decide(ctx.principal, seen, f"v{version}+{variant}")
        columns = [a if STRICTNESS[a.access] >= STRICTNESS[b.access] else b for a, b in zip(columns, also.columns)]
        names = {pol.name for pol, _ in filters}
        filters += [f for f in also.filters if f[0].name not in names]
    return Decision(pinned, then.grant, columns, filters)


def _contract_constraints(ds: Dataset, ctx: Context, node: exp.Expression) -> None:
    if ds.deprecated:  # ODCS v3.2: a deprecated schema object warns like a deprecated contract
        _warn(ctx, f"{ds.qualified_name} is deprecated (contract {ds.contract_id})")
    product = ctx.namespace.mesh.quanta.get(ds.quantum.lower())
    if product is not None and product.deprecated:  # ODPS v1.1
        _warn(ctx, f"{ds.qualified_name}: data product {product.name} is deprecated")
    for warning in ds.port_warnings:  # ODPS v1.1: a deprecated output or input port
        _warn(ctx, warning)
    contract = ctx.namespace.mesh.contracts.get(ds.contract_id)
    if contract is None:
        return
    status = (contract.status or "").lower()
    if status == "retired":
        raise ctx.error(AccessDenied, f"{ds.qualified_name} cannot be read: its contract {contract.id} "
                        f"v{contract.version} is retired", node)
    if status == "deprecated":
        warning = f"{ds.qualified_name}: contract {contract.id} v{contract.version} is deprecated"
        if warning not in ctx.warnings:
            ctx.warnings.append(warning)
    purposes = _custom(contract.raw.get("customProperties"), "purposes")
    if purposes:
        allowed = [str(p) for p in (purposes if isinstance(purposes, list) else [purposes])]
        if ctx.purpose not in allowed:
            declared = f"the declared purpose {ctx.purpose!r}" if ctx.purpose else "no declared purpose"
            raise ctx.error(AccessDenied, f"{ds.qualified_name} may only be read for the purposes "
                            f"{', '.join(allowed)}, and this query has {declared}", node)


_UNITS = {"d": "day", "day": "day", "days": "day", "w": "week", "week": "week", "weeks": "week",
          "m": "month", "mo": "month", "month": "month", "months": "month",
          "y": "year", "yr": "year", "year": "year", "years": "year", "h": "hour", "hour": "hour", "hours": "hour"}


def _retention_filter(ds: Dataset, ctx: Context) -> exp.Expression | None:
    """The contract's retention as a filter, derived once per state (the namespace keeps it)."""
    key = id(ds)  # a pinned version's dataset has its own columns; both live as long as the state
    cache = ctx.namespace.retention
    if key not in cache:
        cache[key] = _build_retention_filter(ds, ctx)
    return cache[key]


def _build_retention_filter(ds: Dataset, ctx: Context) -> exp.Expression | None:
    contract = ctx.namespace.mesh.contracts.get(ds.contract_id)
    if contract is None:
        return None
    for sla in contract.raw.get("slaProperties") or []:
        if not isinstance(sla, dict) or sla.get("property") != "retention" or sla.get("value") is None:
            continue
        element = str(sla.get("element") or "")
        parts = element.split(".")
        if len(parts) == 2 and parts[0].lower() != ds.name.lower() and parts[0].lower() != (ds.physical_name or "").lower():
            continue
        col = ds.column(parts[-1]) if element else None
        unit = _UNITS.get(str(sla.get("unit", "d")).lower())
        if col is None or unit is None:
            continue
        try:
            n = int(sla["value"])
        except (TypeError, ValueError):
            continue
        column = exp.column(col.name, quoted=True)
        return sqlglot.parse_one(f"{column.sql('duckdb')} >= current_date - INTERVAL {n} {unit.upper()}",
                                 read="duckdb")
    return None


def _read_columns_of(node: exp.Expression, decision: Decision, ctx: Context) -> set[str]:
    """Columns of this reference that the query reads: from the audit columns for what the user named,
    from the derived dataset's own SQL for what is read through it."""
    ds = decision.dataset
    if id(node) not in ctx.via:
        prefix = f"{ds.quantum}.{ds.name}.".lower()
        return {c[len(prefix):] for c in (x.lower() for x in ctx.columns) if c.startswith(prefix)}
    outer = node.parent_select
    while outer is not None and outer.parent_select is not None:
        outer = outer.parent_select
    names = {c.name.lower() for c in (outer or node).find_all(exp.Column)}
    return {c.column.name.lower() for c in decision.columns} & names


def _record(ctx: Context, decision: Decision, retention: exp.Expression | None, read: set[str]) -> None:
    ds = decision.dataset
    for d in decision.columns:
        if d.policy is not None and d.column.name.lower() in read:
            entry = {"policy": d.policy.name, "kind": d.policy.kind, "scope": d.policy.scope,
                     "quantum": ds.quantum, "dataset": ds.name, "column": d.column.name}
            if entry not in ctx.policies:
                ctx.policies.append(entry)
    for pol, _ in decision.filters:
        entry = {"policy": pol.name, "kind": "row_filter", "scope": pol.scope, "quantum": ds.quantum,
                 "dataset": ds.name, "column": None}
        if entry not in ctx.policies:
            ctx.policies.append(entry)
    if retention is not None:
        entry = {"policy": f"retention of contract {ds.contract_id}", "kind": "retention", "scope": "contract",
                 "quantum": ds.quantum, "dataset": ds.name, "column": None}
        if entry not in ctx.policies:
            ctx.policies.append(entry)
    for c in ds.columns:  # ODCS v3.2: reading a deprecated property warns
        if c.deprecated and c.name.lower() in read:
            _warn(ctx, f"{ds.qualified_name}.{c.name} is deprecated (contract {ds.contract_id})")


def _warn(ctx: Context, warning: str) -> None:
    if warning not in ctx.warnings:
        ctx.warnings.append(warning)


def _projection(decision: Decision, inlined: bool) -> list[exp.Expression]:
    out = []
    for d in decision.columns:
        if d.access == "denied":
            if inlined:  # read through a derived dataset: what is computed from a denied column is NULL
                out.append(exp.alias_(exp.cast(exp.Null(), exp.DataType.build(d.column.data_type, dialect="duckdb")),
                                      d.column.name, quoted=True))
            continue
        if d.access == "masked" and d.expression is not None:
            out.append(exp.alias_(d.expression.copy(), d.column.name, quoted=True))
        else:
            out.append(exp.column(d.column.name, quoted=True))
    if not out:  # every column denied: keep the rows countable, show nothing
        out.append(exp.alias_(exp.Null(), "_no_visible_columns", quoted=True))
    return out


def _where(decision: Decision, retention: exp.Expression | None) -> exp.Expression | None:
    conditions = [f.copy() for _, f in decision.filters]
    if retention is not None:
        conditions.append(retention.copy())
    if not conditions:
        return None
    return exp.and_(*[exp.paren(c, copy=False) for c in conditions])


def _needs_wrapping(decision: Decision, retention: exp.Expression | None) -> bool:
    return bool(decision.filters) or retention is not None or any(d.access != "visible" for d in decision.columns)


def _secure_select(decision: Decision, retention: exp.Expression | None, inlined: bool,
                   source: exp.Expression) -> exp.Select:
    select = exp.select(*_projection(decision, inlined), copy=False).from_(source, copy=False)
    where = _where(decision, retention)
    if where is not None:
        select = select.where(where, copy=False)
    return select


def _wrap_table(table: exp.Table, decision: Decision, retention: exp.Expression | None, inlined: bool,
                ctx: Context) -> None:
    if not _needs_wrapping(decision, retention):
        return
    key = ("table", inlined, retention is not None)
    cached = decision.cache.get(key)
    if cached is None:  # built once per principal and dataset, copied per query
        inner = exp.Table(this=table.this.copy(), db=table.args["db"].copy(), catalog=table.args["catalog"].copy())
        template = _without_meta(_secure_select(decision, retention, inlined, inner))
        cached = decision.cache[key] = (template, canonical_select(template.sql("duckdb")))
    template, canonical = cached
    alias = table.args.get("alias")
    name = alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(decision.dataset.name))
    sub = exp.Subquery(this=template.copy(), alias=name)
    ctx.mark(sub, ctx.mark_of(table))
    ctx.placements.place_secure((table.catalog, table.db, table.name), canonical)
    swap(table, sub)


def _without_meta(tree: exp.Expression) -> exp.Expression:
    """Parser positions are useless in generated subtrees and make every copy slow."""
    for node in tree.walk():
        node._meta = None  # noqa: SLF001
    return tree


def _wrap_derived(sub: exp.Subquery, decision: Decision, retention: exp.Expression | None, inlined: bool,
                  ctx: Context) -> None:
    if not _needs_wrapping(decision, retention):
        return
    key = ("derived", inlined, retention is not None)
    canonical = decision.cache.get(key)
    if canonical is None:  # the wrapper's shape without its FROM, proven once per principal and dataset
        probe = exp.Subquery(this=exp.select("1"), alias=exp.TableAlias(this=exp.to_identifier("_derived")))
        canonical = decision.cache[key] = canonical_wrapper(
            _secure_select(decision, retention, inlined, probe).sql("duckdb"))
    ctx.placements.wrappers[canonical] += 1
    inner = exp.Subquery(this=sub.this, alias=exp.TableAlias(this=exp.to_identifier("_derived")))
    sub.set("this", _secure_select(decision, retention, inlined, inner))


def _check_denied_references(expression: exp.Expression, secured: list, ctx: Context) -> None:
    """Naming a denied column is an access-denied error (``*`` simply leaves it out). Runs before the
    datasets are wrapped, over what the user wrote (not inside inlined derived datasets)."""
    denied: dict[str, list[tuple[str, Dataset]]] = {}
    for node, decision, _ in secured:
        if id(node) in ctx.via:
            continue
        alias = (node.alias_or_name or decision.dataset.name).lower()
        for name in decision.denied:
            denied.setdefault(name.lower(), []).append((alias, decision.dataset))
    if not denied:
        return
    for col in expression.find_all(exp.Column):
        hits = denied.get(col.name.lower())
        if not hits or _inside_derived(col, ctx):
            continue
        qualifier = col.table.lower()
        for alias, ds in hits:
            if not qualifier or qualifier == alias:
                raise ctx.error(AccessDenied, f"access denied: column {col.name} of {ds.qualified_name} is not "
                                f"visible to {ctx.principal.name} (policy "
                                f"{_policy_of(secured, ds, col.name)}); request access from the governance team",
                                col)


def _columns_read(expression: exp.Expression, secured: list, ctx: Context) -> None:
    """Which columns of which datasets the query reads, for the audit log (``*`` and whole-row
    references read every visible column)."""
    refs: dict[str, set[str]] = {}
    star = any(True for _ in expression.find_all(exp.Star))
    for col in expression.find_all(exp.Column):
        refs.setdefault(col.table.lower(), set()).add(col.name.lower())
    for node, decision, _ in secured:
        ds = decision.dataset
        alias = (node.alias_or_name or ds.name).lower()
        whole = star or alias in refs.get("", set())
        for d in decision.columns:
            name = d.column.name.lower()
            if d.access == "denied":
                continue
            if whole or name in refs.get(alias, set()) or name in refs.get("", set()):
                key = f"{ds.quantum}.{ds.name}.{d.column.name}"
                if key not in ctx.columns:
                    ctx.columns.append(key)


def _inside_derived(node: exp.Expression, ctx: Context) -> bool:
    parent = node.parent
    while parent is not None:
        if isinstance(parent, exp.Subquery) and (ctx.mark_of(parent) or ("",))[0] == "derived":
            return True
        parent = parent.parent
    return False


def _policy_of(secured: list, ds: Dataset, column: str) -> str:
    for _, decision, _ in secured:
        if decision.dataset is ds:
            for d in decision.columns:
                if d.column.name.lower() == column.lower() and d.policy:
                    return d.policy.name
    return "?"


def _secure_system_table(node: exp.Expression, tag: tuple, ctx: Context) -> None:
    """Audit rows: a principal sees its own queries; the auditor role sees all. Column access is
    computed for the current principal."""
    gov = ctx.namespace.governance
    relation = (node.catalog, node.db, node.name) if isinstance(node, exp.Table) else None
    if tag[1] == "system" and tag[2] == "column_access":
        from ..system.governance_tables import column_access_query

        alias = node.args.get("alias")
        sub = exp.Subquery(this=column_access_query(gov, ctx.namespace.mesh, ctx.principal),
                           alias=alias.copy() if alias else exp.TableAlias(this=exp.to_identifier("column_access")))
        ctx.mark(sub, tag)
        if relation is not None:
            ctx.placements.bare[tuple(p.lower() for p in relation)] -= 1  # replaced by values: not read at all
        swap(node, sub) if isinstance(node, exp.Table) else node.replace(sub)
        return
    condition = None
    if tag[1] == "system" and tag[2] == "access_requests" and not (
            allowed(gov, ctx.principal, "review_requests")):
        me = exp.Literal.string(ctx.principal.name)
        # an approver by name (a person the governance knows) or through a group (the claims' groups too)
        mine = [exp.Literal.string(g) for g in ctx.principal.groups]
        condition = exp.or_(exp.EQ(this=exp.column("principal"), expression=me),
                            exp.func("list_contains", exp.column("approvers"), me.copy())
                            if is_person(gov, ctx.principal.name) else exp.false(),
                            exp.func("list_has_any", exp.column("approvers"), exp.Array(expressions=mine))
                            if mine else exp.false())
    elif tag[1] == "system" and tag[2] == "grants" and not allowed(gov, ctx.principal, "review_requests"):
        # a grant an access request made is shown as system.access_requests shows the request: to its grantee
        # and to whoever may decide the dataset's requests (its reason quotes the requester's purpose)
        from ..system.observability import approvable

        mine = approvable(gov, ctx.namespace.mesh, ctx.principal)
        condition = exp.or_(exp.not_(exp.column("source").like(exp.Literal.string("request %"))),
                            exp.EQ(this=exp.column("grantee"), expression=exp.Literal.string(ctx.principal.name)),
                            exp.In(this=exp.Lower(this=exp.column("on", quoted=True)),
                                   expressions=[exp.Literal.string(d) for d in sorted(mine)])
                            if mine else exp.false())
    elif tag[1] == "system" and tag[2] == "query_log" and not allowed(gov, ctx.principal, "audit"):
        condition = exp.EQ(this=exp.column("principal"), expression=exp.Literal.string(ctx.principal.name))
    elif tag[1] == "system" and tag[2] == "login_failures" and not allowed(gov, ctx.principal, "audit"):
        condition = exp.false()  # no principal was proven: auditors only (governance.logins)
    blanked = None
    if tag[1] == "system" and condition is None:  # observability: rows of readable datasets, figures of whole ones
        from ..system.observability import observability_figures, observability_filter

        condition = observability_filter(gov, ctx.namespace.mesh, ctx.principal, tag[2])
        blanked = observability_figures(gov, ctx.namespace.mesh, ctx.principal, tag[2])
    if (condition is None and blanked is None) or relation is None:
        return
    alias = node.args.get("alias")
    inner = exp.Table(this=node.this.copy(), db=node.args["db"].copy(), catalog=node.args["catalog"].copy())
    select = exp.select(exp.Star(replace=blanked) if blanked else exp.Star()).from_(inner)
    if condition is not None:
        select = select.where(condition)
    sub = exp.Subquery(this=select, alias=alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(tag[2])))
    ctx.mark(sub, tag)
    ctx.placements.place_secure(relation, canonical_select(select.sql("duckdb")))
    swap(node, sub)
