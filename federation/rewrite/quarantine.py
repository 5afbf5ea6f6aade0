"""``system.quarantine``: the quarantined rows of every dataset the principal may read, each governed as
its dataset.

    FROM system.quarantine
      -> FROM (SELECT 'sales' AS quantum, 'orders' AS dataset, ..., <the governed row as JSON text> AS "row"
               FROM sales."orders@quarantine" AS _q
               UNION ALL ...) AS quarantine

It holds no value of its own: it is a query over the relations ``<quantum>."<dataset>@quarantine"``
(``onboarding/quarantine.py``), each resolved like a pinned version and secured by the governance pass
with its dataset's decision (grant, purposes, retention, row filters, masks, denied columns), so a
masked column is masked in ``row`` and a filtered row is not there. Datasets the principal may not
read (no grant, a purpose they did not declare, a retired contract) are left out rather than refused:
the governance pass would refuse the whole query, and the listing must not tell which exist.
"""

from __future__ import annotations

import sqlglot
import sqlglot.expressions as exp

from .context import Context, swap

COLUMNS = (("quarantine_id", "VARCHAR"), ("quantum", "VARCHAR"), ("dataset", "VARCHAR"), ("version", "BIGINT"),
           ("row_number", "BIGINT"), ("rules", "VARCHAR"), ("row", "VARCHAR"))
META = ("_quanta_reason", "_quanta_version", "_quanta_row")


def _readable(ctx: Context, ds) -> bool:
    from ..governance.listing import readable_in

    return readable_in(ctx.namespace.governance, ctx.namespace.mesh, ctx.principal, ds, ctx.purpose)


def expand(table: exp.Table, ctx: Context, resolve_pinned) -> None:
    """Replace ``system.quarantine`` by the union of the readable datasets' quarantine relations; each
    is then resolved by ``resolve_pinned`` (``resolve._pinned``) and governed like its dataset."""
    ns = ctx.namespace
    ctx.held = True  # held rows, whichever are readable: served by the embedded engine only (rewrite/pipeline.py)
    keys = sorted(k for k in ns.pinned if k[2] == "quarantine")
    parts = []
    for q, d, _ in keys:
        ds = ns.dataset(q, d)
        if ds is None or not _readable(ctx, ds):
            continue
        strip = "{" + ", ".join(f'"{m}": null' for m in META) + "}"
        qs, ds_ = _text(q), _text(d)
        parts.append(
            f"SELECT {_text(f'{q}.{d}.v')} || _q._quanta_version AS quarantine_id, {qs} AS quantum, {ds_} AS dataset, "
            f"_q._quanta_version AS version, _q._quanta_row AS row_number, _q._quanta_reason AS rules, "
            f"CAST(json_merge_patch(to_json(_q), '{strip}') AS VARCHAR) AS \"row\" FROM {_ident(q)}.{_ident(d + '@quarantine')} AS _q")
    if not parts:
        parts = ["SELECT " + ", ".join(f"CAST(NULL AS {t}) AS \"{c}\"" for c, t in COLUMNS) + " WHERE false"]
    query = sqlglot.parse_one(" UNION ALL ".join(parts), read="duckdb")
    alias = table.args.get("alias")
    sub = exp.Subquery(this=query, alias=alias.copy() if alias else exp.TableAlias(
        this=exp.to_identifier("quarantine")))
    swap(table, sub)
    for inner in list(query.find_all(exp.Table)):
        resolve_pinned(ctx, inner, inner.text("db"), inner.name)


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _ident(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'
