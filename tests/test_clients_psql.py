"""psql's session as its users run it (issue 13, item 6), from a script (``psql -X -v ON_ERROR_STOP=1 -f``):
``\\l``, ``\\dn``, ``\\dt``, ``\\d+``, ``\\df``, a preview, a join and an aggregate, a variable as a parameter,
every type of lab.readings, FETCH_COUNT streaming 100,000 rows through a cursor, ``\\copy`` to a CSV file, and
a denied dataset refused with its SQLSTATE."""

from __future__ import annotations

import os
import shutil
import subprocess

import clientkit
import pytest

served = pytest.fixture(scope="module")(clientkit.serve)

SCRIPT = r"""
\echo == databases
\l
\echo == schemas
\dn
\echo == tables
\dt lab.*
\echo == describe
\d+ lab.readings
\echo == functions
\df
\echo == preview
select * from crm.customers order by id limit 3;
\echo == join
select c.region, count(*) as orders from shop.orders o join crm.customers c on o.customer_id = c.id
group by c.region order by c.region;
\echo == parameter
\set region CA
select id, email from crm.customers where region = :'region' order by id limit 2;
\echo == types
select * from lab.readings order by id;
\echo == stream
\set FETCH_COUNT 5000
\pset format unaligned
\pset tuples_only on
select event_id, site from lab.events order by event_id;
\pset tuples_only off
\pset format aligned
\unset FETCH_COUNT
\echo == copy
\copy (select id, taken_at, price, ok, tags, span, note from lab.readings order by id) to 'OUT' csv header
\echo == end
"""


def psql(served, script: str, tmp_path):
    if shutil.which("psql") is None:
        pytest.skip("psql is not installed")
    path = tmp_path / "session.sql"
    path.write_text(script)
    return subprocess.run(["psql", "-X", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-h", "127.0.0.1",
                           "-p", str(served.port), "-U", "ana", "-d", clientkit.DATABASE, "-f", str(path)],
                          capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, PGPASSWORD=served.tokens["ana"], PGCONNECT_TIMEOUT="10",
                                   PGTZ="UTC"))


def sections(text: str) -> dict[str, str]:
    out = {}
    for part in text.split("== ")[1:]:
        name, _, body = part.partition("\n")
        out[name.strip()] = body
    return out


def test_psql_session(served, tmp_path):
    target = tmp_path / "readings.csv"
    done = psql(served, SCRIPT.replace("OUT", str(target)), tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    got = sections(done.stdout)
    assert set(got) == {"databases", "schemas", "tables", "describe", "functions", "preview", "join", "parameter",
                        "types", "stream", "copy", "end"}
    assert " testmesh " in got["databases"] and "(1 row)" in got["databases"]  # the mesh is the one database
    schemas = [line.split("|")[0].strip() for line in got["schemas"].splitlines() if "|" in line][1:]
    assert {"crm", "lab", "shop", "system"} <= set(schemas) and "report" not in schemas  # report: no grant
    assert [line.split("|")[1].strip() for line in got["tables"].splitlines() if " table " in line] == \
        ["events", "readings"]
    describe = got["describe"]
    assert 'Table "lab.readings"' in describe
    for column, pg_type, comment in [("id", "bigint", "Reading id"), ("taken_at", "timestamp with time zone",
                                      "When it was taken"), ("price", "numeric(12,3)", "Cost"),
                                     ("ok", "boolean", "Passed the check"), ("tags", "character varying[]", "Labels"),
                                     ("span", "interval", "Duration")]:
        line = next(line for line in describe.splitlines() if line.startswith(f" {column} "))
        assert pg_type in line and line.rstrip().endswith(comment), line
    assert '"readings_pkey" PRIMARY KEY, btree (id)' in describe
    assert "List of functions" in got["functions"]
    preview = got["preview"]
    assert "  1 | ****      | ***@example.com | US" in preview and "(3 rows)" in preview
    assert "user1@" not in preview  # masked
    assert [line.split("|") for line in got["join"].splitlines() if line.startswith((" CA", " US"))
            ] == [[" CA     ", "     33"], [" US     ", "     34"]]
    assert "  2 | ***@example.com" in got["parameter"] and "  5 | ***@example.com" in got["parameter"]
    types = got["types"]
    assert "  1 | 2024-02-29 | 2024-02-29 12:30:00+00   |  1234.500 | t  | {a,b}        | 1 day 02:00:00 | first" \
        in types
    assert "  4 | 1999-12-31 | 1999-12-31 23:59:59+00   |     0.000 | t  | {\"x y\",NULL} | 00:00:05       | O'Brien" \
        in types
    assert "(5 rows)" in types
    streamed = [line for line in got["stream"].splitlines() if "|" in line]
    assert len(streamed) == clientkit.EVENTS and streamed[0] == "0|site0" and streamed[-1] == "99999|site4"
    assert got["copy"].strip() == "COPY 5"
    assert target.read_text() == (
        "id,taken_at,price,ok,tags,span,note\n"
        '1,2024-02-29 12:30:00+00,1234.500,t,"{a,b}",1 day 02:00:00,first\n'
        "2,2024-03-01 00:00:01.5+00,-0.125,f,{},01:30:00,\n"
        "3,,,,,,\n"
        '4,1999-12-31 23:59:59+00,0.000,t,"{""x y"",NULL}",00:00:05,O\'Brien\n'
        "5,2030-01-01 08:00:00+00,99999.999,f,{z},40 days,last\n")


def test_psql_stops_on_a_denied_dataset(served, tmp_path):
    done = psql(served, "select 1 as before;\nselect * from report.sales_by_region;\nselect 2 as after;\n", tmp_path)
    assert done.returncode == 3  # ON_ERROR_STOP
    assert "ERROR:  42501:" in done.stderr and "report.sales_by_region" in done.stderr
    assert " before" in done.stdout and " after" not in done.stdout
    done = psql(served, "select amount from shop.orders;\n", tmp_path)
    assert done.returncode == 3 and "42501" in done.stderr and "amount" in done.stderr
