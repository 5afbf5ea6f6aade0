"""Issue 16, red-teamed: the new surfaces attacked as a hostile consumer would, each leak found kept as a test.

EXPLAIN (federation/explain.py): a plan's shape follows DuckDB's statistics of every row of the relations read
(a filter the min/max cannot meet becomes EMPTY_RESULT). It must not follow rows the principal may not read:
other principals' rows of ``system.query_log`` (their activity), nor the rows of the datasets a derived
dataset reads and leaves out (definer's rights: the reader has the derived dataset's grant only).
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from meshkit import prop, shop_mesh, write_yaml

from federation.platform import Platform

GOVERNANCE = {
    "roles": [{"name": "analyst"}, {"name": "shopper"}],
    "principals": [{"name": "ana", "roles": ["analyst"]}, {"name": "zed", "roles": ["analyst", "shopper"]}],
    "grants": [{"to": {"role": "analyst"}, "on": "crm.customers"}, {"to": {"role": "analyst"}, "on": "report"},
               {"to": {"role": "shopper"}, "on": "shop"}],
}
# report.cheap_orders: the orders of an amount under 10, the only orders ana may read (she has no grant on
# shop.orders): order ids up to 87 of 0..99
CHEAP = "select order_id, order_date from shop.orders where amount < 10"


@pytest.fixture(scope="module")
def platform(tmp_path_factory):
    root = shop_mesh(Path(tmp_path_factory.mktemp("rt16")), governance=GOVERNANCE)
    report = yaml.safe_load((root / "contracts" / "report.odcs.yaml").read_text())
    report["schema"].append({"name": "cheap_orders", "customProperties": [{"property": "sql", "value": CHEAP}],
                             "properties": [prop("order_id", "integer", "bigint"), prop("order_date", "date", "date")]})
    write_yaml(root / "contracts" / "report.odcs.yaml", report)
    return Platform.open(root)


def rows(platform, sql, user="ana", params=None):
    return platform.query(sql, platform.principal(user), params).fetchall()


def plan(platform, sql, user="ana") -> str:
    return "\n".join(r[0] for r in rows(platform, sql, user))


PREFIXES = ("EXPLAIN", "EXPLAIN ANALYZE", "EXPLAIN (FORMAT JSON)")


def same_plans(platform, probes: list[str]) -> None:
    """The probes differ only in a constant across a statistic of rows the principal cannot read: their plans
    (but for the time) must not differ."""
    import re

    for prefix in PREFIXES:
        texts = {re.sub(r"Execution Time: [\d.]+ ms", "", plan(platform, f"{prefix} {p}")) for p in probes}
        assert len(texts) == 1, texts
        assert "EMPTY_RESULT" not in next(iter(texts)), texts


# -- EXPLAIN ----------------------------------------------------------------------------------------------


def test_explain_does_not_probe_other_principals_query_log(platform):
    """zed's queries returned 100 rows; ana sees only her own rows of system.query_log. The statistics of the
    engine's query_log table are of everyone's rows: ``rows > 99`` vs ``rows > 100`` told ana (EMPTY_RESULT)
    the largest result anyone had read."""
    for _ in range(2):
        assert len(rows(platform, "select * from shop.orders", "zed")) == 100
    assert all(r[0] == "ana" for r in rows(platform, "select principal from system.query_log"))
    assert not rows(platform, "select 1 from system.query_log where rows > 50")  # ana's rows are all small
    same_plans(platform, ["select 1 from system.query_log where rows > 99",
                          "select 1 from system.query_log where rows > 100",
                          "select 1 from system.query_log where rows > 1000000"])


def test_explain_does_not_probe_rows_a_derived_dataset_leaves_out(platform):
    """ana reads report.cheap_orders (order ids up to 87), never shop.orders (ids up to 99): the Parquet
    statistics of shop.orders must not tell her that an order id 98 < id <= 99 exists."""
    assert rows(platform, "select max(order_id) from report.cheap_orders") == [(87,)]
    assert not rows(platform, "select 1 from report.cheap_orders where order_id > 98")
    same_plans(platform, ["select 1 from report.cheap_orders where order_id > 98",
                          "select 1 from report.cheap_orders where order_id > 99",
                          "select 1 from report.cheap_orders where order_id > 100000"])
