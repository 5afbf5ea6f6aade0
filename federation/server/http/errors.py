"""Errors over HTTP: every error is JSON ``{"error": {"code", "message", "sqlstate"}}``, from one handler.

Quanta's own errors (``federation.errors``) keep their stable ``code`` and ``sqlstate`` and map to an
HTTP status by class; HTTP-level problems (unknown route, malformed or oversized body) become
``ApiError``-like JSON too; anything unexpected is a 500 with a generic message, logged on the server
with an id that the answer repeats, never with a stack trace in the response.
"""

from __future__ import annotations

import logging
import uuid

from flask import Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from ... import errors

log = logging.getLogger("federation.server.http")

# Most specific first: AccessDenied is a ProgrammingError, StatementRefused a NotSupportedError.
STATUS_BY_CLASS: tuple[tuple[type[errors.Error], int], ...] = (
    (errors.LoginThrottled, 429),  # too many failed logins: refused before the credential is checked
    (errors.AuthenticationError, 401),
    (errors.AccessDenied, 403),
    (errors.StatementRefused, 403),
    (errors.QueryTimeout, 504),
    (errors.TooManyQueries, 429),
    (errors.QueryCancelled, 409),
    (errors.Conflict, 409),
    (errors.Unavailable, 503),
    (errors.CatalogError, 503),
    (errors.ProgrammingError, 400),  # syntax, unknown object or column, invalid query
    (errors.NotSupportedError, 400),
    (errors.DataError, 400),
    (errors.InterfaceError, 400),
    (errors.InternalError, 500),
    (errors.OperationalError, 503),
)

HTTP_CODES = {400: "bad_request", 401: "unauthenticated", 403: "forbidden", 404: "not_found",
              405: "method_not_allowed", 406: "not_acceptable", 408: "timeout", 413: "payload_too_large",
              415: "unsupported_media_type", 429: "too_many_requests"}


# an HTTP-level error's SQLSTATE when the raiser names none (a bad body is bad input, not an internal error)
SQLSTATE_BY_STATUS = {400: "22023", 401: "28000", 403: "42501", 404: "42704", 413: "54000", 429: "53300"}


class ApiError(Exception):
    """An error of the HTTP layer itself (a bad request body, an unknown quantum...)."""

    def __init__(self, status: int, code: str, message: str, sqlstate: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.sqlstate = sqlstate or SQLSTATE_BY_STATUS.get(status, "XX000" if status >= 500 else "08P01")

    def to_dict(self) -> dict:
        return {"code": self.code, "message": self.message, "sqlstate": self.sqlstate}


def status_of(e: errors.Error) -> int:
    for cls, status in STATUS_BY_CLASS:
        if isinstance(e, cls):
            return status
    return 500


def describe(e: BaseException) -> tuple[int, dict]:
    """The HTTP status and the JSON ``error`` object of an exception (never a stack trace)."""
    if isinstance(e, ApiError):
        return e.status, e.to_dict()
    if isinstance(e, errors.Error):
        status = status_of(e)
        body = e.to_dict()
        if status == 500:  # an internal error's message is for the server log only
            body["message"] = "internal error"
        return status, body
    if isinstance(e, HTTPException):
        status = e.code or 500
        code = HTTP_CODES.get(status, "http_error")
        sqlstate = {413: "54000", 401: "28000"}.get(status, "08P01" if status < 500 else "XX000")
        return status, {"code": code, "message": e.description or e.name, "sqlstate": sqlstate}
    incident = uuid.uuid4().hex[:12]
    log.exception("unexpected error (incident %s) on %s %s", incident, request.method, request.path)
    return 500, {"code": "internal", "message": f"internal server error (incident {incident})",
                 "sqlstate": "XX000"}


def error_response(e: BaseException) -> Response:
    """The response for an error: JSON, or an HTML page for a browser asking for a dictionary page."""
    status, body = describe(e)
    metrics = request_metrics()
    if metrics is not None:
        metrics.error(body["code"])
    if _wants_html():
        platform = current_app.extensions["quanta.platform"]
        response = Response(render_template("error.html", status=status, error=body, mesh=platform.mesh.name),
                            status=status, mimetype="text/html")
    else:
        response = jsonify({"error": body})
        response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="quanta"'
    if status == 429:
        response.headers["Retry-After"] = str(getattr(e, "retry_after", 1))
    return response


def _wants_html() -> bool:
    if request.path.startswith("/api/") or request.path in ("/metrics", "/healthz", "/readyz"):
        return False
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def request_metrics():
    return current_app.extensions.get("quanta.metrics")


def register(app: Flask) -> None:
    """Install the one error handler for every exception the app can raise."""
    app.register_error_handler(Exception, error_response)
