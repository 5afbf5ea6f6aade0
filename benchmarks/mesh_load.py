"""Mesh load time: a synthetic mesh of 100 quanta x 10 datasets loaded by ``federation.platform.Platform``.

    python benchmarks/mesh_load.py                     # 100 quanta x 10 datasets, 5 rounds
    python benchmarks/mesh_load.py --profile           # also a cProfile of one cold load

Generates (once) ``benchmarks/.work/mesh<N>/``: ``mesh.yaml`` with 10 domains, N ODPS products and N
ODCS contracts, ``governance.yaml`` with a grant, a mask on the PII columns and a row filter on every
source dataset. N - 2 quanta are source quanta whose 10 datasets are tiny Parquet files (20 rows,
5 to 8 columns of varied types, descriptions, classifications, tags, a primary key); the last 2 are
derived quanta whose 10 datasets each are SQL over other quanta (the second reads the first, so
derived datasets are inlined in derived datasets). Then, for ``--rounds`` rounds, each load in a new
Python process (as a CLI command or a restarted server):

- **cold**: from scratch, the mesh's caches (``<state folder>/cache/``) deleted first;
- **warm**: nothing changed since the previous load (the cold one just before);

and, in this process, a **reload** (a second ``Platform(path)`` of a running process, as a server's hot
reload does). Each load reports ``Platform(path)`` wall time (imports are timed apart) and the time of
each phase (and main sub-step) of the build. Targets (issue 12): warm at most 0.5 s, cold at most 1.5 s.
With ``--profile`` one cold load is profiled with cProfile and the top functions printed (the profile is
kept in ``.work/``). Writes the section "Mesh load: 100 quanta x 10 datasets" of RESULTS.md. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import cProfile
import functools
import io
import json
import os
import pstats
import shutil
import subprocess
import sys
import time
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import WORK, environment_lines, median, progress, table, write_section  # noqa: E402

WARM_TARGET_S = 0.5
COLD_TARGET_S = 1.5
DOMAINS = [f"domain{i}" for i in range(10)]
DERIVED = 2
ROWS = 20

# the first 5 columns are in every dataset (so derived SQL can combine them); 0-3 extra ones follow
BASE_COLUMNS = [
    ("id", "integer", "BIGINT", "i::BIGINT"),
    ("name", "string", "VARCHAR", "'name ' || i"),
    ("amount", "number", "DECIMAL(12,2)", "(i * 1.25)::DECIMAL(12,2)"),
    ("created", "date", "DATE", "DATE '2026-01-01' + (i % 90)::INTEGER"),
    ("active", "boolean", "BOOLEAN", "i % 2 = 0"),
]
EXTRA_COLUMNS = [
    ("score", "number", "DOUBLE", "i / 7.0"),
    ("updated_at", "timestamp", "TIMESTAMP", "TIMESTAMP '2026-01-01 00:00:00' + to_minutes(i::BIGINT)"),
    ("email", "string", "VARCHAR", "'user' || i || '@example.com'"),
]


def write_yaml(path: Path, data) -> None:
    import yaml

    path.parent.mkdir(parents=True, exist_ok=True)
    text = yaml.safe_dump(data, sort_keys=False)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def quantum_name(i: int) -> str:
    return f"q{i:03d}"


def columns_of(qi: int, di: int):
    return BASE_COLUMNS + EXTRA_COLUMNS[: (qi + di) % 4]


def product(name: str, domain: str, inputs: list[str] = ()) -> dict:
    p = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": f"urn:quanta:bench:product:{name}",
        "name": name,
        "domain": domain,
        "status": "active",
        "version": "1.0.0",
        "description": {"purpose": f"Synthetic quantum {name}", "usage": "benchmarks"},
        "tags": ["benchmark", domain],
        "team": {"name": f"{name}-team", "members": [{"username": f"owner_{name}", "role": "owner"},
                                                     {"username": f"dev_{name}", "role": "developer"}]},
        "outputPorts": [{"name": f"{name}-out", "version": "1.0.0", "contractId": f"{name}-contract",
                         "type": "tables"}],
    }
    if inputs:
        p["inputPorts"] = [{"name": c, "version": "1.0.0", "contractId": c} for c in inputs]
    return p


def prop(name: str, logical: str, physical: str, **extra) -> dict:
    p = {"name": name, "logicalType": logical, "physicalType": physical.lower(),
         "description": f"The {name.replace('_', ' ')}", "businessName": name.replace("_", " ").title()}
    p.update(extra)
    return p


def source_contract(qi: int, datasets: int) -> dict:
    q = quantum_name(qi)
    schema = []
    for di in range(datasets):
        props = []
        for name, logical, physical, _ in columns_of(qi, di):
            extra = {}
            if name == "id":
                extra = {"primaryKey": True, "required": True, "unique": True, "examples": [1, 2]}
            elif name == "email":
                extra = {"classification": "pii", "tags": ["pii", "contact"]}
            elif name == "amount":
                extra = {"quality": [{"type": "library", "metric": "nullValues", "mustBe": 0}]}
            props.append(prop(name, logical, physical, **extra))
        schema.append({"name": f"ds{di:02d}", "physicalName": f"ds{di:02d}", "physicalType": "table",
                       "description": f"Dataset {di} of {q}", "tags": ["benchmark"], "properties": props})
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": f"{q}-contract",
        "name": f"{q} contract",
        "version": "1.0.0",
        "status": "active",
        "servers": [{"server": "local", "type": "local", "path": f"{q}/{{model}}.parquet", "format": "parquet"}],
        "schema": schema,
    }


def derived_contract(name: str, datasets: int, reads: list[str], upstream: str | None) -> dict:
    """Derived datasets: joins and unions over source quanta (and over ``upstream``, a derived quantum)."""
    schema = []
    for di in range(datasets):
        a, b = reads[di % len(reads)], reads[(di + 1) % len(reads)]
        ds = f"ds{di:02d}"
        if upstream is None:
            sql = (f"select a.id, a.name, a.amount + coalesce(b.amount, 0) as total, a.created "
                   f"from {a}.{ds} a left join {b}.{ds} b on a.id = b.id where a.active")
            props = [prop("id", "integer", "bigint"), prop("name", "string", "varchar"),
                     prop("total", "number", "decimal(13,2)"), prop("created", "date", "date")]
        else:
            sql = (f"select u.id, u.name, u.total, s.created from {upstream}.agg{di:02d} u "
                   f"join {a}.{ds} s using (id) union all "
                   f"select id, name, amount, created from {b}.{ds}")
            props = [prop("id", "integer", "bigint"), prop("name", "string", "varchar"),
                     prop("total", "number", "decimal(18,2)"), prop("created", "date", "date")]
        schema.append({"name": f"agg{di:02d}", "description": f"Derived dataset {di} of {name}",
                       "customProperties": [{"property": "sql", "value": sql}], "properties": props})
    return {"apiVersion": "v3.1.0", "kind": "DataContract", "id": f"{name}-contract", "version": "1.0.0",
            "status": "active", "schema": schema}


def generate(root: Path, quanta: int, datasets: int) -> None:
    sources = quanta - DERIVED
    write_yaml(root / "mesh.yaml", {
        "name": f"bench_mesh{quanta}",
        "description": f"Synthetic mesh of {quanta} quanta x {datasets} datasets (benchmarks/mesh_load.py)",
        "domains": [{"name": d, "description": f"the {d} domain"} for d in DOMAINS],
        "data": "data",
        "settings": {"threads": 2},
    })
    # governance: a grant, a mask on the PII columns and a row filter on every source dataset (checked
    # against every dataset they select when the mesh loads)
    write_yaml(root / "governance.yaml", {
        "roles": [{"name": "analyst"}],
        "principals": [{"name": "ana", "roles": ["analyst"]}],
        "grants": [{"to": {"role": "analyst"}, "on": "*"}],
        "policies": [
            {"name": "pii-redact", "kind": "mask", "on": {"classification": "pii"}, "mask": "redact"},
            {"name": "active-only", "kind": "row_filter", "on": {"column": "active"}, "filter": "active",
             "unless": {"roles": ["auditor"]}},
        ],
    })
    data = root / "data"
    missing = [(qi, di) for qi in range(sources) for di in range(datasets)
               if not (data / quantum_name(qi) / f"ds{di:02d}.parquet").exists()]
    if missing:
        import duckdb

        con = duckdb.connect()
        started = time.perf_counter()
        for k, (qi, di) in enumerate(missing):
            path = data / quantum_name(qi) / f"ds{di:02d}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            cols = ", ".join(f"{expr} AS {name}" for name, _, _, expr in columns_of(qi, di))
            con.execute(f"COPY (SELECT {cols} FROM range(1, {ROWS + 1}) t(i)) TO '{path}' (FORMAT parquet)")
            if (k + 1) % 100 == 0 or k + 1 == len(missing):
                progress(f"\rdata: {k + 1}/{len(missing)} Parquet files ({time.perf_counter() - started:.1f} s)",
                         end="")
        progress("")
        con.close()
    else:
        progress(f"data: {sources * datasets} Parquet files exist, generation skipped")
    for qi in range(sources):
        q = quantum_name(qi)
        write_yaml(root / "products" / DOMAINS[qi % len(DOMAINS)] / f"{q}.odps.yaml",
                   product(q, DOMAINS[qi % len(DOMAINS)]))
        write_yaml(root / "contracts" / f"{q}.odcs.yaml", source_contract(qi, datasets))
    # two derived quanta: the first reads 5 source quanta, the second the first and 3 more
    first_reads = [quantum_name(i) for i in range(5)]
    second_reads = [quantum_name(i) for i in range(5, 8)]
    names = ["derived_a", "derived_b"]
    write_yaml(root / "products" / "derived" / "derived_a.odps.yaml",
               product(names[0], DOMAINS[0], [f"{q}-contract" for q in first_reads]))
    write_yaml(root / "contracts" / "derived_a.odcs.yaml", derived_contract(names[0], datasets, first_reads, None))
    write_yaml(root / "products" / "derived" / "derived_b.odps.yaml",
               product(names[1], DOMAINS[1], [f"{q}-contract" for q in second_reads] + ["derived_a-contract"]))
    write_yaml(root / "contracts" / "derived_b.odcs.yaml",
               derived_contract(names[1], datasets, second_reads, names[0]))


# -- measuring ----------------------------------------------------------------------------------------

# (label, module, attribute, class or None): what is timed inside a load; a missing one is skipped, so
# the benchmark keeps working while the platform's code moves. Sub-steps are indented under their phase.
STEPS = (
    ("load_mesh", "federation.platform", "load_mesh", None),
    ("- JSON Schema validation (`_schema_check`)", "federation.catalog.loader", "_schema_check", None),
    ("- YAML parsing (`parse_yaml`)", "federation.catalog.loader", "parse_yaml", None),
    ("- the loaded-mesh cache (`_cache_get`, `_cache_put`)", "federation.catalog.loader", "_cache_get", None),
    ("- the loaded-mesh cache (`_cache_get`, `_cache_put`)", "federation.catalog.loader", "_cache_put", None),
    ("register_sources", "federation.platform", "register_sources", None),
    ("- reading the data's schemas (`source_columns`)", "federation.engine.duckdb_backend", "source_columns",
     "DuckDBBackend"),
    ("- file views created from the contracts (`_create_direct_views`)", "federation.engine.registry",
     "_create_direct_views", None),
    ("- `create_view`", "federation.engine.duckdb_backend", "create_view", "DuckDBBackend"),
    ("_compile_derived", "federation.platform", "_compile_derived", "Platform"),
    ("_load_governance", "federation.platform", "_load_governance", "Platform"),
    ("- policy expressions (`check_expressions`)", "federation.platform", "check_expressions", None),
    ("_build_system_tables", "federation.platform", "_build_system_tables", "Platform"),
)
PHASES = tuple(dict.fromkeys(label for label, *_ in STEPS if not label.startswith("-")))
LABELS = tuple(dict.fromkeys(label for label, *_ in STEPS))


def instrument(acc: dict[str, float]):
    """Wrap the steps of ``Platform._build``; each call adds its wall time to ``acc[label]``."""
    import importlib

    def wrap(label, fn):
        @functools.wraps(fn)
        def timed(*a, **k):
            started = time.perf_counter()
            try:
                return fn(*a, **k)
            finally:
                acc[label] = acc.get(label, 0.0) + time.perf_counter() - started
        return timed

    restore = []
    for label, module, attr, cls in STEPS:
        try:
            owner = importlib.import_module(module)
        except ImportError:
            continue
        if cls is not None:
            owner = getattr(owner, cls, None)
            raw = owner.__dict__.get(attr) if owner is not None else None
            if isinstance(raw, staticmethod):
                setattr(owner, attr, staticmethod(wrap(label, raw.__func__)))
            elif callable(raw):
                setattr(owner, attr, wrap(label, raw))
            else:
                continue
        else:
            raw = getattr(owner, attr, None)
            if not callable(raw):
                continue
            setattr(owner, attr, wrap(label, raw))
        restore.append((owner, attr, raw))

    def undo():
        for owner, attr, raw in reversed(restore):
            setattr(owner, attr, raw)
    return undo


def profile_load(root: Path, top: int = 30) -> tuple[str, str]:
    """cProfile of one cold ``Platform(path)``: the full text (terminal) and a short one (RESULTS.md)."""
    from federation.platform import Platform

    clear_caches(root)
    prof = cProfile.Profile()
    prof.enable()
    p = Platform(root)
    prof.disable()
    p.state.backend.close()
    out_path = WORK / "mesh_load.prof"
    prof.dump_stats(str(out_path))

    def text(sort: str, n: int) -> str:
        buf = io.StringIO()
        stats = pstats.Stats(prof, stream=buf).strip_dirs()
        stats.sort_stats(sort).print_stats(n)
        lines = buf.getvalue().splitlines()
        start = next((i for i, line in enumerate(lines) if line.lstrip().startswith("ncalls")), 0)
        return "\n".join(line.rstrip() for line in lines[start:] if line.strip())

    full = (text("cumulative", top) + "\n\n" + text("tottime", top)
            + f"\n\n(profile saved to {out_path}; view it with python -m pstats)")
    return full, text("cumulative", 18)


def clear_caches(root: Path) -> None:
    """Delete the mesh's caches (the loaded mesh, and whatever else a load keeps in ``<state>/cache/``)."""
    try:
        from federation.catalog.loader import cache_file
    except ImportError:  # a version of Quanta without caches
        return
    shutil.rmtree(cache_file(root.resolve()).parent, ignore_errors=True)


def child(root: Path) -> int:
    """One load in this (new) process; prints its figures as JSON."""
    started = time.perf_counter()
    from federation.platform import Platform
    import_s = time.perf_counter() - started
    acc: dict[str, float] = {}
    instrument(acc)
    started, cpu = time.perf_counter(), time.process_time()
    p = Platform(root)
    load = time.perf_counter() - started
    cpu = time.process_time() - cpu
    mesh = p.mesh
    errors = [str(x) for x in mesh.problems if getattr(x, "severity", "error") == "error"]
    check = p.query("select count(*) from derived_b.agg00", p.principal("owner_derived_b")).fetchall()[0][0]
    print(json.dumps({"import": import_s, "load": load, "cpu": cpu, "steps": acc, "check": check,
                      "quanta": len(mesh.quanta), "excluded": len(mesh.excluded), "problems": len(mesh.problems),
                      "errors": errors[:20],
                      "datasets": sum(len(q.datasets) for q in mesh.quanta.values()),
                      "derived": sum(1 for q in mesh.quanta.values() for d in q.datasets.values()
                                     if d.sql is not None)}))
    return 0


def run_child(root: Path) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", str(root)], capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent)})
    if out.returncode != 0:
        sys.exit(f"the load failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def breakdown(runs: list[dict], label: str) -> tuple[list[list[str]], dict]:
    """Rows for the run whose load time is the median (so its rows add up)."""
    total = median(r["load"] for r in runs)
    run = min(runs, key=lambda r: abs(r["load"] - total))
    base = run["load"]
    rows = [[f"**{label}**: `Platform(path)` in a new process, median of {len(runs)} "
             f"(min {min(r['load'] for r in runs) * 1000:.0f}, max {max(r['load'] for r in runs) * 1000:.0f}; "
             f"CPU {run['cpu'] * 1000:.0f} ms)", f"**{total * 1000:.0f}**", "100%"]]
    accounted = 0.0
    for name in LABELS:
        t = run["steps"].get(name)
        if t is None:
            continue
        if name in PHASES:
            accounted += t
            shown = f"&nbsp;&nbsp;{name}"
        else:
            shown = f"&nbsp;&nbsp;&nbsp;&nbsp;{name[2:]}"
        rows.append([shown, f"{t * 1000:.0f}", f"{t / base * 100:.0f}%"])
    rows.append(["&nbsp;&nbsp;the rest (DuckDB set-up, published versions, audit log, lock-down)",
                 f"{(base - accounted) * 1000:.0f}", f"{(base - accounted) / base * 100:.0f}%"])
    return rows, run


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quanta", type=int, default=100, help="number of quanta, 2 of them derived (default 100)")
    ap.add_argument("--datasets", type=int, default=10, help="datasets per quantum (default 10)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of (cold, warm) loads (default 5)")
    ap.add_argument("--profile", action="store_true", help="profile one cold load")
    ap.add_argument("--no-write", action="store_true", help="do not update RESULTS.md")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        return child(Path(args.child))
    if args.quanta < 10 or args.datasets < 1:
        sys.exit("--quanta must be >= 10 (the derived quanta read 8 source quanta) and --datasets >= 1")

    root = WORK / f"mesh{args.quanta}"
    generate(root, args.quanta, args.datasets)

    cold, warm = [], []
    for i in range(args.rounds):
        clear_caches(root)
        progress(f"round {i + 1}/{args.rounds}: cold ...", end="")
        cold.append(run_child(root))
        progress(f" {cold[-1]['load']:.2f} s; warm ...", end="")
        warm.append(run_child(root))
        progress(f" {warm[-1]['load']:.2f} s")
    first = cold[0]
    if first["errors"] or first["excluded"]:
        progress(f"!!! the mesh loaded with {len(first['errors'])} error(s), {first['excluded']} quanta left out:")
        for p in first["errors"]:
            progress(f"!!!   {p}")

    from federation.platform import Platform
    reloads = []
    Platform(root).state.backend.close()
    for i in range(args.rounds):
        started = time.perf_counter()
        p = Platform(root)
        reloads.append(time.perf_counter() - started)
        p.state.backend.close()
        del p

    cold_rows, _ = breakdown(cold, "cold")
    warm_rows, warm_run = breakdown(warm, "warm")
    reload_s = median(reloads)
    rows = cold_rows + warm_rows + [
        [f"**reload** in a running process (a second `Platform(path)`, nothing changed), median of "
         f"{len(reloads)}", f"**{reload_s * 1000:.0f}**", ""],
        [f"importing `federation.platform` in a new process, median of {len(cold) + len(warm)}",
         f"{median(r['import'] for r in cold + warm) * 1000:.0f}", ""]]
    md = table(["Load", "ms", "Share"], rows, align="lrr")
    cold_s, warm_s = median(r["load"] for r in cold), median(r["load"] for r in warm)
    met = cold_s <= COLD_TARGET_S and warm_s <= WARM_TARGET_S
    summary = [
        f"- Mesh: {first['quanta']} quanta ({DERIVED} derived), {first['datasets']} datasets ({first['derived']} "
        f"derived), {first['problems']} problem(s) reported, {first['excluded']} quanta left out; "
        f"`derived_b.agg00` (derived over derived) answers {first['check']} rows",
        f"- Cold (from scratch, new process): median **{cold_s:.2f} s**, target <= {COLD_TARGET_S:g} s: "
        f"**{'met' if cold_s <= COLD_TARGET_S else 'NOT met'}**",
        f"- Warm (nothing changed, new process): median **{warm_s:.2f} s**, target <= {WARM_TARGET_S:g} s: "
        f"**{'met' if warm_s <= WARM_TARGET_S else 'NOT met'}**",
        f"- Reload in a running process: median {reload_s:.2f} s",
        "- Largest phases of the median warm load: " + ", ".join(
            f"{name} {t * 1000:.0f} ms" for name, t in sorted(
                ((n, t) for n, t in warm_run["steps"].items() if n in PHASES), key=lambda x: -x[1])[:3]),
    ]
    print()
    print(md)
    print()
    print("\n".join(summary))

    profile_text = None
    if args.profile:
        progress("profiling one cold load (cProfile) ...")
        profile_text, short_profile = profile_load(root)
        print("\n" + profile_text)

    if not args.no_write:
        method = (f"Method: a synthetic mesh under `benchmarks/.work/mesh{args.quanta}/`: {args.quanta - DERIVED} "
                  f"source quanta with {args.datasets} datasets each (tiny Parquet files of {ROWS} rows, 5 to 8 "
                  f"columns of BIGINT, VARCHAR, DECIMAL, DATE, BOOLEAN, DOUBLE, TIMESTAMP, with descriptions, "
                  f"tags, classifications, a primary key, a quality rule) and {DERIVED} derived quanta with "
                  f"{args.datasets} SQL datasets each (the second reads the first), 10 domains; a global mask on "
                  f"the PII columns and a row filter on every source dataset. Each load runs in "
                  f"a new Python process and times `Platform(path)` (wall clock; imports apart); *cold* deletes "
                  f"the mesh's caches (`.quanta/cache/`) first, *warm* follows it with nothing changed; rounds "
                  f"alternate cold and warm. The phases are timed by wrapping the functions `Platform._build` "
                  f"calls; their times overlap where a phase runs another (sub-steps are indented).")
        body = "\n".join(environment_lines() + [
            f"- Command: `python benchmarks/mesh_load.py --quanta {args.quanta} --datasets {args.datasets} "
            f"--rounds {args.rounds}`", "", method, "", md, "", *summary]
            + (["", "Profile of one cold load (cProfile, by cumulative time; the profiler slows pure-Python "
                "code more than DuckDB's C++, so read the shares above for wall time):", "", "```",
                short_profile, "```"] if profile_text else []))
        title = f"Mesh load: {args.quanta} quanta x {args.datasets} datasets"
        write_section(title, body)
        progress("written: benchmarks/RESULTS.md")
    return 0 if met and not first["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
