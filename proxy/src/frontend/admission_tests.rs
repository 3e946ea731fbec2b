//! Unit tests of `admission.rs`.

use super::*;

fn limits() -> Limits {
    Limits {
        max_client_conn: 3,
        max_startup_conn: 4,
        max_startup_per_addr: 2,
        max_auth_conn: 2,
        max_auth_per_addr: 1,
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn ipv6_counts_by_prefix_and_mapped_ipv4_as_ipv4() {
    assert_eq!(
        AddrKey::of(ip("2001:db8:1:2:aaaa::1")),
        AddrKey::of(ip("2001:db8:1:2:bbbb::9"))
    );
    assert_ne!(
        AddrKey::of(ip("2001:db8:1:2::1")),
        AddrKey::of(ip("2001:db8:1:3::1"))
    );
    assert_eq!(
        AddrKey::of(ip("::ffff:10.1.2.3")),
        AddrKey::of(ip("10.1.2.3"))
    );
}

#[test]
fn per_address_then_global_budget() {
    let a = Admission::new(limits(), metrics::Gauge::noop());
    let t1 = a.admit(Some(ip("10.0.0.1"))).unwrap();
    let _t2 = a.admit(Some(ip("10.0.0.1"))).unwrap();
    // The hoarding address is refused; another address is not.
    assert_eq!(
        a.admit(Some(ip("10.0.0.1"))).err(),
        Some(Refusal::AddrLimit)
    );
    let _t3 = a.admit(Some(ip("10.0.0.2"))).unwrap();
    let _t4 = a.admit(None).unwrap();
    assert_eq!(
        a.admit(Some(ip("10.0.0.3"))).err(),
        Some(Refusal::StartupFull)
    );
    // A refused attempt leaves no trace in the per-address count.
    drop(t1);
    assert!(a.admit(Some(ip("10.0.0.1"))).is_ok());
    assert_eq!(
        a.startup_per_addr.counts.len(),
        2,
        "drained addresses are forgotten"
    );
}

#[test]
fn load_balancer_clients_are_counted_by_their_header_address() {
    let a = Admission::new(limits(), metrics::Gauge::noop());
    let mut t1 = a.admit(None).unwrap();
    a.bind_addr(&mut t1, ip("192.0.2.7")).unwrap();
    let mut t2 = a.admit(None).unwrap();
    a.bind_addr(&mut t2, ip("192.0.2.7")).unwrap();
    let mut t3 = a.admit(None).unwrap();
    assert_eq!(
        a.bind_addr(&mut t3, ip("192.0.2.7")),
        Err(Refusal::AddrLimit)
    );
}

#[test]
fn sessions_are_a_budget_of_their_own() {
    let a = Admission::new(limits(), metrics::Gauge::noop());
    let held: Vec<_> = (0..3).map(|_| a.session().unwrap()).collect();
    assert_eq!(a.session().err(), Some(Refusal::SessionsFull));
    // Logins still get their startup places.
    assert!(a.admit(Some(ip("10.0.0.9"))).is_ok());
    drop(held);
    assert!(a.session().is_ok());
}

#[tokio::test]
async fn upstream_auth_waits_per_address_then_globally() {
    let a = Arc::new(Admission::new(limits(), metrics::Gauge::noop()));
    let first = a.upstream_auth(ip("10.0.0.1")).await;
    // Same address: waits while the first holds its only place.
    let waiting = {
        let a = a.clone();
        tokio::spawn(async move { a.upstream_auth(ip("10.0.0.1")).await })
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "a second place for one address");
    // Another address is not held up by it.
    let other = tokio::time::timeout(Duration::from_secs(1), a.upstream_auth(ip("10.0.0.2")))
        .await
        .expect("another address waits for the first");
    drop(first);
    let second = tokio::time::timeout(Duration::from_secs(1), waiting)
        .await
        .expect("a freed place wakes the waiter")
        .unwrap();
    // Global budget (2) now full: a third address waits.
    assert!(
        tokio::time::timeout(Duration::from_millis(50), a.upstream_auth(ip("10.0.0.3")))
            .await
            .is_err()
    );
    drop((other, second));
}

#[test]
fn refusals_audited_once_per_address_and_minute() {
    let a = Admission::new(limits(), metrics::Gauge::noop());
    assert_eq!(a.audit_refusal(ip("10.0.0.1")), Some(0));
    for _ in 0..5 {
        assert_eq!(a.audit_refusal(ip("10.0.0.1")), None);
    }
    assert_eq!(a.audit_refusal(ip("10.0.0.2")), Some(0));
    // A minute later the next refusal is audited with the count it stood for.
    a.refusals.alter(&AddrKey::of(ip("10.0.0.1")), |_, (t, n)| {
        (
            t.checked_sub(REFUSAL_AUDIT_EVERY)
                .expect("uptime over a minute"),
            n,
        )
    });
    assert_eq!(a.audit_refusal(ip("10.0.0.1")), Some(5));
}
