"""What every ``quanta`` command shares: the main group, the ``--mesh`` and ``--user`` options, one-line
errors (``friendly``), the platform of a command, and tables for people.

Errors are one clear message on stderr and a non-zero exit status, never a traceback. This module
imports only click and Quanta's errors: what a command needs beyond that it imports when it runs, so
``quanta query`` does not pay for the HTTP server, Polars or the OpenLineage client.
"""

from __future__ import annotations

import functools
import getpass
import io
import os
import sys

import click

from .. import errors


def fail(message: str, code: int = 1) -> None:
    click.secho(f"error: {message}", fg="red", err=True)
    sys.exit(code)


def friendly(fn):
    """Turn every expected failure into one line and an exit status."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except errors.CatalogError as e:
            click.secho(f"error: {e.message}", fg="red", err=True)
            for p in e.problems:
                click.echo(f"  {p}", err=True)
            sys.exit(1)
        except errors.Error as e:
            fail(str(e))
        except (OSError, ValueError) as e:
            fail(str(e))
        except KeyboardInterrupt:
            fail("interrupted", 130)

    return wrapper


mesh_option = click.option("--mesh", "mesh", envvar="QUANTA_MESH", default=None, metavar="PATH",
                           help="The mesh folder (default: $QUANTA_MESH or catalogs/greatparts).")
user_option = click.option("--user", "-u", default=None, envvar="QUANTA_USER", help="The principal to query as.")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="quanta-federation", prog_name="quanta")
def main() -> None:
    """Quanta: SQL over a mesh of data quanta (ODPS products, ODCS contracts), governed on every query."""


def username(user: str | None) -> str:
    """The principal a control-plane command acts as: ``--user``, else ``$QUANTA_USER``, else the login."""
    return user or os.environ.get("QUANTA_USER") or getpass.getuser()


def open_platform(mesh: str | None):
    from ..config import default_mesh
    from ..platform import Platform

    return Platform(mesh or default_mesh())


def format_table(table, max_rows: int = 40, max_width: int = 40) -> str:
    """A plain text table, like DuckDB's CLI: header, types, rows (truncated), aligned."""
    names = table.column_names
    from ..result import sql_type

    types = [sql_type(f.type).lower() for f in table.schema]
    shown = table.slice(0, max_rows)
    cols = [c.to_pylist() for c in shown.columns]
    rows = list(zip(*cols)) if cols else []

    def cell(v) -> str:
        if v is None:
            return "NULL"
        s = str(v).replace("\n", " ")
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    body = [[cell(v) for v in row] for row in rows]
    widths = [max([len(n), len(t)] + [len(r[i]) for r in body]) for i, (n, t) in enumerate(zip(names, types))]
    numeric = [t.split("(")[0] in ("bigint", "integer", "smallint", "tinyint", "double", "float", "decimal",
                                   "hugeint", "ubigint") for t in types]

    def line(values, right=None):
        parts = []
        for i, v in enumerate(values):
            parts.append(v.rjust(widths[i]) if right and right[i] else v.ljust(widths[i]))
        return "│ " + " │ ".join(parts) + " │"

    sep = lambda l, m, r: l + m.join("─" * (w + 2) for w in widths) + r  # noqa: E731
    out = io.StringIO()
    out.write(sep("┌", "┬", "┐") + "\n")
    out.write(line(names) + "\n")
    out.write(line(types) + "\n")
    out.write(sep("├", "┼", "┤") + "\n")
    for r in body:
        out.write(line(r, numeric) + "\n")
    if table.num_rows > max_rows:
        out.write(line(["…"] * len(names)) + "\n")
    out.write(sep("└", "┴", "┘"))
    return out.getvalue()


def rows_table(rows: list[dict], columns: list[str]) -> str:
    """A table of ``rows`` (dicts) showing ``columns``, every value as text."""
    import pyarrow as pa

    t = pa.table({c: [("" if r.get(c) is None else str(r.get(c))) for r in rows] for c in columns})
    return format_table(t, max_rows=10_000, max_width=70)


def results_table(run) -> str:
    """The results of a quality run, one rule a row."""
    rows = []
    for r in run.results:
        measured = "" if r.measured is None else f"{r.measured:g}"
        rows.append({"rule": r.rule, "column": r.column, "dimension": r.dimension, "severity": r.severity,
                     "measured": measured, "threshold": r.threshold, "status": r.status,
                     "note": r.message or (f"{len(r.sample)} sample rows" if r.sample else "")})
    return rows_table(rows, ["rule", "column", "dimension", "severity", "measured", "threshold", "status", "note"])
