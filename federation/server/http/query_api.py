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

No policy is decided here: ``platform.query`` authorizes, rewrites and audits every query, and applies
the server's limits: ``timeout`` (a finite number of seconds above 0, else 400) may lower the mesh's
``query_timeout_seconds``, never raise it; a principal running too many queries at once gets 429 (with
``Retry-After``); a query over ``max_sql_bytes`` / ``max_sql_depth`` gets 400 (``too_complex``). A client
that disconnects cancels its query (``disconnects.py``).
"""

from __future__ import annotations

import json
import logging
import math
import time

from flask import Blueprint, Response, current_app, request

from ... import errors
from ...admission import check_timeout
from ...platform import Cancellation
from . import disconnects
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
    if isinstance(e, errors.TooManyQueries):
        return "throttled"
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
    rows = body.get("max_rows")
    if rows is not None and (isinstance(rows, bool) or not isinstance(rows, (int, float)) or not math.isfinite(rows)
                             or rows < 1 or rows != int(rows)):
        raise ApiError(400, "bad_request", f"'max_rows' must be a whole number of rows above 0, not {rows!r}"[:200])
    if body.get("timeout") is not None:
        try:  # the platform applies it (lowering the mesh's limit, never raising it); checked here for a 400
            check_timeout(body["timeout"], "timeout")
        except errors.InvalidParameter as e:
            raise ApiError(400, "bad_request", e.message, e.sqlstate) from None
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
    """The time-out asked for this query: the body's, lowered by the app's ``QUANTA_QUERY_TIMEOUT``; the
    platform lowers it again to the mesh's ``query_timeout_seconds``."""
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

    cancel = Cancellation()
    watch = disconnects.start(request.environ, cancel)  # a client that goes away cancels its query
    try:
        result = platform.query(body["sql"], principal, body.get("parameters", body.get("params")),
                                timeout=_timeout(body), purpose=body.get("purpose"), interface="http", cancel=cancel)
    except BaseException as e:
        disconnects.stop(watch)
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
            disconnects.stop(watch)
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
        disconnects.stop(watch)
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
            disconnects.stop(watch)
            result.close()
            finish(error, result.rows_read)

    response = Response(stream(), status=200, mimetype=MIMETYPES[media], headers=headers, direct_passthrough=True)

    @response.call_on_close
    def _release() -> None:  # also when the server closes the answer without reading it
        disconnects.stop(watch)
        result.close()
        finish(result.error, result.rows_read)

    return response


class StreamAborted(Exception):
    """Raised inside a streamed answer to make the server drop the connection: the client sees an
    incomplete response instead of a complete-looking one."""
