// Run by tests/test_pgwire.py: what DBeaver, Metabase and Tableau do through pgjdbc.
// Usage: java -cp postgresql.jar:. MeshMetadata <jdbc url> <user> <password>
import java.sql.*;

public class MeshMetadata {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            System.out.println("product " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
            try (ResultSet rs = md.getTables(null, null, "%", new String[] {"TABLE"})) {
                while (rs.next()) System.out.println("table " + rs.getString("TABLE_SCHEM") + "." + rs.getString("TABLE_NAME")
                        + " remarks=" + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getColumns(null, "shop", "orders", "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                        + " " + rs.getInt("DATA_TYPE") + " remarks=" + rs.getString("REMARKS"));
            }
            try (ResultSet rs = md.getColumns(null, "crm", "customers", "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                        + " " + rs.getInt("DATA_TYPE") + " remarks=" + rs.getString("REMARKS"));
            }
            for (int round = 0; round < 7; round++) {  // prepareThreshold 5: server-side prepared from the 5th
                try (PreparedStatement ps = c.prepareStatement(
                        "select order_id, customer_id, order_date from shop.orders where order_id = ? and order_date >= ?")) {
                    ps.setLong(1, 7);
                    ps.setDate(2, Date.valueOf("2026-01-01"));
                    try (ResultSet rs = ps.executeQuery()) {
                        while (rs.next()) if (round == 6) System.out.println("row " + rs.getLong(1) + " " + rs.getLong(2)
                                + " " + rs.getDate(3));
                    }
                }
            }
            try (PreparedStatement ps = c.prepareStatement("select full_name, email from crm.customers where id = ?")) {
                ps.setInt(1, 4);
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) System.out.println("masked " + rs.getString(1) + " " + rs.getString(2));
                }
            }
            try (Statement st = c.createStatement()) {
                st.executeQuery("select amount from shop.orders");
                System.out.println("denied no");
            } catch (SQLException e) {
                System.out.println("denied " + e.getSQLState());
            }
        }
    }
}
