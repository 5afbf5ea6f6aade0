"""Helpers shared by the benchmarks: timing, machine facts, and the sections of RESULTS.md.

Not part of the test suite. Machines are shared and noisy: the benchmarks measure side by side in one
run, interleave, repeat, and report medians and ratios.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform as _platform
import re
import statistics
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
# The benchmarks measure the working tree's federation package. Put the repository first on the path:
# the editable install can resolve ``federation`` to an empty namespace package when the script is
# not started from the repository root.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))
WORK = HERE / ".work"
RESULTS = HERE / "RESULTS.md"


def median(values) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def geomean(values) -> float:
    values = [v for v in values if v and v > 0 and math.isfinite(v)]
    if not values:
        return float("nan")
    return math.exp(sum(math.log(v) for v in values) / len(values))


def progress(message: str, end: str = "\n") -> None:
    """A line on the terminal for long steps (stderr, so stdout stays the results table)."""
    print(message, end=end, file=sys.stderr, flush=True)


def report_failures(problems: list[str]) -> None:
    """Say loudly, on stderr, every query that failed or whose result differs."""
    if not problems:
        return
    print("\n" + "!" * 72, file=sys.stderr)
    for m in problems:
        print(f"!!! {m}", file=sys.stderr)
    print("!" * 72, file=sys.stderr)


def machine() -> dict[str, str]:
    """Cores, CPU model and memory from /proc (what the figures were measured on)."""
    info: dict[str, str] = {}
    model, logical = None, 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("processor"):
                logical += 1
            elif line.startswith("model name") and model is None:
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count() or 0
    info["cpu"] = f"{model or _platform.processor() or 'unknown CPU'}, {logical or os.cpu_count()} logical cores " \
                  f"({usable} usable by this process)"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                kb = int(line.split()[1])
                info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
                break
    except OSError:
        info["memory"] = "unknown"
    try:
        load = Path("/proc/loadavg").read_text().split()[:3]
        info["load"] = " ".join(load)
    except OSError:
        pass
    info["os"] = f"{_platform.system()} {_platform.release()}"
    info["python"] = _platform.python_version()
    return info


def versions() -> dict[str, str]:
    import duckdb
    import pyarrow
    import sqlglot

    return {"duckdb": duckdb.__version__, "sqlglot": sqlglot.__version__, "pyarrow": pyarrow.__version__}


def now() -> str:
    return _dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


def environment_lines() -> list[str]:
    m, v = machine(), versions()
    lines = [
        f"- Date: {now()}",
        f"- Machine: {m['cpu']}; {m.get('memory', '?')} memory; {m['os']}"
        + (f"; load average at start {m['load']}" if m.get("load") else ""),
        f"- Versions: Python {m['python']}, duckdb {v['duckdb']}, sqlglot {v['sqlglot']}, pyarrow {v['pyarrow']}",
    ]
    return lines


def write_section(title: str, body: str, path: Path = RESULTS) -> None:
    """Create or replace the section ``## <title>`` of RESULTS.md, leaving the other sections intact."""
    import fcntl

    heading = f"## {title}"
    section = f"{heading}\n\n{body.strip()}\n"
    pattern = re.compile(rf"^{re.escape(heading)}[ \t]*\n.*?(?=^## |\Z)", re.S | re.M)
    # benchmarks may finish at the same time: read-modify-write under a lock, so no section is lost
    with open(path.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = path.read_text() if path.exists() else "# Benchmark results\n\nWritten by the scripts in this " \
            "folder; see README.md for how to run them. Each section is replaced by the next run of its benchmark.\n"
        if pattern.search(text):
            text = pattern.sub(lambda _m: section + "\n", text, count=1)
        else:
            text = text.rstrip("\n") + "\n\n" + section
        path.write_text(text.rstrip("\n") + "\n")


def table(headers: list[str], rows: list[list[str]], align: str | None = None) -> str:
    """A Markdown table (also readable on a terminal)."""
    align = align or "l" + "r" * (len(headers) - 1)
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
              for i, h in enumerate(headers)]

    def fmt(cells):
        out = []
        for i, c in enumerate(cells):
            c = str(c)
            out.append(c.rjust(widths[i]) if align[i] == "r" else c.ljust(widths[i]))
        return "| " + " | ".join(out) + " |"

    sep = "| " + " | ".join(("-" * (w - 1) + ":") if align[i] == "r" else "-" * w
                             for i, w in enumerate(widths)) + " |"
    return "\n".join([fmt(headers), sep] + [fmt(r) for r in rows])
