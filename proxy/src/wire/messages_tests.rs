//! Unit tests of `messages.rs`.

use super::*;

#[test]
fn error_fields_survive_garbage() {
    let e = ErrorFields::parse(b"SFATAL\0C28P01\0Mpassword authentication failed\0\0");
    assert_eq!(e.sqlstate.as_deref(), Some("28P01"));
    assert_eq!(e.severity, "FATAL");
    let e = ErrorFields::parse(b"Mno code\0");
    assert!(e.sqlstate.is_none());
    let e = ErrorFields::parse(b"Munterminated");
    assert_eq!(e.message, "");
    ErrorFields::parse(b"");
}

#[test]
fn auth_requests_parse_and_reject_short_bodies() {
    assert!(AuthRequest::parse(&Bytes::from_static(&[0, 0])).is_err());
    assert!(AuthRequest::parse(&Bytes::from_static(&[0, 0, 0, 5, 1])).is_err());
    let sasl = Bytes::from_static(b"\0\0\0\x0aSCRAM-SHA-256-PLUS\0SCRAM-SHA-256\0\0");
    match AuthRequest::parse(&sasl).unwrap() {
        AuthRequest::Sasl { mechanisms } => assert_eq!(mechanisms.len(), 2),
        other => panic!("{other:?}"),
    }
    // Missing list terminator.
    assert!(AuthRequest::parse(&Bytes::from_static(b"\0\0\0\x0aSCRAM")).is_err());
}

#[test]
fn sasl_initial_checks_length() {
    let ok = Bytes::from_static(b"SCRAM-SHA-256\0\0\0\0\x03n,,");
    assert_eq!(parse_sasl_initial(&ok).unwrap().1.unwrap().as_ref(), b"n,,");
    let bad = Bytes::from_static(b"SCRAM-SHA-256\0\x7f\0\0\x03n,,");
    assert!(parse_sasl_initial(&bad).is_err());
}

#[test]
fn written_messages_have_correct_lengths() {
    let e = error_response(
        Severity::Fatal,
        "53300",
        "sorry, too many clients already",
        None,
    );
    assert_eq!(e[0], b'E');
    assert_eq!(
        u32::from_be_bytes([e[1], e[2], e[3], e[4]]) as usize,
        e.len() - 1
    );
    let p = password_message(b"secret");
    assert_eq!(
        u32::from_be_bytes([p[1], p[2], p[3], p[4]]) as usize,
        p.len() - 1
    );
    let k = backend_key_data(7, 9);
    assert_eq!(k.len(), 13);
}
