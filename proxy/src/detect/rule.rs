//! Rule files: their TOML shape, validation with line numbers, and the compiled form the
//! detector evaluates.
//!
//! A rule file is one rule. `[match]` (or several `[[match]]` tables, any of which may
//! match) lists conditions that must all hold; lists inside a condition are alternatives.

use super::finding::Severity;
use crate::matching::glob_match;
use serde::Deserialize;
use std::time::Duration;

/// The event a rule listens to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum On {
    /// A login the server (or the proxy) refused. Refusals of blocked addresses are not
    /// counted, so a block does not extend itself.
    AuthFailure,
    /// A statement the server answered (ok or error; skipped statements never ran and are
    /// not seen).
    Statement,
    /// A statement the server refused with an error.
    Error,
    /// An authenticated session began.
    SessionStart,
}

impl On {
    pub fn as_str(self) -> &'static str {
        match self {
            On::AuthFailure => "auth_failure",
            On::Statement => "statement",
            On::Error => "error",
            On::SessionStart => "session_start",
        }
    }
}

/// Event fields a rule can count per group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupBy {
    ClientAddr,
    User,
    Database,
}

/// What happens when a rule fires.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// A finding, delivered to the sinks.
    #[default]
    Alert,
    /// A finding, and new connections from the client address are refused for
    /// `block_for` (requires `group_by` to include `client_addr`).
    Block,
    /// The matching statement is refused before the server sees it (`enforce`), and a
    /// finding is delivered. Only for `on = "statement"`, on what a statement is.
    Deny,
}

/// `user_kind` as the audit events spell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserKind {
    Human,
    Service,
}

/// `outcome` of a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutcomeMatch {
    Ok,
    Error,
}

/// `copy_direction`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyMatch {
    To,
    From,
}

/// One `[match]` table: every condition given must hold.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// pgAudit classes: READ, WRITE, FUNCTION, ROLE, DDL, MISC, MISC_SET.
    #[serde(default)]
    pub class: Vec<String>,
    /// Command tags as the audit log prints them, globs allowed (`ALTER *`).
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub user_kind: Option<UserKind>,
    #[serde(default)]
    pub noise: Option<bool>,
    /// Globs over the authenticated user.
    #[serde(default)]
    pub user: Vec<String>,
    /// Globs over the database name.
    #[serde(default)]
    pub database: Vec<String>,
    /// Globs over `application_name`.
    #[serde(default)]
    pub application_name: Vec<String>,
    /// Client addresses: CIDR ranges (`10.0.0.0/8`), addresses, or globs over the address
    /// as text (`10.1.*`).
    #[serde(default)]
    pub client_addr: Vec<String>,
    /// Globs over object names as the audit log prints them (`public.*`, `payroll`): any
    /// object matching is enough.
    #[serde(default)]
    pub object: Vec<String>,
    /// Globs over functions called (lowercase; a pattern without a dot also matches the
    /// unqualified name of a qualified call): any call matching is enough.
    #[serde(default)]
    pub function: Vec<String>,
    /// Globs over the SQLSTATE (`28*`).
    #[serde(default)]
    pub sqlstate: Vec<String>,
    /// `ok` or `error` (statement rules see both unless told).
    #[serde(default)]
    pub outcome: Vec<OutcomeMatch>,
    /// UPDATE/DELETE with (`true`) or without (`false`) a WHERE clause.
    #[serde(default)]
    pub has_where: Option<bool>,
    #[serde(default)]
    pub copy_direction: Option<CopyMatch>,
    /// COPY to or from a program on the server.
    #[serde(default)]
    pub copy_program: Option<bool>,
    /// CREATE/ALTER ROLE granting any of these attributes (lowercase: `superuser`,
    /// `createrole`, `bypassrls`, `createdb`, `replication`, `login`).
    #[serde(default)]
    pub role_attributes: Vec<String>,
    /// GRANT of a role (membership) to a role.
    #[serde(default)]
    pub grants_role: Option<bool>,
    /// More than this many rows returned or affected. Rows read in batches through one
    /// cursor (FETCH) or protocol portal (Execute with a row limit) add up: the batch
    /// whose running total (`rows_total`) first exceeds the limit matches, once per cursor
    /// or portal, as one SELECT of all those rows would.
    #[serde(default)]
    pub rows_over: Option<u64>,
}

/// `match` is one table or an array of tables (any may match).
#[derive(Debug, Clone)]
pub enum Matches {
    One(Box<Match>),
    Any(Vec<Match>),
}

/// By hand rather than `untagged`: an untagged enum replaces a typo's "unknown field
/// `comand`" with "did not match any variant", and rule authors need the former.
impl<'de> Deserialize<'de> for Matches {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Matches;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a [match] table or [[match]] tables")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, m: A) -> Result<Matches, A::Error> {
                Match::deserialize(serde::de::value::MapAccessDeserializer::new(m))
                    .map(|m| Matches::One(Box::new(m)))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(self, s: A) -> Result<Matches, A::Error> {
                Vec::<Match>::deserialize(serde::de::value::SeqAccessDeserializer::new(s))
                    .map(Matches::Any)
            }
        }
        d.deserialize_any(V)
    }
}

impl Default for Matches {
    fn default() -> Self {
        Matches::One(Box::default())
    }
}

impl Matches {
    pub fn all(&self) -> &[Match] {
        match self {
            Matches::One(m) => std::slice::from_ref(m),
            Matches::Any(v) => v,
        }
    }
}

/// A rule file as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub category: String,
    pub severity: Severity,
    #[serde(default)]
    pub mitre_tactic: String,
    #[serde(default)]
    pub mitre_technique: String,
    pub on: On,
    #[serde(default, rename = "match")]
    pub matches: Matches,
    /// Counted separately per combination of these fields; empty = one count for all.
    #[serde(default)]
    pub group_by: Vec<GroupBy>,
    /// Fires when more than `threshold` matching events fall within `window` (0: the
    /// first match fires).
    #[serde(default)]
    pub threshold: u32,
    #[serde(default = "default_window", with = "humantime_serde")]
    pub window: Duration,
    /// After firing, the same group stays quiet this long (default: the window).
    #[serde(default, with = "humantime_serde")]
    pub cooldown: Option<Duration>,
    #[serde(default)]
    pub action: Action,
    #[serde(default, with = "humantime_serde")]
    pub block_for: Option<Duration>,
    /// A rule file may ship switched off (`enabled = false`): `[rules] enable` turns it on.
    #[serde(default = "default_enabled")]
    pub enabled: bool,
}

fn default_enabled() -> bool {
    true
}

fn default_window() -> Duration {
    Duration::from_secs(600)
}

/// The longest window, cooldown or block.
pub const MAX_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

/// The most matching events a rule may wait for (timestamps kept per group).
pub const MAX_THRESHOLD: u32 = 10_000;

const CLASSES: [&str; 7] = [
    "READ", "WRITE", "FUNCTION", "ROLE", "DDL", "MISC", "MISC_SET",
];
const ROLE_ATTRIBUTES: [&str; 6] = crate::sql::facts::ATTRIBUTES;

/// One problem in a rule file: the key it is about and what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleProblem {
    pub key: &'static str,
    pub message: String,
}

impl Rule {
    /// The cooldown in effect.
    pub fn cooldown(&self) -> Duration {
        self.cooldown.unwrap_or(self.window)
    }

    /// Semantic checks after parsing; every problem found.
    pub fn check(&self) -> Vec<RuleProblem> {
        let mut out = Vec::new();
        let mut bad = |key: &'static str, message: String| out.push(RuleProblem { key, message });
        if self.id.is_empty()
            || !self
                .id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            bad(
                "id",
                format!(
                    "{:?} is not a valid rule id: use ASCII letters, digits, '-' and '_'",
                    self.id
                ),
            );
        }
        if self.threshold > MAX_THRESHOLD {
            bad(
                "threshold",
                format!(
                    "{} is more than the maximum, {MAX_THRESHOLD}",
                    self.threshold
                ),
            );
        }
        if self.threshold > 0 && self.window.is_zero() {
            bad("window", "must be longer than 0s when threshold > 0".into());
        }
        match (self.action, self.block_for) {
            (Action::Block, None) => bad(
                "block_for",
                "action = \"block\" needs block_for, e.g. \"15m\"".into(),
            ),
            (Action::Block, Some(d)) if d.is_zero() => {
                bad("block_for", "must be longer than 0s".into())
            }
            (Action::Alert | Action::Deny, Some(_)) => bad(
                "block_for",
                "only meaningful with action = \"block\"".into(),
            ),
            _ => {}
        }
        if self.action == Action::Block && !self.group_by.contains(&GroupBy::ClientAddr) {
            bad(
                "group_by",
                "action = \"block\" blocks a client address: group_by must include \"client_addr\""
                    .into(),
            );
        }
        for (i, g) in self.group_by.iter().enumerate() {
            if self.group_by[..i].contains(g) {
                bad("group_by", format!("{g:?} is listed twice"));
            }
        }
        if self.matches.all().is_empty() {
            bad(
                "match",
                "an empty list of [[match]] tables never matches; leave match out to match \
                 every event"
                    .into(),
            );
        }
        for (key, d) in [
            ("window", Some(self.window)),
            ("cooldown", self.cooldown),
            ("block_for", self.block_for),
        ] {
            if d.is_some_and(|d| d > MAX_DURATION) {
                bad(key, "must not be longer than 365d".into());
            }
        }
        for m in self.matches.all() {
            check_match(self.on, m, &mut bad);
            if self.action == Action::Deny {
                check_deny(m, &mut bad);
            }
        }
        if self.action == Action::Deny {
            if self.on != On::Statement {
                bad(
                    "on",
                    "action = \"deny\" refuses statements before they run: use on = \"statement\""
                        .into(),
                );
            }
            if self.threshold > 0 {
                bad(
                    "threshold",
                    "a deny rule refuses every matching statement: it has no threshold".into(),
                );
            }
            if !self.group_by.is_empty() {
                bad(
                    "group_by",
                    "a deny rule counts nothing: leave group_by out".into(),
                );
            }
        }
        out
    }
}

fn check_match(on: On, m: &Match, bad: &mut impl FnMut(&'static str, String)) {
    for c in &m.class {
        if !CLASSES.contains(&c.as_str()) {
            bad(
                "match.class",
                format!("unknown class {c:?}: use one of {}", CLASSES.join(", ")),
            );
        }
    }
    for a in &m.client_addr {
        if let Some(problem) = crate::matching::addr_pattern_problem(a) {
            bad("match.client_addr", problem);
        }
    }
    for a in &m.role_attributes {
        if !ROLE_ATTRIBUTES.contains(&a.as_str()) {
            bad(
                "match.role_attributes",
                format!(
                    "unknown role attribute {a:?}: use one of {}",
                    ROLE_ATTRIBUTES.join(", ")
                ),
            );
        }
    }
    for c in &m.command {
        if c.chars().any(|ch| ch.is_ascii_lowercase()) {
            bad(
                "match.command",
                format!(
                    "{c:?}: command tags are upper case, e.g. {:?}",
                    c.to_uppercase()
                ),
            );
        }
    }
    for f in &m.function {
        if f.chars().any(|ch| ch.is_ascii_uppercase()) {
            bad(
                "match.function",
                format!("{f:?}: function names are matched lower case"),
            );
        }
    }
    let statement_only: [(&'static str, bool); 12] = [
        ("match.class", !m.class.is_empty()),
        ("match.command", !m.command.is_empty()),
        ("match.noise", m.noise.is_some()),
        ("match.object", !m.object.is_empty()),
        ("match.function", !m.function.is_empty()),
        ("match.outcome", !m.outcome.is_empty()),
        ("match.has_where", m.has_where.is_some()),
        ("match.copy_direction", m.copy_direction.is_some()),
        ("match.copy_program", m.copy_program.is_some()),
        ("match.role_attributes", !m.role_attributes.is_empty()),
        ("match.rows_over", m.rows_over.is_some()),
        ("match.grants_role", m.grants_role.is_some()),
    ];
    if matches!(on, On::AuthFailure | On::SessionStart) {
        for (key, set) in statement_only {
            if set {
                bad(
                    key,
                    format!(
                        "{} events are not statements: this condition can never hold",
                        on.as_str()
                    ),
                );
            }
        }
    }
    if on == On::SessionStart && !m.sqlstate.is_empty() {
        bad(
            "match.sqlstate",
            "session_start events carry no SQLSTATE".into(),
        );
    }
    if on == On::Error && !m.outcome.is_empty() && !m.outcome.contains(&OutcomeMatch::Error) {
        bad(
            "match.outcome",
            "on = \"error\" sees only statements that failed: outcome = [\"ok\"] never holds"
                .into(),
        );
    }
}

/// What is unknown before a statement runs cannot decide whether it may run.
fn check_deny(m: &Match, bad: &mut impl FnMut(&'static str, String)) {
    let after_the_fact: [(&'static str, bool); 3] = [
        ("match.outcome", !m.outcome.is_empty()),
        ("match.sqlstate", !m.sqlstate.is_empty()),
        ("match.rows_over", m.rows_over.is_some()),
    ];
    for (key, set) in after_the_fact {
        if set {
            bad(
                key,
                "known only after the statement ran: a deny rule decides before it is sent".into(),
            );
        }
    }
}

/// Glob lists: empty matches anything, otherwise any pattern must match.
pub(super) fn any_glob(patterns: &[String], value: Option<&str>) -> bool {
    if patterns.is_empty() {
        return true;
    }
    match value {
        Some(v) => patterns.iter().any(|p| glob_match(p, v)),
        None => false,
    }
}

/// A function pattern without a dot also matches the last part of a qualified name.
pub(super) fn function_matches(pattern: &str, called: &str) -> bool {
    if glob_match(pattern, called) {
        return true;
    }
    if !pattern.contains('.') {
        if let Some((_, last)) = called.rsplit_once('.') {
            return glob_match(pattern, last);
        }
    }
    false
}

/// [`any_glob`] for the enforcement module (same semantics).
pub fn any_glob_pub(patterns: &[String], value: Option<&str>) -> bool {
    any_glob(patterns, value)
}
