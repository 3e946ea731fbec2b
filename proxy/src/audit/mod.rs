//! Audit events and their writer.
//!
//! - `event`, `statement`: the event types and their JSON shape; `pgaudit`: the same events
//!   in pgAudit's line format.
//! - `tracker`: one session's protocol conversation turned into statement events, each with
//!   the server's verdict; `messages`: bounds-checked readers for the frames it looks into;
//!   `roles`: the effective role; `registry`: the session's prepared statements, portals
//!   and cursors by name; `shadow`: whether an unqualified name in a noise verdict can be
//!   trusted in this session and database.
//! - `writer`: sessions hand events to [`AuditSink`]; a writer thread serialises them and
//!   commits them in groups, releasing sessions as `[audit] durability` asks. The queue is
//!   bounded; a full queue makes the session wait (or, with `on_backpressure = "drop"`,
//!   drops statement events and counts them): no event is silently lost. `logfile`: the
//!   file itself, never left with a torn line, reopened for logrotate.

mod event;
mod fate;
mod json;
mod logfile;
mod messages;
mod pgaudit;
mod registry;
mod roles;
pub mod shadow;
mod statement;
mod tracker;
mod writer;

pub use event::{
    now_rfc3339, rfc3339_at, AdminAction, AuditEvent, AuthFailure, CancelEvent, ConnectionRefused,
    SessionEnd, SessionInfo,
};
pub use logfile::Rotation;
pub use pgaudit::write as write_pgaudit;
pub use statement::{Outcome, StatementEvent, Uncaptured};
pub use tracker::{ConsoleView, Tracker};
pub use writer::{AuditSink, AuditWriter, Durable, WriterOptions};

/// Errors of the audit layer.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    #[error("cannot open audit log {path}: {source}")]
    Open {
        path: String,
        source: std::io::Error,
    },
    #[error("the audit writer has stopped")]
    Closed,
}
