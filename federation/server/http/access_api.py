"""Access requests over HTTP (tokens required): the HTTP face of ``Platform.request_access`` and
``Platform.decide_access``; no decision is made here.

    POST /api/v1/datasets/<q>/<d>/access-requests   {purpose, days}     ask for read access
    GET  /api/v1/access-requests                                         mine, and those I may approve
    POST /api/v1/access-requests/<id>/approve       {days}              a grant with an expiry, at once (or
                                                                         the first of two levels: pending_level)
    POST /api/v1/access-requests/<id>/deny          {reason}
    POST /api/v1/access-requests/<id>/revoke        {reason}            end an approved grant, at once
    GET  /api/v1/webhook-deliveries?status=                              the webhook outbox (auditors, engineers)
"""

from __future__ import annotations

from flask import Blueprint, current_app, jsonify, request

from .auth import current_principal
from .errors import ApiError

bp = Blueprint("access_api", __name__, url_prefix="/api/v1")


def _platform():
    return current_app.extensions["quanta.platform"]


def _body() -> dict:
    body = request.get_json(silent=True) if request.data else {}
    if body is None or not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the body is a JSON object")
    return body


@bp.post("/datasets/<quantum>/<dataset>/access-requests")
def request_access(quantum: str, dataset: str):
    """Ask for read access to a dataset, for a purpose and a number of days (default 90)."""
    principal = current_principal()
    body = _body()
    days = body.get("days", 90)
    if not isinstance(days, int) or isinstance(days, bool):
        raise ApiError(400, "bad_request", "days is a whole number")
    req = _platform().request_access(principal, f"{quantum}.{dataset}", body.get("purpose"), days)
    current_app.extensions["quanta.events"].publish()  # an event for the streams
    return jsonify(req.to_dict()), 201


@bp.get("/access-requests")
def list_requests():
    """The token's principal's own requests, and the requests it may approve (all for auditors)."""
    principal = current_principal()
    result = _platform().query("select * exclude (approvers) from system.access_requests order by request_id",
                               principal, interface="http")
    rows = result.arrow().to_pylist()
    return jsonify({"access_requests": rows, "count": len(rows)})


def _decide(request_id: int, approve: bool):
    principal = current_principal()
    body = _body()
    days = body.get("days")
    if days is not None and (not isinstance(days, int) or isinstance(days, bool)):
        raise ApiError(400, "bad_request", "days is a whole number")
    req = _platform().decide_access(principal, request_id, approve, days, body.get("reason"))
    current_app.extensions["quanta.events"].publish()
    return jsonify(req.to_dict())


@bp.post("/access-requests/<int:request_id>/approve")
def approve(request_id: int):
    """Approve a pending request (approvers named in the contract, owners, data engineers); with two levels
    named, the approval of its pending level (the answer says ``pending_level`` and ``approvals``)."""
    return _decide(request_id, True)


@bp.post("/access-requests/<int:request_id>/deny")
def deny(request_id: int):
    """Deny a pending request."""
    return _decide(request_id, False)


@bp.post("/access-requests/<int:request_id>/revoke")
def revoke(request_id: int):
    """Revoke an approved request's grant before it expires (those who may approve it)."""
    principal = current_principal()
    reason = _body().get("reason")
    if reason is not None and not isinstance(reason, str):
        raise ApiError(400, "bad_request", "reason is a string")
    req = _platform().revoke_access(principal, request_id, reason)
    current_app.extensions["quanta.events"].publish()
    return jsonify(req.to_dict())


@bp.get("/webhook-deliveries")
def webhook_deliveries():
    """The mesh's webhook deliveries (``status``: pending, delivered or dead), for auditors and data engineers."""
    from ...webhooks import deliveries_for

    rows = deliveries_for(_platform(), current_principal(), request.args.get("status"))
    return jsonify({"deliveries": rows, "count": len(rows)})
