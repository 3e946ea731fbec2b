//! Audit events and their writer.
//!
//! - `event`, `statement`: the event types and their JSON shape; `pgaudit`: the same events
//!   in pgAudit's line format.
//! - `tracker`: one session's protocol conversation turned into statement events, each with
//!   the server's verdict; `messages`: bounds-checked readers for the frames it looks into;
//!   `roles`: the effective role.
//! - `writer`: sessions hand events to [`AuditSink`]; a writer thread serialises them,
//!   flushing each batch and fsyncing at least once a second and at shutdown. The queue is
//!   bounded; a full queue makes the session wait (or, with `on_backpressure = "drop"`,
//!   drops statement events and counts them): no event is silently lost.

mod event;
mod messages;
mod pgaudit;
mod roles;
mod statement;
mod tracker;
mod writer;

pub use event::{now_rfc3339, rfc3339_at, AuditEvent, AuthFailure, SessionEnd, SessionInfo};
pub use pgaudit::write as write_pgaudit;
pub use statement::{Outcome, StatementEvent};
pub use tracker::Tracker;
pub use writer::{AuditSink, AuditWriter};

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
