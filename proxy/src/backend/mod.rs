//! The server-facing side: connecting to PostgreSQL (TCP, libpq-style TLS negotiation),
//! authenticating upstream with the client's password, and reading the server's startup
//! messages up to the first ReadyForQuery; [`catalog`] is pgvigil's own catalog query on
//! a fresh session, for the noise filter.
//! [`target`] resolves `[upstream]` and `[databases]` into where sessions go.

mod auth;
pub mod catalog;
mod connect;
pub mod target;

pub use auth::{
    begin, complete, scram_server_final, scram_server_first, AuthOutcome, Begin, UpstreamAuth,
    UpstreamSecret,
};
pub use connect::{connect, is_unix_socket_dir, ServerConn};
pub use target::UpstreamTarget;

use crate::wire::WireError;

/// Errors of the backend layer.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("cannot connect to PostgreSQL at {addr}: {source}")]
    Connect {
        addr: String,
        source: std::io::Error,
    },
    #[error("connecting to PostgreSQL at {addr} timed out after {secs:.1}s")]
    ConnectTimeout { addr: String, secs: f64 },
    #[error("PostgreSQL at {addr} does not support SSL, but sslmode={sslmode} requires it")]
    TlsRefused { addr: String, sslmode: &'static str },
    #[error("TLS handshake with PostgreSQL at {addr} failed: {source}")]
    TlsHandshake {
        addr: String,
        source: std::io::Error,
    },
    #[error("PostgreSQL sent data after its SSL response and before the TLS handshake")]
    InjectedBytes,
    #[error("unexpected reply to SSLRequest: {0:#04x}")]
    BadSslReply(u8),
    #[error("protocol error from PostgreSQL: {0}")]
    Wire(#[from] WireError),
    #[error("unexpected message {tag:?} from PostgreSQL during {phase}")]
    Unexpected { tag: char, phase: &'static str },
    #[error("PostgreSQL asked for an authentication method the proxy cannot perform ({0})")]
    UnsupportedAuth(String),
    #[error("SCRAM exchange with PostgreSQL failed: {0}")]
    Scram(String),
    /// `scram` mode: the server's verifier for the user has another salt or iteration count
    /// than the one pgvigil used with the client.
    #[error("the server's SCRAM verifier differs from pgvigil's (salt or iteration count)")]
    ScramVerifierMismatch,
    /// What pgvigil needs to log in upstream is unavailable: the auth_query lookup of the
    /// user's verifier failed, or the upstream client certificate could not be minted.
    #[error("{0}")]
    AuthSource(String),
}
