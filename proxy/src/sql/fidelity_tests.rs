//! Issue 14's audit-fidelity cases on both classifier paths: role keywords that are not
//! role names, renamed roles, group members, user mappings, DROP/REASSIGN OWNED, the
//! columns of ALTER TABLE, and the tables of triggers, policies and rules.
//!
//! Every case runs on the token path (forced), on the sqlparser path (which must either
//! decline or agree with the token path), and through the `Classifier` entry point (which
//! also renames objects after `RENAME TO`).

use super::test_support::objects;
use super::{ast, tokens, Class, Classifier, ClassifierOptions};

/// (statement, class, command, objects as "KIND name").
type Case = (&'static str, Class, &'static str, &'static [&'static str]);

const CASES: &[Case] = &[
    // Role keywords: the session's roles, not roles of those names. Quoted, they are.
    (
        "ALTER ROLE CURRENT_USER SET work_mem = '1MB'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE CURRENT_USER"],
    ),
    (
        "alter role current_user reset all",
        Class::Role,
        "ALTER ROLE",
        &["ROLE CURRENT_USER"],
    ),
    (
        "ALTER ROLE \"current_user\" SET work_mem = '1MB'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE \"current_user\""],
    ),
    (
        "ALTER ROLE \"CURRENT_USER\" NOLOGIN",
        Class::Role,
        "ALTER ROLE",
        &["ROLE \"CURRENT_USER\""],
    ),
    (
        "ALTER ROLE SESSION_USER WITH CONNECTION LIMIT 5",
        Class::Role,
        "ALTER ROLE",
        &["ROLE SESSION_USER"],
    ),
    (
        "ALTER USER CURRENT_ROLE WITH CONNECTION LIMIT 5",
        Class::Role,
        "ALTER ROLE",
        &["ROLE CURRENT_ROLE"],
    ),
    (
        "ALTER ROLE ALL SET work_mem = '1MB'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE ALL"],
    ),
    (
        "ALTER ROLE ALL IN DATABASE app RESET work_mem",
        Class::Role,
        "ALTER ROLE",
        &["ROLE ALL"],
    ),
    (
        "ALTER ROLE \"all\" SET work_mem = '1MB'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE \"all\""],
    ),
    (
        "GRANT r TO CURRENT_USER, PUBLIC, \"public\", \"current_user\"",
        Class::Role,
        "GRANT ROLE",
        &[
            "ROLE r",
            "ROLE CURRENT_USER",
            "ROLE public",
            "ROLE \"current_user\"",
        ],
    ),
    (
        "GRANT r TO SESSION_USER GRANTED BY CURRENT_USER",
        Class::Role,
        "GRANT ROLE",
        &["ROLE r", "ROLE SESSION_USER"],
    ),
    (
        "REVOKE ADMIN OPTION FOR r FROM CURRENT_ROLE",
        Class::Role,
        "REVOKE ROLE",
        &["ROLE r", "ROLE CURRENT_ROLE"],
    ),
    (
        "ALTER DEFAULT PRIVILEGES FOR ROLE CURRENT_USER GRANT SELECT ON TABLES TO PUBLIC",
        Class::Role,
        "ALTER DEFAULT PRIVILEGES",
        &["ROLE CURRENT_USER", "TABLES *", "ROLE public"],
    ),
    // GRANT and REVOKE on objects: the objects, then the grantees.
    (
        "GRANT SELECT ON t TO CURRENT_USER, \"current_user\", GROUP g",
        Class::Role,
        "GRANT",
        &[
            "TABLE t",
            "ROLE CURRENT_USER",
            "ROLE \"current_user\"",
            "ROLE g",
        ],
    ),
    (
        "GRANT SELECT ON t TO PUBLIC",
        Class::Role,
        "GRANT",
        &["TABLE t", "ROLE public"],
    ),
    (
        "GRANT SELECT ON t TO \"public\"",
        Class::Role,
        "GRANT",
        &["TABLE t", "ROLE public"],
    ),
    (
        "REVOKE ALL ON ALL TABLES IN SCHEMA s FROM SESSION_USER CASCADE",
        Class::Role,
        "REVOKE",
        &["TABLE s.*", "ROLE SESSION_USER"],
    ),
    (
        "GRANT EXECUTE ON FUNCTION f(int) TO alice WITH GRANT OPTION GRANTED BY CURRENT_USER",
        Class::Role,
        "GRANT",
        &["FUNCTION f", "ROLE alice"],
    ),
    (
        "DROP ROLE CURRENT_USER, \"current_user\", a",
        Class::Role,
        "DROP ROLE",
        &["ROLE CURRENT_USER", "ROLE \"current_user\"", "ROLE a"],
    ),
    // ALTER ... OWNER TO: the new owner.
    (
        "ALTER TABLE t OWNER TO CURRENT_USER",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "ROLE CURRENT_USER"],
    ),
    (
        "ALTER TABLE t OWNER TO \"current_user\"",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "ROLE \"current_user\""],
    ),
    (
        "ALTER SCHEMA s OWNER TO SESSION_USER",
        Class::Ddl,
        "ALTER SCHEMA",
        &["SCHEMA s", "ROLE SESSION_USER"],
    ),
    (
        "ALTER FUNCTION f(int) OWNER TO CURRENT_ROLE",
        Class::Ddl,
        "ALTER FUNCTION",
        &["FUNCTION f", "ROLE CURRENT_ROLE"],
    ),
    (
        "ALTER TABLE t ADD PRIMARY KEY (a), OWNER TO Bob",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "ROLE bob"],
    ),
    // A column called owner is no owner.
    (
        "ALTER TABLE t RENAME owner TO x",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.x"],
    ),
    (
        "ALTER VIEW v RENAME COLUMN owner TO x",
        Class::Ddl,
        "ALTER VIEW",
        &["VIEW v"],
    ),
    // Renamed roles: both names.
    (
        "ALTER ROLE a RENAME TO b",
        Class::Role,
        "ALTER ROLE",
        &["ROLE a", "ROLE b"],
    ),
    (
        "ALTER USER \"A\" RENAME TO \"B\"",
        Class::Role,
        "ALTER ROLE",
        &["ROLE \"A\"", "ROLE \"B\""],
    ),
    // Group members gain or lose the group's privileges.
    (
        "ALTER GROUP g ADD USER u1, u2",
        Class::Role,
        "ALTER ROLE",
        &["ROLE g", "ROLE u1", "ROLE u2"],
    ),
    (
        "ALTER GROUP g DROP USER u1, CURRENT_USER",
        Class::Role,
        "ALTER ROLE",
        &["ROLE g", "ROLE u1", "ROLE CURRENT_USER"],
    ),
    // User mappings: DDL, one object as pgAudit names it.
    (
        "CREATE USER MAPPING FOR CURRENT_USER SERVER s1 OPTIONS (user 'x', password 'y')",
        Class::Ddl,
        "CREATE USER MAPPING",
        &["USER MAPPING CURRENT_USER on server s1"],
    ),
    (
        "CREATE USER MAPPING IF NOT EXISTS FOR PUBLIC SERVER \"S\"",
        Class::Ddl,
        "CREATE USER MAPPING",
        &["USER MAPPING public on server \"S\""],
    ),
    (
        "ALTER USER MAPPING FOR USER SERVER s1 OPTIONS (DROP user)",
        Class::Ddl,
        "ALTER USER MAPPING",
        &["USER MAPPING CURRENT_USER on server s1"],
    ),
    (
        "ALTER USER MAPPING FOR \"user\" SERVER s1 OPTIONS (DROP user)",
        Class::Ddl,
        "ALTER USER MAPPING",
        &["USER MAPPING \"user\" on server s1"],
    ),
    (
        "ALTER USER MAPPING FOR \"current_user\" SERVER s1 OPTIONS (SET password 'z')",
        Class::Ddl,
        "ALTER USER MAPPING",
        &["USER MAPPING \"current_user\" on server s1"],
    ),
    (
        "DROP USER MAPPING IF EXISTS FOR Bob SERVER s1",
        Class::Ddl,
        "DROP USER MAPPING",
        &["USER MAPPING bob on server s1"],
    ),
    // CREATE ROLE's membership options: the groups joined, then the members given.
    (
        "CREATE ROLE x IN ROLE g1, CURRENT_USER",
        Class::Role,
        "CREATE ROLE",
        &["ROLE x", "ROLE g1", "ROLE CURRENT_USER"],
    ),
    (
        "CREATE ROLE g ADMIN a ROLE u IN GROUP h",
        Class::Role,
        "CREATE ROLE",
        &["ROLE g", "ROLE h", "ROLE u", "ROLE a"],
    ),
    (
        "CREATE GROUP g WITH USER u1, u2",
        Class::Role,
        "CREATE ROLE",
        &["ROLE g", "ROLE u1", "ROLE u2"],
    ),
    (
        "CREATE ROLE x PASSWORD 'role' VALID UNTIL 'infinity'",
        Class::Role,
        "CREATE ROLE",
        &["ROLE x"],
    ),
    // A role named mapping is no user mapping.
    (
        "DROP USER mapping",
        Class::Role,
        "DROP ROLE",
        &["ROLE mapping"],
    ),
    (
        "ALTER USER mapping RENAME TO m2",
        Class::Role,
        "ALTER ROLE",
        &["ROLE mapping", "ROLE m2"],
    ),
    // DROP OWNED / REASSIGN OWNED: the roles (what the server drops is not in the text).
    (
        "DROP OWNED BY r1, r2 CASCADE",
        Class::Ddl,
        "DROP OWNED",
        &["ROLE r1", "ROLE r2"],
    ),
    (
        "DROP OWNED BY CURRENT_USER",
        Class::Ddl,
        "DROP OWNED",
        &["ROLE CURRENT_USER"],
    ),
    (
        "REASSIGN OWNED BY r1, CURRENT_USER TO SESSION_USER",
        Class::Ddl,
        "REASSIGN OWNED",
        &["ROLE r1", "ROLE CURRENT_USER", "ROLE SESSION_USER"],
    ),
    // Columns of ALTER TABLE, qualified like the table; a rename names the new column.
    (
        "ALTER TABLE t DROP COLUMN c",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.c"],
    ),
    (
        "ALTER TABLE IF EXISTS ONLY s.t DROP COLUMN IF EXISTS \"C\" CASCADE",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE s.t", "TABLE COLUMN s.t.\"C\""],
    ),
    (
        "ALTER TABLE t DROP c, DROP COLUMN d",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.c", "TABLE COLUMN t.d"],
    ),
    (
        "ALTER TABLE t RENAME COLUMN c TO d",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.d"],
    ),
    (
        "ALTER TABLE t RENAME c TO d",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.d"],
    ),
    (
        "ALTER TABLE t ALTER COLUMN c TYPE bigint",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.c"],
    ),
    (
        "ALTER TABLE t ALTER c SET DEFAULT 1, ADD COLUMN IF NOT EXISTS e int",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t", "TABLE COLUMN t.c", "TABLE COLUMN t.e"],
    ),
    // Constraints and the table's own rename name no column.
    (
        "ALTER TABLE t RENAME CONSTRAINT a TO b",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t"],
    ),
    (
        "ALTER TABLE t DROP CONSTRAINT k, ADD CONSTRAINT k2 CHECK (a > 0)",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE t"],
    ),
    (
        "ALTER TABLE t RENAME TO u",
        Class::Ddl,
        "ALTER TABLE",
        &["TABLE u"],
    ),
    // Triggers, policies and rules: the object and its table, each with its own type.
    (
        "CREATE TRIGGER tr AFTER INSERT ON s.t FOR EACH ROW EXECUTE FUNCTION f()",
        Class::Ddl,
        "CREATE TRIGGER",
        &["TRIGGER tr", "TABLE s.t"],
    ),
    (
        "DROP TRIGGER IF EXISTS tr ON s.t",
        Class::Ddl,
        "DROP TRIGGER",
        &["TRIGGER tr", "TABLE s.t"],
    ),
    (
        "ALTER TRIGGER tr ON t RENAME TO tr2",
        Class::Ddl,
        "ALTER TRIGGER",
        &["TRIGGER tr2", "TABLE t"],
    ),
    (
        "CREATE POLICY p ON t FOR SELECT TO CURRENT_USER USING (true)",
        Class::Ddl,
        "CREATE POLICY",
        &["POLICY p", "TABLE t"],
    ),
    (
        "ALTER POLICY p ON t TO PUBLIC",
        Class::Ddl,
        "ALTER POLICY",
        &["POLICY p", "TABLE t"],
    ),
    (
        "DROP POLICY p ON ONLY t",
        Class::Ddl,
        "DROP POLICY",
        &["POLICY p", "TABLE t"],
    ),
    (
        "CREATE RULE r AS ON DELETE TO t DO INSTEAD NOTHING",
        Class::Ddl,
        "CREATE RULE",
        &["RULE r", "TABLE t"],
    ),
    (
        "ALTER RULE r ON t RENAME TO r2",
        Class::Ddl,
        "ALTER RULE",
        &["RULE r2", "TABLE t"],
    ),
    // Shapes from PostgreSQL's regression SQL the token path misread.
    (
        "MERGE INTO ONLY m AS t USING s ON t.id = s.id WHEN NOT MATCHED THEN INSERT VALUES (s.id)",
        Class::Write,
        "MERGE",
        &["TABLE m", "TABLE s"],
    ),
    (
        "COPY BINARY customers TO STDOUT",
        Class::Read,
        "COPY",
        &["TABLE customers"],
    ),
    (
        "COPY \"binary\" FROM STDIN",
        Class::Write,
        "COPY",
        &["TABLE \"binary\""],
    ),
];

#[test]
fn both_paths_and_the_entry_point() {
    let classifier = Classifier::new(ClassifierOptions::default());
    for (sql, class, command, objs) in CASES {
        let s = classifier.classify_statement(sql);
        let c = &s.class;
        assert_eq!((c.class, c.command.as_str()), (*class, *command), "{sql}");
        assert_eq!(objects(c), *objs, "{sql}");
        // The token path alone misses only the entry point's rename.
        let t = tokens::classify(sql);
        assert_eq!((t.class, t.command.as_str()), (*class, *command), "{sql}");
        if !sql.contains(" RENAME TO ") {
            assert_eq!(objects(&t), *objs, "token path: {sql}");
        }
        if let Some(a) = ast::classify(sql) {
            assert_eq!(objects(&a), objects(&t), "AST path: {sql}");
            assert_eq!(
                (a.class, &a.command),
                (t.class, &t.command),
                "AST path: {sql}"
            );
        }
    }
}

/// No statement's objects name a role "current_user", "session_user", "current_role" or
/// "all" unless the statement quoted it: a keyword is never misread as a role name.
#[test]
fn keywords_never_become_role_names() {
    let classifier = Classifier::new(ClassifierOptions::default());
    for (sql, ..) in CASES.iter().filter(|c| !c.0.contains('"')) {
        for o in &classifier.classify_statement(sql).class.objects {
            for k in ["current_user", "session_user", "current_role", "all"] {
                assert!(
                    !o.name.contains(&format!("\"{k}\"")) && o.name != k,
                    "{sql}: {o:?}"
                );
            }
        }
    }
}

#[test]
fn alter_group_add_user_grants_membership() {
    let classifier = Classifier::new(ClassifierOptions::default());
    let add = classifier.classify_statement("ALTER GROUP admins ADD USER mallory");
    assert!(add.class.facts.grants_role);
    let drop = classifier.classify_statement("ALTER GROUP admins DROP USER mallory");
    assert!(!drop.class.facts.grants_role);
    // A role renamed to "add" grants nothing.
    let rename = classifier.classify_statement("ALTER GROUP g RENAME TO add");
    assert!(!rename.class.facts.grants_role);
}

/// Hostile shapes: truncated statements and lists end without a panic and without
/// inventing names.
#[test]
fn truncated_statements_are_bounded() {
    for sql in [
        "ALTER GROUP g ADD USER",
        "ALTER GROUP g ADD USER u,",
        "ALTER ROLE",
        "ALTER TABLE t DROP COLUMN",
        "ALTER TABLE t RENAME c TO",
        "ALTER TABLE t OWNER TO",
        "CREATE USER MAPPING FOR",
        "CREATE USER MAPPING FOR u SERVER",
        "DROP OWNED BY",
        "REASSIGN OWNED BY a TO",
        "ALTER TABLE t ALTER COLUMN c TYPE int,,,, DROP",
        "COPY BINARY",
    ] {
        let t = tokens::classify(sql);
        assert!(
            t.objects.iter().all(|o| !o.name.is_empty()),
            "{sql}: {:?}",
            t.objects
        );
    }
    let many = format!("DROP OWNED BY {}", vec!["r"; 10_000].join(", "));
    assert_eq!(tokens::classify(&many).objects.len(), 1);
}

/// The statements sqlparser parses are answered by the AST path itself (so both paths are
/// exercised on them above, not only the token path).
#[test]
fn the_ast_path_answers_what_sqlparser_parses() {
    for sql in [
        "ALTER ROLE CURRENT_USER SET work_mem = '1MB'",
        "ALTER ROLE \"current_user\" SET work_mem = '1MB'",
        "ALTER ROLE SESSION_USER WITH CONNECTION LIMIT 5",
        "ALTER USER CURRENT_ROLE WITH CONNECTION LIMIT 5",
        "ALTER ROLE ALL SET work_mem = '1MB'",
        "ALTER ROLE a RENAME TO b",
        "DROP ROLE CURRENT_USER, \"current_user\", a",
        "DROP USER mapping",
        "ALTER TABLE t OWNER TO CURRENT_USER",
        "ALTER TABLE t OWNER TO \"current_user\"",
        "ALTER SCHEMA s OWNER TO SESSION_USER",
        "ALTER TABLE t DROP COLUMN c",
        "ALTER TABLE t DROP c, DROP COLUMN d",
        "ALTER TABLE t RENAME COLUMN c TO d",
        "ALTER TABLE t ALTER COLUMN c TYPE bigint",
        "ALTER TABLE t RENAME owner TO x",
        "CREATE TRIGGER tr AFTER INSERT ON s.t FOR EACH ROW EXECUTE FUNCTION f()",
        "GRANT SELECT ON t TO PUBLIC",
        "GRANT SELECT ON t TO \"public\"",
        "REVOKE ALL ON ALL TABLES IN SCHEMA s FROM SESSION_USER CASCADE",
    ] {
        assert!(ast::classify(sql).is_some(), "AST path declined: {sql}");
    }
}
