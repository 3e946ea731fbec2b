//! Identifier folding and rendering, shared by the AST and token paths.
//!
//! PostgreSQL folds unquoted identifiers to lower case and keeps quoted ones as written.
//! Names are rendered the way pgAudit prints them (`quote_qualified_identifier`): each
//! part bare when that reads back as the same identifier, double-quoted otherwise. So
//! `Sales.Orders` becomes `sales.orders` and `"Sales".orders` stays `"Sales".orders`:
//! two different relations never render the same, and catalog checks can compare text.

/// Keywords PostgreSQL's `quote_identifier` quotes (every category but unreserved), so a
/// relation named `"user"` renders as `"user"`, as pgAudit prints it.
#[rustfmt::skip]
const QUOTED_KEYWORDS: &[&str] = &[
    "all", "analyse", "analyze", "and", "any", "array", "as", "asc", "asymmetric",
    "authorization", "between", "bigint", "binary", "bit", "boolean", "both", "case",
    "cast", "char", "character", "check", "coalesce", "collate", "collation", "column",
    "concurrently", "constraint", "create", "cross", "current_catalog", "current_date",
    "current_role", "current_schema", "current_time", "current_timestamp", "current_user",
    "dec", "decimal", "default", "deferrable", "desc", "distinct", "do", "else", "end",
    "except", "exists", "extract", "false", "fetch", "float", "for", "foreign", "freeze",
    "from", "full", "grant", "greatest", "group", "grouping", "having", "ilike", "in",
    "initially", "inner", "inout", "int", "integer", "intersect", "interval", "into", "is",
    "isnull", "join", "json", "lateral", "leading", "least", "left", "like", "limit",
    "localtime", "localtimestamp", "national", "natural", "nchar", "none", "normalize",
    "not", "notnull", "null", "nullif", "numeric", "offset", "on", "only", "or", "order",
    "out", "outer", "overlaps", "overlay", "placing", "position", "precision", "primary",
    "real", "references", "returning", "right", "row", "select", "session_user", "setof",
    "similar", "smallint", "some", "substring", "symmetric", "system_user", "table",
    "tablesample", "then", "time", "timestamp", "to", "trailing", "treat", "trim", "true",
    "union", "unique", "user", "using", "values", "varchar", "variadic", "verbose", "when",
    "where", "window", "with",
];

/// Folds one identifier: unquoted lower-cased (ASCII, as PostgreSQL does for UTF-8),
/// quoted kept as written.
pub fn fold(value: &str, quoted: bool) -> String {
    if quoted {
        value.to_string()
    } else {
        value.to_ascii_lowercase()
    }
}

/// Renders one folded identifier: bare when it reads back as itself, quoted otherwise.
pub fn quote(folded: &str) -> String {
    quote_with(folded, true)
}

/// Renders a qualified function name from folded parts. Like [`render`], but keywords
/// stay bare: `coalesce`, `current_schema` are function names, not relation names that
/// would need quoting.
pub fn render_function<S: AsRef<str>>(parts: &[S]) -> String {
    let quoted: Vec<String> = parts
        .iter()
        .map(|p| quote_with(p.as_ref(), false))
        .collect();
    quoted.join(".")
}

fn quote_with(folded: &str, keywords: bool) -> String {
    let mut chars = folded.chars();
    let first_ok = matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_');
    let rest_ok = folded
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if first_ok && rest_ok && !(keywords && QUOTED_KEYWORDS.contains(&folded)) {
        folded.to_string()
    } else {
        format!("\"{}\"", folded.replace('"', "\"\""))
    }
}

/// Renders a role specification (PostgreSQL's `RoleSpec`) from one identifier as written.
///
/// The unquoted keywords `CURRENT_USER`, `CURRENT_ROLE` and `SESSION_USER` name no role
/// of that name but the session's current or session user, which the statement's text
/// does not tell: they render as themselves, upper-case and bare. No identifier renders
/// that way ([`quote`] quotes every name with an upper-case letter), so a role named
/// `"current_user"` (quoted: a real role of that name) stays `"current_user"` and
/// `"CURRENT_USER"` stays quoted. `public`, quoted or not, is the PUBLIC pseudo-role
/// (PostgreSQL reserves the name: no role can have it) and renders `public`, as
/// PostgreSQL and pgAudit print it.
pub fn role_spec(value: &str, quoted: bool) -> String {
    let folded = fold(value, quoted);
    if !quoted {
        if let Some(k) = ROLE_KEYWORDS.iter().find(|k| k.eq_ignore_ascii_case(value)) {
            return (*k).to_string();
        }
    }
    if folded == "public" {
        return "public".to_string();
    }
    quote(&folded)
}

/// The role keywords [`role_spec`] keeps as keywords, as they render.
pub const ROLE_KEYWORDS: [&str; 3] = ["CURRENT_USER", "CURRENT_ROLE", "SESSION_USER"];

/// `ALTER ROLE ALL ...` (every role) renders as this: bare and upper-case like the role
/// keywords of [`role_spec`], so no role name reads the same.
pub const ALL_ROLES: &str = "ALL";

/// Renders a qualified name from its folded parts (`schema.table`).
pub fn render<S: AsRef<str>>(parts: &[S]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        out.push_str(&quote(p.as_ref()));
    }
    out
}

/// Splits a rendered name into its folded parts, undoing [`render`]. Used by the noise
/// filter, which must tell `pg_catalog.pg_class` from `"pg_catalog.pg_class"`.
pub fn split(rendered: &str) -> Vec<String> {
    let mut parts = Vec::new();
    let mut cur = String::new();
    let mut chars = rendered.chars().peekable();
    let mut in_quotes = false;
    while let Some(c) = chars.next() {
        match (c, in_quotes) {
            ('"', false) => in_quotes = true,
            ('"', true) => {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    cur.push('"');
                } else {
                    in_quotes = false;
                }
            }
            ('.', false) => parts.push(std::mem::take(&mut cur)),
            (c, _) => cur.push(c),
        }
    }
    parts.push(cur);
    parts
}

/// An index's name parts: PostgreSQL creates an index in its table's schema, so an
/// unqualified index name on a qualified table takes the table's schema.
pub fn index_in_table_schema(index: Vec<String>, table: &[String]) -> Vec<String> {
    match (
        index.len(),
        table.len().checked_sub(2).and_then(|i| table.get(i)),
    ) {
        (1, Some(schema)) => {
            let mut parts = vec![schema.clone()];
            parts.extend(index);
            parts
        }
        _ => index,
    }
}

/// Deduplicates, keeping the first appearance of each item (hashing: statements from
/// the network can name thousands of relations).
pub fn dedup<T: Eq + std::hash::Hash + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = std::collections::HashSet::new();
    let mut out = Vec::new();
    for item in items {
        if seen.insert(item.clone()) {
            out.push(item);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_and_quotes_like_postgres() {
        assert_eq!(
            render(&[fold("Sales", false), fold("Orders", false)]),
            "sales.orders"
        );
        assert_eq!(
            render(&[fold("Sales", true), fold("orders", false)]),
            "\"Sales\".orders"
        );
        assert_eq!(render(&["user"]), "\"user\"");
        assert_eq!(render(&["a\"b"]), "\"a\"\"b\"");
        assert_eq!(render(&["1x"]), "\"1x\"");
        assert_eq!(split("\"Sales\".orders"), vec!["Sales", "orders"]);
        assert_eq!(
            split("\"pg_catalog.pg_class\""),
            vec!["pg_catalog.pg_class"]
        );
        assert_eq!(split("\"a\"\"b\".c"), vec!["a\"b", "c"]);
    }

    #[test]
    fn role_keywords_are_not_role_names() {
        assert_eq!(role_spec("current_user", false), "CURRENT_USER");
        assert_eq!(role_spec("Session_User", false), "SESSION_USER");
        assert_eq!(role_spec("CURRENT_ROLE", false), "CURRENT_ROLE");
        // Quoted: a role of that name, rendered so it cannot read as the keyword.
        assert_eq!(role_spec("current_user", true), "\"current_user\"");
        assert_eq!(role_spec("CURRENT_USER", true), "\"CURRENT_USER\"");
        // PUBLIC is the pseudo-role however written; "PUBLIC" quoted is another name.
        assert_eq!(role_spec("PUBLIC", false), "public");
        assert_eq!(role_spec("public", true), "public");
        assert_eq!(role_spec("PUBLIC", true), "\"PUBLIC\"");
        assert_eq!(role_spec("Bob", false), "bob");
        assert_eq!(role_spec("all", true), "\"all\"");
        // No rendered identifier is a keyword form.
        for k in ROLE_KEYWORDS.iter().chain([&ALL_ROLES]) {
            assert_ne!(render(&[*k]), *k);
        }
    }
}
