"""ODCS 3.1 and 3.2, ODPS 1.0 and 1.1 side by side: each document validated against the schema of its own
apiVersion, and what 3.2/1.1 add put to use (enums as quality rules, synonyms in the dictionary search,
deprecated objects and properties warning, the ODPS product type, ``${VAR}`` variables)."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
import yaml
from meshkit import (
    OPEN_GOVERNANCE,
    contract,
    local_server,
    mesh_yaml,
    product,
    prop,
    sql_to_file,
    write_yaml,
)
from onboardkit import items, lab_mesh

from federation.catalog.loader import _validator, load_mesh
from federation.catalog.yamlio import parse_yaml
from federation.onboarding import control, onboard
from federation.onboarding.pipeline import OnboardingRejected
from federation.platform import Platform

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "standards"
ORDERS_DIR = "STD_TEST_ORDERS_DIR"  # the v3.2 contract's server path is ${STD_TEST_ORDERS_DIR}/orders.parquet


def new_contract(cid: str, schema: list[dict], **extra) -> dict:
    return contract(cid, schema, apiVersion="v3.2.0", **extra)


def side_by_side(root: Path) -> Path:
    """Quantum ``legacy`` (ODPS v1.0.0, ODCS v3.1.0) and quantum ``shop`` (ODPS v1.1.0, ODCS v3.2.0: an enum, a
    deprecated property, synonyms, a ${VAR} in its server path) in one mesh; ``shop`` reads nothing of legacy,
    a query joins both."""
    mesh_yaml(root)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE)
    data = root / "data"
    sql_to_file(data / "legacy" / "customers.parquet",
                "select i as id, 'name' || i as full_name from range(1, 11) t(i)")
    sql_to_file(data / "shopdata" / "orders.parquet",
                "select i as order_id, (i % 10) + 1 as customer_id, "
                "case when i = 7 then 'lost' else ['open', 'shipped', 'cancelled'][i % 3 + 1] end as status, "
                "'L' || i as legacy_code from range(0, 20) t(i)")
    write_yaml(root / "products" / "legacy.odps.yaml", product("legacy", outputs=["legacy-contract"]))
    write_yaml(root / "contracts" / "legacy.odcs.yaml", contract("legacy-contract", [{
        "name": "customers", "properties": [prop("id", "integer", "bigint", primaryKey=True),
                                            prop("full_name")]}],
        servers=[local_server("legacy/{model}.parquet")]))
    write_yaml(root / "products" / "shop.odps.yaml", product(
        "shop", outputs=["shop-contract"], apiVersion="v1.1.0", type="consumerAligned",
        synonyms=[{"synonym": "storefront", "locale": "en"}])
        | {"outputPorts": [{"name": "orders", "contractId": "shop-contract", "synonyms": [{"synonym": "webshop"}]}]})
    write_yaml(root / "contracts" / "shop.odcs.yaml", new_contract("shop-contract", [{
        "name": "orders", "description": "Orders of the shop",
        "synonyms": [{"synonym": "purchases"}],
        "properties": [
            prop("order_id", "integer", "bigint", primaryKey=True),
            prop("customer_id", "integer", "bigint", synonyms=[{"synonym": "client number", "source": "crm"}]),
            prop("status", enum=[{"value": "open", "label": "Open"}, {"value": "shipped"}, {"value": "cancelled"}]),
            prop("legacy_code", deprecated=True, description="the code of the old till system"),
        ]}], servers=[local_server(f"${{{ORDERS_DIR}}}/orders.parquet")]))
    return root


@pytest.fixture(scope="module")
def mesh_env():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ORDERS_DIR, "shopdata")
        yield mp


@pytest.fixture(scope="module")
def both(tmp_path_factory, mesh_env) -> Platform:
    return Platform(side_by_side(tmp_path_factory.mktemp("standards")))


def q(p: Platform, sql: str, user: str = "ana"):
    return p.query(sql, p.principal(user)).fetchall()


# -- each version against its own schema ---------------------------------------------------------------


def test_a_32_field_is_refused_by_the_31_schema_and_accepted_by_32():
    doc = new_contract("c", [{"name": "t", "synonyms": [{"synonym": "table"}], "properties": [
        prop("status", enum=[{"value": "a"}], deprecated=True)]}])
    assert list(_validator("odcs").iter_errors(doc)) == []
    old = dict(doc, apiVersion="v3.1.0")
    errors = list(_validator("odcs").iter_errors(old))
    assert errors and all(e.instance_path[:2] == ["schema", 0] for e in errors)
    # ODPS: ``type`` and ``synonyms`` are v1.1
    p = product("x", type="aggregate", synonyms=[{"synonym": "y"}])
    assert list(_validator("odps").iter_errors(p)) != []
    assert list(_validator("odps").iter_errors(dict(p, apiVersion="v1.1.0"))) == []
    # v1.1 no longer requires status; v1.0 does
    p = {k: v for k, v in product("x").items() if k != "status"}
    assert list(_validator("odps").iter_errors(p)) != []
    assert list(_validator("odps").iter_errors(dict(p, apiVersion="v1.1.0"))) == []


@pytest.mark.skipif(not SHARED.is_dir(), reason="the shared standards folder is not here")
def test_official_examples_validate_against_their_own_version():
    files = sorted((SHARED / "odcs" / "examples").rglob("*.odcs.yaml"))
    assert files
    versions = set()
    for f in files:
        doc, _ = parse_yaml(f.read_bytes())  # as the loader reads YAML (dates stay text)
        versions.add(doc["apiVersion"])
        assert [e.message for e in _validator("odcs").iter_errors(doc)] == [], f
    # the same documents said to be v3.2.0 still validate: 3.2 only adds
    for f in files:
        doc = dict(parse_yaml(f.read_bytes())[0], apiVersion="v3.2.0")
        assert [e.message for e in _validator("odcs").iter_errors(doc)] == [], f
    assert versions
    # ODPS: the examples still say v0.9.0 (read with the v1.0.0 schema), and are valid v1.1.0 products too
    for f in sorted((SHARED / "odps" / "examples").glob("*.odps.yaml")):
        doc, _ = parse_yaml(f.read_bytes())
        assert [e.message for e in _validator("odps").iter_errors(doc)] == [], f
        assert [e.message for e in _validator("odps").iter_errors(dict(doc, apiVersion="v1.1.0"))] == [], f


def test_an_unknown_api_version_names_file_path_and_accepted_versions(tmp_path):
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    path.write_text(path.read_text().replace("apiVersion: v3.2.0", "apiVersion: v3.9.0"))
    product_path = root / "products" / "legacy.odps.yaml"
    product_path.write_text(product_path.read_text().replace("apiVersion: v1.0.0", "apiVersion: v2.0.0"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ORDERS_DIR, "shopdata")
        mesh = load_mesh(root)
    problem = next(p for p in mesh.errors if p.file == "contracts/shop.odcs.yaml")
    assert problem.path == "apiVersion" and problem.line == 1
    assert "'v3.9.0'" in problem.message and "v3.2.0, v3.1.0" in problem.message
    problem = next(p for p in mesh.errors if p.file == "products/legacy.odps.yaml")
    assert problem.path == "apiVersion" and "'v2.0.0'" in problem.message and "v1.1.0, v1.0.0" in problem.message
    assert set(mesh.excluded) == {"shop", "legacy"}


# -- side by side ---------------------------------------------------------------------------------------


def test_old_and_new_versions_load_validate_and_query_side_by_side(both):
    assert both.mesh.errors == [] and set(both.mesh.quanta) == {"legacy", "shop"}
    assert q(both, "select contract_id, api_version from system.contracts order by 1") == [
        ("legacy-contract", "v3.1.0"), ("shop-contract", "v3.2.0")]
    assert q(both, "select quantum, api_version, product_type from system.quanta order by 1") == [
        ("legacy", "v1.0.0", None), ("shop", "v1.1.0", "consumerAligned")]
    rows = q(both, "select c.full_name, count(*) from shop.orders o join legacy.customers c on o.customer_id = c.id "
                   "group by all order by 1 limit 2")
    assert rows == [("name1", 2), ("name10", 2)]


# -- enums -----------------------------------------------------------------------------------------------


def test_enum_values_are_shown_and_a_value_outside_fails_the_quality_check(both):
    assert q(both, "select \"column\", enum_values from system.columns where quantum = 'shop' order by ordinal") == [
        ("order_id", None), ("customer_id", None), ("status", ["open", "shipped", "cancelled"]),
        ("legacy_code", None)]
    result = control.check(both, "shop.orders", both.principal("olivia"))  # the owner
    enum = next(r for r in result.results if r.rule == "status.enum")
    assert (enum.status, enum.measured) == ("fail", 1)  # the one 'lost' order


def test_enum_rejects_an_onboarding_batch(tmp_path):
    root = lab_mesh(tmp_path / "lab")
    path = root / "contracts" / "lab.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["apiVersion"] = "v3.2.0"
    kind = next(p for p in doc["schema"][0]["properties"] if p["name"] == "kind")
    del kind["quality"]
    kind["enum"] = [{"value": "a"}, {"value": "b"}, {"value": "c", "description": "the third kind"}]
    write_yaml(path, doc)
    lab = Platform(root)
    assert lab.mesh.errors == []
    dev = lab.principal("dev")
    assert onboard(lab, "lab.items", items(6), dev).status == "published"
    with pytest.raises(OnboardingRejected, match=r"rule kind\.enum failed: measured 2"):
        onboard(lab, "lab.items", items(6, kind=["a", "b", "zz", "c", "zz", "a"]), dev)
    assert q(lab, "select count(*) from lab.items where kind = 'zz'") == [(0,)]


# -- synonyms ---------------------------------------------------------------------------------------------


def test_synonyms_are_found_by_the_http_dictionary_search(both):
    from federation.server.http import Server, create_app

    server = Server(create_app(both), port=0).start()
    try:
        def search(text):
            r = requests.get(server.url + "/api/v1/search", params={"q": text}, timeout=60)
            assert r.status_code == 200
            return r.json()

        hits = search("purchases")["datasets"]
        assert [(h["quantum"], h["dataset"], h["matched"]) for h in hits] == [("shop", "orders", ["synonyms"])]
        hits = search("client number")["datasets"]
        assert [(h["quantum"], h["dataset"]) for h in hits] == [("shop", "orders")]
        assert hits[0]["matched"] == ["column customer_id"]
        quanta = search("storefront")["quanta"]
        assert [(h["quantum"], h["matched"]) for h in quanta] == [("shop", ["synonyms"])]
        assert [h["quantum"] for h in search("webshop")["quanta"]] == ["shop"]  # an output port's synonym
        # the same words through the quanta listing's filter
        r = requests.get(server.url + "/api/v1/quanta", params={"q": "storefront"}, timeout=60)
        assert [x["quantum"] for x in r.json()["quanta"]] == ["shop"]
        assert search("nothingsynonym")["datasets"] == []
    finally:
        server.stop()
    assert q(both, "select synonyms from system.datasets where dataset = 'orders'") == [(["purchases"],)]
    assert q(both, "select synonyms from system.columns where \"column\" = 'customer_id'") == [(["client number"],)]


# -- deprecated -------------------------------------------------------------------------------------------


def test_a_deprecated_property_warns_when_read(both):
    warning = "shop.orders.legacy_code is deprecated (contract shop-contract)"
    for sql in ("select legacy_code from shop.orders", "select * from shop.orders",
                "select count(*) from shop.orders where legacy_code like 'L1%'"):
        result = both.query(sql, both.principal("ana"))
        try:
            assert warning in result.warnings, sql
        finally:
            result.close()
    result = both.query("select order_id, status from shop.orders", both.principal("ana"))
    try:
        assert not any("deprecated" in w for w in result.warnings)
    finally:
        result.close()
    assert q(both, "select \"column\" from system.columns where deprecated") == [("legacy_code",)]


def test_a_deprecated_schema_object_and_product_warn(tmp_path, monkeypatch):
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0]["deprecated"] = True
    write_yaml(path, doc)
    ppath = root / "products" / "shop.odps.yaml"
    write_yaml(ppath, dict(yaml.safe_load(ppath.read_text()), deprecated=True))
    p = Platform(root)
    result = p.query("select order_id from shop.orders", p.principal("ana"))
    try:
        assert "shop.orders is deprecated (contract shop-contract)" in result.warnings
        assert "shop.orders: data product shop is deprecated" in result.warnings
    finally:
        result.close()
    result = p.query("select id from legacy.customers", p.principal("ana"))
    try:
        assert result.warnings == ()
    finally:
        result.close()


# -- ${VAR} variables ------------------------------------------------------------------------------------


def test_variables_resolve_from_the_environment_and_follow_it(tmp_path, monkeypatch):
    root = side_by_side(tmp_path / "m")
    sql_to_file(root / "data" / "other" / "orders.parquet",
                "select 1 as order_id, 1 as customer_id, 'open' as status, 'x' as legacy_code")
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    first = load_mesh(root)
    assert first.dataset("shop", "orders").source.location.endswith("/data/shopdata/orders.parquet")
    # the file keeps its token (what an edit starts from); the value is not kept in the mesh's records
    assert first.contracts["shop-contract"].as_written["servers"][0]["path"] == "${STD_TEST_ORDERS_DIR}/orders.parquet"
    assert "shopdata" not in repr(first.variables)
    monkeypatch.setenv(ORDERS_DIR, "other")  # the same files: the cached mesh is not reused
    second = load_mesh(root)
    assert second.dataset("shop", "orders").source.location.endswith("/data/other/orders.parquet")
    assert second.version != first.version
    p = Platform(root)
    assert q(p, "select count(*) from shop.orders") == [(1,)]


def test_a_default_is_used_when_the_variable_is_unset(tmp_path, monkeypatch):
    monkeypatch.delenv(ORDERS_DIR, raising=False)
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    path.write_text(path.read_text().replace("${STD_TEST_ORDERS_DIR}", "${STD_TEST_ORDERS_DIR:-shopdata}"))
    mesh = load_mesh(root)
    assert mesh.errors == [] and mesh.dataset("shop", "orders").source.location.endswith("/shopdata/orders.parquet")


def test_an_unset_variable_names_file_path_and_variable_and_never_a_value(tmp_path, monkeypatch):
    secret = "s3cr3t-value-never-shown"
    monkeypatch.delenv(ORDERS_DIR, raising=False)
    monkeypatch.setenv("STD_TEST_SECRET", secret)
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["servers"].append({"server": "other", "type": "${STD_TEST_SECRET}", "description": "${STD_TEST_SECRET}"})
    write_yaml(path, doc)
    mesh = load_mesh(root)
    unset = [p for p in mesh.errors if "STD_TEST_ORDERS_DIR" in p.message]
    assert len(unset) == 1
    assert (unset[0].file, unset[0].path) == ("contracts/shop.odcs.yaml", "servers[0].path")
    assert "${STD_TEST_ORDERS_DIR} is not set" in unset[0].message and unset[0].line
    assert "shop" in mesh.excluded and "legacy" in mesh.quanta
    # a server type that is a variable is checked as written: the error shows the token, never its value
    assert any(p.path.startswith("servers[1]") for p in mesh.errors)
    assert all(secret not in str(p) for p in mesh.problems)
    assert secret not in mesh.excluded["shop"]


def test_an_old_version_has_no_variables(tmp_path):
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "legacy.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["description"] = {"purpose": "costs ${NOT_A_VARIABLE_IN_31}"}
    write_yaml(path, doc)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(ORDERS_DIR, "shopdata")
        mesh = load_mesh(root)
    assert mesh.errors == []
    assert mesh.contracts["legacy-contract"].raw["description"]["purpose"] == "costs ${NOT_A_VARIABLE_IN_31}"


def test_resolution_leaves_keys_and_other_types_alone():
    from federation.catalog.standards import resolve_variables

    doc = {"${A}": "${A}-${B:-two}", "n": 3, "l": ["${A}", True, None]}
    out, used, unset = resolve_variables(doc, {"A": "one"})
    assert out == {"${A}": "one-two", "n": 3, "l": ["one", True, None]}
    assert used == {"A": "one", "B": None} and unset == []
    assert doc["l"][0] == "${A}"  # the document itself is unchanged
    _, _, unset = resolve_variables({"x": [{"y": "${C}"}]}, {})
    assert [(u.path, u.name) for u in unset] == [(["x", 0, "y"], "C")]


def test_the_demo_mesh_is_on_the_new_versions(demo_path):
    mesh = load_mesh(demo_path)
    assert mesh.errors == []
    assert {c.api_version for c in mesh.contracts.values()} == {"v3.2.0"}
    assert {q.api_version for q in mesh.quanta.values()} == {"v1.1.0"}
    assert mesh.quanta["sales_analytics"].type == "aggregate"
    assert mesh.dataset("loyalty", "members").column("tier").enum_values == ("bronze", "silver", "gold", "platinum")


def test_map_and_vector_logical_types(tmp_path):
    root = tmp_path / "m"
    mesh_yaml(root)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE)
    sql_to_file(root / "data" / "docs.parquet",
                "select i as id, map(['lang'], ['en' || i]) as labels, [i, 0.5, 1]::float[3] as embedding "
                "from range(3) t(i)")
    write_yaml(root / "products" / "ml.odps.yaml", product("ml", outputs=["ml-contract"], apiVersion="v1.1.0"))
    write_yaml(root / "contracts" / "ml.odcs.yaml", new_contract("ml-contract", [{
        "name": "docs", "properties": [
            prop("id", "integer"),
            prop("labels", "map", map={"key": {"logicalType": "string"}, "value": {"logicalType": "string"}}),
            prop("embedding", "vector", logicalTypeOptions={"dimensions": 3, "elementType": "float32"}),
        ]}], servers=[local_server("docs.parquet")]))
    p = Platform(root)
    assert p.mesh.errors == []
    assert q(p, "select \"column\", data_type from system.columns order by ordinal") == [
        ("id", "BIGINT"), ("labels", "MAP(VARCHAR, VARCHAR)"), ("embedding", "FLOAT[3]")]
    assert q(p, "select labels['lang'], embedding[2] from ml.docs order by id limit 1") == [("en0", 0.5)]


def test_writing_rules_back_keeps_the_variables_as_written(tmp_path, monkeypatch):
    from federation.onboarding import contracts

    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    p = Platform(side_by_side(tmp_path / "m"))
    owner = p.principal("olivia")
    control.set_rules(p, "shop.orders", [{"metric": "nullValues", "column": "status", "mustBe": 0}], owner)
    shown = contracts.served_contract_text(p, "shop-contract")
    assert "${STD_TEST_ORDERS_DIR}/orders.parquet" in shown and "shopdata" not in shown
    path = contracts.write_rules(p, "shop.orders", owner)
    text = path.read_text()
    assert "${STD_TEST_ORDERS_DIR}/orders.parquet" in text and "shopdata" not in text
    assert "nullValues" in text
    fresh = Platform(p.path)
    assert fresh.mesh.errors == [] and q(fresh, "select count(*) from shop.orders") == [(20,)]


def test_a_value_from_a_variable_is_not_echoed_by_later_checks(tmp_path, monkeypatch):
    secret = "csv-s3cr3t-format"
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    monkeypatch.setenv("STD_TEST_FORMAT", secret)
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["servers"][0]["format"] = "${STD_TEST_FORMAT}"  # valid for the schema, refused by Quanta afterwards
    write_yaml(path, doc)
    mesh = load_mesh(root)
    problem = next(p for p in mesh.errors if p.path == "servers[0].format")
    assert "${STD_TEST_FORMAT}" in problem.message and secret not in str(mesh.problems)
