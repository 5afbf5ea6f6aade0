"""Grants and policies, and what they decide for one principal and one dataset.

Policies are global (the governance team's ``governance.yaml``) or local (a quantum's product,
custom property ``policies``). Each selects columns or datasets (by classification, tag, column,
dataset or quantum) and is one of:

- ``mask``: a type-preserving mask from the library (``null``, ``redact``, ``hash``, ``partial``,
  ``email_domain``, ``year``, ``month``, ``round``) or a custom SQL expression over the row's own
  columns;
- ``row_filter``: a boolean SQL expression over the dataset's columns, where ``principal.<attribute>``
  is bound to the principal's attribute as a literal (never by text); several filters are ANDed, and a
  NULL result hides the row;
- ``deny``: the column does not exist for the principal.

Each may have an ``unless`` condition (roles, groups, users, attributes) that exempts a principal.

Which policy decides a column: denials are decided before masks, and the global layer (the
governance file) before the quantum's local layer. Within one layer and one kind, **the most specific
policy that selects the column decides it**, and its ``unless`` is its exact exemption: a principal
exempt from it sees the column as that layer leaves it (in clear), never the mask of a less specific
policy of the same layer. So ``pii-ip-hash`` (``column: ip_address``, unless data engineers) overrides
the catch-all ``pii-redact`` (``classification: pii``) on IP addresses, exemption included.
Specificity, compared in this order: the selector names the column, selects a tag, selects a
classification; then it is scoped to datasets, to quanta (see ``specificity``). Equally specific
policies are all in force: the first of them (file order) that applies to the principal decides, so
an exemption from one never lifts another. Local policies only add restrictions: on a column that a
global policy already masks or denies, the global decision stands; on one the global layer leaves in
clear (no policy, or an exemption), a local policy may still mask or deny it.

Row filters all apply (ANDed), each with its own ``unless``; a filter written with ``{column}`` applies
to every column its selector selects in the dataset (one condition per column, ANDed).

``Governance.decide(principal, dataset)`` returns the whole decision the rewrite pass applies; nothing
here touches SQL text except through sqlglot nodes.
"""

from __future__ import annotations

import datetime as dt
import functools
import threading
from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot
import sqlglot.expressions as exp
from cachetools import LRUCache

from ..catalog import types as ctypes
from ..catalog.model import Column, Dataset
from ..engine import masks
from ..lineage import declassify
from .principals import Principal

MASKS = ("null", "redact", "hash", "partial", "email_domain", "year", "month", "round", "sql")
KINDS = ("mask", "row_filter", "deny")


@dataclass(frozen=True)
class Condition:
    """``unless``: exempts a principal holding any of these roles, groups, names or attribute values."""

    roles: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    users: tuple[str, ...] = ()
    attributes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def holds(self, p: Principal) -> bool:
        if any(p.has_role(r) for r in self.roles):
            return True
        if any(g in p.groups for g in self.groups) or p.name in self.users:
            return True
        for name, values in self.attributes:
            if set(map(str, p.attribute(name))) & set(values):
                return True
        return False

    def describe(self) -> str:
        parts = [f"roles {', '.join(self.roles)}" if self.roles else "",
                 f"groups {', '.join(self.groups)}" if self.groups else "",
                 f"users {', '.join(self.users)}" if self.users else ""]
        parts += [f"{k} in ({', '.join(v)})" for k, v in self.attributes]
        return " or ".join(p for p in parts if p)


@dataclass(frozen=True)
class Selector:
    classification: tuple[str, ...] = ()
    tag: tuple[str, ...] = ()
    column: tuple[str, ...] = ()
    dataset: tuple[str, ...] = ()  # "q.d", "q.*" or "*"
    quantum: tuple[str, ...] = ()

    @property
    def column_level(self) -> bool:
        return bool(self.classification or self.tag or self.column)

    @property
    def specificity(self) -> tuple[bool, ...]:
        """How narrowly the selector picks a column, compared as a tuple (greater is more specific): by
        column name, by tag, by classification, then scoped to datasets, to quanta."""
        scoped = bool(self.dataset) and "*" not in self.dataset
        return (bool(self.column), bool(self.tag), bool(self.classification), scoped, bool(self.quantum))

    def dataset_matches(self, ds: Dataset) -> bool:
        if self.quantum and ds.quantum.lower() not in self.quantum:
            return False
        if self.dataset:
            name = ds.qualified_name.lower()
            if not any(d == "*" or d == name or (d.endswith(".*") and name.split(".")[0] == d[:-2])
                       for d in self.dataset):
                return False
        return True

    def column_matches(self, ds: Dataset, col: Column) -> bool:
        if not self.dataset_matches(ds):
            return False
        if self.classification and (col.classification or "").lower() not in self.classification:
            return False
        if self.tag and not {t.lower() for t in col.tags} & set(self.tag):
            return False
        if self.column and col.name.lower() not in self.column:
            return False
        return True


@dataclass
class Policy:
    name: str
    kind: str  # mask | row_filter | deny
    selector: Selector
    scope: str  # "global" or the quantum of a local policy
    mask: str | None = None
    options: dict = field(default_factory=dict)
    sql: str | None = None  # custom mask expression or row filter
    unless: Condition | None = None
    description: str | None = None
    file: str = ""
    yaml_path: str = ""

    def applies_to(self, p: Principal) -> bool:
        return not (self.unless and self.unless.holds(p))


@dataclass
class Grant:
    grantee_kind: str  # role | user | group
    grantee: str
    on: str  # "*", "<quantum>" or "<quantum>.<dataset>"
    access: str = "read"
    granted_by: str | None = None
    reason: str | None = None
    expires: dt.date | None = None
    source: str = "governance"  # governance | contract <id> | owner | request <id>
    approvers: tuple[str, ...] = ()
    purposes: tuple[str, ...] = ()  # purposes its holders may declare (governance grants only)

    def covers(self, ds: Dataset) -> bool:
        on = self.on.lower()
        return on == "*" or on == ds.quantum.lower() or on == ds.qualified_name.lower()

    def holder(self, p: Principal) -> bool:
        if self.grantee_kind == "role":
            return p.has_role(self.grantee)
        if self.grantee_kind == "group":
            return self.grantee in p.groups
        return self.grantee == p.name

    def active(self, today: dt.date | None = None) -> bool:
        return self.expires is None or self.expires >= (today or dt.date.today())


@dataclass
class ColumnDecision:
    column: Column
    access: str  # visible | masked | denied
    policy: Policy | None = None
    expression: exp.Expression | None = None  # the mask, over the raw row's columns


@dataclass
class Decision:
    """What one principal may see of one dataset."""

    dataset: Dataset
    grant: Grant | None
    columns: list[ColumnDecision]
    filters: list[tuple[Policy, exp.Expression]]
    cache: dict = field(default_factory=dict)  # what the rewrite builds from this decision, reused

    @property
    def denied(self) -> list[str]:
        return [d.column.name for d in self.columns if d.access == "denied"]


# -- the mask library ------------------------------------------------------------------------------


def _qualified(col: str, alias: str | None) -> str:
    ident = exp.to_identifier(col, quoted=True).sql("duckdb")
    return f"{exp.to_identifier(alias, quoted=True).sql('duckdb')}.{ident}" if alias else ident


def mask_sql(policy: Policy, column: Column, alias: str | None = None) -> str:
    """The SQL of a mask for one column, the same type as the column. Raises ValueError when the mask
    does not fit the column's type."""
    c = _qualified(column.name, alias)
    t = column.data_type
    fam = ctypes.family(t)
    kind = policy.mask
    if kind == "null":
        return f"CAST(NULL AS {t})"
    if kind == "redact":
        if fam == "string":
            text = str(policy.options.get("with", "****")).replace("'", "''")
            return f"CASE WHEN {c} IS NULL THEN NULL ELSE '{text}' END"
        return f"CAST(NULL AS {t})"
    if kind == "hash":  # keyed hashes whose key no SQL can read (engine/masks.py)
        if fam == "string":
            return f"{masks.HASH}({c})"
        if fam == "integer":
            return f"CAST({masks.HASH_INT}(CAST({c} AS VARCHAR), {masks.integer_bits(t)}) AS {t})"
        raise ValueError(f"a hash mask needs a string or integer column, and {column.name} is {t}")
    if kind == "partial":
        if fam != "string":
            raise ValueError(f"a partial mask needs a string column, and {column.name} is {t}")
        keep = int(policy.options.get("keep_last", 4))
        return (f"CASE WHEN {c} IS NULL THEN NULL ELSE repeat('*', greatest(length({c}) - {keep}, 0)) || "
                f"right({c}, {keep}) END")
    if kind == "email_domain":
        if fam != "string":
            raise ValueError(f"an email_domain mask needs a string column, and {column.name} is {t}")
        return f"CASE WHEN {c} IS NULL THEN NULL ELSE '***@' || split_part({c}, '@', 2) END"
    if kind in ("year", "month"):
        if fam not in ("date", "timestamp"):
            raise ValueError(f"a {kind} mask needs a date or timestamp column, and {column.name} is {t}")
        return f"CAST(date_trunc('{kind}', {c}) AS {t})"
    if kind == "round":
        if fam not in ("integer", "decimal", "float"):
            raise ValueError(f"a round mask needs a numeric column, and {column.name} is {t}")
        digits = int(policy.options.get("digits", -2))
        return f"CAST(round({c}, {digits}) AS {t})"
    if kind == "sql":
        body = (policy.sql or "").replace("{column}", exp.to_identifier(column.name, quoted=True).sql("duckdb"))
        if alias:
            tree = sqlglot.parse_one(body, read="duckdb")
            for col in tree.find_all(exp.Column):
                if not col.table:
                    col.set("table", exp.to_identifier(alias, quoted=True))
            body = tree.sql("duckdb")
        return f"CAST(({body}) AS {t})"
    raise ValueError(f"unknown mask {kind!r}; masks: {', '.join(MASKS)}")


def filter_expression(policy: Policy, ds: Dataset, principal: Principal | None, alias: str | None) -> exp.Expression:
    """A row filter as an expression over the raw row, with ``principal.<attr>`` bound to literals."""
    body = policy.sql or "true"
    if "{column}" in body:
        selected = [c for c in ds.columns if policy.selector.column_matches(ds, c)]
        if not selected:
            raise ValueError(f"row filter {policy.name} names {{column}} but {ds.qualified_name} has no column it selects")
        # one condition per selected column, ANDed: a row passes only if it passes for each of them
        parts = [body.replace("{column}", exp.to_identifier(c.name, quoted=True).sql("duckdb")) for c in selected]
        body = parts[0] if len(parts) == 1 else " AND ".join(f"({x})" for x in parts)
    tree = sqlglot.parse_one(body, read="duckdb")
    for col in list(tree.find_all(exp.Column)):
        if col.table.lower() == "principal":
            col.replace(principal_literal(principal, col.name))
        elif alias and not col.table:
            col.set("table", exp.to_identifier(alias, quoted=True))
    return tree


def principal_literal(principal: Principal | None, attribute: str) -> exp.Expression:
    """A principal's attribute as a SQL literal node: a string, or an array of strings."""
    if attribute == "name":
        return exp.Literal.string(principal.name) if principal else exp.Null()
    values = principal.attribute(attribute) if principal else []
    if attribute in ("roles", "groups") and principal is not None:
        values = sorted(principal.all_roles) if attribute == "roles" else list(principal.groups)
    items = [exp.Literal.string(str(v)) for v in values]
    return exp.cast(exp.Array(expressions=items), exp.DataType.build("VARCHAR[]"))


class Governance:
    """Principals, grants and policies of a mesh, and the decisions they make."""

    def __init__(self, principals: dict[str, Principal], grants: list[Grant], policies: list[Policy],
                 roles: dict[str, str], version: str, settings: dict[str, Any] | None = None):
        self.principals = principals
        self.grants = grants
        self.policies = policies
        self.roles = roles
        self.version = version
        self.settings = settings or {}
        self.auditor_role = str(self.settings.get("auditor_role", "auditor"))
        self.engineer_role = str(self.settings.get("data_engineer_role", "data_engineer"))
        self.owners: dict[str, tuple[str, ...]] = {}  # quantum (lower case) -> its owners, set by the loader
        self._decisions: LRUCache[tuple[str, str, str], Decision] = LRUCache(maxsize=50_000)
        self._lock = threading.Lock()
        self._marts: dict[str, list] = {}  # a materialised dataset -> the column lineage edges of its columns
        self._dataset: Callable[[str, str], Dataset | None] = lambda q, d: None
        self._anonymising: tuple[str, ...] = ()

    def follow_marts(self, edges: dict[str, list], dataset: Callable[[str, str], Dataset | None],
                     anonymising: tuple[str, ...]) -> None:
        """Materialised datasets (marts) hold what their owner could read of their sources; a reader sees
        of a mart no more than of its sources (``edges``: mart's qualified name -> its ColumnEdges)."""
        self._marts = {k.lower(): v for k, v in edges.items()}  # marts and the derived datasets they read
        self._dataset = dataset
        self._anonymising = anonymising
        self.forget_decisions()

    def forget_decisions(self) -> None:
        """After a grant was added to a running platform."""
        with self._lock:
            self._decisions.clear()

    def principal(self, name: str | None) -> Principal:
        if name and name in self.principals:
            return self.principals[name]
        return Principal(name or "anonymous", known=False)

    def grant_for(self, p: Principal, ds: Dataset, today: dt.date | None = None) -> Grant | None:
        for g in self.grants:
            if g.access in ("read", "write") and g.covers(ds) and g.holder(p) and g.active(today):
                return g
        return None

    def approvers(self, ds: Dataset) -> list[str]:
        out: list[str] = []
        for g in self.grants:
            if g.covers(ds) and g.approvers:
                out.extend(a for a in g.approvers if a not in out)
        return out

    def decide(self, p: Principal, ds: Dataset, variant: str = "") -> Decision:
        """The decision for a principal and a dataset (cached: governance is immutable once loaded;
        grants' expiry is checked per call). ``variant`` names another description of the same dataset
        (a pinned version's contract snapshot), cached apart."""
        key = (p.fingerprint, ds.qualified_name.lower(), variant)
        with self._lock:
            decision = self._decisions.get(key)
        if decision is None:
            decision = self._decide(p, ds)
            with self._lock:
                self._decisions[key] = decision
        grant = self.grant_for(p, ds)
        if grant is not decision.grant:
            decision = Decision(decision.dataset, grant, decision.columns, decision.filters, decision.cache)
        return decision

    def column_policy(self, p: Principal, ds: Dataset, col: Column) -> Policy | None:
        """The deny or mask policy that decides ``col`` for ``p``, or None when it is in clear (see the
        module's docstring: denials first, global layer first, the most specific policy of a layer
        decides, its exemption is exact)."""
        layers = [[x for x in self.policies if x.scope == "global"],
                  [x for x in self.policies if x.scope != "global" and x.scope.lower() == ds.quantum.lower()]]
        for kind in ("deny", "mask"):
            for layer in layers:
                selecting = [x for x in layer if x.kind == kind and x.selector.column_matches(ds, col)]
                if not selecting:
                    continue
                top = max(x.selector.specificity for x in selecting)
                for pol in selecting:
                    if pol.selector.specificity == top and pol.applies_to(p):
                        return pol
        return None

    def _decide(self, p: Principal, ds: Dataset, alias: str | None = None) -> Decision:
        relevant = [pol for pol in self.policies if pol.scope == "global" or pol.scope.lower() == ds.quantum.lower()]
        columns: list[ColumnDecision] = []
        for col in ds.columns:
            pol = self.column_policy(p, ds, col)
            if pol is None:
                decision = ColumnDecision(col, "visible")
            elif pol.kind == "deny":
                decision = ColumnDecision(col, "denied", pol)
            else:
                decision = ColumnDecision(col, "masked", pol, sqlglot.parse_one(mask_sql(pol, col, alias), read="duckdb"))
            columns.append(decision)
        filters = []
        for pol in relevant:
            if pol.kind != "row_filter" or not pol.applies_to(p):
                continue
            if pol.selector.column_level:
                if not any(pol.selector.column_matches(ds, c) for c in ds.columns):
                    continue
            elif not pol.selector.dataset_matches(ds):
                continue
            filters.append((pol, filter_expression(pol, ds, p, alias)))
        if ds.materialized and ds.qualified_name.lower() in self._marts:
            self._through_sources(p, ds, columns, filters, alias)
        return Decision(ds, self.grant_for(p, ds), columns, filters)

    def _through_sources(self, p: Principal, mart: Dataset, columns: list[ColumnDecision],
                         filters: list[tuple[Policy, exp.Expression]], alias: str | None) -> None:
        """The sources' decisions carried to a mart's columns along their lineage, as if the reader ran the
        mart's SQL (the invoker's rights of a derived dataset that is not materialised):

        - a column built from a column denied to the reader is NULL for them;
        - one that holds a masked column's values gets the same mask: copied (identity) or returned by an
          aggregate (``min``, ``max``, ``any_value``... lineage kind ``value``); one holding several of them
          (``string_agg``, ``list``: ``collection``) gets it only when the mask ignores the value's shape
          (``null``, ``redact``, ``hash``), else NULL; where the mart's own policies mask it too, their
          mask is computed over the source's;
        - one computed from a masked column is NULL, except a count (``settings.anonymising_transformations``)
          and an aggregate the mart's contract declassifies (``declassify: {minGroupSize: k}``, checked at
          every refresh): as contract inheritance decides, nothing else lowers a source's mask;
        - a source's row filter applies on the mart when the columns it reads are copied into the mart,
          otherwise the reader sees no row of the mart (its rows mix rows the reader may not see).
        """
        edges = self._marts[mart.qualified_name.lower()]
        lowered = declassify.declassified_columns(mart, edges)
        sources: dict[tuple[str, str], Decision] = {}
        keys = [(e.source_quantum.lower(), e.source_dataset.lower()) for e in edges]
        keys += [(q.lower(), d.lower()) for q, d in mart.reads]  # every source, traced by lineage or not
        for key in keys:
            if key not in sources:
                src = self._dataset(*key)
                if src is None:
                    continue
                decision = self.decide(p, src)
                if src.sql is not None and not src.materialized and f"{key[0]}.{key[1]}" in self._marts:
                    # a derived source is read with its own sources' policies (invoker): carry them too
                    decision = Decision(src, decision.grant, list(decision.columns), list(decision.filters))
                    self._through_sources(p, src, decision.columns, decision.filters, alias)
                sources[key] = decision
        # Fail closed where lineage cannot see: a mart whose SQL reads whole rows (a table alias as a value:
        # first(a).x, max(a)::varchar) or COLUMNS(...), or a column lineage found no source for although
        # it reads columns, shows the reader NULL unless they see every source in clear, unfiltered.
        untraceable = _reads_whole_rows(mart.sql or "")
        traced = {e.target_column.lower() for e in edges}
        clear = all(d.access == "visible" for dec in sources.values() for d in dec.columns) and not any(
            dec.filters for dec in sources.values())
        for i, cd in enumerate(columns):
            if not clear and cd.access != "denied" and (untraceable or (
                    cd.column.name.lower() not in traced and not _reads_no_column(mart.sql or "", cd.column.name))):
                blind = next((d.policy for dec in sources.values() for d in dec.columns if d.policy), None)
                columns[i] = ColumnDecision(cd.column, "masked", blind or cd.policy, exp.cast(
                    exp.Null(), exp.DataType.build(cd.column.data_type, dialect="duckdb")))
                continue
            for e in (x for x in edges if x.target_column.lower() == cd.column.name.lower()):
                decision = sources.get((e.source_quantum.lower(), e.source_dataset.lower()))
                source = next((d for d in decision.columns if d.column.name.lower() == e.source_column.lower()),
                              None) if decision else None
                if source is None or source.access == "visible" or cd.access == "denied":
                    continue
                masked = source.access == "masked" and source.policy is not None and source.policy.kind == "mask"
                if masked and (e.transformation in self._anonymising or (
                        e.transformation in declassify.DECLASSIFIABLE and cd.column.name in lowered)):
                    continue  # a count, or a declared declassification: a new number, not the source's value
                keeps = e.transformation in ("identity", "value") or (
                    e.transformation == "collection" and masked and source.policy.mask in ("null", "redact", "hash"))
                expression = _mask_or_none(source.policy, cd.column, alias) if masked and keeps else None
                if expression is not None:
                    if cd.access == "visible":
                        cd = ColumnDecision(cd.column, "masked", source.policy, expression)
                    elif cd.policy is not source.policy and cd.expression is not None:
                        # masked by the mart's own policy too: its mask over the source's
                        cd = ColumnDecision(cd.column, "masked", cd.policy,
                                            _over(cd.expression, cd.column, expression))
                else:
                    # NULL, as the mart's SQL run by the reader would compute it from what they may read
                    cd = ColumnDecision(cd.column, "masked", source.policy,
                                        exp.cast(exp.Null(), exp.DataType.build(cd.column.data_type, dialect="duckdb")))
            columns[i] = cd
        own = {id(pol) for pol, _ in filters}
        for (sq, sd), decision in sources.items():
            copied = {} if untraceable else {
                e.source_column.lower(): e.target_column for e in edges if e.transformation == "identity"
                and (e.source_quantum.lower(), e.source_dataset.lower()) == (sq, sd)}
            for pol, expr in decision.filters:
                if id(pol) in own:
                    continue
                own.add(id(pol))
                tree = expr.copy()
                refs = [c for c in tree.find_all(exp.Column)]
                if all(c.name.lower() in copied for c in refs):
                    for c in refs:
                        c.set("this", exp.to_identifier(copied[c.name.lower()], quoted=True))
                    filters.append((pol, tree))
                else:
                    filters.append((pol, exp.false()))


@functools.lru_cache(maxsize=1024)
def _parsed(sql: str) -> exp.Expression | None:
    try:
        return sqlglot.parse_one(sql, read="duckdb")
    except sqlglot.errors.SqlglotError:
        return None


def _reads_whole_rows(sql: str) -> bool:
    """Whether a derived dataset's SQL reads rows as values (a table name or alias used as a column:
    ``first(a).vat``, ``max(a)::varchar``), selects by pattern (``COLUMNS(...)``) or a star inside a
    function other than ``count(*)``: shapes column lineage cannot follow. Unparseable SQL counts too."""
    tree = _parsed(sql)
    if tree is None:
        return True
    tables = {t.alias_or_name.lower() for t in tree.find_all(exp.Table)} | {
        t.name.lower() for t in tree.find_all(exp.Table)}
    for node in tree.walk():
        if isinstance(node, exp.Columns) or (isinstance(node, exp.Anonymous) and node.name.lower() == "columns"):
            return True
        if isinstance(node, exp.Column) and not node.table and node.name.lower() in tables:
            return True
        if isinstance(node, exp.Column) and node.table and node.table.lower() not in tables and node.db:
            return True  # a.b.c: a struct field of a whole-row reference
        if isinstance(node, exp.Star) and isinstance(node.parent, exp.Func) and not isinstance(node.parent, exp.Count):
            return True
        if isinstance(node, exp.Dot) and isinstance(node.this, exp.Column) and node.this.name.lower() in tables:
            return True
    return False


def _reads_no_column(sql: str, name: str) -> bool:
    """Whether the outermost projection ``name`` of ``sql`` reads no column at all (a constant, count(*))."""
    tree = _parsed(sql)
    if not isinstance(tree, exp.Select):
        return False
    for item in tree.expressions:
        if item.alias_or_name.lower() == name.lower():
            return not any(True for _ in item.find_all(exp.Column)) and all(
                isinstance(st.parent, exp.Count) for st in item.find_all(exp.Star))
    return False


def _mask_or_none(policy: Policy, column: Column, alias: str | None) -> exp.Expression | None:
    """A source's mask applied to a mart column that holds its values, or None when it does not fit the
    column's type (a list of values, a median's double): the caller shows NULL then."""
    try:
        return sqlglot.parse_one(mask_sql(policy, column, alias), read="duckdb")
    except (ValueError, sqlglot.errors.SqlglotError):
        return None


def _over(outer: exp.Expression, column: Column, inner: exp.Expression) -> exp.Expression:
    """``outer`` (a mask over ``column``) computed on ``inner`` instead of the raw column."""
    tree = outer.copy()
    for c in list(tree.find_all(exp.Column)):
        if c.name.lower() == column.name.lower():
            c.replace(inner.copy())
    return tree
