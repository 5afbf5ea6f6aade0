"""Onboarding: schema drift, quality gates (reject vs quarantine), publishing, events, permissions."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from onboardkit import items, lab_mesh

from federation import errors
from federation.onboarding import control, onboard
from federation.onboarding.pipeline import OnboardingRejected
from federation.onboarding.serving import warehouse
from federation.platform import Platform


@pytest.fixture
def lab(tmp_path):
    return Platform(lab_mesh(tmp_path / "lab"))


def q(p, sql, user="ana"):
    return p.query(sql, p.principal(user)).fetchall()


def events(p, kind=None):
    return control.store_of(p).events(kind)


def test_warehouse_dataset_is_empty_before_its_first_version(lab):
    assert q(lab, "select count(*) from lab.items") == [(0,)]
    assert lab.query("select * from lab.items", lab.principal("ana")).columns == [
        "id", "name", "code", "score", "email", "kind"]


def test_good_batch_is_published_atomically_and_recorded(lab):
    report = onboard(lab, "lab.items", items(10), lab.principal("dev"))
    assert report.status == "published" and report.version == 1 and report.rows_published == 10
    assert q(lab, "select count(*), sum(id) from lab.items") == [(10, 55)]
    # the version's files: Parquet under the warehouse, no temp folder left
    folder = warehouse(lab.mesh) / "lab" / "items"
    assert sorted(p.name for p in folder.iterdir() if not p.name.startswith(".lock")) == ["v1"]
    assert pq.read_table(next((folder / "v1").glob("*.parquet"))).num_rows == 10
    rows = q(lab, "select version, status, rows, files, contract_version, current from system.versions")
    assert rows == [(1, "published", 10, 1, "1.0.0", True)]
    assert [e["kind"] for e in events(lab)] == ["version_published"]
    assert q(lab, "select kind, version from system.events") == [("version_published", 1)]
    # types of the contract are kept, and a fresh platform serves the version
    fresh = Platform(lab.path)
    assert q(fresh, "select count(*) from lab.items") == [(10,)]
    assert dict(zip(*[[r[0] for r in q(fresh, "describe lab.items")], [r[1] for r in q(fresh, "describe lab.items")]]))[
        "score"] == "DOUBLE"


def test_sources_polars_csv_json_and_physical_names(lab, tmp_path):
    import polars as pl

    dev = lab.principal("dev")
    assert onboard(lab, "lab.items", pl.from_arrow(items(5)), dev).version == 1
    # a CSV file whose e-mail column carries the contract name instead of the physical name
    t = items(4).rename_columns(["id", "name", "code", "score", "email", "kind"])
    pl.from_arrow(t).write_csv(tmp_path / "b.csv")
    assert onboard(lab, "lab.items", str(tmp_path / "b.csv"), dev).rows_published == 4
    pl.from_arrow(items(6)).write_ndjson(tmp_path / "c.json")
    assert onboard(lab, "lab.items", str(tmp_path / "c.json"), dev, fmt="json").rows_published == 6
    pq.write_table(items(3), tmp_path / "d1.parquet")
    pq.write_table(items(3), tmp_path / "d2.parquet")
    with pytest.raises(OnboardingRejected, match="primaryKey"):  # the glob holds ids 1..3 twice
        onboard(lab, "lab.items", str(tmp_path / "d*.parquet"), dev)
    assert q(lab, "select count(*) from lab.items", "pia") == [(6,)]


def test_missing_column_names_it_with_a_rename_hint(lab):
    batch = items(5).rename_columns(["id", "name", "code", "scores", "mail", "kind"])
    with pytest.raises(OnboardingRejected) as e:
        onboard(lab, "lab.items", batch, lab.principal("dev"))
    msg = str(e.value)
    assert "column 'score' of the contract is missing" in msg and "renamed? the batch has 'scores'" in msg
    assert e.value.report.status == "rejected"
    assert q(lab, "select status, rows from system.versions") == [("failed", 0)]
    assert [ev["kind"] for ev in events(lab)] == ["onboarding_failed"]
    assert q(lab, "select count(*) from lab.items") == [(0,)]


def test_extra_columns_warn_or_fail_when_strict(lab):
    batch = items(5).append_column("color", pa.array(["red"] * 5))
    with pytest.raises(OnboardingRejected, match="does not declare: color"):
        onboard(lab, "lab.items", batch, lab.principal("dev"), strict=True)
    report = onboard(lab, "lab.items", batch, lab.principal("dev"))
    assert report.status == "published" and any("color" in w and "dropped" in w for w in report.warnings)
    assert "color" not in lab.query("select * from lab.items", lab.principal("ana")).columns


def test_type_coercion_errors_name_the_column(lab):
    batch = items(5, score=pa.array(["1.5", "2", "oops", "4", None]), id=pa.array(["1", "2", "3", "4", "5"]))
    with pytest.raises(OnboardingRejected) as e:
        onboard(lab, "lab.items", batch, lab.principal("dev"))
    assert "column 'score': 1 value(s) of type VARCHAR cannot be converted to DOUBLE (first at row 3)" in str(e.value)
    assert "column 'id'" not in str(e.value)  # '1'..'5' convert fine
    batch = items(5, score=pa.array(["1.5", "2", "3", "4", "5"]), id=pa.array(["1", "2", "3", "4", "5"]))
    assert onboard(lab, "lab.items", batch, lab.principal("dev")).status == "published"
    assert q(lab, "select sum(score), sum(id) from lab.items") == [(15.5, 15)]


def test_row_level_error_rejects_by_default(lab):
    onboard(lab, "lab.items", items(6), lab.principal("dev"))
    bad = items(6, kind=["a", "b", "zz", "c", "zz", "a"])
    with pytest.raises(OnboardingRejected) as e:
        onboard(lab, "lab.items", bad, lab.principal("dev"))
    assert "rule kind.invalidValues failed: measured 2, expected mustBe 0 rows (2 failing rows)" in str(e.value)
    # the served version is untouched; the failure is recorded and announced
    assert q(lab, "select count(*) from lab.items where kind = 'zz'") == [(0,)]
    assert q(lab, "select version, status from system.versions order by version") == [(1, "published"), (2, "failed")]
    assert [ev["kind"] for ev in events(lab)] == ["version_published", "check_failed", "onboarding_failed"]
    failed = q(lab, "select rule, status, failing_rows from system.quality_results where status = 'fail'")
    assert failed == [("kind.invalidValues", "fail", 2)]


def test_quarantine_keeps_failing_rows_out_with_their_reason(lab):
    bad = items(8, kind=["a", "b", "zz", "c", "zz", "a", "b", "c"], id=[1, 2, 3, 4, 5, 6, 7, 7])
    report = onboard(lab, "lab.items", bad, lab.principal("dev"), on_error="quarantine")
    assert report.status == "published" and report.quarantined == 3 and report.rows_published == 5
    assert q(lab, "select count(*), count(*) filter (where kind = 'zz') from lab.items") == [(5, 0)]
    quarantined = control.quarantine(lab, "lab.items", lab.principal("olivia"))
    reasons = dict(zip(quarantined.column("id").to_pylist(), quarantined.column("_quanta_reason").to_pylist()))
    assert reasons == {3: "kind.invalidValues", 5: "kind.invalidValues", 7: "id.primaryKey"}
    # read through governance: an owner who is not a PII reader sees the e-mails masked, as in the dataset
    assert not any(e.endswith("@example.com") for e in quarantined.column("email").to_pylist())
    with pytest.raises(errors.AccessDenied):
        control.quarantine(lab, "lab.items", lab.principal("ana"))
    assert q(lab, "select quarantined from system.versions") == [(3,)]


def test_rule_on_failure_quarantine_overrides_reject(lab):
    bad = items(6, mail=["a@x", "no-at-sign", "b@x", "c@x", "d@x", "e@x"])
    report = onboard(lab, "lab.items", bad, lab.principal("dev"))  # default: reject; this rule says quarantine
    assert report.quarantined == 1 and report.rows_published == 5
    assert control.quarantine(lab, "lab.items", lab.principal("dev")).column("_quanta_reason").to_pylist() == [
        "email.invalidValues"]


def test_warnings_pass_and_dataset_rules_reject(lab):
    report = onboard(lab, "lab.items", items(5, score=[1.0, 100.0, 3.0, 4.0, 5.0], name=["x", "", "n/a", None, "y"]),
                     lab.principal("dev"))
    assert report.status == "published"
    text = " ".join(report.warnings)
    assert "few_perfect_scores: measured 1" in text and "name.missingValues: measured 3" in text
    with pytest.raises(OnboardingRejected, match="rule rowCount failed: measured 2, expected mustBeGreaterThan 2"):
        onboard(lab, "lab.items", items(2), lab.principal("dev"))
    with pytest.raises(OnboardingRejected, match="rowCount"):  # quarantine does not save a dataset-level failure
        onboard(lab, "lab.items", items(2), lab.principal("dev"), on_error="quarantine")


def test_schema_implied_rules(lab):
    dev = lab.principal("dev")
    cases = {
        "code.pattern": items(5, code=["ABC", "abc", "ABC", "ABCD", "XYZ"]),
        "score.minimum": items(5, score=[1.0, -1.0, 3.0, 4.0, 5.0]),
        "score.maximum": items(5, score=[1.0, 2.0, 300.0, 4.0, 5.0]),
        "id.required": items(5, id=pa.array([1, None, 3, 4, 5], pa.int64())),
        "id.primaryKey": items(5, id=[1, 1, 3, 4, 5]),
    }
    for rule, batch in cases.items():
        with pytest.raises(OnboardingRejected, match=f"rule {rule} failed"):
            onboard(lab, "lab.items", batch, dev)


def test_only_owners_and_engineers_onboard(lab):
    with pytest.raises(errors.AccessDenied, match="ana may not onboard data on quantum lab: only its owners "
                                                  r"\(olivia\) and principals with the role data_engineer may"):
        onboard(lab, "lab.items", items(5), lab.principal("ana"))
    assert onboard(lab, "lab.items", items(5), lab.principal("olivia")).version == 1  # the owner
    for action in (lambda who: control.check(lab, "lab.items", who),
                   lambda who: control.rollback(lab, "lab.items", 1, who),
                   lambda who: control.set_rules(lab, "lab.items", [], who)):
        with pytest.raises(errors.AccessDenied):
            action(lab.principal("ana"))
    assert events(lab, "version_published")[0]["principal"] == "olivia"


def test_unknown_and_derived_datasets_are_refused(lab, shop_path):
    with pytest.raises(errors.UnknownObject, match="has no dataset 'nope'"):
        onboard(lab, "lab.nope", items(3), lab.principal("dev"))
    shop = Platform(shop_path)
    from federation.governance.principals import Principal

    with pytest.raises(errors.ProgrammingError, match="derived"):
        onboard(shop, "report.sales_by_region", items(3), Principal("x", roles=("data_engineer",)))


def test_onboarding_an_existing_source_dataset_switches_it_to_the_warehouse(tmp_path):
    from meshkit import shop_mesh

    from federation.governance.principals import Principal

    p = Platform(shop_mesh(tmp_path / "shop"))
    assert q(p, "select count(*) from shop.orders") == [(100,)]
    batch = pa.table({"order_id": pa.array([1, 2, 3], pa.int64()), "cust_id": pa.array([1, 2, 3], pa.int64()),
                      "amount": pa.array(["1.50", "2.25", "3"]),
                      "order_date": pa.array(["2026-01-01", "2026-01-02", "2026-01-03"])})
    onboard(p, "shop.orders", batch, Principal("eng", roles=("data_engineer",)))
    count, total = q(p, "select count(*), sum(amount) from shop.orders")[0]
    assert count == 3 and str(total) == "6.75"
    # derived datasets read the new version
    assert sum(r[1] for r in q(p, "select * from report.sales_by_region")) == 3


def test_dry_run_checks_without_publishing(lab):
    report = onboard(lab, "lab.items", items(6, kind=["a", "zz", "b", "c", "a", "b"]), lab.principal("dev"),
                     on_error="quarantine", dry_run=True)
    assert report.status == "checked" and report.quarantined == 1 and report.version is None
    with pytest.raises(OnboardingRejected, match="kind.invalidValues"):
        onboard(lab, "lab.items", items(6, kind=["zz"] * 6), lab.principal("dev"), dry_run=True)
    assert control.store_of(lab).versions() == [] and events(lab) == []
    assert not (warehouse(lab.mesh) / "lab" / "items" / "v1").exists()


def _edit_contract(root, change):
    import yaml

    path = root / "contracts" / "lab.odcs.yaml"
    data = yaml.safe_load(path.read_text())
    change(data)
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def test_breaking_contract_change_needs_a_new_major_version(tmp_path):
    root = lab_mesh(tmp_path / "lab", versions_kept=1)
    p = Platform(root)
    dev = p.principal("dev")
    onboard(p, "lab.items", items(5), dev)

    def drop_code(data):
        data["schema"][0]["properties"] = [x for x in data["schema"][0]["properties"] if x["name"] != "code"]
        data["version"] = "1.1.0"

    _edit_contract(root, drop_code)
    p = Platform(root)
    with pytest.raises(OnboardingRejected, match=r"breaking way since v1 \(column items.code was removed\) without a "
                                                 r"new major version \(1.0.0 -> 1.1.0\); publish it as version 2.0.0"):
        onboard(p, "lab.items", items(5), dev)
    _edit_contract(root, lambda d: d.update(version="2.0.0"))
    p = Platform(root)
    report = onboard(p, "lab.items", items(8), dev)
    assert report.status == "published" and any("code" in w and "dropped" in w for w in report.warnings)
    changed = control.store_of(p).events("contract_changed")
    assert changed and "1.0.0 -> 2.0.0" in changed[-1]["message"] and "1 breaking" in changed[-1]["message"]
    # versions_kept is 1, but the newest version of the previous major stays pinned (no endOfSupport given)
    onboard(p, "lab.items", items(9), dev)
    assert q(p, "select version, contract_version, status from system.versions order by version") == [
        (1, "1.0.0", "published"), (2, "1.1.0", "failed"), (3, "2.0.0", "expired"), (4, "2.0.0", "published")]
    assert q(p, 'select count(*) from lab."items@v1"') == [(5,)]
    # a pinned version of the old major is read through the contract it was published under (code included)
    assert p.query('select * from lab."items@v1"', p.principal("ana")).columns == ["id", "name", "code", "score",
                                                                                   "email", "kind"]
    # a non-breaking change (a new optional column... here a description) needs no new major
    _edit_contract(root, lambda d: d["schema"][0]["properties"][0].update(description="the id"))
    p = Platform(root)
    assert onboard(p, "lab.items", items(4), dev).status == "published"


def test_retired_and_deprecated_contract_versions(lab):
    with pytest.raises(errors.AccessDenied):
        control.set_contract_status(lab, "lab-contract", "1.0.0", "retired", lab.principal("ana"))
    control.set_contract_status(lab, "lab-contract", "1.0.0", "deprecated", lab.principal("olivia"))
    report = onboard(lab, "lab.items", items(5), lab.principal("dev"))
    assert "contract lab-contract version 1.0.0 is deprecated" in report.warnings
    control.set_contract_status(lab, "lab-contract", "1.0.0", "retired", lab.principal("dev"))
    with pytest.raises(OnboardingRejected, match="is retired"):
        onboard(lab, "lab.items", items(5), lab.principal("dev"))
    assert [e["kind"] for e in events(lab)][:2] == ["contract_deprecated", "version_published"]


def test_a_parquet_batch_in_the_contracts_shape_is_published_byte_for_byte(lab, tmp_path):
    """Conforming Parquet (same columns, physical names and types) is copied as is; anything else is
    rewritten to the contract's shape (extra columns dropped, types converted)."""
    import hashlib

    dev = lab.principal("dev")
    folder = warehouse(lab.mesh) / "lab" / "items"
    good = tmp_path / "good.parquet"
    pq.write_table(items(20), good, row_group_size=7)
    assert onboard(lab, "lab.items", str(good), dev).version == 1
    published = list((folder / "v1").glob("*.parquet"))
    digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in published]
    assert digest == [hashlib.sha256(good.read_bytes()).hexdigest()]
    assert q(lab, "select count(*), sum(id), min(email) from lab.items", "olivia") == [(20, 210, "****")]
    # an extra column and an integer score: rewritten, with the contract's columns and types only
    shaped = tmp_path / "shaped.parquet"
    pq.write_table(items(20, score=pa.array(range(20), pa.int32())).append_column("note", pa.array(["x"] * 20)),
                   shaped)
    report = onboard(lab, "lab.items", str(shaped), dev)
    assert report.version == 2 and any("note" in w for w in report.warnings)
    files = list((folder / "v2").glob("*.parquet"))
    assert files and all(hashlib.sha256(p.read_bytes()).hexdigest() != digest[0] for p in files)
    schema = pq.read_schema(files[0])
    assert "note" not in schema.names and schema.field("score").type == pa.float64()
    # a refused batch leaves nothing behind: no version, no staging folder
    bad = tmp_path / "bad.parquet"
    pq.write_table(items(20, kind=["z"] * 20), bad)
    with pytest.raises(OnboardingRejected, match="kind.invalidValues"):
        onboard(lab, "lab.items", str(bad), dev)
    assert sorted(p.name for p in folder.iterdir() if p.name != ".lock") == ["v1", "v2"]


def test_progress_is_reported_while_duckdb_works():
    """Long statements report their share done; on a terminal the bar is redrawn in place."""
    import io

    import duckdb

    from federation.progress import TerminalProgress, watching

    seen = []
    con = duckdb.connect(config={"threads": "2"})
    con.execute("CREATE TABLE t AS SELECT range AS a FROM range(10000000)")
    with watching(con, "counting", lambda message, fraction=None: seen.append((message, fraction)), interval=0.01):
        con.execute("SELECT count(DISTINCT a % 1000003), sum(a) FROM t").fetchall()
    assert seen and all(m == "counting" and 0 <= f <= 1 for m, f in seen)
    assert max(f for _, f in seen) > 0  # it reports work done, not only a start

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    screen = Terminal()  # rich.progress draws the bar in place, then removes it when the step line comes
    bar = TerminalProgress(screen)
    bar("staging lab.items", 0.5)
    bar("staging lab.items", 0.75)
    drawn = screen.getvalue()
    assert " 50%" in drawn and " 75%" in drawn and "staging lab.items" in drawn and "━" in drawn
    bar("staged 10 rows")
    after = screen.getvalue()[len(drawn):]
    assert "\x1b[2K" in after and after.endswith("  staged 10 rows\n")  # the bar's line is erased, then the step
    log = io.StringIO()  # not a terminal: steps only
    TerminalProgress(log)("staging", 0.5)
    TerminalProgress(log)("done")
    assert log.getvalue() == "  done\n"
