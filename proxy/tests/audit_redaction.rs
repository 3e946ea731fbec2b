//! Secrets never reach the audit log or the proxy's own log: every way a password travels
//! in SQL (CREATE/ALTER ROLE and USER in their spellings, psql's `\password` SCRAM
//! verifier, postgres_fdw user mappings, dblink connection strings, a statement that does
//! not parse, a password in the second statement of a multi-statement Query, the
//! extended protocol) goes through the proxy, then the audit log file (JSON and pgAudit
//! formats) and the proxy's stderr are searched byte for byte for each secret. The
//! statements themselves must still be logged. With `redact = "literals"` every literal
//! is logged as `?`. `pgvigil classify` redacts the same way.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio_postgres::{Client, NoTls};

/// The file's cluster, with postgres_fdw and dblink. Never dropped: the watchdog stops it.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let pg = cluster();
        pg.psql(
            "postgres",
            "app",
            "CREATE EXTENSION postgres_fdw;\n\
             CREATE EXTENSION dblink;\n\
             CREATE TABLE app_table (id int, v text);\n\
             GRANT ALL ON app_table TO PUBLIC;\n",
        )
        .unwrap_or_else(|e| panic!("setup: {e}"));
        pg
    })
}

/// A salt, StoredKey and ServerKey of a SCRAM verifier (what psql's `\password` sends).
const SCRAM_SALT: &str = "ZGVmZ2hpamtsbW5vcHFycw==";
const SCRAM_STORED: &str = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
const SCRAM_SERVER: &str = "yMnKy8zNzs/Q0dLT1NXW19jZ2tvc3d7f4OHi4+Tl5uc=";

/// One way of sending a password.
struct Case {
    sql: String,
    /// The secrets in it.
    secrets: Vec<&'static str>,
    /// Text the logged (redacted) statement must still contain.
    marker: &'static str,
    /// Extended protocol (a prepared statement) rather than a simple Query.
    extended: bool,
    /// SQLSTATE expected on the first run (None: success).
    error: Option<&'static str>,
}

fn case(
    sql: &str,
    secret: &'static str,
    marker: &'static str,
    error: Option<&'static str>,
) -> Case {
    Case {
        sql: sql.to_string(),
        secrets: vec![secret],
        marker,
        extended: false,
        error,
    }
}

fn cases() -> Vec<Case> {
    let mut c = vec![
        case("CREATE ROLE red_a LOGIN PASSWORD 'Sekret-create-role-1'", "Sekret-create-role-1", "CREATE ROLE red_a", None),
        case(
            "CREATE USER red_b WITH ENCRYPTED PASSWORD 'Sekret-create-user-2'",
            "Sekret-create-user-2",
            "CREATE USER red_b",
            None,
        ),
        case("ALTER USER red_b PASSWORD 'Sekret-alter-user-3'", "Sekret-alter-user-3", "ALTER USER red_b", None),
        case(
            "ALTER ROLE red_a WITH LOGIN ENCRYPTED PASSWORD 'Sekret-alter-role-4' VALID UNTIL 'infinity'",
            "Sekret-alter-role-4",
            "ALTER ROLE red_a",
            None,
        ),
        case("ALTER ROLE red_a PASSWORD E'Sekret-estring-5\\'x'", "Sekret-estring-5", "ALTER ROLE red_a", None),
        case("ALTER ROLE red_a PASSWORD $pw$Sekret-dollar-6$pw$", "Sekret-dollar-6", "ALTER ROLE red_a", None),
        case(
            "/* rotate */ alter   role red_a\n  with password 'Sekret-comment-7'",
            "Sekret-comment-7",
            "red_a",
            None,
        ),
        case(
            "CREATE ROLE red_c PASSWORD 'Sekret-unparsable-8' LOGIN (",
            "Sekret-unparsable-8",
            "red_c",
            Some("42601"),
        ),
        case(
            "ALTER ROLE no_such_role PASSWORD 'Sekret-missing-role-9'",
            "Sekret-missing-role-9",
            "no_such_role",
            Some("42704"),
        ),
        case(
            "select 1; ALTER ROLE red_b PASSWORD 'Sekret-multi-10'; select 2",
            "Sekret-multi-10",
            "ALTER ROLE red_b",
            None,
        ),
        case(
            "CREATE SERVER red_srv FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'app', port '1')",
            "",
            "CREATE SERVER red_srv",
            None,
        ),
        case(
            "CREATE USER MAPPING FOR red_a SERVER red_srv OPTIONS (user 'red_a', password 'Sekret-mapping-12')",
            "Sekret-mapping-12",
            "CREATE USER MAPPING",
            None,
        ),
        case(
            "ALTER USER MAPPING FOR red_a SERVER red_srv OPTIONS (SET password 'Sekret-mapping-13')",
            "Sekret-mapping-13",
            "ALTER USER MAPPING",
            None,
        ),
        case(
            "SELECT dblink_connect('red_conn', 'host=127.0.0.1 port=1 dbname=app user=red_a password=Sekret-dblink-14')",
            "Sekret-dblink-14",
            "dblink_connect",
            Some("08001"),
        ),
        case(
            "SELECT * FROM dblink('hostaddr=127.0.0.1 port=1 user=red_a password=Sekret-dblink-15 dbname=app', 'select 1') AS t(x int)",
            "Sekret-dblink-15",
            "dblink(",
            Some("08001"),
        ),
    ];
    c.push(Case {
        sql: format!("ALTER USER red_a PASSWORD 'SCRAM-SHA-256$4096:{SCRAM_SALT}${SCRAM_STORED}:{SCRAM_SERVER}'"),
        secrets: vec![SCRAM_SALT, SCRAM_STORED, SCRAM_SERVER],
        marker: "ALTER USER red_a",
        extended: false,
        error: None,
    });
    c.push(Case {
        sql: "ALTER ROLE red_b PASSWORD 'Sekret-extended-17'".into(),
        secrets: vec!["Sekret-extended-17"],
        marker: "ALTER ROLE red_b",
        extended: true,
        error: None,
    });
    c.push(Case {
        sql: "ALTER USER red_b WITH PASSWORD 'Sekret-extended-18' CONNECTION LIMIT 5".into(),
        secrets: vec!["Sekret-extended-18"],
        marker: "ALTER USER red_b",
        extended: true,
        error: None,
    });
    c
}

async fn connect(proxy: &Proxy, app: &str) -> Client {
    let conninfo = proxy.conninfo(
        "postgres",
        "unused",
        "app",
        &format!("sslmode=disable application_name={app}"),
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", proxy.log()));
    tokio::spawn(conn);
    client
}

/// Runs every case on one session; returns each one's SQLSTATE (None: success).
async fn run_cases(client: &Client, cases: &[Case]) -> Vec<Option<String>> {
    let mut out = Vec::new();
    for c in cases {
        let r = if c.extended {
            client.execute(c.sql.as_str(), &[]).await.map(|_| ())
        } else {
            client.simple_query(&c.sql).await.map(|_| ())
        };
        out.push(r.err().map(|e| {
            e.code()
                .map(|s| s.code().to_string())
                .unwrap_or_else(|| format!("{e}"))
        }));
    }
    out
}

fn statement_events(proxy: &Proxy) -> Vec<Value> {
    proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "statement")
        .collect()
}

/// Waits (bounded) until the audit log's raw text satisfies `pred`.
fn wait_log(proxy: &Proxy, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let raw = String::from_utf8_lossy(&std::fs::read(&proxy.audit_path).unwrap_or_default())
            .into_owned();
        if pred(&raw) {
            return raw;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; audit log:\n{raw}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Every secret that appears in `haystack`, with where.
fn leaks(cases: &[Case], haystack: &[u8], place: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(haystack);
    cases
        .iter()
        .flat_map(|c| c.secrets.iter().map(move |s| (c, *s)))
        .filter(|(_, s)| !s.is_empty() && text.contains(s))
        .map(|(c, s)| {
            let line = text.lines().find(|l| l.contains(s)).unwrap_or("");
            format!("{place}: secret {s:?} of {:?} leaked in: {line}", c.sql)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_logs() {
    let cases = cases();
    let proxy = tokio::task::spawn_blocking(|| Proxy::start(pg(), ProxyOptions::default()))
        .await
        .expect("proxy");
    let client = connect(&proxy, "redaction").await;
    let got = run_cases(&client, &cases).await;
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(g.as_deref(), c.error, "{:?}", c.sql);
    }
    drop(client);
    // The session has ended: its last statement events are written.
    let log = tokio::task::block_in_place(|| {
        wait_log(&proxy, "every case's statement event", |raw| {
            raw.contains("\"session_end\"")
                && raw.matches("\"type\":\"statement\"").count() >= cases.len()
        })
    });
    let events = statement_events(&proxy);
    let mut problems = leaks(&cases, log.as_bytes(), "audit log");
    problems.extend(leaks(&cases, proxy.log().as_bytes(), "proxy stderr"));
    // Still audited: each case has an event whose (redacted) text keeps its marker.
    for c in &cases {
        if !events.iter().any(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains(c.marker))
        }) {
            problems.push(format!(
                "no statement event containing {:?} for {:?}",
                c.marker, c.sql
            ));
        }
    }
    // The failures are logged as failures, with the server's SQLSTATE.
    for c in cases.iter().filter(|c| c.error.is_some()) {
        let ok = events.iter().any(|e| {
            e["statement"]
                .as_str()
                .is_some_and(|s| s.contains(c.marker))
                && e["outcome"] == "error"
                && e["sqlstate"] == c.error.unwrap_or_default()
        });
        if !ok {
            problems.push(format!("no error event with {:?} for {:?}", c.error, c.sql));
        }
    }
    assert!(
        problems.is_empty(),
        "{}\n\nevents:\n{events:#?}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_the_pgaudit_format_log() {
    let proxy = tokio::task::spawn_blocking(|| {
        Proxy::start(
            pg(),
            ProxyOptions {
                audit: "format = \"pgaudit\"\n".into(),
                ..Default::default()
            },
        )
    })
    .await
    .expect("proxy");
    // The same cases, with names of their own (the cluster's roles are shared).
    let mut cases = cases();
    for c in &mut cases {
        c.sql = c.sql.replace("red_", "redp_");
    }
    let client = connect(&proxy, "redaction_pgaudit").await;
    let got = run_cases(&client, &cases).await;
    for (c, g) in cases.iter().zip(&got) {
        assert_eq!(g.as_deref(), c.error, "{:?}", c.sql);
    }
    drop(client);
    let log = tokio::task::block_in_place(|| {
        wait_log(&proxy, "the pgAudit-format lines", |raw| {
            raw.contains("session_end") && raw.matches("AUDIT: SESSION").count() >= cases.len()
        })
    });
    let mut problems = leaks(&cases, log.as_bytes(), "pgaudit-format log");
    problems.extend(leaks(&cases, proxy.log().as_bytes(), "proxy stderr"));
    assert!(
        problems.is_empty(),
        "{}\n\nlog:\n{log}",
        problems.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn literals_are_redacted_on_request() {
    let proxy = tokio::task::spawn_blocking(|| {
        Proxy::start(
            pg(),
            ProxyOptions {
                audit: "redact = \"literals\"\n".into(),
                ..Default::default()
            },
        )
    })
    .await
    .expect("proxy");
    let client = connect(&proxy, "redaction_literals").await;
    client
        .simple_query("select * from app_table where v = 'Lit-hello' and id = 4242; insert into app_table values (7777, 'Lit-world')")
        .await
        .expect("simple");
    client
        .query(
            "select * from app_table where v = $1 or v = 'Lit-extended'",
            &[&"Lit-param"],
        )
        .await
        .expect("extended");
    client
        .simple_query("ALTER ROLE app_user PASSWORD 'Sekret-literal-mode' ")
        .await
        .map(|_| ())
        .unwrap_or_else(|e| panic!("alter role: {e}"));
    client
        .simple_query("ALTER ROLE app_user PASSWORD 'app_pass'")
        .await
        .expect("restore");
    drop(client);
    let log = tokio::task::block_in_place(|| {
        wait_log(&proxy, "the statement events", |raw| {
            raw.contains("\"session_end\"") && raw.matches("\"type\":\"statement\"").count() >= 5
        })
    });
    for secret in [
        "Lit-hello",
        "4242",
        "7777",
        "Lit-world",
        "Lit-extended",
        "Lit-param",
        "Sekret-literal-mode",
        "app_pass",
    ] {
        assert!(!log.contains(secret), "{secret:?} in the audit log:\n{log}");
    }
    let texts: Vec<String> = statement_events(&proxy)
        .iter()
        .filter_map(|e| e["statement"].as_str().map(String::from))
        .collect();
    let want = [
        "select * from app_table where v = ? and id = ?",
        "insert into app_table values (?, ?)",
        "select * from app_table where v = $1 or v = ?",
    ];
    for w in want {
        assert!(
            texts.iter().any(|t| t == w),
            "no statement logged as {w:?}: {texts:#?}"
        );
    }
}

/// With `log_parameters = true`, Bind parameters carrying secrets are redacted as the
/// same text inline would be: a dblink connection string or URI with a password (sent by
/// tokio-postgres in binary format, which would otherwise be logged as hex: still the
/// password), JSON with a password key, and a parameter bound where a password goes
/// (`set_config('app.password', $1, ...)`). Other parameters are logged as sent, and with
/// `redact = "literals"` none is.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_parameters_carrying_passwords_are_redacted() {
    for audit in [
        "log_parameters = true\n",
        "log_parameters = true\nredact = \"literals\"\n",
    ] {
        let literals = audit.contains("literals");
        let proxy = tokio::task::spawn_blocking(move || {
            Proxy::start(
                pg(),
                ProxyOptions {
                    audit: audit.into(),
                    ..Default::default()
                },
            )
        })
        .await
        .expect("proxy");
        let client = connect(&proxy, "redaction_bind").await;
        let conninfo = "hostaddr=127.0.0.1 port=1 user=x password=Bind-Secret-1 dbname=app";
        let err = client
            .query("select dblink_connect($1)", &[&conninfo])
            .await
            .expect_err("nothing listens on port 1");
        assert_eq!(err.code().map(|c| c.code()), Some("08001"), "{err}");
        let uri = "postgresql://x:Bind-Secret-2@127.0.0.1:1/app";
        let json = serde_json::json!({"user": "x", "password": "Bind-Secret-3"});
        let rows = client
            .query(
                "select $1::text, $2::text::jsonb, set_config('app.password', $3, false), $4::text",
                &[&uri, &json.to_string(), &"Bind-Secret-4", &"Bind-visible-5"],
            )
            .await
            .expect("query");
        assert_eq!(rows[0].get::<_, String>(2), "Bind-Secret-4");
        drop(client);
        let log = tokio::task::block_in_place(|| {
            wait_log(&proxy, "the statement events", |raw| {
                raw.contains("\"session_end\"")
                    && raw.contains("set_config")
                    && raw.contains("dblink_connect")
            })
        });
        for secret in [
            "Bind-Secret-1",
            "Bind-Secret-2",
            "Bind-Secret-3",
            "Bind-Secret-4",
        ] {
            assert!(!log.contains(secret), "{secret:?} in the audit log:\n{log}");
        }
        let ev = statement_events(&proxy);
        let params = |needle: &str| -> Vec<String> {
            let e = ev
                .iter()
                .find(|e| e["statement"].as_str().is_some_and(|s| s.contains(needle)))
                .unwrap_or_else(|| panic!("no event for {needle}: {ev:#?}"));
            e["parameters"]
                .as_array()
                .unwrap_or_else(|| panic!("no parameters: {e}"))
                .iter()
                .map(|p| p.as_str().unwrap_or_default().to_string())
                .collect()
        };
        let p = params("set_config");
        if literals {
            assert!(p.iter().all(|v| v == "?"), "{p:?}");
            continue;
        }
        assert_eq!(
            params("dblink_connect"),
            vec![conninfo.replace("Bind-Secret-1", "***")]
        );
        assert_eq!(p[0], uri.replace("Bind-Secret-2", "***"));
        assert!(p[1].contains("\"user\"") && p[1].contains("***"), "{p:?}");
        assert_eq!(p[2], "***");
        // tokio-postgres sends text in binary format: logged as hex, unaltered.
        let hex: String = "Bind-visible-5"
            .bytes()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(p[3], format!("\\x{hex}"), "a plain parameter altered");
    }
}

#[test]
fn classify_cli_redacts_passwords() {
    // One run per case: the unparsable case's open parenthesis would swallow what follows
    // (statements split as psql splits them).
    let cases = cases();
    let mut problems = Vec::new();
    for c in &cases {
        let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
            .args(["classify", &c.sql])
            .env("PGVIGIL_LOG", "debug")
            .stdin(Stdio::null())
            .output()
            .expect("pgvigil classify");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !stdout.contains(c.marker) {
            problems.push(format!(
                "classify {:?}: no statement containing {:?}: {stdout}",
                c.sql, c.marker
            ));
        }
        problems.extend(leaks(&cases, &out.stdout, "classify stdout"));
        problems.extend(leaks(&cases, &out.stderr, "classify stderr"));
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
