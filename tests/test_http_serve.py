"""``quanta serve``: the real console script serving the demo mesh over HTTP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM])
def test_quanta_serve_prints_urls_and_serves(demo_path, stop):
    env = dict(os.environ)
    env.pop("QUANTA_MESH", None)
    proc = subprocess.Popen([QUANTA, "serve", str(demo_path), "--port", "0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for _ in range(5):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("API"):
                break
        text = "".join(lines)
        assert "mesh greatparts: 10 quanta" in text, (text, proc.stderr.read() if proc.poll() is not None else "")
        dictionary = re.search(r"dictionary\s+(http://127\.0\.0\.1:\d+)/", text)
        api = re.search(r"API\s+(http://127\.0\.0\.1:\d+)/api/v1/", text)
        assert dictionary and api and dictionary.group(1) == api.group(1)
        url = dictionary.group(1)
        assert requests.get(url + "/healthz", timeout=30).json() == {"status": "ok"}
        assert "greatparts" in requests.get(url + "/", timeout=30).text
        assert requests.post(url + "/api/v1/query", json={"sql": "select 1"}, timeout=30).status_code == 401
    finally:
        proc.send_signal(stop)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "Traceback" not in proc.stderr.read()


def test_quanta_serve_help_lists_options():
    p = subprocess.run([QUANTA, "serve", "--help"], capture_output=True, text=True, timeout=60)
    assert p.returncode == 0
    for option in ("--host", "--port", "--pg-port", "127.0.0.1", "8080"):
        assert option in p.stdout


def test_server_in_a_thread_stops_cleanly(demo_path):
    import socket

    from federation.platform import Platform
    from federation.server.http import Server, create_app

    server = Server(create_app(Platform.open(demo_path)), port=0).start()
    assert server.host == "127.0.0.1"  # loopback by default
    assert requests.get(server.url + "/healthz", timeout=30).status_code == 200
    server.stop()
    assert not server._thread.is_alive()
    with socket.socket() as s:  # the port is free again
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", server.port))
    with pytest.raises(requests.ConnectionError):
        requests.get(server.url + "/healthz", timeout=5)


def test_quanta_serve_with_the_postgresql_port(demo_path):
    import socket

    pytest.importorskip("federation.server.pgwire")
    proc = subprocess.Popen([QUANTA, "serve", str(demo_path), "--port", "0", "--pg-port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for _ in range(6):
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if line.startswith("PostgreSQL"):
                break
        text = "".join(lines)
        found = re.search(r"PostgreSQL\s+127\.0\.0\.1:(\d+)", text)
        assert found, text
        with socket.create_connection(("127.0.0.1", int(found.group(1))), timeout=10):
            pass  # listening
        url = re.search(r"dictionary\s+(http://\S+?)/\s", text).group(1)
        assert requests.get(url + "/healthz", timeout=30).status_code == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
    assert proc.returncode == 130


def test_streamed_bodies_arrive_byte_for_byte():
    """Large streamed chunks go out without being copied into waitress's buffers: whatever the sizes of
    the chunks and however slowly the client reads, it receives exactly the bytes, in order."""
    import hashlib
    import time

    from flask import Flask, Response

    from federation.server.http.serve import Server

    sizes = [7, 70_000, 9 << 20, 1, 65_535, 65_536, 3 << 20, 0, 12]
    chunks = [hashlib.sha256(str(i).encode()).digest() * (n // 32) + b"x" * (n % 32) for i, n in enumerate(sizes)]
    app = Flask("stream")
    app.add_url_rule("/stream", "stream", lambda: Response((c for c in chunks), mimetype="application/octet-stream"))
    app.add_url_rule("/whole", "whole", lambda: Response(b"".join(chunks), mimetype="application/octet-stream"))
    with Server(app, port=0) as server:
        with requests.get(server.url + "/stream", stream=True, timeout=60) as r:
            assert r.headers.get("Transfer-Encoding") == "chunked"
            got = []
            for part in r.iter_content(1 << 20):
                got.append(part)
                time.sleep(0.001)  # a slow reader: the server waits on its high-water mark
        assert b"".join(got) == b"".join(chunks)
        whole = requests.get(server.url + "/whole", timeout=60)
        assert int(whole.headers["Content-Length"]) == sum(sizes) and whole.content == b"".join(chunks)
