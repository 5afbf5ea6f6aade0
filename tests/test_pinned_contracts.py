"""A pinned version of an earlier major contract version is read through the contract it was published
under: its columns, names and types; masks follow the stricter of that contract's classification and
today's."""

from __future__ import annotations

import pyarrow as pa
import pytest
import yaml
from onboardkit import items, lab_mesh

from federation import errors
from federation.onboarding import onboard
from federation.platform import Platform


def v2_contract(data: dict) -> None:
    """2.0.0: score renamed rating (a breaking change), code removed, email no longer pii, kind now pii."""
    data["version"] = "2.0.0"
    props = []
    for p in data["schema"][0]["properties"]:
        if p["name"] == "code":
            continue
        if p["name"] == "score":
            p.update(name="rating", physicalName="score")  # a rename: the data keeps its name
        if p["name"] == "email":
            p.pop("classification")
        if p["name"] == "kind":
            p["classification"] = "pii"
        props.append(p)
    data["schema"][0]["properties"] = props
    data["schema"][0]["quality"][1]["query"] = "select count(*) from {object} where rating > 99"


def test_pinned_old_major_serves_its_own_contract(tmp_path):
    root = lab_mesh(tmp_path / "lab", versions_kept=1)
    p = Platform(root)
    dev = p.principal("dev")
    assert onboard(p, "lab.items", items(5), dev).version == 1  # under contract 1.0.0
    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    v2_contract(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    p = Platform(root)
    batch = items(8).drop_columns(["code"]).rename_columns(["id", "name", "rating", "mail", "kind"])
    report = onboard(p, "lab.items", batch, dev)
    assert report.version == 2 and report.status == "published"
    onboard(p, "lab.items", batch, dev)  # v3: v2 expires (versions_kept 1), v1 stays as the old major's newest

    for platform in (p, Platform(root)):  # the running platform and a fresh one
        def read(sql, user="ana"):
            return platform.query(sql, platform.principal(user))

        old = read('select * from lab."items@v1" order by id')
        assert old.columns == ["id", "name", "code", "score", "email", "kind"]
        current = read("select * from lab.items order by id")
        assert current.columns == ["id", "name", "rating", "email", "kind"]
        types = dict(read('describe select * from lab."items@v1"').fetchall()[i][:2] for i in range(6))
        assert types["score"] == "DOUBLE" and types["code"] == "VARCHAR"
        assert read('select code, score from lab."items@v1" where id = 2').fetchall() == [("ABC", 2.0)]
        with pytest.raises(errors.Error, match="rating"):
            read('select rating from lab."items@v1"')
        # email: pii in 1.0.0 only; kind: pii in 2.0.0 only. The pinned read masks both (the stricter),
        # the current read masks kind only.
        assert read('select distinct email, kind from lab."items@v1"').fetchall() == [("****", "****")]
        assert read("select email, kind from lab.items where id = 1").fetchall() == [("user1@example.com", "****")]
        assert read('select email, kind from lab."items@v1" where id = 1', "pia").fetchall() == [
            ("user1@example.com", "a")]
        assert {r["column"] for r in old.policies if r["kind"] == "mask"} == {"email", "kind"}
    versions = p.query("select version, contract_version, status from system.versions order by 1",
                       p.principal("ana")).fetchall()
    assert versions == [(1, "1.0.0", "published"), (2, "2.0.0", "expired"), (3, "2.0.0", "published")]


def test_pinned_version_of_the_same_contract_is_unchanged(tmp_path):
    p = Platform(lab_mesh(tmp_path / "lab"))
    onboard(p, "lab.items", items(3), p.principal("dev"))
    onboard(p, "lab.items", items(4, kind=pa.array(["c"] * 4)), p.principal("dev"))
    fresh = Platform(p.path)
    pinned = fresh.query('select * from lab."items@v1"', fresh.principal("ana"))
    assert pinned.columns == fresh.query("select * from lab.items", fresh.principal("ana")).columns
    assert fresh.query('select distinct email from lab."items@v2"', fresh.principal("ana")).fetchall() == [("****",)]
