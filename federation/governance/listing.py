"""What a principal's catalog lists: the one rule every interface's catalog follows (the PostgreSQL
catalog of ``server/pgwire/catalog.py`` and the Flight SQL catalog of ``server/flight/catalog.py``).

    visible_datasets(platform, principal, purpose) -> [Listed(dataset, columns)]
    system_tables(platform) -> [SystemTable(name, description, columns)]

A dataset is listed when a query of it would be allowed: ``authorize.allowed(..., "read", ds)`` holds,
its contract is not retired, and when its contract limits the purposes (custom property ``purposes``)
the session's declared purpose is one of them. Its columns are the contract's minus those the
governance decision denies this principal (a masked column is listed: a query returns it, masked).
The tables of the ``system`` schema are the open dictionary: every principal may read them (their rows
are filtered per principal), so they are always listed. A listing holds names, types and descriptions,
never a value of the mesh.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..catalog.model import Column, Dataset, custom_property
from .authorize import allowed

SYSTEM_SCHEMA = "system"


@dataclass(frozen=True)
class Listed:
    """A dataset a principal's catalog lists, with the columns a query of it returns (in order)."""

    dataset: Dataset
    columns: tuple[Column, ...]


@dataclass(frozen=True)
class SystemColumn:
    """A column of a ``system`` table, described like a contract's column."""

    name: str
    data_type: str  # the engine's type (DuckDB)
    ordinal: int
    description: str | None = None
    required: bool = False
    primary_key: bool = False


@dataclass(frozen=True)
class SystemTable:
    """A table of the ``system`` schema, described like a dataset."""

    name: str
    description: str | None
    columns: tuple[SystemColumn, ...]
    quantum: str = SYSTEM_SCHEMA


def readable(platform, principal, ds: Dataset, purpose: str | None) -> bool:
    """The decision a query of ``ds`` gets for this principal and purpose: a grant
    (``authorize.allowed(..., "read", ...)``), a contract that is not retired and, when the contract
    limits the purposes, the declared purpose among them."""
    return readable_in(platform.state.governance, platform.mesh, principal, ds, purpose)


def readable_in(governance, mesh, principal, ds: Dataset, purpose: str | None) -> bool:
    """``readable`` from a governance and a mesh (what the rewrite holds: ``system.quarantine`` lists the
    quarantines of the datasets a query of them would read)."""
    if governance is not None and not allowed(governance, principal, "read", ds):
        return False
    contract = mesh.contracts.get(ds.contract_id)
    if contract is None:
        return True
    if (contract.status or "").lower() == "retired":
        return False
    purposes = custom_property(contract.raw.get("customProperties"), "purposes")
    if purposes:
        return purpose in [str(p) for p in (purposes if isinstance(purposes, list) else [purposes])]
    return True


def listed_columns(platform, principal, ds: Dataset) -> tuple[Column, ...]:
    """The columns of ``ds`` a query returns to this principal: the contract's minus the denied ones."""
    decision = platform.state.governance.decide(principal, ds)  # the columns a query of it gets (secure.py)
    denied = {c.column.name.lower() for c in decision.columns if c.access == "denied"}
    return tuple(c for c in ds.columns if c.name.lower() not in denied)


def visible_datasets(platform, principal, purpose: str | None = None) -> list[Listed]:
    """The datasets this principal's catalog lists, ordered by quantum then name (case-insensitive)."""
    datasets = sorted(platform.mesh.datasets(), key=lambda d: (d.quantum.lower(), d.name.lower()))
    return [Listed(ds, listed_columns(platform, principal, ds)) for ds in datasets
            if readable(platform, principal, ds, purpose)]


def system_tables(platform) -> list[SystemTable]:
    """The tables of the ``system`` schema (listed for every principal), ordered by name, with the
    columns and types the engine gives a ``select *`` of them."""
    out = []
    backend = platform.state.backend
    for (schema, name), table in sorted(platform.state.namespace.system_tables.items()):
        if schema != SYSTEM_SCHEMA:
            continue
        try:
            described = backend.describe("SELECT * FROM " + ".".join(f'"{p}"' for p in table.relation))
            columns = [(c.name, c.type) for c in described]
        except Exception:  # noqa: BLE001 - a table the engine cannot describe is listed with text columns
            columns = [(c, "VARCHAR") for c in table.columns]
        out.append(SystemTable(name.lower(), table.description,
                               tuple(SystemColumn(c, t, n) for n, (c, t) in enumerate(columns, start=1))))
    return out
