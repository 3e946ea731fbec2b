//! Readers for the client and server messages the statement tracker looks into.
//!
//! The bytes are the (possibly capped) head of a frame that came off the network: every
//! read is bounds-checked and a short or malformed body yields what could be read, never a
//! panic. The server validates the same messages for real; the tracker only needs a
//! faithful view of the valid ones and a harmless one of the rest.

/// A bounds-checked cursor over a message body.
pub struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(body: &'a [u8]) -> Reader<'a> {
        Reader { rest: body }
    }

    /// A NUL-terminated string; at the end of a capped head, what is there.
    pub fn cstr(&mut self) -> &'a [u8] {
        match self.rest.iter().position(|&b| b == 0) {
            Some(end) => {
                let (s, tail) = self.rest.split_at(end);
                self.rest = tail.get(1..).unwrap_or_default();
                s
            }
            None => std::mem::take(&mut self.rest),
        }
    }

    pub fn u8(&mut self) -> Option<u8> {
        let (&b, tail) = self.rest.split_first()?;
        self.rest = tail;
        Some(b)
    }

    pub fn i16(&mut self) -> Option<i16> {
        let b = self.take(2)?;
        Some(i16::from_be_bytes([b[0], b[1]]))
    }

    pub fn i32(&mut self) -> Option<i32> {
        let b = self.take(4)?;
        Some(i32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// `n` bytes, or `None` (and nothing consumed) when fewer are left.
    pub fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (s, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(s)
    }
}

/// Text of a NUL-terminated field, lossy (PostgreSQL would reject invalid UTF-8 in a
/// UTF-8 database; the log must not).
pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A Parse message: statement name and query text.
pub fn parse(body: &[u8]) -> (String, String) {
    let mut r = Reader::new(body);
    let name = text(r.cstr());
    let query = text(r.cstr());
    (name, query)
}

/// A Bind message's portal and statement names, and its parameters rendered for the log
/// when `max` is given (text format as text, binary as hex, each cut to `max` bytes, NULL
/// as `NULL`). A head capped before the parameters end gives the ones it holds.
pub fn bind(body: &[u8], max: Option<usize>) -> (String, String, Option<Vec<String>>) {
    let mut r = Reader::new(body);
    let portal = text(r.cstr());
    let statement = text(r.cstr());
    let Some(max) = max else {
        return (portal, statement, None);
    };
    let mut params = Vec::new();
    let formats: Vec<i16> = match r.i16() {
        Some(n) if n >= 0 => (0..n).map_while(|_| r.i16()).collect(),
        _ => return (portal, statement, Some(params)),
    };
    let count = match r.i16() {
        Some(n) if n >= 0 => n as usize,
        _ => return (portal, statement, Some(params)),
    };
    for i in 0..count {
        let binary = match formats.len() {
            0 => false,
            1 => formats[0] == 1,
            _ => formats.get(i).copied() == Some(1),
        };
        let Some(len) = r.i32() else { break };
        if len < 0 {
            params.push("NULL".to_string());
            continue;
        }
        let Some(value) = r.take(len as usize) else {
            params.push("<not captured>".to_string());
            break;
        };
        params.push(render_param(value, binary, max));
    }
    (portal, statement, Some(params))
}

fn render_param(value: &[u8], binary: bool, max: usize) -> String {
    let cut = &value[..value.len().min(max)];
    // A connection string or URI with a password inside, in either format (a binary
    // `text` parameter is its UTF-8 bytes: hex would only hide it from a casual reader),
    // is written as redacted text.
    let as_text = if binary {
        std::str::from_utf8(cut)
            .ok()
            .map(std::borrow::Cow::Borrowed)
    } else {
        Some(String::from_utf8_lossy(cut))
    };
    if let Some(std::borrow::Cow::Owned(redacted)) =
        as_text.as_deref().map(crate::sql::lex::redact_parameter)
    {
        let mut out = redacted;
        if value.len() > max {
            out.push_str("...");
        }
        return out;
    }
    let mut out = if binary {
        let mut s = String::with_capacity(2 + cut.len() * 2);
        s.push_str("\\x");
        for b in cut {
            s.push_str(&format!("{b:02x}"));
        }
        s
    } else {
        String::from_utf8_lossy(cut).into_owned()
    };
    if value.len() > max {
        out.push_str("...");
    }
    out
}

/// An Execute message's portal name.
pub fn execute(body: &[u8]) -> (String, u32) {
    let mut r = Reader::new(body);
    let name = text(r.cstr());
    // 0 (or a negative value, which the server also treats as 0) means no limit.
    let max_rows = r.i32().and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
    (name, max_rows)
}

/// A Close or Describe message: `S` (statement) or `P` (portal), and the name.
pub fn close(body: &[u8]) -> (u8, String) {
    let mut r = Reader::new(body);
    let kind = r.u8().unwrap_or(0);
    (kind, text(r.cstr()))
}

/// A FunctionCall message's function oid.
pub fn function_call(body: &[u8]) -> Option<u32> {
    Reader::new(body).i32().map(|v| v as u32)
}

/// The row count in a CommandComplete tag (`INSERT 0 5`, `DELETE 5`, `SELECT 3`,
/// `COPY 10`, ...); `None` for tags without one (`CREATE TABLE`).
pub fn rows(tag: &[u8]) -> Option<u64> {
    let tag = tag.split(|&b| b == 0).next().unwrap_or_default();
    let mut words = tag.split(|&b| b == b' ');
    let first = words.next()?;
    let counted = matches!(
        first,
        b"INSERT" | b"DELETE" | b"UPDATE" | b"SELECT" | b"MOVE" | b"FETCH" | b"COPY" | b"MERGE"
    );
    if !counted {
        return None;
    }
    let last = tag.rsplit(|&b| b == b' ').next()?;
    std::str::from_utf8(last).ok()?.parse().ok()
}

/// A server error message with every double-quoted part replaced by `"***"`. PostgreSQL
/// quotes the offending input in its messages (`at or near "'secret"`, `invalid input
/// syntax for type integer: "4111..."`), so an error about a statement whose text had to be
/// redacted may repeat what was redacted.
pub fn scrub_message(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut inside = false;
    for ch in msg.chars() {
        match (ch, inside) {
            ('"', false) => {
                out.push_str("\"***");
                inside = true;
            }
            ('"', true) => {
                out.push('"');
                inside = false;
            }
            (_, true) => {}
            (c, false) => out.push(c),
        }
    }
    if inside {
        out.push('"');
    }
    out
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
