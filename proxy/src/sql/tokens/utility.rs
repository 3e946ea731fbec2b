//! The token path's utility statements: COPY, CREATE/ALTER/DROP, GRANT/REVOKE, COMMENT,
//! maintenance commands, SET and RESET. Each reads the names at the positions the
//! statement's grammar gives them; all loops advance and none recurse.

use super::commands::{self, Kind};
use super::lexed::{Lexed, Tk};
use super::roles::{
    alter_role, create_role, owner_to, role_at, role_list, role_object, user_mapping,
};
use super::scan;
use super::Head;
use crate::sql::ast::parts as ast_parts;
use crate::sql::noise::{self, Shape};
use crate::sql::{names, Class, Object, RoleChange};

/// The first token in `from..end` at parenthesis depth 0 that is one of `kws`.
pub fn depth0(lx: &Lexed, from: usize, end: usize, kws: &[&str]) -> Option<usize> {
    let mut depth = 0usize;
    for i in from..end.min(lx.toks.len()) {
        let t = lx.get(i)?;
        match t.kind {
            Tk::LParen => depth += 1,
            Tk::RParen => depth = depth.checked_sub(1)?,
            Tk::Semi if depth == 0 => return None,
            Tk::Word if depth == 0 && t.is_any(kws) => return Some(i),
            _ => {}
        }
    }
    None
}

/// Whether the statement ends at token `j` (nothing, or only a semicolon, follows).
pub fn ends_at(lx: &Lexed, j: usize) -> bool {
    lx.toks
        .get(j..)
        .is_none_or(|rest| rest.iter().all(|t| t.kind == Tk::Semi))
}

/// Index of the main statement after `WITH` at `w` (its CTE list skipped).
pub fn after_ctes(lx: &Lexed, w: usize) -> Option<usize> {
    cte_list(lx, w, &mut Vec::new())
}

/// [`after_ctes`], also pushing onto `bodies` the index of each CTE body's `(`, in order
/// (those read before a malformed list gives up).
pub fn cte_list(lx: &Lexed, w: usize, bodies: &mut Vec<usize>) -> Option<usize> {
    let mut j = w + 1;
    if lx.is(j, "recursive") {
        j += 1;
    }
    loop {
        if !lx.kind_is(j, Tk::Word) {
            return None;
        }
        j += 1;
        if lx.kind_is(j, Tk::LParen) {
            j = lx.past_group(j);
        }
        if !lx.is(j, "as") {
            return None;
        }
        j += 1;
        if lx.is(j, "not") {
            j += 1;
        }
        if lx.is(j, "materialized") {
            j += 1;
        }
        if !lx.kind_is(j, Tk::LParen) {
            return None;
        }
        bodies.push(j);
        j = lx.past_group(j);
        // SEARCH/CYCLE clauses, then `,` or the main statement.
        while let Some(t) = lx.get(j) {
            if t.kind == Tk::Comma || t.kind == Tk::LParen {
                break;
            }
            if t.is_any(&[
                "select", "insert", "update", "delete", "merge", "values", "table",
            ]) {
                return Some(j);
            }
            j += 1;
        }
        if lx.kind_is(j, Tk::LParen) {
            return Some(j);
        }
        if !lx.kind_is(j, Tk::Comma) {
            return None;
        }
        j += 1;
    }
}

/// `EXPLAIN` options starting at `i`: whether ANALYZE is on, whether that was read from
/// a literal (`ANALYZE 'off'`: the cache must not reuse the verdict), and where the
/// explained statement starts.
pub fn explain_options(lx: &Lexed, i: usize) -> (bool, bool, usize) {
    let mut analyze = false;
    let mut literal = false;
    if lx.kind_is(i, Tk::LParen) {
        let close = lx.close.get(i).copied().unwrap_or(lx.toks.len());
        let mut j = i + 1;
        while j < close {
            if lx.get(j).is_some_and(|t| t.is_any(&["analyze", "analyse"])) {
                analyze = match lx.get(j + 1) {
                    Some(v) if matches!(v.kind, Tk::Word | Tk::Str | Tk::Num) => {
                        literal |= v.kind != Tk::Word;
                        !ast_parts::is_false(&v.text)
                    }
                    _ => true,
                };
            }
            j += 1;
        }
        return (analyze, literal, close.saturating_add(1));
    }
    let mut j = i;
    while let Some(t) = lx.get(j) {
        if t.is_any(&["analyze", "analyse"]) {
            analyze = true;
        } else if !t.is("verbose") {
            break;
        }
        j += 1;
    }
    (analyze, false, j)
}

/// A comma-separated list of names from `j` (`[ONLY] name [*] [(...)]`), added as
/// objects of `kind`; returns the index after it.
pub fn name_list(lx: &Lexed, j: usize, kind: &str, h: &mut Head) -> usize {
    let (list, e) = names_at(lx, j);
    for parts in &list {
        h.target(kind, parts);
    }
    e
}

/// The names of a comma-separated list from `j` (folded parts each), and the index
/// after it.
pub fn names_at(lx: &Lexed, j: usize) -> (Vec<Vec<String>>, usize) {
    let mut out = Vec::new();
    let mut i = j;
    loop {
        if lx.is(i, "only") || lx.is(i, "group") {
            i += 1;
        }
        let (parts, e) = lx.name_at(i);
        if parts.is_empty() {
            return (out, i);
        }
        out.push(parts);
        i = e;
        if lx.kind_is(i, Tk::Op) {
            i += 1;
        }
        if lx.kind_is(i, Tk::LParen) {
            i = lx.past_group(i);
        }
        if !lx.kind_is(i, Tk::Comma) {
            return (out, i);
        }
        i += 1;
    }
}

/// `schema.*` for objects of every name in a schema (`GRANT ... ON ALL TABLES IN SCHEMA
/// s`, default privileges): pgAudit prints the kind with no name.
pub fn all_in(schema: Option<&[String]>) -> String {
    match schema {
        Some(s) => format!("{}.*", names::render(s)),
        None => "*".to_string(),
    }
}

/// `COPY table|(query) FROM|TO ...`. pgAudit: COPY FROM is LOGSTMT_MOD (WRITE), COPY TO
/// is LOGSTMT_ALL with T_CopyStmt (READ).
pub fn copy(lx: &Lexed, k: usize, end: usize) -> Head {
    let mut h = Head::new(Class::Write, "COPY");
    let j = copy_relation_at(lx, k);
    if lx.kind_is(j, Tk::LParen) {
        let close = lx.close.get(j).copied().unwrap_or(end);
        scan::scan(lx, j + 1..close, &mut h.scan);
    } else {
        h.target("TABLE", &lx.name_at(j).0);
    }
    match copy_direction_at(lx, k, end) {
        Some(d) if lx.is(d, "to") => h.class = Class::Read,
        Some(_) => {}
        None => h.scan.uncertain = true,
    }
    h
}

/// Where the relation or query of the `COPY` at `k` starts: past `BINARY` in the old
/// `COPY BINARY t TO ...` syntax (a table named binary must be quoted there).
fn copy_relation_at(lx: &Lexed, k: usize) -> usize {
    let relation = lx
        .get(k + 2)
        .is_some_and(|t| t.kind == Tk::Word && !t.is_any(&["from", "to"]));
    if lx.is(k + 1, "binary") && relation {
        k + 2
    } else {
        k + 1
    }
}

/// The index of the `FROM` or `TO` of the `COPY` at `k`: the first at parenthesis depth
/// 0 after the relation and its column list, or after the parenthesized query.
pub fn copy_direction_at(lx: &Lexed, k: usize, end: usize) -> Option<usize> {
    let j = copy_relation_at(lx, k);
    let after = if lx.kind_is(j, Tk::LParen) {
        lx.past_group(j)
    } else {
        let (_, e) = lx.name_at(j);
        if lx.kind_is(e, Tk::LParen) {
            lx.past_group(e)
        } else {
            e
        }
    };
    depth0(lx, after, end, &["from", "to"])
}

/// `CREATE|ALTER|DROP <kind> ...` (`verb` upper-case).
pub fn ddl(lx: &Lexed, k: usize, end: usize, verb: &str) -> Head {
    let mut j = k + 1;
    if verb == "CREATE" {
        while lx
            .get(j)
            .is_some_and(|t| t.is_any(commands::CREATE_MODIFIERS))
            || (lx.is(j, "constraint") && lx.is(j + 1, "trigger"))
        {
            j += 1;
        }
    }
    let Some((kind, after)) = commands::kind_at(lx, j) else {
        // A DDL verb with a kind this table does not know.
        return Head::new(Class::Ddl, "UNKNOWN");
    };
    let (command, class) = commands::ddl_command(verb, kind);
    let mut h = Head::new(class, &command);
    if kind.name == "DEFAULT PRIVILEGES" {
        default_privileges(lx, after, end, &mut h);
        return h;
    }
    if kind.name == "OWNED" && lx.is(after, "by") {
        // DROP OWNED BY r1, r2: the roles; what the server drops is not in the text.
        role_list(lx, after + 1, &mut h);
        return h;
    }
    if commands::NAMELESS.contains(&kind.name) {
        return h;
    }
    let mut n = after;
    while lx
        .get(n)
        .is_some_and(|t| t.is_any(&["if", "not", "exists", "concurrently", "only"]))
    {
        n += 1;
    }
    let on_table = matches!(kind.name, "TRIGGER" | "RULE" | "POLICY");
    match (verb, kind.name) {
        (_, "USER MAPPING") => user_mapping(lx, n, &mut h),
        ("DROP", "ROLE") => {
            role_list(lx, n, &mut h);
        }
        ("DROP", _) => {
            let e = name_list(lx, n, kind.name, &mut h);
            if on_table && lx.is(e, "on") {
                table_after(lx, e + 1, &mut h);
            }
        }
        ("CREATE", "TABLE" | "VIEW" | "MATERIALIZED VIEW") => {
            h.target(kind.name, &lx.name_at(n).0);
            if let Some(a) = depth0(lx, n, end, &["as"]) {
                if kind.name == "TABLE" {
                    h.command = "CREATE TABLE AS".to_string();
                }
                scan::scan(lx, a + 1..end, &mut h.scan);
                if kind.name == "VIEW" {
                    // A view's query does not run: it reads nothing (pgAudit names only
                    // the view). Its functions stay recorded.
                    h.scan.objects.clear();
                }
            }
        }
        ("CREATE", "INDEX") => {
            // pgAudit names the index, in its table's schema; the table only when the
            // index has no name of its own here.
            let on = depth0(lx, n, end, &["on"]);
            let table = on.map(|o| if lx.is(o + 1, "only") { o + 2 } else { o + 1 });
            let table = table.map(|t| lx.name_at(t).0).unwrap_or_default();
            if lx.is(n, "on") {
                h.target("TABLE", &table);
            } else {
                h.target(
                    "INDEX",
                    &names::index_in_table_schema(lx.name_at(n).0, &table),
                );
            }
        }
        ("CREATE", "SCHEMA") if lx.is(n, "authorization") => {
            h.target("SCHEMA", &lx.name_at(n + 1).0);
        }
        ("ALTER", "TABLE") if lx.is(n, "all") => {}
        ("ALTER", "ROLE") => alter_role(lx, n, &mut h),
        ("CREATE", "ROLE") => create_role(lx, n, end, &mut h),
        ("ALTER", "TABLE") => {
            let (table, e) = lx.name_at(n);
            h.target("TABLE", &table);
            if !table.is_empty() {
                alter_table_actions(lx, &table, e, end, &mut h);
            }
        }
        _ => {
            h.target(kind.name, &lx.name_at(n).0);
            // CREATE RULE r AS ON event TO t; CREATE/ALTER TRIGGER|POLICY x ON t.
            if verb != "DROP" && on_table {
                let kw = if verb == "CREATE" && kind.name == "RULE" {
                    "to"
                } else {
                    "on"
                };
                if let Some(p) = depth0(lx, n + 1, end, &[kw]) {
                    table_after(lx, p + 1, &mut h);
                }
            }
            if verb == "ALTER" {
                owner_to(lx, n + 1, end, &mut h);
            }
        }
    }
    h
}

/// The actions of `ALTER TABLE t action [, ...]` from `i`: the column each column action
/// names (`TABLE COLUMN t.c`, as pgAudit types it; a rename names the new column, as
/// pgAudit does), and the new owner of `OWNER TO`.
fn alter_table_actions(lx: &Lexed, table: &[String], mut i: usize, end: usize, h: &mut Head) {
    const CONSTRAINTS: &[&str] = &[
        "constraint",
        "primary",
        "unique",
        "check",
        "foreign",
        "exclude",
    ];
    loop {
        let mut column = None;
        let first = lx.get(i).map(|t| t.text.to_ascii_lowercase());
        let is_word = lx.kind_is(i, Tk::Word) && lx.get(i).is_some_and(|t| !t.quoted);
        match first.as_deref().filter(|_| is_word) {
            Some(verb @ ("add" | "drop" | "alter" | "rename")) => {
                let mut j = i + 1;
                if lx.is(j, "column") {
                    j += 1;
                } else if lx.get(j).is_some_and(|t| t.is_any(CONSTRAINTS)) || lx.is(j, "to") {
                    j = end;
                }
                if verb == "add" && lx.is(j, "if") && lx.is(j + 1, "not") {
                    j += 3;
                } else if verb == "drop" && lx.is(j, "if") && lx.is(j + 1, "exists") {
                    j += 2;
                }
                if verb == "rename" {
                    j = if lx.is(j + 1, "to") { j + 2 } else { end };
                }
                column = lx.get(j).filter(|t| t.kind == Tk::Word && j < end);
            }
            Some("owner") if lx.is(i + 1, "to") => match role_at(lx, i + 2) {
                Some(r) => h.targets.push(role_object(r)),
                None => h.scan.uncertain = true,
            },
            _ => {}
        }
        if let Some(c) = column {
            let mut parts = table.to_vec();
            parts.push(c.folded());
            h.target("TABLE COLUMN", &parts);
        }
        match next_comma(lx, i + 1, end) {
            Some(c) => i = c + 1,
            None => return,
        }
    }
}

/// The first comma at parenthesis depth 0 in `from..end`.
fn next_comma(lx: &Lexed, from: usize, end: usize) -> Option<usize> {
    let mut depth = 0usize;
    for i in from..end.min(lx.toks.len()) {
        match lx.get(i)?.kind {
            Tk::LParen => depth += 1,
            Tk::RParen => depth = depth.checked_sub(1)?,
            Tk::Comma if depth == 0 => return Some(i),
            Tk::Semi if depth == 0 => return None,
            _ => {}
        }
    }
    None
}

fn table_after(lx: &Lexed, i: usize, h: &mut Head) {
    let i = if lx.is(i, "only") { i + 1 } else { i };
    h.target("TABLE", &lx.name_at(i).0);
}

/// `ALTER DEFAULT PRIVILEGES [FOR ROLE r, ...] [IN SCHEMA s, ...] GRANT|REVOKE ...`.
fn default_privileges(lx: &Lexed, mut i: usize, end: usize, h: &mut Head) {
    let mut schemas = Vec::new();
    while i < end && !lx.get(i).is_some_and(|t| t.is_any(&["grant", "revoke"])) {
        if lx.is(i, "in") && lx.is(i + 1, "schema") {
            let (list, e) = names_at(lx, i + 2);
            schemas.extend(list);
            i = e;
        } else if lx.is(i, "for") && lx.get(i + 1).is_some_and(|t| t.is_any(&["role", "user"])) {
            i = role_list(lx, i + 2, h);
        } else {
            i += 1;
        }
    }
    // pgAudit names the kind (TABLES, FUNCTIONS, ...) with no object: `TABLES s.*`.
    let kind = depth0(lx, i, end, &["on"])
        .and_then(|on| lx.get(on + 1))
        .filter(|t| t.kind == Tk::Word)
        .map(|t| t.text.to_ascii_uppercase());
    let Some(kind) = kind else {
        h.scan.uncertain = true;
        return;
    };
    if schemas.is_empty() {
        h.targets.push(Object {
            kind,
            name: all_in(None),
        });
    } else {
        for s in &schemas {
            h.targets.push(Object {
                kind: kind.clone(),
                name: all_in(Some(s)),
            });
        }
    }
    // The grantees of the future privileges.
    if let Some(to) = depth0(lx, i, end, &["to", "from"]) {
        role_list(lx, to + 1, h);
    }
}

/// `GRANT|REVOKE privileges ON objects TO|FROM roles`, or role membership without `ON`
/// (pgAudit's GRANT ROLE / REVOKE ROLE). pgAudit prints no names for either; we list the
/// objects or the granted roles, then the grantees.
pub fn grant(lx: &Lexed, k: usize, end: usize, is_grant: bool) -> Head {
    let to_kw = if is_grant { "to" } else { "from" };
    let mut j = k + 1;
    if !is_grant && lx.is(j + 1, "option") && lx.is(j + 2, "for") {
        j += 3;
    }
    let stop = depth0(lx, j, end, &[to_kw]);
    let verb = if is_grant { "GRANT" } else { "REVOKE" };
    match depth0(lx, j, stop.unwrap_or(end), &["on"]) {
        Some(on) => {
            let mut h = Head::new(Class::Role, verb);
            let i = on + 1;
            let bulk = [
                ("tables", "TABLE"),
                ("sequences", "SEQUENCE"),
                ("functions", "FUNCTION"),
                ("procedures", "PROCEDURE"),
                ("routines", "ROUTINE"),
            ];
            let all = bulk
                .iter()
                .find(|(w, _)| lx.is(i, "all") && lx.is(i + 1, w));
            if let (Some((_, kind)), true) = (all, lx.is(i + 2, "in")) {
                // ALL TABLES IN SCHEMA s: pgAudit prints TABLE with no name; `TABLE s.*`.
                for s in names_at(lx, i + 4).0 {
                    h.targets.push(Object {
                        kind: kind.to_string(),
                        name: all_in(Some(&s)),
                    });
                }
            } else {
                let (kind, after) = commands::grant_kind_at(lx, i)
                    .map_or(("TABLE", i), |(k, a): (&Kind, usize)| (k.name, a));
                name_list(lx, after, kind, &mut h);
            }
            // The grantees: who gains or loses the privileges.
            if let Some(s) = stop {
                role_list(lx, s + 1, &mut h);
            }
            h
        }
        None => {
            let mut h = Head::new(Class::Role, &format!("{verb} ROLE"));
            name_list(lx, j, "ROLE", &mut h);
            if let Some(s) = stop {
                // Grantees are role specifications: `TO CURRENT_USER`, `FROM PUBLIC`.
                role_list(lx, s + 1, &mut h);
            }
            h
        }
    }
}

/// `COMMENT ON <kind> name IS ...` and `SECURITY LABEL [FOR p] ON <kind> name IS ...`:
/// both LOGSTMT_DDL.
pub fn comment(lx: &Lexed, k: usize, end: usize, command: &str) -> Head {
    let mut h = Head::new(Class::Ddl, command);
    let Some(on) = depth0(lx, k + 1, end, &["on"]) else {
        h.scan.uncertain = true;
        return h;
    };
    match commands::kind_at(lx, on + 1) {
        Some((kind, after)) if !commands::NAMELESS.contains(&kind.name) => {
            h.target(kind.name, &lx.name_at(after).0)
        }
        Some(_) => {}
        None => h.scan.uncertain = true,
    }
    h
}

/// VACUUM, ANALYZE, CLUSTER: options (legacy words or a parenthesized list), then tables.
pub fn maintenance(lx: &Lexed, k: usize, class: Class, command: &str) -> Head {
    let mut h = Head::new(class, command);
    let mut j = k + 1;
    loop {
        if lx.kind_is(j, Tk::LParen) {
            j = lx.past_group(j);
        } else if lx
            .get(j)
            .is_some_and(|t| t.is_any(&["full", "freeze", "verbose", "analyze", "analyse"]))
        {
            j += 1;
        } else {
            break;
        }
    }
    name_list(lx, j, "TABLE", &mut h);
    h
}

/// `REINDEX [(opts)] INDEX|TABLE|SCHEMA|DATABASE|SYSTEM [CONCURRENTLY] name`. pgAudit:
/// ReindexStmt is LOGSTMT_ALL: MISC.
pub fn reindex(lx: &Lexed, k: usize) -> Head {
    let mut h = Head::new(Class::Misc, "REINDEX");
    let j = if lx.kind_is(k + 1, Tk::LParen) {
        lx.past_group(k + 1)
    } else {
        k + 1
    };
    let kind = match lx.get(j).map(|t| t.text.to_ascii_lowercase()).as_deref() {
        Some("index") => "INDEX",
        Some("table") => "TABLE",
        Some("schema") => "SCHEMA",
        Some("database") | Some("system") => "DATABASE",
        _ => return h,
    };
    let n = if lx.is(j + 1, "concurrently") {
        j + 2
    } else {
        j + 1
    };
    let (parts, _) = lx.name_at(n);
    if !parts.is_empty() {
        h.target(kind, &parts);
    }
    h
}

/// A role change from the value at `v` of `SET ROLE` (`role`) or `SET SESSION
/// AUTHORIZATION`. A role folded to `none` resets, as does an unquoted DEFAULT.
fn role_value(lx: &Lexed, v: usize, local: bool, role: bool, h: &mut Head) {
    let Some(t) = lx.get(v) else {
        h.scan.uncertain = true;
        return;
    };
    let (value, literal) = match t.kind {
        Tk::Str => (t.text.clone(), true),
        Tk::Word => (t.folded(), false),
        _ => {
            h.scan.uncertain = true;
            return;
        }
    };
    h.literal_dependent |= literal;
    let reset = (role && value == "none") || (t.kind == Tk::Word && t.is("default"));
    h.role_change = Some(if reset {
        RoleChange::Reset
    } else {
        RoleChange::Set { role: value, local }
    });
}

/// `SET ...`. pgAudit: VariableSetStmt is MISC_SET with tag SET (printed as MISC);
/// SET CONSTRAINTS is ConstraintsSetStmt, LOGSTMT_ALL: MISC.
pub fn set(lx: &Lexed, k: usize, end: usize) -> Head {
    let mut h = Head::new(Class::MiscSet, "SET");
    let mut j = k + 1;
    let mut local = false;
    if lx.is(j, "local") {
        local = true;
        j += 1;
    } else if lx.is(j, "session")
        && !lx.is(j + 1, "authorization")
        && !lx.is(j + 1, "characteristics")
    {
        j += 1;
    }
    // `name TO value` or `name = value`: where the value starts.
    let value_at = |i: usize| {
        if lx.is(i, "to") || lx.kind_is(i, Tk::Op) {
            i + 1
        } else {
            i
        }
    };
    if lx.is(j, "role") {
        role_value(lx, value_at(j + 1), local, true, &mut h);
    } else if lx.is(j, "session") && lx.is(j + 1, "authorization") {
        role_value(lx, j + 2, local, false, &mut h);
    } else if lx.is(j, "transaction") || lx.is(j, "session") {
        h.shape = Shape::Transaction;
    } else if lx.is(j, "constraints") {
        h = Head::new(Class::Misc, "SET CONSTRAINTS");
    } else if lx.is(j, "time") && lx.is(j + 1, "zone") {
        h.shape = Shape::Setting {
            name: "timezone".to_string(),
            value_ok: true,
        };
    } else if lx.is(j, "names") {
        h.shape = Shape::Setting {
            name: "client_encoding".to_string(),
            value_ok: true,
        };
    } else if lx.is(j, "schema") {
        let value = lx
            .get(j + 1)
            .filter(|t| t.kind == Tk::Str)
            .map(|t| t.text.as_str());
        h.literal_dependent = true;
        h.shape = Shape::Setting {
            name: "search_path".to_string(),
            value_ok: value.is_some_and(noise::search_path_literal_ok),
        };
    } else {
        let (parts, e) = lx.name_at(j);
        let name = match parts.as_slice() {
            [one] => one.clone(),
            _ => names::render(&parts),
        };
        let v = value_at(e);
        if name == "role" || name == "session_authorization" {
            role_value(lx, v, local, name == "role", &mut h);
        } else {
            let mut value_ok = !parts.is_empty();
            if name == "search_path" {
                let mut schemas = Vec::new();
                let mut i = v;
                while let Some(t) = lx.get(i).filter(|_| i < end) {
                    match t.kind {
                        Tk::Word => schemas.push(t.folded()),
                        Tk::Str => {
                            // The verdict depends on this literal's value.
                            h.literal_dependent = true;
                            schemas.push(t.text.clone());
                        }
                        Tk::Comma => {}
                        Tk::Semi => break,
                        _ => value_ok = false,
                    }
                    i += 1;
                }
                value_ok &= noise::search_path_ok(&schemas);
            }
            h.shape = Shape::Setting { name, value_ok };
        }
    }
    h
}

/// `RESET name | ROLE | SESSION AUTHORIZATION | ALL`: MISC_SET, tag RESET.
pub fn reset(lx: &Lexed, k: usize) -> Head {
    let mut h = Head::new(Class::MiscSet, "RESET");
    let j = k + 1;
    if lx.is(j, "all") && ends_at(lx, j + 1) {
        h.role_change = Some(RoleChange::Reset);
        h.shape = Shape::Housekeeping;
    } else if lx.is(j, "all")
        || lx.is(j, "role")
        || (lx.is(j, "session") && lx.is(j + 1, "authorization"))
    {
        h.role_change = Some(RoleChange::Reset);
    } else {
        let (parts, _) = lx.name_at(j);
        match parts.as_slice() {
            [one] if one == "session_authorization" => h.role_change = Some(RoleChange::Reset),
            [one] => {
                h.shape = Shape::Setting {
                    name: one.clone(),
                    value_ok: true,
                }
            }
            _ => {}
        }
    }
    h
}
