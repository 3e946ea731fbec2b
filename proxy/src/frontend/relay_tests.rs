//! Unit tests of `relay.rs`.

use super::*;

fn client(a: &Activity, tags: &[u8]) {
    for &t in tags {
        a.client_sent(t);
    }
}
fn server(a: &Activity, tags: &[u8]) {
    for &t in tags {
        if t == b'Z' {
            a.server_ready();
        }
    }
}

#[test]
fn pipelined_queries_stay_busy_until_the_last_ready() {
    let a = Activity::new_idle();
    assert!(a.server_idle());
    client(&a, b"QQ");
    server(&a, b"TDCZ");
    assert!(!a.server_idle(), "the second query is still running");
    server(&a, b"TDCZ");
    assert!(a.server_idle());
    // Extended protocol: busy from Execute on, even before the Sync arrives.
    client(&a, b"PBDE");
    assert!(!a.server_idle());
    client(&a, b"S");
    server(&a, b"12TDCZ");
    assert!(a.server_idle());
    // A stray ReadyForQuery does not make a later query look finished.
    server(&a, b"Z");
    client(&a, b"F");
    assert!(!a.server_idle());
    client(&a, b"X");
    assert!(a.client_terminated());
}
