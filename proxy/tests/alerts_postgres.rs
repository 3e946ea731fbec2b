//! The PostgreSQL alert channel end to end: findings fired by real statements through the
//! real proxy become rows of a real table, carry the finding's fields, wait in the
//! durable outbox while the sink database is down (and across a kill -9 of the proxy),
//! and arrive exactly once when it comes back; a burst of findings from concurrent
//! sessions loses none. A findings table inside the audited database itself (also one
//! whose name needs quotes) does not make the detector watch its own output, and bad
//! table names are refused by `pgvigil check` and `pgvigil run` with the key and line to
//! fix.
//!
//! Clusters: `audited` (behind every proxy here) and `sink` (where the outage tests write;
//! stopped and started by them, so those tests take turns through `sink_turn`). Each test
//! has its own proxy and, on the shared sink, its own schema.

mod common;

use common::{cluster, cluster_with, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::demo::cluster::{Cluster, HbaAuth};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// Upper bound of every wait: generous, the machine may be busy with other tests.
const WAIT: Duration = Duration::from_secs(90);

/// The cluster the proxies audit (TLS, scram; `postgres` trusted on 127.0.0.1).
fn audited() -> &'static Cluster {
    static A: OnceLock<Cluster> = OnceLock::new();
    A.get_or_init(cluster)
}

/// The cluster the outage tests deliver to (plain TCP, trust).
fn sink() -> &'static Cluster {
    static B: OnceLock<Cluster> = OnceLock::new();
    B.get_or_init(|| cluster_with(false, HbaAuth::Trust))
}

/// Tests that stop the sink cluster hold this for their whole run.
fn sink_turn() -> MutexGuard<'static, ()> {
    static TURN: Mutex<()> = Mutex::new(());
    TURN.lock().unwrap_or_else(|p| p.into_inner())
}

/// A stopped cluster, started again by [`Outage::end`] or, if the test fails first, on
/// drop (so the next test on the same cluster finds it up).
struct Outage<'a> {
    cluster: &'a Cluster,
    down: bool,
}

impl<'a> Outage<'a> {
    fn begin(cluster: &'a Cluster) -> Outage<'a> {
        cluster
            .pause()
            .unwrap_or_else(|e| panic!("stop the sink cluster: {e}"));
        Outage {
            cluster,
            down: true,
        }
    }

    fn end(&mut self) {
        if self.down {
            self.down = false;
            self.cluster
                .resume()
                .unwrap_or_else(|e| panic!("start the sink cluster again: {e}"));
        }
    }
}

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        if self.down {
            let _ = self.cluster.resume();
        }
    }
}

/// `[alerts.postgres]` writing to `cluster`'s `app` database as `postgres`, in `schema`.
fn channel(cluster: &Cluster, schema: &str) -> String {
    format!(
        r#"[alerts.postgres]
host = "127.0.0.1"
port = {port}
dbname = "app"
username = "postgres"
schema = "{schema}"
table = "findings"
connect_timeout = "10s"
retry_initial = "200ms"
retry_max = "1s"
"#,
        port = cluster.port()
    )
}

/// A proxy in front of the audited cluster with the PostgreSQL channel and `audit` keys.
fn start(channel: String, audit: &str) -> Proxy {
    Proxy::start(
        audited(),
        ProxyOptions {
            extra: channel,
            audit: audit.into(),
            ..ProxyOptions::default()
        },
    )
}

/// Runs SQL through the proxy as `user` on `db`.
fn run_as(proxy: &Proxy, user: &str, password: &str, db: &str, sql: &str) {
    let (ok, _, err) = psql(
        &proxy.conninfo(user, password, db, "sslmode=disable connect_timeout=20"),
        sql,
    );
    assert!(ok, "{sql:?} as {user} on {db} failed: {err}");
}

/// Runs SQL through the proxy as the human superuser `postgres`.
fn human(proxy: &Proxy, db: &str, sql: &str) {
    run_as(proxy, "postgres", "x", db, sql);
}

/// The rows of `schema.findings` in `cluster`'s `app` database, as JSON objects in
/// insertion order; an error when the table cannot be read (missing, server down).
fn rows(cluster: &Cluster, schema: &str) -> Result<Vec<Value>, String> {
    let out = cluster
        .psql(
            "postgres",
            "app",
            &format!(
                "select coalesce(json_agg(f order by f.id), '[]'::json) from \"{schema}\".findings f"
            ),
        )
        .map_err(|e| e.to_string())?;
    serde_json::from_str(out.trim()).map_err(|e| format!("rows {out:?}: {e}"))
}

/// Waits until `schema.findings` holds exactly the finding ids `want` (in any order),
/// and returns the rows.
fn wait_rows(cluster: &Cluster, schema: &str, want: &[&str], proxy: &Proxy) -> Vec<Value> {
    let mut want: Vec<&str> = want.to_vec();
    want.sort_unstable();
    let deadline = Instant::now() + WAIT;
    loop {
        let got = rows(cluster, schema);
        if let Ok(r) = &got {
            let mut ids: Vec<&str> = r
                .iter()
                .map(|row| row["finding_id"].as_str().unwrap_or_default())
                .collect();
            ids.sort_unstable();
            if ids == want {
                return r.clone();
            }
        }
        if Instant::now() > deadline {
            panic!(
                "{schema}.findings never held exactly {want:?}; last read: {got:#?}\nproxy log:\n{}",
                proxy.log()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The PostgreSQL channel's pending outbox entries (`<config dir>/outbox/postgres/`).
fn outbox(proxy: &Proxy) -> Vec<Value> {
    outbox_of(proxy, "postgres")
}

/// A channel's pending outbox entries (`<config dir>/outbox/<channel>/*.json`), parsed.
fn outbox_of(proxy: &Proxy, channel: &str) -> Vec<Value> {
    let dir = proxy.dir.path().join("outbox").join(channel);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "json"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
        .iter()
        .filter_map(|p| {
            // A file may be removed between listing and reading (delivered meanwhile).
            let text = std::fs::read_to_string(p).ok()?;
            Some(
                serde_json::from_str(&text)
                    .unwrap_or_else(|e| panic!("outbox entry {}: {e}", p.display())),
            )
        })
        .collect()
}

/// Entries the channel set aside as refused (`outbox/postgres/dead/`).
fn dead_letters(proxy: &Proxy) -> usize {
    let dir = proxy
        .dir
        .path()
        .join("outbox")
        .join("postgres")
        .join("dead");
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// One line of the channel's metrics, whatever order the exporter prints labels in:
/// `name{channel="postgres"[,extra]}` (0 when absent).
fn channel_metric(proxy: &Proxy, name: &str, extra: Option<&str>) -> f64 {
    proxy
        .metrics()
        .lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .filter(|l| l.contains("channel=\"postgres\""))
        .filter(|l| extra.is_none_or(|x| l.contains(x)))
        .filter_map(|l| l.rsplit(' ').next().and_then(|v| v.parse::<f64>().ok()))
        .sum()
}

/// `pgvigil_alerts_total{channel="postgres",status=...}`.
fn alerts(proxy: &Proxy, status: &str) -> f64 {
    channel_metric(
        proxy,
        "pgvigil_alerts_total",
        Some(&format!("status=\"{status}\"")),
    )
}

/// `pgvigil_outbox_depth{channel="postgres"}`.
fn depth(proxy: &Proxy) -> f64 {
    channel_metric(proxy, "pgvigil_outbox_depth", None)
}

fn id(f: &Value) -> &str {
    f["id"].as_str().expect("finding id")
}

/// Findings in findings.jsonl by id; each id must occur once.
fn findings_by_id(proxy: &Proxy) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for f in proxy.findings() {
        let key = id(&f).to_string();
        assert!(
            out.insert(key.clone(), f).is_none(),
            "finding {key} twice in findings.jsonl"
        );
    }
    out
}

/// The row carries the finding: the fields pgsense has, the ones it lacks, timestamps
/// equal as timestamps (checked by the server).
fn assert_row_is_finding(cluster: &Cluster, schema: &str, row: &Value, f: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    assert_eq!(row["finding_id"], f["id"], "{row:#}\n{f:#}");
    assert_eq!(row["dedup_key"], f["dedup_key"], "{row:#}\n{f:#}");
    assert_eq!(row["rule_id"], f["rule_id"], "{row:#}\n{f:#}");
    assert_eq!(row["description"], f["description"], "{row:#}\n{f:#}");
    assert_eq!(row["category"], f["category"], "{row:#}\n{f:#}");
    assert_eq!(row["severity"], f["severity"], "{row:#}\n{f:#}");
    assert_eq!(row["mitre_tactic"], f["mitre_tactic"], "{row:#}\n{f:#}");
    assert_eq!(
        row["mitre_technique"], f["mitre_technique"],
        "{row:#}\n{f:#}"
    );
    assert_eq!(row["database"], f["database"], "{row:#}\n{f:#}");
    assert_eq!(row["user_name"], f["user"], "{row:#}\n{f:#}");
    assert_eq!(row["client_addr"], f["client_addr"], "{row:#}\n{f:#}");
    assert_eq!(row["application_name"], f["application_name"], "{row:#}");
    assert_eq!(row["session_id"], f["session_id"], "{row:#}\n{f:#}");
    assert_eq!(row["statement"], f["statement"], "{row:#}\n{f:#}");
    assert_eq!(row["count"], f["count"], "{row:#}\n{f:#}");
    assert_eq!(row["window_text"], f["window"], "{row:#}\n{f:#}");
    assert_eq!(row["action"], f["action"], "{row:#}\n{f:#}");
    assert_eq!(
        text(&row["schema_name"]),
        text(&f["schema_name"]),
        "{row:#}"
    );
    assert_eq!(text(&row["table_name"]), text(&f["table_name"]), "{row:#}");
    assert!(row["blocked_until"].is_null(), "{row:#}");
    // pgsense's columns a finding has no value for.
    assert_eq!(row["column_name"], "", "{row:#}");
    assert_eq!(row["masked_sample"], "", "{row:#}");
    assert_eq!(row["lsn"], 0, "{row:#}");
    let same_times = cluster
        .psql(
            "postgres",
            "app",
            &format!(
                "select detected_at = '{}'::timestamptz and first_seen = '{}'::timestamptz \
                 and last_seen = '{}'::timestamptz from \"{schema}\".findings \
                 where finding_id = '{}'",
                text(&f["ts"]),
                text(&f["first_seen"]),
                text(&f["last_seen"]),
                text(&f["id"]),
            ),
        )
        .expect("compare timestamps");
    assert_eq!(same_times.trim(), "t", "timestamps differ: {row:#}\n{f:#}");
}

#[test]
fn findings_reach_the_table_and_survive_an_outage() {
    let _turn = sink_turn();
    let b = sink();
    let schema = "outage";
    let proxy = start(channel(b, schema), "redact = \"literals\"");

    // Finding 1, sink up: one row with the finding's fields.
    human(&proxy, "app", "select pg_read_file('PG_VERSION')");
    assert_eq!(proxy.fired("dangerous-function"), 1.0);
    let f1 = proxy.wait_finding("dangerous-function", |_| true);
    assert_eq!(f1["statement"], "select pg_read_file(?)", "{f1:#}");
    assert_eq!(f1["user"], "postgres");
    assert_eq!(f1["client_addr"], "127.0.0.1");
    let r = wait_rows(b, schema, &[id(&f1)], &proxy);
    assert_row_is_finding(b, schema, &r[0], &f1);
    wait_until("sent = 1", WAIT, || alerts(&proxy, "sent") == 1.0);
    wait_until("outbox empty after finding 1", WAIT, || {
        outbox(&proxy).is_empty()
    });

    // The sink goes down; findings 2 and 3 (other rule, other database) wait.
    let mut outage = Outage::begin(b);
    human(&proxy, "app", "grant connect on database app to app_user");
    assert_eq!(proxy.fired("grant"), 1.0);
    human(&proxy, "postgres", "select pg_read_file('PG_VERSION')");
    assert_eq!(proxy.fired("dangerous-function"), 2.0);
    let f2 = proxy.wait_finding("grant", |_| true);
    let f3 = proxy.wait_finding("dangerous-function", |f| f["database"] == "postgres");
    wait_until("2 outbox files", WAIT, || outbox(&proxy).len() == 2);
    let pending: Vec<String> = outbox(&proxy).iter().map(|f| id(f).to_string()).collect();
    assert_eq!(pending, [id(&f2), id(&f3)], "oldest first, as fired");
    wait_until("delivery retried", WAIT, || alerts(&proxy, "retry") > 0.0);
    // The depth gauge should say what the folder holds. Checked, but only reported at
    // the end, so the rest of the outage is still exercised if it is wrong.
    let deadline = Instant::now() + Duration::from_secs(20);
    while depth(&proxy) != 2.0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let depth_during_outage = depth(&proxy);
    let metrics_during_outage = proxy
        .metrics()
        .lines()
        .filter(|l| l.contains("channel=\"postgres\""))
        .collect::<Vec<_>>()
        .join(" | ");
    assert_eq!(alerts(&proxy, "sent"), 1.0, "nothing sent while down");
    assert_eq!(rows(b, schema).ok(), None, "the sink is down");

    // Back up: both arrive, nothing twice, nothing refused.
    outage.end();
    let all = wait_rows(b, schema, &[id(&f1), id(&f2), id(&f3)], &proxy);
    assert_eq!(all.len(), 3);
    let findings = findings_by_id(&proxy);
    assert_eq!(
        findings.keys().map(String::as_str).collect::<Vec<_>>(),
        {
            let mut ids = vec![id(&f1), id(&f2), id(&f3)];
            ids.sort_unstable();
            ids
        },
        "findings.jsonl holds the same three findings"
    );
    for row in &all {
        let f = &findings[row["finding_id"].as_str().unwrap()];
        assert_row_is_finding(b, schema, row, f);
    }
    assert_eq!(all[1]["finding_id"], f2["id"], "delivered in order");
    assert_eq!(all[2]["finding_id"], f3["id"], "delivered in order");
    assert_eq!(all[1]["rule_id"], "grant");
    assert_eq!(all[2]["database"], "postgres");
    wait_until("outbox empty", WAIT, || outbox(&proxy).is_empty());
    wait_until("depth 0", WAIT, || depth(&proxy) == 0.0);
    wait_until("sent = 3", WAIT, || alerts(&proxy, "sent") == 3.0);
    assert_eq!(alerts(&proxy, "dropped"), 0.0);
    assert_eq!(alerts(&proxy, "error"), 0.0);
    assert_eq!(dead_letters(&proxy), 0);
    // Nothing more arrives later (no duplicate delivery after the catch-up).
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rows(b, schema).expect("rows").len(), 3);
    assert_eq!(alerts(&proxy, "sent"), 3.0);

    assert_eq!(
        depth_during_outage, 2.0,
        "pgvigil_outbox_depth{{channel=\"postgres\"}} while two findings waited in the \
         outbox folder (metrics then: {metrics_during_outage})"
    );
}

#[test]
fn restart_with_sink_down_loses_nothing() {
    let _turn = sink_turn();
    let b = sink();
    let schema = "restart";
    // Down from the start: the channel never connected, the table does not exist yet.
    let mut outage = Outage::begin(b);
    let mut proxy = start(channel(b, schema), "");

    human(&proxy, "app", "select pg_read_file('PG_VERSION')");
    assert_eq!(proxy.fired("dangerous-function"), 1.0);
    let f = proxy.wait_finding("dangerous-function", |_| true);
    wait_until("the finding in the outbox", WAIT, || {
        outbox(&proxy).iter().any(|e| e["id"] == f["id"])
    });
    wait_until("delivery retried", WAIT, || alerts(&proxy, "retry") > 0.0);
    assert_eq!(outbox(&proxy).len(), 1);
    assert_eq!(alerts(&proxy, "sent"), 0.0);
    // The file channel is done with it (else the restart may append it again: delivery
    // is at least once, and this test counts lines of findings.jsonl).
    wait_until("the file channel's outbox empty", WAIT, || {
        outbox_of(&proxy, "file").is_empty()
    });

    proxy.kill_hard();
    outage.end();
    proxy.restart();

    let r = wait_rows(b, schema, &[id(&f)], &proxy);
    assert_eq!(r.len(), 1);
    assert_row_is_finding(b, schema, &r[0], &f);
    wait_until("outbox empty after restart", WAIT, || {
        outbox(&proxy).is_empty()
    });
    wait_until("sent = 1 after restart", WAIT, || {
        alerts(&proxy, "sent") == 1.0
    });
    assert_eq!(dead_letters(&proxy), 0);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(rows(b, schema).expect("rows").len(), 1, "exactly once");
    assert_eq!(
        findings_by_id(&proxy).keys().collect::<Vec<_>>(),
        [id(&f)],
        "findings.jsonl: the one finding"
    );
}

#[test]
fn a_burst_of_findings_loses_none() {
    // One human-data-change finding per role, from three sessions at a time: the
    // outbox writer stores findings while both channels list their folders.
    let a = audited();
    let n = 120;
    let mut setup = String::from("create table burst (a int); grant insert on burst to public;\n");
    for i in 0..n {
        setup.push_str(&format!(
            "create role burst_{i} login password 'burst_pw';\n"
        ));
    }
    a.psql("postgres", "app", &setup).expect("burst roles");
    let proxy = start(channel(a, "burst"), "");
    let p = &proxy;
    std::thread::scope(|s| {
        for t in 0..3 {
            s.spawn(move || {
                for i in (t..n).step_by(3) {
                    let user = format!("burst_{i}");
                    run_as(p, &user, "burst_pw", "app", "insert into burst values (1)");
                }
            });
        }
    });
    assert_eq!(proxy.fired("human-data-change"), n as f64);

    let deadline = Instant::now() + WAIT;
    let (mut in_file, mut in_table) = (0, 0);
    while Instant::now() < deadline {
        in_file = proxy.findings().len();
        in_table = rows(a, "burst").map_or(0, |r| r.len());
        // Done, or a finding was already lost (no need to wait for the rest).
        if (in_file == n && in_table == n) || proxy.log().contains("cannot store a finding") {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let log = proxy.log();
    let not_stored: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot store a finding"))
        .collect();
    assert!(
        in_file == n && in_table == n && not_stored.is_empty(),
        "{n} findings fired; findings.jsonl has {in_file}, the table {in_table}; \
         {} outbox store failures, e.g.:\n{}",
        not_stored.len(),
        not_stored
            .iter()
            .take(5)
            .copied()
            .collect::<Vec<_>>()
            .join("\n")
    );
    let ids: Vec<String> = findings_by_id(&proxy).into_keys().collect();
    let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
    wait_rows(a, "burst", &ids, &proxy);
    assert_eq!(alerts(&proxy, "error"), 0.0);
    assert_eq!(alerts(&proxy, "sent"), n as f64);
}

#[test]
fn channel_through_the_proxy_does_not_loop_and_tampering_is_seen() {
    let a = audited();
    let proxy = start(String::new(), "");
    // Point the channel at the proxy itself (the worst case the seed warns about), with a
    // table name that needs quotes: "pgvigil_loop"."Findings" in the audited database.
    let mut config = std::fs::read_to_string(&proxy.config_path).expect("config");
    config.push_str(
        &channel(a, "pgvigil_loop")
            .replace(
                &format!("port = {}", a.port()),
                &format!("port = {}", proxy.port),
            )
            .replace("table = \"findings\"", "table = \"Findings\"")
            // The server trusts postgres, but pgvigil asks every client for a password
            // before it opens a server connection.
            .replace(
                "username = \"postgres\"",
                "username = \"postgres\"\npassword = \"unused\"",
            ),
    );
    std::fs::write(&proxy.config_path, config).expect("write config");
    proxy.sighup();
    wait_until("reload", WAIT, || {
        proxy.log().contains("configuration reloaded")
    });

    human(&proxy, "app", "select pg_read_file('PG_VERSION')");
    let f = proxy.wait_finding("dangerous-function", |_| true);
    let count = |db_sql: &str| {
        a.psql("postgres", "app", db_sql)
            .map(|n| n.trim().to_string())
            .unwrap_or_default()
    };
    wait_until("the row, written through the proxy", WAIT, || {
        count(&format!(
            "select count(*) from pgvigil_loop.\"Findings\" where finding_id = '{}'",
            id(&f)
        )) == "1"
    });
    // The channel's own session (user postgres, a human here) inserted a row through the
    // proxy: audited, but not evaluated, so no data-change finding and no loop.
    proxy.wait_event("the channel's insert", |e| {
        e["type"] == "statement"
            && e["application_name"] == "pgvigil-alerts"
            && e["command"] == "INSERT"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(proxy.fired("human-data-change"), 0.0);
    assert_eq!(proxy.findings().len(), 1, "{:#?}", proxy.findings());

    // Anyone else changing findings is tampering, and is evaluated like any statement.
    human(
        &proxy,
        "app",
        "update pgvigil_loop.\"Findings\" set severity = severity",
    );
    assert_eq!(proxy.fired("unbounded-write"), 1.0);
    assert_eq!(proxy.fired("human-data-change"), 1.0);
    let uw = proxy.wait_finding("unbounded-write", |_| true);
    assert_eq!(uw["table_name"], "\"Findings\"");
    // Both new findings reach the table through the proxy, once each, and no more follow.
    wait_until("three rows", WAIT, || {
        count("select count(*) from pgvigil_loop.\"Findings\"") == "3"
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count("select count(*) from pgvigil_loop.\"Findings\""), "3");
    assert_eq!(proxy.findings().len(), 3);
}

/// `pgvigil <args>` with a time limit: (exit code, stdout, stderr).
fn pgvigil(args: &[&str], config: &Path, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .arg("--config")
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pgvigil");
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(child.try_wait(), Ok(None)) {
        let _ = child.kill();
    }
    let out = child.wait_with_output().expect("pgvigil output");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The 1-based line of `text` that starts with `prefix`.
fn line_of(text: &str, prefix: &str) -> usize {
    text.lines()
        .position(|l| l.starts_with(prefix))
        .map(|i| i + 1)
        .unwrap_or_else(|| panic!("no line {prefix:?} in {text}"))
}

#[test]
fn invalid_identifiers_are_refused_at_startup() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = |schema: &str, table: &str| {
        format!(
            "[listen]\naddr = \"127.0.0.1:{}\"\n\n[listen.tls]\nmode = \"disable\"\n\n\
             [upstream]\nport = 5432\n\n[metrics]\nlisten = \"127.0.0.1:{}\"\n\n\
             [alerts.postgres]\nhost = \"127.0.0.1\"\nport = 1\n\
             schema = \"{schema}\"\ntable = \"{table}\"\n",
            common::free_port(),
            common::free_port()
        )
    };

    let bad_text = config("bad-name", "a.b");
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, &bad_text).expect("write config");
    let (code, stdout, stderr) = pgvigil(&["check"], &bad, Duration::from_secs(60));
    assert_eq!(code, Some(1), "stdout: {stdout}\nstderr: {stderr}");
    assert!(!stdout.contains("OK"), "{stdout}");
    let schema_line = line_of(&bad_text, "schema =");
    let table_line = line_of(&bad_text, "table =");
    let advice = "use ASCII letters, digits and underscores";
    for (key, line, value) in [
        ("alerts.postgres.schema", schema_line, "\"bad-name\""),
        ("alerts.postgres.table", table_line, "\"a.b\""),
    ] {
        let issue = stderr
            .lines()
            .find(|l| l.contains(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{key} not named:\n{stderr}"));
        assert!(issue.contains(&format!("line {line}:")), "{issue}");
        assert!(issue.contains(value), "{issue}");
        assert!(issue.contains(advice), "{issue}");
    }
    assert!(
        stderr.contains("2 problem(s)"),
        "only the two names: {stderr}"
    );

    // `run` refuses the same file before listening, with the same words.
    let (code, _, run_err) = pgvigil(&["run"], &bad, Duration::from_secs(60));
    assert!(
        code.is_some_and(|c| c != 0),
        "run exited with {code:?}: {run_err}"
    );
    assert!(run_err.contains("alerts.postgres.schema"), "{run_err}");
    assert!(
        run_err.contains(&format!("line {schema_line}")),
        "{run_err}"
    );

    // Only one of them wrong: only that one reported.
    let half = dir.path().join("half.toml");
    std::fs::write(&half, config("pgvigil", "find-ings")).expect("write config");
    let (code, _, stderr) = pgvigil(&["check"], &half, Duration::from_secs(60));
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("alerts.postgres.table"), "{stderr}");
    assert!(!stderr.contains("alerts.postgres.schema"), "{stderr}");

    // Valid names (mixed case, underscores, digits after the first) pass.
    let good = dir.path().join("good.toml");
    std::fs::write(&good, config("audit_2", "Findings")).expect("write config");
    let (code, stdout, stderr) = pgvigil(&["check"], &good, Duration::from_secs(60));
    assert_eq!(code, Some(0), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("OK"), "{stdout}");
}
