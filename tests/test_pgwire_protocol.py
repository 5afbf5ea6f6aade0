"""The wire protocol with real clients: positional parameters written without spaces, COPY ... TO STDOUT
(text, CSV, binary) governed like any query, and SCRAM-SHA-256 for tokens made through the Python API."""

from __future__ import annotations

import asyncio
import datetime as dt
import decimal

import pytest
from meshkit import shop_mesh

import federation
from federation.platform import Platform
from federation.server.pgwire import PgServer, register_token
from federation.server.pgwire.dollar import space_parameters

psycopg = pytest.importorskip("psycopg")

GOVERNANCE = {
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


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    return Platform(shop_mesh(tmp_path_factory.mktemp("pgwire_protocol"), governance=GOVERNANCE))


@pytest.fixture(scope="module")
def tokens(platform):
    out = {}
    for user in ("ana", "pia"):
        token, _ = platform.tokens.create(user, 1)
        register_token(platform, token)
        out[user] = token
    return out


@pytest.fixture(scope="module")
def server(platform, tokens):
    srv = PgServer(platform, host="127.0.0.1", port=0).start()
    yield srv
    srv.stop()


def dsn(server, tokens, user="ana", **extra) -> str:
    parts = {"host": "127.0.0.1", "port": server.port, "user": user, "dbname": "testmesh",
             "password": tokens[user], "sslmode": "disable", **extra}
    return " ".join(f"{k}={v}" for k, v in parts.items())


def python_rows(platform, user, sql):
    return federation.Connection(platform, platform.principal(user)).sql(sql).fetchall()


# -- $1,$2 ------------------------------------------------------------------------------------------------------


def test_space_parameters_leaves_strings_comments_and_dollar_quotes_alone():
    assert space_parameters("select $1,$2") == "select $1 ,$2"
    assert space_parameters("select $1, $2") == "select $1, $2"  # already readable: unchanged
    kept = ["select '$1,$2'", 'select "$1,$2"', "select $q$$1,$2$q$", "select $$a$1,$$", "-- $1,$2\nselect 1",
            "/* /* $1,$2 */ $1,$2 */ select 1", "select a$1,$2x"]
    for sql in kept:
        assert space_parameters(sql) == sql, sql
    assert space_parameters(r"select E'\'$1,$2', $1,$2") == r"select E'\'$1,$2', $1 ,$2"


def test_psycopg_parameters_without_spaces(server, tokens, platform):
    with psycopg.connect(dsn(server, tokens)) as conn:
        assert conn.execute("select %s,%s", (1, "two")).fetchone() == (1, "two")
        rows = conn.execute("select order_id from shop.orders where order_id in (%s,%s,%s) order by 1",
                            (3, 5, 7)).fetchall()
        assert rows == [(3,), (5,), (7,)]
        # the string constant holding $1,$2 is left as it is
        assert conn.execute("select '$1,$2' as s, %s::int+%s::int as n", (2, 3)).fetchone() == ("$1,$2", 5)


def test_asyncpg_parameters_without_spaces(server, tokens):
    asyncpg = pytest.importorskip("asyncpg")

    async def run():
        conn = await asyncpg.connect(host="127.0.0.1", port=server.port, user="ana", password=tokens["ana"],
                                     database="testmesh", ssl=False)
        try:
            pair = await conn.fetchrow("select $1::int,$2::text", 4, "x")
            ids = await conn.fetch("select order_id from shop.orders where order_id in ($1,$2,$3) order by 1",
                                   10, 20, 30)
            return tuple(pair), [r[0] for r in ids]
        finally:
            await conn.close()

    assert asyncio.run(run()) == ((4, "x"), [10, 20, 30])
