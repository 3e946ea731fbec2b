//! Authentication as pgvigil performs it itself, on either leg.
//!
//! # Layout
//! - [`cert_login`]: `certificate` mode login, client certificate then minted upstream one.
//! - [`cert_map`]: certificate subjects to user names (`certificate` mode, verify-ca).
//! - [`check`]: `[auth]` checked and loaded (auth file, lookups, cert map, upstream CA).
//! - [`client_login`]: `[auth] mode = "scram"` login, client leg then upstream leg.
//! - [`lookup`]: `auth_query` lookups of verifiers upstream, with their cache.
//! - [`md5`]: md5 verifiers from an auth file.
//! - [`mint`]: short-lived upstream client certificates (`certificate` mode).
//! - [`scram`]: SCRAM-SHA-256 math, verifiers, channel-binding headers.
//! - [`scram_client`]: the client side, for the upstream leg (from a password or from a
//!   ClientKey recovered from the client's proof).
//! - [`scram_server`]: the server side, with the client, from the user's verifier.
//! - [`userlist`]: the auth file (PgBouncer's userlist.txt format).

pub mod cert_login;
pub mod cert_map;
pub mod check;
pub mod client_login;
pub mod lookup;
pub mod md5;
pub mod mint;
pub mod scram;
pub mod scram_client;
pub mod scram_server;
pub mod userlist;

pub use scram::{Binding, Verifier};
pub use scram_client::ScramClient;
pub use scram_server::ScramServer;
use std::sync::Arc;

/// What `[auth]` loaded, for the sessions of one config snapshot.
#[derive(Debug, Default)]
pub struct AuthSetup {
    /// `auth_file`.
    pub users: Option<Arc<userlist::UserList>>,
    /// `auth_user`/`auth_query`, with its cache.
    pub lookup: Option<Arc<lookup::AuthQuery>>,
    /// `cert_map`.
    pub cert_map: Option<cert_map::CertMap>,
    /// `[auth.upstream_cert]`.
    pub upstream_ca: Option<mint::UpstreamCa>,
}

/// Errors of the authentication layer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// A SCRAM message that does not parse or does not verify.
    #[error("{0}")]
    Scram(String),
    /// The server's salt or iteration count differs from the verifier pgvigil used with the
    /// client: the recovered ClientKey is useless upstream.
    #[error("the server's SCRAM verifier differs from pgvigil's (salt or iteration count)")]
    VerifierMismatch,
    /// The client's proof does not verify, or the user is unknown: one error for both, so
    /// user names cannot be probed.
    #[error("password authentication failed")]
    WrongPassword,
    /// The client's channel binding does not match pgvigil's certificate, or PLUS was
    /// offered and the client's gs2 header says it was not (a downgrade).
    #[error("SCRAM channel binding check failed")]
    ChannelBinding,
    /// The auth_query connection or query failed.
    #[error("auth_query lookup failed: {0}")]
    Lookup(String),
    /// Loading the upstream CA or minting a certificate failed.
    #[error("{0}")]
    Mint(String),
    /// A stored verifier that does not parse.
    #[error("invalid SCRAM verifier: {0}")]
    BadVerifier(String),
}
