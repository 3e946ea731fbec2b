//! Every authentication path through the proxy, with the real psql against a real cluster:
//! each `[auth] mode` (password, passthrough, scram) × each upstream user (scram, md5, cleartext, trust) × client TLS on
//! and off × upstream TLS on and off; the passthrough channel-binding refusal; PROXY
//! protocol addresses and the plaintext-password refusal for non-loopback clients; client
//! certificates (verify-full) and the TLS-required refusal.
//!
//! One cluster serves the whole file (a `static`: its guard process stops it when the test
//! process exits); each configuration gets its own proxy, reused for all its cases.

mod common;
use common::*;
use pgvigil::demo::cluster::Cluster;
use std::io::Write;
use std::sync::OnceLock;
use std::time::Duration;

/// The cluster shared by every test in this file (TLS on, scram by default).
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Each upstream user and its right password. trust_user has none upstream; in password
/// mode the proxy still asks the client for one (it cannot know the server will not).
const USERS: [(&str, &str); 4] = [
    ("scram_user", "scram_pass"),
    ("md5_user", "md5_pass"),
    ("pw_user", "pw_pass"),
    ("trust_user", "anything"),
];

/// The `auth_method` the audit log must report for a login.
fn expected_method(mode: &str, upstream_tls: bool, user: &str, client_tls: bool) -> &'static str {
    if mode == "scram" {
        // What the client did with pgvigil: PLUS whenever its link is TLS.
        return match user {
            "md5_user" => "md5",
            _ if client_tls => "scram-sha-256-plus",
            _ => "scram-sha-256",
        };
    }
    expected_upstream_method(mode, upstream_tls, user)
}

/// The `upstream_auth_method`: how pgvigil (or the relayed client) logged in upstream.
fn expected_upstream_method(mode: &str, upstream_tls: bool, user: &str) -> &'static str {
    match user {
        // In password and scram modes the proxy runs SCRAM itself and binds to the
        // server's certificate when the upstream link is TLS.
        "scram_user" if mode != "passthrough" && upstream_tls => "scram-sha-256-plus",
        "scram_user" => "scram-sha-256",
        "md5_user" => "md5",
        "pw_user" => "password",
        _ => "trust",
    }
}

/// One cell of the matrix: a good login (user and upstream TLS checked from inside the
/// server), its session_start event, then a wrong password and its auth_failure event.
fn check_case(
    proxy: &Proxy,
    mode: &str,
    upstream_tls: bool,
    user: &str,
    pass: &str,
    client_tls: bool,
) {
    let tag = format!(
        "{mode}-{}-{user}-{}",
        if upstream_tls { "uptls" } else { "upplain" },
        if client_tls { "ctls" } else { "cplain" }
    );
    let ssl = if client_tls {
        "sslmode=require"
    } else {
        "sslmode=disable"
    };
    // Passthrough cannot relay channel binding when both links are TLS (tested below).
    let cb = if mode == "passthrough" && client_tls && upstream_tls {
        " channel_binding=disable"
    } else {
        ""
    };
    let method = expected_method(mode, upstream_tls, user, client_tls);
    let upstream_method = expected_upstream_method(mode, upstream_tls, user);
    let (ok, out, err) = psql(
        &proxy.conninfo(user, pass, "postgres", &format!("{ssl}{cb} application_name={tag}")),
        "select current_user || ',' || coalesce((select ssl::text from pg_stat_ssl where pid = pg_backend_pid()), 'none')",
    );
    assert!(
        ok,
        "[{tag}] login failed: {err}\nproxy log:\n{}",
        proxy.log()
    );
    assert_eq!(
        out,
        format!("{user},{upstream_tls}"),
        "[{tag}] current_user, upstream ssl"
    );
    let start = proxy.wait_event(&format!("session_start {tag}"), |e| {
        e["type"] == "session_start" && e["application_name"] == tag.as_str()
    });
    assert_eq!(start["auth_method"], method, "[{tag}] {start}");
    assert_eq!(
        start["upstream_auth_method"], upstream_method,
        "[{tag}] {start}"
    );
    assert_eq!(start["tls"], client_tls, "[{tag}] {start}");
    assert_eq!(start["user"], user, "[{tag}] {start}");
    assert_eq!(start["client_addr"], "127.0.0.1", "[{tag}] {start}");

    if user == "trust_user" {
        // The server trusts this user: any password works, so there is no wrong one.
        return;
    }
    let bad = format!("{tag}-bad");
    let (ok, _, err) = psql(
        &proxy.conninfo(
            user,
            "wrong_pass",
            "postgres",
            &format!("{ssl}{cb} application_name={bad}"),
        ),
        "select 1",
    );
    assert!(!ok, "[{bad}] a wrong password logged in");
    assert!(
        err.contains("password authentication failed"),
        "[{bad}] {err}"
    );
    let fail = proxy.wait_event(&format!("auth_failure {bad}"), |e| {
        e["type"] == "auth_failure" && e["application_name"] == bad.as_str()
    });
    assert_eq!(fail["sqlstate"], "28P01", "[{bad}] {fail}");
    assert_eq!(fail["user"], user, "[{bad}] {fail}");
    assert_eq!(fail["client_addr"], "127.0.0.1", "[{bad}] {fail}");
    assert_eq!(fail["tls"], client_tls, "[{bad}] {fail}");
    assert_eq!(fail["auth_method"], method, "[{bad}] {fail}");
}

/// All users × client TLS on/off for one proxy, the cases running side by side. In scram
/// mode only the users with a verifier pgvigil can use upstream (see `scram_mode_*`).
fn run_cases(proxy: &Proxy, mode: &str, upstream_tls: bool) {
    std::thread::scope(|s| {
        for (user, pass) in USERS {
            if mode == "scram" && !matches!(user, "scram_user" | "md5_user") {
                continue;
            }
            for client_tls in [true, false] {
                s.spawn(move || check_case(proxy, mode, upstream_tls, user, pass, client_tls));
            }
        }
    });
}

fn proxy_for(mode: &'static str, upstream_tls: bool) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            auth_mode: mode,
            sslmode: if upstream_tls { "require" } else { "disable" },
            auth: if mode == "scram" {
                format!("auth_file = \"{}\"", userlist().display())
            } else {
                String::new()
            },
            ..ProxyOptions::default()
        },
    )
}

/// scram mode's auth file: the verifiers of scram_user, md5_user and pw_user copied from
/// pg_authid (trust_user has none: to pgvigil it is unknown).
fn userlist() -> &'static std::path::PathBuf {
    static FILE: OnceLock<(tempfile::TempDir, std::path::PathBuf)> = OnceLock::new();
    &FILE
        .get_or_init(|| {
            let lines = pg()
                .psql(
                    "postgres",
                    "postgres",
                    "SELECT '\"' || rolname || '\" \"' || rolpassword || '\"' FROM pg_authid \
                     WHERE rolname IN ('scram_user', 'md5_user', 'pw_user')",
                )
                .expect("read pg_authid");
            let dir = tempfile::tempdir().expect("temp dir");
            let path = dir.path().join("userlist.txt");
            std::fs::write(&path, format!("{lines}\n")).expect("write userlist");
            (dir, path)
        })
        .1
}

/// scram mode's refusals: a user whose server wants a cleartext password (pgvigil holds
/// only a key) is told what to change; a user missing from the auth file is refused like a
/// wrong password.
fn scram_refusals(proxy: &Proxy) {
    let (ok, _, err) = psql(
        &proxy.conninfo("pw_user", "pw_pass", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(!ok, "pw_user logged in without pgvigil holding a password");
    assert!(err.contains("pgvigil holds only a SCRAM key"), "{err}");
    assert!(err.contains("scram-sha-256 in pg_hba.conf"), "{err}");
    let (ok, _, err) = psql(
        &proxy.conninfo("trust_user", "x", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(!ok, "a user missing from the auth file logged in");
    assert!(
        err.contains("password authentication failed for user \"trust_user\""),
        "{err}"
    );
}

#[test]
fn scram_mode_upstream_tls() {
    let proxy = proxy_for("scram", true);
    run_cases(&proxy, "scram", true);
    scram_refusals(&proxy);
}

#[test]
fn scram_mode_upstream_plain() {
    let proxy = proxy_for("scram", false);
    run_cases(&proxy, "scram", false);
    scram_refusals(&proxy);
}

#[test]
fn password_mode_upstream_tls() {
    let proxy = proxy_for("password", true);
    run_cases(&proxy, "password", true);
}

#[test]
fn password_mode_upstream_plain() {
    let proxy = proxy_for("password", false);
    run_cases(&proxy, "password", false);
}

#[test]
fn passthrough_mode_upstream_tls() {
    let proxy = proxy_for("passthrough", true);
    run_cases(&proxy, "passthrough", true);

    // libpq's default channel_binding=prefer over TLS sends gs2 flag 'y'; the server (whose
    // own link is TLS) would refuse it with a cryptic error, so pgvigil explains instead.
    let tag = "passthrough-cb-prefer";
    let (ok, _, err) = psql(
        &proxy.conninfo(
            "scram_user",
            "scram_pass",
            "postgres",
            &format!("sslmode=require application_name={tag}"),
        ),
        "select 1",
    );
    assert!(!ok, "channel binding through passthrough should be refused");
    assert!(err.contains("channel_binding=disable"), "{err}");
    assert!(err.contains("[auth] mode"), "{err}");
    let fail = proxy.wait_event("channel binding refusal", |e| {
        e["type"] == "auth_failure" && e["application_name"] == tag
    });
    assert_eq!(fail["user"], "scram_user");
    assert_eq!(fail["tls"], true);
    assert_eq!(fail["sqlstate"], "28000");
}

#[test]
fn passthrough_mode_upstream_plain() {
    let proxy = proxy_for("passthrough", false);
    run_cases(&proxy, "passthrough", false);
}

/// The PROXY v1 header a load balancer would send for client 203.0.113.9:5555.
const PROXY_V1: &[u8] = b"PROXY TCP4 203.0.113.9 127.0.0.1 5555 6432\r\n";

#[test]
fn proxy_protocol_addresses_and_plaintext_password_refusal() {
    let pg = pg();

    // TLS available: a non-loopback client must not send its password in plaintext.
    let proxy = Proxy::start(
        pg,
        ProxyOptions {
            proxy_protocol: true,
            ..ProxyOptions::default()
        },
    );
    let mut s = raw_connect(proxy.port);
    let mut hello = PROXY_V1.to_vec();
    hello.extend(startup_packet(&[
        ("user", "scram_user"),
        ("database", "postgres"),
    ]));
    s.write_all(&hello).unwrap();
    let (tag, body) = read_msg(&mut s).expect("an answer to the startup");
    assert_eq!(tag, b'E', "expected a refusal, got {:?}", tag as char);
    let f = error_fields(&body);
    assert_eq!(f.get(&'V').map(String::as_str), Some("FATAL"), "{f:?}");
    assert!(f[&'M'].contains("unencrypted"), "{f:?}");
    let (_, closed) = read_until_closed(&mut s, Duration::from_secs(5));
    assert!(closed.is_some(), "connection left open after the refusal");
    let e = proxy.wait_event("refusal audited with the PROXY address", |e| {
        e["type"] == "auth_failure"
    });
    assert_eq!(e["client_addr"], "203.0.113.9", "{e}");
    assert_eq!(e["client_port"], 5555, "{e}");
    assert_eq!(e["user"], "scram_user", "{e}");
    assert_eq!(e["tls"], false, "{e}");
    // Without the header the connection is not PostgreSQL for this listener, and a broken
    // header is refused.
    let (ok, _, _) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(!ok, "a connection without a PROXY header was accepted");
    for bad in [
        &b"PROXY TCP4 not-an-address 127.0.0.1 1 2\r\n"[..],
        b"PROXY TCP4 1.2.3.4 5.6.7.8 99999 1\r\n",
    ] {
        let mut s = raw_connect(proxy.port);
        s.write_all(bad).unwrap();
        s.write_all(&startup_packet(&[("user", "scram_user")]))
            .unwrap();
        let (got, closed) = read_until_closed(&mut s, Duration::from_secs(5));
        assert!(
            closed.is_some(),
            "broken PROXY header {bad:?} left the connection open"
        );
        assert!(
            got.first().is_none_or(|&t| t == b'E'),
            "broken PROXY header answered {got:?}"
        );
    }
    // A v2 (binary) header, TLS after it: the audited address is the header's.
    let mut v2 = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    v2.extend_from_slice(&[
        0x21, 0x11, 0, 12, 198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x19, 0x28,
    ]);
    let mut s = raw_connect(proxy.port);
    s.write_all(&v2).unwrap();
    s.write_all(&startup_packet(&[
        ("user", "md5_user"),
        ("database", "postgres"),
        ("application_name", "pp-v2"),
    ]))
    .unwrap();
    let (tag, body) = read_msg(&mut s).expect("an answer");
    assert_eq!(
        tag, b'E',
        "plaintext password from 198.51.100.9 must be refused"
    );
    assert!(error_fields(&body)[&'M'].contains("unencrypted"));
    let e = proxy.wait_event("v2 refusal", |e| {
        e["type"] == "auth_failure" && e["application_name"] == "pp-v2"
    });
    assert_eq!(e["client_addr"], "198.51.100.9", "{e}");
    assert_eq!(e["client_port"], 8080, "{e}");

    // TLS disabled by configuration: plaintext passwords are accepted, and audited with
    // the address from the header.
    let proxy = Proxy::start(
        pg,
        ProxyOptions {
            proxy_protocol: true,
            tls_mode: "disable",
            ..ProxyOptions::default()
        },
    );
    for (password, good) in [("wrong_pass", false), ("scram_pass", true)] {
        let mut s = raw_connect(proxy.port);
        let mut hello = PROXY_V1.to_vec();
        hello.extend(startup_packet(&[
            ("user", "scram_user"),
            ("database", "postgres"),
            ("application_name", if good { "pp-good" } else { "pp-bad" }),
        ]));
        s.write_all(&hello).unwrap();
        let result = finish_raw_login(&mut s, password);
        if good {
            assert!(result.is_ok(), "{result:?}\n{}", proxy.log());
            assert_eq!(
                raw_query(&mut s, "select current_user").unwrap(),
                ["scram_user"]
            );
            let e = proxy.wait_event("session_start via PROXY", |e| {
                e["type"] == "session_start" && e["application_name"] == "pp-good"
            });
            assert_eq!(e["client_addr"], "203.0.113.9", "{e}");
            assert_eq!(e["client_port"], 5555, "{e}");
        } else {
            let f = result.expect_err("wrong password accepted");
            assert_eq!(f.get(&'C').map(String::as_str), Some("28P01"), "{f:?}");
            let e = proxy.wait_event("auth_failure via PROXY", |e| {
                e["type"] == "auth_failure" && e["application_name"] == "pp-bad"
            });
            assert_eq!(e["client_addr"], "203.0.113.9", "{e}");
            assert_eq!(e["sqlstate"], "28P01", "{e}");
            assert_eq!(e["user"], "scram_user", "{e}");
        }
    }
}

#[test]
fn client_certificates_and_required_tls() {
    let pg = pg();
    let proxy = Proxy::start(
        pg,
        ProxyOptions {
            tls_mode: "verify-full",
            client_cert_user: "scram_user",
            ..ProxyOptions::default()
        },
    );
    let cert = format!(
        "sslmode=require sslcert={} sslkey={}",
        proxy.certs.client_cert.display(),
        proxy.certs.client_key.display()
    );
    let (ok, out, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", &cert),
        "select current_user",
    );
    assert!(ok, "{err}\n{}", proxy.log());
    assert_eq!(out, "scram_user");

    // The certificate names scram_user; app_user may not use it.
    let (ok, _, err) = psql(
        &proxy.conninfo("app_user", "app_pass", "app", &cert),
        "select 1",
    );
    assert!(!ok, "certificate for scram_user accepted for app_user");
    assert!(
        err.contains("certificate authentication failed for user \"app_user\""),
        "{err}"
    );
    let e = proxy.wait_event("CN mismatch audited", |e| {
        e["type"] == "auth_failure" && e["user"] == "app_user"
    });
    assert_eq!(e["sqlstate"], "28000", "{e}");
    assert_eq!(e["tls"], true, "{e}");

    // No certificate at all: the TLS handshake itself fails.
    let (ok, _, err) = psql(
        &proxy.conninfo("scram_user", "scram_pass", "postgres", "sslmode=require"),
        "select 1",
    );
    assert!(
        !ok,
        "verify-full accepted a client without a certificate: {err}"
    );

    // verify-ca: the certificate must be signed by the CA, but its CN is not checked.
    let proxy = Proxy::start(
        pg,
        ProxyOptions {
            tls_mode: "verify-ca",
            client_cert_user: "scram_user",
            ..ProxyOptions::default()
        },
    );
    let cert = format!(
        "sslmode=require sslcert={} sslkey={}",
        proxy.certs.client_cert.display(),
        proxy.certs.client_key.display()
    );
    let (ok, out, err) = psql(
        &proxy.conninfo("app_user", "app_pass", "app", &cert),
        "select current_user",
    );
    assert!(ok, "verify-ca checked the CN: {err}");
    assert_eq!(out, "app_user");
    let (ok, _, _) = psql(
        &proxy.conninfo("app_user", "app_pass", "app", "sslmode=require"),
        "select 1",
    );
    assert!(!ok, "verify-ca accepted a client without a certificate");

    // mode = require: TLS without a certificate works, plaintext is refused.
    let proxy = Proxy::start(
        pg,
        ProxyOptions {
            tls_mode: "require",
            ..ProxyOptions::default()
        },
    );
    let (ok, out, err) = psql(
        &proxy.conninfo("md5_user", "md5_pass", "postgres", "sslmode=require"),
        "select current_user",
    );
    assert!(ok, "{err}\n{}", proxy.log());
    assert_eq!(out, "md5_user");
    let (ok, _, err) = psql(
        &proxy.conninfo("md5_user", "md5_pass", "postgres", "sslmode=disable"),
        "select 1",
    );
    assert!(!ok, "plaintext accepted under mode = require");
    assert!(err.contains("no encryption"), "{err}");
    assert!(err.contains("FATAL"), "{err}");
}
