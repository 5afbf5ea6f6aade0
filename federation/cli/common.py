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
@click.pass_context
def main(ctx: click.Context) -> None:
    """Quanta: SQL over a mesh of data quanta (ODPS products, ODCS contracts), governed on every query."""
    ctx.call_on_close(without_pandas())


class _NoPandas:
    """An import finder that refuses pandas (see ``without_pandas``)."""

    @staticmethod
    def find_spec(name, path=None, target=None):
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is not loaded by the quanta command (federation.cli.common.without_pandas)")
        return None


def without_pandas():
    """Keep pandas (~150 ms to import) out of a ``quanta`` command, which never uses it; returns the
    function that allows it again (called when the command ends).

    Installed, DuckDB and pyarrow find no pandas: DuckDB imports pandas, when installed, to bind the
    parameters of any statement (asking whether a value is a pandas object), and pyarrow's first
    ``pa.array(list)`` does the same (pyarrow then remembers "no pandas" for the process: a pandas
    object given to ``pa.array`` later would be read as a sequence).
    """
    if "pandas" in sys.modules or _NoPandas in sys.meta_path:
        return lambda: None
    sys.meta_path.insert(0, _NoPandas)

    def allow() -> None:
        if _NoPandas in sys.meta_path:
            sys.meta_path.remove(_NoPandas)

    return allow


def username(user: str | None) -> str:
    """The principal a control-plane command acts as: ``--user``, else ``$QUANTA_USER``, else the login."""
    return user or os.environ.get("QUANTA_USER") or getpass.getuser()


def open_platform(mesh: str | None):
    from ..config import default_mesh
    from ..platform import Platform

    return Platform(mesh or default_mesh())


NUMERIC = ("bigint", "integer", "smallint", "tinyint", "double", "float", "decimal", "hugeint", "ubigint")


def format_table(table, max_rows: int = 40, max_width: int = 40) -> str:
    """A text table like DuckDB's CLI, drawn by ``rich``: names and types in the header, numbers right-aligned,
    NULL for nulls, cells cut at ``max_width`` characters, and a row of "…" when rows were left out.
    Plain text (no colour, no wrapping: lines are as wide as the table), so it reads the same in a
    terminal, a pipe or a file."""
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    from ..result import sql_type

    names = table.column_names
    types = [sql_type(f.type).lower() for f in table.schema]
    grid = Table(box=box.SQUARE, header_style="", show_edge=True, pad_edge=True)
    for name, type_ in zip(names, types):
        numeric = type_.split("(")[0] in NUMERIC
        grid.add_column(Text(f"{name}\n{type_}", justify="left"), justify="right" if numeric else "left",
                        no_wrap=True)

    def cell(v) -> Text:
        if v is None:
            return Text("NULL")
        s = str(v).replace("\n", " ")
        return Text(s if len(s) <= max_width else s[: max_width - 1] + "…")

    shown = table.slice(0, max_rows)
    for row in zip(*(c.to_pylist() for c in shown.columns)):
        grid.add_row(*(cell(v) for v in row))
    if table.num_rows > max_rows:
        grid.add_row(*(Text("…") for _ in names))
    out = io.StringIO()
    Console(file=out, width=1_000_000, color_system=None, force_terminal=False, highlight=False,
            emoji=False, markup=False, soft_wrap=False).print(grid)
    return "\n".join(line.rstrip() for line in out.getvalue().splitlines())


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
