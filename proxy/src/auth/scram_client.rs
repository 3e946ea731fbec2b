//! The client side of SCRAM-SHA-256(-PLUS), for the upstream leg: from a password (`[auth]
//! mode = "password"`) or from a ClientKey recovered from the client's own proof (`mode =
//! "scram"`), in which case pgvigil never holds the password.
//!
//! A step machine without I/O (`message`, `update`, `finish`), so the fuzzer and the
//! property tests drive it without a connection.

use super::scram::{
    attr, b64, h, hmac, keys_equal, nonce, prepared_password, salted_password, unb64, xor, Binding,
    Key, Verifier, MAX_ITERATIONS,
};
use super::AuthError;
use zeroize::Zeroizing;

/// What the client proves it knows.
enum Secret {
    Password(Zeroizing<Vec<u8>>),
    /// The ClientKey and the verifier it belongs to: the server must use the same salt and
    /// iteration count, or the key means nothing to it.
    ClientKey {
        client_key: Zeroizing<Key>,
        verifier: Verifier,
    },
}

enum State {
    /// Client-first sent; waiting for the server-first.
    First,
    /// Client-final sent; the server's signature to expect.
    Final {
        server_signature: Key,
    },
    Done,
}

/// One SCRAM exchange, client side.
pub struct ScramClient {
    secret: Secret,
    binding: Binding,
    nonce: String,
    client_first_bare: String,
    /// The message to send now (client-first, then client-final); wiped when replaced.
    message: Zeroizing<Vec<u8>>,
    state: State,
}

impl ScramClient {
    /// An exchange proving knowledge of `password`.
    pub fn new(password: &[u8], binding: Binding) -> ScramClient {
        ScramClient::start(Secret::Password(prepared_password(password)), binding)
    }

    /// An exchange proving knowledge of `client_key`, whose verifier is `verifier`.
    pub fn with_client_key(client_key: Key, verifier: Verifier, binding: Binding) -> ScramClient {
        ScramClient::start(
            Secret::ClientKey {
                client_key: Zeroizing::new(client_key),
                verifier,
            },
            binding,
        )
    }

    fn start(secret: Secret, binding: Binding) -> ScramClient {
        let nonce = nonce();
        // PostgreSQL takes the user from the startup packet and ignores `n=`.
        let client_first_bare = format!("n=,r={nonce}");
        let message = format!("{}{client_first_bare}", binding.gs2_header());
        ScramClient {
            secret,
            binding,
            nonce,
            client_first_bare,
            message: Zeroizing::new(message.into_bytes()),
            state: State::First,
        }
    }

    /// The message to send now.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    /// Reads the server-first message and prepares the client-final one. With a password
    /// this derives the salted password (thousands of HMAC rounds: call it off the async
    /// workers).
    pub fn update(&mut self, server_first: &[u8]) -> Result<(), AuthError> {
        if !matches!(self.state, State::First) {
            return Err(AuthError::Scram("server-first message out of order".into()));
        }
        let text = std::str::from_utf8(server_first)
            .map_err(|_| AuthError::Scram("server-first message is not UTF-8".into()))?;
        if text.starts_with("m=") {
            return Err(AuthError::Scram("mandatory extension not supported".into()));
        }
        // Checked first: no key derivation with an absurd count is ever started.
        let iterations: u64 = attr(text, 'i')
            .and_then(|i| i.parse().ok())
            .ok_or_else(|| AuthError::Scram("invalid iteration count".into()))?;
        if iterations == 0 || iterations > u64::from(MAX_ITERATIONS) {
            return Err(AuthError::Scram(format!(
                "iteration count {iterations} refused"
            )));
        }
        let iterations = iterations as u32;
        let server_nonce = attr(text, 'r')
            .ok_or_else(|| AuthError::Scram("server-first message without a nonce".into()))?;
        if !server_nonce.starts_with(&self.nonce) || server_nonce.len() <= self.nonce.len() {
            return Err(AuthError::Scram(
                "the server's nonce does not extend ours".into(),
            ));
        }
        let salt = attr(text, 's')
            .and_then(unb64)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| AuthError::Scram("invalid salt".into()))?;
        let (client_key, server_key) = match &self.secret {
            Secret::Password(p) => {
                let salted = salted_password(p, &salt, iterations);
                (
                    Zeroizing::new(hmac(&salted[..], &[b"Client Key"])),
                    hmac(&salted[..], &[b"Server Key"]),
                )
            }
            Secret::ClientKey {
                client_key,
                verifier,
            } => {
                if verifier.salt != salt || verifier.iterations != iterations {
                    return Err(AuthError::VerifierMismatch);
                }
                (client_key.clone(), verifier.server_key)
            }
        };
        let without_proof = format!("c={},r={server_nonce}", self.binding.c_attribute());
        let auth_message = format!("{},{text},{without_proof}", self.client_first_bare);
        let stored_key = h(&client_key[..]);
        let client_signature = hmac(&stored_key, &[auth_message.as_bytes()]);
        let proof = Zeroizing::new(xor(&client_key, &client_signature));
        self.message =
            Zeroizing::new(format!("{without_proof},p={}", b64(&proof[..])).into_bytes());
        self.state = State::Final {
            server_signature: hmac(&server_key, &[auth_message.as_bytes()]),
        };
        Ok(())
    }

    /// Checks the server-final message: its signature proves the server knows the verifier.
    pub fn finish(&mut self, server_final: &[u8]) -> Result<(), AuthError> {
        let State::Final { server_signature } = &self.state else {
            return Err(AuthError::Scram("server-final message out of order".into()));
        };
        let text = std::str::from_utf8(server_final)
            .map_err(|_| AuthError::Scram("server-final message is not UTF-8".into()))?;
        if let Some(e) = attr(text, 'e') {
            return Err(AuthError::Scram(format!(
                "the server reported an error: {e}"
            )));
        }
        let v = attr(text, 'v')
            .and_then(unb64)
            .and_then(|v| Key::try_from(v).ok())
            .ok_or_else(|| AuthError::Scram("invalid server-final message".into()))?;
        if !keys_equal(&v, server_signature) {
            return Err(AuthError::Scram("the server's signature is wrong".into()));
        }
        self.state = State::Done;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal honest server for one exchange, from a verifier.
    fn serve(client: &mut ScramClient, v: &Verifier) -> Result<(), AuthError> {
        let first = String::from_utf8(client.message().to_vec()).unwrap();
        let bare = first.splitn(3, ',').nth(2).unwrap().to_string();
        let cnonce = attr(&bare, 'r').unwrap().to_string();
        let server_first = format!("r={cnonce}SRV,s={},i={}", b64(&v.salt), v.iterations);
        client.update(server_first.as_bytes())?;
        let fin = String::from_utf8(client.message().to_vec()).unwrap();
        let (without, proof) = fin.rsplit_once(",p=").unwrap();
        let am = format!("{bare},{server_first},{without}");
        let sig = hmac(&v.stored_key, &[am.as_bytes()]);
        let ck = xor(&Key::try_from(unb64(proof).unwrap()).unwrap(), &sig);
        assert_eq!(h(&ck), v.stored_key, "the proof must verify");
        let sv = hmac(&v.server_key, &[am.as_bytes()]);
        client.finish(format!("v={}", b64(&sv)).as_bytes())
    }

    #[test]
    fn password_and_client_key_both_verify() {
        let v = Verifier::from_password(b"secret", b"saltsalt", 16);
        let mut c = ScramClient::new(b"secret", Binding::TlsServerEndPoint(vec![1; 32]));
        serve(&mut c, &v).unwrap();
        let salted = salted_password(b"secret", b"saltsalt", 16);
        let ck = hmac(&salted[..], &[b"Client Key"]);
        let mut c = ScramClient::with_client_key(ck, v.clone(), Binding::Unsupported);
        serve(&mut c, &v).unwrap();
    }

    #[test]
    fn another_salt_upstream_is_a_mismatch() {
        let v = Verifier::from_password(b"secret", b"saltsalt", 16);
        let other = Verifier::from_password(b"secret", b"othersalt", 16);
        let salted = salted_password(b"secret", b"saltsalt", 16);
        let ck = hmac(&salted[..], &[b"Client Key"]);
        let mut c = ScramClient::with_client_key(ck, v, Binding::Unsupported);
        assert!(matches!(
            serve(&mut c, &other),
            Err(AuthError::VerifierMismatch)
        ));
    }
}
