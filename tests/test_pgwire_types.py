"""Encoders and decoders of the PostgreSQL wire server, value by value (no server needed)."""

from __future__ import annotations

import datetime as dt
import decimal
import uuid

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from federation import errors
from federation.server.pgwire import protocol as pm
from federation.server.pgwire import types as pgt
from federation.server.pgwire.session import classify, split


@given(st.decimals(allow_nan=False, allow_infinity=False,
                   min_value=decimal.Decimal("-1e20"), max_value=decimal.Decimal("1e20")))
def test_numeric_binary_round_trip(value):
    assert pgt.numeric_from_binary(pgt.numeric_binary(value)) == value


@pytest.mark.parametrize("value, header", [
    (decimal.Decimal("0"), (0, 0, 0, 0)),
    (decimal.Decimal("12345.678"), (3, 1, 0, 3)),
    (decimal.Decimal("-0.001"), (1, -1, 0x4000, 3)),
    (decimal.Decimal("10000"), (1, 1, 0, 0)),
])
def test_numeric_binary_layout(value, header):
    import struct

    assert struct.unpack_from("!hhHh", pgt.numeric_binary(value)) == header


@pytest.mark.parametrize("months, days, nanos, text", [
    (0, 0, 0, "00:00:00"), (0, 1, 5_000_000_000, "1 day 00:00:05"), (14, 0, 0, "1 year 2 mons"),
    (0, -2, -3_600_000_000_000, "-2 days -01:00:00"), (0, 0, 1_500_000, "00:00:00.0015"),
])
def test_interval_text(months, days, nanos, text):
    assert pgt.format_interval(months, days, nanos) == text


def test_text_output_of_types():
    table = pa.table({
        "b": [True, None], "f": [1.5, float("nan")], "d": [dt.date(2024, 2, 29), None],
        "ts": pa.array([dt.datetime(2024, 1, 1, 2, 3, 4, 5), None], pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2024, 1, 1, 12, tzinfo=dt.timezone.utc), None], pa.timestamp("us", "UTC")),
        "l": pa.array([["a", None, "b c"], []], pa.list_(pa.string())),
        "s": pa.array([{"x": 1}, None], pa.struct([("x", pa.int64())])),
        "bin": pa.array([b"\x00\xff", None]),
    })
    out = {name: pgt.text_column(table.column(name).combine_chunks(), "Europe/Paris") for name in table.column_names}
    assert out["b"] == [b"t", None]
    assert out["f"] == [b"1.5", b"NaN"]
    assert out["d"] == [b"2024-02-29", None]
    assert out["ts"] == [b"2024-01-01 02:03:04.000005", None]
    assert out["tz"] == [b"2024-01-01 13:00:00+01", None]
    assert out["l"] == [b'{a,NULL,"b c"}', b"{}"]
    assert out["s"] == [b'{"x": 1}', None]
    assert out["bin"] == [b"\\x00ff", None]


def test_array_text_parameters():
    assert pgt.decode_text('{1,NULL,3}', pgt.ARRAY_OF[pgt.INT4]) == [1, None, 3]
    assert pgt.decode_text('{"a b","c\\"d",""}', pgt.ARRAY_OF[pgt.TEXT]) == ["a b", 'c"d', ""]
    assert pgt.decode_text("2026-01-01 +00", pgt.DATE) == dt.date(2026, 1, 1)


def test_statements_are_recognised_by_tokens_not_substrings():
    never = lambda e: False  # noqa: E731
    assert classify("select 'begin; commit'", never).kind == "query"
    assert split("select ';' as a; /* ; */ select 2") == ["select ';' as a", " /* ; */ select 2"]
    assert classify("-- a comment\nBEGIN", never).kind == "begin"
    assert classify("SHOW TRANSACTION ISOLATION LEVEL", never).name == "transaction_isolation"
    assert classify("SET TIME ZONE 'UTC'", never).name == "TimeZone"
    st_ = classify("DECLARE c NO SCROLL CURSOR WITH HOLD FOR select 1", never)
    assert (st_.kind, st_.name, st_.value, st_.binary, st_.query.strip()) == ("declare", "c", "HOLD", False,
                                                                               "select 1")
    assert classify("declare c binary cursor without hold for select 1", never).binary
    assert classify("DECLARE c SCROLL CURSOR FOR select 1", never).scroll
    assert not classify("DECLARE c NO SCROLL CURSOR FOR select 1", never).scroll
    with pytest.raises(errors.SyntaxError):
        classify("DECLARE c SENSITIVE CURSOR FOR select 1", never)
    directions = {"FETCH FORWARD 5 FROM c": ("fetch", "FORWARD", 5), "FETCH ALL IN c": ("fetch", "FORWARD", None),
                  "FETCH c": ("fetch", "FORWARD", 1), "fetch prior from c": ("fetch", "BACKWARD", 1),
                  "FETCH FIRST c": ("fetch", "ABSOLUTE", 1), "FETCH LAST IN c": ("fetch", "ABSOLUTE", -1),
                  "FETCH ABSOLUTE -3 FROM c": ("fetch", "ABSOLUTE", -3), "FETCH RELATIVE 0 c": ("fetch", "RELATIVE", 0),
                  "FETCH -2 FROM c": ("fetch", "FORWARD", -2), "FETCH BACKWARD ALL FROM c": ("fetch", "BACKWARD", None),
                  "MOVE BACKWARD 4 IN c": ("move", "BACKWARD", 4), "MOVE +7 IN c": ("move", "FORWARD", 7)}
    for text, parsed in directions.items():
        st_ = classify(text, never)
        assert (st_.kind, st_.direction, st_.count, st_.name) == parsed + ("c",), text
    for text in ("FETCH ABSOLUTE FROM c", "FETCH RELATIVE c", "FETCH SIDEWAYS 2 FROM c", "MOVE 1.5 IN c"):
        with pytest.raises(errors.SyntaxError):
            classify(text, never)


@pytest.mark.parametrize("few", [True, False])
def test_batches_encode_like_values_one_by_one(few, monkeypatch):
    """The vectorised DataRow encoder produces the same cells as the value-by-value reference encoders, and so
    does its path for a few rows (a point query's answer)."""
    import struct

    monkeypatch.setattr(pgt, "_FEW_ROWS", 32 if few else 0)

    from federation.server.pgwire import protocol as pm

    table = pa.table({
        "i8": pa.array([1, None, -3], pa.int64()), "i2": pa.array([1, None, -3], pa.int16()),
        "s": ["x", None, "é"], "b": [True, None, False], "f": [1.5, None, -2.0],
        "d": [dt.date(2024, 1, 1), None, dt.date(1969, 12, 31)],
        "ts": pa.array([dt.datetime(2024, 1, 1, 2, 3, 4, 5), None, dt.datetime(1990, 1, 1)], pa.timestamp("us")),
        "ts2": pa.array([dt.datetime(2024, 1, 1, 2, 3, 40, 500000), dt.datetime(1, 1, 1), None], pa.timestamp("us")),
        "tz": pa.array([dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc), None,
                        dt.datetime(2024, 1, 1, 0, 0, 0, 120, tzinfo=dt.timezone.utc)], pa.timestamp("us", "UTC")),
        "n": pa.array([decimal.Decimal("1.50"), None, decimal.Decimal("-123456789.01")], pa.decimal128(15, 2)),
        "n0": pa.array([decimal.Decimal("0"), decimal.Decimal("10000"), None], pa.decimal128(9, 0)),
        "big": pa.array([decimal.Decimal("1.5"), None, decimal.Decimal("-2")], pa.decimal128(38, 10)),
        "l": pa.array([[1], None, []], pa.list_(pa.int32())),
    })
    batch = table.to_batches()[0].slice(1)  # an offset into the buffers too
    for fmt in (0, 1):
        buffer, offsets = pgt.data_rows(batch, [fmt] * batch.num_columns)
        got = [bytes(buffer)[offsets[i]:offsets[i + 1]] for i in range(batch.num_rows)]
        encode = pgt.text_column if fmt == 0 else pgt.binary_column
        expected = [pm.data_row(list(v)) for v in zip(*[encode(c) for c in batch.columns])]
        if fmt == 0:
            assert got == expected
            continue
        for g, e in zip(got, expected):  # numeric cells may carry zero digits: compare decoded values
            def cells(row):
                out, pos = [], 7
                for _ in range(struct.unpack_from("!h", row, 5)[0]):
                    n = struct.unpack_from("!i", row, pos)[0]
                    out.append(None if n < 0 else row[pos + 4:pos + 4 + n])
                    pos += 4 + max(n, 0)
                return out
            for name, a, b in zip(batch.schema.names, cells(g), cells(e)):
                if name.startswith("n") and a is not None:
                    assert pgt.numeric_from_binary(a) == pgt.numeric_from_binary(b)
                else:
                    assert a == b, name


def test_same_width_columns_and_halves_encode_like_values_one_by_one():
    """Columns whose cells all have one width (codes, dates, whole-second timestamps) are packed with their
    fixed-width neighbours, from an offset into their buffers too; a long batch is encoded as two halves at
    once; a format change in the middle of a batch re-encodes what is left: the bytes stay the reference's."""
    from federation.server.pgwire import protocol as pm
    from federation.server.pgwire import rows

    n = rows.SPLIT_ROWS + 1001
    table = pa.table({
        "code": [f"SKU-{i % 1000:06d}" for i in range(n)],
        "d": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=i % 400) for i in range(n)], pa.date32()),
        "i": pa.array(range(n), pa.int32()),
        "ts": pa.array([dt.datetime(2024, 1, 1) + dt.timedelta(seconds=i) for i in range(n)], pa.timestamp("us")),
        "empty": [""] * n,
        "s": [f"c{i}" for i in range(n)],
    })
    batch = table.to_batches()[0].slice(3)  # an offset into the buffers
    for fmt in (0, 1):
        encode = pgt.text_column if fmt == 0 else pgt.binary_column
        expected = b"".join(pm.data_row(list(v)) for v in zip(*[encode(c) for c in batch.columns]))
        buffer, offsets = pgt.data_rows(batch, [fmt] * batch.num_columns)
        assert bytes(buffer)[offsets[0]:offsets[-1]] == expected
        source = rows.RowSource(batch.schema, iter([batch]))
        source.configure([fmt] * batch.num_columns, "UTC")
        assert b"".join(bytes(chunk) for chunk, _ in source.take(None)) == expected
    text = [pm.data_row(list(v)) for v in zip(*[pgt.text_column(c) for c in batch.columns])]
    binary = [pm.data_row(list(v)) for v in zip(*[pgt.binary_column(c) for c in batch.columns])]
    source = rows.RowSource(batch.schema, iter([batch]))
    first = b"".join(bytes(chunk) for chunk, _ in source.take(10))  # text, from the first half
    source.configure([1] * batch.num_columns, "UTC")  # then binary (a cursor FETCHed with another format)
    rest = b"".join(bytes(chunk) for chunk, _ in source.take(None))
    assert first == b"".join(text[:10]) and rest == b"".join(binary[10:])


def test_uuid_and_json_columns_typed_from_duckdb_types():
    """DuckDB's UUID and JSON reach Arrow as strings: their DuckDB types give their OIDs and encodings."""
    ids = [uuid.UUID(int=(i + 1) * 0x0123456789ABCDEF0123456789ABCDEF % (1 << 128)) for i in range(4)]
    batch = pa.record_batch({
        "u": pa.array([str(ids[0]), None, str(ids[1]).upper(), str(ids[2])]),
        "j": pa.array(['{"a": [1, "é"]}', "null", None, "2"]),
        "lu": pa.array([[str(ids[3]), None], None, [], [str(ids[0])]], pa.list_(pa.string())),
        "lj": pa.array([['{"k": "v w"}', "[1]"], None, None, []], pa.list_(pa.string())),
        "s": pa.array(["x", None, "y", "z"]),
    })
    schema = pgt.pg_schema(batch.schema, ["UUID", "JSON", "UUID[]", "JSON[]", "VARCHAR"])
    assert [pgt.arrow_oid(f.type)[0] for f in schema] == [pgt.UUID, pgt.JSON, 2951, 199, pgt.TEXT]
    assert pgt.pg_schema(batch.schema, ["UUID"]) == batch.schema  # not DuckDB's description of these columns
    typed = pgt.conform(batch.slice(1), schema)  # an offset into the buffers too
    text = {name: pgt.text_column(typed.column(name)) for name in schema.names}
    assert text["u"] == [None, str(ids[1]).encode(), str(ids[2]).encode()]
    assert text["j"] == [b"null", None, b"2"]
    assert text["lu"] == [None, b"{}", f"{{{ids[0]}}}".encode()]
    assert pgt.text_column(pgt.conform(batch, schema).column("lj"))[0] == b'{"{\\"k\\": \\"v w\\"}",[1]}'
    assert pgt.binary_column(typed.column("u")) == [None, ids[1].bytes, ids[2].bytes]
    assert pgt.binary_column(typed.column("j")) == [b"null", None, b"2"]
    for fmt in (0, 1):  # the vectorised DataRow cells are the value-by-value ones
        buffer, offsets = pgt.data_rows(typed, [fmt] * typed.num_columns)
        encode = pgt.text_column if fmt == 0 else pgt.binary_column
        expected = b"".join(pm.data_row(list(v)) for v in zip(*[encode(c) for c in typed.columns]))
        assert bytes(buffer)[offsets[0]:offsets[-1]] == expected
    assert pgt.decode_binary(ids[0].bytes, pgt.UUID) == str(ids[0])
    assert pgt.decode_text(str(ids[0]).upper(), pgt.UUID) == str(ids[0])
    with pytest.raises(ValueError):
        pgt.uuid_from_text(pa.array(["not a uuid"]))
