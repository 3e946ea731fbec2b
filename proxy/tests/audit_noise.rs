//! Catalog noise: the introspection queries real tools send (psql's backslash commands,
//! the JDBC driver's DatabaseMetaData, pgbench's setup, tokio-postgres's type lookups)
//! are statement events with `noise: true`, while the user's own statements in the same
//! sessions, including reads of sensitive catalogs (`pg_authid`) and files
//! (`pg_read_file`), are `noise: false`. With the default `log_noise = false` the noise
//! is not written but still counted in `pgvigil_statements_total{noise="true"}`.
//!
//! Each test starts its own proxy, so its audit log holds only its tool's sessions: a
//! statement event is the user's if its text is one of the user statements, otherwise it
//! is the tool's own. One cluster serves the file.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Objects for the backslash commands and DatabaseMetaData calls to find.
const SETUP: &str = r#"
CREATE TABLE app_table (id serial PRIMARY KEY, v text);
INSERT INTO app_table (v) VALUES ('one'), ('two');
CREATE VIEW app_view AS SELECT id FROM app_table;
CREATE SCHEMA noise_s;
CREATE FUNCTION app_fn(i int) RETURNS int LANGUAGE sql AS $$ SELECT i $$;
CREATE PROCEDURE app_proc() LANGUAGE sql AS $$ SELECT 1 $$;
CREATE TYPE mood AS ENUM ('sad', 'happy');
GRANT ALL ON app_table, app_view TO PUBLIC;
GRANT ALL ON SEQUENCE app_table_id_seq TO PUBLIC;
"#;

/// psql's backslash commands (each one or more catalog queries).
const PSQL_META: [&str; 12] = [
    "\\d",
    "\\dt",
    "\\d+ app_table",
    "\\df",
    "\\dn",
    "\\du",
    "\\l",
    "\\dv",
    "\\di",
    "\\ds",
    "\\dx",
    "\\dp",
];

/// The user's statements in the psql session (run as the superuser).
const PSQL_USER: [&str; 4] = [
    "select * from app_table",
    "insert into app_table (v) values ('psql')",
    "select pg_read_file('postgresql.conf')",
    "select * from pg_authid",
];

/// Tool statements allowed to be `noise: false`, by text prefix, with the reason.
const NOT_NOISE: [(&str, &str); 2] = [
    (
        "SET extra_float_digits = 3",
        "pgJDBC's connection setup; a SET changes session state, so it is audited (MISC_SET)",
    ),
    (
        "SET application_name = ",
        "pgJDBC's connection setup; a SET changes session state, so it is audited (MISC_SET)",
    ),
];

/// The file's cluster, with the objects above. Never dropped: the watchdog stops it.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let pg = cluster();
        pg.psql("postgres", "app", SETUP)
            .unwrap_or_else(|e| panic!("setup: {e}"));
        pg
    })
}

fn start_proxy(log_noise: bool) -> Proxy {
    let audit = if log_noise { "log_noise = true\n" } else { "" };
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: audit.into(),
            ..Default::default()
        },
    )
}

/// Runs psql through the proxy as the superuser: one session, one `-c` per command.
fn psql_session(proxy: &Proxy, commands: &[&str]) {
    let mut cmd = Command::new(pg().bin("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "20")
        .env("LC_ALL", "C")
        .args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"])
        .arg(proxy.conninfo(
            "postgres",
            "unused",
            "app",
            "sslmode=disable application_name=noise_psql",
        ));
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

/// The psql session: every backslash command, with the user statements in between.
fn psql_commands() -> Vec<&'static str> {
    let mut all: Vec<&str> = PSQL_META.to_vec();
    for (i, u) in PSQL_USER.iter().enumerate() {
        all.insert(i * 3 + 1, u);
    }
    all
}

/// Statement events so far.
fn statements(proxy: &Proxy) -> Vec<Value> {
    proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "statement")
        .collect()
}

/// Waits (bounded) until `pred` holds for the statement events, and returns them.
fn wait_statements(proxy: &Proxy, what: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events = statements(proxy);
        if pred(&events) {
            return events;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = proxy.audit_events().iter().map(|e| e.to_string()).collect();
            panic!(
                "timed out waiting for {what}; audit log:\n{}",
                all.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn text(e: &Value) -> &str {
    e["statement"]
        .as_str()
        .unwrap_or("")
        .trim()
        .trim_end_matches(';')
        .trim()
}

/// Matches a user statement pattern: exact text, or a prefix when it ends with `*`.
fn is_user(stmt: &str, user: &[&str]) -> bool {
    user.iter().any(|u| match u.strip_suffix('*') {
        Some(prefix) => stmt.starts_with(prefix),
        None => stmt == *u,
    })
}

/// Checks one tool's events: user statements present and `noise: false`, everything
/// else `noise: true` (or listed in NOT_NOISE). Returns the problems, printing a summary.
fn judge(tool: &str, events: &[Value], user: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let mut tool_stmts = 0;
    for e in events {
        let t = text(e);
        let short: String = t.chars().take(2000).collect::<String>().replace('\n', " ");
        if is_user(t, user) {
            if e["noise"] != false {
                problems.push(format!(
                    "[{tool}] user statement logged as noise: {short:?}"
                ));
            }
            continue;
        }
        tool_stmts += 1;
        if e["noise"] == true {
            continue;
        }
        match NOT_NOISE.iter().find(|(p, _)| t.starts_with(p)) {
            Some((_, why)) => println!("[{tool}] not noise, as listed ({why}): {short:?}"),
            None => problems.push(format!(
                "[{tool}] tool statement not noise (class {} command {} parse {}): {short:?}",
                e["class"], e["command"], e["parse"]
            )),
        }
    }
    for u in user {
        if !events.iter().any(|e| is_user(text(e), &[u])) {
            problems.push(format!("[{tool}] no event for the user statement {u:?}"));
        }
    }
    println!(
        "[{tool}] {} statement events: {tool_stmts} from the tool, {} problems",
        events.len(),
        problems.len()
    );
    problems
}

fn assert_no_problems(problems: Vec<String>, proxy: &Proxy) {
    assert!(
        problems.is_empty(),
        "{} noise problems:\n{}\n(proxy log tail:\n{})",
        problems.len(),
        problems.join("\n"),
        proxy
            .log()
            .lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn psql_backslash_commands_are_noise() {
    let proxy = start_proxy(true);
    psql_session(&proxy, &psql_commands());
    let events = wait_statements(&proxy, "the psql session's statements", |ev| {
        ev.iter().filter(|e| is_user(text(e), &PSQL_USER)).count() >= PSQL_USER.len()
    });
    let tool = events
        .iter()
        .filter(|e| !is_user(text(e), &PSQL_USER))
        .count();
    assert!(
        tool >= PSQL_META.len(),
        "only {tool} psql catalog queries logged"
    );
    assert_no_problems(judge("psql", &events, &PSQL_USER), &proxy);
}

#[test]
fn jdbc_metadata_is_noise() {
    let Some((javac, java, jar)) = java::java_tools_or_skip("jdbc noise test") else {
        return;
    };
    let classes = tempfile::tempdir().expect("temp dir");
    java::compile(&javac, &jar, classes.path(), "Meta.java");
    let proxy = start_proxy(true);
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/app?sslmode=disable",
        proxy.port
    );
    let (ok, out) = java::run_bounded(
        Command::new(java)
            .arg("-cp")
            .arg(format!("{}:{}", jar.display(), classes.path().display()))
            .args(["Meta", &url, "app_user", "app_pass"]),
        Duration::from_secs(60),
    );
    assert!(
        ok && out.lines().any(|l| l.trim() == "OK"),
        "Meta.java failed:\n{out}\nproxy log:\n{}",
        proxy.log()
    );
    let user = [
        "select * from app_table",
        "insert into app_table (v) values ('jdbc')",
    ];
    let events = wait_statements(&proxy, "the JDBC session's statements", |ev| {
        ev.iter().any(|e| text(e) == user[1])
    });
    let tool = events.iter().filter(|e| !is_user(text(e), &user)).count();
    assert!(tool >= 10, "only {tool} JDBC metadata queries logged");
    assert_no_problems(judge("jdbc", &events, &user), &proxy);
}

#[test]
fn pgbench_setup_is_noise() {
    let pg = pg();
    // Initialised directly: the data load is not what this test is about.
    let init = Command::new(pg.bin("pgbench"))
        .args(["-i", "-s", "1", "-q", "-h"])
        .arg(pg.socket_dir())
        .args(["-p", &pg.port().to_string(), "-U", "postgres", "app"])
        .output()
        .expect("pgbench -i");
    assert!(
        init.status.success(),
        "pgbench -i: {}",
        String::from_utf8_lossy(&init.stderr)
    );
    let proxy = start_proxy(true);
    let run = Command::new(pg.bin("pgbench"))
        .args(["-n", "-S", "-t", "5", "-c", "1", "-h", "127.0.0.1"])
        .args(["-p", &proxy.port.to_string(), "-U", "postgres", "app"])
        .env("PGAPPNAME", "noise_pgbench")
        // Trusted by the server; pgvigil asks every client for one all the same.
        .env("PGPASSWORD", "unused")
        .env("PGSSLMODE", "disable")
        .output()
        .expect("pgbench");
    assert!(
        run.status.success(),
        "pgbench: {}",
        String::from_utf8_lossy(&run.stderr)
    );
    // The scale lookup reads a user table; the benchmark's own statements are user work.
    let user = [
        "select count(*) from pgbench_branches",
        "SELECT abalance FROM pgbench_accounts WHERE aid = *",
    ];
    let events = wait_statements(&proxy, "pgbench's statements", |ev| {
        ev.iter().filter(|e| is_user(text(e), &user[1..])).count() >= 5
    });
    assert_no_problems(judge("pgbench", &events, &user), &proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_postgres_type_lookups_are_noise() {
    let proxy = tokio::task::spawn_blocking(|| start_proxy(true))
        .await
        .expect("proxy");
    let conninfo = proxy.conninfo(
        "app_user",
        "app_pass",
        "app",
        "sslmode=disable application_name=noise_tokio",
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", proxy.log()));
    let conn = tokio::spawn(conn);
    // An enum result column: the driver looks the type up in pg_type and pg_enum.
    let rows = client
        .query(
            "select 'happy'::mood as m, v from app_table where id = 1",
            &[],
        )
        .await
        .expect("enum query");
    assert_eq!(rows.len(), 1);
    let rows = client
        .query("select id, v from app_table where id = $1", &[&1i32])
        .await
        .expect("select");
    assert_eq!(rows.len(), 1);
    client
        .execute("insert into app_table (v) values ($1)", &[&"tokio"])
        .await
        .expect("insert");
    drop(client);
    let _ = conn.await;
    let user = [
        "select 'happy'::mood as m, v from app_table where id = 1",
        "select id, v from app_table where id = $1",
        "insert into app_table (v) values ($1)",
    ];
    let events = tokio::task::spawn_blocking(move || {
        let events = wait_statements(&proxy, "tokio-postgres's statements", |ev| {
            ev.iter().any(|e| text(e) == user[2])
        });
        let tool = events.iter().filter(|e| !is_user(text(e), &user)).count();
        assert!(tool >= 1, "no type lookup logged: {events:#?}");
        for e in &events {
            assert_eq!(e["protocol"], "extended", "{e}");
        }
        assert_no_problems(judge("tokio-postgres", &events, &user), &proxy);
    });
    events.await.expect("judge");
}

/// Sum of `pgvigil_statements_total` series carrying `label`.
fn statements_total(proxy: &Proxy, label: &str) -> f64 {
    proxy
        .metrics()
        .lines()
        .filter(|l| l.starts_with("pgvigil_statements_total{") && l.contains(label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[test]
fn noise_is_counted_not_written_by_default() {
    let proxy = start_proxy(false);
    psql_session(&proxy, &psql_commands());
    let events = wait_statements(&proxy, "the user statements", |ev| {
        ev.iter().filter(|e| is_user(text(e), &PSQL_USER)).count() >= PSQL_USER.len()
    });
    let noise: Vec<&str> = events
        .iter()
        .filter(|e| e["noise"] != false)
        .map(text)
        .collect();
    assert!(
        noise.is_empty(),
        "noise written with log_noise = false: {noise:#?}"
    );
    let other: Vec<&str> = events
        .iter()
        .map(text)
        .filter(|t| !is_user(t, &PSQL_USER))
        .collect();
    assert!(
        other.is_empty(),
        "statements other than the user's written: {other:#?}"
    );
    // Every backslash command sent at least one catalog query; all were counted.
    metric_sum_at_least(&proxy, "noise=\"true\"", PSQL_META.len() as f64);
    metric_sum_at_least(&proxy, "noise=\"false\"", PSQL_USER.len() as f64);
}

/// One entry of `tests/corpus/noise_tools.sql`: whether it is a tool's (noise), its
/// marker line, and its SQL.
struct Entry {
    noise: bool,
    marker: String,
    sql: String,
}

fn load_noise_corpus() -> Vec<Entry> {
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/noise_tools.sql");
    let text = std::fs::read_to_string(path).expect("read the noise corpus");
    let mut entries = Vec::new();
    for block in text.split("\n\n") {
        let mut lines = block.lines();
        let Some(marker) = lines.next() else { continue };
        let noise = if marker.starts_with("-- noise:") {
            true
        } else if marker.starts_with("-- user:") {
            false
        } else {
            continue; // the header
        };
        let sql = lines.collect::<Vec<_>>().join("\n");
        assert!(!sql.trim().is_empty(), "entry without SQL: {marker}");
        entries.push(Entry {
            noise,
            marker: marker.to_string(),
            sql,
        });
    }
    entries
}

/// The catalog SQL of GUI tools (pgAdmin, DBeaver, DataGrip) and drivers (psycopg,
/// asyncpg, SQLAlchemy, node-postgres) is noise; a human's statements between them,
/// including a failing one and a write through EXECUTE, are not.
#[test]
fn tool_and_driver_corpus_is_noise_and_user_statements_are_not() {
    let entries = load_noise_corpus();
    assert!(entries.iter().filter(|e| e.noise).count() >= 35);
    let proxy = start_proxy(true);
    // One session, one simple Query per entry; not ON_ERROR_STOP: one entry fails.
    let mut cmd = Command::new(pg().bin("psql"));
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("PG") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PGCONNECT_TIMEOUT", "20")
        .env("LC_ALL", "C")
        .args(["-X", "-A", "-t", "-q", "-d"])
        .arg(proxy.conninfo(
            "postgres",
            "unused",
            "app",
            "sslmode=disable application_name=noise_corpus",
        ));
    for e in &entries {
        cmd.args(["-c", &e.sql]);
    }
    let out = cmd.stdin(Stdio::null()).output().expect("run psql");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("ERROR")).collect();
    assert_eq!(errors, ["ERROR:  division by zero"], "{stderr}");
    let events = wait_statements(&proxy, "the corpus's events", |ev| {
        ev.iter()
            .filter(|e| e["application_name"] == "noise_corpus")
            .count()
            >= entries.len()
    });
    let mut problems = Vec::new();
    for entry in &entries {
        let Some(e) = events.iter().find(|e| {
            e["application_name"] == "noise_corpus"
                && e["statement"].as_str() == Some(entry.sql.as_str())
        }) else {
            problems.push(format!("no event for {}", entry.marker));
            continue;
        };
        if e["noise"] != entry.noise {
            problems.push(format!(
                "{}: noise {} (class {} command {} parse {})",
                entry.marker, e["noise"], e["class"], e["command"], e["parse"]
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

fn metric_sum_at_least(proxy: &Proxy, label: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while statements_total(proxy, label) < n {
        assert!(
            Instant::now() < deadline,
            "pgvigil_statements_total{{{label}}} below {n}:\n{}",
            proxy.metrics()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Two ways a read of a user table once passed as noise, so went unwritten by default
/// (both found from the `classify` fuzz target): with `standard_conforming_strings` off,
/// a `\'` inside a string made the classifier end the string early and read the table
/// name as a string; and a literal padded so that `max_parse_bytes` cuts the statement
/// right after it left only `select <literal>` to judge. Both must be written, as reads
/// that are not noise.
#[test]
fn noise_filter_evasions_are_written() {
    let proxy = start_proxy(false);
    let backslash = r"select 'a\'', count(*) from app_table --'";
    // `select '` is 8 bytes: the default max_parse_bytes (65536) cuts right after the
    // closing quote.
    let padded = format!("select '{}', count(*) from app_table", "x".repeat(65_527));
    psql_session(
        &proxy,
        &["set standard_conforming_strings = off", backslash, &padded],
    );
    let events = wait_statements(&proxy, "the two reads", |ev| {
        ev.iter().any(|e| text(e) == backslash)
            && ev.iter().any(|e| text(e).starts_with("select 'xxxx"))
    });
    let read = events
        .iter()
        .find(|e| text(e) == backslash)
        .expect("the backslash read");
    assert_eq!(read["noise"], false, "{read}");
    assert_eq!(read["class"], "READ", "{read}");
    assert!(
        read["objects"].to_string().contains("app_table"),
        "the table read is not seen: {read}"
    );
    let cut = events
        .iter()
        .find(|e| text(e).starts_with("select 'xxxx"))
        .expect("the padded read");
    assert_eq!(cut["noise"], false);
}

/// A simple Query longer than the proxy's 1 MiB capture, sent by tokio-postgres: the
/// capture ends right after `select 'x'`, whose unseen rest reads `app_table`. That last
/// statement seen must be written as a statement that is not noise (it was hidden as a
/// bare `select <literal>` before).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn statement_cut_by_the_capture_is_written() {
    let proxy = tokio::task::spawn_blocking(|| start_proxy(false))
        .await
        .expect("proxy");
    let conninfo = proxy.conninfo("app_user", "app_pass", "app", "sslmode=disable");
    let (client, conn) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", proxy.log()));
    let conn = tokio::spawn(conn);
    const CAPTURE: usize = 1024 * 1024;
    let tail = "; select 'x'";
    let pad = "y".repeat(CAPTURE - tail.len() - "select ''".len());
    let sql = format!("select '{pad}'{tail}, count(*) from app_table");
    assert_eq!(sql.find(", count").expect("cut point"), CAPTURE);
    let msgs = client.simple_query(&sql).await.expect("the long query");
    assert!(!msgs.is_empty());
    drop(client);
    let _ = conn.await;
    tokio::task::spawn_blocking(move || {
        let events = wait_statements(&proxy, "the cut statement", |ev| {
            ev.iter().any(|e| text(e) == "select 'x'")
        });
        let cut = events
            .iter()
            .find(|e| text(e) == "select 'x'")
            .expect("the cut statement");
        assert_eq!(cut["noise"], false, "{cut}");
    })
    .await
    .expect("judge");
}
