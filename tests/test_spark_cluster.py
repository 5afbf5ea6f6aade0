"""The Spark test cluster itself (tests/sparkkit.py): a standalone master with two live workers, a Spark Connect
server that runs a client's query on the executors, refuses clients without the token, and cancels a tagged
query on interruptTag."""

from __future__ import annotations

import threading

import pytest

pytest.importorskip("pyspark.sql.connect")

from pyspark.errors import PySparkException  # noqa: E402


def test_two_alive_workers(spark_cluster):
    state = spark_cluster.master_state()
    alive = [w for w in state["workers"] if w["state"] == "ALIVE"]
    assert len(alive) == 2
    assert all(w["host"] == "127.0.0.1" and w["cores"] == 1 for w in alive)
    assert len({w["id"] for w in alive}) == 2
    assert state["url"] == spark_cluster.master_url


def test_query_runs_on_the_executors(spark_cluster):
    spark = spark_cluster.session()
    before = {e["id"]: e["totalTasks"] for e in spark_cluster.executors()}
    rows = spark.sql("SELECT count(*) AS n, sum(id) AS s FROM range(0, 1000000, 1, 8)").collect()
    assert (rows[0]["n"], rows[0]["s"]) == (1_000_000, 499_999_500_000)
    executors = spark_cluster.executors()
    assert len(executors) == 2  # one per worker, none of them the driver
    assert len({e["hostPort"] for e in executors}) == 2
    ran = sum(e["totalTasks"] - before.get(e["id"], 0) for e in executors)
    assert ran >= 8  # the 8 range partitions ran as tasks on the executors


@pytest.mark.parametrize("token", [None, "not-the-token"], ids=["no-token", "wrong-token"])
def test_client_without_the_token_is_refused(spark_cluster, token):
    with pytest.raises(PySparkException) as refused:
        spark_cluster.session(token=token).sql("SELECT 1").collect()
    message = str(refused.value)
    assert "UNAUTHENTICATED" in message or "authenticat" in message.lower(), message
    assert spark_cluster.token not in message
    # and the right token still works afterwards
    assert spark_cluster.session().sql("SELECT 41 + 1 AS x").collect()[0]["x"] == 42


def test_interrupt_tag_cancels_a_long_query(spark_cluster):
    spark = spark_cluster.session()
    outcome: dict = {}

    def run():
        spark.addTag("quanta-long")
        try:  # a cross join of 10^12 rows: hours on 2 cores, unless cancelled
            outcome["rows"] = spark.sql(
                "SELECT sum(a.id * b.id % 7) FROM range(1000000) a CROSS JOIN range(1000000) b").collect()
        except Exception as error:  # noqa: BLE001 - asserted below
            outcome["error"] = error

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    interrupted: list = []
    while thread.is_alive() and not interrupted:  # until the operation exists server-side and is interrupted
        interrupted = spark.interruptTag("quanta-long")
        thread.join(0.2)
    thread.join(120)
    assert not thread.is_alive()
    assert interrupted and "rows" not in outcome
    assert "CANCEL" in str(outcome["error"]).upper() or "INTERRUPT" in str(outcome["error"]).upper(), outcome
    # the session keeps serving
    assert spark.sql("SELECT 1 AS one").collect()[0]["one"] == 1


def test_the_token_is_in_no_log_and_no_command_line(spark_cluster):
    spark_cluster.session(token="wrong-token-for-the-log")  # a refused attempt is logged by the server, if at all
    with pytest.raises(PySparkException):
        spark_cluster.session(token="wrong-token-for-the-log").sql("SELECT 1").collect()
    assert spark_cluster.session().sql("SELECT 1 AS one").collect()[0]["one"] == 1
    logs = spark_cluster.raw_logs()
    assert "SparkConnectServer" in logs or "Spark Connect" in logs  # the server's log was read
    assert spark_cluster.token not in logs
    for pid in spark_cluster.pids().values():
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            assert spark_cluster.token.encode() not in f.read()
