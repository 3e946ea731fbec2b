//! The proxy's life from the outside: graceful shutdown on SIGTERM, the audit events'
//! shape, `pgvigil check` and `pgvigil certs`, the metrics endpoint, and a cancel request
//! forwarded through the proxy.
//!
//! One cluster serves the whole file (a `static`: its guard process stops it when the test
//! process exits); each test starts its own proxy.

mod common;
use common::*;
use pgvigil::demo::cluster::Cluster;
use std::io::Write;
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Backends of the cluster whose application_name is `app` (seen as the superuser).
fn backends(app: &str) -> usize {
    pg().psql(
        "postgres",
        "postgres",
        &format!("select count(*) from pg_stat_activity where application_name = '{app}'"),
    )
    .unwrap_or_else(|e| panic!("{e}"))
    .trim()
    .parse()
    .unwrap_or_else(|e| panic!("count: {e}"))
}

/// SIGTERM, then a bounded wait; returns how long the proxy took to exit.
fn terminate(proxy: &mut Proxy, limit: Duration) -> Duration {
    let started = Instant::now();
    let exited = proxy.terminate(limit);
    let took = started.elapsed();
    assert!(
        exited,
        "pgvigil still running {took:?} after SIGTERM\nlog:\n{}",
        proxy.log()
    );
    took
}

#[test]
fn sigterm_closes_idle_sessions_after_shutdown_timeout() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            shutdown_timeout: "1s",
            ..ProxyOptions::default()
        },
    );
    let mut s = raw_connect(proxy.port);
    s.write_all(&startup_packet(&[
        ("user", "trust_user"),
        ("database", "postgres"),
        ("application_name", "idle-at-term"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "x").expect("login");
    assert_eq!(raw_query(&mut s, "select 1").unwrap(), ["1"]);
    assert_eq!(backends("idle-at-term"), 1);

    let took = terminate(&mut proxy, Duration::from_secs(6));
    // The idle session had its drain period before being closed.
    assert!(
        took >= Duration::from_millis(900),
        "exited after {took:?}, before shutdown_timeout"
    );
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed.is_some(),
        "session still open after the proxy exited"
    );
    let (tag, body) =
        read_msg(&mut &got[..]).unwrap_or_else(|e| panic!("no FATAL before close ({e}): {got:?}"));
    assert_eq!(tag, b'E');
    let f = error_fields(&body);
    assert_eq!(f.get(&'C').map(String::as_str), Some("57P01"), "{f:?}");
    assert_eq!(f.get(&'V').map(String::as_str), Some("FATAL"), "{f:?}");
    // The audit log was drained before exit, and the server backend was ended too.
    let events = proxy.audit_events();
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "session_end" && e["application_name"] == "idle-at-term"),
        "{events:#?}"
    );
    wait_until("the server backend to end", Duration::from_secs(10), || {
        backends("idle-at-term") == 0
    });
}

#[test]
fn sigterm_does_not_wait_for_clients_that_stopped_reading() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            shutdown_timeout: "1s",
            ..ProxyOptions::default()
        },
    );
    let login = |app: &str| {
        let mut s = raw_connect(proxy.port);
        s.write_all(&startup_packet(&[
            ("user", "trust_user"),
            ("database", "postgres"),
            ("application_name", app),
        ]))
        .unwrap();
        finish_raw_login(&mut s, "x").expect("login");
        s
    };
    // One client asks for a large result and never reads it: the relay blocks in the
    // middle of a DataRow stream.
    let mut big = login("stuck-big");
    big.write_all(&frontend_msg(
        b'Q',
        b"select repeat('x', 1000) from generate_series(1, 1000000)\0",
    ))
    .unwrap();
    // Another pipelines many small queries and never reads: the relay blocks between
    // complete responses, where the proxy would write its own FATAL 57P01.
    let pipelined = login("stuck-pipelined");
    let one = frontend_msg(b'Q', b"select repeat('y', 4000)\0");
    let many: Vec<u8> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * 20_000)
        .collect();
    let writer = {
        let mut w = pipelined.try_clone().unwrap();
        // The write blocks once the server stops reading; it ends when the proxy goes.
        std::thread::spawn(move || {
            let _ = w.set_write_timeout(Some(Duration::from_secs(30)));
            let _ = w.write_all(&many);
        })
    };
    // Blocked = the byte count stops moving (both clients' buffers are full).
    let mut last = -1.0;
    let mut still = 0;
    wait_until(
        "the relays to block on the clients",
        Duration::from_secs(30),
        || {
            let now = proxy.metric("pgvigil_bytes_total{direction=\"out\"}");
            still = if now == last && now > 1_000_000.0 {
                still + 1
            } else {
                0
            };
            last = now;
            std::thread::sleep(Duration::from_millis(50));
            still >= 3
        },
    );
    terminate(&mut proxy, Duration::from_secs(8));
    // Both sessions were closed by the proxy, so both are on record as ended.
    let events = proxy.audit_events();
    for app in ["stuck-big", "stuck-pipelined"] {
        assert!(
            events
                .iter()
                .any(|e| e["type"] == "session_end" && e["application_name"] == app),
            "no session_end for {app}: {events:#?}\n{}",
            proxy.log()
        );
    }
    drop(big);
    let _ = pipelined.shutdown(std::net::Shutdown::Both);
    let _ = writer.join();
    for app in ["stuck-big", "stuck-pipelined"] {
        wait_until(
            &format!("{app}'s server backend to end"),
            Duration::from_secs(10),
            || backends(app) == 0,
        );
    }
}

#[test]
fn sigterm_does_not_wait_for_a_stalled_startup() {
    let mut proxy = Proxy::start(
        pg(),
        ProxyOptions {
            shutdown_timeout: "1s",
            startup_timeout: "60s",
            ..ProxyOptions::default()
        },
    );
    // A client that sent half a StartupMessage, and one that never answers the password
    // request: neither may hold the shutdown for the 60 s startup_timeout.
    let mut half = raw_connect(proxy.port);
    let packet = startup_packet(&[("user", "trust_user"), ("database", "postgres")]);
    half.write_all(&packet[..10]).unwrap();
    let mut silent = raw_connect(proxy.port);
    silent
        .write_all(&startup_packet(&[
            ("user", "pw_user"),
            ("database", "postgres"),
        ]))
        .unwrap();
    assert_eq!(read_msg(&mut silent).expect("password request").0, b'R');
    wait_until("both connections accepted", Duration::from_secs(10), || {
        proxy.metric("pgvigil_client_connections") == 2.0
    });
    terminate(&mut proxy, Duration::from_secs(8));
    for (what, mut s) in [("half startup", half), ("unanswered password", silent)] {
        let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some(),
            "[{what}] still open after the proxy exited"
        );
    }
}

/// RFC 3339, UTC, exactly six fractional digits: `2026-11-23T11:00:00.123456Z`.
fn assert_ts(ts: &serde_json::Value) {
    let s = ts
        .as_str()
        .unwrap_or_else(|| panic!("ts is not a string: {ts}"));
    let b = s.as_bytes();
    let shape_ok = b.len() == 27
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 => c == b':',
            19 => c == b'.',
            26 => c == b'Z',
            _ => c.is_ascii_digit(),
        });
    assert!(shape_ok, "ts {s:?} is not RFC 3339 UTC with microseconds");
    let num = |r: std::ops::Range<usize>| s[r].parse::<u32>().unwrap();
    assert!(
        (1..=12).contains(&num(5..7)) && (1..=31).contains(&num(8..10)),
        "{s}"
    );
    assert!(
        num(11..13) < 24 && num(14..16) < 60 && num(17..19) < 61,
        "{s}"
    );
}

const SESSION_FIELDS: [&str; 10] = [
    "ts",
    "type",
    "session_id",
    "user",
    "database",
    "client_addr",
    "client_port",
    "application_name",
    "tls",
    "auth_method",
];

#[test]
fn session_events_carry_every_field() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    // A raw client, so the port the proxy saw is known.
    let mut s = raw_connect(proxy.port);
    let port = s.local_addr().unwrap().port();
    s.write_all(&startup_packet(&[
        ("user", "md5_user"),
        ("database", "app"),
        ("application_name", "fields"),
    ]))
    .unwrap();
    finish_raw_login(&mut s, "md5_pass").expect("login");
    assert_eq!(
        raw_query(&mut s, "select current_database()").unwrap(),
        ["app"]
    );
    s.write_all(&frontend_msg(b'X', b"")).unwrap();
    let _ = read_until_closed(&mut s, Duration::from_secs(5));

    let start = proxy.wait_event("session_start", |e| {
        e["type"] == "session_start" && e["application_name"] == "fields"
    });
    let end = proxy.wait_event("session_end", |e| {
        e["type"] == "session_end" && e["application_name"] == "fields"
    });
    for e in [&start, &end] {
        for k in SESSION_FIELDS {
            assert!(!e[k].is_null(), "{k} missing in {e}");
        }
        assert_ts(&e["ts"]);
        assert_eq!(e["user"], "md5_user", "{e}");
        assert_eq!(e["database"], "app", "{e}");
        assert_eq!(e["client_addr"], "127.0.0.1", "{e}");
        assert_eq!(e["client_port"], port, "{e}");
        assert_eq!(e["tls"], false, "{e}");
        assert_eq!(e["auth_method"], "md5", "{e}");
    }
    assert_eq!(start["session_id"], end["session_id"]);
    assert!(start["session_id"]
        .as_str()
        .is_some_and(|id| !id.is_empty()));
    assert!(
        end["ts"].as_str() >= start["ts"].as_str(),
        "session ended before it started"
    );
    assert!(end["duration_ms"].as_u64().is_some(), "{end}");
    // Query and Terminate went in; the startup reply and the query result came out.
    assert!(end["bytes_in"].as_u64() > Some(20), "{end}");
    assert!(end["bytes_out"].as_u64() > Some(20), "{end}");

    // A psql session over TLS, and a failed login: ids differ, tls is recorded, and the
    // failure carries the same fields plus its SQLSTATE and reason.
    let (ok, _, err) = psql(
        &proxy.conninfo(
            "scram_user",
            "scram_pass",
            "postgres",
            "sslmode=require application_name=fields-tls",
        ),
        "select 1",
    );
    assert!(ok, "{err}");
    let tls_start = proxy.wait_event("TLS session_start", |e| {
        e["type"] == "session_start" && e["application_name"] == "fields-tls"
    });
    assert_eq!(tls_start["tls"], true);
    assert_ne!(tls_start["session_id"], start["session_id"]);
    let (ok, _, _) = psql(
        &proxy.conninfo(
            "scram_user",
            "nope",
            "postgres",
            "sslmode=require application_name=fields-fail",
        ),
        "select 1",
    );
    assert!(!ok);
    let fail = proxy.wait_event("auth_failure", |e| {
        e["type"] == "auth_failure" && e["application_name"] == "fields-fail"
    });
    for k in SESSION_FIELDS.iter().chain(&["sqlstate", "reason"]) {
        assert!(!fail[*k].is_null(), "{k} missing in {fail}");
    }
    assert_ts(&fail["ts"]);
}

fn pgvigil(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(args)
        .output()
        .expect("run pgvigil");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn check_reports_problems_with_their_line() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs");
    pgvigil::certs::write_dev_certs(&certs, &[], "postgres").unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let valid = write(
        "valid.toml",
        "[listen]\naddr = \"127.0.0.1:6999\"\n\n[listen.tls]\nmode = \"require\"\ncert_file = \"certs/server.crt\"\nkey_file = \"certs/server.key\"\n\n[upstream]\nport = 5432\n",
    );
    let (ok, out, err) = pgvigil(&["check", "--config", &valid]);
    assert!(ok, "valid config refused: {err}");
    assert!(out.contains("OK"), "{out}");

    // Line 3 holds a key that does not exist.
    let unknown = write(
        "unknown.toml",
        "[listen]\naddr = \"127.0.0.1:6999\"\nmax_clients = 10\n",
    );
    let (ok, _, err) = pgvigil(&["check", "--config", &unknown]);
    assert!(!ok, "unknown key accepted");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("max_clients"), "{err}");

    // Line 5 names a certificate that is not there.
    let missing = write(
        "missing.toml",
        "[listen]\naddr = \"127.0.0.1:6999\"\n[listen.tls]\nmode = \"require\"\ncert_file = \"certs/nope.crt\"\nkey_file = \"certs/server.key\"\n",
    );
    let (ok, _, err) = pgvigil(&["check", "--config", &missing]);
    assert!(!ok, "missing certificate accepted");
    assert!(err.contains("line 5"), "{err}");
    assert!(err.contains("nope.crt"), "{err}");

    let (ok, _, err) = pgvigil(&[
        "check",
        "--config",
        &dir.path().join("absent.toml").display().to_string(),
    ]);
    assert!(!ok, "a missing config file passed the check");
    assert!(err.contains("absent.toml"), "{err}");
}

#[test]
fn certs_writes_six_files_with_private_keys() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("new").join("certs");
    let (ok, out, err) = pgvigil(&[
        "certs",
        "--out",
        &out_dir.display().to_string(),
        "--host",
        "db.example.com",
    ]);
    assert!(ok, "{err}");
    assert!(out.contains("ca.crt"), "{out}");
    let mut names: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "ca.crt",
            "ca.key",
            "client.crt",
            "client.key",
            "server.crt",
            "server.key"
        ]
    );
    for key in ["ca.key", "server.key", "client.key"] {
        let mode = std::fs::metadata(out_dir.join(key))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600, "{key} has mode {mode:o}");
    }
    // The server certificate is for the requested host, signed by the CA.
    let pem = std::fs::read(out_dir.join("server.crt")).unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).unwrap();
    let cert = pem.parse_x509().unwrap();
    let san = cert
        .subject_alternative_name()
        .unwrap()
        .expect("a SAN extension");
    let dns: Vec<String> = san
        .value
        .general_names
        .iter()
        .filter_map(|n| match n {
            x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(dns, ["db.example.com"]);
    assert!(
        cert.issuer().to_string().contains("pgvigil development CA"),
        "{}",
        cert.issuer()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_a_forwarded_cancel() {
    let proxy = tokio::task::block_in_place(|| Proxy::start(pg(), ProxyOptions::default()));
    // Some traffic: a good psql session and a failed login.
    tokio::task::block_in_place(|| {
        let (ok, _, err) = psql(
            &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=require"),
            "select 1",
        );
        assert!(ok, "{err}");
        let (ok, _, _) = psql(
            &proxy.conninfo("scram_user", "nope", "postgres", "sslmode=require"),
            "select 1",
        );
        assert!(!ok);
    });

    // A query cancelled with the key the proxy handed out.
    let conninfo = format!(
        "host=127.0.0.1 port={} user=app_user password=app_pass dbname=app sslmode=disable application_name=cancel-me",
        proxy.port
    );
    let (client, connection) = tokio_postgres::connect(&conninfo, tokio_postgres::NoTls)
        .await
        .expect("connect");
    let conn_task = tokio::spawn(connection);
    let token = client.cancel_token();
    let query = tokio::spawn(async move {
        let started = Instant::now();
        let r = client.simple_query("select pg_sleep(60)").await;
        // The client goes back to the test: the session stays open for the gauge below.
        (r.map(|_| ()), started.elapsed(), client)
    });
    tokio::task::block_in_place(|| {
        wait_until("pg_sleep to run", Duration::from_secs(10), || {
            pg().psql(
                "postgres",
                "postgres",
                "select count(*) from pg_stat_activity where application_name = 'cancel-me' and query like 'select pg_sleep%' and state = 'active'",
            )
            .is_ok_and(|n| n.trim() == "1")
        })
    });
    token
        .cancel_query(tokio_postgres::NoTls)
        .await
        .expect("send cancel");
    let (result, took, client) = tokio::time::timeout(Duration::from_secs(20), query)
        .await
        .expect("query ended")
        .unwrap();
    let err = result.expect_err("the query was not cancelled");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::QUERY_CANCELED),
        "{err}"
    );
    assert!(took < Duration::from_secs(30), "cancel took {took:?}");

    tokio::task::block_in_place(|| {
        wait_until("the cancel to be counted", Duration::from_secs(10), || {
            proxy.metric("pgvigil_cancel_requests_total{result=\"forwarded\"}") == 1.0
        });
        let text = proxy.metrics();
        // Only the tokio-postgres session is still open (the psql ones have wound down).
        wait_until(
            "one open client connection",
            Duration::from_secs(10),
            || proxy.metric("pgvigil_client_connections") == 1.0,
        );
        assert!(
            proxy.metric("pgvigil_connections_total{result=\"ok\"}") >= 2.0,
            "{text}"
        );
        assert!(
            proxy.metric("pgvigil_connections_total{result=\"auth_failure\"}") >= 1.0,
            "{text}"
        );
        assert!(
            proxy.metric("pgvigil_connections_total{result=\"cancel\"}") >= 1.0,
            "{text}"
        );
        assert!(proxy.metric("pgvigil_auth_failures_total") >= 1.0, "{text}");
        assert!(
            proxy.metric("pgvigil_bytes_total{direction=\"in\"}") > 0.0,
            "{text}"
        );
        assert!(
            proxy.metric("pgvigil_bytes_total{direction=\"out\"}") > 0.0,
            "{text}"
        );
        // Three upstream connections at least: two psql, one tokio-postgres.
        assert!(
            proxy.metric("pgvigil_upstream_connect_seconds_count") >= 3.0,
            "{text}"
        );
        assert!(
            text.contains("pgvigil_upstream_connect_seconds_bucket{le="),
            "{text}"
        );
        assert_eq!(
            proxy.metric("pgvigil_cancel_requests_total{result=\"unknown\"}"),
            0.0,
            "{text}"
        );
    });
    drop(client);
    let _ = tokio::time::timeout(Duration::from_secs(10), conn_task).await;
}
