"""Contract commands: ``quanta contract effective``, ``quanta diff``, ``quanta deprecate|retire``."""

from __future__ import annotations

import json
import sys

import click

from ..config import default_mesh
from .common import fail, friendly, main, mesh_option, open_platform, user_option, username


@main.group()
def contract() -> None:
    """Data contracts: the effective (inherited) contract of a quantum."""


@contract.command("effective")
@click.argument("quantum")
@mesh_option
@friendly
def contract_effective(quantum: str, mesh: str | None) -> None:
    """Print QUANTUM's contracts as ODCS YAML with what they inherit along lineage filled in, and the
    quality rules in force (those set through the control plane replace the file's)."""
    import yaml

    from ..lineage.inheritance import effective_contract
    from ..onboarding.contracts import with_rules_in_force
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    if quantum.lower() not in platform.mesh.quanta:
        fail(f"there is no quantum {quantum!r}; quanta: {', '.join(sorted(platform.mesh.quanta))}")
    for doc in effective_contract(platform.mesh, quantum):
        doc = with_rules_in_force(platform, doc.get("id"), doc)
        click.echo("---")
        click.echo(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True), nl=False)


@main.command()
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (shape in README, 'quanta diff').")
@friendly
def diff(old, new, as_json):
    """Classify every change between two ODCS contracts or two ODPS products (OLD, NEW): schema, types,
    required/unique/keys, enums, classification, quality rules, SLAs, status, servers, roles and approvers,
    ports. Each change needs a major, minor or patch version bump; the bump the versions declare is
    compared with the one needed.

    \b
    Exit status:
      0  the declared versions carry the bump the changes need (or only a patch bump is missing)
      1  a breaking change without a new major version, or an addition without a new minor version
      2  bad input: a file missing, unreadable, invalid YAML, not a contract nor a product, or of two
         different kinds
    """
    from ..onboarding.evolution import DiffInputError, diff_files

    try:
        out = diff_files(old, new)
    except DiffInputError as e:
        fail(str(e), 2)
        return
    if as_json:
        click.echo(json.dumps(out, indent=1, default=str))
    else:
        for c in out["changes"]:
            label = "BREAKING" if c["breaking"] else "ok      "
            note = "  [governance review]" if c["review"] else ""
            click.secho(f"  {label}  {c['bump']:<5}  {c['message']}{note}", fg="red" if c["breaking"] else None)
        click.echo(f"{len(out['changes'])} change(s), {'breaking' if out['breaking'] else 'none breaking'}; "
                   f"needs a {out['required_bump']} bump; version {out['old_version']} -> {out['new_version']} "
                   f"({out['declared_bump']})")
        if out["needs_review"]:
            click.secho("some changes need the governance team's review", fg="yellow")
        if out["needs_major_version"]:
            click.secho("a breaking change needs a new major version", fg="red", bold=True)
        elif not out["version_ok"]:
            click.secho(f"the changes need a new {out['required_bump']} version", fg="red" if
                        out["required_bump"] != "patch" else "yellow")
    if not out["version_ok"] and out["required_bump"] in ("major", "minor"):
        sys.exit(1)


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
            from ..onboarding.control import set_contract_status

            platform = open_platform(mesh)
            set_contract_status(platform, contract_id, version, status, platform.principal(username(user)))
            click.echo(f"contract {contract_id} version {version} is {status}")
    make()
