// Run by tests/test_pgwire_catalog_truth.py: DatabaseMetaData as DBeaver and Metabase call it, on a table with
// a composite primary key and an interval column.
// Usage: java -cp postgresql.jar:. CatalogTruth <jdbc url> <user> <password> <schema> <table>
import java.sql.*;

public class CatalogTruth {
    public static void main(String[] args) throws Exception {
        try (Connection c = DriverManager.getConnection(args[0], args[1], args[2])) {
            DatabaseMetaData md = c.getMetaData();
            try (ResultSet rs = md.getPrimaryKeys(null, args[3], args[4])) {
                while (rs.next()) System.out.println("pk " + rs.getString("COLUMN_NAME") + " " + rs.getInt("KEY_SEQ")
                        + " " + rs.getString("PK_NAME"));
            }
            try (ResultSet rs = md.getIndexInfo(null, args[3], args[4], false, false)) {
                while (rs.next()) System.out.println("index " + rs.getString("INDEX_NAME") + " " + rs.getString("COLUMN_NAME")
                        + " " + rs.getInt("ORDINAL_POSITION") + " unique=" + !rs.getBoolean("NON_UNIQUE"));
            }
            try (ResultSet rs = md.getColumns(null, args[3], args[4], "%")) {
                while (rs.next()) System.out.println("column " + rs.getString("COLUMN_NAME") + " " + rs.getString("TYPE_NAME")
                        + " " + rs.getInt("DATA_TYPE") + " remarks=" + rs.getString("REMARKS"));
            }
            try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(
                    "select * from " + args[3] + "." + args[4] + " order by 1, 2 limit 1")) {
                ResultSetMetaData rm = rs.getMetaData();
                for (int i = 1; i <= rm.getColumnCount(); i++)
                    System.out.println("result " + rm.getColumnName(i) + " " + rm.getColumnTypeName(i) + " " + rm.getColumnType(i));
                while (rs.next()) System.out.println("value " + rs.getString(3));
            }
            try (ResultSet rs = md.getTypeInfo()) {
                int n = 0;
                while (rs.next()) n++;
                System.out.println("types " + (n > 10));
            }
            try (ResultSet rs = md.getSchemas()) {
                while (rs.next()) System.out.println("schema " + rs.getString("TABLE_SCHEM"));
            }
        }
    }
}
