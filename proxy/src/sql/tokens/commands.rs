//! Object kinds named after CREATE/ALTER/DROP/COMMENT ON, and the pgAudit class of the
//! command they form, for the token path.
//!
//! PostgreSQL's `CreateCommandTag` names these statements `<verb> <object kind>`
//! (`CREATE TABLE`, `DROP MATERIALIZED VIEW`); USER and GROUP are ROLE. pgAudit then files
//! everything at `LOGSTMT_DDL` as DDL, except the role statements its
//! `log_audit_event` lists: CreateRoleStmt, AlterRoleStmt, AlterRoleSetStmt,
//! DropRoleStmt, GrantStmt, GrantRoleStmt and AlterDefaultPrivilegesStmt. USER MAPPING
//! statements are DDL (pgAudit 1.7 on PostgreSQL 15 logs `DDL,CREATE USER MAPPING`; its
//! password-redaction case for them does not change the class).

use super::lexed::Lexed;
use crate::sql::Class;

/// One object kind: the words that spell it and the name PostgreSQL prints.
pub struct Kind {
    /// The words, lower-case.
    pub words: &'static [&'static str],
    /// The name in command tags and object types.
    pub name: &'static str,
}

const fn k(words: &'static [&'static str], name: &'static str) -> Kind {
    Kind { words, name }
}

/// Object kinds, longer spellings first so `FOREIGN TABLE` wins over nothing and
/// `MATERIALIZED VIEW` over `VIEW`.
pub const KINDS: &[Kind] = &[
    k(&["foreign", "data", "wrapper"], "FOREIGN DATA WRAPPER"),
    k(
        &["text", "search", "configuration"],
        "TEXT SEARCH CONFIGURATION",
    ),
    k(&["text", "search", "dictionary"], "TEXT SEARCH DICTIONARY"),
    k(&["text", "search", "parser"], "TEXT SEARCH PARSER"),
    k(&["text", "search", "template"], "TEXT SEARCH TEMPLATE"),
    k(&["foreign", "table"], "FOREIGN TABLE"),
    k(&["materialized", "view"], "MATERIALIZED VIEW"),
    k(&["event", "trigger"], "EVENT TRIGGER"),
    k(&["user", "mapping"], "USER MAPPING"),
    k(&["access", "method"], "ACCESS METHOD"),
    k(&["operator", "class"], "OPERATOR CLASS"),
    k(&["operator", "family"], "OPERATOR FAMILY"),
    k(&["large", "object"], "LARGE OBJECT"),
    k(&["default", "privileges"], "DEFAULT PRIVILEGES"),
    k(&["table"], "TABLE"),
    k(&["view"], "VIEW"),
    k(&["index"], "INDEX"),
    k(&["sequence"], "SEQUENCE"),
    k(&["schema"], "SCHEMA"),
    k(&["database"], "DATABASE"),
    k(&["role"], "ROLE"),
    k(&["user"], "ROLE"),
    k(&["group"], "ROLE"),
    k(&["function"], "FUNCTION"),
    k(&["procedure"], "PROCEDURE"),
    k(&["routine"], "ROUTINE"),
    k(&["aggregate"], "AGGREGATE"),
    k(&["operator"], "OPERATOR"),
    k(&["type"], "TYPE"),
    k(&["domain"], "DOMAIN"),
    k(&["extension"], "EXTENSION"),
    k(&["trigger"], "TRIGGER"),
    k(&["rule"], "RULE"),
    k(&["policy"], "POLICY"),
    k(&["publication"], "PUBLICATION"),
    k(&["subscription"], "SUBSCRIPTION"),
    k(&["server"], "SERVER"),
    k(&["tablespace"], "TABLESPACE"),
    k(&["cast"], "CAST"),
    k(&["collation"], "COLLATION"),
    k(&["conversion"], "CONVERSION"),
    k(&["language"], "LANGUAGE"),
    k(&["statistics"], "STATISTICS"),
    k(&["transform"], "TRANSFORM"),
    k(&["system"], "SYSTEM"),
    k(&["owned"], "OWNED"),
    k(&["column"], "COLUMN"),
    k(&["constraint"], "CONSTRAINT"),
];

/// Kinds whose statements name no single object by a plain name after the kind words.
#[rustfmt::skip]
pub const NAMELESS: &[&str] = &[
    "CAST", "TRANSFORM", "OPERATOR", "OPERATOR CLASS", "OPERATOR FAMILY",
    "DEFAULT PRIVILEGES", "SYSTEM", "OWNED", "LARGE OBJECT",
];

/// The kind spelled at token `i`, and the index after its words. `USER MAPPING` is
/// followed by `FOR` or `IF [NOT] EXISTS`; otherwise `mapping` is a role's name (`DROP
/// USER mapping`).
pub fn kind_at(lx: &Lexed, i: usize) -> Option<(&'static Kind, usize)> {
    KINDS.iter().find_map(|kind| {
        let all = kind.words.iter().enumerate().all(|(n, w)| lx.is(i + n, w));
        let after = i + kind.words.len();
        let mapping_ok =
            kind.name != "USER MAPPING" || lx.get(after).is_some_and(|t| t.is_any(&["for", "if"]));
        (all && mapping_ok).then_some((kind, after))
    })
}

/// CREATE modifiers between `CREATE` and the kind (`OR REPLACE`, `TEMP`, `UNIQUE`, ...),
/// which do not change the command tag.
#[rustfmt::skip]
pub const CREATE_MODIFIERS: &[&str] = &[
    "or", "replace", "temp", "temporary", "local", "global", "unlogged", "unique",
    "default", "trusted", "procedural", "recursive",
];

/// Command and class for `<verb> <kind>` (verb `CREATE`, `ALTER` or `DROP`).
pub fn ddl_command(verb: &str, kind: &Kind) -> (String, Class) {
    let command = match (verb, kind.name) {
        ("ALTER", "SYSTEM") => "ALTER SYSTEM".to_string(),
        ("DROP", "OWNED") => "DROP OWNED".to_string(),
        _ => format!("{verb} {}", kind.name),
    };
    let role = matches!(kind.name, "ROLE" | "DEFAULT PRIVILEGES");
    (command, if role { Class::Role } else { Class::Ddl })
}

/// Object kinds after `GRANT ... ON` (the default is TABLE).
pub const GRANT_KINDS: &[Kind] = &[
    k(&["foreign", "data", "wrapper"], "FOREIGN DATA WRAPPER"),
    // pgAudit types the object of GRANT ... ON FOREIGN SERVER `FOREIGN SERVER`.
    k(&["foreign", "server"], "FOREIGN SERVER"),
    k(&["large", "object"], "LARGE OBJECT"),
    k(&["table"], "TABLE"),
    k(&["sequence"], "SEQUENCE"),
    k(&["database"], "DATABASE"),
    k(&["domain"], "DOMAIN"),
    k(&["function"], "FUNCTION"),
    k(&["procedure"], "PROCEDURE"),
    k(&["routine"], "ROUTINE"),
    k(&["language"], "LANGUAGE"),
    k(&["parameter"], "PARAMETER"),
    k(&["schema"], "SCHEMA"),
    k(&["tablespace"], "TABLESPACE"),
    k(&["type"], "TYPE"),
];

/// The GRANT object kind at token `i`, and the index after its words.
pub fn grant_kind_at(lx: &Lexed, i: usize) -> Option<(&'static Kind, usize)> {
    GRANT_KINDS.iter().find_map(|kind| {
        let all = kind.words.iter().enumerate().all(|(n, w)| lx.is(i + n, w));
        all.then_some((kind, i + kind.words.len()))
    })
}
