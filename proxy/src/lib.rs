//! pgvigil: a PostgreSQL wire-protocol audit proxy.
//!
//! # Layout
//! - [`config`]: the TOML configuration, described: its shapes, defaults, line numbers and
//!   the checks of values config owns. It imports only `matching` and `sql`.
//! - [`snapshot`]: the validated configuration sessions use (one per load or reload):
//!   config's checks, then each owner's (`detect`, `sinks`, `enforce`, `auth`, `tls`,
//!   `backend`), then everything built.
//! - [`wire`]: PostgreSQL message framing (hostile-input code) and the messages the proxy
//!   writes itself.
//! - [`tls`]: rustls configuration for both legs and the stream type that is either plain
//!   or TLS.
//! - [`frontend`]: the client-facing side: listener, startup negotiation, client
//!   authentication, cancel requests, the session relay.
//! - [`backend`]: the server-facing side: connecting upstream, upstream TLS and
//!   authentication (SCRAM, md5, cleartext), pgvigil's own catalog check at login.
//! - [`auth`]: authentication pgvigil performs itself: SCRAM on both legs (verifiers,
//!   ClientKey recovery), without ever holding the password in `scram` mode.
//! - [`audit`]: audit events and the bounded, durable writer; what a session's noise
//!   verdicts may trust (`audit::shadow`).
//! - [`detect`]: detection rules over the audit events, findings, blocks.
//! - [`enforce`]: refusals decided before a statement is forwarded (deny rules, access
//!   policies, an audit log that cannot be written) and the relay that replaces refused
//!   messages with stand-ins the server fails.
//! - [`matching`]: globs and CIDR ranges, shared by config, detect and enforce.
//! - [`sinks`]: where findings go (file, PostgreSQL, webhooks) through the durable outbox.
//! - [`sql`]: statement classification (pgAudit classes, objects, noise), redaction and the
//!   classification cache; pure functions over hostile text.
//! - [`metrics`]: Prometheus metric names and the exporter.
//! - [`certs`]: development certificates (`pgvigil certs`).
//! - [`demo`]: throwaway PostgreSQL clusters (`pgvigil demo`, the test harness, the load test).

pub mod admin;
pub mod audit;
pub mod auth;
pub mod backend;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod detect;
pub mod enforce;
pub mod frontend;
pub mod matching;
pub mod metrics;
pub mod sinks;
pub mod snapshot;
pub mod sql;
pub mod tail;
pub mod tls;
pub mod wire;
