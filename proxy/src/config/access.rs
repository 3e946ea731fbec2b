//! `[access]`: who may log in to which databases from which networks, and who may only
//! read. Described here; decided by `enforce::access` (before authentication) and by the
//! statement refusals of `enforce` (read-only sessions).

use serde::Deserialize;

/// `[access]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Access {
    /// What happens to a user no policy names.
    #[serde(default)]
    pub default: AccessDefault,
    /// Policies in order: the first whose `users` match decides.
    #[serde(default)]
    pub policy: Vec<AccessPolicy>,
}

/// `[access] default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccessDefault {
    /// Users no policy names log in as before.
    #[default]
    Allow,
    /// Users no policy names are refused.
    Deny,
}

/// One `[[access.policy]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessPolicy {
    /// Exact user names and globs (`analyst_*`).
    pub users: Vec<String>,
    /// Databases this user may connect to (names and globs); absent: all.
    #[serde(default)]
    pub databases: Option<Vec<String>>,
    /// Client networks (CIDR ranges, addresses or globs) this user may connect from;
    /// absent: all.
    #[serde(default)]
    pub client_addrs: Option<Vec<String>>,
    /// Nothing this user runs may write: the server session starts with
    /// `default_transaction_read_only = on` and what would undo it is refused.
    #[serde(default)]
    pub read_only: bool,
}

/// `[audit] on_write_error`: what sessions do while the audit log cannot be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnWriteError {
    /// Statements go on; the events lost are counted (`result="failed"`).
    #[default]
    Continue,
    /// New statements are refused (SQLSTATE 58030) and new sessions too, until a write
    /// succeeds again.
    Refuse,
}
