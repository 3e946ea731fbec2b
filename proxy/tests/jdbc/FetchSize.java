// Reads a whole table through pgJDBC with setFetchSize inside a transaction: the driver
// then runs the query in a named portal, fetching rows in batches (Execute with a row
// limit, PortalSuspended between batches). Prints "OK rows=N" when every row came.
// Usage: FetchSize URL USER PASSWORD TABLE FETCH_SIZE
import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class FetchSize {
    public static void main(String[] args) throws Exception {
        if (args.length != 5) {
            System.err.println("usage: FetchSize URL USER PASSWORD TABLE FETCH_SIZE");
            System.exit(2);
        }
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        props.setProperty("ApplicationName", "pgvigil-jdbc-fetchsize");
        props.setProperty("connectTimeout", "20");
        props.setProperty("socketTimeout", "60");
        try (Connection c = DriverManager.getConnection(args[0], props)) {
            // pgJDBC only uses a cursor (portal) for fetch size outside autocommit.
            c.setAutoCommit(false);
            long rows = 0;
            try (Statement st = c.createStatement()) {
                st.setFetchSize(Integer.parseInt(args[4]));
                try (ResultSet rs = st.executeQuery("select * from " + args[3])) {
                    while (rs.next()) {
                        rows++;
                    }
                }
            }
            c.commit();
            System.out.println("OK rows=" + rows);
        }
    }
}
