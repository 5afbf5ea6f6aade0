"""Publishing commands: ``quanta onboard``, ``refresh`` (a mart), ``versions``, ``rollback``, ``events``."""

from __future__ import annotations

import json
import sys

import click

from .common import friendly, main, mesh_option, open_platform, results_table, rows_table, user_option, username


@main.command()
@click.argument("dataset")
@click.argument("sources", nargs=-1, required=False)
@mesh_option
@user_option
@click.option("--format", "fmt", type=click.Choice(["parquet", "csv", "json"]), default=None,
              help="The files' format (default: from their extension).")
@click.option("--postgres", "postgres", default=None, metavar="SERVER",
              help="Snapshot from a PostgreSQL server (a contract's server name, or a connection string).")
@click.option("--query", "pg_query", default=None, help="With --postgres: the query whose rows are the batch.")
@click.option("--quarantine", "quarantine", is_flag=True,
              help="Quarantine rows failing row-level error rules instead of refusing the batch.")
@click.option("--strict", is_flag=True, help="Columns the contract does not declare are an error.")
@click.option("--dry-run", is_flag=True, help="Check the batch only: publish and record nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
@friendly
def onboard(dataset, sources, mesh, user, fmt, postgres, pg_query, quarantine, strict, dry_run, as_json):
    """Check a batch (FILES or globs, or --postgres SERVER --query SQL) against DATASET's contract
    and publish it as a new version."""
    from ..onboarding.control import onboard as run
    from ..onboarding.pipeline import OnboardingRejected
    from ..progress import TerminalProgress

    if bool(postgres) != bool(pg_query):
        raise click.UsageError("--postgres and --query go together")
    if bool(sources) == bool(postgres):
        raise click.UsageError("give the batch's FILES, or --postgres SERVER --query SQL")
    platform = open_platform(mesh)
    principal = platform.principal(username(user))
    progress = None if as_json else TerminalProgress()
    batch = list(sources)
    if postgres:
        from ..onboarding.control import authorize, dataset_of
        from ..onboarding.sources import from_postgres

        authorize(platform, principal, dataset_of(platform, dataset).quantum, "onboard data")
        batch = from_postgres(platform, postgres, pg_query, principal)
        if progress:
            progress(f"read {batch.num_rows:,} rows from PostgreSQL")
    try:
        report = run(platform, dataset, batch, principal, fmt=fmt,
                     on_error="quarantine" if quarantine else None, strict=strict, dry_run=dry_run,
                     progress=progress)
    except OnboardingRejected as e:
        if progress:
            progress.close()
        if as_json:
            click.echo(json.dumps(e.report.to_dict(), indent=1, default=str))
        else:
            if e.report.checks is not None:
                click.echo(results_table(e.report.checks))
            click.secho(f"refused: {dataset}", fg="red", bold=True)
            for p in e.report.problems:
                click.secho(f"  - {p}", fg="red")
        sys.exit(2)
    finally:
        if progress:
            progress.close()
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=1, default=str))
        return
    click.echo(results_table(report.checks))
    for w in report.warnings:
        click.secho(f"warning: {w}", fg="yellow")
    if dry_run:
        click.secho(f"{dataset}: the batch of {report.rows_in:,} rows would be published"
                    + (f" ({report.quarantined:,} rows quarantined)" if report.quarantined else ""), fg="green")
        return
    rate = report.rows_in / report.seconds["total"] if report.seconds.get("total") else 0
    click.secho(f"published {dataset} v{report.version}: {report.rows_published:,} rows"
                + (f", {report.quarantined:,} quarantined" if report.quarantined else "")
                + f" ({report.bytes:,} bytes, {report.seconds['total']:.2f} s, {rate:,.0f} rows/s)",
                fg="green", bold=True)


@main.command()
@click.argument("dataset")
@mesh_option
@user_option
@friendly
def refresh(dataset, mesh, user):
    """Rebuild a materialised mart (a derived dataset with materialize: true) as a new version."""
    from ..onboarding.marts import refresh as run
    from ..progress import TerminalProgress

    platform = open_platform(mesh)
    progress = TerminalProgress()
    try:
        report = run(platform, dataset, platform.principal(username(user)), progress=progress)
    finally:
        progress.close()
    click.secho(f"refreshed {dataset} v{report.version}: {report.rows_published:,} rows", fg="green", bold=True)


@main.command()
@click.argument("dataset")
@mesh_option
@user_option
@click.option("--json", "as_json", is_flag=True)
@friendly
def versions(dataset, mesh, user, as_json):
    """The versions of DATASET: published, failed, rolled back, expired (for those who may read it)."""
    from ..onboarding.control import versions as get

    platform = open_platform(mesh)
    rows = [v.__dict__ for v in get(platform, dataset, platform.principal(username(user)))]
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
        return
    for r in rows:
        r["quality"] = ", ".join(f"{k} {v}" for k, v in (r["quality_summary"] or {}).items() if k != "rows")
    click.echo(rows_table(rows, ["version", "status", "created_at", "rows", "bytes", "contract_version",
                             "quarantined", "principal", "quality"]))

@main.command()
@click.argument("dataset")
@click.argument("version")
@mesh_option
@user_option
@friendly
def rollback(dataset, version, mesh, user):
    """Serve VERSION (3 or v3) of DATASET again."""
    from ..onboarding.control import rollback as run

    platform = open_platform(mesh)
    v = run(platform, dataset, int(str(version).lstrip("vV")), platform.principal(username(user)))
    click.secho(f"{dataset} now serves v{v.version} ({v.rows:,} rows)", fg="green")


@main.command()
@mesh_option
@user_option
@click.option("--kind", default=None, help="Only events of this kind (version_published, check_failed...).")
@click.option("--json", "as_json", is_flag=True)
@friendly
def events(mesh, user, kind, as_json):
    """What happened: versions published, onboardings refused, checks failed, SLOs breached (the events
    the user may see, as in system.events)."""
    platform = open_platform(mesh)
    sql = "select * from system.events" + (" where kind = ?" if kind else "") + " order by event_id"
    result = platform.query(sql, platform.principal(username(user)), [kind] if kind else None, interface="cli")
    try:
        rows = result.arrow().to_pylist()
    finally:
        result.close()
    if as_json:
        click.echo(json.dumps(rows, indent=1, default=str))
    else:
        click.echo(rows_table(rows, ["event_id", "at", "kind", "quantum", "dataset", "version", "principal",
                                 "message"]))
