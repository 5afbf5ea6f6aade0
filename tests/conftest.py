import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from meshkit import shop_mesh  # noqa: E402

import federation  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


@pytest.fixture(scope="session")
def shop_path(tmp_path_factory) -> Path:
    return shop_mesh(tmp_path_factory.mktemp("shop"))


@pytest.fixture(scope="session")
def shop(shop_path) -> "federation.Connection":
    return federation.connect(str(shop_path), user="ana")


@pytest.fixture(scope="session")
def demo_path(tmp_path_factory) -> Path:
    """A copy of the embedded demo mesh with freshly generated data (scale 0.05)."""
    import shutil

    from federation import demo

    target = tmp_path_factory.mktemp("greatparts") / "greatparts"
    shutil.copytree(ROOT / "catalogs" / "greatparts", target, ignore=shutil.ignore_patterns("data", ".quanta"))
    demo.generate(target, scale=0.05, seed=7)
    return target


@pytest.fixture(scope="session")
def demo_conn(demo_path):
    return federation.connect(str(demo_path), user="ana")


@pytest.fixture(scope="session")
def demo_server(demo_path):
    """The HTTP service on the demo mesh: a real waitress server on a free loopback port, in a thread,
    with a token per demo user (``demo_server.tokens["ana"]``)."""
    from types import SimpleNamespace

    from federation.platform import Platform
    from federation.server.http import Server, create_app

    platform = Platform.open(demo_path)
    server = Server(create_app(platform), port=0).start()
    tokens = {user: platform.tokens.create(user, 1)[0] for user in ("ana", "paul", "marco", "dev", "audrey")}
    yield SimpleNamespace(url=server.url, platform=platform, tokens=tokens, app=server.app, server=server)
    server.stop()


@pytest.fixture(scope="session")
def spark_cluster():
    """A real Spark standalone cluster on 127.0.0.1 (a master, two workers, a Spark Connect server requiring a
    token; tests/sparkkit.py), started once for the session on first use and stopped by PID at its end."""
    from sparkkit import SparkCluster

    cluster = SparkCluster().start()
    try:
        yield cluster
    finally:
        cluster.stop()
