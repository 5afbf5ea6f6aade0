"""pgcli as its users run it (issue 13, item 6): the start-up catalog refresh its completer runs (every
refresher of pgcli.completion_refresher, through pgcli's own PGExecute, synchronously so an error surfaces),
pgspecial's ``\\dt`` and ``\\d+`` through PGExecute.run, and the console script non-interactively
(``pgcli -c``, ``pgcli -l``)."""

from __future__ import annotations

import os
import subprocess
import sys

import clientkit
import pytest

pytest.importorskip("pgcli")
from pgcli.completion_refresher import CompletionRefresher
from pgcli.pgcompleter import PGCompleter
from pgcli.pgexecute import PGExecute
from pgspecial.main import PGSpecial

served = pytest.fixture(scope="module")(clientkit.serve)


def test_pgcli_start_up_refresh_and_backslash_commands(served):
    executor = PGExecute(clientkit.DATABASE, "ana", served.tokens["ana"], "127.0.0.1", served.port)
    special = PGSpecial()
    completer = PGCompleter(smart_completion=True, pgspecial=special, settings={})
    try:
        assert list(CompletionRefresher.refreshers) == ["schemata", "tables", "views", "types", "databases",
                                                        "casing", "functions"]
        for refresh in CompletionRefresher.refreshers.values():  # what the background refresh runs at start-up
            refresh(completer, executor)
        tables = completer.dbmetadata["tables"]
        assert {"crm", "lab", "shop", "system"} <= set(tables) and "report" not in tables
        assert sorted(tables["lab"]) == ["events", "readings"]
        assert {name: c.datatype for name, c in tables["lab"]["readings"].items()} == {
            "id": "bigint", "taken_on": "date", "taken_at": "timestamp with time zone", "price": "numeric",
            "ok": "boolean", "tags": "character varying[]", "span": "interval", "note": "character varying"}
        assert list(tables["crm"]["customers"]) == ["id", "full_name", "email", "region"]
        assert "orders" in tables["shop"] and "amount" not in tables["shop"]["orders"]  # denied to ana
        assert "datasets" in completer.dbmetadata["views"]["system"]
        assert completer.databases == [clientkit.DATABASE]

        [(_, cursor, headers, status, *_)] = list(executor.run(r"\dt lab.*", pgspecial=special))
        assert headers == ["Schema", "Name", "Type", "Owner"] and status == "SELECT 2"
        assert [tuple(r[:3]) for r in cursor] == [("lab", "events", "table"), ("lab", "readings", "table")]
        [(_, rows, headers, footer, *_)] = list(executor.run(r"\d+ lab.readings", pgspecial=special))
        assert headers[0] == "Column" and headers[-1] == "Description"
        assert [(r[0], r[1], r[-1]) for r in rows][:3] == [("id", "bigint", "Reading id"),
                                                          ("taken_on", "date", "Day of the reading"),
                                                          ("taken_at", "timestamp with time zone", "When it was taken")]
        assert '"readings_pkey" PRIMARY KEY, btree (id)' in footer
        [(_, cursor, *_)] = list(executor.run("select id, price, tags, span from lab.readings where id = 1"))
        assert [tuple(r) for r in cursor] == [clientkit.READINGS[0][0:1] + (clientkit.READINGS[0][3],) +
                                              clientkit.READINGS[0][5:7]]
    finally:
        executor.conn.close()


def test_pgcli_console_script_non_interactive(served, tmp_path):
    env = dict(os.environ, PGPASSWORD=served.tokens["ana"], HOME=str(tmp_path), XDG_CONFIG_HOME=str(tmp_path))
    base = [sys.executable, "-m", "pgcli.main", "-h", "127.0.0.1", "-p", str(served.port), "-U", "ana", "-d",
            clientkit.DATABASE, "--less-chatty"]
    done = subprocess.run([*base, "-c", r"\dt lab.*", "-c", "select id, note from lab.readings order by id limit 2",
                           "-c", "select * from report.sales_by_region"], capture_output=True, text=True,
                          env=env, stdin=subprocess.DEVNULL, timeout=60, check=False)
    assert "| lab    | events   | table | ana   |" in done.stdout
    assert "| lab    | readings | table | ana   |" in done.stdout
    assert "| 1  | first  |" in done.stdout and "| 2  | <null> |" in done.stdout
    assert "no grant to read report.sales_by_region" in done.stdout + done.stderr  # refused, not shown
    assert "Traceback" not in done.stderr
    listed = subprocess.run([*base, "-l"], capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL,
                            timeout=60, check=False)
    assert listed.returncode == 0, listed.stderr
    assert f"| {clientkit.DATABASE} | ana   | UTF8" in listed.stdout
