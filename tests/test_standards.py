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
from federation.errors import CatalogError
from federation.onboarding import control, onboard
from federation.onboarding.pipeline import OnboardingRejected
from federation.platform import Platform

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "standards"
ORDERS_DIR = "STD_TEST_ORDERS_DIR"  # the v3.2 contract's server path is ${STD_TEST_ORDERS_DIR}/orders.parquet
# the variables the test mesh lets its contracts read (settings: contract_variables)
ALLOWED = [ORDERS_DIR, "STD_TEST_FORMAT", "STD_TEST_DESC"]


def new_contract(cid: str, schema: list[dict], **extra) -> dict:
    return contract(cid, schema, apiVersion="v3.2.0", **extra)


def side_by_side(root: Path) -> Path:
    """Quantum ``legacy`` (ODPS v1.0.0, ODCS v3.1.0) and quantum ``shop`` (ODPS v1.1.0, ODCS v3.2.0: an enum, a
    deprecated property, synonyms, a ${VAR} in its server path) in one mesh; ``shop`` reads nothing of legacy,
    a query joins both."""
    mesh_yaml(root, settings={"contract_variables": ALLOWED})
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
    from federation.catalog.standards import VariablePolicy, resolve_variables

    policy = VariablePolicy(("A", "B", "C"), places=("${A}", "l", "x"))
    doc = {"${A}": "${A}-${B:-two}", "n": 3, "l": ["${A}", True, None]}
    out, used, unset = resolve_variables(doc, {"A": "one"}, policy)
    assert out == {"${A}": "one-two", "n": 3, "l": ["one", True, None]}
    assert used == {"A": "one", "B": None} and unset == []
    assert doc["l"][0] == "${A}"  # the document itself is unchanged
    _, _, unset = resolve_variables({"x": [{"y": "${C}"}]}, {}, policy)
    assert [(u.path, u.name) for u in unset] == [(["x", 0, "y"], "C")]


def test_a_policy_resolves_only_what_it_allows():
    from federation.catalog.standards import (
        RefusedVariable,
        VariablePolicy,
        resolve_variables,
    )

    env = {"PGPASSWORD": "pw-value-1", "GP_HOST": "db1", "GP_PORT": "5432", "OTHER": "other-value-2",
           "GP_TOKEN": "token-value-3", "GP_HOOK": "hook-value-4"}
    doc = {"servers": [{"host": "${GP_HOST}", "port": "${GP_PORT}", "a": "${OTHER:-d}", "b": "${PGPASSWORD}",
                        "c": "${GP_TOKEN}", "d": "${GP_HOOK}"}], "description": "${GP_HOST}"}
    # nothing is allowed by default: every token stays as written, the environment is never read
    out, used, problems = resolve_variables(doc, env)
    assert out == doc and used == {} and all(isinstance(p, RefusedVariable) for p in problems)
    policy = VariablePolicy(("GP_*", "PGPASSWORD"), frozenset({"GP_HOOK"}), ("servers",))
    out, used, problems = resolve_variables(doc, env, policy)
    server = out["servers"][0]
    assert (server["host"], server["port"]) == ("db1", "5432") and used == {"GP_HOST": "db1", "GP_PORT": "5432"}
    assert (server["a"], server["b"], server["c"], server["d"]) == ("${OTHER:-d}", "${PGPASSWORD}", "${GP_TOKEN}",
                                                                    "${GP_HOOK}")
    assert out["description"] == "${GP_HOST}"  # outside the servers block: never resolved
    why = {p.name + "@" + str(p.path[-1]): p.reason for p in problems}
    assert "does not allow" in why["OTHER@a"]  # a default does not make an undeclared variable acceptable
    assert "secret" in why["PGPASSWORD@b"] and "secret" in why["GP_TOKEN@c"]  # listed or matched: never
    assert "mesh's secrets" in why["GP_HOOK@d"]
    assert "servers block" in why["GP_HOST@description"]
    assert not any(f"value-{i}" in str(why) for i in range(1, 5))


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


# -- which variables a contract may read (settings: contract_variables) ------------------------------------

LEAKS = {"PGPASSWORD": "pg-s3cr3t-9f41", "AWS_SECRET_ACCESS_KEY": "aws-s3cr3t-77ab", "STD_TEST_DESC": "desc-v4lue-31c",
         "STD_TEST_UNLISTED": "unlisted-v4lue-5d0"}


def leaky(root: Path) -> Path:
    """The side-by-side mesh whose shop contract tries to read the server's secrets: an undeclared secret in a
    description, a declared variable outside the servers block, an undeclared one in the server block."""
    side_by_side(root)
    path = root / "contracts" / "shop.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["schema"][0]["description"] = "Orders ${PGPASSWORD}"
    doc["schema"][0]["properties"][0]["description"] = "${STD_TEST_DESC}"  # listed, but not in servers
    doc["servers"][0]["description"] = "${AWS_SECRET_ACCESS_KEY:-none}"
    doc["servers"][0]["environment"] = "${STD_TEST_UNLISTED}"
    write_yaml(path, doc)
    return root


def test_an_undeclared_secret_is_refused_and_its_value_never_served(tmp_path, monkeypatch):
    from federation.server.http import Server, create_app

    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    for name, value in LEAKS.items():
        monkeypatch.setenv(name, value)
    p = Platform(leaky(tmp_path / "m"))
    refused = {(e.file, e.path): e.message for e in p.mesh.errors if "refused" in e.message}
    assert set(refused) == {("contracts/shop.odcs.yaml", "schema[0].description"),
                            ("contracts/shop.odcs.yaml", "schema[0].properties[0].description"),
                            ("contracts/shop.odcs.yaml", "servers[0].description"),
                            ("contracts/shop.odcs.yaml", "servers[0].environment")}
    assert "${PGPASSWORD} is refused" in refused[("contracts/shop.odcs.yaml", "schema[0].description")]
    assert "servers block" in refused[("contracts/shop.odcs.yaml", "schema[0].properties[0].description")]
    assert "${STD_TEST_UNLISTED} is refused" in refused[("contracts/shop.odcs.yaml", "servers[0].environment")]
    assert "contract_variables" in refused[("contracts/shop.odcs.yaml", "servers[0].environment")]
    assert "shop" in p.mesh.excluded and "legacy" in p.mesh.quanta  # the quantum is not served, the others are
    # by construction: the model never holds a refused variable's value
    assert "${PGPASSWORD}" in p.mesh.contracts["shop-contract"].raw["schema"][0]["description"]
    seen = [str(p.mesh.problems), str(p.mesh.excluded), repr(p.mesh.contracts), repr(p.mesh.variables)]
    seen += [str(q(p, f"select * from system.{t}")) for t in ("quanta", "datasets", "columns", "ports")]
    assert q(p, "select quantum from system.datasets") == [("legacy", "customers")[:1]]
    server = Server(create_app(p), port=0).start()
    try:
        for url in ("/api/v1/quanta", "/api/v1/datasets", "/api/v1/search?q=orders", "/api/v1/domains",
                    "/api/v1/contracts/shop-contract", "/readyz", "/", "/quanta/legacy", "/search?q=orders"):
            r = requests.get(server.url + url, timeout=60)
            assert r.status_code == 200, url
            seen.append(r.text)
        assert "legacy" in requests.get(server.url + "/api/v1/quanta", timeout=60).text
        assert "${PGPASSWORD}" in requests.get(server.url + "/api/v1/contracts/shop-contract", timeout=60).text
    finally:
        server.stop()
    # the PostgreSQL wire catalog (a real server and psycopg)
    import pgkit
    import psycopg

    tokens = pgkit.issue_tokens(p, ("ana",))
    with pgkit.running_server(p) as srv, psycopg.connect(host="127.0.0.1", port=srv.port, user="ana",
                                                         password=tokens["ana"], dbname="testmesh",
                                                         autocommit=True) as conn:
        tables = conn.execute("select table_schema, table_name from information_schema.tables "
                              "where table_schema not in ('system', 'information_schema')").fetchall()
        assert tables == [("legacy", "customers")]
        for sql in ("select * from information_schema.columns", "select * from pg_catalog.pg_description",
                    "select * from system.problems", "select * from system.quanta"):
            seen.append(str(conn.execute(sql).fetchall()))
        assert "${PGPASSWORD} is refused" in seen[-2]  # system.problems says why, by name
    for value in LEAKS.values():
        assert not any(value in text for text in seen), value


def test_a_declared_variable_resolves_and_an_undeclared_one_does_not(tmp_path, monkeypatch):
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    root = side_by_side(tmp_path / "m")
    assert load_mesh(root).dataset("shop", "orders").source.location.endswith("/shopdata/orders.parquet")
    mesh_yaml(root, settings={"contract_variables": ["STD_TEST_FORMAT"]})  # no longer listed
    mesh = load_mesh(root)
    [problem] = mesh.errors
    assert (problem.file, problem.path) == ("contracts/shop.odcs.yaml", "servers[0].path")
    assert "${STD_TEST_ORDERS_DIR} is refused" in problem.message and "shopdata" not in problem.message
    assert "shop" in mesh.excluded
    mesh_yaml(root, settings={"contract_variables": ["STD_TEST_*"]})  # a prefix pattern
    assert load_mesh(root).dataset("shop", "orders").source.location.endswith("/shopdata/orders.parquet")


def test_the_mesh_secrets_are_never_readable_even_when_listed(tmp_path, monkeypatch):
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    monkeypatch.setenv("STD_TEST_HOOK", "hook-s3cr3t-e2")
    root = side_by_side(tmp_path / "m")
    # a secret-like name, or Quanta's own variables, cannot be listed: mesh.yaml is invalid
    for listed in (["PGPASSWORD"], ["QUANTA_*"], ["*"], ["GREATPARTS_API_KEY"]):
        mesh_yaml(root, settings={"contract_variables": [ORDERS_DIR] + listed})
        with pytest.raises(CatalogError) as e:
            load_mesh(root)
        assert [(p.file, p.path) for p in e.value.problems] == [("mesh.yaml", "settings.contract_variables")]
    # a webhook's secret variable listed by name: an error of mesh.yaml
    hook = {"url": "https://example.org/hook", "events": ["access_requested"], "secret_env": "STD_TEST_HOOK"}
    mesh_yaml(root, settings={"contract_variables": [ORDERS_DIR, "STD_TEST_HOOK"]}, webhooks=[hook])
    with pytest.raises(CatalogError) as e:
        load_mesh(root)
    assert ("mesh.yaml", "settings.contract_variables[1]") in [(p.file, p.path) for p in e.value.problems]
    # ... or matched by a pattern: the contract's variable is refused, its value never shown
    mesh_yaml(root, settings={"contract_variables": ["STD_TEST_*"]}, webhooks=[hook])
    path = root / "contracts" / "shop.odcs.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["servers"][0]["description"] = "${STD_TEST_HOOK}"
    write_yaml(path, doc)
    mesh = load_mesh(root)
    [problem] = mesh.errors
    assert problem.path == "servers[0].description" and "mesh's secrets" in problem.message
    assert "hook-s3cr3t-e2" not in str(mesh.problems) + repr(mesh.contracts)
    # a governance.yaml's mask salt variable too: once governance.yaml names it, the cached mesh is not reused
    mesh_yaml(root, settings={"contract_variables": ["STD_TEST_*"]})
    assert load_mesh(root).errors == []  # not a secret of this mesh (yet)
    write_yaml(root / "governance.yaml", OPEN_GOVERNANCE | {"settings": {"mask_salt_env": "STD_TEST_HOOK"}})
    [problem] = load_mesh(root).errors
    assert "mesh's secrets" in problem.message


def test_an_odps_product_has_no_variables(tmp_path, monkeypatch):
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    root = side_by_side(tmp_path / "m")
    ppath = root / "products" / "shop.odps.yaml"
    write_yaml(ppath, dict(yaml.safe_load(ppath.read_text()), description={"purpose": "${STD_TEST_ORDERS_DIR}"}))
    mesh = load_mesh(root)
    [problem] = mesh.errors
    assert (problem.file, problem.path) == ("products/shop.odps.yaml", "description.purpose")
    assert "only in a contract's servers block" in problem.message and "shop" in mesh.excluded


def test_the_demo_mesh_declares_its_variables(demo_path):
    from federation.demo import _allow_variables
    from federation.settings import check

    names = ("GREATPARTS_PG_HOST", "GREATPARTS_PG_PORT")
    assert load_mesh(demo_path).settings["contract_variables"] == names
    # quanta demo --postgres adds them to a mesh.yaml copied before the setting existed
    for old in ("name: m\nsettings:\n  threads: 2\n", "name: m\n"):
        settings, wrong = check(yaml.safe_load(_allow_variables(old, names))["settings"])
        assert wrong == [] and settings["contract_variables"] == names
    text = (demo_path / "mesh.yaml").read_text()
    assert _allow_variables(text, names) == text


def test_the_effective_contract_shows_variables_as_written(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv(ORDERS_DIR, "shop-data-dir-7e")
    root = side_by_side(tmp_path / "m")
    (root / "data" / "shopdata").rename(root / "data" / "shop-data-dir-7e")
    assert load_mesh(root).errors == []  # the variable resolves: the quantum is served
    quanta = str(Path(sys.executable).parent / "quanta")
    run = subprocess.run([quanta, "contract", "effective", "shop", "--mesh", str(root)], capture_output=True,
                         text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    doc = yaml.safe_load(run.stdout.split("---", 1)[1])
    assert doc["servers"][0]["path"] == "${STD_TEST_ORDERS_DIR}/orders.parquet"
    assert doc["schema"][0]["properties"][0]["physicalType"] == "bigint"  # and what it inherits is filled in
    assert "shop-data-dir-7e" not in run.stdout + run.stderr


def test_describe_shows_type_synonyms_values_and_deprecated_flags(tmp_path, monkeypatch):
    import subprocess
    import sys

    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    root = side_by_side(tmp_path / "m")
    path = root / "contracts" / "shop.odcs.yaml"
    ppath = root / "products" / "shop.odps.yaml"
    doc = yaml.safe_load(ppath.read_text())
    doc["outputPorts"][0]["deprecated"] = True
    write_yaml(ppath, doc)
    quanta = str(Path(sys.executable).parent / "quanta")

    def describe(name: str) -> str:
        run = subprocess.run([quanta, "describe", name, "--mesh", str(root)], capture_output=True, text=True,
                             timeout=120)
        assert run.returncode == 0, run.stderr
        return run.stdout

    out = describe("shop")
    assert "consumerAligned data product" in out and "synonyms: storefront, webshop" in out
    assert "output port orders -> contract shop-contract (deprecated)" in out
    assert "DEPRECATED" not in out  # the product is not
    out = describe("shop.orders")
    assert "synonyms: purchases" in out
    rows = {line.split("│")[2].strip(): line for line in out.splitlines() if line.count("│") > 5}
    assert "open,shipped,cancelled" in rows["status"] and "client number" in rows["customer_id"]
    assert "deprecated" in rows["legacy_code"] and "deprecated" not in rows["status"]
    write_yaml(path, yaml.safe_load(path.read_text()) | {"schema": [
        yaml.safe_load(path.read_text())["schema"][0] | {"deprecated": True}]})
    write_yaml(ppath, doc | {"deprecated": True})
    out = describe("shop.orders")
    assert "DEPRECATED: this dataset is deprecated" in out and "its data product shop is deprecated" in out
    assert "DEPRECATED: this data product is deprecated" in describe("shop")
    assert "deprecated: Orders of the shop" in describe("shop")


def test_a_deprecated_port_warns_when_read(tmp_path, monkeypatch):
    monkeypatch.setenv(ORDERS_DIR, "shopdata")
    root = side_by_side(tmp_path / "m")
    ppath = root / "products" / "shop.odps.yaml"
    doc = yaml.safe_load(ppath.read_text())
    doc["outputPorts"][0]["deprecated"] = True
    write_yaml(ppath, doc)
    # a derived quantum reading shop through a deprecated input port (ODPS v1.1)
    report = product("report", outputs=["report-contract"], inputs=["shop-contract"], apiVersion="v1.1.0")
    report["inputPorts"][0]["deprecated"] = True
    write_yaml(root / "products" / "report.odps.yaml", report)
    write_yaml(root / "contracts" / "report.odcs.yaml", new_contract("report-contract", [{
        "name": "order_count", "customProperties": [{"property": "sql", "value":
                                                      "select count(*) as n from shop.orders"}]}]))
    p = Platform(root)
    assert p.mesh.errors == []

    def warnings(sql: str) -> tuple:
        result = p.query(sql, p.principal("ana"))
        try:
            assert result.fetchall()
            return result.warnings
        finally:
            result.close()

    served = "shop.orders: output port orders of data product shop is deprecated"
    assert served in warnings("select order_id from shop.orders")
    read = "report.order_count: it reads through input port shop-contract of data product report, which is deprecated"
    assert read in warnings("select n from report.order_count")
    assert not any("deprecated" in w for w in warnings("select id from legacy.customers"))
