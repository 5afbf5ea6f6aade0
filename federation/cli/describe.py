"""``quanta describe`` and ``quanta lineage``: the dictionary and the column lineage of the mesh."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import default_mesh
from .common import fail, format_table, friendly, main, mesh_option


@main.command()
@click.argument("name")
@mesh_option
@friendly
def describe(name: str, mesh: str | None) -> None:
    """The dictionary of a quantum (NAME) or a dataset (QUANTUM.DATASET)."""
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    m = platform.mesh
    parts = name.split(".")
    q = m.quanta.get(parts[0].lower())
    if q is None:
        if parts[0].lower() in m.excluded:
            fail(f"quantum {parts[0]} is unavailable: {m.excluded[parts[0].lower()]}")
        fail(f"there is no quantum {parts[0]!r}; quanta: {', '.join(sorted(m.quanta))}")
    if len(parts) == 1:
        click.secho(f"{q.name}", bold=True, nl=False)
        kind = f"{q.type} data product, " if q.type else ""  # ODPS v1.1: sourceAligned, aggregate...
        click.echo(f"  ({kind}{q.domain} domain, {q.status}, version {q.version or '-'})")
        if q.deprecated:
            click.secho("  DEPRECATED: this data product is deprecated", fg="yellow")
        if q.description:
            click.echo(f"  {q.description}")
        if q.synonyms:
            click.echo(f"  synonyms: {', '.join(q.synonyms)}")
        click.echo(f"  owners: {', '.join(q.owners) or '-'}   product file: {q.file}")
        for p in q.ports:
            arrow = "<-" if p.direction == "input" else "->"
            src = f" from {p.source_quantum}" if p.source_quantum else ""
            flag = " (deprecated)" if p.deprecated else ""
            click.echo(f"  {p.direction:6} port {p.name or '-'} {arrow} contract {p.contract_id}{src}{flag}")
        click.echo("  datasets:")
        for ds in q.datasets.values():
            flag = "deprecated: " if ds.deprecated else ""
            click.echo(f"    {q.name}.{ds.name:30} {ds.kind:8} {len(ds.columns):3} columns  {flag}"
                       f"{ds.description or ''}")
        return
    if len(parts) != 2:
        fail("name a quantum (QUANTUM) or a dataset (QUANTUM.DATASET)")
    ds = q.datasets.get(parts[1].lower())
    if ds is None:
        fail(f"quantum {q.name} has no dataset {parts[1]!r}; it has: {', '.join(sorted(q.datasets))}")
    contract = m.contracts.get(ds.contract_id)
    click.secho(ds.qualified_name, bold=True, nl=False)
    click.echo(f"  ({ds.kind} dataset, contract {ds.contract_id} v{contract.version if contract else '?'}, "
               f"{contract.status if contract else '?'})")
    if ds.deprecated:
        click.secho("  DEPRECATED: this dataset is deprecated (its contract says so)", fg="yellow")
    if q.deprecated:
        click.secho(f"  DEPRECATED: its data product {q.name} is deprecated", fg="yellow")
    if ds.description:
        click.echo(f"  {ds.description}")
    if ds.synonyms:
        click.echo(f"  synonyms: {', '.join(ds.synonyms)}")
    if ds.source:
        click.echo(f"  data: {ds.source.kind} {ds.source.location}" + (f" table {ds.source.table}"
                                                                       if ds.source.table else ""))
    if ds.sql:
        click.echo(f"  sql: {' '.join(ds.sql.split())}")
        click.echo(f"  reads: {', '.join(f'{a}.{b}' for a, b in ds.reads)}")
    import pyarrow as pa

    rows = [(c.ordinal, c.name, c.data_type, c.classification or "", ",".join(c.tags),
             " ".join(w for w, on in (("PK", c.primary_key), ("required", c.required), ("unique", c.unique),
                                      ("deprecated", c.deprecated)) if on),
             ",".join(c.enum_values), ",".join(c.synonyms), c.description or "") for c in ds.columns]
    # ODCS v3.2: values (a column's enum), synonyms, deprecated
    names = ["#", "column", "type", "classification", "tags", "constraints", "values", "synonyms", "description"]
    table = pa.table({n: [str(r[i]) for r in rows] for i, n in enumerate(names)})
    click.echo(format_table(table, max_rows=10_000, max_width=60))


@main.command("lineage")
@click.argument("dataset")
@mesh_option
@click.option("--svg", "svg", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the lineage, down to columns, as an SVG picture.")
@friendly
def lineage_cmd(dataset: str, mesh: str | None, svg: str | None) -> None:
    """The column lineage of a dataset (QUANTUM.DATASET): where each column comes from, and how."""
    import pyarrow as pa

    from ..lineage.svg import lineage_svg
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    m = platform.mesh
    q, _, d = dataset.partition(".")
    ds = m.dataset(q, d) if d else None
    if ds is None:
        fail(f"there is no dataset {dataset!r}; name it QUANTUM.DATASET")
    edges = platform.lineage.edges
    mine = [e for e in edges if (e.target_quantum.lower(), e.target_dataset.lower()) == (ds.quantum.lower(), ds.name.lower())]
    used = [e for e in edges if (e.source_quantum.lower(), e.source_dataset.lower()) == (ds.quantum.lower(), ds.name.lower())]
    click.secho(f"{ds.qualified_name} ({ds.kind})", bold=True)
    if mine:
        table = pa.table({"column": [e.target_column for e in mine],
                          "from": [f"{e.source_quantum}.{e.source_dataset}.{e.source_column}" for e in mine],
                          "transformation": [e.transformation for e in mine]})
        click.echo(format_table(table, max_rows=10_000, max_width=60))
    if used:
        click.echo("read by: " + ", ".join(sorted({f"{e.target_quantum}.{e.target_dataset}" for e in used})))
    if not mine and not used:
        click.echo("no lineage: a source dataset that no derived dataset reads")
    if svg:
        Path(svg).write_text(lineage_svg(m, edges, ds), encoding="utf-8")
        click.echo(f"wrote {svg}", err=True)
