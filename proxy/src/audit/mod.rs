//! Audit events and their writer.
//!
//! Sessions build events and hand them to [`AuditSink`]; a writer thread serialises them as
//! JSON lines, flushing each batch and fsyncing at least once a second and at shutdown. The
//! queue is bounded and a full queue makes the session wait: no event is silently lost.

mod event;
mod messages;
mod pgaudit;
mod roles;
mod statement;
mod tracker;
mod writer;

pub use event::{now_rfc3339, AuditEvent, AuthFailure, SessionEnd, SessionInfo};
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
