"""Server credentials are scoped to the quantum whose contract names the server (engine/secrets.py); the
legacy unscoped form keeps working while it is unambiguous. tests/test_issue16_attacks2.py holds the attack."""

from __future__ import annotations

import pytest
from meshkit import shop_mesh
from test_issue16_attacks2 import PW, PasswordCatcher, _b2b_and_evil

from federation import errors
from federation.platform import Platform


@pytest.fixture
def catchers():
    pytest.importorskip("duckdb_extension_postgres_scanner")
    b2b, evil = PasswordCatcher(), PasswordCatcher()
    yield b2b, evil
    b2b.stop()
    evil.stop()


def _only_b2b(root) -> None:
    (root / "contracts" / "evil.odcs.yaml").unlink()
    (root / "products" / "evil.odps.yaml").unlink()


def test_an_unscoped_entry_serves_the_one_quantum_declaring_the_server(tmp_path, monkeypatch, catchers):
    """Earlier meshes: one quantum names 'b2b-db', the secrets file's entry is unscoped: it is b2b's."""
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"}})
    _only_b2b(root)
    p = Platform(root)
    assert b2b.passwords == [PW]
    assert not [x for x in p.mesh.problems if "scoped" in x.message]


def test_a_scoped_entry_wins_and_the_unscoped_one_stays_nobodys(tmp_path, monkeypatch, catchers):
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    monkeypatch.setenv("OLD_PW", "old-unscoped-pw")
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b/b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"},
                                              "b2b-db": {"user": "quanta_reader", "password_env": "OLD_PW"}})
    p = Platform(root)
    assert b2b.passwords == [PW] and evil.passwords == []
    [problem] = [x for x in p.mesh.problems if x.quantum == "evil"]
    assert "not scoped to a quantum" in problem.message and "'evil/b2b-db'" in problem.message
    assert "old-unscoped-pw" not in repr(p.mesh.problems) and PW not in repr(p.mesh.problems)


def test_an_entry_with_keys_quanta_does_not_know_is_not_sent(tmp_path, monkeypatch, catchers):
    """'quanta: [b2b]' looks like a scope but is not this mesh's form: nothing is sent on a guess."""
    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW",
                                                         "quanta": ["b2b"]}})
    _only_b2b(root)
    p = Platform(root)
    [problem] = [x for x in p.mesh.problems if x.quantum == "b2b"]
    assert "keys Quanta does not know (quanta" in problem.message and "'<quantum>/b2b-db'" in problem.message
    assert b2b.passwords == []


def test_onboarding_from_a_server_takes_the_credentials_of_the_quantum_naming_it(tmp_path, monkeypatch, catchers):
    """quanta onboard --postgres NAME: with two quanta naming a server alike, NAME must say which
    (quantum/NAME), and the credentials are that quantum's, sent to its contract's address."""
    from federation.onboarding.sources import _server_dsn

    b2b, evil = catchers
    root = shop_mesh(tmp_path / "mesh")
    monkeypatch.setenv("B2B_PW", PW)
    _b2b_and_evil(root, b2b.port, evil.port, {"b2b/b2b-db": {"user": "quanta_reader", "password_env": "B2B_PW"}})
    p = Platform(root)
    with pytest.raises(errors.ProgrammingError, match="give it as quantum/b2b-db"):
        _server_dsn(p, "b2b-db")
    assert f"port={b2b.port}" in _server_dsn(p, "b2b/b2b-db") and f"password={PW}" in _server_dsn(p, "b2b/b2b-db")
    assert "password" not in _server_dsn(p, "evil/b2b-db") and f"port={evil.port}" in _server_dsn(p, "evil/b2b-db")
