//! How pgAudit's log is read and compared with pgvigil's events for `audit_pgaudit.rs`:
//! parsing `AUDIT: SESSION` lines, pairing them with corpus statements, and the class,
//! command and object comparisons (with the normalisations the test file's doc explains).

use super::{Block, Reply};
use serde_json::Value;
use std::collections::BTreeSet;

/// One `AUDIT: SESSION,...` line.
#[derive(Debug, Clone)]
pub(crate) struct AuditLine {
    pub(crate) statement_id: u64,
    pub(crate) substatement_id: u64,
    pub(crate) class: String,
    pub(crate) command: String,
    pub(crate) object_type: String,
    pub(crate) object_name: String,
    pub(crate) statement: String,
}

/// Reads the CSV field at the start of `s`: the field and, after a comma, the rest.
pub(crate) fn csv_field(s: &str) -> (String, Option<&str>) {
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
pub(crate) fn pgaudit_lines(log: &str, app: &str) -> Vec<AuditLine> {
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
pub(crate) fn same_text(pgaudit: &str, sql: &str) -> bool {
    let parts: Vec<&str> = pgaudit.split("<REDACTED>").collect();
    pgaudit == sql
        || (parts.len() > 1 && sql.starts_with(parts[0]) && sql.ends_with(parts[parts.len() - 1]))
}

/// What pgAudit says about one corpus statement.
#[derive(Debug, Clone)]
pub(crate) struct PgAuditView {
    pub(crate) class: String,
    pub(crate) command: String,
    /// (type, name); the name is empty where pgAudit gives only a type.
    pub(crate) objects: BTreeSet<(String, String)>,
    /// pgAudit logged a function execution (EXECUTE) under the statement's own text.
    pub(crate) executes: bool,
    /// Every line of the statement_id, for the report.
    pub(crate) lines: Vec<AuditLine>,
}

/// Pairs each corpus statement with the next pgAudit statement_id, in order. Failed
/// statements and those pgAudit does not log get None.
pub(crate) fn pair_pgaudit(
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

pub(crate) fn view_of(group: Vec<AuditLine>, sql: &str, tag: Option<&str>) -> PgAuditView {
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
pub(crate) fn same_class(v: &PgAuditView, proxy: &str) -> bool {
    v.class == proxy
        || (v.class == "MISC"
            && proxy == "MISC_SET"
            && matches!(v.command.as_str(), "SET" | "RESET"))
        || (proxy == "FUNCTION" && v.executes)
}

/// pgAudit's view of what an EXECUTE ran: the first line of its statement_id (the
/// prepared statement's, under the PREPARE's text, logged before the MISC,EXECUTE line),
/// when there is one.
pub(crate) fn ran_by_execute(v: &PgAuditView) -> Option<PgAuditView> {
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
pub(crate) fn objects_comparable(v: &PgAuditView) -> bool {
    !v.objects.is_empty()
        || matches!(
            v.command.as_str(),
            "SELECT" | "INSERT" | "UPDATE" | "DELETE"
        )
}

// ---- Comparing objects ----

/// `a."B c".d` → [a, B c, d].
pub(crate) fn split_name(name: &str) -> Vec<String> {
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
pub(crate) fn is_relation(kind: &str) -> bool {
    matches!(
        kind,
        "TABLE" | "VIEW" | "MATERIALIZED VIEW" | "FOREIGN TABLE" | "SEQUENCE"
    ) || matches!(kind, "PARTITIONED TABLE" | "COMPOSITE TYPE")
}

/// One object as compared: kind and name parts (no parts: any name of that kind).
pub(crate) type Obj = (String, Vec<String>);

/// Normalises one object of a statement of `class` (see the file's doc); None drops it.
pub(crate) fn norm_object(class: &str, kind: &str, name: &str, proxy_side: bool) -> Option<Obj> {
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
pub(crate) fn same_name(pgaudit: &[String], proxy: &[String]) -> bool {
    !proxy.is_empty() && pgaudit.ends_with(proxy)
}

/// pgAudit's object `a` is the proxy's `p`: same kind and name, any name for a nameless
/// one; a TABLE COLUMN is the proxy's COLUMN or TABLE COLUMN, or the column's TABLE; a
/// TABLE is also the proxy's TABLE COLUMN of one of its columns (pgAudit names only the
/// table for ADD COLUMN and ALTER COLUMN).
pub(crate) fn same_object((ak, an): &Obj, (pk, pn): &Obj) -> bool {
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
pub(crate) fn split_on_table(kind: &str, name: &str) -> Vec<(String, String)> {
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
pub(crate) fn resolve_keywords(name: &str, event: &Value) -> String {
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
pub(crate) fn compare_objects(
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

pub(crate) fn fmt_objects(o: &BTreeSet<Obj>) -> String {
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
