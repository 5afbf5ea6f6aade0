// Run by tests/test_clients_pgjdbc.py: a session of pgjdbc as DBeaver and Metabase run it. DatabaseMetaData
// (catalogs, schemas, tables, columns, primary keys, index info, type info, functions, table privileges),
// a preview, a join, a PreparedStatement run past the prepare threshold (server-side prepared from the 5th
// execution), every type of lab.readings, a fetch-size cursor streaming 100,000 rows, and denials.
// Prints one fact per line; the test checks the lines.
// Usage: java -cp postgresql.jar:. ClientSession <jdbc url> <user> <password>
import java.sql.*;

public class ClientSession {
    static void out(String s) { System.out.println(s); }

    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            out("product " + md.getDatabaseProductName() + " " + md.getDatabaseMajorVersion());
            try (ResultSet rs = md.getCatalogs()) {
                while (rs.next()) out("catalog " + rs.getString("TABLE_CAT"));
            }
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) out("schema " + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getTableTypes()) {
                while (rs.next()) out("tabletype " + rs.getString(1));
            }
            try (ResultSet rs = md.getTables(null, "lab", "%", new String[] {"TABLE", "VIEW"})) {
                while (rs.next()) out("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME") + " "
                        + rs.getString("TABLE_TYPE") + " remarks=" + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {  // Metabase's sync
                int n = 0;
                while (rs.next()) n++;
                out("alltables " + n);
            }
            try (ResultSet rs = md.getColumns(null, "lab", "readings", "%")) {
                while (rs.next()) out("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME") + " "
                        + rs.getInt("DATA_TYPE") + " size=" + rs.getInt("COLUMN_SIZE") + " digits="
                        + rs.getInt("DECIMAL_DIGITS") + " nullable=" + rs.getString("IS_NULLABLE") + " remarks="
                        + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getPrimaryKeys(null, "lab", "readings")) {
                while (rs.next()) out("pk " + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ") + " "
                        + rs.getString("PK_NAME"));
            }
            try (ResultSet rs = md.getIndexInfo(null, "lab", "readings", false, true)) {
                while (rs.next()) out("index " + rs.getString("INDEX_NAME") + " " + rs.getString("COLUMN_NAME")
                        + " unique=" + !rs.getBoolean("NON_UNIQUE"));
            }
            try (ResultSet rs = md.getImportedKeys(null, "lab", "readings")) {
                int n = 0;
                while (rs.next()) n++;
                out("importedkeys " + n);
            }
            try (ResultSet rs = md.getTypeInfo()) {
                StringBuilder names = new StringBuilder();
                while (rs.next()) {
                    String name = rs.getString("TYPE_NAME");
                    if (name.equals("int8") || name.equals("numeric") || name.equals("timestamptz")
                            || name.equals("interval") || name.equals("bool") || name.equals("_varchar"))
                        names.append(" ").append(name).append("=").append(rs.getInt("DATA_TYPE"));
                }
                out("typeinfo" + names);
            }
            for (String schema : new String[] {"lab", "pg_catalog"}) {  // DBeaver lists a schema's functions
                try (ResultSet rs = md.getFunctions(null, schema, "%")) {
                    int n = 0;
                    while (rs.next()) n++;
                    out("functions " + schema + " " + n);
                }
            }
            try (ResultSet rs = md.getTablePrivileges(null, "lab", "readings")) {
                StringBuilder privileges = new StringBuilder();
                while (rs.next()) privileges.append(" ").append(rs.getString("PRIVILEGE"));
                out("privileges" + privileges);
            }

            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("select * from crm.customers order by id limit 3")) {
                while (rs.next()) out("preview " + rs.getLong(1) + " " + rs.getString(2) + " " + rs.getString(3) + " "
                        + rs.getString(4));
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(
                    "select c.region, count(*) as orders from shop.orders o join crm.customers c on o.customer_id = c.id "
                    + "group by c.region order by c.region")) {
                ResultSetMetaData rm = rs.getMetaData();
                out("joincols " + rm.getColumnLabel(1) + " " + rm.getColumnLabel(2) + " " + rm.getColumnTypeName(2));
                while (rs.next()) out("join " + rs.getString(1) + " " + rs.getLong(2));
            }

            try (PreparedStatement ps = c.prepareStatement(
                    "select id, price, taken_at from lab.readings where taken_on >= ? and ok = ? order by id")) {
                for (int i = 0; i < 10; i++) {
                    ps.setDate(1, Date.valueOf(i % 2 == 0 ? "2024-03-01" : "1999-01-01"));
                    ps.setBoolean(2, i % 2 != 0);
                    StringBuilder ids = new StringBuilder();
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) ids.append(" ").append(rs.getLong(1));
                    }
                    boolean server = ps.unwrap(org.postgresql.PGStatement.class).isUseServerPrepare();
                    out("prepared " + i + ids + " server=" + server);
                }
            }

            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("select * from lab.readings order by id")) {
                ResultSetMetaData rm = rs.getMetaData();
                StringBuilder types = new StringBuilder();
                for (int i = 1; i <= rm.getColumnCount(); i++)
                    types.append(" ").append(rm.getColumnName(i)).append(":").append(rm.getColumnType(i));
                out("types" + types);
                while (rs.next()) {
                    Array tags = rs.getArray("tags");
                    out("reading " + rs.getLong("id") + " " + rs.getDate("taken_on") + " "
                            + (rs.getObject("taken_at", java.time.OffsetDateTime.class)) + " " + rs.getBigDecimal("price")
                            + " " + rs.getObject("ok") + " "
                            + (tags == null ? "null" : java.util.Arrays.toString((Object[]) tags.getArray())) + " "
                            + rs.getString("span") + " " + rs.getString("note"));
                }
            }

            c.setAutoCommit(false);  // pgjdbc streams with a fetch size only inside a transaction
            try (Statement st = c.createStatement()) {
                st.setFetchSize(5000);
                long count = 0;
                double total = 0;
                try (ResultSet rs = st.executeQuery("select event_id, reading from lab.events order by event_id")) {
                    while (rs.next()) {
                        count++;
                        total += rs.getDouble(2);
                    }
                }
                out("streamed " + count + " " + (long) total);
            }
            c.commit();
            c.setAutoCommit(true);

            try (Statement st = c.createStatement()) {
                st.executeQuery("select * from report.sales_by_region");
                out("denied none");
            } catch (SQLException e) {
                out("denied " + e.getSQLState());
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("select amount from shop.orders");
                out("column-denied none");
            } catch (SQLException e) {
                out("column-denied " + e.getSQLState());
            }
        }
    }
}
