"""Which rows of the observability tables a principal sees: they are governed like the data they describe.

    observability_filter(governance, mesh, principal, "quality_results") -> a WHERE expression, or None

- ``quality_results``, ``slo_status``, ``slo_history``, ``availability_probes`` and ``versions``: a row
  about a dataset is shown to the principals who may read that dataset (a grant: the same decision as
  for their queries, ``authorize.allowed(..., "read", dataset)``). Counts, measured values and failure
  messages are computed on every row of the dataset: someone who may not read it learns nothing of it
  here, and a reader whose row filter hides part of it sees its rows with those figures NULL
  (``observability_figures``). So does a reader of a quality rule on a column masked or denied for them, and
  of a SQL rule of a dataset with such a column (its measured value may be any aggregate: ``max(salary)``),
  and of an SLA measured on such a column (latency, retention: its newest or oldest value). The texts that
  quote such figures (``system.versions.message``, the message and details of an ``onboarding_failed``,
  ``version_published`` or ``slo_breached`` event) are NULL for a reader of a dataset with such a column.
- ``events``: an event about an access request (``access_requested``, ``access_granted``,
  ``access_denied``, any ``access...`` kind) is shown as ``system.access_requests`` shows the request:
  to the requester, the dataset's approvers and the quantum's owners, auditors and data engineers. Any
  other event about a dataset is shown to its readers; an event about no dataset (a contract's status)
  to everyone, as the dictionary shows the contracts. An event's message and details count rows ("5 rows,
  3 quarantined"): they are NULL for a reader whose row filter hides part of the dataset, like the figures.

- ``marts``: ``built_from`` names each source's version a mart was built from; the sources the reader may
  not read are left out (their versions say when they were published), and so are the message and details
  of its ``mart_refreshed`` events ("built from hr.salaries v7"), NULL for that reader.

The filter lists the datasets the principal may read as literals (the row's ``quantum.dataset``, lower
case); the rewrite applies it under everything the query says, like a row filter. ``None``: the
principal sees every row (for example a data engineer with a grant on every dataset).
"""

from __future__ import annotations

import json

import sqlglot.expressions as exp

from ..catalog.model import Dataset, Mesh
from ..engine import parser
from ..governance.authorize import allowed
from ..governance.policies import Governance
from ..governance.principals import Principal

BY_DATASET = frozenset({"quality_results", "slo_status", "slo_history", "availability_probes", "versions"})
EVENTS = "events"
ACCESS_EVENTS = "access%"  # the kinds of the events about access requests (LIKE pattern)


def may_read(gov: Governance, principal: Principal, ds: Dataset) -> bool:
    """The principal may read the dataset: the decision their queries get (action ``read``)."""
    return allowed(gov, principal, "read", ds).allowed


def readable(gov: Governance, mesh: Mesh, principal: Principal) -> set[str]:
    """``quantum.dataset`` (lower case) of every dataset the principal may read."""
    return {ds.qualified_name.lower() for ds in mesh.datasets() if may_read(gov, principal, ds)}


# the columns that carry figures measured on every row of a dataset (counts, measured values, messages)
FIGURES = {"quality_results": ("measured", "failing_rows", "message"), "slo_status": ("measured", "message"),
           "slo_history": ("measured", "message"), "versions": ("rows", "bytes", "quality_summary", "quarantined",
                                                                  "message"),
           # an event's message and details count rows ("5 rows, 3 quarantined", "12 rows released")
           "events": ("message", "details")}


# the events whose message or details quote quality rule figures or an SLO's measure
QUOTING_EVENTS = ("onboarding_failed", "version_published", "slo_breached")


def observability_figures(gov: Governance | None, mesh: Mesh, principal: Principal,
                          table: str) -> list[exp.Expression] | None:
    """``* REPLACE`` items blanking the figures of ``system.<table>`` about datasets a row filter applies
    to for ``principal``: figures are measured on every row, so a reader who sees part of a dataset would
    learn about the rows hidden from them (100,000 orders counted, 49,976 shown: 50,024 EU orders). The
    rows themselves (rule, status, time) stay. None when nothing is blanked."""
    if gov is None:
        return None
    if table == "marts":
        return _mart_sources(gov, mesh, principal)
    if table not in FIGURES:
        return None
    partial, hidden = set(), {}
    for ds in mesh.datasets():
        if not may_read(gov, principal, ds):
            continue
        decision = gov.decide(principal, ds)
        if any(_hides_rows(f) for _, f in decision.filters):
            partial.add(ds.qualified_name.lower())
        unseen = sorted(d.column.name.lower() for d in decision.columns if d.access != "visible")
        if unseen:
            hidden[ds.qualified_name.lower()] = unseen
    blank = _in(partial) if partial else None
    if table == "quality_results":  # a SQL rule may read any dataset (it ran with its publisher's rights:
        # 'select count(*) from hr.salaries where ...' on another dataset): its figures are for those who run the
        # dataset's control plane (owners, data engineers), who see them when they check it anyway
        ours = {ds.qualified_name.lower() for ds in mesh.datasets() if allowed(gov, principal, "check_quality", ds)}
        sql_rule = exp.EQ(this=exp.column("type"), expression=exp.Literal.string("sql"))
        if ours:
            sql_rule = exp.and_(sql_rule, exp.not_(_in(ours)))
        blank = sql_rule if blank is None else exp.or_(blank, sql_rule)
    if table == "quality_results" and hidden:  # a rule's figures on a column masked or denied for the reader,
        # and a SQL rule's (any aggregate: 'select max(salary) ...' measured the largest salary)
        key = _key()
        on_hidden = exp.or_(*[exp.and_(exp.EQ(this=key.copy(), expression=exp.Literal.string(d)), exp.paren(exp.or_(
            exp.EQ(this=exp.column("type"), expression=exp.Literal.string("sql")),
            exp.func("list_has_any", exp.func("string_split", exp.Lower(this=exp.func(
                "coalesce", exp.column("column", quoted=True), exp.Literal.string(""))), exp.Literal.string(", ")),
                exp.Array(expressions=[exp.Literal.string(c) for c in cols])))))
            for d, cols in sorted(hidden.items())])
        blank = on_hidden if blank is None else exp.or_(blank, on_hidden)
    if table in ("slo_status", "slo_history") and hidden:  # latency, retention: the newest or oldest value of
        # their element column, masked or denied for the reader ('2026-12-01T07:02:00' of last_login)
        on_hidden = _slo_on_hidden(mesh, hidden)
        if on_hidden is not None:
            blank = on_hidden if blank is None else exp.or_(blank, on_hidden)
    texts = None  # blanks the free texts only
    if table in ("events", "versions") and hidden:  # an onboarding's problems and warnings quote rule figures
        # ('rule max_score failed: measured 77.25'), an SLO breach its measure
        texts = _in(set(hidden))
        if table == "events":
            texts = exp.and_(texts, exp.In(this=exp.column("kind"),
                                           expressions=[exp.Literal.string(k) for k in QUOTING_EVENTS]))
    if table == "events" and (hiding := unreadable_sources(gov, mesh, principal)):  # "built from shop.orders v3"
        refreshed = exp.and_(exp.EQ(this=exp.column("kind"), expression=exp.Literal.string("mart_refreshed")),
                             _in(set(hiding)))
        texts = refreshed if texts is None else exp.or_(texts, refreshed)
    out = []
    for c in FIGURES[table]:
        cond = blank
        if texts is not None and c in ("message", "details"):
            cond = texts if cond is None else exp.or_(cond, texts)
        if cond is not None:
            out.append(exp.alias_(exp.If(this=cond.copy(), true=exp.Null(), false=exp.column(c, quoted=True)), c,
                                  quoted=True))
    return out or None


def unreadable_sources(gov: Governance, mesh: Mesh, principal: Principal) -> dict[str, list[str]]:
    """Each materialised mart (``quantum.dataset``, lower case) reading sources the principal may not read:
    those sources as its ``built_from`` names them (``quantum.dataset``). A source the mesh no longer has
    counts as unreadable."""
    out = {}
    for ds in mesh.datasets():
        if ds.sql is None or not ds.materialized:
            continue
        hidden = [f"{q}.{d}" for q, d in ds.reads
                  if (src := mesh.dataset(q, d)) is None or not may_read(gov, principal, src)]
        if hidden:
            out[ds.qualified_name.lower()] = hidden
    return out


def _mart_sources(gov: Governance, mesh: Mesh, principal: Principal) -> list[exp.Expression] | None:
    """``system.marts.built_from`` without the sources the principal may not read (their version numbers say
    when they were published): a JSON merge patch setting them to null removes them (RFC 7396)."""
    hiding = unreadable_sources(gov, mesh, principal)
    if not hiding:
        return None
    case = exp.Case()
    for mart, sources in sorted(hiding.items()):
        patch = exp.Literal.string(json.dumps({s: None for s in sources}))
        case = case.when(exp.EQ(this=_key(), expression=exp.Literal.string(mart)),
                         exp.cast(exp.func("json_merge_patch", exp.column("built_from", quoted=True), patch), "VARCHAR"))
    case = case.else_(exp.column("built_from", quoted=True))
    return [exp.alias_(case, "built_from", quoted=True)]


def _slo_on_hidden(mesh: Mesh, hidden: dict[str, list[str]]) -> exp.Expression | None:
    """The rows of the SLO tables measured on a column of ``hidden`` (dataset -> its columns masked or denied
    for the reader): the properties whose element column is one of them."""
    from ..quality.slo import _element_column, properties_for

    rows = []
    for ds in mesh.datasets():
        unseen = hidden.get(ds.qualified_name.lower())
        contract = mesh.contracts.get(ds.contract_id) if unseen else None
        if contract is None:
            continue
        props = sorted({str(p["property"]).lower() for p in properties_for(contract.raw, ds)
                        if (c := _element_column(p, ds)) is not None and c.name.lower() in unseen})
        if props:
            rows.append(exp.and_(exp.EQ(this=_key(), expression=exp.Literal.string(ds.qualified_name.lower())),
                                 exp.In(this=exp.Lower(this=exp.column("property")),
                                        expressions=[exp.Literal.string(x) for x in props])))
    return exp.or_(*rows) if rows else None


def approvable(gov: Governance, mesh: Mesh, principal: Principal) -> set[str]:
    """Datasets whose access requests the principal sees as one who may decide them: the one authorization
    call's answer to ``approve`` (a named approver, a member of an approver group, an owner of the quantum,
    the data-engineer role)."""
    return {ds.qualified_name.lower() for ds in mesh.datasets() if allowed(gov, principal, "approve", ds).allowed}


def sees_every_request(gov: Governance, principal: Principal) -> bool:
    """Auditors and data engineers see every access request (action ``review_requests``)."""
    return allowed(gov, principal, "review_requests").allowed


def observability_filter(gov: Governance | None, mesh: Mesh, principal: Principal,
                         table: str) -> exp.Expression | None:
    """The WHERE over ``system.<table>`` for ``principal``; None when they see every row (or the table is
    not an observability table)."""
    if gov is None or (table not in BY_DATASET and table != EVENTS):
        return None
    every = {ds.qualified_name.lower() for ds in mesh.datasets()}
    mine = readable(gov, mesh, principal)
    reads_all = mine == every
    if table in BY_DATASET:
        return None if reads_all else _in(mine)
    if reads_all and sees_every_request(gov, principal):
        return None
    access = exp.column("kind").like(exp.Literal.string(ACCESS_EVENTS))
    if sees_every_request(gov, principal):
        access_rows: exp.Expression = exp.true()
    else:
        me = exp.Literal.string(principal.name)
        requester = exp.func("json_extract_string", exp.column("details"), exp.Literal.string("$.principal"))
        access_rows = exp.or_(exp.EQ(this=exp.column("principal"), expression=me),
                              exp.EQ(this=requester, expression=me.copy()),
                              _in(approvable(gov, mesh, principal)))
    other_rows = exp.true() if reads_all else exp.or_(exp.column("dataset").is_(exp.null()), _in(mine))
    return exp.or_(exp.and_(access.copy(), exp.paren(access_rows)),
                   exp.and_(exp.not_(access), exp.paren(other_rows)))


def _hides_rows(condition: exp.Expression) -> bool:
    """A row filter hides rows from this principal unless one of its OR branches reads no column and is
    TRUE with their attributes bound (``region <> 'EU' OR list_contains(['EU', 'US'], 'EU')``)."""
    branches = list(condition.flatten()) if isinstance(condition, exp.Or) else [condition]
    while len(branches) == 1 and isinstance(branches[0], exp.Paren):
        inner = branches[0].this
        branches = list(inner.flatten()) if isinstance(inner, exp.Or) else [inner]
    return not any(next(b.find_all(exp.Column), None) is None and parser.constant_true(b.sql("duckdb"))
                   for b in branches)


def _in(datasets: set[str]) -> exp.Expression:
    """``lower(quantum) || '.' || lower(dataset) IN (...)``: FALSE for no dataset (and NULL for a row
    about none, which hides it)."""
    if not datasets:
        return exp.false()
    return exp.In(this=_key(), expressions=[exp.Literal.string(d) for d in sorted(datasets)])


def _key() -> exp.Expression:
    """``lower(quantum) || '.' || lower(dataset)``: the row's dataset."""
    return exp.DPipe(this=exp.DPipe(this=exp.Lower(this=exp.column("quantum")), expression=exp.Literal.string(".")),
                     expression=exp.Lower(this=exp.column("dataset")))
