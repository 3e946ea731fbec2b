//! The detector: every audit event is checked against the rules the moment it is emitted,
//! on the session's task, before the event is queued for the log. Firing rules produce
//! findings (handed to the outbox) and, for `action = "block"`, blocks.
//!
//! The rule set is swapped whole on reload; counting state of rules whose id and timing
//! are unchanged carries over, and blocks always do.
//!
//! With `[cluster]`, a [`Replicas`] link shares hits, blocks and findings with the other
//! replicas; their hits and blocks come back through [`Detector::remote_hit`] and
//! [`Detector::remote_block`]. The link never makes an event wait.

use super::block::{is_loopback, Block, Blocklist};
use super::finding::Finding;
use super::matcher::{matches, View};
use super::rule::{Action, GroupBy, Rule};
use super::window::{Groups, Millis, Timing, Verdict};
use crate::audit::{rfc3339_at, AuditEvent};
use crate::snapshot::Config;
use crate::sql::names;
use std::fmt::Write as _;
use std::net::IpAddr;
use std::sync::{Arc, RwLock};
use tokio::sync::mpsc::UnboundedSender;

/// One rule with its counting state.
struct Compiled {
    rule: Arc<Rule>,
    timing: Timing,
    groups: Arc<Groups>,
}

/// The rules in effect, indexed by the event they listen to.
struct RuleSet {
    rules: Vec<Compiled>,
    block_loopback: bool,
    /// The PostgreSQL channel's own session, should it connect through this proxy: its
    /// statements on the findings table are not evaluated, so findings cannot loop.
    sink_session: Option<SinkSession>,
}

/// How the PostgreSQL channel's session looks to the detector.
struct SinkSession {
    user: String,
    /// The findings table as statement objects name it, qualified and bare.
    table: [String; 2],
}

impl SinkSession {
    /// Whether `v` is the channel's own statement on its own table. Anyone else's
    /// statement on the table (tampering with findings) is evaluated like any other.
    fn owns(&self, v: &View<'_>) -> bool {
        let s = v.session;
        if s.user.as_deref() != Some(self.user.as_str())
            || s.application_name.as_deref() != Some(crate::sinks::postgres::APPLICATION_NAME)
        {
            return false;
        }
        let Some(st) = v.statement else {
            return false;
        };
        let mut objects = st.objects().peekable();
        objects.peek().is_some() && objects.all(|o| self.table.contains(&o.name))
    }
}

/// Called with each new block (address, rule or `admin`, until): ends the address's
/// running sessions.
pub type BlockHook = Box<dyn Fn(IpAddr, &Block) + Send + Sync>;

/// Findings and blocks from audit events.
pub struct Detector {
    set: RwLock<Arc<RuleSet>>,
    blocks: Blocklist,
    out: UnboundedSender<Finding>,
    on_block: std::sync::OnceLock<BlockHook>,
    /// The latest findings, newest last, for the admin console (findings are rare: one
    /// short lock per finding).
    recent: std::sync::Mutex<std::collections::VecDeque<Finding>>,
    replicas: std::sync::OnceLock<Arc<dyn Replicas>>,
}

/// Where a detector shares its state with other replicas (`[cluster]`). Every method
/// returns at once (a queue in front of Redis): detection never waits on the network.
pub trait Replicas: Send + Sync {
    /// A local hit of `rule_id`'s group `key` at `at`.
    fn hit(&self, rule_id: &str, key: &str, at: Millis);
    /// A local block.
    fn block(&self, addr: IpAddr, until: Millis, rule_id: &str);
    /// A local finding: the link delivers it to the outbox unless another replica already
    /// reported the same rule and group within `cooldown`.
    fn finding(&self, rule_id: &str, key: &str, cooldown: Millis, finding: Finding);
}

/// How many findings the console can show.
pub const RECENT_FINDINGS: usize = 1000;

fn timing(rule: &Rule) -> Timing {
    Timing {
        threshold: rule.threshold,
        window: rule.window.as_millis() as Millis,
        cooldown: rule.cooldown().as_millis() as Millis,
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn now_millis() -> Millis {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as Millis)
        .unwrap_or(0)
}

impl RuleSet {
    fn build(config: &Config, old: Option<&RuleSet>) -> RuleSet {
        let max = config.file.rules.max_groups;
        let rules = config
            .rules
            .iter()
            .map(|rule| {
                let timing = timing(rule);
                let kept = old.and_then(|o| {
                    o.rules.iter().find(|c| {
                        c.rule.id == rule.id
                            && c.timing == timing
                            && c.rule.group_by == rule.group_by
                    })
                });
                let groups = match kept {
                    Some(c) => c.groups.clone(),
                    None => Arc::new(Groups::new(max, &rule.id)),
                };
                Compiled {
                    rule: rule.clone(),
                    timing,
                    groups,
                }
            })
            .collect();
        let sink_session = config.file.alerts.postgres.as_ref().map(|pg| SinkSession {
            user: pg.username.clone(),
            table: [
                names::render(&[pg.schema.as_str(), pg.table.as_str()]),
                names::render(&[pg.table.as_str()]),
            ],
        });
        RuleSet {
            rules,
            block_loopback: config.file.rules.block_loopback,
            sink_session,
        }
    }
}

impl Detector {
    /// A detector with `config`'s rules, sending findings to `out`.
    pub fn new(config: &Config, out: UnboundedSender<Finding>) -> Detector {
        Detector {
            set: RwLock::new(Arc::new(RuleSet::build(config, None))),
            blocks: Blocklist::default(),
            out,
            replicas: std::sync::OnceLock::new(),
            on_block: std::sync::OnceLock::new(),
            recent: std::sync::Mutex::new(std::collections::VecDeque::new()),
        }
    }

    /// Sets what happens to an address's running sessions when it is blocked (once).
    pub fn set_block_hook(&self, hook: BlockHook) {
        let _ = self.on_block.set(hook);
    }

    fn blocked_now(&self, addr: IpAddr, until: Millis, by: &str) {
        self.blocks.block(addr, until, by);
        if let Some(hook) = self.on_block.get() {
            let block = Block {
                until,
                rule_id: by.to_string(),
            };
            hook(addr, &block);
        }
    }

    /// Blocks `addr` until `until` by hand (the admin console's `BLOCK`); `by` names who.
    pub fn block_manual(&self, addr: IpAddr, until: Millis, by: &str) {
        self.blocked_now(addr, until, by);
        if let Some(r) = self.replicas.get() {
            r.block(addr, until, by);
        }
    }

    /// Lifts the block on `addr`; false when it was not blocked.
    pub fn unblock(&self, addr: IpAddr) -> bool {
        self.blocks.unblock(addr)
    }

    /// The blocks in force now.
    pub fn blocks(&self) -> Vec<(IpAddr, Block)> {
        self.blocks.list(now_millis())
    }

    /// The latest `n` findings, newest first.
    pub fn recent_findings(&self, n: usize) -> Vec<Finding> {
        let r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
        r.iter().rev().take(n).cloned().collect()
    }

    /// The rules in effect.
    pub fn rules(&self) -> Vec<Arc<Rule>> {
        self.current()
            .rules
            .iter()
            .map(|c| c.rule.clone())
            .collect()
    }

    /// Shares hits, blocks and findings with other replicas from now on (once).
    pub fn share_with(&self, replicas: Arc<dyn Replicas>) {
        let _ = self.replicas.set(replicas);
    }

    /// Another replica's hit: counted like a local one, but a threshold it crosses fires
    /// there, not here (the replica whose own hit crossed it reports it).
    pub fn remote_hit(&self, rule_id: &str, key: &str, at: Millis) {
        let set = self.current();
        if let Some(c) = set.rules.iter().find(|c| c.rule.id == rule_id) {
            let _ = c.groups.hit(key, at, c.timing);
        }
    }

    /// Another replica's block (or one kept in Redis across a restart).
    pub fn remote_block(&self, addr: IpAddr, until: Millis, rule_id: &str) {
        if until > now_millis() {
            // Ends this replica's sessions from that address too.
            self.blocked_now(addr, until, rule_id);
        }
    }

    /// Where findings go when no replica link takes them.
    pub fn findings_out(&self) -> UnboundedSender<Finding> {
        self.out.clone()
    }

    /// Installs `config`'s rules (already validated). Blocks and the counts of unchanged
    /// rules carry over.
    pub fn reload(&self, config: &Config) {
        let old = self.current();
        let new = Arc::new(RuleSet::build(config, Some(&old)));
        match self.set.write() {
            Ok(mut s) => *s = new,
            Err(p) => *p.into_inner() = new,
        }
    }

    fn current(&self) -> Arc<RuleSet> {
        match self.set.read() {
            Ok(s) => s.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    /// The block on `addr`, if it is blocked now. A loopback address blocked while
    /// `block_loopback` was on is let in once a reload turned it off.
    pub fn blocked(&self, addr: IpAddr) -> Option<Block> {
        if is_loopback(addr) && !self.current().block_loopback {
            return None;
        }
        self.blocks.check(addr, now_millis())
    }

    /// Forgets idle groups and expired blocks (called periodically).
    pub fn sweep(&self) {
        let now = now_millis();
        let set = self.current();
        for c in &set.rules {
            c.groups.sweep(now, c.timing);
        }
        self.blocks.sweep(now);
    }

    /// Checks one event at the current time. `service`: whether the session's user is a
    /// service account.
    pub fn observe(&self, event: &AuditEvent, service: bool) {
        self.observe_at(event, service, now_millis());
    }

    /// [`Detector::observe`] with an explicit clock.
    pub fn observe_at(&self, event: &AuditEvent, service: bool, now: Millis) {
        let views = View::of(event, service);
        if views.iter().all(Option::is_none) {
            return;
        }
        // The read guard, not a clone of the Arc: no shared refcount traffic per event.
        let guard = match self.set.read() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let set: &RuleSet = &guard;
        for view in views.iter().flatten() {
            if set.sink_session.as_ref().is_some_and(|s| s.owns(view)) {
                continue;
            }
            let denied_by = view.statement.and_then(|st| st.denied_by.as_deref());
            for c in set.rules.iter().filter(|c| c.rule.on == view.on) {
                // A deny rule sees only the statements it refused (they never ran, so no
                // other rule sees them); a refusal by a built-in policy is no rule's.
                let mine = match denied_by {
                    Some(by) => c.rule.id == by,
                    None => c.rule.action != Action::Deny,
                };
                if !mine {
                    continue;
                }
                if denied_by.is_some() || c.rule.matches.all().iter().any(|m| matches(m, view)) {
                    self.count(set, c, view, now);
                }
            }
        }
    }

    fn count(&self, set: &RuleSet, c: &Compiled, view: &View<'_>, now: Millis) {
        let key = group_key(&c.rule.group_by, view);
        let replicas = self.replicas.get();
        if let Some(r) = replicas {
            r.hit(&c.rule.id, &key, now);
        }
        let Verdict::Fire {
            count,
            first_seen,
            last_seen,
            suppressed,
            episode,
        } = c.groups.hit(&key, now, c.timing)
        else {
            return;
        };
        let rule = &c.rule;
        let dedup_key = episode;
        let s = view.session;
        let mut blocked_until = None;
        let mut action = match rule.action {
            Action::Deny => "deny",
            _ => "alert",
        };
        if rule.action == Action::Block {
            if let Some(d) = rule.block_for {
                if set.block_loopback || !is_loopback(s.client_addr) {
                    let until = now.saturating_add(d.as_millis() as Millis);
                    self.blocked_now(s.client_addr, until, &rule.id);
                    if let Some(r) = replicas {
                        r.block(s.client_addr, until, &rule.id);
                    }
                    blocked_until = Some(rfc3339_at(until));
                    action = "block";
                }
            }
        }
        let (schema_name, table_name) = view
            .statement
            .and_then(|st| st.objects().next())
            .map(|o| match o.name.rsplit_once('.') {
                Some((schema, table)) => (Some(schema.to_string()), Some(table.to_string())),
                None => (None, Some(o.name.clone())),
            })
            .unwrap_or((None, None));
        let finding = Finding {
            id: random_id(),
            ts: rfc3339_at(now),
            rule_id: rule.id.clone(),
            description: rule.description.clone(),
            category: rule.category.clone(),
            severity: rule.severity,
            mitre_tactic: rule.mitre_tactic.clone(),
            mitre_technique: rule.mitre_technique.clone(),
            database: s.database.clone(),
            user: s.user.clone(),
            client_addr: Some(s.client_addr.to_string()),
            application_name: s.application_name.clone(),
            session_id: Some(s.session_id.clone()),
            statement: view.statement.map(|st| st.statement.to_string()),
            schema_name,
            table_name,
            count,
            window: humantime::format_duration(rule.window).to_string(),
            first_seen: rfc3339_at(first_seen),
            last_seen: rfc3339_at(last_seen),
            dedup_key,
            action: action.to_string(),
            blocked_until,
            suppressed,
        };
        metrics::counter!(
            "pgvigil_findings_total",
            "rule_id" => rule.id.clone(),
            "severity" => rule.severity.as_str()
        )
        .increment(1);
        tracing::warn!(
            rule_id = %rule.id,
            severity = rule.severity.as_str(),
            client_addr = %s.client_addr,
            user = s.user.as_deref().unwrap_or(""),
            action,
            "finding"
        );
        {
            let mut r = self.recent.lock().unwrap_or_else(|p| p.into_inner());
            if r.len() >= RECENT_FINDINGS {
                r.pop_front();
            }
            r.push_back(finding.clone());
        }
        if let Some(r) = replicas {
            r.finding(&rule.id, &key, c.timing.cooldown, finding);
        } else if self.out.send(finding).is_err() {
            tracing::error!(rule_id = %rule.id, "the outbox has stopped; finding not stored");
        }
    }
}

/// The group a view counts in: the `group_by` fields, unit-separated.
fn group_key(by: &[GroupBy], v: &View<'_>) -> String {
    let mut key = String::new();
    for (i, g) in by.iter().enumerate() {
        if i > 0 {
            key.push('\u{1f}');
        }
        match g {
            GroupBy::ClientAddr => {
                let _ = write!(key, "{}", v.session.client_addr);
            }
            GroupBy::User => key.push_str(v.session.user.as_deref().unwrap_or("")),
            GroupBy::Database => key.push_str(v.session.database.as_deref().unwrap_or("")),
        }
    }
    key
}

fn random_id() -> String {
    let n: u128 = rand::random();
    format!("{n:032x}")
}
