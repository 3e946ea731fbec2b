//! The client-facing SCRAM server against pgvigil's own SCRAM client: right, wrong and
//! unknown users, channel binding, and an attacker's altered messages.

use super::*;
use crate::auth::{Binding, ScramClient};

fn verifier() -> Verifier {
    Verifier::from_password(b"right", b"0123456789abcdef", 32)
}

/// Runs a whole exchange; returns the server's verdict.
fn exchange(
    server: &mut ScramServer,
    mech: &str,
    client: &mut ScramClient,
) -> Result<Proven, AuthError> {
    let first = server.client_first(mech, client.message())?;
    client.update(first.as_bytes())?;
    let proven = server.client_final(client.message())?;
    client.finish(proven.server_final.as_bytes())?;
    Ok(proven)
}

#[test]
fn right_password_recovers_the_client_key() {
    let ep = vec![9u8; 32];
    let mut s = ScramServer::new("alice", Some(verifier()), Some(ep.clone()));
    assert_eq!(s.mechanisms(), [SCRAM_PLUS, SCRAM]);
    let mut c = ScramClient::new(b"right", Binding::TlsServerEndPoint(ep));
    let p = exchange(&mut s, SCRAM_PLUS, &mut c).unwrap();
    assert_eq!(p.method, "scram-sha-256-plus");
    assert_eq!(h(&p.client_key[..]), verifier().stored_key);
    // The recovered key logs in wherever the same verifier is stored.
    let mut s = ScramServer::new("alice", Some(verifier()), None);
    let mut c = ScramClient::with_client_key(*p.client_key, verifier(), Binding::Unsupported);
    assert_eq!(
        exchange(&mut s, SCRAM, &mut c).unwrap().method,
        "scram-sha-256"
    );
}

#[test]
fn wrong_password_and_unknown_user_fail_alike() {
    let mut s = ScramServer::new("alice", Some(verifier()), None);
    let mut c = ScramClient::new(b"wrong", Binding::Unsupported);
    assert!(matches!(
        exchange(&mut s, SCRAM, &mut c),
        Err(AuthError::WrongPassword)
    ));
    let mut s = ScramServer::new("nobody", None, None);
    let mut c = ScramClient::new(b"anything", Binding::Unsupported);
    assert!(matches!(
        exchange(&mut s, SCRAM, &mut c),
        Err(AuthError::WrongPassword)
    ));
    // The made-up salt is stable per name, and differs between names.
    assert_eq!(fake_verifier("nobody").salt, fake_verifier("nobody").salt);
    assert_ne!(fake_verifier("nobody").salt, fake_verifier("nobody2").salt);
}

#[test]
fn channel_binding_to_another_certificate_is_refused() {
    let mut s = ScramServer::new("alice", Some(verifier()), Some(vec![1; 32]));
    let mut c = ScramClient::new(b"right", Binding::TlsServerEndPoint(vec![2; 32]));
    assert!(matches!(
        exchange(&mut s, SCRAM_PLUS, &mut c),
        Err(AuthError::ChannelBinding)
    ));
}

#[test]
fn downgrade_from_plus_is_refused() {
    // PLUS was offered; a client saying "y" (it thinks we cannot bind) saw it removed.
    let mut s = ScramServer::new("alice", Some(verifier()), Some(vec![1; 32]));
    let mut c = ScramClient::new(b"right", Binding::Unrequested);
    assert!(matches!(
        exchange(&mut s, SCRAM, &mut c),
        Err(AuthError::ChannelBinding)
    ));
    // PLUS without TLS is not offered, so not accepted.
    let mut s = ScramServer::new("alice", Some(verifier()), None);
    let mut c = ScramClient::new(b"right", Binding::TlsServerEndPoint(vec![1; 32]));
    assert!(exchange(&mut s, SCRAM_PLUS, &mut c).is_err());
}

#[test]
fn altered_messages_are_refused() {
    let mut s = ScramServer::new("alice", Some(verifier()), None);
    for bad in [
        &b""[..],
        b"n,,",
        b"n,a=bob,n=,r=abc",
        b"x,,n=,r=abc",
        b"n,,m=ext,n=,r=abc",
        b"n,,n=,r=",
        b"\xff\xfe",
    ] {
        assert!(s.client_first(SCRAM, bad).is_err(), "{bad:?}");
    }
    // A final message with another nonce, or a short proof.
    let mut c = ScramClient::new(b"right", Binding::Unsupported);
    let first = s.client_first(SCRAM, c.message()).unwrap();
    c.update(first.as_bytes()).unwrap();
    let fin = String::from_utf8(c.message().to_vec()).unwrap();
    let other_nonce = fin.replacen(",r=", ",r=X", 1);
    assert!(s.client_final(other_nonce.as_bytes()).is_err());
    // The state is spent after one final message: a replay is refused too.
    assert!(s.client_final(fin.as_bytes()).is_err());
}

mod hostile {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a client sends, the server answers or refuses; it never panics, and it
        /// never accepts without the right proof.
        #[test]
        fn arbitrary_client_messages_never_panic_or_pass(
            mech in prop_oneof![Just(SCRAM.to_string()), Just(SCRAM_PLUS.to_string()), ".{0,20}"],
            first in prop::collection::vec(any::<u8>(), 0..200),
            last in prop::collection::vec(any::<u8>(), 0..300),
            prefix in prop_oneof![Just("n,,n=,r=".to_string()), Just("p=tls-server-end-point,,n=,r=".to_string()), Just(String::new())],
        ) {
            let mut s = ScramServer::new("alice", Some(verifier()), Some(vec![3; 32]));
            let mut msg = prefix.into_bytes();
            msg.extend_from_slice(&first);
            if let Ok(server_first) = s.client_first(&mech, &msg) {
                prop_assert!(server_first.starts_with("r="));
                let mut fin = b"c=biws,r=".to_vec();
                fin.extend_from_slice(&last);
                prop_assert!(s.client_final(&fin).is_err());
                prop_assert!(s.client_final(&last).is_err());
            }
        }
    }
}
