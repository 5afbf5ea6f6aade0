"""The cache of loaded meshes (catalog/loader.py): reused while every file's bytes are the same, never stale."""

from __future__ import annotations

import os
import pickle

import pytest
from meshkit import shop_mesh

from federation.catalog import loader
from federation.catalog.loader import cache_file, load_mesh


@pytest.fixture()
def mesh_dir(tmp_path, monkeypatch):
    monkeypatch.delenv("QUANTA_STATE_DIR", raising=False)
    return shop_mesh(tmp_path)


def contract_files(root):
    return sorted(root.rglob("*.odcs.yaml"))


def test_second_load_comes_from_the_cache_and_equals_the_first(mesh_dir, monkeypatch):
    first = load_mesh(mesh_dir)
    assert cache_file(mesh_dir.resolve()).exists()
    parsed = []
    real = loader.parse_yaml
    monkeypatch.setattr(loader, "parse_yaml", lambda raw: parsed.append(raw) or real(raw))
    second = load_mesh(mesh_dir)
    assert len(parsed) == 1 and parsed[0].startswith(b"name: testmesh")  # only mesh.yaml (for its data folder)
    assert second == first
    assert second is not first
    second.quanta.clear()  # a caller may change its copy: the next load is not affected
    assert load_mesh(mesh_dir) == first


def test_an_edit_of_the_same_size_and_time_is_seen(mesh_dir):
    """The cache is keyed on the files' bytes, not on (size, mtime): an edit within the file system's time
    granularity is not missed."""
    load_mesh(mesh_dir)
    path = next(p for p in contract_files(mesh_dir) if "description:" in p.read_text())
    st = path.stat()
    text = path.read_text()
    i = text.index("description:") + len("description: ")
    edited = text[:i] + ("X" if text[i] != "X" else "Y") + text[i + 1:]
    assert len(edited) == len(text)
    path.write_text(edited)
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    mesh = load_mesh(mesh_dir)
    raws = [str(c.raw) for c in mesh.contracts.values()]
    assert any(edited[i:i + 20].split("\n")[0] in r for r in raws)


def test_a_new_or_removed_file_is_seen(mesh_dir):
    before = load_mesh(mesh_dir)
    path = contract_files(mesh_dir)[0]
    text = path.read_text()
    path.unlink()
    after = load_mesh(mesh_dir)
    assert set(after.contracts) < set(before.contracts)
    path.write_text(text)
    assert load_mesh(mesh_dir) == before


def test_a_broken_cache_file_is_ignored(mesh_dir):
    first = load_mesh(mesh_dir)
    cache = cache_file(mesh_dir.resolve())
    data = cache.read_bytes()
    cache.write_bytes(data[: len(data) // 2])  # torn
    assert load_mesh(mesh_dir) == first
    key = cache.read_bytes()[:64]
    cache.write_bytes(key + pickle.dumps({"not": "a mesh"}))
    assert load_mesh(mesh_dir) == first


def test_an_unwritable_state_folder_only_means_no_cache(mesh_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("QUANTA_STATE_DIR", str(blocker / "state"))  # cannot be created
    first = load_mesh(mesh_dir)
    assert not cache_file(mesh_dir.resolve()).exists()
    assert load_mesh(mesh_dir) == first
    assert first.quanta


def test_problems_are_cached_with_their_lines(mesh_dir):
    path = contract_files(mesh_dir)[0]
    path.write_text(path.read_text().replace("apiVersion:", "apiVersion: v9\nbogusField: 1\nx_apiVersion:", 1))
    first = load_mesh(mesh_dir)
    assert first.problems and any(p.line for p in first.problems)
    second = load_mesh(mesh_dir)
    assert second.problems == first.problems
    assert second.excluded == first.excluded


YAML_CASES = [
    "a: 1\nb: 1.5\nc: .inf\nd: -.NaN\ne: ~\nf: null\ng: true\nh: False\ni: yes\nj: no\nk: on\nl: 2024-01-01\n",
    "n: 0x1F\no: 0o17\np: 017\nq: 1_000\nr: 1:30\ns: '1'\nt: \"2\"\nu: !!str 3\nv: !!int '4'\nw: !!bool yes\n",
    "base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  y: 3\nsame: *b\nlist: [*b, *b]\n",
    "? [1, 2]\n: complex key\n",
    "dup: 1\ndup: 2\n",
    "",
    "# only a comment\n",
    "- 1\n- [a, b]\n- {c: d}\n- |\n  literal\n  text\n- >\n  folded\n  text\n",
    "a: !!binary aGVsbG8=\n",
    "a: !!timestamp 2024-01-01\n",
    "a: [1, 2\n",
    "a: 1\n---\nb: 2\n",
    "a: b: c\n",
    "key with spaces: value with: colon\n'quoted key': \"esc\\tape\\u00e9\"\n",
]


@pytest.mark.parametrize("text", YAML_CASES)
def test_the_fast_yaml_constructor_builds_what_pyyaml_builds(text):
    import yaml

    from federation.catalog import yamlio

    try:
        want = ("ok", yaml.load(text, Loader=yamlio._Loader))
    except yaml.YAMLError as e:
        want = ("error", type(e))
    try:
        got = ("ok", yamlio.parse_yaml(text.encode())[0])
    except yamlio.YamlError:
        got = ("error", None)
    assert got[0] == want[0], (got, want)
    if got[0] == "ok":
        assert repr(got[1]) == repr(want[1])
        if isinstance(want[1], dict) and "same" in want[1]:  # aliases are the same object, as in PyYAML
            assert got[1]["same"] is got[1]["base"] and got[1]["list"][0] is got[1]["base"]
