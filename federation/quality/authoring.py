"""Control-plane quality rules are no oracle on what their author may not see.

A rule set through the control plane (``PUT .../rules``, ``quanta quality rules --set``,
``control.set_rules``) is measured later on every row of the dataset, as stored, and its failing
count and measured value go to the dataset's readers, its author included. A rule such as
``validValues: ["laura.martin96@skynet.be"]`` on an e-mail column masked for its author would tell
them whether that address is there. So ``check_author`` refuses (``AccessDenied`` naming the column
and the policy) a control-plane rule whose author:

- may not read the dataset (no grant);
- does not see in clear a column the rule is on (masked or denied for them);
- has rows of the dataset hidden from them by a row filter (a rule measured on every row would count
  them), unless the filter, bound to their attributes, lets every row through;
- for ``sql`` rules: does not see every column of the dataset in clear, or whose query reads anything
  but the dataset itself (``{object}`` or its name) and its own CTEs. (A rule the pipeline cannot run,
  not one read-only query, is left to it: the check reports its refusal and nothing runs.)

Rules of the contract (its ODCS file, reviewed in the domain's repository) and the checks the schema
implies are not the author's: they are not checked here and still run on the stored data.
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp

from .. import errors
from ..catalog.model import Dataset
from ..governance.authorize import Columns, allowed
from ..governance.policies import Decision, Governance
from ..governance.principals import Principal
from . import rules as R

ADVICE = ("rules that need it belong in the contract (reviewed in the domain's repository), or are set by "
          "someone who sees it in clear")


def check_author(gov: Governance | None, ds: Dataset, rules: list[R.Rule], principal: Principal) -> None:
    """AccessDenied unless every control-plane rule of ``rules`` reveals nothing ``principal`` may not see."""
    mine = [r for r in rules if r.origin == "control-plane"]
    if gov is None or not mine:
        return
    who = f"{principal.name} may not set quality rules on {ds.qualified_name}"
    read = allowed(gov, principal, "read", ds)
    if not read:
        raise errors.AccessDenied(f"{who}: a rule's results describe its data, and {read.reason}")
    decision = gov.decide(principal, ds)
    hiding = [pol.name for pol, expr in decision.filters if _truth(expr) is not True]
    if hiding:
        raise errors.AccessDenied(f"{who}: row filter {', '.join(hiding)} hides rows of it from them, and a rule "
                                  f"is measured on every row; {ADVICE}")
    for rule in mine:
        if rule.type == "sql":
            _check_sql(rule, ds, decision, who)
            continue
        clear = allowed(gov, principal, "set_rules", Columns(ds, rule.columns), what="set quality rules")
        if not clear:
            raise errors.AccessDenied(f"{clear.reason}: rule {rule.name}'s failing count, measured on the stored "
                                      f"values, would reveal them; {ADVICE}")


def _check_sql(rule: R.Rule, ds: Dataset, decision: Decision, who: str) -> None:
    hidden = [f"{d.column.name} ({d.access}, policy {d.policy.name if d.policy else '?'})"
              for d in decision.columns if d.access != "visible"]
    if hidden:
        raise errors.AccessDenied(
            f"{who}: a control-plane sql rule ({rule.name}) needs every column of the dataset in clear for its "
            f"author, and these are not for them: {', '.join(hidden)}; {ADVICE}")
    try:
        statements = sqlglot.parse(R.sql_rule_text(rule, ds), read="duckdb")
    except R.RuleError as e:
        raise errors.ProgrammingError(f"invalid quality rule {rule.name}: {e}") from None
    except sqlglot.errors.SqlglotError:
        return  # the pipeline cannot parse it either: the check reports the error, nothing runs
    if len(statements) != 1 or not isinstance(statements[0], exp.Query):
        return  # not one query: the pipeline refuses it when the check runs it, nothing runs
    tree = statements[0]
    ctes = {c.alias_or_name.lower() for c in tree.find_all(exp.CTE)}
    for table in tree.find_all(exp.Table):
        if not isinstance(table.this, exp.Identifier):  # a table function, a placeholder...
            read = table.sql("duckdb")
        elif not table.db and not table.catalog and table.name.lower() in ctes:
            continue
        elif not table.catalog and (table.db.lower(), table.name.lower()) == (ds.quantum.lower(), ds.name.lower()):
            continue
        else:
            read = ".".join(p for p in (table.catalog, table.db, table.name) if p)
        raise errors.AccessDenied(f"{who}: a control-plane sql rule reads only its own dataset ({{object}}) and "
                                  f"its own CTEs, and {rule.name} reads {read}; {ADVICE}")


# -- does a bound row filter let every row through? --------------------------------------------------------


def _truth(e: exp.Expression) -> bool | None:
    """The value of a boolean expression whatever the row: True, False, or None when it depends on the row
    (or is not understood: fail closed)."""
    if isinstance(e, exp.Boolean):
        return bool(e.this)
    if isinstance(e, exp.Paren):
        return _truth(e.this)
    if isinstance(e, exp.Not):
        inner = _truth(e.this)
        return None if inner is None else not inner
    if isinstance(e, (exp.Or, exp.And)):
        sides = [_truth(e.this), _truth(e.expression)]
        if isinstance(e, exp.Or):
            return True if True in sides else (False if sides == [False, False] else None)
        return False if False in sides else (True if sides == [True, True] else None)
    if isinstance(e, exp.ArrayContains):
        items, value = _constants(e.this), _constant(e.expression)
        if items is None or value is _UNKNOWN or value is None or None in items:
            return None
        return value in items
    if isinstance(e, (exp.EQ, exp.NEQ)):
        a, b = _constant(e.this), _constant(e.expression)
        if a is _UNKNOWN or b is _UNKNOWN or a is None or b is None or type(a) is not type(b):
            return None
        return (a == b) if isinstance(e, exp.EQ) else (a != b)
    return None


_UNKNOWN = object()


def _constant(e: exp.Expression):
    if isinstance(e, (exp.Paren, exp.Cast)) and not isinstance(e.this, exp.Array):
        return _constant(e.this)
    if isinstance(e, exp.Literal):
        return e.this if e.is_string else float(e.this)
    if isinstance(e, exp.Null):
        return None
    return _UNKNOWN


def _constants(e: exp.Expression) -> list | None:
    if isinstance(e, (exp.Paren, exp.Cast)):
        return _constants(e.this)
    if isinstance(e, exp.Array):
        values = [_constant(x) for x in e.expressions]
        return None if any(v is _UNKNOWN for v in values) else values
    return None
