//! Redaction: passwords always, every literal with [`Redact::Literals`].
//!
//! Token level, so it works whether or not the statement parses. The rules:
//! - A *password key* is an unquoted word or quoted identifier ending in `password` (any
//!   case: `PASSWORD`, `sslpassword`, `app.db_password`) or a string literal ending in it
//!   (`set_config('app.password', ...)`, `jsonb_build_object('password', ...)`).
//! - After a key word, whitespace, comments and one or more of `=`, `=>`, `:=`, `TO` may
//!   come; then a literal (string of any kind, dollar quote, number) becomes `'***'`, a
//!   quoted identifier `"***"` (`PASSWORD "oops"`). After a separator, anything else but
//!   `NULL`, `DEFAULT` or a parameter is replaced up to the next whitespace (`password =
//!   md5('x')`, conninfo `password=secret` inside a dollar quote). `PASSWORD NULL` stays.
//!   After a key string literal, a `,` and then a literal: the literal becomes `'***'`.
//!   A `(` before the value is skipped (`PASSWORD ('x')`), and a string right after a
//!   redacted password string is redacted too (`'a'` newline `'b'` is one string).
//! - A password literal written `'...'` that contains a backslash is redacted to where it
//!   would end with backslash escapes too, in case `standard_conforming_strings` is off.
//! - Inside string literals and dollar quotes: `password` followed by `=` or `:` (or a
//!   quote) and a value (conninfo `password=x`, `password='a b'`, JSON `"password": "x"`,
//!   SQL in a string `PASSWORD ''x''`): the value becomes `***`; so does the password of a
//!   URI `scheme://user:secret@host`.
//! - Dollar quotes containing `password` are also lexed as SQL (function and `DO`
//!   bodies), up to [`MAX_NESTING`] levels, with the same rules.
//! - A comment containing `password` has its body replaced by `***`.
//! - [`Redact::Literals`]: every literal token becomes `?` (a password literal too).
//!
//! Edits are collected, then applied in order; overlapping edits merge (the whole
//! union is hidden). Nothing outside an edit changes, byte for byte.

use super::scan::{is_space, Kind, Lexer, StrKind, Token};
use super::{contains_ignore_ascii_case, find_ignore_ascii_case};
use crate::sql::Redact;
use std::borrow::Cow;
use std::ops::Range;

/// How deep dollar quotes inside dollar quotes are lexed as SQL (bounds the work to
/// `MAX_NESTING + 1` passes over any byte).
const MAX_NESTING: u8 = 4;

const KEY: &[u8] = b"password";

pub(super) fn redact(sql: &str, mode: Redact, scs: bool) -> Cow<'_, str> {
    if mode == Redact::Passwords
        && !contains_ignore_ascii_case(sql, "password")
        && !sql.contains("://")
    {
        return Cow::Borrowed(sql);
    }
    let mut edits = Vec::new();
    collect(
        sql,
        mode == Redact::Literals,
        scs,
        &mut edits,
        &mut Vec::new(),
    );
    if edits.is_empty() {
        Cow::Borrowed(sql)
    } else {
        Cow::Owned(apply(sql, edits))
    }
}

/// The parameters (`$n`, numbered from 1) that stand where the rules above expect a
/// password value: `PASSWORD $1`, `password => $2`, `set_config('app.password', $1, ...)`,
/// `OPTIONS (password $1)`. Their Bind values must be redacted like a literal there.
pub(super) fn secret_params(sql: &str, scs: bool) -> Vec<u32> {
    let mut params = Vec::new();
    if contains_ignore_ascii_case(sql, "password") {
        collect(sql, false, scs, &mut Vec::new(), &mut params);
    }
    params
}

/// A parameter's value with the in-literal rules applied: `password=...` (conninfo,
/// JSON, options) and a URI's `user:secret@` become `***`.
pub(super) fn redact_value(value: &str) -> Cow<'_, str> {
    if !contains_ignore_ascii_case(value, "password") && !value.contains("://") {
        return Cow::Borrowed(value);
    }
    let mut edits = Vec::new();
    in_string(value, 0..value.len(), Quoting::Raw, &mut edits);
    if edits.is_empty() {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(apply(value, edits))
    }
}

struct Edit {
    start: usize,
    end: usize,
    with: &'static str,
}

fn push(edits: &mut Vec<Edit>, r: Range<usize>, with: &'static str) {
    if r.end > r.start {
        edits.push(Edit {
            start: r.start,
            end: r.end,
            with,
        });
    }
}

/// Where a password value may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pw {
    Idle,
    /// After a key word or quoted identifier.
    AfterWord,
    /// After a key word and `=` (or `=>`, `:=`, `TO`).
    AfterSep,
    /// After a key string literal.
    AfterKeyString,
    /// After a key string literal and `,`.
    AfterKeyComma,
    /// After a redacted password string: PostgreSQL joins `'a'` and `'b'` separated by
    /// a newline into one string, so a string right after is redacted too.
    AfterValue,
}

impl Pw {
    /// Whether a literal coming now is a password.
    fn expects_value(self) -> bool {
        matches!(self, Pw::AfterWord | Pw::AfterSep | Pw::AfterKeyComma)
    }
}

/// One lexing pass: the whole statement, or a dollar-quoted body.
struct Frame {
    pos: usize,
    limit: usize,
    depth: u8,
    pw: Pw,
}

fn collect(sql: &str, literals: bool, scs: bool, edits: &mut Vec<Edit>, params: &mut Vec<u32>) {
    let mut outer: Vec<Frame> = Vec::new();
    let mut f = Frame {
        pos: 0,
        limit: sql.len(),
        depth: 0,
        pw: Pw::Idle,
    };
    let literal_with = if literals { "?" } else { "'***'" };
    loop {
        let text = sql.get(..f.limit).unwrap_or("");
        let lx = Lexer::new(text, scs);
        let Some(t) = lx.token(f.pos).filter(|t| t.end > f.pos) else {
            match outer.pop() {
                Some(o) => {
                    f = o;
                    continue;
                }
                None => return,
            }
        };
        f.pos = t.end;
        let tok = text.as_bytes().get(t.start..t.end).unwrap_or(&[]);
        let inner = text
            .as_bytes()
            .get(t.inner_start..t.inner_end)
            .unwrap_or(&[]);
        let pw = f.pw;
        f.pw = Pw::Idle;
        match t.kind {
            Kind::Space => f.pw = pw,
            Kind::LineComment | Kind::BlockComment => {
                f.pw = pw;
                if find_ignore_ascii_case(tok, 0, KEY).is_some() {
                    if t.kind == Kind::LineComment {
                        push(edits, t.start + 2..t.end, " ***");
                    } else if t.terminated {
                        push(edits, t.start..t.end, "/* *** */");
                    } else {
                        push(edits, t.start..t.end, "/* ***");
                    }
                }
            }
            Kind::Word => {
                if pw == Pw::AfterSep
                    && !tok.eq_ignore_ascii_case(b"null")
                    && !tok.eq_ignore_ascii_case(b"default")
                {
                    f.pos = run_end(&lx, t);
                    push(edits, t.start..f.pos, "***");
                } else if pw == Pw::AfterWord && tok.eq_ignore_ascii_case(b"to") {
                    f.pw = Pw::AfterSep;
                } else if ends_with_key(tok) {
                    f.pw = Pw::AfterWord;
                }
            }
            Kind::QuotedIdent => {
                if matches!(pw, Pw::AfterWord | Pw::AfterSep) {
                    push(edits, t.start..t.end, "\"***\"");
                } else if ends_with_key(inner) {
                    f.pw = Pw::AfterWord;
                }
            }
            Kind::Str(kind) => {
                if pw.expects_value() || pw == Pw::AfterValue {
                    // With standard_conforming_strings off, `\'` would not end the string.
                    let mut end = t.end;
                    if kind == StrKind::Standard && tok.contains(&b'\\') {
                        end = end.max(lx.quote_end(t.inner_start - 1, true).0);
                    }
                    f.pos = end;
                    f.pw = Pw::AfterValue;
                    push(edits, t.start..end, literal_with);
                } else {
                    if literals {
                        push(edits, t.start..t.end, "?");
                    } else {
                        in_string(sql, t.inner_start..t.inner_end, quoting(kind), edits);
                    }
                    if ends_with_key(inner) {
                        f.pw = Pw::AfterKeyString;
                    }
                }
            }
            Kind::Dollar | Kind::Number => {
                if pw.expects_value() {
                    push(edits, t.start..t.end, literal_with);
                } else if literals {
                    push(edits, t.start..t.end, "?");
                } else if t.kind == Kind::Dollar {
                    in_string(sql, t.inner_start..t.inner_end, Quoting::Raw, edits);
                    if f.depth < MAX_NESTING && find_ignore_ascii_case(inner, 0, KEY).is_some() {
                        let body = Frame {
                            pos: t.inner_start,
                            limit: t.inner_end,
                            depth: f.depth + 1,
                            pw: Pw::Idle,
                        };
                        outer.push(std::mem::replace(&mut f, body));
                    }
                }
            }
            Kind::Op => {
                let sep = tok == b"=" || tok == b"=>";
                if sep && matches!(pw, Pw::AfterWord | Pw::AfterSep) {
                    f.pw = Pw::AfterSep;
                } else if pw == Pw::AfterSep {
                    f.pos = run_end(&lx, t);
                    push(edits, t.start..f.pos, "***");
                }
            }
            Kind::Punct => {
                if tok == b":=" && matches!(pw, Pw::AfterWord | Pw::AfterSep) {
                    f.pw = Pw::AfterSep;
                } else if tok == b"," && pw == Pw::AfterKeyString {
                    f.pw = Pw::AfterKeyComma;
                } else if tok == b"(" && matches!(pw, Pw::AfterWord | Pw::AfterSep) {
                    // `PASSWORD ('x')`, `password = ('x')`.
                    f.pw = pw;
                }
            }
            Kind::Other => {
                if pw == Pw::AfterSep {
                    f.pos = run_end(&lx, t);
                    push(edits, t.start..f.pos, "***");
                }
            }
            Kind::Param => {
                if pw.expects_value() {
                    let n = std::str::from_utf8(tok.get(1..).unwrap_or_default())
                        .ok()
                        .and_then(|d| d.parse::<u32>().ok());
                    params.extend(n);
                    f.pw = Pw::AfterValue;
                }
            }
        }
    }
}

fn ends_with_key(s: &[u8]) -> bool {
    s.len() >= KEY.len()
        && s.get(s.len() - KEY.len()..)
            .is_some_and(|tail| tail.eq_ignore_ascii_case(KEY))
}

/// The end of the run of tokens from `t` not separated by whitespace or comments.
fn run_end(lx: &Lexer<'_>, t: Token) -> usize {
    let mut end = t.end;
    while let Some(n) = lx.token(end) {
        if n.end <= end || matches!(n.kind, Kind::Space | Kind::LineComment | Kind::BlockComment) {
            break;
        }
        end = n.end;
    }
    end
}

/// How a quote is written inside the content of a literal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Quoting {
    /// `''` (standard strings).
    Doubled,
    /// `\'` or `''`; a backslash escapes the next byte (E'...').
    Backslash,
    /// `'` (dollar quotes).
    Raw,
}

fn quoting(kind: StrKind) -> Quoting {
    match kind {
        StrKind::Escape => Quoting::Backslash,
        StrKind::Standard | StrKind::Bits | StrKind::Unicode => Quoting::Doubled,
    }
}

/// One character of a literal's value as written in its content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unit {
    Quote,
    Byte(u8),
}

/// The character at `j` and how many bytes it takes.
fn unit(c: &[u8], j: usize, q: Quoting) -> Option<(Unit, usize)> {
    let x = *c.get(j)?;
    let next = c.get(j + 1).copied();
    Some(match x {
        b'\'' if q != Quoting::Raw && next == Some(b'\'') => (Unit::Quote, 2),
        b'\'' => (Unit::Quote, 1),
        b'\\' if q == Quoting::Backslash => match next {
            Some(b'\'') => (Unit::Quote, 2),
            Some(y) => (Unit::Byte(y), 2),
            None => (Unit::Byte(x), 1),
        },
        _ => (Unit::Byte(x), 1),
    })
}

fn skip_spaces(c: &[u8], mut j: usize) -> usize {
    while c.get(j).is_some_and(|&x| is_space(x)) {
        j += 1;
    }
    j
}

/// Redacts password values and URI passwords inside the content of a literal.
fn in_string(sql: &str, content: Range<usize>, q: Quoting, edits: &mut Vec<Edit>) {
    let Some(c) = sql.as_bytes().get(content.clone()) else {
        return;
    };
    let base = content.start;
    let mut from = 0;
    while let Some(i) = find_ignore_ascii_case(c, from, KEY) {
        let mut j = i + KEY.len();
        from = j;
        if c.get(j) == Some(&b'"') {
            j += 1;
        }
        j = skip_spaces(c, j);
        let mut sep = false;
        while matches!(c.get(j), Some(b'=' | b':')) {
            j += 1;
            sep = true;
        }
        if sep && c.get(j) == Some(&b'>') {
            j += 1;
        }
        j = skip_spaces(c, j);
        let value = match unit(c, j, q) {
            Some((Unit::Quote, n)) => j + n..quoted_value_end(c, j + n, q),
            Some((Unit::Byte(b'"'), n)) if sep => j + n..json_string_end(c, j + n),
            Some(_) if sep => j..unquoted_value_end(c, j, q),
            _ => continue,
        };
        from = from.max(value.end);
        push(edits, base + value.start..base + value.end, "***");
    }
    let mut from = 0;
    while let Some(i) = find_ignore_ascii_case(c, from, b"://") {
        let a = i + 3;
        let e = c
            .get(a..)
            .and_then(|r| {
                r.iter()
                    .position(|&x| is_space(x) || x == b'\'' || x == b'"')
            })
            .map_or(c.len(), |off| a + off);
        from = e.max(a);
        let Some(authority) = c.get(a..e) else {
            continue;
        };
        let Some(at) = authority.iter().rposition(|&x| x == b'@') else {
            continue;
        };
        if let Some(colon) = authority
            .get(..at)
            .and_then(|u| u.iter().position(|&x| x == b':'))
        {
            push(edits, base + a + colon + 1..base + a + at, "***");
        }
    }
}

/// End of a conninfo value quoted with `'` (a backslash escapes the next character).
fn quoted_value_end(c: &[u8], mut k: usize, q: Quoting) -> usize {
    while let Some((u, n)) = unit(c, k, q) {
        match u {
            Unit::Quote => return k,
            Unit::Byte(b'\\') => {
                k += n;
                k += unit(c, k, q).map_or(0, |(_, m)| m);
            }
            Unit::Byte(_) => k += n,
        }
    }
    c.len()
}

/// End of an unquoted conninfo value: the next whitespace.
fn unquoted_value_end(c: &[u8], mut k: usize, q: Quoting) -> usize {
    while let Some((u, n)) = unit(c, k, q) {
        if matches!(u, Unit::Byte(x) if is_space(x)) {
            return k;
        }
        k += n;
    }
    c.len()
}

/// End of a JSON string value (a backslash escapes the next byte).
fn json_string_end(c: &[u8], mut k: usize) -> usize {
    while let Some(&x) = c.get(k) {
        match x {
            b'"' => return k,
            b'\\' => k += 2,
            _ => k += 1,
        }
    }
    c.len()
}

fn floor_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

fn ceil_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while i < s.len() && !s.is_char_boundary(i) {
        i += 1;
    }
    i
}

fn apply(sql: &str, mut edits: Vec<Edit>) -> String {
    edits.sort_unstable_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
    let mut out = String::with_capacity(sql.len());
    let mut copied = 0;
    for e in &edits {
        let start = floor_boundary(sql, e.start);
        let end = ceil_boundary(sql, e.end);
        if end <= copied {
            continue;
        }
        if start < copied {
            // Overlaps the previous edit, whose replacement is out: hide the rest too.
            copied = end;
            continue;
        }
        out.push_str(sql.get(copied..start).unwrap_or(""));
        out.push_str(e.with);
        copied = end;
    }
    out.push_str(sql.get(copied..).unwrap_or(""));
    out
}
