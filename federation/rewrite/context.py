"""What every pass of the pipeline sees: the namespace it resolves names in, and the query's context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot.expressions as exp

from ..catalog.model import Dataset, Mesh
from ..errors import Error
from ..positions import position  # noqa: F401 - the passes' import of it
from ..governance.policies import Governance
from ..governance.principals import Principal
from .verify import Placements


@dataclass
class SystemTable:
    name: str  # as users write it: system.<name> or information_schema.<name>
    schema: str  # system | information_schema
    relation: tuple[str, str, str]  # where the backend keeps it
    columns: tuple[str, ...]
    description: str = ""


@dataclass(frozen=True)
class Definition:
    """A derived dataset's resolved SQL, with the marks the resolver left on its nodes (held here, by node
    identity, never in the tree: nothing a user writes can forge them)."""

    tree: exp.Query
    marks: dict[int, tuple]  # id(node in tree) -> ("dataset", quantum, dataset) | ...

    def sql(self, dialect: str = "duckdb") -> str:
        return self.tree.sql(dialect=dialect)


@dataclass
class Namespace:
    """The names a query can read: mesh datasets, system tables, information_schema."""

    mesh: Mesh
    version: str  # changes whenever the mesh (or, later, its policies) change: part of the plan cache key
    relation: Callable[[str, str], tuple[str, str, str]]  # backend relation of a source dataset
    system_tables: dict[tuple[str, str], SystemTable] = field(default_factory=dict)  # (schema, name)
    definitions: dict[tuple[str, str], Definition] = field(default_factory=dict)  # resolved derived datasets
    governance: "Governance | None" = None  # principals, grants, policies (None: no governance pass)
    # (quantum, dataset, N) -> the dataset as version N's contract snapshot describes it (pinned reads)
    pinned_datasets: dict[tuple[str, str, int], Dataset] = field(default_factory=dict)
    # (quantum, dataset, N) -> the backend relation of version N (``quantum."dataset@vN"``)
    pinned: dict[tuple[str, str, int], tuple[str, str, str]] = field(default_factory=dict)
    # called with a system table's relation before a query reads it (the engine copies lazy tables in)
    prepare: Callable[[tuple[str, str, str]], None] = lambda relation: None
    # derived once per state from its contracts: id(dataset of this state) -> the retention filter, or None
    retention: dict[int, Any] = field(default_factory=dict)

    def dataset(self, quantum: str, name: str) -> Dataset | None:
        return self.mesh.dataset(quantum, name)


@dataclass
class Context:
    namespace: Namespace
    principal: Principal
    sql: str
    dialect: str = "duckdb"
    purpose: str | None = None  # the purpose the query declares (contracts may restrict purposes)
    datasets: list[tuple[str, str]] = field(default_factory=list)  # (quantum, dataset) read, in order
    # of ``datasets``, those read from the data engine's relations (a dataset, a kept version): not from a held
    # quarantine only, which only the embedded engine holds (``held``)
    data_reads: list[tuple[str, str]] = field(default_factory=list)
    held: bool = False  # reads quarantined rows (<quantum>."<dataset>@quarantine", system.quarantine)
    system_tables: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # quantum.dataset.column read by the query
    warnings: list[str] = field(default_factory=list)
    policies: list[dict] = field(default_factory=list)
    # Pipeline state, held by the pipeline and never in the tree (``node.meta`` is filled by the parser from
    # ``/* sqlglot.meta k=v */`` comments, so nothing there is trusted):
    marks: dict[int, tuple] = field(default_factory=dict)  # id(node) -> what the resolver made it
    via: set[int] = field(default_factory=set)  # id(node) of relations read through a derived dataset
    placements: Placements = field(default_factory=Placements)  # what the verifier may accept
    _alive: list = field(default_factory=list)  # the marked nodes, so their ids stay theirs

    def mark(self, node: exp.Expression, value: tuple) -> None:
        self.marks[id(node)] = value
        self._alive.append(node)

    def mark_of(self, node: exp.Expression) -> tuple | None:
        return self.marks.get(id(node))

    def inline(self, definition: Definition, via: bool = True) -> exp.Query:
        """A copy of a derived dataset's tree for this query, its marks carried over to the copy's nodes."""
        copy = definition.tree.copy()
        if definition.marks:
            for original, node in zip(definition.tree.walk(), copy.walk()):
                mark = definition.marks.get(id(original))
                if mark is not None:
                    self.mark(node, mark)
                    if via:
                        self.via.add(id(node))
                    if isinstance(node, exp.Table) and mark[0] in ("dataset", "system"):
                        self.placements.place((node.catalog, node.db, node.name))
        return copy

    def read(self, quantum: str, dataset: str, held: bool = False) -> None:
        """The query reads ``quantum.dataset``: its data, or (``held``) its quarantined rows."""
        key = (quantum.lower(), dataset.lower())
        if key not in self.datasets:
            self.datasets.append(key)
        if held:
            self.held = True
        elif key not in self.data_reads:
            self.data_reads.append(key)

    def error(self, cls: type[Error], message: str, node: exp.Expression | None = None) -> Error:
        return cls(message, position=position(node))


# clauses sqlglot may hang on a table node; replacing the table by a subquery must keep them
CARRIED = ("joins", "laterals", "pivots", "sample")
KEPT = {"this", "alias", "db", "catalog"} | set(CARRIED)


def swap(table: exp.Table, subquery: exp.Subquery) -> None:
    """Replace ``table`` by ``subquery``, moving the clauses attached to the table (the joins of a FROM-first
    query, PIVOT/UNPIVOT, TABLESAMPLE) onto the subquery, so the query keeps its meaning."""
    for key in CARRIED:
        value = table.args.get(key)
        if value:
            subquery.set(key, value)
    table.replace(subquery)


