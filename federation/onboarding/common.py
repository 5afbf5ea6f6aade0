"""What every control-plane module needs, and nothing that orchestrates: the platform's store, a
dataset by name, and who may run the control plane of a quantum (``authorize``) or read a dataset's
history (``require_read``). It sits low in the import graph: it imports no other onboarding module
but the store, so the pipeline, the marts and the facade (``control``) all build on it.
"""

from __future__ import annotations

import shutil
import threading
from pathlib import Path

from .. import errors
from ..catalog.model import Dataset, Mesh
from .store import Store, iso  # noqa: F401 - iso: the store's timestamps, re-exported for its users

ENGINEER_ROLE = "data_engineer"
_stores: dict[Path, Store] = {}
_stores_lock = threading.Lock()


def store_of(platform) -> Store:
    """The control store of ``platform``'s state folder (one per folder and process)."""
    key = Path(platform.state_dir).resolve()
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = Store.open(key)
        return store


def dataset_of(platform, name: str) -> Dataset:
    parts = name.split(".")
    if len(parts) != 2:
        raise errors.ProgrammingError(f"name a dataset as <quantum>.<dataset>, not {name!r}")
    mesh: Mesh = platform.mesh
    if parts[0].lower() in mesh.excluded:
        raise errors.Unavailable(f"quantum {parts[0]} is unavailable: {mesh.excluded[parts[0].lower()]}")
    q = mesh.quanta.get(parts[0].lower())
    if q is None:
        raise errors.UnknownObject(f"there is no quantum {parts[0]!r}")
    ds = q.datasets.get(parts[1].lower())
    if ds is None:
        raise errors.UnknownObject(f"quantum {q.name} has no dataset {parts[1]!r}; it has "
                                   f"{', '.join(sorted(q.datasets))}")
    return ds


def may_control(platform, principal, quantum: str) -> bool:
    """Owners of the quantum and data engineers may run the control plane."""
    q = platform.mesh.quanta.get(quantum.lower())
    return principal.name in (q.owners if q else ()) or principal.has_role(ENGINEER_ROLE)


def authorize(platform, principal, quantum: str, action: str) -> None:
    """AccessDenied unless ``principal`` may run the control plane of ``quantum``."""
    if may_control(platform, principal, quantum):
        return
    q = platform.mesh.quanta.get(quantum.lower())
    owners = q.owners if q else ()
    raise errors.AccessDenied(
        f"{principal.name} may not {action} on quantum {quantum}: only its owners "
        f"({', '.join(owners) or 'none'}) and principals with the role {ENGINEER_ROLE} may")


def require_read(platform, principal, ds: Dataset, action: str) -> None:
    """AccessDenied unless ``principal`` may read ``ds`` (a grant: the decision their queries get)."""
    from ..system.observability import may_read

    gov = platform.state.governance
    if gov is not None and not may_read(gov, principal, ds):
        raise errors.AccessDenied(f"{principal.name} may not {action} of {ds.qualified_name}: they are shown to "
                                  f"principals who may read it; request access to it first")


def rule_overrides(platform) -> dict:
    """The quality rules set through the control plane, by (quantum, dataset); none without a store."""
    if not Store.exists(platform.state_dir):
        return {}
    return store_of(platform).rules()


def rules_of(platform, ds: Dataset) -> list:
    """The quality rules in force for ``ds``: the contract's and the schema's, or the control plane's."""
    from ..quality import engine

    return engine.rules_for(ds, rule_overrides(platform))


def remove_tree(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
