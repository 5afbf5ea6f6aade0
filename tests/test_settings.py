"""Mesh settings, declared once (federation/settings.py): unknown keys and wrongly typed values are
problems of mesh.yaml naming the key, the file, the YAML path and the line; callers read typed values
with the declared defaults."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from meshkit import mesh_yaml, shop_mesh

from federation import CatalogError
from federation.catalog import load_mesh
from federation.engine.duckdb_backend import DuckDBBackend
from federation.platform import Platform
from federation.settings import DEFAULTS, SETTINGS, Settings, table

ROOT = Path(__file__).resolve().parent.parent
QUANTA = shutil.which("quanta") or str(Path(sys.executable).parent / "quanta")


def with_settings(root: Path, settings) -> Path:
    shop_mesh(root)
    mesh_yaml(root, settings=settings)
    return root


def problems(root: Path) -> list:
    with pytest.raises(CatalogError) as e:
        load_mesh(root)
    assert e.value.message == "invalid mesh.yaml"
    return e.value.problems


@pytest.mark.parametrize("key, value, says", [
    ("memory_limit", "banana", "must be a memory size"),
    ("memory_limit", "80%", "must be a memory size"),
    ("memory_limit", "1KB", "at least 16MiB"),
    ("threads", "many", "must be an integer, not 'many'"),
    ("threads", 0, "at least 1"),
    ("threads", True, "must be an integer, not true"),
    ("query_timeout_seconds", -1, "must be above 0, not -1"),
    ("query_timeout_seconds", "5m", "must be a number"),
    ("max_sql_subquery_depth", 41, "at most 40"),
    ("onboarding_on_error", "ignore", "one of reject, quarantine"),
    ("openlineage", {"path": "x"}, "unknown key 'path'"),
    ("openlineage", "events.json", "must be a mapping"),
])
def test_a_wrongly_typed_setting_is_a_problem_naming_key_file_path_and_line(tmp_path, key, value, says):
    root = with_settings(tmp_path, {"threads": 2, key: value} if key != "threads" else {key: value})
    [p] = problems(root)
    assert (p.file, p.path, p.severity) == ("mesh.yaml", f"settings.{key}", "error")
    assert f"setting {key!r}" in p.message and says in p.message, p.message
    text = (root / "mesh.yaml").read_text().splitlines()
    assert text[p.line - 1].strip().startswith(f"{key}:")  # the line of the key itself


def test_an_unknown_setting_is_a_problem_with_a_suggestion(tmp_path):
    root = with_settings(tmp_path, {"thread": 4, "query_timeout": 10, "colour": "blue"})
    found = {p.path: p.message for p in problems(root)}
    assert found["settings.thread"] == "unknown setting 'thread' (did you mean 'threads'?)"
    assert found["settings.query_timeout"] == "unknown setting 'query_timeout' (did you mean 'query_timeout_seconds'?)"
    assert found["settings.colour"].startswith("unknown setting 'colour' (settings: memory_limit, threads,")


def test_settings_that_are_not_a_mapping(tmp_path):
    [p] = problems(with_settings(tmp_path, ["threads", 2]))
    assert p.path == "settings" and "must be a mapping" in p.message


def test_settings_are_typed_with_the_declared_defaults(tmp_path):
    mesh = load_mesh(with_settings(tmp_path, {"threads": 3, "query_timeout_seconds": 7, "versions_kept": 2.0}))
    s = mesh.settings
    assert isinstance(s, Settings) and set(s) == {x.name for x in SETTINGS}
    assert s["threads"] == 3 and s["versions_kept"] == 2 and isinstance(s["versions_kept"], int)
    assert s["query_timeout_seconds"] == 7.0 and isinstance(s["query_timeout_seconds"], float)
    assert s["max_sql_bytes"] == 262_144 and s["warehouse"] == "warehouse" and s["memory_limit"] is None
    assert s.explicit == {"threads": 3, "query_timeout_seconds": 7.0, "versions_kept": 2}
    with pytest.raises(KeyError):
        s["no_such_setting"]
    assert load_mesh(shop_mesh(tmp_path / "plain")).settings == DEFAULTS


def test_the_engine_takes_threads_and_memory_limit_from_the_settings():
    backend = DuckDBBackend(Settings.of({"threads": 3, "memory_limit": "512MB"}))
    got = backend.db.sql("select current_setting('threads'), current_setting('memory_limit')").fetchone()
    assert got == (3, "488.2 MiB")
    with pytest.raises(ValueError, match="setting 'memory_limit' must be a memory size"):
        DuckDBBackend({"memory_limit": "lots"})


def test_every_setting_the_project_uses_is_declared():
    """The demo mesh, the README's example and the benchmarks use declared settings only."""
    demo = yaml.safe_load((ROOT / "catalogs" / "greatparts" / "mesh.yaml").read_text())
    readme = (ROOT / "README.md").read_text()
    block = re.search(r"\*\*`mesh.yaml`\*\*\n\n```yaml\n(.*?)```", readme, re.S).group(1)
    used = set(demo["settings"]) | set(yaml.safe_load(block)["settings"])
    for bench in (ROOT / "benchmarks").glob("*.py"):
        used |= set(re.findall(r'"settings": \{"(\w+)"', bench.read_text()))
    assert used and used <= set(DEFAULTS), used - set(DEFAULTS)
    assert Settings.of(yaml.safe_load(block)["settings"])  # and the README's values are valid


def test_the_readme_table_is_the_declarations():
    assert table() in (ROOT / "README.md").read_text()


def test_cli_validate_and_query_report_a_bad_setting_without_a_traceback(tmp_path):
    root = with_settings(tmp_path, {"memory_limit": "banana", "threads": 2})
    env = {k: v for k, v in os.environ.items() if k != "QUANTA_MESH"}
    for args in (["validate", str(root)], ["query", "--mesh", str(root), "select 1"]):
        p = subprocess.run([QUANTA, *args], capture_output=True, text=True, env=env, timeout=120)
        out = p.stdout + p.stderr
        assert p.returncode == 1 and "Traceback" not in out, out
        assert "mesh.yaml:" in out and "settings.memory_limit" in out and "'banana'" in out, out


def test_system_settings_lists_every_setting_with_value_and_default(tmp_path):
    root = with_settings(tmp_path, {"threads": 3, "openlineage": {"url": "https://bob:secret@ol.example/api?key=k"}})
    p = Platform(root)
    rows = p.query("select setting, value, \"default\", is_set, type from system.settings",
                   p.principal("ana")).fetchall()
    assert [r[0] for r in rows] == [s.name for s in SETTINGS]
    by = {r[0]: r[1:] for r in rows}
    assert by["threads"] == ("3", "2", True, "integer")
    assert by["query_timeout_seconds"] == ("300", "300", False, "number")
    assert by["memory_limit"] == (None, None, False, "memory size")
    assert by["openlineage"][0] == '{"url": "https://ol.example/api"}'  # no user, password or query string
