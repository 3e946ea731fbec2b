//! The live sessions, for the admin console (`SHOW SESSIONS`, `KILL`) and for blocks that
//! must end the running sessions of an address.
//!
//! A session registers once it is authenticated and is removed when its [`Registered`]
//! guard drops. Nothing here is touched per statement: bytes are per-session atomics
//! nobody else writes, and the statement count and current statement are read from the
//! session's tracker, under the lock the relay takes anyway, only when the console asks.

use crate::audit::{ConsoleView, SessionInfo, Tracker};
use dashmap::DashMap;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::SystemTime;
use tokio::sync::watch;

/// Why a session was ended from outside: the client's FATAL message says it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillReason {
    /// The FATAL message the client reads.
    pub message: String,
    /// Who or what ended it (`admin alice`, `rule brute_force`), for the audit log.
    pub by: String,
}

/// One live session.
pub struct Entry {
    /// Who and where, as at login.
    pub info: Arc<SessionInfo>,
    /// When it was authenticated (wall clock, for display).
    pub started: SystemTime,
    /// Bytes from the client, updated by the session's relay only.
    pub bytes_in: AtomicU64,
    /// Bytes to the client.
    pub bytes_out: AtomicU64,
    kill: watch::Sender<Option<KillReason>>,
    tracker: OnceLock<Weak<Mutex<Tracker>>>,
}

/// What `SHOW SESSIONS` prints for one session.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub info: Arc<SessionInfo>,
    pub started: SystemTime,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub view: ConsoleView,
}

impl Entry {
    /// Lets the console read the session's statement state.
    pub fn attach(&self, tracker: &Arc<Mutex<Tracker>>) {
        let _ = self.tracker.set(Arc::downgrade(tracker));
    }

    /// A receiver that turns `Some` when the session is to end.
    pub fn killed(&self) -> watch::Receiver<Option<KillReason>> {
        self.kill.subscribe()
    }

    fn snapshot(&self) -> Snapshot {
        let view = self
            .tracker
            .get()
            .and_then(Weak::upgrade)
            .map(|t| {
                let t = t.lock().unwrap_or_else(|p| p.into_inner());
                t.console_view()
            })
            .unwrap_or_default();
        Snapshot {
            info: self.info.clone(),
            started: self.started,
            bytes_in: self.bytes_in.load(Ordering::Relaxed),
            bytes_out: self.bytes_out.load(Ordering::Relaxed),
            view,
        }
    }
}

/// The registry of live sessions, by session id, and the totals of ended ones.
#[derive(Default)]
pub struct Sessions {
    map: DashMap<String, Arc<Entry>>,
    /// Per database and user; touched once per session start, end and failed login.
    ended: Mutex<BTreeMap<(String, String), StatRow>>,
}

/// `SHOW STATS` for one database and user.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatRow {
    pub sessions: u64,
    pub statements: u64,
    /// In [`crate::sql::Class`] order.
    pub by_class: [u64; 7],
    pub errors: u64,
    pub denied: u64,
    pub auth_failures: u64,
}

impl StatRow {
    fn add_view(&mut self, v: &ConsoleView) {
        self.statements = self.statements.saturating_add(v.statements);
        for (a, b) in self.by_class.iter_mut().zip(v.by_class.iter()) {
            *a = a.saturating_add(*b);
        }
        self.errors = self.errors.saturating_add(v.errors);
        self.denied = self.denied.saturating_add(v.denied);
    }
}

/// The most database/user rows `SHOW STATS` keeps: failed logins carry names the client
/// chose, so beyond this they are counted together under `(other)`.
pub const MAX_STAT_ROWS: usize = 10_000;

/// The row of `key`, or the shared `(other)` row once the table is full.
fn row(map: &mut BTreeMap<(String, String), StatRow>, key: (String, String)) -> &mut StatRow {
    let key = if map.len() >= MAX_STAT_ROWS && !map.contains_key(&key) {
        ("(other)".to_string(), "(other)".to_string())
    } else {
        key
    };
    map.entry(key).or_default()
}

fn key(info: &SessionInfo) -> (String, String) {
    (
        info.database.clone().unwrap_or_default(),
        info.user.clone().unwrap_or_default(),
    )
}

/// A session's place in the registry; dropping it removes the session.
pub struct Registered {
    sessions: Arc<Sessions>,
    /// The session's entry.
    pub entry: Arc<Entry>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.sessions.map.remove(&self.entry.info.session_id);
        let view = self.entry.snapshot().view;
        let mut ended = self
            .sessions
            .ended
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        row(&mut ended, key(&self.entry.info)).add_view(&view);
    }
}

impl Sessions {
    /// Registers an authenticated session.
    pub fn register(self: &Arc<Self>, info: Arc<SessionInfo>) -> Registered {
        let (kill, _) = watch::channel(None);
        let entry = Arc::new(Entry {
            info,
            started: SystemTime::now(),
            bytes_in: AtomicU64::new(0),
            bytes_out: AtomicU64::new(0),
            kill,
            tracker: OnceLock::new(),
        });
        self.map
            .insert(entry.info.session_id.clone(), entry.clone());
        {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            let r = row(&mut ended, key(&entry.info));
            r.sessions = r.sessions.saturating_add(1);
        }
        Registered {
            sessions: self.clone(),
            entry,
        }
    }

    /// How many sessions are live.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no session is live.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Every live session, oldest first.
    pub fn snapshot(&self) -> Vec<Snapshot> {
        // Entries are cloned out first: no shard lock is held while a tracker is locked.
        let entries: Vec<Arc<Entry>> = self.map.iter().map(|e| e.value().clone()).collect();
        let mut out: Vec<Snapshot> = entries.iter().map(|e| e.snapshot()).collect();
        out.sort_by(|a, b| {
            a.started
                .cmp(&b.started)
                .then_with(|| a.info.session_id.cmp(&b.info.session_id))
        });
        out
    }

    /// Counts a failed login of `info`'s user and database.
    pub fn auth_failure(&self, info: &SessionInfo) {
        let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
        let r = row(&mut ended, key(info));
        r.auth_failures = r.auth_failures.saturating_add(1);
    }

    /// `SHOW STATS`: ended sessions' totals plus the live sessions' counts so far.
    pub fn stats(&self) -> BTreeMap<(String, String), StatRow> {
        let live = self.snapshot();
        let mut out = self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for s in &live {
            row(&mut out, key(&s.info)).add_view(&s.view);
        }
        out
    }

    /// Ends session `id`; false when there is no such session.
    pub fn kill(&self, id: &str, reason: KillReason) -> bool {
        let Some(entry) = self.map.get(id).map(|e| e.value().clone()) else {
            return false;
        };
        entry.kill.send_replace(Some(reason));
        true
    }

    /// Ends every session from `addr`; returns how many were told to end.
    pub fn kill_addr(&self, addr: IpAddr, reason: &KillReason) -> usize {
        let targets: Vec<Arc<Entry>> = self
            .map
            .iter()
            .filter(|e| same_addr(e.value().info.client_addr, addr))
            .map(|e| e.value().clone())
            .collect();
        for e in &targets {
            e.kill.send_replace(Some(reason.clone()));
        }
        targets.len()
    }
}

/// Address equality that treats an IPv4-mapped IPv6 address as its IPv4 address.
fn same_addr(a: IpAddr, b: IpAddr) -> bool {
    a.to_canonical() == b.to_canonical()
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
