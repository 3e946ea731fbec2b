//! Unit tests of `registry.rs`.

use super::*;

fn info(id: &str, addr: &str) -> Arc<SessionInfo> {
    let peer = std::net::SocketAddr::new(addr.parse().unwrap(), 5000);
    Arc::new(SessionInfo::connection(id.to_string(), peer))
}

#[test]
fn register_kill_and_remove() {
    let s = Arc::new(Sessions::default());
    let a = s.register(info("a-1", "10.0.0.1"));
    let b = s.register(info("a-2", "::ffff:10.0.0.1"));
    let c = s.register(info("a-3", "10.0.0.2"));
    assert_eq!(s.len(), 3);
    let rx_c = c.entry.killed();
    let reason = KillReason {
        message: "m".into(),
        by: "test".into(),
    };
    assert_eq!(s.kill_addr("10.0.0.1".parse().unwrap(), &reason), 2);
    assert!(a.entry.killed().borrow().is_some());
    assert!(b.entry.killed().borrow().is_some());
    assert!(!rx_c.has_changed().unwrap());
    assert!(!s.kill("nope", reason.clone()));
    assert!(s.kill("a-3", reason));
    assert!(rx_c.has_changed().unwrap());
    drop(a);
    assert_eq!(s.len(), 2);
    let ids: Vec<String> = s
        .snapshot()
        .into_iter()
        .map(|x| x.info.session_id.clone())
        .collect();
    assert_eq!(ids.len(), 2);
    assert!(ids.contains(&"a-2".to_string()));
}

#[test]
fn stats_rows_are_bounded_against_invented_names() {
    let s = Sessions::default();
    for i in 0..(MAX_STAT_ROWS + 500) {
        let mut info = SessionInfo::connection("x".into(), "10.0.0.1:1".parse().unwrap());
        info.user = Some(format!("u{i}"));
        info.database = Some("d".into());
        s.auth_failure(&info);
    }
    let stats = s.stats();
    assert_eq!(stats.len(), MAX_STAT_ROWS + 1);
    let other = &stats[&("(other)".to_string(), "(other)".to_string())];
    assert_eq!(other.auth_failures, 500);
}
