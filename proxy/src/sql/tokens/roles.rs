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
    let mut i = j;
    loop {
        if lx.is(i, "group") {
            i += 1;
        }
        let Some(name) = role_at(lx, i) else {
            h.scan.uncertain = true;
            return i;
        };
        h.targets.push(role_object(name));
        i += 1;
        if !lx.kind_is(i, Tk::Comma) {
            return i;
        }
        i += 1;
    }
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
