"""The relation ``<quantum>."<dataset>@quarantine"``: the held quarantined rows of a dataset, registered when a
state is built (``serving.register_pinned``) and resolved like a pinned version, so the governance pass
secures it with the dataset's own decision (``onboarding/quarantine.py`` says why). It sits low in the
import graph: the store, the catalog and the engine's quoting only.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from ..catalog.model import Column, Dataset, Mesh
from ..engine.duckdb_backend import literal, quote
from .store import Store

SUFFIX = "quarantine"  # the relation <quantum>."<dataset>@quarantine"
REASON, VERSION, ROW = "_quanta_reason", "_quanta_version", "_quanta_row"
META = (REASON, VERSION, ROW)


def relation_name(dataset: str) -> str:
    return f"{dataset.lower()}@{SUFFIX}"


def batch_id(quantum: str, dataset: str, version: int) -> str:
    return f"{quantum.lower()}.{dataset.lower()}.v{version}"


SNAPSHOTS = "_quanta_snapshots"  # in a quarantine dataset's raw: the contracts its held batches came under


def quarantine_dataset(ds: Dataset, snapshots: tuple[Dataset, ...] = ()) -> Dataset:
    """``ds`` with the three quarantine columns after its own (no classification, no tags: they hold rule
    names and numbers, not data); governed as ``ds`` (same quantum, name and contract), and as strictly as the
    contract of each held batch's version (``snapshots``: a column declassified since is still masked in the
    rows held under the contract that classified it, as a pinned version is: ``rewrite/secure.py``)."""
    n = len(ds.columns)
    extra = [Column(REASON, n + 1, "VARCHAR", description="The rules the row fails"),
             Column(VERSION, n + 2, "BIGINT", description="The version the row was kept out of (its batch)"),
             Column(ROW, n + 3, "BIGINT", description="The row's number in its batch")]
    return dataclasses.replace(ds, columns=list(ds.columns) + extra, raw={**ds.raw, SNAPSHOTS: snapshots})


def held_column(c: Column, then: Dataset | None, have: set[str]) -> str | None:
    """The column of a batch's file (lower-case names ``have``) holding today's column ``c``: its name, else the
    name the batch's contract (``then``, its snapshot) gave the same data (renamed since: same data name)."""
    if c.name.lower() in have:
        return c.name
    for t in then.columns if then is not None else ():
        if t.source_name.lower() == c.source_name.lower() and t.name.lower() in have:
            return t.name
    return None


def held(batches: list[dict]) -> list[dict]:
    return [b for b in batches if b["status"] == "held" and b["path"] and Path(b["path"]).exists()]


def register(mesh: Mesh, backend, state_dir: Path, relations: dict, datasets: dict, snapshot_dataset) -> None:
    """Create ``<quantum>."<dataset>@quarantine"`` over the held batches of each dataset that has some, and add
    it to the pinned relations (``relations``/``datasets``, keyed ``(quantum, dataset, "quarantine")``);
    ``snapshot_dataset`` (``serving``'s) describes a dataset as the contract snapshot of a batch's version."""
    for ds in mesh.datasets():  # an empty quarantine has the same columns (rewrite/resolve.py reads it empty)
        if ds.source is not None:
            datasets[(ds.quantum.lower(), ds.name.lower(), SUFFIX)] = quarantine_dataset(ds)
    if not Store.exists(state_dir):
        return
    store = Store.open(state_dir)
    try:
        batches = held(store.quarantine_batches())
        snapshots = {(b["quantum"], b["dataset"], b["version"]): store.contract_snapshot(
            b["quantum"], b["dataset"], b["version"]) for b in batches}
    finally:
        store.close()
    by_dataset: dict[tuple[str, str], list[dict]] = {}
    for b in batches:
        by_dataset.setdefault((b["quantum"], b["dataset"]), []).append(b)
    for (q, d), found in by_dataset.items():
        ds = mesh.dataset(q, d)
        if ds is None or ds.source is None:
            continue
        parts, thens = [], {b["version"]: snapshot_dataset(ds, snapshots[(q, d, b["version"])])
                            for b in found if snapshots.get((q, d, b["version"]))}
        for b in found:
            try:
                backend.allow_path(b["path"])
                have = set(backend.source_columns(f"read_parquet({literal(b['path'])})").columns)
            except Exception:  # noqa: BLE001 - an unreadable batch file is left out, the others are served
                continue
            names = [held_column(c, thens.get(b["version"]), have) for c in ds.columns]
            cols = [f"TRY_CAST({quote(n)} AS {c.data_type}) AS {quote(c.name)}" if n is not None
                    else f"CAST(NULL AS {c.data_type}) AS {quote(c.name)}" for c, n in zip(ds.columns, names)]
            cols.append(f"CAST({quote(REASON)} AS VARCHAR) AS {quote(REASON)}")
            cols.append(f"CAST({int(b['version'])} AS BIGINT) AS {quote(VERSION)}")
            cols.append(f"CAST({quote(ROW)} AS BIGINT) AS {quote(ROW)}" if ROW in have
                        else f"CAST(NULL AS BIGINT) AS {quote(ROW)}")
            parts.append(f"SELECT {', '.join(cols)} FROM read_parquet({literal(b['path'])})")
        if not parts:
            continue
        view = relation_name(ds.name)
        try:
            backend.create_view(ds.quantum, view, " UNION ALL ".join(parts))
        except Exception:  # noqa: BLE001 - not served: reads of it are refused as unknown
            continue
        key = (ds.quantum.lower(), ds.name.lower(), SUFFIX)
        relations[key] = backend.relation(ds.quantum, view)
        datasets[key] = quarantine_dataset(ds, tuple(thens.values()))
