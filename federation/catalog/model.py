"""The mesh as Quanta sees it once the ODPS products and ODCS contracts are read.

Plain immutable-by-convention dataclasses. The raw YAML of each product and contract is kept
(``raw``) so later layers (quality, governance, lineage) read the standard's own fields.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlglot.expressions as exp

from ..errors import Problem

if TYPE_CHECKING:
    from open_data_contract_standard.model import OpenDataContractStandard


def custom_property(props: Any, name: str) -> Any:
    """The value of an ODCS/ODPS custom property (``customProperties: [{property, value}]``), or None."""
    if isinstance(props, list):
        for p in props:
            if isinstance(p, dict) and p.get("property") == name:
                return p.get("value")
    return None


@dataclass
class Column:
    name: str
    ordinal: int
    data_type: str  # the DuckDB type of the view column
    logical_type: str | None = None
    physical_type: str | None = None
    physical_name: str | None = None  # the name in the data, when it differs
    description: str | None = None
    business_name: str | None = None
    classification: str | None = None
    tags: tuple[str, ...] = ()
    required: bool = False
    unique: bool = False
    primary_key: bool = False
    examples: tuple[str, ...] = ()
    quality: tuple[dict, ...] = ()
    transform_source_objects: tuple[str, ...] = ()
    transform_logic: str | None = None
    enum_values: tuple[str, ...] = ()  # ODCS v3.2 enum (as text)
    synonyms: tuple[str, ...] = ()  # ODCS v3.2
    deprecated: bool = False  # ODCS v3.2: reading it warns
    yaml_path: str = ""
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def source_name(self) -> str:
        return self.physical_name or self.name


@dataclass
class Source:
    """Where a source dataset's rows are read from."""

    kind: str  # parquet | csv | json | duckdb | sqlite | postgres | delta | iceberg
    location: str  # absolute file path or glob, database file, table folder, or postgresql://host:port/db
    table: str | None = None  # for database sources
    schema: str | None = None
    server: str | None = None  # the ODCS server name
    yaml_path: str = ""
    options: dict = field(default_factory=dict)  # e.g. host, port, database (never credentials)


@dataclass
class Dataset:
    quantum: str
    name: str
    contract_id: str
    file: str
    yaml_path: str
    description: str | None = None
    business_name: str | None = None
    physical_name: str | None = None
    tags: tuple[str, ...] = ()
    columns: list[Column] = field(default_factory=list)
    source: Source | None = None  # source datasets
    sql: str | None = None  # derived datasets: SQL over other quanta
    # derived datasets: the SELECT with every mesh reference resolved, built when the mesh loads
    definition: exp.Expression | None = field(default=None, repr=False)
    reads: tuple[tuple[str, str], ...] = ()  # derived: (quantum, dataset) read by ``sql``
    materialized: bool = False  # a derived dataset published as versions (a mart)
    quality: tuple[dict, ...] = ()
    synonyms: tuple[str, ...] = ()  # ODCS v3.2
    deprecated: bool = False  # ODCS v3.2: reading it warns
    # ODPS v1.1: the deprecated ports it is served or read through (the output port publishing its contract,
    # the input ports of a derived dataset's reads), as the warnings reading it gives
    port_warnings: tuple[str, ...] = ()
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def kind(self) -> str:
        return "derived" if self.sql is not None else "source"

    @property
    def qualified_name(self) -> str:
        return f"{self.quantum}.{self.name}"

    def column(self, name: str) -> Column | None:
        lname = name.lower()
        for c in self.columns:
            if c.name.lower() == lname:
                return c
        return None


@dataclass
class Contract:
    id: str
    version: str | None
    status: str | None
    api_version: str | None
    file: str
    quantum: str | None = None
    datasets: list[str] = field(default_factory=list)
    raw: dict = field(default_factory=dict, repr=False)  # ${VAR} variables resolved (ODCS v3.2)
    written: dict | None = field(default=None, repr=False)  # as written, when variables were resolved

    @property
    def as_written(self) -> dict:
        """The document as the file says it, ``${VAR}`` tokens kept (what an edit of the file starts from)."""
        return self.written if self.written is not None else self.raw

    @cached_property
    def model(self) -> OpenDataContractStandard | None:
        """The contract as the ODCS pydantic models read it (``model.slaProperties[0].unit``...), parsed on first
        use: importing the models costs 0.1-0.25 s (pydantic), which a mesh load or a query does not pay, and
        parsing one contract about 0.1 ms. None when the models reject what the loader accepted (its JSON Schema
        validation is the one in force; every official example and the demo contracts pass both)."""
        from open_data_contract_standard.model import OpenDataContractStandard
        from pydantic import ValidationError

        try:
            return OpenDataContractStandard.model_validate(self.raw)
        except ValidationError:
            return None

    def __getstate__(self) -> dict:
        """Pickled (the loader's mesh cache) without the parsed model, so unpickling never imports pydantic."""
        state = dict(self.__dict__)
        state.pop("model", None)
        return state


@dataclass
class Port:
    quantum: str
    direction: str  # input | output
    name: str | None
    contract_id: str | None
    version: str | None = None
    type: str | None = None
    description: str | None = None
    source_quantum: str | None = None  # input ports: the quantum whose contract is referenced
    deprecated: bool = False  # ODPS v1.1
    synonyms: tuple[str, ...] = ()  # ODPS v1.1, output ports


@dataclass
class Quantum:
    name: str
    id: str
    domain: str | None
    status: str | None
    file: str
    version: str | None = None
    description: str | None = None
    owners: tuple[str, ...] = ()
    team: tuple[dict, ...] = ()
    tags: tuple[str, ...] = ()
    type: str | None = None  # ODPS v1.1: sourceAligned, aggregate, consumerAligned...
    api_version: str | None = None
    synonyms: tuple[str, ...] = ()  # ODPS v1.1
    deprecated: bool = False  # ODPS v1.1
    ports: list[Port] = field(default_factory=list)
    contracts: list[str] = field(default_factory=list)  # output contract ids
    datasets: dict[str, Dataset] = field(default_factory=dict)  # by lower-case name
    raw: dict = field(default_factory=dict, repr=False)

    @property
    def input_quanta(self) -> set[str]:
        return {p.source_quantum for p in self.ports if p.direction == "input" and p.source_quantum}


@dataclass
class Domain:
    name: str
    description: str | None = None


@dataclass
class Mesh:
    name: str
    path: Path
    description: str | None
    domains: dict[str, Domain]
    quanta: dict[str, Quantum]  # loaded quanta, by lower-case name
    contracts: dict[str, Contract]
    problems: list[Problem]
    settings: dict[str, Any]
    governance: dict[str, Any]
    data_dir: Path
    version: str  # a fingerprint of every file read: changes whenever the mesh changes
    excluded: dict[str, str] = field(default_factory=dict)  # quantum -> why it was left out
    variables: dict[str, str] = field(default_factory=dict)  # ${VAR} used -> a digest of its value (never the value)
    raw: dict = field(default_factory=dict, repr=False)

    def dataset(self, quantum: str, name: str) -> Dataset | None:
        q = self.quanta.get(quantum.lower())
        return q.datasets.get(name.lower()) if q else None

    def datasets(self):
        for q in self.quanta.values():
            yield from q.datasets.values()

    def derived_sources_first(self) -> list[Dataset]:
        """The derived datasets, each after the derived datasets it reads."""
        order: list[Dataset] = []
        seen: set[tuple[str, str]] = set()

        def visit(ds: Dataset) -> None:
            key = (ds.quantum.lower(), ds.name.lower())
            if key in seen:
                return
            seen.add(key)
            for q, d in ds.reads:
                dep = self.dataset(q, d)
                if dep is not None and dep.sql is not None:
                    visit(dep)
            order.append(ds)

        for ds in list(self.datasets()):
            if ds.sql is not None:
                visit(ds)
        return order

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]
