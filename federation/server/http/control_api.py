"""The control and observability planes over HTTP (tokens required; the control plane is for the
quantum's owners and data engineers, as ``federation.onboarding.control`` decides, not this module).

    GET  /api/v1/datasets/<q>/<d>/versions            versions: published, failed, rolled back (readers of
                                                      the dataset only)
    GET  /api/v1/datasets/<q>/<d>/quality/samples     the rules that failed at the latest check, each with a
                                                      few failing rows read as the token's principal (their
                                                      grant, masks and row filters); readers only
    POST /api/v1/datasets/<q>/<d>/versions            onboard a batch: an uploaded file (multipart, field
                                                      ``file``) or ``{"path": ...}`` under a folder the
                                                      server allows (QUANTA_ONBOARD_FOLDERS); ``quarantine``,
                                                      ``strict`` as form fields or JSON
    POST /api/v1/datasets/<q>/<d>/checks              run the quality rules now
    PUT  /api/v1/datasets/<q>/<d>/rules               replace the quality rules (a JSON list of ODCS rules)
    POST /api/v1/datasets/<q>/<d>/rollback            ``{"version": N}``: serve version N again
    GET  /api/v1/quarantine[?dataset=q.d&all=true]    quarantine batches: id, rows, rules (no value)
    GET  /api/v1/quarantine/<id>[?limit=N]            a batch and its rows, read as the token's principal
    POST /api/v1/quarantine/<id>/release              re-check; publish the rows that pass as a new version
    DELETE /api/v1/quarantine/<id>                    drop the batch (a ``quarantine_dropped`` event)
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from flask import Blueprint, Response, current_app, jsonify, request

from ... import errors
from .auth import current_principal
from .encoders import dumps
from .errors import ApiError

bp = Blueprint("control_api", __name__, url_prefix="/api/v1")
FORMATS = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".json": "json", ".ndjson": "json", ".jsonl": "json"}


def _platform():
    return current_app.extensions["quanta.platform"]


def _flag(value) -> bool:
    return value in (True, "true", "1", "yes", "on")


@bp.get("/datasets/<quantum>/<dataset>/versions")
def list_versions(quantum: str, dataset: str):
    """The versions of a dataset (needs a token of a principal who may read it; as ``system.versions``)."""
    from ...onboarding import control

    principal = current_principal()
    rows = [{**v.__dict__} for v in control.versions(_platform(), f"{quantum}.{dataset}", principal)]
    return jsonify({"versions": rows, "count": len(rows)})


@bp.get("/datasets/<quantum>/<dataset>/quality/samples")
def quality_samples(quantum: str, dataset: str):
    """Failing rows of the latest check's failed rules, read now as the token's principal (readers only)."""
    from ...onboarding import control

    principal = current_principal()
    found = control.samples(_platform(), f"{quantum}.{dataset}", principal)
    body = {"dataset": f"{quantum}.{dataset}", "principal": principal.name, "samples": found}
    return Response(dumps(body), mimetype="application/json")


@bp.post("/datasets/<quantum>/<dataset>/versions")
def onboard(quantum: str, dataset: str):
    """Onboard a batch as a new version (owners and data engineers)."""
    from ...onboarding.control import onboard as run
    from ...onboarding.pipeline import OnboardingRejected

    principal = current_principal()
    request.max_content_length = int(current_app.config["QUANTA_MAX_UPLOAD"])
    options = request.form if request.files else (request.get_json(silent=True) or {})
    with tempfile.TemporaryDirectory(prefix="quanta-upload-") as tmp:
        if "file" in request.files:
            upload = request.files["file"]
            suffix = Path(upload.filename or "").suffix.lower()
            if suffix not in FORMATS:
                raise ApiError(400, "bad_request", f"upload a Parquet, CSV or JSON file, not {suffix or 'no suffix'}")
            source = Path(tmp) / f"batch{suffix}"
            upload.save(source)
        elif options.get("path"):
            source = Path(str(options["path"])).resolve()
            allowed = [Path(f).resolve() for f in current_app.config["QUANTA_ONBOARD_FOLDERS"]]
            if not any(source == a or a in source.parents for a in allowed):
                raise ApiError(403, "access_denied", "the server may not read that path; upload the file, or ask "
                               "the operator to allow its folder (QUANTA_ONBOARD_FOLDERS)", "42501")
            if not source.is_file():
                raise ApiError(400, "bad_request", f"{source.name} is not a file the server can read")
        else:
            raise ApiError(400, "bad_request", "send the batch as a multipart field 'file', or {\"path\": ...}")
        try:
            report = run(_platform(), f"{quantum}.{dataset}", str(source), principal,
                         fmt=FORMATS.get(source.suffix.lower()),
                         on_error="quarantine" if _flag(options.get("quarantine")) else None,
                         strict=_flag(options.get("strict")))
        except OnboardingRejected as e:
            current_app.extensions["quanta.events"].publish()
            return jsonify({"error": {"code": "batch_refused", "message": str(e).split(":\n")[0],
                                      "sqlstate": "22000"}, "report": e.report.to_dict()}), 422
    current_app.extensions["quanta.events"].publish()
    return jsonify(report.to_dict()), 201


@bp.post("/datasets/<quantum>/<dataset>/checks")
def run_checks(quantum: str, dataset: str):
    """Run the dataset's quality rules now; the results join the history."""
    from ...onboarding import control

    result = control.check(_platform(), f"{quantum}.{dataset}", current_principal())
    return jsonify(result.to_dict())


@bp.put("/datasets/<quantum>/<dataset>/rules")
def replace_rules(quantum: str, dataset: str):
    """Replace the dataset's quality rules (validated, persisted, served in system.quality_rules)."""
    from ...onboarding import control

    principal = current_principal()
    rules = request.get_json(silent=True)
    if not isinstance(rules, list):
        raise ApiError(400, "bad_request", "the body is a JSON list of ODCS quality rules")
    stored = control.set_rules(_platform(), f"{quantum}.{dataset}", rules, principal)
    return jsonify({"rules": [r.describe() if hasattr(r, "describe") else r for r in stored]})


@bp.post("/datasets/<quantum>/<dataset>/rollback")
def rollback(quantum: str, dataset: str):
    """Serve an earlier version again (owners and data engineers)."""
    from ...onboarding import control

    principal = current_principal()
    body = request.get_json(silent=True) or {}
    version = body.get("version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise ApiError(400, "bad_request", "give {\"version\": N}")
    try:
        v = control.rollback(_platform(), f"{quantum}.{dataset}", version, principal)
    except errors.Error:
        raise
    return jsonify(v.__dict__)


# -- quarantine (federation.onboarding.quarantine decides who may; an unknown id is a 404) --------------------


def _quarantine_call(fn):
    try:
        return fn()
    except errors.UnknownObject as e:
        raise ApiError(404, "not_found", str(e)) from None


@bp.get("/quarantine")
def quarantine_list():
    """The quarantine batches the token's principal runs the control plane of (rule names and counts)."""
    from ...onboarding import quarantine

    principal = current_principal()
    rows = _quarantine_call(lambda: quarantine.list_batches(
        _platform(), principal, request.args.get("dataset") or None, _flag(request.args.get("all"))))
    return Response(dumps({"quarantine": rows, "count": len(rows)}), mimetype="application/json")


@bp.get("/quarantine/<quarantine_id>")
def quarantine_show(quarantine_id: str):
    """A batch and its rows, read through governance as the token's principal."""
    from ...onboarding import quarantine

    principal = current_principal()
    limit = request.args.get("limit")
    if limit is not None and not limit.isdigit():
        raise ApiError(400, "bad_request", "limit is a number of rows")
    summary, table = _quarantine_call(lambda: quarantine.show(_platform(), quarantine_id, principal,
                                                              int(limit) if limit else None))
    return Response(dumps({**summary, "rows_shown": table.to_pylist()}), mimetype="application/json")


@bp.post("/quarantine/<quarantine_id>/release")
def quarantine_release(quarantine_id: str):
    """Re-check the batch; publish the rows that now pass as a new version (409: nothing to release)."""
    from ...onboarding import quarantine
    from ...onboarding.pipeline import OnboardingRejected

    principal = current_principal()
    try:
        report, summary = _quarantine_call(lambda: quarantine.release(_platform(), quarantine_id, principal))
    except OnboardingRejected as e:
        current_app.extensions["quanta.events"].publish()
        return jsonify({"error": {"code": "batch_refused", "message": str(e).split(":\n")[0], "sqlstate": "22000"},
                        "report": e.report.to_dict()}), 422
    current_app.extensions["quanta.events"].publish()
    return Response(dumps({"report": report.to_dict(), "quarantine": summary}), status=201,
                    mimetype="application/json")


@bp.delete("/quarantine/<quarantine_id>")
def quarantine_drop(quarantine_id: str):
    """Drop the batch: its rows are deleted, the drop recorded as an event."""
    from ...onboarding import quarantine

    principal = current_principal()
    summary = _quarantine_call(lambda: quarantine.drop(_platform(), quarantine_id, principal))
    current_app.extensions["quanta.events"].publish()
    return Response(dumps({"quarantine": summary}), mimetype="application/json")
