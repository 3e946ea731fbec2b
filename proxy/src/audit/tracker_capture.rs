//! The tracker's edges of what it can see: Bind parameters as they may be logged (secrets
//! redacted), the one summary event for the part of a huge simple query past the capture,
//! and the session's activity as the admin console shows it.

use super::Tracker;
use crate::audit::fate::{beyond_capture, Beyond, Extra, Fate, Pending};
use crate::audit::statement::{Outcome, Uncaptured};
use crate::sql::{Classification, Redact};
use std::sync::Arc;
use std::time::Instant;

/// A session's activity as the admin console reports it.
#[derive(Debug, Clone, Default)]
pub struct ConsoleView {
    /// Statements finished (answered, failed or skipped).
    pub statements: u64,
    /// The statement the server is working on, when the proxy knows it, and since when.
    pub current: Option<(Arc<Classification>, Instant)>,
    /// The last ReadyForQuery status (`I`, `T`, `E`), 0 before the first.
    pub status: u8,
    /// Whether a request is waiting for the server's answer.
    pub busy: bool,
    /// The latest `application_name` the server reported.
    pub application_name: Option<String>,
    /// Statements by class, in [`crate::sql::Class`] order.
    pub by_class: [u64; 7],
    /// Statements the server refused.
    pub errors: u64,
    /// Of those, refused for lack of privilege (SQLSTATE 42501).
    pub denied: u64,
}

impl ConsoleView {
    /// PostgreSQL's `pg_stat_activity.state` words.
    pub fn state(&self) -> &'static str {
        if self.busy {
            return "active";
        }
        match self.status {
            b'T' => "idle in transaction",
            b'E' => "idle in transaction (aborted)",
            _ => "idle",
        }
    }
}

impl Tracker {
    /// Bind parameters as they may be logged: with `redact = "literals"` none is shown;
    /// otherwise those the statement binds where a password goes become `***` (values
    /// holding `password=...` or a URI password were redacted as they were read).
    pub(super) fn redact_params(&self, statement: &str, mut params: Vec<String>) -> Vec<String> {
        if self.config.file.audit.redact == Redact::Literals {
            params.iter_mut().for_each(|p| *p = "?".to_string());
            return params;
        }
        if let Some(st) = self.registry.statement(statement) {
            for n in crate::sql::lex::secret_params(&st.text, self.scs) {
                let i = usize::try_from(n).unwrap_or(usize::MAX).wrapping_sub(1);
                if let Some(p) = params.get_mut(i) {
                    *p = "***".to_string();
                }
            }
        }
        params
    }

    /// The summary of the part past the capture, when the reply at hand belongs to it: the
    /// query at the front was cut and all its captured statements are settled.
    pub(super) fn beyond_reply(&mut self) -> Option<&mut Beyond> {
        match self.queue.front_mut() {
            Some(Pending::Query {
                pieces,
                done,
                truncated: true,
                beyond,
                ..
            }) if *done >= pieces.len() => {
                beyond.replies = beyond.replies.saturating_add(1);
                beyond.started.get_or_insert_with(Instant::now);
                Some(beyond)
            }
            _ => None,
        }
    }

    /// Logs the summary of a cut query's uncaptured part, once, when the query ends.
    pub(super) fn finish_beyond(&mut self, id: u64, sub: usize, b: &Beyond, abandoned: bool) {
        let (outcome, sqlstate, error) = match (&b.error, abandoned) {
            (Some((code, msg)), _) => (Outcome::Error, code.clone(), Some(msg.clone())),
            (None, true) => (
                Outcome::Error,
                None,
                Some("no reply: the session ended first".to_string()),
            ),
            (None, false) if b.never_ran => (Outcome::Skipped, None, None),
            (None, false) => (Outcome::Ok, None, None),
        };
        // Nothing past the capture got a reply of its own: those bytes were the rest of
        // the last captured statement, whose event is written already.
        if outcome == Outcome::Ok && b.replies == 0 {
            return;
        }
        let fate = Fate {
            outcome,
            sqlstate,
            error,
            rows: (b.replies > 0).then_some(b.rows),
            started: b.started,
            batch: None,
            denied_by: None,
        };
        let extra = Extra {
            uncaptured: Some(Uncaptured {
                bytes: b.bytes,
                statements_run: b.replies,
                statements_estimate: b.estimate().max(b.replies),
            }),
            ..Extra::default()
        };
        self.emit(id, sub, beyond_capture(b), extra, "simple", None, fate);
    }
}
