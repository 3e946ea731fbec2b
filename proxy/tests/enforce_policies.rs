//! Enforcement through the real proxy: deny rules refuse statements before the server sees
//! them, with PostgreSQL's own error semantics (psql, tokio-postgres simple, extended and
//! pipelined), the server-side effect checked directly (the rows are still there); read-only
//! access policies hold whatever the user types; access policies refuse logins by
//! database and by network (PROXY header); CIDR in rules.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use std::io::Write;
use std::sync::OnceLock;
use tokio_postgres::{Client, NoTls};

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Runs SQL on the cluster directly as the superuser (not through the proxy).
fn direct(sql: &str) -> String {
    pg().psql("postgres", "app", sql)
        .unwrap_or_else(|e| panic!("direct {sql}: {e}"))
        .trim()
        .to_string()
}

/// A table `name` with `n` rows, owned by app_user, readable by everyone.
fn table(name: &str, n: u32) {
    direct(&format!(
        "DROP TABLE IF EXISTS {name}; CREATE TABLE {name} (id int); \
         INSERT INTO {name} SELECT generate_series(1, {n}); \
         ALTER TABLE {name} OWNER TO app_user; GRANT ALL ON {name} TO PUBLIC;"
    ));
}

fn rows(name: &str) -> u32 {
    direct(&format!("SELECT count(*) FROM {name}"))
        .parse()
        .unwrap()
}

async fn start(extra: &str) -> Proxy {
    let extra = extra.to_string();
    tokio::task::spawn_blocking(move || {
        Proxy::start(
            pg(),
            ProxyOptions {
                extra,
                ..ProxyOptions::default()
            },
        )
    })
    .await
    .unwrap()
}

async fn connect_as(proxy: &Proxy, user: &str, password: &str, app: &str) -> Client {
    let info = format!(
        "host=127.0.0.1 port={} user={user} password={password} dbname=app sslmode=disable \
         application_name={app} connect_timeout=20",
        proxy.port
    );
    let (client, conn) = tokio_postgres::connect(&info, NoTls)
        .await
        .unwrap_or_else(|e| panic!("connect: {e}\n{}", proxy.log()));
    tokio::spawn(conn);
    client
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_string())
        .unwrap_or_else(|| format!("not a server error: {e}"))
}

fn message(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.message().to_string())
        .unwrap_or_default()
}

const DENY_DELETE: &str = "[rules]\nenable = [\"deny-unbounded-write\"]\n";

#[tokio::test]
async fn simple_protocol_denials_keep_postgres_semantics() {
    table("deny_simple", 5);
    let proxy = start(DENY_DELETE).await;
    let c = connect_as(&proxy, "app_user", "app_pass", "deny_simple").await;
    // Outside a block: the error, then the session is idle and usable.
    let e = c.simple_query("DELETE FROM deny_simple").await.unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    assert!(
        message(&e).contains("denied by rule \"deny-unbounded-write\""),
        "{}",
        message(&e)
    );
    assert_eq!(rows("deny_simple"), 5);
    c.simple_query("DELETE FROM deny_simple WHERE id = 1")
        .await
        .expect("a DELETE with WHERE goes through");
    assert_eq!(rows("deny_simple"), 4);
    // Inside a block: the block is aborted as PostgreSQL aborts it.
    c.simple_query("BEGIN").await.unwrap();
    c.simple_query("INSERT INTO deny_simple VALUES (100)")
        .await
        .unwrap();
    let e = c
        .simple_query("UPDATE deny_simple SET id = 0")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    let e = c.simple_query("SELECT 1").await.unwrap_err();
    assert_eq!(
        code(&e),
        "25P02",
        "the server must know the block failed: {e}"
    );
    c.simple_query("ROLLBACK").await.unwrap();
    assert_eq!(rows("deny_simple"), 4, "the INSERT was rolled back");
    // A multi-statement query is one implicit transaction: denied as a whole.
    let e = c
        .simple_query("INSERT INTO deny_simple VALUES (200); DELETE FROM deny_simple; SELECT 1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    assert_eq!(
        direct("SELECT count(*) FROM deny_simple WHERE id = 200"),
        "0"
    );
    assert_eq!(rows("deny_simple"), 4);
    c.simple_query("SELECT count(*) FROM deny_simple")
        .await
        .expect("the session is usable after the denial");
    // Audited statement by statement, with the rule, and a finding.
    let ev = proxy.wait_event("denied multi-statement DELETE", |e| {
        e["type"] == "statement"
            && e["outcome"] == "denied"
            && e["command"] == "DELETE"
            && e["application_name"] == "deny_simple"
            && e["statement"]
                .as_str()
                .is_some_and(|s| s.contains("deny_simple;") || s.ends_with("deny_simple"))
            && e["denied_by"] == "deny-unbounded-write"
    });
    assert_eq!(ev["sqlstate"], "42501", "{ev}");
    proxy.wait_event("the INSERT of the same message, denied with it", |e| {
        e["outcome"] == "denied"
            && e["command"] == "INSERT"
            && e["application_name"] == "deny_simple"
    });
    let f = proxy.wait_finding("deny-unbounded-write", |_| true);
    assert_eq!(f["action"], "deny", "{f}");
    // psql too: the error reaches it, ON_ERROR_STOP stops it, the rows stay.
    let (ok, _, err) = psql(
        &proxy.conninfo("app_user", "app_pass", "app", "sslmode=disable"),
        "DELETE FROM deny_simple",
    );
    assert!(!ok && err.contains("denied by rule"), "{err}");
    assert_eq!(rows("deny_simple"), 4);
}

#[tokio::test]
async fn extended_protocol_and_pipelines_stay_in_step() {
    table("deny_ext", 3);
    let proxy = start(DENY_DELETE).await;
    let c = connect_as(&proxy, "app_user", "app_pass", "deny_ext").await;
    // A denied Parse: prepare fails with the rule's error.
    let e = c.prepare("DELETE FROM deny_ext").await.unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    assert!(
        message(&e).contains("deny-unbounded-write"),
        "{}",
        message(&e)
    );
    // With parameters declared and bound: still refused, nothing runs.
    let e = c
        .execute("UPDATE deny_ext SET id = $1", &[&7i32])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    assert_eq!(rows("deny_ext"), 3);
    assert_eq!(direct("SELECT count(*) FROM deny_ext WHERE id = 7"), "0");
    // Pipelined: the queries before and after the denied one get their own answers.
    let s1 = c.prepare("SELECT $1::int + 1").await.unwrap();
    let (a, b, d) = tokio::join!(
        c.query_one(&s1, &[&1i32]),
        c.execute("DELETE FROM deny_ext", &[]),
        c.query_one(&s1, &[&41i32]),
    );
    assert_eq!(a.unwrap().get::<_, i32>(0), 2);
    assert_eq!(code(&b.unwrap_err()), "42501");
    assert_eq!(d.unwrap().get::<_, i32>(0), 42);
    // In a transaction: the denial aborts it.
    c.batch_execute("BEGIN").await.unwrap();
    c.execute("INSERT INTO deny_ext VALUES ($1)", &[&300i32])
        .await
        .unwrap();
    assert_eq!(
        code(&c.execute("DELETE FROM deny_ext", &[]).await.unwrap_err()),
        "42501"
    );
    let e = c.query("SELECT 1", &[]).await.unwrap_err();
    assert_eq!(code(&e), "25P02", "{e}");
    c.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(rows("deny_ext"), 3);
    // The session is in step: ordinary work goes on.
    let n: i64 = c
        .query_one("SELECT count(*) FROM deny_ext", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(n, 3);
    let ev = proxy.wait_event("denied extended DELETE", |e| {
        e["outcome"] == "denied"
            && e["protocol"] == "extended"
            && e["application_name"] == "deny_ext"
    });
    assert_eq!(ev["denied_by"], "deny-unbounded-write", "{ev}");
}

#[tokio::test]
async fn libpq_pipeline_mode_with_a_denied_statement() {
    // psql 15 has no \bind; a raw extended batch plays libpq's pipeline: two batches each
    // ending with Sync, the first holding a denied Parse between two good statements.
    table("deny_raw", 2);
    let proxy = start(DENY_DELETE).await;
    let port = proxy.port;
    tokio::task::spawn_blocking(move || {
        let mut s = raw_login(port, "app_user", "app_pass", "app");
        let parse = |name: &str, sql: &str| {
            let mut b = name.as_bytes().to_vec();
            b.push(0);
            b.extend_from_slice(sql.as_bytes());
            b.extend_from_slice(&[0, 0, 0]);
            frontend_msg(b'P', &b)
        };
        let bind = |stmt: &str| {
            let mut b = vec![0];
            b.extend_from_slice(stmt.as_bytes());
            b.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0]);
            frontend_msg(b'B', &b)
        };
        let exec = frontend_msg(b'E', &[0, 0, 0, 0, 0]);
        let sync = frontend_msg(b'S', &[]);
        let mut batch = Vec::new();
        batch.extend(parse("", "SELECT 1"));
        batch.extend(bind(""));
        batch.extend(exec.clone());
        batch.extend(parse("d", "DELETE FROM deny_raw"));
        batch.extend(bind("d"));
        batch.extend(exec.clone());
        batch.extend(sync.clone());
        batch.extend(parse("", "SELECT 2"));
        batch.extend(bind(""));
        batch.extend(exec.clone());
        batch.extend(sync.clone());
        s.write_all(&batch).unwrap();
        let mut tags = String::new();
        let mut errors = Vec::new();
        let mut ready = 0;
        while ready < 2 {
            let (tag, body) = read_msg(&mut s).unwrap();
            tags.push(tag as char);
            if tag == b'E' {
                errors.push(error_fields(&body));
            }
            if tag == b'Z' {
                ready += 1;
            }
        }
        // SELECT 1: ParseComplete, BindComplete, DataRow, CommandComplete; the denied
        // Parse: one error, the rest skipped to Sync; SELECT 2 in the next batch.
        assert_eq!(tags, "12DCEZ12DCZ", "{errors:?}");
        assert_eq!(errors.len(), 1);
        assert_eq!(errors[0][&'C'], "42501", "{errors:?}");
        assert!(
            errors[0][&'M'].contains("deny-unbounded-write"),
            "{errors:?}"
        );
        // The denied statement was never prepared.
        let e = raw_query(&mut s, "EXECUTE d").unwrap_err();
        assert_eq!(e[&'C'], "26000", "{e:?}");
    })
    .await
    .unwrap();
    assert_eq!(rows("deny_raw"), 2);
}

#[tokio::test]
async fn read_only_users_cannot_write_by_any_route() {
    table("ro_t", 2);
    direct(
        "CREATE OR REPLACE FUNCTION ro_sneaky() RETURNS int LANGUAGE sql AS \
         'INSERT INTO ro_t VALUES (999) RETURNING 1'; \
         GRANT EXECUTE ON FUNCTION ro_sneaky() TO PUBLIC;",
    );
    let proxy =
        start("[access]\n[[access.policy]]\nusers = [\"scram_*\"]\nread_only = true\n").await;
    let c = connect_as(&proxy, "scram_user", "scram_pass", "ro").await;
    let n: i64 = c
        .query_one("SELECT count(*) FROM ro_t", &[])
        .await
        .expect("reads work")
        .get(0);
    assert_eq!(n, 2);
    // PostgreSQL refuses the writes themselves, hidden in a function too.
    for sql in [
        "INSERT INTO ro_t VALUES (1)",
        "DELETE FROM ro_t",
        "SELECT ro_sneaky()",
        "CREATE TABLE ro_new (x int)",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), "25006", "{sql}: {e}");
    }
    // pgvigil refuses what would undo read-only.
    for sql in [
        "SET default_transaction_read_only = off",
        "SET SESSION default_transaction_read_only TO off",
        "SET transaction_read_only = off",
        "BEGIN READ WRITE",
        "START TRANSACTION ISOLATION LEVEL READ COMMITTED, READ WRITE",
        "SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE",
        "SELECT set_config('default_transaction_read_only', 'off', false)",
        "DO $$BEGIN EXECUTE 'SET default_transaction_read_only = off'; END$$",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), "42501", "{sql}: {e}");
        // And then a write still fails (in case the refusal did not hold).
        let e = c
            .simple_query("INSERT INTO ro_t VALUES (5)")
            .await
            .unwrap_err();
        assert_eq!(code(&e), "25006", "after {sql}: {e}");
    }
    // Extended protocol too.
    let e = c
        .query(
            "SELECT set_config($1, 'off', false)",
            &[&"default_transaction_read_only"],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // SET TRANSACTION READ WRITE inside a block.
    c.batch_execute("BEGIN").await.unwrap();
    let e = c
        .simple_query("SET TRANSACTION READ WRITE")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    c.batch_execute("ROLLBACK").await.unwrap();
    // The client's own startup settings cannot turn it off.
    let info = format!(
        "host=127.0.0.1 port={} user=scram_user password=scram_pass dbname=app sslmode=disable \
         options='-c default_transaction_read_only=off' connect_timeout=20",
        proxy.port
    );
    let (c2, conn) = tokio_postgres::connect(&info, NoTls).await.unwrap();
    tokio::spawn(conn);
    let e = c2
        .simple_query("INSERT INTO ro_t VALUES (6)")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "25006", "{e}");
    assert_eq!(rows("ro_t"), 2);
    // Another user is not read-only.
    let w = connect_as(&proxy, "app_user", "app_pass", "rw").await;
    w.simple_query("INSERT INTO ro_t VALUES (3)").await.unwrap();
    assert_eq!(rows("ro_t"), 3);
    let ev = proxy.wait_event("read-only refusal", |e| {
        e["outcome"] == "denied" && e["denied_by"] == "pgvigil:read_only"
    });
    assert_eq!(ev["user"], "scram_user", "{ev}");
}

/// Sends a PROXY v1 header claiming `addr`, then a startup; returns the login's result.
fn login_from(
    port: u16,
    addr: &str,
    user: &str,
    password: &str,
    db: &str,
) -> Result<std::net::TcpStream, std::collections::HashMap<char, String>> {
    let mut s = raw_connect(port);
    s.write_all(format!("PROXY TCP4 {addr} 127.0.0.1 40000 {port}\r\n").as_bytes())
        .unwrap();
    s.write_all(&startup_packet(&[("user", user), ("database", db)]))
        .unwrap();
    finish_raw_login(&mut s, password).map(|()| s)
}

#[test]
fn access_policies_refuse_by_database_and_network_before_authentication() {
    table("acc_t", 1);
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            proxy_protocol: true,
            tls_mode: "disable",
            extra: r#"
[access]
default = "deny"
[[access.policy]]
users = ["app_user"]
databases = ["app"]
client_addrs = ["10.0.0.0/8"]
[[access.policy]]
users = ["md5_*"]
"#
            .into(),
            ..ProxyOptions::default()
        },
    );
    let port = proxy.port;
    // Inside the network, the allowed database: in.
    let mut s = login_from(port, "10.1.2.3", "app_user", "app_pass", "app").expect("allowed");
    assert_eq!(raw_query(&mut s, "SELECT 1").unwrap(), ["1"]);
    // Another database: refused before authentication (no password asked: wrong one given).
    let e = login_from(port, "10.1.2.3", "app_user", "WRONG", "postgres").unwrap_err();
    assert_eq!(e[&'C'], "28000", "{e:?}");
    assert!(e[&'M'].contains("database \"postgres\""), "{e:?}");
    // Outside the network.
    let e = login_from(port, "192.168.7.7", "app_user", "app_pass", "app").unwrap_err();
    assert_eq!(e[&'C'], "28000", "{e:?}");
    assert!(e[&'M'].contains("192.168.7.7"), "{e:?}");
    // A user no policy names (default = deny).
    let e = login_from(port, "10.1.2.3", "scram_user", "scram_pass", "app").unwrap_err();
    assert_eq!(e[&'C'], "28000", "{e:?}");
    // The second policy lets md5_user in from anywhere.
    login_from(port, "192.168.7.7", "md5_user", "md5_pass", "app").expect("md5_user");
    let ev = proxy.wait_event("network refusal", |e| {
        e["type"] == "auth_failure"
            && e["reason"]
                .as_str()
                .is_some_and(|r| r.contains("192.168.7.7"))
    });
    assert_eq!(ev["sqlstate"], "28000", "{ev}");
    // Not counted as failed passwords: the failed-logins rule (28P01) never fires.
    for _ in 0..8 {
        let _ = login_from(port, "192.168.7.7", "app_user", "app_pass", "app");
    }
    assert_eq!(proxy.fired("failed-logins"), 0.0);
    login_from(port, "10.1.2.3", "app_user", "app_pass", "app").expect("not blocked");
}

#[test]
fn cidr_in_deny_rules() {
    table("cidr_t", 3);
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("deny-office-delete.toml"),
        r#"id = "deny-office-delete"
description = "no deletes from the office network"
category = "impact"
severity = "medium"
on = "statement"
action = "deny"
[match]
command = ["DELETE"]
client_addr = ["10.20.0.0/16"]
"#,
    )
    .unwrap();
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            proxy_protocol: true,
            tls_mode: "disable",
            extra: format!("[rules]\ndir = \"{}\"\n", dir.path().display()),
            ..ProxyOptions::default()
        },
    );
    let mut office = login_from(proxy.port, "10.20.3.4", "app_user", "app_pass", "app").unwrap();
    let e = raw_query(&mut office, "DELETE FROM cidr_t WHERE id = 1").unwrap_err();
    assert_eq!(e[&'C'], "42501", "{e:?}");
    assert_eq!(rows("cidr_t"), 3);
    let mut other = login_from(proxy.port, "10.21.3.4", "app_user", "app_pass", "app").unwrap();
    raw_query(&mut other, "DELETE FROM cidr_t WHERE id = 1").unwrap();
    assert_eq!(rows("cidr_t"), 2);
}

#[test]
fn pgvigil_check_refuses_after_the_fact_conditions_in_deny_rules() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.toml"),
        "id = \"bad\"\ndescription = \"d\"\ncategory = \"c\"\nseverity = \"low\"\non = \"statement\"\n\
         action = \"deny\"\nthreshold = 3\n[match]\noutcome = [\"ok\"]\nsqlstate = [\"23*\"]\nrows_over = 10\n",
    )
    .unwrap();
    let cfg = dir.path().join("pgvigil.toml");
    std::fs::write(
        &cfg,
        format!(
            "[listen.tls]\nmode = \"disable\"\n[rules]\ndir = \"{}\"\n",
            dir.path().display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--config"])
        .arg(&cfg)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    for key in [
        "match.outcome",
        "match.sqlstate",
        "match.rows_over",
        "threshold",
    ] {
        assert!(text.contains(key), "{key} not refused:\n{text}");
    }
}

#[test]
fn sighup_reloads_deny_rules_and_policies_together() {
    table("reload_t", 3);
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let mut before = raw_login(proxy.port, "app_user", "app_pass", "app");
    let text = std::fs::read_to_string(&proxy.config_path).unwrap();
    // A broken policy: the whole reload is refused, nothing of it applies.
    std::fs::write(
        &proxy.config_path,
        format!(
            "{text}\n[rules]\nenable = [\"deny-unbounded-write\"]\n[access]\n[[access.policy]]\n\
             users = [\"md5_user\"]\nclient_addrs = [\"10.0.0.0/99\"]\n"
        ),
    )
    .unwrap();
    proxy.sighup();
    wait_until("reload refused", std::time::Duration::from_secs(10), || {
        proxy.log().contains("reload failed")
    });
    let mut s = raw_login(proxy.port, "app_user", "app_pass", "app");
    raw_query(&mut s, "DELETE FROM reload_t WHERE id = 3").unwrap();
    raw_query(&mut s, "INSERT INTO reload_t VALUES (3)").unwrap();
    let e = raw_query(&mut s, "UPDATE reload_t SET id = id").map(|_| ());
    assert!(e.is_ok(), "no deny rule yet: {e:?}");
    // The valid version: deny rule and policy arrive together.
    std::fs::write(
        &proxy.config_path,
        format!(
            "{text}\n[rules]\nenable = [\"deny-unbounded-write\"]\n[access]\n[[access.policy]]\n\
             users = [\"md5_user\"]\ndatabases = [\"postgres\"]\n"
        ),
    )
    .unwrap();
    proxy.sighup();
    wait_until("reloaded", std::time::Duration::from_secs(10), || {
        proxy.log().matches("configuration reloaded").count() >= 1
    });
    let mut after = raw_login(proxy.port, "app_user", "app_pass", "app");
    let e = raw_query(&mut after, "DELETE FROM reload_t").unwrap_err();
    assert_eq!(e[&'C'], "42501", "{e:?}");
    let mut m = raw_connect(proxy.port);
    m.write_all(&startup_packet(&[
        ("user", "md5_user"),
        ("database", "app"),
    ]))
    .unwrap();
    let e = finish_raw_login(&mut m, "md5_pass").unwrap_err();
    assert_eq!(e[&'C'], "28000", "{e:?}");
    // A session that began before the reload keeps the configuration it started with, as
    // every other setting does.
    raw_query(&mut before, "SELECT 1").unwrap();
    assert_eq!(rows("reload_t"), 3);
}

#[test]
fn jdbc_denied_statements_prepared_batches_and_transactions() {
    let Some((javac, java, jar)) = java::java_tools_or_skip("jdbc deny test") else {
        return;
    };
    let classes = tempfile::tempdir().expect("temp dir");
    java::compile(&javac, &jar, classes.path(), "Deny.java");
    table("deny_jdbc", 4);
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            extra: DENY_DELETE.into(),
            ..ProxyOptions::default()
        },
    );
    let classpath = format!("{}:{}", jar.display(), classes.path().display());
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/app?sslmode=disable",
        proxy.port
    );
    let (ok, out) = java::run_bounded(
        std::process::Command::new(&java)
            .arg("-cp")
            .arg(&classpath)
            .arg("Deny")
            .args([url.as_str(), "app_user", "app_pass", "deny_jdbc"]),
        std::time::Duration::from_secs(120),
    );
    assert!(
        ok && out.lines().any(|l| l.trim() == "OK"),
        "JDBC deny client failed:\n{out}\nproxy log:\n{}",
        proxy.log()
    );
    // Nothing denied ran; the batch's first INSERT ran or not as the driver sent it, but
    // no DELETE or UPDATE did.
    assert_eq!(
        direct("SELECT count(*) FROM deny_jdbc WHERE id BETWEEN 1 AND 4"),
        "4"
    );
    assert_eq!(
        direct("SELECT count(*) FROM deny_jdbc WHERE id = 2000"),
        "0"
    );
}

#[tokio::test]
async fn statements_too_long_to_check_are_refused_and_the_session_stays_in_step() {
    table("deny_long", 2);
    let proxy = start(DENY_DELETE).await;
    let c = connect_as(&proxy, "app_user", "app_pass", "deny_long").await;
    // 3 MiB of comment hides the DELETE past what pgvigil captures (1 MiB).
    let pad = "x".repeat(3 << 20);
    let sql = format!("SELECT 1 /* {pad} */; DELETE FROM deny_long");
    let e = c.simple_query(&sql).await.unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    assert!(message(&e).contains("too long"), "{}", message(&e));
    assert_eq!(rows("deny_long"), 2);
    // The dropped remainder did not desynchronise anything.
    let r = c.query_one("SELECT 40 + $1::int", &[&2i32]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0), 42);
    // The same through Parse.
    let e = c
        .prepare(
            &sql.replacen("SELECT 1", "DELETE FROM deny_long", 1)
                .replace("; DELETE FROM deny_long", ""),
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    let r = c.query_one("SELECT 1", &[]).await.unwrap();
    assert_eq!(r.get::<_, i32>(0), 1);
    assert_eq!(rows("deny_long"), 2);
    proxy.wait_event("too-long refusal", |e| {
        e["outcome"] == "denied" && e["denied_by"] == "pgvigil:too_long_to_check"
    });
}

#[tokio::test]
async fn writes_wrapped_in_prepare_explain_or_a_cte_are_denied_too() {
    table("deny_wrap", 3);
    let proxy = start(DENY_DELETE).await;
    let c = connect_as(&proxy, "app_user", "app_pass", "deny_wrap").await;
    for sql in [
        "PREPARE p AS DELETE FROM deny_wrap",
        "EXPLAIN ANALYZE DELETE FROM deny_wrap",
        "EXPLAIN (ANALYZE, COSTS OFF) /* x */ UPDATE deny_wrap SET id = 0",
        "WITH gone AS (DELETE FROM deny_wrap RETURNING *) SELECT count(*) FROM gone",
    ] {
        let e = c.simple_query(sql).await.unwrap_err();
        assert_eq!(code(&e), "42501", "{sql}: {e}");
        assert_eq!(rows("deny_wrap"), 3, "{sql}");
    }
    let e = c.simple_query("EXECUTE p").await.unwrap_err();
    assert_eq!(code(&e), "26000", "the PREPARE never happened: {e}");
    c.simple_query("EXPLAIN SELECT * FROM deny_wrap")
        .await
        .expect("an EXPLAIN of a read goes through");
    assert_eq!(rows("deny_wrap"), 3);
}

#[test]
fn function_call_messages_are_refused_where_rules_name_functions() {
    let proxy = Proxy::start(
        pg(),
        ProxyOptions {
            tls_mode: "disable",
            extra: "[rules]\nenable = [\"deny-server-files\"]\n".into(),
            ..ProxyOptions::default()
        },
    );
    let mut s = raw_login(proxy.port, "app_user", "app_pass", "app");
    // FunctionCall of pg_backend_pid (oid 2026), no arguments, text result.
    let mut body = 2026u32.to_be_bytes().to_vec();
    body.extend_from_slice(&[0, 0, 0, 0, 0, 0]);
    s.write_all(&frontend_msg(b'F', &body)).unwrap();
    let mut tags = String::new();
    let mut error = None;
    loop {
        let (tag, body) = read_msg(&mut s).unwrap();
        tags.push(tag as char);
        if tag == b'E' {
            error = Some(error_fields(&body));
        }
        if tag == b'Z' {
            break;
        }
    }
    assert_eq!(tags, "EZ");
    let e = error.unwrap();
    assert_eq!(e[&'C'], "42501", "{e:?}");
    assert_eq!(raw_query(&mut s, "SELECT 1").unwrap(), ["1"]);
    // pg_read_file by name is refused as the rule says.
    let e = raw_query(&mut s, "SELECT pg_read_file('/etc/hostname')").unwrap_err();
    assert!(e[&'M'].contains("deny-server-files"), "{e:?}");
}
