"""pgjdbc (Debian's /usr/share/java/postgresql.jar) as DBeaver and Metabase use it (issue 13, item 6):
tests/pgjdbc/ClientSession.java runs DatabaseMetaData (catalogs, schemas, table types, tables, columns with
remarks, primary keys, index info, imported keys, type info, functions, table privileges), a preview, a join,
a PreparedStatement past the prepare threshold (prepareThreshold=5, run 10 times), every type of
lab.readings, a fetch-size cursor over 100,000 rows, and denials; one fact per line."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import clientkit
import pytest

JDBC_JAR = "/usr/share/java/postgresql.jar"
SOURCE = Path(__file__).parent / "pgjdbc" / "ClientSession.java"
served = pytest.fixture(scope="module")(clientkit.serve)


@pytest.fixture(scope="module")
def lines(served, tmp_path_factory) -> list[str]:
    if shutil.which("javac") is None or not os.path.exists(JDBC_JAR):
        pytest.skip("javac or pgjdbc is not installed")
    classes = tmp_path_factory.mktemp("pgjdbc")
    subprocess.run(["javac", "-cp", JDBC_JAR, "-d", str(classes), str(SOURCE)], check=True, capture_output=True,
                   timeout=120)
    done = subprocess.run(["java", "-cp", f"{JDBC_JAR}:{classes}", "ClientSession",
                           f"jdbc:postgresql://127.0.0.1:{served.port}/{clientkit.DATABASE}?prepareThreshold=5", "ana",
                           served.tokens["ana"]], capture_output=True, text=True, timeout=120, check=False,
                          env=dict(os.environ, TZ="UTC"))
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines()


def starting(lines: list[str], prefix: str) -> list[str]:
    return [line for line in lines if line.startswith(prefix + " ")]


def test_pgjdbc_database_metadata(lines):
    assert starting(lines, "catalog") == [f"catalog {clientkit.DATABASE}"]
    schemas = {line.split()[1] for line in starting(lines, "schema")}
    assert {"crm", "lab", "shop", "system"} <= schemas and "report" not in schemas
    assert "tabletype TABLE" in lines and "tabletype VIEW" in lines
    assert starting(lines, "table") == ["table lab.events TABLE remarks=Sensor events",
                                        "table lab.readings TABLE remarks=Instrument readings"]
    assert "alltables 4" in lines  # crm.customers, shop.orders, lab.events, lab.readings: not report
    assert starting(lines, "column") == [
        "column id int8 -5 size=19 digits=0 nullable=NO remarks=Reading id",
        "column taken_on date 91 size=13 digits=0 nullable=YES remarks=Day of the reading",
        "column taken_at timestamptz 93 size=35 digits=6 nullable=YES remarks=When it was taken",
        "column price numeric 2 size=12 digits=3 nullable=YES remarks=Cost",
        "column ok bool -7 size=1 digits=0 nullable=YES remarks=Passed the check",
        "column tags _varchar 2003 size=2147483647 digits=0 nullable=YES remarks=Labels",
        "column span interval 1111 size=49 digits=6 nullable=YES remarks=Duration",  # Types.OTHER, not ARRAY
        "column note varchar 12 size=2147483647 digits=0 nullable=YES remarks=Free text"]
    assert starting(lines, "pk") == ["pk id 1 readings_pkey"]
    assert starting(lines, "index") == ["index readings_pkey id unique=true"]
    assert "importedkeys 0" in lines
    assert "typeinfo bool=-7 int8=-5 numeric=2 timestamptz=93 interval=1111 _varchar=2003" in lines
    assert "functions lab 0" in lines
    assert int(starting(lines, "functions pg_catalog")[0].split()[-1]) > 0


def test_pgjdbc_queries_prepared_types_streaming_denials(lines):
    assert starting(lines, "preview") == ["preview 1 **** ***@example.com US", "preview 2 **** ***@example.com CA",
                                          "preview 4 **** ***@example.com US"]
    assert "joincols region orders int8" in lines
    assert starting(lines, "join") == [f"join {region} {n}" for region, n in clientkit.JOIN_ROWS]
    prepared = starting(lines, "prepared")
    assert [line.split(" server=")[0] for line in prepared] == [
        f"prepared {i} 2 5" if i % 2 == 0 else f"prepared {i} 1 4" for i in range(10)]
    assert prepared[-1].endswith("server=true")  # past the threshold: a named server-side statement
    assert "types id:-5 taken_on:91 taken_at:93 price:2 ok:-7 tags:2003 span:1111 note:12" in lines
    assert starting(lines, "reading") == [
        "reading 1 2024-02-29 2024-02-29T12:30Z 1234.500 true [a, b] 1 day 02:00:00 first",
        "reading 2 2024-03-01 2024-03-01T00:00:01.500Z -0.125 false [] 01:30:00 null",
        "reading 3 null null null null null null null",
        "reading 4 1999-12-31 1999-12-31T23:59:59Z 0.000 true [x y, null] 00:00:05 O'Brien",
        "reading 5 2030-01-01 2030-01-01T08:00Z 99999.999 false [z] 40 days last"]
    assert f"streamed {clientkit.EVENTS} 12487500" in lines
    assert "denied 42501" in lines and "column-denied 42501" in lines


def test_pgjdbc_table_privileges_are_read_only(lines):
    """pg_class.relacl says ana=r/ana: with a NULL acl pgjdbc would grant the owner every privilege."""
    assert starting(lines, "privileges") == ["privileges SELECT"]
