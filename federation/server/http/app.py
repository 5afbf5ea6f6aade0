"""The application factory: ``create_app(platform, config)`` builds the Flask app of the HTTP service.

One app per platform, with a blueprint per area (query, dictionary API, HTML dictionary,
observability, OpenAPI) and one JSON error handler. Configuration (``config`` overrides):

    QUANTA_MAX_ROWS         rows in a JSON answer before it is truncated (10,000)
    QUANTA_QUERY_TIMEOUT    seconds a query may run, below the mesh's ``query_timeout_seconds`` (None: the mesh's)
    MAX_CONTENT_LENGTH      the largest request body, in bytes (1 MiB; larger is a 413)
    QUANTA_EVENT_SUBSCRIBERS  event streams open at once (4; each holds a server thread)
    QUANTA_MAX_UPLOAD       the largest onboarding upload, in bytes (1 GiB)
    QUANTA_ONBOARD_FOLDERS  folders whose files the control plane may onboard by path (none)
"""

from __future__ import annotations

import time
from pathlib import Path

from flask import Flask, g, request

from ...platform import Platform
from . import errors
from .dictionary import Dictionary
from .encoders import jsonable
from .metrics import Metrics

PACKAGE = Path(__file__).resolve().parent.parent  # federation/server

DEFAULTS = {
    "QUANTA_MAX_ROWS": 10_000,
    "QUANTA_QUERY_TIMEOUT": None,
    "MAX_CONTENT_LENGTH": 1 << 20,
    "QUANTA_EVENT_SUBSCRIBERS": 4,
    "QUANTA_MAX_UPLOAD": 1 << 30,  # an onboarding upload (the control plane), in bytes
    "QUANTA_ONBOARD_FOLDERS": [],  # folders whose files the control plane may onboard by path
    "JSON_SORT_KEYS": False,
}


def create_app(platform: Platform, config: dict | None = None) -> Flask:
    """The Flask app serving ``platform``: query endpoint, dictionary (JSON and HTML), observability."""
    from . import access_api, control_api, dictionary_api, events, observability, openapi, pages, query_api

    app = Flask("federation.server.http", template_folder=str(PACKAGE / "templates"),
                static_folder=str(PACKAGE / "static"), static_url_path="/static")
    app.config.update(DEFAULTS)
    app.config.update(config or {})
    app.json.sort_keys = False
    app.json.default = jsonable  # ISO 8601 times and exact decimals in every JSON answer
    app.extensions["quanta.platform"] = platform
    app.extensions["quanta.dictionary"] = Dictionary(platform)
    app.extensions["quanta.metrics"] = metrics = Metrics()
    app.extensions["quanta.events"] = events.EventBus(int(app.config["QUANTA_EVENT_SUBSCRIBERS"]))

    for blueprint in (query_api.bp, dictionary_api.bp, access_api.bp, control_api.bp, events.bp, pages.bp,
                      observability.bp, openapi.bp):
        app.register_blueprint(blueprint)
    errors.register(app)

    @app.before_request
    def _start_clock() -> None:
        g.started = time.perf_counter()

    @app.after_request
    def _count(response):
        endpoint = request.url_rule.rule if request.url_rule is not None else "unmatched"
        metrics.request(endpoint, request.method, response.status_code)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        return response

    return app
