"""One governed mesh served over the PostgreSQL wire for the client session tests (tests/test_clients_*.py):
each real client (psql, pgcli, psycopg 3 and 2, SQLAlchemy 1.4 and 2, asyncpg, node-postgres, postgres.js,
pgjdbc, psqlODBC, DuckDB's postgres extension) runs what its users do against it and checks the same facts.

The mesh is shop_mesh (crm.customers: email masked and EU rows filtered for ana; shop.orders: amount denied
to ana; report.sales_by_region: no grant for ana) plus a quantum ``lab``:

- lab.readings: five rows of every type a dashboard meets (date, timestamptz, numeric(12,3), boolean,
  varchar[], interval, NULLs), with comments and a primary key;
- lab.events: 100,000 rows to stream.
"""

from __future__ import annotations

import datetime as dt
import decimal
from dataclasses import dataclass
from pathlib import Path

import pgkit
from meshkit import (
    contract,
    local_server,
    mesh_yaml,
    product,
    prop,
    shop_mesh,
    sql_to_file,
    write_yaml,
)

from federation.platform import Platform
from federation.server.pgwire import PgServer

DATABASE = pgkit.DATABASE
EVENTS = 100_000

GOVERNANCE = pgkit.shop_governance(grants=[{"to": {"role": "analyst"}, "on": "lab"}])

UTC = dt.UTC
# lab.readings as PostgreSQL clients read it: (id, taken_on, taken_at, price, ok, tags, span, note)
READINGS = [
    (1, dt.date(2024, 2, 29), dt.datetime(2024, 2, 29, 12, 30, tzinfo=UTC), decimal.Decimal("1234.500"), True,
     ["a", "b"], dt.timedelta(days=1, hours=2), "first"),
    (2, dt.date(2024, 3, 1), dt.datetime(2024, 3, 1, 0, 0, 1, 500000, tzinfo=UTC), decimal.Decimal("-0.125"), False,
     [], dt.timedelta(minutes=90), None),
    (3, None, None, None, None, None, None, None),
    (4, dt.date(1999, 12, 31), dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC), decimal.Decimal("0.000"), True,
     ["x y", None], dt.timedelta(seconds=5), "O'Brien"),
    (5, dt.date(2030, 1, 1), dt.datetime(2030, 1, 1, 8, 0, tzinfo=UTC), decimal.Decimal("99999.999"), False,
     ["z"], dt.timedelta(days=40), "last"),
]
# the rows ana reads from crm.customers (EU filtered out, emails masked, names redacted)
ANA_CUSTOMERS = [(i, "****", "***@example.com", "US" if i % 3 == 1 else "CA") for i in range(1, 31) if i % 3]
# the aggregate every session runs: orders per customer region, as ana (no EU customers)
JOIN_SQL = ("select c.region, count(*) as orders from shop.orders o join crm.customers c on o.customer_id = c.id "
            "group by c.region order by c.region")
JOIN_ROWS = [("CA", 33), ("US", 34)]


def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, list):
        return "[" + ", ".join(_sql_literal(v) for v in value) + "]::varchar[]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return f"timestamptz '{value.isoformat()}'"
    if isinstance(value, dt.date):
        return f"date '{value.isoformat()}'"
    if isinstance(value, dt.timedelta):
        return f"interval '{value.days} days {value.seconds} seconds {value.microseconds} microseconds'"
    if isinstance(value, decimal.Decimal):
        return f"{value}::decimal(12,3)"
    return str(value)


def client_mesh(root: Path) -> Path:
    shop_mesh(root, governance=GOVERNANCE)
    mesh_yaml(root, domains=("shop", "crm", "lab"))
    rows = " union all ".join(
        "select " + ", ".join(f"{_sql_literal(v)} as {c}" for v, c in zip(
            row, ("id", "taken_on", "taken_at", "price", "ok", "tags", "span", "note"), strict=True))
        for row in READINGS)
    sql_to_file(root / "data" / "lab" / "readings.parquet",
                "select id::bigint as id, taken_on::date as taken_on, taken_at::timestamptz as taken_at, "
                "price::decimal(12,3) as price, ok::boolean as ok, tags::varchar[] as tags, span::interval as span, "
                f"note::varchar as note from ({rows})")
    sql_to_file(root / "data" / "lab" / "events.parquet",
                f"select i as event_id, 'site' || (i % 7) as site, (i % 1000) / 4.0 as reading "
                f"from range({EVENTS}) t(i)")
    write_yaml(root / "products" / "lab.odps.yaml", product("lab", domain="lab"))
    write_yaml(root / "contracts" / "lab.odcs.yaml", contract("lab-contract", [
        {"name": "readings", "description": "Instrument readings",
         "properties": [prop("id", "integer", "bigint", primaryKey=True, required=True, description="Reading id"),
                        prop("taken_on", "date", "date", description="Day of the reading"),
                        prop("taken_at", "timestamp", "timestamptz", description="When it was taken"),
                        prop("price", "number", "decimal(12,3)", description="Cost"),
                        prop("ok", "boolean", "boolean", description="Passed the check"),
                        prop("tags", "array", "varchar[]", description="Labels"),
                        prop("span", "string", "interval", description="Duration"),
                        prop("note", description="Free text")]},
        {"name": "events", "description": "Sensor events",
         "properties": [prop("event_id", "integer", "bigint", primaryKey=True), prop("site"),
                        prop("reading", "number", "double")]},
    ], servers=[local_server("lab/{model}.parquet")]))
    return root


@dataclass
class Served:
    platform: Platform
    server: PgServer
    tokens: dict[str, str]
    root: Path

    @property
    def port(self) -> int:
        return self.server.port

    def dsn(self, user: str = "ana", **extra) -> str:
        return pgkit.dsn(self.port, self.tokens, user, **extra)

    def url(self, driver: str = "postgresql", user: str = "ana") -> str:
        return f"{driver}://{user}:{self.tokens[user]}@127.0.0.1:{self.port}/{DATABASE}"


def serve(tmp_path_factory):
    """A module fixture's body: the mesh, a token for ana and pia, a PgServer on 127.0.0.1."""
    root = client_mesh(tmp_path_factory.mktemp("clients"))
    platform = Platform(root)
    tokens = pgkit.issue_tokens(platform, ("ana", "pia"))
    with pgkit.running_server(platform) as server:
        yield Served(platform, server, tokens, root)
