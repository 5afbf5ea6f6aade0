"""What the PostgreSQL wire tests share: the governed shop mesh, a PgServer on 127.0.0.1 with a token per user,
the DSN a client connects with, and a real PostgreSQL to compare with.

SHOP_GOVERNANCE over shop_mesh: ana (analyst; regions US, CA) reads crm.customers with emails masked, names
redacted and EU rows filtered, and may not read shop.orders.amount; pia (analyst, pii_reader, finance; regions
EU, US, CA) reads everything of shop and crm.customers as it is; report.sales_by_region is granted to no one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from meshkit import shop_mesh

from federation.platform import Platform
from federation.server.pgwire import PgServer

DATABASE = "testmesh"

SHOP_GOVERNANCE = {
    "roles": [{"name": n} for n in ("analyst", "pii_reader", "finance")],
    "principals": [
        {"name": "ana", "roles": ["analyst"], "attributes": {"regions": ["US", "CA"]}},
        {"name": "pia", "roles": ["analyst", "pii_reader", "finance"], "attributes": {"regions": ["EU", "US", "CA"]}},
    ],
    "grants": [
        {"to": {"role": "analyst"}, "on": "shop"},
        {"to": {"role": "analyst"}, "on": "crm.customers"},
    ],
    "policies": [
        {"name": "mask-contact", "kind": "mask", "on": {"tag": "contact"}, "mask": "email_domain",
         "unless": {"roles": ["pii_reader"]}},
        {"name": "mask-pii", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact",
         "unless": {"roles": ["pii_reader"]}},
        {"name": "residency", "kind": "row_filter", "on": {"column": "region"},
         "filter": "{column} <> 'EU' OR list_contains(principal.regions, 'EU')"},
        {"name": "amounts-for-finance", "kind": "deny", "on": {"column": "amount", "dataset": "shop.orders"},
         "unless": {"roles": ["finance"]}},
    ],
}


def shop_governance(*, principals: Iterable[dict] = (), grants: Iterable[dict] = ()) -> dict:
    """SHOP_GOVERNANCE with more principals and grants (a fresh dict: the constant is never changed)."""
    return {**SHOP_GOVERNANCE, "principals": SHOP_GOVERNANCE["principals"] + list(principals),
            "grants": SHOP_GOVERNANCE["grants"] + list(grants)}


def governed_shop(root: Path, governance: dict = SHOP_GOVERNANCE) -> Platform:
    """A Platform over shop_mesh written at ``root`` under ``governance``."""
    return Platform(shop_mesh(root, governance=governance))


def issue_tokens(platform: Platform, users: Iterable[str]) -> dict[str, str]:
    """A one-day token for each user (TokenStore.create keeps its SCRAM verifier for the wire server)."""
    return {user: platform.tokens.create(user, 1)[0] for user in users}


@contextmanager
def running_server(platform: Platform) -> Iterator[PgServer]:
    """A PgServer on 127.0.0.1 (a free port), stopped on exit."""
    server = PgServer(platform, host="127.0.0.1", port=0).start()
    try:
        yield server
    finally:
        server.stop()


def dsn(port: int, tokens: dict[str, str], user: str = "ana", **extra) -> str:
    """A libpq connection string for ``user`` with its token as password; ``extra`` adds or overrides keys."""
    parts = {"host": "127.0.0.1", "port": port, "user": user, "dbname": DATABASE, "password": tokens[user],
             "sslmode": "disable", **extra}
    return " ".join(f"{k}={v}" for k, v in parts.items())


@contextmanager
def real_postgres():
    """A real PostgreSQL server (pgserver), the oracle of the comparison tests."""
    from pgserver import PostgresServer

    server = PostgresServer()
    try:
        yield server
    finally:
        server.stop()
