"""What every pass of the pipeline sees: the namespace it resolves names in, and the query's context."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

import sqlglot.expressions as exp

from ..catalog.model import Dataset, Mesh
from ..errors import Error
from ..governance.policies import Governance
from ..governance.principals import Principal


@dataclass
class SystemTable:
    name: str  # as users write it: system.<name> or information_schema.<name>
    schema: str  # system | information_schema
    relation: tuple[str, str, str]  # where the backend keeps it
    columns: tuple[str, ...]
    description: str = ""


@dataclass
class Namespace:
    """The names a query can read: mesh datasets, system tables, information_schema."""

    mesh: Mesh
    version: str  # changes whenever the mesh (or, later, its policies) change: part of the plan cache key
    relation: Callable[[str, str], tuple[str, str, str]]  # backend relation of a source dataset
    system_tables: dict[tuple[str, str], SystemTable] = field(default_factory=dict)  # (schema, name)
    definitions: dict[tuple[str, str], exp.Query] = field(default_factory=dict)  # resolved derived datasets
    governance: "Governance | None" = None  # principals, grants, policies (None: no governance pass)
    # (quantum, dataset, N) -> the dataset as version N's contract snapshot describes it (pinned reads)
    pinned_datasets: dict[tuple[str, str, int], Dataset] = field(default_factory=dict)

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
    system_tables: list[str] = field(default_factory=list)
    columns: list[str] = field(default_factory=list)  # quantum.dataset.column read by the query
    warnings: list[str] = field(default_factory=list)
    policies: list[dict] = field(default_factory=list)
    statement: str = "select"

    def read(self, quantum: str, dataset: str) -> None:
        key = (quantum.lower(), dataset.lower())
        if key not in self.datasets:
            self.datasets.append(key)

    def error(self, cls: type[Error], message: str, node: exp.Expression | None = None) -> Error:
        return cls(message, position=position(node))


def _start(node: exp.Expression) -> tuple[int, int] | None:
    meta = node._meta  # noqa: SLF001 - reading .meta would create an empty dict on every node
    if meta and "line" in meta:
        return meta["line"], max(1, meta["col"] - (meta["end"] - meta["start"]))
    return None


def position(node: exp.Expression | None) -> tuple[int, int] | None:
    """(line, column) where a node starts in the submitted SQL, when the parser recorded it."""
    if node is None:
        return None
    for part in (node, node.args.get("catalog"), node.args.get("db"), node.args.get("this")):
        if isinstance(part, exp.Expression):
            found = _start(part)
            if found:
                return found
    for child in node.iter_expressions():
        found = position(child)
        if found:
            return found
    return None
