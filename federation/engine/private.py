"""Private DuckDB databases that hold no mesh data: the one place, besides the engine's own, where Quanta
opens DuckDB.

- ``staging(threads)``: an onboarding batch before it is a version (validated, checked, written to the
  warehouse); governed rules on it are compiled by the platform's pipeline (``onboarding/pipeline.py``).
- ``scratch()``: the demo generator's and a source snapshot's working database (writes files, reads a
  producer's own database); no extension is autoloaded or installed.
- ``keywords()``: the grammar's keywords (what a Flight SQL catalog tells drivers), from an empty database.

The engine's connection (``duckdb_backend``), the catalog's locked-down database (``scratch.py``) and the
verifier's parser (``parser.py``) are the others; nothing outside ``engine/`` calls ``duckdb.connect``.
"""

from __future__ import annotations

import duckdb

_NO_AUTOLOAD = {"autoload_known_extensions": "false", "autoinstall_known_extensions": "false"}


def staging(threads: int) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config={"threads": str(int(threads))})


def scratch() -> duckdb.DuckDBPyConnection:
    return duckdb.connect(":memory:", config=dict(_NO_AUTOLOAD))


def keywords() -> list[str]:
    """DuckDB's reserved and unreserved keywords, upper case: a constant of the engine's version, asked of an
    empty private database (no mesh data, no principal's query)."""
    con = scratch()
    try:
        return [r[0].upper() for r in con.execute("SELECT keyword_name FROM duckdb_keywords() ORDER BY 1").fetchall()]
    finally:
        con.close()
