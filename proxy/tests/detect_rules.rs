//! Every built-in detection rule, fired through the real proxy by real statements or real
//! failed logins (psql against a throwaway cluster), and shown not to fire below its
//! threshold, for service accounts, or for catalog noise, where the rule says so.
//!
//! `pgvigil_findings_total` is counted when a rule fires, before the client gets the
//! reply to the statement that fired it, so checking it right after psql returns is
//! exact; the findings file (written through the outbox) is checked for the content.

mod common;

use common::{cluster, psql, Proxy, ProxyOptions};
use pgvigil::demo::cluster::Cluster;
use serde_json::Value;
use std::sync::OnceLock;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// A proxy with `app_*` as service accounts and extra config.
fn start(extra: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: "service_accounts = [\"app_*\"]".into(),
            extra: extra.into(),
            ..ProxyOptions::default()
        },
    )
}

fn conn(proxy: &Proxy, user: &str, password: &str) -> String {
    proxy.conninfo(user, password, "app", "sslmode=disable connect_timeout=20")
}

/// Runs SQL as the superuser `postgres` (a human; trusted on 127.0.0.1).
fn human(proxy: &Proxy, sql: &str) -> (bool, String, String) {
    psql(&conn(proxy, "postgres", "x"), sql)
}

/// Runs SQL as `app_user` (a service account here).
fn service(proxy: &Proxy, sql: &str) -> (bool, String, String) {
    psql(&conn(proxy, "app_user", "app_pass"), sql)
}

fn ok(r: (bool, String, String)) {
    assert!(r.0, "psql failed: {}", r.2);
}

fn repeat(sql: &str, n: usize) -> String {
    (0..n).map(|_| sql).collect::<Vec<_>>().join(";")
}

fn assert_finding_fields(f: &Value) {
    for key in [
        "id",
        "ts",
        "rule_id",
        "description",
        "category",
        "severity",
        "mitre_tactic",
        "mitre_technique",
        "database",
        "user",
        "client_addr",
        "application_name",
        "session_id",
        "statement",
        "schema_name",
        "table_name",
        "count",
        "window",
        "first_seen",
        "last_seen",
        "dedup_key",
    ] {
        assert!(f.get(key).is_some(), "finding lacks {key}: {f}");
    }
}

/// Waits until `n` auth_failure events are in the audit log.
fn auth_failures_written(proxy: &Proxy, n: usize) {
    common::wait_until(
        "auth_failure events",
        std::time::Duration::from_secs(10),
        || {
            proxy
                .audit_events()
                .iter()
                .filter(|e| e["type"] == "auth_failure")
                .count()
                >= n
        },
    );
}

#[test]
fn failed_logins_block_the_address_until_it_expires_and_across_reload() {
    let proxy = start("[rules]\nblock_loopback = true\n");
    for i in 0..5 {
        let (good, _, err) = psql(&conn(&proxy, "scram_user", "wrong"), "select 1");
        assert!(
            !good && err.contains("password authentication failed"),
            "{i}: {err}"
        );
    }
    // A failed login is audited (and so meets the detector) after the client has its
    // error: wait for the events, then look at the count.
    auth_failures_written(&proxy, 5);
    assert_eq!(
        proxy.fired("failed-logins"),
        0.0,
        "5 failures are not more than 5"
    );
    let (good, _, _) = psql(&conn(&proxy, "scram_user", "wrong"), "select 1");
    assert!(!good);
    auth_failures_written(&proxy, 6);
    assert_eq!(proxy.fired("failed-logins"), 1.0);
    let f = proxy.wait_finding("failed-logins", |_| true);
    assert_finding_fields(&f);
    assert_eq!(f["client_addr"], "127.0.0.1");
    assert_eq!(f["count"], 6);
    assert_eq!(f["action"], "block");
    assert_eq!(f["mitre_tactic"], "TA0006");
    assert_eq!(f["mitre_technique"], "T1110");
    assert_eq!(f["window"], "10m");
    assert!(f["blocked_until"].is_string());
    assert!(f["dedup_key"]
        .as_str()
        .unwrap()
        .starts_with("failed-logins:"));
    // The right password no longer helps: the address is refused before authentication.
    let (good, _, err) = psql(&conn(&proxy, "scram_user", "scram_pass"), "select 1");
    assert!(!good);
    assert!(
        err.contains("too many failed authentication attempts"),
        "{err}"
    );
    proxy.wait_event("blocked auth_failure", |e| {
        e["type"] == "auth_failure" && e["blocked_until"].is_string() && e["sqlstate"] == "28000"
    });
    // Refusals do not count as failed logins: no second finding.
    assert_eq!(proxy.fired("failed-logins"), 1.0);
    // A reload keeps the block.
    proxy.sighup();
    common::wait_until("reload", std::time::Duration::from_secs(10), || {
        proxy.log().contains("configuration reloaded")
    });
    let (good, _, err) = psql(&conn(&proxy, "scram_user", "scram_pass"), "select 1");
    assert!(!good && err.contains("too many failed"), "{err}");
    assert!(proxy.metric("pgvigil_connections_total{result=\"blocked\"}") >= 2.0);
}

#[test]
fn failed_logins_never_block_loopback_unless_configured() {
    let proxy = start("");
    for _ in 0..6 {
        let (good, _, _) = psql(&conn(&proxy, "scram_user", "wrong"), "select 1");
        assert!(!good);
    }
    auth_failures_written(&proxy, 6);
    let f = proxy.wait_finding("failed-logins", |_| true);
    assert_eq!(f["action"], "alert");
    assert!(f.get("blocked_until").is_none());
    ok(psql(&conn(&proxy, "scram_user", "scram_pass"), "select 1"));
}

#[test]
fn error_burst_counts_human_errors_per_address() {
    let proxy = start("");
    // A service account's errors are its application's business.
    let (good, _, _) = service(&proxy, &repeat("select * from no_such_table", 1));
    assert!(!good);
    for _ in 0..4 {
        let _ = service(&proxy, "select * from no_such_table");
    }
    for _ in 0..3 {
        let _ = human(&proxy, "select * from no_such_table");
    }
    assert_eq!(proxy.fired("error-burst"), 0.0);
    let _ = human(&proxy, "select * from no_such_table");
    assert_eq!(proxy.fired("error-burst"), 1.0);
    let f = proxy.wait_finding("error-burst", |_| true);
    assert_eq!(f["count"], 4);
    assert_eq!(f["user"], "postgres");
    assert!(f["statement"].as_str().unwrap().contains("no_such_table"));
}

#[test]
fn excessive_alter_drop_and_delete_per_user() {
    let proxy = start("");
    ok(human(
        &proxy,
        "create table exd (a int, b int); insert into exd select g, g from generate_series(1, 100) g",
    ));
    // ALTER: more than 10.
    ok(human(
        &proxy,
        &repeat("alter table exd alter column b set default 1", 10),
    ));
    assert_eq!(proxy.fired("excessive-alter"), 0.0);
    ok(human(&proxy, "alter table exd alter column b drop default"));
    assert_eq!(proxy.fired("excessive-alter"), 1.0);
    let f = proxy.wait_finding("excessive-alter", |_| true);
    assert_eq!(f["count"], 11);
    assert_eq!(f["mitre_technique"], "T1505.001");
    assert_eq!(f["table_name"], "exd");
    // DROP: more than 5.
    let creates: String = (0..6)
        .map(|i| format!("create table exd_{i} (a int);"))
        .collect();
    ok(human(&proxy, &creates));
    let drops: String = (0..5).map(|i| format!("drop table exd_{i};")).collect();
    ok(human(&proxy, &drops));
    assert_eq!(proxy.fired("excessive-drop"), 0.0);
    ok(human(&proxy, "drop table exd_5"));
    assert_eq!(proxy.fired("excessive-drop"), 1.0);
    // DELETE: more than 20; a service account's deletes are not counted.
    ok(service(&proxy, "create table exd_svc (a int)"));
    ok(service(
        &proxy,
        &repeat("delete from exd_svc where a = 1", 25),
    ));
    assert_eq!(proxy.fired("excessive-delete"), 0.0);
    ok(human(&proxy, &repeat("delete from exd where a = 1", 20)));
    assert_eq!(proxy.fired("excessive-delete"), 0.0);
    ok(human(&proxy, "delete from exd where a = 2"));
    assert_eq!(proxy.fired("excessive-delete"), 1.0);
    assert_eq!(
        proxy.wait_finding("excessive-delete", |_| true)["user"],
        "postgres"
    );
}

#[test]
fn grant_and_privilege_escalation() {
    let proxy = start("");
    ok(human(&proxy, "create table gr (a int)"));
    ok(service(
        &proxy,
        "create table gr_svc (a int); grant select on gr_svc to scram_user",
    ));
    assert_eq!(
        proxy.fired("grant"),
        0.0,
        "service accounts' grants are not findings"
    );
    ok(human(&proxy, "grant select on gr to app_user"));
    assert_eq!(proxy.fired("grant"), 1.0);
    assert_eq!(
        proxy.fired("privilege-escalation"),
        0.0,
        "object privileges are not escalation"
    );
    let f = proxy.wait_finding("grant", |_| true);
    assert_eq!(f["table_name"], "gr");
    // Attributes that do not escalate, and the NO forms, are quiet.
    ok(human(
        &proxy,
        "create role pe_quiet nologin; alter role pe_quiet nosuperuser createdb",
    ));
    assert_eq!(proxy.fired("privilege-escalation"), 0.0);
    ok(human(&proxy, "create role pe_super superuser"));
    assert_eq!(proxy.fired("privilege-escalation"), 1.0);
    assert_eq!(
        proxy.wait_finding("privilege-escalation", |_| true)["severity"],
        "critical"
    );
    // Role membership, by anyone (a service account too), and attempts count: app_user
    // may not grant pg_read_all_data, which is exactly what should be looked at.
    let (good, _, _) = service(&proxy, "grant pg_read_all_data to app_user");
    assert!(!good);
    assert_eq!(proxy.fired("privilege-escalation"), 2.0);
}

/// `ALTER GROUP g ADD USER u` is `GRANT g TO u` spelled the old way: escalation too.
#[test]
fn alter_group_add_user_is_privilege_escalation() {
    let proxy = start("");
    ok(human(
        &proxy,
        "create role pe_grp nologin; create role pe_member nologin; \
         alter group pe_grp drop user pe_member; alter group pe_grp rename to pe_grp2",
    ));
    assert_eq!(
        proxy.fired("privilege-escalation"),
        0.0,
        "dropping a member or renaming a group grants nothing"
    );
    ok(human(&proxy, "ALTER GROUP pe_grp2 ADD USER pe_member"));
    assert_eq!(proxy.fired("privilege-escalation"), 1.0);
    let f = proxy.wait_finding("privilege-escalation", |_| true);
    assert_eq!(
        f["statement"], "ALTER GROUP pe_grp2 ADD USER pe_member",
        "{f}"
    );
}

/// `CREATE ROLE x IN ROLE g` makes x a member of g as it is created: escalation too.
#[test]
fn create_role_in_role_is_privilege_escalation() {
    let proxy = start("");
    ok(human(
        &proxy,
        "create role pe_cr_grp nologin; create role pe_cr_plain nologin password 'role'",
    ));
    assert_eq!(proxy.fired("privilege-escalation"), 0.0);
    ok(human(
        &proxy,
        "CREATE ROLE pe_cr_member NOLOGIN IN ROLE pe_cr_grp",
    ));
    assert_eq!(proxy.fired("privilege-escalation"), 1.0);
    let f = proxy.wait_finding("privilege-escalation", |_| true);
    assert_eq!(
        f["statement"], "CREATE ROLE pe_cr_member NOLOGIN IN ROLE pe_cr_grp",
        "{f}"
    );
}

#[test]
fn human_data_change_once_per_cooldown_never_for_services_or_noise() {
    let proxy = start("");
    ok(service(
        &proxy,
        "create table hdc (a int); insert into hdc values (1); update hdc set a = 2 where a = 1",
    ));
    ok(human(
        &proxy,
        "select count(*) from pg_catalog.pg_class; select 1",
    ));
    assert_eq!(proxy.fired("human-data-change"), 0.0);
    ok(human(&proxy, "insert into hdc values (3)"));
    assert_eq!(proxy.fired("human-data-change"), 1.0);
    ok(human(
        &proxy,
        "insert into hdc values (4); delete from hdc where a = 4",
    ));
    assert_eq!(
        proxy.fired("human-data-change"),
        1.0,
        "the 5-minute cooldown holds"
    );
    let f = proxy.wait_finding("human-data-change", |_| true);
    assert_eq!(f["statement"], "insert into hdc values (3)");
    assert_eq!(f["user"], "postgres");
    // COPY FROM is a data change too (for another user: a group of its own).
    ok(psql(
        &conn(&proxy, "scram_user", "scram_pass"),
        "create table hdc2 (a int)",
    ));
    assert_eq!(
        proxy.fired("human-data-change"),
        1.0,
        "DDL is not a data change"
    );
}

#[test]
fn unbounded_write_needs_a_missing_where() {
    let proxy = start("");
    ok(human(
        &proxy,
        "create table ub (a int); insert into ub values (1)",
    ));
    ok(human(
        &proxy,
        "update ub set a = 2 where a = 1; delete from ub where a = 5",
    ));
    ok(service(
        &proxy,
        "create table ub_svc (a int); update ub_svc set a = 1; delete from ub_svc",
    ));
    assert_eq!(proxy.fired("unbounded-write"), 0.0);
    ok(human(&proxy, "update ub set a = 3"));
    assert_eq!(proxy.fired("unbounded-write"), 1.0);
    let f = proxy.wait_finding("unbounded-write", |_| true);
    assert_eq!(f["statement"], "update ub set a = 3");
    assert_eq!(f["severity"], "high");
}

#[test]
fn bulk_export_copy_to_and_big_reads() {
    let proxy = start("");
    ok(human(
        &proxy,
        "create table bulk as select g from generate_series(1, 20000) g; \
         grant select on bulk to app_user",
    ));
    ok(human(&proxy, "select * from bulk limit 10000"));
    ok(service(
        &proxy,
        "select * from bulk; copy (select 1) to stdout",
    ));
    // Catalog noise returning many rows is not an export.
    ok(human(
        &proxy,
        "select a.attname from pg_catalog.pg_attribute a, pg_catalog.pg_namespace n",
    ));
    assert_eq!(proxy.fired("bulk-export"), 0.0);
    ok(human(&proxy, "select * from bulk"));
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let f = proxy.wait_finding("bulk-export", |_| true);
    assert_eq!(f["table_name"], "bulk");
    // COPY ... TO by another human.
    ok(psql(
        &conn(&proxy, "scram_user", "scram_pass"),
        "copy (select 1) to stdout",
    ));
    assert_eq!(proxy.fired("bulk-export"), 2.0);
}

#[test]
fn dangerous_functions_and_copy_program() {
    let proxy = start("");
    ok(human(
        &proxy,
        "select pg_backend_pid(); select length('pg_read_file')",
    ));
    assert_eq!(proxy.fired("dangerous-function"), 0.0);
    ok(human(&proxy, "select length(pg_read_file('PG_VERSION'))"));
    assert_eq!(proxy.fired("dangerous-function"), 1.0);
    let f = proxy.wait_finding("dangerous-function", |_| true);
    assert_eq!(f["mitre_technique"], "T1059");
    // Any user, service accounts included (a stolen application account is the usual
    // way in); a refused attempt counts.
    let _ = service(&proxy, "select pg_terminate_backend(0)");
    assert_eq!(proxy.fired("dangerous-function"), 2.0);
    ok(psql(&conn(&proxy, "scram_user", "scram_pass"), "select 1"));
    let _ = psql(
        &conn(&proxy, "scram_user", "scram_pass"),
        "copy (select 1) to program 'cat > /dev/null'",
    );
    assert_eq!(proxy.fired("dangerous-function"), 3.0);
}

const CUSTOM_RULE: &str = r#"id = "drop-anything"
description = "Any DROP"
category = "impact"
severity = "low"
on = "statement"
group_by = ["user"]

[match]
command = ["DROP *"]
"#;

#[test]
fn sighup_reloads_rules_and_keeps_the_running_set_on_a_broken_file() {
    let rules_dir = tempfile::tempdir().unwrap();
    let dir = rules_dir.path().to_path_buf();
    let proxy = start(&format!("[rules]\ndir = \"{}\"\n", dir.display()));
    // Started with an empty folder: only the built-in rules.
    ok(human(&proxy, "create table rl (a int); drop table rl"));
    assert_eq!(proxy.fired("drop-anything"), 0.0);
    // A broken rule file: the reload is refused with the file and line, and the
    // running rules stay.
    std::fs::write(
        dir.join("drop-anything.toml"),
        CUSTOM_RULE.replace("severity = \"low\"", "severity = \"urgent\""),
    )
    .unwrap();
    proxy.sighup();
    common::wait_until("reload refused", std::time::Duration::from_secs(10), || {
        proxy.log().contains("reload failed")
    });
    let log = proxy.log();
    assert!(
        log.contains("drop-anything.toml: line 4"),
        "the error names the file and line: {log}"
    );
    ok(human(
        &proxy,
        "create table rl3 (a int); update rl3 set a = 1",
    ));
    assert_eq!(
        proxy.fired("unbounded-write"),
        1.0,
        "the running set still applies"
    );
    // Fixed: the new rule applies to new statements, the built-in ones still do.
    std::fs::write(dir.join("drop-anything.toml"), CUSTOM_RULE).unwrap();
    proxy.sighup();
    common::wait_until("reload", std::time::Duration::from_secs(10), || {
        proxy.log().contains("configuration reloaded")
    });
    ok(human(&proxy, "create table rl2 (a int); drop table rl2"));
    assert_eq!(proxy.fired("drop-anything"), 1.0);
    let f = proxy.wait_finding("drop-anything", |_| true);
    assert_eq!(f["severity"], "low");
    assert_eq!(f["mitre_tactic"], "");
}

#[test]
fn check_reports_rule_problems_with_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("drop-anything.toml");
    std::fs::write(&good, CUSTOM_RULE).unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "id = \"bad\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"low\"\n\
         on = \"auth_failure\"\n\n[match]\ncommand = [\"DROP *\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--rule"])
        .arg(&good)
        .arg("--rule")
        .arg(&bad)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stdout}{stderr}");
    assert!(stdout.contains("OK (rule drop-anything)"), "{stdout}");
    assert!(
        stderr.contains("bad.toml: line 8: match.command: auth_failure events are not statements"),
        "{stderr}"
    );
}
