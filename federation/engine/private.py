"""Private DuckDB databases that hold no mesh data: the one place, besides the engine's own, where Quanta
opens DuckDB.

- ``staging(threads)``: an onboarding batch before it is a version (validated, checked, written to the
  warehouse); governed rules on it are compiled by the platform's pipeline (``onboarding/pipeline.py``).
- ``scratch()``: the demo generator's and a source snapshot's working database (writes files, reads a
  producer's own database); no extension is autoloaded or installed.

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
