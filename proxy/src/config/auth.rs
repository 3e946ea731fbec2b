//! `[auth]`: how pgvigil learns who a client is, and where the secrets it checks come from.

use serde::Deserialize;
use std::path::PathBuf;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    #[serde(default = "default_auth_mode")]
    pub mode: AuthMode,
    /// `scram` mode: users and their SCRAM (or md5) verifiers, in PgBouncer's userlist.txt
    /// format. Relative to the config file's folder.
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
}

/// How the proxy learns who authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthMode {
    /// Ask the client for its password, authenticate upstream with it.
    Password,
    /// Relay the server's own exchange; the proxy never sees the password.
    Passthrough,
    /// Run SCRAM-SHA-256(-PLUS) with the client from the user's verifier, and log in
    /// upstream with the ClientKey recovered from the client's proof: the password never
    /// reaches pgvigil, and clients that insist on channel binding can log in.
    Scram,
}

impl AuthMode {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Password => "password",
            AuthMode::Passthrough => "passthrough",
            AuthMode::Scram => "scram",
        }
    }
}

fn default_auth_mode() -> AuthMode {
    AuthMode::Password
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            mode: default_auth_mode(),
            auth_file: None,
        }
    }
}
