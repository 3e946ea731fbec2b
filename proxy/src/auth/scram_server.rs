//! The server side of SCRAM-SHA-256(-PLUS), run by pgvigil with the client from the user's
//! verifier (`[auth] mode = "scram"`).
//!
//! From the client's proof it recovers the ClientKey (proof XOR HMAC(StoredKey,
//! AuthMessage)) and accepts iff H(ClientKey) = StoredKey; that key then logs in upstream.
//! With PLUS the channel binding is pgvigil's own certificate, the one the client saw.
//!
//! An unknown user gets a made-up verifier (salt derived from the name and a process
//! secret, the same every time) and fails exactly like a wrong password, after a full
//! exchange. A step machine without I/O: hostile input reaches it as plain bytes.

use super::scram::{
    attr, b64, h, hmac, keys_equal, nonce, unb64, xor, Key, Verifier, KEY_LEN, SCRAM, SCRAM_PLUS,
    TLS_SERVER_END_POINT,
};
use super::AuthError;
use std::sync::OnceLock;
use zeroize::Zeroizing;

/// Iterations of the made-up verifiers: PostgreSQL's default, like most real ones.
const FAKE_ITERATIONS: u32 = 4096;

/// What the exchange proved, once the client's proof verified.
pub struct Proven {
    /// The ClientKey recovered from the proof: it logs in upstream.
    pub client_key: Zeroizing<Key>,
    /// The server-final message (`v=` ServerSignature) to send the client.
    pub server_final: String,
    /// `scram-sha-256` or `scram-sha-256-plus`.
    pub method: &'static str,
}

enum State {
    Start,
    /// Server-first sent.
    First {
        client_first_bare: String,
        server_first: String,
        /// The exact gs2 header the client sent (its `c=` must repeat it).
        gs2_header: String,
        nonce: String,
        plus: bool,
    },
    Done,
}

/// One SCRAM exchange with a client.
pub struct ScramServer {
    verifier: Verifier,
    /// False for a user pgvigil does not know: the exchange runs, and fails at the end.
    known: bool,
    /// `tls-server-end-point` of pgvigil's certificate when the client's link is TLS.
    end_point: Option<Vec<u8>>,
    state: State,
}

impl ScramServer {
    /// An exchange for `user`; `verifier` is `None` when the user is unknown. `end_point`
    /// enables SCRAM-SHA-256-PLUS.
    pub fn new(user: &str, verifier: Option<Verifier>, end_point: Option<Vec<u8>>) -> ScramServer {
        let known = verifier.is_some();
        ScramServer {
            verifier: verifier.unwrap_or_else(|| fake_verifier(user)),
            known,
            end_point,
            state: State::Start,
        }
    }

    /// The mechanisms to offer, PLUS first when the client's link can bind.
    pub fn mechanisms(&self) -> Vec<String> {
        let mut m = Vec::with_capacity(2);
        if self.end_point.is_some() {
            m.push(SCRAM_PLUS.to_string());
        }
        m.push(SCRAM.to_string());
        m
    }

    /// Reads the client-first message of the SASLInitialResponse; returns the server-first.
    pub fn client_first(&mut self, mechanism: &str, data: &[u8]) -> Result<String, AuthError> {
        if !matches!(self.state, State::Start) {
            return Err(malformed("client-first message out of order"));
        }
        let plus = match mechanism {
            SCRAM_PLUS if self.end_point.is_some() => true,
            SCRAM => false,
            _ => {
                return Err(malformed(
                    "client selected an invalid SASL authentication mechanism",
                ))
            }
        };
        let text = std::str::from_utf8(data).map_err(|_| malformed("message is not UTF-8"))?;
        // gs2-header = cbind-flag "," [authzid] ","
        let mut parts = text.splitn(3, ',');
        let flag = parts.next().unwrap_or_default();
        let authzid = parts
            .next()
            .ok_or_else(|| malformed("missing gs2 header"))?;
        let bare = parts
            .next()
            .ok_or_else(|| malformed("missing client-first-message-bare"))?;
        if !authzid.is_empty() {
            return Err(malformed(
                "client uses authorization identity, which is not supported",
            ));
        }
        match (flag, plus) {
            ("n", false) => {}
            // The client could bind but thinks we cannot: if we offered PLUS, someone
            // between us removed it (a downgrade), as PostgreSQL concludes too.
            ("y", false) if self.end_point.is_none() => {}
            ("y", false) => return Err(AuthError::ChannelBinding),
            (f, true) if f == format!("p={TLS_SERVER_END_POINT}") => {}
            _ => return Err(AuthError::ChannelBinding),
        }
        if bare.starts_with("m=") {
            return Err(malformed("mandatory extension not supported"));
        }
        if !bare.starts_with("n=") {
            return Err(malformed("missing user name attribute"));
        }
        let client_nonce = attr(bare, 'r').ok_or_else(|| malformed("missing nonce"))?;
        if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
            return Err(malformed("invalid nonce"));
        }
        let full_nonce = format!("{client_nonce}{}", nonce());
        let server_first = format!(
            "r={full_nonce},s={},i={}",
            b64(&self.verifier.salt),
            self.verifier.iterations
        );
        self.state = State::First {
            client_first_bare: bare.to_string(),
            server_first: server_first.clone(),
            gs2_header: format!("{flag},,"),
            nonce: full_nonce,
            plus,
        };
        Ok(server_first)
    }

    /// Reads the client-final message and checks the proof.
    pub fn client_final(&mut self, data: &[u8]) -> Result<Proven, AuthError> {
        let State::First {
            client_first_bare,
            server_first,
            gs2_header,
            nonce,
            plus,
        } = std::mem::replace(&mut self.state, State::Done)
        else {
            return Err(malformed("client-final message out of order"));
        };
        let text = std::str::from_utf8(data).map_err(|_| malformed("message is not UTF-8"))?;
        let (without_proof, proof) = text
            .rsplit_once(",p=")
            .ok_or_else(|| malformed("missing proof"))?;
        let c = attr(without_proof, 'c')
            .and_then(unb64)
            .ok_or_else(|| malformed("invalid channel binding attribute"))?;
        let mut expected_c = gs2_header.into_bytes();
        if plus {
            expected_c.extend_from_slice(self.end_point.as_deref().unwrap_or_default());
        }
        // Not secret: the client sent both halves itself.
        if c != expected_c {
            return Err(AuthError::ChannelBinding);
        }
        if attr(without_proof, 'r') != Some(nonce.as_str()) {
            return Err(malformed("nonce does not match"));
        }
        let proof: Key = unb64(proof)
            .and_then(|p| Key::try_from(p).ok())
            .ok_or_else(|| malformed("invalid proof"))?;
        let auth_message = format!("{client_first_bare},{server_first},{without_proof}");
        let client_signature = hmac(&self.verifier.stored_key, &[auth_message.as_bytes()]);
        let client_key = Zeroizing::new(xor(&proof, &client_signature));
        let matches = keys_equal(&h(&client_key[..]), &self.verifier.stored_key);
        if !(matches && self.known) {
            return Err(AuthError::WrongPassword);
        }
        let signature = hmac(&self.verifier.server_key, &[auth_message.as_bytes()]);
        Ok(Proven {
            client_key,
            server_final: format!("v={}", b64(&signature)),
            method: if plus {
                "scram-sha-256-plus"
            } else {
                "scram-sha-256"
            },
        })
    }
}

fn malformed(what: &str) -> AuthError {
    AuthError::Scram(format!("malformed SCRAM message: {what}"))
}

/// A verifier for a user that does not exist: its salt is an HMAC of the name under a
/// process secret (the same on every attempt, so repeated probes see a stable salt); its
/// keys match no password.
pub fn fake_verifier(user: &str) -> Verifier {
    static SECRET: OnceLock<[u8; 32]> = OnceLock::new();
    let secret = SECRET.get_or_init(rand::random);
    let salt = hmac(secret, &[b"salt", user.as_bytes()]);
    Verifier {
        iterations: FAKE_ITERATIONS,
        salt: salt[..16].to_vec(),
        stored_key: hmac(secret, &[b"stored", user.as_bytes()]),
        server_key: [0; KEY_LEN],
    }
}

#[cfg(test)]
#[path = "scram_server_tests.rs"]
mod tests;
