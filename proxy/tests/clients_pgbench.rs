//! pgbench through the proxy: initialisation (COPY, DDL, VACUUM), then load in each query
//! protocol pgbench has (simple, extended, named prepared statements) with several
//! concurrent clients, and a connection per transaction. Every run must end with exit
//! status 0 and no failed transaction.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

/// The file's cluster. Never dropped: the harness's watchdog stops it at exit.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Runs pgbench as app_user on `app` through the proxy, with `sslmode`.
fn pgbench(proxy: &Proxy, sslmode: &str, args: &[&str]) -> Output {
    let mut cmd = Command::new(pg().bin("pgbench"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGPASSWORD", "app_pass")
        .env("PGSSLMODE", sslmode)
        .env("PGCONNECT_TIMEOUT", "20")
        .env("LC_ALL", "C")
        .args([
            "-h",
            "127.0.0.1",
            "-p",
            &proxy.port.to_string(),
            "-U",
            "app_user",
        ])
        .args(args)
        .arg("app")
        .stdin(Stdio::null())
        .output()
        .expect("run pgbench")
}

/// Asserts exit 0 and no failed transactions; returns the number processed.
fn check_run(proxy: &Proxy, what: &str, out: &Output) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "pgbench {what} failed ({}):\n{stdout}\n{stderr}\nproxy log:\n{}",
        out.status,
        proxy.log()
    );
    let field = |name: &str| -> Option<u64> {
        stdout.lines().find_map(|l| {
            l.strip_prefix(name)
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|n| n.split('/').next())
                .and_then(|n| n.parse().ok())
        })
    };
    let processed = field("number of transactions actually processed:")
        .unwrap_or_else(|| panic!("pgbench {what}: no transaction count in:\n{stdout}"));
    // PostgreSQL 15+ prints the failures line; older pgbench aborts on any error anyway.
    if let Some(failed) = field("number of failed transactions:") {
        assert_eq!(failed, 0, "pgbench {what} had failures:\n{stdout}");
    }
    assert!(
        !stderr.contains("error") && !stdout.contains("aborted"),
        "pgbench {what} reported errors:\n{stdout}\n{stderr}"
    );
    processed
}

#[test]
fn pgbench_init_then_every_query_mode() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());

    let init = pgbench(&proxy, "require", &["-i", "-s", "1", "-q"]);
    assert!(
        init.status.success(),
        "pgbench -i failed:\n{}\n{}\nproxy log:\n{}",
        String::from_utf8_lossy(&init.stdout),
        String::from_utf8_lossy(&init.stderr),
        proxy.log()
    );
    let accounts = pg()
        .psql("postgres", "app", "select count(*) from pgbench_accounts")
        .expect("count accounts");
    assert_eq!(
        accounts.trim(),
        "100000",
        "pgbench -i -s 1 loads 100000 accounts"
    );

    // Select-only load with 4 clients on 2 threads, in each protocol; the plaintext leg
    // once, TLS otherwise.
    for (mode, sslmode) in [
        ("simple", "disable"),
        ("extended", "require"),
        ("prepared", "require"),
    ] {
        let out = pgbench(
            &proxy,
            sslmode,
            &["-n", "-S", "-M", mode, "-c", "4", "-j", "2", "-t", "200"],
        );
        let n = check_run(&proxy, &format!("-S -M {mode}"), &out);
        assert_eq!(n, 800, "4 clients x 200 transactions in mode {mode}");
    }

    // The TPC-B-like default script writes (UPDATE, INSERT) inside transactions.
    let out = pgbench(
        &proxy,
        "require",
        &["-n", "-M", "prepared", "-c", "4", "-j", "2", "-t", "50"],
    );
    assert_eq!(check_run(&proxy, "tpcb -M prepared", &out), 200);
    let history = pg()
        .psql("postgres", "app", "select count(*) from pgbench_history")
        .expect("count history");
    assert_eq!(
        history.trim(),
        "200",
        "every tpcb transaction inserted its history row"
    );
}

#[test]
fn pgbench_connection_per_transaction() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let script = dir.path().join("one.sql");
    std::fs::write(&script, "\\set x random(1, 1000)\nselect :x + 1;\n").expect("script");
    let script = script.display().to_string();
    // -C: a new connection (TLS handshake, password, upstream SCRAM) for every transaction.
    let out = pgbench(
        &proxy,
        "require",
        &[
            "-n", "-C", "-M", "extended", "-c", "2", "-j", "2", "-t", "15", "-f", &script,
        ],
    );
    assert_eq!(check_run(&proxy, "-C", &out), 30);
    // Each transaction was its own session. The proxy counts a login just after the
    // client got ReadyForQuery, so the last one may land a moment after pgbench exits.
    metric_at_least(&proxy, "pgvigil_connections_total{result=\"ok\"}", 30.0);
}
