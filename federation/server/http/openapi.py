"""The OpenAPI 3.1 description of the HTTP service, served at ``/api/v1/openapi.json``.

Written by hand as a dict; a test validates it and checks that every route of the app is in it.
"""

from __future__ import annotations

from flask import Blueprint, jsonify

bp = Blueprint("openapi", __name__)

_ERROR = {"$ref": "#/components/responses/Error"}


def _json(schema: dict, description: str = "OK") -> dict:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _html(description: str) -> dict:
    return {"description": description, "content": {"text/html": {"schema": {"type": "string"}}}}


def _path_param(name: str, description: str) -> dict:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


_Q = {"name": "q", "in": "query", "required": False, "description": "Words to search for (all must match).",
      "schema": {"type": "string"}}
_QUANTUM = _path_param("quantum", "The quantum's name.")
_DATASET = _path_param("dataset", "The dataset's name in its quantum.")
_OBJ = {"type": "object", "additionalProperties": True}
_QUARANTINE = _path_param("quarantine_id", "A quarantine batch: <quantum>.<dataset>.v<N>.")

SPEC: dict = {
    "openapi": "3.1.0",
    "info": {
        "title": "Quanta HTTP API",
        "version": "1.0.0",
        "description": "SQL over a mesh of data quanta, governed on every query; and the mesh's open dictionary.",
        "license": {"name": "Apache-2.0", "identifier": "Apache-2.0"},
    },
    "servers": [{"url": "/"}],
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                       "description": "A token from `quanta token create USER`, or a JWT of an "
                                                      "identity provider the governance declares (`issuers`)."}},
        "schemas": {
            "Error": {"type": "object", "required": ["error"], "properties": {"error": {
                "type": "object", "required": ["code", "message", "sqlstate"], "properties": {
                    "code": {"type": "string", "description": "A stable error code (unauthenticated, "
                             "access_denied, syntax_error, timeout, ...)."},
                    "message": {"type": "string"},
                    "sqlstate": {"type": "string", "description": "The PostgreSQL SQLSTATE."},
                    "line": {"type": "integer"}, "column": {"type": "integer"}}}}},
            "QueryRequest": {"type": "object", "required": ["sql"], "properties": {
                "sql": {"type": "string", "description": "One read-only SQL statement (DuckDB dialect)."},
                "parameters": {"oneOf": [{"type": "array"}, {"type": "object"}],
                               "description": "Values for `?` (a list) or `$name` (an object) placeholders."},
                "purpose": {"type": "string", "description": "Why the data is read (contracts may limit purposes)."},
                "max_rows": {"type": "integer", "minimum": 1, "description": "JSON answers: a lower row cap."},
                "timeout": {"type": "number", "exclusiveMinimum": 0, "description": "Seconds (at most the server's)."},
                "format": {"type": "string", "enum": ["json", "csv", "ndjson", "arrow"],
                           "description": "Overrides the Accept header."}}},
            "QueryResult": {"type": "object", "required": ["columns", "rows", "truncated"], "properties": {
                "columns": {"type": "array", "items": {"type": "object", "properties": {
                    "name": {"type": "string"}, "type": {"type": "string"}}}},
                "rows": {"type": "array", "items": {"type": "array"}},
                "row_count": {"type": "integer"},
                "truncated": {"type": "boolean", "description": "True when the result had more than max_rows rows."},
                "max_rows": {"type": "integer"},
                "policies": {"type": "array", "items": _OBJ},
                "warnings": {"type": "array", "items": {"type": "string"}}}},
        },
        "responses": {"Error": {"description": "An error", "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}},
    },
    "paths": {
        "/api/v1/query": {"post": {
            "summary": "Run a SQL query as the token's principal",
            "operationId": "query",
            "security": [{"bearer": []}],
            "requestBody": {"required": True, "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/QueryRequest"}}}},
            "responses": {
                "200": {"description": "The result, in the format asked by `Accept` or `format`. Streamed "
                                       "formats carry the policies and warnings in the X-Quanta-Policies and "
                                       "X-Quanta-Warnings headers (JSON).",
                        "headers": {"X-Quanta-Policies": {"schema": {"type": "string"}},
                                    "X-Quanta-Warnings": {"schema": {"type": "string"}}},
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/QueryResult"}},
                            "text/csv": {"schema": {"type": "string"}},
                            "application/x-ndjson": {"schema": {"type": "string"}},
                            "application/vnd.apache.arrow.stream": {"schema": {"type": "string",
                                                                               "format": "binary"}}}},
                "400": _ERROR, "401": _ERROR, "403": _ERROR, "406": _ERROR, "413": _ERROR, "504": _ERROR,
                "500": _ERROR, "503": _ERROR}}},
        "/api/v1/domains": {"get": {"summary": "Domains and their quanta", "operationId": "domains",
                                    "responses": {"200": _json(_OBJ)}}},
        "/api/v1/quanta": {"get": {"summary": "List or search quanta", "operationId": "listQuanta",
                                   "parameters": [_Q], "responses": {"200": _json(_OBJ)}}},
        "/api/v1/quanta/{quantum}": {"get": {
            "summary": "One quantum: datasets, ports, contracts", "operationId": "getQuantum",
            "parameters": [_QUANTUM], "responses": {"200": _json(_OBJ), "404": _ERROR}}},
        "/api/v1/datasets": {"get": {"summary": "List or search datasets", "operationId": "listDatasets",
                                     "parameters": [_Q], "responses": {"200": _json(_OBJ)}}},
        "/api/v1/datasets/{quantum}/{dataset}": {"get": {
            "summary": "One dataset: columns, classification, contract, lineage, quality, SLOs, examples (quality "
                       "results, SLO status and versions with a token of a principal who may read it)",
            "operationId": "getDataset", "parameters": [_QUANTUM, _DATASET],
            "responses": {"200": _json(_OBJ), "401": _ERROR, "404": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/access": {"get": {
            "summary": "My access: each column visible, masked or denied for the token's principal",
            "operationId": "myAccess", "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "responses": {"200": _json(_OBJ), "401": _ERROR, "404": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/access-requests": {"post": {
            "summary": "Ask for read access to a dataset", "operationId": "requestAccess",
            "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"purpose": {"type": "string"},
                                                 "days": {"type": "integer", "minimum": 1, "maximum": 366}}}}}},
            "responses": {"201": _json(_OBJ, "The pending request"), "400": _ERROR, "401": _ERROR,
                          "403": _ERROR, "404": _ERROR}}},
        "/api/v1/access-requests": {"get": {
            "summary": "My access requests, and those I may approve", "operationId": "listAccessRequests",
            "security": [{"bearer": []}], "responses": {"200": _json(_OBJ), "401": _ERROR}}},
        "/api/v1/access-requests/{request_id}/approve": {"post": {
            "summary": "Approve a pending access request: a grant with an expiry", "operationId": "approveAccess",
            "security": [{"bearer": []}],
            "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"},
                            "description": "The request's id."}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"days": {"type": "integer", "minimum": 1, "maximum": 366}}}}}},
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/access-requests/{request_id}/deny": {"post": {
            "summary": "Deny a pending access request", "operationId": "denyAccess",
            "security": [{"bearer": []}],
            "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"},
                            "description": "The request's id."}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"reason": {"type": "string"}}}}}},
            "responses": {"200": _json(_OBJ), "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/access-requests/{request_id}/revoke": {"post": {
            "summary": "Revoke an approved access request's grant, at once", "operationId": "revokeAccess",
            "security": [{"bearer": []}],
            "parameters": [{"name": "request_id", "in": "path", "required": True, "schema": {"type": "integer"},
                            "description": "The request's id."}],
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"reason": {"type": "string"}}}}}},
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/webhook-deliveries": {"get": {
            "summary": "The mesh's webhook deliveries: event, hook, status, attempts, last answer (auditors and "
                       "data engineers)", "operationId": "listWebhookDeliveries", "security": [{"bearer": []}],
            "parameters": [{"name": "status", "in": "query", "required": False, "schema": {
                "type": "string", "enum": ["pending", "delivered", "dead"]}}],
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/versions": {
            "get": {"summary": "The dataset's versions (for principals who may read it)", "operationId": "listVersions",
                    "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
                    "responses": {"200": _json(_OBJ), "401": _ERROR, "400": _ERROR, "403": _ERROR}},
            "post": {"summary": "Onboard a batch as a new version (upload, or a path the server may read)",
                     "operationId": "onboard", "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
                     "requestBody": {"required": True, "content": {
                         "multipart/form-data": {"schema": {"type": "object", "properties": {
                             "file": {"type": "string", "format": "binary"}, "quarantine": {"type": "boolean"},
                             "strict": {"type": "boolean"}}}},
                         "application/json": {"schema": {"type": "object", "properties": {
                             "path": {"type": "string"}, "quarantine": {"type": "boolean"},
                             "strict": {"type": "boolean"}}}}}},
                     "responses": {"201": _json(_OBJ, "Published"), "422": _json(_OBJ, "Refused, with the report"),
                                   "400": _ERROR, "401": _ERROR, "403": _ERROR, "413": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/quality/samples": {"get": {
            "summary": "The rules that failed at the latest check, each with failing rows read as the token's "
                       "principal (their grant, masks and row filters)", "operationId": "qualitySamples",
            "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "responses": {"200": _json(_OBJ), "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/checks": {"post": {
            "summary": "Run the dataset's quality rules now", "operationId": "runChecks",
            "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/rules": {"put": {
            "summary": "Replace the dataset's quality rules", "operationId": "replaceRules",
            "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "array", "items": {"type": "object"}}}}},
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/api/v1/datasets/{quantum}/{dataset}/rollback": {"post": {
            "summary": "Serve an earlier version again", "operationId": "rollback",
            "security": [{"bearer": []}], "parameters": [_QUANTUM, _DATASET],
            "requestBody": {"required": True, "content": {"application/json": {"schema": {
                "type": "object", "required": ["version"], "properties": {"version": {"type": "integer"}}}}}},
            "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR}}},
        "/api/v1/quarantine": {"get": {
            "summary": "Quarantine batches of the datasets whose control plane the token's principal runs (rule "
                       "names and counts)", "operationId": "listQuarantine", "security": [{"bearer": []}],
            "parameters": [{"name": "dataset", "in": "query", "required": False, "schema": {"type": "string"},
                            "description": "Only this dataset (<quantum>.<dataset>)."},
                           {"name": "all", "in": "query", "required": False, "schema": {"type": "boolean"},
                            "description": "Released and dropped batches too."}],
            "responses": {"200": _json(_OBJ), "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/quarantine/{quarantine_id}": {
            "get": {"summary": "A quarantine batch and its rows, read as the token's principal (masks, row filters)",
                    "operationId": "showQuarantine", "security": [{"bearer": []}], "parameters": [_QUARANTINE, {
                        "name": "limit", "in": "query", "required": False, "schema": {"type": "integer"},
                        "description": "At most this many rows."}],
                    "responses": {"200": _json(_OBJ), "400": _ERROR, "401": _ERROR, "403": _ERROR, "404": _ERROR}},
            "delete": {"summary": "Drop a quarantine batch (recorded as an event)", "operationId": "dropQuarantine",
                       "security": [{"bearer": []}], "parameters": [_QUARANTINE],
                       "responses": {"200": _json(_OBJ), "401": _ERROR, "403": _ERROR, "404": _ERROR,
                                     "409": _ERROR}}},
        "/api/v1/quarantine/{quarantine_id}/release": {"post": {
            "summary": "Re-check a quarantine batch; publish the rows that pass as a new version",
            "operationId": "releaseQuarantine", "security": [{"bearer": []}], "parameters": [_QUARANTINE],
            "responses": {"201": _json(_OBJ, "Published"), "409": _ERROR, "422": _json(_OBJ, "Refused, with the report"),
                          "401": _ERROR, "403": _ERROR, "404": _ERROR}}},
        "/api/v1/contracts/{contract_id}": {"get": {
            "summary": "The ODCS contract file (YAML)", "operationId": "getContract",
            "parameters": [_path_param("contract_id", "The contract's id.")],
            "responses": {"200": {"description": "The contract", "content": {
                "application/yaml": {"schema": {"type": "string"}}}}, "404": _ERROR}}},
        "/api/v1/search": {"get": {
            "summary": "Search datasets and quanta (names, descriptions, tags, domains, column names)",
            "operationId": "search", "parameters": [{**_Q, "required": True}],
            "responses": {"200": _json(_OBJ), "400": _ERROR}}},
        "/api/v1/events": {"get": {
            "summary": "Server-Sent Events: the queries the token's principal may see in system.query_log",
            "operationId": "events", "security": [{"bearer": []}],
            "parameters": [
                {"name": "since", "in": "query", "required": False, "schema": {"type": "integer"},
                 "description": "Send the queries after this query id (default: from now; or Last-Event-ID)."},
                {"name": "max_seconds", "in": "query", "required": False,
                 "schema": {"type": "number", "exclusiveMinimum": 0, "maximum": 3600},
                 "description": "End the stream after this many seconds (default 300)."}],
            "responses": {"200": {"description": "`event: query` with the query_log entry as JSON data",
                                  "content": {"text/event-stream": {"schema": {"type": "string"}}}},
                          "400": _ERROR, "401": _ERROR, "503": _ERROR}}},
        "/api/v1/openapi.json": {"get": {"summary": "This description", "operationId": "openapi",
                                         "responses": {"200": _json(_OBJ)}}},
        "/": {"get": {"summary": "HTML: the mesh's home page", "operationId": "homePage",
                      "responses": {"200": _html("The home page")}}},
        "/quanta/{quantum}": {"get": {"summary": "HTML: a quantum's page", "operationId": "quantumPage",
                                      "parameters": [_QUANTUM],
                                      "responses": {"200": _html("The quantum's page"), "404": _ERROR}}},
        "/quanta/{quantum}/{dataset}": {"get": {"summary": "HTML: a dataset's page", "operationId": "datasetPage",
                                                "parameters": [_QUANTUM, _DATASET],
                                                "responses": {"200": _html("The dataset's page"), "404": _ERROR}}},
        "/quanta/{quantum}/{dataset}/access-requests": {"post": {
            "summary": "HTML: the dataset page's request-access form (the token is a form field)",
            "operationId": "requestAccessForm", "parameters": [_QUANTUM, _DATASET],
            "requestBody": {"required": True, "content": {"application/x-www-form-urlencoded": {"schema": {
                "type": "object", "required": ["token"], "properties": {
                    "token": {"type": "string"}, "purpose": {"type": "string"}, "days": {"type": "integer"}}}}}},
            "responses": {"200": _html("The dataset's page, with the request's outcome"),
                          "400": _html("The page, with what is wrong"), "401": _html("The page: no valid token"),
                          "404": _ERROR}}},
        "/search": {"get": {"summary": "HTML: search the dictionary", "operationId": "searchPage",
                            "parameters": [_Q], "responses": {"200": _html("The search page")}}},
        "/healthz": {"get": {"summary": "Liveness", "operationId": "healthz", "responses": {"200": _json(_OBJ)}}},
        "/readyz": {"get": {"summary": "Readiness: the mesh is loaded and the engine answers",
                            "operationId": "readyz", "responses": {"200": _json(_OBJ), "503": _json(_OBJ)}}},
        "/metrics": {"get": {"summary": "Prometheus metrics", "operationId": "metrics", "responses": {
            "200": {"description": "Text format 0.0.4", "content": {"text/plain": {"schema": {"type": "string"}}}}}}},
    },
}


@bp.get("/api/v1/openapi.json")
def openapi():
    """The OpenAPI description."""
    return jsonify(SPEC)
