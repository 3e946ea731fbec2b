// The DatabaseMetaData calls a GUI tool (DBeaver, IntelliJ) makes when it browses a
// database, then two statements of the user's own, through pgvigil: tests/audit_noise.rs
// checks that the driver's catalog queries are logged as noise and the user's are not.
//
// Usage: java -cp postgresql.jar:DIR Meta URL USER PASSWORD
// Prints OK on success; any failure throws and exits non-zero.

import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class Meta {
    static void check(boolean cond, String what) {
        if (!cond) {
            throw new AssertionError("check failed: " + what);
        }
    }

    /** Reads a result set to the end and returns its row count. */
    static int drain(ResultSet rs) throws SQLException {
        int n = 0;
        int cols = rs.getMetaData().getColumnCount();
        while (rs.next()) {
            for (int i = 1; i <= cols; i++) {
                rs.getObject(i);
            }
            n++;
        }
        rs.close();
        return n;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Meta URL USER PASSWORD");
            System.exit(2);
        }
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "noise_jdbc");
        props.setProperty("connectTimeout", "20");
        props.setProperty("socketTimeout", "60");
        try (Connection c = DriverManager.getConnection(args[0], props)) {
            DatabaseMetaData md = c.getMetaData();
            check(c.getSchema().equals("public"), "current schema");
            check(drain(md.getCatalogs()) >= 1, "getCatalogs");
            check(drain(md.getSchemas()) >= 2, "getSchemas");
            check(drain(md.getTableTypes()) >= 3, "getTableTypes");
            check(drain(md.getTables(null, "public", "%", null)) >= 1, "getTables");
            check(drain(md.getTables(null, "public", "%", new String[] {"TABLE", "VIEW"})) >= 1, "getTables by type");
            check(drain(md.getColumns(null, "public", "app_table", "%")) == 2, "getColumns");
            check(drain(md.getPrimaryKeys(null, "public", "app_table")) == 1, "getPrimaryKeys");
            check(drain(md.getIndexInfo(null, "public", "app_table", false, true)) >= 1, "getIndexInfo");
            check(drain(md.getImportedKeys(null, "public", "app_table")) >= 0, "getImportedKeys");
            check(drain(md.getFunctions(null, "public", "%")) >= 1, "getFunctions");
            check(drain(md.getProcedures(null, "public", "%")) >= 1, "getProcedures");
            check(drain(md.getTypeInfo()) > 20, "getTypeInfo");
            check(drain(md.getUDTs(null, "public", "%", null)) >= 0, "getUDTs");

            // The user's own statements in the same session.
            try (Statement st = c.createStatement()) {
                check(drain(st.executeQuery("select * from app_table")) >= 1, "user select");
                check(st.executeUpdate("insert into app_table (v) values ('jdbc')") == 1, "user insert");
            }
        }
        System.out.println("OK");
    }
}
