//! Unit tests of `startup.rs`.

use super::*;

fn startup(params: &[(&str, &str)]) -> Bytes {
    let mut b = BytesMut::new();
    b.put_u32(3 << 16);
    for (k, v) in params {
        b.put_slice(k.as_bytes());
        b.put_u8(0);
        b.put_slice(v.as_bytes());
        b.put_u8(0);
    }
    b.put_u8(0);
    b.freeze()
}

#[test]
fn round_trips_parameters_in_order() {
    let body = startup(&[
        ("user", "alice"),
        ("database", "app"),
        ("application_name", "psql"),
    ]);
    let StartupPacket::Startup(m) = StartupPacket::parse(body.clone()).unwrap() else {
        panic!()
    };
    assert_eq!(m.get_str("user").as_deref(), Some("alice"));
    let up = m.encode_upstream(None);
    assert_eq!(&up[4..], &body[..]);
    let routed = m.encode_upstream(Some(b"prod"));
    assert!(routed.windows(5).any(|w| w == b"prod\0"));
    assert!(!routed.windows(4).any(|w| w == b"app\0"));
}

#[test]
fn rejects_garbage() {
    assert!(StartupPacket::parse(Bytes::from_static(&[0, 3, 0, 0, b'u', b's'])).is_err());
    assert!(StartupPacket::parse(Bytes::from_static(&[4, 210, 22, 47, 1])).is_err());
    assert!(StartupPacket::parse(Bytes::from_static(&[4, 210, 22, 46, 0, 0, 0, 1])).is_err());
}
