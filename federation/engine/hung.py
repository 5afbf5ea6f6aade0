"""Bounds on remote sources (PostgreSQL) that stop answering: a server stopped with SIGSTOP, a frozen host.

DuckDB's ``interrupt()`` is checked between chunks of work, but the PostgreSQL scanner waits in libpq's
``recv`` for a server that never answers; the kernel still accepts the TCP connection and acknowledges
what is sent, so neither TCP keep-alives nor ``tcp_user_timeout`` notice. libpq's ``connect_timeout``
bounds a new connection's start-up; for a connection already open, Quanta shuts down (``shutdown(2)``)
this process's sockets to the hung server: libpq then sees the connection closed, the scan fails at
once, and the query ends (as a time-out) on the thread that ran it.

* ``responds(host, port)``: does a PostgreSQL server answer at all (an SSLRequest, answered by the
  postmaster itself in microseconds without authentication)?
* ``sever(host, port)``: shut down every socket of this process connected to that server (Linux:
  ``/proc/self/net/tcp*``); a no-op elsewhere.
* ``Bound``: a wall-clock bound around one blocking call (an ATTACH, a DESCRIBE): at the deadline the
  call is interrupted and, if the server does not respond, its connections are severed.
"""

from __future__ import annotations

import os
import socket
import struct
import threading
from collections.abc import Callable

CONNECT_TIMEOUT = 5.0  # source_connect_timeout_seconds's default
GRACE_SECONDS = 0.2  # an interrupt that works ends a call within this
PROBE_SECONDS = 1.0
_SSL_REQUEST = struct.pack("!ii", 8, 80877103)


def responds(host: str, port: int, timeout: float = PROBE_SECONDS) -> bool:
    """True when a PostgreSQL server at host:port answers a protocol request within ``timeout``."""
    try:
        with socket.create_connection((host, int(port)), timeout=timeout) as s:
            s.settimeout(timeout)
            s.sendall(_SSL_REQUEST)
            return s.recv(1) in (b"S", b"N")
    except OSError:
        return False


def _addresses(host: str, port: int) -> set[tuple[str, int]]:
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except OSError:
        return set()
    return {(info[4][0], int(port)) for info in infos}


def _remote(hex_address: str, family: int) -> tuple[str, int]:
    ip_hex, port_hex = hex_address.split(":")
    raw = bytes.fromhex(ip_hex)
    if family == socket.AF_INET:
        ip = socket.inet_ntop(family, raw[::-1])
    else:  # four 32-bit words, each in host (little-endian) order
        ip = socket.inet_ntop(family, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
        if ip.startswith("::ffff:") and "." in ip:
            ip = ip[7:]
    return ip, int(port_hex, 16)


def _socket_inodes(targets: set[tuple[str, int]]) -> set[str]:
    inodes: set[str] = set()
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        try:
            with open(f"/proc/self/net/{name}") as f:
                lines = f.readlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            try:
                if _remote(fields[2], family) in targets:
                    inodes.add(fields[9])
            except (ValueError, IndexError, OSError):
                continue
    return inodes


def sever(host: str, port: int) -> int:
    """Shut down this process's TCP connections to host:port; the number of sockets shut down."""
    inodes = _socket_inodes(_addresses(host, port))
    if not inodes:
        return 0
    count = 0
    try:
        fds = os.listdir("/proc/self/fd")
    except OSError:
        return 0
    for fd in fds:
        try:
            link = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if not (link.startswith("socket:[") and link[8:-1] in inodes):
            continue
        try:
            s = socket.socket(fileno=os.dup(int(fd)))
        except OSError:
            continue
        try:
            s.shutdown(socket.SHUT_RDWR)  # shared by the duplicate: libpq's recv returns at once
            count += 1
        except OSError:
            pass
        finally:
            s.close()  # closes the duplicate only; libpq closes its own descriptor
    return count


class Bound:
    """A wall-clock bound around one blocking call on a remote server::

        with Bound(seconds, connection.interrupt, host, port) as bound:
            connection.execute(...)
        # bound.expired: the call ran past its bound (its error is a time-out, whatever DuckDB said)
    """

    def __init__(self, seconds: float, interrupt: Callable[[], None], host: str, port: int):
        self.seconds = seconds
        self.interrupt = interrupt
        self.host, self.port = host, port
        self.expired = False
        self.severed = 0
        self._done = threading.Event()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def _expire(self) -> None:
        if self._done.is_set():
            return
        self.expired = True
        try:
            self.interrupt()
        except Exception:  # noqa: BLE001, S110 - the connection may be closing: severing follows anyway
            pass
        if self._done.wait(GRACE_SECONDS):
            return  # the interrupt was enough
        if not responds(self.host, self.port):
            self.severed = sever(self.host, self.port)

    def __enter__(self) -> Bound:  # noqa: PYI034
        self._timer.start()
        return self

    def __exit__(self, *exc) -> None:
        self._done.set()
        self._timer.cancel()
