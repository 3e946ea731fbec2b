//! The PostgreSQL alert channel against real clusters: table creation with pgsense's
//! columns plus ours, one row per finding however often it is delivered, a server that
//! goes down and comes back, TLS with the cluster's CA, bad passwords, data errors, a
//! dropped table and a role without CREATE.
//!
//! One TLS cluster serves most tests, each in its own schema; the outage test has its
//! own cluster since it stops it.

mod common;
use common::*;

use pgvigil::config::{PostgresAlerts, Secret};
use pgvigil::demo::cluster::HbaAuth;
use pgvigil::demo::Cluster;
use pgvigil::detect::Finding;
use pgvigil::sinks::postgres::PostgresSink;
use pgvigil::sinks::Delivery;
use std::path::Path;
use std::sync::OnceLock;
use tokio_postgres::{Client, NoTls};

/// The file's shared cluster (TLS on, scram). Never dropped: the harness's watchdog
/// stops it at exit.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    tokio::task::block_in_place(|| PG.get_or_init(cluster))
}

/// Channel settings for `cluster`: app_user on the app database, the given schema.
fn settings(cluster: &Cluster, schema: &str, extra: &str) -> PostgresAlerts {
    let text = format!(
        "host = \"127.0.0.1\"\nport = {}\ndbname = \"app\"\nusername = \"app_user\"\n\
         password = \"app_pass\"\nschema = \"{schema}\"\ntable = \"findings\"\n\
         connect_timeout = \"5s\"\n{extra}",
        cluster.port()
    );
    toml::from_str(&text).unwrap_or_else(|e| panic!("settings {text}: {e}"))
}

fn new_sink(cfg: &PostgresAlerts) -> PostgresSink {
    PostgresSink::new(cfg, Path::new("/nonexistent")).expect("build the sink")
}

/// A complete finding with id `id`.
fn finding(id: &str) -> Finding {
    Finding {
        id: id.into(),
        ..pgvigil::detect::finding::test_support::sample()
    }
}

/// A superuser connection to the app database (trusted on 127.0.0.1).
async fn superuser(cluster: &Cluster) -> Client {
    let conninfo = format!(
        "host=127.0.0.1 port={} user=postgres dbname=app sslmode=disable connect_timeout=10",
        cluster.port()
    );
    let (client, conn) = tokio_postgres::connect(&conninfo, NoTls)
        .await
        .expect("superuser connection");
    tokio::spawn(conn);
    client
}

/// Rows per finding id in `schema.findings`, ordered by id.
async fn ids(client: &Client, schema: &str) -> Vec<(String, i64)> {
    client
        .query(
            &format!(
                "SELECT finding_id, count(*) FROM \"{schema}\".findings \
                 GROUP BY finding_id ORDER BY finding_id"
            ),
            &[],
        )
        .await
        .expect("count rows")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

fn assert_sent(verdict: Delivery, what: &str) {
    assert_eq!(verdict, Delivery::Sent, "{what}");
}

/// The reason of a Retry; panics on any other verdict.
fn retry_reason(verdict: Delivery, what: &str) -> String {
    match verdict {
        Delivery::Retry {
            after: None,
            reason,
        } => reason,
        other => panic!("{what}: want Retry, got {other:?}"),
    }
}

const COLUMNS: [&str; 28] = [
    // pgsense's, in its order.
    "id",
    "database",
    "rule_id",
    "description",
    "category",
    "severity",
    "schema_name",
    "table_name",
    "column_name",
    "masked_sample",
    "primary_key",
    "lsn",
    "detected_at",
    // Ours.
    "finding_id",
    "mitre_tactic",
    "mitre_technique",
    "user_name",
    "client_addr",
    "application_name",
    "session_id",
    "statement",
    "count",
    "window_text",
    "first_seen",
    "last_seen",
    "dedup_key",
    "action",
    "blocked_until",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creates_the_table_and_stores_each_finding_once() {
    let cluster = pg();
    let cfg = settings(cluster, "created", "");
    let mut sink = new_sink(&cfg);
    let first = finding("00000000000000000000000000000001");
    assert_sent(sink.deliver(&first).await, "first delivery");

    let su = superuser(cluster).await;
    let columns: Vec<(String, String, String)> = su
        .query(
            "SELECT column_name::text, data_type::text, is_nullable::text \
             FROM information_schema.columns \
             WHERE table_schema = 'created' AND table_name = 'findings' \
             ORDER BY ordinal_position",
            &[],
        )
        .await
        .expect("columns")
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    let names: Vec<&str> = columns.iter().map(|c| c.0.as_str()).collect();
    assert_eq!(names, COLUMNS);
    let column = |name: &str| {
        columns
            .iter()
            .find(|c| c.0 == name)
            .map(|c| (c.1.as_str(), c.2.as_str()))
            .expect("column")
    };
    assert_eq!(column("id"), ("bigint", "NO"));
    assert_eq!(column("primary_key"), ("jsonb", "NO"));
    assert_eq!(column("lsn"), ("bigint", "NO"));
    assert_eq!(column("masked_sample"), ("text", "NO"));
    assert_eq!(column("detected_at"), ("timestamp with time zone", "NO"));
    assert_eq!(column("finding_id"), ("text", "NO"));
    assert_eq!(column("dedup_key"), ("text", "NO"));
    assert_eq!(column("count"), ("bigint", "YES"));
    assert_eq!(column("blocked_until"), ("timestamp with time zone", "YES"));

    let row = su
        .query_one(
            "SELECT database, rule_id, description, category, severity, schema_name, \
                    table_name, column_name, masked_sample, primary_key::text AS pk, lsn, \
                    detected_at = '2026-11-23T10:00:00Z' AS detected_ok, \
                    mitre_tactic, mitre_technique, user_name, client_addr, application_name, \
                    session_id, statement, count, window_text, \
                    first_seen = '2026-11-23T09:58:00Z' AS first_ok, \
                    last_seen = '2026-11-23T10:00:00Z' AS last_ok, dedup_key, action, \
                    blocked_until = '2026-11-23T10:15:00Z' AS blocked_ok \
             FROM created.findings WHERE finding_id = $1",
            &[&first.id],
        )
        .await
        .expect("the row");
    let text = |name: &str| row.get::<_, Option<String>>(name);
    assert_eq!(text("database").as_deref(), Some("app"));
    assert_eq!(text("rule_id").as_deref(), Some("failed-logins"));
    assert_eq!(text("description"), Some(first.description.clone()));
    assert_eq!(text("category").as_deref(), Some("authentication"));
    assert_eq!(text("severity").as_deref(), Some("high"));
    assert_eq!(text("schema_name").as_deref(), Some(""));
    assert_eq!(text("table_name").as_deref(), Some(""));
    assert_eq!(text("column_name").as_deref(), Some(""));
    assert_eq!(text("masked_sample").as_deref(), Some(""));
    assert_eq!(text("pk").as_deref(), Some("{}"));
    assert_eq!(row.get::<_, i64>("lsn"), 0);
    assert!(row.get::<_, bool>("detected_ok"));
    assert_eq!(text("mitre_tactic").as_deref(), Some("TA0006"));
    assert_eq!(text("mitre_technique").as_deref(), Some("T1110"));
    assert_eq!(text("user_name").as_deref(), Some("alice"));
    assert_eq!(text("client_addr").as_deref(), Some("203.0.113.7"));
    assert_eq!(text("application_name").as_deref(), Some("psql"));
    assert_eq!(text("session_id").as_deref(), Some("0badcafe-12"));
    assert_eq!(text("statement"), None);
    assert_eq!(row.get::<_, Option<i64>>("count"), Some(6));
    assert_eq!(text("window_text").as_deref(), Some("10m"));
    assert!(row.get::<_, bool>("first_ok"));
    assert!(row.get::<_, bool>("last_ok"));
    assert_eq!(text("dedup_key"), Some(first.dedup_key.clone()));
    assert_eq!(text("action").as_deref(), Some("block"));
    assert!(row.get::<_, bool>("blocked_ok"));

    // A retried delivery of the same finding: sent, still one row.
    assert_sent(sink.deliver(&first).await, "repeated delivery");
    // The same from a new sink (a restart), which finds the table already there.
    assert_sent(
        new_sink(&cfg).deliver(&first).await,
        "delivery after a restart",
    );
    assert_eq!(ids(&su, "created").await, vec![(first.id.clone(), 1)]);

    // Another finding: a second row, with the fields the first one lacked.
    let mut second = finding("00000000000000000000000000000002");
    second.statement = Some("SELECT * FROM accounts WHERE id = ?".into());
    second.schema_name = Some("public".into());
    second.table_name = Some("accounts".into());
    second.database = None;
    second.blocked_until = None;
    second.action = "alert".into();
    assert_sent(sink.deliver(&second).await, "second finding");
    assert_eq!(
        ids(&su, "created").await,
        vec![(first.id.clone(), 1), (second.id.clone(), 1)]
    );
    let row = su
        .query_one(
            "SELECT statement, schema_name, table_name, database, blocked_until IS NULL \
             FROM created.findings WHERE finding_id = $1",
            &[&second.id],
        )
        .await
        .expect("second row");
    assert_eq!(
        row.get::<_, String>(0),
        "SELECT * FROM accounts WHERE id = ?"
    );
    assert_eq!(row.get::<_, String>(1), "public");
    assert_eq!(row.get::<_, String>(2), "accounts");
    assert_eq!(row.get::<_, String>(3), "");
    assert!(row.get::<_, bool>(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_while_the_server_is_down() {
    let cluster = tokio::task::block_in_place(|| cluster_with(false, HbaAuth::ScramSha256));
    let mut sink = new_sink(&settings(&cluster, "outage", ""));
    let before = finding("0000000000000000000000000000000a");
    let during = finding("0000000000000000000000000000000b");
    assert_sent(sink.deliver(&before).await, "before the outage");

    tokio::task::block_in_place(|| cluster.pause()).expect("pause the cluster");
    let reason = retry_reason(sink.deliver(&during).await, "server down");
    assert!(reason.contains("127.0.0.1"), "{reason}");
    // Still down: another attempt, another retry (no panic, no stuck connection).
    retry_reason(sink.deliver(&during).await, "server still down");

    tokio::task::block_in_place(|| cluster.resume()).expect("resume the cluster");
    assert_sent(sink.deliver(&during).await, "after the outage");
    assert_sent(sink.deliver(&before).await, "the first one again");

    let su = superuser(&cluster).await;
    assert_eq!(
        ids(&su, "outage").await,
        vec![(before.id.clone(), 1), (during.id.clone(), 1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_cluster_ca() {
    let cluster = pg();
    let su = superuser(cluster).await;
    // Its own role, so pg_stat_ssl shows only this sink's connection.
    su.batch_execute("GRANT CREATE ON DATABASE app TO pw_user")
        .await
        .expect("grant");
    let ca = cluster.ca_cert().expect("the cluster has TLS");
    let mut cfg = settings(
        cluster,
        "tls",
        &format!(
            "[tls]\nenabled = true\nca_file = {:?}\n",
            ca.display().to_string()
        ),
    );
    cfg.username = "pw_user".into();
    cfg.password = Some(Secret::Inline("pw_pass".into()));
    let mut sink = new_sink(&cfg);
    let f = finding("000000000000000000000000000000c1");
    assert_sent(sink.deliver(&f).await, "over TLS");
    let ssl: Vec<bool> = su
        .query(
            "SELECT s.ssl FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.usename = 'pw_user' AND a.application_name = 'pgvigil-alerts'",
            &[],
        )
        .await
        .expect("pg_stat_ssl")
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(ssl, vec![true], "the sink's one connection uses TLS");
    assert_eq!(ids(&su, "tls").await, vec![(f.id.clone(), 1)]);

    // Without the CA the system roots do not know the cluster's: retry, not sent.
    cfg.tls.ca_file = None;
    let mut unverified = new_sink(&cfg);
    let g = finding("000000000000000000000000000000c2");
    retry_reason(unverified.deliver(&g).await, "unknown issuer");
    assert_eq!(ids(&su, "tls").await, vec![(f.id.clone(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_is_a_retry_without_the_password() {
    let cluster = pg();
    let secret = "Wr0ng-Passw0rd-4711";
    let mut cfg = settings(cluster, "badpw", "");
    cfg.password = Some(Secret::Inline(secret.into()));
    let mut sink = new_sink(&cfg);
    let shown = format!("{sink:?}");
    assert!(!shown.contains(secret), "{shown}");
    let reason = retry_reason(
        sink.deliver(&finding("000000000000000000000000000000d1"))
            .await,
        "wrong password",
    );
    assert!(reason.contains("28P01"), "{reason}");
    assert!(!reason.contains(secret), "{reason}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_is_rejected_and_the_connection_kept() {
    let cluster = pg();
    let mut sink = new_sink(&settings(cluster, "baddata", ""));
    let mut bad = finding("000000000000000000000000000000e1");
    bad.ts = "not a time".into();
    bad.statement = Some("SELECT 'statement-text-marker'".into());
    match sink.deliver(&bad).await {
        Delivery::Reject { reason } => {
            assert!(reason.contains("22007"), "{reason}");
            assert!(!reason.contains("statement-text-marker"), "{reason}");
        }
        other => panic!("want Reject, got {other:?}"),
    }
    let good = finding("000000000000000000000000000000e2");
    assert_sent(sink.deliver(&good).await, "after a rejected one");
    let su = superuser(cluster).await;
    assert_eq!(ids(&su, "baddata").await, vec![(good.id.clone(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dropped_table_is_created_again() {
    let cluster = pg();
    let mut sink = new_sink(&settings(cluster, "dropped", ""));
    assert_sent(
        sink.deliver(&finding("000000000000000000000000000000f1"))
            .await,
        "first",
    );
    let su = superuser(cluster).await;
    su.batch_execute("DROP SCHEMA dropped CASCADE")
        .await
        .expect("drop the schema");
    let next = finding("000000000000000000000000000000f2");
    let reason = retry_reason(sink.deliver(&next).await, "table gone");
    assert!(
        reason.contains("42P01") || reason.contains("3F000"),
        "{reason}"
    );
    assert_sent(sink.deliver(&next).await, "after re-creating");
    assert_eq!(ids(&su, "dropped").await, vec![(next.id.clone(), 1)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_existing_table_needs_no_create_privilege() {
    let cluster = pg();
    let owner_cfg = settings(cluster, "granted", "");
    let first = finding("00000000000000000000000000000101");
    assert_sent(new_sink(&owner_cfg).deliver(&first).await, "as the owner");

    // scram_user may not create anything in the app database.
    let mut cfg = owner_cfg.clone();
    cfg.username = "scram_user".into();
    cfg.password = Some(Secret::Inline("scram_pass".into()));
    let mut limited = new_sink(&cfg);
    let second = finding("00000000000000000000000000000102");
    let reason = retry_reason(limited.deliver(&second).await, "no privileges yet");
    assert!(reason.contains("42501"), "{reason}");

    let su = superuser(cluster).await;
    su.batch_execute(
        "GRANT USAGE ON SCHEMA granted TO scram_user; \
         GRANT INSERT ON granted.findings TO scram_user; \
         GRANT USAGE ON SEQUENCE granted.findings_id_seq TO scram_user;",
    )
    .await
    .expect("grant");
    // ON CONFLICT (finding_id) reads the arbiter column: INSERT alone is not enough.
    let reason = retry_reason(limited.deliver(&second).await, "INSERT only");
    assert!(reason.contains("42501"), "{reason}");
    su.batch_execute("GRANT SELECT (finding_id) ON granted.findings TO scram_user")
        .await
        .expect("grant select");
    assert_sent(
        limited.deliver(&second).await,
        "with INSERT and SELECT (finding_id)",
    );
    assert_sent(limited.deliver(&second).await, "again");
    assert_eq!(
        ids(&su, "granted").await,
        vec![(first.id.clone(), 1), (second.id.clone(), 1)]
    );
}
