// One login through pgvigil and the user it became: tests/auth_scram.rs runs it against
// `[auth] mode = "scram"` (pgvigil runs SCRAM with the driver from the user's verifier).
//
// Usage: java -cp postgresql.jar:DIR Login URL USER PASSWORD
// Prints the current user then OK; any failure throws and exits non-zero.

import java.sql.Connection;
import java.sql.DriverManager;
import java.sql.ResultSet;
import java.sql.Statement;
import java.util.Properties;

public class Login {
    public static void main(String[] args) throws Exception {
        if (args.length != 3) {
            System.err.println("usage: Login URL USER PASSWORD");
            System.exit(2);
        }
        Properties props = new Properties();
        props.setProperty("user", args[1]);
        props.setProperty("password", args[2]);
        try (Connection c = DriverManager.getConnection(args[0], props);
             Statement st = c.createStatement();
             ResultSet rs = st.executeQuery("select current_user")) {
            rs.next();
            System.out.println(rs.getString(1));
        }
        System.out.println("OK");
    }
}
