"""Policy coverage, for the governance team: what each policy covers, and where it looks like it has holes.

For each policy, the datasets and columns it selects (``covered``), and a ``warning`` for each column it
does not select that looks like one it does, when nothing else protects that column:

- ``same_name``: a column with the name of a column the policy covers (``region`` of ``sales.orders``
  when the residency filter covers ``region`` of ``customers.customers``);
- ``same_classification``: a column with a classification the policy selects, left out by its other
  criteria (a tag, a dataset) or its scope;
- ``same_tag``: a column with a tag the policy selects, left out by its other criteria or its scope;
- ``derived_copy``: a column that copies a covered column (lineage ``identity``, ``value``,
  ``collection``) with another classification, and that no policy selects itself (its readers still get
  the source's policies through lineage, but policies by classification treat it differently);
- ``selects_nothing``: the policy selects no column or dataset of the mesh.

"Protected" means, for a mask or a deny, that some mask or deny policy selects the column (it is not in
clear); for a row filter, that a row filter with the same condition applies to the column's dataset. A
derived column is protected too when a source column it is computed from is (derived datasets apply
their sources' policies to the reader, marts carry them).
Declassified columns (``declassify`` in their contract) are lowered on purpose and not warned about by
classification or tag. The report is metadata only (names, classifications, tags), no value.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

from ..catalog.model import Column, Dataset, Mesh
from ..lineage import declassify
from ..lineage.columns import ColumnEdge
from .policies import Governance, Policy

COPIES = ("identity", "value", "collection")
REASONS = ("derived_copy", "same_name", "same_classification", "same_tag")


@dataclass(frozen=True)
class Coverage:
    policy: str
    kind: str
    scope: str
    quantum: str | None
    dataset: str | None
    column: str | None
    coverage: str  # covered | warning
    reason: str | None  # why a warning: derived_copy | same_name | same_classification | same_tag | selects_nothing
    like: str | None  # the covered column it resembles (quantum.dataset.column)
    detail: str


def _relevant(pol: Policy, ds: Dataset) -> bool:
    return pol.scope == "global" or pol.scope.lower() == ds.quantum.lower()


def _selects(pol: Policy, ds: Dataset, col: Column | None) -> bool:
    if not _relevant(pol, ds):
        return False
    if col is None or not pol.selector.column_level:
        return pol.selector.dataset_matches(ds)
    return pol.selector.column_matches(ds, col)


def _why(pol: Policy, col: Column) -> str:
    s = pol.selector
    if s.column:
        return f"by column name {col.name}"
    parts = []
    if s.classification:
        parts.append(f"classification {col.classification}")
    if s.tag:
        parts.append("tag " + ", ".join(t for t in col.tags if t.lower() in s.tag))
    return "by " + " and ".join(parts) if parts else "every column"


def coverage(gov: Governance, mesh: Mesh, edges: Iterable[ColumnEdge] = ()) -> list[Coverage]:
    datasets = [ds for q in sorted(mesh.quanta.values(), key=lambda q: q.name.lower())
                for ds in sorted(q.datasets.values(), key=lambda d: d.name.lower())]
    columns = [(ds, col) for ds in datasets for col in ds.columns]
    by_name = {f"{ds.qualified_name}.{col.name}".lower(): (ds, col) for ds, col in columns}
    copies: dict[str, list[str]] = {}  # source column -> the columns that copy it
    for e in edges:
        if e.transformation in COPIES:
            copies.setdefault(f"{e.source_quantum}.{e.source_dataset}.{e.source_column}".lower(), []).append(
                f"{e.target_quantum}.{e.target_dataset}.{e.target_column}".lower())
    edges_of: dict[str, list[ColumnEdge]] = {}
    for e in edges:
        edges_of.setdefault(f"{e.target_quantum}.{e.target_dataset}".lower(), []).append(e)
    lowered = {f"{ds.qualified_name}.{c}".lower() for ds in datasets if ds.sql is not None
               for c in declassify.declassified_columns(ds, edges_of.get(ds.qualified_name.lower(), []))}
    masking = [p for p in gov.policies if p.kind in ("mask", "deny")]

    sources: dict[str, list[str]] = {}  # derived column -> the source columns it is computed from
    for e in edges:
        sources.setdefault(f"{e.target_quantum}.{e.target_dataset}.{e.target_column}".lower(), []).append(
            f"{e.source_quantum}.{e.source_dataset}.{e.source_column}".lower())

    def protected(pol: Policy, ds: Dataset, col: Column, lineage: bool = True, seen: frozenset = frozenset()) -> bool:
        if pol.kind == "row_filter":
            direct = any(p.kind == "row_filter" and (p.sql or "").strip() == (pol.sql or "").strip()
                         and _selects(p, ds, col) for p in gov.policies)
        else:
            direct = any(_selects(p, ds, col) for p in masking)
        if direct or not lineage:
            return direct
        key = f"{ds.qualified_name}.{col.name}".lower()
        return any(src in by_name and src not in seen and protected(pol, *by_name[src], True, seen | {key})
                   for src in sources.get(key, []))

    out: list[Coverage] = []
    for pol in gov.policies:
        row = dict(policy=pol.name, kind=pol.kind, scope=pol.scope)
        if not pol.selector.column_level:
            hit = [ds for ds in datasets if _selects(pol, ds, None)]
            out.extend(Coverage(**row, quantum=ds.quantum, dataset=ds.name, column=None, coverage="covered",
                                reason=None, like=None, detail="the whole dataset") for ds in hit)
            if not hit:
                out.append(Coverage(**row, quantum=None, dataset=None, column=None, coverage="warning",
                                    reason="selects_nothing", like=None, detail=f"{pol.name} selects no dataset"))
            continue
        covered = [(ds, col) for ds, col in columns if _selects(pol, ds, col)]
        out.extend(Coverage(**row, quantum=ds.quantum, dataset=ds.name, column=col.name, coverage="covered",
                            reason=None, like=None, detail=_why(pol, col)) for ds, col in covered)
        if not covered:
            out.append(Coverage(**row, quantum=None, dataset=None, column=None, coverage="warning",
                                reason="selects_nothing", like=None, detail=f"{pol.name} selects no column"))
            continue
        out.extend(_warnings(pol, row, covered, columns, by_name, copies, lowered, protected))
    return out


def _warnings(pol, row, covered, columns, by_name, copies, lowered, protected) -> list[Coverage]:
    covered_keys = {f"{ds.qualified_name}.{col.name}".lower() for ds, col in covered}
    names: dict[str, str] = {}
    classes: dict[str, str] = {}  # a classification the policy selects -> a covered column with it
    tags: dict[str, str] = {}  # a tag the policy selects -> a covered column with it
    for ds, col in covered:
        key = f"{ds.qualified_name}.{col.name}"
        names.setdefault(col.name.lower(), key)
        if (col.classification or "").lower() in pol.selector.classification:
            classes.setdefault(col.classification.lower(), key)
        for t in col.tags:
            if t.lower() in pol.selector.tag:
                tags.setdefault(t.lower(), key)
    found: dict[str, tuple[str, str, str]] = {}  # uncovered column -> (reason, like, detail)

    def note(key: str, reason: str, like: str, detail: str) -> None:
        if key in covered_keys:
            return
        if key not in found or REASONS.index(reason) < REASONS.index(found[key][0]):
            found[key] = (reason, like, detail)

    for src in sorted(covered_keys):
        for target in copies.get(src, []):
            if target not in by_name or target in covered_keys:
                continue
            (s_ds, s_col), t_col = by_name[src], by_name[target][1]
            if (s_col.classification or "").lower() != (t_col.classification or "").lower():
                like = f"{s_ds.qualified_name}.{s_col.name}"
                note(target, "derived_copy", like,
                     f"copies {like} (covered by {pol.name}) but is classified {t_col.classification or 'nothing'}, "
                     f"not {s_col.classification or 'nothing'}")
    for ds, col in columns:
        key = f"{ds.qualified_name}.{col.name}".lower()
        if key in covered_keys:
            continue
        like = names.get(col.name.lower())
        if like:
            note(key, "same_name", like, f"has the name of {like}, which {pol.name} covers")
        if key in lowered:
            continue  # declassified on purpose by its contract
        if col.classification and col.classification.lower() in classes:
            like = classes[col.classification.lower()]
            note(key, "same_classification", like, f"is classified {col.classification} like {like}, which "
                 f"{pol.name} covers")
        shared = sorted(t for t in {t.lower() for t in col.tags} if t in tags)
        if shared:
            like = tags[shared[0]]
            note(key, "same_tag", like, f"is tagged {shared[0]} like {like}, which {pol.name} covers")
    out = []
    for key, (reason, like, detail) in sorted(found.items()):
        ds, col = by_name[key]
        if protected(pol, ds, col, lineage=reason != "derived_copy"):
            continue
        scope = "" if _relevant(pol, ds) else f" (a local policy of {pol.scope})"
        if reason == "derived_copy":
            what = "no policy selects it itself (its readers still get the source's policies through lineage)"
        elif pol.kind == "row_filter":
            what = "no row filter with its condition applies to it"
        else:
            what = "no mask or deny selects it: it is in clear"
        out.append(Coverage(**row, quantum=ds.quantum, dataset=ds.name, column=col.name, coverage="warning",
                            reason=reason, like=like,
                            detail=f"{ds.qualified_name}.{col.name} {detail}{scope}, but {pol.name} does not select "
                                   f"it and {what}"))
    return out
