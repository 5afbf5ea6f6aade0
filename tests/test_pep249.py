"""PEP 249 conveniences of the Python API on a real mesh: module globals, type objects, constructors, the
exception hierarchy, and parameters (``?``, ``$1``, ``:name``, ``$name``, ``%(name)s``) with clear errors."""

from __future__ import annotations

import datetime
import re
import time

import pytest
from meshkit import shop_mesh

import federation
from federation import errors


@pytest.fixture(scope="module")
def conn(tmp_path_factory):
    root = shop_mesh(tmp_path_factory.mktemp("pep249"))
    c = federation.connect(str(root), user="ana")
    yield c
    c.close()


def rows(conn, sql, params=None):
    cur = conn.cursor()
    cur.execute(sql, params)
    return cur.fetchall()


# -- module globals, exceptions, constructors ---------------------------------------------------------------

def test_module_globals():
    assert federation.apilevel == "2.0"
    assert federation.threadsafety in (1, 2, 3)
    assert federation.paramstyle in ("qmark", "numeric", "named", "format", "pyformat")


def test_exception_hierarchy_at_module_level():
    f = federation
    assert issubclass(f.Error, Exception) and issubclass(f.Warning, Exception)
    assert issubclass(f.InterfaceError, f.Error) and issubclass(f.DatabaseError, f.Error)
    for name in ("DataError", "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                 "NotSupportedError"):
        assert issubclass(getattr(f, name), f.DatabaseError), name
        assert getattr(f.Connection, name) is getattr(f, name)


def test_constructors():
    assert federation.Date(2026, 1, 5) == datetime.date(2026, 1, 5)
    assert federation.Time(10, 30, 0) == datetime.time(10, 30)
    assert federation.Timestamp(2026, 1, 5, 10, 30) == datetime.datetime(2026, 1, 5, 10, 30)
    ticks = time.mktime((2026, 1, 5, 10, 30, 15, 0, 0, -1))
    assert federation.DateFromTicks(ticks) == datetime.date(2026, 1, 5)
    assert federation.TimeFromTicks(ticks) == datetime.time(10, 30, 15)
    assert federation.TimestampFromTicks(ticks) == datetime.datetime(2026, 1, 5, 10, 30, 15)
    assert federation.Binary(b"\x00\x01") == b"\x00\x01"


def test_constructed_values_bind(conn):
    got = rows(conn, "select count(*) from shop.orders where order_date = ?", [federation.Date(2026, 1, 1)])
    assert got == [(2,)]  # order ids 0 and 60 fall on the first day
    got = rows(conn, "select ? as t, octet_length(?) as n",
               [federation.Timestamp(2026, 1, 5, 10, 30), federation.Binary(b"\x00\x01\x02")])
    assert got == [(datetime.datetime(2026, 1, 5, 10, 30), 3)]


# -- type objects against cursor.description ----------------------------------------------------------------

def test_type_objects_match_description(conn):
    cur = conn.cursor()
    cur.execute("select order_id, amount, order_date, c.full_name, ?::blob as b, now() as ts, 1.5::double as d, "
                "[1, 2] as l from shop.orders o join crm.customers c on o.customer_id = c.id limit 1",
                [b"x"])
    types = {d[0]: d[1] for d in cur.description}
    assert types["order_id"] == federation.NUMBER and federation.NUMBER == types["order_id"]
    assert types["amount"] == federation.NUMBER  # DECIMAL(10,2)
    assert types["d"] == federation.NUMBER
    assert types["order_date"] == federation.DATETIME
    assert types["ts"] == federation.DATETIME  # TIMESTAMP WITH TIME ZONE
    assert types["full_name"] == federation.STRING
    assert types["b"] == federation.BINARY
    assert types["order_id"] != federation.STRING and types["full_name"] != federation.NUMBER
    for t in (federation.STRING, federation.BINARY, federation.NUMBER, federation.DATETIME, federation.ROWID):
        assert types["l"] != t  # a list belongs to no family
    assert types["order_id"] != federation.ROWID


# -- parameters ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("sql, params", [
    ("select order_id from shop.orders where order_id = ? or order_id = ? order by 1", [3, 7]),
    ("select order_id from shop.orders where order_id = ? or order_id = ? order by 1", (3, 7)),
    ("select order_id from shop.orders where order_id = $1 or order_id = $2 order by 1", [3, 7]),
    ("select order_id from shop.orders where order_id = :a or order_id = :b order by 1", {"a": 3, "b": 7}),
    ("select order_id from shop.orders where order_id = $a or order_id = $b order by 1", {"a": 3, "b": 7}),
    ("select order_id from shop.orders where order_id = %(a)s or order_id = %(b)s order by 1", {"a": 3, "b": 7}),
])
def test_parameter_styles_bind_values(conn, sql, params):
    assert rows(conn, sql, params) == [(3,), (7,)]


def test_named_parameter_used_twice_and_via_sql(conn):
    got = conn.sql("select :n + 1 as a, :n * 2 as b", {"n": 20}).fetchall()
    assert got == [(21, 40)]


def test_colons_in_literals_casts_and_slices_are_not_parameters(conn):
    got = rows(conn, "select ':a' as s, $$%(b)s$$ as h, '42'::int as c, [1, 2, 3][2:3] as l, "
                     "[1, 2, 3][:1] as m, {'k':5}.k as k, :v as v -- :w in a comment",
               {"v": "bound"})
    assert got == [(":a", "%(b)s", 42, [2, 3], [1], 5, "bound")]


def test_named_parameter_filters_governed_data(conn):
    got = rows(conn, "select region, count(*) from crm.customers where region = :r group by 1", {"r": "EU"})
    assert got == [("EU", 10)]


@pytest.mark.parametrize("sql, params, message", [
    ("select :a, :b", {"a": 1}, "no value for parameter :b"),
    ("select %(a)s", {}, "no value for parameter %(a)s"),
    ("select $a", {"b": 1, "a": 2}, "no parameter named b"),
    ("select :a", [1], "named parameters (:a): pass a dict"),
    ("select :a", None, "named parameters (:a): pass a dict"),
    ("select ?", {"a": 1}, "positional parameters (?): pass a list or a tuple"),
    ("select ?, ?", [1], "2 ? parameter(s) but 1 value(s)"),
    ("select ?", [1, 2], "1 ? parameter(s) but 2 value(s)"),
    ("select ?", None, "1 ? parameter(s) but 0 value(s)"),
    ("select $1, $2", [1], "no value for parameter $2"),
    ("select $1", [1, 2], "up to $1 but 2 values"),
    ("select $2", [1, 2], "not $1"),
    ("select 1", [5], "no parameter placeholder but 1 value(s)"),
    ("select 1", {"a": 5}, "no parameter placeholder but 1 value(s)"),
    ("select ?, :a", {"a": 1}, "mixes positional (?) and named (:a)"),
    ("select ?, $1", [1, 2], "mixes ? and $1"),
    ("select ?", "x", "not a str"),
])
def test_parameter_mismatch_is_a_clear_programming_error(conn, sql, params, message):
    with pytest.raises(errors.ProgrammingError) as e:
        rows(conn, sql, params)
    assert type(e.value) is errors.ProgrammingError  # not a syntax error of the pipeline, not a DataError
    assert message in str(e.value)


def test_a_bound_value_is_data_not_sql(conn):
    assert rows(conn, "select count(*) from crm.customers where region = :r", {"r": "EU' or 1=1 --"}) == [(0,)]
    assert rows(conn, "select :r as r", {"r": ":s %(t)s $1 ?"}) == [(":s %(t)s $1 ?",)]


def test_unreadable_statement_is_the_pipelines_syntax_error(conn):
    with pytest.raises(errors.SyntaxError):
        rows(conn, "select 'unterminated from crm.customers where id = :id", {"id": 1})


def test_connection_still_serves_after_a_mismatch(conn):
    with pytest.raises(federation.ProgrammingError):
        rows(conn, "select :a", {})
    assert rows(conn, "select :a as a", {"a": 1}) == [(1,)]


def test_executemany_with_named_parameters(conn):
    cur = conn.cursor()
    cur.executemany("select order_id from shop.orders where order_id = :id", [{"id": 1}, {"id": 2}, {"id": 999}])
    assert cur.rowcount == 2


@pytest.mark.parametrize("sql, params, message", [
    ("select :a, :b as audited_missing", {"a": 1}, "no value for parameter :b"),
    ("select :a as audited_extra", {"a": 1, "zz": 2}, "no parameter named zz"),
    ("select ? as audited_count", [1, 2], "1 ? parameter(s) but 2 value(s)"),
])
def test_a_parameter_mismatch_is_audited(conn, sql, params, message):
    """Binding runs inside Platform.query: the refusal is in the audit log, with the statement as sent and
    the error naming the parameter; the values are not logged."""
    with pytest.raises(errors.ProgrammingError, match=re.escape(message)):
        conn.cursor().execute(sql, params)
    entries = [e for e in conn.platform.audit.history().to_pylist() if e["sql"] == sql]
    assert entries, "the refused statement is not in the audit log"
    entry = entries[-1]
    assert entry["status"] == "error" and entry["principal"] == "ana" and entry["interface"] == "python"
    assert message in entry["error"]


def test_a_bound_query_is_audited_as_written(conn):
    sql = "select count(*) as audited_bound from crm.customers where region = :r"
    assert rows(conn, sql, {"r": "US"}) == [(10,)]
    entry = [e for e in conn.platform.audit.history().to_pylist() if e["sql"] == sql][-1]
    assert entry["status"] == "ok" and "$r" in entry["rewritten_sql"]
