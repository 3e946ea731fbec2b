//! The stand-ins a refused message is replaced with. Each earns exactly the replies the
//! refused message would have earned had the server failed it, so the conversation stays in
//! step and the transaction state stays the server's:
//! - a simple Query or a FunctionCall becomes a Query of a `DO` block that raises the
//!   chosen SQLSTATE and message: ErrorResponse, then ReadyForQuery; inside a transaction
//!   block the server aborts the block, as after any error;
//! - an extended-protocol Parse or Execute becomes an Execute of a portal that cannot exist
//!   (its name has 128 random bits, drawn once per process): ErrorResponse (34000), after
//!   which the server skips to Sync and aborts a transaction block. That one ErrorResponse
//!   is replaced on its way back with the refusal's ([`error`]).

use super::Denial;
use std::sync::OnceLock;

/// The portal name no client can know.
fn nowhere() -> &'static str {
    static NAME: OnceLock<String> = OnceLock::new();
    NAME.get_or_init(|| format!("pgvigil-refused-{:032x}", rand::random::<u128>()))
}

/// Text safe inside a single-quoted literal nested in a dollar-quoted `DO` body, with
/// either setting of `standard_conforming_strings`: quotes doubled, backslashes and
/// dollar signs and control characters left out.
fn literal(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for ch in s.chars() {
        match ch {
            '\'' => out.push_str("''"),
            '\\' | '$' => {}
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn frame(tag: u8, body: &[u8]) -> Vec<u8> {
    let len = u32::try_from(body.len().saturating_add(4)).unwrap_or(u32::MAX);
    let mut out = Vec::with_capacity(body.len() + 5);
    out.push(tag);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// The Query that fails as `d` says.
pub fn query(d: &Denial) -> Vec<u8> {
    let sql = format!(
        "DO $pgvigil$BEGIN RAISE EXCEPTION USING ERRCODE = '{}', MESSAGE = '{}'; END$pgvigil$",
        literal(d.sqlstate),
        literal(&d.message)
    );
    let mut body = sql.into_bytes();
    body.push(0);
    frame(b'Q', &body)
}

/// The Execute that fails (34000) in place of a refused Parse or Execute.
pub fn execute() -> Vec<u8> {
    let mut body = nowhere().as_bytes().to_vec();
    body.push(0);
    body.extend_from_slice(&0u32.to_be_bytes());
    frame(b'E', &body)
}

/// Whether a server error is the one [`execute`] earns (it then carries the portal name).
pub fn is_stand_in_error(sqlstate: Option<&str>, message: &str) -> bool {
    sqlstate == Some("34000") && message.contains(nowhere())
}

/// The ErrorResponse the client gets for `d`.
pub fn error(d: &Denial) -> Vec<u8> {
    crate::wire::messages::error_response(
        crate::wire::messages::Severity::Error,
        d.sqlstate,
        &d.message,
        None,
    )
    .to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literal_cannot_escape() {
        assert_eq!(literal("a'b\\c$d\ne"), "a''bcd e");
        let d = Denial {
            by: "r".into(),
            sqlstate: "42501",
            message: "x'; DROP TABLE t; --$pgvigil$".into(),
        };
        let q = query(&d);
        let text = String::from_utf8_lossy(&q[5..]);
        assert_eq!(text.matches("$pgvigil$").count(), 2, "{text}");
        assert!(text.contains("x''; DROP"), "{text}");
    }
}
