"""PostgreSQL frontend/backend protocol 3.0: reading frontend messages, building backend messages.

Every backend message is ``type byte + int32 length (including itself) + body``; the startup packet
and the special requests (SSLRequest, GSSENCRequest, CancelRequest) have no type byte. Strings are
NUL-terminated and encoded as UTF-8 (the only ``client_encoding`` this server speaks).
"""

from __future__ import annotations

import socket
import struct
import time
from dataclasses import dataclass

PROTOCOL_3_0 = 196608  # 3 << 16
SSL_REQUEST = 80877103
GSSENC_REQUEST = 80877104
CANCEL_REQUEST = 80877102
MAX_MESSAGE = 64 * 1024 * 1024  # refuse absurd lengths before allocating

_I = struct.Struct("!i")
_H = struct.Struct("!h")
_IH = struct.Struct("!ih")


class ProtocolViolation(Exception):
    """The client sent something that is not the protocol (08P01)."""


class ClientGone(Exception):
    """The connection closed."""


class TimedOut(ClientGone):
    """The client did not send what was expected before the reader's deadline (start-up, idle session)."""


class Reader:
    """Buffered reads of exact byte counts from a socket, before ``deadline`` (a ``time.monotonic()``
    value) when one is set."""

    def __init__(self, sock: socket.socket, deadline: float | None = None):
        self.sock = sock
        self._buf = bytearray()
        self.deadline = deadline
        self._timed = False  # whether the socket has a time-out of ours

    def _fill(self, n: int) -> None:
        while len(self._buf) < n:
            try:
                if self.deadline is not None:
                    left = self.deadline - time.monotonic()
                    if left <= 0:
                        raise TimedOut()
                    self.sock.settimeout(left)
                    self._timed = True
                chunk = self.sock.recv(max(65536, n - len(self._buf)))
            except socket.timeout:
                raise TimedOut() from None
            except (ConnectionError, OSError):
                raise ClientGone() from None
            finally:
                if self._timed:  # sending has its own limit (SO_SNDTIMEO): the socket blocks again
                    self._timed = False
                    try:
                        self.sock.settimeout(None)
                    except OSError:
                        pass
            if not chunk:
                raise ClientGone()
            self._buf += chunk

    def read(self, n: int) -> bytes:
        self._fill(n)
        out = bytes(self._buf[:n])
        del self._buf[:n]
        return out

    def pending(self) -> bool:
        """Bytes already buffered (a pipelined message)."""
        return bool(self._buf)

    def startup(self) -> tuple[int, bytes]:
        """The untyped first packet: (code, body)."""
        length = _I.unpack(self.read(4))[0]
        if length < 8 or length > 10_000:
            raise ProtocolViolation("invalid startup packet length")
        body = self.read(length - 4)
        return _I.unpack_from(body)[0], body[4:]

    def message(self) -> tuple[bytes, bytes]:
        """A typed frontend message: (type byte, body)."""
        head = self.read(5)
        kind, length = head[:1], _I.unpack_from(head, 1)[0]
        if length < 4 or length > MAX_MESSAGE:
            raise ProtocolViolation(f"invalid message length {length}")
        return kind, self.read(length - 4)


class Buffer:
    """Parsing a message body."""

    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0

    def int32(self) -> int:
        v = _I.unpack_from(self.data, self.pos)[0]
        self.pos += 4
        return v

    def int16(self) -> int:
        v = _H.unpack_from(self.data, self.pos)[0]
        self.pos += 2
        return v

    def uint32(self) -> int:
        v = struct.unpack_from("!I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def cstring(self) -> str:
        end = self.data.index(b"\0", self.pos)
        s = self.data[self.pos:end].decode("utf-8", "replace")
        self.pos = end + 1
        return s

    def bytes(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ProtocolViolation("message shorter than announced")
        v = self.data[self.pos:self.pos + n]
        self.pos += n
        return v

    def rest(self) -> bytes:
        v = self.data[self.pos:]
        self.pos = len(self.data)
        return v


def parse_startup(body: bytes) -> dict[str, str]:
    """The key/value pairs of a StartupMessage."""
    parts = body.split(b"\0")
    params: dict[str, str] = {}
    for i in range(0, len(parts) - 1, 2):
        if not parts[i]:
            break
        params[parts[i].decode("utf-8", "replace")] = parts[i + 1].decode("utf-8", "replace")
    return params


# -- backend messages -----------------------------------------------------------------------------------


def message(kind: bytes, body: bytes = b"") -> bytes:
    return kind + _I.pack(len(body) + 4) + body


def cstr(s: str) -> bytes:
    return s.encode("utf-8").replace(b"\0", b"") + b"\0"


def authentication(code: int, data: bytes = b"") -> bytes:
    return message(b"R", _I.pack(code) + data)


AUTH_OK = authentication(0)
AUTH_CLEARTEXT = authentication(3)


def parameter_status(name: str, value: str) -> bytes:
    return message(b"S", cstr(name) + cstr(value))


def backend_key_data(pid: int, secret: int) -> bytes:
    return message(b"K", struct.pack("!iI", pid, secret))


def ready_for_query(status: str) -> bytes:
    return message(b"Z", status.encode())


def negotiate_protocol_version(minor: int, unsupported: list[str]) -> bytes:
    return message(b"v", _I.pack(minor) + _I.pack(len(unsupported)) + b"".join(cstr(o) for o in unsupported))


@dataclass(frozen=True)
class Field:
    name: str
    type_oid: int
    type_size: int = -1
    type_modifier: int = -1
    table_oid: int = 0
    column: int = 0
    format: int = 0


def row_description(fields: list[Field]) -> bytes:
    body = [_H.pack(len(fields))]
    for f in fields:
        body.append(cstr(f.name) + struct.pack("!ihihih", f.table_oid, f.column, f.type_oid, f.type_size,
                                               f.type_modifier, f.format))
    return message(b"T", b"".join(body))


NO_DATA = message(b"n")
PARSE_COMPLETE = message(b"1")
BIND_COMPLETE = message(b"2")
CLOSE_COMPLETE = message(b"3")
PORTAL_SUSPENDED = message(b"s")
EMPTY_QUERY = message(b"I")


def copy_out_response(fmt: int, columns: int) -> bytes:
    """CopyOutResponse: the overall format (0 text, 1 binary), then each column's (the same for COPY)."""
    return message(b"H", bytes([fmt]) + _H.pack(columns) + _H.pack(fmt) * columns)


def copy_data(payload: bytes) -> bytes:
    return message(b"d", payload)


COPY_DONE = message(b"c")


def parameter_description(oids: list[int]) -> bytes:
    return message(b"t", _H.pack(len(oids)) + b"".join(struct.pack("!I", o) for o in oids))


def command_complete(tag: str) -> bytes:
    return message(b"C", cstr(tag))


def data_row(values: list[bytes | None]) -> bytes:
    parts = [_H.pack(len(values))]
    for v in values:
        if v is None:
            parts.append(b"\xff\xff\xff\xff")
        else:
            parts.append(_I.pack(len(v)))
            parts.append(v)
    body = b"".join(parts)
    return b"D" + _I.pack(len(body) + 4) + body


def _fields(severity: str, code: str, text: str, detail: str | None = None, hint: str | None = None,
            position: int | None = None) -> bytes:
    parts = [b"S" + cstr(severity), b"V" + cstr(severity), b"C" + cstr(code), b"M" + cstr(text)]
    if detail:
        parts.append(b"D" + cstr(detail))
    if hint:
        parts.append(b"H" + cstr(hint))
    if position:
        parts.append(b"P" + cstr(str(position)))
    return b"".join(parts) + b"\0"


def error_response(code: str, text: str, severity: str = "ERROR", detail: str | None = None,
                   hint: str | None = None, position: int | None = None) -> bytes:
    return message(b"E", _fields(severity, code, text, detail, hint, position))


def notice_response(text: str, code: str = "01000", severity: str = "WARNING") -> bytes:
    return message(b"N", _fields(severity, code, text))
