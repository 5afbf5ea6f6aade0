"""Pass: resolve every table reference to a mesh dataset, a system table or a CTE in scope.

    FROM sales.orders               ->  FROM memory.sales.orders            (a source dataset's view)
    FROM customer360.customer_360   ->  FROM (<its definition>) AS customer_360   (derived: inlined)
    FROM system.columns             ->  FROM memory._quanta_system.columns
    WITH x AS (...) SELECT * FROM x ->  unchanged (a CTE visible at that point)

Anything else is an error with its position: an unknown name (with a suggestion), a catalog, a file
path (``FROM 'data.csv'``) or a table function (``FROM read_csv(...)``). Names are resolved with DuckDB's
own CTE scoping rules (see ``verify.py``, which checks the same rules on DuckDB's parse): a CTE is visible
in the later CTEs of its WITH and in its query, never in the earlier ones; a recursive CTE sees itself only
in the recursive operand of its UNION. So an unqualified name can never fall through to the engine's own
catalog or to a file. Derived datasets are inlined (invoker's rights): later passes see the source datasets
they read, so every policy of a source applies through them. What each resolved reference is, is held by
the pipeline (``ctx.mark``), keyed by node identity: never in ``node.meta``, which the parser fills from
the user's comments.
"""

from __future__ import annotations

import difflib

import sqlglot
import sqlglot.expressions as exp

from ..errors import StatementRefused, Unavailable, UnknownObject
from .context import KEPT, Context, Definition, swap


def _with(node: exp.Expression) -> exp.With | None:
    w = node.args.get("with_")
    if w is None:
        w = node.args.get("with")
    return w if isinstance(w, exp.With) else None


def tables_in_scope(expression: exp.Expression) -> list[tuple[exp.Table, frozenset[str]]]:
    """Every Table node with the CTE names visible where it appears, by DuckDB's scoping rules."""
    out: list[tuple[exp.Table, frozenset[str]]] = []
    stack: list[tuple[exp.Expression, frozenset[str]]] = [(expression, frozenset())]
    while stack:
        node, visible = stack.pop()
        if isinstance(node, exp.Table):
            out.append((node, visible))
            # a table's own children (e.g. pivots, sample, joins hints) may hold subqueries
            for key in ("pivots", "joins", "laterals", "sample", "when", "version"):
                value = node.args.get(key)
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        stack.append((child, visible))
            this = node.args.get("this")
            if isinstance(this, exp.Expression) and not isinstance(this, exp.Identifier):
                stack.append((this, visible))
            continue
        w = _with(node)
        if w is not None:
            scope = set(visible)
            recursive = bool(w.args.get("recursive"))
            for cte in w.expressions:
                name = cte.alias_or_name.lower()
                body = cte.this
                # DuckDB recurses over UNION [ALL] only (BY NAME is a plain set operation): then the recursive
                # operand alone sees the CTE itself
                if recursive and type(body) is exp.Union and not body.args.get("by_name"):
                    stack.append((body.this, frozenset(scope)))
                    stack.append((body.expression, frozenset(scope | {name})))
                    for key, value in body.args.items():
                        if key not in ("this", "expression"):
                            for child in value if isinstance(value, list) else [value]:
                                if isinstance(child, exp.Expression):
                                    stack.append((child, frozenset(scope)))
                else:
                    stack.append((body, frozenset(scope)))
                scope.add(name)
            inner = frozenset(scope)
            for key, value in node.args.items():
                if value is w or key in ("with", "with_"):
                    continue
                for child in value if isinstance(value, list) else [value]:
                    if isinstance(child, exp.Expression):
                        stack.append((child, inner))
            continue
        for child in node.iter_expressions():
            stack.append((child, visible))
    return out


def _name_subquery_columns(expression: exp.Expression, ctx: Context) -> None:
    """DuckDB names an unaliased result column after its expression's text: a scalar subquery's column
    would be named after the rewritten SQL (internal relations, masks, filters). Name it as written."""
    if ctx.dialect == "postgres":
        return  # rewrite/postgres.py names every column as PostgreSQL does
    select = expression
    while isinstance(select, exp.SetOperation):
        select = select.this  # the first operand names the columns
    if not isinstance(select, exp.Select):
        return
    for i, item in enumerate(select.expressions):
        if not isinstance(item, exp.Alias) and item.find(exp.Subquery, exp.Exists):
            select.expressions[i] = exp.alias_(item, item.sql(ctx.dialect, comments=False)[:120], quoted=True)


def _suggest(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name.lower(), candidates, n=1, cutoff=0.6)
    return f"; did you mean {close[0]}?" if close else ""


def _unqualify_columns(expression: exp.Expression) -> None:
    """``crm.customers.id`` (a column qualified by schema and table, as SQLAlchemy's ``select(Table)`` writes
    it) names the column of the unaliased table ``crm.customers``; that table becomes a relation or a governed
    subquery named ``customers``, so the column is written ``customers.id``. Only exact matches are touched
    (``t.s.f`` may be a struct field in DuckDB)."""
    unaliased = {(t.text("db").lower(), t.name.lower()) for t in expression.find_all(exp.Table)
                 if t.text("db") and not t.args.get("catalog") and not t.alias and isinstance(t.this, exp.Identifier)}
    if not unaliased:
        return
    for column in expression.find_all(exp.Column):
        db = column.args.get("db")
        if db is not None and not column.args.get("catalog") and (db.name.lower(), column.table.lower()) in unaliased:
            column.set("db", None)


def _without_mesh_catalog(expression: exp.Expression, ctx: Context) -> None:
    """``greatparts.sales.orders``: BI tools qualify names by the catalog (the database), which is the mesh;
    its name (or an alias of the mesh setting ``pg_database_aliases``) is dropped, so the name resolves like
    ``sales.orders``; any other catalog stays and is refused below. Columns qualified by the same catalog
    (``greatparts.sales.orders.id``) lose it too when the query reads that table."""
    mesh = ctx.namespace.mesh
    names = {mesh.name.lower()} | {a.strip().lower() for a in str(mesh.settings.get("pg_database_aliases") or "")
                                   .split(",") if a.strip()}

    def ours(node: exp.Expression) -> bool:
        catalog = node.args.get("catalog")
        return isinstance(catalog, exp.Identifier) and catalog.name.lower() in names

    stripped = set()
    for table in expression.find_all(exp.Table):
        if ours(table):
            table.set("catalog", None)
            stripped.add((table.text("db").lower(), table.name.lower()))
    for column in expression.find_all(exp.Column):
        if ours(column) and (column.text("db").lower(), column.table.lower()) in stripped:
            column.set("catalog", None)


def resolve_tables(expression: exp.Expression, ctx: Context) -> exp.Expression:
    ns = ctx.namespace
    _name_subquery_columns(expression, ctx)
    _without_mesh_catalog(expression, ctx)
    _unqualify_columns(expression)
    for table, visible in tables_in_scope(expression):
        if ctx.mark_of(table) is not None:  # already resolved (inside an inlined derived dataset)
            continue
        this = table.this
        if not isinstance(this, exp.Identifier):
            fn = this.sql(ctx.dialect) if isinstance(this, exp.Expression) else str(this)
            raise ctx.error(StatementRefused, f"table functions are not allowed in Quanta queries ({fn[:60]}); "
                            "read mesh datasets by name, <quantum>.<dataset>", table)
        extra = [k for k, v in table.args.items() if v and k not in KEPT]
        if extra:
            what = {"when": "a time-travel clause (AT ...)", "version": "a time-travel clause"}.get(extra[0], extra[0].upper())
            raise ctx.error(StatementRefused, f"{what} on a table is not supported in Quanta queries", table)
        if table.args.get("catalog"):
            raise ctx.error(UnknownObject, f"{table.sql(ctx.dialect)} does not exist: mesh datasets are named "
                            f"<quantum>.<dataset>, or {ns.mesh.name}.<quantum>.<dataset> (the mesh is the only "
                            "catalog)", table)
        name = this.name
        schema = table.text("db")
        if not schema:
            if name.lower() in visible:
                continue
            if this.quoted and any(ch in name for ch in "/\\.*"):
                raise ctx.error(StatementRefused, f"reading files is not allowed ('{name}'); read mesh datasets by "
                                "name, <quantum>.<dataset>", table)
            names = [f"{d.quantum}.{d.name}".lower() for d in ns.mesh.datasets()]
            matches = [n for n in names if n.split(".")[1] == name.lower()]
            hint = f"; did you mean {matches[0]}?" if matches else _suggest(name, [n.split(".")[1] for n in names])
            raise ctx.error(UnknownObject, f"table {name} does not exist: mesh datasets are named "
                            f"<quantum>.<dataset>{hint}", table)
        key = (schema.lower(), name.lower())
        if key == ("system", "quarantine"):  # a query over the governed quarantine relations, not a table
            from .quarantine import expand

            expand(table, ctx, _pinned)
            continue
        if key in ns.system_tables:
            st = ns.system_tables[key]
            ns.prepare(st.relation)
            _point_at(table, st.relation, alias=name)
            ctx.mark(table, ("system",) + key)
            ctx.placements.place(st.relation)
            ctx.system_tables.append(f"{key[0]}.{key[1]}")
            continue
        if "@" in name and _pinned(ctx, table, schema, name):
            continue
        ds = ns.dataset(schema, name)
        if ds is None:
            raise _unknown(ctx, table, schema, name)
        ctx.read(ds.quantum, ds.name)
        if ds.sql is None or ds.source is not None:  # a source, or a mart served from its versions
            _point_at(table, ns.relation(ds.quantum, ds.name), alias=None)
            ctx.mark(table, ("dataset", ds.quantum.lower(), ds.name.lower()))
            ctx.placements.place(ns.relation(ds.quantum, ds.name))
            continue
        definition = ns.definitions.get((ds.quantum.lower(), ds.name.lower()))
        if definition is None:
            raise ctx.error(Unavailable, f"derived dataset {ds.qualified_name} is not available", table)
        for src in definition_reads(definition):
            ctx.read(*src)
        alias = table.args.get("alias")
        subquery = exp.Subquery(this=ctx.inline(definition),
                                alias=alias.copy() if alias else exp.TableAlias(this=exp.to_identifier(ds.name)))
        ctx.mark(subquery, ("derived", ds.quantum.lower(), ds.name.lower()))
        swap(table, subquery)
    return expression


def _pinned(ctx: Context, table: exp.Table, schema: str, name: str) -> bool:
    """A pinned version, ``quantum."dataset@v3"``: read like the dataset (same grants, filters, masks, as a
    subquery tagged with the dataset) from the view of that published version."""
    base, _, version = name.rpartition("@")
    quarantine = version.lower() == "quarantine"  # its quarantined rows (onboarding/quarantine.py), read alike
    if not quarantine and (version[:1].lower() != "v" or not version[1:].isdigit()):
        return False
    ds = ctx.namespace.dataset(schema, base)
    if ds is None:
        raise _unknown(ctx, table, schema, base)
    pinned = ctx.namespace.pinned
    number = "quarantine" if quarantine else int(version[1:])
    relation = pinned.get((ds.quantum.lower(), ds.name.lower(), number))
    if relation is None and (quarantine or not _may_read(ctx, ds)):
        # refused by the governance pass, as a relation that exists is: whether rows are held, which versions
        # are kept, is not for whoever may not read the dataset. A reader reads an empty quarantine: an error
        # would tell one whose row filter hides some held rows that they exist
        from ..onboarding.quarantine_relation import quarantine_dataset

        shown = quarantine_dataset(ds).columns if quarantine else ds.columns
        nulls = ", ".join(f"CAST(NULL AS {c.data_type}) AS {exp.to_identifier(c.name, quoted=True).sql('duckdb')}"
                          for c in shown) or "NULL AS _none"
        inner = exp.select("*").from_(exp.Subquery(this=sqlglot.parse_one(f"SELECT {nulls} WHERE false",
                                                                         read="duckdb"),
                                                   alias=exp.TableAlias(this=exp.to_identifier("_none"))))
        alias = table.args.get("alias")
        subquery = exp.Subquery(this=inner, alias=alias.copy() if alias else exp.TableAlias(
            this=exp.to_identifier(ds.name)))
        ctx.read(ds.quantum, ds.name, held=quarantine)
        key = (ds.quantum.lower(), ds.name.lower(), number)
        ctx.mark(subquery, ("derived",) + (key if quarantine and key in ctx.namespace.pinned_datasets else key[:2]))
        swap(table, subquery)
        return True
    if relation is None:
        have = sorted(v for (q, d, v) in pinned if (q, d) == (ds.quantum.lower(), ds.name.lower())
                      and isinstance(v, int))
        raise ctx.error(UnknownObject, f"version {version[1:]} of {ds.qualified_name} is not available (kept "
                        f"versions: {', '.join('v' + str(v) for v in have) or 'none'})", table)
    ctx.read(ds.quantum, ds.name, held=quarantine)
    inner = exp.select("*").from_(exp.Table(this=exp.to_identifier(relation[2], quoted=True),
                                            db=exp.to_identifier(relation[1], quoted=True),
                                            catalog=exp.to_identifier(relation[0])))
    alias = table.args.get("alias")
    subquery = exp.Subquery(this=inner, alias=alias.copy() if alias else exp.TableAlias(
        this=exp.to_identifier(ds.name)))
    key = (ds.quantum.lower(), ds.name.lower(), number)
    # the version number tells the governance pass to use that version's contract snapshot
    ctx.mark(subquery, ("derived",) + key if key in ctx.namespace.pinned_datasets else ("derived",) + key[:2])
    ctx.placements.place(relation)  # read bare inside the pinned subquery, secured around it
    swap(table, subquery)
    return True


def _may_read(ctx: Context, ds) -> bool:
    from .quarantine import _readable

    return _readable(ctx, ds)


def definition_reads(definition: Definition) -> list[tuple[str, str]]:
    return [(mark[1], mark[2]) for mark in definition.marks.values() if mark[0] == "dataset"]


def _point_at(table: exp.Table, relation: tuple[str, str, str], alias: str | None) -> None:
    catalog, schema, name = relation
    table.set("catalog", exp.to_identifier(catalog))
    table.set("db", exp.to_identifier(schema))
    table.set("this", exp.to_identifier(name))
    if alias and not table.args.get("alias"):
        table.set("alias", exp.TableAlias(this=exp.to_identifier(alias)))


def _unknown(ctx: Context, table: exp.Table, schema: str, name: str):
    ns = ctx.namespace
    mesh = ns.mesh
    if schema.lower() in mesh.excluded:
        return ctx.error(Unavailable, f"quantum {schema} is unavailable: it failed to load "
                         f"({mesh.excluded[schema.lower()]})", table)
    if schema.lower() in ("system", "information_schema"):
        known = sorted(t for (s, t) in ns.system_tables if s == schema.lower())
        return ctx.error(UnknownObject, f"{schema}.{name} does not exist{_suggest(name, known)} "
                         f"({schema} tables: {', '.join(known)})", table)
    q = mesh.quanta.get(schema.lower())
    if q is None:
        return ctx.error(UnknownObject, f"{schema}.{name} does not exist: there is no quantum {schema!r}"
                         f"{_suggest(schema, list(mesh.quanta))}", table)
    return ctx.error(UnknownObject, f"{schema}.{name} does not exist: quantum {q.name} has "
                     f"{', '.join(sorted(d.name for d in q.datasets.values()))}"
                     f"{_suggest(name, list(q.datasets))}", table)
