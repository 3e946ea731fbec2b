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
pub(super) fn check(c: &mut super::Checker<'_>, file: &super::ConfigFile) {
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
    use super::super::{check, parse, Checker, ConfigError, ConfigFile, ConfigIssue};
    use std::path::Path;

    /// Config's own parse and checks (the console is config's to check).
    fn load(text: &str) -> Result<ConfigFile, Vec<ConfigIssue>> {
        let file = parse(text, Path::new("/tmp/x.toml")).map_err(|e| match e {
            ConfigError::Invalid { issues, .. } => issues,
            other => panic!("{other}"),
        })?;
        let mut c = Checker::new(text, Path::new("/tmp"));
        check(&mut c, &file);
        if c.issues.is_empty() {
            Ok(file)
        } else {
            Err(c.issues)
        }
    }

    #[test]
    fn console_settings_are_checked() {
        let base = "[listen.tls]\nmode = \"disable\"\n";
        let ok = load(&format!("{base}[admin]\nusers = [\"dba\"]\n")).expect("valid");
        assert!(ok.admin.allows("dba") && !ok.admin.allows("DBA"));
        assert_eq!(ok.admin.database, "pgvigil");
        for (bad, key, line) in [
            ("[admin]\ndatabase = \"\"\n", "admin.database", Some(4)),
            (
                "[admin]\nauth_database = \"\"\n",
                "admin.auth_database",
                Some(4),
            ),
            ("[admin]\nusers = [\"\"]\n", "admin.users", Some(4)),
            ("[admin]\nsurprise = 1\n", "", Some(4)),
            // The console's name shadows a route: the key is absent, so no line.
            (
                "[databases.pgvigil]\nhost = \"h\"\n",
                "admin.database",
                None,
            ),
        ] {
            let issues = load(&format!("{base}{bad}")).expect_err(bad);
            assert_eq!(issues.len(), 1, "{bad}: {issues:?}");
            assert_eq!(
                (issues[0].key.as_str(), issues[0].line),
                (key, line),
                "{bad}"
            );
        }
    }
}
