// A JDBC client session through pgvigil, shaped like a GUI tool (DBeaver) connecting and
// browsing, then an application doing work: the metadata calls tools make on connect,
// DDL, a PreparedStatement run past prepareThreshold (the driver switches to named
// server-side statements), a batch with an error inside it, a rolled-back transaction,
// a statement cancelled by its query timeout (a CancelRequest on its own connection), and
// the backend pid from BackendKeyData matching the session's own (LISTEN/NOTIFY on self).
//
// Usage: java -cp postgresql.jar:DIR Main URL USER PASSWORD TAG
// Prints OK on success; any failure throws and exits non-zero.

import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;
import org.postgresql.PGConnection;
import org.postgresql.PGNotification;

public class Main {
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

    /** Row count of a result set while checking that column `col` contains `want`. */
    static boolean contains(ResultSet rs, String col, String want) throws SQLException {
        boolean found = false;
        while (rs.next()) {
            if (want.equals(rs.getString(col))) {
                found = true;
            }
        }
        rs.close();
        return found;
    }

    static long scalar(Connection c, String sql) throws SQLException {
        try (Statement st = c.createStatement(); ResultSet rs = st.executeQuery(sql)) {
            check(rs.next(), "a row from " + sql);
            return rs.getLong(1);
        }
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 4) {
            System.err.println("usage: Main URL USER PASSWORD TAG");
            System.exit(2);
        }
        String url = args[0];
        String tag = args[3];
        String parent = "jdbc_parent_" + tag;
        String child = "jdbc_child_" + tag;
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "pgvigil-jdbc-" + tag);
        props.setProperty("connectTimeout", "20");
        props.setProperty("socketTimeout", "60");

        try (Connection c = DriverManager.getConnection(url, props)) {
            // What a GUI tool asks on connect.
            DatabaseMetaData md = c.getMetaData();
            check("PostgreSQL".equals(md.getDatabaseProductName()), "product name");
            check(md.getDatabaseProductVersion().matches("\\d+.*"), "product version");
            check(md.getDriverName().contains("PostgreSQL"), "driver name");
            check(md.getUserName().equals(args[1]), "user name");
            check(md.getDatabaseMajorVersion() >= 10, "major version");
            check(c.getCatalog().equals("app"), "catalog is the database");
            check(c.getSchema().equals("public"), "current schema");
            c.setClientInfo("ApplicationName", "pgvigil-jdbc-" + tag + "-browse");
            try (Statement st = c.createStatement();
                 ResultSet rs = st.executeQuery("select current_schema(), session_user, current_setting('application_name')")) {
                check(rs.next(), "session row");
                check(rs.getString(3).equals("pgvigil-jdbc-" + tag + "-browse"), "application_name set by setClientInfo");
            }
            check(contains(md.getSchemas(), "TABLE_SCHEM", "pg_catalog"), "schemas include pg_catalog");
            check(contains(md.getCatalogs(), "TABLE_CAT", "app"), "catalogs include app");
            check(drain(md.getTableTypes()) > 3, "table types");

            // The backend pid the driver learned from BackendKeyData is the session's real
            // one: tools match it against pg_stat_activity, and libpq's documented way to
            // spot one's own notifications compares it with the notification's pid.
            PGConnection pgc = c.unwrap(PGConnection.class);
            long serverPid = scalar(c, "select pg_backend_pid()");
            check(pgc.getBackendPID() == serverPid,
                    "getBackendPID() " + pgc.getBackendPID() + " == pg_backend_pid() " + serverPid);
            try (Statement st = c.createStatement()) {
                st.execute("LISTEN jdbc_" + tag);
                st.execute("NOTIFY jdbc_" + tag + ", 'self'");
            }
            PGNotification[] notes = pgc.getNotifications(10_000);
            check(notes != null && notes.length == 1, "own notification delivered");
            check(notes[0].getParameter().equals("self"), "notification payload");
            check(notes[0].getPID() == pgc.getBackendPID(), "own notification recognised by pid");
            check(drain(md.getTypeInfo()) > 20, "type info");

            try (Statement st = c.createStatement()) {
                st.execute("drop table if exists " + child + ", " + parent);
                st.execute("create table " + parent + " (id int primary key, name text not null)");
                st.execute("create table " + child + " (id int primary key, parent_id int not null references "
                        + parent + "(id), payload bytea, created timestamptz default now())");
                st.execute("create index on " + child + " (parent_id)");
                st.execute("insert into " + parent + " select g, 'parent ' || g from generate_series(1, 10) g");
            }

            check(contains(md.getTables(null, "public", "%", null), "TABLE_NAME", child), "getTables sees the new table");
            check(contains(md.getTables(null, "public", "%", new String[] {"TABLE"}), "TABLE_NAME", parent), "getTables by type");
            check(contains(md.getColumns(null, "public", child, "%"), "COLUMN_NAME", "payload"), "getColumns");
            check(contains(md.getPrimaryKeys(null, "public", child), "COLUMN_NAME", "id"), "getPrimaryKeys");
            check(contains(md.getImportedKeys(null, "public", child), "PKTABLE_NAME", parent), "getImportedKeys");
            check(contains(md.getExportedKeys(null, "public", parent), "FKTABLE_NAME", child), "getExportedKeys");
            check(drain(md.getIndexInfo(null, "public", child, false, true)) >= 2, "getIndexInfo: pkey and parent_id index");
            check(contains(md.getFunctions(null, "pg_catalog", "pg_sleep"), "FUNCTION_NAME", "pg_sleep"), "getFunctions");
            check(drain(md.getProcedures(null, "public", "%")) >= 0, "getProcedures");

            // Past prepareThreshold (5) the driver uses a named server-side statement.
            byte[] blob = new byte[3000];
            for (int i = 0; i < blob.length; i++) {
                blob[i] = (byte) (i * 31);
            }
            try (PreparedStatement ins = c.prepareStatement(
                    "insert into " + child + " (id, parent_id, payload) values (?, ?, ?)")) {
                for (int i = 1; i <= 40; i++) {
                    ins.setInt(1, i);
                    ins.setInt(2, 1 + i % 10);
                    ins.setBytes(3, blob);
                    check(ins.executeUpdate() == 1, "insert " + i);
                }
            }
            try (PreparedStatement q = c.prepareStatement(
                    "select c.id, p.name, c.payload from " + child + " c join " + parent
                            + " p on p.id = c.parent_id where c.id = ?")) {
                for (int i = 1; i <= 40; i++) {
                    q.setInt(1, i);
                    try (ResultSet rs = q.executeQuery()) {
                        check(rs.next(), "row " + i);
                        check(rs.getInt(1) == i, "id " + i);
                        check(rs.getString(2).equals("parent " + (1 + i % 10)), "join " + i);
                        check(java.util.Arrays.equals(rs.getBytes(3), blob), "payload " + i);
                        check(!rs.next(), "one row for " + i);
                    }
                }
            }
            long named = scalar(c, "select count(*) from pg_prepared_statements where statement like 'insert into "
                    + child + "%' or statement like 'select c.id, p.name%'");
            check(named >= 2, "server-side named prepared statements exist (" + named + ")");

            // A batch (one Sync for all statements) with a duplicate key in the middle.
            c.setAutoCommit(false);
            try (PreparedStatement ins = c.prepareStatement(
                    "insert into " + child + " (id, parent_id) values (?, 1)")) {
                for (int id : new int[] {100, 101, 5, 102}) {
                    ins.setInt(1, id);
                    ins.addBatch();
                }
                boolean failed = false;
                try {
                    ins.executeBatch();
                } catch (BatchUpdateException e) {
                    failed = true;
                    check("23505".equals(e.getSQLState()) || "23505".equals(e.getNextException().getSQLState()),
                            "duplicate key reported, got " + e.getSQLState());
                }
                check(failed, "the batch must fail");
            }
            c.rollback();
            check(scalar(c, "select count(*) from " + child) == 40, "batch rolled back");

            // A transaction rolled back explicitly.
            try (Statement st = c.createStatement()) {
                st.executeUpdate("delete from " + child);
                check(scalar(c, "select count(*) from " + child) == 0, "deleted inside the transaction");
            }
            c.rollback();
            check(scalar(c, "select count(*) from " + child) == 40, "delete rolled back");
            c.setAutoCommit(true);

            // A query timeout is a CancelRequest on a new connection, with the key the
            // driver got in BackendKeyData.
            try (Statement st = c.createStatement()) {
                st.setQueryTimeout(1);
                long started = System.nanoTime();
                boolean cancelled = false;
                try {
                    st.execute("select pg_sleep(20)");
                } catch (SQLException e) {
                    cancelled = "57014".equals(e.getSQLState());
                    if (!cancelled) {
                        throw e;
                    }
                }
                long ms = (System.nanoTime() - started) / 1_000_000;
                check(cancelled, "pg_sleep cancelled by the query timeout");
                check(ms < 15_000, "cancel took " + ms + " ms");
            }
            check(scalar(c, "select 41 + 1") == 42, "session usable after the cancel");

            try (Statement st = c.createStatement()) {
                st.execute("drop table " + child + ", " + parent);
            }
        }
        System.out.println("OK");
    }
}
