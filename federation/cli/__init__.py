"""The ``quanta`` command: one module per command group, sharing ``common``.

    quanta validate [MESH]              every problem of a mesh, exit 1 when there is an error  (validate)
    quanta query "SQL" [--format ...]   run a query (a table for people; csv, json, parquet for machines)  (query)
    quanta describe NAME | lineage DS   the dictionary of a quantum or a dataset, column lineage  (describe)
    quanta generate | demo              the demo mesh's data, and a tour of it  (demo)
    quanta serve | pgserve              HTTP (query API, open dictionary, metrics), PostgreSQL wire  (serve)
    quanta onboard | refresh | versions | rollback | events   publishing versions  (publish)
    quanta check | quality ...          quality rules, results, samples  (quality)
    quanta contract | diff | deprecate | retire   data contracts  (contracts)
    quanta access request|list|approve|deny|revoke, token create|list|revoke   access, tokens  (access, tokens)
    quanta webhooks list|deliver|retry  the outbox of the mesh's webhooks  (webhooks)
    quanta openlineage emit             lineage as OpenLineage events  (lineage)

Errors are one clear message on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

from . import (  # noqa: F401
    access,
    contract_tools,
    contracts,
    demo,
    describe,
    lineage,
    publish,
    quality,
    quarantine,
    query,
    serve,
    tokens,
    validate,
    webhooks,
)
from .common import format_table, friendly, main, mesh_option, user_option  # noqa: F401
from .query import write_rows  # noqa: F401

if __name__ == "__main__":  # pragma: no cover
    main()
