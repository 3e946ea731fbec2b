//! Unit tests of `cancel.rs`.

use super::*;
use crate::config::SslMode;

fn target(port: u16) -> UpstreamTarget {
    UpstreamTarget {
        host: "127.0.0.1".into(),
        port,
        sslmode: SslMode::Disable,
        connect_timeout: Duration::from_secs(1),
        dbname: None,
        tls: None,
    }
}

#[test]
fn keeps_the_server_pid_unless_taken() {
    let reg = CancelRegistry::default();
    let a = reg.register(target(1), 4242, Bytes::from_static(&[1, 2, 3, 4]));
    assert_eq!(a.pid(), 4242, "the client sees the server's pid");
    // Another server with the same pid: a different, positive pid.
    let b = reg.register(target(2), 4242, Bytes::from_static(&[5, 6, 7, 8]));
    assert_ne!(b.pid(), 4242);
    assert!(b.pid() > 0);
    let f = reg.lookup(b.pid(), &b.secret().to_be_bytes()).unwrap();
    assert_eq!(
        (f.target.port, f.server_pid, &f.server_secret[..]),
        (2, 4242, &[5, 6, 7, 8][..])
    );
    // The secret is still ours, not the server's.
    assert!(reg.lookup(4242, &[1, 2, 3, 4]).is_none() || a.secret() == 0x01020304);
    drop(a);
    let c = reg.register(target(1), 4242, Bytes::from_static(&[9, 9, 9, 9]));
    assert_eq!(c.pid(), 4242, "free again once the first session ended");
}

#[test]
fn a_cancel_must_come_from_the_sessions_address() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    assert!(same_client(ip("10.0.0.5"), ip("10.0.0.5")));
    assert!(same_client(ip("10.0.0.5"), ip("::ffff:10.0.0.5")));
    assert!(same_client(ip("127.0.0.1"), ip("::1")));
    assert!(!same_client(ip("10.0.0.5"), ip("10.0.0.6")));
    assert!(!same_client(ip("127.0.0.1"), ip("10.0.0.6")));
}
