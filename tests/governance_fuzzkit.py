"""The differential governance fuzzer's parts (issue 11): a mesh with planted secrets, a grammar of hostile
queries, and the oracle that judges one run. Used by ``tests/test_governance_fuzz.py`` (bounded, fixed seed)
and ``benchmarks/fuzz_governance.py`` (long runs).

The mesh is ``meshkit.shop_mesh`` with ``test_governance.GOVERNANCE`` (masks on PII, the residency row
filter, ``amount`` denied) plus a hash mask on the customer ids, and data that plants distinctive secrets:

- raw e-mails and names of every customer (masked for ``ana``): ``qx<i>.leak@...``, ``Qzname<i>``;
- the rows of EU residents, hidden from ``ana`` and ``ulla`` by the row filter: ids ``9876xx``, e-mails
  ``eu<i>.resident@...``, names ``Rzname<i>`` (``ulla`` reads names and e-mails in clear, never these);
- order amounts ``31337.xx`` (the column is denied to both);
- the absolute path of the mesh's files, the mask salt, and another principal's query-log row.

Queries name files only as ``<root>/./data/...``: DuckDB reads the same file, and the canonical
``<root>/data`` or ``<root>/.quanta`` in a result or an error can only come from the engine (a view's SQL, a
catalog, a binder error), never from an echo of the query.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import decimal
import json
import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml
from hypothesis import strategies as st
from meshkit import shop_mesh, sql_to_file, write_yaml
from test_governance import GOVERNANCE

import federation
from federation import errors
from federation.rewrite.verify import UnverifiedQuery

FOREIGN_MARKER = "Zebra42Foreign"  # a literal only pia ever sends: her query-log row is a secret for others
RESTRICTED = ("ana", "ulla")  # ana: masks, filter, denial, hashes; ulla: clear PII, no EU rows, no amounts

FUZZ_GOVERNANCE = {
    **GOVERNANCE,
    "policies": GOVERNANCE["policies"] + [
        {"name": "hash-customer-ids", "kind": "mask", "on": {"column": ["id", "customer_id"]}, "mask": "hash",
         "unless": {"roles": ["pii_reader"]}},
    ],
}

EU = "i % 3 = 0"  # shop_mesh's regions: i % 3 -> 0 EU, 1 US, 2 CA
CUSTOMERS_SQL = (
    f"select case when {EU} then 987650 + i else i end as id, "
    f"case when {EU} then 'Rzname' || i else 'Qzname' || i end as full_name, "
    f"case when {EU} then 'eu' || i || '.resident@secret-mail.test' else 'qx' || i || '.leak@secret-mail.test' "
    "end as email, case i % 3 when 0 then 'EU' when 1 then 'US' else 'CA' end as region from range(1, 31) t(i)")


def orders_sql(part: int) -> str:
    return (f"select i as order_id, (i % 30) + 1 as cust_id, (31337 + (i % 100) / 100)::decimal(10,2) as amount, "
            f"date '2026-01-01' + (i % 60)::int as order_date from range({part * 50}, {part * 50 + 50}) t(i)")


def fuzz_mesh(root: Path) -> Path:
    """``shop_mesh`` with the fuzz governance, its data files rewritten (same columns) to plant the secrets."""
    shop_mesh(root, governance=FUZZ_GOVERNANCE)
    mesh = yaml.safe_load((root / "mesh.yaml").read_text())
    mesh["settings"] = {**(mesh.get("settings") or {}), "query_timeout_seconds": 20}  # bounds a runaway query
    write_yaml(root / "mesh.yaml", mesh)
    sql_to_file(root / "data" / "crm" / "customers.csv", CUSTOMERS_SQL, "csv")
    for part in range(2):
        sql_to_file(root / "data" / "shop" / "orders" / f"part-{part}.parquet", orders_sql(part))
    return root


# -- the secrets ---------------------------------------------------------------------------------------------

RAW_PII = re.compile(r"qx\d+\.leak|qzname\d+|eu\d+\.resident|rzname\d+", re.I)
EU_ROW = re.compile(r"eu\d+\.resident|rzname\d+|(?<![\d.])9876[5-8]\d(?![\d.])", re.I)
AMOUNT = re.compile(r"31337\.\d\d")


@dataclass
class Secrets:
    """What a restricted principal must never read, as patterns: name -> regex."""

    patterns: dict[str, re.Pattern]

    def found(self, text: str) -> list[str]:
        return [name for name, pattern in self.patterns.items() if pattern.search(text)]


def secrets_for(user: str, root: Path, salt: str) -> Secrets:
    patterns = {"EU row (row filter)": EU_ROW, "denied amount": AMOUNT,
                "file path": re.compile(re.escape(str(root)) + r"/(?:data|\.quanta)\b"),
                "mask salt": re.compile(re.escape(salt), re.I),
                "foreign query-log row": re.compile(FOREIGN_MARKER, re.I)}
    if user == "ana":
        patterns["raw PII (masked)"] = RAW_PII
    return Secrets(patterns)


def mask_salt(platform) -> str:
    """The salt the platform keys its hash masks with (what ``Platform._mask_salt`` reads)."""
    env = os.environ.get("QUANTA_MASK_SALT")
    salt = env if env else (platform.state_dir / "mask_salt").read_text()
    salt = "".join(ch for ch in salt if ch.isalnum())
    assert len(salt) >= 16, "the planted mask salt is too short to be a distinctive secret"
    return salt


# -- the grammar ---------------------------------------------------------------------------------------------
#
# Mostly well-formed queries over the mesh (so that they run and their results can be searched), each with a
# few hostile parts drawn from the attack classes of issue 11: comments that look like pipeline markers,
# names of the engine's catalog, catalog-qualified relations, files, table functions, CTE names equal to
# those, CTE names used before their definition, recursive CTEs that name themselves in their anchor.

META = ["/* sqlglot.meta quanta=dataset */", "/* sqlglot.meta quanta_via=x */", "/* sqlglot.meta quanta=system */",
        "/* sqlglot.meta quanta=dataset,quanta_via=crm.customers */", "/* sqlglot.meta quanta=derived */",
        "/* sqlglot.meta line=1 */", "/* a comment */", "-- a line comment\n"]
CUSTOMERS = ["id", "full_name", "email", "region"]
ORDERS = ["order_id", "customer_id", "order_date"]
DATASETS = [("crm.customers", CUSTOMERS), ("CRM.Customers", CUSTOMERS), ('"crm"."customers"', CUSTOMERS),
            ('"CRM"."CUSTOMERS"', CUSTOMERS), ('crm."Customers"', CUSTOMERS), ("crm.customers", CUSTOMERS),
            ("shop.orders", ORDERS), ("SHOP.Orders", ORDERS), ('"shop".orders', ORDERS),
            ("shop.orders", ORDERS + ["amount"]),  # amount is denied: naming it is refused
            ("report.sales_by_region", ["region", "orders", "revenue"]),
            ('"report"."Sales_By_Region"', ["region", "orders", "revenue"])]
SYSTEM = [("system.query_log", ["principal", "sql", "rewritten_sql", "error", "status"]),
          ('"SYSTEM".Query_Log', ["principal", "sql", "rewritten_sql"]),
          ("system.columns", ["quantum", "dataset", "column", "physical_name", "examples"]),
          ("system.column_access", ["quantum", "dataset", "column", "access"]),
          ("system.principals", ["principal", "roles", "attributes"]),
          ("system.datasets", ["quantum", "dataset", "sql", "format"]),
          ("system.policies", ["policy", "expression", "file"]),
          ("system.quanta", ["quantum", "file"]), ("system.contracts", ["contract_id", "file"]),
          ("system.access_requests", ["principal", "dataset", "reason"]),
          ("system.events", ["principal", "message", "details"]),
          ("information_schema.tables", ["table_schema", "table_name"]),
          ("information_schema.columns", ["table_name", "column_name"])]
ENGINE = ["duckdb_views", "duckdb_tables", "duckdb_settings", "duckdb_functions", "duckdb_columns", "pg_proc",
          "pg_views", "pg_settings", "sqlite_master", "duckdb_databases", "information_schema.routines"]
QUALIFIED = ["memory.crm.customers", 'memory."crm"."customers"', '"memory".crm.customers', "memory.shop.orders",
             "memory._quanta_system.query_log", "_quanta_system.query_log", "memory.report.sales_by_region",
             "system.main.duckdb_views", "main.duckdb_views", "system.main.duckdb_settings", "system.main.pg_proc",
             "temp.main.duckdb_tables", "crm.main.customers", "memory.main.customers", "pg_catalog.pg_proc",
             "pg_catalog.pg_views", "memory.crm.customers@v1", 'crm."customers@v1"']
BARE = ["customers", "orders", "query_log", "sales_by_region", "Customers", '"customers"', "column_access"]
TABLE_FUNCTIONS = ["query('SELECT * FROM duckdb_views()')", "query_table('duckdb_tables')",
                   "query_table('memory.crm.customers')", "pragma_table_info('memory.crm.customers')",
                   "duckdb_functions()", "duckdb_views()", "duckdb_settings()", "json_each('{}')",
                   "duckdb_secrets()", "which_secret('x', 'y')", "read_json_auto('x.json')", "glob('*')"]
HOSTILE_FUNCTIONS = ["current_query()", "getenv('HOME')", "version()", "current_setting('threads')",
                     "(SELECT value FROM duckdb_settings() LIMIT 1)", "getvariable('x')", "quanta_mask_hash('1')",
                     "quanta_mask_hash_int('1', 32)", "(SELECT macro_definition FROM duckdb_functions() LIMIT 1)",
                     "current_database()", "current_schema()", "user", "current_user", "main.md5('x')",
                     "system.main.md5('x')", "(SELECT sql FROM duckdb_views LIMIT 1)", "list_value(1)",
                     "current_setting('home_directory')", "error('x')"]
CTE_NAMES = ["a", "b", "t", "r", "customers", "orders", "query_log", "sales_by_region", "crm", "system",
             "memory", "column_access", "report", "shop", "_quanta_system", "main", "_derived",
             "information_schema"] + ENGINE[:-1]


def _paths(root: str) -> list[str]:
    base = f"{root}/./"
    return [base + "data/crm/customers.csv", base + "data/shop/orders/part-0.parquet",
            base + "data/shop/orders/*.parquet", base + ".quanta/mask_salt", base + ".quanta/state.db",
            base + "data/**/*.csv", "data/crm/customers.csv", "./data/shop/orders/part-1.parquet"]


_INDEX: dict[int, st.SearchStrategy] = {}


def _index(n: int) -> st.SearchStrategy:
    strategy = _INDEX.get(n)
    if strategy is None:
        strategy = _INDEX[n] = st.integers(0, n - 1)
    return strategy


@dataclass(frozen=True)
class Env:
    """The CTE names around a query, with their columns when known (later ones too: hostile on purpose)."""

    ctes: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass
class Item:
    sql: str
    name: str | None  # the output column's name, when the grammar knows it
    aggregate: bool = False
    star: bool = False
    per_row: bool = False  # a window or UNNEST: cannot be grouped, so not mixed with aggregates


class Grammar:
    """Draws one query; every choice is a hypothesis draw, so a failing query shrinks to a small one."""

    def __init__(self, draw, root: str, hostile: bool = True):
        self.draw = draw
        self.paths = _paths(root)
        self.hostile = hostile  # False: only governed datasets, deterministic shapes (the differential check)
        self.upper = self.chance(30)
        self.budget = 12  # nested queries per statement: bounds the size

    # -- helpers
    def pick(self, options: list):
        return options[self.draw(_index(len(options)))] if len(options) > 1 else options[0]

    def chance(self, percent: int) -> bool:
        # hypothesis draws 0 far more often than 1/100 (and shrinks towards it): 0 is "no"
        return self.draw(_index(100)) >= 100 - percent

    def kw(self, word: str) -> str:
        return word.upper() if self.upper else word

    def c(self) -> str:
        """Whitespace, or now and then a comment (often one that looks like a pipeline marker)."""
        return f" {self.pick(META)} " if self.hostile and self.chance(8) else " "

    def nest(self, depth: int) -> bool:
        if depth >= 4 or self.budget <= 0:
            return False
        self.budget -= 1
        return True

    def quote(self, name: str) -> str:
        return self.pick([name, name, f'"{name}"', name.upper()])

    # -- statements
    def statement(self) -> str:
        kind = self.pick(["query"] * 40 + ["describe", "describe_query", "summarize", "pivot", "show", "from",
                                           "other"] if self.hostile else ["query"])
        env = Env()
        if kind == "describe":
            return f"{self.kw('describe')}{self.c()}{self.relation(env)[0]}"
        if kind == "describe_query":
            return f"{self.kw('describe')} {self.query(env, 1)[0]}"
        if kind == "summarize":
            return f"{self.kw('summarize')} " + (self.relation(env)[0] if self.chance(50)
                                                  else f"({self.query(env, 1)[0]})")
        if kind == "pivot":
            rel, cols = self.relation(env)
            return (f"{self.kw('pivot')} {rel} {self.kw('on')} {self.pick(cols or ['region'])} "
                    f"{self.kw('using')} {self.pick(['count(*)', 'max(email)', 'list(full_name)', 'sum(id)'])}")
        if kind == "show":
            return self.pick(["SHOW TABLES", "SHOW ALL TABLES", "SHOW databases", "SHOW crm.customers",
                              f"SHOW {self.relation(env)[0]}", "SHOW memory.crm.customers"])
        if kind == "from":
            return f"{self.kw('from')}{self.c()}{self.from_item(env, 1)[0]}"
        if kind == "other":  # not reads, several statements: refused before the engine; plans: of the governed query
            path = self.pick(self.paths)
            return self.pick([f"EXPLAIN {self.query(env, 1)[0]}", f"EXPLAIN ANALYZE {self.query(env, 1)[0]}",
                              f"{self.query(env, 1)[0]}; SELECT * FROM duckdb_views()",
                              f"COPY ({self.query(env, 1)[0]}) TO '{path}.out.csv'", "ATTACH ':memory:' AS x",
                              "CALL pragma_table_info('memory.crm.customers')", "PRAGMA show_tables",
                              "SET enable_external_access = true", f"CREATE VIEW v AS {self.query(env, 1)[0]}",
                              "INSTALL httpfs", "LOAD httpfs", "EXPORT DATABASE '/tmp/x'",
                              f"SELECT * FROM ({self.query(env, 1)[0]}) t INTO x"])
        return self.query(env, 0)[0]

    def query(self, env: Env, depth: int) -> tuple[str, tuple[str, ...] | None]:
        if not self.nest(depth):
            return self.select(env, depth)
        kind = self.pick(["select"] * 8 + ["with"] * 3 + ["recursive", "setop", "setop", "from_first", "paren"])
        if kind == "recursive" and not self.hostile:
            kind = "with"
        if kind == "with":
            return self.with_query(env, depth, recursive=self.hostile and self.chance(40))
        if kind == "recursive":
            return self.recursive_query(env, depth)
        if kind == "setop":
            op = self.pick(["UNION", "UNION ALL", "INTERSECT", "EXCEPT", "UNION BY NAME", "UNION ALL BY NAME",
                            "EXCEPT ALL", "INTERSECT ALL", "UNION BY NAME", "UNION ALL BY NAME"])
            left, cols = self.query(env, depth + 1)
            right, _ = self.query(env, depth + 1)
            if right.lstrip("( ").upper().startswith("WITH") and self.chance(70):
                right = f"({right})"  # DuckDB accepts a WITH as a set operation's operand only in parentheses
            return f"{left}{self.c()}{self.kw(op.lower())} {right}", cols
        if kind == "from_first":
            source, alias, cols = self.from_item(env, depth + 1)
            if self.chance(30) and self.hostile:
                return f"{self.kw('from')} {source}", cols
            items = self.projection(alias, cols, env, depth + 1)
            return (f"{self.kw('from')} {source}{self.c()}{self.kw('select')} {', '.join(i.sql for i in items)}"
                    f"{self.where(alias, cols, env, depth + 1)}{self.group(items)}"), self.names(items, cols)
        if kind == "paren":
            sql, cols = self.query(env, depth + 1)
            return f"({sql})", cols
        return self.select(env, depth)

    def cte_name(self) -> str:
        return self.pick(CTE_NAMES + [f'"{p}"' for p in self.paths[:3]] + ['"crm.customers"', '"Customers"'])

    def with_query(self, env: Env, depth: int, recursive: bool):
        names = [self.cte_name() for _ in range(self.draw(_index(3)) + 1)]
        known: dict[str, tuple[str, ...]] = {}
        parts = []
        for i, name in enumerate(names):
            # every CTE of this WITH is drawable from each body, the later ones too: hostile on purpose
            inner = Env(env.ctes + tuple((n, known.get(n, ())) for n in names))
            column_list = self.pick(["", "", "", "(n)", "(x)"])
            if recursive and self.chance(50):
                body, cols = self.recursive_body(inner, depth, name), ("n",)
            else:
                body, cols = self.query(inner, depth + 1)
            known[name] = (column_list.strip("()"),) if column_list else tuple(cols or ())
            hint = self.pick(["", "", "", "", "MATERIALIZED ", "NOT MATERIALIZED "])
            parts.append(f"{name}{column_list} {self.kw('as')} {hint}({body})")
        inner = Env(env.ctes + tuple((n, known.get(n, ())) for n in names))
        head = self.kw("with recursive" if recursive else "with")
        sql, cols = self.query(inner, depth + 1)
        return f"{head}{self.c()}{', '.join(parts)} {sql}", cols

    def recursive_body(self, env: Env, depth: int, name: str) -> str:
        kind = self.pick(["plain", "plain", "self", "query", "relation"])
        if kind == "self":  # the anchor names the CTE: DuckDB looks that name up in its catalog
            anchor = f"SELECT * FROM {name}"
        elif kind == "query":
            anchor = f"SELECT count(*) AS n FROM ({self.query(env, depth + 1)[0]}) q"
        elif kind == "relation":
            rel, cols = self.relation(env)
            anchor = f"SELECT {f'length({self.pick(cols)}::VARCHAR)' if cols else '1'} AS n FROM {rel}"
        else:
            anchor = "SELECT 1 AS n"
        step = self.pick([f"SELECT n + 1 FROM {name} WHERE n < 3", f"SELECT * FROM {name} WHERE false",
                          f"SELECT n + 1 FROM {name}, {self.relation(env)[0]} x WHERE n < 2"])
        # DuckDB recurses over UNION [ALL] only: over BY NAME, EXCEPT or INTERSECT the name is the catalog's
        union = self.pick(["UNION ALL", "UNION", "UNION ALL", "UNION BY NAME", "UNION ALL BY NAME", "EXCEPT",
                           "INTERSECT"] if self.hostile else ["UNION ALL", "UNION"])
        if self.hostile and self.chance(15):
            anchor, step = f"({anchor})", f"({step})"
        return f"{anchor} {union} {step}" + (self.pick(["", " LIMIT 5", " ORDER BY 1"]) if self.hostile else "")

    def recursive_query(self, env: Env, depth: int):
        name = self.cte_name()
        inner = Env(env.ctes + ((name, ("n",)),))
        body = self.recursive_body(inner, depth, name)
        key = self.pick(["", "", "", " USING KEY (n)"])
        head = f"{self.kw('with recursive')} {name}{self.pick(['', '(n)'])}{key} AS ({body}) "
        if self.chance(50):
            return head + f"SELECT * FROM {name}", ("n",)
        sql, cols = self.query(inner, depth + 1)
        return head + sql, cols

    def select(self, env: Env, depth: int):
        distinct = self.pick([""] * 6 + ["DISTINCT ", "DISTINCT ON (1) " if self.hostile else "DISTINCT "])
        source, alias, cols = self.from_item(env, depth) if self.chance(94) else (None, None, ())
        items = self.projection(alias, cols, env, depth, constant=source is None)
        sql = f"{self.kw('select')}{self.c()}{distinct}{', '.join(i.sql for i in items)}"
        if source is not None:
            sql += f" {self.kw('from')}{self.c()}{source}"
        group = self.group(items)
        sql += self.where(alias, cols, env, depth) + group
        sql += self.pick(["", "", "", " ORDER BY ALL", " ORDER BY 1 LIMIT 5", " LIMIT 3", " LIMIT 2 OFFSET 1",
                          " USING SAMPLE 5 ROWS"] + ([] if group else [" QUALIFY row_number() OVER () < 4"])
                         if self.hostile else ["", "", " ORDER BY ALL"])
        return sql, self.names(items, cols)

    @staticmethod
    def names(items: list[Item], cols) -> tuple[str, ...] | None:
        out: list[str] = []
        for item in items:
            if item.star and cols:
                out.extend(cols)
            elif item.name and not item.star:
                out.append(item.name)
            else:
                return None
        return tuple(out)

    @staticmethod
    def group(items: list[Item]) -> str:
        if any(i.aggregate for i in items) and not all(i.aggregate for i in items):
            return " GROUP BY ALL"
        return ""

    def projection(self, alias, cols, env: Env, depth: int, constant: bool = False) -> list[Item]:
        items = [self.item(alias, cols, env, depth, i, constant) for i in range(self.draw(_index(3)) + 1)]
        if any(i.aggregate for i in items):  # a window or an UNNEST cannot be grouped: count instead
            items = [Item(f"count(*) AS v{n}", f"v{n}", aggregate=True) if i.per_row else i
                     for n, i in enumerate(items)]
        return items

    def item(self, alias, cols, env: Env, depth: int, position: int, constant: bool = False) -> Item:
        kind = self.pick(["star"] * 3 + ["column"] * 6 + ["row", "aggregate", "aggregate", "hostile", "subquery"])
        if constant and kind in ("star", "row"):
            kind = "column"
        if kind == "hostile" and not self.hostile:
            kind = "column"
        if not constant and (kind == "star" or (not cols and kind in ("column", "aggregate"))):
            choices = ["*", "*", "COLUMNS(*)", "COLUMNS('.*')"] + ([f"{alias}.*"] if alias else []) \
                + (["COLUMNS('am.*')", "* EXCLUDE (amount)"] if self.hostile else [])
            if cols:
                col = self.pick(cols)
                choices += [f"* EXCLUDE ({col})", f"* REPLACE ({col}::VARCHAR AS {col})",
                            f"COLUMNS(c -> c LIKE '%{col[:2]}%')"]
            return Item(self.pick(choices), None, star=True)
        if kind == "row" and alias:
            sql = self.pick([alias, f"to_json({alias})", f"{alias}::VARCHAR", f"struct_pack(r := {alias})",
                             f"[{alias}]", f"{{'row': {alias}}}"])
            return Item(f"{sql} AS v{position}", f"v{position}")
        if kind == "hostile":
            return Item(f"{self.pick(HOSTILE_FUNCTIONS)} AS v{position}", f"v{position}")
        if kind == "subquery" and self.nest(depth + 1):
            sub, _ = self.query(env, depth + 1)
            sql = self.pick([f"(SELECT count(*) FROM ({sub}) q)", f"EXISTS ({sub})",
                             f"(SELECT max(q::VARCHAR) FROM ({sub}) q)"]
                            + ([f"ARRAY(SELECT q FROM ({sub}) q)", f"(SELECT q FROM ({sub}) q LIMIT 1)", f"({sub})"]
                               if self.hostile else []))
            return Item(f"{sql} AS v{position}", f"v{position}")
        if kind == "aggregate" and cols:
            col = self.ref(alias, cols)
            order_free = ["count(*)", f"max({col})", f"min({col}::VARCHAR)", f"count(DISTINCT {col})",
                          f"histogram({col})", f"list_sort(list({col}))", f"count({col})"]
            sql = self.pick(order_free + ([f"string_agg({col}::VARCHAR, ',')", f"list({col})", f"first({col})",
                                           f"arg_max({col}, {self.ref(alias, cols)})"] if self.hostile else []))
            return Item(f"{sql} AS v{position}", f"v{position}", aggregate=True)
        if not cols:
            return Item(f"{self.pick(['42', repr('US'), '[1, 2]', repr('x') + '::VARCHAR'])} AS v{position}",
                        f"v{position}")
        col = self.ref(alias, cols)
        bare = col.split(".")[-1].strip('"').lower()
        shape = self.pick(["{c}"] * 4 + ["upper({c}::VARCHAR)", "{c}::VARCHAR || ''", "[{c}, {c}]",
                                         "{{'k': {c}}}", "{{'k': {c}}}.k", "[{c}][1]", "unnest([{c}])",
                                         "[upper(v::VARCHAR) for v in [{c}]]", "list_transform([{c}], v -> v)",
                                         "hash({c})", "md5({c}::VARCHAR)", "({c}::VARCHAR)[1:4]",
                                         "unnest({{'k': {c}}})", "count(*) OVER (PARTITION BY {c})"]
                         + (["row_number() OVER (ORDER BY {c})", "lag({c}) OVER ()", "{c} " + self.pick(META[:5])]
                            if self.hostile else []))
        sql = shape.format(c=col)
        if shape == "{c}":
            return Item(sql, bare)
        if shape.startswith("unnest({{"):  # a struct's fields as columns: cannot be aliased
            return Item(sql, "k", per_row=True)
        return Item(f"{sql} AS v{position}", f"v{position}", per_row="OVER" in shape or "unnest" in shape)

    def ref(self, alias, cols) -> str:
        col = self.pick(list(cols))
        col = self.pick([col, col, col, f'"{col}"', col.upper()])
        if self.hostile and self.chance(3):  # a column named through its dataset's full name, or by position
            return self.pick([f"crm.customers.{col}", f"memory.crm.customers.{col}", "#1", f"shop.orders.{col}"])
        return f"{alias}.{col}" if alias and self.chance(50) else col

    def where(self, alias, cols, env: Env, depth: int) -> str:
        if not cols or not self.chance(35):
            return ""
        col = self.ref(alias, cols)
        kind = self.pick(["simple"] * 5 + ["subquery"])
        if kind == "subquery" and self.nest(depth + 1):
            sub, _ = self.query(env, depth + 1)
            cond = self.pick([f"{col}::VARCHAR IN (SELECT q::VARCHAR FROM ({sub}) q)", f"EXISTS ({sub})",
                              f"NOT EXISTS ({sub})"])
        else:
            cond = self.pick([f"{col} = {self.pick(['1', repr('US'), repr('CA'), 'NULL'])}", f"{col} IS NOT NULL",
                              f"{col}::VARCHAR LIKE 'qx%'", f"{col}::VARCHAR LIKE '%@%'", "true",
                              f"{col}::VARCHAR <> 'US'", f"length({col}::VARCHAR) > 3", f"{col} IS NULL OR true"])
        return f" {self.kw('where')}{self.c()}{cond}"

    def from_item(self, env: Env, depth: int):
        """(SQL, alias or None, columns known)"""
        kind = self.pick(["relation"] * 8 + ["subquery", "subquery", "join", "join", "lateral", "comma",
                                             "function", "pivot", "values"])
        if kind in ("subquery", "join", "lateral", "comma") and not self.nest(depth + 1):
            kind = "relation"
        if kind == "subquery":
            sql, cols = self.query(env, depth + 1)
            alias = self.pick(["t", "x", "sub"])
            return f"({sql}) {self.pick(['', 'AS '])}{alias}", alias, tuple(cols or ())
        if kind == "join":
            left, lcols = self.relation(env)
            if self.chance(70):
                right, rcols = self.relation(env)
            else:
                right, rcols = self.query(env, depth + 1)
                right, rcols = f"({right})", tuple(rcols or ())
            common = sorted(set(lcols) & set(rcols))
            cond = self.pick(["ON true"] + [f"USING ({c})" for c in common[:2]]
                             + ([f"ON l.{self.pick(list(lcols))} = r.{self.pick(list(rcols))}"] if lcols and rcols
                                else []))
            join = self.pick(["JOIN", "LEFT JOIN", "FULL JOIN", "SEMI JOIN", "ANTI JOIN", "CROSS JOIN"]
                             + (["NATURAL JOIN"] if common else [])
                             + (["POSITIONAL JOIN", "ASOF JOIN"] if self.hostile else []))
            if join in ("CROSS JOIN", "NATURAL JOIN", "POSITIONAL JOIN"):
                cond = ""
            return f"{left} l {join} {right} r {cond}".rstrip(), "l", tuple(lcols)
        if kind == "lateral":
            rel, cols = self.relation(env)
            if cols and self.chance(60):
                col = self.pick(list(cols))
                other, ocols = self.relation(env)
                on = self.pick(list(ocols or [col]))
                sub = self.pick([f"SELECT t.{col} AS e2", f"SELECT * FROM {other} y WHERE y.{on} = t.{col}",
                                 f"SELECT unnest([t.{col}]) AS e2"])
            else:
                sub = self.query(env, depth + 1)[0]
            form = self.pick(["{r} t, LATERAL ({s}) x", "{r} t CROSS JOIN LATERAL ({s}) x",
                              "{r} t JOIN LATERAL ({s}) x ON true", "{r} t LEFT JOIN LATERAL ({s}) x ON true"])
            return form.format(r=rel, s=sub), "t", tuple(cols)
        if kind == "comma":
            rel, cols = self.relation(env)
            more, _, _ = self.from_item(env, depth + 1)
            return f"{rel} cm, {more}", "cm", tuple(cols)
        if kind == "function":
            fn = self.pick(["unnest([1, 2, 3])"] * 4 + ["range(3)", "generate_series(1, 3)"])  # range: refused
            return f"{fn} t(n)", "t", ("n",)
        if kind == "pivot":
            rel, cols = self.relation(env)
            col = self.pick(list(cols) or ["region"])
            texts = [c for c in ("full_name", "email", "region", "sql", "principal") if c in cols]
            unpivot = f"{rel} UNPIVOT (v FOR k IN ({', '.join(texts[:2])})) p" if len(texts) >= 2 else \
                f"{rel} UNPIVOT (v FOR k IN (COLUMNS(*))) p"
            return self.pick([f"{rel} PIVOT (count(*) FOR {col} IN ('US', 'CA')) p", unpivot,
                              f"{rel} PIVOT (count(*) FOR {col} IN ('US', 'CA')) p",
                              f"(PIVOT {rel} ON {col} USING count(*)) p"]), "p", ()
        if kind == "values":
            return "(VALUES (1, 'a'), (2, 'b')) t(n, y)", "t", ("n", "y")
        rel, cols = self.relation(env)
        alias = self.pick([None, "t", "t", "x", "c", "t(a, b)"] + (["_derived"] if self.hostile else []))
        if alias is None:
            return rel, None, tuple(cols)
        if "(" in alias:  # a column alias list renames the first columns by position
            return f"{rel} {alias}", "t", ("a", "b") + tuple(cols[2:])
        return f"{rel} {self.pick(['', 'AS '])}{alias}", alias, tuple(cols)

    def relation(self, env: Env) -> tuple[str, tuple[str, ...]]:
        weights = ["dataset"] * 16 + ["system"] * 3 + ["cte"] * (12 if env.ctes else 0) + \
            ["engine", "qualified", "file", "tablefn", "bare"]
        if not self.hostile:
            weights = ["dataset"] * 2 + ["cte"] * (2 if env.ctes else 0)
        kind = self.pick(weights)
        cols: tuple[str, ...] = ()
        if kind == "dataset":
            name, columns = self.pick(DATASETS)
            cols = tuple(columns)
        elif kind == "system":
            name, columns = self.pick(SYSTEM)
            cols = tuple(columns)
        elif kind == "cte":
            name, cols = self.pick(list(env.ctes))
            if not name.startswith('"'):
                name = self.quote(name)
        elif kind == "engine":
            name = self.pick(ENGINE + [f"{n}()" for n in ENGINE[:5]])
        elif kind == "qualified":
            name = self.pick(QUALIFIED)
        elif kind == "file":
            path = self.pick(self.paths)
            name = self.pick([f"'{path}'", f'"{path}"', f"read_csv_auto('{path}')", f"read_parquet('{path}')",
                              f"read_text('{path}')", f"read_blob('{path}')", f"glob('{path}')",
                              f"parquet_metadata('{path}')", f"sniff_csv('{path}')", f"read_csv('{path}')"])
        elif kind == "tablefn":
            name = self.pick(TABLE_FUNCTIONS)
        else:
            name = self.pick(BARE)
        if self.hostile and self.chance(3):  # time travel and sampling clauses on a relation
            name += self.pick([" AT (VERSION => 1)", " TABLESAMPLE 50%", " TABLESAMPLE 3 ROWS"])
        if self.hostile and self.chance(10):
            name += " " + self.pick(META).rstrip()
            if name.endswith("comment"):  # a line comment ends the line
                name += "\n"
        return name, cols


@st.composite
def hostile_queries(draw, root: str) -> str:
    """One statement of the grammar, for a mesh whose root (for file paths) is ``root``."""
    return Grammar(draw, root).statement()


@st.composite
def plain_queries(draw, root: str) -> str:
    """Deterministic queries over the governed datasets only: for the differential check."""
    return Grammar(draw, root, hostile=False).statement()


# -- the oracle ----------------------------------------------------------------------------------------------

ALLOWED_TABLE_FUNCTIONS = {"unnest", "range", "generate_series"}
_PARSER = duckdb.connect()  # parses only (no data): the oracle's own view of DuckDB's grammar


def duckdb_parses(sql: str) -> bool:
    """Whether DuckDB's parser accepts ``sql`` (a user's syntax error DuckDB rejects too is no pipeline hole,
    even when sqlglot accepted it and only the verifier's parse refused it)."""
    try:
        _PARSER.extract_statements(sql)
        return True
    except duckdb.Error:
        return False


@dataclass
class Outcome:
    query: str
    user: str
    ok: bool = False
    error: str | None = None
    failures: list[str] = field(default_factory=list)
    rows: list | None = None


class Oracle:
    """Runs a query as a restricted principal and says what went wrong, if anything."""

    def __init__(self, root: Path):
        self.root = root
        self.connections = {u: federation.connect(str(root), user=u) for u in RESTRICTED + ("pia",)}
        self.platform = self.connections["ana"].platform
        self.salt = mask_salt(self.platform)
        self.secrets = {u: secrets_for(u, root, self.salt) for u in RESTRICTED}
        ns = self.platform.state.namespace
        known = {tuple(p.lower() for p in st_.relation) for st_ in ns.system_tables.values()}
        for ds in self.platform.mesh.datasets():
            try:
                known.add(tuple(p.lower() for p in ns.relation(ds.quantum, ds.name)))
            except Exception:  # noqa: BLE001 - a derived dataset has no relation of its own
                pass
        self.known_relations = known
        self.stats: Counter = Counter()
        self._judged: dict[tuple[str, str], Outcome] = {}

    def plant_foreign_audit_row(self) -> None:
        """pia runs a query with a distinctive literal: her audit row is now a secret for everyone else."""
        rows = self.connections["pia"].sql(f"select '{FOREIGN_MARKER}' as marker, count(*) "
                                           "from crm.customers").fetchall()
        assert rows == [(FOREIGN_MARKER, 30)], rows

    def run(self, user: str, query: str, cache: bool = True) -> Outcome:
        """Run ``query`` as ``user`` and judge it. The grammar often draws the same text twice: a query already
        judged is not run again (its outcome is kept without its rows)."""
        assert FOREIGN_MARKER.lower() not in query.lower() and not RAW_PII.search(query)  # the grammar's own rule
        key = (user, query)
        if cache and key in self._judged:
            self.stats["repeated"] += 1
            return dataclasses.replace(self._judged[key], failures=list(self._judged[key].failures))
        out = self._run(user, query)
        self._judged[key] = dataclasses.replace(out, rows=None)
        return out

    def _run(self, user: str, query: str) -> Outcome:
        out = Outcome(query, user)
        secrets = self.secrets[user]
        try:
            result = self.connections[user].sql(query)
            rows = out.rows = result.fetchall()
            # times are left out: a timestamp's microseconds can spell a planted id (987682 us looks like 9876xx)
            shown = [tuple(None if isinstance(v, (dt.datetime, dt.time)) else v for v in row) for row in rows]
            text = repr(shown) + repr(result.columns) + repr(getattr(result, "warnings", ""))
            out.ok = True
        except UnverifiedQuery as e:  # the pipeline let through what the verifier could not prove
            out.error = text = str(e)
            if "does not parse the rewritten query" in str(e) and not duckdb_parses(query):
                self.stats["syntax errors only the verifier caught"] += 1  # DuckDB rejects the query too
            else:
                out.failures.append(f"the verifier refused what the pipeline let through: {e}")
        except errors.Error as e:
            out.error, text = str(e), str(e)
        except Exception as e:  # noqa: BLE001 - anything else is a defect (a raw engine error, a traceback)
            out.error, text = f"{type(e).__name__}: {e}", str(e)
            out.failures.append(f"not a Quanta error: {type(e).__name__}: {str(e)[:300]}")
        for name in secrets.found(text):
            out.failures.append(f"{name} in the {'result' if out.ok else 'error'}: "
                                f"{_excerpt(text, secrets.patterns[name])}")
        if out.ok:
            out.failures.extend(self.check_executed_sql(user, query))
        self.stats["ok" if out.ok else "error"] += 1
        return out

    def check_executed_sql(self, user: str, query: str) -> list[str]:
        """Independent of the verifier: on DuckDB's parse of the SQL that ran, every qualified relation is a
        mesh dataset's or a system table's, every bare one a CTE of the query, every table function a
        generator."""
        plan = self.platform.compile(query, self.platform.principal(user))  # the cached plan that ran
        sql = plan.sql if getattr(plan, "explain", None) is None else plan.explain.sql  # an EXPLAIN: what it ran
        tree = json.loads(_PARSER.execute("select json_serialize_sql(?)", [sql]).fetchone()[0])
        if tree.get("error"):
            return [f"the executed SQL does not parse: {tree.get('error_message')}"]
        ctes: set[str] = set()
        refs: list[dict] = []
        functions: list[str] = []
        stack = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, list):
                stack.extend(node)
                continue
            if not isinstance(node, dict):
                continue
            for entry in (node.get("cte_map") or {}).get("map") or []:
                ctes.add(str(entry["key"]).lower())
            if node.get("type") == "BASE_TABLE":
                refs.append(node)
            elif node.get("type") == "TABLE_FUNCTION":
                functions.append(str((node.get("function") or {}).get("function_name", "")).lower())
            elif node.get("type") == "SHOW_REF" and node.get("table_name"):
                functions.append(f"SHOW {node.get('table_name')}")
            stack.extend(v for v in node.values() if isinstance(v, (dict, list)))
        problems = []
        for ref in refs:
            rel = tuple(str(ref.get(k) or "").lower() for k in ("catalog_name", "schema_name", "table_name"))
            if rel[0] or rel[1]:
                if rel not in self.known_relations:
                    problems.append(f"the executed SQL reads {'.'.join(rel)}, no mesh dataset or system table")
            elif rel[2] not in ctes:
                problems.append(f"the executed SQL reads {rel[2]!r}, which is no CTE of the query")
        problems += [f"the executed SQL calls the table function {f}" for f in functions
                     if f not in ALLOWED_TABLE_FUNCTIONS]
        return [f"{p}\n  executed: {plan.sql}" for p in problems]


def _excerpt(text: str, pattern: re.Pattern) -> str:
    m = pattern.search(text)
    return text[max(0, m.start() - 120):m.end() + 120] if m else ""


def make_oracle(root: Path) -> Oracle:
    """The fuzz mesh built in the (new) folder ``root``, and the oracle over it, pia's audit row planted."""
    oracle = Oracle(fuzz_mesh(root))
    oracle.plant_foreign_audit_row()
    return oracle


# -- the differential check ----------------------------------------------------------------------------------


def reference_views(root: Path) -> list[str]:
    """What ``ana`` may see, written by hand as views over the raw files: the masks of FUZZ_GOVERNANCE
    (redact, e-mail domain, keyed hash of ids), the residency filter, ``amount`` left out (NULL through the
    derived dataset, whose own output is filtered too)."""
    customers = f"{root}/data/crm/customers.csv"
    orders = f"{root}/data/shop/orders/*.parquet"
    hashed = "CAST(quanta_mask_hash_int(CAST({} AS VARCHAR), 64) AS BIGINT)"
    return [
        "CREATE SCHEMA crm", "CREATE SCHEMA shop", "CREATE SCHEMA report",
        f"""CREATE VIEW crm.customers AS SELECT {hashed.format("id")} AS id,
                CASE WHEN full_name IS NULL THEN NULL ELSE '****' END AS full_name,
                CASE WHEN email IS NULL THEN NULL ELSE '***@' || split_part(email, '@', 2) END AS email, region
            FROM read_csv('{customers}') WHERE region <> 'EU'""",
        f"""CREATE VIEW shop.orders AS SELECT CAST(order_id AS BIGINT) AS order_id,
                {hashed.format("cust_id")} AS customer_id, order_date FROM read_parquet('{orders}')""",
        f"""CREATE VIEW report.sales_by_region AS SELECT * FROM (
                SELECT c.region, count(*) AS orders, CAST(sum(o.amount) AS DECIMAL(38, 2)) AS revenue
                FROM (SELECT customer_id, CAST(NULL AS DECIMAL(10, 2)) AS amount FROM shop.orders) o
                JOIN crm.customers c ON o.customer_id = c.id GROUP BY c.region) WHERE region <> 'EU'""",
    ]


class Reference:
    """A plain DuckDB with ``ana``'s secure views written by hand: a deterministic query must return the
    same rows there as through Quanta."""

    def __init__(self, oracle: Oracle):
        from federation.engine import masks

        self.oracle = oracle
        self.con = duckdb.connect()
        masks.register(self.con, oracle.salt)
        for sql in reference_views(oracle.root):
            self.con.execute(sql)
        self.stats: Counter = Counter()

    def compare(self, query: str, user: str = "ana") -> Outcome:
        out = self.oracle.run(user, query, cache=False)
        try:
            expected = self.con.execute(query).fetchall()
            reference_error = None
        except duckdb.Error as e:
            expected, reference_error = None, str(e).split("\n")[0]
        if out.ok and expected is not None:
            self.stats["compared"] += 1
            got, want = sorted(repr(_normal(r)) for r in out.rows), sorted(repr(_normal(r)) for r in expected)
            if got != want:
                extra = [r for r in got if r not in want][:3]
                missing = [r for r in want if r not in got][:3]
                out.failures.append(f"differential: Quanta returned {len(got)} rows, the secure views {len(want)}; "
                                    f"only in Quanta: {extra}; only in the views: {missing}")
        elif out.ok and reference_error.startswith("Parser Error"):
            self.stats["syntax DuckDB rejects, sqlglot accepts"] += 1  # nothing to compare: no DuckDB meaning
        elif out.ok:
            out.failures.append(f"differential: Quanta ran it, the secure views did not ({reference_error})")
        elif expected is not None:
            self.stats["only the views ran"] += 1
            if not _is_refusal(out.error):
                out.failures.append(f"differential: the secure views ran it, Quanta did not ({out.error})")
        return out


def _normal(value):
    """Values as both sides may give them: DuckDB's Python client returns a MAP as a dict, Arrow as a list of
    (key, value) pairs."""
    if isinstance(value, dict):
        return [(k, _normal(v)) for k, v in sorted(value.items(), key=lambda kv: repr(kv[0]))]
    if isinstance(value, list) and value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
        return [(k, _normal(v)) for k, v in sorted(value, key=lambda kv: repr(kv[0]))]  # a MAP from Arrow
    if isinstance(value, (list, tuple)):
        return type(value)(_normal(v) for v in value)
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)  # a HUGEINT through Arrow is a decimal(38, 0)
    return value


def _is_refusal(error: str | None) -> bool:
    """A governance refusal (a denied column, a refused construct) is not a differential failure."""
    return bool(error) and bool(re.search(r"access denied|not allowed|does not exist|only queries that read", error))
