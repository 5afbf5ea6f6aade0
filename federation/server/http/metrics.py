"""Prometheus metrics of the HTTP service, kept in memory and written in the text exposition format.

Counters and one histogram, guarded by a lock; no client library needed:

    quanta_queries_total{status}           queries by outcome (ok, error, denied, timeout, ...)
    quanta_query_duration_seconds          latency histogram, from the request to the last byte
    quanta_query_rows_total                rows sent
    quanta_queries_in_flight               queries running now
    quanta_errors_total{code}              error answers by code
    quanta_http_requests_total{endpoint,method,status}
"""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)


def _labels(pairs: tuple[tuple[str, str], ...]) -> str:
    if not pairs:
        return ""
    esc = lambda v: str(v).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")  # noqa: E731
    return "{" + ",".join(f'{k}="{esc(v)}"' for k, v in pairs) + "}"


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.queries: dict[str, int] = defaultdict(int)
        self.errors: dict[str, int] = defaultdict(int)
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.rows = 0
        self.in_flight = 0
        self.buckets = [0] * len(BUCKETS)
        self.duration_sum = 0.0
        self.duration_count = 0

    def query_started(self) -> None:
        with self._lock:
            self.in_flight += 1

    def query_finished(self, status: str, seconds: float, rows: int) -> None:
        with self._lock:
            self.in_flight -= 1
            self.queries[status] += 1
            self.rows += rows
            self.duration_sum += seconds
            self.duration_count += 1
            for i, le in enumerate(BUCKETS):
                if seconds <= le:
                    self.buckets[i] += 1

    def error(self, code: str) -> None:
        with self._lock:
            self.errors[code] += 1

    def request(self, endpoint: str, method: str, status: int) -> None:
        with self._lock:
            self.requests[(endpoint, method, status)] += 1

    def render(self) -> str:
        """The metrics in Prometheus' text format (version 0.0.4)."""
        with self._lock:
            out: list[str] = []

            def family(name: str, kind: str, help_: str, samples: list[tuple[str, tuple, float]]) -> None:
                out.append(f"# HELP {name} {help_}")
                out.append(f"# TYPE {name} {kind}")
                for sample, labels, value in samples:
                    out.append(f"{sample}{_labels(labels)} {value:g}" if isinstance(value, float)
                               else f"{sample}{_labels(labels)} {value}")

            family("quanta_queries_total", "counter", "Queries answered over HTTP, by outcome.",
                   [("quanta_queries_total", (("status", s),), n) for s, n in sorted(self.queries.items())])
            cumulative = []
            for le, n in zip(BUCKETS, self.buckets):
                cumulative.append(("quanta_query_duration_seconds_bucket", (("le", f"{le:g}"),), n))
            cumulative.append(("quanta_query_duration_seconds_bucket", (("le", "+Inf"),), self.duration_count))
            cumulative.append(("quanta_query_duration_seconds_sum", (), float(self.duration_sum)))
            cumulative.append(("quanta_query_duration_seconds_count", (), self.duration_count))
            family("quanta_query_duration_seconds", "histogram",
                   "Query latency over HTTP, from the request to the last byte sent.", cumulative)
            family("quanta_query_rows_total", "counter", "Rows sent in query results.",
                   [("quanta_query_rows_total", (), self.rows)])
            family("quanta_queries_in_flight", "gauge", "Queries running now.",
                   [("quanta_queries_in_flight", (), self.in_flight)])
            family("quanta_errors_total", "counter", "Error answers, by error code.",
                   [("quanta_errors_total", (("code", c),), n) for c, n in sorted(self.errors.items())])
            family("quanta_http_requests_total", "counter", "HTTP requests, by endpoint, method and status.",
                   [("quanta_http_requests_total", (("endpoint", e), ("method", m), ("status", str(s))), n)
                    for (e, m, s), n in sorted(self.requests.items())])
            return "\n".join(out) + "\n"
