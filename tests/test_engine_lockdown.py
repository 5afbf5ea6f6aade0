"""The engine's own lock-down, the second wall behind the rewrite: SQL that reached DuckDB directly (as if
the pipeline let something through) still cannot read or write files outside the mesh's data, change the
configuration, or load code."""

from __future__ import annotations

import pytest
from meshkit import shop_mesh

from federation import errors
from federation.platform import Platform


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    return Platform(shop_mesh(tmp_path_factory.mktemp("locked"))).state.backend


def run(backend, sql):
    execution = backend.execute(sql)
    try:
        return execution.reader().read_all().to_pylist()
    finally:
        execution.close()


@pytest.mark.parametrize("sql", [
    "select * from read_text('/etc/passwd')",
    "select * from read_csv('/etc/passwd')",
    "copy (select 1) to '/tmp/quanta-lockdown-test.csv'",
    "attach '/tmp/quanta-lockdown-test.duckdb' as elsewhere",
    "set enable_external_access = true",
    "set threads = 64",
    "set lock_configuration = false",
    "install httpfs",
    "load '/tmp/evil.duckdb_extension'",
])
def test_the_engine_refuses_what_the_rewrite_would(backend, sql, tmp_path):
    with pytest.raises(errors.Error):
        run(backend, sql)
    import os

    assert not os.path.exists("/tmp/quanta-lockdown-test.csv")


def test_the_engine_still_reads_the_mesh_data(backend):
    assert run(backend, "select count(*) as n from memory.shop.orders") == [{"n": 100}]
    settings = dict((r["name"], r["value"]) for r in run(
        backend, "select name, value from duckdb_settings() where name in "
                 "('enable_external_access', 'lock_configuration', 'autoload_known_extensions')"))
    assert settings == {"enable_external_access": "false", "lock_configuration": "true",
                        "autoload_known_extensions": "false"}
