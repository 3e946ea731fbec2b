//! `[audit] on_write_error`, on a full disk (a small tmpfs): with `refuse`, statements are
//! refused with 58030 and never reach the server, new sessions are refused, and all resumes
//! once the log can be written again; with `continue`, statements go on and the loss is
//! counted. In both, no line of the log is torn.

mod common;

use common::*;
use std::path::Path;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::NoTls;

fn pg() -> &'static pgvigil::demo::cluster::Cluster {
    static PG: OnceLock<pgvigil::demo::cluster::Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

const FAILED: &str = "pgvigil_audit_events_total{result=\"failed\"}";
const WRITTEN: &str = "pgvigil_audit_events_total{result=\"written\"}";
const REFUSED: &str = "pgvigil_statements_denied_total{denied_by=\"pgvigil:audit_log_unwritable\"}";

fn direct(sql: &str) -> String {
    pg().psql("postgres", "app", sql)
        .unwrap_or_else(|e| panic!("direct {sql}: {e}"))
        .trim()
        .to_string()
}

/// Every complete line parses as JSON; returns how many there are.
fn whole_lines(path: &Path) -> usize {
    let text = std::fs::read_to_string(path).expect("audit log");
    let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
    complete
        .lines()
        .enumerate()
        .inspect(|(i, line)| {
            serde_json::from_str::<serde_json::Value>(line)
                .unwrap_or_else(|e| panic!("line {} is not an event ({e}): {line:?}", i + 1));
        })
        .count()
}

fn start(disk: &SmallDisk, mode: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            audit_log: disk.dir.path().join("audit.jsonl").display().to_string(),
            audit: format!("on_write_error = \"{mode}\""),
            ..ProxyOptions::default()
        },
    )
}

fn conninfo(proxy: &Proxy, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=app_user password=app_pass dbname=app sslmode=disable \
         application_name={app} connect_timeout=20",
        proxy.port
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn refuse_stops_statements_and_sessions_until_the_log_can_be_written() {
    direct("DROP TABLE IF EXISTS wr_refuse; CREATE TABLE wr_refuse (id int); GRANT ALL ON wr_refuse TO PUBLIC;");
    let disk = SmallDisk::mount("256k");
    let proxy = start(&disk, "refuse");
    let (c, conn) = tokio_postgres::connect(&conninfo(&proxy, "wr_refuse"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    c.simple_query("INSERT INTO wr_refuse VALUES (0)")
        .await
        .unwrap();
    disk.fill();
    // The first statement whose event cannot be written shows the writer the disk is
    // full; from then on statements are refused before they reach the server.
    let mut refused = None;
    for i in 1..200 {
        match c
            .simple_query(&format!("INSERT INTO wr_refuse VALUES ({i})"))
            .await
        {
            Ok(_) => {}
            Err(e) => {
                refused = Some(e);
                break;
            }
        }
    }
    let e = refused.expect("no statement was refused on a full disk");
    let db = e.as_db_error().expect("a server-style error");
    assert_eq!(db.code().code(), "58030", "{db:?}");
    assert!(
        db.message().contains("audit log cannot be written"),
        "{db:?}"
    );
    let before: u32 = direct("SELECT count(*) FROM wr_refuse").parse().unwrap();
    for i in 1000..1010 {
        let e = c
            .simple_query(&format!("INSERT INTO wr_refuse VALUES ({i})"))
            .await
            .unwrap_err();
        assert_eq!(e.as_db_error().map(|d| d.code().code()), Some("58030"));
        // Extended protocol too.
        let e = c
            .execute("INSERT INTO wr_refuse VALUES ($1)", &[&i])
            .await
            .unwrap_err();
        assert_eq!(
            e.as_db_error().map(|d| d.code().code()),
            Some("58030"),
            "{e}"
        );
    }
    assert_eq!(
        direct("SELECT count(*) FROM wr_refuse")
            .parse::<u32>()
            .unwrap(),
        before,
        "a refused statement reached the server"
    );
    // New sessions are refused.
    let e = tokio_postgres::connect(&conninfo(&proxy, "wr_new"), NoTls)
        .await
        .err()
        .expect("a new session was let in");
    assert_eq!(
        e.as_db_error().map(|d| d.code().code()),
        Some("58030"),
        "{e}"
    );
    assert!(proxy.metric(REFUSED) >= 20.0, "{}", proxy.metrics());
    assert!(proxy.metric(FAILED) > 0.0);
    // Space returns: the next attempt writes its event and things resume.
    disk.free();
    let mut resumed = false;
    for i in 2000..2010 {
        if c.simple_query(&format!("INSERT INTO wr_refuse VALUES ({i})"))
            .await
            .is_ok()
        {
            resumed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(resumed, "statements still refused after the disk was freed");
    let (c2, conn2) = tokio_postgres::connect(&conninfo(&proxy, "wr_new2"), NoTls)
        .await
        .expect("a new session after the disk was freed");
    tokio::spawn(conn2);
    c2.simple_query("SELECT 1").await.unwrap();
    let log = disk.dir.path().join("audit.jsonl");
    let path = log.clone();
    let p = &proxy;
    wait_until("written counter = lines", Duration::from_secs(10), || {
        p.metric(WRITTEN) == whole_lines(&path) as f64
    });
    // Every line written is whole; the refusals made while the disk was full were
    // counted as failed events, like any event that could not be written.
    whole_lines(&log);
}

#[tokio::test(flavor = "multi_thread")]
async fn continue_lets_statements_through_and_counts_the_loss() {
    direct("DROP TABLE IF EXISTS wr_continue; CREATE TABLE wr_continue (id int); GRANT ALL ON wr_continue TO PUBLIC;");
    let disk = SmallDisk::mount("256k");
    let proxy = start(&disk, "continue");
    let (c, conn) = tokio_postgres::connect(&conninfo(&proxy, "wr_continue"), NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    disk.fill();
    for i in 0..100 {
        c.simple_query(&format!("INSERT INTO wr_continue VALUES ({i})"))
            .await
            .expect("continue: statements go on");
    }
    assert_eq!(direct("SELECT count(*) FROM wr_continue"), "100");
    let p = &proxy;
    wait_until("failed writes counted", Duration::from_secs(10), || {
        p.metric(FAILED) > 0.0
    });
    assert_eq!(proxy.metric(REFUSED), 0.0);
    whole_lines(&disk.dir.path().join("audit.jsonl"));
    disk.free();
}
