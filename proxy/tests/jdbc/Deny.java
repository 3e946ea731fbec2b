// Deny rules seen from pgJDBC: a denied statement, a denied prepared statement, a batch
// holding a denied statement, a denied statement inside a transaction, and the connection
// working after each. Prints "OK" when every check passed.
// Usage: Deny URL USER PASSWORD TABLE
import java.sql.BatchUpdateException;
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.SQLException;
import java.sql.Statement;
import java.util.Properties;

public class Deny {
    static void check(boolean ok, String what) {
        if (!ok) {
            throw new IllegalStateException("check failed: " + what);
        }
    }

    static long count(Connection c, String table) throws SQLException {
        try (Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("select count(*) from " + table)) {
            rs.next();
            return rs.getLong(1);
        }
    }

    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "pgvigil-jdbc-deny");
        props.setProperty("connectTimeout", "20");
        props.setProperty("socketTimeout", "60");
        String t = args[3];
        try (Connection c = DriverManager.getConnection(args[0], props)) {
            long before = count(c, t);
            // A plain statement.
            try (Statement st = c.createStatement()) {
                st.executeUpdate("delete from " + t);
                check(false, "plain delete was not refused");
            } catch (SQLException e) {
                check("42501".equals(e.getSQLState()), "plain: " + e.getSQLState() + " " + e.getMessage());
                check(e.getMessage().contains("deny-unbounded-write"), "message: " + e.getMessage());
            }
            check(count(c, t) == before, "rows after plain");
            // A prepared statement, several times (past prepareThreshold: named statements).
            for (int i = 0; i < 7; i++) {
                try (PreparedStatement ps = c.prepareStatement("update " + t + " set id = ?")) {
                    ps.setInt(1, i);
                    ps.executeUpdate();
                    check(false, "prepared update was not refused");
                } catch (SQLException e) {
                    check("42501".equals(e.getSQLState()), "prepared: " + e.getSQLState() + " " + e.getMessage());
                }
            }
            // A batch with a denied statement in the middle.
            try (Statement st = c.createStatement()) {
                st.addBatch("insert into " + t + " values (1000)");
                st.addBatch("delete from " + t);
                st.addBatch("insert into " + t + " values (1001)");
                st.executeBatch();
                check(false, "batch was not refused");
            } catch (BatchUpdateException e) {
                SQLException cause = e.getNextException() != null ? e.getNextException() : e;
                check("42501".equals(cause.getSQLState()), "batch: " + cause.getSQLState() + " " + cause.getMessage());
            }
            // Inside a transaction: the transaction is aborted, rollback works.
            c.setAutoCommit(false);
            try (Statement st = c.createStatement()) {
                st.executeUpdate("insert into " + t + " values (2000)");
                try {
                    st.executeUpdate("delete from " + t);
                    check(false, "delete in transaction was not refused");
                } catch (SQLException e) {
                    check("42501".equals(e.getSQLState()), "tx: " + e.getSQLState());
                }
                try {
                    st.executeQuery("select 1").close();
                    check(false, "transaction not aborted");
                } catch (SQLException e) {
                    check("25P02".equals(e.getSQLState()), "aborted: " + e.getSQLState());
                }
            }
            c.rollback();
            c.setAutoCommit(true);
            long after = count(c, t);
            System.out.println("rows before=" + before + " after=" + after);
            System.out.println("OK");
        }
    }
}
