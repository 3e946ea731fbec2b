//! Hand-written JSON for the part of a line every event shares (`ts`, `type`, the session's
//! fields): serde's flattened structs go through its map machinery field by field, and that
//! was the largest part of writing a statement's line. The bytes are exactly serde_json's
//! (same escapes, same number formatting), which the tests check against serde_json itself.

use serde_json::ser::{CompactFormatter, Formatter};
use std::io::Write;

/// Appends `s` as a JSON string, escaped as serde_json escapes it: `"`, `\` and the control
/// characters below 0x20 (`\b \t \n \f \r` by name, the others as `\u00XX`); nothing else.
pub fn string(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    out.reserve(bytes.len().saturating_add(2));
    out.push(b'"');
    let mut start = 0;
    while let Some(at) = next_escape(bytes, start) {
        out.extend_from_slice(bytes.get(start..at).unwrap_or_default());
        escape_byte(out, bytes.get(at).copied().unwrap_or_default());
        start = at + 1;
    }
    out.extend_from_slice(bytes.get(start..).unwrap_or_default());
    out.push(b'"');
}

/// Appends `Some(s)` as a string and `None` as `null`.
pub fn opt_string(out: &mut Vec<u8>, s: Option<&str>) {
    match s {
        Some(s) => string(out, s),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends a number as serde_json writes it.
pub fn u64(out: &mut Vec<u8>, n: u64) {
    // Writing to a Vec cannot fail.
    let _ = CompactFormatter.write_u64(out, n);
}

/// Appends `true` or `false`.
pub fn boolean(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Appends `Some(n)` as a number and `None` as `null`.
pub fn opt_u64(out: &mut Vec<u8>, n: Option<u64>) {
    match n {
        Some(n) => u64(out, n),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends `Some(x)` as serde_json writes an `f64` (`null` when it is not finite) and
/// `None` as `null`.
pub fn opt_f64(out: &mut Vec<u8>, x: Option<f64>) {
    match x {
        Some(x) if x.is_finite() => {
            let _ = CompactFormatter.write_f64(out, x);
        }
        _ => out.extend_from_slice(b"null"),
    }
}

/// Appends an IP address as a JSON string (its text has nothing to escape). IPv4 by hand:
/// the formatting machinery cost more than the rest of the session's fields.
pub fn ip(out: &mut Vec<u8>, addr: std::net::IpAddr) {
    match addr {
        std::net::IpAddr::V4(v4) => {
            out.push(b'"');
            for (i, octet) in v4.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push(b'.');
                }
                if octet >= 100 {
                    out.push(b'0' + octet / 100);
                }
                if octet >= 10 {
                    out.push(b'0' + octet / 10 % 10);
                }
                out.push(b'0' + octet % 10);
            }
            out.push(b'"');
        }
        std::net::IpAddr::V6(_) => {
            let _ = write!(out, "\"{addr}\"");
        }
    }
}

fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first byte at or after `from` that must be escaped. Eight bytes at a time: most
/// strings (SQL text, names) have none, so the common case is one pass and one copy.
fn next_escape(bytes: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let rest = bytes.get(from..)?;
    let mut chunks = rest.chunks_exact(8);
    let mut offset = from;
    for chunk in chunks.by_ref() {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let w = u64::from_le_bytes(word);
        // A byte below 0x20, or equal to '"' or '\' (the zero-byte test on w XOR the byte):
        // each test is exact about whether the word has such a byte at all.
        let below = w.wrapping_sub(ONES * 0x20) & !w;
        let q = w ^ (ONES * u64::from(b'"'));
        let quote = q.wrapping_sub(ONES) & !q;
        let s = w ^ (ONES * u64::from(b'\\'));
        let slash = s.wrapping_sub(ONES) & !s;
        if (below | quote | slash) & HIGH != 0 {
            if let Some(i) = chunk.iter().position(|&b| needs_escape(b)) {
                return Some(offset + i);
            }
        }
        offset += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| needs_escape(b))
        .map(|i| offset + i)
}

fn escape_byte(out: &mut Vec<u8>, b: u8) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match b {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        0x08 => out.extend_from_slice(b"\\b"),
        0x0c => out.extend_from_slice(b"\\f"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\r' => out.extend_from_slice(b"\\r"),
        b'\t' => out.extend_from_slice(b"\\t"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(b >> 4)],
            HEX[usize::from(b & 0xf)],
        ]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(s: &str) {
        let mut out = Vec::new();
        string(&mut out, s);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(s).unwrap(),
            "{s:?}"
        );
    }

    #[test]
    fn escapes_as_serde_json_does() {
        for b in 0u8..=127 {
            let c = char::from(b);
            check(&c.to_string());
            // The byte at every position of an eight-byte word and past it.
            for pad in 0..17 {
                check(&format!("{}{c}{}", "a".repeat(pad), "b".repeat(17 - pad)));
            }
        }
        for s in [
            "",
            "select 1",
            "é \u{7f} \u{2028} 😀 \"q\" \\ \u{1}\u{1f}",
            "ab\"\"\\\\\n\n\r\t\u{8}\u{c}",
            "\u{a0}\u{ff}\u{100}ÿ€",
        ] {
            check(s);
        }
        // Pseudo-random strings over a small alphabet full of escapes and multibyte chars.
        let alphabet = ['a', '"', '\\', '\n', '\u{1}', 'é', '😀', ' ', '\u{7f}', 'Z'];
        let mut seed = 7u64;
        for len in 0..200 {
            let s: String = (0..len)
                .map(|_| {
                    seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
                    alphabet[(seed >> 33) as usize % alphabet.len()]
                })
                .collect();
            check(&s);
        }
    }

    #[test]
    fn numbers_and_addresses_as_serde_json_writes_them() {
        for n in [0u64, 9, 10, 65_535, u64::MAX] {
            let mut out = Vec::new();
            u64(&mut out, n);
            assert_eq!(out, serde_json::to_vec(&n).unwrap());
        }
        for x in [0.0, 0.427, 1e-7, 12345.678, 1e300, f64::NAN, f64::INFINITY] {
            let mut out = Vec::new();
            opt_f64(&mut out, Some(x));
            assert_eq!(out, serde_json::to_vec(&x).unwrap(), "{x}");
        }
        for a in [
            "10.1.2.3",
            "0.0.0.0",
            "255.100.10.9",
            "127.0.0.1",
            "::1",
            "2001:db8::ff00:42:8329",
            "::ffff:1.2.3.4",
        ] {
            let addr: std::net::IpAddr = a.parse().unwrap();
            let mut out = Vec::new();
            ip(&mut out, addr);
            assert_eq!(out, serde_json::to_vec(&addr).unwrap());
        }
    }
}
