//! The sqlparser path: class, command, objects and functions from the parsed statement.
//!
//! Only statement shapes mapped with confidence are answered here; everything else
//! returns `None` and the token path decides (better the token path than a wrong
//! answer). Class and command follow pgAudit: the class from PostgreSQL's
//! `GetCommandLogLevel` as pgAudit's `log_audit_event` sorts it, the command from
//! `CreateCommandTag`. Where the product spec overrides pgAudit the override is noted
//! beside the code (see also `tokens/commands.rs`).

pub mod parts;
pub mod walk;

use super::facts;
use super::noise::{self, Shape};
use super::tokens::lexed;
use super::{names, Class, Classification, Object, ParsePath, RoleChange, StatementFacts};
use parts::{
    comment_kind, explain_analyze, grant_objects, grantees, ident_obj, name_parts, obj, objs,
    owner_obj, role_from_expr, role_name, role_obj, role_objs, setting_name,
};
use sqlparser::ast::{
    AlterRoleOperation, AlterSchemaOperation, AlterTable, AlterTableOperation, CloseCursor,
    CopySource, DeclareType, DiscardObject, Expr, ObjectName, ObjectType, Reset, SchemaName, Set,
    SetExpr, SetSessionAuthorizationParamKind, Statement, Value,
};
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::parser::Parser;
use sqlparser::tokenizer::{Token, Tokenizer};
use walk::{fold_ident, object_name, Facts};

/// Above this many operator tokens the statement goes to the token path: long operator
/// chains build left-deep ASTs whose drop recursion can exhaust a thread stack.
const MAX_OPERATORS: usize = 2000;

/// Classifies one statement with sqlparser. `None` when it does not parse as exactly one
/// statement, or parses into something known to be misread (then the token path decides).
pub fn classify(sql: &str) -> Option<Classification> {
    let dialect = PostgreSqlDialect {};
    let tokens = Tokenizer::new(&dialect, sql)
        .tokenize_with_location()
        .ok()?;
    let (operators, odd_operator) = operator_profile(tokens.iter().map(|t| &t.token));
    if operators > MAX_OPERATORS {
        return None;
    }
    let mut stmts = Parser::new(&dialect)
        .with_tokens_with_locations(tokens)
        .parse_statements()
        .ok()?;
    if stmts.len() != 1 {
        return None;
    }
    let stmt = stmts.pop()?;
    let mut c = classify_statement(&stmt)?;
    if odd_operator {
        // sqlparser splits `@@@` into known operators; PostgreSQL reads one, possibly
        // user-defined (and running any function).
        c.noise = false;
    }
    Some(c)
}

/// Counts operator tokens and reports whether some touching ones would be read by
/// PostgreSQL as one (possibly user-defined) operator where sqlparser split them.
pub fn operator_profile<'a>(tokens: impl Iterator<Item = &'a Token>) -> (usize, bool) {
    let mut count = 0;
    let mut odd = false;
    let mut run: Vec<String> = Vec::new();
    let mut check = |run: &mut Vec<String>| {
        let texts: Vec<&str> = run.iter().map(String::as_str).collect();
        if !lexed::pg_splits_same(&texts) {
            odd = true;
        }
        run.clear();
    };
    for t in tokens {
        if is_operator(t) {
            count += 1;
            run.push(t.to_string());
        } else {
            check(&mut run);
        }
    }
    check(&mut run);
    (count, odd)
}

fn is_operator(t: &Token) -> bool {
    !matches!(
        t,
        Token::EOF
            | Token::Word(_)
            | Token::Number(..)
            | Token::Whitespace(_)
            | Token::Comma
            | Token::LParen
            | Token::RParen
            | Token::Period
            | Token::SemiColon
            | Token::DoubleColon
            | Token::LBracket
            | Token::RBracket
            | Token::Colon
            | Token::Placeholder(_)
            | Token::SingleQuotedString(_)
            | Token::DollarQuotedString(_)
            | Token::EscapedStringLiteral(_)
            | Token::NationalStringLiteral(_)
            | Token::UnicodeStringLiteral(_)
            | Token::HexStringLiteral(_)
            | Token::SingleQuotedByteStringLiteral(_)
            | Token::DoubleQuotedString(_)
    )
}

/// What the statement-specific mapping decides; the walk adds the rest.
struct Draft {
    class: Class,
    command: String,
    /// Targets and acted-on objects, listed before relations the walk finds.
    targets: Vec<Object>,
    /// Functions the walk cannot see (the procedure of a `CALL`).
    functions: Vec<String>,
    shape: Shape,
    role_change: Option<RoleChange>,
    literal_dependent: bool,
    /// A plain query: `SELECT INTO` and data-modifying CTEs change its class.
    select: bool,
    /// Whether relations the walk finds are read (false for a view's query).
    walk_relations: bool,
    /// The statement is the body of an `EXPLAIN ANALYZE`.
    explain_analyze: bool,
    /// Read broadly ([`facts::from_ast`]); settled once the command is final.
    facts: StatementFacts,
}

fn draft(class: Class, command: &str) -> Draft {
    Draft {
        class,
        command: command.to_string(),
        targets: Vec::new(),
        functions: Vec::new(),
        shape: Shape::Other,
        role_change: None,
        literal_dependent: false,
        select: false,
        explain_analyze: false,
        walk_relations: true,
        facts: StatementFacts::default(),
    }
}

fn classify_statement(stmt: &Statement) -> Option<Classification> {
    let d = map(stmt, 0)?;
    let facts = walk::walk(stmt);
    finish(d, facts)
}

fn finish(mut d: Draft, f: Facts) -> Option<Classification> {
    if f.misread {
        return None;
    }
    if !f.into_targets.is_empty() {
        if !d.select {
            return None;
        }
        // pgAudit: SELECT INTO is a CreateTableAsStmt, LOGSTMT_DDL, tag "SELECT INTO".
        d.class = Class::Ddl;
        d.command = "SELECT INTO".to_string();
        d.targets.extend(f.into_targets.iter().cloned());
    } else if d.select {
        if let Some(cmd) = f.modifying.first() {
            // Spec over pgAudit: pgAudit prints READ,SELECT for a SELECT whose CTE
            // deletes (its session line is written before the RTE permissions are
            // decoded); the spec wants the write visible: WRITE with the CTE's command.
            d.class = Class::Write;
            d.command = (*cmd).to_string();
        }
    }
    let read_only = d.select && f.into_targets.is_empty() && f.modifying.is_empty() && !f.locking;
    if d.shape == Shape::ReadQuery && (!read_only || f.odd_operator) {
        d.shape = Shape::Other;
    }
    let walked = if d.walk_relations {
        f.objects
    } else {
        Vec::new()
    };
    let objects = names::dedup(d.targets.into_iter().chain(walked));
    let functions = names::dedup(d.functions.into_iter().chain(f.functions));
    let noise = noise::judge(&d.shape, &objects, &functions, f.set_config_ok);
    let facts = facts::settle(d.facts, &d.command);
    let c = Classification {
        class: d.class,
        command: d.command,
        objects,
        functions,
        parse: ParsePath::Ast,
        noise,
        role_change: d.role_change,
        literal_dependent: d.literal_dependent || f.set_config_seen,
        facts,
    };
    Some(if d.explain_analyze {
        c.explained_analyze()
    } else {
        c
    })
}

/// The statement-specific part: class, command, targets. `depth` bounds nesting through
/// EXPLAIN and PREPARE (PostgreSQL allows one level).
fn map(stmt: &Statement, depth: usize) -> Option<Draft> {
    use Class::*;
    if depth > 2 {
        return None;
    }
    let mut d = match stmt {
        Statement::Query(q) => {
            // Look through `(SELECT ...)` wrappers, iteratively.
            let mut body = &*q.body;
            while let SetExpr::Query(inner) = body {
                body = &inner.body;
            }
            match walk::modifying_command(body) {
                Some(cmd) => draft(Write, cmd),
                None => {
                    let mut d = draft(Read, "SELECT");
                    d.select = true;
                    d.shape = Shape::ReadQuery;
                    d
                }
            }
        }
        Statement::Insert(_) => draft(Write, "INSERT"),
        Statement::Update(_) => draft(Write, "UPDATE"),
        Statement::Delete(del) if del.tables.is_empty() => draft(Write, "DELETE"),
        Statement::Merge(_) => draft(Write, "MERGE"),
        // pgAudit: COPY TO is LOGSTMT_ALL + T_CopyStmt = READ; COPY FROM is LOGSTMT_MOD.
        Statement::Copy { source, to, .. } => {
            let mut d = draft(if *to { Read } else { Write }, "COPY");
            if let CopySource::Table { table_name, .. } = source {
                d.targets.push(obj("TABLE", object_name(table_name)?));
            }
            d
        }
        Statement::CreateTable(ct) => {
            let cmd = if ct.query.is_some() {
                "CREATE TABLE AS"
            } else {
                "CREATE TABLE"
            };
            let mut d = draft(Ddl, cmd);
            d.targets.push(obj("TABLE", object_name(&ct.name)?));
            d
        }
        Statement::CreateView(cv) => {
            let (cmd, kind) = if cv.materialized {
                ("CREATE MATERIALIZED VIEW", "MATERIALIZED VIEW")
            } else {
                ("CREATE VIEW", "VIEW")
            };
            let mut d = draft(Ddl, cmd);
            d.targets.push(obj(kind, object_name(&cv.name)?));
            // A view's query does not run: it reads nothing (pgAudit names only the
            // view). A materialized view's query runs.
            d.walk_relations = cv.materialized;
            d
        }
        // pgAudit names the index, in its table's schema; the table only when the index
        // has no name.
        Statement::CreateIndex(ci) => {
            let mut d = draft(Ddl, "CREATE INDEX");
            let table = name_parts(&ci.table_name)?;
            match &ci.name {
                Some(n) => {
                    let index = names::index_in_table_schema(name_parts(n)?, &table);
                    d.targets.push(obj("INDEX", names::render(&index)));
                }
                None => d.targets.push(obj("TABLE", names::render(&table))),
            }
            d
        }
        Statement::CreateRole(cr) => {
            let mut d = draft(Role, "CREATE ROLE");
            d.targets = objs("ROLE", &cr.names)?;
            // Membership given at creation: the groups it joins, the members it gets.
            let lists = [&cr.in_role, &cr.in_group, &cr.role, &cr.user, &cr.admin];
            d.targets.extend(lists.into_iter().flatten().map(role_obj));
            d
        }
        Statement::CreateUser(cu) if cu.options.options.is_empty() => {
            let mut d = draft(Role, "CREATE ROLE");
            d.targets.push(ident_obj("ROLE", &cu.name));
            d
        }
        Statement::AlterRole { name, operation } => {
            let mut d = draft(Role, "ALTER ROLE");
            d.targets.push(
                if name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all") {
                    obj("ROLE", names::ALL_ROLES.to_string())
                } else {
                    role_obj(name)
                },
            );
            // A rename names both roles: the old name is what a reviewer searches.
            if let AlterRoleOperation::RenameRole { role_name } = operation {
                d.targets.push(role_obj(role_name));
            }
            d
        }
        Statement::Drop {
            object_type,
            names,
            table: None,
            ..
        } => {
            let (kind, class) = match object_type {
                ObjectType::Table => ("TABLE", Ddl),
                ObjectType::View => ("VIEW", Ddl),
                ObjectType::MaterializedView => ("MATERIALIZED VIEW", Ddl),
                ObjectType::Index => ("INDEX", Ddl),
                ObjectType::Schema => ("SCHEMA", Ddl),
                ObjectType::Database => ("DATABASE", Ddl),
                ObjectType::Sequence => ("SEQUENCE", Ddl),
                ObjectType::Type => ("TYPE", Ddl),
                ObjectType::Collation => ("COLLATION", Ddl),
                ObjectType::Role | ObjectType::User => ("ROLE", Role),
                _ => return None,
            };
            let mut d = draft(class, &format!("DROP {kind}"));
            d.targets = if kind == "ROLE" {
                role_objs(names)?
            } else {
                objs(kind, names)?
            };
            d
        }
        Statement::DropFunction(df) => {
            let mut d = draft(Ddl, "DROP FUNCTION");
            for f in &df.func_desc {
                d.targets.push(obj("FUNCTION", object_name(&f.name)?));
            }
            d
        }
        Statement::DropProcedure { proc_desc, .. } => {
            let mut d = draft(Ddl, "DROP PROCEDURE");
            for f in proc_desc {
                d.targets.push(obj("PROCEDURE", object_name(&f.name)?));
            }
            d
        }
        Statement::DropExtension(de) => {
            let mut d = draft(Ddl, "DROP EXTENSION");
            d.targets = de.names.iter().map(|n| ident_obj("EXTENSION", n)).collect();
            d
        }
        // pgAudit: GrantStmt is ROLE. Its own line carries the object type but no name
        // (pg_event_trigger_ddl_commands gives no identity for GRANT); we name them.
        Statement::Grant(g) => {
            let mut d = draft(Role, "GRANT");
            d.targets = grant_objects(g.objects.as_ref()?)?;
            d.targets.extend(grantees(&g.grantees)?);
            d
        }
        Statement::Revoke(r) => {
            let mut d = draft(Role, "REVOKE");
            d.targets = grant_objects(r.objects.as_ref()?)?;
            d.targets.extend(grantees(&r.grantees)?);
            d
        }
        Statement::Truncate(t) if t.partitions.is_none() => {
            let mut d = draft(Write, "TRUNCATE TABLE");
            for target in &t.table_names {
                d.targets.push(obj("TABLE", object_name(&target.name)?));
            }
            d
        }
        Statement::Explain {
            describe_alias,
            analyze,
            statement,
            options,
            ..
        } => {
            if !matches!(describe_alias, sqlparser::ast::DescribeAlias::Explain) {
                return None;
            }
            let mut inner = map(statement, depth + 1)?;
            let (on, literal) = explain_analyze(options.as_deref())?;
            if *analyze || on {
                // pgAudit: EXPLAIN ANALYZE takes the inner statement's log level under
                // the tag EXPLAIN; adjusted once the inner draft is finished.
                inner.literal_dependent |= literal;
                inner.explain_analyze = true;
                inner
            } else {
                let mut d = draft(Misc, "EXPLAIN");
                d.targets = inner.targets;
                d.functions = inner.functions;
                d.literal_dependent = literal;
                d
            }
        }
        Statement::Set(s) => map_set(s)?,
        Statement::Reset(r) => {
            let mut d = draft(MiscSet, "RESET");
            match &r.reset {
                Reset::ALL => {
                    d.role_change = Some(RoleChange::Reset);
                    d.shape = Shape::Housekeeping;
                }
                Reset::SessionAuthorization => d.role_change = Some(RoleChange::Reset),
                Reset::ConfigurationParameter(n) => {
                    let name = setting_name(n)?;
                    if name == "role" || name == "session_authorization" {
                        d.role_change = Some(RoleChange::Reset);
                    } else {
                        d.shape = Shape::Setting {
                            name,
                            value_ok: true,
                        };
                    }
                }
            }
            d
        }
        Statement::ShowVariable { .. } => {
            let mut d = draft(Misc, "SHOW");
            d.shape = Shape::Show;
            d
        }
        Statement::StartTransaction {
            begin,
            statements,
            exception: None,
            modifier: None,
            ..
        } if statements.is_empty() => {
            let mut d = draft(Misc, if *begin { "BEGIN" } else { "START TRANSACTION" });
            d.shape = Shape::Transaction;
            d
        }
        Statement::Commit { modifier: None, .. } => transaction("COMMIT"),
        Statement::Rollback { .. } => transaction("ROLLBACK"),
        Statement::Savepoint { .. } => transaction("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => transaction("RELEASE"),
        Statement::Lock(l) => {
            let mut d = draft(Misc, "LOCK TABLE");
            for t in &l.tables {
                d.targets.push(obj("TABLE", object_name(&t.name)?));
            }
            d
        }
        Statement::Discard { object_type } => {
            let (cmd, reset) = match object_type {
                DiscardObject::ALL => ("DISCARD ALL", true),
                DiscardObject::PLANS => ("DISCARD PLANS", false),
                DiscardObject::SEQUENCES => ("DISCARD SEQUENCES", false),
                DiscardObject::TEMP => ("DISCARD TEMP", false),
            };
            let mut d = draft(Misc, cmd);
            // DISCARD ALL includes SET SESSION AUTHORIZATION DEFAULT and RESET ALL.
            if reset {
                d.role_change = Some(RoleChange::Reset);
                d.shape = Shape::Housekeeping;
            }
            d
        }
        // pgAudit: PREPARE takes its query's log level: a SELECT is LOGSTMT_ALL with
        // T_PrepareStmt (READ), a DML statement LOGSTMT_MOD (WRITE).
        Statement::Prepare { statement, .. } => {
            let inner = map(statement, depth + 1)?;
            let class = match inner.class {
                Read => Read,
                Write => Write,
                _ => return None,
            };
            let mut d = draft(class, "PREPARE");
            d.targets = inner.targets;
            d
        }
        Statement::Execute {
            name: Some(_),
            immediate: false,
            into,
            using,
            ..
        } if into.is_empty() && using.is_empty() => draft(Misc, "EXECUTE"),
        Statement::Deallocate { name, .. } => {
            let all = name.quote_style.is_none() && name.value.eq_ignore_ascii_case("all");
            let mut d = draft(Misc, if all { "DEALLOCATE ALL" } else { "DEALLOCATE" });
            d.shape = Shape::Housekeeping;
            d
        }
        // pgAudit: DECLARE CURSOR is LOGSTMT_ALL + T_DeclareCursorStmt = READ.
        Statement::Declare { stmts } => match stmts.as_slice() {
            [d] if matches!(d.declare_type, Some(DeclareType::Cursor)) && d.for_query.is_some() => {
                draft(Read, "DECLARE CURSOR")
            }
            _ => return None,
        },
        Statement::Fetch { into: None, .. } => draft(Misc, "FETCH"),
        Statement::Close { cursor } => match cursor {
            CloseCursor::All => {
                let mut d = draft(Misc, "CLOSE CURSOR ALL");
                d.shape = Shape::Housekeeping;
                d
            }
            CloseCursor::Specific { .. } => draft(Misc, "CLOSE CURSOR"),
        },
        Statement::LISTEN { .. } => draft(Misc, "LISTEN"),
        Statement::UNLISTEN { channel } => {
            let mut d = draft(Misc, "UNLISTEN");
            if channel.quote_style.is_none() && channel.value == "*" {
                d.shape = Shape::Housekeeping;
            }
            d
        }
        Statement::NOTIFY { .. } => draft(Misc, "NOTIFY"),
        Statement::Load { .. } => draft(Misc, "LOAD"),
        Statement::Comment {
            object_type,
            object_name: name,
            ..
        } => {
            let mut d = draft(Ddl, "COMMENT");
            d.targets
                .push(obj(comment_kind(object_type), object_name(name)?));
            d
        }
        Statement::CreateSchema { schema_name, .. } => {
            let mut d = draft(Ddl, "CREATE SCHEMA");
            d.targets.push(match schema_name {
                SchemaName::Simple(n) | SchemaName::NamedAuthorization(n, _) => {
                    obj("SCHEMA", object_name(n)?)
                }
                SchemaName::UnnamedAuthorization(id) => ident_obj("SCHEMA", id),
            });
            d
        }
        Statement::CreateDatabase { db_name, .. } => {
            named(Ddl, "CREATE DATABASE", "DATABASE", db_name)?
        }
        Statement::CreateExtension(ce) => {
            let mut d = draft(Ddl, "CREATE EXTENSION");
            d.targets.push(ident_obj("EXTENSION", &ce.name));
            d
        }
        Statement::CreateFunction(cf) => named(Ddl, "CREATE FUNCTION", "FUNCTION", &cf.name)?,
        Statement::CreateSequence { name, .. } => named(Ddl, "CREATE SEQUENCE", "SEQUENCE", name)?,
        Statement::CreateType { name, .. } => named(Ddl, "CREATE TYPE", "TYPE", name)?,
        Statement::CreateTrigger(ct) => {
            let mut d = named(Ddl, "CREATE TRIGGER", "TRIGGER", &ct.name)?;
            d.targets.push(obj("TABLE", object_name(&ct.table_name)?));
            d
        }
        Statement::AlterTable(at) if at.table_type.is_none() => alter_table(at)?,
        Statement::AlterIndex { name, .. } => named(Ddl, "ALTER INDEX", "INDEX", name)?,
        Statement::AlterSchema(a) => {
            let mut d = named(Ddl, "ALTER SCHEMA", "SCHEMA", &a.name)?;
            for op in &a.operations {
                if let AlterSchemaOperation::OwnerTo { owner } = op {
                    d.targets.push(owner_obj(owner));
                }
            }
            d
        }
        // pgAudit: VACUUM/ANALYZE are LOGSTMT_ALL, not a listed tag: MISC.
        Statement::Vacuum(v) => {
            let mut d = draft(Misc, "VACUUM");
            if let Some(n) = &v.table_name {
                d.targets.push(obj("TABLE", object_name(n)?));
            }
            d
        }
        Statement::Analyze(a) if a.partitions.is_none() => {
            let mut d = draft(Misc, "ANALYZE");
            if let Some(n) = &a.table_name {
                d.targets.push(obj("TABLE", object_name(n)?));
            }
            d
        }
        // Spec over pgAudit: pgAudit prints MISC,CALL (CallStmt is LOGSTMT_ALL) and then
        // FUNCTION,EXECUTE for the procedure; the spec files the statement as FUNCTION.
        // Like pgAudit's FUNCTION line, the procedure is the statement's object.
        Statement::Call(f) => {
            let mut d = draft(Function, "CALL");
            d.targets.push(obj("FUNCTION", object_name(&f.name)?));
            d.functions.push(walk::function_name(&f.name)?);
            d
        }
        _ => return None,
    };
    // An EXPLAIN ANALYZE keeps the facts of what it runs (its inner draft); a plain
    // EXPLAIN and a PREPARE run nothing: no facts.
    if !matches!(stmt, Statement::Explain { .. } | Statement::Prepare { .. }) {
        d.facts = facts::from_ast(stmt);
    }
    Some(d)
}

/// `ALTER TABLE t action, ...`: the table, the column of each column action (`TABLE
/// COLUMN t.c` as pgAudit types it; a rename names the new column, as pgAudit does), and
/// the new owner of `OWNER TO`.
fn alter_table(at: &AlterTable) -> Option<Draft> {
    let table = name_parts(&at.name)?;
    let mut d = draft(Class::Ddl, "ALTER TABLE");
    d.targets.push(obj("TABLE", names::render(&table)));
    let column = |c: &sqlparser::ast::Ident| {
        let mut parts = table.clone();
        parts.push(fold_ident(c));
        obj("TABLE COLUMN", names::render(&parts))
    };
    for op in &at.operations {
        match op {
            AlterTableOperation::AddColumn { column_def, .. } => {
                d.targets.push(column(&column_def.name))
            }
            AlterTableOperation::DropColumn { column_names, .. } => {
                d.targets.extend(column_names.iter().map(column))
            }
            AlterTableOperation::RenameColumn {
                new_column_name, ..
            } => d.targets.push(column(new_column_name)),
            AlterTableOperation::AlterColumn { column_name, .. } => {
                d.targets.push(column(column_name))
            }
            AlterTableOperation::OwnerTo { new_owner } => d.targets.push(owner_obj(new_owner)),
            _ => {}
        }
    }
    Some(d)
}

fn named(class: Class, command: &str, kind: &str, name: &ObjectName) -> Option<Draft> {
    let mut d = draft(class, command);
    d.targets.push(obj(kind, object_name(name)?));
    Some(d)
}

fn transaction(command: &str) -> Draft {
    let mut d = draft(Class::Misc, command);
    d.shape = Shape::Transaction;
    d
}

/// pgAudit: every VariableSetStmt is MISC_SET, tag "SET" (it prints the class as MISC).
fn map_set(s: &Set) -> Option<Draft> {
    use sqlparser::ast::ContextModifier;
    let mut d = draft(Class::MiscSet, "SET");
    match s {
        Set::SingleAssignment {
            variable,
            values,
            scope,
            hivevar: false,
        } => {
            let name = setting_name(variable)?;
            let local = matches!(scope, Some(ContextModifier::Local));
            if name == "role" || name == "session_authorization" {
                let [value] = values.as_slice() else {
                    return None;
                };
                let (role, literal, default) = role_from_expr(value)?;
                d.literal_dependent = literal;
                // PostgreSQL resets on a role value "none" (however spelled) and on the
                // bare keyword DEFAULT.
                let reset = default || (name == "role" && role == "none");
                d.role_change = Some(if reset {
                    RoleChange::Reset
                } else {
                    RoleChange::Set { role, local }
                });
            } else {
                let value_ok = if name == "search_path" {
                    let mut schemas = Vec::new();
                    for v in values {
                        match v {
                            Expr::Identifier(id) => schemas.push(fold_ident(id)),
                            Expr::Value(v) => match &v.value {
                                Value::SingleQuotedString(s) => {
                                    // The verdict depends on this literal's value.
                                    d.literal_dependent = true;
                                    schemas.push(s.clone());
                                }
                                _ => return None,
                            },
                            _ => return None,
                        }
                    }
                    noise::search_path_ok(&schemas)
                } else {
                    true
                };
                d.shape = Shape::Setting { name, value_ok };
            }
        }
        Set::SetRole {
            context_modifier,
            role_name: r,
        } => {
            let local = matches!(context_modifier, Some(ContextModifier::Local));
            d.role_change = Some(match r {
                None => RoleChange::Reset,
                Some(id) => {
                    let (role, literal) = role_name(id);
                    d.literal_dependent = literal;
                    if role == "none" {
                        RoleChange::Reset
                    } else {
                        RoleChange::Set { role, local }
                    }
                }
            });
        }
        Set::SetSessionAuthorization(p) => {
            d.role_change = Some(match &p.kind {
                SetSessionAuthorizationParamKind::Default => RoleChange::Reset,
                SetSessionAuthorizationParamKind::User(id) => {
                    let (role, literal) = role_name(id);
                    d.literal_dependent = literal;
                    RoleChange::Set { role, local: false }
                }
            });
        }
        Set::SetTimeZone { .. } => {
            d.shape = Shape::Setting {
                name: "timezone".to_string(),
                value_ok: true,
            }
        }
        Set::SetNames { .. } | Set::SetNamesDefault {} => {
            d.shape = Shape::Setting {
                name: "client_encoding".to_string(),
                value_ok: true,
            }
        }
        Set::SetTransaction { .. } => d.shape = Shape::Transaction,
        _ => return None,
    }
    Some(d)
}

#[cfg(test)]
mod tests;
