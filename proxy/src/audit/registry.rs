//! A session's named server-side objects, as the tracker follows them: prepared
//! statements (protocol-level Parse and SQL-level PREPARE share one namespace in the
//! server, and so here), protocol portals, and SQL cursors.
//!
//! Statements that use them are logged as what they run: an `EXECUTE name` gets its
//! prepared statement's classification, a `FETCH` its cursor's query's. Rows leaving
//! through one cursor or portal add up (`rows_total` on each batch), so a read split into
//! batches is as visible to rules as one SELECT.
//!
//! Statements the proxy cannot tie to a known name are still audited, under a placeholder
//! text (`<unknown portal>`, `<unknown prepared statement>`) with class MISC / UNKNOWN.
//!
//! Everything is bounded: the server holds these objects too, so the bounds only limit
//! what a client that never closes them can make the proxy keep. Past them, new objects
//! are not remembered and their uses are audited as unknown, which a rule can flag.

use crate::sql::{Classification, NamedCommand, ParsePath, Statement};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

/// Bind parameters, when logged.
pub type Params = Option<Arc<[String]>>;

/// Prepared statements, portals and cursors remembered per session, each.
const MAX_NAMED: usize = 10_000;
/// Text of named prepared statements and cursor queries remembered per session.
const MAX_NAMED_BYTES: usize = 32 * 1024 * 1024;

/// A portal created with Bind, or the portal of a SQL cursor (the server keeps both in one
/// namespace: an Execute can read a cursor, a FETCH a protocol portal).
pub struct Portal {
    prepared: Option<Arc<Statement>>,
    pub params: Option<Arc<[String]>>,
    /// The statement it was bound to by name, for a Bind the client pipelined after the
    /// SQL PREPARE that creates it (the server had not answered it yet): looked up when
    /// an Execute of it completes, into `late`.
    statement: String,
    late: OnceLock<Arc<Statement>>,
    /// Rows returned through it so far (Executes with a row limit run it in batches).
    rows: AtomicU64,
    /// Whether an Execute of it was suspended (PortalSuspended): its Executes are batches.
    suspended: AtomicBool,
}

impl Portal {
    /// A fresh portal.
    pub fn new(
        prepared: Option<Arc<Statement>>,
        params: Option<Arc<[String]>>,
        statement: String,
    ) -> Portal {
        Portal {
            prepared,
            params,
            statement,
            late: OnceLock::new(),
            rows: AtomicU64::new(0),
            suspended: AtomicBool::new(false),
        }
    }

    /// A SQL cursor's portal: every read of it is a batch.
    fn cursor(query: Option<Arc<Statement>>) -> Portal {
        Portal {
            prepared: query,
            params: None,
            statement: String::new(),
            late: OnceLock::new(),
            rows: AtomicU64::new(0),
            suspended: AtomicBool::new(true),
        }
    }

    /// The statement it runs, when the proxy knows it.
    pub fn prepared(&self) -> Option<Arc<Statement>> {
        self.prepared.clone().or_else(|| self.late.get().cloned())
    }

    fn text_len(&self) -> usize {
        self.prepared.as_ref().map_or(0, |q| q.text.len())
    }

    /// One Execute's rows: `rows` of this batch, `suspended` when it ended with
    /// PortalSuspended. Returns the batch's `(rows_before, rows_total)` when the portal
    /// runs in batches (`None` for a portal run in one go, as a plain statement).
    pub fn batch(&self, rows: u64, suspended: bool) -> Option<(u64, u64)> {
        let was = self.suspended.fetch_or(suspended, Ordering::Relaxed);
        let before = self.rows.fetch_add(rows, Ordering::Relaxed);
        (was || suspended).then(|| (before, before.saturating_add(rows)))
    }
}

/// A SQL cursor (`DECLARE`), or one the session fetched from without the proxy seeing it
/// declared (a refcursor a function opened): then its portal has no statement.
struct Cursor {
    /// Its query and the rows returned through it so far (by FETCH or Execute).
    portal: Arc<Portal>,
    /// `WITH HOLD`: survives the end of its transaction.
    hold: bool,
}

/// What a FETCH or MOVE read from its cursor.
pub struct Fetched {
    /// The cursor's query, when the proxy saw it declared.
    pub query: Option<Arc<Statement>>,
    /// Rows returned through the cursor before and including this statement.
    pub rows_before: u64,
    pub rows_total: u64,
}

/// A statement as it is logged once its effect on the named objects is followed.
pub struct Resolved {
    /// The statement's own text, with the classification of what it ran.
    pub statement: Statement,
    /// The text an EXECUTE ran.
    pub prepared_statement: Option<Arc<str>>,
    /// The query of the cursor a FETCH or MOVE read.
    pub cursor_query: Option<Arc<str>>,
    /// For a FETCH or MOVE that succeeded: the cursor's rows before and including it.
    pub batch: Option<(u64, u64)>,
}

/// One session's named objects.
#[derive(Default)]
pub struct Registry {
    statements: HashMap<String, Arc<Statement>>,
    portals: HashMap<String, Arc<Portal>>,
    cursors: HashMap<String, Cursor>,
    /// Text bytes held by `statements` and `cursors`.
    bytes: usize,
}

impl Registry {
    /// Whether `bytes` more of text fit beside `count` objects.
    fn fits(&self, count: usize, bytes: usize) -> bool {
        count < MAX_NAMED && self.bytes.saturating_add(bytes) <= MAX_NAMED_BYTES
    }

    /// A Parse. The unnamed statement is always replaced; a named one only when the name
    /// is free, as the server refuses a Parse of an existing name (42P05) and keeps the
    /// old statement, which later Binds then run.
    pub fn parse(&mut self, name: String, st: Arc<Statement>) {
        if !name.is_empty() && self.statements.contains_key(&name) {
            return;
        }
        self.prepare(name, st);
    }

    /// A prepared statement the server accepted (a successful SQL PREPARE, or a Parse).
    pub fn prepare(&mut self, name: String, st: Arc<Statement>) {
        let len = st.text.len();
        if !name.is_empty() && !self.fits(self.statements.len(), len) {
            return;
        }
        self.bytes = self.bytes.saturating_add(len);
        if let Some(old) = self.statements.insert(name, st) {
            self.bytes = self.bytes.saturating_sub(old.text.len());
        }
    }

    /// The prepared statement of that name.
    pub fn statement(&self, name: &str) -> Option<Arc<Statement>> {
        self.statements.get(name).cloned()
    }

    /// Close of a statement, or DEALLOCATE (`None`: `DEALLOCATE ALL`, which keeps the
    /// unnamed statement: the server holds that one apart).
    pub fn deallocate(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                if let Some(old) = self.statements.remove(n) {
                    self.bytes = self.bytes.saturating_sub(old.text.len());
                }
            }
            None => {
                let unnamed = self.statements.remove("");
                for (_, old) in self.statements.drain() {
                    self.bytes = self.bytes.saturating_sub(old.text.len());
                }
                if let Some(u) = unnamed {
                    self.statements.insert(String::new(), u);
                }
            }
        }
    }

    /// A Bind of `portal` to `statement`.
    pub fn bind(&mut self, portal: String, statement: &str, params: Option<Arc<[String]>>) {
        if portal.is_empty() || self.portals.len() < MAX_NAMED {
            let prepared = self.statement(statement);
            let p = Portal::new(prepared, params, statement.to_string());
            self.portals.insert(portal, Arc::new(p));
        }
    }

    /// The portal of that name: a protocol portal, or a SQL cursor's.
    pub fn portal(&self, name: &str) -> Option<Arc<Portal>> {
        self.portals
            .get(name)
            .or_else(|| self.cursors.get(name).map(|c| &c.portal))
            .cloned()
    }

    /// The portal an Execute ran, looked at when it completes: the one it found when it
    /// was sent, or, when the client pipelined it after the SQL PREPARE or DECLARE that
    /// creates what it runs (the proxy follows those when the server accepts them), the
    /// portal or statement of that name by now.
    pub fn executed(&self, portal: Option<Arc<Portal>>, name: &str) -> Option<Arc<Portal>> {
        let Some(p) = portal else {
            return self.portal(name);
        };
        if p.prepared().is_none() {
            if let Some(st) = self.statement(&p.statement) {
                let _ = p.late.set(st);
            }
        }
        Some(p)
    }

    /// Close of a portal.
    pub fn close_portal(&mut self, name: &str) {
        self.portals.remove(name);
    }

    /// A DECLARE the server accepted.
    pub fn declare(&mut self, name: String, hold: bool, query: Option<Arc<Statement>>) {
        let len = query.as_ref().map_or(0, |q| q.text.len());
        if !self.fits(self.cursors.len(), len) {
            return;
        }
        self.bytes = self.bytes.saturating_add(len);
        let cursor = Cursor {
            portal: Arc::new(Portal::cursor(query)),
            hold,
        };
        if let Some(old) = self.cursors.insert(name, cursor) {
            self.drop_cursor(old);
        }
    }

    /// A FETCH (`returned` rows came back) or MOVE (`returned` is 0) that succeeded. A
    /// cursor the proxy did not see declared is remembered from here on (for the total).
    pub fn fetch(&mut self, name: &str, returned: u64) -> Fetched {
        // A protocol portal read with FETCH adds up with its Executes.
        if let Some(p) = self.portals.get(name) {
            let (before, total) = p.batch(returned, true).unwrap_or((0, returned));
            return Fetched {
                query: p.prepared(),
                rows_before: before,
                rows_total: total,
            };
        }
        if !self.cursors.contains_key(name) && self.fits(self.cursors.len(), 0) {
            let c = Cursor {
                portal: Arc::new(Portal::cursor(None)),
                hold: false,
            };
            self.cursors.insert(name.to_string(), c);
        }
        match self.cursors.get(name) {
            Some(c) => {
                let (before, total) = c.portal.batch(returned, true).unwrap_or((0, returned));
                Fetched {
                    query: c.portal.prepared(),
                    rows_before: before,
                    rows_total: total,
                }
            }
            None => Fetched {
                query: None,
                rows_before: 0,
                rows_total: returned,
            },
        }
    }

    /// The query of a cursor, without fetching (a FETCH or MOVE that failed).
    pub fn cursor_query(&self, name: &str) -> Option<Arc<Statement>> {
        self.portal(name).and_then(|p| p.prepared())
    }

    /// CLOSE (`None`: `CLOSE ALL`).
    pub fn close_cursor(&mut self, name: Option<&str>) {
        match name {
            Some(n) => {
                if let Some(old) = self.cursors.remove(n) {
                    self.drop_cursor(old);
                }
            }
            None => {
                for (_, old) in std::mem::take(&mut self.cursors) {
                    self.drop_cursor(old);
                }
            }
        }
    }

    fn drop_cursor(&mut self, c: Cursor) {
        self.bytes = self.bytes.saturating_sub(c.portal.text_len());
    }

    /// No transaction is open any more: cursors without `WITH HOLD` are gone.
    pub fn idle(&mut self) {
        if self.cursors.values().all(|c| c.hold) {
            return;
        }
        let (keep, gone): (HashMap<_, _>, HashMap<_, _>) = std::mem::take(&mut self.cursors)
            .into_iter()
            .partition(|(_, c)| c.hold);
        self.cursors = keep;
        for (_, old) in gone {
            self.drop_cursor(old);
        }
    }

    /// Follows what a statement that ended (`ok`: it succeeded, with `rows` from its
    /// command tag) does to the named objects, and says what to log: an EXECUTE as its
    /// prepared statement, a FETCH or MOVE as its cursor's query (the text stays the
    /// statement's own; the other text comes beside it).
    pub fn resolve(&mut self, st: Statement, ok: bool, rows: Option<u64>) -> Resolved {
        let mut r = Resolved {
            statement: st,
            prepared_statement: None,
            cursor_query: None,
            batch: None,
        };
        let Some(named) = r.statement.named.clone() else {
            return r;
        };
        let query = named.query.as_ref().map(|q| Arc::new(q.clone()));
        match &named.command {
            NamedCommand::Prepare { name, .. } if ok => {
                if let Some(q) = query {
                    self.prepare(name.clone(), q);
                }
            }
            NamedCommand::Execute { name } => {
                if let Some(p) = self.statement(name) {
                    r.prepared_statement = Some(p.text.clone());
                    r.statement = runs(r.statement, &p);
                }
            }
            // As `EXPLAIN ANALYZE DELETE ...` is logged: class, objects and facts of what
            // it ran, command EXPLAIN. A plain EXPLAIN runs nothing.
            NamedCommand::ExplainExecute { name, analyze } => {
                if let Some(p) = self.statement(name) {
                    r.prepared_statement = Some(p.text.clone());
                    if *analyze {
                        let explained = Statement {
                            class: Arc::new((*p.class).clone().explained_analyze()),
                            ..(*p).clone()
                        };
                        r.statement = runs(r.statement, &explained);
                    }
                }
            }
            NamedCommand::Deallocate { name } if ok => self.deallocate(name.as_deref()),
            NamedCommand::Declare { name, hold, .. } if ok => {
                self.declare(name.clone(), *hold, query);
            }
            NamedCommand::Fetch { name, moves } => {
                let query = if ok {
                    // MOVE reports the rows it skipped; none of them left the server.
                    let returned = if *moves { 0 } else { rows.unwrap_or(0) };
                    let f = self.fetch(name, returned);
                    r.batch = Some((f.rows_before, f.rows_total));
                    f.query
                } else {
                    self.cursor_query(name)
                };
                if let Some(q) = query {
                    r.cursor_query = Some(q.text.clone());
                    r.statement = runs(r.statement, &q);
                }
            }
            NamedCommand::Close { name } if ok => self.close_cursor(name.as_deref()),
            NamedCommand::DiscardAll if ok => self.discard_all(),
            _ => {}
        }
        r
    }

    /// DISCARD ALL: every named prepared statement and every cursor.
    pub fn discard_all(&mut self) {
        self.deallocate(None);
        self.close_cursor(None);
    }
}

/// A statement (EXECUTE, FETCH) logged as what it runs: its own text, the classification
/// of `runs`.
fn runs(st: Statement, runs: &Statement) -> Statement {
    Statement {
        text: st.text,
        redacted: st.redacted || runs.redacted,
        class: runs.class.clone(),
        cache_hit: st.cache_hit,
        named: None,
    }
}

/// The statement and parameters of what a portal runs; an unknown portal (one bound to a
/// statement the proxy never saw) is still audited, as MISC/UNKNOWN.
pub fn portal_parts(portal: Option<&Portal>) -> (Statement, Params) {
    match portal {
        Some(p) => match p.prepared() {
            Some(st) => ((*st).clone(), p.params.clone()),
            None => (
                placeholder("<unknown prepared statement>", unknown_class()),
                p.params.clone(),
            ),
        },
        None => (placeholder("<unknown portal>", unknown_class()), None),
    }
}

/// A statement the proxy has no text for, under a descriptive placeholder.
pub fn placeholder(text: &str, class: Arc<Classification>) -> Statement {
    Statement {
        text: Arc::from(text),
        redacted: false,
        class,
        cache_hit: false,
        named: None,
    }
}

/// MISC/UNKNOWN: what the proxy cannot tell.
pub fn unknown_class() -> Arc<Classification> {
    static UNKNOWN: OnceLock<Arc<Classification>> = OnceLock::new();
    UNKNOWN
        .get_or_init(|| Arc::new(Classification::unknown(ParsePath::Tokens)))
        .clone()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Classifier, ClassifierOptions};

    fn st(sql: &str) -> Arc<Statement> {
        Arc::new(Classifier::new(ClassifierOptions::default()).classify_statement(sql))
    }

    #[test]
    fn a_refused_parse_keeps_the_old_statement() {
        let mut r = Registry::default();
        r.parse("d".into(), st("DELETE FROM t"));
        r.parse("d".into(), st("SELECT 1"));
        assert_eq!(r.statement("d").unwrap().class.command, "DELETE");
        r.parse(String::new(), st("SELECT 1"));
        r.parse(String::new(), st("SELECT 2"));
        assert_eq!(&*r.statement("").unwrap().text, "SELECT 2");
        r.deallocate(None);
        assert!(r.statement("d").is_none());
        assert!(
            r.statement("").is_some(),
            "DEALLOCATE ALL keeps the unnamed one"
        );
    }

    #[test]
    fn cursors_add_up_and_end_with_their_transaction() {
        let mut r = Registry::default();
        r.declare("c".into(), false, Some(st("SELECT * FROM big")));
        r.declare("h".into(), true, None);
        let f = r.fetch("c", 6000);
        assert_eq!((f.rows_before, f.rows_total), (0, 6000));
        let f = r.fetch("c", 6000);
        assert_eq!((f.rows_before, f.rows_total), (6000, 12000));
        assert_eq!(f.query.unwrap().class.command, "SELECT");
        r.idle();
        assert!(r.cursor_query("c").is_none());
        let f = r.fetch("h", 5);
        assert_eq!(f.rows_total, 5);
        r.discard_all();
        assert_eq!(r.bytes, 0);
    }

    #[test]
    fn portals_count_batches_only_when_suspended() {
        let p = Portal::new(None, None, String::new());
        assert_eq!(p.batch(7, false), None);
        let p = Portal::new(None, None, String::new());
        assert_eq!(p.batch(100, true), Some((0, 100)));
        assert_eq!(p.batch(40, false), Some((100, 140)));
    }

    #[test]
    fn execute_and_fetch_are_logged_as_what_they_run() {
        let c = Classifier::new(ClassifierOptions::default());
        let mut r = Registry::default();
        let failed = r.resolve(
            c.classify_statement("PREPARE d AS DELETE FROM t"),
            false,
            None,
        );
        assert_eq!(failed.statement.class.command, "PREPARE");
        let e = r.resolve(c.classify_statement("EXECUTE d"), true, Some(3));
        assert_eq!(
            e.statement.class.command, "EXECUTE",
            "a failed PREPARE prepares nothing"
        );
        r.resolve(
            c.classify_statement("PREPARE d AS DELETE FROM t"),
            true,
            None,
        );
        let e = r.resolve(c.classify_statement("EXECUTE d"), true, Some(3));
        assert_eq!(e.statement.class.command, "DELETE");
        assert_eq!(e.statement.class.facts.has_where, Some(false));
        assert_eq!(&*e.statement.text, "EXECUTE d");
        assert_eq!(e.prepared_statement.as_deref(), Some("DELETE FROM t"));
        let e = r.resolve(
            c.classify_statement("EXPLAIN ANALYZE EXECUTE d"),
            true,
            None,
        );
        assert_eq!(e.statement.class.command, "EXPLAIN");
        assert_eq!(e.statement.class.class, crate::sql::Class::Write);
        assert_eq!(e.statement.class.facts.has_where, Some(false));
        assert_eq!(e.prepared_statement.as_deref(), Some("DELETE FROM t"));
        r.resolve(c.classify_statement("DEALLOCATE ALL"), true, None);
        let e = r.resolve(c.classify_statement("EXECUTE d"), false, None);
        assert_eq!(e.statement.class.command, "EXECUTE");

        r.resolve(
            c.classify_statement("DECLARE c CURSOR FOR SELECT * FROM big"),
            true,
            None,
        );
        let f = r.resolve(c.classify_statement("FETCH 6000 FROM c"), true, Some(6000));
        assert_eq!(f.statement.class.command, "SELECT");
        assert_eq!(f.cursor_query.as_deref(), Some("SELECT * FROM big"));
        let m = r.resolve(c.classify_statement("MOVE 6000 IN c"), true, Some(6000));
        assert_eq!(m.batch, Some((6000, 6000)), "MOVE returns no rows");
        let f = r.resolve(c.classify_statement("FETCH ALL c"), true, Some(3000));
        assert_eq!(f.batch, Some((6000, 9000)));
        r.resolve(c.classify_statement("CLOSE ALL"), true, None);
        assert!(r.cursor_query("c").is_none());
    }

    #[test]
    fn bounded() {
        let mut r = Registry::default();
        for i in 0..MAX_NAMED + 10 {
            r.declare(format!("c{i}"), true, None);
        }
        assert_eq!(r.cursors.len(), MAX_NAMED);
    }
}
