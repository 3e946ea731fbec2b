//! Statement events through the proxy, protocol by protocol: a multi-statement simple
//! query with an error in the middle, extended-protocol batches with an error skipping to
//! Sync, prepared statements executed many times (tokio-postgres), COPY row counts,
//! FunctionCall, SET ROLE tracking, application_name set after login, service accounts,
//! the pgAudit output format, and statements left unanswered when a client hangs up.
//!
//! Classification accuracy is judged elsewhere (audit_pgaudit.rs); here the question is
//! whether every statement gets exactly one event with the server's verdict on it.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::NoTls;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

fn start(audit: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: audit.to_string(),
            ..ProxyOptions::default()
        },
    )
}

// `select 1` and friends are catalog noise (pools send them as health checks), so the
// tests that use them turn `log_noise` on.

/// Statement events of one application_name, in log order.
fn statements(proxy: &Proxy, app: &str) -> Vec<Value> {
    proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "statement" && e["application_name"] == app)
        .collect()
}

/// Waits until `n` statement events of `app` are written, and returns them.
fn wait_statements(proxy: &Proxy, app: &str, n: usize) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while std::time::Instant::now() < deadline {
        got = statements(proxy, app);
        if got.len() >= n {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "expected {n} statement events for {app}, got {}:\n{}",
        got.len(),
        got.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn conninfo(proxy: &Proxy, user: &str, password: &str, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=app sslmode=disable \
         application_name={app} connect_timeout=20",
        proxy.port
    )
}

#[test]
fn multi_statement_query_each_statement_gets_its_own_verdict() {
    let proxy = start("log_noise = true");
    let (ok, _, err) = psql(
        &conninfo(&proxy, "app_user", "app_pass", "multi"),
        "select 1; select * from missing_table_x; select 2",
    );
    assert!(!ok, "the query should fail: {err}");
    let ev = wait_statements(&proxy, "multi", 3);
    assert_eq!(ev.len(), 3, "{ev:?}");
    let id = &ev[0]["statement_id"];
    for (i, e) in ev.iter().enumerate() {
        assert_eq!(&e["statement_id"], id, "one simple query, one statement_id");
        assert_eq!(e["substatement_id"], i as u64 + 1);
        assert_eq!(e["protocol"], "simple");
        assert_eq!(e["user"], "app_user");
        assert_eq!(e["user_kind"], "human");
    }
    assert_eq!(ev[0]["outcome"], "ok");
    assert_eq!(ev[0]["rows"], 1);
    assert_eq!(ev[0]["statement"], "select 1");
    assert_eq!(ev[1]["outcome"], "error");
    assert_eq!(ev[1]["sqlstate"], "42P01");
    assert!(ev[1]["error"].as_str().unwrap().contains("missing_table_x"));
    assert_eq!(ev[2]["outcome"], "skipped");
    assert_eq!(ev[2]["statement"], "select 2");
    assert!(ev[0]["duration_ms"].as_f64().is_some());
}

#[test]
fn extended_batch_error_skips_to_sync() {
    let proxy = start("log_noise = true");
    let mut s = raw_login(proxy.port, "trust_user", "x", "app");
    let mut batch = Vec::new();
    for sql in ["select * from missing_table_y", "select 42"] {
        let mut p = b"\0".to_vec();
        p.extend_from_slice(sql.as_bytes());
        p.extend_from_slice(&[0, 0, 0]);
        batch.extend(frontend_msg(b'P', &p));
        batch.extend(frontend_msg(b'B', b"\0\0\0\0\0\0\0\0"));
        batch.extend(frontend_msg(b'E', b"\0\0\0\0\0"));
    }
    batch.extend(frontend_msg(b'S', b""));
    // And a good batch after the Sync.
    let mut p = b"\0select 7\0\0\0".to_vec();
    batch.extend(frontend_msg(b'P', &p));
    batch.extend(frontend_msg(b'B', b"\0\0\0\0\0\0\0\0"));
    batch.extend(frontend_msg(b'E', b"\0\0\0\0\0"));
    batch.extend(frontend_msg(b'S', b""));
    s.write_all(&batch).unwrap();
    let mut ready = 0;
    while ready < 2 {
        let (tag, _) = read_msg(&mut s).expect("reply");
        if tag == b'Z' {
            ready += 1;
        }
    }
    p.clear();
    let ev: Vec<Value> = {
        wait_until("three statement events", Duration::from_secs(10), || {
            proxy
                .audit_events()
                .iter()
                .filter(|e| e["type"] == "statement" && e["user"] == "trust_user")
                .count()
                >= 3
        });
        proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement" && e["user"] == "trust_user")
            .collect()
    };
    assert_eq!(ev.len(), 3, "{ev:?}");
    // The failing Parse fails its Execute; the next Execute never ran.
    assert_eq!(ev[0]["outcome"], "error", "{ev:?}");
    assert_eq!(ev[0]["sqlstate"], "42P01");
    assert_eq!(ev[0]["statement"], "select * from missing_table_y");
    assert_eq!(ev[1]["outcome"], "skipped");
    assert_eq!(ev[1]["statement"], "select 42");
    assert_eq!(ev[2]["outcome"], "ok");
    assert_eq!(ev[2]["statement"], "select 7");
    assert_eq!(ev[2]["rows"], 1);
    assert!(ev.iter().all(|e| e["protocol"] == "extended"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prepared_statement_executed_many_times() {
    let proxy = tokio::task::spawn_blocking(|| start("log_parameters = true"))
        .await
        .unwrap();
    let (client, conn) = tokio_postgres::connect(
        &conninfo(&proxy, "app_user", "app_pass", "tp_prepared"),
        NoTls,
    )
    .await
    .expect("connect");
    let conn = tokio::spawn(conn);
    client
        .batch_execute("create temp table tp_prep (id int primary key, v text)")
        .await
        .unwrap();
    let insert = client
        .prepare("insert into tp_prep values ($1, $2)")
        .await
        .unwrap();
    for i in 0..5 {
        let n = client
            .execute(&insert, &[&i, &format!("v{i}")])
            .await
            .unwrap();
        assert_eq!(n, 1);
    }
    let dup = client.execute(&insert, &[&1, &"again"]).await;
    assert!(dup.is_err(), "duplicate key must fail");
    let rows = client
        .query("select * from tp_prep where id >= $1", &[&2])
        .await
        .unwrap();
    assert_eq!(rows.len(), 3);
    drop(client);
    let _ = conn.await;
    let ev = tokio::task::spawn_blocking(move || {
        let ev = wait_statements(&proxy, "tp_prepared", 8);
        (ev, proxy)
    })
    .await
    .unwrap()
    .0;
    let inserts: Vec<&Value> = ev
        .iter()
        .filter(|e| e["statement"] == "insert into tp_prep values ($1, $2)")
        .collect();
    assert_eq!(inserts.len(), 6, "one event per execution: {ev:?}");
    for (i, e) in inserts.iter().take(5).enumerate() {
        assert_eq!(e["protocol"], "extended");
        assert_eq!(e["outcome"], "ok");
        assert_eq!(e["rows"], 1);
        // tokio-postgres sends binary parameters: int4 as hex, text as its bytes.
        assert_eq!(e["parameters"][0], format!("\\x{:08x}", i));
        assert_eq!(e["parameters"][1], format!("\\x{}", hex(&format!("v{i}"))));
    }
    assert_eq!(inserts[5]["outcome"], "error");
    assert_eq!(inserts[5]["sqlstate"], "23505");
    let select = ev
        .iter()
        .find(|e| e["statement"] == "select * from tp_prep where id >= $1")
        .expect("select event");
    assert_eq!(select["rows"], 3);
    assert_eq!(select["outcome"], "ok");
}

fn hex(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn copy_function_call_and_application_name_set_later() {
    let proxy = start("");
    let info = conninfo(&proxy, "app_user", "app_pass", "copyapp");
    let mut child = std::process::Command::new("psql")
        .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", &info])
        .env("PGCONNECT_TIMEOUT", "20")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("psql");
    let script = "create temp table cp (a int);\n\
                  copy cp from stdin;\n1\n2\n3\n\\.\n\
                  copy cp to stdout;\n\
                  \\lo_import /etc/hostname\n\
                  set application_name = 'renamed';\n\
                  select count(*) from cp;\n";
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = wait_statements(&proxy, "copyapp", 4);
    let copy_in = ev
        .iter()
        .find(|e| e["statement"] == "copy cp from stdin")
        .expect("copy in");
    assert_eq!(copy_in["rows"], 3);
    let copy_out = ev
        .iter()
        .find(|e| e["statement"] == "copy cp to stdout")
        .expect("copy out");
    assert_eq!(copy_out["rows"], 3);
    let calls: Vec<&Value> = ev
        .iter()
        .filter(|e| e["protocol"] == "function_call")
        .collect();
    assert!(!calls.is_empty(), "lo_import uses FunctionCall: {ev:?}");
    for c in &calls {
        assert_eq!(c["class"], "FUNCTION");
        assert_eq!(c["objects"][0]["type"], "FUNCTION");
        assert!(c["objects"][0]["name"]
            .as_str()
            .unwrap()
            .parse::<u32>()
            .is_ok());
    }
    let renamed = wait_statements(&proxy, "renamed", 1);
    assert_eq!(
        renamed[0]["statement"],
        "select count(*) from cp;".trim_end_matches(';')
    );
}

#[test]
fn role_changes_are_tracked_and_rolled_back() {
    let proxy = start("log_noise = true");
    let info = conninfo(&proxy, "app_user", "app_pass", "roles");
    pg().psql("postgres", "postgres", "grant pg_read_all_data to app_user")
        .expect("grant");
    let (ok, _, err) = psql(
        &info,
        "select 1; set role pg_read_all_data; select 2; begin; set role app_user; rollback; \
         select 3; set local role app_user; reset role; select 4",
    );
    assert!(ok, "{err}");
    let ev = wait_statements(&proxy, "roles", 10);
    let by_text = |t: &str| {
        ev.iter()
            .find(|e| e["statement"] == t)
            .cloned()
            .unwrap_or_else(|| panic!("no event for {t}: {ev:?}"))
    };
    assert_eq!(by_text("select 1")["role"], Value::Null);
    assert_eq!(by_text("select 2")["role"], "pg_read_all_data");
    assert_eq!(
        by_text("select 3")["role"],
        "pg_read_all_data",
        "the SET ROLE inside the rolled-back block was undone"
    );
    assert_eq!(by_text("select 4")["role"], Value::Null);
    assert!(
        ev.iter().all(|e| e["user"] == "app_user"),
        "user stays the login"
    );
}

#[test]
fn service_accounts_are_counted_not_written() {
    let proxy = start("service_accounts = [\"app_*\"]\nlog_noise = true");
    let (ok, _, err) = psql(
        &conninfo(&proxy, "app_user", "app_pass", "svc"),
        "select 1; select 2",
    );
    assert!(ok, "{err}");
    let (ok, _, err) = psql(
        &conninfo(&proxy, "scram_user", "scram_pass", "human"),
        "select 3",
    );
    assert!(ok, "{err}");
    let human = wait_statements(&proxy, "human", 1);
    assert_eq!(human[0]["user_kind"], "human");
    assert!(statements(&proxy, "svc").is_empty());
    let total: f64 = ["true", "false"]
        .iter()
        .map(|noise| {
            ["READ", "MISC"]
                .iter()
                .map(|class| {
                    proxy.metric(&format!(
                        "pgvigil_statements_total{{class=\"{class}\",user_kind=\"service\",noise=\"{noise}\"}}"
                    ))
                })
                .sum::<f64>()
        })
        .sum();
    assert!(total >= 2.0, "service statements counted: {total}");
}

#[test]
fn service_accounts_can_be_written() {
    let proxy =
        start("service_accounts = [\"app_user\"]\nlog_service_accounts = true\nlog_noise = true");
    let (ok, _, err) = psql(
        &conninfo(&proxy, "app_user", "app_pass", "svc2"),
        "select 1",
    );
    assert!(ok, "{err}");
    let ev = wait_statements(&proxy, "svc2", 1);
    assert_eq!(ev[0]["user_kind"], "service");
}

#[test]
fn pgaudit_format_lines() {
    let proxy = start("format = \"pgaudit\"\nlog_noise = true");
    let (ok, _, err) = psql(
        &conninfo(&proxy, "app_user", "app_pass", "pga"),
        "select 'a,b' as x; select * from missing_table_z",
    );
    assert!(!ok, "{err}");
    let path = proxy.dir.path().join("audit.jsonl");
    let mut text = String::new();
    wait_until("pgaudit lines", Duration::from_secs(10), || {
        text = std::fs::read_to_string(&path).unwrap_or_default();
        text.contains("missing_table_z")
    });
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" AUDIT: SESSION,"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("app_user@app 127.0.0.1:"), "{}", lines[0]);
    assert!(lines[0].contains(" ok AUDIT: SESSION,"), "{}", lines[0]);
    assert!(
        lines[0].ends_with(",\"select 'a,b' as x\",<not logged>"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].contains(" error 42P01 AUDIT: SESSION,"),
        "{}",
        lines[1]
    );
    assert!(
        text.lines()
            .any(|l| l.contains("PGVIGIL: {") && l.contains("session_start")),
        "{text}"
    );
}

#[test]
fn statement_in_flight_when_the_client_hangs_up_is_audited() {
    let proxy = start("");
    let mut s = raw_login(proxy.port, "trust_user", "x", "app");
    s.write_all(&frontend_msg(b'Q', b"select pg_sleep(30)\0"))
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    drop(s);
    wait_until("the abandoned statement", Duration::from_secs(10), || {
        proxy.audit_events().iter().any(|e| {
            e["type"] == "statement"
                && e["statement"] == "select pg_sleep(30)"
                && e["outcome"] == "error"
                && e["sqlstate"].is_null()
        })
    });
}

#[test]
fn hostile_sql_is_audited_and_costs_nothing_else() {
    let mut proxy = start("log_noise = true");
    let mut s = raw_login(proxy.port, "trust_user", "x", "app");
    // Deep nesting: sqlparser's recursion limit, then the token path.
    let deep = format!("select {}1{}", "(".repeat(30_000), ")".repeat(30_000));
    // Longer than max_parse_bytes and than the 1 MiB capture: classified from a prefix.
    let long = format!("select length('{}')", "a".repeat(2 * 1024 * 1024));
    // Unterminated quoting and comments, control bytes, a password the parser never sees.
    let odd = [
        "select $$ never ends",
        "select 1 /* /* nested */",
        "alter role trust_user password 'Hostile-Secret-1",
        "\u{1}\u{2}select\u{7f} 1",
    ];
    for sql in [deep.as_str(), long.as_str()].into_iter().chain(odd) {
        let _ = raw_query(&mut s, sql);
    }
    assert_eq!(raw_query(&mut s, "select 42").unwrap(), vec!["42"]);
    wait_until(
        "events for every hostile statement",
        Duration::from_secs(20),
        || {
            let ev: Vec<Value> = proxy
                .audit_events()
                .into_iter()
                .filter(|e| e["type"] == "statement" && e["user"] == "trust_user")
                .collect();
            ev.len() >= 7 && ev.iter().any(|e| e["statement"] == "select 42")
        },
    );
    let text = std::fs::read_to_string(proxy.dir.path().join("audit.jsonl")).unwrap();
    assert!(
        !text.contains("Hostile-Secret-1"),
        "password in the audit log"
    );
    assert!(
        !proxy.log().contains("Hostile-Secret-1"),
        "password in the proxy log"
    );
    assert_healthy(&mut proxy);
}

#[test]
fn reload_changes_audit_settings_for_new_sessions_and_keeps_them_on_a_bad_file() {
    let mut proxy = start("");
    let info = conninfo(&proxy, "app_user", "app_pass", "reload");
    let (ok, _, err) = psql(&info, "select 1001");
    assert!(ok, "{err}");
    let original = std::fs::read_to_string(&proxy.config_path).unwrap();
    let noisy = original.replace("[audit]\n", "[audit]\nlog_noise = true\n");
    assert_ne!(noisy, original);
    std::fs::write(&proxy.config_path, &noisy).unwrap();
    proxy.sighup();
    wait_until("the reload", Duration::from_secs(10), || {
        proxy.log().contains("configuration reloaded")
    });
    let (ok, _, err) = psql(&info, "select 1002");
    assert!(ok, "{err}");
    let ev = wait_statements(&proxy, "reload", 1);
    assert_eq!(ev.len(), 1, "only the statement after the reload: {ev:?}");
    assert_eq!(ev[0]["statement"], "select 1002");
    // A broken file keeps the running configuration (and says why, with the line).
    std::fs::write(
        &proxy.config_path,
        noisy.replace("log_noise = true", "log_noise = 3"),
    )
    .unwrap();
    proxy.sighup();
    wait_until("the refused reload", Duration::from_secs(10), || {
        proxy.log().contains("reload failed")
    });
    assert!(proxy.log().contains("line "), "{}", proxy.log());
    let (ok, _, err) = psql(&info, "select 1003");
    assert!(ok, "{err}");
    wait_statements(&proxy, "reload", 2);
    assert_healthy(&mut proxy);
}

const DROPPED: &str = "pgvigil_audit_events_total{result=\"dropped\"}";
const WRITTEN: &str = "pgvigil_audit_events_total{result=\"written\"}";

#[test]
fn backpressure_drop_counts_and_wait_loses_nothing() {
    let many: String = (0..3000).map(|i| format!("select {i};")).collect();
    for (policy, app) in [("drop", "bp_drop"), ("wait", "bp_wait")] {
        let proxy = start(&format!(
            "log_noise = true\ndurability = \"synced\"\nqueue_capacity = 1\non_backpressure = \"{policy}\""
        ));
        let (ok, _, err) = psql(&conninfo(&proxy, "app_user", "app_pass", app), &many);
        assert!(ok, "{err}");
        if policy == "drop" {
            metric_at_least(&proxy, DROPPED, 1.0);
            // Every event is written or counted as dropped (the writer may still be busy
            // with the last few when the drop counter first moves), and the written
            // counter is the lines in the file.
            wait_until("written + dropped = 3000", Duration::from_secs(10), || {
                let written = statements(&proxy, app).len() as f64;
                written + proxy.metric(DROPPED) == 3000.0
            });
            wait_until("written counter = lines", Duration::from_secs(10), || {
                proxy.metric(WRITTEN) == proxy.audit_events().len() as f64
            });
        } else {
            let ev = wait_statements(&proxy, app, 3000);
            assert_eq!(ev.len(), 3000);
            assert_eq!(proxy.metric(DROPPED), 0.0);
        }
    }
}

/// One simple query of 200,000 `select 1;` (1.8 MB): the statements in the 1 MiB capture
/// are logged one by one; the rest, which the proxy never read, costs one summary event
/// with its byte count, the statements the server ran there and an estimate, instead of
/// one placeholder line per statement (83,491 lines and 45 MB of log before).
#[test]
fn huge_query_past_the_capture_is_one_summary_line() {
    // `select 1` is tool noise: logged here so that every statement can be counted.
    let mut proxy = start("log_noise = true");
    let mut s = raw_login(proxy.port, "trust_user", "x", "app");
    let n = 200_000u64;
    let sql = "select 1;".repeat(n as usize);
    let before = std::fs::metadata(proxy.dir.path().join("audit.jsonl"))
        .map(|m| m.len())
        .unwrap_or(0);
    raw_query(&mut s, &sql).expect("the huge query runs");
    assert_eq!(raw_query(&mut s, "select 42").unwrap(), vec!["42"]);
    let path = proxy.dir.path().join("audit.jsonl");
    wait_until("the query's events", Duration::from_secs(60), || {
        std::fs::read_to_string(&path).is_ok_and(|t| t.contains("\"select 42\""))
    });
    let ev: Vec<Value> = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "statement" && e["user"] == "trust_user")
        .collect();
    let summaries: Vec<&Value> = ev.iter().filter(|e| !e["uncaptured"].is_null()).collect();
    assert_eq!(summaries.len(), 1, "one summary event");
    let u = &summaries[0]["uncaptured"];
    let run = u["statements_run"].as_u64().unwrap();
    // The captured statements, the last one cut short by the capture.
    let id = &summaries[0]["statement_id"];
    let logged = ev.iter().filter(|e| &e["statement_id"] == id).count() as u64 - 1;
    assert_eq!(logged + run, n, "every statement logged or summed: {u}");
    let bytes = u["bytes"].as_u64().unwrap();
    assert_eq!(bytes, sql.len() as u64 - 1024 * 1024);
    let est = u["statements_estimate"].as_u64().unwrap();
    assert!(est.abs_diff(run) * 100 <= run, "estimate {est} for {run}");
    assert!(
        !ev.iter()
            .any(|e| e["statement"].as_str().unwrap().starts_with("<statement")),
        "a placeholder per statement"
    );
    // The log grew by the captured statements' lines and one more: each uncaptured byte
    // costs nothing.
    let grown = std::fs::metadata(&path).unwrap().len() - before;
    let per_line = grown / (logged + 2);
    assert!(per_line < 1024, "{grown} bytes for {logged} lines");
    assert_healthy(&mut proxy);
}
