"""Quanta's errors as gRPC statuses, and nothing else sent to a Flight client.

``flight_error(e)`` turns any exception into the one a ``pyarrow.flight`` handler raises:

=====================================================  ==================================================
Quanta / server error                                  gRPC status
=====================================================  ==================================================
``AuthenticationError``, bad credentials               UNAUTHENTICATED
``AccessDenied``, ``StatementRefused``                 PERMISSION_DENIED (the platform's message: dataset,
                                                       approvers; never a value)
``QueryTimeout``                                       DEADLINE_EXCEEDED
``QueryCancelled``                                     CANCELLED
``TooManyQueries``, ``Unavailable``                    UNAVAILABLE (try again later)
other ``ProgrammingError``/``DataError``, malformed    INVALID_ARGUMENT (the message, where in the SQL)
a message or command the server does not implement     UNIMPLEMENTED
unknown or expired ticket / prepared statement         NOT_FOUND
anything else (a bug)                                  INTERNAL "internal error (reference ...)", logged
=====================================================  ==================================================

pyarrow sends a ``FlightError`` subclass as its own status, but any other Python exception (the only way
to INVALID_ARGUMENT, UNIMPLEMENTED or NOT_FOUND) goes out with the handler's formatted traceback appended
("Detail: Python exception: Traceback ..."): file paths and source lines of the server. pyarrow formats it
with ``traceback.format_exception`` when the status is sent, and falls back to the exception's type name
when that formatting fails. The ``_Quiet`` exceptions below make it fail on purpose (their ``__notes__``
raises, which ``TracebackException`` does not catch up to Python 3.12), so a client reads
``"<message>. Detail: Python exception: InvalidArgument"`` and no traceback; ``tests/test_flight_sql.py``
checks every refusal for a traceback, so a Python that changes this fails the tests, not silently.
"""

from __future__ import annotations

import logging
import secrets
import traceback

import pyarrow as pa
import pyarrow.flight as flight

from ... import errors
from .messages import MalformedMessage

log = logging.getLogger("quanta.flight")


class _Quiet:
    @property
    def __notes__(self):  # see the module's docstring: pyarrow then sends no traceback
        raise LookupError("a client status carries no traceback")


class InvalidArgument(_Quiet, pa.ArrowInvalid):
    """INVALID_ARGUMENT."""


class Unimplemented(_Quiet, pa.ArrowNotImplementedError):
    """UNIMPLEMENTED."""


class NotFound(_Quiet, pa.ArrowKeyError):
    """NOT_FOUND."""

    def __str__(self) -> str:  # KeyError's str() quotes its message
        return str(self.args[0]) if self.args else ""


READ_ONLY = "this server is read only: Quanta serves governed reads of the mesh"
_QUIET_CLASSES: dict[type, type] = {}


def quiet(error: Exception) -> Exception:
    """``error`` as GetSchema raises it. pyarrow's GetSchema handler, alone among the Flight handlers, does
    not send a raised FlightError as its status (``_get_schema`` lacks their ``except FlightError``): it went
    out as UNKNOWN with the server's traceback. A FlightError is re-raised as a ``_Quiet`` subclass of its
    class: UNKNOWN still, its message, and no traceback (INVALID_ARGUMENT, NOT_FOUND, UNIMPLEMENTED keep theirs)."""
    if isinstance(error, _Quiet):
        return error
    cls = type(error)
    quiet_cls = _QUIET_CLASSES.get(cls)
    if quiet_cls is None:
        quiet_cls = _QUIET_CLASSES[cls] = type(cls.__name__, (_Quiet, cls), {})
    return quiet_cls(str(error))


def flight_error(e: BaseException, what: str = "request") -> Exception:
    """The exception to raise for ``e`` in a handler (``what``: the call, for the server's log)."""
    if isinstance(e, (flight.FlightError, InvalidArgument, Unimplemented, NotFound)):
        return e
    if isinstance(e, errors.AuthenticationError):
        return flight.FlightUnauthenticatedError(str(e))
    if isinstance(e, (errors.AccessDenied, errors.StatementRefused)):
        return flight.FlightUnauthorizedError(str(e))
    if isinstance(e, errors.QueryTimeout):
        return flight.FlightTimedOutError(str(e))
    if isinstance(e, errors.QueryCancelled):
        return flight.FlightCancelledError(str(e))
    if isinstance(e, (errors.TooManyQueries, errors.Unavailable)):
        return flight.FlightUnavailableError(str(e))
    if isinstance(e, MalformedMessage):
        return InvalidArgument(str(e))
    if isinstance(e, errors.NotSupportedError):
        return Unimplemented(str(e))
    if isinstance(e, (errors.ProgrammingError, errors.DataError, errors.InterfaceError)):
        return InvalidArgument(str(e))
    if isinstance(e, errors.Error) and not isinstance(e, errors.InternalError):
        return flight.FlightServerError(str(e))  # an operational error with a message written for users
    reference = secrets.token_hex(4)
    # the server's log: where it failed, never the message (it may hold a value)
    log.error("flight %s failed (reference %s): %s\n%s", what, reference, type(e).__name__,
              "".join(traceback.format_tb(e.__traceback__)).rstrip())
    return flight.FlightInternalError(f"internal error (reference {reference}: see the server's log)")
