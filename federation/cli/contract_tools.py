"""Contract tooling on the ``contract`` group: ``quanta contract init`` (a contract from existing data),
``quanta contract export`` (dbt, SQL DDL, JSON Schema) and ``quanta contract lint`` (best-practice gaps)."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .common import fail, friendly
from .contracts import contract


@contract.command("init")
@click.argument("source")
@click.option("--table", default=None, help="The table of a DuckDB or SQLite database or a PostgreSQL URL "
              "([schema.]table).")
@click.option("--dataset", default=None, help="The dataset's name in the contract (default: the file or table name).")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write the contract to this file (default: standard output).")
@click.option("--force", is_flag=True, help="Overwrite OUTPUT when it exists.")
@friendly
def contract_init(source, table, dataset, output, force):
    """Write an ODCS v3.1 contract for SOURCE: a Parquet, CSV or JSON file, a DuckDB or SQLite database
    (with --table), or a postgresql:// URL (with --table; credentials from the URL or PG* variables, never
    written). Types come from the data; required, unique, primary key, enums and pii classifications are
    suggestions from a profile of the data, listed in each property's customProperties for review. No data
    value is written except the enum values of low-cardinality columns that do not look personal. The
    server's path is SOURCE as given: in a mesh, a relative path is read from the mesh's data folder."""
    import yaml

    from ..contracts.infer import init_contract
    from ..progress import TerminalProgress

    if output and Path(output).exists() and not force:
        fail(f"{output} exists (use --force to overwrite it)")
    progress = TerminalProgress()
    try:
        doc = init_contract(source, table=table, dataset=dataset, progress=progress)
    finally:
        progress.close()
    text = ("# Written by quanta contract init: a draft to review (see customProperties 'suggestions').\n"
            + yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
    if output:
        Path(output).write_text(text)
        n = len(doc["schema"][0]["properties"])
        click.echo(f"wrote {output}: dataset {doc['schema'][0]['name']}, {n} column(s); review the suggestions, "
                   f"then run quanta contract lint {output}", err=True)
    else:
        click.echo(text, nl=False)


@contract.command("export")
@click.argument("contract_file", metavar="CONTRACT", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["dbt", "sql", "jsonschema"]), required=True)
@click.option("--dialect", type=click.Choice(["duckdb", "postgres"]), default="duckdb", show_default=True,
              help="The SQL dialect of --format sql.")
@click.option("--dbt", "dbt_kind", type=click.Choice(["sources", "models"]), default="sources", show_default=True,
              help="What --format dbt describes: the contract's data as dbt sources, or dbt models (contract enforced).")
@click.option("--dataset", default=None, help="Only this dataset of the contract.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None)
@friendly
def contract_export(contract_file, fmt, dialect, dbt_kind, dataset, output):
    """Export CONTRACT as dbt sources YAML with tests (not_null, unique, accepted_values), SQL DDL
    (DuckDB or PostgreSQL) or a JSON Schema of a row."""
    from ..contracts import export as ex
    from ..contracts.lint import read_contract

    doc, _ = read_contract(contract_file)
    try:
        if fmt == "dbt":
            text = ex.export_dbt(doc, dataset, dbt_kind)
        elif fmt == "sql":
            text = ex.export_sql(doc, dialect, dataset)
        else:
            text = ex.export_jsonschema(doc, dataset)
    except (TypeError, KeyError, AttributeError) as e:
        fail(f"{contract_file}: cannot export it ({type(e).__name__}: {e}); run quanta contract lint on it")
    if output:
        Path(output).write_text(text)
    else:
        click.echo(text, nl=False)


@contract.command("lint")
@click.argument("contract_file", metavar="CONTRACT", type=click.Path(dir_okay=False))
@friendly
def contract_lint(contract_file):
    """Report CONTRACT's best-practice gaps with their YAML paths; exit 1 when there is any."""
    from ..contracts.lint import lint_contract, read_contract

    doc, positions = read_contract(contract_file)
    gaps = lint_contract(doc, positions)
    for g in gaps:
        click.echo(f"{contract_file}:{g}")
    click.echo(f"{len(gaps)} gap(s)" if gaps else "no gap found", err=True)
    if gaps:
        sys.exit(1)
