"""Where things are by default."""

from __future__ import annotations

import os
from pathlib import Path


def default_mesh() -> str:
    """``$QUANTA_MESH``, else ``catalogs/greatparts`` in the current folder, else the one beside the package."""
    env = os.environ.get("QUANTA_MESH")
    if env:
        return env
    here = Path("catalogs/greatparts")
    if (here / "mesh.yaml").exists():
        return str(here)
    packaged = Path(__file__).resolve().parent.parent / "catalogs" / "greatparts"
    return str(packaged)
