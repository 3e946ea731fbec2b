//! Who a throwaway cluster's users are and how they authenticate: the fixed test roles,
//! the pg_hba.conf that gives each its method, and the SQL that creates them.

use super::cluster::{APP_DB, SUPERUSER};

/// pg_hba.conf authentication method for `host` lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HbaAuth {
    /// No password.
    Trust,
    /// SCRAM-SHA-256.
    ScramSha256,
    /// MD5 challenge (SCRAM when the stored password is a SCRAM verifier).
    Md5,
    /// Cleartext password.
    Password,
}

impl HbaAuth {
    /// The method as spelled in pg_hba.conf.
    pub fn hba_method(self) -> &'static str {
        match self {
            HbaAuth::Trust => "trust",
            HbaAuth::ScramSha256 => "scram-sha-256",
            HbaAuth::Md5 => "md5",
            HbaAuth::Password => "password",
        }
    }
}

/// A login role created in every cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TestRole {
    /// Role name.
    pub name: &'static str,
    /// Password, `None` for a role without one.
    pub password: Option<&'static str>,
    /// Method in its pg_hba line; `None` means [`ClusterOptions::auth`](super::cluster::ClusterOptions::auth).
    pub auth: Option<HbaAuth>,
    /// Whether the password is stored as an MD5 hash rather than a SCRAM verifier.
    pub md5_stored: bool,
}

/// The roles every cluster has. Tests rely on these names and passwords.
pub const TEST_ROLES: [TestRole; 5] = [
    TestRole {
        name: "scram_user",
        password: Some("scram_pass"),
        auth: Some(HbaAuth::ScramSha256),
        md5_stored: false,
    },
    TestRole {
        name: "md5_user",
        password: Some("md5_pass"),
        auth: Some(HbaAuth::Md5),
        md5_stored: true,
    },
    TestRole {
        name: "pw_user",
        password: Some("pw_pass"),
        auth: Some(HbaAuth::Password),
        md5_stored: false,
    },
    TestRole {
        name: "trust_user",
        password: None,
        auth: Some(HbaAuth::Trust),
        md5_stored: false,
    },
    TestRole {
        name: "app_user",
        password: Some("app_pass"),
        auth: None,
        md5_stored: false,
    },
];

/// The pg_hba.conf: the superuser and local connections are trusted (setup, psql), each
/// test role gets its own method, everyone else `auth`. `host` rather than `hostssl`
/// so both plain and TLS connections work.
pub(super) fn hba_conf(auth: HbaAuth) -> String {
    let mut text = String::from(
        "# Written by the pgvigil cluster harness.\n\
         # TYPE  DATABASE  USER  ADDRESS  METHOD\n\
         local   all       all            trust\n",
    );
    let mut rows: Vec<(&str, &str)> = vec![(SUPERUSER, "trust")];
    for role in &TEST_ROLES {
        rows.push((role.name, role.auth.unwrap_or(auth).hba_method()));
    }
    rows.push(("all", auth.hba_method()));
    for (user, method) in rows {
        for addr in ["127.0.0.1/32", "::1/128"] {
            text.push_str(&format!("host    all       {user}  {addr}  {method}\n"));
        }
    }
    text
}

/// SQL creating the test roles and the app database.
pub(super) fn roles_sql() -> String {
    let mut sql = String::new();
    for role in &TEST_ROLES {
        let encryption = if role.md5_stored {
            "md5"
        } else {
            "scram-sha-256"
        };
        sql.push_str(&format!("SET password_encryption = '{encryption}';\n"));
        match role.password {
            Some(pw) => sql.push_str(&format!(
                "CREATE ROLE {} LOGIN PASSWORD '{}';\n",
                role.name,
                pw.replace('\'', "''")
            )),
            None => sql.push_str(&format!("CREATE ROLE {} LOGIN;\n", role.name)),
        }
    }
    sql.push_str("RESET password_encryption;\n");
    sql.push_str(&format!("CREATE DATABASE {APP_DB} OWNER app_user;\n"));
    // CONNECT is granted to PUBLIC by default; since PostgreSQL 15 creating objects in
    // the public schema is not, and tests create tables as the test roles.
    sql.push_str("GRANT ALL ON SCHEMA public TO PUBLIC;\n");
    sql.push_str(&format!("\\connect {APP_DB}\n"));
    sql.push_str("GRANT ALL ON SCHEMA public TO PUBLIC;\n");
    sql
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hba_gives_each_role_its_method() {
        let hba = hba_conf(HbaAuth::Md5);
        assert!(hba.contains("local   all       all            trust"));
        assert!(hba.contains("host    all       postgres  127.0.0.1/32  trust"));
        assert!(hba.contains("host    all       scram_user  127.0.0.1/32  scram-sha-256"));
        assert!(hba.contains("host    all       pw_user  ::1/128  password"));
        assert!(hba.contains("host    all       app_user  127.0.0.1/32  md5"));
        // The catch-all comes last so the per-role lines win.
        assert!(hba
            .trim_end()
            .ends_with("host    all       all  ::1/128  md5"));
    }

    #[test]
    fn roles_sql_stores_md5_only_for_md5_user() {
        let sql = roles_sql();
        let md5 = sql.find("SET password_encryption = 'md5'").unwrap();
        let md5_role = sql.find("CREATE ROLE md5_user").unwrap();
        assert!(md5 < md5_role);
        assert!(sql[md5_role..]
            .find("SET password_encryption = 'scram-sha-256'")
            .is_some());
    }
}
