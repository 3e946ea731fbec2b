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
