//! Unit tests of `proxy_protocol.rs`.

use super::*;

#[tokio::test]
async fn v1_and_garbage() {
    let mut ok: &[u8] = b"PROXY TCP4 203.0.113.7 10.0.0.1 51234 6432\r\nrest";
    let a = read_header(&mut ok).await.unwrap().unwrap();
    assert_eq!(a.to_string(), "203.0.113.7:51234");
    assert_eq!(ok, b"rest");
    let mut long = vec![b'P', b'R', b'O', b'X', b'Y', b' '];
    long.extend(std::iter::repeat_n(b'1', 200));
    assert!(read_header(&mut long.as_slice()).await.is_err());
    let mut junk: &[u8] = b"\0\0\0\x08\x04\xd2\x16\x2f\0\0\0\0";
    assert!(read_header(&mut junk).await.is_err());
}

#[tokio::test]
async fn v2_ipv4() {
    let mut h = V2_SIGNATURE.to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&[198, 51, 100, 9, 127, 0, 0, 1, 0x1f, 0x90, 0x19, 0x28]);
    let a = read_header(&mut h.as_slice()).await.unwrap().unwrap();
    assert_eq!(a.to_string(), "198.51.100.9:8080");
}

/// The startup fuzz target's find: a stray CR followed by a non-ASCII character made ppp's
/// v1 parser slice off a character boundary and panic. Refused before ppp sees it.
#[tokio::test]
async fn v1_with_a_stray_cr_and_non_ascii_is_refused_without_panic() {
    for line in [
        "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\u{e9}\r\n",
        "PROXY TCP4 1.2.3.4\r\u{1F600} 5.6.7.8 1 2\r\n",
        "PROXY UNKNOWN \u{e9}\r\n",
        "PROXY TCP4 1.2.3.4  5.6.7.8\t1 2\r\n",
    ] {
        let mut input = line.as_bytes();
        let r = read_header(&mut input).await;
        assert!(r.is_err(), "{line:?} accepted: {r:?}");
    }
}
