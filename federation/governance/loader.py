"""Read the mesh's governance: ``governance.yaml`` (global, the governance team's), the products'
local policies (ODPS custom property ``policies``), and grants implied by the contracts' ODCS
``roles`` and by ownership.

Governance fails closed: a problem in a global policy stops the mesh from loading (a policy that is
not understood must never be skipped); a problem in a local policy leaves its quantum out.
Expressions are checked twice: here for their shape (parse, no subqueries, aggregates, windows or
functions outside the allow-list, ``principal.<attribute>`` only in row filters), and by
``check_expressions`` against the engine for columns and result types.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import jsonschema
import sqlglot
import sqlglot.expressions as exp
from sqlglot.errors import ParseError

from ..catalog.model import Mesh
from ..catalog.model import custom_property as _custom
from ..catalog.loader import read_mesh_file
from ..catalog.yamlio import Positions, YamlError, format_path, parse_yaml
from ..errors import CatalogError, Problem
from ..rewrite import functions
from . import oidc
from .policies import KINDS, MASKS, Condition, Governance, Grant, Policy, Selector
from .principals import Principal

_LIST = {"type": "array", "items": {"type": "string"}}
_STR_OR_LIST = {"anyOf": [{"type": "string"}, _LIST]}
_CONDITION = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"roles": _LIST, "groups": _LIST, "users": _LIST,
                   "attributes": {"type": "object", "additionalProperties": _STR_OR_LIST}},
}
_SELECTOR = {
    "type": "object",
    "additionalProperties": False,
    "minProperties": 1,
    "properties": {k: _STR_OR_LIST for k in ("classification", "tag", "column", "dataset", "quantum")},
}
POLICY_SCHEMA = {
    "type": "object",
    "required": ["name", "kind", "on"],
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "kind": {"enum": list(KINDS)},
        "on": _SELECTOR,
        "mask": {"anyOf": [{"enum": [m for m in MASKS if m != "sql"]},
                           {"type": "object", "required": ["type"],
                            "properties": {"type": {"enum": list(MASKS)}, "sql": {"type": "string"},
                                           "keep_last": {"type": "integer", "minimum": 0},
                                           "digits": {"type": "integer"}, "with": {"type": "string"}},
                            "additionalProperties": False}]},
        "filter": {"type": "string", "minLength": 1},
        "unless": _CONDITION,
    },
}
_CLAIM = {"type": "string", "minLength": 1, "pattern": r"^[^\s]+$"}  # a claim's name or dotted path
ISSUER_SCHEMA = {  # an OpenID Connect issuer whose JWTs identify principals (governance/oidc.py)
    "type": "object",
    "required": ["issuer", "audience"],  # no jwks_url: discovered from the issuer's OpenID configuration
    "additionalProperties": False,
    "properties": {
        "issuer": {"type": "string", "minLength": 1},
        "audience": {"anyOf": [{"type": "string", "minLength": 1},
                               {"type": "array", "minItems": 1, "items": {"type": "string", "minLength": 1}}]},
        "jwks_url": {"type": "string", "minLength": 1},
        "description": {"type": "string"},
        "principal_claim": _CLAIM, "roles_claim": _CLAIM, "groups_claim": _CLAIM, "principal_prefix": {"type": "string"},
        "attribute_claims": {"type": "object", "additionalProperties": _CLAIM,
                             "propertyNames": {"not": {"enum": list(oidc.RESERVED_ATTRIBUTES)}}},
        "algorithms": {"type": "array", "minItems": 1, "uniqueItems": True, "items": {"enum": list(oidc.ASYMMETRIC)}},
        "leeway_seconds": {"type": "number", "minimum": 0, "maximum": 600},
        "jwks_cache_seconds": {"type": "number", "minimum": 0},
        "jwks_refresh_seconds": {"type": "number", "minimum": 0},
    },
}
GOVERNANCE_SCHEMA = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "settings": {"type": "object", "properties": {
            "auditor_role": {"type": "string"}, "data_engineer_role": {"type": "string"},
            "mask_salt_env": {"type": "string"},
            "owners_can_read": {"type": "boolean"},
            # lineage kinds that lower a classification without a declaration (lineage.declassify): count or none
            "anonymising_transformations": {"type": "array", "items": {"enum": ["count"]}}}},
        "roles": {"type": "array", "items": {"type": "object", "required": ["name"], "additionalProperties": False,
                                             "properties": {"name": {"type": "string"},
                                                            "description": {"type": "string"}}}},
        "principals": {"type": "array", "items": {
            "type": "object", "required": ["name"], "additionalProperties": False,
            "properties": {"name": {"type": "string", "minLength": 1}, "description": {"type": "string"},
                           "roles": _LIST, "groups": _LIST,
                           "attributes": {"type": "object", "additionalProperties": _STR_OR_LIST}}}},
        "grants": {"type": "array", "items": {
            "type": "object", "required": ["to", "on"], "additionalProperties": False,
            "properties": {
                "to": {"type": "object", "minProperties": 1, "maxProperties": 1, "additionalProperties": False,
                       "properties": {"role": {"type": "string"}, "user": {"type": "string"},
                                      "group": {"type": "string"}}},
                "on": {"type": "string", "minLength": 1},
                "access": {"enum": ["read", "write"]},
                "granted_by": {"type": "string"}, "reason": {"type": "string"},
                "expires": {"type": "string", "format": "date"},
                "approvers": _LIST, "purposes": _LIST}}},
        "policies": {"type": "array", "items": POLICY_SCHEMA},
        "issuers": {"type": "array", "items": ISSUER_SCHEMA},
    },
}


def _tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, (list, tuple)):
        return tuple(str(v) for v in value)
    return (str(value),)


def _lower(value: Any) -> tuple[str, ...]:
    return tuple(v.lower() for v in _tuple(value))


class _Report:
    def __init__(self, problems: list[Problem], file: str, positions: Positions | None, quantum: str | None = None):
        self.problems, self.file, self.positions, self.quantum = problems, file, positions, quantum
        self.errors = 0

    def add(self, path: list, message: str, severity: str = "error") -> None:
        line = self.positions.line(path) if self.positions else None
        self.problems.append(Problem(self.file, format_path(path), message, line, self.quantum, severity))
        if severity == "error":
            self.errors += 1


def _check_approvers(role: dict, path: list, file: str, quantum: str, principals: dict, problems: list) -> None:
    """Approvers a contract names that are no principal and no group of the governance: nobody can approve
    those requests (a warning of ``quanta validate``; the quantum's owners and data engineers still may)."""
    if not principals:
        return
    groups = {g for p in principals.values() for g in p.groups}
    for level in ("firstLevelApprovers", "secondLevelApprovers"):
        for name in _tuple(role.get(level)):
            if name not in principals and name not in groups:
                problems.append(Problem(file, format_path(path + [level]), f"approver {name!r} of role "
                                        f"{role.get('role')!r} is no principal and no group of the governance: "
                                        "nobody named there can approve its access requests", None, quantum,
                                        "warning"))


def load_governance(mesh: Mesh) -> tuple[Governance, list[Problem], dict[str, list[Problem]]]:
    """The mesh's governance, the problems of its global file, and problems of local policies by quantum."""
    problems: list[Problem] = []
    local_problems: dict[str, list[Problem]] = {}
    digest = hashlib.sha256()
    data: dict = {}
    positions: Positions | None = None
    file = "governance.yaml"
    path = mesh.path / file
    raw = read_mesh_file(path)
    if isinstance(raw, bytes):
        try:
            loaded, positions = parse_yaml(raw)
        except YamlError as e:
            raise CatalogError("invalid governance.yaml", [Problem(file, "", str(e), e.line)]) from None
        digest.update(raw)
        data = loaded or {}
    elif mesh.governance:
        data, file = mesh.governance, "mesh.yaml"
        positions = None
        digest.update(repr(sorted(mesh.governance.items())).encode())
    report = _Report(problems, file, positions)
    if not isinstance(data, dict):
        raise CatalogError("invalid governance", [Problem(file, "", "expected a mapping")])
    base = ["governance"] if file == "mesh.yaml" else []
    for err in jsonschema.Draft202012Validator(GOVERNANCE_SCHEMA).iter_errors(data):
        leaf = jsonschema.exceptions.best_match([err]) if err.context else err
        report.add(base + list(leaf.absolute_path), f"governance: {leaf.message}")
    if report.errors:
        raise CatalogError(f"invalid governance in {file}", problems)

    settings = dict(data.get("settings") or {})
    roles = {str(r["name"]): str(r.get("description", "")) for r in data.get("roles") or []}
    principals: dict[str, Principal] = {}
    for i, p in enumerate(data.get("principals") or []):
        name = str(p["name"])
        if name in principals:
            report.add(base + ["principals", i, "name"], f"principal {name!r} is defined twice")
        for r in _tuple(p.get("roles")):
            if roles and r not in roles:
                report.add(base + ["principals", i, "roles"], f"role {r!r} of principal {name!r} is not one of the "
                           f"governance roles ({', '.join(sorted(roles))})")
        principals[name] = Principal(name, _tuple(p.get("roles")), _tuple(p.get("groups")),
                                     {k: list(_tuple(v)) for k, v in (p.get("attributes") or {}).items()})

    issuers = _issuers(data.get("issuers") or [], base, report)

    grants: list[Grant] = []
    for i, g in enumerate(data.get("grants") or []):
        (kind, grantee), = g["to"].items()
        on = str(g["on"])
        if not _known_target(mesh, on):
            report.add(base + ["grants", i, "on"], f"grant on {on!r}: no such quantum or dataset in the mesh",
                       severity="warning")
        expires = dt.date.fromisoformat(g["expires"]) if g.get("expires") else None
        grants.append(Grant(kind, str(grantee), on, g.get("access", "read"), g.get("granted_by"), g.get("reason"),
                            expires, "governance", _tuple(g.get("approvers")), _tuple(g.get("purposes"))))
    policies = []
    for i, raw in enumerate(data.get("policies") or []):
        pol = _policy(raw, "global", file, base + ["policies", i], report)
        if pol is not None:
            policies.append(pol)
    if report.errors:
        raise CatalogError(f"invalid governance in {file}", problems)

    # per quantum: owners, ODCS roles, local policies
    owners_can_read = bool(settings.get("owners_can_read", True))
    for q in mesh.quanta.values():
        if owners_can_read:
            for owner in q.owners:
                grants.append(Grant("user", owner, q.name, "read", granted_by=q.file, reason="owner of the quantum",
                                    source="owner"))
        for cid in q.contracts:
            contract = mesh.contracts[cid]
            digest.update(repr(contract.raw.get("roles")).encode())
            for j, role in enumerate(contract.raw.get("roles") or []):
                if not isinstance(role, dict) or not role.get("role"):
                    continue
                approvers = _tuple(role.get("firstLevelApprovers")) + _tuple(role.get("secondLevelApprovers"))
                _check_approvers(role, ["roles", j], contract.file, q.name, principals, problems)
                for ds_name in contract.datasets:
                    grants.append(Grant("role", str(role["role"]), f"{q.name}.{ds_name}", str(role.get("access", "read")),
                                        granted_by=f"contract {cid}", reason=role.get("description"),
                                        source=f"contract {cid}", approvers=approvers))
        local = _custom(q.raw.get("customProperties"), "policies")
        if local is None:
            continue
        digest.update(repr(local).encode())
        qreport = _Report(local_problems.setdefault(q.name.lower(), []), q.file, None, q.name)
        index = next(i for i, c in enumerate(q.raw["customProperties"]) if c.get("property") == "policies")
        lbase = ["customProperties", index, "value"]
        if not isinstance(local, list):
            qreport.add(lbase, "local policies are a list")
            continue
        for i, raw in enumerate(local):
            errors = list(jsonschema.Draft202012Validator(POLICY_SCHEMA).iter_errors(raw))
            for err in errors:
                qreport.add(lbase + [i] + list(err.absolute_path), f"policy: {err.message}")
            if errors:
                continue
            pol = _policy(raw, q.name, q.file, lbase + [i], qreport)
            if pol is not None:
                if pol.selector.quantum and pol.selector.quantum != (q.name.lower(),):
                    qreport.add(lbase + [i, "on"], f"local policy {pol.name} of {q.name} may only select {q.name}")
                    continue
                policies.append(pol)
    gov = Governance(principals, grants, policies, roles, digest.hexdigest()[:16], settings)
    gov.owners = {q.name.lower(): tuple(q.owners) for q in mesh.quanta.values()}
    gov.issuers = issuers
    return gov, problems, local_problems


def _issuers(raw: list, base: list, report: _Report) -> tuple[oidc.Issuer, ...]:
    """The OpenID Connect issuers the governance trusts (checked beyond the schema: one entry per issuer,
    a JWKS address that cannot be tampered with on the way)."""
    out: list[oidc.Issuer] = []
    for i, item in enumerate(raw):
        path = base + ["issuers", i]
        if any(o.issuer == item["issuer"] for o in out):
            report.add(path + ["issuer"], f"issuer {item['issuer']!r} is declared twice")
        if "jwks_url" in item:
            problem = oidc.check_jwks_url(item["jwks_url"])
            if problem:
                report.add(path + ["jwks_url"], f"jwks_url of issuer {item['issuer']!r} {problem}")
        else:  # its OpenID configuration names the keys: the issuer must be an address read safely
            problem = oidc.check_jwks_url(item["issuer"])
            if problem is None and ("?" in item["issuer"] or "#" in item["issuer"]):
                problem = "must have no query or fragment (OpenID Connect Discovery)"
            if problem:
                report.add(path + ["issuer"], f"issuer {item['issuer']!r} has no jwks_url, and its OpenID "
                                              f"configuration cannot be read from it: the issuer {problem}")
        out.append(oidc.Issuer(
            item["issuer"], _tuple(item["audience"]), item.get("jwks_url"), item.get("principal_claim", "sub"),
            item.get("roles_claim"), item.get("groups_claim"), tuple((item.get("attribute_claims") or {}).items()),
            tuple(item.get("algorithms") or oidc.ASYMMETRIC), float(item.get("leeway_seconds", oidc.DEFAULT_LEEWAY)),
            float(item.get("jwks_cache_seconds", oidc.DEFAULT_CACHE)),
            float(item.get("jwks_refresh_seconds", oidc.REFRESH_INTERVAL)), str(item.get("principal_prefix", ""))))
    return tuple(out)


def _known_target(mesh: Mesh, on: str) -> bool:
    if on == "*":
        return True
    parts = on.lower().split(".")
    if parts[0] in mesh.excluded:
        return True
    q = mesh.quanta.get(parts[0])
    return q is not None and (len(parts) == 1 or parts[1] in q.datasets)


def _policy(raw: dict, scope: str, file: str, path: list, report: _Report) -> Policy | None:
    on = raw["on"]
    selector = Selector(_lower(on.get("classification")), _lower(on.get("tag")), _lower(on.get("column")),
                        _lower(on.get("dataset")), _lower(on.get("quantum")))
    unless = None
    if raw.get("unless"):
        u = raw["unless"]
        unless = Condition(_tuple(u.get("roles")), _tuple(u.get("groups")), _tuple(u.get("users")),
                           tuple((k, _tuple(v)) for k, v in (u.get("attributes") or {}).items()))
    kind = raw["kind"]
    mask, options, sql = None, {}, None
    if kind == "mask":
        m = raw.get("mask")
        if m is None:
            report.add(path, f"mask policy {raw['name']} needs a mask ({', '.join(MASKS)})")
            return None
        if isinstance(m, dict):
            mask = m["type"]
            options = {k: v for k, v in m.items() if k not in ("type", "sql")}
            sql = m.get("sql")
            if mask == "sql" and not sql:
                report.add(path + ["mask"], f"mask policy {raw['name']}: a sql mask needs its sql")
                return None
        else:
            mask = m
        if not selector.column_level:
            report.add(path + ["on"], f"mask policy {raw['name']} must select columns (classification, tag or column)")
            return None
    elif kind == "row_filter":
        sql = raw.get("filter")
        if not sql:
            report.add(path, f"row filter {raw['name']} needs a filter expression")
            return None
    elif raw.get("mask") or raw.get("filter"):
        report.add(path, f"deny policy {raw['name']} takes neither mask nor filter")
        return None
    elif not selector.column_level:
        report.add(path + ["on"], f"deny policy {raw['name']} must select columns (classification, tag or column)")
        return None
    if sql is not None:
        problem = check_shape(sql, allow_principal=kind == "row_filter")
        if problem:
            report.add(path + (["filter"] if kind == "row_filter" else ["mask", "sql"]),
                       f"policy {raw['name']}: {problem}")
            return None
    return Policy(raw["name"], kind, selector, scope, mask, options, sql, unless, raw.get("description"), file,
                  format_path(path))


def check_shape(sql: str, allow_principal: bool) -> str | None:
    """Why a policy expression is not acceptable, or None."""
    try:
        tree = sqlglot.parse_one(sql.replace("{column}", "__quanta_column__"), read="duckdb")
    except ParseError as e:
        err = e.errors[0] if e.errors else {}
        return f"does not parse: {err.get('description', e)} (column {err.get('col')})"
    if isinstance(tree, (exp.Query, exp.Command)) or tree.find(exp.Query, exp.Subquery, exp.Table):
        return "must be an expression over the dataset's own columns, without subqueries or other tables"
    if tree.find(exp.AggFunc):
        return "must not use aggregate functions"
    if tree.find(exp.Window):
        return "must not use window functions"
    for fn in tree.find_all(exp.Func):
        if not functions.is_allowed(fn):
            return functions.explain_refusal(fn)
    for col in tree.find_all(exp.Column):
        if col.table and col.table.lower() == "principal":
            if not allow_principal:
                return "principal attributes may only be used in row filters"
        elif col.table:
            return f"{col.sql('duckdb')}: columns are named without a table"
    return None


def check_expressions(gov: Governance, mesh: Mesh, describe) -> tuple[list[Problem], dict[str, list[Problem]]]:
    """Check every policy against every dataset it selects, with the engine: the columns exist, the
    expression binds, a row filter is boolean. ``describe(sql)`` returns [(name, type)].

    The expressions are typed against an empty relation of the dataset's columns and types (the view's
    own, as the registry and the derived datasets' fitting make them), not against the view: binding a
    view reads its files' schemas again (CSV and JSON are sniffed) or binds a derived dataset's whole
    SQL. All the expressions on one dataset are typed in one DESCRIBE; only when it fails is each typed
    alone, to name the one at fault. Results are kept (``_TYPED``) for the next loads of the process."""
    from .policies import filter_expression, mask_sql

    found: list[tuple[int, int, Problem]] = []  # (policy's index, dataset's order, problem): the policies' order
    order = 0
    checker = Principal("check", known=False)
    sql_of: dict[tuple, str] = {}  # the same policy on the same columns (and types) gives the same SQL

    def mask_of(i: int, pol, col) -> str:
        key = ("mask", i, col.name, col.data_type)
        if key not in sql_of:
            sql_of[key] = mask_sql(pol, col)
        return sql_of[key]

    def filter_of(i: int, pol, ds) -> str:
        # filter_expression reads the dataset only for the columns a {column} filter selects
        selected = (tuple(c.name for c in ds.columns if pol.selector.column_matches(ds, c))
                    if "{column}" in (pol.sql or "") else ())
        key = ("filter", i, selected)
        if key not in sql_of:
            sql_of[key] = f"({filter_expression(pol, ds, checker, None).sql('duckdb')})"
        return sql_of[key]

    for q in mesh.quanta.values():
        for ds in q.datasets.values():
            order += 1
            groups: list[tuple] = []  # (policy's index, policy, expressions, is a row filter) or (i, policy, error)
            for i, pol in enumerate(gov.policies):
                if pol.scope != "global" and q.name.lower() != pol.scope.lower():
                    continue
                try:
                    if pol.kind == "mask":
                        exprs = [mask_of(i, pol, col) for col in ds.columns if pol.selector.column_matches(ds, col)]
                        if exprs:
                            groups.append((i, pol, exprs, False))
                    elif pol.kind == "row_filter":
                        applies = (any(pol.selector.column_matches(ds, c) for c in ds.columns)
                                   if pol.selector.column_level else pol.selector.dataset_matches(ds))
                        if applies:
                            groups.append((i, pol, [filter_of(i, pol, ds)], True))
                except Exception as e:  # noqa: BLE001 - reported like the engine's errors
                    groups.append((i, pol, e))
            if not groups:
                continue
            typed = iter(_type_all(describe, _typed_relation(q.name, ds),
                                   [e for g in groups if len(g) == 4 for e in g[2]]))
            for g in groups:
                i, pol = g[0], g[1]
                if len(g) == 3:
                    error: str | None = str(g[2]).split("\n")[0]
                else:
                    outcomes = [next(typed) for _ in g[2]]
                    error = next((o[1] for o in outcomes if o[0] is None), None)
                    if error is None and g[3] and outcomes[0][0] not in ("BOOLEAN", '"NULL"', "NULL"):
                        error = f"a row filter must be boolean, and this one is {outcomes[0][0]}"
                if error is not None:
                    found.append((i, order, Problem(pol.file, pol.yaml_path, f"policy {pol.name} on "
                                                    f"{ds.qualified_name}: {error}", None,
                                                    None if pol.scope == "global" else pol.scope)))
    global_problems: list[Problem] = []
    local: dict[str, list[Problem]] = {pol.scope.lower(): [] for pol in gov.policies if pol.scope != "global"}
    for _, _, problem in sorted(found, key=lambda f: (f[0], f[1])):
        if problem.quantum is None:
            global_problems.append(problem)
        else:
            local[problem.quantum.lower()].append(problem)
    return global_problems, local


# (relation, expressions) -> [(type, None) or (None, error)], kept for the loads to come (a hot reload checks
# the same policies on mostly the same datasets); bounded, the oldest out first
_TYPED: dict[tuple[str, tuple[str, ...]], list[tuple[str | None, str | None]]] = {}
_TYPED_MAX = 20_000


def _typed_relation(quantum: str, ds) -> str:
    """An empty relation with the dataset's columns and types, named as the dataset (the view itself when
    the dataset declares no columns)."""
    if not ds.columns:
        return f"{quantum.lower()}.{ds.name.lower()}"
    cols = ", ".join(f"CAST(NULL AS {c.data_type}) AS {_quote(c.name)}" for c in ds.columns)
    return f"(SELECT {cols}) AS {_quote(ds.name.lower())}"


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _type_all(describe, relation: str, exprs: list[str]) -> list[tuple[str | None, str | None]]:
    """(type, None) or (None, the engine's first line of error) for each expression over ``relation``."""
    key = (relation, tuple(exprs))
    if key in _TYPED:
        return _TYPED[key]
    try:
        out = describe("SELECT " + ", ".join(f"{e} AS _quanta_{k}" for k, e in enumerate(exprs))
                       + f" FROM {relation}")
        if len(out) != len(exprs):
            raise ValueError("one column per expression expected")
        result: list[tuple[str | None, str | None]] = [(t, None) for _, t in out]
    except Exception:  # noqa: BLE001 - one of them fails: type each alone to name it
        result = []
        for e in exprs:
            try:
                out = describe(f"SELECT {e} AS _quanta_0 FROM {relation}")
                result.append((out[0][1] if out else "NULL", None))
            except Exception as err:  # noqa: BLE001 - DuckDB binder errors and our ValueErrors alike
                result.append((None, str(err).split("\n")[0]))
    if len(_TYPED) >= _TYPED_MAX:
        del _TYPED[next(iter(_TYPED))]
    _TYPED[key] = result
    return result
