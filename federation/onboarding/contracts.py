"""The served contract: the ODCS contract with the quality rules in force, and writing them back.

Rules set through the control plane (``control.set_rules``) replace a dataset's own ``quality`` lists
at once, without touching the contract's file. Everything that shows a contract to people (the HTTP
dictionary, ``quanta contract effective``) shows those rules in force, marked with the custom property
``qualityRulesSource`` (who set them and when) on the schema object, so no one reads rules that are
not the ones checked.

``write_rules`` puts them back into the contract's YAML file for the domain's git repository: only the
``quality`` entries change (set through ruamel.yaml's round trip, so comments, key order and layout
elsewhere stay), the result must still load to the same document and validate against the ODCS schema,
and it is written to a temporary file and renamed; a file edited since the mesh was loaded is refused. The store then forgets the rules: the contract is their source again.
"""

from __future__ import annotations

import copy
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from .. import errors
from ..catalog.loader import _parse_path, _validator
from ..catalog.model import Dataset
from ..catalog.yamlio import YamlError, format_path, parse_yaml
from .common import authorize, dataset_of, store_of

MARKER = "qualityRulesSource"
Edit = tuple[list, str, Any]  # (YAML path of a mapping, key, new value; None drops the key)


def rule_sets(platform) -> dict[tuple[str, str], dict]:
    from .store import Store

    return store_of(platform).rule_sets() if Store.exists(platform.state_dir) else {}


def rule_edits(ds: Dataset, rules: list[dict], rule_set: dict | None = None) -> list[Edit]:
    """Where control-plane rules go in the contract: entries with ``column`` on that property, the others
    on the schema object; every other ``quality`` list of the dataset is dropped. With ``rule_set`` (who
    set them, when), the schema object is marked."""
    by_column: dict[str, list[dict]] = {}
    for r in rules:
        col = r.get("column")
        by_column.setdefault(str(col).lower() if col else "", []).append(_explicit(r))
    base = _parse_path(ds.yaml_path)
    edits: list[Edit] = [(base, "quality", by_column.get("") or None)]
    edits += [(_parse_path(c.yaml_path), "quality", by_column.get(c.name.lower()) or None)
              for c in ds.columns if c.yaml_path]
    if rule_set is not None:
        kept = [p for p in ds.raw.get("customProperties") or []
                if not (isinstance(p, dict) and p.get("property") == MARKER)]
        edits.append((base, "customProperties", kept + [{
            "property": MARKER,
            "value": {"source": "control-plane", "setBy": rule_set["principal"], "setAt": rule_set["updated_at"]},
            "description": "The quality rules of this dataset were set through Quanta's control plane and replace "
                           "those of the contract file"}]))
    return edits


def _explicit(rule: dict) -> dict:
    """An ODCS quality entry without ``column``, its default operator written out (ODCS requires one)."""
    from ..quality.rules import ALIASES, OPERATORS

    out = {k: v for k, v in rule.items() if k != "column"}
    if str(out.get("type") or "library") in ("library", "sql") and not any(
            ALIASES.get(k, k) in OPERATORS for k in out):
        out.update({"mustBeGreaterThan": 0} if out.get("metric") == "rowCount" else {"mustBe": 0})
    return out


def _served_edits(platform, contract_id: str) -> list[Edit]:
    sets = rule_sets(platform)
    edits: list[Edit] = []
    for ds in platform.mesh.datasets():
        found = sets.get((ds.quantum.lower(), ds.name.lower()))
        if ds.contract_id == contract_id and found is not None:
            edits += rule_edits(ds, found["rules"], found)
    return edits


def _apply(doc: dict, edits: list[Edit]) -> dict:
    for path, key, value in edits:
        node = doc
        for part in path:
            node = node[part]
        if value is None:
            node.pop(key, None)
        else:
            node[key] = value
    return doc


def with_rules_in_force(platform, contract_id: str, doc: dict) -> dict:
    """``doc`` (a copy of the contract, possibly with inherited fields) with the control plane's rules."""
    return _apply(doc, _served_edits(platform, contract_id))


def served_contract(platform, contract_id: str) -> dict | None:
    contract = platform.mesh.contracts.get(contract_id)
    if contract is None:
        return None
    return with_rules_in_force(platform, contract_id, copy.deepcopy(contract.as_written))  # ${VAR} kept


def served_contract_text(platform, contract_id: str) -> str | None:
    """The contract file as written, with the rules in force spliced in (the file itself when none)."""
    contract = platform.mesh.contracts.get(contract_id)
    if contract is None:
        return None
    text = (platform.mesh.path / contract.file).read_text(encoding="utf-8")
    edits = _served_edits(platform, contract_id)
    if not edits:
        return text
    # ruamel.yaml, imported only where a file is edited
    from ..catalog.yamledit import edited

    return edited(text, _apply(copy.deepcopy(contract.as_written), edits), edits, contract.file)


def write_rules(platform, name: str, principal) -> Path:
    """Write the control plane's rules of ``name`` into its contract file (atomically), then serve the
    contract's rules again; owners and data engineers only."""
    from ..catalog.yamledit import edited
    from ..quality import rules as R

    ds = dataset_of(platform, name)
    authorize(platform, principal, ds.quantum, "write quality rules into the contract")
    store = store_of(platform)
    found = store.rule_sets().get((ds.quantum.lower(), ds.name.lower()))
    if found is None:
        raise errors.ProgrammingError(f"{ds.qualified_name} has no rules set through the control plane: its "
                                      "contract's own rules are in force")
    contract = platform.mesh.contracts[ds.contract_id]
    path = (platform.mesh.path / contract.file).resolve()
    try:
        raw = path.read_bytes()
        on_disk, _ = parse_yaml(raw)
    except (OSError, YamlError) as e:
        raise errors.DataError(f"{contract.file}: {e}") from None
    if on_disk != contract.as_written:  # ${VAR} tokens kept (ODCS v3.2)
        raise errors.ProgrammingError(f"{contract.file} changed since the mesh was loaded; reload and write again")
    edits = rule_edits(ds, found["rules"])
    doc = _apply(copy.deepcopy(contract.as_written), edits)
    for err in _validator("odcs").iter_errors(doc):
        raise errors.DataError(f"{contract.file}: {format_path(list(err.instance_path))}: the contract would not "
                               f"validate against the ODCS schema: {err.message[:300]}")
    text = raw.decode("utf-8").replace("\r\n", "\n")
    _replace(path, raw, edited(text, doc, edits, contract.file), contract.file)
    store.clear_rules(ds.quantum, ds.name, dict(
        kind="rules_written", quantum=ds.quantum, dataset=ds.name, principal=principal.name,
        message=f"{len(found['rules'])} quality rule(s) written into {contract.file}",
        details={"file": contract.file, "rules": found["rules"]}))
    platform.reload(changed=True)
    try:
        R.dataset_rules(platform.mesh.dataset(ds.quantum, ds.name))
    except R.RuleError as e:  # validated when set; a reload that reads them otherwise is a bug to report
        raise errors.DataError(f"{contract.file}: the written rules do not load back: {e}") from None
    return path


def _replace(path: Path, before: bytes, text: str, name: str) -> None:
    """Write ``text`` to a temporary file beside ``path`` and rename it over ``path``, unless the file no longer
    holds ``before`` (edited meanwhile): then nothing is written."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        shutil.copymode(path, tmp)
        if path.read_bytes() != before:
            raise errors.ProgrammingError(f"{name} changed while the rules were written; reload and write again")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
