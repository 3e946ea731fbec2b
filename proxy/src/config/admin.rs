//! `[admin]`: the admin console, a virtual database served by pgvigil itself.

use serde::Deserialize;

/// `[admin]`: who may open the console and under which database name.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Admin {
    /// The virtual database name that opens the console instead of a server session.
    pub database: String,
    /// Users allowed into the console (authenticated like every session). Empty: no one.
    pub users: Vec<String>,
    /// The server database the console's logins authenticate against (the console's own
    /// name does not exist upstream).
    pub auth_database: String,
}

impl Default for Admin {
    fn default() -> Self {
        Admin {
            database: "pgvigil".to_string(),
            users: Vec::new(),
            auth_database: "postgres".to_string(),
        }
    }
}

impl Admin {
    /// Whether `user` may use the console.
    pub fn allows(&self, user: &str) -> bool {
        self.users.iter().any(|u| u == user)
    }
}

/// The console's settings' problems, as (key, message): checked with the rest of the file.
pub(super) fn check(c: &mut super::validate::Checker<'_>, file: &super::ConfigFile) {
    let a = &file.admin;
    if a.database.is_empty() || a.database.contains('\0') {
        c.issue(&["admin", "database"], "must be a non-empty database name");
    }
    // A route of the same name would never be reached: the console answers first.
    if file.databases.contains_key(&a.database) {
        c.issue(
            &["admin", "database"],
            format!(
                "{:?} is also a [databases] route; pick another name for the console",
                a.database
            ),
        );
    }
    if a.auth_database.is_empty() || a.auth_database.contains('\0') {
        c.issue(
            &["admin", "auth_database"],
            "must be a non-empty database name",
        );
    }
    if a.users.iter().any(|u| u.is_empty()) {
        c.issue(&["admin", "users"], "user names must not be empty");
    }
}

#[cfg(test)]
mod tests {
    use super::super::load_str;
    use std::path::Path;

    #[test]
    fn console_settings_are_checked() {
        let base = "[listen.tls]\nmode = \"disable\"\n";
        let ok = load_str(
            &format!("{base}[admin]\nusers = [\"dba\"]\n"),
            Path::new("/tmp/x.toml"),
        )
        .expect("valid");
        assert!(ok.file.admin.allows("dba") && !ok.file.admin.allows("DBA"));
        assert_eq!(ok.file.admin.database, "pgvigil");
        for bad in [
            "[admin]\ndatabase = \"\"\n",
            "[admin]\nauth_database = \"\"\n",
            "[admin]\nusers = [\"\"]\n",
            "[admin]\nsurprise = 1\n",
            "[databases.pgvigil]\nhost = \"h\"\n",
        ] {
            assert!(
                load_str(&format!("{base}{bad}"), Path::new("/tmp/x.toml")).is_err(),
                "{bad}"
            );
        }
    }
}
