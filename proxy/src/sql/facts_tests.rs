//! Tests of [`StatementFacts`] on both classifier paths: the sqlparser path
//! (`ast::classify`), the token path forced (`tokens::classify`), and the `Classifier`
//! entry point. Each case says whether sqlparser 0.63 parses it (else the AST path must
//! give `None` and the entry point the token path's answer).

use super::{ast, tokens, Classifier, ClassifierOptions, CopyDirection, ParsePath, StatementFacts};

/// (statement, facts, whether the AST path answers).
type Case = (&'static str, StatementFacts, bool);

fn none() -> StatementFacts {
    StatementFacts::default()
}

fn wh(has: bool) -> StatementFacts {
    StatementFacts {
        has_where: Some(has),
        ..none()
    }
}

fn copy(to: bool, program: bool) -> StatementFacts {
    StatementFacts {
        copy_direction: Some(if to {
            CopyDirection::To
        } else {
            CopyDirection::From
        }),
        copy_program: program,
        ..none()
    }
}

fn roles(attributes: &[&str]) -> StatementFacts {
    StatementFacts {
        role_attributes: attributes.iter().map(|a| a.to_string()).collect(),
        ..none()
    }
}

fn grant_role() -> StatementFacts {
    StatementFacts {
        grants_role: true,
        ..none()
    }
}

fn classifier() -> Classifier {
    Classifier::new(ClassifierOptions::default())
}

/// Asserts the facts of every case on the token path, the AST path and the entry point.
fn check(cases: &[Case]) {
    let c = classifier();
    for (sql, want, parses) in cases {
        let tok = tokens::classify(sql);
        assert_eq!(&tok.facts, want, "token path: {sql} ({})", tok.command);
        match ast::classify(sql) {
            Some(a) => {
                assert!(parses, "AST path answered unexpectedly: {sql}");
                assert_eq!(&a.facts, want, "AST path: {sql} ({})", a.command);
                assert_eq!(a.command, tok.command, "commands differ: {sql}");
            }
            None => assert!(!parses, "AST path gave no answer: {sql}"),
        }
        let s = c.classify_statement(sql);
        assert_eq!(&s.class.facts, want, "Classifier: {sql}");
        let path = if *parses {
            ParsePath::Ast
        } else {
            ParsePath::Tokens
        };
        assert_eq!(s.class.parse, path, "Classifier path: {sql}");
    }
}

#[test]
fn update_and_delete_where() {
    check(&[
        ("UPDATE t SET a = 1", wh(false), true),
        ("UPDATE t SET a = 1 WHERE id = 2", wh(true), true),
        ("update t set a = 1 where id = 2", wh(true), true),
        (
            "UPDATE t SET a = u.b FROM u WHERE t.id = u.id",
            wh(true),
            true,
        ),
        ("UPDATE t SET a = 1 FROM u", wh(false), true),
        (
            "UPDATE t SET a = (SELECT 1 FROM u WHERE u.b = 2)",
            wh(false),
            true,
        ),
        (
            "UPDATE t SET a = CASE WHEN b > 1 THEN 2 ELSE 3 END RETURNING a",
            wh(false),
            true,
        ),
        ("UPDATE t SET a = 1 RETURNING a AS where", wh(false), true),
        ("UPDATE t SET a = 1 WHERE CURRENT OF c", wh(true), false),
        ("DELETE FROM t", wh(false), true),
        ("DELETE FROM t WHERE id = 1", wh(true), true),
        ("DELETE FROM t USING u WHERE t.id = u.id", wh(true), true),
        ("DELETE FROM t USING u", wh(false), true),
        (
            "DELETE FROM t WHERE id IN (SELECT id FROM u)",
            wh(true),
            true,
        ),
        ("DELETE FROM ONLY t", wh(false), false),
        ("DELETE FROM t WHERE CURRENT OF c", wh(true), false),
        ("DELETE FROM t RETURNING *", wh(false), true),
    ]);
}

#[test]
fn data_modifying_with() {
    check(&[
        // The main statement is the UPDATE/DELETE.
        (
            "WITH s AS (SELECT 1 AS x) UPDATE t SET a = 1 WHERE b IN (SELECT x FROM s)",
            wh(true),
            true,
        ),
        ("WITH s AS (SELECT 1 AS x) DELETE FROM t", wh(false), true),
        // A WITH query deletes: reported as DELETE, all top-level DML counts.
        ("WITH d AS (DELETE FROM t) SELECT 1", wh(false), true),
        (
            "WITH d AS (DELETE FROM t WHERE id = 1 RETURNING *) SELECT * FROM d",
            wh(true),
            true,
        ),
        (
            "(WITH d AS (DELETE FROM t RETURNING 1) SELECT * FROM d)",
            wh(false),
            true,
        ),
        (
            "WITH d AS (DELETE FROM t WHERE a = 1) DELETE FROM u WHERE b = 2",
            wh(true),
            true,
        ),
        (
            "WITH d AS (DELETE FROM t) UPDATE u SET a = 1 WHERE b = 2",
            wh(false),
            true,
        ),
        (
            "WITH u AS (UPDATE t SET a = 1 WHERE b = 2 RETURNING *), \
             v AS (SELECT * FROM u) SELECT * FROM v",
            wh(true),
            true,
        ),
        // Reported as INSERT: no WHERE fact.
        (
            "WITH i AS (INSERT INTO t VALUES (1) RETURNING *), d AS (DELETE FROM u) SELECT 1",
            none(),
            true,
        ),
    ]);
}

#[test]
fn copy_direction_and_program() {
    check(&[
        ("COPY t TO STDOUT", copy(true, false), true),
        (
            "COPY (SELECT a FROM t WHERE b = 1) TO '/tmp/x'",
            copy(true, false),
            true,
        ),
        ("COPY t FROM STDIN", copy(false, false), true),
        (
            "COPY t (a, b) FROM STDIN WITH (FORMAT csv)",
            copy(false, false),
            true,
        ),
        ("COPY t TO PROGRAM 'gzip > /tmp/x'", copy(true, true), true),
        (
            "COPY t FROM PROGRAM 'curl http://example.com/x'",
            copy(false, true),
            true,
        ),
        ("copy s.t (a) to program 'cat'", copy(true, true), true),
        // What sqlparser rejects: the token path.
        ("COPY BINARY t TO STDOUT", copy(true, false), false),
        (
            "COPY t FROM PROGRAM 'cat' WHERE a > 1",
            copy(false, true),
            false,
        ),
    ]);
}

#[test]
fn role_attributes() {
    check(&[
        (
            "CREATE ROLE x WITH SUPERUSER LOGIN PASSWORD 'p'",
            roles(&["superuser", "login"]),
            true,
        ),
        ("ALTER ROLE x CREATEROLE", roles(&["createrole"]), true),
        ("ALTER ROLE x WITH CREATEROLE", roles(&["createrole"]), true),
        ("ALTER USER x WITH NOSUPERUSER", roles(&[]), true),
        ("ALTER ROLE x BYPASSRLS", roles(&["bypassrls"]), true),
        ("ALTER USER x LOGIN", roles(&["login"]), true),
        (
            "CREATE ROLE x NOLOGIN CREATEDB REPLICATION BYPASSRLS CREATEROLE",
            roles(&["createrole", "createdb", "bypassrls", "replication"]),
            true,
        ),
        // CREATE USER implies LOGIN.
        ("CREATE USER x", roles(&["login"]), true),
        (
            "CREATE USER x WITH SUPERUSER",
            roles(&["superuser", "login"]),
            false,
        ),
        ("CREATE USER x NOLOGIN", roles(&[]), false),
        ("CREATE GROUP g", roles(&[]), false),
        ("CREATE GROUP g SUPERUSER", roles(&["superuser"]), false),
        // Role names and configuration values are not attributes.
        ("CREATE ROLE x IN ROLE superuser", grant_role(), true),
        ("CREATE ROLE superuser LOGIN", roles(&["login"]), true),
        (
            "ALTER ROLE x SET search_path TO superuser",
            roles(&[]),
            true,
        ),
        ("ALTER ROLE x RENAME TO superuser", roles(&[]), true),
        (
            "ALTER GROUP g ADD USER superuser, createrole",
            grant_role(),
            false,
        ),
        (
            "CREATE ROLE x ROLE superuser ADMIN createdb LOGIN",
            StatementFacts {
                grants_role: true,
                ..roles(&["login"])
            },
            true,
        ),
        ("ALTER ROLE x WITH PASSWORD 'superuser'", roles(&[]), true),
        // PostgreSQL reads role options as identifiers: a quoted one counts there too.
        (
            "ALTER ROLE x WITH \"superuser\"",
            roles(&["superuser"]),
            false,
        ),
    ]);
}

#[test]
fn grants_role() {
    check(&[
        ("GRANT admin TO alice", grant_role(), false),
        (
            "GRANT admin, auditor TO alice WITH ADMIN OPTION",
            grant_role(),
            false,
        ),
        // USAGE is no reserved word: a role to PostgreSQL.
        ("GRANT usage TO alice", grant_role(), false),
        ("GRANT SELECT ON t TO alice", none(), true),
        ("GRANT ALL ON ALL TABLES IN SCHEMA s TO bob", none(), true),
        ("GRANT SELECT (a, b) ON t TO alice", none(), true),
        ("REVOKE admin FROM alice", none(), false),
        ("REVOKE SELECT ON t FROM alice", none(), true),
        // Membership given when the role is created.
        ("CREATE ROLE x IN ROLE admins", grant_role(), true),
        ("CREATE ROLE x IN GROUP admins, ops", grant_role(), true),
        ("CREATE GROUP g USER u1, u2", grant_role(), false),
        ("CREATE ROLE g WITH ADMIN u", grant_role(), true),
        (
            "CREATE ROLE x LOGIN PASSWORD 'role'",
            roles(&["login"]),
            true,
        ),
        ("CREATE ROLE \"role\"", none(), true),
        // ALTER GROUP g ADD USER u is GRANT g TO u under another command tag.
        ("ALTER GROUP g ADD USER u1, u2", grant_role(), false),
        ("alter group g add user CURRENT_USER", grant_role(), false),
        ("ALTER GROUP g DROP USER u1", none(), false),
        ("ALTER GROUP g RENAME TO add", none(), false),
        ("ALTER ROLE g SET search_path = add", none(), true),
    ]);
}

#[test]
fn no_facts_for_other_commands() {
    check(&[
        ("SELECT * FROM t WHERE a = 1", none(), true),
        ("INSERT INTO t SELECT * FROM u WHERE a = 1", none(), true),
        ("DROP ROLE superuser", none(), true),
        ("SET ROLE superuser", none(), true),
        ("TRUNCATE t", none(), true),
        ("CREATE TABLE t (a int)", none(), true),
    ]);
}

#[test]
fn explain_analyze_keeps_facts_plain_explain_has_none() {
    check(&[
        ("EXPLAIN ANALYZE DELETE FROM t", wh(false), true),
        (
            "EXPLAIN (ANALYZE) UPDATE t SET a = 1 WHERE b = 2",
            wh(true),
            true,
        ),
        ("EXPLAIN (ANALYZE false) DELETE FROM t", none(), true),
        ("EXPLAIN DELETE FROM t", none(), true),
        ("EXPLAIN UPDATE t SET a = 1", none(), true),
        ("PREPARE p AS DELETE FROM t", none(), true),
        (
            "EXPLAIN ANALYZE DELETE FROM t WHERE CURRENT OF c",
            wh(true),
            false,
        ),
        ("EXPLAIN DELETE FROM t WHERE CURRENT OF c", none(), false),
    ]);
    let c = tokens::classify("EXPLAIN ANALYZE DELETE FROM t");
    assert_eq!(c.command, "EXPLAIN");
    let c = ast::classify("EXPLAIN ANALYZE DELETE FROM t");
    assert_eq!(c.map(|c| c.command).as_deref(), Some("EXPLAIN"));
}

/// Over `max_parse_bytes` the token path judges the prefix.
#[test]
fn over_parse_limit_uses_token_facts() {
    let c = Classifier::new(ClassifierOptions {
        max_parse_bytes: 40,
        ..ClassifierOptions::default()
    });
    let pad = "x".repeat(100);
    let cases: &[(String, StatementFacts)] = &[
        (
            format!("DELETE FROM t WHERE id = 1 OR b = '{pad}'"),
            wh(true),
        ),
        (format!("UPDATE t SET a = '{pad}'"), wh(false)),
        (format!("COPY t TO PROGRAM '{pad}'"), copy(true, true)),
        (
            format!("ALTER ROLE x SUPERUSER VALID UNTIL '{pad}'"),
            roles(&["superuser"]),
        ),
    ];
    for (sql, want) in cases {
        let s = c.classify_statement(sql);
        assert_eq!(s.class.parse, ParsePath::Tokens, "{sql}");
        assert_eq!(&s.class.facts, want, "{sql}");
    }
}

/// The cache is keyed by a literal-blind fingerprint: a cache hit must carry the same
/// facts the statement would get.
#[test]
fn facts_do_not_depend_on_literals() {
    let c = classifier();
    let pairs = [
        (
            "COPY t TO PROGRAM 'gzip > /tmp/a'",
            "COPY t TO PROGRAM 'curl x'",
        ),
        ("DELETE FROM t WHERE id = 1", "DELETE FROM t WHERE id = 2"),
        (
            "ALTER ROLE x WITH PASSWORD 'superuser'",
            "ALTER ROLE x WITH PASSWORD 'p'",
        ),
    ];
    for (first, second) in pairs {
        let a = c.classify_statement(first);
        let b = c.classify_statement(second);
        assert!(b.cache_hit, "{second}");
        assert_eq!(a.class.facts, b.class.facts);
        assert_eq!(b.class.facts, tokens::classify(second).facts, "{second}");
    }
}

/// Malformed and adversarial text: no panic, sensible facts.
#[test]
fn hostile_input() {
    for sql in [
        "UPDATE",
        "DELETE",
        "COPY",
        "COPY (",
        "COPY t",
        "CREATE ROLE",
        "ALTER ROLE x IN",
        "ALTER ROLE x ROLE",
        "CREATE USER",
        "GRANT",
        "GRANT TO",
        "WITH",
        "WITH d AS (DELETE",
        "WITH d AS (",
        "DELETE FROM t ) WHERE a = 1",
        "UPDATE t SET a = 'unterminated",
        "DELETE FROM t WHERE a = $$x",
        "EXPLAIN ANALYZE",
        "EXPLAIN ANALYZE EXPLAIN ANALYZE EXPLAIN ANALYZE EXPLAIN ANALYZE DELETE FROM t",
        ")))",
    ] {
        let _ = tokens::classify(sql);
        let _ = ast::classify(sql);
        let _ = classifier().classify_statement(sql);
    }
    assert_eq!(tokens::classify("DELETE FROM t").facts, wh(false));
    assert_eq!(
        tokens::classify("DELETE FROM t WHERE a = 'x").facts,
        wh(true)
    );
    assert_eq!(tokens::classify("UPDATE t SET a = 'x").facts, wh(false));
    assert_eq!(
        tokens::classify("DELETE FROM t ) WHERE a = 1").facts,
        wh(false)
    );
    assert_eq!(tokens::classify("COPY t").facts, none());

    // Deep nesting: iterative, linear.
    let n = 100_000;
    let deep = format!(
        "UPDATE t SET a = {}1{} WHERE b = 1",
        "(".repeat(n),
        ")".repeat(n)
    );
    assert_eq!(tokens::classify(&deep).facts, wh(true));
    let unclosed = format!("DELETE FROM t WHERE a = {}", "(".repeat(n));
    assert_eq!(tokens::classify(&unclosed).facts, wh(true));
    let ctes: Vec<String> = (0..5_000)
        .map(|i| format!("c{i} AS (DELETE FROM t{i})"))
        .collect();
    let many = format!("WITH {} SELECT 1", ctes.join(", "));
    assert_eq!(tokens::classify(&many).facts, wh(false));
    let options = format!("ALTER ROLE x {}", "ROLE a, b ".repeat(20_000));
    assert_eq!(tokens::classify(&options).facts, roles(&[]));
}
