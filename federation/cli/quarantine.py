"""``quanta quarantine list|show|release|drop``: the rows onboardings kept out (``onboarding/quarantine.py``).

    quanta quarantine list [DATASET] [--all] [--json]   batches: id, rows, the rules they fail (no value)
    quanta quarantine show ID [--limit N] [--json]      a batch's rows, read as the user (masks, row filters)
    quanta quarantine release ID [--json]               re-check; publish the rows that now pass as a new version
    quanta quarantine drop ID                           discard the batch (recorded as an event)

A batch's id is ``<quantum>.<dataset>.v<N>``: the version it was kept out of. Only the quantum's owners and
data engineers may use these commands. Exit status: 0 done; 1 another error; 2 a usage error; 3 an unknown
quarantine id or dataset; 4 access denied; 5 nothing to do (every row still fails a rule, or the batch was
released or dropped already); 6 the new version was refused by the onboarding (nothing changed).
"""

from __future__ import annotations

import json

import click

from .. import errors
from .common import fail, format_table, main, mesh_option, open_platform, rows_table, user_option, username

EXIT_UNKNOWN, EXIT_DENIED, EXIT_NOTHING, EXIT_REFUSED = 3, 4, 5, 6


def _run(fn):
    """Run ``fn`` and turn the expected failures into one line and this command group's exit status."""
    from ..onboarding.pipeline import OnboardingRejected

    try:
        return fn()
    except errors.UnknownObject as e:
        fail(str(e), EXIT_UNKNOWN)
    except errors.AccessDenied as e:
        fail(str(e), EXIT_DENIED)
    except errors.Conflict as e:
        fail(str(e), EXIT_NOTHING)
    except OnboardingRejected as e:
        fail(f"the new version was refused, nothing changed: {e}", EXIT_REFUSED)
    except errors.CatalogError as e:
        fail(e.message)
    except (errors.Error, OSError, ValueError) as e:
        fail(str(e))


@main.group()
def quarantine():
    """The rows onboardings kept out: list, show, release, drop."""


@quarantine.command("list")
@click.argument("dataset", required=False)
@mesh_option
@user_option
@click.option("--all", "every", is_flag=True, help="Released and dropped batches too.")
@click.option("--json", "as_json", is_flag=True)
def list_(dataset, mesh, user, every, as_json):
    """The quarantine batches of DATASET (default: every dataset you run the control plane of)."""
    from ..onboarding.quarantine import list_batches

    platform = _run(lambda: open_platform(mesh))
    rows = _run(lambda: list_batches(platform, platform.principal(username(user)), dataset, every))
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    if not rows:
        click.echo("no rows in quarantine")
        return
    shown = [{**r, "rules": ", ".join(f"{k} ({v})" for k, v in sorted(r["rules"].items()))} for r in rows]
    click.echo(rows_table(shown, ["id", "status", "rows", "rules", "quarantined_at", "released_into"]))


@quarantine.command()
@click.argument("ident", metavar="ID")
@mesh_option
@user_option
@click.option("--limit", type=int, default=None, help="At most this many rows.")
@click.option("--json", "as_json", is_flag=True)
def show(ident, mesh, user, limit, as_json):
    """The rows of quarantine ID with the rules they fail, read as you (your masks and row filters apply)."""
    from ..onboarding.quarantine import show as run

    platform = _run(lambda: open_platform(mesh))
    summary, table = _run(lambda: run(platform, ident, platform.principal(username(user)), limit))
    if as_json:
        click.echo(json.dumps({**summary, "rows_shown": table.to_pylist()}, indent=1, default=str))
        return
    click.echo(f"{summary['id']}: {summary['status']}, {summary['rows']} row(s); rules: "
               + (", ".join(f"{k} ({v})" for k, v in sorted(summary["rules"].items())) or "none"))
    if table.num_columns:
        click.echo(format_table(table))


@quarantine.command()
@click.argument("ident", metavar="ID")
@mesh_option
@user_option
@click.option("--json", "as_json", is_flag=True)
def release(ident, mesh, user, as_json):
    """Re-check quarantine ID with the rules in force and publish the rows that pass as a new version."""
    from ..onboarding.quarantine import release as run

    platform = _run(lambda: open_platform(mesh))
    report, summary = _run(lambda: run(platform, ident, platform.principal(username(user))))
    if as_json:
        click.echo(json.dumps({"report": report.to_dict(), "quarantine": summary}, indent=1, default=str))
        return
    left = f"; {summary['rows']} row(s) still fail and stay in quarantine" if summary["status"] == "held" else ""
    click.secho(f"{report.dataset} v{report.version} published: {report.rows_published:,} rows, with the rows "
                f"released from {summary['id']}{left}", fg="green")


@quarantine.command()
@click.argument("ident", metavar="ID")
@mesh_option
@user_option
def drop(ident, mesh, user):
    """Discard quarantine ID (its rows are deleted; the drop is recorded as an event)."""
    from ..onboarding.quarantine import drop as run

    platform = _run(lambda: open_platform(mesh))
    summary = _run(lambda: run(platform, ident, platform.principal(username(user))))
    click.secho(f"quarantine {summary['id']} dropped", fg="green")
