"""``quanta token``: the bearer tokens of principals (stored only as salted hashes)."""

from __future__ import annotations

import click

from ..config import default_mesh
from .common import fail, format_table, friendly, main, mesh_option


@main.group()
def token() -> None:
    """Manage the bearer tokens of principals (stored only as salted hashes)."""


@token.command("create")
@click.argument("user")
@mesh_option
@click.option("--expires", "expires", type=float, default=None, metavar="DAYS", help="Expire after DAYS days.")
@friendly
def token_create(user: str, mesh: str | None, expires: float | None) -> None:
    """Create a token for USER; the token is printed once, on the last line."""
    from ..platform import Platform

    platform = Platform(mesh or default_mesh())
    if user not in platform.state.governance.principals:
        known = ", ".join(sorted(platform.state.governance.principals)) or "none"
        fail(f"there is no principal {user!r} in the mesh's governance (principals: {known})")
    if expires is not None and expires <= 0:
        fail("--expires must be a positive number of days")
    secret, info = platform.tokens.create(user, expires)
    try:  # a SCRAM verifier so the token is also a PostgreSQL password (never the token itself)
        from ..server.pgwire.auth import register_token
    except ImportError:
        register_token = None
    if register_token is not None:
        register_token(platform, secret)
    until = info.expires_at.strftime("%Y-%m-%d %H:%M UTC") if info.expires_at else "never"
    click.echo(f"token {info.token_id} for {user}, expires {until}. It is shown once: keep it secret.", err=True)
    click.echo(secret)


@token.command("list")
@mesh_option
@friendly
def token_list(mesh: str | None) -> None:
    """List tokens (ids, principals, dates, status; never the secrets)."""
    import pyarrow as pa

    from ..platform import Platform

    platform = Platform(mesh or default_mesh())
    infos = platform.tokens.list()
    fmt = lambda d: d.strftime("%Y-%m-%d %H:%M") if d else ""  # noqa: E731
    table = pa.table({
        "token_id": [i.token_id for i in infos], "principal": [i.principal for i in infos],
        "created": [fmt(i.created_at) for i in infos], "expires": [fmt(i.expires_at) for i in infos],
        "status": [i.status for i in infos]})
    click.echo(format_table(table, max_rows=10_000))


@token.command("revoke")
@click.argument("token_id")
@mesh_option
@friendly
def token_revoke(token_id: str, mesh: str | None) -> None:
    """Revoke a token by its id (or the token itself)."""
    from ..platform import Platform

    platform = Platform(mesh or default_mesh())
    if not platform.tokens.revoke(token_id):
        fail(f"no active token {token_id!r}")
    click.echo(f"revoked {token_id}")
