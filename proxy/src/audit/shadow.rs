//! What the noise filter must know about a database before it trusts an unqualified name.
//!
//! A statement is classified once, from its text, and the verdict `noise` assumes that an
//! unqualified allow-listed function (`format_type`, `version`) or catalog relation
//! (`pg_class`) is the one in `pg_catalog`. PostgreSQL does not promise that:
//! - a user function of the same name with a better-matching signature wins whatever the
//!   search path (`public.format_type(int, int)` beats `pg_catalog.format_type(oid, int4)`
//!   for `format_type(1, 2)`), and with a search path that lists another schema before
//!   `pg_catalog` any same-named function or relation there wins;
//! - a temporary relation is searched before `pg_catalog` unless the path says otherwise.
//!
//! So each session checks a noise verdict that rests on an unqualified name against what
//! pgvigil knows, and withdraws it (the event is then not noise) unless all of these hold:
//! - the functions: pgvigil's own catalog query ([`crate::backend::catalog`], run at every
//!   login) found no function of that name outside `pg_catalog` in the database, and
//!   nothing since has marked that knowledge stale ([`Registry`]);
//! - the search path: it put `pg_catalog` first at login (the query reads it), and every
//!   change the session made since kept it there ([`SessionShadow`]);
//! - the session has not created a relation named like a catalog relation, nor run a `DO`
//!   block.
//!
//! Nothing here ever makes a statement noise: it only takes the verdict away.

use crate::sql::{names, noise, Class, Classification, Statement};
use dashmap::DashMap;
use std::collections::HashSet;
use std::sync::{Arc, OnceLock, RwLock};
use std::time::{Duration, Instant};

/// Databases remembered. Keys come only from successful logins (a database that exists),
/// the bound is for a server with very many databases: past it, nothing is cached and each
/// login learns for itself.
const MAX_DATABASES: usize = 10_000;

/// What is known about one database's functions.
#[derive(Default)]
struct Knowledge {
    /// Allow-listed names that exist outside `pg_catalog`; `None` while unknown or stale.
    shadowed: Option<Arc<HashSet<String>>>,
    /// Bumped by every invalidation: a catalog query that started before one must not
    /// store what it saw.
    generation: u64,
    /// When `shadowed` was learned.
    learned: Option<Instant>,
}

/// One database's knowledge, shared by its sessions.
#[derive(Default)]
pub struct Slot(RwLock<Knowledge>);

impl Slot {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Knowledge> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Knowledge> {
        self.0.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The generation a catalog query starting now must present to [`Slot::store`].
    pub fn ticket(&self) -> u64 {
        self.read().generation
    }

    /// Whether a login should ask for the function names: nothing known, stale, or older
    /// than `refresh` (`[audit] noise_catalog_refresh`: a function created where pgvigil
    /// cannot see it, by a direct connection or dynamic SQL, is learned this way).
    pub fn needs_learning(&self, refresh: Duration) -> bool {
        let k = self.read();
        k.shadowed.is_none() || k.learned.is_none_or(|t| t.elapsed() >= refresh)
    }

    /// Stores what a catalog query found (the names of the functions outside
    /// `pg_catalog`; only watched ones are kept), unless the knowledge was invalidated
    /// since the query started (it may not have seen the change).
    pub fn store(&self, ticket: u64, functions: impl IntoIterator<Item = String>) {
        let watched = watched_set();
        let shadowed: HashSet<String> = functions
            .into_iter()
            .filter(|f| watched.contains(f.as_str()))
            .collect();
        let mut k = self.write();
        if k.generation == ticket {
            k.shadowed = Some(Arc::new(shadowed));
            k.learned = Some(Instant::now());
        }
    }

    /// Marks the knowledge stale: a function may have been created or renamed.
    pub fn invalidate(&self) {
        let mut k = self.write();
        k.shadowed = None;
        k.generation = k.generation.wrapping_add(1);
    }

    fn shadowed(&self) -> Option<Arc<HashSet<String>>> {
        self.read().shadowed.clone()
    }
}

/// Per-database knowledge, keyed by upstream target and database name.
#[derive(Default)]
pub struct Registry {
    slots: DashMap<String, Arc<Slot>>,
}

impl Registry {
    /// The slot for a database (`host:port/dbname`); a detached one past
    /// [`MAX_DATABASES`] (it then lives as long as the session).
    pub fn slot(&self, key: &str) -> Arc<Slot> {
        if let Some(s) = self.slots.get(key) {
            return s.clone();
        }
        if self.slots.len() >= MAX_DATABASES {
            return Arc::default();
        }
        self.slots.entry(key.to_string()).or_default().clone()
    }
}

/// The names the catalog query asks about: the unqualified function names the noise
/// filter trusts.
pub fn watched_functions() -> impl Iterator<Item = &'static str> {
    noise::allowed_function_names()
        .iter()
        .copied()
        .chain(std::iter::once("set_config"))
}

fn watched_set() -> &'static HashSet<&'static str> {
    static SET: OnceLock<HashSet<&'static str>> = OnceLock::new();
    SET.get_or_init(|| watched_functions().collect())
}

/// What the login's catalog query found about the session itself.
pub struct LoginFacts {
    /// The session's schemas as `current_schemas(true)` lists them, in order; `None` when
    /// the query failed (then nothing unqualified is trusted).
    pub schemas: Option<Vec<String>>,
    /// The `search_path` setting as written (`"$user", public`): `pg_catalog` listed after
    /// another entry is refused even when that entry resolves to no schema now (a `$user`
    /// schema appears with `SET ROLE`, a missing schema with `CREATE SCHEMA`).
    pub search_path: Option<String>,
}

/// Whether a schema list (as `current_schemas(true)` gives it) resolves unqualified names
/// in `pg_catalog` before any user schema. A temporary schema listed first is searched
/// only for relations and types; the session's own temporary relations are followed by
/// [`SessionShadow`].
pub fn catalog_first(schemas: &[String]) -> bool {
    schemas
        .iter()
        .find(|s| !s.starts_with("pg_temp_"))
        .is_some_and(|s| s == "pg_catalog")
}

/// One session's view: its database's knowledge plus its own search path and actions.
/// Fed by the tracker in protocol order: [`SessionShadow::sent`] when a statement is sent,
/// [`SessionShadow::settled`] when its outcome is known, [`SessionShadow::ready`] at
/// ReadyForQuery.
pub struct SessionShadow {
    slot: Arc<Slot>,
    /// The search path at login (what RESET returns to) put `pg_catalog` first.
    login_path_ok: bool,
    /// The search path now puts `pg_catalog` first, as far as the statements tell.
    path_ok: bool,
    /// A change back to a good search path succeeded; it holds once its transaction ends
    /// without error or rollback.
    pending_ok: bool,
    /// The session sent, in its current transaction, something that may create or rename
    /// a function: its own calls are not trusted, and the database's knowledge is marked
    /// stale again when the transaction ends (other sessions see it only after commit).
    dirty: bool,
    /// The session may have a relation that shadows a catalog relation (a temporary one is
    /// searched before `pg_catalog`).
    relations_shadowed: bool,
}

impl SessionShadow {
    /// A session with nothing known: no unqualified name is trusted.
    pub fn unknown() -> SessionShadow {
        let facts = LoginFacts {
            schemas: None,
            search_path: None,
        };
        SessionShadow::new(Arc::default(), &facts)
    }

    /// A session whose login found `facts`, in the database of `slot`.
    pub fn new(slot: Arc<Slot>, facts: &LoginFacts) -> SessionShadow {
        let ok = facts.schemas.as_deref().is_some_and(catalog_first)
            && facts
                .search_path
                .as_deref()
                .is_some_and(noise::search_path_literal_ok);
        SessionShadow {
            slot,
            login_path_ok: ok,
            path_ok: ok,
            pending_ok: false,
            dirty: false,
            relations_shadowed: false,
        }
    }

    /// A statement on its way to the server. Anything that may change what a name
    /// resolves to takes trust away at once (for the statements sent after it, and those
    /// still waiting for their event); trust comes back only through [`Self::settled`]
    /// and [`Self::ready`].
    pub fn sent(&mut self, st: &Statement) {
        let c = &st.class;
        match setting_change(c, &st.text) {
            PathChange::None => {}
            PathChange::Good { .. } => {}
            PathChange::Reset => {
                if !self.login_path_ok {
                    self.bad_path();
                }
            }
            PathChange::Bad => self.bad_path(),
        }
        if creates_function(c, &st.text) {
            self.slot.invalidate();
            self.dirty = true;
        }
        if c.command == "DO" {
            self.relations_shadowed = true;
        }
        if c.class == Class::Ddl && c.objects.iter().any(catalog_named_relation) {
            self.relations_shadowed = true;
        }
    }

    /// A statement's outcome: `ok` false for an error (a skipped statement never ran and
    /// is not reported).
    pub fn settled(&mut self, st: &Statement, ok: bool) {
        if !ok {
            self.pending_ok = false;
            return;
        }
        let c = &st.class;
        if c.command.starts_with("ROLLBACK")
            || c.command == "ABORT"
            || c.command.contains("PREPARE TRANSACTION")
        {
            self.pending_ok = false;
            return;
        }
        match setting_change(c, &st.text) {
            PathChange::Good { local: false } => self.pending_ok = true,
            PathChange::Reset if self.login_path_ok => self.pending_ok = true,
            PathChange::Bad | PathChange::Reset => self.bad_path(),
            PathChange::Good { local: true } | PathChange::None => {}
        }
    }

    /// ReadyForQuery with its transaction status.
    pub fn ready(&mut self, status: u8) {
        if status != b'I' {
            return;
        }
        if self.pending_ok {
            self.path_ok = true;
            self.pending_ok = false;
        }
        if self.dirty {
            // The creating transaction has ended: committed, the function is now visible
            // to every session, and a catalog query that ran meanwhile missed it.
            self.slot.invalidate();
            self.dirty = false;
        }
    }

    fn bad_path(&mut self) {
        self.path_ok = false;
        self.pending_ok = false;
    }

    /// The classification to log: `class` itself, or a copy with `noise` withdrawn when
    /// the verdict rests on an unqualified name this session cannot trust.
    pub fn judge(&self, class: Arc<Classification>) -> Arc<Classification> {
        if !class.noise || self.trusts(&class) {
            return class;
        }
        let mut c = (*class).clone();
        c.noise = false;
        Arc::new(c)
    }

    fn trusts(&self, c: &Classification) -> bool {
        let functions: Vec<String> = c
            .functions
            .iter()
            .filter_map(|f| match names::split(f).as_slice() {
                [one] => Some(one.clone()),
                _ => None,
            })
            .collect();
        let relations = c.objects.iter().any(|o| names::split(&o.name).len() == 1);
        if functions.is_empty() && !relations {
            return true;
        }
        if !self.path_ok {
            return false;
        }
        if relations && self.relations_shadowed {
            return false;
        }
        if functions.is_empty() {
            return true;
        }
        if self.dirty {
            return false;
        }
        match self.slot.shadowed() {
            Some(shadowed) => functions.iter().all(|f| !shadowed.contains(f)),
            None => false,
        }
    }
}

impl Drop for SessionShadow {
    fn drop(&mut self) {
        // A session that ends inside its creating transaction rolled it back; one whose
        // ReadyForQuery was never seen may have committed.
        if self.dirty {
            self.slot.invalidate();
        }
    }
}

/// Whether a statement may create or rename a function, aggregate or procedure whose name
/// the noise filter trusts (or create functions in bulk: extensions, `DO`). Moving one to
/// another schema changes nothing the catalog check looks at (every schema but
/// `pg_catalog` counts), so only a rename among the ALTERs does.
fn creates_function(c: &Classification, text: &str) -> bool {
    match c.command.as_str() {
        "CREATE EXTENSION" | "ALTER EXTENSION" | "DO" => true,
        "ALTER FUNCTION" | "ALTER PROCEDURE" | "ALTER ROUTINE" | "ALTER AGGREGATE" => {
            text.to_ascii_lowercase().contains("rename")
        }
        "CREATE FUNCTION" | "CREATE PROCEDURE" | "CREATE AGGREGATE" => {
            // Without an object the name is unknown: assume the worst.
            c.objects.is_empty()
                || c.objects.iter().any(|o| {
                    names::split(&o.name)
                        .last()
                        .is_some_and(|n| watched_set().contains(n.as_str()))
                })
        }
        _ => false,
    }
}

/// A DDL object (not a routine) whose own name is a catalog relation's.
fn catalog_named_relation(o: &crate::sql::Object) -> bool {
    !matches!(
        o.kind.as_str(),
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" | "ROLE" | "DATABASE"
    ) && names::split(&o.name)
        .last()
        .is_some_and(|n| noise::is_catalog_relation(n))
}

/// How a statement changes the search path.
#[derive(Debug, PartialEq, Eq)]
enum PathChange {
    None,
    /// Sets it to a value that keeps `pg_catalog` first (the classifier vetted it).
    Good {
        local: bool,
    },
    /// Back to the session's login value (`RESET search_path`, `RESET ALL`,
    /// `DISCARD ALL`, `SET search_path TO DEFAULT`).
    Reset,
    /// Anything else that may change it: another value, or a change pgvigil cannot read.
    Bad,
}

/// What `c` (with its logged text) does to the search path. Only settings and
/// `set_config` calls are looked at; a function body or `DO` block that changes it is not
/// seen (the function knowledge still applies).
fn setting_change(c: &Classification, text: &str) -> PathChange {
    if c.functions.iter().any(|f| noise::is_set_config(f)) {
        // Vetted only when every argument was a literal naming a tool setting or a good
        // search path: trust is never restored this way, but it is kept.
        return if c.noise {
            PathChange::None
        } else {
            PathChange::Bad
        };
    }
    // Called for every statement: the word scan (which allocates) only for the commands
    // that need it.
    if !matches!(c.command.as_str(), "DISCARD ALL" | "RESET" | "SET") {
        return if c.class == Class::MiscSet && mentions_search_path(text) {
            PathChange::Bad
        } else {
            PathChange::None
        };
    }
    let words = leading_words(text, 4);
    let w: Vec<&str> = words.iter().map(String::as_str).collect();
    match (c.command.as_str(), w.as_slice()) {
        ("DISCARD ALL", _) => PathChange::Reset,
        ("RESET", [_, "all", ..]) | ("RESET", [_, "search_path", ..]) => PathChange::Reset,
        ("RESET", _) => PathChange::None,
        ("SET", [_, scope, name, ..]) if *scope == "session" || *scope == "local" => {
            set_value(c, name, *scope == "local", text)
        }
        ("SET", [_, name, ..]) => set_value(c, name, false, text),
        _ if c.class == Class::MiscSet && mentions_search_path(text) => PathChange::Bad,
        _ => PathChange::None,
    }
}

fn set_value(c: &Classification, name: &str, local: bool, text: &str) -> PathChange {
    if name != "search_path" {
        // A name the word scan could not read (a comment, odd quoting) while the text
        // mentions the search path: assume it is set.
        return if name.is_empty() && mentions_search_path(text) {
            PathChange::Bad
        } else {
            PathChange::None
        };
    }
    if !local && value_is_default(text) {
        return PathChange::Reset;
    }
    if c.noise {
        PathChange::Good { local }
    } else {
        PathChange::Bad
    }
}

/// `SET search_path TO DEFAULT` (or `= DEFAULT`): the value after the name and its `TO`
/// or `=` is the bare word `default`.
fn value_is_default(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    let Some(at) = lower.find("search_path") else {
        return false;
    };
    let rest = lower[at + "search_path".len()..].trim_start_matches(['"', ' ', '\t', '\n', '\r']);
    let rest = rest
        .strip_prefix('=')
        .or_else(|| {
            rest.strip_prefix("to")
                .filter(|r| r.starts_with(char::is_whitespace))
        })
        .unwrap_or(rest)
        .trim();
    rest.trim_end_matches(';').trim_end() == "default"
}

fn mentions_search_path(text: &str) -> bool {
    text.to_ascii_lowercase().contains("search_path")
}

/// The first `n` words of a statement, lowercased; a quoted identifier is unquoted
/// (`"search_path"` is `search_path`). Stops with an empty word at anything else (a
/// comment, a literal): callers treat that as unreadable.
fn leading_words(text: &str, n: usize) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = text.trim_start().chars().peekable();
    while out.len() < n {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        match chars.peek() {
            None => break,
            Some('"') => {
                chars.next();
                let mut w = String::new();
                // GUC names are case-insensitive even when quoted.
                for c in chars.by_ref() {
                    if c == '"' {
                        break;
                    }
                    w.push(c.to_ascii_lowercase());
                }
                out.push(w);
            }
            Some(c) if c.is_ascii_alphanumeric() || *c == '_' => {
                let mut w = String::new();
                while let Some(c) = chars.next_if(|c| c.is_ascii_alphanumeric() || *c == '_') {
                    w.push(c.to_ascii_lowercase());
                }
                out.push(w);
            }
            Some(_) => {
                out.push(String::new());
                break;
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "shadow_tests.rs"]
mod tests;
