//! psql through the proxy, the way people use it: every sslmode a client picks, channel
//! binding left at its default with TLS on both legs, large objects (the FunctionCall
//! message), COPY in both spellings, notices on stderr, and `[databases.NAME]` aliases.
//!
//! One cluster serves the whole file (tests use their own tables); each test starts its
//! own proxy.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::OnceLock;

/// The file's cluster (TLS on, scram by default). Never dropped: the harness's watchdog
/// stops it when the test process exits.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Output of one psql run.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

/// Runs the cluster's psql (`-X -A -t -q`, ON_ERROR_STOP) with `args` after the
/// connection string, feeding `stdin` when given. The caller's PG* environment is
/// removed so only the connection string decides; messages are in English.
fn run_psql(conninfo: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(pg().bin("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "20")
        .env("LC_ALL", "C")
        .args([
            "-X",
            "-A",
            "-t",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-d",
            conninfo,
        ])
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run psql");
    // Fed from a thread: psql may fill its stdout pipe before it has read all input.
    let writer = stdin.map(|text| {
        let mut pipe = child.stdin.take().expect("psql stdin");
        let text = text.to_owned();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        })
    });
    let out = child.wait_with_output().expect("wait for psql");
    if let Some(w) = writer {
        let _ = w.join();
    }
    Run {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).trim().to_string(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs one SQL string and insists that it works; returns stdout.
fn sql_ok(proxy: &Proxy, conninfo: &str, sql: &str) -> String {
    let r = run_psql(conninfo, &["-c", sql], None);
    assert!(
        r.ok,
        "psql failed for {sql:?}:\n{}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    r.stdout
}

/// A connection string for host `localhost` (the name in the proxy's certificate).
fn localhost_conninfo(proxy: &Proxy, user: &str, pw: &str, extra: &str) -> String {
    format!(
        "host=localhost port={} user={user} password={pw} dbname=app {extra}",
        proxy.port
    )
}

/// Deterministic pseudo-random bytes (xorshift), every byte value represented.
fn test_bytes(n: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn path_str(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn psql_every_client_sslmode() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());

    // Plaintext: allowed because the client is on loopback.
    let plain = proxy.conninfo(
        "scram_user",
        "scram_pass",
        "app",
        "sslmode=disable application_name=plain_leg",
    );
    assert_eq!(sql_ok(&proxy, &plain, "select current_user"), "scram_user");
    let e = proxy.wait_event("session_start of plain_leg", |e| {
        e["type"] == "session_start" && e["application_name"] == "plain_leg"
    });
    assert_eq!(e["tls"], false, "{e}");

    // sslmode=require: encrypted, certificate not checked.
    let req = proxy.conninfo(
        "scram_user",
        "scram_pass",
        "app",
        "sslmode=require application_name=tls_leg",
    );
    assert_eq!(sql_ok(&proxy, &req, "select current_database()"), "app");
    let e = proxy.wait_event("session_start of tls_leg", |e| {
        e["type"] == "session_start" && e["application_name"] == "tls_leg"
    });
    assert_eq!(e["tls"], true, "{e}");

    // verify-full: the proxy's certificate chains to its CA and names localhost.
    let ca = path_str(proxy.ca_file());
    let full = localhost_conninfo(
        &proxy,
        "scram_user",
        "scram_pass",
        &format!("sslmode=verify-full sslrootcert={ca}"),
    );
    assert_eq!(sql_ok(&proxy, &full, "select 40 + 2"), "42");

    // verify-full against another CA (the cluster's) must fail, on the client side.
    let wrong_ca = path_str(pg().ca_cert().expect("TLS cluster has a CA"));
    let wrong = localhost_conninfo(
        &proxy,
        "scram_user",
        "scram_pass",
        &format!("sslmode=verify-full sslrootcert={wrong_ca}"),
    );
    let r = run_psql(&wrong, &["-c", "select 1"], None);
    assert!(
        !r.ok,
        "verify-full with the wrong CA connected: {}",
        r.stdout
    );
    assert!(
        r.stderr.contains("certificate verify failed"),
        "unexpected error: {}",
        r.stderr
    );
}

#[test]
fn psql_default_channel_binding_with_tls_upstream() {
    // Both legs TLS, upstream verified: the case where relaying SCRAM byte for byte fails
    // (the client's gs2 flag 'y' against a server that supports binding).
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            sslmode: "verify-full",
            ..ProxyOptions::default()
        },
    );
    // channel_binding is left at libpq's default (prefer).
    let ci = proxy.conninfo(
        "scram_user",
        "scram_pass",
        "app",
        "sslmode=require application_name=cb_prefer",
    );
    let out = sql_ok(
        &proxy,
        &ci,
        "select current_user || ' ' || ssl from pg_stat_ssl where pid = pg_backend_pid()",
    );
    assert_eq!(out, "scram_user true", "the upstream leg must be TLS");
    let e = proxy.wait_event("session_start of cb_prefer", |e| {
        e["type"] == "session_start" && e["application_name"] == "cb_prefer"
    });
    assert_eq!(e["tls"], true, "{e}");
    assert_eq!(e["auth_method"], "scram-sha-256-plus", "{e}");

    // The other password methods work over the same path.
    for (user, pw) in [
        ("md5_user", "md5_pass"),
        ("pw_user", "pw_pass"),
        ("app_user", "app_pass"),
    ] {
        let ci = proxy.conninfo(user, pw, "app", "sslmode=require");
        assert_eq!(sql_ok(&proxy, &ci, "select current_user"), user);
    }
}

#[test]
fn psql_large_objects_roundtrip() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("in.bin");
    let output = dir.path().join("out.bin");
    // Larger than one lo_write chunk (psql/libpq write in 8 KB pieces).
    let data = test_bytes(300 * 1024 + 17);
    std::fs::write(&input, &data).expect("write input");
    let ci = proxy.conninfo("app_user", "app_pass", "app", "sslmode=require");
    let script = format!(
        "\\lo_import '{}'\n\
         \\set oid :LASTOID\n\
         \\lo_export :oid '{}'\n\
         select length(lo_get(:oid));\n\
         \\lo_unlink :oid\n",
        path_str(&input),
        path_str(&output),
    );
    let r = run_psql(&ci, &["-f", "-"], Some(&script));
    assert!(
        r.ok,
        "psql failed:\n{}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    assert_eq!(
        r.stdout.lines().last(),
        Some(data.len().to_string().as_str()),
        "{}",
        r.stdout
    );
    let back = std::fs::read(&output).expect("exported file");
    assert_eq!(back.len(), data.len());
    assert!(
        back == data,
        "exported large object differs from the imported file"
    );
    // Unlinked: nothing left behind.
    let left = pg()
        .psql(
            "postgres",
            "app",
            "select count(*) from pg_largeobject_metadata",
        )
        .expect("count large objects");
    assert_eq!(left.trim(), "0");
}

#[test]
fn psql_copy_from_stdin_and_backslash_copy() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let ci = proxy.conninfo("app_user", "app_pass", "app", "sslmode=require");

    // COPY FROM STDIN with the data inline in the script, as pg_dump writes it.
    let mut script = String::from(
        "create table psql_copy (id int primary key, name text, blob bytea);\n\
         copy psql_copy from stdin;\n",
    );
    for i in 1..=5000 {
        script.push_str(&format!("{i}\tname {i} tab\\tin\t\\\\x{:04x}\n", i));
    }
    script.push_str("\\.\nselect count(*), sum(id) from psql_copy;\n");
    let r = run_psql(&ci, &["-f", "-"], Some(&script));
    assert!(
        r.ok,
        "psql failed:\n{}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    assert_eq!(r.stdout.lines().last(), Some("5000|12502500"));
    assert_eq!(
        sql_ok(
            &proxy,
            &ci,
            "select name || '/' || encode(blob, 'hex') from psql_copy where id = 77"
        ),
        "name 77 tab\tin/004d"
    );

    // \copy: client-side files, both directions.
    let infile = dir.path().join("rows.csv");
    let mut csv = String::new();
    for i in 5001..=12000 {
        csv.push_str(&format!("{i},\"csv, row {i}\",\n"));
    }
    std::fs::write(&infile, csv).expect("write csv");
    let outfile = dir.path().join("out.csv");
    let script = format!(
        "\\copy psql_copy from '{}' with (format csv)\n\
         \\copy (select id, name from psql_copy order by id) to '{}' with (format csv)\n\
         select count(*) from psql_copy;\n",
        path_str(&infile),
        path_str(&outfile),
    );
    let r = run_psql(&ci, &["-f", "-"], Some(&script));
    assert!(
        r.ok,
        "psql failed:\n{}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    assert_eq!(r.stdout.lines().last(), Some("12000"));
    let out = std::fs::read_to_string(&outfile).expect("read exported csv");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 12000);
    assert_eq!(lines[0], "1,name 1 tab\tin");
    assert_eq!(lines[11999], "12000,\"csv, row 12000\"");

    // A COPY that fails midway reports the server's error and the session goes on.
    let script = "copy psql_copy (id) from stdin;\n1\n\\.\nselect 'unreached';\n";
    let r = run_psql(&ci, &["-f", "-"], Some(script));
    assert!(!r.ok);
    assert!(r.stderr.contains("duplicate key value"), "{}", r.stderr);
    assert!(!r.stdout.contains("unreached"));
}

#[test]
fn psql_notice_reaches_stderr() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let ci = proxy.conninfo("scram_user", "scram_pass", "app", "sslmode=require");
    let r = run_psql(
        &ci,
        &[
            "-c",
            "DO $$ BEGIN RAISE NOTICE 'hi'; RAISE WARNING 'careful %', 7; END $$",
            "-c",
            "select 'after'",
        ],
        None,
    );
    assert!(
        r.ok,
        "psql failed:\n{}\nproxy log:\n{}",
        r.stderr,
        proxy.log()
    );
    assert!(r.stderr.contains("NOTICE:  hi"), "stderr: {}", r.stderr);
    assert!(
        r.stderr.contains("WARNING:  careful 7"),
        "stderr: {}",
        r.stderr
    );
    assert_eq!(r.stdout, "after");
}

#[test]
fn psql_database_alias_routes_to_real_database() {
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            extra: "[databases.aliasdb]\ndbname = \"app\"\n".to_string(),
            ..ProxyOptions::default()
        },
    );
    let ci = proxy.conninfo("app_user", "app_pass", "aliasdb", "sslmode=require");
    assert_eq!(sql_ok(&proxy, &ci, "select current_database()"), "app");
    // Names without a route go through unchanged.
    let ci = proxy.conninfo("app_user", "app_pass", "postgres", "sslmode=require");
    assert_eq!(sql_ok(&proxy, &ci, "select current_database()"), "postgres");
    // A database that exists nowhere is the server's error, as on a direct connection.
    let ci = proxy.conninfo("app_user", "app_pass", "nosuchdb", "sslmode=require");
    let r = run_psql(&ci, &["-c", "select 1"], None);
    assert!(!r.ok);
    assert!(
        r.stderr.contains("database \"nosuchdb\" does not exist"),
        "{}",
        r.stderr
    );
}
