"""The HTML dictionary: server-rendered pages (Jinja templates in ``federation/server/templates``).

    GET /                         the mesh: domains and their quanta
    GET /quanta/<quantum>         a quantum: datasets, ports, owners
    GET /quanta/<quantum>/<ds>    a dataset: columns and classification, contract, lineage (SVG), quality,
                                  SLOs, example queries, who approves access
    GET /search?q=                search the dictionary

Open to everyone, no JavaScript; the pages read the same ``Dictionary`` as the JSON API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .dictionary import Dictionary
from .errors import ApiError
from .lineage_svg import lineage_svg

bp = Blueprint("pages", __name__)


def dictionary() -> Dictionary:
    return current_app.extensions["quanta.dictionary"]


@bp.get("/")
def home():
    """The mesh's home page: domains and quanta."""
    d = dictionary()
    return render_template("home.html", mesh=d.mesh_name, description=d.mesh_description, domains=d.domains(),
                           quanta=d.snapshot().quanta)


@bp.get("/quanta/<quantum>")
def quantum(quantum: str):
    """A quantum's page."""
    q = dictionary().quantum(quantum)
    if q is None:
        raise ApiError(404, "not_found", f"there is no quantum {quantum!r}")
    return render_template("quantum.html", q=q, mesh=dictionary().mesh_name)


@bp.get("/quanta/<quantum>/<dataset>")
def dataset(quantum: str, dataset: str):
    """A dataset's page."""
    d = dictionary().dataset(quantum, dataset)
    if d is None:
        raise ApiError(404, "not_found", f"there is no dataset {quantum}.{dataset}")
    svg = lineage_svg(d["quantum"], d["dataset"], d["lineage"])
    return render_template("dataset.html", d=d, svg=svg, mesh=dictionary().mesh_name,
                           approvers=dictionary().approvers(d["quantum"], d["dataset"]))


@bp.get("/search")
def search():
    """The search page: a form, and the results when ``?q=`` is given."""
    text = request.args.get("q", "").strip()
    results = dictionary().search(text) if text else None
    return render_template("search.html", q=text, results=results, mesh=dictionary().mesh_name)
