"""Quanta's HTTP service: the query endpoint, the open dictionary (JSON API and HTML pages) and the
observability endpoints, as one Flask application served by waitress.

    from federation.server.http import create_app, Server
    app = create_app(Platform.open("catalogs/greatparts"))
    with Server(app, port=0) as server:      # waitress, multi-threaded, on 127.0.0.1
        print(server.url)

Modules: ``app`` (the factory), ``errors`` (the one JSON error handler), ``auth`` (bearer tokens),
``query_api`` (``POST /api/v1/query``), ``encoders`` (JSON, CSV, NDJSON, Arrow streams),
``dictionary`` (the dictionary read from the ``system.*`` tables), ``dictionary_api`` and ``pages``
(its JSON and HTML views), ``lineage_svg``, ``observability`` and ``metrics`` (health and Prometheus),
``openapi`` (the API description) and ``serve`` (waitress).
"""

from .app import create_app
from .serve import Server, serve

__all__ = ["create_app", "Server", "serve"]
