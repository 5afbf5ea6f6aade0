"""The Python client of Quanta's HTTP service, for notebooks and applications.

    from federation.client import Client
    c = Client("http://127.0.0.1:8080", token)
    c.sql("select region, sum(amount) from sales.orders group by 1").pl()
    c.search("customer email")                    # the open dictionary
    c.my_access("customers", "customers")         # what this token may see, column by column

``sql()`` returns a ``federation.Result`` (the same class as in-process: ``.arrow()``, ``.pl()``,
``.df()``, ``.record_batches()``, ``.fetchall()``, ``.columns``, ``.policies``, ``.warnings``), read from
the server's Arrow stream as it arrives. Errors raise the same ``federation.errors`` classes as
in-process, chosen by the stable error code of the server's JSON error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterator, Sequence

import pyarrow as pa

from . import errors
from .result import Result

ARROW = "application/vnd.apache.arrow.stream"


def _error_classes() -> dict[str, type[errors.Error]]:
    classes: dict[str, type[errors.Error]] = {}
    stack = [errors.Error]
    while stack:
        cls = stack.pop()
        classes.setdefault(cls.code, cls)
        stack.extend(cls.__subclasses__())
    return classes


ERROR_CLASSES = _error_classes()
HTTP_ERRORS = {"not_found": errors.ProgrammingError, "bad_request": errors.InterfaceError,
               "malformed_json": errors.InterfaceError, "payload_too_large": errors.InterfaceError,
               "not_acceptable": errors.InterfaceError, "method_not_allowed": errors.InterfaceError,
               "internal": errors.InternalError}


def error_from(status: int, body: Any) -> errors.Error:
    """The ``federation.errors`` exception of a JSON error answer."""
    info = body.get("error") if isinstance(body, dict) else None
    if not isinstance(info, dict):
        return errors.OperationalError(f"the server answered HTTP {status}")
    code = str(info.get("code", "error"))
    cls = ERROR_CLASSES.get(code) or HTTP_ERRORS.get(code) or (
        errors.InternalError if status >= 500 else errors.InterfaceError)
    position = (info["line"], info["column"]) if "line" in info and "column" in info else None
    if cls is errors.CatalogError:
        return errors.CatalogError(info.get("message", ""))
    err = cls(info.get("message", f"HTTP {status}"), position=position)
    if err.code != code:  # an HTTP-level code: keep it as the server said it
        err.code = code
    err.status = status  # type: ignore[attr-defined]
    return err


@dataclass
class RemotePlan:
    """What the server said about a query (the ``plan`` of a remote ``Result``)."""

    policies: tuple[dict, ...] = ()
    warnings: tuple[str, ...] = ()
    datasets: tuple[tuple[str, str], ...] = field(default_factory=tuple)


class RemoteExecution:
    """The HTTP answer of a query, read as an Arrow IPC stream: the engine side of a remote ``Result``
    (the same protocol as the engine's executions: ``reader()``, ``close()``, ``cancel()``)."""

    def __init__(self, response):
        self.response = response
        self._reading = False
        try:
            self._ipc = pa.ipc.open_stream(response.raw)
        except Exception as e:
            response.close()
            raise errors.OperationalError(f"the server's answer is not an Arrow stream: {e}") from None

    def reader(self) -> pa.RecordBatchReader:
        self._reading = True
        return pa.RecordBatchReader.from_batches(self._ipc.schema, self._batches())

    def _batches(self) -> Iterator[pa.RecordBatch]:
        try:
            while True:
                try:
                    batch = self._ipc.read_next_batch()
                except StopIteration:
                    return
                except Exception as e:  # the server ended the stream early (a failure after the first batch)
                    raise errors.OperationalError(f"the result stream ended early: {type(e).__name__}") from None
                yield batch
        finally:
            self.response.close()

    def close(self, *args, **kwargs) -> None:
        """Release the connection; a reader already handed out keeps it until it is read or dropped
        (``conn.sql(...).record_batches()`` drops the result at once but still streams)."""
        if not self._reading:
            self.response.close()

    def cancel(self) -> None:
        """Drop the connection: the server stops the query when it notices."""
        self.response.close()


class Client:
    """A connection to a Quanta HTTP service with a bearer token."""

    def __init__(self, url: str, token: str | None = None, *, timeout: float | None = 300, session=None):
        import requests

        self.url = url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.session = session or requests.Session()

    # -- plumbing -------------------------------------------------------------------------------------

    def _headers(self, accept: str = "application/json") -> dict:
        headers = {"Accept": accept}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _request(self, method: str, path: str, *, accept: str = "application/json", stream: bool = False, **kw):
        import requests

        try:
            response = self.session.request(method, self.url + path, headers=self._headers(accept),
                                            timeout=self.timeout, stream=stream, **kw)
        except requests.RequestException as e:
            raise errors.OperationalError(f"cannot reach {self.url}: {type(e).__name__}") from None
        if response.status_code >= 400:
            try:
                body = response.json()
            except ValueError:
                body = None
            response.close()
            raise error_from(response.status_code, body)
        return response

    def _get(self, path: str, **params) -> dict:
        return self._request("GET", path, params={k: v for k, v in params.items() if v is not None}).json()

    # -- queries --------------------------------------------------------------------------------------

    def sql(self, sql: str, params: Sequence[Any] | dict | None = None, purpose: str | None = None,
            timeout: float | None = None) -> Result:
        """Run one query as the token's principal; the result streams from the server's Arrow answer."""
        body: dict[str, Any] = {"sql": sql}
        if params is not None:
            body["parameters"] = list(params) if isinstance(params, tuple) else params
        if purpose is not None:
            body["purpose"] = purpose
        if timeout is not None:
            body["timeout"] = timeout
        response = self._request("POST", "/api/v1/query", json=body, accept=ARROW, stream=True)
        plan = RemotePlan(policies=tuple(_header_json(response, "X-Quanta-Policies")),
                          warnings=tuple(_header_json(response, "X-Quanta-Warnings")))
        return Result(RemoteExecution(response), plan)

    def query_json(self, sql: str, params: Sequence[Any] | dict | None = None, purpose: str | None = None,
                   max_rows: int | None = None) -> dict:
        """The JSON answer of a query: columns, rows (capped), ``truncated``, policies, warnings."""
        body: dict[str, Any] = {"sql": sql, "parameters": params, "purpose": purpose}
        if max_rows is not None:
            body["max_rows"] = max_rows
        return self._request("POST", "/api/v1/query", json=body).json()

    # -- the dictionary -------------------------------------------------------------------------------

    def domains(self) -> list[dict]:
        """The mesh's domains, each with the names of its quanta."""
        return self._get("/api/v1/domains")["domains"]

    def quanta(self, q: str | None = None) -> list[dict]:
        """Every quantum (or those matching the words ``q``): domain, owner, description, datasets..."""
        return self._get("/api/v1/quanta", q=q)["quanta"]

    def quantum(self, name: str) -> dict:
        """One quantum with its datasets, ports and contracts."""
        return self._get(f"/api/v1/quanta/{name}")

    def datasets(self, q: str | None = None) -> list[dict]:
        """Every dataset (or those matching the words ``q``, best first)."""
        return self._get("/api/v1/datasets", q=q)["datasets"]

    def dataset(self, quantum: str, dataset: str) -> dict:
        """One dataset: columns, classification, contract, lineage, quality, SLOs, example queries."""
        return self._get(f"/api/v1/datasets/{quantum}/{dataset}")

    def contract(self, contract_id: str) -> str:
        """The ODCS contract file, as YAML text."""
        return self._request("GET", f"/api/v1/contracts/{contract_id}", accept="application/yaml").text

    def search(self, q: str) -> dict:
        """Datasets and quanta matching every word of ``q`` (``{"datasets": [...], "quanta": [...]}``)."""
        return self._get("/api/v1/search", q=q)

    def my_access(self, quantum: str, dataset: str) -> dict:
        """What this token's principal may see of a dataset: each column visible, masked or denied,
        and who approves access requests."""
        return self._get(f"/api/v1/datasets/{quantum}/{dataset}/access")

    # -- access requests ------------------------------------------------------------------------------

    def request_access(self, quantum: str, dataset: str, purpose: str | None = None, days: int = 90) -> dict:
        """Ask for read access to a dataset; returns the pending request (its approvers decide)."""
        return self._request("POST", f"/api/v1/datasets/{quantum}/{dataset}/access-requests",
                             json={"purpose": purpose, "days": days}).json()

    def access_requests(self) -> list[dict]:
        """This token's principal's requests, and those it may approve."""
        return self._get("/api/v1/access-requests")["access_requests"]

    def approve_access(self, request_id: int, days: int | None = None) -> dict:
        """Approve a pending request: the requester may read the dataset for ``days`` days, at once."""
        return self._request("POST", f"/api/v1/access-requests/{request_id}/approve", json={"days": days}).json()

    def deny_access(self, request_id: int, reason: str | None = None) -> dict:
        """Deny a pending request."""
        return self._request("POST", f"/api/v1/access-requests/{request_id}/deny", json={"reason": reason}).json()

    def revoke_access(self, request_id: int, reason: str | None = None) -> dict:
        """Revoke an approved request's grant, at once."""
        return self._request("POST", f"/api/v1/access-requests/{request_id}/revoke", json={"reason": reason}).json()

    # -- observability --------------------------------------------------------------------------------

    def health(self) -> dict:
        """The server's readiness (mesh loaded, engine answering)."""
        return self._get("/readyz")

    def close(self) -> None:
        self.session.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Client {self.url}>"


def _header_json(response, name: str) -> list:
    raw = response.headers.get(name)
    if not raw:
        return []
    try:
        value = json.loads(raw)
    except ValueError:
        return []
    return value if isinstance(value, list) else []
