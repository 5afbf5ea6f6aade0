"""The dictionary as the HTTP service shows it: read with SQL from the ``system.*`` tables.

A ``Dictionary`` runs a handful of queries over ``system.domains``, ``quanta``, ``datasets``,
``columns``, ``contracts``, ``ports`` and ``lineage`` as an anonymous principal (the dictionary is
open: these tables need no grant) and keeps the rows until the platform's state changes (a reload).
The JSON API and the HTML pages both read from it; search runs over the same rows.

"My access" is not cached: it reads ``system.column_access`` as the request's own principal. Nor is a
dataset's observability (quality results, SLO status, versions): it is read as the request's principal
(anonymous without a token) and shown only to principals who may read the dataset, like its rows.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Any

from ... import errors
from ...platform import Platform


def _rows(platform: Platform, sql: str, principal=None, params=None) -> list[dict]:
    result = platform.query(sql, principal or platform.principal(None), params, interface="http")
    try:
        return result.arrow().to_pylist()
    finally:
        result.close()


@dataclass
class Snapshot:
    """The dictionary's rows at one state of the platform."""

    domains: list[dict]
    quanta: list[dict]
    datasets: list[dict]
    columns: list[dict]
    contracts: list[dict]
    ports: list[dict]
    lineage: list[dict]
    columns_of: dict[tuple[str, str], list[dict]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for c in self.columns:
            self.columns_of.setdefault((c["quantum"].lower(), c["dataset"].lower()), []).append(c)


TERM = re.compile(r"[\w\-]+", re.UNICODE)

# How much a match weighs, by where it is found.
WEIGHTS = {"name": 6, "synonym": 5, "column": 4, "tag": 3, "domain": 3, "description": 1, "column_description": 1}


class Dictionary:
    def __init__(self, platform: Platform):
        self.platform = platform
        self._lock = threading.Lock()
        self._state = None
        self._snapshot: Snapshot | None = None

    # -- reading ----------------------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """The rows of the dictionary for the platform's current state (read once per state)."""
        state = self.platform.state
        with self._lock:
            if self._snapshot is None or self._state is not state:
                p = self.platform
                self._snapshot = Snapshot(
                    domains=_rows(p, "select * from system.domains order by domain"),
                    quanta=_rows(p, "select * from system.quanta order by quantum"),
                    datasets=_rows(p, "select * from system.datasets order by quantum, dataset"),
                    columns=_rows(p, "select * from system.columns order by quantum, dataset, ordinal"),
                    contracts=_rows(p, "select * from system.contracts order by contract_id"),
                    ports=_rows(p, "select * from system.ports order by quantum, direction, port"),
                    lineage=_rows(p, "select * from system.lineage order by all"),
                )
                self._state = state
            return self._snapshot

    @property
    def mesh_name(self) -> str:
        return self.platform.mesh.name

    @property
    def mesh_description(self) -> str | None:
        return self.platform.mesh.description

    def domains(self) -> list[dict]:
        """Domains, each with its quanta."""
        snap = self.snapshot()
        out = []
        for d in snap.domains:
            quanta = [q for q in snap.quanta if (q["domain"] or "").lower() == d["domain"].lower()]
            out.append({**d, "quanta_list": quanta})
        return out

    def quanta(self, q: str | None = None) -> list[dict]:
        """Every quantum, or those matching the search text ``q`` (in the quantum or one of its datasets)."""
        snap = self.snapshot()
        if not q:
            return list(snap.quanta)
        hits = {h["quantum"].lower() for h in self.search(q)["datasets"]}
        hits |= {h["quantum"].lower() for h in self.search(q)["quanta"]}
        return [row for row in snap.quanta if row["quantum"].lower() in hits]

    def quantum(self, name: str) -> dict | None:
        """One quantum with its datasets, ports and contracts; None if there is none of that name."""
        snap = self.snapshot()
        row = next((r for r in snap.quanta if r["quantum"].lower() == name.lower()), None)
        if row is None:
            return None
        key = row["quantum"].lower()
        return {**row,
                "datasets_list": [d for d in snap.datasets if d["quantum"].lower() == key],
                "ports": [p for p in snap.ports if p["quantum"].lower() == key],
                "contracts": [c for c in snap.contracts if (c["quantum"] or "").lower() == key]}

    def dataset(self, quantum: str, name: str, principal=None) -> dict | None:
        """One dataset: columns, contract, lineage (upstream and downstream), quality, SLOs, examples. Its
        quality results, SLO status and versions are shown if ``principal`` (anonymous when None) may read it."""
        snap = self.snapshot()
        row = next((d for d in snap.datasets if d["quantum"].lower() == quantum.lower()
                    and d["dataset"].lower() == name.lower()), None)
        if row is None:
            return None
        q, d = row["quantum"], row["dataset"]
        columns = snap.columns_of.get((q.lower(), d.lower()), [])
        contract = next((c for c in snap.contracts if c["contract_id"] == row["contract_id"]), None)
        principal = principal or self.platform.principal(None)
        shown = self._may_read(principal, q, d)
        return {**row,
                "columns_list": columns,
                "contract": contract,
                "lineage": self.lineage(q, d),
                "quality": self._quality(q, d, principal, shown),
                "slo": self._slo(q, d, row["contract_id"], principal, shown),
                "versions": self._versions(q, d, principal) if shown else [],
                "examples": self._examples(q, d, columns)}

    def _may_read(self, principal, quantum: str, dataset: str) -> bool:
        from ...system.observability import may_read

        ds = self.platform.mesh.dataset(quantum, dataset)
        gov = self.platform.state.governance
        return ds is not None and (gov is None or may_read(gov, principal, ds))

    def lineage(self, quantum: str, dataset: str) -> dict:
        """Upstream and downstream datasets, transitively, each with its distance from this dataset."""
        edges = [((e["source_quantum"], e["source_dataset"]), (e["target_quantum"], e["target_dataset"]))
                 for e in self.snapshot().lineage]
        start = (quantum, dataset)

        def walk(direction: int) -> list[dict]:
            seen = {start: 0}
            frontier = [start]
            depth = 0
            while frontier:
                depth += 1
                following = []
                for node in frontier:
                    for src, dst in edges:
                        nxt = src if direction < 0 and dst == node else dst if direction > 0 and src == node else None
                        if nxt is not None and nxt not in seen:
                            seen[nxt] = depth
                            following.append(nxt)
                frontier = following
            return [{"quantum": n[0], "dataset": n[1], "distance": dist} for n, dist in seen.items() if n != start]

        upstream, downstream = walk(-1), walk(1)
        shown = {start} | {(n["quantum"], n["dataset"]) for n in upstream + downstream}
        return {"upstream": upstream, "downstream": downstream,
                "edges": [{"source": f"{s[0]}.{s[1]}", "target": f"{t[0]}.{t[1]}"} for s, t in edges
                          if s in shown and t in shown]}

    def _measured(self, sql: str, params: list, principal) -> list[dict] | None:
        """Rows of an observability table read as ``principal``, or None when this platform has no such table."""
        try:
            return _rows(self.platform, sql, principal, params=params)
        except errors.UnknownObject:
            return None

    def _quality(self, quantum: str, dataset: str, principal, shown: bool) -> dict:
        """The quality rules in force (the contract's, or those set through the control plane, with who set
        them and when) and, for those who may read the dataset, the results of the latest check
        (``system.quality_results``)."""
        from ...onboarding.contracts import rule_sets

        ds = self.platform.mesh.dataset(quantum, dataset)
        rules = []
        found = rule_sets(self.platform).get((quantum.lower(), dataset.lower()))
        source = {"source": "contract"}
        if found is not None:
            rules += [{"column": r.get("column"), **_rule(r)} for r in found["rules"]]
            source = {"source": "control-plane", "set_by": found["principal"], "set_at": found["updated_at"]}
        elif ds is not None:
            rules += [{"column": None, **_rule(r)} for r in ds.quality]
            for c in ds.columns:
                rules += [{"column": c.name, **_rule(r)} for r in c.quality]
        if not shown:
            return {"declared_rules": rules, "rules_source": source, "status": NOT_SHOWN, "counts": {},
                    "checked_at": None, "results": [], "message": _not_shown(principal, quantum, dataset)}
        results = self._measured(
            "select run_id, at, rule, \"column\", dimension, severity, measured, threshold, status, message "
            "from system.quality_results where lower(quantum) = lower(?) and lower(dataset) = lower(?) and run_id = "
            "(select max(run_id) from system.quality_results where lower(quantum) = lower(?) and "
            "lower(dataset) = lower(?)) order by rule", [quantum, dataset, quantum, dataset], principal) or []
        counts = {k: sum(1 for r in results if r["status"] == k) for k in ("pass", "warn", "fail", "error")}
        if not results:
            status = "not checked yet"
        else:
            status = next((k for k in ("error", "fail", "warn") if counts[k]), "pass")
        return {"declared_rules": rules, "rules_source": source, "status": status, "counts": counts if results else {},
                "checked_at": results[0]["at"] if results else None, "results": results, "message": None}

    def _slo(self, quantum: str, dataset: str, contract_id: str, principal, shown: bool) -> dict:
        """The service levels the contract declares (ODCS ``slaProperties``) and, for those who may read the
        dataset, their status (``system.slo_status``: met, at risk, breached)."""
        contract = self.platform.mesh.contracts.get(contract_id)
        model = contract.model if contract else None
        declared = [p.model_dump(include={"property", "value", "unit", "element", "description"}, exclude_none=True)
                    for p in (model.slaProperties if model else None) or []]
        if not shown:
            return {"declared": declared, "status": NOT_SHOWN, "measured": [],
                    "message": _not_shown(principal, quantum, dataset)}
        measured = self._measured("select property, target, measured, status, message, evaluated_at "
                                  "from system.slo_status where lower(quantum) = lower(?) and "
                                  "lower(dataset) = lower(?) order by property", [quantum, dataset], principal) or []
        statuses = {m["status"] for m in measured}
        status = next((s for s in ("breached", "at risk", "met") if s in statuses), "not measured yet")
        return {"declared": declared, "status": status, "measured": measured, "message": None}

    def _versions(self, quantum: str, dataset: str, principal) -> list[dict]:
        """Published versions of the dataset (``system.versions``), newest first."""
        return self._measured("select version, contract_version, created_at, rows, status, \"current\", message "
                              "from system.versions where lower(quantum) = lower(?) and lower(dataset) = lower(?) "
                              "order by version desc", [quantum, dataset], principal) or []

    @staticmethod
    def _examples(quantum: str, dataset: str, columns: list[dict]) -> list[dict]:
        name = f"{quantum}.{dataset}"
        examples = [{"title": "A first look", "sql": f"select * from {name} limit 10"},
                    {"title": "How many rows", "sql": f"select count(*) from {name}"}]
        group = next((c["column"] for c in columns if c["data_type"] == "VARCHAR" and not c["primary_key"]
                      and c["classification"] not in ("pii", "restricted")
                      and not c["column"].endswith("_id")), None)
        if group:
            examples.append({"title": f"Rows by {group}",
                             "sql": f'select "{group}", count(*) as n from {name} group by 1 order by 2 desc'})
        return examples

    def contract_file(self, contract_id: str):
        """The path of a contract's ODCS file, or None."""
        contract = self.platform.mesh.contracts.get(contract_id)
        if contract is None:
            return None
        return (self.platform.mesh.path / contract.file).resolve()

    def approvers(self, quantum: str, dataset: str) -> list[str]:
        ds = self.platform.mesh.dataset(quantum, dataset)
        return list(self.platform.state.governance.approvers(ds)) if ds is not None else []

    # -- search -----------------------------------------------------------------------------------

    def search(self, text: str, limit: int = 50) -> dict:
        """Datasets and quanta matching every word of ``text`` in their names, synonyms, descriptions, tags,
        domains or column names (and column synonyms); best first, with what matched."""
        terms = [t.lower() for t in TERM.findall(text or "")]
        snap = self.snapshot()
        if not terms:
            return {"query": text, "terms": [], "datasets": [], "quanta": []}
        quanta_by_name = {q["quantum"].lower(): q for q in snap.quanta}
        found = []
        for d in snap.datasets:
            quantum = quanta_by_name.get(d["quantum"].lower(), {})
            fields: list[tuple[str, str, str]] = [
                ("name", "dataset", f"{d['quantum']}.{d['dataset']} {d['business_name'] or ''}"),
                ("description", "description", f"{d['description'] or ''} {quantum.get('description') or ''}"),
                ("tag", "tags", " ".join((d["tags"] or []) + (quantum.get("tags") or []))),
                ("domain", "domain", d["domain"] or ""),
                # ODCS v3.2 / ODPS v1.1 synonyms: the business's other names for the dataset or its product
                ("synonym", "synonyms", " ".join((d.get("synonyms") or []) + (quantum.get("synonyms") or []))),
            ]
            for c in snap.columns_of.get((d["quantum"].lower(), d["dataset"].lower()), []):
                fields.append(("column", f"column {c['column']}", f"{c['column']} {c['business_name'] or ''} "
                               + " ".join((c["tags"] or []) + (c.get("synonyms") or []))))
                fields.append(("column_description", f"column {c['column']}", c["description"] or ""))
            score, matched = _score(terms, fields)
            if score:
                found.append({"quantum": d["quantum"], "dataset": d["dataset"], "description": d["description"],
                              "domain": d["domain"], "kind": d["kind"], "score": score, "matched": matched})
        found.sort(key=lambda r: (-r["score"], r["quantum"], r["dataset"]))
        quanta = []
        for q in snap.quanta:
            fields = [("name", "quantum", q["quantum"]), ("description", "description", q["description"] or ""),
                      ("tag", "tags", " ".join(q["tags"] or [])), ("domain", "domain", q["domain"] or ""),
                      ("synonym", "synonyms", " ".join(q.get("synonyms") or []))]
            score, matched = _score(terms, fields)
            if score:
                quanta.append({"quantum": q["quantum"], "domain": q["domain"], "description": q["description"],
                               "score": score, "matched": matched})
        quanta.sort(key=lambda r: (-r["score"], r["quantum"]))
        return {"query": text, "terms": terms, "datasets": found[:limit], "quanta": quanta[:limit]}

    # -- my access --------------------------------------------------------------------------------

    def access(self, principal, quantum: str, dataset: str) -> dict:
        """What ``principal`` may see of a dataset, column by column (``system.column_access``)."""
        rows = _rows(self.platform, 'select "column", access, policy from system.column_access '
                     "where lower(quantum) = lower(?) and lower(dataset) = lower(?)", principal, [quantum, dataset])
        readable = any(r["access"] != "denied" for r in rows)
        return {"principal": principal.name, "quantum": quantum, "dataset": dataset, "granted": readable,
                "columns": rows, "approvers": self.approvers(quantum, dataset)}


NOT_SHOWN = "not shown"


def _not_shown(principal, quantum: str, dataset: str) -> str:
    who = "you" if not getattr(principal, "known", True) else principal.name
    return (f"quality results and service levels are shown to principals who may read {quantum}.{dataset}"
            + (" (send a token)" if who == "you" else f", and {who} may not; request access first"))


def _rule(rule: Any) -> dict:
    if not isinstance(rule, dict):
        return {"description": str(rule)}
    keep = ("name", "type", "metric", "description", "dimension", "severity", "mustBe", "mustBeGreaterThan",
            "mustBeLessThan", "mustNotBe", "mustBeBetween")
    return {k: rule[k] for k in keep if k in rule}


def _score(terms: list[str], fields: list[tuple[str, str, str]]) -> tuple[int, list[str]]:
    """Every term must be found in some field; the score adds the weight of the best field per term."""
    total, matched = 0, []
    for term in terms:
        best, where = 0, None
        for kind, label, text in fields:
            if term in text.lower() and WEIGHTS[kind] > best:
                best, where = WEIGHTS[kind], label
        if not best:
            return 0, []
        total += best
        if where not in matched:
            matched.append(where)
    return total, matched
