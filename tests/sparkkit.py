"""A real Spark standalone cluster on 127.0.0.1 for the Spark tests and benchmarks.

``SparkCluster`` starts, from the pip-installed pyspark (SPARK_HOME is the package folder; Java 17):

- a standalone Master (``org.apache.spark.deploy.master.Master``) with its web UI (``/json`` lists workers),
- two Workers (``org.apache.spark.deploy.worker.Worker``), 1 core and ``worker_memory`` each, own work dirs,
- a Spark Connect server (``org.apache.spark.sql.connect.service.SparkConnectServer`` through spark-submit, in
  the foreground so that we hold its PID) attached to the master, requiring a pre-shared token.

Every process is started in its own process group, logs to a file in the cluster's folder and binds to
127.0.0.1; ``stop()`` ends each group by PID (TERM, then KILL). Usable as a context manager (benchmarks) and
as the session fixture ``spark_cluster`` (tests/conftest.py), which starts it the first time a test asks for it
(a run without Spark tests never pays for it). Each process also gets SIGTERM if its Python dies (SIGKILL or a
runner's time-out included). QUANTA_SPARK_KEEP=1 keeps the folder (logs, work dirs) after stop.

Measured on 2 shared cores: start-up 12-20 s (the master, then both workers and the Connect server at once,
until the executors are granted); resident memory about 1.4 GB idle (master 230 MB, each worker with its
executor 400-470 MB, the Connect server 330 MB), about 1.7 GB after a first query.

Authentication: Spark 4 Connect checks ``spark.connect.authenticate.token`` (or the server's environment
variable SPARK_CONNECT_AUTHENTICATE_TOKEN, which is how we pass it: nothing in ``ps``) as a gRPC bearer token.
The Python client sends ``;token=...`` from the ``sc://`` URL, and only over a secure channel: TLS, or gRPC's
*local* credentials, which it uses when the host is literally ``localhost`` and ``use_ssl`` is not set
(pyspark/sql/connect/client/core.py, ``DefaultChannelBuilder.toChannel``). So the URL is
``sc://localhost:PORT/;token=...`` (the server binds 127.0.0.1 only; ``sc://127.0.0.1:PORT/;token=`` would try
TLS against a plaintext port and fail). Never set SPARK_CONNECT_AUTHENTICATE_TOKEN in the client process: the
client reads it too, and a "client without the token" would then send it.
"""

from __future__ import annotations

import atexit
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

CONNECT_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"
START_TIMEOUT = 120.0  # seconds to wait for the cluster (the issue: "wait up to 2 minutes for the port")

# Confs of the Connect server (the driver) unless the caller overrides them. Shuffle partitions: the default 200
# is for big clusters; 2 cores are better served by a few (adaptive execution coalesces them further).
DEFAULT_CONFS: dict[str, str] = {
    "spark.sql.shuffle.partitions": "8",
    "spark.sql.session.timeZone": "UTC",
}


class SparkClusterError(RuntimeError):
    """The cluster did not start (the message carries the processes' logs, tokens redacted)."""


def spark_home() -> Path:
    """The pip-installed pyspark package folder: it ships bin/, jars/ and the Connect server jar."""
    import pyspark

    return Path(pyspark.__file__).resolve().parent


def java_home() -> str | None:
    """JAVA_HOME if set, else a Java 17 under /usr/lib/jvm (Spark 4 runs on 17 and 21; the machine may also
    carry a newer JDK first on some PATHs), else None (spark-class then uses ``java`` on PATH)."""
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    for candidate in sorted(Path("/usr/lib/jvm").glob("java-17-openjdk*")):
        if (candidate / "bin" / "java").exists():
            return str(candidate)
    return None


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class _Proc:
    name: str
    popen: subprocess.Popen
    log: Path


@dataclass
class SparkCluster:
    """A standalone master, ``workers`` workers and a Spark Connect server on 127.0.0.1.

    ``confs`` are extra ``--conf`` of the Connect server (e.g. ``{"spark.sql.timestampType": "TIMESTAMP_NTZ"}``),
    applied over DEFAULT_CONFS. After ``start()``: ``url`` (the client's ``sc://`` URL with the token),
    ``url_without_token``, ``token``, ``master_url``, ``master_json_url``, ``driver_ui_url``, ``folder`` (logs,
    work dirs, warehouse).
    """

    workers: int = 2
    worker_cores: int = 1
    worker_memory: str = "1g"
    executor_memory: str = "768m"
    driver_memory: str = "1g"
    daemon_memory: str = "256m"  # master and worker JVMs: they only schedule
    confs: Mapping[str, str] = field(default_factory=dict)
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    folder: Path | None = None
    timeout: float = START_TIMEOUT

    _procs: list[_Proc] = field(default_factory=list, init=False, repr=False)
    _sessions: list = field(default_factory=list, init=False, repr=False)
    _own_folder: bool = field(default=False, init=False, repr=False)
    startup_seconds: float | None = field(default=None, init=False)

    # ------------------------------------------------------------------ start / stop
    def start(self) -> "SparkCluster":
        began = time.monotonic()
        if not (spark_home() / "jars").is_dir() or not (spark_home() / "bin" / "spark-class").exists():
            raise SparkClusterError(f"no Spark distribution in {spark_home()}: the cluster needs the full pyspark "
                                    "(pip install -e \".[test]\"), pyspark-client ships no jars")
        if self.folder is None:
            self.folder = Path(tempfile.mkdtemp(prefix="quanta-spark-"))
            self._own_folder = True
        self.folder.mkdir(parents=True, exist_ok=True)
        self.master_port, self.master_ui_port, self.connect_port, self.driver_ui_port = (
            free_port(), free_port(), free_port(), free_port())
        self.master_url = f"spark://127.0.0.1:{self.master_port}"
        self.master_json_url = f"http://127.0.0.1:{self.master_ui_port}/json"
        self.driver_ui_url = f"http://127.0.0.1:{self.driver_ui_port}"
        self.url_without_token = f"sc://localhost:{self.connect_port}"
        self.url = f"{self.url_without_token}/;token={self.token}"
        deadline = began + self.timeout
        try:
            self._spawn("master", [MASTER_CLASS, "--host", "127.0.0.1", "--port", str(self.master_port),
                                   "--webui-port", str(self.master_ui_port)])
            self._wait(lambda: port_open(self.master_port) and self._master_state() is not None,
                       deadline, "the master's port and web UI")
            for i in range(self.workers):
                work = self.folder / f"worker{i}"
                work.mkdir(exist_ok=True)
                self._spawn(f"worker{i}", [WORKER_CLASS, "--host", "127.0.0.1", "--port", str(free_port()),
                                           "--webui-port", str(free_port()), "--cores", str(self.worker_cores),
                                           "--memory", self.worker_memory, "--work-dir", str(work),
                                           self.master_url])
            self._spawn_connect()
            self._wait(lambda: len(self.alive_workers()) >= self.workers, deadline,
                       f"{self.workers} alive workers")
            self._wait(lambda: port_open(self.connect_port), deadline, "the Spark Connect port")
            self._wait(lambda: self._granted_cores() >= self.workers * self.worker_cores, deadline,
                       "the Connect server's executors")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        atexit.register(self.stop)
        return self

    def stop(self) -> None:  # idempotent
        """Stops the client sessions made by ``session()``, then every process group (Connect server first),
        and removes the folder this cluster created."""
        for session in self._sessions:
            try:
                session.stop()
            except Exception:  # noqa: BLE001 - the server may already be gone
                pass
        self._sessions.clear()
        for proc in reversed(self._procs):
            _end_group(proc.popen)
        self._procs.clear()
        if self._own_folder and self.folder is not None and not os.environ.get("QUANTA_SPARK_KEEP"):
            shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> "SparkCluster":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    # ------------------------------------------------------------------ clients
    def session(self, *, token: str | None | bool = True):
        """A Spark Connect client session (``SparkSession.builder.remote(url).create()``), stopped with the
        cluster. ``token=True`` sends the cluster's token, ``None``/``False`` none, a string that string."""
        from pyspark.sql import SparkSession

        if token is True:
            url = self.url
        elif not token:
            url = self.url_without_token
        else:
            url = f"{self.url_without_token}/;token={token}"
        session = SparkSession.builder.remote(url).create()
        self._sessions.append(session)
        return session

    # ------------------------------------------------------------------ state
    def master_state(self) -> dict:
        state = self._master_state()
        if state is None:
            raise SparkClusterError(f"the master's web UI does not answer at {self.master_json_url}")
        return state

    def alive_workers(self) -> list[dict]:
        state = self._master_state() or {}
        return [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]

    def executors(self) -> list[dict]:
        """The Connect application's executors from the driver's REST API (the driver itself excluded)."""
        apps = _get_json(f"{self.driver_ui_url}/api/v1/applications") or []
        if not apps:
            return []
        execs = _get_json(f"{self.driver_ui_url}/api/v1/applications/{apps[0]['id']}/executors") or []
        return [e for e in execs if e.get("id") != "driver"]

    def pids(self) -> dict[str, int]:
        return {p.name: p.popen.pid for p in self._procs}

    def rss_mb(self) -> dict[str, float]:
        """Resident memory (MB) of each process group: a worker's group holds its executor JVM too."""
        return {p.name: _group_rss_mb(p.popen.pid) for p in self._procs}

    def raw_logs(self) -> str:
        """Every log file of the cluster as written (the Connect server's, the master's, the workers' and their
        executors'), for tests that look for what must never be logged."""
        files = [p.log for p in self._procs] + sorted((self.folder or Path("/nonexistent")).glob("worker*/app-*/*/std*"))
        return "\n".join(f.read_text(errors="replace") for f in files if f.exists())

    def logs(self) -> str:
        """Every log, the token redacted."""
        parts = []
        for proc in self._procs:
            try:
                text = proc.log.read_text(errors="replace")
            except OSError:
                text = "(no log)"
            parts.append(f"----- {proc.name} ({proc.log}) -----\n{text[-6000:]}")
        for stderr in sorted((self.folder or Path("/nonexistent")).glob("worker*/app-*/*/stderr")):
            parts.append(f"----- executor {stderr.parent.parent.name}/{stderr.parent.name} -----\n"
                         f"{stderr.read_text(errors='replace')[-3000:]}")
        return self.redact("\n".join(parts))

    def redact(self, text: str) -> str:
        return text.replace(self.token, "<token>")

    # ------------------------------------------------------------------ internals
    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SPARK_", "PYSPARK_"))}
        env.update(SPARK_HOME=str(spark_home()), SPARK_LOCAL_IP="127.0.0.1", SPARK_LOCAL_HOSTNAME="localhost",
                   SPARK_DAEMON_MEMORY=self.daemon_memory, SPARK_CONF_DIR=str(self.folder / "conf"),
                   SPARK_LOG_DIR=str(self.folder), SPARK_WORKER_DIR=str(self.folder / "work"),
                   SPARK_NO_DAEMONIZE="1", PYSPARK_PYTHON=sys.executable)
        home = java_home()
        if home:
            env["JAVA_HOME"] = home
            env["PATH"] = f"{home}/bin:{env.get('PATH', '')}"
        return env

    def _spawn(self, name: str, args: list[str], *, env: dict[str, str] | None = None,
               program: str = "spark-class") -> None:
        log = self.folder / f"{name}.log"
        (self.folder / "conf").mkdir(exist_ok=True)
        out = open(log, "wb")  # noqa: SIM115 - the child owns it; closed below once handed over
        try:
            popen = subprocess.Popen([str(spark_home() / "bin" / program), *args], cwd=self.folder,
                                     env=env or self._env(), stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        finally:
            out.close()
        self._procs.append(_Proc(name, popen, log))

    def _spawn_connect(self) -> None:
        confs = {
            **DEFAULT_CONFS,
            "spark.connect.grpc.binding.address": "127.0.0.1",
            "spark.connect.grpc.binding.port": str(self.connect_port),
            "spark.driver.host": "127.0.0.1",
            "spark.driver.bindAddress": "127.0.0.1",
            "spark.ui.port": str(self.driver_ui_port),
            "spark.port.maxRetries": "0",  # a taken port fails loudly instead of drifting to the next one
            "spark.executor.memory": self.executor_memory,
            "spark.executor.cores": str(self.worker_cores),
            "spark.cores.max": str(self.workers * self.worker_cores),
            "spark.local.dir": str(self.folder / "local"),
            "spark.sql.warehouse.dir": str(self.folder / "warehouse"),
            "spark.pyspark.python": sys.executable,
            **dict(self.confs),
        }
        args = ["--class", CONNECT_CLASS, "--name", "Quanta Spark Connect", "--master", self.master_url,
                "--driver-memory", self.driver_memory]
        for key, value in confs.items():
            args += ["--conf", f"{key}={value}"]
        # SparkSubmit recognises this class name and needs no application jar (sbin/start-connect-server.sh)
        env = {**self._env(), "SPARK_CONNECT_AUTHENTICATE_TOKEN": self.token, "SPARK_CONNECT_MODE": "0"}
        env.pop("SPARK_DAEMON_MEMORY")  # the launcher would size this driver as a daemon, ignoring --driver-memory
        self._spawn("connect", args, env=env, program="spark-submit")

    def _wait(self, ready, deadline: float, what: str) -> None:
        while True:
            if ready():
                return
            dead = [p for p in self._procs if p.popen.poll() is not None]
            if dead:
                raise SparkClusterError(
                    f"Spark {dead[0].name} exited (code {dead[0].popen.returncode}) while waiting for {what}\n"
                    + self.logs())
            if time.monotonic() > deadline:
                raise SparkClusterError(f"timed out after {self.timeout:.0f} s waiting for {what}\n" + self.logs())
            time.sleep(0.25)

    def _master_state(self) -> dict | None:
        return _get_json(self.master_json_url)

    def _granted_cores(self) -> int:
        state = self._master_state() or {}
        return sum(app.get("cores", 0) for app in state.get("activeapps", []))


def endpoint_of(request) -> tuple[str, str | None]:
    """(``sc://`` URL without its token, token) of the Spark Connect server the tests use:
    ``QUANTA_TEST_SPARK_URL=sc://localhost:PORT/;token=...`` when set, else the session's ``spark_cluster``."""
    url = os.environ.get("QUANTA_TEST_SPARK_URL")
    if url:
        base, _, params = url.partition("/;")
        return base.rstrip("/"), dict(p.split("=", 1) for p in params.split(";") if "=" in p).get("token")
    cluster = request.getfixturevalue("spark_cluster")
    return cluster.url_without_token.rstrip("/"), cluster.token


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the Python that started it dies, even by SIGKILL or a runner's
    time-out (Linux PR_SET_PDEATHSIG, kept across spark-class's exec of the JVM), so no cluster outlives its
    owner. The JVMs' shutdown hooks then stop what they started (a worker its executors)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1
    except (OSError, AttributeError):
        pass


def _get_json(url: str):
    try:
        with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our own loopback URL
            return json.loads(response.read())
    except (OSError, ValueError):
        return None


def _end_group(popen: subprocess.Popen, grace: float = 15.0) -> None:
    """TERM the process group led by ``popen`` (a JVM and what it started), then KILL what is left."""
    try:
        os.killpg(popen.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    try:
        popen.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    try:  # the leader may be gone while children of its group live on (a worker's executor)
        os.killpg(popen.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    try:
        popen.wait(timeout=5)
    except subprocess.TimeoutExpired:
        pass


def _group_rss_mb(pgid: int) -> float:
    total = 0
    for status in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = status.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) != pgid:  # fields after the command: state, ppid, pgrp, ...
                continue
            rss = re.search(r"VmRSS:\s+(\d+) kB", (status.parent / "status").read_text())
            total += int(rss.group(1)) if rss else 0
        except (OSError, IndexError, ValueError):
            continue
    return round(total / 1024, 1)


@contextmanager
def spark_cluster(**kwargs) -> Iterator[SparkCluster]:
    """``with spark_cluster(confs={...}) as cluster:`` -- started, then stopped by PID whatever happens."""
    cluster = SparkCluster(**kwargs)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()


if __name__ == "__main__":  # python tests/sparkkit.py: start, print the figures, stop
    with spark_cluster() as c:
        print(f"started in {c.startup_seconds:.1f} s; url {c.url_without_token}; master {c.master_url}")
        print("alive workers:", len(c.alive_workers()))
        print("rss MB:", c.rss_mb(), "total", round(sum(c.rss_mb().values())))
        s = c.session()
        print(s.sql("select sum(id) from range(1000000)").collect())
        print("executors:", [(e["id"], e["hostPort"], e["totalTasks"]) for e in c.executors()])
        print("rss MB after a query:", c.rss_mb(), "total", round(sum(c.rss_mb().values())))
