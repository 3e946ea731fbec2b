//! Noise that cannot hide a real action: an unqualified allow-listed name that a user
//! function shadows, or that a search path resolves outside `pg_catalog`, is logged as
//! not noise, end to end through the proxy against a real server, and the shadowing
//! function is shown to really run (it writes a row). `pg_catalog.`-qualified calls and
//! tools' catalog queries stay noise.
//!
//! Each test uses a database of its own (the shadowing functions would otherwise meet the
//! other tests) and a proxy of its own (its audit log holds only its sessions).

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The file's cluster. Never dropped: the watchdog stops it.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// A fresh database `name` with a table the shadowing functions write to.
fn database(name: &str) {
    pg().psql("postgres", "postgres", &format!("CREATE DATABASE {name}"))
        .unwrap_or_else(|e| panic!("create database {name}: {e}"));
    pg().psql(
        "postgres",
        name,
        "CREATE TABLE victim (id int); INSERT INTO victim SELECT generate_series(1, 10);",
    )
    .unwrap_or_else(|e| panic!("setup {name}: {e}"));
}

/// Runs SQL directly on the cluster as the superuser.
fn direct(db: &str, sql: &str) -> String {
    pg().psql("postgres", db, sql)
        .unwrap_or_else(|e| panic!("direct psql: {e}"))
        .trim()
        .to_string()
}

fn start_proxy() -> Proxy {
    start_proxy_with("")
}

fn start_proxy_with(audit: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: format!("log_noise = true\n{audit}"),
            ..Default::default()
        },
    )
}

/// One psql session through the proxy as the superuser, one `-c` per command; fails the
/// test when psql does.
fn session(proxy: &Proxy, db: &str, commands: &[&str]) {
    let mut cmd = Command::new(pg().bin("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "20")
        .env("LC_ALL", "C")
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(proxy.conninfo("postgres", "unused", db, "sslmode=disable"));
    for c in commands {
        cmd.args(["-c", c]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run psql");
    assert!(
        out.status.success(),
        "psql failed: {}\nproxy log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        proxy.log()
    );
}

/// The statement events with exactly this text, waiting (bounded) until there are `n`.
fn events_for(proxy: &Proxy, sql: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let found: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement" && e["statement"].as_str() == Some(sql))
            .collect();
        if found.len() >= n {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "only {} events for {sql:?}; audit log:\n{:#?}",
            found.len(),
            proxy.audit_events()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The `noise` of the `i`-th event (in log order) for `sql`.
fn noise_of(proxy: &Proxy, sql: &str, i: usize) -> bool {
    let e = &events_for(proxy, sql, i + 1)[i];
    assert_eq!(e["outcome"], "ok", "{e}");
    e["noise"]
        .as_bool()
        .unwrap_or_else(|| panic!("no noise field: {e}"))
}

const SHADOW_FORMAT_TYPE: &str = "CREATE FUNCTION public.format_type(a int, b int) RETURNS text \
     LANGUAGE plpgsql AS $$ BEGIN DELETE FROM victim; RETURN 'gone'; END $$";

#[test]
fn a_user_function_shadowing_an_allow_listed_name_is_not_noise() {
    database("shadow_fn");
    // Knowledge older than a second is learned again at the next login.
    let proxy = start_proxy_with("noise_catalog_refresh = \"1s\"\n");
    // Before: the catalog check found nothing, the name is trusted.
    session(&proxy, "shadow_fn", &["SELECT format_type(23, NULL)"]);
    assert!(noise_of(&proxy, "SELECT format_type(23, NULL)", 0));
    // The attack, in one session: create the function, then call it by the bare name.
    session(
        &proxy,
        "shadow_fn",
        &[
            SHADOW_FORMAT_TYPE,
            "SELECT format_type(1, 2)",
            "SELECT pg_catalog.format_type(23, NULL)",
        ],
    );
    assert_eq!(
        direct("shadow_fn", "SELECT count(*) FROM victim"),
        "0",
        "the user's function ran (it deleted every row)"
    );
    assert!(
        !noise_of(&proxy, "SELECT format_type(1, 2)", 0),
        "the shadowing call was hidden as noise"
    );
    assert!(noise_of(
        &proxy,
        "SELECT pg_catalog.format_type(23, NULL)",
        0
    ));
    // A later session learns the function from the catalog: the bare name is never
    // trusted again in this database, while other allow-listed names still are.
    session(
        &proxy,
        "shadow_fn",
        &["SELECT format_type(1, 2)", "SELECT version()"],
    );
    assert!(!noise_of(&proxy, "SELECT format_type(1, 2)", 1));
    assert!(noise_of(&proxy, "SELECT version()", 0));
    // Created behind the proxy's back (a direct connection): the next login's catalog
    // check sees it.
    direct(
        "shadow_fn",
        "CREATE FUNCTION public.version() RETURNS text LANGUAGE sql AS $$ SELECT 'mine' $$",
    );
    std::thread::sleep(Duration::from_millis(1100));
    session(&proxy, "shadow_fn", &["SELECT version()"]);
    assert!(!noise_of(&proxy, "SELECT version()", 1));
}

#[test]
fn a_search_path_that_puts_pg_catalog_later_is_not_noise() {
    database("shadow_path");
    direct(
        "shadow_path",
        "CREATE FUNCTION public.version() RETURNS text LANGUAGE plpgsql AS \
         $$ BEGIN DELETE FROM victim; RETURN 'gone'; END $$",
    );
    let proxy = start_proxy();
    session(
        &proxy,
        "shadow_path",
        &[
            "SET search_path = public, pg_catalog",
            "SELECT version()",
            "SELECT relname FROM pg_class LIMIT 1",
            "SELECT pg_catalog.version()",
            "SELECT relname FROM pg_catalog.pg_class LIMIT 1",
        ],
    );
    assert_eq!(direct("shadow_path", "SELECT count(*) FROM victim"), "0");
    assert!(!noise_of(&proxy, "SELECT version()", 0));
    assert!(!noise_of(&proxy, "SELECT relname FROM pg_class LIMIT 1", 0));
    assert!(noise_of(&proxy, "SELECT pg_catalog.version()", 0));
    assert!(noise_of(
        &proxy,
        "SELECT relname FROM pg_catalog.pg_class LIMIT 1",
        0
    ));
}

#[test]
fn a_search_path_set_for_the_database_is_seen_at_login() {
    database("shadow_dbpath");
    // Invisible in the session's statements: only pgvigil's own check at login sees it.
    direct(
        "shadow_dbpath",
        "ALTER DATABASE shadow_dbpath SET search_path = public, pg_catalog",
    );
    let proxy = start_proxy();
    session(
        &proxy,
        "shadow_dbpath",
        &[
            "SELECT relname FROM pg_class LIMIT 1",
            "SELECT pg_catalog.now() IS NOT NULL",
            "SET search_path = pg_catalog, public",
            "SELECT relname FROM pg_class LIMIT 2",
        ],
    );
    assert!(!noise_of(&proxy, "SELECT relname FROM pg_class LIMIT 1", 0));
    assert!(noise_of(&proxy, "SELECT pg_catalog.now() IS NOT NULL", 0));
    // A good path set in the session (and committed) restores trust.
    assert!(noise_of(&proxy, "SELECT relname FROM pg_class LIMIT 2", 0));
}

#[test]
fn tool_catalog_queries_stay_noise_once_learned() {
    database("shadow_tools");
    let proxy = start_proxy();
    session(&proxy, "shadow_tools", &["\\d", "\\df", "\\dn"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    let statements = loop {
        let s: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement")
            .collect();
        if s.len() >= 3 || Instant::now() > deadline {
            break s;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(statements.len() >= 3, "{statements:#?}");
    for e in &statements {
        assert_eq!(e["noise"], true, "psql's catalog query not noise: {e}");
    }
    // pgvigil's own check is not audited as the user's statement.
    assert!(
        !statements
            .iter()
            .any(|e| e["statement"].as_str().unwrap_or("").contains("pgvigil")),
        "{statements:#?}"
    );
}
