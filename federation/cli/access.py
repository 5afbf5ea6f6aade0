"""``quanta access``: request read access to a dataset; approvers approve or deny it, and revoke a grant."""

from __future__ import annotations

import click

from ..config import default_mesh
from .common import format_table, friendly, main, mesh_option, user_option


@main.group()
def access() -> None:
    """Access requests: ask for a dataset; approvers grant it for a while, or deny it."""


@access.command("request")
@click.argument("dataset")
@mesh_option
@user_option
@click.option("--purpose", default=None, help="Why you need the data.")
@click.option("--days", default=90, show_default=True, type=int, help="How long the access should last.")
@friendly
def access_request(dataset: str, mesh: str | None, user: str | None, purpose: str | None, days: int) -> None:
    """Ask for read access to DATASET (QUANTUM.DATASET)."""
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    req = platform.request_access(platform.principal(user), dataset, purpose, days)
    levels = platform.approval_levels(req.quantum, req.dataset)
    if len(levels) > 1:  # two approvals, in order, by two principals
        who = ", then ".join(f"level {i}: {', '.join(names)}" for i, names in enumerate(levels, 1))
    else:
        ds = platform.mesh.dataset(req.quantum, req.dataset)
        who = ", ".join(platform.state.governance.approvers(ds)) or "the quantum's owners"
    click.echo(f"access request {req.request_id}: {dataset} for {days} days, pending; approvers: {who}")


@access.command("list")
@mesh_option
@user_option
@friendly
def access_list(mesh: str | None, user: str | None) -> None:
    """Your requests, and those you may approve (all of them for auditors)."""
    from ..connection import connect

    conn = connect(mesh, user=user)
    click.echo(format_table(conn.sql(
        "select request_id, principal, quantum || '.' || dataset as dataset, purpose, days, status, pending_level, "
        "array_to_string(approved_by, ', ') as approved_by, decided_by, expires from system.access_requests "
        "order by request_id").arrow(), max_rows=10_000))


def _decide(request_id: int, mesh: str | None, user: str | None, approve: bool, days: int | None,
            reason: str | None) -> None:
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    req = platform.decide_access(platform.principal(user), request_id, approve, days, reason)
    if req.status == "pending":  # one level of two given
        named = platform.approval_levels(req.quantum, req.dataset)
        level = req.pending_level
        who = ", ".join(named[level - 1]) if level <= len(named) else "the next level's approvers"
        click.echo(f"approved level {level - 1} of access request {req.request_id}: it waits for its level-{level} approval "
                   f"by {who}")
    elif approve:
        click.echo(f"approved {req.request_id}: {req.principal} may read {req.quantum}.{req.dataset} until {req.expires}")
    else:
        click.echo(f"denied {req.request_id}")


@access.command("approve")
@click.argument("request_id", type=int)
@mesh_option
@user_option
@click.option("--days", default=None, type=int, help="Grant for this many days (default: as requested).")
@friendly
def access_approve(request_id: int, mesh: str | None, user: str | None, days: int | None) -> None:
    """Approve a pending request: a grant with an expiry, effective at once. When the contract names
    second-level approvers, the first approval is the first level's and the request waits for a second
    approval by another principal, a second-level approver."""
    _decide(request_id, mesh, user, True, days, None)


@access.command("deny")
@click.argument("request_id", type=int)
@mesh_option
@user_option
@click.option("--reason", default=None)
@friendly
def access_deny(request_id: int, mesh: str | None, user: str | None, reason: str | None) -> None:
    """Deny a pending request."""
    _decide(request_id, mesh, user, False, None, reason)


@access.command("revoke")
@click.argument("request_id", type=int)
@mesh_option
@user_option
@click.option("--reason", default=None, help="Why the grant ends (kept with the request, shown in the audit).")
@friendly
def access_revoke(request_id: int, mesh: str | None, user: str | None, reason: str | None) -> None:
    """Revoke an approved request's grant before it expires: effective at once here, and in every server
    watching the mesh within a poll. Who may approve may revoke."""
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    req = platform.revoke_access(platform.principal(user), request_id, reason)
    click.echo(f"revoked {req.request_id}: {req.principal} may no longer read {req.quantum}.{req.dataset}"
               + (f" ({reason})" if reason else ""))
