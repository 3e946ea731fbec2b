//! Hostile clients cannot take the database or pgvigil down: each test plays the attacker
//! with raw sockets (several loopback source addresses stand for several hosts) against the
//! real proxy and a real server, and checks what a legitimate user and the server see.
//!
//! - a flood of startup packets without passwords holds no server backend (password mode),
//!   and at most `max_auth_conn` of them (passthrough);
//! - an address hoarding silent sockets, or many addresses filling the pre-login budget,
//!   never refuses another address's logins nor disturbs established sessions; silent
//!   sockets are cut at `first_byte_timeout`; refusals are counted and audited once a minute;
//! - a PROXY header is believed only from `proxy_trusted` peers;
//! - a client that pipelines without reading is pushed back by TCP, with bounded memory;
//! - "too many clients" reaches a TLS client as the reason, not as an SSL exchange error.

mod common;

use common::*;
use pgvigil::demo::cluster::{Cluster, ClusterOptions, HbaAuth, SUPERUSER};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

/// Connects to 127.0.0.1:`port` from the loopback address `src` (any of 127.0.0.0/8), so
/// one test can play several client hosts.
fn connect_from(src: [u8; 4], port: u16) -> std::io::Result<TcpStream> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let s = rt.block_on(async {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind(std::net::SocketAddr::from((src, 0)))?;
        sock.connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
            .await
    })?;
    let s = s.into_std()?;
    s.set_nonblocking(false)?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    s.set_write_timeout(Some(Duration::from_secs(10)))?;
    Ok(s)
}

/// Client backends of the server other than the asking one (each pgvigil connection
/// upstream is one, whether it is authenticating or logged in).
fn backends(pg: &Cluster) -> usize {
    pg.psql(
        SUPERUSER,
        "postgres",
        "select count(*) from pg_stat_activity \
         where backend_type = 'client backend' and pid <> pg_backend_pid()",
    )
    .unwrap_or_else(|e| panic!("direct superuser login failed: {e}"))
    .trim()
    .parse()
    .expect("a count")
}

/// A plaintext proxy whose startup timeout (60 s) outlasts every flood below, with the
/// `[listen]` keys `listen` on top of `opts`.
fn patient_proxy(pg: &Cluster, listen: &str, opts: ProxyOptions) -> Proxy {
    Proxy::start(
        pg,
        ProxyOptions {
            tls_mode: "disable",
            startup_timeout: "60s",
            listen: listen.into(),
            ..opts
        },
    )
}

fn small_cluster() -> Cluster {
    Cluster::start(ClusterOptions {
        // Far fewer than the flood below: the flood would exhaust it if it reached the server.
        max_connections: 20,
        auth: HbaAuth::ScramSha256,
        ..ClusterOptions::default()
    })
    .expect("cluster")
}

/// Opens `n` sockets from each of `addrs`, each sending a StartupMessage for `user`, and
/// returns them with the first byte each got back (`R` asked for a password, `E` refused).
fn startup_flood(port: u16, addrs: &[[u8; 4]], n: usize, user: &str) -> Vec<(TcpStream, u8)> {
    let hello = startup_packet(&[("user", user), ("database", "app")]);
    let mut out = Vec::new();
    for a in addrs {
        for _ in 0..n {
            let mut s = connect_from(*a, port).expect("connect");
            s.write_all(&hello).expect("startup");
            let mut first = [0u8; 1];
            s.read_exact(&mut first).expect("an answer to the startup");
            out.push((s, first[0]));
        }
    }
    out
}

#[test]
fn password_mode_startup_flood_holds_no_backend() {
    let pg = small_cluster();
    let proxy = patient_proxy(&pg, "first_byte_timeout = \"60s\"", ProxyOptions::default());
    // 5 hosts x 20 sockets: five times the server's max_connections, for a user that does
    // not even exist. Each is asked for its password, and that is all.
    let flood = startup_flood(
        proxy.port,
        &[
            [127, 0, 0, 10],
            [127, 0, 0, 11],
            [127, 0, 0, 12],
            [127, 0, 0, 13],
            [127, 0, 0, 14],
        ],
        20,
        "nobody",
    );
    assert!(
        flood.iter().all(|(_, t)| *t == b'R'),
        "every socket is asked for a password"
    );
    // The server holds no backend for them, and the superuser logs in directly.
    assert_eq!(
        backends(&pg),
        0,
        "backends opened for clients without a password"
    );
    assert_eq!(proxy.metric("pgvigil_upstream_auth_connections"), 0.0);
    // A real user logs in through the proxy meanwhile.
    let (ok, out, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "app", "sslmode=disable"),
        "select current_user",
    );
    assert!(ok, "proxied login during the flood: {err}\n{}", proxy.log());
    assert_eq!(out, "scram_user");
    drop(flood);
}

#[test]
fn passthrough_flood_holds_at_most_max_auth_conn_backends() {
    let pg = small_cluster();
    let proxy = patient_proxy(
        &pg,
        "first_byte_timeout = \"60s\"",
        ProxyOptions {
            auth_mode: "passthrough",
            upstream: "max_auth_conn = 4\nmax_auth_per_addr = 2".into(),
            ..ProxyOptions::default()
        },
    );
    // Passthrough must ask the server first: each socket that gets an authentication
    // request holds a backend until it answers. 3 hosts x 10 sockets, read without waiting
    // for an answer (those over the budget wait for a place).
    let hello = startup_packet(&[("user", "scram_user"), ("database", "app")]);
    let mut flood = Vec::new();
    for a in [[127, 0, 0, 20], [127, 0, 0, 21], [127, 0, 0, 22]] {
        for _ in 0..10 {
            let mut s = connect_from(a, proxy.port).expect("connect");
            s.write_all(&hello).expect("startup");
            flood.push(s);
        }
    }
    wait_until("the budget filled", Duration::from_secs(10), || {
        proxy.metric("pgvigil_upstream_auth_connections") == 4.0
    });
    // Sampled for a while: never more backends than the budget; direct logins work.
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        let n = backends(&pg);
        assert!(
            n <= 4,
            "{n} backends for 30 unauthenticated sockets (max_auth_conn = 4)"
        );
        assert!(proxy.metric("pgvigil_upstream_auth_connections") <= 4.0);
        std::thread::sleep(Duration::from_millis(100));
    }
    // Once the hoarders go, a real login gets its place.
    drop(flood);
    let (ok, out, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "app", "sslmode=disable"),
        "select current_user",
    );
    assert!(ok, "proxied login after the flood: {err}\n{}", proxy.log());
    assert_eq!(out, "scram_user");
    wait_until("auth places given back", Duration::from_secs(10), || {
        proxy.metric("pgvigil_upstream_auth_connections") == 0.0
    });
}

#[test]
fn a_hoarding_address_cannot_starve_other_addresses() {
    let pg = cluster();
    // Long enough that the per-address budget alone has to protect the others.
    let mut proxy = patient_proxy(&pg, "first_byte_timeout = \"60s\"", ProxyOptions::default());
    let mut established = raw_login(proxy.port, "trust_user", "x", "postgres");
    // 1,000 silent sockets from one address: max_startup_per_addr (64) get in and wait,
    // the rest are refused at once with 53300.
    let hoard: Vec<TcpStream> = (0..1000)
        .filter_map(|_| connect_from([127, 0, 0, 7], proxy.port).ok())
        .collect();
    assert!(hoard.len() > 900, "only {} sockets opened", hoard.len());
    wait_until(
        "the hoard's refusals counted",
        Duration::from_secs(10),
        || proxy.metric("pgvigil_connections_total{result=\"addr_limit\"}") >= 900.0,
    );
    // Other addresses log in, every time; the established session is undisturbed.
    for i in 0..10 {
        let (ok, out, err) = psql(
            &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=disable"),
            &format!("select {i}"),
        );
        assert!(ok, "login {i} refused while one address hoards: {err}");
        assert_eq!(out, i.to_string());
    }
    assert_eq!(raw_query(&mut established, "select 7").unwrap(), ["7"]);
    // One audit event for the hoarding address this minute, not one per refusal.
    let e = proxy.wait_event("connection_refused for the hoarder", |e| {
        e["type"] == "connection_refused" && e["client_addr"] == "127.0.0.7"
    });
    assert!(
        e["reason"]
            .as_str()
            .unwrap_or_default()
            .contains("max_startup_per_addr"),
        "{e}"
    );
    let refusals = proxy
        .audit_events()
        .into_iter()
        .filter(|e| e["type"] == "connection_refused")
        .count();
    assert_eq!(
        refusals, 1,
        "refusals are audited once per address and minute"
    );
    drop(hoard);
    assert_healthy(&mut proxy);
}

#[test]
fn silent_sockets_are_cut_and_a_full_startup_budget_spares_sessions() {
    let pg = cluster();
    let mut proxy = patient_proxy(
        &pg,
        "first_byte_timeout = \"1s\"\nmax_startup_conn = 20",
        ProxyOptions::default(),
    );
    let mut established = raw_login(proxy.port, "trust_user", "x", "postgres");
    // 30 silent sockets from 10 hosts (3 each: within the per-address budget): the global
    // pre-login budget takes 20, the other 10 are refused with 53300.
    let mut silent = Vec::new();
    for host in 40..50u8 {
        for _ in 0..3 {
            silent.push(connect_from([127, 0, 0, host], proxy.port).expect("connect"));
        }
    }
    wait_until("the overflow refused", Duration::from_secs(10), || {
        proxy.metric("pgvigil_connections_total{result=\"startup_full\"}") >= 10.0
    });
    // The established session is not touched by it.
    assert_eq!(raw_query(&mut established, "select 1").unwrap(), ["1"]);
    // Every silent socket is closed well before startup_timeout (60 s).
    let started = Instant::now();
    for s in &mut silent {
        let (_, closed) = read_until_closed(s, Duration::from_secs(10));
        assert!(closed.is_some(), "a silent socket was kept open");
    }
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "silent sockets outlived first_byte_timeout"
    );
    // Each of the 30 was refused at once or cut for silence (how many of each depends on
    // when the established session's own pre-login place was given back).
    wait_until(
        "every silent socket refused or cut",
        Duration::from_secs(10),
        || {
            proxy.metric("pgvigil_connections_total{result=\"startup_full\"}")
                + proxy.metric("pgvigil_connections_total{result=\"first_byte_timeout\"}")
                >= 30.0
        },
    );
    assert!(proxy.metric("pgvigil_connections_total{result=\"first_byte_timeout\"}") >= 19.0);
    // With the budget free again, logins work; a client that speaks at once is never cut.
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(ok, "{err}");
    assert_eq!(raw_query(&mut established, "select 2").unwrap(), ["2"]);
    assert_healthy(&mut proxy);
}

/// The PROXY v1 header claiming loopback, which used to bypass blocks and the plaintext
/// password refusal.
const CLAIM_LOOPBACK: &[u8] = b"PROXY TCP4 127.0.0.1 127.0.0.1 1 6432\r\n";
const V2_CLAIM: [u8; 28] = [
    b'\r', b'\n', b'\r', b'\n', 0, b'\r', b'\n', b'Q', b'U', b'I', b'T', b'\n', 0x21, 0x11, 0, 12,
    127, 0, 0, 1, 127, 0, 0, 1, 0, 1, 0x19, 0x28,
];

/// Sends `header` then a startup packet; returns the refusal's fields once closed.
fn refused_header(
    port: u16,
    src: [u8; 4],
    header: &[u8],
) -> std::collections::HashMap<char, String> {
    let mut s = connect_from(src, port).expect("connect");
    let mut hello = header.to_vec();
    hello.extend(startup_packet(&[
        ("user", "pw_user"),
        ("database", "postgres"),
    ]));
    s.write_all(&hello).expect("send");
    let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(
        closed.is_some(),
        "a forged PROXY header left the connection open"
    );
    let (tag, body) = read_msg(&mut &got[..]).expect("an explanation before the close");
    assert_eq!(tag, b'E', "{got:?}");
    error_fields(&body)
}

#[test]
fn proxy_headers_are_believed_only_from_trusted_balancers() {
    let pg = cluster();
    // The balancer lives in 10.0.0.0/8: a loopback peer is an ordinary client.
    let proxy = Proxy::start(
        &pg,
        ProxyOptions {
            tls_mode: "require",
            proxy_protocol: true,
            proxy_trusted: Some(r#"["10.0.0.0/8"]"#),
            ..ProxyOptions::default()
        },
    );
    for header in [CLAIM_LOOPBACK, &V2_CLAIM[..]] {
        let f = refused_header(proxy.port, [127, 0, 0, 66], header);
        assert_eq!(f.get(&'C').map(String::as_str), Some("08P01"), "{f:?}");
        assert!(f[&'M'].contains("trusted load balancer"), "{f:?}");
    }
    metric_at_least(
        &proxy,
        "pgvigil_connections_total{result=\"proxy_untrusted\"}",
        2.0,
    );
    // Audited with the real peer address, never the claimed one.
    let e = proxy.wait_event("forged header refusal", |e| {
        e["type"] == "connection_refused"
    });
    assert_eq!(e["client_addr"], "127.0.0.66", "{e}");
    assert!(
        proxy
            .audit_events()
            .iter()
            .all(|e| e["client_addr"] != "127.0.0.1"),
        "a claimed address reached the audit log"
    );
    // Without a header, a peer outside proxy_trusted is a direct client under its own
    // address (and a plaintext password is still refused for it: TLS is required).
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(ok, "{err}");
    let e = proxy.wait_event("direct session", |e| e["type"] == "session_start");
    assert_eq!(e["client_addr"], "127.0.0.1", "{e}");

    // A trusted balancer must send the header: a connection from it without one is
    // refused.
    let lb = Proxy::start(
        &pg,
        ProxyOptions {
            proxy_protocol: true,
            proxy_trusted: Some(r#"["127.0.0.1/32"]"#),
            ..ProxyOptions::default()
        },
    );
    let (ok, _, _) = psql(
        &lb.conninfo("scram_user", "scram_pass", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(!ok, "a trusted peer without a PROXY header was accepted");

    // With the PROXY protocol off, a header is refused as well (it was never PostgreSQL).
    let off = Proxy::start(&pg, ProxyOptions::default());
    let f = refused_header(off.port, [127, 0, 0, 67], CLAIM_LOOPBACK);
    assert_eq!(f.get(&'C').map(String::as_str), Some("08P01"), "{f:?}");
}

#[test]
fn check_refuses_proxy_protocol_without_trusted_balancers() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("pgvigil.toml");
    std::fs::write(
        &config,
        "[listen]\nproxy_protocol = true\n[listen.tls]\nmode = \"disable\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pgvigil"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stderr).to_string() + &String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "accepted: {text}");
    assert!(
        text.contains("line 2: listen.proxy_protocol") && text.contains("proxy_trusted"),
        "{text}"
    );
}

#[test]
fn a_client_that_pipelines_without_reading_is_pushed_back() {
    let pg = cluster();
    let mut proxy = Proxy::start(
        &pg,
        ProxyOptions {
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    let _warm = raw_login(proxy.port, "trust_user", "x", "postgres");
    let before = proxy.rss_kib();
    // 4 sessions, each writing 4 million empty queries (24 MB) and reading nothing.
    const SESSIONS: usize = 4;
    const QUERIES: usize = 4_000_000;
    let mut sessions: Vec<TcpStream> = (0..SESSIONS)
        .map(|_| raw_login(proxy.port, "trust_user", "x", "postgres"))
        .collect();
    let chunk: Vec<u8> = b"Q\0\0\0\x05\0".repeat(10_000);
    let blocked: Vec<bool> = std::thread::scope(|scope| {
        let writers: Vec<_> = sessions
            .iter_mut()
            .map(|s| {
                let chunk = &chunk;
                scope.spawn(move || {
                    let _ = s.set_write_timeout(Some(Duration::from_secs(3)));
                    for _ in 0..QUERIES / 10_000 {
                        if s.write_all(chunk).is_err() {
                            return true;
                        }
                    }
                    false
                })
            })
            .collect();
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    // TCP pushed back on every writer: the proxy stopped reading them.
    assert!(
        blocked.iter().all(|&b| b),
        "a writer was never pushed back: {blocked:?}"
    );
    let grown = proxy.rss_kib().saturating_sub(before);
    assert!(
        grown < 48 * 1024,
        "{SESSIONS} pipelining sessions grew the proxy by {grown} KiB"
    );
    metric_at_least(&proxy, "pgvigil_pipeline_pauses_total", SESSIONS as f64);
    drop(sessions);
    assert_healthy(&mut proxy);
}

#[test]
fn too_many_clients_reaches_a_tls_client_as_the_reason() {
    let pg = cluster();
    let proxy = Proxy::start(
        &pg,
        ProxyOptions {
            tls_mode: "allow",
            max_client_conn: 2,
            ..ProxyOptions::default()
        },
    );
    let held: Vec<TcpStream> = (0..2)
        .map(|_| raw_login(proxy.port, "trust_user", "x", "postgres"))
        .collect();
    for sslmode in ["require", "prefer", "disable"] {
        let (ok, _, err) = psql(
            &proxy.conninfo(
                "scram_user",
                "scram_pass",
                "postgres",
                &format!("sslmode={sslmode}"),
            ),
            "select 1",
        );
        assert!(!ok, "a third session with max_client_conn = 2 ({sslmode})");
        assert!(
            err.contains("too many clients already") && !err.contains("SSL exchange"),
            "sslmode={sslmode}: {err}"
        );
    }
    drop(held);
    wait_until("places given back", Duration::from_secs(10), || {
        proxy.metric("pgvigil_client_connections") == 0.0
    });
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(ok, "{err}");
}
