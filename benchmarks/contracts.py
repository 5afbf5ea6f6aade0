"""Contract from existing data: ``quanta contract init`` versus datacontract-cli's ``datacontract import``, on
the TPC-H SF1 ``lineitem`` Parquet file (6 million rows) and on a 1-million-row PostgreSQL table, in one run.

    python benchmarks/contracts.py [--repeat 3] [--rows 1000000] [--no-write]

Each tool runs as its users run it: one command, a new process each time (interpreter start and imports
included), interleaved, ``--repeat`` times; the figure is the median wall time. What each contract holds is
counted too: the tools do not do the same work. datacontract-cli reads the schema only (the Parquet footer,
PostgreSQL's information_schema); ``quanta contract init`` also profiles the data (one scan: nulls, distinct
counts, low-cardinality values, personal-looking values) to suggest required, unique, primary key, enums and
classifications.

datacontract-cli is heavy: it is installed into its own virtual environment,
``benchmarks/.work/venv-datacontract`` (created here when missing, with pip; never into the project's
environment). The PostgreSQL server is a throw-away cluster (tests/pgserver.py: initdb + pg_ctl on a loopback
port, as the ``postgres`` user when run as root). The lineitem file is the TPC-H benchmark's
(``benchmarks/tpch.py``; generated here when missing).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml
from _common import REPO, WORK, environment_lines, median, progress, table, write_section

sys.path.insert(0, str(REPO / "tests"))

DATACONTRACT = "datacontract-cli[parquet,postgres]==1.2.8"  # the version measured (pinned: figures comparable)
VENV = WORK / "venv-datacontract"
QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
TABLE = "public.people"


def datacontract_cli() -> tuple[str | None, str]:
    """The datacontract executable of its own virtual environment (made when missing), or None and why."""
    exe = VENV / "bin" / "datacontract"
    if not exe.exists():
        progress(f"installing {DATACONTRACT} into {VENV} (its own virtual environment) ...")
        python = shutil.which("python3.11") or shutil.which("python3") or sys.executable
        made = subprocess.run([python, "-m", "venv", str(VENV)], capture_output=True, text=True)
        if made.returncode != 0:
            return None, f"could not create {VENV}: {made.stderr.strip()[-300:]}"
        pip = subprocess.run([str(VENV / "bin" / "pip"), "install", "-q", DATACONTRACT], capture_output=True,
                             text=True, timeout=1800)
        if pip.returncode != 0 or not exe.exists():
            return None, f"pip install {DATACONTRACT} failed: {(pip.stderr or pip.stdout).strip()[-400:]}"
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    return str(exe), version.stdout.strip()


def lineitem() -> Path:
    path = WORK / "tpch-sf1" / "data" / "lineitem.parquet"
    if not path.exists():
        import tpch

        tpch.generate(1.0, path.parent)
    return path


def load_people(pg, rows: int) -> None:
    """A table a data engineer meets: keys, names, e-mails, phones, a country code, dates, amounts."""
    pg.sql("CREATE TABLE people (person_id bigint primary key, full_name text not null, email text, phone text, "
           "country char(2) not null, signed_up date not null, last_seen timestamptz, balance numeric(12,2), "
           "active boolean not null)",
           f"INSERT INTO people SELECT i, 'Person ' || i, 'person' || i || '@example.com', "
           f"'+41 79 ' || lpad((i % 10000000)::text, 7, '0'), (ARRAY['CH','DE','FR','IT','AT'])[1 + i % 5], "
           f"date '2020-01-01' + (i % 1500), CASE WHEN i % 10 = 0 THEN NULL ELSE timestamptz '2026-01-01' "
           f"+ (i % 86400) * interval '1 second' END, (i % 100000) / 100.0, i % 7 <> 0 "
           f"FROM generate_series(1, {rows}) i",
           "ANALYZE people")


def run(cmd: list[str], env: dict, out: Path) -> tuple[float, str | None]:
    """Wall time of one command (a new process), and its error (None: it wrote ``out``)."""
    if out.exists():
        out.unlink()
    started = time.perf_counter()
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=1800)
    seconds = time.perf_counter() - started
    if p.returncode != 0 or not out.exists():
        return seconds, (p.stderr or p.stdout).strip()[-400:] or f"exit {p.returncode}, no output"
    return seconds, None


def contents(path: Path) -> dict[str, int]:
    """What a contract holds: columns, and how many carry required, unique/primary key, enum values and a
    classification (declared or suggested)."""
    doc = yaml.safe_load(path.read_text())
    props = [p for s in doc.get("schema") or [] for p in s.get("properties") or []]

    def enum(p) -> bool:
        rules = [r for r in p.get("quality") or [] if isinstance(r, dict)]
        return bool((p.get("logicalTypeOptions") or {}).get("enum") or p.get("enum")
                    or any((r.get("arguments") or {}).get("validValues") for r in rules))

    return {"columns": len(props),
            "required": sum(bool(p.get("required")) for p in props),
            "unique/key": sum(bool(p.get("unique") or p.get("primaryKey")) for p in props),
            "enums": sum(enum(p) for p in props),
            "classified": sum(bool(p.get("classification")) for p in props)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()

    from pgserver import PostgresServer

    out_dir = WORK / "contracts"
    out_dir.mkdir(parents=True, exist_ok=True)
    parquet = lineitem()
    dc, dc_version = datacontract_cli()
    if dc is None:
        progress(f"datacontract-cli cannot run here: {dc_version}")
    progress("starting PostgreSQL ...")
    pg = PostgresServer()
    try:
        progress(f"loading {args.rows:,} rows into PostgreSQL {TABLE} ...")
        load_people(pg, args.rows)
        env = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}
        env.update(PGPASSWORD="postgres-admin", DATACONTRACT_POSTGRES_USERNAME="postgres",
                   DATACONTRACT_POSTGRES_PASSWORD="postgres-admin")
        url = f"postgresql://postgres@{pg.host}:{pg.port}/postgres"
        jobs = {  # (input, tool) -> (command, output file)
            ("lineitem.parquet", "quanta"): ([QUANTA, "contract", "init", str(parquet), "--force", "-o",
                                              str(out_dir / "q-lineitem.yaml")], out_dir / "q-lineitem.yaml"),
            ("PostgreSQL people", "quanta"): ([QUANTA, "contract", "init", url, "--table", TABLE, "--force", "-o",
                                               str(out_dir / "q-people.yaml")], out_dir / "q-people.yaml"),
        }
        if dc is not None:
            jobs[("lineitem.parquet", "datacontract")] = (
                [dc, "import", "parquet", "--source", str(parquet), "--output", str(out_dir / "d-lineitem.yaml")],
                out_dir / "d-lineitem.yaml")
            jobs[("PostgreSQL people", "datacontract")] = (
                [dc, "import", "postgres", "--source", pg.host, "--port", str(pg.port), "--database", "postgres",
                 "--schema", "public", "--table", "people", "--output", str(out_dir / "d-people.yaml")],
                out_dir / "d-people.yaml")
        times: dict[tuple[str, str], list[float]] = {k: [] for k in jobs}
        failures: dict[tuple[str, str], str] = {}
        for i in range(args.repeat):
            for key, (cmd, out) in jobs.items():  # interleaved: the machine's noise falls on both tools
                if key in failures:
                    continue
                progress(f"run {i + 1}/{args.repeat}: {key[1]} on {key[0]} ...", end="")
                seconds, error = run(cmd, env, out)
                progress(f" {seconds:.2f} s" + (f" FAILED: {error}" if error else ""))
                if error:
                    failures[key] = error
                else:
                    times[key].append(seconds)
        held = {key: contents(out) for key, (_, out) in jobs.items() if key not in failures and out.exists()}
    finally:
        pg.stop()

    rows = []
    for source in ("lineitem.parquet", "PostgreSQL people"):
        for tool in ("quanta", "datacontract"):
            key = (source, tool)
            label = "quanta contract init" if tool == "quanta" else "datacontract import"
            if key not in jobs:
                rows.append([source, label, "not run", "", "", "", "", ""])
                continue
            if key in failures:
                rows.append([source, label, "failed", "", "", "", "", ""])
                continue
            c = held.get(key, {})
            rows.append([source, label, f"{median(times[key]):.2f} s", str(c.get("columns", "")),
                         str(c.get("required", "")), str(c.get("unique/key", "")), str(c.get("enums", "")),
                         str(c.get("classified", ""))])
    headers = ["input", "command", "median wall time", "columns", "required", "unique/key", "enums", "classified"]
    result = table(headers, rows, "llrrrrrr")
    print(result)
    notes = [f"- `{key[1]}` on {key[0]} failed: {err}" for key, err in failures.items()]
    if dc is None:
        notes.append(f"- datacontract-cli could not run here: {dc_version}")
    body = "\n".join([
        f"`python benchmarks/contracts.py --repeat {args.repeat} --rows {args.rows}`: a contract from existing data, "
        f"each command a new process (start-up included), interleaved, median of {args.repeat}. Inputs: TPC-H SF1 "
        f"`lineitem.parquet` (6,001,215 rows, 16 columns) and a PostgreSQL 1-million-row table `{TABLE}` "
        "(9 columns: key, name, e-mail, phone, country code, dates, amount, flag) on a throw-away local cluster. "
        f"datacontract-cli {dc_version if dc else '(not run)'} in its own virtual environment.",
        "", *environment_lines(), "", result, "", *notes,
        "The tools do not do the same work: `datacontract import` reads the schema only (the Parquet footer, "
        "PostgreSQL's information_schema: required from NOT NULL, the primary key from the catalog); "
        "`quanta contract init` also scans the data once to suggest required, unique and key columns, enums of "
        "low-cardinality strings and classifications of personal-looking columns (the columns counted above "
        "include its suggestions)."])
    if not args.no_write:
        write_section("Contract from existing data (quanta contract init vs datacontract import)", body)


if __name__ == "__main__":
    main()
