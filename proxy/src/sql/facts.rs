//! Statement facts ([`StatementFacts`]) for detection rules: whether an UPDATE or DELETE
//! has a WHERE, a COPY's direction and PROGRAM, the attributes a role statement grants,
//! and whether a GRANT grants role membership.
//!
//! [`from_ast`] reads them from sqlparser's statement and [`settle`] keeps those of the
//! command finally reported; [`from_tokens`] reads them from the token path's tokens for
//! that command. Both are iterative and linear. Facts depend on keywords and structure
//! only, never on a literal's value: the classification cache is keyed by a literal-blind
//! fingerprint.
//!
//! Where the paths see the same statement they give the same facts (`facts_tests.rs`).
//! sqlparser 0.63 does not parse role grants (`GRANT admin TO alice`), and `ast.rs` leaves
//! a GRANT without `ON` and `ALTER GROUP` to the token path: `grants_role` comes from the
//! token path only.

use super::tokens::lexed::{Lexed, Tk};
use super::tokens::{commands, roles, utility};
use super::{CopyDirection, StatementFacts};
use sqlparser::ast::{
    AlterRoleOperation, CopyTarget, CreateRole, Query, RoleOption, SetExpr, Statement,
};

/// Role attributes, in the order they are reported (detection rules name them).
pub const ATTRIBUTES: [&str; 6] = [
    "superuser",
    "createrole",
    "createdb",
    "bypassrls",
    "replication",
    "login",
];

/// A set of [`ATTRIBUTES`], one bit each.
#[derive(Debug, Default, Clone, Copy)]
struct Attrs(u8);

impl Attrs {
    /// Turns attribute `name` on or off; other names are ignored.
    fn set(&mut self, name: &str, on: bool) {
        if let Some(i) = ATTRIBUTES.iter().position(|a| *a == name) {
            let bit = 1u8 << i;
            if on {
                self.0 |= bit;
            } else {
                self.0 &= !bit;
            }
        }
    }

    /// The attributes on, in [`ATTRIBUTES`] order.
    fn names(self) -> Vec<String> {
        ATTRIBUTES
            .iter()
            .enumerate()
            .filter(|(i, _)| self.0 & (1u8 << i) != 0)
            .map(|(_, a)| (*a).to_string())
            .collect()
    }
}

/// Ands `w` into `all` (`None`: nothing seen yet).
fn and(all: &mut Option<bool>, w: bool) {
    *all = Some(all.unwrap_or(true) && w);
}

/// Keeps the facts that `command` (the command tag finally reported) has: `has_where` for
/// UPDATE and DELETE, the COPY facts for COPY, role attributes for CREATE/ALTER ROLE,
/// `grants_role` for GRANT ROLE, ALTER ROLE (`ALTER GROUP g ADD USER u`) and CREATE ROLE
/// (`IN ROLE g`, `ROLE u`, `ADMIN u`). A data-modifying CTE can make a SELECT an UPDATE or a
/// DELETE only once the whole statement is walked, hence the facts are read broadly and
/// settled here.
pub fn settle(mut f: StatementFacts, command: &str) -> StatementFacts {
    if !matches!(command, "UPDATE" | "DELETE") {
        f.has_where = None;
    }
    if command != "COPY" {
        f.copy_direction = None;
        f.copy_program = false;
    }
    if !matches!(command, "CREATE ROLE" | "ALTER ROLE") {
        f.role_attributes.clear();
    }
    if !matches!(command, "GRANT ROLE" | "ALTER ROLE" | "CREATE ROLE") {
        f.grants_role = false;
    }
    f
}

/// Facts of a statement sqlparser parsed (not an EXPLAIN or PREPARE wrapper: `ast.rs`
/// keeps the facts of what an EXPLAIN ANALYZE runs and gives a plain EXPLAIN or a
/// PREPARE none).
pub fn from_ast(stmt: &Statement) -> StatementFacts {
    let mut f = StatementFacts::default();
    match stmt {
        Statement::Update(u) => f.has_where = Some(u.selection.is_some()),
        Statement::Delete(d) => f.has_where = Some(d.selection.is_some()),
        Statement::Query(q) => f.has_where = query_where(q),
        Statement::Copy { to, target, .. } => {
            f.copy_direction = Some(if *to {
                CopyDirection::To
            } else {
                CopyDirection::From
            });
            f.copy_program = matches!(target, CopyTarget::Program { .. });
        }
        Statement::CreateRole(cr) => {
            f.role_attributes = create_role_attrs(cr).names();
            f.grants_role = [&cr.in_role, &cr.in_group, &cr.role, &cr.user, &cr.admin]
                .iter()
                .any(|l| !l.is_empty());
        }
        // PostgreSQL's CREATE USER implies LOGIN. `ast.rs` maps only the bare form (with
        // options sqlparser 0.63 does not read PostgreSQL's CREATE USER).
        Statement::CreateUser(cu) if cu.options.options.is_empty() => {
            f.role_attributes = vec!["login".to_string()];
        }
        Statement::AlterRole {
            operation: AlterRoleOperation::WithOptions { options },
            ..
        } => {
            let mut a = Attrs::default();
            for o in options {
                match o {
                    RoleOption::SuperUser(on) => a.set("superuser", *on),
                    RoleOption::CreateRole(on) => a.set("createrole", *on),
                    RoleOption::CreateDB(on) => a.set("createdb", *on),
                    RoleOption::BypassRLS(on) => a.set("bypassrls", *on),
                    RoleOption::Replication(on) => a.set("replication", *on),
                    RoleOption::Login(on) => a.set("login", *on),
                    _ => {}
                }
            }
            f.role_attributes = a.names();
        }
        _ => {}
    }
    f
}

fn create_role_attrs(cr: &CreateRole) -> Attrs {
    let mut a = Attrs::default();
    for (name, v) in [
        ("superuser", cr.superuser),
        ("createrole", cr.create_role),
        ("createdb", cr.create_db),
        ("bypassrls", cr.bypassrls),
        ("replication", cr.replication),
        ("login", cr.login),
    ] {
        a.set(name, v == Some(true));
    }
    a
}

/// A query's UPDATEs and DELETEs at top level (its main statement, `WITH ... UPDATE`, and
/// the bodies of its `WITH` list, through `(...)` wrappers; PostgreSQL admits
/// data-modifying statements nowhere else): whether all of them have a WHERE. `None`
/// when there is none.
fn query_where(q: &Query) -> Option<bool> {
    let mut all = None;
    let mut cur = q;
    loop {
        if let Some(with) = &cur.with {
            for cte in &with.cte_tables {
                if let Some(w) = dml_where(&cte.query.body) {
                    and(&mut all, w);
                }
            }
        }
        match &*cur.body {
            SetExpr::Query(inner) => cur = inner,
            body => {
                if let Some(w) = dml_where(body) {
                    and(&mut all, w);
                }
                return all;
            }
        }
    }
}

fn dml_where(body: &SetExpr) -> Option<bool> {
    match body {
        SetExpr::Update(Statement::Update(u)) => Some(u.selection.is_some()),
        SetExpr::Delete(Statement::Delete(d)) => Some(d.selection.is_some()),
        _ => None,
    }
}

/// Facts of the statement at `s..end` (past any EXPLAIN ANALYZE; the caller gives a plain
/// EXPLAIN or a PREPARE none) whose reported command is `command`.
pub fn from_tokens(lx: &Lexed, s: usize, end: usize, command: &str) -> StatementFacts {
    let mut f = StatementFacts::default();
    let mut k = s;
    while lx.kind_is(k, Tk::LParen) {
        k += 1;
    }
    match command {
        "UPDATE" | "DELETE" => f.has_where = tokens_where(lx, k, end),
        "COPY" => {
            if let Some(d) = utility::copy_direction_at(lx, k, end) {
                f.copy_direction = Some(if lx.is(d, "to") {
                    CopyDirection::To
                } else {
                    CopyDirection::From
                });
                f.copy_program = lx.is(d + 1, "program");
            }
        }
        "CREATE ROLE" | "ALTER ROLE" => {
            f.role_attributes = tokens_attrs(lx, k, end).names();
            // ALTER GROUP g ADD USER u: membership in g, as GRANT g TO u. CREATE ROLE
            // x IN ROLE g (or ROLE u, ADMIN u): membership given at creation.
            f.grants_role = if lx.is(k, "create") {
                let (_, after) = lx.name_at(created_role_at(lx, k));
                !roles::create_role_members(lx, after, end).is_empty()
            } else {
                lx.is(k + 1, "group") && lx.is(k + 3, "add") && lx.is(k + 4, "user")
            };
        }
        // `utility::grant`: a GRANT with no `ON` before its `TO` grants roles.
        "GRANT ROLE" => f.grants_role = true,
        _ => {}
    }
    f
}

/// [`query_where`] on tokens: the statement at `k` (`UPDATE`, `DELETE`, or `WITH`).
fn tokens_where(lx: &Lexed, k: usize, end: usize) -> Option<bool> {
    let dml = |i: usize| lx.get(i).is_some_and(|t| t.is_any(&["update", "delete"]));
    let mut all = None;
    let mut main = k;
    if lx.is(k, "with") {
        let mut bodies = Vec::new();
        let after = utility::cte_list(lx, k, &mut bodies);
        for open in bodies {
            if dml(open + 1) {
                let close = lx.close.get(open).copied().unwrap_or(end).min(end);
                and(&mut all, top_where(lx, open + 2, close));
            }
        }
        match after {
            Some(m) => main = m,
            None => return all,
        }
    }
    if dml(main) {
        and(&mut all, top_where(lx, main + 1, end));
    }
    all
}

/// Whether `from..end` holds a WHERE clause at parenthesis depth 0, before any
/// RETURNING. `x.where` and `AS where` are labels (PostgreSQL admits reserved words
/// there), not the clause.
fn top_where(lx: &Lexed, from: usize, end: usize) -> bool {
    let mut depth = 0usize;
    for i in from..end.min(lx.toks.len()) {
        let Some(t) = lx.get(i) else {
            break;
        };
        match t.kind {
            Tk::LParen => depth += 1,
            Tk::RParen => match depth.checked_sub(1) {
                Some(d) => depth = d,
                None => break,
            },
            Tk::Semi if depth == 0 => break,
            Tk::Word if depth == 0 => {
                if t.is("returning") {
                    break;
                }
                let label = i
                    .checked_sub(1)
                    .is_some_and(|p| lx.kind_is(p, Tk::Period) || lx.is(p, "as"));
                if t.is("where") && !label {
                    return true;
                }
            }
            _ => {}
        }
    }
    false
}

/// Where the role's name of `CREATE [modifiers] ROLE|USER|GROUP name` at `k` is.
fn created_role_at(lx: &Lexed, k: usize) -> usize {
    let mut j = k + 1;
    while lx
        .get(j)
        .is_some_and(|t| t.is_any(commands::CREATE_MODIFIERS))
    {
        j += 1;
    }
    j + 1
}

/// The attributes `CREATE|ALTER ROLE|USER|GROUP name ...` at `k` grants. PostgreSQL reads
/// role options as identifiers (`"superuser"` counts, as it does there); names in role
/// lists (`IN ROLE`, `ROLE`, `ADMIN`, `USER`) are skipped, and the configuration forms
/// (`SET`, `RESET`, `IN DATABASE`, `RENAME`) grant none.
fn tokens_attrs(lx: &Lexed, k: usize, end: usize) -> Attrs {
    let mut a = Attrs::default();
    let mut j = k + 1;
    if lx.is(k, "create") {
        j = created_role_at(lx, k).saturating_sub(1);
        // PostgreSQL's CREATE USER implies LOGIN (NOLOGIN below turns it off).
        if lx.is(j, "user") {
            a.set("login", true);
        }
    }
    // Past the kind word and the role's name.
    let (_, mut i) = lx.name_at(j + 1);
    let mut depth = 0usize;
    let end = end.min(lx.toks.len());
    while i < end {
        let Some(t) = lx.get(i) else {
            break;
        };
        match t.kind {
            Tk::LParen => depth += 1,
            Tk::RParen => depth = depth.saturating_sub(1),
            Tk::Semi if depth == 0 => break,
            Tk::Word if depth == 0 => {
                if t.is_any(&["set", "reset", "rename"])
                    || (t.is("in") && !lx.get(i + 1).is_some_and(|n| n.is_any(&["role", "group"])))
                {
                    break;
                }
                // Role lists: `IN ROLE a, b`, `IN GROUP`, `ROLE`, `ADMIN`, `USER`.
                let list = if t.is("in") {
                    Some(i + 2)
                } else if t.is_any(&["role", "admin", "user"]) {
                    Some(i + 1)
                } else {
                    None
                };
                if let Some(l) = list {
                    i = utility::names_at(lx, l).1.max(l);
                    continue;
                }
                let w = t.folded();
                match w.strip_prefix("no") {
                    Some(off) if ATTRIBUTES.contains(&off) => a.set(off, false),
                    _ => a.set(&w, true),
                }
            }
            _ => {}
        }
        i += 1;
    }
    a
}
