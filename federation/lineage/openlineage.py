"""OpenLineage run events, built with the official ``openlineage-python`` client (its classes are
generated from the OpenLineage specification and validate what they hold).

Configured in ``mesh.yaml``::

    settings:
      openlineage:
        file: .quanta/openlineage.ndjson    # append events as NDJSON (relative to the mesh), and/or
        url: http://marquez:5000            # POST them to an OpenLineage consumer
        queries: true                       # an event pair (START, COMPLETE/FAIL) for every query

Events:
- ``emit_mesh_lineage()``: one COMPLETE run per derived dataset, its job the dataset's SQL, its inputs the
  datasets it reads (``schema`` facet), its output the derived dataset with the ``schema`` and
  ``columnLineage`` facets computed by ``federation.lineage.columns`` (``quanta openlineage emit``);
- ``emit_query()``: START and COMPLETE or FAIL for a query (inputs with their ``schema`` facet, the SQL
  as the job's ``sql`` facet, the error as ``errorMessage``);
- ``emit_run()``: the general form, for onboarding runs and mart refreshes (``dataQualityMetrics`` and
  ``dataQualityAssertions`` facets on their datasets).

Dataset names are ``<quantum>.<dataset>`` in the namespace ``quanta://<mesh name>``.

The client is imported when an event is built or a destination configured, never with this module:
it costs ~140 ms, which a mesh without OpenLineage (and every ``quanta query``) should not pay.
"""

from __future__ import annotations

import threading
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Iterable

from ..catalog.model import Dataset, Mesh
from .columns import AGGREGATE_KINDS, ColumnEdge

if TYPE_CHECKING:
    from openlineage.client import event_v2
    from openlineage.client.facet_v2 import column_lineage_dataset, schema_dataset

PRODUCER = "https://github.com/quanta-federation/quanta/tree/v0.1.0"
JOB_NAMESPACE = "quanta"


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class OpenLineage:
    def __init__(self, mesh: Mesh, config: dict | None):
        self.mesh = mesh
        self.config = config or {}
        self.namespace = f"quanta://{mesh.name}"
        self.queries = bool(self.config.get("queries", False))
        self._transports = []
        self._lock = threading.Lock()
        if self.config.get("file"):
            from openlineage.client.transport.file import FileConfig, FileTransport

            path = Path(self.config["file"])
            path = path if path.is_absolute() else mesh.path / path
            path.parent.mkdir(parents=True, exist_ok=True)
            self._transports.append(FileTransport(FileConfig(log_file_path=str(path), append=True)))
        if self.config.get("url"):
            from openlineage.client.transport.http import HttpConfig, HttpTransport

            self._transports.append(HttpTransport(HttpConfig(url=str(self.config["url"]), timeout=5.0)))

    @property
    def enabled(self) -> bool:
        return bool(self._transports)

    def emit(self, event: event_v2.RunEvent) -> None:
        with self._lock:
            for transport in self._transports:
                try:
                    transport.emit(event)
                except Exception:  # noqa: BLE001 - lineage must never break a query; the consumer may be down
                    pass

    # -- datasets ------------------------------------------------------------------------------------

    def _schema(self, ds: Dataset) -> schema_dataset.SchemaDatasetFacet:
        from openlineage.client.facet_v2 import schema_dataset

        return schema_dataset.SchemaDatasetFacet(fields=[
            schema_dataset.SchemaDatasetFacetFields(name=c.name, type=c.data_type, description=c.description,
                                                    ordinal_position=c.ordinal)
            for c in ds.columns])

    def input(self, ds: Dataset, quality: dict | None = None) -> event_v2.InputDataset:
        from openlineage.client import event_v2
        from openlineage.client.facet_v2 import (data_quality_assertions_dataset, data_quality_metrics_input_dataset,
                                                 documentation_dataset)

        facets = {"schema": self._schema(ds)}
        if ds.description:
            facets["documentation"] = documentation_dataset.DocumentationDatasetFacet(description=ds.description)
        input_facets = {}
        if quality:
            input_facets["dataQualityMetrics"] = data_quality_metrics_input_dataset.DataQualityMetricsInputDatasetFacet(
                rowCount=quality.get("rows"), bytes=quality.get("bytes"),
                columnMetrics={k: data_quality_metrics_input_dataset.ColumnMetrics(**v)
                               for k, v in (quality.get("columns") or {}).items()})
            if quality.get("assertions"):
                facets["dataQualityAssertions"] = data_quality_assertions_dataset.DataQualityAssertionsDatasetFacet(
                    assertions=[data_quality_assertions_dataset.Assertion(assertion=a["assertion"], success=a["success"],
                                                                          column=a.get("column"))
                                for a in quality["assertions"]])
        return event_v2.InputDataset(namespace=self.namespace, name=ds.qualified_name, facets=facets,
                                     inputFacets=input_facets)

    def output(self, ds: Dataset, edges: Iterable[ColumnEdge] = ()) -> event_v2.OutputDataset:
        from openlineage.client import event_v2
        from openlineage.client.facet_v2 import column_lineage_dataset

        facets = {"schema": self._schema(ds)}
        fields: dict[str, column_lineage_dataset.Fields] = {}
        for e in edges:
            aggregated = e.transformation in AGGREGATE_KINDS  # value, collection, count, aggregate
            entry = fields.setdefault(e.target_column, column_lineage_dataset.Fields(
                inputFields=[], transformationDescription=e.logic,
                transformationType="IDENTITY" if e.transformation == "identity" else "INDIRECT"
                if aggregated else "DIRECT"))
            entry.inputFields.append(column_lineage_dataset.InputField(
                namespace=self.namespace, name=f"{e.source_quantum}.{e.source_dataset}", field=e.source_column,
                transformations=[column_lineage_dataset.Transformation(
                    type="INDIRECT" if aggregated else "DIRECT",
                    subtype="IDENTITY" if e.transformation == "identity" else "AGGREGATION" if aggregated
                    else "TRANSFORMATION",
                    description=e.transformation, masking=e.transformation == "hash")]))
        if fields:
            facets["columnLineage"] = column_lineage_dataset.ColumnLineageDatasetFacet(fields=fields)
        return event_v2.OutputDataset(namespace=self.namespace, name=ds.qualified_name, facets=facets)

    # -- events ----------------------------------------------------------------------------------------

    def emit_run(self, job: str, event_type: str, run_id: str, inputs=(), outputs=(), sql: str | None = None,
                 error: str | None = None) -> event_v2.RunEvent:
        from openlineage.client import event_v2
        from openlineage.client.facet_v2 import error_message_run, sql_job

        run_facets = {}
        if error:
            run_facets["errorMessage"] = error_message_run.ErrorMessageRunFacet(message=error, programmingLanguage="SQL")
        job_facets = {"sql": sql_job.SQLJobFacet(query=sql)} if sql else {}
        event = event_v2.RunEvent(
            eventType=event_v2.RunState[event_type], eventTime=now(), producer=PRODUCER,
            run=event_v2.Run(runId=run_id, facets=run_facets),
            job=event_v2.Job(namespace=JOB_NAMESPACE, name=job, facets=job_facets),
            inputs=list(inputs), outputs=list(outputs))
        self.emit(event)
        return event

    def emit_mesh_lineage(self, edges: list[ColumnEdge]) -> int:
        """One COMPLETE run per derived dataset, with its column lineage; returns how many."""
        count = 0
        for ds in self.mesh.datasets():
            if ds.sql is None:
                continue
            mine = [e for e in edges if (e.target_quantum.lower(), e.target_dataset.lower())
                    == (ds.quantum.lower(), ds.name.lower())]
            inputs = [self.input(src) for src in (self.mesh.dataset(q, d) for q, d in ds.reads) if src is not None]
            self.emit_run(f"{self.mesh.name}.{ds.qualified_name}", "COMPLETE", str(uuid.uuid4()), inputs,
                          [self.output(ds, mine)], sql=ds.sql)
            count += 1
        return count

    def emit_query(self, run_id: str, event_type: str, principal: str, sql: str, datasets, error: str | None = None):
        if not (self.queries and self._transports):
            return None
        inputs = [self.input(ds) for ds in (self.mesh.dataset(q, d) for q, d in datasets) if ds is not None]
        return self.emit_run(f"{self.mesh.name}.query.{principal}", event_type, run_id, inputs, sql=sql, error=error)
