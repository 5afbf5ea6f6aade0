"""Node.js sessions (issue 13, item 6): node-postgres (``pg``, with ``pg-cursor``) and postgres.js
(``postgres``), from npm at the versions pinned in tests/node/package-lock.json, run tests/node/session.mjs:
the catalog with comments and the primary key, a preview, a join and an aggregate, parameters (a named
prepared statement run twice, ``= any($1)``, postgres.js's ``in ${sql([...])}`` and ``= any(${array})``),
every type of lab.readings, a cursor streaming 100,000 rows, masks and denials."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import clientkit
import pytest

NODE = Path(__file__).parent / "node"
served = pytest.fixture(scope="module")(clientkit.serve)


@pytest.fixture(scope="session")
def node_modules():
    """``npm ci`` once, from the lockfile (CI's .ci/run does it before the tests)."""
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.skip("node and npm are not installed")
    if not (NODE / "node_modules" / "postgres").is_dir() or not (NODE / "node_modules" / "pg-cursor").is_dir():
        subprocess.run(["npm", "ci", "--no-audit", "--no-fund", "--prefix", str(NODE)], check=True,
                       capture_output=True, timeout=300)
    return NODE / "node_modules"


def session(served, which: str) -> dict:
    done = subprocess.run(["node", str(NODE / "session.mjs"), which], capture_output=True, text=True, timeout=120,
                          check=False, env=dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(served.port), PGUSER="ana",
                                                PGPASSWORD=served.tokens["ana"], PGDATABASE=clientkit.DATABASE,
                                                TZ="UTC"))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


COLUMNS = [["id", "bigint", "Reading id"], ["taken_on", "date", "Day of the reading"],
           ["taken_at", "timestamp with time zone", "When it was taken"], ["price", "numeric(12,3)", "Cost"],
           ["ok", "boolean", "Passed the check"], ["tags", "character varying[]", "Labels"],
           ["span", "interval", "Duration"], ["note", "character varying", "Free text"]]
# int8 and numeric arrive as strings in both drivers; dates and timestamps as JS Dates (TZ=UTC)
PREVIEW = [["1", "****", "***@example.com", "US"], ["2", "****", "***@example.com", "CA"],
           ["4", "****", "***@example.com", "US"]]
READINGS = [["1", "2024-02-29T00:00:00.000Z", "2024-02-29T12:30:00.000Z", "1234.500", True, ["a", "b"], "first"],
            ["2", "2024-03-01T00:00:00.000Z", "2024-03-01T00:00:01.500Z", "-0.125", False, [], None],
            ["3", None, None, None, None, None, None],
            ["4", "1999-12-31T00:00:00.000Z", "1999-12-31T23:59:59.000Z", "0.000", True, ["x y", None], "O'Brien"],
            ["5", "2030-01-01T00:00:00.000Z", "2030-01-01T08:00:00.000Z", "99999.999", False, ["z"], "last"]]
STREAMED = [clientkit.EVENTS, sum((i % 1000) / 4.0 for i in range(clientkit.EVENTS))]


def without_span(rows):
    return [r[:6] + r[7:] for r in rows]


def test_node_postgres_session(served, node_modules):
    out = session(served, "pg")
    assert {"crm", "lab", "shop", "system"} <= set(out["schemas"]) and "report" not in out["schemas"]
    assert out["tables"] == ["events", "readings"]
    assert out["columns"] == COLUMNS and out["pkey"] == [["id"]]
    assert out["preview"] == PREVIEW
    assert out["join"] == [[region, str(n)] for region, n in clientkit.JOIN_ROWS]  # count(*) is int8: a string
    assert out["params"] == [["2"], ["5"]] and out["params_again"] == [["1"], ["4"]]
    assert out["any"] == [["1"], ["4"]]
    assert out["types"][:5] + out["types"][6:7] == [20, 1082, 1184, 1700, 16, 1186]
    assert without_span(out["readings"]) == READINGS
    # postgres-interval's own text (toPostgres) of 1 day 02:00:00, 01:30:00, 00:00:05, 40 days
    assert [r[6] for r in out["readings"]] == ["2 hours 1 days", "30 minutes 1 hours", None, "5 seconds", "40 days"]
    assert out["streamed"] == STREAMED
    assert out["denied"] == "42501" and out["after"] == 1


def test_postgres_js_session(served, node_modules):
    out = session(served, "postgres")
    assert {"crm", "lab", "shop", "system"} <= set(out["schemas"]) and "report" not in out["schemas"]
    assert out["tables"] == ["events", "readings"]
    assert out["columns"] == COLUMNS and out["pkey"] == [["id"]]
    assert out["preview"] == PREVIEW
    assert out["join"] == [[region, str(n)] for region, n in clientkit.JOIN_ROWS]
    assert out["in_list"] == [["1"], ["2"], ["5"]]  # in ${sql([1, 2, 5])}: ($1,$2,$3)
    assert out["any"] == [["1"], ["5"]] and out["any_int"] == [["3"], ["4"]]  # = any(${array})
    assert out["params"] == [["5"]]
    # postgres.js reads an unquoted NULL in a text array as the string "NULL" (it does so from PostgreSQL too)
    expected = [r[:5] + [["x y", "NULL"] if r[5] == ["x y", None] else r[5]] + r[6:] for r in READINGS]
    assert without_span(out["readings"]) == expected
    assert [r[6] for r in out["readings"]] == ["1 day 02:00:00", "01:30:00", None, "00:00:05", "40 days"]
    assert out["streamed"] == STREAMED
    assert out["denied"] == "42501"
