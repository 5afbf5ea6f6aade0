"""Contract evolution: classify each change between two versions of an ODCS contract.

Breaking (a consumer's query or assumption can fail): a dataset or column removed, a column renamed,
a type narrowed (or changed to an incompatible one), ``required`` added to an existing column, enum
values removed (``validValues`` of an invalidValues rule, ``logicalTypeOptions.enum``), a key's
semantics changed (``primaryKey``/``unique`` added or removed). Not breaking: datasets or columns
added, types widened, descriptions, tags, quality rules tightened or loosened otherwise, enum values
added. A breaking change needs a new major version (``version: 2.0.0`` after ``1.x``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from ..catalog import types as ctypes

SYNONYMS = {"INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT", "LONG": "BIGINT",
            "TEXT": "VARCHAR", "STRING": "VARCHAR", "FLOAT8": "DOUBLE", "REAL": "FLOAT", "FLOAT4": "FLOAT",
            "NUMERIC": "DECIMAL(18,3)", "BOOL": "BOOLEAN"}
INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "BIGINT": 4, "HUGEINT": 5}


@dataclass
class Change:
    path: str
    kind: str  # e.g. column_removed, type_narrowed
    breaking: bool
    message: str

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def _type(prop: dict) -> str:
    t, _ = ctypes.declared_type(prop.get("logicalType"), prop.get("physicalType"), prop.get("items"))
    t = str(t).upper().replace(" ", "")
    return SYNONYMS.get(t, t)


def widens(old: str, new: str) -> bool:
    """True when every value of ``old`` fits ``new`` unchanged."""
    if old == new:
        return True
    if new in ("VARCHAR", "TEXT", "STRING"):
        return old.startswith("VARCHAR") or old in INT_RANK or old.startswith("DECIMAL") or old in (
            "DOUBLE", "FLOAT", "DATE", "TIMESTAMP", "BOOLEAN")
    vo, vn = re.match(r"VARCHAR\((\d+)\)", old), re.match(r"VARCHAR\((\d+)\)", new)
    if vo and vn:
        return int(vn[1]) >= int(vo[1])
    if old in INT_RANK and new in INT_RANK:
        return INT_RANK[new] >= INT_RANK[old]
    if old in INT_RANK and new == "DOUBLE":
        return INT_RANK[old] <= 3
    do, dn = re.match(r"DECIMAL\((\d+),(\d+)\)", old), re.match(r"DECIMAL\((\d+),(\d+)\)", new)
    if do and dn:
        return int(dn[2]) >= int(do[2]) and int(dn[1]) - int(dn[2]) >= int(do[1]) - int(do[2])
    if old in INT_RANK and dn:
        digits = {1: 3, 2: 5, 3: 10, 4: 19, 5: 39}[INT_RANK[old]]
        return int(dn[1]) - int(dn[2]) >= digits
    if old == "FLOAT" and new == "DOUBLE":
        return True
    if old == "DATE" and new.startswith("TIMESTAMP"):
        return True
    return False


def _enum(prop: dict) -> set | None:
    values = None
    for rule in prop.get("quality") or []:
        if isinstance(rule, dict) and rule.get("metric") == "invalidValues":
            vv = (rule.get("arguments") or {}).get("validValues") or rule.get("validValues")
            if isinstance(vv, list):
                values = set(map(str, vv)) if values is None else values & set(map(str, vv))
    opts = (prop.get("logicalTypeOptions") or {}).get("enum")
    if isinstance(opts, list):
        values = set(map(str, opts)) if values is None else values & set(map(str, opts))
    return values


def _major(version) -> int | None:
    m = re.match(r"^\s*v?(\d+)", str(version or ""))
    return int(m[1]) if m else None


def diff(old: dict, new: dict) -> list[Change]:
    out: list[Change] = []
    olds = {o.get("name"): o for o in old.get("schema") or [] if isinstance(o, dict)}
    news = {o.get("name"): o for o in new.get("schema") or [] if isinstance(o, dict)}
    for name in olds.keys() - news.keys():
        out.append(Change(f"schema.{name}", "dataset_removed", True, f"dataset {name} was removed"))
    for name in news.keys() - olds.keys():
        out.append(Change(f"schema.{name}", "dataset_added", False, f"dataset {name} was added"))
    for name in sorted(olds.keys() & news.keys()):
        o, n = olds[name], news[name]
        op = {p.get("name"): p for p in o.get("properties") or [] if isinstance(p, dict)}
        np_ = {p.get("name"): p for p in n.get("properties") or [] if isinstance(p, dict)}
        removed, added = op.keys() - np_.keys(), np_.keys() - op.keys()
        renamed = {}
        for r in removed:  # same physical column under a new name, or the same type at the same place
            for a in added:
                po, pn = op[r], np_[a]
                if (po.get("physicalName") or r) == (pn.get("physicalName") or a) or (
                        po.get("physicalName") and po.get("physicalName") == pn.get("physicalName")):
                    renamed[r] = a
        for r in sorted(removed):
            if r in renamed:
                out.append(Change(f"schema.{name}.{r}", "column_renamed", True,
                                  f"column {name}.{r} was renamed to {renamed[r]}"))
            else:
                out.append(Change(f"schema.{name}.{r}", "column_removed", True, f"column {name}.{r} was removed"))
        for a in sorted(added - set(renamed.values())):
            req = " (required)" if np_[a].get("required") else ""
            out.append(Change(f"schema.{name}.{a}", "column_added", False, f"column {name}.{a} was added{req}"))
        for c in sorted(op.keys() & np_.keys()):
            po, pn = op[c], np_[c]
            path = f"schema.{name}.{c}"
            to, tn = _type(po), _type(pn)
            if to != tn:
                wide = widens(to, tn)
                out.append(Change(path, "type_widened" if wide else "type_narrowed", not wide,
                                  f"type of {name}.{c} changed from {to} to {tn}"))
            if pn.get("required") and not po.get("required"):
                out.append(Change(path, "required_added", True, f"{name}.{c} became required"))
            if po.get("required") and not pn.get("required"):
                out.append(Change(path, "required_removed", False, f"{name}.{c} is no longer required"))
            for key in ("primaryKey", "unique"):
                if bool(po.get(key)) != bool(pn.get(key)):
                    out.append(Change(path, "key_changed", True, f"{key} of {name}.{c} changed from "
                                      f"{bool(po.get(key))} to {bool(pn.get(key))}"))
            eo, en = _enum(po), _enum(pn)
            if eo is not None and en is not None:
                if eo - en:
                    out.append(Change(path, "enum_values_removed", True, f"values {sorted(eo - en)} of {name}.{c} "
                                      "were removed"))
                if en - eo:
                    out.append(Change(path, "enum_values_added", False, f"values {sorted(en - eo)} of {name}.{c} "
                                      "were added"))
            elif eo is None and en is not None:
                out.append(Change(path, "enum_added", True, f"{name}.{c} is now limited to {sorted(en)}"))
            if po.get("physicalName") != pn.get("physicalName"):
                out.append(Change(path, "physical_name_changed", False, f"physicalName of {name}.{c} changed"))
            if po.get("classification") != pn.get("classification"):
                out.append(Change(path, "classification_changed", False, f"classification of {name}.{c} changed "
                                  f"from {po.get('classification')} to {pn.get('classification')}"))
            if po.get("description") != pn.get("description"):
                out.append(Change(path, "description_changed", False, f"description of {name}.{c} changed"))
    return out


def diff_files(old: str | Path, new: str | Path) -> dict:
    a = yaml.safe_load(Path(old).read_text())
    b = yaml.safe_load(Path(new).read_text())
    changes = diff(a, b)
    breaking = any(c.breaking for c in changes)
    mo, mn = _major(a.get("version")), _major(b.get("version"))
    needs_major = breaking and (mo is None or mn is None or mn <= mo)
    return {"old_version": a.get("version"), "new_version": b.get("version"), "breaking": breaking,
            "needs_major_version": needs_major, "changes": [c.to_dict() for c in changes]}
