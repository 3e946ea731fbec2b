//! Pieces of the sqlparser path's statement mapping: object lists from names, GRANT
//! objects, COMMENT kinds, EXPLAIN options and the role names of `SET ROLE` and friends.

use super::walk::{fold_ident, object_name};
use crate::sql::{names, Object};
use sqlparser::ast::{
    CommentObject, Expr, GrantObjects, Grantee, GranteeName, GranteesType, Ident, ObjectName,
    ObjectNamePart, Owner, UtilityOption, Value,
};

/// An object of a kind.
pub fn obj(kind: &str, name: String) -> Object {
    Object {
        kind: kind.to_string(),
        name,
    }
}

/// Objects of one kind from names; `None` if a name is not plain.
pub fn objs(kind: &str, names: &[ObjectName]) -> Option<Vec<Object>> {
    names
        .iter()
        .map(|n| object_name(n).map(|n| obj(kind, n)))
        .collect()
}

/// Objects of `kind` for every name in each schema (`s.*`).
fn all_in(kind: &str, schemas: &[ObjectName]) -> Option<Vec<Object>> {
    schemas
        .iter()
        .map(|s| Some(obj(kind, format!("{}.*", object_name(s)?))))
        .collect()
}

/// The folded parts of a plain name; `None` when a part is not an identifier.
pub fn name_parts(name: &ObjectName) -> Option<Vec<String>> {
    name.0
        .iter()
        .map(|p| match p {
            ObjectNamePart::Identifier(id) => Some(fold_ident(id)),
            ObjectNamePart::Function(_) => None,
        })
        .collect()
}

/// A ROLE object from a role specification ([`names::role_spec`]: `CURRENT_USER` and
/// friends stay keywords, `public` is the PUBLIC pseudo-role).
pub fn role_obj(id: &Ident) -> Object {
    obj(
        "ROLE",
        names::role_spec(&id.value, id.quote_style.is_some()),
    )
}

/// The ROLE object of an `OWNER TO` target.
pub fn owner_obj(o: &Owner) -> Object {
    match o {
        Owner::Ident(id) => role_obj(id),
        Owner::CurrentRole => obj("ROLE", "CURRENT_ROLE".to_string()),
        Owner::CurrentUser => obj("ROLE", "CURRENT_USER".to_string()),
        Owner::SessionUser => obj("ROLE", "SESSION_USER".to_string()),
    }
}

/// ROLE objects of `DROP ROLE a, b`; `None` for a qualified name.
pub fn role_objs(names: &[ObjectName]) -> Option<Vec<Object>> {
    names
        .iter()
        .map(|n| match n.0.as_slice() {
            [ObjectNamePart::Identifier(id)] => Some(role_obj(id)),
            _ => None,
        })
        .collect()
}

/// An object of a kind named by one identifier.
pub fn ident_obj(kind: &str, id: &Ident) -> Object {
    obj(kind, names::render(&[fold_ident(id)]))
}

/// `EXPLAIN (ANALYZE [bool], ...)`: whether ANALYZE is on, and whether that was read
/// from a literal (`ANALYZE 'off'`, `ANALYZE 0`): a literal-blind cache must not reuse
/// the verdict. `None` for a value this code does not read.
pub fn explain_analyze(options: Option<&[UtilityOption]>) -> Option<(bool, bool)> {
    let mut on = false;
    let mut literal = false;
    for o in options.unwrap_or(&[]) {
        let name = o.name.value.to_ascii_lowercase();
        if name != "analyze" && name != "analyse" {
            continue;
        }
        on = match &o.arg {
            None => true,
            Some(Expr::Value(v)) => match &v.value {
                Value::Boolean(b) => *b,
                Value::Number(n, _) => {
                    literal = true;
                    !is_false(n)
                }
                Value::SingleQuotedString(s) => {
                    literal = true;
                    !is_false(s)
                }
                _ => return None,
            },
            Some(Expr::Identifier(id)) => !is_false(&id.value),
            Some(_) => return None,
        };
    }
    Some((on, literal))
}

/// The spellings PostgreSQL's `parse_bool` reads as false (unique prefixes of `false`,
/// `no`, `off`, and `0`). Anything else is taken as on: if PostgreSQL rejects it, the
/// statement does not run, and over-reporting a write beats missing one.
pub fn is_false(s: &str) -> bool {
    matches!(
        s.to_ascii_lowercase().as_str(),
        "f" | "fa" | "fal" | "fals" | "false" | "n" | "no" | "of" | "off" | "0"
    )
}

/// A setting's folded name; `None` if qualified.
pub fn setting_name(n: &ObjectName) -> Option<String> {
    match n.0.as_slice() {
        [ObjectNamePart::Identifier(id)] => Some(fold_ident(id)),
        _ => None,
    }
}

/// A role name from `SET ROLE` and friends: string literals and quoted names kept,
/// bare names folded. Returns the name and whether it came from a string literal.
pub fn role_name(id: &Ident) -> (String, bool) {
    match id.quote_style {
        Some('\'') => (id.value.clone(), true),
        Some(_) => (id.value.clone(), false),
        None => (id.value.to_ascii_lowercase(), false),
    }
}

/// A role from a `SET role = value` expression: name, whether it came from a string
/// literal, whether it was the bare keyword DEFAULT. `None` if the value is not a name.
pub fn role_from_expr(e: &Expr) -> Option<(String, bool, bool)> {
    match e {
        Expr::Identifier(id) => {
            let (name, literal) = role_name(id);
            let default = id.quote_style.is_none() && id.value.eq_ignore_ascii_case("default");
            Some((name, literal, default))
        }
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some((s.clone(), true, false)),
            _ => None,
        },
        _ => None,
    }
}

/// The objects a GRANT or REVOKE names; `None` for kinds not mapped.
pub fn grant_objects(g: &GrantObjects) -> Option<Vec<Object>> {
    match g {
        GrantObjects::Tables(n) => objs("TABLE", n),
        GrantObjects::Sequences(n) => objs("SEQUENCE", n),
        GrantObjects::Schemas(n) => objs("SCHEMA", n),
        GrantObjects::Databases(n) => objs("DATABASE", n),
        // ALL TABLES IN SCHEMA s: pgAudit prints TABLE with no name; we say `TABLE s.*`.
        GrantObjects::AllTablesInSchema { schemas } => all_in("TABLE", schemas),
        GrantObjects::AllSequencesInSchema { schemas } => all_in("SEQUENCE", schemas),
        GrantObjects::AllFunctionsInSchema { schemas } => all_in("FUNCTION", schemas),
        GrantObjects::Function { name, .. } => Some(vec![obj("FUNCTION", object_name(name)?)]),
        GrantObjects::Procedure { name, .. } => Some(vec![obj("PROCEDURE", object_name(name)?)]),
        _ => None,
    }
}

/// The grantees of a GRANT or REVOKE on objects, as ROLE objects (role keywords as
/// [`names::role_spec`] renders them, PUBLIC as `public`); `None` for a shape PostgreSQL
/// has not (a qualified name, `user@host`).
pub fn grantees(list: &[Grantee]) -> Option<Vec<Object>> {
    list.iter()
        .map(|g| match (&g.grantee_type, &g.name) {
            (GranteesType::Public, None) => Some(obj("ROLE", "public".to_string())),
            (GranteesType::None | GranteesType::Group, Some(GranteeName::ObjectName(n))) => {
                match n.0.as_slice() {
                    [ObjectNamePart::Identifier(id)] => Some(role_obj(id)),
                    _ => None,
                }
            }
            _ => None,
        })
        .collect()
}

/// The object kind of `COMMENT ON <kind>`.
pub fn comment_kind(c: &CommentObject) -> &'static str {
    match c {
        CommentObject::Collation => "COLLATION",
        CommentObject::Column => "COLUMN",
        CommentObject::Database => "DATABASE",
        CommentObject::Domain => "DOMAIN",
        CommentObject::Extension => "EXTENSION",
        CommentObject::Function => "FUNCTION",
        CommentObject::Index => "INDEX",
        CommentObject::MaterializedView => "MATERIALIZED VIEW",
        CommentObject::Procedure => "PROCEDURE",
        CommentObject::Role | CommentObject::User => "ROLE",
        CommentObject::Schema => "SCHEMA",
        CommentObject::Sequence => "SEQUENCE",
        CommentObject::Table => "TABLE",
        CommentObject::Type => "TYPE",
        CommentObject::View => "VIEW",
    }
}
