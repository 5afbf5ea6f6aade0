// A scripted session of a Node.js PostgreSQL client against Quanta's pgwire server, as a web back end
// runs it: node session.mjs pg|postgres. Connection from PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE.
// Prints one JSON object of what it read; tests/test_clients_node.py checks it.
import pg from "pg";
import Cursor from "pg-cursor";
import postgres from "postgres";

const env = process.env;
const config = {
  host: env.PGHOST, port: Number(env.PGPORT), user: env.PGUSER, password: env.PGPASSWORD,
  database: env.PGDATABASE,
};

const COLUMNS = `select a.attname, format_type(a.atttypid, a.atttypmod) as type,
  col_description(a.attrelid, a.attnum) as comment
  from pg_attribute a join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace
  where n.nspname = $1 and c.relname = $2 and a.attnum > 0 and not a.attisdropped order by a.attnum`;
const PKEY = `select kcu.column_name from information_schema.table_constraints tc
  join information_schema.key_column_usage kcu on kcu.constraint_name = tc.constraint_name
  and kcu.table_schema = tc.table_schema
  where tc.constraint_type = 'PRIMARY KEY' and tc.table_schema = $1 and tc.table_name = $2`;
const JOIN = `select c.region, count(*) as orders from shop.orders o join crm.customers c
  on o.customer_id = c.id group by c.region order by c.region`;

function plain(value) {  // JSON-able values: dates as ISO strings, intervals as their text
  if (value instanceof Date) return value.toISOString();
  if (Array.isArray(value)) return value.map(plain);
  if (value && typeof value === "object" && typeof value.toPostgres === "function") return value.toPostgres();
  return value;
}

const rows = (result) => result.map((r) => Object.values(r).map(plain));

async function nodePostgres() {
  const client = new pg.Client(config);
  await client.connect();
  const out = {};
  try {
    out.schemas = (await client.query(
      "select nspname from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema' order by 1"))
      .rows.map((r) => r.nspname);
    out.tables = (await client.query(
      "select table_name from information_schema.tables where table_schema = $1 order by 1", ["lab"]))
      .rows.map((r) => r.table_name);
    out.columns = rows((await client.query(COLUMNS, ["lab", "readings"])).rows);
    out.pkey = rows((await client.query(PKEY, ["lab", "readings"])).rows);
    out.preview = rows((await client.query("select * from crm.customers order by id limit 3")).rows);
    out.join = rows((await client.query(JOIN)).rows);
    out.params = rows((await client.query({
      name: "since",  // a named prepared statement, executed twice
      text: "select id from lab.readings where taken_on >= $1 and ok = $2 order by id",
      values: ["2024-03-01", false],
    })).rows);
    out.params_again = rows((await client.query({ name: "since", values: ["1999-01-01", true] })).rows);
    out.any = rows((await client.query("select id from lab.readings where id = any($1) order by id", [[1, 4]])).rows);
    const readings = await client.query("select * from lab.readings order by id");
    out.types = readings.fields.map((f) => f.dataTypeID);
    out.readings = rows(readings.rows);
    const cursor = client.query(new Cursor("select event_id, reading from lab.events order by event_id"));
    let count = 0, total = 0, batch;
    do {
      batch = await cursor.read(10000);
      count += batch.length;
      for (const r of batch) total += r.reading;
    } while (batch.length > 0);
    await cursor.close();
    out.streamed = [count, total];
    try {
      await client.query("select * from report.sales_by_region");
    } catch (e) {
      out.denied = e.code;
    }
    out.after = (await client.query("select 1 as one")).rows[0].one;
  } finally {
    await client.end();
  }
  return out;
}

async function postgresJs() {
  const sql = postgres({ ...config, username: config.user, max: 1, onnotice: () => {} });
  const out = {};
  try {
    out.schemas = (await sql`select schema_name from information_schema.schemata order by 1`)
      .map((r) => r.schema_name);
    out.tables = (await sql`select table_name from information_schema.tables
      where table_schema = ${"lab"} order by 1`).map((r) => r.table_name);
    out.columns = rows(await sql.unsafe(COLUMNS, ["lab", "readings"]));
    out.pkey = rows(await sql.unsafe(PKEY, ["lab", "readings"]));
    out.preview = rows(await sql`select * from crm.customers order by id limit 3`);
    out.join = rows(await sql.unsafe(JOIN));
    out.in_list = rows(await sql`select id from lab.readings where id in ${sql([1, 2, 5])} order by id`);
    out.any = rows(await sql`select id from lab.readings where note = any(${["first", "last"]}) order by id`);
    out.any_int = rows(await sql`select id from lab.readings where id = any(${[3, 4]}) order by id`);
    out.params = rows(await sql`select id from lab.readings
      where taken_at > ${new Date("2024-03-01T00:00:00Z")} and price > ${0} order by id`);
    out.readings = rows(await sql`select * from lab.readings order by id`);
    let count = 0, total = 0;
    for await (const batch of sql`select event_id, reading from lab.events order by event_id`.cursor(10000)) {
      count += batch.length;
      for (const r of batch) total += r.reading;
    }
    out.streamed = [count, total];
    try {
      await sql`select amount from shop.orders`;
    } catch (e) {
      out.denied = e.code;
    }
  } finally {
    await sql.end();
  }
  return out;
}

const which = process.argv[2];
const result = which === "pg" ? await nodePostgres() : await postgresJs();
process.stdout.write(JSON.stringify(result));
