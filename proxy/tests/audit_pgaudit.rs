//! pgvigil's statement events judged against the real pgAudit extension.
//!
//! A cluster runs pgAudit (`pgaudit.log = 'all'`, one line per relation, catalogs
//! included, `CREATE EXTENSION pgaudit` so DDL lines name their objects). The corpus
//! `tests/corpus/pgaudit.sql` (~330 statements of every class, with the shapes
//! PostgreSQL's regression SQL exercises: role keywords, user mappings, DROP OWNED, column
//! DDL, triggers, policies, MERGE variants, COPY options, prepared EXECUTE; its header
//! gives the format) goes through the proxy in one session as the superuser, one statement per
//! simple Query; each statement's event is paired with pgAudit's lines for it and class,
//! command and objects are compared. Rates are printed with every disagreement and its
//! reason from `tests/corpus/known_disagreements.toml` (or UNLISTED). Class must always
//! agree; command and objects on at least 95%, listed disagreements excused; and the
//! objects of DDL and ROLE statements (pgAudit's class) on at least 95% on their own,
//! listed ones counted as disagreements (issue 14).
//!
//! pgAudit's side of a statement: its lines (attributed by `application_name` in the log
//! prefix) with the statement's pgAudit statement_id and the statement's own text. Lines
//! from inside functions, DO blocks and prepared statements carry their own text and are
//! left out, as are `???` lines (relations met without a command: inheritance children,
//! relations behind a view, listed again with their command). Function executions
//! (FUNCTION,EXECUTE) are substatements of their own. The statement itself is logged last
//! (after what EXPLAIN or CREATE TABLE AS runs); of several commands on that line level
//! (a DDL statement logs each object under the command that created it) the one that is
//! the server's CommandComplete tag counts, otherwise the first (a write's target comes
//! before the relations it reads). Lines without text are no client statement (the
//! planner running a SQL function's body) and are skipped.
//!
//! Classes: pgAudit prints MISC for SET and RESET but files them under MISC_SET too
//! (`pgaudit.log = 'misc_set'` logs them); a statement for which pgAudit logs a function
//! execution under its own text (CALL, SELECT f()) may be FUNCTION. pgvigil logs an
//! `EXECUTE` as the statement it runs (`prepared_statement`): pgAudit logs that one too,
//! under the EXECUTE's text, before its MISC,EXECUTE line, and that line is compared. A
//! `FETCH`/`MOVE` pgvigil logs as its cursor's query (`cursor_query`), where pgAudit has
//! only MISC: its class is the query's by design (commands are listed disagreements).
//!
//! Objects (sets of type and name):
//! - pgAudit qualifies names (`public.t`), the proxy keeps them as written: the proxy's
//!   name must be pgAudit's or a suffix of it; quotes are removed;
//! - for READ and WRITE statements TABLE, VIEW, SEQUENCE, MATERIALIZED VIEW, ... are one
//!   kind: a query's text cannot tell them apart. COMPOSITE TYPE and DOMAIN are TYPE; a
//!   TABLE COLUMN is the proxy's COLUMN or TABLE COLUMN, or the column's TABLE;
//!   routines lose arguments;
//! - for DDL, DDL or ROLE lines under another command are sub-commands (a serial
//!   column's sequence, DROP OWNED's REVOKEs) and left out;
//! - a pgAudit object with a type and no name (GRANT logs `TABLE,,`) matches any name;
//! - pgAudit's `trg on public.t` (TRIGGER, POLICY, RULE) is two objects, as the proxy
//!   gives them: `TRIGGER trg` and `TABLE public.t`; a TABLE COLUMN of the proxy's
//!   matches pgAudit's TABLE of its table (pgAudit names only the table for ADD COLUMN
//!   and ALTER COLUMN);
//! - the proxy prints role keywords as written (`CURRENT_USER on server s`); they are
//!   resolved with the event's `user` and `role` fields, which say who they were, before
//!   comparing with pgAudit (which prints the role the server resolved);
//! - the proxy's ROLE and DATABASE objects are dropped (pgAudit never names these shared
//!   objects), and so are functions a non-DDL statement calls (pgAudit logs only those
//!   outside pg_catalog it did not inline);
//! - a utility command for which pgAudit names no object at all (VACUUM, LOCK, TRUNCATE,
//!   ALTER SYSTEM, ...) is not compared: pgAudit has no source for its objects.
//!
//! Statements that fail are excluded from the rates (pgAudit logs nothing for them); the
//! proxy must log them with outcome "error" and the server's SQLSTATE.

mod common;
use common::*;

use pgvigil::demo::cluster::{Cluster, ClusterOptions};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CORPUS_APP: &str = "pgaudit_corpus";

/// The file's cluster, with pgAudit. Never dropped: the harness's watchdog stops it.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let conf = [
            "shared_preload_libraries = 'pgaudit'",
            "pgaudit.log = 'all'",
            "pgaudit.log_relation = on",
            "pgaudit.log_catalog = on",
            "pgaudit.log_statement_once = off",
            "pgaudit.log_parameter = off",
            "pgaudit.log_level = 'log'",
            // application_name attributes lines to a session.
            "log_line_prefix = '%m [%p] %e %q%u@%d app=%a '",
        ];
        Cluster::start(ClusterOptions {
            extra_conf: conf.map(String::from).to_vec(),
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("cannot start PostgreSQL with pgAudit: {e}"))
    })
}

fn start_proxy() -> Proxy {
    let audit = "log_noise = true\n".to_string();
    Proxy::start(
        pg(),
        ProxyOptions {
            audit,
            ..Default::default()
        },
    )
}

// ---- The corpus ----

/// One corpus statement.
#[derive(Debug, Default)]
struct Block {
    /// Line of the statement's first line in the file.
    line: usize,
    text: String,
    /// SQLSTATE the statement must fail with.
    error: Option<String>,
    /// COPY FROM STDIN data lines.
    stdin: Vec<String>,
    /// Why pgAudit logs nothing for this statement although it succeeds.
    silent: Option<String>,
}

/// The setup script and the statements of `tests/corpus/pgaudit.sql`.
fn load_corpus(data_dir: &Path) -> (String, Vec<Block>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pgaudit.sql");
    let text = std::fs::read_to_string(path).expect("read the corpus");
    let text = text.replace("@DATA_DIR@", &data_dir.display().to_string());
    // (kind, line of the separator, lines)
    let mut raw: Vec<(&str, usize, Vec<&str>)> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(sep) = l.strip_prefix("--- ") {
            let kind = sep.split([':', ' ']).next().unwrap_or("");
            raw.push((kind, i + 1, Vec::new()));
        } else if let Some((_, _, lines)) = raw.last_mut() {
            lines.push(l);
        }
    }
    let (mut setup, mut blocks) = (String::new(), Vec::new());
    for (kind, line, lines) in raw {
        let mut b = Block {
            line: line + 1,
            ..Block::default()
        };
        let mut body = Vec::new();
        for l in lines {
            match l
                .strip_prefix("--@ ")
                .map(|d| d.split_once(' ').unwrap_or((d, "")))
            {
                Some(("error", s)) => b.error = Some(s.trim().to_string()),
                Some(("stdin", s)) => b.stdin.push(s.to_string()),
                Some(("silent", s)) => b.silent = Some(s.to_string()),
                Some(_) => panic!("corpus line {line}: unknown directive {l:?}"),
                None => body.push(l),
            }
        }
        b.text = body.join("\n").trim().to_string();
        match kind {
            "setup" => setup.push_str(&(b.text + "\n")),
            "next" if !b.text.is_empty() => blocks.push(b),
            _ => panic!("corpus line {line}: bad block {kind:?} (or empty statement)"),
        }
    }
    (setup, blocks)
}

// ---- A raw simple-query session (COPY both ways, errors, notices) ----

/// What the server answered to one Query.
#[derive(Debug, Default)]
struct Reply {
    /// CommandComplete tag without its row counts (`INSERT 0 1` gives `INSERT`).
    tag: Option<String>,
    sqlstate: Option<String>,
    message: Option<String>,
}

/// Opens a plaintext session on `port` as `user` on `app`, tagged `app_name`.
fn open_session(port: u16, user: &str, password: &str, app_name: &str) -> TcpStream {
    let mut s = raw_connect(port);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let params = [
        ("user", user),
        ("database", "app"),
        ("application_name", app_name),
    ];
    s.write_all(&startup_packet(&params)).expect("send startup");
    if let Err(e) = finish_raw_login(&mut s, password) {
        panic!("login as {user} failed: {e:?}");
    }
    s
}

/// Sends one simple Query and reads up to ReadyForQuery, feeding COPY FROM STDIN.
fn simple_query(s: &mut TcpStream, sql: &str, stdin: &[String]) -> Reply {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&frontend_msg(b'Q', &q)).expect("send query");
    let mut reply = Reply::default();
    loop {
        let (tag, body) = read_msg(s).unwrap_or_else(|e| panic!("reply to {sql:?}: {e}"));
        match tag {
            b'G' => {
                let data: String = stdin.iter().map(|l| format!("{l}\n")).collect();
                s.write_all(&frontend_msg(b'd', data.as_bytes()))
                    .expect("CopyData");
                s.write_all(&frontend_msg(b'c', &[])).expect("CopyDone");
            }
            b'C' => {
                let t =
                    String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
                let words: Vec<&str> = t
                    .split(' ')
                    .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                reply.tag = Some(words.join(" "));
            }
            b'E' => {
                let f = error_fields(&body);
                reply.sqlstate = f.get(&'C').cloned();
                reply.message = f.get(&'M').cloned();
            }
            b'Z' => return reply,
            _ => {}
        }
    }
}

// ---- pgAudit's log ----

/// One `AUDIT: SESSION,...` line.
#[derive(Debug, Clone)]
struct AuditLine {
    statement_id: u64,
    substatement_id: u64,
    class: String,
    command: String,
    object_type: String,
    object_name: String,
    statement: String,
}

/// Reads the CSV field at the start of `s`: the field and, after a comma, the rest.
fn csv_field(s: &str) -> (String, Option<&str>) {
    let Some(quoted) = s.strip_prefix('"') else {
        let end = s.find([',', '\n']).unwrap_or(s.len());
        return (s[..end].to_string(), s[end..].strip_prefix(','));
    };
    let mut out = String::new();
    let mut chars = quoted.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' if chars.peek().is_some_and(|(_, n)| *n == '"') => {
                chars.next();
                out.push('"');
            }
            '"' => return (out, quoted[i + 1..].strip_prefix(',')),
            c => out.push(c),
        }
    }
    (out, None)
}

/// pgAudit's lines for sessions whose application_name is `app`, in log order, without
/// those of pgvigil's own catalog check (it runs as the user at every login).
fn pgaudit_lines(log: &str, app: &str) -> Vec<AuditLine> {
    // The stderr log continues a multi-line message on lines starting with a tab.
    let log = log.replace("\n\t", "\n");
    let marker = format!(" app={app} LOG:  AUDIT: ");
    let mut out = Vec::new();
    for chunk in log.split(&marker).skip(1) {
        let (mut f, mut rest) = (Vec::new(), Some(chunk));
        while let (Some(s), true) = (rest, f.len() < 9) {
            let (field, next) = csv_field(s);
            f.push(field);
            rest = next;
        }
        assert!(
            f.len() >= 8 && f[0] == "SESSION",
            "unreadable pgAudit line {chunk:.200}"
        );
        // pgvigil's own catalog check at login, not a corpus statement.
        if f[7].contains("pgvigil: noise filter catalog check") {
            continue;
        }
        out.push(AuditLine {
            statement_id: f[1].parse().expect("statement_id"),
            substatement_id: f[2].parse().expect("substatement_id"),
            class: f[3].clone(),
            command: f[4].clone(),
            object_type: f[5].clone(),
            object_name: f[6].clone(),
            statement: f[7].clone(),
        });
    }
    out
}

/// Whether pgAudit's statement text is `sql` (pgAudit replaces passwords by <REDACTED>).
fn same_text(pgaudit: &str, sql: &str) -> bool {
    let parts: Vec<&str> = pgaudit.split("<REDACTED>").collect();
    pgaudit == sql
        || (parts.len() > 1 && sql.starts_with(parts[0]) && sql.ends_with(parts[parts.len() - 1]))
}

/// What pgAudit says about one corpus statement.
#[derive(Debug, Clone)]
struct PgAuditView {
    class: String,
    command: String,
    /// (type, name); the name is empty where pgAudit gives only a type.
    objects: BTreeSet<(String, String)>,
    /// pgAudit logged a function execution (EXECUTE) under the statement's own text.
    executes: bool,
    /// Every line of the statement_id, for the report.
    lines: Vec<AuditLine>,
}

/// Pairs each corpus statement with the next pgAudit statement_id, in order. Failed
/// statements and those pgAudit does not log get None.
fn pair_pgaudit(
    blocks: &[Block],
    replies: &[Reply],
    lines: &[AuditLine],
) -> Vec<Option<PgAuditView>> {
    let mut groups: Vec<Vec<AuditLine>> = Vec::new();
    // A line without text is no client statement: the planner evaluating a SQL function
    // body while constant-folding (`SELECT f(2)` of an IMMUTABLE `RETURN` function) logs
    // it under a statement_id of its own, before the statement's.
    for l in lines.iter().filter(|l| !l.statement.is_empty()) {
        match groups.last_mut() {
            Some(g) if g[0].statement_id == l.statement_id => g.push(l.clone()),
            _ => groups.push(vec![l.clone()]),
        }
    }
    let mut groups = groups.into_iter().peekable();
    let mut out = Vec::new();
    for (b, r) in blocks.iter().zip(replies) {
        let next_is_mine = groups
            .peek()
            .is_some_and(|g| g.iter().any(|l| same_text(&l.statement, &b.text)));
        let g = groups.next_if(|_| next_is_mine && r.sqlstate.is_none());
        out.push(g.map(|g| view_of(g, &b.text, r.tag.as_deref())));
    }
    out
}

fn view_of(group: Vec<AuditLine>, sql: &str, tag: Option<&str>) -> PgAuditView {
    let own: Vec<&AuditLine> = group
        .iter()
        .filter(|l| same_text(&l.statement, sql) && l.command != "???")
        .collect();
    // Function executions: FUNCTION,EXECUTE,FUNCTION,name (EXECUTE of a prepared
    // statement is MISC).
    let is_call = |l: &AuditLine| l.class == "FUNCTION" && l.command == "EXECUTE";
    let executes = own.iter().any(|l| is_call(l));
    // The statement's own lines, function executions aside; the statement itself is
    // logged last (after the statements it runs inside, EXPLAIN or CREATE TABLE AS).
    let top: Vec<&AuditLine> = own.iter().copied().filter(|l| !is_call(l)).collect();
    let last = top
        .iter()
        .map(|l| l.substatement_id)
        .max()
        .expect("the statement's lines");
    let top: Vec<&AuditLine> = top
        .into_iter()
        .filter(|l| l.substatement_id == last)
        .collect();
    let chosen = top
        .iter()
        .find(|l| Some(l.command.as_str()) == tag)
        .unwrap_or(&top[0]);
    let objects = own
        .iter()
        .filter(|l| !l.object_type.is_empty() && !is_call(l))
        // A DDL statement's sub-commands: implicit objects (a serial column's sequence),
        // DROP OWNED's REVOKEs.
        .filter(|l| {
            chosen.class != "DDL"
                || !matches!(l.class.as_str(), "DDL" | "ROLE")
                || l.command == chosen.command
        })
        .map(|l| (l.object_type.clone(), l.object_name.clone()))
        .collect();
    PgAuditView {
        class: chosen.class.clone(),
        command: chosen.command.clone(),
        objects,
        executes,
        lines: group.clone(),
    }
}

/// The proxy's class is pgAudit's; or MISC_SET for SET and RESET (pgAudit prints MISC but
/// files them under MISC_SET too); or FUNCTION where pgAudit logged a function execution
/// under the statement's text (CALL is MISC, with a FUNCTION line for the procedure).
fn same_class(v: &PgAuditView, proxy: &str) -> bool {
    v.class == proxy
        || (v.class == "MISC"
            && proxy == "MISC_SET"
            && matches!(v.command.as_str(), "SET" | "RESET"))
        || (proxy == "FUNCTION" && v.executes)
}

/// pgAudit's view of what an EXECUTE ran: the first line of its statement_id (the
/// prepared statement's, under the PREPARE's text, logged before the MISC,EXECUTE line),
/// when there is one.
fn ran_by_execute(v: &PgAuditView) -> Option<PgAuditView> {
    let ran = v
        .lines
        .iter()
        .filter(|l| l.command != "???" && l.command != "EXECUTE")
        .min_by_key(|l| l.substatement_id)?;
    let objects = v
        .lines
        .iter()
        .filter(|l| l.substatement_id == ran.substatement_id && !l.object_type.is_empty())
        .map(|l| (l.object_type.clone(), l.object_name.clone()))
        .collect();
    Some(PgAuditView {
        class: ran.class.clone(),
        command: ran.command.clone(),
        objects,
        ..v.clone()
    })
}

/// Whether pgAudit's (lack of) objects says anything: it names objects only for
/// relations a query touches (executor) and for DDL its event triggers report; a
/// utility command for which it names none (VACUUM, LOCK, TRUNCATE, ...) is not compared.
fn objects_comparable(v: &PgAuditView) -> bool {
    !v.objects.is_empty()
        || matches!(
            v.command.as_str(),
            "SELECT" | "INSERT" | "UPDATE" | "DELETE"
        )
}

// ---- Comparing objects ----

/// `a."B c".d` → [a, B c, d].
fn split_name(name: &str) -> Vec<String> {
    let (mut parts, mut quoted) = (vec![String::new()], false);
    let mut chars = name.chars().peekable();
    while let Some(c) = chars.next() {
        let last = parts.last_mut().expect("never empty");
        match c {
            '"' if quoted && chars.peek() == Some(&'"') => {
                chars.next();
                last.push('"');
            }
            '"' => quoted = !quoted,
            '.' if !quoted => parts.push(String::new()),
            c => last.push(c),
        }
    }
    parts
}

/// Relation kinds a query's text cannot tell apart.
fn is_relation(kind: &str) -> bool {
    matches!(
        kind,
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" | "SEQUENCE"
    ) || matches!(kind, "PARTITIONED TABLE" | "COMPOSITE TYPE")
}

/// One object as compared: kind and name parts (no parts: any name of that kind).
type Obj = (String, Vec<String>);

/// Normalises one object of a statement of `class` (see the file's doc); None drops it.
fn norm_object(class: &str, kind: &str, name: &str, proxy_side: bool) -> Option<Obj> {
    let executes = !matches!(class, "DDL" | "ROLE");
    match kind {
        "ROLE" | "DATABASE" if proxy_side => return None,
        "FUNCTION" | "PROCEDURE" if executes => return None,
        _ => {}
    }
    let name = match kind {
        "FUNCTION" | "PROCEDURE" | "AGGREGATE" | "ROUTINE" => {
            name.split('(').next().unwrap_or(name)
        }
        _ => name,
    };
    let parts = if name.is_empty() {
        Vec::new()
    } else {
        split_name(name)
    };
    let kind = match kind {
        k if matches!(class, "READ" | "WRITE") && is_relation(k) => "RELATION",
        "COMPOSITE TYPE" | "DOMAIN" => "TYPE",
        k => k,
    };
    Some((kind.to_string(), parts))
}

/// The proxy's name (as written) is pgAudit's (qualified) or a suffix of it.
fn same_name(pgaudit: &[String], proxy: &[String]) -> bool {
    !proxy.is_empty() && pgaudit.ends_with(proxy)
}

/// pgAudit's object `a` is the proxy's `p`: same kind and name, any name for a nameless
/// one; a TABLE COLUMN is the proxy's COLUMN or TABLE COLUMN, or the column's TABLE; a
/// TABLE is also the proxy's TABLE COLUMN of one of its columns (pgAudit names only the
/// table for ADD COLUMN and ALTER COLUMN).
fn same_object((ak, an): &Obj, (pk, pn): &Obj) -> bool {
    match ak.as_str() {
        _ if an.is_empty() => ak == pk,
        "TABLE COLUMN" if pk == "TABLE" => same_name(&an[..an.len() - 1], pn),
        "TABLE COLUMN" => matches!(pk.as_str(), "COLUMN" | "TABLE COLUMN") && same_name(an, pn),
        "TABLE" if pk == "TABLE COLUMN" => same_name(an, &pn[..pn.len().saturating_sub(1)]),
        _ => ak == pk && same_name(an, pn),
    }
}

/// pgAudit names a trigger, policy or rule `x on schema.table`; the proxy gives the two
/// objects (`TRIGGER x`, `TABLE table`): split pgAudit's the same way.
fn split_on_table(kind: &str, name: &str) -> Vec<(String, String)> {
    match name.split_once(" on ") {
        Some((object, table)) if matches!(kind, "TRIGGER" | "POLICY" | "RULE") => vec![
            (kind.to_string(), object.to_string()),
            ("TABLE".to_string(), table.to_string()),
        ],
        _ => vec![(kind.to_string(), name.to_string())],
    }
}

/// The proxy prints the role keywords of a statement's text as such (`CURRENT_USER on
/// server s`); the event's `user` (the session user) and `role` (the effective role
/// when it differs) say who they are. pgAudit prints the role the server resolved.
fn resolve_keywords(name: &str, event: &Value) -> String {
    let user = event["user"].as_str().unwrap_or("?");
    let current = event["role"].as_str().unwrap_or(user);
    let head = name.split(' ').next().unwrap_or("");
    let resolved = match head {
        "CURRENT_USER" | "CURRENT_ROLE" => current,
        "SESSION_USER" => user,
        _ => return name.to_string(),
    };
    format!("{resolved}{}", &name[head.len()..])
}

/// Compares objects; returns (agree, pgAudit's as compared, the proxy's as compared).
fn compare_objects(
    class: &str,
    pgaudit: &BTreeSet<(String, String)>,
    event: &Value,
) -> (bool, String, String) {
    let proxy: Vec<(String, String)> = event["objects"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|o| {
            let name = o["name"].as_str().unwrap_or("?");
            (
                o["type"].as_str().unwrap_or("?").to_string(),
                resolve_keywords(name, event),
            )
        })
        .collect();
    let a: BTreeSet<Obj> = pgaudit
        .iter()
        .flat_map(|(k, n)| split_on_table(k, n))
        .filter_map(|(k, n)| norm_object(class, &k, &n, false))
        .collect();
    let p: BTreeSet<Obj> = proxy
        .iter()
        .filter_map(|(k, n)| norm_object(class, k, n, true))
        .collect();
    let agree = a.iter().all(|x| p.iter().any(|o| same_object(x, o)))
        && p.iter().all(|o| a.iter().any(|x| same_object(x, o)));
    (agree, fmt_objects(&a), fmt_objects(&p))
}

fn fmt_objects(o: &BTreeSet<Obj>) -> String {
    let v: Vec<String> = o
        .iter()
        .map(|(k, n)| {
            if n.is_empty() {
                format!("{k} *")
            } else {
                format!("{k} {}", n.join("."))
            }
        })
        .collect();
    format!("[{}]", v.join(", "))
}

/// One entry of known_disagreements.toml.
#[derive(Debug, serde::Deserialize)]
struct Known {
    statement: String,
    field: String,
    pgaudit: String,
    pgvigil: String,
    reason: String,
}

fn known_disagreements(data_dir: &Path) -> Vec<Known> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        disagreement: Vec<Known>,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/known_disagreements.toml");
    let text = std::fs::read_to_string(&path).expect("read known_disagreements.toml");
    let text = text.replace("@DATA_DIR@", &data_dir.display().to_string());
    toml::from_str::<File>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .disagreement
}

/// Waits (bounded) for `n` statement events of sessions tagged `app`; returns them in
/// log order.
fn wait_statements(proxy: &Proxy, app: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement" && e["application_name"] == app)
            .collect();
        if events.len() >= n {
            return events;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = proxy.audit_events().iter().map(|e| e.to_string()).collect();
            panic!(
                "{} of {n} statement events for {app}; audit log:\n{}",
                events.len(),
                all.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn corpus_agrees_with_pgaudit() {
    let pg = pg();
    let (setup, blocks) = load_corpus(pg.data_dir());
    assert!(
        blocks.len() >= 150,
        "the corpus has {} statements",
        blocks.len()
    );
    pg.psql("postgres", "app", &setup)
        .unwrap_or_else(|e| panic!("corpus setup: {e}"));
    let proxy = start_proxy();

    // 1. The corpus through the proxy, one statement per Query, in one session.
    let mut s = open_session(proxy.port, "postgres", "unused", CORPUS_APP);
    let mut replies = Vec::new();
    for b in &blocks {
        let r = simple_query(&mut s, &b.text, &b.stdin);
        assert_eq!(
            r.sqlstate, b.error,
            "corpus line {}: {:?}: {:?}",
            b.line, b.text, r.message
        );
        replies.push(r);
    }
    let _ = s.write_all(&frontend_msg(b'X', &[]));
    drop(s);

    // 2. pgAudit's side: every successful statement has its lines.
    let log = std::fs::read_to_string(pg.log_file()).unwrap_or_default();
    if let Some(copy) = std::env::var_os("PGVIGIL_PGAUDIT_LOG_COPY") {
        let _ = std::fs::write(copy, &log); // for studying pgAudit's output afterwards
    }
    let views = pair_pgaudit(&blocks, &replies, &pgaudit_lines(&log, CORPUS_APP));
    for ((b, r), v) in blocks.iter().zip(&replies).zip(&views) {
        let expected = r.sqlstate.is_none() && b.silent.is_none();
        assert_eq!(
            v.is_some(),
            expected,
            "line {}: pgAudit lines for {:?}: {v:?}",
            b.line,
            b.text
        );
    }

    // 3. The proxy's side: one event per Query; statement_id is the Query's position.
    let events = wait_statements(&proxy, CORPUS_APP, blocks.len());
    let by_id: HashMap<u64, &Value> = events
        .iter()
        .filter_map(|e| Some((e["statement_id"].as_u64()?, e)))
        .collect();
    let known = known_disagreements(pg.data_dir());
    // Per field: statements compared, and agreeing.
    let (mut compared, mut agree, mut excused) = ([0usize; 3], [0usize; 3], [0usize; 3]);
    // Objects of DDL and ROLE statements (pgAudit's class): compared, agreeing.
    let mut ddl_role = [0usize; 2];
    let (mut report, mut errors, mut seen) = (Vec::new(), Vec::new(), BTreeSet::new());
    for (i, ((b, r), v)) in blocks.iter().zip(&replies).zip(&views).enumerate() {
        let Some(e) = by_id.get(&(i as u64 + 1)) else {
            errors.push(format!(
                "line {}: no event with statement_id {}: {:?}",
                b.line,
                i + 1,
                b.text
            ));
            continue;
        };
        if e["substatement_id"] != 1 || e["protocol"] != "simple" {
            errors.push(format!("line {}: substatement_id or protocol: {e}", b.line));
        }
        let want_outcome = if r.sqlstate.is_some() { "error" } else { "ok" };
        let want_state = r.sqlstate.as_deref().map_or(Value::Null, Value::from);
        if e["outcome"] != want_outcome || e["sqlstate"] != want_state {
            errors.push(format!(
                "line {}: {:?}: server said {want_state}; event outcome {} sqlstate {}",
                b.line, b.text, e["outcome"], e["sqlstate"]
            ));
        }
        // Issue 14: a role keyword (CURRENT_USER, ALTER ROLE ALL) is never logged as a
        // role of that name; only a quoted name in the text is one.
        for o in e["objects"].as_array().into_iter().flatten() {
            let name = o["name"].as_str().unwrap_or("");
            for k in ["current_user", "session_user", "current_role", "all"] {
                let quoted = format!("\"{k}\"");
                if name.contains(&quoted) && !b.text.contains(&quoted) {
                    errors.push(format!("line {}: keyword logged as role: {o}", b.line));
                }
            }
        }
        // ... and a keyword form (bare upper-case) appears only where the text has the
        // keyword unquoted: a role named "CURRENT_USER" stays quoted.
        let unquoted: String = b
            .text
            .split('"')
            .step_by(2)
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        for o in e["objects"].as_array().into_iter().flatten() {
            let name = o["name"].as_str().unwrap_or("");
            let head = name.split(' ').next().unwrap_or("");
            let keyword = ["CURRENT_USER", "SESSION_USER", "CURRENT_ROLE", "ALL"].contains(&head);
            let written = unquoted.contains(head)
                || (head == "CURRENT_USER" && unquoted.contains("FOR USER SERVER"));
            if keyword && !written {
                errors.push(format!("line {}: keyword not in the text: {o}", b.line));
            }
        }
        let Some(v) = v else { continue };
        // A plain EXPLAIN EXECUTE runs nothing: pgvigil logs it as MISC/EXPLAIN, and the
        // line to compare is pgAudit's EXPLAIN line, not the prepared statement pgAudit
        // also logs from the planner.
        let plain_explain = e["command"] == "EXPLAIN" && e["class"] == "MISC";
        let ran = (e["prepared_statement"].is_string() && !plain_explain)
            .then(|| ran_by_execute(v))
            .flatten();
        let v = ran.as_ref().unwrap_or(v);
        // A FETCH/MOVE is the cursor's query by design; pgAudit has MISC for it.
        let cursor =
            e["cursor_query"].is_string() && matches!(v.command.as_str(), "FETCH" | "MOVE");
        let class = e["class"].as_str().unwrap_or("?").to_string();
        let command = e["command"].as_str().unwrap_or("?").to_string();
        let (objects_agree, pa, px) = compare_objects(&v.class, &v.objects, e);
        if objects_comparable(v) && matches!(v.class.as_str(), "DDL" | "ROLE") {
            ddl_role[0] += 1;
            ddl_role[1] += usize::from(objects_agree);
        }
        let fields = [
            Some((
                "class",
                cursor || same_class(v, &class),
                v.class.clone(),
                class,
            )),
            Some(("command", v.command == command, v.command.clone(), command)),
            objects_comparable(v).then_some(("objects", objects_agree, pa, px)),
        ];
        for (k, (field, same, want, got)) in fields
            .into_iter()
            .enumerate()
            .filter_map(|(k, f)| Some((k, f?)))
        {
            compared[k] += 1;
            if same {
                agree[k] += 1;
                continue;
            }
            let listed = known
                .iter()
                .position(|d| d.field == field && d.statement.trim() == b.text);
            if let Some(n) = listed {
                seen.insert(n);
                excused[k] += 1;
            }
            let reason = match listed.map(|n| &known[n]) {
                Some(d) if d.pgaudit == want && d.pgvigil == got => d.reason.clone(),
                Some(d) => format!("{} (listed with other values)", d.reason),
                None => "UNLISTED".to_string(),
            };
            let text = b.text.replace('\n', "\n    ");
            report.push(format!(
                "line {} {field}: pgaudit {want} / pgvigil {got} [{reason}]\n    {text}",
                b.line
            ));
            if listed.is_none() {
                let raw: Vec<String> = v
                    .lines
                    .iter()
                    .map(|l| {
                        format!(
                            "{},{},{},{},{}",
                            l.substatement_id, l.class, l.command, l.object_type, l.object_name
                        )
                    })
                    .collect();
                report.push(format!("    pgAudit's lines: {}", raw.join(" | ")));
            }
        }
    }
    for (n, d) in known.iter().enumerate().filter(|(n, _)| !seen.contains(n)) {
        report.push(format!(
            "listed #{n} ({}) agrees now: {:?}",
            d.field, d.statement
        ));
    }
    let pct = |n: usize, k: usize| 100.0 * n as f64 / compared[k].max(1) as f64;
    let rate = |k: usize| pct(agree[k], k);
    let rate_excused = |k: usize| pct(agree[k] + excused[k], k);
    println!("\n{} disagreements:\n{}", report.len(), report.join("\n"));
    println!(
        "\npgAudit agreement: class {:.1}% ({}/{}), command {:.1}% ({}/{}), objects {:.1}% ({}/{}; \
         {} utility statements without pgAudit objects not compared)\n\
         with the listed disagreements excused: command {:.1}%, objects {:.1}%",
        rate(0), agree[0], compared[0], rate(1), agree[1], compared[1], rate(2), agree[2], compared[2],
        compared[0] - compared[2], rate_excused(1), rate_excused(2)
    );
    let ddl_role_rate = 100.0 * ddl_role[1] as f64 / ddl_role[0].max(1) as f64;
    println!(
        "objects of DDL and ROLE statements: {ddl_role_rate:.1}% ({}/{})",
        ddl_role[1], ddl_role[0]
    );
    assert!(
        errors.is_empty(),
        "event mismatches:\n{}",
        errors.join("\n")
    );
    assert_eq!(
        agree[0], compared[0],
        "class must always agree with pgAudit"
    );
    // Issue 14: object agreement on DDL and ROLE statements, raw (listed ones count).
    assert!(
        ddl_role[0] >= 60 && ddl_role_rate >= 95.0,
        "DDL and ROLE objects: {ddl_role_rate:.1}% of {} < 95%",
        ddl_role[0]
    );
    // Raw: every disagreement counts, listed or not. The command floor is lower: the corpus
    // deliberately holds the shapes pgAudit 1.7 names wrongly (MERGE as INSERT/UPDATE, COPY
    // of a table as SELECT/INSERT: 15 statements) and the FETCH/MOVE that pgvigil logs as
    // its cursor's query by design; each is listed with its reason.
    for (k, field, floor) in [(1, "command", 94.0), (2, "objects", 95.0)] {
        assert!(
            rate(k) >= floor,
            "{field} agreement {:.1}% < {floor}%",
            rate(k)
        );
        // Every disagreement beyond the listed ones is a regression.
        assert!(
            rate_excused(k) >= 100.0,
            "{field}: unlisted disagreements ({:.1}% with the listed excused)",
            rate_excused(k)
        );
    }
}

#[test]
fn multi_statement_query_has_one_event_per_statement() {
    let proxy = start_proxy();
    let app = "pgaudit_multi";
    let mut s = open_session(proxy.port, "app_user", "app_pass", app);
    let r = simple_query(&mut s, "select 1; select * from missing_t; select 2", &[]);
    assert_eq!(r.sqlstate.as_deref(), Some("42P01"));
    assert_eq!(simple_query(&mut s, "select 3", &[]).sqlstate, None);
    let mut events = wait_statements(&proxy, app, 4);
    events.sort_by_key(|e| (e["statement_id"].as_u64(), e["substatement_id"].as_u64()));
    let got: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["statement_id"], e["substatement_id"], e["outcome"], e["statement"]
            )
        })
        .collect();
    let want = [
        r#"1 1 "ok" "select 1""#,
        r#"1 2 "error" "select * from missing_t""#,
        r#"1 3 "skipped" "select 2""#,
        r#"2 1 "ok" "select 3""#,
    ];
    assert_eq!(got, want, "events: {events:#?}");
    assert_eq!(events[1]["sqlstate"], "42P01", "{:#}", events[1]);
    for e in &events {
        assert_eq!(
            (&e["class"], &e["command"]),
            (&"READ".into(), &"SELECT".into()),
            "{e}"
        );
        assert_eq!(
            (&e["user"], &e["database"], &e["user_kind"]),
            (&"app_user".into(), &"app".into(), &"human".into()),
            "{e}"
        );
        assert_eq!(e["protocol"], "simple", "{e}");
    }
}
