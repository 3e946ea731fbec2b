//! The token path: classification from sqlparser's tokenizer when the parser cannot.
//!
//! Leading keywords decide class and command the way PostgreSQL's `CreateCommandTag`
//! does; objects come from the positions that name them (`scan.rs` for queries,
//! `utility.rs` for DDL, GRANT and SET, `roles.rs` for role names). Everything here is
//! iterative and linear in the number of tokens. Tokens come from `lexed.rs`.

pub mod commands;
pub mod lexed;
pub mod roles;
pub mod scan;
pub mod utility;

use super::facts;
use super::noise::{self, Shape};
use super::{names, Class, Classification, Object, ParsePath, RoleChange};
use lexed::{lex, Lexed, Tk};
use scan::ScanOut;

/// Classifies one statement from its tokens. Never fails: what nothing understands is
/// MISC / UNKNOWN.
pub fn classify(sql: &str) -> Classification {
    classify_lexed(&lex(sql))
}

/// What the statement-specific part decides.
pub struct Head {
    /// pgAudit class.
    pub class: Class,
    /// Command tag.
    pub command: String,
    /// Targets and acted-on objects, before what the scan finds.
    pub targets: Vec<Object>,
    /// Functions called that the scan does not see (the procedure of a CALL).
    pub functions: Vec<String>,
    /// What the scans found.
    pub scan: ScanOut,
    /// What the noise filter judges.
    pub shape: Shape,
    /// Set by SET ROLE and friends.
    pub role_change: Option<RoleChange>,
    /// The classification depends on a literal's value.
    pub literal_dependent: bool,
    /// The main statement is a query: SELECT INTO and data-modifying CTEs change it.
    pub select: bool,
}

impl Head {
    /// A head of a class and command, nothing else known yet.
    pub fn new(class: Class, command: &str) -> Head {
        Head {
            class,
            command: command.to_string(),
            targets: Vec::new(),
            functions: Vec::new(),
            scan: ScanOut::default(),
            shape: Shape::Other,
            role_change: None,
            literal_dependent: false,
            select: false,
        }
    }

    /// Adds an object of `kind` from folded name parts.
    pub fn target(&mut self, kind: &str, parts: &[String]) {
        if parts.is_empty() {
            self.scan.uncertain = true;
        } else {
            self.targets.push(Object {
                kind: kind.to_string(),
                name: names::render(parts),
            });
        }
    }
}

fn classify_lexed(lx: &Lexed) -> Classification {
    let end = lx.toks.len();
    // EXPLAIN ANALYZE runs its statement: classify that one (pgAudit takes the inner
    // statement's log level). Plain EXPLAIN and PREPARE wrap it. Bounded loop, no
    // recursion.
    let mut s = 0;
    let mut wrapper: Option<&str> = None;
    let mut literal = false;
    let mut analyzed = false;
    for _ in 0..4 {
        if lx.is(s, "explain") {
            let (analyze, lit, inner) = utility::explain_options(lx, s + 1);
            literal |= lit;
            s = inner;
            if analyze {
                analyzed = true;
                continue;
            }
            wrapper = Some("EXPLAIN");
        } else if lx.is(s, "prepare") && !lx.is(s + 1, "transaction") {
            match utility::depth0(lx, s + 1, end, &["as"]) {
                Some(a) => {
                    s = a + 1;
                    wrapper = Some("PREPARE");
                }
                None => return finish(Head::new(Class::Misc, "PREPARE"), lx.crude),
            }
        }
        break;
    }
    let mut h = head(lx, s, end);
    h.literal_dependent |= literal;
    match wrapper {
        Some("EXPLAIN") => {
            h.class = Class::Misc;
            h.command = "EXPLAIN".to_string();
            h.shape = Shape::Other;
            h.role_change = None;
            h.select = false;
        }
        Some(_) => {
            // pgAudit: PREPARE takes its query's level: SELECT is READ, DML is WRITE.
            h.class = if h.select {
                Class::Read
            } else if h.class == Class::Write {
                Class::Write
            } else {
                Class::Misc
            };
            h.command = "PREPARE".to_string();
            h.shape = Shape::Other;
            h.select = false;
        }
        None => {}
    }
    let mut c = finish(h, lx.crude);
    // A plain EXPLAIN and a PREPARE run nothing: no facts. EXPLAIN ANALYZE keeps those of
    // what it runs.
    if wrapper.is_none() {
        c.facts = facts::from_tokens(lx, s, end, &c.command);
    }
    // pgAudit: EXPLAIN ANALYZE is logged under the tag EXPLAIN, at the run statement's
    // level (a plain EXPLAIN inside it stays MISC/EXPLAIN).
    if analyzed && wrapper.is_none() {
        c.explained_analyze()
    } else {
        c
    }
}

fn finish(mut h: Head, crude: bool) -> Classification {
    let sc = &h.scan;
    if h.select {
        if let Some(t) = sc.into_targets.first() {
            // pgAudit: SELECT INTO is LOGSTMT_DDL with tag "SELECT INTO".
            h.class = Class::Ddl;
            h.command = "SELECT INTO".to_string();
            h.targets.insert(0, t.clone());
        } else if let Some(cmd) = sc.modifying.first() {
            // Spec over pgAudit (which prints READ,SELECT): a SELECT whose CTE writes is
            // WRITE with the CTE's command.
            h.class = Class::Write;
            h.command = (*cmd).to_string();
        }
    }
    let read_only =
        h.select && sc.into_targets.is_empty() && sc.modifying.is_empty() && !sc.locking;
    if h.shape == Shape::ReadQuery && (!read_only || sc.uncertain || sc.odd_operator || crude) {
        h.shape = Shape::Other;
    }
    let objects = names::dedup(h.targets.into_iter().chain(h.scan.objects));
    let functions = names::dedup(h.functions.into_iter().chain(h.scan.functions));
    let noise = !crude && noise::judge(&h.shape, &objects, &functions, !h.scan.set_config_bad);
    Classification {
        class: h.class,
        command: h.command,
        objects,
        functions,
        parse: ParsePath::Tokens,
        noise,
        role_change: h.role_change,
        literal_dependent: h.literal_dependent || h.scan.set_config_seen,
        facts: super::StatementFacts::default(),
    }
}

/// A query (SELECT, VALUES, TABLE, WITH ... SELECT, or DML) scanned over `s..end`.
fn query(lx: &Lexed, s: usize, end: usize, class: Class, command: &str) -> Head {
    let mut h = Head::new(class, command);
    if class == Class::Read {
        h.select = true;
        h.shape = Shape::ReadQuery;
    }
    scan::scan(lx, s..end, &mut h.scan);
    h
}

/// Dispatches on the leading keyword at `s`.
fn head(lx: &Lexed, s: usize, end: usize) -> Head {
    use Class::*;
    // `((SELECT 1))`: leading parentheses around a query.
    let mut k = s;
    while lx.kind_is(k, Tk::LParen) {
        k += 1;
    }
    let Some(first) = lx.get(k).filter(|t| t.kind == Tk::Word && !t.quoted) else {
        return Head::new(Misc, "UNKNOWN");
    };
    let word = first.text.to_ascii_lowercase();
    let next = |n: usize| {
        lx.get(k + n)
            .filter(|t| t.kind == Tk::Word && !t.quoted)
            .map(|t| t.text.to_ascii_lowercase())
    };
    match word.as_str() {
        "select" | "values" | "table" => query(lx, s, end, Read, "SELECT"),
        "with" => {
            let main = utility::after_ctes(lx, k)
                .and_then(|m| lx.get(m))
                .map(|t| t.text.to_ascii_lowercase());
            match main.as_deref() {
                Some(cmd @ ("insert" | "update" | "delete" | "merge")) => {
                    query(lx, s, end, Write, &cmd.to_ascii_uppercase())
                }
                _ => query(lx, s, end, Read, "SELECT"),
            }
        }
        "insert" | "update" | "delete" | "merge" if k == s => {
            query(lx, s, end, Write, &word.to_ascii_uppercase())
        }
        "copy" => utility::copy(lx, k, end),
        "create" | "alter" | "drop" => utility::ddl(lx, k, end, &word.to_ascii_uppercase()),
        "grant" | "revoke" => utility::grant(lx, k, end, word == "grant"),
        "comment" => utility::comment(lx, k, end, "COMMENT"),
        "security" => utility::comment(lx, k, end, "SECURITY LABEL"),
        "truncate" => {
            // pgAudit: TRUNCATE is LOGSTMT_MOD: WRITE.
            let mut h = Head::new(Write, "TRUNCATE TABLE");
            let j = if lx.is(k + 1, "table") { k + 2 } else { k + 1 };
            utility::name_list(lx, j, "TABLE", &mut h);
            h
        }
        "lock" => {
            let mut h = Head::new(Misc, "LOCK TABLE");
            let j = if lx.is(k + 1, "table") { k + 2 } else { k + 1 };
            utility::name_list(lx, j, "TABLE", &mut h);
            h
        }
        "vacuum" => utility::maintenance(lx, k, Misc, "VACUUM"),
        "analyze" | "analyse" => utility::maintenance(lx, k, Misc, "ANALYZE"),
        // pgAudit: CLUSTER is LOGSTMT_DDL; REINDEX is LOGSTMT_ALL (MISC).
        "cluster" => utility::maintenance(lx, k, Ddl, "CLUSTER"),
        "reindex" => utility::reindex(lx, k),
        "checkpoint" => Head::new(Misc, "CHECKPOINT"),
        "refresh" => {
            // pgAudit: RefreshMatViewStmt is LOGSTMT_DDL.
            let mut h = Head::new(Ddl, "REFRESH MATERIALIZED VIEW");
            let mut j = k + 1;
            while lx
                .get(j)
                .is_some_and(|t| t.is_any(&["materialized", "view", "concurrently"]))
            {
                j += 1;
            }
            h.target("MATERIALIZED VIEW", &lx.name_at(j).0);
            h
        }
        "discard" => {
            let what = next(1).unwrap_or_default();
            let mut h = Head::new(
                Misc,
                match what.as_str() {
                    "all" => "DISCARD ALL",
                    "plans" => "DISCARD PLANS",
                    "sequences" => "DISCARD SEQUENCES",
                    "temp" | "temporary" => "DISCARD TEMP",
                    _ => "DISCARD",
                },
            );
            // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT and RESET ALL.
            if what == "all" {
                h.role_change = Some(RoleChange::Reset);
                if utility::ends_at(lx, k + 2) {
                    h.shape = Shape::Housekeeping;
                }
            }
            h
        }
        // pgAudit: DO is T_DoStmt: FUNCTION.
        "do" => Head::new(Function, "DO"),
        // Spec over pgAudit (MISC,CALL there, plus FUNCTION,EXECUTE for the procedure).
        "call" => {
            let mut h = Head::new(Function, "CALL");
            let (parts, j) = lx.name_at(k + 1);
            // Like pgAudit's FUNCTION line, the procedure is the statement's object.
            h.target("FUNCTION", &parts);
            if !parts.is_empty() {
                h.functions.push(names::render_function(&parts));
            }
            if lx.kind_is(j, Tk::LParen) {
                let close = lx.close.get(j).copied().unwrap_or(end);
                scan::scan(lx, j + 1..close, &mut h.scan);
            }
            h
        }
        "set" => utility::set(lx, k, end),
        "reset" => utility::reset(lx, k),
        "show" => {
            let mut h = Head::new(Misc, "SHOW");
            h.shape = Shape::Show;
            h
        }
        "begin" => transaction("BEGIN"),
        "start" => transaction("START TRANSACTION"),
        "commit" | "end" if next(1).as_deref() == Some("prepared") => {
            Head::new(Misc, "COMMIT PREPARED")
        }
        "commit" | "end" => transaction("COMMIT"),
        "rollback" if next(1).as_deref() == Some("prepared") => {
            Head::new(Misc, "ROLLBACK PREPARED")
        }
        "rollback" | "abort" => transaction("ROLLBACK"),
        "savepoint" => transaction("SAVEPOINT"),
        "release" => transaction("RELEASE"),
        "prepare" => Head::new(Misc, "PREPARE TRANSACTION"),
        // pgAudit: EXECUTE is MISC whatever it runs (the executed statement is logged
        // again by the executor hooks).
        "execute" => Head::new(Misc, "EXECUTE"),
        "deallocate" => {
            let j = if lx.is(k + 1, "prepare") {
                k + 2
            } else {
                k + 1
            };
            let mut h = Head::new(
                Misc,
                if lx.is(j, "all") {
                    "DEALLOCATE ALL"
                } else {
                    "DEALLOCATE"
                },
            );
            if utility::ends_at(lx, j + 1) {
                h.shape = Shape::Housekeeping;
            }
            h
        }
        // pgAudit: DECLARE CURSOR is LOGSTMT_ALL + T_DeclareCursorStmt: READ.
        "declare" => {
            let mut h = Head::new(Read, "DECLARE CURSOR");
            let cursor = utility::depth0(lx, k + 1, end, &["cursor"]).unwrap_or(k);
            if let Some(f) = utility::depth0(lx, cursor + 1, end, &["for"]) {
                scan::scan(lx, f + 1..end, &mut h.scan);
            }
            h
        }
        "fetch" => Head::new(Misc, "FETCH"),
        "move" => Head::new(Misc, "MOVE"),
        "close" if lx.is(k + 1, "all") => {
            let mut h = Head::new(Misc, "CLOSE CURSOR ALL");
            if utility::ends_at(lx, k + 2) {
                h.shape = Shape::Housekeeping;
            }
            h
        }
        "close" => Head::new(Misc, "CLOSE CURSOR"),
        "listen" => Head::new(Misc, "LISTEN"),
        "unlisten" => {
            let mut h = Head::new(Misc, "UNLISTEN");
            if lx
                .get(k + 1)
                .is_some_and(|t| t.kind == Tk::Op && t.text == "*")
                && utility::ends_at(lx, k + 2)
            {
                h.shape = Shape::Housekeeping;
            }
            h
        }
        "notify" => Head::new(Misc, "NOTIFY"),
        "load" => Head::new(Misc, "LOAD"),
        // pgAudit: ReassignOwnedStmt and ImportForeignSchemaStmt are DDL, not ROLE.
        "reassign" => {
            // REASSIGN OWNED BY old [, ...] TO new: every role named.
            let mut h = Head::new(Ddl, "REASSIGN OWNED");
            if lx.is(k + 1, "owned") && lx.is(k + 2, "by") {
                let e = roles::role_list(lx, k + 3, &mut h);
                if lx.is(e, "to") {
                    roles::role_list(lx, e + 1, &mut h);
                }
            }
            h
        }
        "import" => {
            let mut h = Head::new(Ddl, "IMPORT FOREIGN SCHEMA");
            let j = k + 3;
            if lx.is(k + 1, "foreign") && lx.is(k + 2, "schema") {
                h.target("SCHEMA", &lx.name_at(j).0);
            }
            h
        }
        _ => Head::new(Misc, "UNKNOWN"),
    }
}

fn transaction(command: &str) -> Head {
    let mut h = Head::new(Class::Misc, command);
    h.shape = Shape::Transaction;
    h
}

#[cfg(test)]
mod tests;
