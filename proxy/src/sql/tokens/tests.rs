//! Tests of the token path: the statements sqlparser cannot parse (the reason this path
//! exists), name positions, and hostile input.

use super::*;

use crate::sql::test_support::{objects, Case};

const CASES: &[Case] = &[
    // What sqlparser 0.63 rejects or misreads.
    ("DO $$ BEGIN PERFORM 1; END $$", Class::Function, "DO", &[]),
    (
        "DO LANGUAGE plpgsql $$ BEGIN END $$",
        Class::Function,
        "DO",
        &[],
    ),
    (
        "CREATE USER alice WITH PASSWORD 'x'",
        Class::Role,
        "CREATE ROLE",
        &["ROLE alice"],
    ),
    (
        "CREATE USER alice PASSWORD 'x'",
        Class::Role,
        "CREATE ROLE",
        &["ROLE alice"],
    ),
    ("CREATE GROUP g", Class::Role, "CREATE ROLE", &["ROLE g"]),
    (
        "ALTER ROLE alice ENCRYPTED PASSWORD 'x'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE alice"],
    ),
    (
        "ALTER USER alice WITH ENCRYPTED PASSWORD 'x'",
        Class::Role,
        "ALTER ROLE",
        &["ROLE alice"],
    ),
    (
        "ALTER GROUP g ADD USER u",
        Class::Role,
        "ALTER ROLE",
        &["ROLE g", "ROLE u"],
    ),
    (
        "GRANT r TO u",
        Class::Role,
        "GRANT ROLE",
        &["ROLE r", "ROLE u"],
    ),
    (
        "REVOKE r FROM u",
        Class::Role,
        "REVOKE ROLE",
        &["ROLE r", "ROLE u"],
    ),
    (
        "GRANT admin, dba TO alice, GROUP bob WITH ADMIN OPTION",
        Class::Role,
        "GRANT ROLE",
        &["ROLE admin", "ROLE dba", "ROLE alice", "ROLE bob"],
    ),
    (
        "REVOKE ADMIN OPTION FOR admin FROM alice",
        Class::Role,
        "REVOKE ROLE",
        &["ROLE admin", "ROLE alice"],
    ),
    (
        "GRANT SELECT (a, b) ON t TO u WITH GRANT OPTION",
        Class::Role,
        "GRANT",
        &["TABLE t", "ROLE u"],
    ),
    (
        "GRANT USAGE ON FOREIGN SERVER srv TO u",
        Class::Role,
        "GRANT",
        &["FOREIGN SERVER srv", "ROLE u"],
    ),
    (
        "REVOKE ALL ON SEQUENCE s FROM PUBLIC",
        Class::Role,
        "REVOKE",
        &["SEQUENCE s", "ROLE public"],
    ),
    (
        "ALTER DEFAULT PRIVILEGES IN SCHEMA s GRANT SELECT ON TABLES TO r",
        Class::Role,
        "ALTER DEFAULT PRIVILEGES",
        &["TABLES s.*", "ROLE r"],
    ),
    (
        "ALTER DEFAULT PRIVILEGES FOR ROLE o IN SCHEMA a, b REVOKE ALL ON TABLES FROM r",
        Class::Role,
        "ALTER DEFAULT PRIVILEGES",
        &["ROLE o", "TABLES a.*", "TABLES b.*", "ROLE r"],
    ),
    (
        "ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC",
        Class::Role,
        "ALTER DEFAULT PRIVILEGES",
        &["FUNCTIONS *", "ROLE public"],
    ),
    (
        "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'x', password 'y')",
        Class::Ddl,
        "CREATE USER MAPPING",
        &["USER MAPPING bob on server s"],
    ),
    (
        "ALTER USER MAPPING FOR bob SERVER s OPTIONS (SET password 'y')",
        Class::Ddl,
        "ALTER USER MAPPING",
        &["USER MAPPING bob on server s"],
    ),
    (
        "DROP USER MAPPING FOR bob SERVER s",
        Class::Ddl,
        "DROP USER MAPPING",
        &["USER MAPPING bob on server s"],
    ),
    (
        "VACUUM (VERBOSE, ANALYZE) t",
        Class::Misc,
        "VACUUM",
        &["TABLE t"],
    ),
    (
        "VACUUM FULL VERBOSE a, s.b (c)",
        Class::Misc,
        "VACUUM",
        &["TABLE a", "TABLE s.b"],
    ),
    ("ANALYSE VERBOSE t", Class::Misc, "ANALYZE", &["TABLE t"]),
    (
        "REFRESH MATERIALIZED VIEW m",
        Class::Ddl,
        "REFRESH MATERIALIZED VIEW",
        &["MATERIALIZED VIEW m"],
    ),
    (
        "REFRESH MATERIALIZED VIEW CONCURRENTLY s.m WITH DATA",
        Class::Ddl,
        "REFRESH MATERIALIZED VIEW",
        &["MATERIALIZED VIEW s.m"],
    ),
    (
        "CLUSTER VERBOSE t USING i",
        Class::Ddl,
        "CLUSTER",
        &["TABLE t"],
    ),
    (
        "REINDEX (VERBOSE) TABLE CONCURRENTLY t",
        Class::Misc,
        "REINDEX",
        &["TABLE t"],
    ),
    ("CHECKPOINT", Class::Misc, "CHECKPOINT", &[]),
    ("SELECT * FROM ONLY t", Class::Read, "SELECT", &["TABLE t"]),
    (
        "SELECT * FROM ONLY t x WHERE x.a = 1",
        Class::Read,
        "SELECT",
        &["TABLE t"],
    ),
    (
        "DELETE FROM ONLY t WHERE a = 1",
        Class::Write,
        "DELETE",
        &["TABLE t"],
    ),
    (
        "UPDATE ONLY t SET a = 1",
        Class::Write,
        "UPDATE",
        &["TABLE t"],
    ),
    ("TABLE t", Class::Read, "SELECT", &["TABLE t"]),
    (
        "SELECT 1 UNION ALL TABLE s.t",
        Class::Read,
        "SELECT",
        &["TABLE s.t"],
    ),
    (
        "SELECT * FROM t, LATERAL f(t.x) g, ROWS FROM (f(1), g(2)) AS r",
        Class::Read,
        "SELECT",
        &["TABLE t"],
    ),
    (
        "ALTER SYSTEM SET work_mem = '1MB'",
        Class::Ddl,
        "ALTER SYSTEM",
        &[],
    ),
    (
        "ALTER DATABASE d SET x = 1",
        Class::Ddl,
        "ALTER DATABASE",
        &["DATABASE d"],
    ),
    (
        "ALTER SEQUENCE s RESTART",
        Class::Ddl,
        "ALTER SEQUENCE",
        &["SEQUENCE s"],
    ),
    (
        "ALTER VIEW v RENAME TO w",
        Class::Ddl,
        "ALTER VIEW",
        &["VIEW v"],
    ),
    (
        "ALTER MATERIALIZED VIEW IF EXISTS m OWNER TO r",
        Class::Ddl,
        "ALTER MATERIALIZED VIEW",
        &["MATERIALIZED VIEW m", "ROLE r"],
    ),
    (
        "REASSIGN OWNED BY a TO b",
        Class::Ddl,
        "REASSIGN OWNED",
        &["ROLE a", "ROLE b"],
    ),
    ("DROP OWNED BY a", Class::Ddl, "DROP OWNED", &["ROLE a"]),
    (
        "SECURITY LABEL FOR selinux ON TABLE t IS 'x'",
        Class::Ddl,
        "SECURITY LABEL",
        &["TABLE t"],
    ),
    (
        "COMMENT ON COLUMN t.c IS 'x'",
        Class::Ddl,
        "COMMENT",
        &["COLUMN t.c"],
    ),
    (
        "CREATE PUBLICATION p FOR ALL TABLES",
        Class::Ddl,
        "CREATE PUBLICATION",
        &["PUBLICATION p"],
    ),
    (
        "CREATE SUBSCRIPTION sub CONNECTION 'x' PUBLICATION p",
        Class::Ddl,
        "CREATE SUBSCRIPTION",
        &["SUBSCRIPTION sub"],
    ),
    (
        "IMPORT FOREIGN SCHEMA s FROM SERVER x INTO y",
        Class::Ddl,
        "IMPORT FOREIGN SCHEMA",
        &["SCHEMA s"],
    ),
    (
        "CREATE OR REPLACE PROCEDURE p() LANGUAGE sql AS $$ select 1 $$",
        Class::Ddl,
        "CREATE PROCEDURE",
        &["PROCEDURE p"],
    ),
    (
        "CREATE FOREIGN TABLE ft (a int) SERVER s",
        Class::Ddl,
        "CREATE FOREIGN TABLE",
        &["FOREIGN TABLE ft"],
    ),
    (
        "CREATE TEXT SEARCH DICTIONARY d (TEMPLATE = simple)",
        Class::Ddl,
        "CREATE TEXT SEARCH DICTIONARY",
        &["TEXT SEARCH DICTIONARY d"],
    ),
    (
        "CREATE CONSTRAINT TRIGGER tr AFTER INSERT ON s.t FOR EACH ROW EXECUTE FUNCTION f()",
        Class::Ddl,
        "CREATE TRIGGER",
        &["TRIGGER tr", "TABLE s.t"],
    ),
    (
        "CREATE POLICY p ON t USING (true)",
        Class::Ddl,
        "CREATE POLICY",
        &["POLICY p", "TABLE t"],
    ),
    (
        "CREATE RULE r AS ON SELECT TO t DO INSTEAD SELECT * FROM u",
        Class::Ddl,
        "CREATE RULE",
        &["RULE r", "TABLE t"],
    ),
    (
        "CREATE INDEX ON ONLY t (c)",
        Class::Ddl,
        "CREATE INDEX",
        &["TABLE t"],
    ),
    (
        "CREATE SCHEMA AUTHORIZATION bob",
        Class::Ddl,
        "CREATE SCHEMA",
        &["SCHEMA bob"],
    ),
    (
        "CREATE UNLOGGED TABLE t AS TABLE u",
        Class::Ddl,
        "CREATE TABLE AS",
        &["TABLE t", "TABLE u"],
    ),
    (
        "CREATE CAST (int AS text) WITH INOUT",
        Class::Ddl,
        "CREATE CAST",
        &[],
    ),
    (
        "DROP TRIGGER tr ON s.t",
        Class::Ddl,
        "DROP TRIGGER",
        &["TRIGGER tr", "TABLE s.t"],
    ),
    (
        "DROP INDEX CONCURRENTLY IF EXISTS i, j",
        Class::Ddl,
        "DROP INDEX",
        &["INDEX i", "INDEX j"],
    ),
    (
        "DROP FUNCTION f(int), g(text, int)",
        Class::Ddl,
        "DROP FUNCTION",
        &["FUNCTION f", "FUNCTION g"],
    ),
    ("DROP GROUP g", Class::Role, "DROP ROLE", &["ROLE g"]),
    (
        "TRUNCATE ONLY a, b * RESTART IDENTITY CASCADE",
        Class::Write,
        "TRUNCATE TABLE",
        &["TABLE a", "TABLE b"],
    ),
    (
        "LOCK a, b IN SHARE MODE",
        Class::Misc,
        "LOCK TABLE",
        &["TABLE a", "TABLE b"],
    ),
    ("MOVE NEXT FROM c", Class::Misc, "MOVE", &[]),
    (
        "SET CONSTRAINTS ALL DEFERRED",
        Class::Misc,
        "SET CONSTRAINTS",
        &[],
    ),
    (
        "PREPARE TRANSACTION 'x'",
        Class::Misc,
        "PREPARE TRANSACTION",
        &[],
    ),
    ("COMMIT PREPARED 'x'", Class::Misc, "COMMIT PREPARED", &[]),
    (
        "ROLLBACK PREPARED 'x'",
        Class::Misc,
        "ROLLBACK PREPARED",
        &[],
    ),
    ("SET role TO x", Class::MiscSet, "SET", &[]),
    ("SET SCHEMA 'foo'", Class::MiscSet, "SET", &[]),
    ("UNLISTEN *", Class::Misc, "UNLISTEN", &[]),
    (
        "EXPLAIN ANALYZE VERBOSE DELETE FROM t",
        Class::Write,
        "EXPLAIN",
        &["TABLE t"],
    ),
    (
        "EXPLAIN (ANALYZE on, FORMAT json) UPDATE t SET a = 1",
        Class::Write,
        "EXPLAIN",
        &["TABLE t"],
    ),
    (
        "EXPLAIN (ANALYZE off) DELETE FROM t",
        Class::Misc,
        "EXPLAIN",
        &["TABLE t"],
    ),
    ("EXPLAIN SELECT 1", Class::Misc, "EXPLAIN", &[]),
    (
        "PREPARE q AS WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d",
        Class::Read,
        "PREPARE",
        &["TABLE t"],
    ),
    (
        "PREPARE q(int) AS UPDATE t SET a = $1",
        Class::Write,
        "PREPARE",
        &["TABLE t"],
    ),
    (
        "DECLARE c BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM t",
        Class::Read,
        "DECLARE CURSOR",
        &["TABLE t"],
    ),
    (
        "CALL s.p((SELECT max(a) FROM t))",
        Class::Function,
        "CALL",
        &["FUNCTION s.p", "TABLE t"],
    ),
    ("FOO BAR", Class::Misc, "UNKNOWN", &[]),
    ("", Class::Misc, "UNKNOWN", &[]),
    // Name positions the scan must find.
    (
        "SELECT * FROM pg_class WHERE relname IN (TABLE orders)",
        Class::Read,
        "SELECT",
        &["TABLE pg_class", "TABLE orders"],
    ),
    (
        "SELECT extract(year FROM ts) FROM t",
        Class::Read,
        "SELECT",
        &["TABLE t"],
    ),
    (
        "SELECT * FROM a JOIN b USING (id), c NATURAL JOIN d CROSS JOIN e",
        Class::Read,
        "SELECT",
        &["TABLE a", "TABLE b", "TABLE c", "TABLE d", "TABLE e"],
    ),
    (
        "SELECT * FROM (VALUES (1)) v(a), w",
        Class::Read,
        "SELECT",
        &["TABLE w"],
    ),
    (
        "MERGE INTO t USING (SELECT * FROM s) src ON true WHEN MATCHED THEN DELETE",
        Class::Write,
        "MERGE",
        &["TABLE t", "TABLE s"],
    ),
    (
        "SELECT * INTO TEMP TABLE n FROM t",
        Class::Ddl,
        "SELECT INTO",
        &["TABLE n", "TABLE t"],
    ),
    (
        "WITH RECURSIVE a AS (SELECT * FROM b), b AS (SELECT * FROM a) SELECT * FROM b",
        Class::Read,
        "SELECT",
        &[],
    ),
];

#[test]
fn classes_commands_objects() {
    for (sql, class, command, objs) in CASES {
        let c = classify(sql);
        assert_eq!((c.class, c.command.as_str()), (*class, *command), "{sql}");
        assert_eq!(objects(&c), *objs, "{sql}");
        assert_eq!(c.parse, ParsePath::Tokens, "{sql}");
    }
}

#[test]
fn functions_and_their_look_alikes() {
    let c = classify("SELECT count(*), pg_catalog.Format_Type(1, NULL), x::numeric(10, 2), CAST(y AS varchar(3)) FROM t");
    assert_eq!(c.functions, ["count", "pg_catalog.format_type"]);
    let c = classify("INSERT INTO t (a, b) SELECT f(a) FROM generate_series(1, 2) g(a)");
    assert_eq!(c.functions, ["f", "generate_series"]);
    assert_eq!(objects(&c), ["TABLE t"]);
    assert!(
        classify("SELECT * FROM t WHERE a IN (1, 2) AND EXISTS (SELECT 1)")
            .functions
            .is_empty()
    );
}

#[test]
fn role_changes_and_literals() {
    let set = |role: &str, local| {
        Some(RoleChange::Set {
            role: role.to_string(),
            local,
        })
    };
    assert_eq!(classify("SET role TO Bob").role_change, set("bob", false));
    assert_eq!(
        classify("SET LOCAL SESSION AUTHORIZATION \"Bob\"").role_change,
        set("Bob", true)
    );
    let c = classify("SET SESSION AUTHORIZATION 'bob'");
    assert_eq!(c.role_change, set("bob", false));
    assert!(c.literal_dependent);
    assert_eq!(
        classify("RESET session_authorization").role_change,
        Some(RoleChange::Reset)
    );
    assert_eq!(
        classify("SET role = default").role_change,
        Some(RoleChange::Reset)
    );
    assert_eq!(classify("SET work_mem = '1MB'").role_change, None);
}

#[test]
fn tokenizer_failure_falls_back_to_a_crude_split() {
    for (sql, class, command) in [
        ("SELECT 'unterminated", Class::Read, "SELECT"),
        (
            "INSERT INTO t VALUES ('cut at the parse lim",
            Class::Write,
            "INSERT",
        ),
        ("DO $body$ BEGIN", Class::Function, "DO"),
        ("CREATE USER \"alice", Class::Role, "CREATE ROLE"),
    ] {
        let c = classify(sql);
        assert_eq!((c.class, c.command.as_str()), (class, command), "{sql}");
        assert!(!c.noise, "{sql}");
    }
    let c = classify("INSERT INTO s.t VALUES ('x FROM secret')");
    assert_eq!(objects(&c), ["TABLE s.t"]);
}

/// Iterative and bounded: run on a small stack with inputs that would overflow any
/// recursive reader.
#[test]
fn hostile_input_is_bounded() {
    let inputs = vec![
        format!("SELECT {}1{}", "(".repeat(30_000), ")".repeat(30_000)),
        format!("SELECT {}", "(".repeat(60_000)),
        ")".repeat(60_000),
        format!("SELECT 1{}", "+1".repeat(30_000)),
        format!(
            "WITH {} SELECT 1",
            vec!["a AS (SELECT 1)"; 3_000].join(", ")
        ),
        format!("SELECT * FROM {}", vec!["a"; 20_000].join(", ")),
        "WITH WITH WITH ( AS AS ( , , ) ) FROM FROM JOIN ON USING INTO".repeat(1_000),
        format!("SELECT ${}$ x", "a".repeat(50_000)),
        "\u{0}\u{7f}\u{feff}é€😀 SELECT".repeat(2_000),
    ];
    let handle = std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(move || {
            for sql in &inputs {
                let _ = classify(sql);
            }
        });
    let joined = handle.map(|h| h.join());
    assert!(matches!(joined, Ok(Ok(()))));
}
