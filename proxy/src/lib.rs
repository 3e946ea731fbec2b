//! pgvigil: a PostgreSQL wire-protocol audit proxy.
//!
//! # Layout
//! - [`config`]: the TOML configuration, its validation, and reload snapshots.
//! - [`wire`]: PostgreSQL message framing (hostile-input code) and the messages the proxy
//!   writes itself.
//! - [`tls`]: rustls configuration for both legs and the stream type that is either plain
//!   or TLS.
//! - [`frontend`]: the client-facing side: listener, startup negotiation, client
//!   authentication, cancel requests, the session relay.
//! - [`backend`]: the server-facing side: connecting upstream, upstream TLS and
//!   authentication (SCRAM, md5, cleartext), pgvigil's own catalog check at login.
//! - [`audit`]: audit events and the bounded, durable writer; what a session's noise
//!   verdicts may trust (`audit::shadow`).
//! - [`detect`]: detection rules over the audit events, findings, blocks.
//! - [`sinks`]: where findings go (file, PostgreSQL, webhooks) through the durable outbox.
//! - [`sql`]: statement classification (pgAudit classes, objects, noise), redaction and the
//!   classification cache; pure functions over hostile text.
//! - [`metrics`]: Prometheus metric names and the exporter.
//! - [`certs`]: development certificates (`pgvigil certs`).
//! - [`demo`]: throwaway PostgreSQL clusters (`pgvigil demo`, the test harness, the load test).

pub mod audit;
pub mod backend;
pub mod certs;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod detect;
pub mod frontend;
pub mod metrics;
pub mod sinks;
pub mod sql;
pub mod tls;
pub mod wire;
