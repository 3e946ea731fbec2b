//! SCRAM-SHA-256 (RFC 5802, RFC 7677) building blocks shared by both legs: the key
//! derivations, the verifier PostgreSQL stores (`SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`),
//! the gs2 channel-binding header, and attribute parsing.
//!
//! Secrets (salted passwords, client keys) live in [`Zeroizing`] buffers, wiped when dropped.

use super::AuthError;
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// SHA-256 output and SCRAM key size.
pub const KEY_LEN: usize = 32;
/// Refuse absurd iteration counts: a hostile server (or a bad verifier) could burn our CPU.
pub const MAX_ITERATIONS: u32 = 1 << 24;
/// The mechanism names PostgreSQL uses: without channel binding...
pub const SCRAM: &str = "SCRAM-SHA-256";
/// ...and with it.
pub const SCRAM_PLUS: &str = "SCRAM-SHA-256-PLUS";
/// The only channel-binding type PostgreSQL supports.
pub const TLS_SERVER_END_POINT: &str = "tls-server-end-point";

/// A 32-byte key.
pub type Key = [u8; KEY_LEN];

/// HMAC-SHA-256.
pub fn hmac(key: &[u8], parts: &[&[u8]]) -> Key {
    // HMAC accepts keys of any length: new_from_slice cannot fail for it.
    let mut mac = match Hmac::<Sha256>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => return [0; KEY_LEN],
    };
    for p in parts {
        mac.update(p);
    }
    mac.finalize().into_bytes().into()
}

/// SHA-256.
pub fn h(data: &[u8]) -> Key {
    Sha256::digest(data).into()
}

/// `a XOR b`.
pub fn xor(a: &Key, b: &Key) -> Key {
    let mut out = [0u8; KEY_LEN];
    for (o, (x, y)) in out.iter_mut().zip(a.iter().zip(b.iter())) {
        *o = x ^ y;
    }
    out
}

/// Constant-time equality of two keys.
pub fn keys_equal(a: &Key, b: &Key) -> bool {
    a.ct_eq(b).into()
}

/// Hi() of RFC 5802 (PBKDF2-HMAC-SHA-256 with one block): the salted password.
pub fn salted_password(password: &[u8], salt: &[u8], iterations: u32) -> Zeroizing<Key> {
    let mut u = Zeroizing::new(hmac(password, &[salt, &1u32.to_be_bytes()]));
    let mut out = Zeroizing::new(*u);
    for _ in 1..iterations {
        *u = hmac(password, &[&u[..]]);
        for (o, x) in out.iter_mut().zip(u.iter()) {
            *o ^= x;
        }
    }
    out
}

/// The password as SCRAM hashes it: SASLprep'd when it is valid for SASLprep, else the raw
/// bytes (PostgreSQL's rule, so that any password PostgreSQL accepts works here too).
pub fn prepared_password(password: &[u8]) -> Zeroizing<Vec<u8>> {
    match std::str::from_utf8(password)
        .ok()
        .and_then(|s| stringprep::saslprep(s).ok())
    {
        Some(p) => Zeroizing::new(p.as_bytes().to_vec()),
        None => Zeroizing::new(password.to_vec()),
    }
}

/// What a server stores about a SCRAM user: enough to check a client's proof and sign the
/// exchange, never enough to compute the password.
#[derive(Clone)]
pub struct Verifier {
    /// The PBKDF2 iteration count the password was salted with.
    pub iterations: u32,
    /// The salt (raw bytes).
    pub salt: Vec<u8>,
    /// H(ClientKey): checks a client's proof.
    pub stored_key: Key,
    /// Signs the exchange, proving the server knows the verifier.
    pub server_key: Key,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are secrets of a kind (they allow logging in to a server that trusts them
        // when combined with an exchange): never printed.
        f.debug_struct("Verifier")
            .field("iterations", &self.iterations)
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Parses PostgreSQL's `SCRAM-SHA-256$<iter>:<salt>$<StoredKey>:<ServerKey>`.
    pub fn parse(text: &str) -> Result<Verifier, AuthError> {
        let bad = |why: &str| AuthError::BadVerifier(why.to_string());
        let rest = text
            .strip_prefix("SCRAM-SHA-256$")
            .ok_or_else(|| bad("does not start with SCRAM-SHA-256$"))?;
        let (params, keys) = rest.split_once('$').ok_or_else(|| bad("missing '$'"))?;
        let (iter, salt) = params
            .split_once(':')
            .ok_or_else(|| bad("missing ':' after the iteration count"))?;
        let (stored, server) = keys
            .split_once(':')
            .ok_or_else(|| bad("missing ':' between the keys"))?;
        let iterations: u32 = iter.parse().map_err(|_| bad("invalid iteration count"))?;
        if iterations == 0 || iterations > MAX_ITERATIONS {
            return Err(bad("iteration count out of range"));
        }
        let salt = B64.decode(salt).map_err(|_| bad("salt is not base64"))?;
        if salt.is_empty() {
            return Err(bad("empty salt"));
        }
        Ok(Verifier {
            iterations,
            salt,
            stored_key: decode_key(stored)
                .ok_or_else(|| bad("StoredKey is not 32 base64 bytes"))?,
            server_key: decode_key(server)
                .ok_or_else(|| bad("ServerKey is not 32 base64 bytes"))?,
        })
    }

    /// The verifier PostgreSQL would store for `password` with this salt and count.
    pub fn from_password(password: &[u8], salt: &[u8], iterations: u32) -> Verifier {
        let salted = salted_password(&prepared_password(password), salt, iterations);
        let client_key = Zeroizing::new(hmac(&salted[..], &[b"Client Key"]));
        Verifier {
            iterations,
            salt: salt.to_vec(),
            stored_key: h(&client_key[..]),
            server_key: hmac(&salted[..], &[b"Server Key"]),
        }
    }

    /// The text form, as `pg_authid.rolpassword` holds it.
    pub fn encode(&self) -> String {
        format!(
            "SCRAM-SHA-256${}:{}${}:{}",
            self.iterations,
            B64.encode(&self.salt),
            B64.encode(self.stored_key),
            B64.encode(self.server_key)
        )
    }
}

/// Decodes a base64 32-byte key.
pub fn decode_key(text: &str) -> Option<Key> {
    let v = B64.decode(text).ok()?;
    v.try_into().ok()
}

/// Base64 (standard alphabet, padded), as SCRAM attributes use.
pub fn b64(data: &[u8]) -> String {
    B64.encode(data)
}

/// Decodes base64, refusing garbage.
pub fn unb64(text: &str) -> Option<Vec<u8>> {
    B64.decode(text).ok()
}

/// A fresh random nonce: 18 random bytes in base64 (printable, never a comma).
pub fn nonce() -> String {
    let bytes: [u8; 18] = rand::random();
    B64.encode(bytes)
}

/// The value of attribute `name` (one letter) in a comma-separated SCRAM message.
pub fn attr(message: &str, name: char) -> Option<&str> {
    message.split(',').find_map(|a| {
        let mut chars = a.chars();
        (chars.next() == Some(name) && chars.next() == Some('=')).then(|| &a[2..])
    })
}

/// What a client says about channel binding in its gs2 header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Binding {
    /// `n`: the client cannot bind (no TLS).
    Unsupported,
    /// `y`: the client could bind but believes the server cannot.
    Unrequested,
    /// `p=tls-server-end-point`, with the hash of the server certificate this leg sees.
    TlsServerEndPoint(Vec<u8>),
}

impl Binding {
    /// The gs2 header (no authzid).
    pub fn gs2_header(&self) -> &'static str {
        match self {
            Binding::Unsupported => "n,,",
            Binding::Unrequested => "y,,",
            Binding::TlsServerEndPoint(_) => "p=tls-server-end-point,,",
        }
    }

    /// The `c=` attribute's value: base64 of the gs2 header and the binding data.
    pub fn c_attribute(&self) -> String {
        let mut raw = self.gs2_header().as_bytes().to_vec();
        if let Binding::TlsServerEndPoint(data) = self {
            raw.extend_from_slice(data);
        }
        B64.encode(raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example: user "user", password "pencil".
    #[test]
    fn rfc7677_keys() {
        let salt = unb64("W22ZaJ0SNY7soEsUEjb6gQ==").unwrap();
        let v = Verifier::from_password(b"pencil", &salt, 4096);
        let auth_message = "n=user,r=rOprNGfwEbeRWgbNEkqO,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096,c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0";
        let sig = hmac(&v.server_key, &[auth_message.as_bytes()]);
        assert_eq!(b64(&sig), "6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=");
        let parsed = Verifier::parse(&v.encode()).unwrap();
        assert_eq!(parsed.stored_key, v.stored_key);
        assert_eq!(parsed.server_key, v.server_key);
    }

    #[test]
    fn bad_verifiers_are_refused() {
        for bad in [
            "",
            "md5abc",
            "SCRAM-SHA-256$0:AAAA$AAAA:AAAA",
            "SCRAM-SHA-256$4096:$AAAA:AAAA",
            "SCRAM-SHA-256$4096:c2FsdA==$AAAA:AAAA",
            "SCRAM-SHA-256$99999999999:c2FsdA==$AAAA:AAAA",
        ] {
            assert!(Verifier::parse(bad).is_err(), "{bad}");
        }
    }
}
