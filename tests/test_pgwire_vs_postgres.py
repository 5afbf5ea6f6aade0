"""Text output of the PostgreSQL wire server compared with a real PostgreSQL server, value by value.

BI tools and drivers parse what PostgreSQL prints; Quanta must print the same text for the same value.
The real server is the oracle: values go in through COPY, come back with ``::text``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random
import struct
import uuid

import numpy as np
import pgkit
import pyarrow as pa
import pytest

from federation.server.pgwire import types as pgt

psycopg = pytest.importorskip("psycopg")


@pytest.fixture(scope="module")
def postgres():
    with pgkit.real_postgres() as server:
        yield server


def _floats() -> list[float]:
    rng = random.Random(20261124)
    values = [0.0, -0.0, 1.0, 0.1, 1e-05, 1e-4, 9.99e-5, 0.00012345, 100.0, 123456.0, 1234567.0, 99999.5, 1e6,
              1e14, 999999999999999.9, 1e15, 1.5e15, 1234567890123456.8, 1e16, 34932704878731648.0, 2.0 ** 53,
              5e-324, 1.7976931348623157e308, -2.25, 1 / 3]
    for _ in range(1500):
        values.append(struct.unpack("d", struct.pack("Q", rng.getrandbits(64)))[0])  # any bit pattern
        values.append(10 ** rng.uniform(-30, 30) * rng.choice((1, -1)))
        values.append(round(rng.uniform(0, 10000), 2))  # money-like
        values.append(float(rng.randrange(1, 2 ** 62)))  # large integers: PostgreSQL's rounding interval
    return [v for v in values if v == v and abs(v) != float("inf")]


def test_float_text_is_postgresqls(postgres):
    values = _floats()
    singles = [float(np.float32(v)) if abs(v) < 3.4e38 else 1.0 for v in values]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("create table floats (i int, d float8, r float4)")
        with conn.cursor().copy("copy floats (i, d, r) from stdin") as copy:
            for row in zip(range(len(values)), values, singles):
                copy.write_row(row)
        rows = conn.execute("select d::text, r::text from floats order by i").fetchall()
    pg8, pg4 = [r[0] for r in rows], [r[1] for r in rows]
    # the vectorised column encoder (what the server sends) and the value-by-value one
    assert pgt.float_text(pa.array(values, pa.float64())).to_pylist() == pg8
    assert pgt.float_text(pa.array(singles, pa.float32())).to_pylist() == pg4
    assert [pgt.format_float(v) for v in values] == pg8
    assert [pgt.format_float(v, 32) for v in singles] == pg4
    specials = pa.array([float("nan"), float("inf"), float("-inf"), None, 2.5])
    assert pgt.float_text(specials).to_pylist() == ["NaN", "Infinity", "-Infinity", None, "2.5"]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        assert conn.execute("select 'nan'::float8::text, 'inf'::float8::text, '-inf'::float8::text").fetchone() \
            == ("NaN", "Infinity", "-Infinity")


def test_other_types_text_is_postgresqls(postgres):
    """Dates, timestamps, numerics, booleans and arrays: the DataRow cells equal PostgreSQL's text."""
    rng = random.Random(7)
    days = [rng.randrange(-700000, 2900000) for _ in range(300)] + [0, -1, 10957]
    micros = [rng.randrange(-60 * 10 ** 15, 200 * 10 ** 15) for _ in range(300)] + [0, 1, 500000, -1]
    numerics = [decimal.Decimal(rng.randrange(-10 ** 12, 10 ** 12)).scaleb(-rng.randrange(0, 6)) for _ in range(300)]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("set timezone = 'UTC'")
        pg_dates = [r[0] for r in conn.execute(
            "select (date '1970-01-01' + d)::text from unnest(%s::int[]) with ordinality t(d, i) order by i",
            [days]).fetchall()]
        pg_ts = [tuple(r) for r in conn.execute(
            "select (timestamp '1970-01-01' + (m / 86400000000) * interval '1 day' "
            "        + (m %% 86400000000) * interval '1 microsecond')::text, "
            "(timestamptz '1970-01-01 00:00:00+00' + (m / 86400000000) * interval '1 day' "
            "        + (m %% 86400000000) * interval '1 microsecond')::text "
            "from unnest(%s::bigint[]) with ordinality t(m, i) order by i", [micros]).fetchall()]
        pg_num = [r[0] for r in conn.execute(
            "select n::numeric(18, 5)::text from unnest(%s::numeric[]) with ordinality t(n, i) order by i",
            [numerics]).fetchall()]
        pg_misc = conn.execute("select boolout(true)::text, boolout(false)::text, array[1, null, 3]::text, "
                               "array['a', 'b c', null, '']::text").fetchone()

    def cells(array: pa.Array) -> list[str]:
        batch = pa.record_batch([array], names=["c"])
        buffer, offsets = pgt.data_rows(batch, [0])
        rows = [bytes(buffer)[offsets[i]:offsets[i + 1]] for i in range(batch.num_rows)]
        return [r[11:].decode() for r in rows]  # 'D', length, column count, cell length

    epoch = dt.date(1970, 1, 1)
    assert cells(pa.array([epoch + dt.timedelta(days=d) for d in days], pa.date32())) == pg_dates
    assert cells(pa.array(micros, pa.int64()).cast(pa.timestamp("us"))) == [r[0] for r in pg_ts]
    assert cells(pa.array(micros, pa.int64()).cast(pa.timestamp("us", "UTC"))) == [r[1] for r in pg_ts]
    assert cells(pa.array(numerics, pa.decimal128(18, 5))) == pg_num
    assert cells(pa.array([True, False])) == list(pg_misc[:2])
    assert [v.decode() for v in pgt.text_column(pa.array([[1, None, 3]]))] == [pg_misc[2]]
    assert [v.decode() for v in pgt.text_column(pa.array([["a", "b c", None, ""]]))] == [pg_misc[3]]


def test_uuid_and_json_text_is_postgresqls(postgres):
    """UUIDs (and arrays of them, of JSON documents) as DuckDB hands them over: PostgreSQL's text."""
    rng = random.Random(2950)
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(300)]
    docs = ['{"a": [1, 2.50, null]}', '"x y"', "[]", '{"q": "\\"quoted\\" \\\\ é"}', "3"]
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        pg_ids = [r[0] for r in conn.execute(
            "select upper(u)::uuid::text from unnest(%s::text[]) with ordinality t(u, i) order by i",
            [ids]).fetchall()]
        pg_arrays = conn.execute("select %s::uuid[]::text, %s::json[]::text, %s::json::text",
                                 [ids[:3] + [None], docs, docs[3]]).fetchone()
    batch = pa.record_batch({"u": [i.upper() for i in ids], "lu": pa.array([ids[:3] + [None]] * 300),
                             "lj": pa.array([docs] * 300), "j": [docs[3]] * 300})
    typed = pgt.conform(batch, pgt.pg_schema(batch.schema, ["UUID", "UUID[]", "JSON[]", "JSON"]))
    buffer, offsets = pgt.data_rows(typed, [0] * 4)
    rows = [bytes(buffer)[offsets[i]:offsets[i + 1]] for i in range(typed.num_rows)]

    def cells(row: bytes) -> list[str]:
        out, pos = [], 7
        for _ in range(4):
            n = struct.unpack_from("!i", row, pos)[0]
            out.append(row[pos + 4:pos + 4 + n].decode())
            pos += 4 + n
        return out

    assert [cells(r)[0] for r in rows] == pg_ids
    assert {tuple(cells(r)[1:]) for r in rows} == {tuple(pg_arrays)}


# -- cursors: the same FETCH and MOVE statements on the same rows ---------------------------------------------


@pytest.fixture(scope="module")
def quanta(tmp_path_factory):
    """The wire server on the governed test mesh, and the DSN of ana (masked emails, EU customers hidden)."""
    platform = pgkit.governed_shop(tmp_path_factory.mktemp("cursors"))
    tokens = pgkit.issue_tokens(platform, ("ana",))
    with pgkit.running_server(platform) as server:
        yield platform, pgkit.dsn(server.port, tokens, sslmode="prefer")


# more rows than a batch (65,536): row ranges cross the batches DuckDB stores and reads back
CURSOR_SQL = ("select a.order_id as a, b.order_id as b, c.id, c.email from shop.orders a cross join shop.orders b "
              "cross join crm.customers c order by a, b, c.id")


@pytest.fixture(scope="module")
def same_rows(postgres, quanta):
    """ana's rows of CURSOR_SQL from Quanta, copied into a table of the real PostgreSQL."""
    import federation

    platform, _ = quanta
    rows = federation.Connection(platform, platform.principal("ana")).sql(CURSOR_SQL).fetchall()
    with psycopg.connect(postgres.dsn(), autocommit=True) as conn:
        conn.execute("create table cursor_rows (a int, b int, id int, email text)")
        with conn.cursor().copy("copy cursor_rows (a, b, id, email) from stdin") as copy:
            for row in rows:
                copy.write_row(row)
    return len(rows)


def _outcomes(dsn: str, query: str, statements: list[str]) -> list:
    """What each statement returns in one transaction: (status, rows), or the SQLSTATE that ended it."""
    out = []
    with psycopg.connect(dsn) as conn:
        conn.execute(f"declare c {query}")
        for st in statements:
            try:
                cur = conn.execute(st)
            except psycopg.Error as e:
                out.append((st, e.sqlstate, e.diag.message_primary))
                break
            out.append((st, cur.statusmessage, cur.fetchall() if cur.description else None))
    return out


def _statements(total: int) -> list[str]:
    script = ["fetch absolute 5 from c", "fetch backward 2 from c", "move last in c", "fetch prior from c",
              "fetch relative 0 from c", "move 0 in c", "fetch 0 from c", "fetch absolute 0 from c",
              "move backward 0 in c", "fetch relative 0 from c", "fetch next from c", "move absolute 65530 in c",
              "fetch 10 from c", "fetch backward 12 from c", "fetch forward 70000 from c", "fetch -70000 from c",
              "fetch backward all from c", "fetch prior from c", "fetch first from c", "move absolute -1 in c",
              "fetch next from c", "fetch backward 1 from c", "move forward all in c", "move backward all in c",
              f"fetch absolute {total} from c", f"fetch absolute {total + 1} from c", "fetch prior from c",
              f"fetch absolute -{total} from c", f"fetch absolute -{total + 1} from c", "fetch next from c",
              f"move relative {total} in c", "fetch relative -1 from c", "move all in c", "move backward 3 in c",
              "fetch all from c", f"move relative -{total} in c", "fetch relative 1 from c", "fetch last from c",
              "fetch relative -65537 from c", "fetch 3 from c"]
    rng = random.Random(2718)
    jumps = [0, 1, 2, 3, -1, -2, -3, 65535, 65536, 65537, -65536, total - 1, total, total + 1, -total, -total - 1]
    for _ in range(150):
        verb = rng.choice(("fetch", "fetch", "move"))
        form = rng.choice(("next", "prior", "first", "last", "absolute", "relative", "forward", "backward", "count",
                           "forward all", "backward all"))
        counts = (0, 1, 2, 5, -1, -4) if verb == "fetch" else (0, 3, -3, 1000, -1000, 70000, -70000)
        n = rng.choice(jumps + [rng.randrange(-total - 2, total + 3)] if form in ("absolute", "relative") else counts)
        if form.endswith(" all") and verb == "fetch":
            form = form.split()[0] + " 20"  # keep the rows sent small; MOVE takes ALL
        spec = {"absolute": f"absolute {n}", "relative": f"relative {n}", "forward": f"forward {n}",
                "backward": f"backward {n}", "count": f"{n}"}.get(form, form)
        script.append(f"{verb} {spec} {rng.choice(('from', 'in'))} c")
    return script


def test_scroll_cursor_positions_are_postgresqls(postgres, quanta, same_rows):
    """A SCROLL cursor returns the rows, FETCH and MOVE counts PostgreSQL returns, statement after statement,
    for scripted and random directions (over, around and past both ends and the batch boundaries)."""
    _, dsn = quanta
    statements = _statements(same_rows)
    got = _outcomes(dsn, f"scroll cursor for {CURSOR_SQL}", statements)
    want = _outcomes(postgres.dsn(), "scroll cursor for select * from cursor_rows order by a, b, id", statements)
    assert len(want) == len(statements)
    for g, w in zip(got, want):
        assert g == w


def test_scrollable_psycopg_cursor_is_postgresqls(postgres, quanta, same_rows):
    """psycopg's scrollable server-side cursor: scroll() (MOVE [ABSOLUTE] n), fetchone/fetchmany/fetchall."""
    _, dsn = quanta

    def session(dsn: str, query: str) -> list:
        out = []
        with psycopg.connect(dsn) as conn, conn.cursor("scroller", scrollable=True) as cur:
            cur.execute(query)
            out.append(cur.fetchmany(4))
            for value, mode in ((-3, "relative"), (70000, "absolute"), (-5, "relative"), (0, "absolute"),
                                (same_rows - 2, "absolute"), (1, "relative")):
                cur.scroll(value, mode=mode)
                out.append((cur.fetchone(), cur.fetchmany(3)))
            cur.scroll(-(same_rows + 5))
            out.append(cur.fetchone())
        return out

    assert session(dsn, CURSOR_SQL) == session(postgres.dsn(), "select * from cursor_rows order by a, b, id")


def test_no_scroll_cursor_refuses_backward_like_postgresql(postgres, quanta, same_rows):
    """A NO SCROLL cursor (and a plain one here) takes the forward directions PostgreSQL takes, ABSOLUTE and
    RELATIVE included, and refuses what would go back with 55000, at the same statement."""
    _, dsn = quanta
    sequences = [
        ["fetch 3 from c", "fetch absolute 5 from c", "fetch relative 2 from c", "move 0 in c", "fetch forward 0 from c"],
        ["fetch absolute 1 from c", "fetch absolute 1 from c"],
        ["move 0 in c", "fetch 0 from c", "fetch absolute 0 from c", "fetch 2 from c", "fetch absolute 0 from c"],
        ["move 70000 in c", "fetch absolute 70002 from c", "fetch absolute 70001 from c"],
        ["fetch 2 from c", "fetch prior from c"],
        ["move backward 0 in c", "fetch backward 0 from c"],
        ["move all in c", "fetch next from c", "move backward all in c"],
        ["fetch absolute -1 from c"],
        ["fetch -1 from c"],
    ]
    for statements in sequences:
        got = _outcomes(dsn, f"no scroll cursor for {CURSOR_SQL}", statements)
        want = _outcomes(postgres.dsn(), "no scroll cursor for select * from cursor_rows order by a, b, id",
                         statements)
        assert got == want
        assert want[-1][1] == "55000"
    plain = _outcomes(dsn, f"cursor for {CURSOR_SQL}", sequences[0])
    assert plain == _outcomes(dsn, f"no scroll cursor for {CURSOR_SQL}", sequences[0])
