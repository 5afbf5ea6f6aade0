"""``quanta webhooks``: the mesh's webhook deliveries (``federation.webhooks``): list them, send those due
now, retry a dead one. For the auditor and data-engineer roles (the deliveries name requesters and
approvers)."""

from __future__ import annotations

import click
import pyarrow as pa

from ..config import default_mesh
from .common import fail, format_table, friendly, main, mesh_option, user_option


def _open(mesh: str | None, user: str | None):
    from ..governance.authorize import allowed
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    decision = allowed(platform, platform.principal(user), "review_requests", what="see webhook deliveries")
    if not decision:
        fail(decision.reason)
    return platform


@main.group()
def webhooks() -> None:
    """Webhook deliveries: what was sent where, what waits for a retry, what gave up."""


@webhooks.command("list")
@mesh_option
@user_option
@click.option("--status", type=click.Choice(["pending", "delivered", "dead"]), default=None,
              help="Only the deliveries in this state.")
@friendly
def webhooks_list(mesh: str | None, user: str | None, status: str | None) -> None:
    """The deliveries, oldest first: hook, event kind, status, attempts, the last answer or error."""
    from ..platform import Platform
    from ..webhooks import deliveries_for

    platform = Platform.open(mesh or default_mesh())
    rows = deliveries_for(platform, platform.principal(user), status)
    names = ["delivery_id", "hook", "kind", "status", "attempts", "last_status", "last_error", "created_at",
             "delivered_at", "event_id"]
    click.echo(format_table(pa.table({n: pa.array([r[n] for r in rows], pa.int64() if n in (
        "delivery_id", "attempts", "last_status") else pa.string()) for n in names}), max_rows=10_000))


@webhooks.command("deliver")
@mesh_option
@user_option
@click.option("--now", "now", is_flag=True, help="Also send the deliveries waiting for their back-off.")
@friendly
def webhooks_deliver(mesh: str | None, user: str | None, now: bool) -> None:
    """Enqueue the events no process has enqueued yet and send the due deliveries once (a server does it
    continuously). Exit 1 when some delivery failed."""
    from ..webhooks import hooks_of, outbox_of

    platform = _open(mesh, user)
    hooks = hooks_of(platform.mesh)
    if not hooks:
        fail("the mesh declares no webhooks (a webhooks: block in mesh.yaml)")
    box = outbox_of(platform)
    box.pump(platform.mesh.name, hooks, platform.access_requests)
    attempts: list = []
    after: dict[str, int] = {}
    while True:  # in batches (each under its lease), every due delivery once
        batch = box.deliver_due(hooks, due_by=float("inf") if now else None, after=after)
        if not batch:
            break
        attempts += batch
        for a in batch:
            after[a.hook] = max(after.get(a.hook, 0), a.delivery_id)
    for a in attempts:
        click.echo(f"delivery {a.delivery_id} to {a.hook}: {a.status}"
                   + (f" (HTTP {a.http_status})" if a.http_status else "") + (f": {a.error}" if a.error else ""))
    click.echo(f"{sum(a.status == 'delivered' for a in attempts)} delivered, "
               f"{sum(a.status != 'delivered' for a in attempts)} failed")
    if any(a.status != "delivered" for a in attempts):
        raise SystemExit(1)


@webhooks.command("retry")
@click.argument("delivery_id", type=int)
@mesh_option
@user_option
@friendly
def webhooks_retry(delivery_id: int, mesh: str | None, user: str | None) -> None:
    """Put a dead delivery back in the queue, its attempts counted from zero."""
    from ..webhooks import outbox_of

    if not outbox_of(_open(mesh, user)).retry(delivery_id):
        fail(f"there is no dead webhook delivery {delivery_id}")
    click.echo(f"delivery {delivery_id} is pending again")
