"""The served contract: the ODCS contract with the quality rules in force, and writing them back.

Rules set through the control plane (``control.set_rules``) replace a dataset's own ``quality`` lists
at once, without touching the contract's file. Everything that shows a contract to people (the HTTP
dictionary, ``quanta contract effective``) shows those rules in force, marked with the custom property
``qualityRulesSource`` (who set them and when) on the schema object, so no one reads rules that are
not the ones checked.

``write_rules`` puts them back into the contract's YAML file for the domain's git repository: only the
``quality`` entries change (spliced into the text, so comments and layout elsewhere stay), the result
must still load to the same document and validate against the ODCS schema, and it is written to a
temporary file and renamed. The store then forgets the rules: the contract is their source again.
"""

from __future__ import annotations

import copy
import os
import uuid
from pathlib import Path
from typing import Any

import yaml

from .. import errors
from ..catalog.loader import _parse_path, _validator
from ..catalog.model import Dataset
from ..catalog.yamlio import YamlError, format_path, load_yaml
from .common import authorize, dataset_of, store_of

MARKER = "qualityRulesSource"
Edit = tuple[list, str, Any]  # (YAML path of a mapping, key, new value; None drops the key)


class _Dumper(yaml.SafeDumper):
    """Block sequences indented under their key, as the contracts are written."""

    def increase_indent(self, flow: bool = False, indentless: bool = False):
        return super().increase_indent(flow, False)


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
    return with_rules_in_force(platform, contract_id, copy.deepcopy(contract.raw))


def served_contract_text(platform, contract_id: str) -> str | None:
    """The contract file as written, with the rules in force spliced in (the file itself when none)."""
    contract = platform.mesh.contracts.get(contract_id)
    if contract is None:
        return None
    text = (platform.mesh.path / contract.file).read_text(encoding="utf-8")
    edits = _served_edits(platform, contract_id)
    if not edits:
        return text
    return _patched(text, _apply(copy.deepcopy(contract.raw), edits), edits)


def write_rules(platform, name: str, principal) -> Path:
    """Write the control plane's rules of ``name`` into its contract file (atomically), then serve the
    contract's rules again; owners and data engineers only."""
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
        on_disk, _ = load_yaml(path)
    except YamlError as e:
        raise errors.DataError(f"{contract.file}: {e}") from None
    if on_disk != contract.raw:
        raise errors.ProgrammingError(f"{contract.file} changed since the mesh was loaded; reload and write again")
    edits = rule_edits(ds, found["rules"])
    doc = _apply(copy.deepcopy(contract.raw), edits)
    for err in _validator("odcs").iter_errors(doc):
        raise errors.DataError(f"{contract.file}: {format_path(list(err.instance_path))}: the contract would not "
                               f"validate against the ODCS schema: {err.message[:300]}")
    text = _patched(path.read_text(encoding="utf-8"), doc, edits)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    store.clear_rules(ds.quantum, ds.name, dict(
        kind="rules_written", quantum=ds.quantum, dataset=ds.name, principal=principal.name,
        message=f"{len(found['rules'])} quality rule(s) written into {contract.file}",
        details={"file": contract.file, "rules": found["rules"]}))
    platform.reload()
    try:
        R.dataset_rules(platform.mesh.dataset(ds.quantum, ds.name))
    except R.RuleError as e:  # validated when set; a reload that reads them otherwise is a bug to report
        raise errors.DataError(f"{contract.file}: the written rules do not load back: {e}") from None
    return path


# -- splicing YAML text ---------------------------------------------------------------------------------


def _patched(text: str, doc: dict, edits: list[Edit]) -> str:
    """``text`` with each edit spliced in where its key is (or at the end of its mapping), so the rest
    stays as written; when the result would not load to ``doc``, the whole document is dumped instead."""
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    spans = set()
    for path, key, _ in edits:
        node, value = root, doc
        for part in path:
            node = node.value[part] if isinstance(node, yaml.SequenceNode) else _value_node(node, part)
            value = value[part]
        spans.add((*_span(text, node, key, value, value.get(key)), len(path)))
    out = text
    # right to left; of two insertions at one place, the deeper one (a property's) must come first in the text
    for start, end, new, _ in sorted(spans, key=lambda s: (s[0], -s[3]), reverse=True):
        out = out[:start] + new + out[end:]
    try:
        same = yaml.load(out, Loader=_loader()) == doc  # noqa: S506 - a safe loader
    except yaml.YAMLError:
        same = False
    return out if same else yaml.dump(doc, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110)


def _loader():
    from ..catalog.yamlio import _Loader

    return _Loader


def _value_node(mapping: yaml.MappingNode, key: str) -> yaml.Node:
    return next(v for k, v in mapping.value if k.value == key)


def _end(text: str, node: yaml.Node) -> int:
    """Where a node's text ends (block collections end at their last scalar, not at the next key)."""
    while isinstance(node, (yaml.SequenceNode, yaml.MappingNode)) and not node.flow_style and node.value:
        last = node.value[-1]
        node = last[1] if isinstance(node, yaml.MappingNode) else last
    end = node.end_mark.index
    while end > node.start_mark.index and text[end - 1] in " \t\r\n":
        end -= 1
    return end


def _block(key: str, value: Any, indent: int) -> str:
    lines = yaml.dump({key: value}, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=110).rstrip("\n")
    first, *rest = lines.split("\n")
    return "\n".join([first] + [" " * indent + line for line in rest])


def _span(text: str, node: yaml.Node, key: str, mapping: dict, value: Any) -> tuple[int, int, str]:
    """(start, end, replacement) setting ``key`` of the mapping ``node`` to ``value`` (None: dropping it)."""
    if node.flow_style:
        flow = yaml.dump(mapping, Dumper=_Dumper, sort_keys=False, allow_unicode=True, default_flow_style=True,
                         width=1 << 30).rstrip("\n")
        return node.start_mark.index, node.end_mark.index, flow
    pair = next(((k, v) for k, v in node.value if k.value == key), None)
    if pair is None:
        if value is None:
            return 0, 0, ""
        column = node.value[0][0].start_mark.column
        at = _end(text, node)
        return at, at, "\n" + " " * column + _block(key, value, column)
    start, end = pair[0].start_mark.index, _end(text, pair[1])
    if value is not None:
        return start, end, _block(key, value, pair[0].start_mark.column)
    line_start = text.rfind("\n", 0, start) + 1
    if text[line_start:start].strip():  # the first key of a sequence item ("- quality: ..."): keep the key
        return start, end, f"{key}: []"
    return line_start, end + 1 if text[end:end + 1] == "\n" else end, ""
