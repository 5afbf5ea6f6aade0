"""psycopg 3 and psycopg2 sessions as their users run them (issue 13, item 6): browse the catalog, preview,
join and aggregate, parameters (client-side for psycopg2, server-side for psycopg 3), every type of
lab.readings, named (server-side) cursors streaming 100,000 rows, masks, a filter and denials."""

from __future__ import annotations

import datetime as dt

import clientkit
import pytest
from clientkit import ANA_CUSTOMERS, EVENTS, JOIN_ROWS, JOIN_SQL, READINGS

psycopg = pytest.importorskip("psycopg")

served = pytest.fixture(scope="module")(clientkit.serve)

SCHEMAS = ("select nspname from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema' "
           "order by 1")
COLUMNS = ("select a.attname, format_type(a.atttypid, a.atttypmod), col_description(a.attrelid, a.attnum) "
           "from pg_attribute a where a.attrelid = %s::regclass and a.attnum > 0 and not a.attisdropped "
           "order by a.attnum")
INFO_COLUMNS = ("select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = %s and table_name = %s order by ordinal_position")
PKEY = ("select kcu.column_name from information_schema.table_constraints tc join "
        "information_schema.key_column_usage kcu on kcu.constraint_name = tc.constraint_name "
        "and kcu.table_schema = tc.table_schema where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = %s "
        "and tc.table_name = %s order by kcu.ordinal_position")
READING_COLUMNS = [("id", "bigint", "Reading id"), ("taken_on", "date", "Day of the reading"),
                   ("taken_at", "timestamp with time zone", "When it was taken"), ("price", "numeric(12,3)", "Cost"),
                   ("ok", "boolean", "Passed the check"), ("tags", "character varying[]", "Labels"),
                   ("span", "interval", "Duration"), ("note", "character varying", "Free text")]
READING_INFO = [("id", "bigint", "NO"), ("taken_on", "date", "YES"), ("taken_at", "timestamp with time zone", "YES"),
                ("price", "numeric", "YES"), ("ok", "boolean", "YES"), ("tags", "ARRAY", "YES"),
                ("span", "interval", "YES"), ("note", "character varying", "YES")]


def test_psycopg3_session(served):
    with psycopg.connect(served.dsn()) as conn:
        schemas = [r[0] for r in conn.execute(SCHEMAS)]
        assert {"crm", "shop", "lab", "system"} <= set(schemas) and "report" not in schemas
        assert conn.execute("select table_name from information_schema.tables where table_schema = %s order by 1",
                            ["lab"]).fetchall() == [("events",), ("readings",)]
        assert conn.execute(COLUMNS, ["lab.readings"]).fetchall() == READING_COLUMNS
        assert conn.execute(INFO_COLUMNS, ["lab", "readings"]).fetchall() == READING_INFO
        assert conn.execute(PKEY, ["lab", "readings"]).fetchall() == [("id",)]
        assert conn.execute("select * from crm.customers order by id limit 3").fetchall() == ANA_CUSTOMERS[:3]
        assert conn.execute(JOIN_SQL).fetchall() == JOIN_ROWS
        # parameters, server-side (extended protocol), without spaces and as an array
        assert conn.execute("select id from lab.readings where taken_on >= %s and ok = %s order by id",
                            [dt.date(2024, 3, 1), False]).fetchall() == [(2,), (5,)]
        assert conn.execute("select id from lab.readings where id in (%s,%s) order by id", [4, 1]).fetchall() == \
            [(1,), (4,)]
        assert conn.execute("select id from lab.readings where id = any(%s) order by id", [[2, 3]]).fetchall() == \
            [(2,), (3,)]
        for binary in (False, True):
            rows = conn.cursor(binary=binary).execute("select * from lab.readings order by id").fetchall()
            assert rows == READINGS, binary
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from report.sales_by_region")
        conn.rollback()
        with pytest.raises(psycopg.errors.InsufficientPrivilege, match="amount"):
            conn.execute("select amount from shop.orders")


@pytest.mark.parametrize("binary", [False, True])
def test_psycopg3_named_cursor_streams_100k_rows(served, binary):
    with psycopg.connect(served.dsn()) as conn:
        with conn.cursor(name="events", binary=binary) as cur:
            cur.itersize = 5000
            cur.execute("select event_id, site, reading from lab.events where event_id >= %s order by event_id",
                        [0])
            assert cur.fetchone() == (0, "site0", 0.0)
            count, total = 1, 0.0
            for row in cur:
                count += 1
                total += row[2]
        assert count == EVENTS and total == sum((i % 1000) / 4.0 for i in range(EVENTS))
        with conn.cursor(name="held", withhold=True) as cur:  # WITH HOLD outlives the transaction
            cur.execute("select id, note from lab.readings order by id")
            conn.commit()
            assert cur.fetchall() == [(r[0], r[7]) for r in READINGS]


def test_psycopg2_session(served):
    pytest.importorskip("psycopg2")
    import psycopg2
    import psycopg2.errors

    conn = psycopg2.connect(served.dsn())
    try:
        cur = conn.cursor()
        cur.execute(SCHEMAS)
        schemas = [r[0] for r in cur.fetchall()]
        assert {"crm", "shop", "lab"} <= set(schemas) and "report" not in schemas
        cur.execute(COLUMNS, ("lab.readings",))
        assert cur.fetchall() == READING_COLUMNS
        cur.execute(INFO_COLUMNS, ("lab", "readings"))
        assert cur.fetchall() == READING_INFO
        cur.execute(PKEY, ("lab", "readings"))
        assert cur.fetchall() == [("id",)]
        cur.execute("select * from crm.customers order by id limit 3")
        assert cur.fetchall() == ANA_CUSTOMERS[:3]
        cur.execute(JOIN_SQL)
        assert cur.fetchall() == JOIN_ROWS
        # client-side parameters: a tuple for IN, a list for ANY, named parameters, dates
        cur.execute("select id from lab.readings where id in %s and taken_on < %(d)s order by id".replace(
            "%s", "%(ids)s"), {"ids": (1, 2, 4), "d": dt.date(2024, 3, 1)})
        assert cur.fetchall() == [(1,), (4,)]
        cur.execute("select id from lab.readings where note = any(%s) order by id", (["first", "last"],))
        assert cur.fetchall() == [(1,), (5,)]
        cur.execute("select * from lab.readings order by id")
        assert cur.fetchall() == READINGS
        codes = [d.type_code for d in cur.description]  # int8 date timestamptz numeric bool _ interval _
        assert codes[:5] + codes[6:7] == [20, 1082, 1184, 1700, 16, 1186]
        assert codes[5] in (1009, 1015) and codes[7] in (25, 1043)  # varchar results go out as text
        with pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cur.execute("select * from report.sales_by_region")
        conn.rollback()
        named = conn.cursor("events")  # DECLARE "events" CURSOR WITHOUT HOLD FOR ...; FETCH FORWARD 2000
        named.itersize = 2000
        named.execute("select event_id, reading from lab.events order by event_id")
        count = total = 0
        for _, reading in named:
            count += 1
            total += reading
        assert count == EVENTS and total == sum((i % 1000) / 4.0 for i in range(EVENTS))
        named.close()
        conn.commit()
    finally:
        conn.close()


def test_psycopg3_named_cursor_closes_after_a_failed_declare(served):
    with psycopg.connect(served.dsn()) as conn:
        cur = conn.cursor(name="broken")
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            cur.execute("select amount from shop.orders")
        conn.rollback()
        cur = conn.cursor(name="kept")
        cur.execute("select id from lab.readings order by id")
        assert conn.execute("select name from pg_catalog.pg_cursors").fetchall() == [("kept",)]
        scroll = conn.cursor(name="back", scrollable=True, withhold=True)
        scroll.execute("select id from lab.readings")
        rows = conn.execute("select name, statement, is_holdable, is_binary, is_scrollable, creation_time <= now() "
                            "from pg_cursors order by name").fetchall()
        assert [r[0] for r in rows] == ["back", "kept"]
        assert rows[0][2:] == (True, False, True, True) and rows[1][2:] == (False, False, False, True)
        assert "select id from lab.readings" in rows[0][1] and rows[0][1].lower().startswith("declare")
        cur.close()
        assert conn.execute("select name from pg_cursors").fetchall() == [("back",)]
    with psycopg.connect(served.dsn()) as other:  # another session sees none of them
        assert other.execute("select count(*) from pg_catalog.pg_cursors").fetchone() == (0,)
