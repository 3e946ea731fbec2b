//! The client-facing side: accepting connections, the startup negotiation (TLS, GSS,
//! cancel, protocol version), client authentication, and the session relay.
//!
//! # Phases of a connection
//! 1. [`listener`] accepts and takes the connection's place in the pre-login budgets
//!    ([`admission`]); [`session`] reads a PROXY header from a trusted load balancer.
//! 2. [`negotiate`] answers SSLRequest/GSSENCRequest/direct TLS and reads the StartupMessage
//!    (or a CancelRequest, handed to [`cancel`]).
//! 3. [`login`] authenticates the client (password or passthrough) against the server and
//!    completes the server's startup, substituting the proxy's own cancel key; then runs
//!    the noise filter's catalog check on the new server connection.
//! 4. [`relay`] forwards both directions until one side ends.
//!
//! [`session`] runs these phases for one connection inside its tracing span, and writes the
//! session's audit events.

pub mod admission;
pub(crate) mod buffers;
pub mod cancel;
pub mod listener;
pub mod login;
pub mod negotiate;
pub mod proxy_protocol;
pub mod registry;
pub mod relay;
pub mod session;
pub mod threads;
mod woken;

use crate::audit::AuditSink;
use crate::backend::BackendError;
use crate::metrics::Metrics;
use crate::snapshot::Config;
use crate::wire::messages::{error_response, Severity};
use crate::wire::WireError;
use bytes::Bytes;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// Errors of the client-facing layer.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("client protocol error: {0}")]
    Wire(#[from] WireError),
    #[error("TLS handshake with the client failed: {0}")]
    TlsHandshake(std::io::Error),
    #[error("client sent data after SSLRequest, before the TLS handshake")]
    InjectedBytes,
    #[error("direct TLS connection without the postgresql ALPN protocol")]
    NoAlpn,
    #[error("direct TLS requested but TLS is disabled")]
    DirectTlsDisabled,
    #[error("unsupported frontend protocol {major}.{minor}")]
    UnsupportedProtocol { major: u16, minor: u16 },
    #[error("no user name in the startup packet")]
    NoUser,
    #[error("unexpected message {0:?} from the client")]
    Unexpected(char),
    #[error("invalid PROXY protocol header: {0}")]
    ProxyHeader(String),
    /// A connection budget refused the client (see [`admission`]).
    #[error("{}", .0.reason())]
    Admission(admission::Refusal),
    /// The client sent nothing within `first_byte_timeout`.
    #[error("no data within first_byte_timeout")]
    Silent,
    /// The proxy refused the login itself (TLS required, certificate name, ...).
    #[error("{message}")]
    Refused {
        sqlstate: &'static str,
        message: String,
        hint: Option<String>,
    },
    /// The client's address is blocked by an `action = "block"` rule.
    #[error("address blocked by rule {rule_id} until {until}")]
    Blocked { rule_id: String, until: String },
    /// The server refused the login; its ErrorResponse was already forwarded.
    #[error("server refused the login: {reason}")]
    Rejected {
        sqlstate: Option<String>,
        reason: String,
    },
    /// A password or SASL message that does not parse.
    #[error("{0}")]
    BadAuthMessage(&'static str),
    #[error("client disconnected during authentication")]
    ClientGone,
    #[error("{0}")]
    Backend(#[from] BackendError),
}

impl FrontendError {
    /// The ErrorResponse the client should get before the socket closes, if any.
    pub fn client_error(&self) -> Option<Bytes> {
        let (code, msg, hint): (&str, String, Option<&str>) = match self {
            FrontendError::Wire(WireError::TooLong { .. })
            | FrontendError::Wire(WireError::BadLength { .. }) => {
                ("08P01", "invalid message length".into(), None)
            }
            FrontendError::Wire(WireError::Malformed(what)) => (
                "08P01",
                format!("invalid startup packet layout: {what}"),
                None,
            ),
            FrontendError::UnsupportedProtocol { major, minor } => (
                "0A000",
                format!(
                    "unsupported frontend protocol {major}.{minor}: server supports 3.0 to 3.0"
                ),
                None,
            ),
            FrontendError::BadAuthMessage(what) => ("08P01", (*what).to_string(), None),
            FrontendError::NoUser => (
                "28000",
                "no PostgreSQL user name specified in startup packet".into(),
                None,
            ),
            FrontendError::Unexpected(tag) => (
                "08P01",
                format!("invalid frontend message type {}", *tag as u32),
                None,
            ),
            FrontendError::Refused {
                sqlstate,
                message,
                hint,
            } => {
                return Some(error_response(
                    Severity::Fatal,
                    sqlstate,
                    message,
                    hint.as_deref(),
                ))
            }
            FrontendError::Admission(r) => {
                let (code, msg, hint) = r.client_message();
                return Some(error_response(Severity::Fatal, code, msg, hint));
            }
            FrontendError::Blocked { until, .. } => {
                let hint = format!("connections from this address are refused until {until}");
                return Some(error_response(
                    Severity::Fatal,
                    "28000",
                    "too many failed authentication attempts",
                    Some(&hint),
                ));
            }
            FrontendError::Backend(e) => (
                "08006",
                format!("pgvigil could not open the server connection: {e}"),
                None,
            ),
            _ => return None,
        };
        Some(error_response(Severity::Fatal, code, &msg, hint))
    }
}

/// Who set a block, in words: `admin:<user>` blocks come from the console.
fn block_source(rule_id: &str) -> String {
    match rule_id.strip_prefix("admin:") {
        Some(user) => format!("administrator {user}"),
        None => format!("rule {rule_id}"),
    }
}

/// What every session shares: the live config, the audit sink, metrics, cancel keys, the
/// connection budgets, the noise filter's catalog knowledge.
pub struct Shared {
    config: RwLock<Arc<Config>>,
    pub audit: AuditSink,
    pub metrics: Arc<Metrics>,
    pub cancels: cancel::CancelRegistry,
    /// Sized from the config at startup; a reload does not resize them.
    pub admission: admission::Admission,
    /// What each database's catalog says about names the noise filter trusts.
    pub shadows: crate::audit::shadow::Registry,
    /// The authenticated sessions, for the admin console and for blocks.
    pub sessions: Arc<registry::Sessions>,
    session_prefix: u32,
    session_seq: AtomicU64,
}

impl Shared {
    pub fn new(config: Config, audit: AuditSink, metrics: Arc<Metrics>) -> Shared {
        let limits = admission::Limits {
            max_client_conn: config.file.listen.max_client_conn,
            max_startup_conn: config.file.listen.max_startup_conn,
            max_startup_per_addr: config.file.listen.max_startup_per_addr,
            max_auth_conn: config.file.upstream.max_auth_conn,
            max_auth_per_addr: config.file.upstream.max_auth_per_addr,
        };
        let sessions = Arc::new(registry::Sessions::default());
        let weak = Arc::downgrade(&sessions);
        // A new block ends the address's running sessions, not only its next logins.
        audit.detector().set_block_hook(Box::new(move |addr, block| {
            let Some(sessions) = weak.upgrade() else {
                return;
            };
            let until = crate::audit::rfc3339_at(block.until);
            let reason = registry::KillReason {
                message: format!(
                    "terminating connection: address {addr} is blocked by {} until {until}",
                    block_source(&block.rule_id)
                ),
                by: block_source(&block.rule_id),
            };
            let n = sessions.kill_addr(addr, &reason);
            if n > 0 {
                tracing::warn!(client = %addr, sessions = n, by = %reason.by, "block ends running sessions");
            }
        }));
        Shared {
            sessions,
            admission: admission::Admission::new(limits, metrics.upstream_auth_connections.clone()),
            config: RwLock::new(Arc::new(config)),
            audit,
            metrics,
            cancels: cancel::CancelRegistry::default(),
            shadows: crate::audit::shadow::Registry::default(),
            session_prefix: rand::random(),
            session_seq: AtomicU64::new(1),
        }
    }

    /// The current config; a session keeps the snapshot it started with.
    pub fn config(&self) -> Arc<Config> {
        match self.config.read() {
            Ok(c) => c.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Replaces the config atomically (already validated).
    pub fn set_config(&self, config: Config) {
        let new = Arc::new(config);
        match self.config.write() {
            Ok(mut c) => *c = new,
            Err(poisoned) => *poisoned.into_inner() = new,
        }
    }

    /// A new session id, unique per client connection and across restarts.
    pub fn next_session_id(&self) -> String {
        let n = self.session_seq.fetch_add(1, Ordering::Relaxed);
        format!("{:08x}-{n}", self.session_prefix)
    }
}
