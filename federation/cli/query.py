"""``quanta query``: one SQL query, as a table for people or csv, json, ndjson, parquet for machines."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import click

from .common import fail, format_table, friendly, main, mesh_option, user_option


@main.command()
@click.argument("sql")
@mesh_option
@user_option
@click.option("--format", "fmt", type=click.Choice(["table", "csv", "json", "ndjson", "parquet"]), default="table",
              show_default=True, help="Output format.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True), default=None,
              help="Write to this file instead of standard output.")
@click.option("--max-rows", default=40, show_default=True, help="Rows shown in table format.")
@click.option("--param", "-p", multiple=True, help="A query parameter for each ? in order (repeatable).")
@click.option("--purpose", default=None, help="The purpose of the query (contracts may limit purposes).")
@friendly
def query(sql: str, mesh: str | None, user: str | None, fmt: str, output: str | None, max_rows: int,
          param: tuple[str, ...], purpose: str | None) -> None:
    """Run one SQL query against the mesh, as --user, for --purpose."""
    from ..connection import connect

    conn = connect(mesh, user=user, purpose=purpose)
    started = time.perf_counter()
    result = conn.sql(sql, list(param) if param else None)
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if not output:
            fail("--format parquet needs --output FILE")
        with pq.ParquetWriter(output, result.schema) as writer:
            for batch in result.record_batches():
                writer.write_batch(batch)
        click.echo(f"wrote {result.rows_read} rows to {output}", err=True)
        return
    if fmt == "table":
        table = result.arrow()
        elapsed = time.perf_counter() - started  # the query's, not the drawing's
        if table.column_names == ["QUERY PLAN"]:  # an EXPLAIN: its lines as they are, like psql
            text = "QUERY PLAN\n" + "\n".join(str(line) for line in table.column(0).to_pylist())
        else:
            text = format_table(table, max_rows)
        text += f"\n({table.num_rows} row{'s' if table.num_rows != 1 else ''}, {elapsed:.3f} s)\n"
        for w in result.warnings:
            text += f"warning: {w}\n"
        _emit(text, output)
        return
    stream = open(output, "w", newline="", encoding="utf-8") if output else sys.stdout
    try:
        write_rows(result, fmt, stream)
    finally:
        if output:
            stream.close()


def write_rows(result, fmt: str, stream) -> None:
    import csv

    if fmt == "csv":
        w = csv.writer(stream)
        w.writerow(result.columns)
        for batch in result.record_batches():
            cols = [c.to_pylist() for c in batch.columns]
            w.writerows(zip(*cols))
    else:
        names = result.columns
        rows = []
        for batch in result.record_batches():
            cols = [c.to_pylist() for c in batch.columns]
            for row in zip(*cols):
                record = dict(zip(names, row))
                if fmt == "ndjson":
                    stream.write(json.dumps(record, default=str) + "\n")
                else:
                    rows.append(record)
        if fmt == "json":
            json.dump(rows, stream, default=str, indent=1)
            stream.write("\n")


def _emit(text: str, output: str | None) -> None:
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)
