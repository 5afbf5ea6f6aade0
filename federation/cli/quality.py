"""Quality commands: ``quanta check`` (one dataset or ``--all``) and ``quanta quality history|samples|rules``."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from .common import friendly, main, mesh_option, open_platform, results_table, rows_table, user_option, username


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
    from ..onboarding.control import check as run, check_all, dataset_of, evaluate_slos

    if bool(dataset) == every:
        raise click.UsageError("give a DATASET, or --all")
    platform = open_platform(mesh)
    principal = platform.principal(username(user))
    if every:
        progress = None if as_json else (lambda i, n, name: click.echo(f"[{i}/{n}] {name} ...", err=True))
        checks = [c.to_dict() for c in check_all(platform, principal, slo=not no_slo, progress=progress)]
        failed = [c for c in checks if c["status"] in ("fail", "error")]
        if as_json:
            click.echo(json.dumps({"datasets": checks, "failed": len(failed)}, indent=1, default=str))
        else:
            done = [c for c in checks if c["status"] != "skipped"]
            click.echo(rows_table(done, ["dataset", "rules", "pass", "warn", "fail", "error", "slo", "status",
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
        click.echo(results_table(result))
        if slos:
            click.echo(rows_table([s.to_dict() for s in slos], ["property", "target", "measured", "status",
                                                           "message"]))
        color = {"pass": "green", "warn": "yellow"}.get(result.status, "red")
        click.secho(f"{dataset}: {result.status} ({result.rows:,} rows, {len(result.results)} rules, "
                    f"{result.queries} queries)", fg=color, bold=True)
    if result.status in ("fail", "error"):
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
    from ..onboarding.control import dataset_of, require_read, results_as

    platform = open_platform(mesh)
    ds = dataset_of(platform, dataset)
    principal = platform.principal(username(user))
    require_read(platform, principal, ds, "read the quality history")
    results = results_as(platform, ds, principal)  # as system.quality_results shows them to the user
    runs = H.runs(results)
    if svg_path:
        Path(svg_path).write_text(H.svg(ds.qualified_name, results), encoding="utf-8")
    if as_json:
        click.echo(json.dumps([{k: v for k, v in r.items() if k != "statuses"} for r in runs], default=str,
                              indent=1))
        return
    click.echo(rows_table(runs, ["at", "version", "rows", "passed", "total", "worst"]))
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
    from ..onboarding.control import samples

    platform = open_platform(mesh)
    found = samples(platform, dataset, platform.principal(username(user)))
    if as_json:
        click.echo(json.dumps(found, indent=1, default=str))
        return
    if not found:
        click.echo("no failing rule at the latest check")
    for s in found:
        click.echo(f"{s['rule']} ({s['status']}, {s['failing_rows']} failing rows at {s['checked_at']})")
        if s["sample"]:
            click.echo(rows_table(s["sample"], list(s["sample"][0])))
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
    from ..onboarding.contracts import write_rules
    from ..onboarding.control import dataset_of, rules_of, set_rules

    platform = open_platform(mesh)
    principal = platform.principal(username(user))
    if rules_file:
        try:
            entries, _ = load_yaml(Path(rules_file))
        except YamlError as e:
            raise click.ClickException(f"{rules_file}" + (f", line {e.line}" if e.line else "") + f": {e}")
        set_rules(platform, dataset, entries, principal)
    if write_contract:
        click.echo(f"wrote the rules of {dataset} into {write_rules(platform, dataset, principal)}", err=True)
    rules = rules_of(platform, dataset_of(platform, dataset))
    click.echo(rows_table([r.describe() for r in rules], ["rule", "type", "metric", "column", "threshold",
                                                      "severity", "origin"]))
