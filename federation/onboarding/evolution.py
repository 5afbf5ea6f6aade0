"""Evolution: classify each change between two versions of an ODCS contract or of an ODPS product.

Each change carries the semantic-version bump it needs (``major``, ``minor``, ``patch``), whether it
breaks consumers, and whether the governance team must review it.

Breaking (major: a consumer's query, access or assumption can fail): a dataset or column removed or
renamed, a type narrowed or changed incompatibly, ``required`` added, ``primaryKey``/``unique``
changed, enum values removed (ODCS 3.2 ``enum``, ``logicalTypeOptions.enum``, an invalidValues rule's
``validValues``), a classification tightened (readers lose access) or changed to an unknown level, a
quality rule removed, an SLA weakened (retention shorter, latency or frequency longer, availability
lower, time of availability later, end of support earlier) or removed, a server removed or changed
(type, path, host, ...), a role removed or its access changed, for products an output port removed or
pointed at another contract / major version. A status moving on (active -> deprecated -> retired) is
flagged breaking but is a lifecycle change of the version itself (patch).
Minor (additive): datasets, columns, enum values, quality rules, SLA properties, servers, roles, ports
added; types widened; ``required`` dropped; SLAs strengthened; a classification loosened (also flagged
for governance review); quality rules changed. Patch: descriptions, tags, approvers (review), and
other documentation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..catalog import types as ctypes

SYNONYMS = {"INT": "INTEGER", "INT4": "INTEGER", "INT8": "BIGINT", "INT2": "SMALLINT", "LONG": "BIGINT",
            "TEXT": "VARCHAR", "STRING": "VARCHAR", "FLOAT8": "DOUBLE", "REAL": "FLOAT", "FLOAT4": "FLOAT",
            "NUMERIC": "DECIMAL(18,3)", "BOOL": "BOOLEAN"}
INT_RANK = {"TINYINT": 1, "SMALLINT": 2, "INTEGER": 3, "BIGINT": 4, "HUGEINT": 5}

BUMPS = ("none", "patch", "minor", "major")
CLASS_RANK = {"public": 0, "internal": 1, "confidential": 2, "sensitive": 3, "pii": 3, "personal": 3,
              "restricted": 4, "secret": 5}
STATUS_RANK = {"proposed": 0, "draft": 1, "development": 1, "active": 2, "deprecated": 3, "retired": 4}
SECONDS = {"s": 1, "sec": 1, "second": 1, "seconds": 1, "m": 60, "min": 60, "minute": 60, "minutes": 60,
           "h": 3600, "hr": 3600, "hour": 3600, "hours": 3600, "d": 86400, "day": 86400, "days": 86400,
           "w": 604800, "week": 604800, "weeks": 604800, "mo": 2629800, "month": 2629800, "months": 2629800,
           "y": 31557600, "yr": 31557600, "year": 31557600, "years": 31557600}
# SLA properties whose bigger value is worse for consumers (durations) or better (retention, availability)
WORSE_WHEN_BIGGER = {"latency", "frequency", "timeofavailability"}
BETTER_WHEN_BIGGER = {"retention", "availability", "endofsupport", "endoflife"}
SERVER_DOC_KEYS = {"description", "environment"}


class DiffInputError(ValueError):
    """A file ``quanta diff`` cannot compare (unreadable, invalid YAML, not a contract/product)."""


@dataclass
class Change:
    path: str
    kind: str  # e.g. column_removed, type_narrowed
    breaking: bool
    message: str
    bump: str = ""  # major | minor | patch (default: major when breaking, else minor)
    review: bool = False  # the governance team must review it

    def __post_init__(self) -> None:
        if not self.bump:
            self.bump = "major" if self.breaking else "minor"

    def to_dict(self) -> dict:
        return {"path": self.path, "kind": self.kind, "breaking": self.breaking, "bump": self.bump,
                "review": self.review, "message": self.message}


def _list(v) -> list:
    return v if isinstance(v, list) else []


def _dict(v) -> dict:
    return v if isinstance(v, dict) else {}


def _named(items, key: str = "name") -> dict:
    """The mappings of a list keyed by ``key`` (as text), skipping anything else."""
    return {str(i.get(key)): i for i in _list(items) if isinstance(i, dict) and i.get(key) is not None}


def _type(prop: dict) -> str:
    lt, pt = prop.get("logicalType"), prop.get("physicalType")
    if not isinstance(lt, (str, type(None))) or not isinstance(pt, (str, type(None))):
        return f"{lt}/{pt}"
    try:
        t, _ = ctypes.declared_type(lt, pt, _dict(prop.get("items")) or None)
    except (TypeError, ValueError, AttributeError, KeyError):  # a malformed type: compared as written
        return f"{lt}/{pt}".upper()
    t = str(t).upper().replace(" ", "")
    return SYNONYMS.get(t, t)


def widens(old: str, new: str) -> bool:
    """True when every value of ``old`` fits ``new`` unchanged."""
    if old == new:
        return True
    if new in ("VARCHAR", "TEXT", "STRING"):
        return old.startswith(("VARCHAR", "DECIMAL")) or old in INT_RANK or old in (
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
    return old == "DATE" and new.startswith("TIMESTAMP")


def _enum(prop: dict) -> set | None:
    values = None
    for rule in _list(prop.get("quality")):
        if isinstance(rule, dict) and rule.get("metric") == "invalidValues":
            vv = _dict(rule.get("arguments")).get("validValues") or rule.get("validValues")
            if isinstance(vv, list):
                values = set(map(str, vv)) if values is None else values & set(map(str, vv))
    opts = _dict(prop.get("logicalTypeOptions")).get("enum")
    if isinstance(prop.get("enum"), list):  # ODCS 3.2: [{value: ...}] (or plain values)
        opts = [e.get("value") if isinstance(e, dict) else e for e in prop["enum"]]
    if isinstance(opts, list):
        values = set(map(str, opts)) if values is None else values & set(map(str, opts))
    return values


def _major(version) -> int | None:
    m = re.match(r"^\s*v?(\d+)", str(version or ""))
    return int(m[1]) if m else None




def _semver(version) -> tuple[int, int, int] | None:
    m = re.fullmatch(r"\s*v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:[-+][0-9A-Za-z.+-]*)?\s*", str(version or ""))
    return (int(m[1]), int(m[2] or 0), int(m[3] or 0)) if m else None


def declared_bump(old_version, new_version) -> str:
    """The bump the two declared versions make: none, patch, minor, major, downgrade or unknown."""
    a, b = _semver(old_version), _semver(new_version)
    if a is None or b is None:
        return "unknown"
    if b < a:
        return "downgrade"
    for i, name in enumerate(("major", "minor", "patch")):
        if b[i] > a[i]:
            return name
    return "none"


def _by(items, key: str) -> dict:
    return _named(items, key)


def _text(v) -> str:
    return "nothing" if v is None else str(v)


def _quality(rules, where: str) -> dict:
    """Quality rules keyed by their name, else their metric/rule and the column they name."""
    out = {}
    for i, r in enumerate(_list(rules)):
        if not isinstance(r, dict):
            continue
        key = str(r.get("name") or r.get("id") or "") or ":".join(str(r.get(k)) for k in ("metric", "rule", "type", "column")
                                                       if r.get(k) is not None) or f"#{i}"
        while key in out:
            key += "'"
        out[key] = r
    return out


def _diff_quality(old, new, where: str, label: str, out: list) -> None:
    qo, qn = _quality(old, where), _quality(new, where)
    for k in sorted(qo.keys() - qn.keys()):
        out.append(Change(f"{where}.quality.{k}", "quality_rule_removed", True,
                          f"quality rule {k} of {label} was removed (consumers lose that guarantee)"))
    for k in sorted(qn.keys() - qo.keys()):
        out.append(Change(f"{where}.quality.{k}", "quality_rule_added", False,
                          f"quality rule {k} of {label} was added"))
    for k in sorted(qo.keys() & qn.keys()):
        if qo[k] != qn[k]:
            out.append(Change(f"{where}.quality.{k}", "quality_rule_changed", False,
                              f"quality rule {k} of {label} changed"))


def _classification(old, new, path: str, label: str, out: list) -> None:
    lo, ln = (str(old).lower() if old else None), (str(new).lower() if new else None)
    if lo == ln:
        return
    ro = CLASS_RANK.get(lo, 0) if lo is None or lo in CLASS_RANK else None
    rn = CLASS_RANK.get(ln, 0) if ln is None or ln in CLASS_RANK else None
    msg = f"classification of {label} changed from {_text(old)} to {_text(new)}"
    if ro is None or rn is None:
        out.append(Change(path, "classification_changed", True, msg + " (unknown level: treated as tighter)",
                          review=True))
    elif rn > ro:
        out.append(Change(path, "classification_tightened", True, msg + " (readers without access to "
                          f"{_text(new)} data lose access)", review=True))
    elif rn < ro:
        out.append(Change(path, "classification_loosened", False, msg + " (the governance team must approve)",
                          review=True))


def _seconds(entry: dict) -> float | None:
    v, unit = entry.get("value"), str(entry.get("unit") or "").strip().lower()
    if isinstance(v, bool):
        return None
    if isinstance(v, str):  # "1h", "48 h", "99.9%", "07:00Z"
        m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*([a-z]*)\s*$", v.lower())
        if not m:
            return None
        v, unit = float(m[1]), m[2] or unit
    if not isinstance(v, (int, float)):
        return None
    return float(v) * SECONDS[unit] if unit in SECONDS else (float(v) if not unit else None)


def _clock(v) -> float | None:
    if isinstance(v, int):  # YAML reads 07:00 unquoted as a sexagesimal number of minutes
        return float(v) * 60
    m = re.match(r"^\s*(\d{1,2}):(\d{2})(?::(\d{2}))?", str(v or ""))
    return int(m[1]) * 3600 + int(m[2]) * 60 + int(m[3] or 0) if m else None


def _percent(v) -> float | None:
    m = re.match(r"^\s*(\d+(?:\.\d+)?)\s*%?\s*$", str(v))
    return float(m[1]) if m and not isinstance(v, bool) else None


def _sla_key(entry: dict) -> str:
    key = str(entry.get("property"))
    return key + (f"[{entry['element']}]" if entry.get("element") else "")


def _show(e: dict) -> str:
    return f"{e.get('value')}{(' ' + str(e['unit'])) if e.get('unit') else ''}"


def _diff_sla(old, new, out: list) -> None:
    so, sn = _by_sla(old), _by_sla(new)
    for k in sorted(so.keys() - sn.keys()):
        out.append(Change(f"slaProperties.{k}", "sla_removed", True, f"SLA {k} ({_show(so[k])}) was removed"))
    for k in sorted(sn.keys() - so.keys()):
        out.append(Change(f"slaProperties.{k}", "sla_added", False, f"SLA {k} ({_show(sn[k])}) was added"))
    for k in sorted(so.keys() & sn.keys()):
        eo, en = so[k], sn[k]
        if (eo.get("value"), eo.get("unit")) == (en.get("value"), en.get("unit")):
            if eo != en:
                out.append(Change(f"slaProperties.{k}", "sla_documentation_changed", False,
                                  f"SLA {k} changed (not its value)", bump="patch"))
            continue
        prop = str(eo.get("property")).lower()
        if prop == "timeofavailability":
            a, b = _clock(eo.get("value")), _clock(en.get("value"))
        elif prop == "availability":
            a, b = _percent(eo.get("value")), _percent(en.get("value"))
        elif prop in ("endofsupport", "endoflife", "generalavailability"):
            a, b = str(eo.get("value")), str(en.get("value"))
        else:
            a, b = _seconds(eo), _seconds(en)
        msg = f"SLA {k} changed from {_show(eo)} to {_show(en)}"
        if a is None or b is None:
            out.append(Change(f"slaProperties.{k}", "sla_changed", True, msg + " (not comparable: treated as weaker)"))
        elif prop in WORSE_WHEN_BIGGER or prop in BETTER_WHEN_BIGGER:
            weaker = b > a if prop in WORSE_WHEN_BIGGER else b < a
            if a != b:
                out.append(Change(f"slaProperties.{k}", "sla_weakened" if weaker else "sla_strengthened", weaker,
                                  msg))
            else:
                out.append(Change(f"slaProperties.{k}", "sla_restated", False, msg + " (same value)", bump="patch"))
        else:
            out.append(Change(f"slaProperties.{k}", "sla_changed", False, msg))


def _by_sla(entries) -> dict:
    out = {}
    for e in _list(entries):
        if isinstance(e, dict) and e.get("property"):
            out[_sla_key(e)] = e
    return out


def _diff_status(old: dict, new: dict, out: list) -> None:
    so, sn = old.get("status"), new.get("status")
    if so == sn:
        return
    ro, rn = STATUS_RANK.get(str(so).lower()), STATUS_RANK.get(str(sn).lower())
    later = ro is None or rn is None or rn > ro
    out.append(Change("status", "status_changed", later and (rn or 0) >= STATUS_RANK["deprecated"],
                      f"status changed from {_text(so)} to {_text(sn)}"
                      + (" (consumers must move to another version)"
                         if later and (rn or 0) >= STATUS_RANK["deprecated"] else ""), bump="patch"))


def _diff_servers(old, new, out: list) -> None:
    so, sn = _by(old, "server"), _by(new, "server")
    for k in sorted(so.keys() - sn.keys()):
        out.append(Change(f"servers.{k}", "server_removed", True, f"server {k} was removed"))
    for k in sorted(sn.keys() - so.keys()):
        out.append(Change(f"servers.{k}", "server_added", False, f"server {k} was added"))
    for k in sorted(so.keys() & sn.keys()):
        a, b = so[k], sn[k]
        for field in sorted(set(a) | set(b)):
            if field == "server" or a.get(field) == b.get(field):
                continue
            doc = field in SERVER_DOC_KEYS
            out.append(Change(f"servers.{k}.{field}", "server_changed", not doc,
                              f"{field} of server {k} changed from {_text(a.get(field))} to {_text(b.get(field))}",
                              bump="patch" if doc else ""))


def _approvers(v) -> set:
    if isinstance(v, list):
        return set(map(str, v))
    return {s.strip() for s in str(v).split(",") if s.strip()} if v else set()


def _diff_roles(old, new, out: list) -> None:
    ro, rn = _by(old, "role"), _by(new, "role")
    for k in sorted(ro.keys() - rn.keys()):
        out.append(Change(f"roles.{k}", "role_removed", True, f"role {k} was removed (its holders lose access)",
                          review=True))
    for k in sorted(rn.keys() - ro.keys()):
        out.append(Change(f"roles.{k}", "role_added", False, f"role {k} was added ({rn[k].get('access')})",
                          review=True))
    for k in sorted(ro.keys() & rn.keys()):
        a, b = ro[k], rn[k]
        if a.get("access") != b.get("access"):
            out.append(Change(f"roles.{k}.access", "role_access_changed", True, f"access of role {k} changed from "
                              f"{_text(a.get('access'))} to {_text(b.get('access'))}", review=True))
        for level in ("firstLevelApprovers", "secondLevelApprovers"):
            if _approvers(a.get(level)) != _approvers(b.get(level)):
                out.append(Change(f"roles.{k}.{level}", "approvers_changed", False,
                                  f"{level} of role {k} changed from {_text(a.get(level))} to "
                                  f"{_text(b.get(level))}", bump="patch", review=True))


def diff(old: dict, new: dict) -> list[Change]:
    """Every change between two ODCS contracts (or contract snapshots with a subset of the sections)."""
    out: list[Change] = []
    olds, news = _named(old.get("schema")), _named(new.get("schema"))
    for name in sorted(olds.keys() - news.keys(), key=str):
        out.append(Change(f"schema.{name}", "dataset_removed", True, f"dataset {name} was removed"))
    for name in sorted(news.keys() - olds.keys(), key=str):
        out.append(Change(f"schema.{name}", "dataset_added", False, f"dataset {name} was added"))
    for name in sorted(olds.keys() & news.keys(), key=str):
        o, n = olds[name], news[name]
        _classification(o.get("classification"), n.get("classification"), f"schema.{name}", f"dataset {name}", out)
        _diff_quality(o.get("quality"), n.get("quality"), f"schema.{name}", f"dataset {name}", out)
        if o.get("description") != n.get("description"):
            out.append(Change(f"schema.{name}", "description_changed", False, f"description of {name} changed",
                              bump="patch"))
        op, np_ = _named(o.get("properties")), _named(n.get("properties"))
        removed, added = op.keys() - np_.keys(), np_.keys() - op.keys()
        renamed = {}
        for r in removed:  # same physical column under a new name
            for a in added:
                po, pn = op[r], np_[a]
                if (po.get("physicalName") or r) == (pn.get("physicalName") or a) or (
                        po.get("physicalName") and po.get("physicalName") == pn.get("physicalName")):
                    renamed[r] = a
        for r in sorted(removed, key=str):
            if r in renamed:
                out.append(Change(f"schema.{name}.{r}", "column_renamed", True,
                                  f"column {name}.{r} was renamed to {renamed[r]}"))
            else:
                out.append(Change(f"schema.{name}.{r}", "column_removed", True, f"column {name}.{r} was removed"))
        for a in sorted(added - set(renamed.values()), key=str):
            req = np_[a].get("required")
            out.append(Change(f"schema.{name}.{a}", "column_added", False,
                              f"column {name}.{a} was added{' (required)' if req else ''}"))
        for c in sorted(op.keys() & np_.keys(), key=str):
            _diff_column(name, c, op[c], np_[c], out)
    _diff_id(old, new, out)
    if "slaProperties" in old or "slaProperties" in new:
        _diff_sla(old.get("slaProperties"), new.get("slaProperties"), out)
    if "status" in old or "status" in new:
        _diff_status(old, new, out)
    if "servers" in old or "servers" in new:
        _diff_servers(old.get("servers"), new.get("servers"), out)
    if "roles" in old or "roles" in new:
        _diff_roles(old.get("roles"), new.get("roles"), out)
    return out


def _diff_column(name: str, c: str, po: dict, pn: dict, out: list) -> None:
    path, label = f"schema.{name}.{c}", f"{name}.{c}"
    to, tn = _type(po), _type(pn)
    if to != tn:
        wide = widens(to, tn)
        out.append(Change(path, "type_widened" if wide else "type_narrowed", not wide,
                          f"type of {label} changed from {to} to {tn}"))
    if pn.get("required") and not po.get("required"):
        out.append(Change(path, "required_added", True, f"{label} became required"))
    if po.get("required") and not pn.get("required"):
        out.append(Change(path, "required_removed", False, f"{label} is no longer required"))
    if po.get("primaryKey") and pn.get("primaryKey") and po.get("primaryKeyPosition") != pn.get("primaryKeyPosition"):
        out.append(Change(path, "key_changed", True, f"primaryKeyPosition of {label} changed from "
                          f"{_text(po.get('primaryKeyPosition'))} to {_text(pn.get('primaryKeyPosition'))}"))
    for key in ("primaryKey", "unique"):
        if bool(po.get(key)) != bool(pn.get(key)):
            out.append(Change(path, "key_changed", True, f"{key} of {label} changed from "
                              f"{bool(po.get(key))} to {bool(pn.get(key))}"))
    eo, en = _enum(po), _enum(pn)
    if eo is not None and en is not None:
        if eo - en:
            out.append(Change(path, "enum_values_removed", True, f"values {sorted(eo - en)} of {label} were removed"))
        if en - eo:
            out.append(Change(path, "enum_values_added", False, f"values {sorted(en - eo)} of {label} were added"))
    elif eo is None and en is not None:
        out.append(Change(path, "enum_added", True, f"{label} is now limited to {sorted(en)}"))
    elif eo is not None and en is None:
        out.append(Change(path, "enum_removed", False, f"{label} is no longer limited to {sorted(eo)}"))
    if po.get("physicalName") != pn.get("physicalName"):
        out.append(Change(path, "physical_name_changed", False, f"physicalName of {label} changed", bump="patch"))
    _classification(po.get("classification"), pn.get("classification"), path, label, out)
    if bool(po.get("deprecated")) != bool(pn.get("deprecated")):
        out.append(Change(path, "deprecated_changed", False, f"{label} is {'now' if pn.get('deprecated') else 'no longer'}"
                          " deprecated", bump="minor"))
    qa = [r for r in _list(po.get("quality")) if not (isinstance(r, dict) and r.get("metric") == "invalidValues")]
    qb = [r for r in _list(pn.get("quality")) if not (isinstance(r, dict) and r.get("metric") == "invalidValues")]
    _diff_quality(qa, qb, path, label, out)
    if po.get("description") != pn.get("description"):
        out.append(Change(path, "description_changed", False, f"description of {label} changed", bump="patch"))


def diff_products(old: dict, new: dict) -> list[Change]:
    """Changes between two ODPS products: ports added or removed or re-pointed, and the status."""
    out: list[Change] = []
    for side in ("inputPorts", "outputPorts", "managementPorts"):
        po, pn = _by(old.get(side), "name"), _by(new.get(side), "name")
        label = {"inputPorts": "input port", "outputPorts": "output port", "managementPorts": "management port"}[side]
        out_port = side == "outputPorts"
        for k in sorted(po.keys() - pn.keys()):
            out.append(Change(f"{side}.{k}", f"{side[:-5]}_port_removed", out_port,
                              f"{label} {k} was removed" + (" (its consumers lose it)" if out_port else "")))
        for k in sorted(pn.keys() - po.keys()):
            out.append(Change(f"{side}.{k}", f"{side[:-5]}_port_added", False, f"{label} {k} was added"))
        for k in sorted(po.keys() & pn.keys()):
            a, b = po[k], pn[k]
            if a.get("contractId") != b.get("contractId"):
                out.append(Change(f"{side}.{k}.contractId", "port_contract_changed", out_port,
                                  f"contract of {label} {k} changed from {_text(a.get('contractId'))} to "
                                  f"{_text(b.get('contractId'))}"))
            va, vb = _major(a.get("version")), _major(b.get("version"))
            if a.get("version") != b.get("version"):
                major = va is not None and vb is not None and vb != va
                out.append(Change(f"{side}.{k}.version", "port_version_changed", out_port and major,
                                  f"version of {label} {k} changed from {_text(a.get('version'))} to "
                                  f"{_text(b.get('version'))}"))
            rest = {f for f in set(a) | set(b) if f not in ("name", "contractId", "version") and a.get(f) != b.get(f)}
            if rest:
                out.append(Change(f"{side}.{k}", "port_changed", False,
                                  f"{label} {k} changed ({', '.join(sorted(rest))})", bump="patch"))
    _diff_id(old, new, out)
    _diff_status(old, new, out)
    return out


def _diff_id(old: dict, new: dict, out: list) -> None:
    if old.get("id") and new.get("id") and old.get("id") != new.get("id"):
        out.append(Change("id", "id_changed", True, f"id changed from {old.get('id')} to {new.get('id')} (references "
                          "to the old id break)"))


def kind_of(doc, name: str) -> str:
    """``contract`` (ODCS) or ``product`` (ODPS); raises ``DiffInputError`` for anything else."""
    if not isinstance(doc, dict):
        raise DiffInputError(f"{name}: not a data contract nor a data product (a YAML "
                             f"{type(doc).__name__ if doc is not None else 'empty document'}, not a mapping)")
    kind = str(doc.get("kind") or "")
    if kind == "DataContract" or (not kind and "schema" in doc and "apiVersion" in doc):
        return "contract"
    if kind == "DataProduct" or (not kind and ("outputPorts" in doc or "inputPorts" in doc)):
        return "product"
    raise DiffInputError(f"{name}: not a data contract (kind: DataContract) nor a data product (kind: DataProduct)"
                         + (f"; kind is {kind!r}" if kind else ""))


def read_document(path: str | Path) -> dict:
    from ..catalog.yamlio import YamlError, load_yaml

    path = Path(path)
    try:
        doc, _ = load_yaml(path)
    except OSError as e:
        raise DiffInputError(f"{path}: cannot be read ({e.strerror or e})") from None
    except YamlError as e:
        raise DiffInputError(f"{path}{f':{e.line}' if e.line else ''}: {e}") from None
    return doc


def diff_files(old: str | Path, new: str | Path) -> dict:
    """Compare two files of the same kind; the result is what ``quanta diff --json`` prints."""
    a, b = read_document(old), read_document(new)
    ka, kb = kind_of(a, str(old)), kind_of(b, str(new))
    if ka != kb:
        raise DiffInputError(f"{old} is a data {ka} but {new} is a data {kb}: compare two files of the same kind")
    changes = diff(a, b) if ka == "contract" else diff_products(a, b)
    needed = max((c.bump for c in changes), key=BUMPS.index, default="none")
    declared = declared_bump(a.get("version"), b.get("version"))
    ok = declared in BUMPS and BUMPS.index(declared) >= BUMPS.index(needed)
    breaking = any(c.breaking for c in changes)
    return {"kind": ka, "old": {"file": str(old), "version": a.get("version")},
            "new": {"file": str(new), "version": b.get("version")},
            "old_version": a.get("version"), "new_version": b.get("version"),
            "breaking": breaking, "required_bump": needed, "declared_bump": declared, "version_ok": ok,
            "needs_major_version": needed == "major" and not ok,
            "needs_review": any(c.review for c in changes),
            "changes": [c.to_dict() for c in changes]}


# -- the gates: publishing a version, validating a mesh --------------------------------------------------------

# what a published version keeps of its contract besides the dataset's schema (compared at the next publish)
SNAPSHOT_SECTIONS = ("slaProperties", "status", "servers", "roles")


def contract_snapshot(dataset: dict, contract: dict) -> dict:
    """What a version is published under: the contract's id and version, this dataset's schema, and the
    contract's SLAs, status, servers and roles (every section a consumer's assumption rests on)."""
    snap = {"id": contract.get("id"), "version": contract.get("version"), "schema": [dataset]}
    for key in SNAPSHOT_SECTIONS:
        if key in contract:
            snap[key] = contract[key]
    return snap


@dataclass
class Verdict:
    """A contract compared with its previous version: every change, the bump they need, and the refusal."""

    changes: list[Change]
    required: str  # none | patch | minor | major
    old_version: object
    new_version: object

    @property
    def refused(self) -> bool:
        """A change that needs a major version, without a new major version."""
        if self.required != "major":
            return False
        old, new = _major(self.old_version), _major(self.new_version)
        return old is None or new is None or new <= old

    @property
    def declared(self) -> str:
        return declared_bump(self.old_version, self.new_version)

    @property
    def under_declared(self) -> bool:
        """The versions declare a smaller bump than the changes need (a downgrade or no version: too)."""
        declared = self.declared
        return self.required != "none" and (declared not in BUMPS or BUMPS.index(declared) < BUMPS.index(self.required))

    def warning(self, since: str) -> str:
        first = self.changes[0].message if self.changes else ""
        return (f"the contract changed since {since} ({first}" + (f" and {len(self.changes) - 1} more" if
                len(self.changes) > 1 else "") + f"), which needs a {self.required} version, but its version went "
                f"{self.old_version} -> {self.new_version}")

    @property
    def needed_version(self) -> str:
        return f"{(_major(self.old_version) or 0) + 1}.0.0"

    def refusal(self, since: str, advice: str = "publish it as version") -> str:
        """The reason of a refusal: the changes, the versions, and the version to declare."""
        major = [c for c in self.changes if c.bump == "major"]
        return (f"the contract changed in a breaking way since {since} (" + "; ".join(c.message for c in major[:5])
                + (f"; and {len(major) - 5} more" if len(major) > 5 else "")
                + f") without a new major version ({self.old_version} -> {self.new_version}); {advice} "
                f"{self.needed_version}")


def compare(before: dict, after: dict, kind: str = "contract") -> Verdict:
    """Every change from ``before`` to ``after``, always (whatever changed, the version or not). Sections
    an older snapshot did not keep are not compared (a snapshot written before they were kept)."""
    if kind == "contract" and "schema" in before and "kind" not in before:  # a snapshot: compare its sections
        after = {k: v for k, v in after.items() if k in before or k in ("id", "version", "schema")}
    changes = diff(before, after) if kind == "contract" else diff_products(before, after)
    required = max((c.bump for c in changes), key=BUMPS.index, default="none")
    return Verdict(changes, required, before.get("version"), after.get("version"))


def mesh_problems(platform) -> list:
    """``quanta validate``'s evolution check: each contract compared with its last published version (the
    snapshot kept with the dataset's newest kept version in the control store) and, for a mesh in a git
    work tree, with the contract file's copy at HEAD (what was last committed). A change that needs a major
    version without a new major version is an error naming the file, the change and the version to declare."""
    from ..errors import Problem
    from .serving import KEPT_STATUSES
    from .store import Store

    mesh = platform.mesh
    out: list[Problem] = []
    flagged: set[str] = set()
    if Store.exists(platform.state_dir):
        from .common import store_of

        store = store_of(platform)
        for ds in mesh.datasets():
            contract = mesh.contracts.get(ds.contract_id) if ds.contract_id else None
            if contract is None:
                continue
            kept = [v for v in store.versions(ds.quantum, ds.name) if v.status in KEPT_STATUSES]
            before = store.contract_snapshot(ds.quantum, ds.name, kept[-1].version) if kept else None
            if before is None:
                continue
            verdict = compare(before, contract_snapshot(ds.raw, contract.raw))
            if verdict.refused:
                out.append(_problem(contract, verdict, f"{ds.qualified_name} v{kept[-1].version} was published "
                                    f"(contract version {before.get('version')})", ds.quantum))
                flagged.add(contract.file)
    for contract in mesh.contracts.values():
        if contract.file in flagged:
            continue
        file = Path(contract.file)
        old = committed_document(file if file.is_absolute() else Path(mesh.path) / file)
        if not isinstance(old, dict) or kind_of_or_none(old) != "contract":
            continue
        verdict = compare(old, contract.as_written)
        if verdict.refused:
            out.append(_problem(contract, verdict, "the copy committed at git HEAD", contract.quantum))
    return out


def _problem(contract, verdict: Verdict, since: str, quantum):
    from ..errors import Problem

    first = next(c for c in verdict.changes if c.bump == "major")
    return Problem(contract.file, first.path, verdict.refusal(since, "declare version"), None, quantum)


def kind_of_or_none(doc) -> str | None:
    try:
        return kind_of(doc, "")
    except DiffInputError:
        return None


def committed_document(path: Path) -> dict | None:
    """The YAML document of ``path`` as committed at git HEAD; None when the file is not in a git work tree,
    not committed, unchanged since, or git is not there."""
    import shutil
    import subprocess

    from ..catalog.yamlio import YamlError, parse_yaml

    git = shutil.which("git")
    if git is None or not path.is_file():
        return None
    folder = str(path.resolve().parent)
    try:
        top = subprocess.run([git, "-C", folder, "rev-parse", "--show-toplevel"], capture_output=True, text=True,
                             timeout=10)
        if top.returncode != 0:
            return None
        rel = path.resolve().relative_to(Path(top.stdout.strip()).resolve()).as_posix()
        shown = subprocess.run([git, "-C", folder, "show", f"HEAD:{rel}"], capture_output=True, timeout=10)
    except (OSError, ValueError, subprocess.SubprocessError):
        return None
    if shown.returncode != 0 or shown.stdout == path.read_bytes():
        return None
    try:
        doc, _ = parse_yaml(shown.stdout)
    except YamlError:
        return None  # the committed copy was broken: nothing to compare with
    return doc
