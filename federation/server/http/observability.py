"""Health, readiness and Prometheus metrics.

    GET /healthz    the process answers (no engine work)
    GET /readyz     the mesh is loaded and the engine answers a query; 503 otherwise
    GET /metrics    Prometheus text format (see ``metrics``)
"""

from __future__ import annotations

from flask import Blueprint, Response, current_app, jsonify

bp = Blueprint("observability", __name__)


@bp.get("/healthz")
def healthz():
    """Liveness: the server is up."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz():
    """Readiness: the mesh is loaded and the engine runs a query."""
    platform = current_app.extensions["quanta.platform"]
    mesh = platform.mesh
    body = {"mesh": mesh.name, "quanta": len(mesh.quanta), "excluded": sorted(mesh.excluded),
            "load_seconds": round(platform.state.load_seconds, 3), "state": platform.state.serial,
            # a reload that failed: the last good state serves, and these say why
            "reload_problems": [str(p) for p in platform.reload_problems]}
    try:
        result = platform.query("select count(*) from system.quanta", platform.principal(None), interface="http")
        result.fetchall()
    except Exception as e:  # noqa: BLE001 - any failure means not ready
        current_app.logger.warning("not ready: %s", e)
        return jsonify({**body, "status": "unavailable"}), 503
    return jsonify({**body, "status": "ready"})


@bp.get("/metrics")
def metrics():
    """Prometheus metrics."""
    return Response(current_app.extensions["quanta.metrics"].render(),
                    mimetype="text/plain", headers={"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
