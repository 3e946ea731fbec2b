//! `[auth]`: how pgvigil learns who a client is, and where the secrets it checks come from.

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// `[auth]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Auth {
    /// How clients log in (see [`AuthMode`]).
    #[serde(default = "default_auth_mode")]
    pub mode: AuthMode,
    /// `scram` mode: users and their SCRAM (or md5) verifiers, in PgBouncer's userlist.txt
    /// format. Relative to the config file's folder.
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
    /// `scram` mode: users missing from auth_file are looked up upstream as this user.
    #[serde(default)]
    pub auth_user: Option<String>,
    /// auth_user's password, inline or `{ file = "..." }`.
    #[serde(default)]
    pub auth_password: Option<super::Secret>,
    /// Returns (user name, verifier) for `$1`, the user name; PgBouncer's convention.
    #[serde(default = "default_auth_query")]
    pub auth_query: String,
    /// The database auth_user connects to (where the lookup function lives).
    #[serde(default = "default_auth_dbname")]
    pub auth_dbname: String,
    /// How long a looked-up verifier (or "no such user") is kept; 0 disables the cache.
    #[serde(default = "default_auth_cache", with = "humantime_serde")]
    pub auth_cache: Duration,
    /// `certificate` mode with `[listen.tls] mode = "verify-ca"`: subject DN (or `/regex`)
    /// to user name.
    #[serde(default)]
    pub cert_map: BTreeMap<String, String>,
    /// `certificate` mode: the CA that signs pgvigil's per-session upstream certificates.
    #[serde(default)]
    pub upstream_cert: Option<UpstreamCert>,
}

/// `[auth.upstream_cert]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamCert {
    /// The CA certificate (PEM); PostgreSQL's `ssl_ca_file` holds a copy.
    pub ca_cert: PathBuf,
    /// The CA's private key (PEM): whoever reads it can log in as any user the server's
    /// `cert` lines allow.
    pub ca_key: PathBuf,
    /// How long each minted certificate is valid.
    #[serde(default = "default_cert_lifetime", with = "humantime_serde")]
    pub lifetime: Duration,
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
    /// The client's TLS certificate is the login (no password); upstream, pgvigil presents
    /// a short-lived certificate for the user, minted by `[auth.upstream_cert]`.
    Certificate,
}

impl AuthMode {
    /// The name used in the configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMode::Password => "password",
            AuthMode::Passthrough => "passthrough",
            AuthMode::Scram => "scram",
            AuthMode::Certificate => "certificate",
        }
    }
}

fn default_auth_mode() -> AuthMode {
    AuthMode::Password
}
fn default_auth_query() -> String {
    "SELECT usename, passwd FROM pgvigil.user_lookup($1)".to_string()
}
fn default_auth_dbname() -> String {
    "postgres".to_string()
}
fn default_auth_cache() -> Duration {
    Duration::from_secs(60)
}
fn default_cert_lifetime() -> Duration {
    Duration::from_secs(600)
}

impl Default for Auth {
    fn default() -> Self {
        Auth {
            mode: default_auth_mode(),
            auth_file: None,
            auth_user: None,
            auth_password: None,
            auth_query: default_auth_query(),
            auth_dbname: default_auth_dbname(),
            auth_cache: default_auth_cache(),
            cert_map: BTreeMap::new(),
            upstream_cert: None,
        }
    }
}
