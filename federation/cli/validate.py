"""``quanta validate``: every problem of a mesh, and the policies' coverage."""

from __future__ import annotations

import json
import sys

import click

from ..config import default_mesh
from .common import friendly, main, mesh_option


@main.command()
@click.argument("mesh_path", required=False, metavar="[MESH]")
@mesh_option
@click.option("--json", "as_json", is_flag=True, help="Print the problems as JSON.")
@friendly
def validate(mesh_path: str | None, mesh: str | None, as_json: bool) -> None:
    """Check a mesh: JSON Schemas, mesh rules, data against contracts, and each contract against its last
    published version and its copy at git HEAD (a breaking change needs a new major version). Exit 1 on any
    error."""
    from ..platform import Platform

    from ..governance.coverage import coverage

    path = mesh_path or mesh or default_mesh()
    platform = Platform(path)
    m = platform.mesh
    from ..onboarding.evolution import mesh_problems

    m.problems.extend(mesh_problems(platform))  # a breaking change without a new major version
    errs = [p for p in m.problems if p.severity == "error"]
    warns = [p for p in m.problems if p.severity != "error"]
    covered = coverage(platform.state.governance, m, platform.lineage.edges)
    holes = [c for c in covered if c.coverage == "warning"]
    if as_json:
        click.echo(json.dumps({
            "mesh": m.name, "quanta": sorted(q.name for q in m.quanta.values()),
            "excluded": m.excluded, "problems": [
                {"severity": p.severity, "file": p.file, "path": p.path, "line": p.line, "quantum": p.quantum,
                 "message": p.message} for p in m.problems],
            "policy_coverage": {
                "covered": {pol.name: sum(1 for c in covered if c.policy == pol.name and c.coverage == "covered")
                            for pol in platform.state.governance.policies},
                "warnings": [{"policy": c.policy, "quantum": c.quantum, "dataset": c.dataset, "column": c.column,
                              "reason": c.reason, "like": c.like, "message": c.detail} for c in holes]}}, indent=2))
    else:
        datasets = sum(len(q.datasets) for q in m.quanta.values())
        click.echo(f"mesh {m.name}: {len(m.quanta)} quanta, {datasets} datasets loaded in "
                   f"{platform.state.load_seconds:.2f} s")
        for p in errs:
            click.secho(f"  error   {p}", fg="red")
        for p in warns:
            click.secho(f"  warning {p}", fg="yellow")
        for name, why in sorted(m.excluded.items()):
            click.secho(f"  left out: quantum {name}", fg="red")
        _print_coverage(platform.state.governance.policies, covered, holes)
        if not errs:
            click.secho("valid" + (f" ({len(warns)} warnings)" if warns else "")
                        + (f" ({len(holes)} policy coverage warnings)" if holes else ""), fg="green")
    if errs:
        sys.exit(1)


def _print_coverage(policies, covered, holes) -> None:
    """The policy coverage section of ``validate``: what each policy covers, then its holes."""
    if not policies:
        return
    click.echo(f"policy coverage ({len(policies)} policies, {len(holes)} warnings; system.policy_coverage):")
    for pol in policies:
        mine = [c for c in covered if c.policy == pol.name and c.coverage == "covered"]
        what = "dataset" if mine and mine[0].column is None else "column"
        click.echo(f"  {pol.name:<28} {pol.kind:<10} {len(mine):>4} {what}{'' if len(mine) == 1 else 's'}")
    for c in holes:
        click.secho(f"  coverage warning ({c.policy}, {c.reason}): {c.detail}", fg="yellow")
