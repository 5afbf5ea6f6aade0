"""The open dictionary as JSON (the mesh's discovery port): no token needed, except for "my access".

    GET /api/v1/domains                       domains and their quanta
    GET /api/v1/quanta?q=                     quanta (filtered by a search)
    GET /api/v1/quanta/<quantum>              one quantum: datasets, ports, contracts
    GET /api/v1/datasets?q=                   datasets (filtered by a search)
    GET /api/v1/datasets/<quantum>/<dataset>  one dataset: columns, contract, lineage, quality, SLOs, examples
                                              (quality results, SLO status and versions only for a token
                                              of a principal who may read the dataset)
    GET /api/v1/datasets/<q>/<d>/access       what the token's principal may see of it, column by column
    GET /api/v1/contracts/<id>                the ODCS contract file, as YAML, with the quality rules in force
    GET /api/v1/search?q=                     datasets and quanta matching every word, best first
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify, request

from .auth import current_principal, optional_principal
from .dictionary import Dictionary
from .errors import ApiError

bp = Blueprint("dictionary_api", __name__, url_prefix="/api/v1")


def dictionary() -> Dictionary:
    return current_app.extensions["quanta.dictionary"]


def _quantum_or_404(name: str) -> dict:
    found = dictionary().quantum(name)
    if found is None:
        raise ApiError(404, "not_found", f"there is no quantum {name!r}", "42P01")
    return found


def _dataset_or_404(quantum: str, name: str, principal=None) -> dict:
    found = dictionary().dataset(quantum, name, principal)
    if found is None:
        raise ApiError(404, "not_found", f"there is no dataset {quantum}.{name}", "42P01")
    return found


def _links(q: str, d: str | None = None) -> dict:
    if d is None:
        return {"self": f"/api/v1/quanta/{q}", "html": f"/quanta/{q}"}
    return {"self": f"/api/v1/datasets/{q}/{d}", "html": f"/quanta/{q}/{d}", "access": f"/api/v1/datasets/{q}/{d}/access"}


@bp.get("/domains")
def domains():
    """Domains with the names of their quanta."""
    out = [{"domain": d["domain"], "description": d["description"],
            "quanta": [q["quantum"] for q in d["quanta_list"]]} for d in dictionary().domains()]
    return jsonify({"mesh": dictionary().mesh_name, "domains": out})


@bp.get("/quanta")
def quanta():
    """Every quantum, or those matching ``?q=``."""
    rows = dictionary().quanta(request.args.get("q"))
    return jsonify({"quanta": [{**r, "links": _links(r["quantum"])} for r in rows], "count": len(rows)})


@bp.get("/quanta/<quantum>")
def quantum(quantum: str):
    """One quantum."""
    q = _quantum_or_404(quantum)
    datasets = [{**d, "links": _links(d["quantum"], d["dataset"])} for d in q.pop("datasets_list")]
    return jsonify({**q, "datasets": datasets, "links": _links(q["quantum"])})


@bp.get("/datasets")
def datasets():
    """Every dataset, or those matching ``?q=`` (best first)."""
    text = request.args.get("q")
    if text:
        rows = dictionary().search(text)["datasets"]
    else:
        rows = dictionary().snapshot().datasets
    return jsonify({"datasets": [{**r, "links": _links(r["quantum"], r["dataset"])} for r in rows],
                    "count": len(rows)})


@bp.get("/datasets/<quantum>/<dataset>")
def dataset(quantum: str, dataset: str):
    """One dataset with its columns, classification, contract, lineage, quality, SLOs and example queries
    (quality results, SLO status and versions for a token of a principal who may read it)."""
    d = _dataset_or_404(quantum, dataset, optional_principal())
    d["columns"] = d.pop("columns_list")
    d["column_count"] = len(d["columns"])
    d["approvers"] = dictionary().approvers(d["quantum"], d["dataset"])
    d["links"] = _links(d["quantum"], d["dataset"])
    if d["contract"]:
        d["links"]["contract"] = f"/api/v1/contracts/{d['contract_id']}"
    return jsonify(d)


@bp.get("/datasets/<quantum>/<dataset>/access")
def my_access(quantum: str, dataset: str):
    """What the token's principal may see of the dataset: each column visible, masked or denied."""
    principal = current_principal()
    d = _dataset_or_404(quantum, dataset)
    return jsonify(dictionary().access(principal, d["quantum"], d["dataset"]))


@bp.get("/contracts/<path:contract_id>")
def contract(contract_id: str):
    """The ODCS contract file as written by its owners (YAML), with the quality rules in force: rules set
    through the control plane replace the file's (marked with the custom property qualityRulesSource)."""
    from ...onboarding.contracts import served_contract_text

    path = dictionary().contract_file(contract_id)
    if path is None or not path.is_file():
        raise ApiError(404, "not_found", f"there is no contract {contract_id!r}", "42P01")
    return Response(served_contract_text(dictionary().platform, contract_id),
                    mimetype="application/yaml", headers={"Content-Disposition": f'inline; filename="{path.name}"'})


@bp.get("/search")
def search():
    """Datasets and quanta matching every word of ``?q=`` (names, descriptions, tags, domains, columns)."""
    text = request.args.get("q", "")
    if not text.strip():
        raise ApiError(400, "bad_request", "give the words to search for in ?q=")
    return jsonify(dictionary().search(text))
