//! The metrics listener as probes and Prometheus use it: `/healthz`, `/readyz` (ready only
//! while the upstream accepts connections), `/metrics` with the latency histograms filled
//! by real logins and statements; and the listener against hostile HTTP clients.

mod common;

use common::{cluster, free_port, psql, wait_until, Proxy, ProxyOptions};
use pgvigil::demo::cluster::Cluster;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::OnceLock;
use std::time::Duration;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Sends `request` raw and returns the whole reply (the server closes after one).
fn http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("metrics port");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // A refused oversized request may be cut off mid-write: what matters is the reply.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).to_string()
}

/// `pgvigil health [--ready]` against a proxy's config: whether it exited 0.
fn health_cmd(proxy: &Proxy, ready: bool) -> bool {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"));
    cmd.args(["health", "--config"]).arg(&proxy.config_path);
    if ready {
        cmd.arg("--ready");
    }
    cmd.status().expect("pgvigil health").success()
}

fn get(port: u16, path: &str) -> String {
    http(
        port,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes(),
    )
}

#[test]
fn health_ready_and_latency_histograms_from_real_traffic() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let m = proxy.metrics_port;
    assert!(get(m, "/healthz").starts_with("HTTP/1.1 200"));
    let ready = get(m, "/readyz");
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
    assert!(health_cmd(&proxy, false) && health_cmd(&proxy, true));
    let conn = proxy.conninfo("postgres", "x", "postgres", "sslmode=disable");
    let (ok, _, err) = psql(&conn, "select pg_sleep(0.3)");
    assert!(ok, "{err}");
    let (ok, _, err) = psql(&conn, "create temp table t (a int)");
    assert!(ok, "{err}");
    let (ok, _, _) = psql(
        &proxy.conninfo("scram_user", "wrong", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(!ok);
    let text = proxy.metrics();
    // The 0.3 s sleep lands in the read class above the 0.25 s bucket.
    let bucket = |le: &str| {
        text.lines()
            .find(|l| {
                l.starts_with("pgvigil_statement_duration_seconds_bucket{")
                    && l.contains("class=\"READ\"")
                    && l.contains(&format!("le=\"{le}\""))
            })
            .and_then(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .unwrap_or_else(|| panic!("no read bucket {le}:\n{text}"))
    };
    let (below, above) = (bucket("0.25"), bucket("0.5"));
    assert!(above >= below + 1.0, "0.25: {below}, 0.5: {above}");
    assert!(proxy.metric("pgvigil_statement_duration_seconds_count{class=\"DDL\"}") >= 1.0);
    assert!(proxy.metric("pgvigil_auth_seconds_count{result=\"ok\"}") >= 1.0);
    assert!(proxy.metric("pgvigil_auth_seconds_count{result=\"failure\"}") >= 1.0);
    assert!(proxy.metric("pgvigil_upstream_connect_seconds_count") >= 2.0);
    assert_eq!(proxy.metric("pgvigil_upstream_up"), 1.0);
    // HEAD: status and headers, no body.
    let head = http(m, b"HEAD /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200") && head.ends_with("\r\n\r\n"),
        "{head:?}"
    );
}

#[test]
fn not_ready_while_the_upstream_is_down_but_healthy() {
    // Nothing listens on this port: the upstream is unreachable.
    let proxy = Proxy::start_upstream(
        free_port(),
        None,
        ProxyOptions {
            sslmode: "disable",
            ..ProxyOptions::default()
        },
    );
    let m = proxy.metrics_port;
    assert!(get(m, "/healthz").starts_with("HTTP/1.1 200"));
    let ready = get(m, "/readyz");
    assert!(ready.starts_with("HTTP/1.1 503"), "{ready}");
    assert!(health_cmd(&proxy, false), "alive");
    assert!(!health_cmd(&proxy, true), "not ready");
    wait_until("pgvigil_upstream_up = 0", Duration::from_secs(15), || {
        proxy.metrics().contains("pgvigil_upstream_up 0")
    });
}

#[test]
fn hostile_http_clients_get_nothing_and_block_nothing() {
    let proxy = Proxy::start(pg(), ProxyOptions::default());
    let m = proxy.metrics_port;
    // A client that never finishes its request does not hold the listener.
    let mut silent = TcpStream::connect(("127.0.0.1", m)).expect("connect");
    silent.write_all(b"GET /metr").expect("partial");
    assert!(get(m, "/healthz").starts_with("HTTP/1.1 200"));
    // An endless header is cut off with 400 (bounded memory), not read forever.
    let mut big = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 64 * 1024));
    let reply = http(m, &big);
    // 400, or a reset when the refusal left unread bytes behind: never a 200.
    assert!(
        reply.is_empty() || reply.starts_with("HTTP/1.1 400"),
        "{reply:.100}"
    );
    assert!(get(m, "/nope").starts_with("HTTP/1.1 404"));
    assert!(http(m, b"POST /readyz HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 405"));
    assert!(http(m, b"\x16\x03\x01\x00\xff\r\n\r\n").starts_with("HTTP/1.1 405"));
    // The silent client is dropped after its deadline.
    silent
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut out = Vec::new();
    let _ = silent.read_to_end(&mut out);
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 400"));
    assert!(get(m, "/healthz").starts_with("HTTP/1.1 200"));
}
