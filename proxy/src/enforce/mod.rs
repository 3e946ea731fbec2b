//! Enforcement: deciding, before a statement is forwarded, whether it may reach the server.
//!
//! Detection (`detect`) looks at what happened; enforcement decides what may happen. Three
//! things refuse statements, in this order:
//! - `[audit] on_write_error = "refuse"` while the audit log cannot be written (58030);
//! - a read-only access policy (`[access]`): PostgreSQL itself refuses writes (the server
//!   session starts with `default_transaction_read_only = on`); pgvigil refuses what would
//!   undo that (42501);
//! - deny rules (`action = "deny"`), on what a statement is (42501).
//!
//! A refused statement never reaches the server: the relay ([`relay`]) hands the server a
//! stand-in that fails with the chosen SQLSTATE and message ([`substitute`]), so the
//! transaction state stays the server's (a transaction block is aborted as by any error,
//! an extended-protocol batch skips to Sync).
//!
//! - [`access`]: login-time policy decisions (databases, networks, read-only).
//! - [`readonly`]: what a read-only session may not run.

pub mod access;
pub mod readonly;
pub mod relay;
pub mod substitute;

use crate::audit::SessionInfo;
use crate::config::{Config, OnWriteError};
use crate::detect::matcher::{class_matches, session_matches};
use crate::detect::rule::{Action, Rule};
use crate::sql::Statement;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// SQLSTATE of a statement refused by a rule or a policy (insufficient_privilege).
pub const DENIED: &str = "42501";
/// SQLSTATE of a statement refused because the audit log cannot be written (io_error).
pub const UNAUDITABLE: &str = "58030";
/// `denied_by` of statements refused while the audit log cannot be written.
pub const BY_AUDIT: &str = "pgvigil:audit_log_unwritable";
/// `denied_by` of statements a read-only policy refuses.
pub const BY_READ_ONLY: &str = "pgvigil:read_only";
/// `denied_by` of statements too long to be classified while refusals are active.
pub const BY_TOO_LONG: &str = "pgvigil:too_long_to_check";

/// Why a statement is refused: what the client is told and what the audit log says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    /// A rule id, or `pgvigil:<reason>` for a built-in refusal.
    pub by: Arc<str>,
    pub sqlstate: &'static str,
    /// The client's message (also the audit event's `error`).
    pub message: String,
}

impl Denial {
    fn rule(rule: &Rule) -> Denial {
        Denial {
            by: Arc::from(rule.id.as_str()),
            sqlstate: DENIED,
            message: format!(
                "pgvigil: denied by rule \"{}\": {}",
                rule.id, rule.description
            ),
        }
    }

    fn builtin(by: &'static str, sqlstate: &'static str, message: &str) -> Denial {
        Denial {
            by: Arc::from(by),
            sqlstate,
            message: format!("pgvigil: {message}"),
        }
    }

    /// The refusal while the audit log cannot be written.
    pub fn audit_unwritable() -> Denial {
        Denial::builtin(
            BY_AUDIT,
            UNAUDITABLE,
            "audit log cannot be written: statements are refused until it can",
        )
    }
}

/// Whether the audit log can be written: set by the writer after each write, read by
/// sessions before each statement when `on_write_error = "refuse"`.
#[derive(Debug)]
pub struct WriteHealth(AtomicBool);

impl Default for WriteHealth {
    fn default() -> Self {
        WriteHealth(AtomicBool::new(true))
    }
}

impl WriteHealth {
    pub fn ok(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
    pub fn set(&self, ok: bool) {
        self.0.store(ok, Ordering::Relaxed)
    }
}

/// One session's refusals, resolved at login: the deny rules whose user, database and
/// address conditions hold for this session (so each statement is checked against its
/// class only), whether it is read-only, and the audit log's health.
pub struct SessionPolicy {
    /// Deny rules with the `match` tables whose session conditions hold (by index).
    deny: Vec<(Arc<Rule>, Vec<usize>)>,
    read_only: bool,
    health: Option<Arc<WriteHealth>>,
}

impl SessionPolicy {
    /// The policy for `session` under `config`. `health` is the audit writer's.
    pub fn new(config: &Config, session: &SessionInfo, health: Arc<WriteHealth>) -> Self {
        let service = session.service;
        let deny = config
            .rules
            .iter()
            .filter(|r| r.action == Action::Deny)
            .filter_map(|r| {
                // `application_name` can change mid-session: it is checked per statement.
                let tables: Vec<usize> = (r.matches.all().iter().enumerate())
                    .filter(|(_, m)| {
                        let mut m = (*m).clone();
                        m.application_name.clear();
                        session_matches(&m, session, service)
                    })
                    .map(|(i, _)| i)
                    .collect();
                (!tables.is_empty()).then(|| (r.clone(), tables))
            })
            .collect();
        let read_only = session.user.as_deref().is_some_and(|u| {
            access::policy_for(&config.file.access, u).is_some_and(|p| p.read_only)
        });
        let health = (config.file.audit.on_write_error == OnWriteError::Refuse).then_some(health);
        SessionPolicy {
            deny,
            read_only,
            health,
        }
    }

    /// Whether anything may be refused in this session (otherwise the relay forwards
    /// bytes as they come).
    pub fn active(&self) -> bool {
        !self.deny.is_empty() || self.read_only || self.health.is_some()
    }

    /// Whether statements must be classified to be let through: then one too long to be
    /// classified whole is refused.
    pub fn classifies(&self) -> bool {
        !self.deny.is_empty() || self.read_only
    }

    /// Whether this session is read-only (refuses FunctionCall messages, which name a
    /// function by number and could undo it).
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The refusal for a message that runs something, before its statements are looked at
    /// (the audit log cannot be written).
    pub fn before_any(&self) -> Option<Denial> {
        match &self.health {
            Some(h) if !h.ok() => Some(Denial::audit_unwritable()),
            _ => None,
        }
    }

    /// The refusal of one statement, if any. `session` is the session as it is now
    /// (`application_name` may have changed since login).
    pub fn decide(&self, st: &Statement, session: &SessionInfo) -> Option<Denial> {
        if self.read_only {
            if let Some(d) = readonly::check(st) {
                return Some(d);
            }
        }
        for (rule, tables) in &self.deny {
            let all = rule.matches.all();
            let hit = tables.iter().filter_map(|&i| all.get(i)).any(|m| {
                crate::detect::rule::any_glob_pub(
                    &m.application_name,
                    session.application_name.as_deref(),
                ) && class_matches(m, &st.class, st.class.noise, &[])
            });
            if hit {
                return Some(Denial::rule(rule));
            }
        }
        None
    }

    /// The refusal of a simple query (one message, one implicit transaction: one refused
    /// statement refuses all). `truncated`: the capture cut the text.
    pub fn decide_all(
        &self,
        statements: &[Statement],
        truncated: bool,
        session: &SessionInfo,
    ) -> Option<Denial> {
        if let Some(d) = self.before_any() {
            return Some(d);
        }
        if truncated && self.classifies() {
            return Some(too_long());
        }
        statements.iter().find_map(|st| self.decide(st, session))
    }
}

/// Enforcement checks what it owns in the configuration (`[access]`); called by config
/// validation, that is by `pgvigil check`, startup and every reload.
pub fn check(c: &mut crate::config::Checker<'_>, file: &crate::config::ConfigFile) {
    for (key, message) in access::check(&file.access) {
        let path: Vec<&str> = key.split('.').collect();
        c.issue(&path, message);
    }
}

/// The refusal of a statement longer than what pgvigil captures, while refusals are on.
pub fn too_long() -> Denial {
    Denial::builtin(
        BY_TOO_LONG,
        DENIED,
        "statement too long to be checked: it is refused while deny rules or read-only policies apply",
    )
}
