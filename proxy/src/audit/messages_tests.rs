use super::*;

#[test]
fn row_counts_from_tags() {
    assert_eq!(rows(b"INSERT 0 5\0"), Some(5));
    assert_eq!(rows(b"DELETE 12\0"), Some(12));
    assert_eq!(rows(b"SELECT 0\0"), Some(0));
    assert_eq!(rows(b"COPY 100"), Some(100));
    assert_eq!(rows(b"CREATE TABLE\0"), None);
    assert_eq!(rows(b"UPDATE\0"), None);
    assert_eq!(rows(b""), None);
    assert_eq!(rows(b"SELECT x\0"), None);
}

#[test]
fn bind_parameters_text_binary_null_and_truncated() {
    let mut b = Vec::new();
    b.extend_from_slice(b"p1\0s1\0");
    b.extend_from_slice(&2i16.to_be_bytes()); // two format codes
    b.extend_from_slice(&0i16.to_be_bytes());
    b.extend_from_slice(&1i16.to_be_bytes());
    b.extend_from_slice(&3i16.to_be_bytes()); // three params
    b.extend_from_slice(&5i32.to_be_bytes());
    b.extend_from_slice(b"hello");
    b.extend_from_slice(&2i32.to_be_bytes());
    b.extend_from_slice(&[0xde, 0xad]);
    b.extend_from_slice(&(-1i32).to_be_bytes());
    let (portal, stmt, params) = bind(&b, Some(3));
    assert_eq!((portal.as_str(), stmt.as_str()), ("p1", "s1"));
    assert_eq!(params.unwrap(), vec!["hel...", "\\xdead", "NULL"]);
    let (_, _, none) = bind(&b, None);
    assert!(none.is_none());
    // Every prefix of the message is harmless.
    for n in 0..b.len() {
        let _ = bind(&b[..n], Some(8));
    }
}

#[test]
fn hostile_bodies_do_not_panic() {
    let junk: [&[u8]; 6] = [b"", b"\0", b"\xff\xff", b"abc", b"S", b"\0\0\0\0\0\0\0"];
    for j in junk {
        let _ = parse(j);
        let _ = bind(j, Some(10));
        let _ = execute(j);
        let _ = close(j);
        let _ = function_call(j);
        let _ = rows(j);
    }
    let mut neg = b"\0\0".to_vec();
    neg.extend_from_slice(&(-5i16).to_be_bytes());
    let _ = bind(&neg, Some(10));
    let mut huge = b"\0\0\0\0\0\x01".to_vec();
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    assert_eq!(bind(&huge, Some(10)).2.unwrap(), vec!["<not captured>"]);
}

#[test]
fn scrubbed_messages_keep_no_quoted_input() {
    assert_eq!(
        scrub_message("unterminated quoted string at or near \"'Secret-1\""),
        "unterminated quoted string at or near \"***\""
    );
    assert_eq!(
        scrub_message("role \"x\" and \"y"),
        "role \"***\" and \"***\""
    );
    assert_eq!(scrub_message("no quotes"), "no quotes");
}
