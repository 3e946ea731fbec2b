//! The SQL layer: what a statement is, for the audit trail.
//!
//! Everything here works on text a client sent, so it is hostile-input code: no panics, no
//! unbounded recursion, bounded work per byte. The layer is pure (no I/O, no sessions):
//! - [`lex`] (`lex/`): lexical tools that never fail: splitting a simple query into
//!   statements, the literal-blind fingerprint the cache is keyed by, and redaction, on a
//!   hand-written lexer following PostgreSQL's `scan.l`.
//! - [`ast`] (`ast/`): the sqlparser path: class, command, objects and functions from the
//!   AST (`walk` visits it, `parts` maps its pieces).
//! - [`tokens`] (`tokens/`): the fallback when sqlparser cannot parse: leading keywords
//!   decide class and command (as PostgreSQL derives its command tags: `commands`), names
//!   are taken from the positions that name objects (`scan` for queries, `utility` for
//!   DDL, GRANT and SET), on sqlparser's tokenizer (`lexed`).
//! - [`noise`]: whether a classified statement provably only reads catalog state.
//! - [`facts`]: what detection rules ask beyond class and command ([`StatementFacts`]).
//! - [`cache`]: classifications keyed by fingerprint, bounded by bytes.
//! - [`classifier`]: the entry point tying these together.
//! - [`named`]: the names PREPARE, EXECUTE, DECLARE, FETCH and friends act on.
//! - [`names`]: identifier folding and rendering, shared by both paths.

pub mod ast;
pub mod cache;
pub mod classifier;
pub mod facts;
pub mod lex;
pub mod named;
pub mod names;
pub mod noise;
pub mod tokens;

// The paths' parts under the names they had before each path got its folder, so
// `crate::sql::lexed` and friends keep working.
pub use ast::{parts as ast_parts, walk};
pub use tokens::{commands, lexed, scan, utility};

#[cfg(test)]
mod facts_tests;
#[cfg(test)]
mod fidelity_tests;

pub use classifier::{Classifier, ClassifierOptions, Named, Statement};
pub use named::NamedCommand;

use serde::Serialize;

/// pgAudit's statement classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Class {
    Read,
    Write,
    Function,
    Role,
    Ddl,
    Misc,
    MiscSet,
}

impl Class {
    /// The name pgAudit prints (`READ`, `MISC_SET`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Class::Read => "READ",
            Class::Write => "WRITE",
            Class::Function => "FUNCTION",
            Class::Role => "ROLE",
            Class::Ddl => "DDL",
            Class::Misc => "MISC",
            Class::MiscSet => "MISC_SET",
        }
    }
}

/// An object a statement reads, writes or acts on.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
pub struct Object {
    /// pgAudit's object type: `TABLE`, `VIEW`, `INDEX`, `SEQUENCE`, `FUNCTION`, `SCHEMA`,
    /// `ROLE`, `DATABASE`, `TYPE`, `MATERIALIZED VIEW`, `FOREIGN TABLE`, ... Relations
    /// read or written whose kind the text cannot tell are `TABLE`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Qualified as written (`sales.orders`), identifiers folded like PostgreSQL folds
    /// them (unquoted lowercased, quoted kept).
    pub name: String,
}

/// Which classifier path produced a classification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ParsePath {
    Ast,
    Tokens,
}

/// A change of the effective role a statement makes when it succeeds.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum RoleChange {
    /// `SET [SESSION] ROLE x`, `SET SESSION AUTHORIZATION x` (`local: false`), or
    /// `SET LOCAL ROLE x` (`local: true`: until the transaction ends). `role` is folded
    /// like an identifier (unquoted lowercased, quoted or string literal kept).
    Set { role: String, local: bool },
    /// `RESET ROLE`, `SET ROLE NONE`, `SET SESSION AUTHORIZATION DEFAULT`,
    /// `RESET SESSION AUTHORIZATION`, `RESET ALL`.
    Reset,
}

/// What one statement is, before redaction. Produced by [`ast`] or [`tokens`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classification {
    pub class: Class,
    /// pgAudit's command name for the top-level statement (`SELECT`, `CREATE TABLE`,
    /// `ALTER ROLE`, `UNKNOWN` when nothing understood it).
    pub command: String,
    /// Relations read or written (CTE names excluded) and the object a DDL/ROLE statement
    /// acts on, deduplicated, in order of first appearance.
    pub objects: Vec<Object>,
    /// Every function called, lowercased, qualified as written (`pg_catalog.format_type`).
    pub functions: Vec<String>,
    pub parse: ParsePath,
    /// Whether the statement only reads catalog state ([`noise`]).
    pub noise: bool,
    /// Set by `SET ROLE` and friends.
    pub role_change: Option<RoleChange>,
    /// True when the classification depends on a literal's value (`SET ROLE 'x'`,
    /// `set_config('x', ...)`): such classifications must not be cached under a
    /// literal-blind fingerprint.
    pub literal_dependent: bool,
    /// What detection rules ask beyond class and command.
    pub facts: StatementFacts,
}

/// Direction of a COPY.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CopyDirection {
    /// `COPY ... TO`: data leaves the database.
    To,
    /// `COPY ... FROM`: data comes in.
    From,
}

/// Statement facts detection rules match on (`has_where = false`, ...). Taken from the
/// AST when sqlparser understood the statement, from the tokens otherwise ([`facts`]).
/// They belong to the command reported: a statement run by `EXPLAIN ANALYZE` keeps its
/// facts, a plain `EXPLAIN` and a `PREPARE` (which run nothing) have none. They depend on
/// keywords only, never on a literal's value (the cache is literal-blind). A statement
/// longer than `max_parse_bytes` is judged from its prefix: what lies past the cut is
/// not seen.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct StatementFacts {
    /// For UPDATE and DELETE: whether the top-level statement has a WHERE clause
    /// (`WHERE CURRENT OF` counts; a WHERE inside a subquery does not). With a
    /// data-modifying WITH the statement runs several: `Some(false)` when any UPDATE or
    /// DELETE at top level (the main statement or a WITH query) lacks a WHERE, so
    /// `WITH d AS (DELETE FROM t) SELECT ...` (reported as DELETE) is `Some(false)`.
    /// `None` for every other command, including a SELECT or INSERT reported as such
    /// whose WITH deletes.
    pub has_where: Option<bool>,
    /// For COPY: its direction.
    pub copy_direction: Option<CopyDirection>,
    /// `COPY ... TO PROGRAM` / `COPY ... FROM PROGRAM`.
    pub copy_program: bool,
    /// For CREATE/ALTER ROLE/USER/GROUP: the attributes it grants, lowercased, in this
    /// order: `superuser`, `createrole`, `createdb`, `bypassrls`, `replication`, `login`;
    /// without the `NO...` forms. `CREATE USER` grants `login` unless it says `NOLOGIN`
    /// (PostgreSQL's CREATE USER implies LOGIN); `ALTER USER` does not.
    pub role_attributes: Vec<String>,
    /// `GRANT role [, ...] TO role`: membership in a role, as opposed to privileges on
    /// objects (a GRANT without `ON`, reported as GRANT ROLE); also `ALTER GROUP g ADD
    /// USER u` (reported as ALTER ROLE) and `CREATE ROLE x IN ROLE g` / `ROLE u` /
    /// `ADMIN u` (CREATE ROLE), which grant the same membership.
    pub grants_role: bool,
}

impl Classification {
    /// The classification of a statement nothing understood: still audited.
    pub fn unknown(parse: ParsePath) -> Classification {
        Classification {
            class: Class::Misc,
            command: "UNKNOWN".to_string(),
            objects: Vec::new(),
            functions: Vec::new(),
            parse,
            noise: false,
            role_change: None,
            literal_dependent: false,
            facts: StatementFacts::default(),
        }
    }

    /// `EXPLAIN ANALYZE X` runs X. pgAudit logs it under the command tag `EXPLAIN` with the
    /// class of X's log level: WRITE for DML, DDL for CREATE TABLE AS / SELECT INTO, and
    /// MISC for a query (its READ line is a substatement's). X's objects stay.
    pub fn explained_analyze(mut self) -> Classification {
        self.class = match self.class {
            Class::Write => Class::Write,
            Class::Ddl => Class::Ddl,
            _ => Class::Misc,
        };
        self.command = "EXPLAIN".to_string();
        self.role_change = None;
        // Tools do not EXPLAIN ANALYZE on their own: keep it visible.
        self.noise = false;
        self
    }

    /// Rough heap size, for the byte-bounded cache.
    pub fn heap_bytes(&self) -> usize {
        let objects: usize = self
            .objects
            .iter()
            .map(|o| o.kind.len() + o.name.len() + std::mem::size_of::<Object>())
            .sum();
        let functions: usize = self
            .functions
            .iter()
            .map(|f| f.len() + std::mem::size_of::<String>())
            .sum();
        let attributes: usize = self
            .facts
            .role_attributes
            .iter()
            .map(|a| a.len() + std::mem::size_of::<String>())
            .sum();
        self.command.len()
            + objects
            + functions
            + attributes
            + std::mem::size_of::<Classification>()
    }
}

/// How statement text is redacted before it is logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Redact {
    /// Passwords only (always on).
    #[default]
    Passwords,
    /// Every literal becomes `?`, as in pg_stat_statements.
    Literals,
}

/// What the classifier unit tests share.
#[cfg(test)]
pub(crate) mod test_support {
    use super::{Class, Classification};

    /// Objects as `"KIND name"`.
    pub fn objects(c: &Classification) -> Vec<String> {
        c.objects
            .iter()
            .map(|o| format!("{} {}", o.kind, o.name))
            .collect()
    }

    /// (statement, class, command, objects as "KIND name").
    pub type Case = (&'static str, Class, &'static str, &'static [&'static str]);
}
