//! A finding: what a rule concluded, as delivered to every sink and kept in the outbox.

use serde::{Deserialize, Serialize};

/// How bad a finding is: a described value, defined with the configuration (alerts
/// filter on it) and re-exported here.
pub use crate::config::Severity;

/// One finding. Serialised as one JSON object; the outbox stores exactly this, so a
/// retried delivery sends the same `id` and `dedup_key`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// Unique per finding (random, 32 hex digits).
    pub id: String,
    /// When the rule fired (RFC 3339, UTC).
    pub ts: String,
    pub rule_id: String,
    pub description: String,
    pub category: String,
    pub severity: Severity,
    pub mitre_tactic: String,
    pub mitre_technique: String,
    pub database: Option<String>,
    pub user: Option<String>,
    pub client_addr: Option<String>,
    pub application_name: Option<String>,
    pub session_id: Option<String>,
    /// The redacted statement that made the rule fire (statement and error rules).
    pub statement: Option<String>,
    /// Schema and table of the statement's first relation, when it names one.
    pub schema_name: Option<String>,
    pub table_name: Option<String>,
    /// Matching events in the window when the rule fired.
    pub count: u64,
    /// The rule's window, e.g. `10m`.
    pub window: String,
    /// First and last matching event in the window (RFC 3339).
    pub first_seen: String,
    pub last_seen: String,
    /// The same for one rule and one group within one episode: repeats and retries carry
    /// it, so incident tools open one incident.
    pub dedup_key: String,
    /// `alert` or `block`.
    pub action: String,
    /// Matching events the cooldown kept quiet since the previous finding of this group.
    #[serde(default)]
    pub suppressed: u64,
    /// Until when the client address is refused (`action = "block"` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub blocked_until: Option<String>,
}

impl Finding {
    /// A one-line human summary, for chat tools and incident titles.
    pub fn summary(&self) -> String {
        let mut s = format!(
            "[{}] {}: {}",
            self.severity.as_str(),
            self.rule_id,
            self.description
        );
        let who = [
            self.user.as_deref().map(|u| format!("user {u}")),
            self.database.as_deref().map(|d| format!("database {d}")),
            self.client_addr.as_deref().map(|a| format!("from {a}")),
        ];
        let who: Vec<String> = who.into_iter().flatten().collect();
        if !who.is_empty() {
            s.push_str(" (");
            s.push_str(&who.join(", "));
            s.push(')');
        }
        if self.count > 1 {
            s.push_str(&format!(", {} in {}", self.count, self.window));
        }
        if let Some(until) = &self.blocked_until {
            s.push_str(&format!(", blocked until {until}"));
        }
        s
    }
}

/// A complete example finding, for the sinks' tests (unit and integration).
#[doc(hidden)]
pub mod test_support {
    use super::{Finding, Severity};

    /// A complete finding for sink tests.
    pub fn sample() -> Finding {
        Finding {
            id: "0123456789abcdef0123456789abcdef".into(),
            ts: "2026-11-23T10:00:00.000000Z".into(),
            rule_id: "failed-logins".into(),
            description: "More than 5 failed logins from one client address in 10 minutes".into(),
            category: "authentication".into(),
            severity: Severity::High,
            mitre_tactic: "TA0006".into(),
            mitre_technique: "T1110".into(),
            database: Some("app".into()),
            user: Some("alice".into()),
            client_addr: Some("203.0.113.7".into()),
            application_name: Some("psql".into()),
            session_id: Some("0badcafe-12".into()),
            statement: None,
            schema_name: None,
            table_name: None,
            count: 6,
            window: "10m".into(),
            first_seen: "2026-11-23T09:58:00.000000Z".into(),
            last_seen: "2026-11-23T10:00:00.000000Z".into(),
            dedup_key: "failed-logins:5d41402abc4b2a76b9719d911017c592".into(),
            action: "block".into(),
            suppressed: 0,
            blocked_until: Some("2026-11-23T10:15:00.000000Z".into()),
        }
    }
}
