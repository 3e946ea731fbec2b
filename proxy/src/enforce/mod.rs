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
use crate::config::OnWriteError;
use crate::detect::matcher::{class_matches, session_matches};
use crate::detect::rule::{Action, Rule};
use crate::snapshot::Config;
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
/// `denied_by` of FunctionCall messages refused because deny rules name functions.
pub const BY_FUNCTION_CALL: &str = "pgvigil:function_call";
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

    /// Whether this session is read-only.
    pub fn read_only(&self) -> bool {
        self.read_only
    }

    /// The refusal of a FunctionCall message, if any. Such a message names its function
    /// by number, which no rule can check: it is refused in read-only sessions (it could
    /// be `set_config`) and where a deny rule names functions (it could be one of them).
    pub fn function_call(&self) -> Option<Denial> {
        if self.read_only {
            return Some(readonly::function_call());
        }
        let names_functions = self.deny.iter().any(|(r, tables)| {
            tables
                .iter()
                .filter_map(|&i| r.matches.all().get(i))
                .any(|m| !m.function.is_empty())
        });
        names_functions.then(|| {
            Denial::builtin(
                BY_FUNCTION_CALL,
                DENIED,
                "FunctionCall messages are not allowed while deny rules name functions",
            )
        })
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
    /// (`application_name` may have changed since login). What a statement runs inside
    /// it is checked too: the statement a PREPARE prepares, and the statement an EXPLAIN
    /// explains (EXPLAIN ANALYZE runs it), classified with `classify`.
    pub fn decide(
        &self,
        st: &Statement,
        session: &SessionInfo,
        classify: &dyn Fn(&str) -> Statement,
    ) -> Option<Denial> {
        if let Some(d) = self.decide_one(st, session) {
            return Some(d);
        }
        if let Some(q) = st.named.as_ref().and_then(|n| n.query.as_ref()) {
            if let Some(d) = self.decide_one(q, session) {
                return Some(d);
            }
        }
        if st.class.command == "EXPLAIN" && !self.deny.is_empty() {
            match explained(&st.text) {
                Some(inner) => return self.decide(&classify(inner), session, classify),
                // An EXPLAIN of a write whose statement cannot be found is not let through
                // unchecked.
                None if st.class.class.as_str() != "READ" => return Some(too_long()),
                None => {}
            }
        }
        None
    }

    fn decide_one(&self, st: &Statement, session: &SessionInfo) -> Option<Denial> {
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
        classify: &dyn Fn(&str) -> Statement,
    ) -> Option<Denial> {
        if let Some(d) = self.before_any() {
            return Some(d);
        }
        if truncated && self.classifies() {
            return Some(too_long());
        }
        statements
            .iter()
            .find_map(|st| self.decide(st, session, classify))
    }
}

/// Enforcement checks what it owns in the configuration (`[access]`); called while the
/// snapshot is assembled, that is by `pgvigil check`, startup and every reload.
pub fn check(c: &mut crate::config::Checker<'_>, file: &crate::config::ConfigFile) {
    for (key, message) in access::check(&file.access) {
        let path: Vec<&str> = key.split('.').collect();
        c.issue(&path, message);
    }
}

/// The statement an EXPLAIN explains: the text after `EXPLAIN`, its parenthesised options
/// or its ANALYZE/VERBOSE words, and comments. `None` when the text does not read so.
pub fn explained(text: &str) -> Option<&str> {
    let mut rest = skip_space(text)?;
    rest = strip_word(rest, "explain")?;
    loop {
        rest = skip_space(rest)?;
        if let Some(r) = rest.strip_prefix('(') {
            let close = r.find(')')?;
            rest = &r[close + 1..];
            continue;
        }
        match ["analyze", "analyse", "verbose"]
            .iter()
            .find_map(|w| strip_word(rest, w))
        {
            Some(r) => rest = r,
            None => return (!rest.is_empty()).then_some(rest),
        }
    }
}

/// `s` after leading whitespace and comments (`None` for an unterminated comment).
fn skip_space(mut s: &str) -> Option<&str> {
    loop {
        s = s.trim_start();
        if let Some(r) = s.strip_prefix("--") {
            s = r.find('\n').map_or("", |i| &r[i..]);
        } else if let Some(r) = s.strip_prefix("/*") {
            // Nested comments, as PostgreSQL reads them.
            let (mut depth, mut i) = (1usize, 0usize);
            let b = r.as_bytes();
            while depth > 0 {
                match (b.get(i), b.get(i + 1)) {
                    (Some(b'/'), Some(b'*')) => (depth, i) = (depth + 1, i + 2),
                    (Some(b'*'), Some(b'/')) => (depth, i) = (depth - 1, i + 2),
                    (Some(_), _) => i += 1,
                    (None, _) => return None,
                }
            }
            s = r.get(i..)?;
        } else {
            return Some(s);
        }
    }
}

/// `s` after the keyword `word` (case-insensitive, followed by a non-identifier byte).
fn strip_word<'a>(s: &'a str, word: &str) -> Option<&'a str> {
    let head = s.get(..word.len())?;
    let next = s.as_bytes().get(word.len()).copied();
    (head.eq_ignore_ascii_case(word)
        && !next.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'$'))
    .then(|| &s[word.len()..])
}

/// The refusal of a statement longer than what pgvigil captures, while refusals are on.
pub fn too_long() -> Denial {
    Denial::builtin(
        BY_TOO_LONG,
        DENIED,
        "statement too long to be checked: it is refused while deny rules or read-only policies apply",
    )
}

#[cfg(test)]
mod tests {
    use super::explained;

    #[test]
    fn finds_the_explained_statement() {
        assert_eq!(
            explained("EXPLAIN ANALYZE DELETE FROM t"),
            Some("DELETE FROM t")
        );
        assert_eq!(
            explained("explain /* a /* b */ c */ (analyze, costs off) verbose\n delete from t"),
            Some("delete from t")
        );
        assert_eq!(
            explained("EXPLAIN -- x\nANALYSE UPDATE t SET a = 1"),
            Some("UPDATE t SET a = 1")
        );
        assert_eq!(explained("EXPLAIN analyzed"), Some("analyzed"));
        assert_eq!(explained("EXPLAIN /* open"), None);
        assert_eq!(explained("SELECT 1"), None);
    }
}
