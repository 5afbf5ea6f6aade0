"""The governance fuzzer's long run (issue 11): many more hostile queries than the CI test runs.

    python benchmarks/fuzz_governance.py                      # 20 000 hostile queries, fixed seed
    python benchmarks/fuzz_governance.py --examples 2000 --seed 7 --differential 500

Builds the fuzz mesh of ``tests/governance_fuzzkit.py`` in a temporary folder (planted secrets: raw PII,
EU rows, denied amounts, file paths, the mask salt, another principal's query-log row), runs each generated
query as ``ana`` or ``ulla`` through the Python API, and collects every failure instead of stopping at the
first: a planted secret in a result or an error, a query the verifier refused after the pipeline let it
through, a non-Quanta exception, or executed SQL reading a relation that is no dataset, system table or CTE.
With ``--differential N``, N deterministic queries are also compared with hand-written secure views in a
plain DuckDB. Prints the queries tried, the failures (grouped, one query each) and the time. Not part of the
test suite; it writes nothing to RESULTS.md.
"""

from __future__ import annotations

import argparse
import re
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent / "tests"))

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

import governance_fuzzkit as fk  # noqa: E402


def _kind(failure: str) -> str:
    """A failure's class, without the query-specific parts (for grouping)."""
    first = failure.split("\n")[0]
    first = re.sub(r"'[^']*'|\"[^\"]*\"", "…", first)
    return re.sub(r"\d+", "N", first)[:140]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=20000, help="hostile queries to run (default 20000)")
    parser.add_argument("--seed", type=int, default=None, help="a seed (default: hypothesis's derandomized one)")
    parser.add_argument("--differential", type=int, default=0, help="deterministic queries to compare with "
                        "hand-written secure views in plain DuckDB (default 0)")
    parser.add_argument("--show", type=int, default=1, help="example queries shown per failure class")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="quanta-fuzz-") as tmp:
        started = time.perf_counter()
        oracle = fk.make_oracle(Path(tmp) / "mesh")
        root = str(oracle.root)
        failures: dict[str, list[fk.Outcome]] = {}
        tried = Counter()

        def keep(outcome: fk.Outcome) -> None:
            for failure in outcome.failures:
                failures.setdefault(_kind(failure), []).append(outcome)

        def configured(fn):
            options = dict(max_examples=args.examples, deadline=None, database=None,
                           suppress_health_check=list(HealthCheck))
            if args.seed is None:
                options["derandomize"] = True
            fn = settings(**options)(fn)
            if args.seed is not None:
                from hypothesis import seed
                fn = seed(args.seed)(fn)
            return fn

        @configured
        @given(query=fk.hostile_queries(root), user=st.sampled_from(fk.RESTRICTED))
        def hostile(query, user):
            tried["hostile"] += 1
            keep(oracle.run(user, query))

        hostile()
        fuzz_seconds = time.perf_counter() - started
        judged = Counter(oracle.stats)

        diff_seconds = 0.0
        if args.differential:
            reference = fk.Reference(oracle)
            diff_started = time.perf_counter()
            args.examples = args.differential

            @configured
            @given(query=fk.plain_queries(root))
            def differential(query):
                tried["differential"] += 1
                keep(reference.compare(query))

            differential()
            diff_seconds = time.perf_counter() - diff_started
            tried["differential both ran"] = reference.stats["compared"]

    print(f"hostile queries tried: {tried['hostile']}, {judged['ok'] + judged['error']} distinct ({judged['ok']} ran, "
          f"{judged['error']} refused or failed) in {fuzz_seconds:.1f} s")
    if args.differential:
        print(f"differential queries tried: {tried['differential']} ({tried['differential both ran']} ran on both "
              f"sides) in {diff_seconds:.1f} s")
    total = sum(len(v) for v in failures.values())
    print(f"failures: {total} in {len(failures)} classes")
    for kind, outcomes in sorted(failures.items(), key=lambda kv: -len(kv[1])):
        print(f"\n[{len(outcomes)}] {kind}")
        shortest = sorted(outcomes, key=lambda o: len(o.query))[:args.show]
        for outcome in shortest:
            print(f"  as {outcome.user}: {outcome.query}")
            for failure in outcome.failures:
                print("    " + failure.replace("\n", "\n    ")[:1500])
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
