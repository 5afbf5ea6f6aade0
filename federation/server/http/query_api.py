"""``POST /api/v1/query``: run SQL for the token's principal through the platform's one pipeline.

Request: ``{"sql": "...", "parameters": [...] | {...}, "purpose": "...", "max_rows": n, "timeout": s,
"format": "json|csv|ndjson|arrow"}`` with ``Authorization: Bearer <token>``. The answer's format comes
from ``format`` or the ``Accept`` header:

* ``application/json`` (default): columns (name, type), rows, policies, warnings, and ``truncated``
  when the result had more than ``max_rows`` rows (capped by the app's ``QUANTA_MAX_ROWS``);
* ``text/csv``, ``application/x-ndjson``, ``application/vnd.apache.arrow.stream``: streamed batch by
  batch as the engine produces them; the applied policies and warnings are in the ``X-Quanta-Policies``
  and ``X-Quanta-Warnings`` headers (JSON). An error before the first batch is a JSON error; an error
  later ends the stream early (NDJSON writes a last ``{"error": ...}`` line first).

No policy is decided here: ``platform.query`` authorizes, rewrites and audits every query.
"""

from __future__ import annotations

import json
import logging
import time

from flask import Blueprint, Response, current_app, request

from ... import errors
from .auth import current_principal
from .encoders import ARROW, CSV, FORMATS, JSON, NDJSON, arrow_stream, column_info, csv_stream, dumps, \
    ndjson_stream, take_rows
from .errors import ApiError, describe

log = logging.getLogger("federation.server.http")

bp = Blueprint("query", __name__)

STREAMS = {CSV: csv_stream, NDJSON: ndjson_stream, ARROW: arrow_stream}
MIMETYPES = {JSON: "application/json", CSV: "text/csv", NDJSON: "application/x-ndjson",
             ARROW: ARROW}


def outcome(e: BaseException | None) -> str:
    """The ``status`` label of a finished query for the metrics."""
    if e is None:
        return "ok"
    if isinstance(e, errors.AuthenticationError):
        return "unauthenticated"
    if isinstance(e, (errors.AccessDenied, errors.StatementRefused)):
        return "denied"
    if isinstance(e, errors.QueryTimeout):
        return "timeout"
    if isinstance(e, errors.QueryCancelled):
        return "cancelled"
    if isinstance(e, (errors.Error, ApiError)):
        return "error"
    return "failed"


def read_body() -> dict:
    """The JSON body of a query request, checked (400 for malformed JSON or wrong field types)."""
    if not request.content_length and not request.get_data(cache=True):
        raise ApiError(400, "bad_request", "the request body must be a JSON object with a 'sql' field")
    try:
        body = json.loads(request.get_data(cache=True))
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "malformed_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "bad_request", "the request body must be a JSON object")
    sql = body.get("sql")
    if not isinstance(sql, str) or not sql.strip():
        raise ApiError(400, "bad_request", "'sql' must be a non-empty string")
    params = body.get("parameters", body.get("params"))
    if params is not None and not isinstance(params, (list, dict)):
        raise ApiError(400, "bad_request", "'parameters' must be a list or an object")
    purpose = body.get("purpose")
    if purpose is not None and not isinstance(purpose, str):
        raise ApiError(400, "bad_request", "'purpose' must be a string")
    for key in ("max_rows", "timeout"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0):
            raise ApiError(400, "bad_request", f"'{key}' must be a positive number")
    fmt = body.get("format")
    if fmt is not None and fmt not in FORMATS:
        raise ApiError(400, "bad_request", f"'format' must be one of {', '.join(FORMATS)}")
    return body


def negotiate(body: dict) -> str:
    """The answer's media type: the body's ``format``, else the best ``Accept`` match, else JSON."""
    if body.get("format"):
        return FORMATS[body["format"]]
    if not request.headers.get("Accept"):
        return JSON
    best = request.accept_mimetypes.best_match([JSON, CSV, NDJSON, ARROW])
    if best is None:
        raise ApiError(406, "not_acceptable", f"the query endpoint answers {', '.join([JSON, CSV, NDJSON, ARROW])}")
    return best


def _timeout(body: dict) -> float | None:
    configured = current_app.config.get("QUANTA_QUERY_TIMEOUT")
    asked = body.get("timeout")
    if asked is None:
        return configured
    return min(float(asked), configured) if configured else float(asked)


@bp.post("/api/v1/query")
def query() -> Response:
    """Run one query; see the module's docstring for the request and the answers."""
    principal = current_principal()
    body = read_body()
    media = negotiate(body)
    platform = current_app.extensions["quanta.platform"]
    metrics = current_app.extensions["quanta.metrics"]
    event_bus = current_app.extensions["quanta.events"]
    cap = int(current_app.config["QUANTA_MAX_ROWS"])
    max_rows = min(int(body.get("max_rows") or cap), cap)

    started = time.perf_counter()
    metrics.query_started()
    finished = False

    def finish(error: BaseException | None, rows: int) -> None:
        nonlocal finished
        if not finished:
            finished = True
            metrics.query_finished(outcome(error), time.perf_counter() - started, rows)
            event_bus.publish()  # the query is in the audit log: wake the event streams

    try:
        result = platform.query(body["sql"], principal, body.get("parameters", body.get("params")),
                                timeout=_timeout(body), purpose=body.get("purpose"), interface="http")
    except BaseException as e:
        finish(e, 0)
        raise
    headers = {"X-Quanta-Policies": json.dumps(list(result.policies), separators=(",", ":")),
               "X-Quanta-Warnings": json.dumps(list(result.warnings), separators=(",", ":")),
               "X-Quanta-Column-Types": json.dumps(result.types, separators=(",", ":")),
               "Cache-Control": "no-store"}

    if media == JSON:
        try:
            rows, truncated = take_rows(result.record_batches(), max_rows)
        except BaseException as e:
            finish(e, 0)
            raise
        finally:
            result.close()
        finish(None, len(rows))
        payload = {"columns": column_info(result.schema), "rows": rows, "row_count": len(rows),
                   "truncated": truncated, "max_rows": max_rows, "policies": list(result.policies),
                   "warnings": list(result.warnings)}
        return Response(dumps(payload), status=200, mimetype="application/json", headers=headers)

    reader = result.record_batches()
    try:  # the first batch before the answer starts, so that most errors are still a JSON error
        first = reader.read_next_batch()
    except StopIteration:
        first = None
    except BaseException as e:
        result.close()
        finish(e, 0)
        raise

    def batches():
        if first is not None:
            yield first
        yield from reader

    encode = STREAMS[media]

    def stream():
        error: BaseException | None = None
        try:
            yield from encode(result.schema, batches())
        except GeneratorExit:  # the client went away: stop the engine
            error = errors.QueryCancelled("the client closed the connection")
            result.cancel()
            raise
        except BaseException as e:
            error = e
            status, info = describe(e) if isinstance(e, errors.Error) else (500, {"code": "internal"})
            log.warning("query stream ended early: %s (%s)", info.get("code"), status)
            if media == NDJSON and isinstance(e, errors.Error):
                yield (dumps({"error": e.to_dict()}) + "\n").encode("utf-8")
            raise StreamAborted(info.get("code", "internal")) from None
        finally:
            result.close()
            finish(error, result.rows_read)

    response = Response(stream(), status=200, mimetype=MIMETYPES[media], headers=headers, direct_passthrough=True)

    @response.call_on_close
    def _release() -> None:  # also when the server closes the answer without reading it
        result.close()
        finish(result.error, result.rows_read)

    return response


class StreamAborted(Exception):
    """Raised inside a streamed answer to make the server drop the connection: the client sees an
    incomplete response instead of a complete-looking one."""
