//! Fuzzes every authentication-message parser, both directions: what a client sends
//! (PasswordMessage for cleartext and md5, SASLInitialResponse, SASLResponse), what a
//! server sends (Authentication requests, ErrorResponse), and the SCRAM-SHA-256 client
//! side pgvigil runs upstream (server-first and server-final messages). Encoders the
//! proxy writes with must round-trip through the parsers.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use pgvigil::backend::{scram_server_final, scram_server_first};
use pgvigil::wire::messages::{
    error_response, parse_password, parse_sasl_initial, password_message, sasl_initial_response,
    AuthRequest, ErrorFields, Severity,
};
use pgvigil::auth::{Binding, ScramClient};

/// The input layout, simple enough to write seeds by hand: fields separated by `\xff|`
/// (a byte sequence no field of interest needs), in this order; missing ones are empty.
struct Input {
    /// Parsed by every parser as a message body.
    body: Vec<u8>,
    password: Vec<u8>,
    mechanism: String,
    /// Picks the channel binding: its length modulo 3.
    binding: usize,
    /// The server-first message; `%N` is replaced by the client's nonce so the fuzzer
    /// gets past the nonce check it cannot guess.
    server_first: Vec<u8>,
    server_final: Vec<u8>,
}

impl Input {
    fn parse(raw: &[u8]) -> Input {
        let mut fields = Vec::new();
        let mut rest = raw;
        while let Some(at) = rest.windows(2).position(|w| w == b"\xff|") {
            fields.push(&rest[..at]);
            rest = &rest[at + 2..];
        }
        fields.push(rest);
        let mut it = fields.into_iter();
        let mut next = || it.next().unwrap_or_default().to_vec();
        Input {
            body: next(),
            password: next(),
            mechanism: String::from_utf8_lossy(&next()).into_owned(),
            binding: next().len(),
            server_first: next(),
            server_final: next(),
        }
    }
}

/// The `r=` nonce of a client-first message.
fn client_nonce(client_first: &[u8]) -> Option<&[u8]> {
    let at = client_first.windows(2).rposition(|w| w == b"r=")?;
    client_first.get(at + 2..)
}

fn replace(hay: &[u8], needle: &[u8], with: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(hay.len());
    let mut i = 0;
    while i < hay.len() {
        if hay[i..].starts_with(needle) {
            out.extend_from_slice(with);
            i += needle.len();
        } else {
            out.push(hay[i]);
            i += 1;
        }
    }
    out
}

/// Iteration counts the fuzzer may use: key derivation cost grows with it, and the
/// proxy's own cap (checked by `scram_server_first`) is far above what a fuzzer can
/// afford per input.
fn cheap(server_first: &[u8]) -> bool {
    String::from_utf8_lossy(server_first).split(',').all(|a| {
        a.strip_prefix("i=")
            .and_then(|n| n.trim_start_matches('+').parse::<u64>().ok())
            .is_none_or(|n| n <= 64)
    })
}

fuzz_target!(|raw: &[u8]| {
    let input = Input::parse(raw);
    let body = Bytes::from(input.body);

    // Server to proxy.
    if let Ok(AuthRequest::Sasl { mechanisms }) = AuthRequest::parse(&body) {
        assert!(mechanisms.iter().all(|m| !m.is_empty()));
    }
    let fields = ErrorFields::parse(&body);
    let _ = (fields.severity.len(), fields.sqlstate, fields.message.len());

    // Client to proxy.
    if let Ok(p) = parse_password(&body) {
        assert!(!p.contains(&0));
    }
    if let Ok((_, Some(data))) = parse_sasl_initial(&body) {
        assert!(data.len() <= body.len());
    }

    // What the proxy writes parses back to what it meant.
    if !input.password.contains(&0) {
        let m = password_message(&input.password);
        assert_eq!(m[0], b'p');
        let p = parse_password(&m.slice(5..));
        assert_eq!(p.ok().as_deref(), Some(&input.password[..]));
    }
    if !input.mechanism.contains('\0') {
        let m = sasl_initial_response(&input.mechanism, &input.password);
        let (mech, data) = match parse_sasl_initial(&m.slice(5..)) {
            Ok(v) => v,
            Err(e) => panic!("own SASLInitialResponse refused: {e}"),
        };
        assert_eq!(mech, input.mechanism);
        assert_eq!(data.as_deref(), Some(&input.password[..]));
        let e = error_response(Severity::Fatal, "28P01", &input.mechanism, None);
        let f = ErrorFields::parse(&e.slice(5..));
        assert_eq!(f.sqlstate.as_deref(), Some("28P01"));
        assert_eq!(f.message, input.mechanism);
    }

    // The SCRAM client pgvigil runs upstream, against a hostile server.
    let binding = match input.binding % 3 {
        0 => Binding::Unsupported,
        1 => Binding::Unrequested,
        _ => Binding::TlsServerEndPoint(input.password.clone()),
    };
    let scram = ScramClient::new(&input.password, binding);
    let Some(nonce) = client_nonce(scram.message()) else {
        panic!("client-first message without a nonce");
    };
    let server_first = replace(&input.server_first, b"%N", nonce);
    if !cheap(&server_first) {
        return;
    }
    if let Ok(scram) = scram_server_first(scram, &server_first) {
        assert!(scram.message().starts_with(b"c="), "client-final message");
        let _ = scram_server_final(scram, &input.server_final);
    }
});
