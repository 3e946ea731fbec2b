//! md5 verifiers (`md5` + hex of md5(password || user)), the way PgBouncer uses them from an
//! auth file: the stored hash answers the server's md5 challenge and checks the client's.

use md5::{Digest, Md5};
use subtle::ConstantTimeEq;

/// Whether `text` looks like an md5 verifier: `md5` and 32 lowercase hex digits.
pub fn is_verifier(text: &str) -> bool {
    text.len() == 35
        && text.starts_with("md5")
        && text[3..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The answer to an md5 challenge with `salt`, from a stored verifier:
/// `md5` + hex(md5(hex-of-verifier || salt)).
pub fn salted(stored: &str, salt: [u8; 4]) -> String {
    let inner = stored.strip_prefix("md5").unwrap_or(stored);
    let mut m = Md5::new();
    m.update(inner.as_bytes());
    m.update(salt);
    let digest = m.finalize();
    let mut out = String::with_capacity(35);
    out.push_str("md5");
    for b in digest.iter() {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// Whether a client's md5 answer matches the stored verifier (constant time).
pub fn check(stored: &str, salt: [u8; 4], answer: &[u8]) -> bool {
    let expected = salted(stored, salt);
    expected.as_bytes().ct_eq(answer).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_what_libpq_sends() {
        // md5("pw" || "alice"), then the challenge as libpq computes it from the password.
        let stored = {
            let mut m = Md5::new();
            m.update(b"pwalice");
            format!(
                "md5{}",
                m.finalize()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect::<String>()
            )
        };
        assert!(is_verifier(&stored));
        let salt = [1, 2, 3, 4];
        let libpq = postgres_protocol::authentication::md5_hash(b"alice", b"pw", salt);
        assert_eq!(salted(&stored, salt), libpq);
        assert!(check(&stored, salt, libpq.as_bytes()));
        assert!(!check(&stored, [1, 2, 3, 5], libpq.as_bytes()));
    }
}
