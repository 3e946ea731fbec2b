//! The token path's role names: role specifications (`CURRENT_USER` and friends are
//! keywords, [`names::role_spec`]), lists of them, and the statements that name roles
//! beside their object: ALTER ROLE/USER/GROUP, user mappings, `OWNER TO`.

use super::lexed::{Lexed, Tk};
use super::utility::depth0;
use super::Head;
use crate::sql::{names, Object};

/// The role specification at `i` (a name or a role keyword, [`names::role_spec`]).
pub fn role_at(lx: &Lexed, i: usize) -> Option<String> {
    let t = lx.get(i).filter(|t| t.kind == Tk::Word)?;
    Some(names::role_spec(&t.text, t.quoted))
}

/// A comma-separated list of role specifications from `j`, added as ROLE objects;
/// returns the index after it. A grantee may be written `GROUP r` (GROUP is reserved:
/// unquoted, it is never a role name).
pub fn role_list(lx: &Lexed, j: usize, h: &mut Head) -> usize {
    let (list, e) = role_names(lx, j);
    if list.is_empty() {
        h.scan.uncertain = true;
    }
    h.targets.extend(list.into_iter().map(role_object));
    e
}

/// The rendered role specifications of a comma-separated list from `j`, and the index
/// after it.
fn role_names(lx: &Lexed, j: usize) -> (Vec<String>, usize) {
    let mut out = Vec::new();
    let mut i = j;
    loop {
        if lx.is(i, "group") {
            i += 1;
        }
        let Some(name) = role_at(lx, i) else {
            return (out, i);
        };
        out.push(name);
        i += 1;
        if !lx.kind_is(i, Tk::Comma) {
            return (out, i);
        }
        i += 1;
    }
}

/// The membership options of `CREATE ROLE|USER|GROUP name [WITH] option ...` from `from`
/// (past the name): the roles of `IN ROLE`, `IN GROUP` (groups the new role joins),
/// `ROLE`, `USER` and `ADMIN` (members it gets), in that order, as the AST path lists
/// them. Any of them grants role membership.
pub fn create_role_members(lx: &Lexed, from: usize, end: usize) -> Vec<String> {
    let mut lists: [Vec<String>; 5] = Default::default();
    let mut depth = 0usize;
    let mut i = from;
    let end = end.min(lx.toks.len());
    while i < end {
        let Some(t) = lx.get(i) else {
            break;
        };
        let slot = match t.kind {
            Tk::LParen => {
                depth += 1;
                None
            }
            Tk::RParen => {
                depth = depth.saturating_sub(1);
                None
            }
            Tk::Semi if depth == 0 => break,
            Tk::Word if depth == 0 && t.is("in") && lx.is(i + 1, "role") => Some((0, i + 2)),
            Tk::Word if depth == 0 && t.is("in") && lx.is(i + 1, "group") => Some((1, i + 2)),
            Tk::Word if depth == 0 && t.is("role") => Some((2, i + 1)),
            Tk::Word if depth == 0 && t.is("user") => Some((3, i + 1)),
            Tk::Word if depth == 0 && t.is("admin") => Some((4, i + 1)),
            _ => None,
        };
        match slot {
            Some((n, l)) => {
                let (names, e) = role_names(lx, l);
                if let Some(list) = lists.get_mut(n) {
                    list.extend(names);
                }
                i = e.max(l);
            }
            None => i += 1,
        }
    }
    lists.into_iter().flatten().collect()
}

/// `CREATE ROLE|USER|GROUP name ...` at `n` (the name): the role, then the roles its
/// membership options name ([`create_role_members`]).
pub fn create_role(lx: &Lexed, n: usize, end: usize, h: &mut Head) {
    let (name, e) = lx.name_at(n);
    h.target("ROLE", &name);
    h.targets
        .extend(create_role_members(lx, e, end).into_iter().map(role_object));
}

/// A ROLE object of a rendered role specification.
pub fn role_object(name: String) -> Object {
    Object {
        kind: "ROLE".to_string(),
        name,
    }
}

/// `ALTER ROLE|USER|GROUP`: the role (`ALL` for `ALTER ROLE ALL`, keywords as
/// [`names::role_spec`] renders them), the new name of a `RENAME TO` (both names: the
/// old one is what a reviewer searches), and the members of `ALTER GROUP g ADD|DROP
/// USER u1, u2` (they gain or lose the group's privileges).
pub fn alter_role(lx: &Lexed, n: usize, h: &mut Head) {
    if lx.is(n, "all") {
        h.targets.push(role_object(names::ALL_ROLES.to_string()));
        return;
    }
    let Some(role) = role_at(lx, n) else {
        h.scan.uncertain = true;
        return;
    };
    h.targets.push(role_object(role));
    // RENAME TO b (the new name), or ADD|DROP USER u1, u2 (the members).
    let rename = lx.is(n + 1, "rename") && lx.is(n + 2, "to");
    let members = lx.get(n + 1).is_some_and(|t| t.is_any(&["add", "drop"])) && lx.is(n + 2, "user");
    if rename || members {
        role_list(lx, n + 3, h);
    }
}

/// `CREATE|ALTER|DROP USER MAPPING [IF [NOT] EXISTS] FOR user SERVER s`: one object,
/// `<user> on server <s>` as pgAudit names it. `FOR USER` is the current user.
pub fn user_mapping(lx: &Lexed, n: usize, h: &mut Head) {
    if !lx.is(n, "for") {
        h.scan.uncertain = true;
        return;
    }
    let user = if lx.is(n + 1, "user") {
        Some(names::ROLE_KEYWORDS[0].to_string())
    } else {
        role_at(lx, n + 1)
    };
    let (server, _) = lx.name_at(n + 3);
    match user {
        Some(user) if lx.is(n + 2, "server") && !server.is_empty() => h.targets.push(Object {
            kind: "USER MAPPING".to_string(),
            name: format!("{user} on server {}", names::render(&server)),
        }),
        _ => h.scan.uncertain = true,
    }
}

/// `ALTER <kind> name ... OWNER TO role`: the new owner. `RENAME [COLUMN] owner TO x`
/// renames a column called owner.
pub fn owner_to(lx: &Lexed, from: usize, end: usize, h: &mut Head) {
    let Some(o) = depth0(lx, from, end, &["owner"]) else {
        return;
    };
    let renamed = o
        .checked_sub(1)
        .and_then(|p| lx.get(p))
        .is_some_and(|t| t.is_any(&["rename", "column"]));
    if lx.is(o + 1, "to") && !renamed {
        match role_at(lx, o + 2) {
            Some(r) => h.targets.push(role_object(r)),
            None => h.scan.uncertain = true,
        }
    }
}
