"""Contract inheritance: a quantum built from others inherits their contracts, along column lineage.

- Classification and tags propagate from source columns to the derived columns computed from them,
  whatever the transformation: the most restrictive classification wins and the tags add up
  (``max(vat_number)`` is as personal as ``vat_number``). Only ``count(col)``/``count(distinct col)``
  stops the propagation by default (``settings.anonymising_transformations``: ``[count]`` or ``[]``);
  anything else is lowered only by a ``declassify`` declaration in the contract (see ``declassify``).
- A derived column that *declares* something weaker than it inherits (``public`` for a column computed
  from an e-mail classified ``pii``) is an error naming the source column.
- ``transformSourceObjects`` and ``transformLogic`` are filled from the lineage when the contract
  leaves them empty, and checked when it does not.
- SLAs compose: a derived dataset cannot promise a lower ``latency`` than its slowest input, nor a
  longer ``retention`` than its shortest-lived input.

Derived datasets are processed sources first, so inheritance goes through any number of levels.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..catalog.model import Dataset, Mesh
from ..errors import Problem
from . import declassify
from .columns import ColumnEdge, column_lineage, mesh_schema

RANK = {"public": 0, "internal": 1, "confidential": 2, "sensitive": 3, "pii": 3, "restricted": 4, "secret": 4}
DEFAULT_ANONYMISING = ("count",)  # count(col), count(distinct col): a number, not a value
_HOURS = {"h": 1, "hour": 1, "hours": 1, "d": 24, "day": 24, "days": 24, "w": 168, "week": 168, "weeks": 168,
          "m": 720, "mo": 720, "month": 720, "months": 720, "y": 8760, "yr": 8760, "year": 8760, "years": 8760,
          "min": 1 / 60, "minute": 1 / 60, "minutes": 1 / 60}


def rank(classification: str | None) -> int:
    if not classification:
        return -1
    return RANK.get(classification.lower(), 2)


@dataclass
class Inherited:
    """What a derived column inherits."""

    classification: str | None = None
    source: str | None = None  # the source column that gives the classification
    tags: set[str] = field(default_factory=set)
    sources: list[str] = field(default_factory=list)  # quantum.dataset of every source


@dataclass
class Lineage:
    edges: list[ColumnEdge]
    inherited: dict[tuple[str, str, str], Inherited]  # (quantum, dataset, column) -> what it inherits
    problems: list[Problem]


def inherit(mesh: Mesh, anonymising: tuple[str, ...] = DEFAULT_ANONYMISING) -> Lineage:
    schema = mesh_schema(mesh)
    edges: list[ColumnEdge] = []
    inherited: dict[tuple[str, str, str], Inherited] = {}
    problems: list[Problem] = []
    for ds in mesh.derived_sources_first():
        ds_edges = column_lineage(ds, schema)
        edges.extend(ds_edges)
        problems.extend(declassify.problems(ds, ds_edges))
        shape = _shape(ds)
        by_column: dict[str, list[ColumnEdge]] = {}
        for e in ds_edges:
            by_column.setdefault(e.target_column.lower(), []).append(e)
        for col in ds.columns:
            got = Inherited()
            lowered = declassify.min_group_size(ds, col, by_column.get(col.name.lower(), []))
            for e in by_column.get(col.name.lower(), []):
                src = mesh.dataset(e.source_quantum, e.source_dataset)
                src_col = src.column(e.source_column) if src else None
                if src_col is None:
                    continue
                got.sources.append(f"{src.quantum}.{src.name}")
                if e.transformation in anonymising or (lowered and e.transformation in declassify.DECLASSIFIABLE):
                    continue
                if rank(src_col.classification) > rank(got.classification):
                    got.classification = src_col.classification
                    got.source = f"{src.quantum}.{src.name}.{src_col.name}"
                got.tags.update(src_col.tags)
            inherited[(ds.quantum.lower(), ds.name.lower(), col.name.lower())] = got
            declared = col.classification
            if got.classification and declared and rank(declared) < rank(got.classification):
                kind = next(e.transformation for e in by_column[col.name.lower()]
                            if f"{e.source_quantum}.{e.source_dataset}.{e.source_column}".lower() == got.source.lower())
                problems.append(Problem(
                    ds.file, col.yaml_path + ".classification" if col.yaml_path else ds.yaml_path,
                    f"column {col.name} of {ds.qualified_name} is declared {declared!r} but is computed from "
                    f"{got.source}, classified {got.classification!r} ({kind}); declare {got.classification!r}, or "
                    f"declare declassify: {{minGroupSize: k}} on a column computed by aggregates (sum, avg, "
                    f"count...)",
                    None, ds.quantum))
            elif got.classification and not declared:
                col.classification = got.classification  # the effective contract fills it in
            if got.tags - set(col.tags):  # the tags add up: a policy selecting a source's tag selects it here too
                col.tags = tuple(dict.fromkeys(list(col.tags) + sorted(got.tags - set(col.tags))))
            if not col.transform_source_objects and got.sources:
                col.transform_source_objects = tuple(dict.fromkeys(got.sources))
            elif col.transform_source_objects and got.sources:
                declared_objects = {o.lower() for o in col.transform_source_objects}
                missing = [s for s in dict.fromkeys(got.sources) if s.lower() not in declared_objects
                           and s.split(".")[1].lower() not in declared_objects]
                if missing:
                    problems.append(Problem(ds.file, col.yaml_path + ".transformSourceObjects",
                                            f"column {col.name} of {ds.qualified_name} is computed from "
                                            f"{', '.join(missing)}, which transformSourceObjects does not list",
                                            None, ds.quantum, "warning"))
            if not col.transform_logic:
                logic = next((e.logic for e in by_column.get(col.name.lower(), [])), None)
                col.transform_logic = logic
            _inherit_keys(mesh, ds, col, by_column.get(col.name.lower(), []), shape)
        problems.extend(_sla_problems(mesh, ds))
    return Lineage(edges, inherited, problems)


def _shape(ds: Dataset) -> dict:
    """What decides whether a key survives a derived dataset's SQL: one source without joins (rows are
    filtered and projected, never multiplied or null-extended), or the GROUP BY keys."""
    import sqlglot
    import sqlglot.expressions as exp
    from sqlglot.errors import SqlglotError

    try:
        tree = sqlglot.parse_one(ds.sql or "", read="duckdb")
    except SqlglotError:
        return {"preserving": False, "group_keys": set()}
    simple = (isinstance(tree, exp.Select) and len(set(ds.reads)) == 1 and not tree.find(exp.Join)
              and not tree.find(exp.Unnest, exp.Explode, exp.Lateral) and not tree.args.get("group"))
    keys: set[str] = set()
    group = tree.args.get("group") if isinstance(tree, exp.Select) else None
    if group is not None and len(group.expressions) == 1:
        key = group.expressions[0]
        for sel in tree.selects:
            inner = sel.this if isinstance(sel, exp.Alias) else sel
            if inner == key or (isinstance(key, exp.Column) and isinstance(inner, exp.Column)
                                and inner.name.lower() == key.name.lower()):
                keys.add(sel.alias_or_name.lower())
    return {"preserving": simple, "group_keys": keys}


def _inherit_keys(mesh: Mesh, ds: Dataset, col, edges: list[ColumnEdge], shape: dict) -> None:
    """Quality rules on inherited keys carry over where the key is preserved: ``required`` and ``unique``
    of an identity column of a single-source, join-free SQL; ``unique`` of the single GROUP BY key."""
    if col.name.lower() in shape["group_keys"]:
        col.unique = True
    if len(edges) != 1 or edges[0].transformation != "identity" or not shape["preserving"]:
        return
    src = mesh.dataset(edges[0].source_quantum, edges[0].source_dataset)
    src_col = src.column(edges[0].source_column) if src else None
    if src_col is None:
        return
    if src_col.required or src_col.primary_key:
        col.required = True
    if src_col.unique or (src_col.primary_key and sum(c.primary_key for c in src.columns) == 1):
        col.unique = True


def _sla(mesh: Mesh, ds: Dataset, prop: str) -> float | None:
    contract = mesh.contracts.get(ds.contract_id)
    if contract is None:
        return None
    for sla in contract.raw.get("slaProperties") or []:
        if not isinstance(sla, dict) or sla.get("property") != prop:
            continue
        element = str(sla.get("element") or "")
        if element and element.split(".")[0].lower() not in (ds.name.lower(), (ds.physical_name or "").lower()):
            continue
        try:
            return float(sla["value"]) * _HOURS.get(str(sla.get("unit", "d")).lower(), 24)
        except (TypeError, ValueError, KeyError):
            return None
    return None


def composed_sla(mesh: Mesh, ds: Dataset) -> dict:
    """What a derived dataset can promise, from its inputs: a latency no lower than its slowest input's
    plus its own refresh time (a materialised mart's ``frequency``; 0 for a view computed on read), a
    retention no longer than its shortest-lived input's. Hours; a bound is absent when no input declares it."""
    inputs = [i for i in (mesh.dataset(q, d) for q, d in ds.reads) if i is not None]
    out: dict = {}
    latencies = [(i, _sla(mesh, i, "latency")) for i in inputs]
    slowest = max((x for x in latencies if x[1] is not None), key=lambda x: x[1], default=None)
    if slowest is not None:
        refresh = (_sla(mesh, ds, "frequency") or 0.0) if ds.materialized else 0.0
        out["latency"] = {"atLeast": slowest[1] + refresh, "input": slowest[0].qualified_name, "refresh": refresh}
    retentions = [(i, _sla(mesh, i, "retention")) for i in inputs]
    shortest = min((x for x in retentions if x[1] is not None), key=lambda x: x[1], default=None)
    if shortest is not None:
        out["retention"] = {"atMost": shortest[1], "input": shortest[0].qualified_name}
    return out


def _sla_problems(mesh: Mesh, ds: Dataset) -> list[Problem]:
    out = []
    bounds = composed_sla(mesh, ds)
    latency = _sla(mesh, ds, "latency")
    bound = bounds.get("latency")
    if latency is not None and bound is not None and latency < bound["atLeast"]:
        refresh = f" plus its own refresh every {bound['refresh']:g} h" if bound["refresh"] else ""
        out.append(Problem(ds.file, "slaProperties", f"{ds.qualified_name} promises a latency of {latency:g} h, "
                           f"lower than its input {bound['input']} ({bound['atLeast'] - bound['refresh']:g} h)"
                           f"{refresh}", None, ds.quantum))
    retention = _sla(mesh, ds, "retention")
    bound = bounds.get("retention")
    if retention is not None and bound is not None and retention > bound["atMost"]:
        out.append(Problem(ds.file, "slaProperties", f"{ds.qualified_name} promises a retention of {retention:g} h, "
                           f"longer than its input {bound['input']} keeps data ({bound['atMost']:g} h)",
                           None, ds.quantum))
    return out


def effective_contract(mesh: Mesh, quantum: str) -> list[dict]:
    """The ODCS contracts of a quantum with what it inherits filled in (classification, tags,
    transformSourceObjects, transformLogic), as plain dicts ready for YAML. Each starts from the contract as
    written: its ``${VAR}`` variables (ODCS v3.2) are shown as tokens, never their values."""
    import copy

    q = mesh.quanta[quantum.lower()]
    out = []
    for cid in q.contracts:
        raw = copy.deepcopy(mesh.contracts[cid].as_written)
        for obj in raw.get("schema") or []:
            ds = q.datasets.get(str(obj.get("name", "")).lower())
            if ds is None:
                continue
            props = {str(p.get("name", "")).lower(): p for p in obj.get("properties") or []}
            for col in ds.columns:
                p = props.get(col.name.lower())
                if p is None:
                    p = {"name": col.name}
                    obj.setdefault("properties", []).append(p)
                p.setdefault("physicalType", col.data_type)
                if col.classification:
                    p["classification"] = col.classification
                if col.tags:
                    p["tags"] = list(col.tags)
                if col.transform_source_objects:
                    p["transformSourceObjects"] = list(col.transform_source_objects)
                if col.transform_logic:
                    p["transformLogic"] = col.transform_logic
                if col.required:
                    p["required"] = True
                if col.unique:
                    p["unique"] = True
            bounds = composed_sla(mesh, ds) if ds.sql is not None else {}
            if bounds:  # what the inputs allow it to promise (hours)
                obj.setdefault("customProperties", []).append({"property": "composedSla", "value": {
                    k: {kk: vv for kk, vv in v.items()} for k, v in bounds.items()}})
        inputs = [p.contract_id for p in q.ports if p.direction == "input" and p.contract_id]
        if inputs:
            raw.setdefault("customProperties", []).append({"property": "inputContracts", "value": inputs})
        out.append(raw)
    return out
