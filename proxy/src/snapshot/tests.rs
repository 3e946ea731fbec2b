//! Whole-config checks through [`load_str`]: what config checks, what the owners check
//! (TLS, upstreams), and parse errors, each reported with its key and line.

use super::load_str;
use std::path::Path;

fn errors(text: &str) -> String {
    match load_str(text, Path::new("/nonexistent/pgvigil.toml")) {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

#[test]
fn defaults_are_valid_without_tls() {
    assert_eq!(errors("[listen.tls]\nmode = \"disable\"\n"), "");
}

#[test]
fn unknown_key_is_reported_with_line() {
    let e = errors("[listen.tls]\nmode = \"disable\"\n[upstream]\nhots = \"x\"\n");
    assert!(e.contains("line 4"), "{e}");
    assert!(e.contains("hots"), "{e}");
}

#[test]
fn missing_files_and_ca_are_reported_each_with_line() {
    let e = errors(
        "[listen.tls]\nmode = \"verify-full\"\ncert_file = \"nope.crt\"\nkey_file = \"nope.key\"\n\
         [upstream]\nsslmode = \"verify-full\"\n",
    );
    assert!(e.contains("line 3: listen.tls.cert_file"), "{e}");
    assert!(e.contains("line 4: listen.tls.key_file"), "{e}");
    assert!(
        e.contains("line 2: listen.tls.mode: verify-ca and verify-full need ca_file"),
        "{e}"
    );
    assert!(e.contains("line 6: upstream.sslmode"), "{e}");
}

#[test]
fn bad_duration_is_reported() {
    let e =
        errors("[listen]\nstartup_timeout = \"ten seconds\"\n[listen.tls]\nmode = \"disable\"\n");
    assert!(e.contains("line 2"), "{e}");
}

#[test]
fn proxy_protocol_needs_trusted_balancers() {
    let e = errors("[listen]\nproxy_protocol = true\n[listen.tls]\nmode = \"disable\"\n");
    assert!(
        e.contains("line 2: listen.proxy_protocol") && e.contains("proxy_trusted"),
        "{e}"
    );
    let e =
        errors("[listen]\nproxy_trusted = [\"10.0.0.0/8\"]\n[listen.tls]\nmode = \"disable\"\n");
    assert!(e.contains("listen.proxy_trusted: has no effect"), "{e}");
    let e = errors("[listen]\nproxy_protocol = true\nproxy_trusted = [\"10.0.0.0/33\"]\n[listen.tls]\nmode = \"disable\"\n");
    assert!(
        e.contains("line 3"),
        "a bad CIDR is reported with its line: {e}"
    );
    assert_eq!(
        errors("[listen]\nproxy_protocol = true\nproxy_trusted = [\"10.0.0.0/8\", \"fd00::/8\"]\n[listen.tls]\nmode = \"disable\"\n"),
        ""
    );
    let e = errors("[listen]\nmax_startup_per_addr = 0\n[upstream]\nmax_auth_conn = 0\n[listen.tls]\nmode = \"disable\"\n");
    assert!(
        e.contains("listen.max_startup_per_addr: must be at least 1"),
        "{e}"
    );
    assert!(
        e.contains("upstream.max_auth_conn: must be at least 1"),
        "{e}"
    );
}
