"""Credentials of database servers: never in a contract, never logged.

For the server named ``S`` in a contract, in this order: the environment (``QUANTA_<S>_USER``,
``QUANTA_<S>_PASSWORD``, ``S`` upper-cased with every other character than letters and digits as
``_``), then the mesh's secrets file (``secrets: secrets.yaml`` in ``mesh.yaml``, outside the
contracts, readable only by its owner)::

    servers:
      b2b-operational:
        user: quanta_reader
        password_env: B2B_DB_PASSWORD     # or password: ... in this file
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Callable

import yaml


def env_name(server: str, what: str) -> str:
    return "QUANTA_" + re.sub(r"[^A-Za-z0-9]", "_", server).upper() + "_" + what


def provider(mesh_path: Path, secrets_file: str | None) -> Callable[[str], dict]:
    stored: dict = {}
    if secrets_file:
        path = (mesh_path / secrets_file).resolve()
        if path.exists():
            data = yaml.safe_load(path.read_text()) or {}
            stored = data.get("servers") or {} if isinstance(data, dict) else {}

    def credentials(server: str) -> dict:
        out: dict = {}
        entry = stored.get(server) or {}
        if isinstance(entry, dict):
            if entry.get("user"):
                out["user"] = str(entry["user"])
            if entry.get("password_env") and os.environ.get(str(entry["password_env"])):
                out["password"] = os.environ[str(entry["password_env"])]
            elif entry.get("password"):
                out["password"] = str(entry["password"])
        for key, what in (("user", "USER"), ("password", "PASSWORD")):
            value = os.environ.get(env_name(server, what))
            if value:
                out[key] = value
        return out

    return credentials
