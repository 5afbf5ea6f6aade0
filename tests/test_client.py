"""The Python client against a real server: the same result API and errors as in-process."""

from __future__ import annotations

import pyarrow as pa
import pytest

import federation
from federation import errors
from federation.client import Client


@pytest.fixture(scope="module")
def ana(demo_server):
    with Client(demo_server.url, demo_server.tokens["ana"]) as c:
        yield c


@pytest.fixture(scope="module")
def paul(demo_server):
    with Client(demo_server.url, demo_server.tokens["paul"]) as c:
        yield c


def local(demo_server, user):
    return federation.connect(str(demo_server.platform.path), user=user)


def test_sql_returns_the_in_process_result_type_and_values(demo_server, ana):
    sql = "select member_id, email, region from loyalty.members order by member_id limit 100"
    result = ana.sql(sql)
    assert isinstance(result, federation.Result)
    assert result.columns == ["member_id", "email", "region"]
    assert result.types == ["BIGINT", "VARCHAR", "VARCHAR"]
    expected = local(demo_server, "ana").sql(sql)
    assert result.arrow().equals(expected.arrow())
    assert {(p["policy"], p["column"]) for p in result.policies} == {(p["policy"], p["column"])
                                                                   for p in expected.policies}
    assert result.warnings == expected.warnings


def test_pl_df_fetchall_record_batches(demo_server, ana):
    sql = "select order_id, region, amount from sales.orders order by order_id"
    expected = local(demo_server, "ana").sql(sql).fetchall()
    assert ana.sql(sql).fetchall() == expected
    frame = ana.sql(sql).pl()
    assert frame.height == len(expected) and frame.columns == ["order_id", "region", "amount"]
    df = ana.sql(sql + " limit 10").df()
    assert list(df["order_id"]) == [r[0] for r in expected[:10]]
    large = ("select o.order_id, s.store_id, t.store_id as other from sales.order_lines o, sales.stores s, "
             "sales.stores t")  # ~110k rows for ana (no EU store: residency)
    reader = ana.sql(large).record_batches()
    assert isinstance(reader, pa.RecordBatchReader)
    batches = list(reader)
    in_process = list(local(demo_server, "ana").sql(large).record_batches())
    assert len(batches) == len(in_process) > 1  # streamed batch by batch, as the engine produced them
    assert sum(b.num_rows for b in batches) == sum(b.num_rows for b in in_process)
    r = ana.sql("select 1 as a union all select 2 order by 1")
    assert r.fetchone() == (1,) and r.fetchone() == (2,) and r.fetchone() is None


def test_parameters_and_purpose(demo_server, ana):
    assert ana.sql("select ? + 1 as x", [41]).fetchall() == [(42,)]
    marco = Client(demo_server.url, demo_server.tokens["marco"])
    with pytest.raises(errors.Error):
        marco.sql("select count(*) from marketing.campaign_audience").fetchall()
    assert marco.sql("select count(*) from marketing.campaign_audience", purpose="marketing").fetchall()[0][0] >= 0


def test_masks_differ_by_token_as_in_process(demo_server, ana, paul):
    sql = "select member_id, email, phone from loyalty.members order by member_id limit 30"
    for client, user in ((ana, "ana"), (paul, "paul")):
        assert client.sql(sql).arrow().equals(local(demo_server, user).sql(sql).arrow())
    assert ana.sql(sql).fetchall() != paul.sql(sql).fetchall()


def test_errors_are_the_in_process_classes(demo_server, ana):
    with pytest.raises(errors.AccessDenied) as e:
        ana.sql("select * from b2b.accounts")
    assert e.value.code == "access_denied" and "b2b.accounts" in str(e.value)
    with pytest.raises(errors.SyntaxError):
        ana.sql("selec 1")
    with pytest.raises(errors.UnknownObject):
        ana.sql("select * from sales.nope")
    with pytest.raises(errors.StatementRefused):
        ana.sql("select * from read_parquet('x.parquet')")
    with pytest.raises(errors.AuthenticationError):
        Client(demo_server.url, "wrong").sql("select 1")
    with pytest.raises(errors.AuthenticationError):
        Client(demo_server.url).sql("select 1")
    dev = Client(demo_server.url, demo_server.tokens["dev"])
    with pytest.raises(errors.QueryTimeout):
        dev.sql("select count(*) from sales.orders a, sales.orders b, sales.orders c "
                "where a.amount + b.amount > c.amount", timeout=0.3).fetchall()
    with pytest.raises(errors.OperationalError):
        Client("http://127.0.0.1:9", "x", timeout=5).sql("select 1")


def test_dictionary_helpers(demo_server, ana):
    quanta = ana.quanta()
    assert {q["quantum"] for q in quanta} >= {"sales", "customers", "customer360"}
    assert {q["quantum"] for q in ana.quanta("loyalty")} >= {"loyalty"}
    q = ana.quantum("sales")
    assert {d["dataset"] for d in q["datasets"]} == {"orders", "order_lines", "stores"}
    ds = ana.dataset("customers", "customers")
    email = next(c for c in ds["columns"] if c["column"] == "email")
    assert email["classification"] == "pii"
    assert "customer360.customer_360" in {f"{n['quantum']}.{n['dataset']}" for n in ds["lineage"]["downstream"]}
    assert ana.contract(ds["contract_id"]).startswith("#") or "apiVersion" in ana.contract(ds["contract_id"])
    hits = ana.search("customer email")["datasets"]
    assert hits[0]["quantum"] in ("customers", "customer360")
    with pytest.raises(errors.ProgrammingError):
        ana.dataset("customers", "nope")


def test_my_access(demo_server, ana, paul):
    mine = {c["column"]: c for c in ana.my_access("loyalty", "members")["columns"]}
    theirs = {c["column"]: c for c in paul.my_access("loyalty", "members")["columns"]}
    assert mine["email"]["access"] == "masked" and mine["email"]["policy"] == "pii-email-domain"
    assert theirs["email"]["access"] == "visible"
    no_grant = ana.my_access("b2b", "accounts")
    assert no_grant["granted"] is False and all(c["access"] == "denied" for c in no_grant["columns"])
    assert no_grant["approvers"]
    with pytest.raises(errors.AuthenticationError):
        Client(demo_server.url).my_access("loyalty", "members")
