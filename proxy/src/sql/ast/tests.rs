//! Tests of the sqlparser path: class, command and objects as pgAudit (or the spec)
//! has them, statements the AST misreads left to the token path, and agreement with
//! the token path.

use super::*;
use crate::sql::tokens;

fn ast(sql: &str) -> Classification {
    match classify(sql) {
        Some(c) => c,
        None => panic!("AST path declined: {sql}"),
    }
}

use crate::sql::test_support::{objects, Case};

const CASES: &[Case] = &[
    // Reads, and every place a relation hides in a query.
    ("SELECT 1", Class::Read, "SELECT", &[]),
    ("SELECT * FROM orders", Class::Read, "SELECT", &["TABLE orders"]),
    ("select * from Sales.Orders o", Class::Read, "SELECT", &["TABLE sales.orders"]),
    ("SELECT \"Foo\".x FROM \"Foo\" JOIN x.\"Y\" ON true", Class::Read, "SELECT", &["TABLE \"Foo\"", "TABLE x.\"Y\""]),
    ("SELECT * FROM a, b JOIN c ON b.id = c.id LEFT JOIN d USING (id)", Class::Read, "SELECT", &["TABLE a", "TABLE b", "TABLE c", "TABLE d"]),
    ("SELECT * FROM t WHERE a IN (SELECT b FROM u) AND EXISTS (SELECT 1 FROM v)", Class::Read, "SELECT", &["TABLE t", "TABLE u", "TABLE v"]),
    ("SELECT (SELECT max(x) FROM u) FROM t", Class::Read, "SELECT", &["TABLE u", "TABLE t"]),
    ("SELECT 1 UNION SELECT a FROM b EXCEPT SELECT c FROM d", Class::Read, "SELECT", &["TABLE b", "TABLE d"]),
    ("SELECT * FROM t, LATERAL (SELECT * FROM u WHERE u.id = t.id) x", Class::Read, "SELECT", &["TABLE t", "TABLE u"]),
    ("SELECT * FROM (SELECT * FROM inner_t) s", Class::Read, "SELECT", &["TABLE inner_t"]),
    ("SELECT * FROM generate_series(1, 3) g, unnest(ARRAY[1]) u", Class::Read, "SELECT", &[]),
    ("VALUES (1), (2)", Class::Read, "SELECT", &[]),
    ("(SELECT * FROM t)", Class::Read, "SELECT", &["TABLE t"]),
    ("SELECT * FROM t FOR UPDATE", Class::Read, "SELECT", &["TABLE t"]),
    ("WITH q AS (SELECT * FROM t) SELECT * FROM q", Class::Read, "SELECT", &["TABLE t"]),
    // A CTE body sees only earlier CTEs: the inner `orders` is the table.
    ("WITH orders AS (SELECT * FROM orders) SELECT * FROM orders", Class::Read, "SELECT", &["TABLE orders"]),
    ("WITH a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM b", Class::Read, "SELECT", &["TABLE b"]),
    ("WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r", Class::Read, "SELECT", &[]),
    ("SELECT * FROM (WITH q AS (SELECT 1) SELECT * FROM q) s, q", Class::Read, "SELECT", &["TABLE q"]),
    // Data-modifying CTEs (spec: WRITE with the CTE's command).
    ("WITH d AS (DELETE FROM t WHERE x RETURNING *) SELECT * FROM d", Class::Write, "DELETE", &["TABLE t"]),
    ("WITH u AS (UPDATE t SET a = 1 RETURNING *) SELECT * FROM u JOIN v ON true", Class::Write, "UPDATE", &["TABLE t", "TABLE v"]),
    ("WITH w AS (UPDATE t SET a = 1 RETURNING *) INSERT INTO log SELECT * FROM w", Class::Write, "INSERT", &["TABLE t", "TABLE log"]),
    ("WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x", Class::Write, "INSERT", &["TABLE t"]),
    // Writes.
    ("INSERT INTO t (a, b) VALUES (1, 2)", Class::Write, "INSERT", &["TABLE t"]),
    ("INSERT INTO s.t SELECT * FROM u ON CONFLICT DO NOTHING", Class::Write, "INSERT", &["TABLE s.t", "TABLE u"]),
    ("UPDATE t SET a = (SELECT max(b) FROM u) FROM v WHERE t.id = v.id", Class::Write, "UPDATE", &["TABLE t", "TABLE u", "TABLE v"]),
    ("DELETE FROM t USING u WHERE t.id = u.id", Class::Write, "DELETE", &["TABLE t", "TABLE u"]),
    ("MERGE INTO t USING s ON t.id = s.id WHEN MATCHED THEN UPDATE SET x = s.x WHEN NOT MATCHED THEN INSERT VALUES (s.id)", Class::Write, "MERGE", &["TABLE t", "TABLE s"]),
    ("TRUNCATE a, b", Class::Write, "TRUNCATE TABLE", &["TABLE a", "TABLE b"]),
    ("TRUNCATE TABLE ONLY s.a", Class::Write, "TRUNCATE TABLE", &["TABLE s.a"]),
    ("COPY t FROM STDIN", Class::Write, "COPY", &["TABLE t"]),
    ("COPY t (a, b) TO '/tmp/x' WITH (FORMAT csv)", Class::Read, "COPY", &["TABLE t"]),
    ("COPY (SELECT * FROM t) TO STDOUT", Class::Read, "COPY", &["TABLE t"]),
    // DDL.
    ("SELECT * INTO new_t FROM t", Class::Ddl, "SELECT INTO", &["TABLE new_t", "TABLE t"]),
    ("CREATE TABLE t (a int)", Class::Ddl, "CREATE TABLE", &["TABLE t"]),
    ("CREATE TEMP TABLE t AS SELECT * FROM u", Class::Ddl, "CREATE TABLE AS", &["TABLE t", "TABLE u"]),
    ("CREATE VIEW v AS SELECT * FROM t", Class::Ddl, "CREATE VIEW", &["VIEW v"]),
    ("CREATE MATERIALIZED VIEW m AS SELECT * FROM t", Class::Ddl, "CREATE MATERIALIZED VIEW", &["MATERIALIZED VIEW m", "TABLE t"]),
    ("CREATE INDEX i ON s.t (c)", Class::Ddl, "CREATE INDEX", &["INDEX s.i"]),
    ("CREATE INDEX ON s.t (c)", Class::Ddl, "CREATE INDEX", &["TABLE s.t"]),
    ("CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS i ON t USING btree (c)", Class::Ddl, "CREATE INDEX", &["INDEX i"]),
    ("DROP TABLE a, s.b", Class::Ddl, "DROP TABLE", &["TABLE a", "TABLE s.b"]),
    ("DROP VIEW IF EXISTS v CASCADE", Class::Ddl, "DROP VIEW", &["VIEW v"]),
    ("DROP MATERIALIZED VIEW m", Class::Ddl, "DROP MATERIALIZED VIEW", &["MATERIALIZED VIEW m"]),
    ("DROP SCHEMA s CASCADE", Class::Ddl, "DROP SCHEMA", &["SCHEMA s"]),
    ("DROP FUNCTION f(int)", Class::Ddl, "DROP FUNCTION", &["FUNCTION f"]),
    ("ALTER TABLE ONLY t ADD COLUMN c int", Class::Ddl, "ALTER TABLE", &["TABLE t", "TABLE COLUMN t.c"]),
    ("ALTER INDEX i RENAME TO j", Class::Ddl, "ALTER INDEX", &["INDEX i"]),
    ("CREATE SCHEMA s", Class::Ddl, "CREATE SCHEMA", &["SCHEMA s"]),
    ("CREATE FUNCTION f() RETURNS int AS 'select 1' LANGUAGE sql", Class::Ddl, "CREATE FUNCTION", &["FUNCTION f"]),
    ("CREATE SEQUENCE s", Class::Ddl, "CREATE SEQUENCE", &["SEQUENCE s"]),
    ("CREATE EXTENSION IF NOT EXISTS pgcrypto", Class::Ddl, "CREATE EXTENSION", &["EXTENSION pgcrypto"]),
    ("CREATE DATABASE d", Class::Ddl, "CREATE DATABASE", &["DATABASE d"]),
    ("CREATE TRIGGER tr AFTER INSERT ON t FOR EACH ROW EXECUTE FUNCTION f()", Class::Ddl, "CREATE TRIGGER", &["TRIGGER tr", "TABLE t"]),
    ("COMMENT ON TABLE t IS 'x'", Class::Ddl, "COMMENT", &["TABLE t"]),
    // ROLE.
    ("GRANT SELECT, INSERT ON t, s.u TO bob", Class::Role, "GRANT", &["TABLE t", "TABLE s.u", "ROLE bob"]),
    ("GRANT ALL ON ALL TABLES IN SCHEMA s TO bob", Class::Role, "GRANT", &["TABLE s.*", "ROLE bob"]),
    ("REVOKE SELECT ON TABLE t FROM bob", Class::Role, "REVOKE", &["TABLE t", "ROLE bob"]),
    ("GRANT EXECUTE ON FUNCTION f(int) TO r", Class::Role, "GRANT", &["FUNCTION f", "ROLE r"]),
    ("CREATE ROLE alice LOGIN PASSWORD 'x'", Class::Role, "CREATE ROLE", &["ROLE alice"]),
    ("CREATE USER alice", Class::Role, "CREATE ROLE", &["ROLE alice"]),
    ("ALTER ROLE alice PASSWORD 'x'", Class::Role, "ALTER ROLE", &["ROLE alice"]),
    ("ALTER USER alice WITH PASSWORD 'x'", Class::Role, "ALTER ROLE", &["ROLE alice"]),
    ("ALTER ROLE r SET search_path = a", Class::Role, "ALTER ROLE", &["ROLE r"]),
    ("DROP ROLE a, b", Class::Role, "DROP ROLE", &["ROLE a", "ROLE b"]),
    ("DROP USER a", Class::Role, "DROP ROLE", &["ROLE a"]),
    // FUNCTION, MISC, MISC_SET.
    ("CALL p()", Class::Function, "CALL", &["FUNCTION p"]),
    ("SELECT f()", Class::Read, "SELECT", &[]),
    ("EXPLAIN SELECT * FROM t", Class::Misc, "EXPLAIN", &["TABLE t"]),
    // pgAudit: the tag EXPLAIN at the run statement's level (WRITE for DML, MISC for a query).
    ("EXPLAIN ANALYZE DELETE FROM t", Class::Write, "EXPLAIN", &["TABLE t"]),
    ("EXPLAIN (ANALYZE, BUFFERS) DELETE FROM t", Class::Write, "EXPLAIN", &["TABLE t"]),
    ("EXPLAIN ANALYZE SELECT * FROM t", Class::Misc, "EXPLAIN", &["TABLE t"]),
    ("EXPLAIN (ANALYZE false) DELETE FROM t", Class::Misc, "EXPLAIN", &["TABLE t"]),
    ("VACUUM t", Class::Misc, "VACUUM", &["TABLE t"]),
    ("ANALYZE t", Class::Misc, "ANALYZE", &["TABLE t"]),
    ("LOCK TABLE t IN ACCESS EXCLUSIVE MODE", Class::Misc, "LOCK TABLE", &["TABLE t"]),
    ("DISCARD ALL", Class::Misc, "DISCARD ALL", &[]),
    ("PREPARE p AS SELECT * FROM t", Class::Read, "PREPARE", &["TABLE t"]),
    ("PREPARE p (int) AS INSERT INTO t VALUES ($1)", Class::Write, "PREPARE", &["TABLE t"]),
    ("EXECUTE p(1)", Class::Misc, "EXECUTE", &[]),
    ("DEALLOCATE ALL", Class::Misc, "DEALLOCATE ALL", &[]),
    ("DECLARE c CURSOR FOR SELECT * FROM t", Class::Read, "DECLARE CURSOR", &["TABLE t"]),
    ("FETCH 10 FROM c", Class::Misc, "FETCH", &[]),
    ("CLOSE ALL", Class::Misc, "CLOSE CURSOR ALL", &[]),
    ("LISTEN ch", Class::Misc, "LISTEN", &[]),
    ("NOTIFY ch, 'x'", Class::Misc, "NOTIFY", &[]),
    ("BEGIN", Class::Misc, "BEGIN", &[]),
    ("START TRANSACTION READ ONLY", Class::Misc, "START TRANSACTION", &[]),
    ("END", Class::Misc, "COMMIT", &[]),
    ("ABORT", Class::Misc, "ROLLBACK", &[]),
    ("ROLLBACK TO SAVEPOINT s", Class::Misc, "ROLLBACK", &[]),
    ("RELEASE SAVEPOINT s", Class::Misc, "RELEASE", &[]),
    ("SHOW search_path", Class::Misc, "SHOW", &[]),
    ("SET search_path TO a, b", Class::MiscSet, "SET", &[]),
    ("SET TIME ZONE 'UTC'", Class::MiscSet, "SET", &[]),
    ("RESET ALL", Class::MiscSet, "RESET", &[]),
];

#[test]
fn classes_commands_objects() {
    for (sql, class, command, objs) in CASES {
        let c = ast(sql);
        assert_eq!((c.class, c.command.as_str()), (*class, *command), "{sql}");
        assert_eq!(objects(&c), *objs, "{sql}");
        assert_eq!(c.parse, ParsePath::Ast, "{sql}");
    }
}

#[test]
fn functions_are_recorded_lowercased_and_qualified() {
    let c = ast(
        "SELECT F(), pg_catalog.Format_Type(1, NULL), coalesce(a, b) FROM generate_series(1, 2)",
    );
    assert_eq!(
        c.functions,
        ["f", "pg_catalog.format_type", "coalesce", "generate_series"]
    );
    assert_eq!(ast("CALL s.p(1)").functions, ["s.p"]);
    // Constructors and keyword functions are no calls.
    assert!(ast("SELECT ARRAY(SELECT 1), ROW(1, 2), current_user")
        .functions
        .is_empty());
}

/// Statements sqlparser misreads or cannot take: the token path decides.
#[test]
fn declines_misreads_and_unparsed() {
    for sql in [
        "SELECT * FROM ONLY t",
        "DELETE FROM ONLY t",
        "UPDATE ONLY t SET a = 1",
        "TABLE t",
        "SELECT 1 UNION ALL TABLE t",
        "GRANT r TO u",
        "REVOKE r FROM u",
        "CREATE USER alice WITH PASSWORD 'x'",
        "ALTER ROLE alice ENCRYPTED PASSWORD 'x'",
        "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO r",
        "DO $$ BEGIN END $$",
        "VACUUM (VERBOSE, ANALYZE) t",
        "REFRESH MATERIALIZED VIEW m",
        "SELECT 1; SELECT 2",
        "",
    ] {
        assert!(classify(sql).is_none(), "{sql}");
    }
}

#[test]
fn role_changes() {
    let set = |role: &str, local| {
        Some(RoleChange::Set {
            role: role.to_string(),
            local,
        })
    };
    assert_eq!(ast("SET ROLE bob").role_change, set("bob", false));
    assert_eq!(ast("SET ROLE \"Bob\"").role_change, set("Bob", false));
    assert_eq!(ast("SET SESSION ROLE Bob").role_change, set("bob", false));
    assert_eq!(ast("SET LOCAL ROLE bob").role_change, set("bob", true));
    assert_eq!(
        ast("SET SESSION AUTHORIZATION bob").role_change,
        set("bob", false)
    );
    assert_eq!(ast("SET LOCAL role = 'x'").role_change, set("x", true));
    for reset in [
        "RESET ROLE",
        "SET ROLE NONE",
        "SET ROLE 'none'",
        "SET role = none",
        "SET SESSION AUTHORIZATION DEFAULT",
        "RESET SESSION AUTHORIZATION",
        "RESET ALL",
        "DISCARD ALL",
    ] {
        assert_eq!(ast(reset).role_change, Some(RoleChange::Reset), "{reset}");
    }
    assert_eq!(ast("SET search_path = a").role_change, None);
}

#[test]
fn literal_dependence() {
    let c = ast("SET ROLE 'bob'");
    assert_eq!(
        c.role_change,
        Some(RoleChange::Set {
            role: "bob".to_string(),
            local: false
        })
    );
    assert!(c.literal_dependent);
    assert!(!ast("SET ROLE bob").literal_dependent);
    assert!(ast("SELECT set_config('application_name', 'x', false)").literal_dependent);
    assert!(ast("SET search_path = 'a', 'b'").literal_dependent);
    assert!(!ast("SELECT * FROM t WHERE a = 'x'").literal_dependent);
    // EXPLAIN (ANALYZE 'off') and (ANALYZE 'on') differ only in a literal, and one runs
    // the DELETE: the verdict must not be cached under a literal-blind key.
    let off = ast("EXPLAIN (ANALYZE 'off') DELETE FROM t");
    assert_eq!(
        (off.class, off.command.as_str(), off.literal_dependent),
        (Class::Misc, "EXPLAIN", true)
    );
    let on = ast("EXPLAIN (ANALYZE 'on') DELETE FROM t");
    assert_eq!(
        (on.class, on.command.as_str(), on.literal_dependent),
        (Class::Write, "EXPLAIN", true)
    );
    assert!(!ast("EXPLAIN (ANALYZE) DELETE FROM t").literal_dependent);
}

#[test]
fn hostile_shapes_decline_without_crashing() {
    // Deep nesting: sqlparser's recursion limit answers with an error.
    let deep = format!("SELECT {}1{}", "(".repeat(5000), ")".repeat(5000));
    assert!(classify(&deep).is_none());
    // Long operator chains build deep left-leaning trees: left to the token path.
    let chain = format!("SELECT 1{}", "+1".repeat(5000));
    assert!(classify(&chain).is_none());
    let c = tokens::classify(&chain);
    assert_eq!((c.class, c.command.as_str()), (Class::Read, "SELECT"));
    // Touching operator characters: PostgreSQL reads `@@@` as one (possibly user)
    // operator, but gives back trailing `+`/`-` (`=-1` is `=` and `-1`).
    assert!(classify("SELECT 1 @@@ 2").is_none_or(|c| !c.noise));
    assert!(tokens::classify("SELECT 1 @@@ 2").class == Class::Read);
    assert!(!tokens::classify("SELECT 1 @@@ 2").noise);
    assert!(ast("SELECT 1 +++ 2").noise);
    assert!(ast("SELECT attname FROM pg_attribute WHERE attstattarget=-1").noise);
}

/// Both paths must agree wherever both can answer.
#[test]
fn ast_and_tokens_agree() {
    let extra = [
        "SELECT * FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE pg_catalog.pg_table_is_visible(c.oid)",
        "SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384' AND a.attnum > 0",
        "SELECT set_config('search_path', '', false)",
        "SELECT * FROM t TABLESAMPLE SYSTEM (10)",
        "SELECT extract(year FROM ts), substring(s FROM 1 FOR 2) FROM t",
        "SELECT a IS DISTINCT FROM b FROM t",
        "SELECT * FROM t1 x(a, b), t2",
        "SELECT * FROM t1, (t2 JOIN t3 ON true)",
        "INSERT INTO s.t AS x (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = excluded.a",
        "UPDATE t x SET a = 1 FROM (SELECT * FROM u) y WHERE x.id = y.id",
        "SELECT * FROM pg_class WHERE relname OPERATOR(pg_catalog.~) '^x$'",
        "SET ROLE 'bob'",
        "SET SESSION AUTHORIZATION DEFAULT",
        "EXPLAIN (ANALYZE 0) DELETE FROM t",
        "EXPLAIN (ANALYZE 'yes') DELETE FROM t",
        "EXPLAIN (ANALYZE f) DELETE FROM t",
        "SET extra_float_digits = 3",
        "SET search_path = evil, pg_catalog",
        "SET application_name = 'psql'",
        "SHOW ALL",
        "COMMIT",
        "SAVEPOINT s",
    ];
    let sqls = CASES.iter().map(|c| c.0).chain(extra);
    for sql in sqls {
        let a = ast(sql);
        let t = tokens::classify(sql);
        assert_eq!((a.class, &a.command), (t.class, &t.command), "{sql}");
        assert_eq!(a.objects, t.objects, "{sql}");
        assert_eq!(a.noise, t.noise, "{sql}");
        assert_eq!(a.role_change, t.role_change, "{sql}");
        assert_eq!(a.literal_dependent, t.literal_dependent, "{sql}");
    }
}
