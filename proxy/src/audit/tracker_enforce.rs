//! The tracker's side of enforcement: the session's policy, which client frames are held
//! whole before they are forwarded, and refused messages audited and replaced by their
//! stand-ins (`crate::enforce`).

use super::{Tracker, ERROR_CAPTURE, NAMES_CAPTURE};
use crate::audit::fate::{Fate, Pending};
use crate::audit::registry::Params;
use crate::enforce::{Denial, SessionPolicy};
use crate::sql::Statement;
use std::sync::Arc;

impl Tracker {
    /// What this session may not run; a policy that refuses nothing is not kept.
    pub fn set_policy(&mut self, policy: SessionPolicy) {
        self.policy = policy.active().then_some(policy);
    }

    /// Whether some message of this session may be refused (the relay then holds the
    /// frames that may be replaced).
    pub fn enforcing(&self) -> bool {
        self.policy.is_some()
    }

    /// How many body bytes of a client frame must be in hand before any of it is
    /// forwarded: enough to decide whether it is refused.
    pub fn client_hold(&self, tag: u8, len: usize) -> usize {
        if self.policy.is_none() {
            return 0;
        }
        match tag {
            b'Q' | b'P' => self.capture.min(len),
            b'E' => NAMES_CAPTURE.min(len),
            b'F' => 4.min(len),
            _ => 0,
        }
    }

    /// How many body bytes of a server frame must be in hand: a stand-in's error, to be
    /// replaced whole.
    pub fn server_hold(&self, tag: u8, len: usize) -> usize {
        if tag == b'E' && self.denials_pending > 0 && len <= ERROR_CAPTURE {
            len
        } else {
            0
        }
    }

    /// The stand-in for the client frame just scanned, if it was refused.
    pub fn take_substitute(&mut self) -> Option<Vec<u8>> {
        self.substitute.take()
    }

    /// The replacement for the server frame just scanned.
    pub fn take_server_substitute(&mut self) -> Option<Vec<u8>> {
        self.server_substitute.take()
    }

    /// A refusal that applies before looking at what the message runs.
    pub(super) fn refused_now(&self) -> Option<Denial> {
        self.policy.as_ref().and_then(SessionPolicy::before_any)
    }

    /// Audits a refused simple Query statement by statement and puts its stand-in in place.
    pub(super) fn deny_query(&mut self, pieces: Vec<Statement>, d: Denial) {
        let id = self.take_id();
        for (i, st) in pieces.into_iter().enumerate() {
            self.finish(id, i + 1, st, "simple", None, Fate::denied(&d));
        }
        self.note_denied(&d);
        self.substitute = Some(crate::enforce::substitute::query(&d));
        self.push(Pending::Denied {
            simple: true,
            denial: Arc::new(d),
        });
    }

    /// Audits a refused Parse or Execute and puts its stand-in in place.
    pub(super) fn deny_extended(&mut self, st: Statement, params: Params, d: Denial) {
        let id = self.take_id();
        self.finish(id, 1, st, "extended", params, Fate::denied(&d));
        self.note_denied(&d);
        self.substitute = Some(crate::enforce::substitute::execute());
        self.denials_pending += 1;
        self.push(Pending::Denied {
            simple: false,
            denial: Arc::new(d),
        });
    }

    pub(super) fn note_denied(&self, d: &Denial) {
        metrics::counter!("pgvigil_statements_denied_total", "denied_by" => d.by.to_string())
            .increment(1);
        tracing::info!(denied_by = %d.by, sqlstate = d.sqlstate, "statement refused");
    }

    /// The refusal of a Query's statements or a Parse's, if any.
    pub(super) fn refusal(&self, statements: &[Statement], truncated: bool) -> Option<Denial> {
        let p = self.policy.as_ref()?;
        let classify = |sql: &str| {
            self.config
                .classifier
                .classify_statement_with(sql, self.scs)
        };
        p.decide_all(statements, truncated, &self.session, &classify)
    }

    /// Refuses a FunctionCall message if the policy says so: audited, replaced by a Query
    /// stand-in (both earn ErrorResponse and ReadyForQuery). True when refused.
    pub(super) fn deny_function_call(&mut self, body: &[u8]) -> bool {
        let refusal = self
            .refused_now()
            .or_else(|| self.policy.as_ref().and_then(SessionPolicy::function_call));
        let Some(d) = refusal else {
            return false;
        };
        let id = self.take_id();
        self.finish_function(id, super::messages::function_call(body), Fate::denied(&d));
        self.note_denied(&d);
        self.substitute = Some(crate::enforce::substitute::query(&d));
        self.push(Pending::Denied {
            simple: true,
            denial: Arc::new(d),
        });
        true
    }
}
