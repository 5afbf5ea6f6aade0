"""The HTML dictionary: server-rendered pages (Jinja templates in ``federation/server/templates``).

    GET /                         the mesh: domains and their quanta
    GET /quanta/<quantum>         a quantum: datasets, ports, owners
    GET /quanta/<quantum>/<ds>    a dataset: columns and classification, contract, lineage (SVG), quality,
                                  SLOs, example queries, who approves access (quality results, SLO status
                                  and versions for an ``Authorization: Bearer`` token of one of its readers)
    POST /quanta/<q>/<ds>/access-requests   the page's request-access form (token, purpose, days)
    GET /search?q=                search the dictionary

Open to everyone, no JavaScript; the pages read the same ``Dictionary`` as the JSON API.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, request

from .auth import optional_principal
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
def dataset(quantum: str, dataset: str, outcome: dict | None = None):
    """A dataset's page."""
    d = dictionary().dataset(quantum, dataset, optional_principal())
    if d is None:
        raise ApiError(404, "not_found", f"there is no dataset {quantum}.{dataset}")
    svg = lineage_svg(d["quantum"], d["dataset"], d["lineage"])
    return render_template("dataset.html", d=d, svg=svg, mesh=dictionary().mesh_name,
                           approvers=dictionary().approvers(d["quantum"], d["dataset"]), outcome=outcome)


_dataset_page = dataset  # the view, under a name the form's handler does not shadow


@bp.post("/quanta/<quantum>/<dataset>/access-requests")
def request_access(quantum: str, dataset: str):
    """The request-access form: the token identifies the principal (no session, no cookie)."""
    from ... import errors

    platform = current_app.extensions["quanta.platform"]
    form = request.form
    status = 200
    try:
        principal = platform.authenticate(form.get("token", "").strip() or None, "http", request.remote_addr)
        days = int(form.get("days") or 90)
        req = platform.request_access(principal, f"{quantum}.{dataset}", form.get("purpose") or None, days)
        outcome = {"ok": True, "message": f"Request {req.request_id} sent: {req.principal} asks to read "
                                          f"{quantum}.{dataset} for {req.days} days. It is pending."}
    except errors.AuthenticationError as e:
        outcome, status = {"ok": False, "message": f"Not sent: {e.message}."}, 401
    except ValueError:
        outcome, status = {"ok": False, "message": "Not sent: days is a whole number."}, 400
    except errors.Error as e:
        outcome, status = {"ok": False, "message": f"Not sent: {e.message}."}, 400
    return _dataset_page(quantum, dataset, outcome), status


@bp.get("/search")
def search():
    """The search page: a form, and the results when ``?q=`` is given."""
    text = request.args.get("q", "").strip()
    results = dictionary().search(text) if text else None
    return render_template("search.html", q=text, results=results, mesh=dictionary().mesh_name)
