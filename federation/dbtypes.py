"""PEP 249 type objects and constructors.

A cursor's ``description`` gives each column's type code as DuckDB spells the SQL type (``"BIGINT"``,
``"DECIMAL(10,2)"``, ``"TIMESTAMP WITH TIME ZONE"``, ``"VARCHAR[]"``); the type objects compare equal to
the codes of their family, so ``cur.description[0][1] == federation.NUMBER`` holds for any integer,
decimal or floating-point column. Lists, structs and maps belong to no family.
"""

from __future__ import annotations

import datetime
import re
import time

_BASE = re.compile(r"[A-Z ]+")


class DBAPITypeObject:
    def __init__(self, name: str, *codes: str):
        self.name = name
        self.codes = frozenset(codes)

    def __eq__(self, other) -> bool:
        if isinstance(other, DBAPITypeObject):
            return self is other
        if not isinstance(other, str):
            return NotImplemented
        code = other.strip().upper()
        if code.endswith("]") or code.startswith(("STRUCT", "MAP", "UNION")):
            return False  # a list or a nested type, whatever its elements
        base = _BASE.match(code)
        return base is not None and base.group(0).strip() in self.codes

    def __ne__(self, other) -> bool:
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    def __hash__(self) -> int:
        return hash(self.name)

    def __repr__(self) -> str:
        return f"<type object {self.name}>"


STRING = DBAPITypeObject("STRING", "VARCHAR", "CHAR", "BPCHAR", "TEXT", "STRING", "UUID", "ENUM", "JSON")
BINARY = DBAPITypeObject("BINARY", "BLOB", "BYTEA", "VARBINARY", "BINARY", "BIT", "BITSTRING")
NUMBER = DBAPITypeObject("NUMBER", "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
                         "UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "REAL", "DECIMAL", "NUMERIC")
DATETIME = DBAPITypeObject("DATETIME", "DATE", "TIME", "TIME WITH TIME ZONE", "TIMESTAMP",
                           "TIMESTAMP WITH TIME ZONE", "TIMESTAMP_S", "TIMESTAMP_MS", "TIMESTAMP_NS", "INTERVAL")
ROWID = DBAPITypeObject("ROWID")  # datasets are views: no row identifier is ever handed out

Date = datetime.date
Time = datetime.time
Timestamp = datetime.datetime
Binary = bytes


def DateFromTicks(ticks: float) -> datetime.date:
    return Date(*time.localtime(ticks)[:3])


def TimeFromTicks(ticks: float) -> datetime.time:
    return Time(*time.localtime(ticks)[3:6])


def TimestampFromTicks(ticks: float) -> datetime.datetime:
    return Timestamp(*time.localtime(ticks)[:6])
