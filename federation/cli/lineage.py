"""``quanta openlineage emit``: the mesh's lineage as OpenLineage run events."""

from __future__ import annotations

import click

from ..config import default_mesh
from .common import fail, friendly, main, mesh_option


@main.group("openlineage")
def openlineage_group() -> None:
    """OpenLineage events (configured in mesh.yaml settings.openlineage: file and/or url)."""


@openlineage_group.command("emit")
@mesh_option
@click.option("--file", "file", default=None, help="Append the events to this NDJSON file (overrides the mesh).")
@click.option("--url", "url", default=None, help="POST the events to this OpenLineage endpoint (overrides the mesh).")
@friendly
def openlineage_emit(mesh: str | None, file: str | None, url: str | None) -> None:
    """Emit the mesh's lineage: one run per derived dataset with its column lineage."""
    from ..lineage.openlineage import OpenLineage
    from ..platform import Platform

    platform = Platform.open(mesh or default_mesh())
    config = {"file": file, "url": url} if (file or url) else platform.mesh.settings["openlineage"]
    emitter = OpenLineage(platform.mesh, config)
    if not emitter.enabled:
        fail("no OpenLineage destination: give --file or --url, or settings.openlineage in mesh.yaml")
    n = emitter.emit_mesh_lineage(platform.lineage.edges)
    click.echo(f"emitted {n} lineage events ({', '.join(k for k in ('file', 'url') if config.get(k))})")
