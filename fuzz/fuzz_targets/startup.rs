//! Fuzzes what a client sends before anything else: the PROXY protocol header (v1 text,
//! v2 binary), the untagged startup packets (SSLRequest, GSSENCRequest, CancelRequest,
//! StartupMessage) read with exact reads, and their parser, in the order the listener
//! uses them. Also checks that a StartupMessage re-encoded for the server parses back to
//! the parameters it came with.

#![no_main]

#[path = "common.rs"]
mod common;

use bytes::Bytes;
use common::{block_on, ChunkedReader};
use libfuzzer_sys::fuzz_target;
use pgvigil::frontend::proxy_protocol::read_header;
use pgvigil::wire::frame::{read_startup_packet, MAX_STARTUP_PACKET};
use pgvigil::wire::startup::{StartupMessage, StartupPacket};

/// Parses a packet body and, for a StartupMessage, exercises what the login does with it.
fn check_packet(body: Bytes) {
    let Ok(packet) = StartupPacket::parse(body.clone()) else {
        return;
    };
    match packet {
        StartupPacket::Ssl | StartupPacket::GssEnc => assert_eq!(body.len(), 4),
        StartupPacket::Cancel { secret, .. } => {
            assert!((4..=256).contains(&secret.len()), "cancel key size");
        }
        StartupPacket::Startup(m) => check_startup(&m),
    }
}

fn check_startup(m: &StartupMessage) {
    let _ = m.get_str("user");
    let _ = m.get_str("database");
    let options = m.protocol_options();
    assert!(options.iter().all(|o| o.starts_with("_pq_.")));
    let kept: Vec<(Bytes, Bytes)> = m
        .params
        .iter()
        .filter(|(k, _)| !k.starts_with(b"_pq_."))
        .cloned()
        .collect();
    // Re-encoded as it is, the parameters come back byte for byte, in order.
    let same = reparse(&m.encode_upstream(None));
    assert_eq!(same.params, kept, "upstream StartupMessage differs");
    assert_eq!((same.major, same.minor), (3, 0));
    // Routed: every `database` value is the route's, and there is one when none was sent.
    let routed = reparse(&m.encode_upstream(Some(b"routed_db")));
    assert!(routed
        .get("database")
        .is_some_and(|d| d.as_ref() == b"routed_db"));
    assert!(routed
        .params
        .iter()
        .all(|(k, v)| k.as_ref() != b"database" || v.as_ref() == b"routed_db"));
}

/// Parses an encoded StartupMessage (with its length word) back.
fn reparse(encoded: &Bytes) -> StartupMessage {
    assert!(encoded.len() >= 8);
    let len = u32::from_be_bytes([encoded[0], encoded[1], encoded[2], encoded[3]]) as usize;
    assert_eq!(len, encoded.len(), "length word");
    match StartupPacket::parse(encoded.slice(4..)) {
        Ok(StartupPacket::Startup(m)) => m,
        other => panic!("re-encoded StartupMessage does not parse: {other:?}"),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, data)) = data.split_first() else {
        return;
    };
    // The parser alone, on any body.
    check_packet(Bytes::copy_from_slice(data));

    // Exact reads of startup packets, one after another, from a socket delivering the
    // bytes in pieces.
    let chunks = [split];
    let mut src = ChunkedReader::new(data, &chunks);
    for _ in 0..4 {
        match block_on(read_startup_packet(&mut src)) {
            Ok(body) => {
                assert!(body.len() >= 4 && body.len() + 4 <= MAX_STARTUP_PACKET);
                check_packet(body);
            }
            Err(_) => break,
        }
    }

    // A listener behind a balancer: the PROXY header, then the client's first packet,
    // which must start exactly where the header ended. (A v1 line that is not ASCII used to
    // panic ppp's parser; proxy_protocol.rs now refuses it first.)
    let mut src = ChunkedReader::new(data, &chunks);
    if block_on(read_header(&mut src)).is_ok() {
        let consumed = data.len() - src.rest().len();
        assert!(consumed <= 16 + 4096, "PROXY header read too far");
        if let Ok(body) = block_on(read_startup_packet(&mut src)) {
            check_packet(body);
        }
    }
});
