"""The control plane's commands of ``quanta`` (registered on the main group by ``federation.cli``).

    quanta onboard QUANTUM.DATASET FILE...   [--quarantine] [--strict] [--format F] [--json]
    quanta check QUANTUM.DATASET             run the quality rules on the served data (+ SLOs)
    quanta check --all                       every dataset the user may check, a summary at the end
    quanta versions QUANTUM.DATASET          the version history
    quanta rollback QUANTUM.DATASET VERSION  serve an earlier version again
    quanta diff OLD.yaml NEW.yaml            classify contract changes: breaking or not
    quanta quality history QUANTUM.DATASET [--svg out.svg]   results over time (and a picture)
    quanta quality rules QUANTUM.DATASET [--set rules.yaml] [--write-contract]   show, replace, write into
                                             the contract's file
    quanta events [--kind K]                 what happened
    quanta deprecate|retire CONTRACT_ID VERSION   contract version status

Every command acts as ``--user`` (or ``$QUANTA_USER``, else the login name).
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path

import click

from ..progress import TerminalProgress


def _user(user: str | None) -> str:
    return user or os.environ.get("QUANTA_USER") or getpass.getuser()


def _platform(mesh: str | None):
    from ..config import default_mesh
    from ..platform import Platform

    return Platform(mesh or default_mesh())


def _table(rows: list[dict], columns: list[str]) -> str:
    import pyarrow as pa

    from ..cli import format_table

    t = pa.table({c: [("" if r.get(c) is None else str(r.get(c))) for r in rows] for c in columns})
    return format_table(t, max_rows=10_000, max_width=70)


def _results_table(run) -> str:
    rows = []
    for r in run.results:
        measured = "" if r.measured is None else f"{r.measured:g}"
        rows.append({"rule": r.rule, "column": r.column, "dimension": r.dimension, "severity": r.severity,
                     "measured": measured, "threshold": r.threshold, "status": r.status,
                     "note": r.message or (f"{len(r.sample)} sample rows" if r.sample else "")})
    return _table(rows, ["rule", "column", "dimension", "severity", "measured", "threshold", "status", "note"])


def register(main: click.Group) -> None:  # noqa: C901 - one place for the commands
    from ..cli import friendly, mesh_option, user_option

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
        from .control import onboard as run
        from .pipeline import OnboardingRejected

        if bool(postgres) != bool(pg_query):
            raise click.UsageError("--postgres and --query go together")
        if bool(sources) == bool(postgres):
            raise click.UsageError("give the batch's FILES, or --postgres SERVER --query SQL")
        platform = _platform(mesh)
        principal = platform.principal(_user(user))
        progress = None if as_json else TerminalProgress()
        batch = list(sources)
        if postgres:
            from .control import authorize, dataset_of
            from .sources import from_postgres

            authorize(platform, principal, dataset_of(platform, dataset).quantum, "onboard data")
            batch = from_postgres(platform, postgres, pg_query)
            if progress:
                progress(f"read {batch.num_rows:,} rows from PostgreSQL")
        try:
            report = run(platform, dataset, batch, principal, fmt=fmt,
                         on_error="quarantine" if quarantine else None, strict=strict, dry_run=dry_run,
                         progress=progress)
        except OnboardingRejected as e:
            if as_json:
                click.echo(json.dumps(e.report.to_dict(), indent=1, default=str))
            else:
                if e.report.checks is not None:
                    click.echo(_results_table(e.report.checks))
                click.secho(f"refused: {dataset}", fg="red", bold=True)
                for p in e.report.problems:
                    click.secho(f"  - {p}", fg="red")
            sys.exit(2)
        if as_json:
            click.echo(json.dumps(report.to_dict(), indent=1, default=str))
            return
        click.echo(_results_table(report.checks))
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
        from .marts import refresh as run

        platform = _platform(mesh)
        report = run(platform, dataset, platform.principal(_user(user)),
                     progress=TerminalProgress())
        click.secho(f"refreshed {dataset} v{report.version}: {report.rows_published:,} rows", fg="green", bold=True)

    @main.command()
    @click.argument("dataset", required=False)
    @mesh_option
    @user_option
    @click.option("--all", "every", is_flag=True,
                  help="Check every dataset you may check (owner or data engineer), one after the other.")
    @click.option("--json", "as_json", is_flag=True)
    @click.option("--no-slo", is_flag=True, help="Skip the SLO evaluation.")
    @friendly
    def check(dataset, mesh, user, every, as_json, no_slo):
        """Run DATASET's quality rules (and SLOs) now, or those of every dataset you may check (--all);
        exit 1 when a rule fails."""
        from .control import check as run, check_all, dataset_of, evaluate_slos

        if bool(dataset) == every:
            raise click.UsageError("give a DATASET, or --all")
        platform = _platform(mesh)
        principal = platform.principal(_user(user))
        if every:
            progress = None if as_json else (lambda i, n, name: click.echo(f"[{i}/{n}] {name} ...", err=True))
            checks = [c.to_dict() for c in check_all(platform, principal, slo=not no_slo, progress=progress)]
            failed = [c for c in checks if c["status"] in ("fail", "error")]
            if as_json:
                click.echo(json.dumps({"datasets": checks, "failed": len(failed)}, indent=1, default=str))
            else:
                done = [c for c in checks if c["status"] != "skipped"]
                click.echo(_table(done, ["dataset", "rules", "pass", "warn", "fail", "error", "slo", "status",
                                         "message"]))
                skipped = [c["dataset"] for c in checks if c["status"] == "skipped"]
                if skipped:
                    click.echo(f"skipped {len(skipped)} dataset(s) you may not check: {', '.join(skipped)}")
                click.secho(f"{len(done)} dataset(s) checked, {len(failed)} failing", bold=True,
                            fg="red" if failed else "green")
            if failed:
                sys.exit(1)
            return
        result = run(platform, dataset, principal)
        slos = [] if no_slo else evaluate_slos(platform, [dataset_of(platform, dataset)], principal.name)
        if as_json:
            click.echo(json.dumps({**result.to_dict(), "slo": [s.to_dict() for s in slos]}, indent=1, default=str))
        else:
            click.echo(_results_table(result))
            if slos:
                click.echo(_table([s.to_dict() for s in slos], ["property", "target", "measured", "status",
                                                               "message"]))
            color = {"pass": "green", "warn": "yellow"}.get(result.status, "red")
            click.secho(f"{dataset}: {result.status} ({result.rows:,} rows, {len(result.results)} rules, "
                        f"{result.queries} queries)", fg=color, bold=True)
        if result.status in ("fail", "error"):
            sys.exit(1)

    @main.command()
    @click.argument("dataset")
    @mesh_option
    @user_option
    @click.option("--json", "as_json", is_flag=True)
    @friendly
    def versions(dataset, mesh, user, as_json):
        """The versions of DATASET: published, failed, rolled back, expired (for those who may read it)."""
        from .control import versions as get

        platform = _platform(mesh)
        rows = [v.__dict__ for v in get(platform, dataset, platform.principal(_user(user)))]
        if as_json:
            click.echo(json.dumps(rows, indent=1, default=str))
            return
        for r in rows:
            r["quality"] = ", ".join(f"{k} {v}" for k, v in (r["quality_summary"] or {}).items() if k != "rows")
        click.echo(_table(rows, ["version", "status", "created_at", "rows", "bytes", "contract_version",
                                 "quarantined", "principal", "quality"]))

    @main.command()
    @click.argument("dataset")
    @click.argument("version")
    @mesh_option
    @user_option
    @friendly
    def rollback(dataset, version, mesh, user):
        """Serve VERSION (3 or v3) of DATASET again."""
        from .control import rollback as run

        platform = _platform(mesh)
        v = run(platform, dataset, int(str(version).lstrip("vV")), platform.principal(_user(user)))
        click.secho(f"{dataset} now serves v{v.version} ({v.rows:,} rows)", fg="green")

    @main.command()
    @click.argument("old", type=click.Path(exists=True, dir_okay=False))
    @click.argument("new", type=click.Path(exists=True, dir_okay=False))
    @click.option("--json", "as_json", is_flag=True)
    @friendly
    def diff(old, new, as_json):
        """Classify each change between two contract files (OLD, NEW) as breaking or not; exit 1 when a
        breaking change comes without a new major version."""
        from .evolution import diff_files

        out = diff_files(old, new)
        if as_json:
            click.echo(json.dumps(out, indent=1))
        else:
            for c in out["changes"]:
                click.secho(f"  {'BREAKING' if c['breaking'] else 'ok      '}  {c['message']}",
                            fg="red" if c["breaking"] else None)
            click.echo(f"{len(out['changes'])} change(s), {'breaking' if out['breaking'] else 'none breaking'}; "
                       f"version {out['old_version']} -> {out['new_version']}")
            if out["needs_major_version"]:
                click.secho("a breaking change needs a new major version", fg="red", bold=True)
        if out["needs_major_version"]:
            sys.exit(1)

    @main.group()
    def quality():
        """Quality rules and their history."""

    @quality.command("history")
    @click.argument("dataset")
    @mesh_option
    @user_option
    @click.option("--svg", "svg_path", type=click.Path(dir_okay=False), default=None,
                  help="Write a picture of quality and row counts over time.")
    @click.option("--json", "as_json", is_flag=True)
    @friendly
    def history(dataset, mesh, user, svg_path, as_json):
        """Quality results of DATASET over time, run by run (for those who may read it)."""
        from ..quality import history as H
        from .control import dataset_of, require_read, store_of

        platform = _platform(mesh)
        ds = dataset_of(platform, dataset)
        require_read(platform, platform.principal(_user(user)), ds, "read the quality history")
        results = store_of(platform).results(ds.quantum, ds.name)
        runs = H.runs(results)
        if svg_path:
            Path(svg_path).write_text(H.svg(ds.qualified_name, results), encoding="utf-8")
        if as_json:
            click.echo(json.dumps([{k: v for k, v in r.items() if k != "statuses"} for r in runs], default=str,
                                  indent=1))
            return
        click.echo(_table(runs, ["at", "version", "rows", "passed", "total", "worst"]))
        if svg_path:
            click.echo(f"wrote {svg_path}", err=True)

    @quality.command("samples")
    @click.argument("dataset")
    @mesh_option
    @user_option
    @click.option("--json", "as_json", is_flag=True)
    @friendly
    def samples_cmd(dataset, mesh, user, as_json):
        """The rules of DATASET that failed at its latest check, with failing rows read as the user (their
        grant, masks and row filters): the history keeps no sample."""
        from .control import samples

        platform = _platform(mesh)
        found = samples(platform, dataset, platform.principal(_user(user)))
        if as_json:
            click.echo(json.dumps(found, indent=1, default=str))
            return
        if not found:
            click.echo("no failing rule at the latest check")
        for s in found:
            click.echo(f"{s['rule']} ({s['status']}, {s['failing_rows']} failing rows at {s['checked_at']})")
            if s["sample"]:
                click.echo(_table(s["sample"], list(s["sample"][0])))
            else:
                click.echo(f"  {s['message'] or 'none of the failing rows is visible to you'}")

    @quality.command("rules")
    @click.argument("dataset")
    @mesh_option
    @user_option
    @click.option("--set", "rules_file", type=click.Path(exists=True, dir_okay=False), default=None,
                  help="Replace the rules with those of this YAML file (a list of ODCS quality entries).")
    @click.option("--write-contract", is_flag=True,
                  help="Write the rules set through the control plane into the contract's YAML file (for its git "
                       "repository); the contract is then their source again.")
    @friendly
    def rules_cmd(dataset, mesh, user, rules_file, write_contract):
        """Show DATASET's quality rules, replace them (--set FILE), write them into the contract
        (--write-contract)."""
        from ..catalog.yamlio import YamlError, load_yaml
        from .contracts import write_rules
        from .control import dataset_of, rules_of, set_rules

        platform = _platform(mesh)
        principal = platform.principal(_user(user))
        if rules_file:
            try:
                entries, _ = load_yaml(Path(rules_file))
            except YamlError as e:
                raise click.ClickException(f"{rules_file}" + (f", line {e.line}" if e.line else "") + f": {e}")
            set_rules(platform, dataset, entries, principal)
        if write_contract:
            click.echo(f"wrote the rules of {dataset} into {write_rules(platform, dataset, principal)}", err=True)
        rules = rules_of(platform, dataset_of(platform, dataset))
        click.echo(_table([r.describe() for r in rules], ["rule", "type", "metric", "column", "threshold",
                                                          "severity", "origin"]))

    for status, verb in (("deprecated", "deprecate"), ("retired", "retire")):
        def make(status=status, verb=verb):
            @main.command(verb, help=f"Mark version VERSION of contract CONTRACT_ID {status} (owners and data "
                          f"engineers)." + (" Onboarding under it is refused." if status == "retired" else
                                            " Onboarding under it warns."))
            @click.argument("contract_id")
            @click.argument("version")
            @mesh_option
            @user_option
            @friendly
            def cmd(contract_id, version, mesh, user):
                from .control import set_contract_status

                platform = _platform(mesh)
                set_contract_status(platform, contract_id, version, status, platform.principal(_user(user)))
                click.echo(f"contract {contract_id} version {version} is {status}")
        make()

    @main.command()
    @mesh_option
    @user_option
    @click.option("--kind", default=None, help="Only events of this kind (version_published, check_failed...).")
    @click.option("--json", "as_json", is_flag=True)
    @friendly
    def events(mesh, user, kind, as_json):
        """What happened: versions published, onboardings refused, checks failed, SLOs breached (the events
        the user may see, as in system.events)."""
        platform = _platform(mesh)
        sql = "select * from system.events" + (" where kind = ?" if kind else "") + " order by event_id"
        result = platform.query(sql, platform.principal(_user(user)), [kind] if kind else None, interface="cli")
        try:
            rows = result.arrow().to_pylist()
        finally:
            result.close()
        if as_json:
            click.echo(json.dumps(rows, indent=1, default=str))
        else:
            click.echo(_table(rows, ["event_id", "at", "kind", "quantum", "dataset", "version", "principal",
                                     "message"]))
