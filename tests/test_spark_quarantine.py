"""Quarantined rows on a mesh whose data engine is Spark (settings.engine: {kind: spark_connect}).

Held batches are small local Parquet files of the warehouse, which the cluster does not hold: a query that reads
only quarantined rows (``lab."items@quarantine"``, ``system.quarantine``, with system tables or not) runs on the
embedded DuckDB, governed exactly as on a DuckDB mesh (masks, row filters, denials; the verifier's proof), and a
query mixing them with mesh datasets is refused with a clear error. A real onboarding with quarantined rows on
each of two meshes (DuckDB, Spark), the Spark one on the session's real cluster (tests/sparkkit.py).
"""

from __future__ import annotations

import json

import pytest
from meshkit import write_yaml
from onboardkit import items, lab_mesh
from test_quarantine import GOV, MAILS
from test_spark_backend import answer, endpoint, same, spark_settings  # noqa: F401 - endpoint: a fixture

from federation import errors
from federation.onboarding import onboard
from federation.platform import Platform

pytest.importorskip("pyspark.sql.connect.session")

USERS = ("pia", "ana", "dev", "olivia", "out")
QUERIES = [
    "select * from system.quarantine order by row_number",
    'select * from lab."items@quarantine" order by id',
    "select count(*) as n from system.quarantine",
    "select count(*) as n from system.quarantine where \"row\"::varchar like '%zz%'",
    'select id, email, _quanta_reason, _quanta_row from lab."items@quarantine" where kind <> \'z\' order by id',
    # held rows and system tables: both in the embedded engine
    ("select q.row_number, p.domain from system.quarantine q join system.quanta p on p.quantum = q.quantum "
     "order by 1"),
]
MIXED = [
    'select i.id, q.email from lab.items i join lab."items@quarantine" q on q.id = i.id',
    "select count(*) as n from lab.items, system.quarantine",
    'select id from lab.items union all select id from lab."items@quarantine"',
    'with q as (select id from lab."items@quarantine") select * from lab.items where id in (select id from q)',
]
REFUSAL = "reads mesh datasets or quarantined rows"


@pytest.fixture(scope="module")
def labs(endpoint, tmp_path_factory):  # noqa: F811 - the fixture imported above
    """The lab mesh on DuckDB and on Spark, each after one onboarding that kept rows 1, 3 and 8 out."""
    made = {}
    for name, extra in (("duck", {}), ("spark", spark_settings(endpoint[0]))):
        root = lab_mesh(tmp_path_factory.mktemp(name), extra_settings=extra)
        write_yaml(root / "governance.yaml", GOV)
        p = Platform(root)
        if name == "spark":  # before any held row: the quarantine reads as empty, and mixing is refused alike
            made["before"] = (answer(p, 'select count(*) as n from lab."items@quarantine"', "pia"),
                              answer(p, MIXED[0], "pia"))
        report = onboard(p, "lab.items", items(8, mail=MAILS), p.principal("dev"))
        assert report.status == "published" and report.quarantined == 3 and report.rows_published == 5
        made[name] = p
    spark = made["spark"]
    assert spark.state.engine is not None and spark.state.engine.available, spark.mesh.problems
    yield made["duck"], spark, made["before"]
    spark.state.engine.close()


@pytest.mark.parametrize("sql", QUERIES)
def test_quarantined_rows_on_spark_answer_as_on_duckdb_for_every_principal(labs, sql):
    duck, spark, _ = labs
    served = 0
    for user in USERS:
        a, b = answer(duck, sql, user), answer(spark, sql, user)
        same(a, b)
        if b[0] == "rows":
            assert b[3] is None  # ran on the embedded engine, not the cluster
            served += 1
    assert served >= 3  # not a parity of refusals


def test_quarantined_rows_on_spark_are_governed(labs):
    _, spark, _ = labs
    full = answer(spark, "select * from system.quarantine order by row_number", "pia")
    assert [(r["quarantine_id"], r["row_number"], r["rules"]) for r in full[2]] == [
        ("lab.items.v1", n, "email.invalidValues") for n in (1, 3, 8)]
    assert [json.loads(r["row"])["email"] for r in full[2]] == ["bad", "x y", "zz"]  # pia reads PII in clear
    # ana: the row filter keeps kind a (row 1), the e-mail is masked, score is denied
    mine = answer(spark, "select * from system.quarantine", "ana")
    assert mine[0] == "rows" and [r["row_number"] for r in mine[2]] == [1]
    value = json.loads(mine[2][0]["row"])
    assert value["id"] == 1 and value["kind"] == "a" and value["email"] != "bad" and "score" not in value
    assert "bad" not in mine[2][0]["row"]
    direct = answer(spark, 'select * from lab."items@quarantine"', "ana")
    assert direct[0] == "rows" and [r["id"] for r in direct[2]] == [1]
    assert direct[2][0]["email"] != "bad" and "score" not in direct[2][0]
    denied = answer(spark, 'select score from lab."items@quarantine"', "ana")
    assert denied[:2] == ("error", "AccessDenied") and "score" in denied[2]
    assert answer(spark, "select * from system.quarantine", "out")[2] == []  # no grant: no row
    assert answer(spark, 'select * from lab."items@quarantine"', "out")[:2] == ("error", "AccessDenied")
    # the published data still runs on the cluster
    data = answer(spark, "select count(*) as n from lab.items", "pia")
    assert data[2] == [{"n": 5}] and data[3] is not None


@pytest.mark.parametrize("sql", MIXED)
def test_a_query_mixing_held_rows_and_mesh_data_is_refused_on_spark(labs, sql):
    duck, spark, _ = labs
    assert answer(duck, sql, "pia")[0] == "rows"  # a good query on the embedded engine
    for user in ("pia", "ana"):
        with pytest.raises(errors.NotSupportedError, match=REFUSAL):
            spark.query(sql, spark.principal(user))
    last = spark.audit.history().to_pylist()[-1]
    assert last["status"] == "error" and REFUSAL in last["error"]


def test_the_refusal_does_not_tell_whether_rows_are_held(labs):
    """Before any held row (the quarantine read as an empty relation), the same refusal and an empty answer."""
    _, _, (empty, mixed) = labs
    assert empty[0] == "rows" and empty[2] == [{"n": 0}] and empty[3] is None
    assert mixed[:2] == ("error", "NotSupportedError") and REFUSAL in mixed[2]
