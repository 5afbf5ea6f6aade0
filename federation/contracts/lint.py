"""Best-practice gaps of an ODCS contract (``quanta contract lint``), each with the YAML path and line it is
about: schema errors, no description, no owner or team, personal-looking columns without a classification,
SLAs without a time column, datasets without a primary key, suggestions from ``quanta contract init`` not yet
reviewed. Metadata only: no data is read."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import errors
from .infer import personal_by_name
from ..catalog.yamlio import Positions, YamlError, format_path, load_yaml

# SLA properties that are measured on a time column (ODCS slaProperties)
TIMED_SLAS = {"latency", "freshness", "retention", "timeofavailability", "frequency"}
_TIME_TYPES = {"date", "timestamp", "time"}


@dataclass(frozen=True)
class Gap:
    path: str
    message: str
    line: int | None = None

    def __str__(self) -> str:
        where = f"{self.path or '(top)'}" + (f" (line {self.line})" if self.line else "")
        return f"{where}: {self.message}"


def read_contract(path: str | Path) -> tuple[dict, Positions]:
    """A contract file's YAML, or an ``errors.Error`` naming the file."""
    p = Path(path)
    try:
        data, positions = load_yaml(p)
    except YamlError as e:
        raise errors.Error(f"{p}{f':{e.line}' if e.line else ''}: {e}") from None
    except OSError as e:
        raise errors.Error(f"{p}: {e.strerror or e}") from None
    if not isinstance(data, dict) or data.get("kind") != "DataContract":
        kind = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise errors.Error(f"{p}: not an ODCS data contract (kind {kind!r}, expected DataContract)")
    return data, positions


def _text(value: Any) -> bool:
    if isinstance(value, dict):
        return any(str(v or "").strip() and not str(v).startswith("TODO") for v in value.values())
    return bool(str(value or "").strip()) and not str(value).startswith("TODO")


def _custom(items: Any, name: str) -> Any:
    for it in items or []:
        if isinstance(it, dict) and it.get("property") == name:
            return it.get("value")
    return None


def lint_contract(doc: dict, positions: Positions | None = None) -> list[Gap]:
    from ..catalog.loader import _validator

    gaps: list[Gap] = []

    def add(path: list, message: str) -> None:
        node, found = doc, True  # the line of what is there (of its parent when it is missing)
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                found = False
                break
        where = path if found else path[:-1]
        line = positions.line(where) if positions and where else None
        gaps.append(Gap(format_path(path), message, line))

    for err in _validator("odcs").iter_errors(doc):
        add(list(err.instance_path), f"ODCS schema: {err.message[:300]}")
    if not _text(doc.get("description")):
        add(["description"], "the contract has no description (purpose, usage, limitations)")
    team = doc.get("team")
    members = team.get("members") if isinstance(team, dict) else team if isinstance(team, list) else None
    if not members:
        add(["team"], "the contract names no team: who owns this data and answers its consumers?")
    elif not any(isinstance(m, dict) and str(m.get("role", "")).lower() in ("owner", "data owner", "product owner")
                 for m in members):
        add(["team"], "no team member has the role owner")
    if not doc.get("support"):
        add(["support"], "no support channel: where do consumers ask questions or report issues?")
    if str(doc.get("status", "")).lower() in ("draft", "proposed"):
        add(["status"], f"status is {doc.get('status')}: review the contract and make it active")
    if _custom(doc.get("customProperties"), "reviewNeeded"):
        i = next(i for i, it in enumerate(doc["customProperties"]) if it.get("property") == "reviewNeeded")
        add(["customProperties", i], "the contract still says a review is needed (quanta contract init): "
                                     "review the suggestions and remove this property")

    time_columns: set[str] = set()
    for i, obj in enumerate(doc.get("schema") or []):
        if not isinstance(obj, dict):
            continue
        base = ["schema", i]
        if not _text(obj.get("description")):
            add(base + ["description"], f"dataset {obj.get('name')!r} has no description")
        props = [p for p in obj.get("properties") or [] if isinstance(p, dict)]
        if props and not any(p.get("primaryKey") for p in props):
            add(base + ["properties"], f"dataset {obj.get('name')!r} has no primary key")
        for j, p in enumerate(obj.get("properties") or []):
            if not isinstance(p, dict):
                continue
            path = base + ["properties", j]
            name = str(p.get("name"))
            if (p.get("logicalType") or "").lower() in _TIME_TYPES:
                time_columns.add(f"{obj.get('name')}.{name}".lower())
                time_columns.add(name.lower())
            if not _text(p.get("description")):
                add(path + ["description"], f"column {obj.get('name')}.{name} has no description")
            looks = personal_by_name(name)
            if looks and not p.get("classification"):
                add(path, f"column {obj.get('name')}.{name} looks like {looks} but has no classification")
            if not p.get("logicalType"):
                add(path, f"column {obj.get('name')}.{name} has no logicalType")
            if _custom(p.get("customProperties"), "suggestions"):
                k = next(k for k, it in enumerate(p["customProperties"]) if it.get("property") == "suggestions")
                add(path + ["customProperties", k], f"column {obj.get('name')}.{name} has suggestions not yet "
                                                    "reviewed (remove them once checked)")

    default_element = doc.get("slaDefaultElement")
    for k, sla in enumerate(doc.get("slaProperties") or []):
        if not isinstance(sla, dict):
            continue
        prop = str(sla.get("property", "")).lower().replace("_", "")
        if prop not in TIMED_SLAS:
            continue
        element = sla.get("element") or default_element
        path = ["slaProperties", k]
        if not element:
            add(path, f"SLA {sla.get('property')} names no time column (element) it is measured on")
            continue
        names = [e.strip().lower() for e in str(element).split(",")]
        if not any(n in time_columns for n in names):
            add(path + ["element"], f"SLA {sla.get('property')} is measured on {element}, which is not a date, "
                                    "timestamp or time column of the contract")
    return gaps
