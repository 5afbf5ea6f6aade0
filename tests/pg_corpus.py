"""The query corpus of the PostgreSQL differential test (tests/test_pg_differential.py): queries typical of
BI tools and ORMs, generated from templates over two tables that exist, with the same rows, in a real
PostgreSQL and in a mesh (``bi.sales``, ``bi.stores``).

Each entry is ``(sql, params)``; ``%s`` marks a parameter (psycopg binds it server-side). A query without a
top-level ORDER BY is compared as a multiset of rows.
"""

from __future__ import annotations

import datetime as dt
import decimal
import random

# -- the tables ------------------------------------------------------------------------------------------------

# (name, PostgreSQL type, contract logicalType, contract physicalType)
SALES = (
    ("id", "integer", "integer", "integer"),
    ("store_id", "integer", "integer", "integer"),
    ("qty", "bigint", "integer", "bigint"),
    ("rating", "smallint", "integer", "smallint"),
    ("price", "numeric(10,2)", "number", "decimal(10,2)"),
    ("discount", "double precision", "number", "double"),
    ("category", "text", "string", "varchar"),
    ("product", "text", "string", "varchar"),
    ("sold_on", "date", "date", "date"),
    ("sold_at", "timestamp", "timestamp", "timestamp"),
    ("paid", "boolean", "boolean", "boolean"),
)
STORES = (
    ("store_id", "integer", "integer", "integer"),
    ("name", "text", "string", "varchar"),
    ("city", "text", "string", "varchar"),
    ("opened", "date", "date", "date"),
    ("size_sqm", "integer", "integer", "integer"),
)


def sales_rows() -> list[tuple]:
    rng = random.Random(13)
    cats = ["tools", "garden", "kitchen", "toys"]
    rows = []
    for i in range(1, 201):
        day = dt.date(2025, 1, 1) + dt.timedelta(days=rng.randrange(0, 500))
        at = dt.datetime.combine(day, dt.time(rng.randrange(24), rng.randrange(60), rng.randrange(60)))
        rows.append((
            i,
            rng.randrange(1, 9),
            None if i % 13 == 0 else rng.randrange(1, 40),
            rng.randrange(1, 6),
            decimal.Decimal(rng.randrange(50, 100000)).scaleb(-2),
            None if i % 7 == 0 else round(rng.random() * 0.3, 4),
            None if i % 11 == 0 else cats[rng.randrange(4)],
            rng.choice(["Widget", "gadget", "Gizmo Pro", " spanner ", "Hose-2", "Pan"]) + f" {i % 17}",
            day,
            at,
            None if i % 17 == 0 else rng.random() < 0.7,
        ))
    return rows


def stores_rows() -> list[tuple]:
    cities = ["Lyon", "Paris", None, "Berlin", "Lyon", "Madrid", None, "Rome"]
    return [(s, f"Store {s}", cities[s - 1], dt.date(2015 + s, s, 10 + s), 100 * s + 50) for s in range(1, 9)]


# -- the queries -------------------------------------------------------------------------------------------------

S = "bi.sales"
NUMERIC = ["id", "qty", "rating", "price", "discount"]  # int4, int8, int2, numeric, float8
LITERALS = ["7", "2.5"]

AGGREGATES = ["count(*)", "count(qty)", "count(distinct category)", "sum(id)", "sum(qty)", "sum(rating)",
              "sum(price)", "sum(discount)", "avg(id)", "avg(qty)", "avg(rating)", "avg(price)", "avg(discount)",
              "min(price)", "max(sold_on)", "min(sold_at)", "max(category)", "bool_and(paid)", "bool_or(paid)",
              "stddev(price)", "variance(qty)", "stddev_pop(discount)", "string_agg(distinct category, ',')",
              "count(*) filter (where paid)", "sum(price * qty)", "avg(price)::numeric(10,2)",
              "round(avg(price), 2)", "sum(qty) / count(*)", "max(price) - min(price)", "count(1)"]
GROUPINGS = [("", ""), ("category, ", " group by category"), ("store_id, ", " group by store_id"),
             ("paid, ", " group by paid")]

ARITHMETIC = ["{a} / {b}", "{a} * {b}", "{a} + {b}", "{a} - {b}", "{a} % {b}"]

DATES = [
    "date_trunc('month', sold_on)", "date_trunc('month', sold_at)", "date_trunc('year', sold_at)",
    "date_trunc('day', sold_at)", "date_trunc('week', sold_on)", "date_trunc('quarter', sold_at)",
    "date_trunc('hour', sold_at)", "extract(year from sold_on)", "extract(month from sold_at)",
    "extract(dow from sold_on)", "extract(doy from sold_on)", "extract(epoch from sold_at)",
    "extract(hour from sold_at)", "extract(quarter from sold_on)", "date_part('year', sold_on)",
    "date_part('day', sold_at)", "sold_on + 7", "sold_on - 1", "sold_on - date '2025-01-01'",
    "sold_at + interval '1 day'", "sold_at - interval '2 hours'", "sold_on + interval '1 month'",
    "sold_at::date", "sold_on::timestamp", "cast(sold_at as date)", "to_char(sold_on, 'YYYY-MM')",
    "age(sold_at, timestamp '2025-01-01')", "sold_at - timestamp '2025-01-01'", "make_date(2025, rating, 1)",
    "date '2025-03-01' - sold_on",
]

CASES = [
    "case when price > 500 then 'high' when price > 100 then 'mid' else 'low' end",
    "case category when 'tools' then 1 when 'toys' then 2 end",
    "case when paid then qty else 0 end",
    "case when discount is null then 'none' else 'some' end",
    "coalesce(category, 'unknown')", "coalesce(qty, 0)", "coalesce(discount, 0)", "coalesce(qty, price)",
    "nullif(rating, 3)", "nullif(category, 'toys')", "greatest(rating, 3)", "least(price, 100)",
    "greatest(qty, rating, 10)", "coalesce(null, category, product)",
    "case when qty is null then null else qty * 2 end",
]

CASTS = ["id::text", "price::int", "price::bigint", "discount::numeric(6,3)", "qty::float8", "rating::numeric",
         "sold_on::text", "sold_at::text", "paid::text", "price::text", "cast(id as varchar)", "'42'::int",
         "'3.5'::numeric", "cast(qty as double precision)", "price::float4", "id::smallint", "'2025-02-03'::date",
         "cast(price as decimal(12,4))", "discount::real", "1::boolean", "'t'::boolean", "id::numeric(5,1)",
         "cast(rating as bigint)", "price::integer", "'  x '::varchar(3)"]

WINDOWS = [
    "row_number() over (order by id)", "rank() over (partition by category order by price)",
    "dense_rank() over (partition by store_id order by rating)", "lag(price) over (order by id)",
    "lead(qty, 2) over (partition by store_id order by id)", "sum(qty) over (partition by store_id)",
    "avg(price) over (partition by category)", "count(*) over ()", "first_value(product) over (order by id)",
    "ntile(4) over (order by id)", "sum(price) over (order by id rows between 2 preceding and current row)",
    "max(price) over (partition by category order by id)", "percent_rank() over (order by id)",
    "cume_dist() over (order by price, id)", "last_value(id) over (order by id)",
    "sum(id) over (order by id)", "avg(rating) over (partition by paid)", "min(sold_on) over (partition by store_id)",
]

STRINGS = [
    "upper(product)", "lower(product)", "length(product)", "substring(product from 2 for 3)",
    "substr(product, 3)", "position('o' in product)", "replace(product, ' ', '_')", "trim(product)",
    "ltrim(product)", "rtrim(product)", "concat(product, '-', category)", "product || '-' || category",
    "category || NULL", "left(product, 3)", "right(product, 2)", "lpad(category, 10, '*')",
    "rpad(category, 9, '.')", "initcap(product)", "split_part(product, ' ', 1)", "starts_with(product, 'G')",
    "product like 'G%'", "product ilike 'g%'", "reverse(category)", "repeat(category, 2)", "strpos(product, 'e')",
    "md5(category)", "concat_ws('/', category, product)", "char_length(category)", "product ~ '^[A-Z]'",
    "category || id", "'n=' || qty", "ascii(category)", "chr(65 + rating)", "translate(category, 'ot', '01')",
    "regexp_replace(product, '[0-9]+', '#')", "octet_length(product)", "quote_ident(category)",
    "to_char(price, '999.99')", "format('%s-%s', category, id)", "string_to_array(product, ' ')",
    "quote_literal(category)", "quote_literal(product || E'\\\\x')", "quote_literal(qty)", "quote_nullable(discount)",
]

NULLS = [
    "qty is null", "discount is not null", "category is distinct from 'tools'",
    "qty is not distinct from null", "paid is true", "paid is not false", "paid is unknown",
    "qty = null", "null::int + 1", "coalesce(qty, rating) is null",
]

FULL = [
    "select * from bi.stores order by store_id",
    "select id, product from bi.sales order by id limit 10",
    "select id from bi.sales order by id limit 5 offset 10",
    "select id, qty from bi.sales order by qty, id limit 20",
    "select id, qty from bi.sales order by qty desc, id limit 20",
    "select id, qty from bi.sales order by qty nulls first, id limit 20",
    "select id, qty from bi.sales order by qty desc nulls last, id limit 20",
    "select id, category from bi.sales order by category, id limit 30",
    "select id, category from bi.sales order by category desc, id limit 30",
    "select distinct category from bi.sales order by category",
    "select distinct store_id, paid from bi.sales order by 1, 2",
    "select distinct on (store_id) store_id, id, price from bi.sales order by store_id, price desc, id",
    "select count(distinct store_id), count(distinct paid) from bi.sales",
    "select category, count(*) from bi.sales group by category having count(*) > 40 order by 1",
    "select store_id, sum(price) as total from bi.sales group by 1 having sum(price) > 2000 order by total desc",
    "select category, avg(price) from bi.sales group by category order by 2 desc",
    "select s.name, count(*) from bi.sales x join bi.stores s on s.store_id = x.store_id group by s.name order by 1",
    "select s.city, sum(x.qty) from bi.sales x join bi.stores s using (store_id) group by 1 order by 1 nulls first",
    ("select s.name, x.id from bi.stores s left join bi.sales x on x.store_id = s.store_id and x.id < 5 "
     "order by 1, 2"),
    "select id from bi.sales where store_id in (select store_id from bi.stores where city = 'Lyon') order by id",
    ("select id from bi.sales x where exists (select 1 from bi.stores s where s.store_id = x.store_id "
     "and s.size_sqm > 500) order by id"),
    "select id, price from bi.sales where price > (select avg(price) from bi.sales) order by id",
    "with t as (select category, sum(qty) q from bi.sales group by category) select * from t order by q desc",
    "with t as (select store_id, count(*) n from bi.sales group by 1) select max(n), min(n) from t",
    "select (select count(*) from bi.stores) as n_stores, count(*) from bi.sales",
    "select category, count(*) from bi.sales group by rollup (category) order by 1 nulls last, 2",
    "select store_id, paid, count(*) from bi.sales group by grouping sets ((store_id), (paid)) order by 1, 2",
    "select id from bi.sales where category in ('tools', 'toys') and paid order by id",
    "select id from bi.sales where product like '%Pro%' order by id",
    "select id from bi.sales where sold_on between date '2025-03-01' and date '2025-03-31' order by id",
    "select id from bi.sales where sold_at >= timestamp '2025-06-01 12:00:00' order by id limit 10",
    "select id from bi.sales where not paid order by id",
    "select id, price from bi.sales order by price desc fetch first 3 rows only",
    "select store_id from bi.stores union select store_id from bi.sales order by 1",
    "select category from bi.sales intersect select 'tools' order by 1",
    "select store_id from bi.stores except select store_id from bi.sales where paid order by 1",
    "select 1",
    "select 1 + 1",
    "select 10 / 4",
    "select 10 / 4.0",
    "select 10 % 3",
    "select -7 / 2",
    "select 1 / 0",
    "select 1.0 / 0",
    "select 5 % 0",
    "select 2 ^ 10",
    "select |/ 16",
    "select 'a' || null",
    "select null",
    "select true, false",
    "select current_date = current_date",
    "select now() is not null",
    "select version() like 'PostgreSQL%'",
    "select count(*) from bi.sales where qty / rating > 5",
    "select count(*), count(qty), count(discount), count(category) from bi.sales",
    "select sum(qty) / sum(rating) from bi.sales",
    ("select store_id, round(100.0 * count(*) / sum(count(*)) over (), 2) as pct from bi.sales group by 1 "
     "order by 1"),
    "select category, count(*) * 100 / (select count(*) from bi.sales) from bi.sales group by 1 order by 1",
    "select date_trunc('month', sold_on) as m, sum(price) from bi.sales group by 1 order by 1",
    "select extract(year from sold_on) as y, count(*) from bi.sales group by 1 order by 1",
    "select to_char(sold_on, 'YYYY-MM') as m, count(*) from bi.sales group by 1 order by 1",
    "select id, price from bi.sales order by price * qty desc nulls last, id limit 5",
    "select array_agg(id order by id) from bi.sales where id < 6",
    "select id, array[rating, 1] from bi.sales where id < 4 order by id",
    "select generate_series(1, 3)",
    "select * from generate_series(1, 4) as g(n)",
    "select unnest(array[1, 2, 3])",
    "select id, price % 7, qty % rating, discount::numeric % 0.1 from bi.sales order by 1 limit 6",
    "select 0.12345::float8::numeric, 3::numeric, 1.50::numeric, -2.5::numeric, (1/3.0)::float8::numeric",
    "select id, product::varchar(4), category::character varying(3), id::varchar(1) from bi.sales order by 1 limit 8",
    ("select id, id::numeric, price::numeric, discount::numeric, round(discount::numeric, 3), qty::numeric / 7 "
     "from bi.sales order by 1 limit 8"),
    "select id, array[rating, qty], array[rating, id], array[rating, rating] from bi.sales where id < 4 order by id",
    "select generate_series(1, 10, 3), generate_series(2, 3)",
    "select generate_series(1, 3::bigint)",
    ("select id, sign(rating - 3), sign(price - 500), sign(discount - 0.1), sign(qty - 20) from bi.sales "
     "order by 1 limit 12"),
    "select id, least(rating, 3), greatest(rating, qty, 2), least(id, rating) from bi.sales order by 1 limit 8",
    ("select quote_ident(w) from (values ('abc'), ('Abc'), ('select'), ('user_1'), ('a b'), ('x\"y'), (''), "
     "('1st'), ('name'), ('int'), ('été'), (null)) v(w)"),
    "select abs(-5), ceil(2.1), floor(2.9), round(2.567, 1), trunc(2.9), sign(-3), mod(7, 3)",
    "select sqrt(16), power(2, 8), exp(0), ln(1), log(100), pi()",
    "select round(price) from bi.sales order by id limit 3",
    "select round(discount::numeric, 2) from bi.sales where discount is not null order by id limit 3",
    "select ceil(price), floor(discount) from bi.sales order by id limit 3",
    "select abs(price - 500) from bi.sales order by id limit 3",
    "select id, price::numeric(10,1) from bi.sales order by id limit 3",
    "select max(length(product)) from bi.sales",
    "select count(*) filter (where qty > 10) as big, count(*) filter (where qty <= 10) as small from bi.sales",
    "select category, percentile_cont(0.5) within group (order by price) from bi.sales group by 1 order by 1",
    "select mode() within group (order by store_id) from bi.sales",
    "select id, case when id % 2 = 0 then 'even' else 'odd' end as parity from bi.sales order by id limit 4",
    "select store_id, string_agg(product, ', ' order by id) from bi.sales where id < 20 group by 1 order by 1",
    ("select s.name, coalesce(sum(x.price), 0) from bi.stores s left join bi.sales x on x.store_id = s.store_id "
     "and x.id < 0 group by s.name order by 1"),
    "select a.id, b.id from bi.sales a join bi.sales b on a.id = b.id + 1 where a.id < 5 order by 1",
    "select x.id, s.name from bi.sales x cross join bi.stores s where x.id = 1 and s.store_id < 3 order by 2",
    ("select * from (select id, price, rank() over (order by price desc) r from bi.sales) t where r <= 3 "
     "order by r, id"),
    "select count(*) from (select distinct category, paid from bi.sales) t",
    "select count(*) over (), id from bi.sales order by id limit 2",
    "select exists (select 1 from bi.sales where qty > 38)",
    "select id in (1, 2, 3) from bi.sales order by id limit 4",
    "select id from bi.sales where id = any(array[3, 5, 7]) order by id",
    "select id::text || '-' || coalesce(category, '?') as label from bi.sales order by id limit 5",
    "select count(*) as \"Total Rows\" from bi.sales",
    "select category as \"Category\", sum(qty) as \"Qty\" from bi.sales group by 1 order by 1",
    "select bi.sales.id from bi.sales order by 1 limit 2",
    "select sales.id from bi.sales order by 1 limit 2",
    "select current_timestamp > timestamp '2020-01-01'",
    "select interval '1 day' + interval '3 hours'",
    "select date '2025-01-31' + interval '1 month'",
    "select 'abc'::bytea",
    "select '{\"a\": 1}'::json",
    "select gen_random_uuid() is not null",
]

PARAMETRIZED = [
    ("select id, price from bi.sales where id = %s", (5,)),
    ("select id from bi.sales where store_id = %s and paid = %s order by id", (3, True)),
    ("select id from bi.sales where category = %s order by id limit %s", ("tools", 5)),
    ("select count(*) from bi.sales where price > %s", (decimal.Decimal("500.50"),)),
    ("select count(*) from bi.sales where discount < %s", (0.1,)),
    ("select count(*) from bi.sales where sold_on >= %s", (dt.date(2025, 6, 1),)),
    ("select count(*) from bi.sales where sold_at < %s", (dt.datetime(2025, 3, 1, 12),)),
    ("select id from bi.sales where product like %s order by id", ("G%",)),
    ("select %s::int + 1", (41,)),
    ("select %s || '-' || %s", ("a", "b")),
    ("select %s || %s, category || %s from bi.sales order by id limit 3", ("x", "y", "!")),
    ("select product || ' ' || %s || null from bi.sales order by id limit 2", ("z",)),
    ("select id from bi.sales order by id limit %s offset %s", (3, 7)),
    ("select category, count(*) from bi.sales where store_id in (%s, %s) group by 1 order by 1", (1, 2)),
    ("select id from bi.sales where qty between %s and %s order by id", (10, 12)),
    ("select coalesce(%s, category) from bi.sales order by id limit 2", (None,)),
    ("select id from bi.sales where id = any(%s) order by id", ([1, 2, 3],)),
]


def queries() -> list[tuple[str, tuple]]:
    out: list[tuple[str, tuple]] = []
    for agg in AGGREGATES:
        for i, (select, group) in enumerate(GROUPINGS):
            if i and agg in ("count(1)", "min(sold_at)", "max(category)") or (i == 3 and "distinct" in agg):
                continue
            order = " order by 1 nulls first" if group else ""
            out.append((f"select {select}{agg} from {S}{group}{order}", ()))
    operands = NUMERIC + LITERALS
    for template in ARITHMETIC:
        for a in operands:
            for b in ("rating", "price", "discount", "3"):
                if a in LITERALS and b == "3":
                    continue
                expr = template.format(a=a, b=b)
                out.append((f"select id, {expr} from {S} order by 1 limit 6", ()))
    for group in (DATES, CASES, CASTS, STRINGS, NULLS):
        for expr in group:
            out.append((f"select id, {expr} from {S} order by 1 limit 8", ()))
    for expr in WINDOWS:
        out.append((f"select id, {expr} from {S} order by 1 limit 12", ()))
    out.extend((q, ()) for q in FULL)
    out.extend(PARAMETRIZED)
    return out
