"""Seeded data generator for the embedded demo mesh *Great Parts* (``catalogs/greatparts``).

Great Parts sells spare parts through B2C stores, a web shop and a mobile app, sells to garages and
fleets (B2B), runs a loyalty program, takes returns and records clickstream. The mesh's contracts
describe where each dataset lives; :func:`generate` writes exactly those files under the mesh's
``data`` folder:

=====================================  ============================================  ==========
dataset                                file(s) under ``data/``                        rows (x1)
=====================================  ============================================  ==========
customers.customers                    customers/customers.parquet                        20,000
sales.orders                           sales/orders/part-YYYY-MM.parquet (24 months)     100,000
sales.order_lines                      sales/order_items.parquet                        ~250,000
sales.stores                           sales/stores.csv                                      60
products.parts                         products/parts.parquet                             5,000
b2b.accounts, b2b.b2b_orders           b2b/b2b.duckdb (tables main.accounts, ...)   2,000/20,000
loyalty.members                        loyalty/members.json (newline-delimited)          12,000
loyalty.points_ledger                  loyalty/points_ledger.parquet                    100,000
returns.returns                        returns/returns.csv                                5,000
clickstream.web_events                 clickstream/web_events/events-YYYY-MM-DD.parquet 200,000
clickstream.mobile_events              clickstream/mobile_events/events-YYYY-MM-DD...   150,000
=====================================  ============================================  ==========

Row counts scale linearly with ``scale`` (stores and parts are capped), so ``scale=100`` gives tens of
millions of rows. Everything is computed in DuckDB SQL from the row number with
``hash(hash(i, salt, seed))``: no ``random()``, no ``now()``; all dates fall in fixed windows before
2026-11-01, so the same ``seed`` and ``scale`` always give the same rows (and byte-identical files,
except the DuckDB database file, whose content is identical). Values are kept consistent across datasets (an order
happens after its customer was created, its amount is the sum of its lines, a returned order has
status ``returned``, a member's points balance is the sum of its ledger, regions match countries).

A few small quality issues are planted on purpose, so that quality checks have something to report
(keys stay unique and required columns stay non-null): about 0.1% of customers and members without a
phone, a few customers sharing an e-mail address, a handful of orders whose ``order_date`` is one day
after their ``order_ts`` (a time-zone bug), a few parts without a weight, a few B2B orders with a
malformed ``payment_terms``, a few returns without a reason, a few mobile events without an app version.

Files are written into ``data/.staging-<pid>-<ns>/`` first and moved into place only when everything is
written, so a crash never leaves a half-written file where the mesh looks for data; a manifest
``data/_generated.json`` (seed, scale, rows) is written last.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Callable

import duckdb

from .engine import private

__all__ = ["generate", "BASE_ROWS", "OWNED_ENTRIES"]

# rows at scale 1
BASE_ROWS = {
    "customers.customers": 20_000,
    "sales.orders": 100_000,
    "sales.stores": 60,
    "products.parts": 5_000,
    "b2b.accounts": 2_000,
    "b2b.b2b_orders": 20_000,
    "loyalty.members": 12_000,
    "loyalty.points_ledger": 100_000,
    "returns.returns": 5_000,
    "clickstream.web_events": 200_000,
    "clickstream.mobile_events": 150_000,
}
# top-level entries of the data folder that the generator owns (and replaces)
OWNED_ENTRIES = ("customers", "sales", "products", "b2b", "loyalty", "returns", "clickstream", "_generated.json")
MANIFEST = "_generated.json"

END = date(2026, 11, 1)                      # exclusive end of every time window
ORDERS_START = date(2024, 11, 1)             # two years of orders
CUSTOMERS_START = date(2019, 1, 1)           # CRM go-live
ACCOUNTS_START = date(2015, 1, 1)            # first B2B accounts
PARTS_START = date(2016, 1, 1)               # first parts of the current catalog
CLICKSTREAM_DAYS = 28                        # clickstream: last 4 weeks, one file per day

# ---------------------------------------------------------------------------------------------
# reference lists
# ---------------------------------------------------------------------------------------------

FIRST_NAMES = [
    "Sofia", "Liam", "Emma", "Noah", "Olivia", "Lucas", "Mia", "Hugo", "Chloe", "Mateo", "Ines", "Jonas",
    "Lea", "Felix", "Camille", "Leon", "Julia", "Marco", "Anna", "Luca", "Clara", "Paul", "Elena", "Thomas",
    "Sarah", "David", "Laura", "Daniel", "Emily", "James", "Isabella", "Michael", "Jessica", "Ethan", "Ava",
    "Oliver", "Charlotte", "Benjamin", "Zoe", "Arjun", "Priya", "Mohammed", "Fatima", "Wei", "Mei", "Kenji",
    "Aisha", "Diego", "Lucia", "Pierre", "Marie", "Jan", "Eva", "Sean", "Aoife", "Piotr", "Katarzyna",
    "João", "Beatriz", "Zoé", "Jürgen", "Søren",
]
LAST_NAMES = [
    "Müller", "Schmidt", "Schneider", "Fischer", "Weber", "Martin", "Bernard", "Dubois", "Durand",
    "Lefebvre", "Garcia", "Martinez", "Lopez", "Sanchez", "Rossi", "Russo", "Ferrari", "Bianchi", "de Jong",
    "Jansen", "Peeters", "Janssens", "Silva", "Santos", "Murphy", "Kelly", "Nowak", "Kowalski", "Smith",
    "Johnson", "Williams", "Brown", "Jones", "Miller", "Davis", "Wilson", "Anderson", "Taylor", "Thomas",
    "Moore", "Jackson", "White", "Harris", "Clark", "Lewis", "Tremblay", "Gagnon", "Roy", "Côté",
    "Bouchard", "Gauthier", "Nguyen", "Patel", "Kim", "Chen", "Singh", "O'Brien",
]
EMAIL_DOMAINS = ["gmail.com", "outlook.com", "yahoo.com", "icloud.com", "proton.me", "hotmail.com"]
LOCAL_EMAIL_DOMAINS = {"DE": ["gmx.de", "web.de", "t-online.de"], "FR": ["orange.fr", "free.fr", "laposte.net"],
                       "ES": ["telefonica.net", "yahoo.es"], "IT": ["libero.it", "virgilio.it"],
                       "NL": ["ziggo.nl", "kpnmail.nl"], "BE": ["telenet.be", "skynet.be"], "AT": ["gmx.at"],
                       "PT": ["sapo.pt"], "IE": ["eircom.net"], "PL": ["wp.pl", "onet.pl"],
                       "US": ["comcast.net", "aol.com", "att.net"], "CA": ["shaw.ca", "videotron.ca", "rogers.com"]}

# country, region, currency, phone country code, weight (sums to 100), cities, streets, number first?
COUNTRIES = [
    ("DE", "EU", "EUR", "49", 12, ["Berlin", "Hamburg", "Munich", "Cologne", "Frankfurt", "Stuttgart",
                                   "Leipzig", "Dortmund"],
     ["Hauptstraße", "Bahnhofstraße", "Gartenweg", "Schillerstraße", "Lindenallee", "Bergstraße"], False),
    ("FR", "EU", "EUR", "33", 10, ["Paris", "Lyon", "Marseille", "Toulouse", "Lille", "Bordeaux", "Nantes"],
     ["rue de la République", "avenue Jean Jaurès", "boulevard Voltaire", "rue Victor Hugo",
      "rue Pasteur"], True),
    ("ES", "EU", "EUR", "34", 7, ["Madrid", "Barcelona", "Valencia", "Seville", "Bilbao"],
     ["Calle Mayor", "Avenida de la Constitución", "Calle Real", "Paseo de Gracia"], False),
    ("IT", "EU", "EUR", "39", 7, ["Milan", "Rome", "Turin", "Naples", "Bologna"],
     ["Via Roma", "Via Garibaldi", "Corso Italia", "Via Dante"], False),
    ("NL", "EU", "EUR", "31", 5, ["Amsterdam", "Rotterdam", "Utrecht", "Eindhoven"],
     ["Kerkstraat", "Dorpsstraat", "Stationsweg", "Molenweg"], False),
    ("BE", "EU", "EUR", "32", 3, ["Brussels", "Antwerp", "Ghent"],
     ["Kerkstraat", "Rue de la Station", "Stationsstraat", "Avenue Louise"], False),
    ("AT", "EU", "EUR", "43", 2, ["Vienna", "Graz", "Linz"],
     ["Hauptplatz", "Mariahilfer Straße", "Bahnhofstraße"], False),
    ("PT", "EU", "EUR", "351", 2, ["Lisbon", "Porto"], ["Rua Augusta", "Avenida da Liberdade", "Rua do Carmo"],
     False),
    ("IE", "EU", "EUR", "353", 1, ["Dublin", "Cork"], ["Main Street", "O'Connell Street", "Dame Street"], True),
    ("PL", "EU", "EUR", "48", 1, ["Warsaw", "Krakow", "Poznan"],
     ["ulica Marszałkowska", "ulica Długa", "ulica Polna"], False),
    ("US", "US", "USD", "1", 35, ["New York", "Los Angeles", "Chicago", "Houston", "Phoenix", "Philadelphia",
                                  "San Antonio", "San Diego", "Dallas", "Austin", "Columbus", "Charlotte",
                                  "Indianapolis", "Seattle", "Denver", "Boston", "Detroit", "Nashville",
                                  "Atlanta", "Portland", "Minneapolis"],
     ["Maple Avenue", "Oak Street", "Main Street", "Washington Boulevard", "Cedar Lane", "Park Road",
      "Elm Street", "Lakeview Drive"], True),
    ("CA", "CA", "CAD", "1", 15, ["Toronto", "Montreal", "Vancouver", "Calgary", "Edmonton", "Ottawa",
                                  "Winnipeg", "Quebec City", "Hamilton", "Halifax"],
     ["Queen Street West", "Rue Sainte-Catherine", "Yonge Street", "Granville Street", "King Street East"],
     True),
]
FX = {"EUR": 1.0, "USD": 1.1, "CAD": 1.5}   # price list is in EUR; local prices per currency

# category, sku prefix, part types (name, base price EUR, base weight kg)
CATEGORIES = [
    ("Brakes", "BRK", [("Brake Pad Set", 45, 1.8), ("Brake Disc", 60, 6.5), ("Brake Caliper", 120, 4.2),
                       ("Brake Hose", 18, 0.3)]),
    ("Filters", "FLT", [("Oil Filter", 12, 0.4), ("Air Filter", 18, 0.5), ("Cabin Filter", 16, 0.3),
                        ("Fuel Filter", 25, 0.5)]),
    ("Engine", "ENG", [("Timing Belt Kit", 140, 2.5), ("Spark Plug", 9, 0.1), ("Water Pump", 85, 1.9),
                       ("Gasket Set", 40, 0.6)]),
    ("Suspension", "SUS", [("Shock Absorber", 75, 3.1), ("Coil Spring", 55, 2.8), ("Control Arm", 65, 2.6),
                           ("Stabilizer Link", 22, 0.5)]),
    ("Electrical", "ELE", [("Alternator", 210, 6.0), ("Starter Motor", 180, 4.5), ("Ignition Coil", 48, 0.5),
                           ("ABS Sensor", 35, 0.2)]),
    ("Lighting", "LGT", [("Headlight Bulb H7", 14, 0.1), ("LED Tail Light", 90, 1.2), ("Fog Light", 55, 0.9)]),
    ("Exhaust", "EXH", [("Rear Muffler", 110, 8.5), ("Catalytic Converter", 380, 7.0),
                        ("Exhaust Gasket", 8, 0.1)]),
    ("Cooling", "COO", [("Radiator", 160, 5.5), ("Thermostat", 28, 0.3), ("Coolant Hose", 20, 0.4)]),
    ("Batteries", "BAT", [("Car Battery 60Ah", 95, 15.0), ("Car Battery 95Ah", 150, 23.0)]),
    ("Wipers", "WIP", [("Wiper Blade Set", 24, 0.4), ("Rear Wiper Blade", 12, 0.2)]),
    ("Wheels", "WHL", [("Wheel Bearing Kit", 45, 1.3), ("Wheel Bolt Set", 20, 0.8)]),
    ("Tools", "TLS", [("Torque Wrench", 70, 1.6), ("Socket Set 94pc", 55, 4.0), ("OBD2 Scanner", 65, 0.4),
                      ("Jack Stand Pair", 45, 7.5)]),
    ("Oils & Fluids", "OIL", [("Engine Oil 5W-30 5L", 42, 4.6), ("Brake Fluid DOT4 1L", 11, 1.1),
                              ("Coolant G12 5L", 19, 5.4)]),
]
BRANDS = ["Ferrox", "Stahlwerk", "NordParts", "Apexa", "Voltaro", "Brembex", "Kuhlmann", "RoadPro",
          "Tecnauto", "Motrix", "GP Essentials"]
SEARCH_TERMS = ["brake+pads", "oil+filter", "wiper+blades", "car+battery", "spark+plugs", "headlight+bulb",
                "timing+belt", "shock+absorber", "torque+wrench", "coolant"]
USER_AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_6) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 "
    "Safari/605.1.15",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:143.0) Gecko/20100101 Firefox/143.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
    "Mozilla/5.0 (Linux; Android 15; Pixel 9) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/141.0 Mobile Safari/537.36",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Edg/141.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/140.0 "
    "Mobile Safari/537.36",
]


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

def _allow_variables(text: str, names: tuple[str, ...]) -> str:
    """mesh.yaml's text letting contracts read ``names`` (settings: contract_variables), when it does not yet
    (a demo mesh copied before the setting existed): a contract's ${VAR} resolves only when the mesh allows it."""
    import yaml

    data = yaml.safe_load(text) or {}
    settings = data.get("settings") if isinstance(data, dict) else None
    listed = (settings or {}).get("contract_variables") if isinstance(settings, dict) else None
    if isinstance(listed, list) and all(n in listed for n in names):
        return text
    if isinstance(settings, dict) and listed is None and "\nsettings:\n" in text:
        return text.replace("\nsettings:\n", f"\nsettings:\n  contract_variables: [{', '.join(names)}]   "
                            "# written by quanta demo --postgres\n", 1)
    if settings is None and "\nsettings:" not in text:
        return text.rstrip("\n") + f"\nsettings:\n  contract_variables: [{', '.join(names)}]\n"
    raise ValueError(f"mesh.yaml must let contracts read {', '.join(names)}: add them to settings.contract_variables")


def _lit(value) -> str:
    """A SQL literal for a Python str / int / float / bool / list."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_lit(v) for v in value) + "]"
    return "'" + str(value).replace("'", "''") + "'"


def _values(rows: list[tuple], columns: list[str], alias: str = "t") -> str:
    body = ",\n".join("(" + ", ".join(_lit(v) for v in row) + ")" for row in rows)
    return f"(values {body}) {alias}({', '.join(columns)})"


def _coprime_step(n: int, start: int = 7919) -> int:
    """A multiplier coprime with n: i -> (i * step) % n is then a permutation of 0..n-1."""
    step = start
    while math.gcd(step, n) != 1:
        step += 2
    return step


def _pid_alive(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except (PermissionError, OSError):
        return True
    return True


def _scaled(name: str, scale: float, low: int = 1, cap: int | None = None) -> int:
    n = max(low, int(round(BASE_ROWS[name] * scale)))
    return min(n, cap) if cap else n


def _data_dir(mesh_dir: Path) -> Path:
    data = "data"
    mesh_file = mesh_dir / "mesh.yaml"
    if mesh_file.is_file():
        try:
            import yaml

            doc = yaml.safe_load(mesh_file.read_text(encoding="utf-8")) or {}
            if isinstance(doc, dict) and isinstance(doc.get("data"), str) and doc["data"].strip():
                data = doc["data"].strip()
        except Exception:  # a broken mesh.yaml is the validator's business, not the generator's
            pass
    path = Path(data).expanduser()
    return path if path.is_absolute() else mesh_dir / path


class _Gen:
    def __init__(self, con: duckdb.DuckDBPyConnection, out: Path, seed: int, scale: float,
                 progress: Callable[[str], None] | None):
        self.con, self.out, self.seed, self.scale = con, out, seed, scale
        self.progress = progress
        self.rows: dict[str, int] = {}

    def sql(self, query: str) -> None:
        self.con.execute(query)

    def count(self, table: str) -> int:
        return self.con.execute(f"select count(*) from {table}").fetchone()[0]

    def copy(self, query: str, path: Path, fmt: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        opts = {"parquet": "format parquet, compression zstd",
                "csv": "format csv, header true",
                "json": "format json"}[fmt]
        self.sql(f"copy ({query}) to {_lit(str(path))} ({opts})")

    def done(self, dataset: str, n: int, started: float) -> None:
        self.rows[dataset] = n
        if self.progress:
            self.progress(f"{dataset}: {n:,} rows ({time.perf_counter() - started:.2f}s)")


def _select(columns: list[tuple[str, str, str]], source: str) -> str:
    """select cast(expr as type) as name, ... from source."""
    cols = ",\n  ".join(f"cast({expr} as {typ}) as {name}" for name, typ, expr in columns)
    return f"select\n  {cols}\nfrom {source}"


# ---------------------------------------------------------------------------------------------
# the generator
# ---------------------------------------------------------------------------------------------

def generate(mesh_dir: str | Path, scale: float = 1.0, seed: int = 42,
             progress: Callable[[str], None] | None = None) -> dict:
    """Write the Great Parts demo data under ``<mesh_dir>/<data>`` and return ``{dataset: rows}``.

    ``<data>`` is the mesh's ``data`` folder from ``mesh.yaml`` (``data`` when absent). The previous
    generated data is replaced; other files in the data folder are left alone. ``scale`` multiplies the
    row counts (1.0: about 860,000 rows in all); ``seed`` makes the output reproducible.
    """
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an integer, not {seed!r}")
    try:
        scale = float(scale)
    except (TypeError, ValueError):
        raise TypeError(f"scale must be a number, not {scale!r}") from None
    if not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a positive number, not {scale!r}")
    seed = seed % (2**31)  # keep the arithmetic in BIGINT

    mesh_dir = Path(mesh_dir)
    if not mesh_dir.is_dir():
        raise FileNotFoundError(f"mesh folder {mesh_dir} does not exist")
    data_dir = _data_dir(mesh_dir)
    if mesh_dir.resolve().is_relative_to(data_dir.resolve()):
        # the generator replaces folders such as products/ in the data folder: never in the mesh itself
        raise ValueError(f"the data folder {data_dir} of the mesh must be a folder inside or beside it, "
                         "not the mesh folder itself")
    data_dir.mkdir(parents=True, exist_ok=True)
    for old in data_dir.glob(".staging-*"):          # left over by a crashed run
        if not _pid_alive(old.name.split("-")[1]):
            shutil.rmtree(old, ignore_errors=True)
    staging = data_dir / f".staging-{os.getpid()}-{time.time_ns()}"
    staging.mkdir()

    started = time.perf_counter()
    try:
        con = private.scratch()  # writes the demo's files; reads no mesh data
        try:
            con.execute(f"set temp_directory = {_lit(str(staging / '.duckdb_tmp'))}")
            con.execute("set memory_limit = '2GB'")  # spill to the staging folder beyond that
            gen = _Gen(con, staging, seed, scale, progress)
            _run(gen)
            rows = dict(gen.rows)
        finally:
            con.close()
        shutil.rmtree(staging / ".duckdb_tmp", ignore_errors=True)

        # swap: remove the old generated data, then move the new one in (manifest last)
        (data_dir / MANIFEST).unlink(missing_ok=True)
        for entry in OWNED_ENTRIES:
            old = data_dir / entry
            if old.is_dir():
                trash = staging / f".old-{entry}"
                old.rename(trash)
                shutil.rmtree(trash)
            elif old.exists():
                old.unlink()
        for entry in OWNED_ENTRIES:
            if entry != MANIFEST and (staging / entry).exists():
                (staging / entry).rename(data_dir / entry)
        manifest = {"generator": "federation.demo", "seed": seed, "scale": scale, "rows": rows,
                    "seconds": round(time.perf_counter() - started, 3)}
        tmp = staging / MANIFEST
        tmp.write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        tmp.rename(data_dir / MANIFEST)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if progress:
        progress(f"generated {sum(rows.values()):,} rows in {len(rows)} datasets under {data_dir} "
                 f"({time.perf_counter() - started:.1f}s)")
    return rows


def _run(g: _Gen) -> None:
    s = g.seed
    # hash(a, b, c) combines the hashes of its arguments with XOR-like steps, so hash(i, 1, s) and
    # hash(i, 2, s) are related in their low bits; hashing again mixes all the bits
    g.sql(f"create macro h(i, salt) as hash(hash(i, salt, {s}))")
    g.sql("create macro u(i, salt) as (h(i, salt) % 1000000007)::double / 1000000007.0")
    g.sql("create macro pick(i, salt, n) as (h(i, salt) % greatest(n, 1)::ubigint)::bigint")
    g.sql("create macro choose(lst, i, salt) as lst[1 + pick(i, salt, len(lst))]")
    g.sql("create macro ts_at(day0, secs) as day0::timestamp + to_seconds(secs::bigint)")
    g.sql(f"create macro first_names() as {_lit(FIRST_NAMES)}")
    g.sql(f"create macro last_names() as {_lit(LAST_NAMES)}")
    _reference_tables(g)
    _products(g)
    _stores(g)
    _customers(g)
    _orders(g)
    _returns_and_sales(g)
    _loyalty(g)
    _b2b(g)
    _clickstream(g)


def _reference_tables(g: _Gen) -> None:
    slots, geo = [], []
    for country, region, currency, cc, weight, cities, streets, num_first in COUNTRIES:
        geo.append((country, region, currency, cc, cities, streets, num_first, LOCAL_EMAIL_DOMAINS[country]))
        slots.extend((len(slots), country) for _ in range(weight))
    assert len(slots) == 100
    g.sql("create table geo as select * from "
          + _values(geo, ["country", "region", "currency", "phone_cc", "cities", "streets", "num_first",
                          "email_domains"]))
    g.sql("create table geo_slots as select s.slot, geo.* from "
          + _values(slots, ["slot", "country"], "s") + " join geo using (country)")
    types = []
    for category, prefix, items in CATEGORIES:
        for name, price, weight in items:
            types.append((len(types), category, prefix, name, float(price), float(weight)))
    g.sql("create table part_types as select * from "
          + _values(types, ["type_id", "category", "sku_prefix", "type_name", "base_price", "base_weight"]))


def _phone(i: str, salt: int, cc: str) -> str:
    return (f"case when {cc} = '1' then '+1 ' || (201 + pick({i}, {salt}, 798)) || '-' "
            f"|| (200 + pick({i}, {salt + 1}, 800)) || '-' || lpad(pick({i}, {salt + 2}, 10000)::varchar, 4, '0') "
            f"else '+' || {cc} || ' ' || (150 + pick({i}, {salt}, 850)) || ' ' "
            f"|| lpad(pick({i}, {salt + 1}, 10000000)::varchar, 7, '0') end")


def _postal(i: str, salt: int, country: str) -> str:
    d5 = f"lpad((1000 + pick({i}, {salt}, 98000))::varchar, 5, '0')"
    d4 = f"(1000 + pick({i}, {salt}, 9000))::varchar"
    letters = "'ABCEGHJKLMNPRSTVXY'"
    letter = lambda k: f"substr({letters}, 1 + pick({i}, {salt + k}, 18)::integer, 1)"  # noqa: E731
    digit = lambda k: f"pick({i}, {salt + k}, 10)::varchar"  # noqa: E731
    d3 = f"lpad(pick({i}, {salt + 1}, 1000)::varchar, 3, '0')"
    d2 = f"lpad(pick({i}, {salt}, 100)::varchar, 2, '0')"
    dublin = f"'D' || lpad((1 + pick({i}, {salt}, 24))::varchar, 2, '0')"
    return (f"case {country} "
            f"when 'CA' then {letter(1)} || {digit(2)} || {letter(3)} || ' ' "
            f"|| {digit(4)} || {letter(5)} || {digit(6)} "                      # K1A 0B1
            f"when 'NL' then {d4} || ' ' || {letter(1)} || {letter(2)} "        # 1012 AB
            f"when 'BE' then {d4} when 'AT' then {d4} "                         # 1000
            f"when 'PT' then {d4} || '-' || {d3} "                              # 1100-148
            f"when 'PL' then {d2} || '-' || {d3} "                              # 00-950
            f"when 'IE' then {dublin} || ' ' || {letter(1)} || {digit(2)} || {digit(3)} || {letter(4)} "  # D02 X285
            f"else {d5} end")


def _street(i: str, salt: int) -> str:
    num = f"(1 + pick({i}, {salt}, 180))::varchar"
    street = f"choose(g.streets, {i}, {salt + 1})"
    return f"case when g.num_first then {num} || ' ' || {street} else {street} || ' ' || {num} end"


def _products(g: _Gen) -> None:
    t0 = time.perf_counter()
    n = _scaled("products.parts", g.scale, low=50, cap=50_000)
    g.sql(f"""
        create table parts as
        with b as (
          select i + 1 as part_id, i, pt.*, choose({_lit(BRANDS)}, i, 42) as brand
          from range({n}) r(i)
          join part_types pt on pt.type_id = pick(i, 41, (select count(*) from part_types))
        )
        select part_id, 'GP-' || sku_prefix || '-' || lpad(part_id::varchar, 6, '0') as sku,
          brand || ' ' || type_name || ' ' || sku_prefix || (1000 + pick(i, 43, 9000)) as name,
          category, brand,
          round(base_price * (0.6 + 1.2 * u(i, 44)) * (case when brand = 'GP Essentials' then 0.8 else 1.0 end), 2)
            as list_price,
          case when pick(i, 45, 500) = 0 then null else round(base_weight * (0.7 + 0.6 * u(i, 46)), 3) end
            as weight_kg,
          u(i, 47) < 0.93 as is_active,
          -- part numbers follow the listing date
          date '{PARTS_START}' + floor((i + u(i, 48)) * {(END - PARTS_START).days} / {n})::integer as listed_on
        from b""")
    cols = [("part_id", "bigint", "part_id"), ("sku", "varchar", "sku"), ("name", "varchar", "name"),
            ("category", "varchar", "category"), ("brand", "varchar", "brand"),
            ("list_price", "decimal(10,2)", "list_price"), ("weight_kg", "double", "weight_kg"),
            ("is_active", "boolean", "is_active"), ("listed_on", "date", "listed_on")]
    g.copy(_select(cols, "parts order by part_id"), g.out / "products" / "parts.parquet", "parquet")
    g.done("products.parts", n, t0)


def _stores(g: _Gen) -> None:
    t0 = time.perf_counter()
    n = _scaled("sales.stores", g.scale, low=6, cap=60)
    # half the stores in the EU, a third in the US, a sixth in Canada; cities in turn per region
    regions = {"EU": [], "US": [], "CA": []}
    for country, region, _c, _cc, _w, cities, _s, _n in COUNTRIES:
        regions[region].append((country, cities))
    # interleave the countries of a region so that the EU stores spread over the EU
    flat = {r: [(c, cities[depth]) for depth in range(max(len(x[1]) for x in lst)) for c, cities in lst
                if depth < len(cities)] for r, lst in regions.items()}
    rows = []
    taken: dict[str, int] = {}
    per_region = {"EU": 0, "US": 0, "CA": 0}
    for k in range(n):
        region = ["EU", "EU", "EU", "US", "US", "CA"][k % 6]
        j = per_region[region]
        per_region[region] += 1
        country, city = flat[region][j % len(flat[region])]
        taken[city] = taken.get(city, 0) + 1
        name = f"Great Parts {city}" + (f" {taken[city]}" if taken[city] > 1 else "")
        rows.append((k + 1, name, city, country, region))
    g.sql("create table stores as select store_id, name, city, country, region, "
          "date '2006-03-01' + pick(store_id, 50, 6500)::integer as opened_on from "
          + _values(rows, ["store_id", "name", "city", "country", "region"]))
    cols = [("store_id", "bigint", "store_id"), ("name", "varchar", "name"), ("city", "varchar", "city"),
            ("country", "varchar", "country"), ("region", "varchar", "region"),
            ("opened_on", "date", "opened_on")]
    g.copy(_select(cols, "stores order by store_id"), g.out / "sales" / "stores.csv", "csv")
    g.done("sales.stores", n, t0)


def _customers(g: _Gen) -> None:
    t0 = time.perf_counter()
    n = _scaled("customers.customers", g.scale)
    span = (END - CUSTOMERS_START).days * 86400
    # customer ids follow creation time (an id sequence): customer k is created in the k-th slice
    g.sql(f"""
        create table customers as
        with b as (
          select i, i + 1 as customer_id, g.*,
            choose(first_names(), i, 1) as first_name, choose(last_names(), i, 2) as last_name
          from range({n}) r(i) join geo_slots g on g.slot = pick(i, 3, 100)
        )
        select customer_id, first_name, last_name,
          lower(regexp_replace(strip_accents(first_name), '[^A-Za-z]', '', 'g')) || '.'
            || lower(regexp_replace(strip_accents(last_name), '[^A-Za-z]', '', 'g'))
            || case when u(i, 4) < 0.10 then ''
                    when u(i, 4) < 0.50 then strftime(date '1950-01-01' + pick(i, 21, 20075)::integer, '%y')
                    else (1 + pick(i, 5, 999))::varchar end
            || '@' || case when u(i, 6) < 0.6 then choose({_lit(EMAIL_DOMAINS)}, i, 9)
                           else choose(g.email_domains, i, 9) end as email,
          case when pick(i, 7, 1000) = 0 then null else {_phone('i', 8, 'g.phone_cc')} end as phone,
          {_street('i', 11)} as street_address,
          choose(g.cities, i, 13) as city,
          {_postal('i', 14, 'g.country')} as postal_code,
          g.country, g.region,
          date '1950-01-01' + pick(i, 21, 20075)::integer as birth_date,
          case when u(i, 22) < 0.55 then 'diy' when u(i, 22) < 0.80 then 'enthusiast'
               when u(i, 22) < 0.95 then 'professional' else 'fleet' end as segment,
          ts_at(date '{CUSTOMERS_START}', floor((i + u(i, 23)) * {span} / {n})) as created_at,
          u(i, 24) < 0.6 as marketing_opt_in
        from b g""")
    cols = [("customer_id", "bigint", "customer_id"), ("first_name", "varchar", "first_name"),
            ("last_name", "varchar", "last_name"), ("cust_email", "varchar", "email"),
            ("phone", "varchar", "phone"), ("street_address", "varchar", "street_address"),
            ("city", "varchar", "city"), ("postal_code", "varchar", "postal_code"),
            ("country", "varchar", "country"), ("region", "varchar", "region"), ("dob", "date", "birth_date"),
            ("segment", "varchar", "segment"), ("created_at", "timestamp", "created_at"),
            ("marketing_opt_in", "boolean", "marketing_opt_in")]
    g.copy(_select(cols, "customers order by customer_id"), g.out / "customers" / "customers.parquet", "parquet")
    g.done("customers.customers", n, t0)


def _orders(g: _Gen) -> None:
    """orders_base (no amount / final status yet) and order_lines."""
    n = _scaled("sales.orders", g.scale)
    ncust = g.count("customers")
    nparts = g.count("parts")
    cust_span = (END - CUSTOMERS_START).days * 86400
    win_days = (END - ORDERS_START).days
    offset_days = (ORDERS_START - CUSTOMERS_START).days
    g.sql("""create table stores_by_region as
             select region, list(store_id order by store_id) as ids from stores group by region""")
    g.sql(f"""
        create table orders_raw as
        with b as (
          select i,
            case when u(i, 101) < 0.45 then 'store' when u(i, 101) < 0.85 then 'web' else 'mobile' end as channel,
            pick(i, 102, {win_days}) as day
          from range({n}) r(i)
        ), t as (
          select *, (day * 86400 + case when channel = 'store' then 8 * 3600 + floor(u(i, 103) * 12 * 3600)
                                        else 6 * 3600 + floor(u(i, 103) * 18 * 3600) end)::bigint as secs
          from b
        ), c as (
          -- a customer created before the order: ids up to floor(offset * n / span), skewed to older ones
          select *, 1 + floor(greatest(1, floor(({offset_days} * 86400 + secs) * {ncust}::double / {cust_span}))
                              * pow(u(i, 104), 1.2))::bigint as customer_id
          from t
        )
        select c.i, c.channel, ts_at(date '{ORDERS_START}', c.secs) as order_ts, c.customer_id,
          cu.region, g.currency,
          case when c.channel = 'store' then sr.ids[1 + pick(c.i, 105, len(sr.ids))] end as store_id,
          case when u(c.i, 106) < 0.20 then 1 when u(c.i, 106) < 0.50 then 2
               when u(c.i, 106) < 0.80 then 3 else 4 end as n_lines,
          case when u(c.i, 107) < 0.04 then 'cancelled' when u(c.i, 107) < 0.07 then 'pending'
               when u(c.i, 107) < 0.12 then 'shipped' else 'completed' end as status
        from c join customers cu using (customer_id)
        join (select distinct region, currency from geo) g on g.region = cu.region
        join stores_by_region sr on sr.region = cu.region""")
    g.sql("""
        create table orders_base as
        select row_number() over (order by order_ts, i) as order_id, *,
          -- a time-zone bug in the store tills: a handful of orders dated the day after
          case when pick(i, 108, 20000) = 0 then order_ts::date + 1 else order_ts::date end as order_date
        from orders_raw""")
    g.sql("drop table orders_raw")
    fx = "case o.currency " + " ".join(f"when '{k}' then {v}" for k, v in FX.items()) + " end"
    g.sql(f"""
        create table order_lines as
        with l as (
          select o.order_id, o.currency, l.line_no,
            1 + floor({nparts} * pow(u(o.order_id * 8 + l.line_no, 110), 2.2))::bigint as part_id,
            case when u(o.order_id * 8 + l.line_no, 111) < 0.70 then 1
                 when u(o.order_id * 8 + l.line_no, 111) < 0.90 then 2
                 else 3 + pick(o.order_id * 8 + l.line_no, 112, 4) end as quantity,
            case when u(o.order_id * 8 + l.line_no, 113) < 0.80 then 1.0
                 when u(o.order_id * 8 + l.line_no, 113) < 0.95 then 0.9 else 0.8 end as discount
          from orders_base o join range(1, 5) l(line_no) on l.line_no <= o.n_lines
        )
        select l.order_id, l.line_no, l.part_id, l.quantity,
          round(p.list_price * {fx.replace('o.currency', 'l.currency')} * l.discount, 2)::decimal(10,2) as unit_price
        from l join parts p using (part_id)""")


def _returns_and_sales(g: _Gen) -> None:
    t0 = time.perf_counter()
    nret = _scaled("returns.returns", g.scale)
    last = END - timedelta(days=1)
    reasons = ["wrong_part", "damaged_in_transit", "defective", "no_longer_needed", "better_price_found",
               "late_delivery"]
    g.sql(f"""
        create table returns as
        with picked as (
          select o.order_id, o.customer_id, o.region, o.order_date, l.part_id, l.quantity, l.unit_price
          from orders_base o join order_lines l on l.order_id = o.order_id and l.line_no = 1
          where o.status = 'completed' and o.order_date < date '{last}'
          order by h(o.order_id, 120), o.order_id
          limit {nret}
        ), r as (
          select *, least(date '{last}', order_date + 1 + pick(order_id, 121, 30)::integer) as return_date,
            case when pick(order_id, 122, 500) = 0 then null else choose({_lit(reasons)}, order_id, 123) end as reason
          from picked
        )
        select row_number() over (order by return_date, order_id) as return_id, order_id, customer_id, part_id,
          return_date, reason,
          round(quantity * unit_price * case when reason = 'no_longer_needed' then 0.85 else 1.0 end, 2)
            as refund_amount,
          region
        from r""")
    cols = [("return_id", "bigint", "return_id"), ("order_id", "bigint", "order_id"),
            ("customer_id", "bigint", "customer_id"), ("part_id", "bigint", "part_id"),
            ("return_date", "date", "return_date"), ("reason", "varchar", "reason"),
            ("refund_amount", "decimal(10,2)", "refund_amount"), ("region", "varchar", "region")]
    g.copy(_select(cols, "returns order by return_id"), g.out / "returns" / "returns.csv", "csv")
    g.done("returns.returns", g.count("returns"), t0)

    t0 = time.perf_counter()
    g.sql("""
        create table orders as
        select o.order_id, o.customer_id, o.store_id, o.order_ts, o.order_date, o.region, o.channel,
          a.amount, o.currency,
          case when o.order_id in (select order_id from returns) then 'returned' else o.status end as status
        from orders_base o
        join (select order_id, sum(quantity * unit_price) as amount from order_lines group by order_id) a
          using (order_id)""")
    cols = [("order_id", "bigint", "order_id"), ("customer_id", "bigint", "customer_id"),
            ("store_id", "bigint", "store_id"), ("order_ts", "timestamp", "order_ts"),
            ("order_date", "date", "order_date"), ("region", "varchar", "region"),
            ("channel", "varchar", "channel"), ("amount", "decimal(12,2)", "amount"),
            ("currency", "varchar", "currency"), ("status", "varchar", "status")]
    month = ORDERS_START
    while month < END:
        nxt = date(month.year + month.month // 12, month.month % 12 + 1, 1)
        where = f"orders where order_ts >= timestamp '{month}' and order_ts < timestamp '{nxt}' order by order_id"
        g.copy(_select(cols, where), g.out / "sales" / "orders" / f"part-{month:%Y-%m}.parquet", "parquet")
        month = nxt
    g.done("sales.orders", g.count("orders"), t0)

    t0 = time.perf_counter()
    cols = [("order_id", "bigint", "order_id"), ("line_no", "integer", "line_no"), ("part_id", "bigint", "part_id"),
            ("quantity", "integer", "quantity"), ("unit_price", "decimal(10,2)", "unit_price")]
    g.copy(_select(cols, "order_lines order by order_id, line_no"), g.out / "sales" / "order_items.parquet",
           "parquet")
    g.done("sales.order_lines", g.count("order_lines"), t0)


def _loyalty(g: _Gen) -> None:
    t0 = time.perf_counter()
    ncust = g.count("customers")
    nmem = min(_scaled("loyalty.members", g.scale), ncust)
    nled = _scaled("loyalty.points_ledger", g.scale)
    step = _coprime_step(ncust)
    last = END - timedelta(days=1)
    # members: a permutation of the customers, joined after the customer was created
    g.sql(f"""
        create table members_raw as
        select k, ((k * {step}) % {ncust}) + 1 as customer_id from range({nmem}) r(k)""")
    g.sql(f"""
        create table members_base as
        select row_number() over (order by joined_on, customer_id) as member_id, customer_id, joined_on,
          email, phone, region
        from (select m.customer_id, c.email, c.phone, c.region,
                least(date '{last}', (c.created_at + to_days(pick(k, 130, 400)::integer))::date) as joined_on
              from members_raw m join customers c using (customer_id))""")
    span = "(epoch(timestamp '" + str(END) + "') - epoch(m.joined_on::timestamp))"
    # every member gets a welcome bonus when joining; the other entries are spread over the membership
    nwelcome = min(nmem, nled)
    reasons = "case when u(i, 142) < 0.62 then 'purchase' when u(i, 142) < 0.72 then 'bonus' " \
              "when u(i, 142) < 0.80 then 'return' when u(i, 142) < 0.92 then 'redemption' " \
              "when u(i, 142) < 0.98 then 'expiry' else 'adjustment' end"
    g.sql(f"""
        create table points_ledger as
        with b as (
          select i, i + 1 as member_id, 'welcome_bonus' as reason, 0.0 as frac from range({nwelcome}) r(i)
          union all
          select i, 1 + floor({nmem} * pow(u(i, 140), 1.3))::bigint, {reasons}, u(i, 141)
          from range({nwelcome}, {nled}) r(i)
        ), t as (
          select b.*, m.joined_on::timestamp + to_seconds(case when reason = 'welcome_bonus'
              then 9 * 3600 + pick(i, 149, 10 * 3600) else floor(frac * {span}) end::bigint) as entry_ts
          from b join members_base m using (member_id)
        ), p as (
          select *, case reason
              when 'welcome_bonus' then 250
              when 'purchase' then 5 + pick(i, 143, 496)
              when 'bonus' then choose([50, 100, 250, 500], i, 144)
              when 'return' then -(5 + pick(i, 145, 296))
              when 'redemption' then -choose([100, 250, 500], i, 146)
              when 'expiry' then -(10 + pick(i, 147, 141))
              else (pick(i, 148, 201) - 100) end as raw_points
          from t
        ), r as (
          select *, sum(raw_points) over (partition by member_id order by entry_ts, i) as running
          from p
        )
        -- a debit that would take the running balance below zero is booked as a purchase instead;
        -- flipping only raises later balances, so no balance ever goes negative
        select row_number() over (order by entry_ts, i) as entry_id, member_id, entry_ts,
          case when raw_points < 0 and running < 0 then least(500, -raw_points) else raw_points end as points,
          case when raw_points < 0 and running < 0 then 'purchase' else reason end as reason
        from r""")
    g.sql("""
        create table members as
        select m.member_id, m.customer_id,
          case when coalesce(p.balance, 0) < 1000 then 'bronze' when p.balance < 2000 then 'silver'
               when p.balance < 3000 then 'gold' else 'platinum' end as tier,
          m.email, m.phone, m.joined_on, coalesce(p.balance, 0) as points_balance, m.region
        from members_base m
        left join (select member_id, sum(points) as balance from points_ledger group by member_id) p
          using (member_id)""")
    cols = [("member_id", "bigint", "member_id"), ("customer_id", "bigint", "customer_id"),
            ("tier", "varchar", "tier"), ("email", "varchar", "email"), ("phone", "varchar", "phone"),
            ("joined_on", "date", "joined_on"), ("points_balance", "integer", "points_balance"),
            ("region", "varchar", "region")]
    g.copy(_select(cols, "members order by member_id"), g.out / "loyalty" / "members.json", "json")
    g.done("loyalty.members", nmem, t0)

    t0 = time.perf_counter()
    cols = [("entry_id", "bigint", "entry_id"), ("member_id", "bigint", "member_id"),
            ("entry_ts", "timestamp", "entry_ts"), ("points", "integer", "points"), ("reason", "varchar", "reason")]
    g.copy(_select(cols, "points_ledger order by entry_id"), g.out / "loyalty" / "points_ledger.parquet", "parquet")
    g.done("loyalty.points_ledger", g.count("points_ledger"), t0)


def _b2b(g: _Gen) -> None:
    t0 = time.perf_counter()
    nacc = _scaled("b2b.accounts", g.scale)
    nord = _scaled("b2b.b2b_orders", g.scale)
    acc_span = (END - ACCOUNTS_START).days * 86400
    win_days = (END - ORDERS_START).days
    offset_days = (ORDERS_START - ACCOUNTS_START).days
    business = ["Autoteile", "Garage", "Auto Repair", "Motors", "Fleet Services", "Car Care", "Auto Parts",
                "Body Shop", "Tyre Centre", "Service Station"]
    legal = ("case g.country when 'DE' then 'GmbH' when 'AT' then 'GmbH' when 'FR' then 'SARL' "
             "when 'BE' then 'SRL' when 'NL' then 'B.V.' when 'ES' then 'S.L.' when 'IT' then 'S.r.l.' "
             "when 'PT' then 'Lda' when 'IE' then 'Ltd' when 'PL' then 'Sp. z o.o.' "
             "when 'US' then choose(['LLC', 'Inc.'], i, 201) else choose(['Inc.', 'Ltd.'], i, 201) end")
    digits = lambda k, salt: f"lpad(pick(i, {salt}, {10 ** k})::varchar, {k}, '0')"  # noqa: E731
    vat = (f"case g.country when 'US' then {digits(2, 210)} || '-' || {digits(7, 211)} "
           f"when 'CA' then {digits(9, 212)} || 'RT0001' "
           f"when 'AT' then 'ATU' || {digits(8, 212)} "
           f"when 'NL' then 'NL' || {digits(9, 212)} || 'B01' "
           f"when 'FR' then 'FR' || {digits(2, 210)} || {digits(9, 212)} "
           f"when 'IT' then 'IT' || {digits(11, 212)} "
           f"when 'BE' then 'BE0' || {digits(9, 212)} "
           f"when 'ES' then 'ESB' || {digits(8, 212)} "
           f"when 'IE' then 'IE' || {digits(7, 212)} || 'W' "
           f"when 'PL' then 'PL' || {digits(10, 212)} "
           f"else g.country || {digits(9, 212)} end")
    tld = ("case g.country when 'US' then 'com' when 'CA' then 'ca' when 'AT' then 'at' when 'IE' then 'ie' "
           "else lower(g.country) end")
    g.sql(f"""
        create table accounts as
        with b as (
          select i, i + 1 as account_id, g.*, choose(last_names(), i, 202) as base,
            choose({_lit(business)}, i, 203) as business,
            choose(first_names(), i, 204) as cfirst, choose(last_names(), i, 205) as clast
          from range({nacc}) r(i) join geo_slots g on g.slot = pick(i, 206, 100)
        )
        select account_id, base || ' ' || business || ' ' || {legal} as company_name,
          {vat} as vat_number,
          cfirst || ' ' || clast as contact_name,
          lower(regexp_replace(strip_accents(cfirst), '[^A-Za-z]', '', 'g')) || '.'
            || lower(regexp_replace(strip_accents(clast), '[^A-Za-z]', '', 'g')) || '@'
            || lower(regexp_replace(strip_accents(base || business), '[^A-Za-z]', '', 'g')) || '.' || {tld}
            as contact_email,
          {_phone('i', 207, 'g.phone_cc')} as contact_phone,
          g.country, g.region,
          (5000 * (1 + floor(49 * pow(u(i, 209), 3))))::decimal(12,2) as credit_limit,
          ts_at(date '{ACCOUNTS_START}', floor((i + u(i, 213)) * {acc_span} / {nacc})) as created_at
        from b g""")
    terms = ("case when pick(i, 222, 2000) = 0 then choose(['net 30', 'Net30', '30 days'], i, 223) "
             "when u(i, 221) < 0.10 then 'PREPAID' when u(i, 221) < 0.65 then 'NET30' "
             "when u(i, 221) < 0.80 then 'NET45' else 'NET60' end")
    g.sql(f"""
        create table b2b_orders as
        with b as (
          select i, pick(i, 220, {win_days}) as day from range({nord}) r(i)
        )
        select row_number() over (order by day, i) as b2b_order_id,
          1 + floor(greatest(1, floor(({offset_days} + day) * 86400 * {nacc}::double / {acc_span}))
                    * pow(u(i, 224), 1.5))::bigint as account_id,
          date '{ORDERS_START}' + day::integer as order_date,
          round(120 + 24000 * pow(u(i, 225), 3), 2) as amount,
          {terms} as payment_terms
        from b""")
    path = g.out / "b2b" / "b2b.duckdb"
    path.parent.mkdir(parents=True, exist_ok=True)
    g.sql(f"attach {_lit(str(path))} as b2b_db")
    try:
        cols = [("account_id", "bigint", "account_id"), ("company_name", "varchar", "company_name"),
                ("vat_number", "varchar", "vat_number"), ("contact_name", "varchar", "contact_name"),
                ("contact_email", "varchar", "contact_email"), ("contact_phone", "varchar", "contact_phone"),
                ("country", "varchar", "country"), ("region", "varchar", "region"),
                ("credit_limit", "decimal(12,2)", "credit_limit"), ("created_at", "timestamp", "created_at")]
        g.sql("create table b2b_db.main.accounts as " + _select(cols, "accounts order by account_id"))
        g.done("b2b.accounts", nacc, t0)
        t0 = time.perf_counter()
        cols = [("b2b_order_id", "bigint", "b2b_order_id"), ("account_id", "bigint", "account_id"),
                ("order_date", "date", "order_date"), ("amount", "decimal(12,2)", "amount"),
                ("payment_terms", "varchar", "payment_terms")]
        g.sql("create table b2b_db.main.b2b_orders as " + _select(cols, "b2b_orders order by b2b_order_id"))
        g.sql("checkpoint b2b_db")
    finally:
        g.sql("detach b2b_db")
    g.done("b2b.b2b_orders", nord, t0)


def _clickstream(g: _Gen) -> None:
    ncust = g.count("customers")
    nparts = g.count("parts")
    first_day = END - timedelta(days=CLICKSTREAM_DAYS)
    cats = [c[0].lower().replace(" & ", "-").replace(" ", "-") for c in CATEGORIES]

    # web: sessions of 6 events, on the web shop (85%) or the B2B portal (15%)
    t0 = time.perf_counter()
    n = _scaled("clickstream.web_events", g.scale)
    nsess = (n + 5) // 6
    g.sql(f"""
        create table web_events as
        with e as (
          select i, i // 6 as s, i % 6 as step from range({n}) r(i)
        ), sess as (
          select s, case when u(s, 301) < 0.85 then 'web' else 'b2b' end as site, {_session_start('s', nsess)}
          from range({nsess}) r(s)
        ), who as (
          select sess.*, case when site = 'web' and u(s, 304) < 0.55 then 1 + pick(s, 305, {ncust}) end as customer_id,
            g.region as ip_region, lower(hex(h(s, 307))) as session_id,
            (11 + pick(s, 314, 212)) || '.' || pick(s, 315, 256) || '.' || pick(s, 316, 256) || '.'
              || (1 + pick(s, 317, 254)) as ip_address,
            choose({_lit(USER_AGENTS)}, s, 318) as user_agent
          from sess join geo_slots g on g.slot = pick(s, 306, 100)
        )
        select e.i, w.day, w.session_id, w.customer_id,
          ts_at(date '{first_day}' + w.day::integer, w.start_secs + e.step * 90 + pick(e.i, 308, 60)) as event_ts,
          w.site,
          case when e.step = 0 then 'page_view'
               when u(e.i, 309) < 0.45 then 'page_view' when u(e.i, 309) < 0.65 then 'search'
               when u(e.i, 309) < 0.78 then 'page_view' when u(e.i, 309) < 0.88 then 'add_to_cart'
               when u(e.i, 309) < 0.93 then 'checkout' when u(e.i, 309) < 0.96 then 'purchase'
               else 'login' end as event_type,
          (case when w.site = 'b2b' then '/pro' else '' end) ||
          case when e.step = 0 then choose(['/', '/category/' || choose({_lit(cats)}, e.i, 310)], e.i, 311)
               when u(e.i, 309) < 0.45 then '/part/' || (1 + pick(e.i, 312, {nparts}))
               when u(e.i, 309) < 0.65 then '/search?q=' || choose({_lit(SEARCH_TERMS)}, e.i, 313)
               when u(e.i, 309) < 0.78 then '/category/' || choose({_lit(cats)}, e.i, 310)
               when u(e.i, 309) < 0.88 then '/cart'
               when u(e.i, 309) < 0.93 then '/checkout'
               when u(e.i, 309) < 0.96 then '/checkout/confirmation'
               else '/account/login' end as page,
          w.ip_address, w.user_agent, coalesce(c.region, w.ip_region) as region
        from e join who w using (s) left join customers c on c.customer_id = w.customer_id""")
    _number_events(g, "web_events")
    cols = [("event_id", "bigint", "event_id"), ("session_id", "varchar", "session_id"),
            ("customer_id", "bigint", "customer_id"), ("event_ts", "timestamp", "event_ts"),
            ("site", "varchar", "site"), ("page", "varchar", "page"), ("event_type", "varchar", "event_type"),
            ("ip_address", "varchar", "ip_address"), ("user_agent", "varchar", "user_agent"),
            ("region", "varchar", "region")]
    _daily_files(g, "web_events_out", cols, g.out / "clickstream" / "web_events", first_day)
    g.done("clickstream.web_events", n, t0)

    # mobile: devices with sessions of 5 events; 70% of the devices belong to a known customer
    t0 = time.perf_counter()
    n = _scaled("clickstream.mobile_events", g.scale)
    ndev = max(1, n // 40)
    nsess = (n + 4) // 5
    screens = ["home", "search", "part_detail", "category", "cart", "checkout", "garage", "loyalty_card",
               "store_locator", "order_history"]
    versions = ["5.1.0", "5.2.3", "5.3.0", "5.4.1", "5.5.0"]
    g.sql(f"""
        create table mobile_events as
        with e as (
          select i, i // 5 as s, i % 5 as step from range({n}) r(i)
        ), sess as (
          select s, pick(s, 401, {ndev}) as d, {_session_start('s', nsess)},
            {_lit(versions)}[{len(versions)} - floor({len(versions)} * pow(u(s, 404), 2))::integer] as app_version
          from range({nsess}) r(s)
        ), dev as (
          select sess.*, md5(d::varchar || '-{g.seed}') as h,
            case when u(d, 405) < 0.70 then 1 + pick(d, 406, {ncust}) end as customer_id, g.region as ip_region
          from sess join geo_slots g on g.slot = pick(d, 407, 100)
        ), dev2 as (
          select *, substr(h, 1, 8) || '-' || substr(h, 9, 4) || '-' || substr(h, 13, 4) || '-' || substr(h, 17, 4)
            || '-' || substr(h, 21, 12) as device_id
          from dev
        )
        select e.i, v.day, v.device_id,
          v.customer_id,
          ts_at(date '{first_day}' + v.day::integer, v.start_secs + e.step * 40 + pick(e.i, 408, 30)) as event_ts,
          case when pick(e.i, 409, 5000) = 0 then null else v.app_version end as app_version,
          case when e.step = 0 then 'home' else choose({_lit(screens)}, e.i, 410) end as screen,
          case when e.step = 0 then 'app_open'
               when u(e.i, 411) < 0.55 then 'screen_view' when u(e.i, 411) < 0.75 then 'tap'
               when u(e.i, 411) < 0.87 then 'search' when u(e.i, 411) < 0.95 then 'add_to_cart'
               else 'purchase' end as event_type,
          coalesce(c.region, v.ip_region) as region
        from e join dev2 v using (s) left join customers c on c.customer_id = v.customer_id""")
    _number_events(g, "mobile_events")
    cols = [("event_id", "bigint", "event_id"), ("device_id", "varchar", "device_id"),
            ("customer_id", "bigint", "customer_id"), ("event_ts", "timestamp", "event_ts"),
            ("app_version", "varchar", "app_version"), ("screen", "varchar", "screen"),
            ("event_type", "varchar", "event_type"), ("region", "varchar", "region")]
    _daily_files(g, "mobile_events_out", cols, g.out / "clickstream" / "mobile_events", first_day)
    g.done("clickstream.mobile_events", n, t0)


def _session_start(s: str, nsess: int) -> str:
    """day and start_secs of session s: sessions start in order, spread evenly over the days, each
    day between 06:00 and 23:50 (so a session of a few minutes never crosses midnight)."""
    x = f"({s} + u({s}, 303)) * {CLICKSTREAM_DAYS}.0 / {nsess}"
    return (f"floor({x})::integer as day, "
            f"(6 * 3600 + floor(({x} - floor({x})) * (17 * 3600 + 50 * 60)))::bigint as start_secs")


def _number_events(g: _Gen, table: str) -> None:
    """event_id = rank of (event_ts, i): sort only those two columns, then join the ids back."""
    g.sql(f"create table {table}_ids as select i, row_number() over (order by event_ts, i) as event_id from {table}")
    g.sql(f"create table {table}_out as select t.*, ids.event_id from {table} t join {table}_ids ids using (i)")
    g.sql(f"drop table {table}")
    g.sql(f"drop table {table}_ids")


def _daily_files(g: _Gen, table: str, cols, folder: Path, first_day: date) -> None:
    for k in range(CLICKSTREAM_DAYS):
        day = first_day + timedelta(days=k)
        g.copy(_select(cols, f"{table} where day = {k} order by event_id"), folder / f"events-{day}.parquet",
               "parquet")


# -- a quantum served live from PostgreSQL ------------------------------------------------------------

LIVE_DIR = "live"  # inside the mesh folder, git-ignored: written only when a PostgreSQL server is given


def setup_postgres(mesh_dir: str | Path, dsn: str, schema: str = "b2b_ops",
                   progress: Callable[[str], None] | None = None) -> dict:
    """Serve the B2B accounts live from a PostgreSQL server, as the B2B domain's operational database.

    Copies ``b2b.accounts`` (generated data) into ``<schema>.accounts`` of the server named by ``dsn``
    (a libpq string: ``host=... port=... dbname=... user=... password=...``), then writes the quantum
    ``b2b_live`` (an ODPS product and an ODCS contract whose server is that PostgreSQL) and the server's
    credentials into ``<mesh>/live/`` (product, contract, and ``secrets.yaml`` readable only by its owner;
    ``mesh.yaml`` names that secrets file). Returns a summary.
    """
    import os

    import yaml

    mesh_dir = Path(mesh_dir).resolve()
    report = progress or (lambda message: None)
    fields = dict(part.split("=", 1) for part in dsn.split() if "=" in part)
    host, port, dbname = fields.get("host", "localhost"), int(fields.get("port", 5432)), fields.get("dbname", "postgres")
    source = _data_dir(mesh_dir) / "b2b" / "b2b.duckdb"
    if not source.exists():
        raise FileNotFoundError(f"{source} does not exist: generate the demo data first (quanta generate)")
    ext = Path(__import__("duckdb_extension_postgres_scanner").__file__).parent
    con = private.scratch()  # loads the demo's own files into its PostgreSQL server (set-up, not a mesh read)
    try:
        con.execute(f"LOAD '{ext / 'extensions' / f'v{duckdb.__version__}' / 'postgres_scanner.duckdb_extension'}'")
        con.execute(f"ATTACH {_lit(dsn)} AS pg (TYPE postgres)")
        con.execute(f"ATTACH {_lit(str(source))} AS b2b (READ_ONLY)")
        con.execute(f"CALL postgres_execute('pg', 'CREATE SCHEMA IF NOT EXISTS {schema}')")
        con.execute(f"CALL postgres_execute('pg', 'DROP TABLE IF EXISTS {schema}.accounts')")
        report(f"copying b2b.accounts to PostgreSQL {host}:{port}/{dbname} ({schema}.accounts) ...")
        con.execute(f"CREATE TABLE pg.{schema}.accounts AS SELECT account_id, company_name, country, region, "
                    "credit_limit, created_at FROM b2b.main.accounts")
        rows = con.execute(f"SELECT count(*) FROM pg.{schema}.accounts").fetchone()[0]
    finally:
        con.close()
    live = mesh_dir / LIVE_DIR
    live.mkdir(exist_ok=True)
    product = {
        "apiVersion": "v1.1.0", "kind": "DataProduct", "id": "urn:greatparts:product:b2b_live", "name": "b2b_live",
        "version": "1.0.0", "status": "active", "domain": "b2b", "type": "sourceAligned",
        "description": {"purpose": "B2B accounts read live from the B2B domain's operational PostgreSQL database.",
                        "usage": "Join with the file-based quanta: SQL over both, no copy."},
        "team": {"name": "b2b", "members": [{"username": "lucas", "role": "owner"}]},
        "outputPorts": [{"name": "accounts-live", "type": "tables", "version": "1.0.0",
                         "contractId": "urn:greatparts:contract:b2b_live:accounts-live-v1"}],
    }
    contract = {
        "apiVersion": "v3.2.0", "kind": "DataContract", "id": "urn:greatparts:contract:b2b_live:accounts-live-v1",
        "version": "1.0.0", "status": "active", "domain": "b2b",
        "description": {"purpose": "Trade accounts, live from the ERP's PostgreSQL database."},
        # ODCS v3.2 variables: GREATPARTS_PG_HOST / GREATPARTS_PG_PORT move the server without editing the contract
        "servers": [{"server": "b2b-operational", "type": "postgres", "host": f"${{GREATPARTS_PG_HOST:-{host}}}",
                     "port": f"${{GREATPARTS_PG_PORT:-{port}}}",
                     "database": dbname, "schema": schema, "environment": "prod"}],
        "schema": [{"name": "accounts", "description": "B2B accounts (live)", "properties": [
            {"name": "account_id", "logicalType": "integer", "physicalType": "bigint", "primaryKey": True,
             "required": True, "classification": "internal"},
            {"name": "company_name", "logicalType": "string", "physicalType": "varchar", "classification": "internal"},
            {"name": "country", "logicalType": "string", "physicalType": "varchar", "classification": "internal"},
            {"name": "region", "logicalType": "string", "physicalType": "varchar", "classification": "internal",
             "tags": ["region"]},
            {"name": "credit_limit", "logicalType": "number", "physicalType": "decimal(12,2)",
             "classification": "restricted", "tags": ["finance", "credit"]},
            {"name": "created_at", "logicalType": "timestamp", "physicalType": "timestamp"},
        ]}],
        "roles": [{"role": "b2b_sales", "access": "read", "firstLevelApprovers": "lucas"},
                  {"role": "finance", "access": "read", "firstLevelApprovers": "lucas"},
                  {"role": "analyst", "access": "read", "firstLevelApprovers": "lucas"}],
    }
    (live / "b2b_live.odps.yaml").write_text(yaml.safe_dump(product, sort_keys=False))
    (live / "b2b_live.odcs.yaml").write_text(yaml.safe_dump(contract, sort_keys=False))
    secrets_path = live / "secrets.yaml"
    fd = os.open(secrets_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        # scoped to the quantum b2b_live (engine/secrets.py): no other contract naming a server alike receives them
        f.write(yaml.safe_dump({"servers": {"b2b_live/b2b-operational": {
            k: v for k, v in (("user", fields.get("user")), ("password", fields.get("password"))) if v}}}))
    mesh_file = mesh_dir / "mesh.yaml"
    text = _allow_variables(mesh_file.read_text(), ("GREATPARTS_PG_HOST", "GREATPARTS_PG_PORT"))
    mesh_file.write_text(text)
    if "\nsecrets:" not in text:
        mesh_file.write_text(text.rstrip("\n") + f"\nsecrets: {LIVE_DIR}/secrets.yaml   # written by quanta demo --postgres\n")
    report(f"quantum b2b_live: {rows:,} accounts served live from PostgreSQL")
    return {"b2b_live.accounts": rows}
