"""One live mesh: how soon a running server sees a change made by another process, and how fast the CLI is.

    python benchmarks/live.py                 # 20 changes of each kind
    python benchmarks/live.py --changes 5     # a quick look

In one run, on a small mesh (``tests/onboardkit.py``'s ``lab`` plus a principal ``guest`` without grants)
served by a real ``quanta serve`` process:

- **publish**: ``quanta onboard`` from the command line; the time from the commit (the
  ``version_published`` event's timestamp in the state database) to the first HTTP query that counts the
  new version's rows;
- **approval** / **revocation**: ``quanta access approve`` / ``quanta access revoke`` from the command
  line; from the decision's commit to the first HTTP query of ``guest`` that is answered / refused;
- **contract edit**: a new dataset description written to the contract file; from the write to the first
  ``system.datasets`` row that shows it;

each p50 and p99 over ``--changes`` changes (the server polls every ``live_poll_seconds``, 0.2 s, then
builds the new state). Then the CLI: ``quanta query "select 1" -u ana`` on the demo mesh against a bare
``python -c "import duckdb; duckdb.sql('select 1')"``, median of 7 runs each. Writes the section "Live
mesh" of RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import pyarrow.parquet as pq  # noqa: E402
import requests  # noqa: E402
import yaml  # noqa: E402
from _common import environment_lines, write_section  # noqa: E402
from onboardkit import GOVERNANCE, items, lab_mesh  # noqa: E402

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")
ENV = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}


def progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def quanta(*args: str) -> str:
    p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=ENV, timeout=300)
    if p.returncode != 0:
        raise SystemExit(f"quanta {' '.join(args)} failed: {p.stderr}")
    return p.stdout


def start(root: Path) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen([QUANTA, "serve", str(root), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True, env=ENV)
    for _ in range(10):
        m = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1/", proc.stdout.readline())
        if m:
            return proc, m.group(1)
    proc.kill()
    raise SystemExit("the server did not start")


def wait_for(check, timeout: float = 60.0) -> float:
    """The wall-clock time (epoch seconds) at which ``check()`` first held."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.time()
        time.sleep(0.01)
    raise SystemExit("a change was not seen within 60 s")


def event_time(root: Path, kind: str) -> float:
    with sqlite3.connect(root / ".quanta" / "control.db") as db:
        at = db.execute("SELECT at FROM events WHERE kind = ? ORDER BY event_id DESC LIMIT 1", (kind,)).fetchone()[0]
    return dt.datetime.fromisoformat(at).timestamp()


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(p * (len(values) - 1)))]


def measure_changes(n: int) -> dict[str, list[float]]:
    work = Path(tempfile.mkdtemp(prefix="quanta-live-"))
    root = lab_mesh(work / "lab", versions_kept=3)
    gov = dict(GOVERNANCE, principals=GOVERNANCE["principals"] + [{"name": "guest", "roles": []}])
    (root / "governance.yaml").write_text(yaml.safe_dump(gov, sort_keys=False))
    token = quanta("token", "create", "ana", "--mesh", str(root)).strip().splitlines()[-1]
    guest = quanta("token", "create", "guest", "--mesh", str(root)).strip().splitlines()[-1]
    proc, url = start(root)
    s, g = requests.Session(), requests.Session()
    s.headers["Authorization"] = f"Bearer {token}"
    g.headers["Authorization"] = f"Bearer {guest}"

    def count() -> object:
        r = s.post(url + "/api/v1/query", json={"sql": "select count(*) from lab.items"}, timeout=60)
        return r.json()["rows"][0][0] if r.status_code == 200 else None

    def guest_reads() -> bool:
        return g.post(url + "/api/v1/query", json={"sql": "select count(*) from lab.items"}, timeout=60).status_code == 200

    out: dict[str, list[float]] = {"publish": [], "approval": [], "revocation": [], "contract edit": []}
    try:
        for i in range(n):
            rows = 3 + i
            batch = work / f"batch{i}.parquet"
            pq.write_table(items(rows), batch)
            quanta("onboard", "lab.items", str(batch), "--mesh", str(root), "-u", "dev")
            seen = wait_for(lambda: count() == rows)
            out["publish"].append(seen - event_time(root, "version_published"))

            req = re.search(r"access request (\d+)", quanta("access", "request", "lab.items", "--mesh", str(root),
                                                            "-u", "guest", "--days", "1")).group(1)
            quanta("access", "approve", req, "--mesh", str(root), "-u", "dev")
            seen = wait_for(guest_reads)
            out["approval"].append(seen - event_time(root, "access_granted"))
            quanta("access", "revoke", req, "--mesh", str(root), "-u", "dev")
            seen = wait_for(lambda: not guest_reads())
            out["revocation"].append(seen - event_time(root, "access_revoked"))

            contract = root / "contracts" / "lab.odcs.yaml"
            data = yaml.safe_load(contract.read_text())
            text = f"Lab items, edit {i}"
            data["schema"][0]["description"] = text
            written = time.time()
            contract.write_text(yaml.safe_dump(data, sort_keys=False))
            seen = wait_for(lambda: s.post(url + "/api/v1/query", json={
                "sql": "select description from system.datasets where dataset = 'items'"}, timeout=60).json()
                .get("rows") == [[text]])
            out["contract edit"].append(seen - written)
            progress(f"  change {i + 1}/{n}: " + ", ".join(f"{k} {v[-1] * 1000:.0f} ms" for k, v in out.items()))
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        shutil.rmtree(work, ignore_errors=True)
    return out


def measure_cli(runs: int = 7) -> tuple[float, float]:
    demo = HERE.parent / "catalogs" / "greatparts"

    def timed(cmd: list[str]) -> float:
        t = time.perf_counter()
        subprocess.run(cmd, check=True, capture_output=True, env=ENV, timeout=120)
        return time.perf_counter() - t

    timed([QUANTA, "query", "select 1", "-u", "ana", "--mesh", str(demo)])  # a first run builds what is reused
    q, d = [], []
    for _ in range(runs):
        q.append(timed([QUANTA, "query", "select 1", "-u", "ana", "--mesh", str(demo)]))
        d.append(timed([sys.executable, "-c", "import duckdb; duckdb.sql('select 1')"]))
    return statistics.median(q), statistics.median(d)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--changes", type=int, default=20)
    args = ap.parse_args()
    progress(f"live mesh: {args.changes} changes of each kind")
    changes = measure_changes(args.changes)
    progress("CLI latency")
    cli, bare = measure_cli()
    rows = ["| Change seen by a running server | p50 ms | p99 ms | max ms | Target |",
            "| ------------------------------- | -----: | -----: | -----: | -----: |"]
    for kind, values in changes.items():
        rows.append(f"| {kind} (CLI process -> HTTP query) | {pct(values, .5) * 1000:.0f} | {pct(values, .99) * 1000:.0f} "
                    f"| {max(values) * 1000:.0f} | 1000 |")
    body = "\n".join([
        *environment_lines(),
        f"- Command: `python benchmarks/live.py --changes {args.changes}`",
        "",
        "Method: " + "\n\n".join(__doc__.split("\n\n")[2:5]).replace("``", "`"),
        "",
        *rows,
        "",
        f"CLI: `quanta query \"select 1\" -u ana` on the demo mesh, median of 7: **{cli * 1000:.0f} ms**; a bare "
        f"`python -c \"import duckdb; duckdb.sql('select 1')\"`: {bare * 1000:.0f} ms; ratio **{cli / bare:.2f}x** "
        f"(targets: at most 400 ms and 3x).",
    ])
    write_section("Live mesh", body)
    print(body)


if __name__ == "__main__":
    main()
