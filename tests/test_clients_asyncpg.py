"""asyncpg sessions as async services run them (issue 13, item 6): the catalog, prepared statements (typed
parameters and attributes, executed many times), every type of lab.readings in asyncpg's binary format,
cursors with ``forward`` and streaming 100,000 rows by ``async for``, ``copy_from_query`` to a CSV file,
masks, a filter and denials."""

from __future__ import annotations

import asyncio
import datetime as dt

import clientkit
import pytest
from clientkit import ANA_CUSTOMERS, EVENTS, JOIN_ROWS, JOIN_SQL, READINGS

asyncpg = pytest.importorskip("asyncpg")

served = pytest.fixture(scope="module")(clientkit.serve)


def run(served, session, user="ana"):
    async def main():
        conn = await asyncpg.connect(host="127.0.0.1", port=served.port, user=user, password=served.tokens[user],
                                     database=clientkit.DATABASE, ssl=False)
        try:
            return await session(conn)
        finally:
            await conn.close()

    return asyncio.run(main())


def test_asyncpg_catalog_preview_join_and_types(served):
    async def session(conn):
        schemas = [r[0] for r in await conn.fetch("select schema_name from information_schema.schemata")]
        tables = await conn.fetch("select table_name from information_schema.tables where table_schema = $1 "
                                  "order by 1", "lab")
        columns = await conn.fetch(
            "select a.attname, format_type(a.atttypid, a.atttypmod) as type, col_description(a.attrelid, a.attnum) "
            "from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = $1 and c.relname = $2 and a.attnum > 0 order by a.attnum", "lab", "readings")
        pkey = await conn.fetch("select a.attname from pg_index i join pg_attribute a on a.attrelid = i.indrelid "
                                "and a.attnum = any(i.indkey) where i.indrelid = 'lab.readings'::regclass "
                                "and i.indisprimary")
        preview = await conn.fetch("select * from crm.customers order by id limit 3")
        joined = await conn.fetch(JOIN_SQL)
        readings = await conn.fetch("select * from lab.readings order by id")
        try:
            await conn.fetch("select * from report.sales_by_region")
            denied = None
        except asyncpg.PostgresError as e:
            denied = e.sqlstate
        return schemas, tables, columns, pkey, preview, joined, readings, denied

    schemas, tables, columns, pkey, preview, joined, readings, denied = run(served, session)
    assert {"crm", "lab", "shop", "system"} <= set(schemas) and "report" not in schemas
    assert [r[0] for r in tables] == ["events", "readings"]
    assert [tuple(r) for r in columns][:4] == [("id", "bigint", "Reading id"), ("taken_on", "date", "Day of the reading"),
                                               ("taken_at", "timestamp with time zone", "When it was taken"),
                                               ("price", "numeric(12,3)", "Cost")]
    assert [tuple(r) for r in columns][5:7] == [("tags", "character varying[]", "Labels"),
                                                ("span", "interval", "Duration")]
    assert [r[0] for r in pkey] == ["id"]
    assert [tuple(r) for r in preview] == ANA_CUSTOMERS[:3]
    assert [tuple(r) for r in joined] == JOIN_ROWS
    assert [tuple(r) for r in readings] == READINGS
    assert denied == "42501"


def test_asyncpg_prepared_statements(served):
    async def session(conn):
        stmt = await conn.prepare("select id, taken_at, price, tags from lab.readings where taken_on >= $1 "
                                  "and (ok = $2 or $2 is null) order by id")
        params = [p.name for p in stmt.get_parameters()]
        attributes = [(a.name, a.type.name) for a in stmt.get_attributes()]
        results = [[r["id"] for r in await stmt.fetch(day, ok)]
                   for day, ok in [(dt.date(2024, 1, 1), None), (dt.date(2024, 3, 1), False), (dt.date(2031, 1, 1), True)]
                   * 4]
        many = await conn.prepare("select count(*) from lab.events where event_id < $1")
        counts = [await many.fetchval(n) for n in range(0, 1000, 100)]
        listed = await conn.fetch("select id from lab.readings where id = any($1::int8[]) order by id", [1, 5, 7])
        by_in = await conn.fetch("select id from lab.readings where id in ($1,$2) order by id", 2, 4)
        null = await conn.fetchrow("select $1::text as t, $2::numeric as n, $3::interval as i", None, None, None)
        return params, attributes, results, counts, listed, by_in, null

    params, attributes, results, counts, listed, by_in, null = run(served, session)
    assert params == ["date", "bool"]
    assert attributes[:3] == [("id", "int8"), ("taken_at", "timestamptz"), ("price", "numeric")]
    assert attributes[3] in (("tags", "_varchar"), ("tags", "text[]"))  # varchar results go out as text
    assert results == [[1, 2, 5], [2, 5], []] * 4
    assert counts == list(range(0, 1000, 100))
    assert [r[0] for r in listed] == [1, 5] and [r[0] for r in by_in] == [2, 4]
    assert tuple(null) == (None, None, None)


def test_asyncpg_cursors_forward_and_streaming(served):
    async def session(conn):
        async with conn.transaction():
            cursor = await conn.cursor("select event_id, site from lab.events where event_id < $1 order by event_id",
                                       50)
            first = await cursor.fetch(3)
            moved = await cursor.forward(10)
            after = await cursor.fetchrow()
            count = total = 0
            async for record in conn.cursor("select event_id, reading from lab.events", prefetch=5000):
                count += 1
                total += record["reading"]
        return first, moved, after, count, total

    first, moved, after, count, total = run(served, session)
    assert [tuple(r) for r in first] == [(0, "site0"), (1, "site1"), (2, "site2")]
    assert moved == 10 and tuple(after) == (13, "site6")
    assert count == EVENTS and total == sum((i % 1000) / 4.0 for i in range(EVENTS))


def test_asyncpg_copy_from_query(served, tmp_path):
    target = tmp_path / "customers.csv"

    async def session(conn):
        status = await conn.copy_from_query("select id, email, region from crm.customers where id < 6 order by id",
                                            output=str(target), format="csv", header=True)
        try:
            await conn.copy_from_query("select amount from shop.orders", output=str(tmp_path / "x.csv"))
            denied = None
        except asyncpg.PostgresError as e:
            denied = e.sqlstate
        return status, denied

    status, denied = run(served, session)
    assert status == "COPY 4"
    assert target.read_text() == ("id,email,region\n1,***@example.com,US\n2,***@example.com,CA\n"
                                  "4,***@example.com,US\n5,***@example.com,CA\n")
    assert denied == "42501"


def test_asyncpg_copy_from_query_with_arguments(served, tmp_path):
    async def session(conn):
        return await conn.copy_from_query("select id from crm.customers where id < $1 order by id", 3,
                                          output=str(tmp_path / "ids.txt"))

    assert run(served, session) == "COPY 2"
    assert (tmp_path / "ids.txt").read_text() == "1\n2\n"
