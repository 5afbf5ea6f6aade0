"""A real PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temporary folder, on a free
loopback port, run as the ``postgres`` user when we are root (PostgreSQL refuses to run as root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def _bin(name: str) -> str:
    found = shutil.which(name) or next(iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None)
    if not found:
        raise RuntimeError(f"PostgreSQL's {name} is not installed (apt-get install postgresql)")
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresServer:
    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="quanta-pg-"))
        self.port = _free_port()
        self.host = "127.0.0.1"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            shutil.chown(self.dir, "postgres")
        self._run(_bin("initdb"), "-D", str(self.dir / "data"), "-A", "scram-sha-256", "-U", "postgres",
                  "--pwfile", self._pwfile(), "-E", "UTF8", "--locale", "C")
        self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-l", str(self.dir / "log"), "-w", "-o",
                  f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off", "start")

    def _pwfile(self) -> str:
        path = self.dir / "pw"
        path.write_text("postgres-admin\n")
        if self._as_postgres:
            shutil.chown(path, "postgres")
        return str(path)

    def _run(self, *args: str) -> None:
        cmd = (["runuser", "-u", "postgres", "--"] if self._as_postgres else []) + list(args)
        subprocess.run(cmd, check=True, capture_output=True, timeout=120)

    def dsn(self, user: str = "postgres", password: str = "postgres-admin", dbname: str = "postgres") -> str:
        return f"host={self.host} port={self.port} dbname={dbname} user={user} password={password}"

    def sql(self, *statements: str, dbname: str = "postgres") -> None:
        import psycopg

        with psycopg.connect(self.dsn(dbname=dbname), autocommit=True) as conn:
            for st in statements:
                conn.execute(st)

    def stop(self) -> None:
        try:
            self._run(_bin("pg_ctl"), "-D", str(self.dir / "data"), "-m", "immediate", "stop")
        finally:
            time.sleep(0.2)
            shutil.rmtree(self.dir, ignore_errors=True)
