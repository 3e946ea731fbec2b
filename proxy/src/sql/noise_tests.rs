//! Tests of the noise filter, end to end (AST first, tokens when it declines, as the
//! classifier does) and on its lists.

use super::*;
use crate::sql::{ast, tokens, Classification};

fn classify(sql: &str) -> Classification {
    ast::classify(sql).unwrap_or_else(|| tokens::classify(sql))
}

/// What psql -E prints for `\d`.
const PSQL_D: &str = r#"SELECT n.nspname as "Schema",
  c.relname as "Name",
  CASE c.relkind WHEN 'r' THEN 'table' WHEN 'v' THEN 'view' WHEN 'm' THEN 'materialized view' WHEN 'i' THEN 'index' WHEN 'S' THEN 'sequence' WHEN 't' THEN 'TOAST table' WHEN 'f' THEN 'foreign table' WHEN 'p' THEN 'partitioned table' WHEN 'I' THEN 'partitioned index' END as "Type",
  pg_catalog.pg_get_userbyid(c.relowner) as "Owner"
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
     LEFT JOIN pg_catalog.pg_am am ON am.oid = c.relam
WHERE c.relkind IN ('r','p','v','m','S','f','')
      AND n.nspname <> 'pg_catalog'
      AND n.nspname !~ '^pg_toast'
      AND n.nspname <> 'information_schema'
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 1,2;"#;

/// What psql -E prints for `\d orders` (first query).
const PSQL_D_TABLE: &str = r#"SELECT c.oid,
  n.nspname,
  c.relname
FROM pg_catalog.pg_class c
     LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relname OPERATOR(pg_catalog.~) '^(orders)$' COLLATE pg_catalog.default
  AND pg_catalog.pg_table_is_visible(c.oid)
ORDER BY 2, 3;"#;

/// psql's column query for `\d orders`.
const PSQL_D_COLUMNS: &str = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull, (SELECT c.collname FROM pg_catalog.pg_collation c, pg_catalog.pg_type t WHERE c.oid = a.attcollation AND t.oid = a.atttypid AND a.attcollation <> t.typcollation) AS attcollation, a.attidentity, a.attgenerated FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16384' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;";

/// psql 16's column query for `\d+ t` (`attstattarget=-1`: `=` then `-1`).
const PSQL_D_PLUS_COLUMNS: &str = "SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid, true) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef), a.attnotnull, a.attidentity, a.attgenerated, a.attstorage, a.attcompression AS attcompression, CASE WHEN a.attstattarget=-1 THEN NULL ELSE a.attstattarget END AS attstattarget, pg_catalog.col_description(a.attrelid, a.attnum) FROM pg_catalog.pg_attribute a WHERE a.attrelid = '16391' AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum";

/// pgJDBC's DatabaseMetaData.getPrimaryKeys.
const JDBC_PRIMARY_KEYS: &str = "SELECT result.TABLE_CAT, result.TABLE_SCHEM, result.TABLE_NAME, result.COLUMN_NAME, result.KEY_SEQ, result.PK_NAME FROM (SELECT NULL AS TABLE_CAT, n.nspname AS TABLE_SCHEM, ct.relname AS TABLE_NAME, a.attname AS COLUMN_NAME, (information_schema._pg_expandarray(i.indkey)).n AS KEY_SEQ, ci.relname AS PK_NAME, information_schema._pg_expandarray(i.indkey) AS KEYS, a.attnum AS A_ATTNUM FROM pg_catalog.pg_class ct JOIN pg_catalog.pg_attribute a ON (ct.oid = a.attrelid) JOIN pg_catalog.pg_namespace n ON (ct.relnamespace = n.oid) JOIN pg_catalog.pg_index i ON ( a.attrelid = i.indrelid) JOIN pg_catalog.pg_class ci ON (ci.oid = i.indexrelid) WHERE true AND n.nspname = 'public' AND ct.relname = 'app_table' AND i.indisprimary ) result where result.A_ATTNUM = (result.KEYS).x ORDER BY result.table_name, result.pk_name, result.key_seq";

const NOISE: &[&str] = &[
    // Driver and pool housekeeping on every checkout: it only drops session state (the
    // role RESET ALL / DISCARD ALL restore is still followed for later events).
    "DISCARD ALL",
    "RESET ALL",
    "DEALLOCATE ALL",
    "DEALLOCATE PREPARE s1",
    "deallocate \"_pg3_0\"",
    "CLOSE ALL",
    "UNLISTEN *",
    // pgAdmin's recovery probe.
    "SELECT CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() ELSE false END",
    PSQL_D_PLUS_COLUMNS,
    JDBC_PRIMARY_KEYS,
    PSQL_D,
    PSQL_D_TABLE,
    PSQL_D_COLUMNS,
    // Pool health checks and driver start-up.
    "select 1",
    "SELECT 1;",
    "select version()",
    "SELECT current_schema()",
    "SELECT pg_catalog.version()",
    "SELECT current_setting('server_version_num')",
    "SELECT t.typname, t.oid FROM pg_type t WHERE t.oid = ANY($1::oid[])",
    "SELECT typname, oid FROM pg_catalog.pg_type WHERE typname = 'hstore'",
    "SELECT * FROM information_schema.tables WHERE table_schema = 'public'",
    "SELECT count(*) FROM pg_catalog.pg_stat_activity",
    "SELECT * FROM pg_settings WHERE name = 'max_connections'",
    "SELECT * FROM pg_class, LATERAL unnest(relacl) a",
    "SELECT ARRAY(SELECT relname FROM pg_class)",
    "WITH c AS (SELECT oid FROM pg_class) SELECT count(*) FROM c",
    "SELECT * FROM ONLY pg_catalog.pg_class",
    "SELECT * FROM generate_series(1, 10)",
    "SELECT pg_catalog.set_config('search_path', '', false)",
    "SELECT set_config('application_name', 'dbeaver', false)",
    "SHOW search_path",
    "SHOW TRANSACTION ISOLATION LEVEL",
    "SET extra_float_digits = 3",
    "SET application_name = 'psql'",
    "SET DateStyle = ISO",
    "SET TIME ZONE 'UTC'",
    "SET NAMES 'UTF8'",
    "SET search_path = \"$user\", public",
    "SET search_path = pg_catalog, public",
    "SET LOCAL statement_timeout = 0",
    "SET SESSION idle_in_transaction_session_timeout = 0",
    "RESET application_name",
    "BEGIN",
    "START TRANSACTION ISOLATION LEVEL REPEATABLE READ",
    "COMMIT",
    "ROLLBACK",
    "SAVEPOINT s",
    "RELEASE SAVEPOINT s",
    "SET TRANSACTION READ ONLY",
    "SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY",
];

const NOT_NOISE: &[&str] = &[
    // Reading user data, or data the catalog holds about secrets.
    "SELECT * FROM orders",
    "SELECT * FROM pg_class, orders",
    "SELECT * FROM pg_catalog.pg_class c WHERE c.oid IN (SELECT x FROM orders)",
    "SELECT * FROM pg_class WHERE relname IN (TABLE orders)",
    "SELECT * FROM pg_class UNION TABLE orders",
    "WITH pg_class AS (SELECT * FROM orders) SELECT * FROM pg_class",
    "WITH orders AS (SELECT * FROM orders) SELECT * FROM orders",
    "select * from pg_authid",
    "select * from pg_catalog.pg_shadow",
    "SELECT * FROM pg_user_mappings",
    "SELECT * FROM pg_statistic",
    "SELECT * FROM pg_stats",
    "select * from public.pg_class",
    "SELECT * FROM \"pg_catalog.pg_class\"",
    "SELECT * FROM pg_foo",
    "SELECT * FROM tables",
    "SELECT * FROM otherdb.pg_catalog.pg_class",
    // Functions that read files, write, signal, or are unknown.
    "select pg_read_file('/etc/passwd')",
    "SELECT pg_read_binary_file('x')",
    "SELECT pg_ls_dir('.')",
    "SELECT lo_import('/etc/passwd')",
    "SELECT dblink('host=x', 'select 1')",
    "SELECT pg_terminate_backend(123)",
    "SELECT pg_cancel_backend(123)",
    "SELECT nextval('s')",
    "SELECT txid_current()",
    "SELECT pg_sleep(10)",
    "SELECT pg_advisory_lock(1)",
    "SELECT pg_reload_conf()",
    "SELECT my_function()",
    "SELECT public.version()",
    "SELECT pg_get_evil()",
    "SELECT count(*) FROM pg_class WHERE f(oid)",
    "select set_config('role','x',false)",
    "SELECT set_config('search_path', 'evil, pg_catalog', false)",
    "SELECT set_config(current_setting('x'), 'y', false)",
    "SELECT set_config('work_mem', '1GB', false)",
    // Writes and locks hidden in queries.
    "WITH d AS (DELETE FROM pg_class RETURNING *) SELECT * FROM d",
    "SELECT * INTO pg_temp.x FROM pg_class",
    "SELECT * FROM pg_class FOR UPDATE",
    "SELECT 1 @@@ 2",
    "SELECT 1 FROM pg_class WHERE relpages !=- 1",
    "SELECT 1 FROM pg_class WHERE relname OPERATOR(public.=) 'x'",
    // Settings and session state that change what the session may do.
    "SET ROLE admin",
    "SET SESSION AUTHORIZATION admin",
    "SET role = 'x'",
    "RESET ROLE",
    "SET work_mem = '1GB'",
    "SET search_path = evil, pg_catalog",
    "SET search_path = 'evil', 'pg_catalog'",
    "SET myext.setting = 1",
    "CLOSE c",
    "UNLISTEN chan",
    "DISCARD TEMP",
    // Everything else.
    "EXPLAIN SELECT 1",
    "PREPARE p AS SELECT 1",
    "COPY (SELECT * FROM pg_class) TO STDOUT",
    "PREPARE TRANSACTION 'x'",
    "SELECT 'unterminated",
    "CREATE TABLE pg_foo (a int)",
    "DO $$ BEGIN END $$",
];

#[test]
fn tool_noise_is_noise() {
    for sql in NOISE {
        assert!(classify(sql).noise, "{sql}");
    }
}

#[test]
fn human_actions_are_never_noise() {
    for sql in NOT_NOISE {
        assert!(!classify(sql).noise, "{sql}");
    }
}

/// The token path answers the same for the queries it can judge, and never calls
/// noise what the AST path does not.
#[test]
fn token_path_is_no_more_lenient() {
    for sql in NOISE.iter().chain(NOT_NOISE) {
        if let Some(a) = ast::classify(sql) {
            let t = tokens::classify(sql);
            assert!(!t.noise || a.noise, "{sql}");
        }
    }
    assert!(tokens::classify(PSQL_D).noise);
    assert!(tokens::classify(PSQL_D_COLUMNS).noise);
    assert!(tokens::classify(PSQL_D_PLUS_COLUMNS).noise);
    assert!(tokens::classify(JDBC_PRIMARY_KEYS).noise);
}

#[test]
fn catalog_relations() {
    for yes in [
        "pg_class",
        "pg_catalog.pg_class",
        "pg_catalog.pg_namespace",
        "information_schema.columns",
        "pg_roles",
        "pg_stat_activity",
    ] {
        assert!(is_catalog_relation(yes), "{yes}");
    }
    for no in [
        "orders",
        "public.pg_class",
        "pg_foo",
        "pg_authid",
        "pg_catalog.pg_authid",
        "pg_catalog.pg_largeobject",
        "\"pg_catalog.pg_class\"",
        "\"PG_CATALOG\".pg_class",
        "db.pg_catalog.pg_class",
        "information_schema",
        "",
    ] {
        assert!(!is_catalog_relation(no), "{no}");
    }
}

#[test]
fn allowed_functions() {
    assert!(is_allowed_function("pg_get_userbyid"));
    assert!(is_allowed_function("pg_catalog.format_type"));
    assert!(is_allowed_function("count"));
    assert!(!is_allowed_function("public.count"));
    assert!(!is_allowed_function("pg_get_anything_else"));
    assert!(!is_allowed_function("pg_read_file"));
    assert!(!is_allowed_function("set_config"));
}

#[test]
fn set_config_and_search_path() {
    assert!(set_config_call_ok(Some("application_name"), Some("x")));
    assert!(set_config_call_ok(Some("search_path"), Some("")));
    assert!(set_config_call_ok(
        Some("search_path"),
        Some("pg_catalog, public")
    ));
    assert!(!set_config_call_ok(
        Some("search_path"),
        Some("public, pg_catalog")
    ));
    assert!(!set_config_call_ok(Some("search_path"), None));
    assert!(!set_config_call_ok(Some("role"), Some("x")));
    assert!(!set_config_call_ok(None, Some("x")));
    assert!(search_path_literal_ok("\"$user\", public"));
    assert!(!search_path_literal_ok("\"$user\", PG_CATALOG"));
    assert!(search_path_literal_ok("\"PG_CATALOG\", x"));
}

#[test]
fn judge_shapes() {
    let none: &[Object] = &[];
    let t = [Object {
        kind: "TABLE".to_string(),
        name: "orders".to_string(),
    }];
    assert!(judge(&Shape::Show, none, &[], true));
    assert!(judge(&Shape::Transaction, none, &[], true));
    assert!(!judge(&Shape::Other, none, &[], true));
    assert!(!judge(&Shape::ReadQuery, &t, &[], true));
    let set = |name: &str, value_ok| Shape::Setting {
        name: name.to_string(),
        value_ok,
    };
    assert!(judge(&set("jit", true), none, &[], true));
    assert!(!judge(&set("jit", false), none, &[], true));
    assert!(!judge(&set("role", true), none, &[], true));
    let sc = ["set_config".to_string()];
    assert!(judge(&Shape::ReadQuery, none, &sc, true));
    assert!(!judge(&Shape::ReadQuery, none, &sc, false));
}
