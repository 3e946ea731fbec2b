//! Lexical tools that never fail: statement splitting, fingerprints, redaction.
//!
//! All of them run on `scan::Lexer` (`scan.rs`), a hand-written lexer following
//! PostgreSQL's `scan.l`: linear time, no allocation, no recursion, never panics, and any
//! text (with unterminated strings, quoted identifiers, dollar quotes or comments) lexes.

#[path = "redact.rs"]
mod redact_impl;
pub(crate) mod scan;

use super::Redact;
use scan::{is_space, Kind, Lexer};
use std::borrow::Cow;
use std::hash::{BuildHasher, DefaultHasher, Hasher};
use std::ops::Range;

/// Byte ranges of the non-empty statements of a simple query, in order, split where
/// PostgreSQL splits (top-level semicolons; not inside strings, quoted identifiers,
/// dollar quotes, comments, parentheses (`CREATE RULE ... DO (a; b)`) or
/// `BEGIN ATOMIC ... END` bodies).
///
/// A range excludes the semicolon and surrounding whitespace but keeps comments; a piece
/// with nothing but whitespace and comments is dropped, as PostgreSQL runs nothing for it.
/// Assumes `standard_conforming_strings` is on (the default); see [`split_with`].
///
/// With the setting off, `select 'a\' , ' ; drop table t; select 1 -- '` is one
/// statement here and three to the server: a session that turns it off must be split
/// with [`split_with`] (the server reports the setting in a ParameterStatus message).
pub fn split(sql: &str) -> Vec<Range<usize>> {
    split_with(sql, true)
}

/// [`split`] for a session whose `standard_conforming_strings` may be off (backslashes
/// then escape in `'...'` strings too).
pub fn split_with(sql: &str, standard_conforming_strings: bool) -> Vec<Range<usize>> {
    struct Ranges(Vec<Range<usize>>);
    impl Pieces for Ranges {
        fn token(&mut self, _: Kind, _: bool, _: &[u8], _: usize) {}
        fn end(&mut self, piece: Option<Range<usize>>) {
            self.0.extend(piece);
        }
    }
    let mut out = Ranges(Vec::new());
    split_into(sql, standard_conforming_strings, &mut out);
    out.0
}

/// What [`split_into`] tells as it goes: every token of a piece (whitespace and comments
/// included, with the offset where it ends), then the piece's end with its range, or
/// `None` for a piece of nothing but whitespace and comments (dropped).
trait Pieces {
    fn token(&mut self, kind: Kind, terminated: bool, text: &[u8], end: usize);
    fn end(&mut self, piece: Option<Range<usize>>);
}

/// The one pass behind [`split_with`] and [`Fingerprinter::split_with`].
fn split_into(sql: &str, standard_conforming_strings: bool, pieces: &mut impl Pieces) {
    let lx = Lexer::new(sql, standard_conforming_strings);
    let bytes = sql.as_bytes();
    let mut piece_start = 0;
    let mut significant = false;
    let mut st = SplitState::default();
    let mut pos = 0;
    while let Some(t) = lx.token(lx.skip_spaces(pos)) {
        if t.end <= pos {
            break;
        }
        pos = t.end;
        let text = bytes.get(t.start..t.end).unwrap_or(&[]);
        match t.kind {
            Kind::Space | Kind::LineComment | Kind::BlockComment => {
                pieces.token(t.kind, t.terminated, text, t.end)
            }
            Kind::Punct if text == b";" && st.paren == 0 && st.atomic == 0 => {
                pieces.end(significant.then(|| trim(bytes, piece_start, t.start)));
                piece_start = t.end;
                significant = false;
                st = SplitState::default();
            }
            _ => {
                significant = true;
                st.feed(t.kind, text);
                pieces.token(t.kind, t.terminated, text, t.end);
            }
        }
    }
    if significant {
        pieces.end(Some(trim(bytes, piece_start, sql.len())));
    }
}

/// `start..end` without leading and trailing (PostgreSQL) whitespace.
fn trim(bytes: &[u8], mut start: usize, mut end: usize) -> Range<usize> {
    while start < end && bytes.get(start).is_some_and(|&c| is_space(c)) {
        start += 1;
    }
    while end > start && bytes.get(end - 1).is_some_and(|&c| is_space(c)) {
        end -= 1;
    }
    start..end
}

/// How the statement started, as far as `CREATE [OR REPLACE] FUNCTION|PROCEDURE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Head {
    #[default]
    Start,
    Create,
    CreateOr,
    CreateOrReplace,
    Routine,
    Other,
}

/// The previous significant token, as far as `BEGIN ATOMIC ... END` is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Prev {
    #[default]
    Other,
    Semicolon,
    Begin,
    Atomic,
}

/// What decides whether a `;` ends the statement.
#[derive(Debug, Default)]
struct SplitState {
    head: Head,
    paren: usize,
    /// Open `BEGIN ATOMIC` bodies.
    atomic: usize,
    prev: Prev,
}

impl SplitState {
    /// Feeds one significant token (not whitespace or a comment).
    ///
    /// A `BEGIN ATOMIC` body ends at the `END` right after a `;` (or right after `ATOMIC`,
    /// for an empty body): PostgreSQL's grammar requires every statement of the body to
    /// end with `;`, and admits no transaction statement there. The `END` of a `CASE`
    /// follows an expression and an `END` used as a column label follows an expression or
    /// `AS`, so neither is mistaken for it, and no `CASE` counting is needed.
    fn feed(&mut self, kind: Kind, text: &[u8]) {
        let word = |w: &str| kind == Kind::Word && text.eq_ignore_ascii_case(w.as_bytes());
        self.head = match self.head {
            Head::Start if word("create") => Head::Create,
            Head::Create if word("or") => Head::CreateOr,
            Head::CreateOr if word("replace") => Head::CreateOrReplace,
            Head::Create | Head::CreateOrReplace if word("function") || word("procedure") => {
                Head::Routine
            }
            Head::Routine => Head::Routine,
            _ => Head::Other,
        };
        let prev = self.prev;
        self.prev = Prev::Other;
        match kind {
            Kind::Punct if text == b"(" => self.paren += 1,
            Kind::Punct if text == b")" => self.paren = self.paren.saturating_sub(1),
            Kind::Punct if text == b";" => self.prev = Prev::Semicolon,
            Kind::Word if self.head == Head::Routine => {
                if word("begin") && self.paren == 0 {
                    self.prev = Prev::Begin;
                } else if word("atomic") && prev == Prev::Begin {
                    self.atomic += 1;
                    self.prev = Prev::Atomic;
                } else if word("end")
                    && self.atomic > 0
                    && (prev == Prev::Semicolon || prev == Prev::Atomic)
                {
                    self.atomic -= 1;
                }
            }
            _ => {}
        }
    }
}

/// Literal-blind fingerprints, keyed so clients cannot craft collisions.
pub struct Fingerprinter {
    state: std::hash::RandomState,
}

impl Default for Fingerprinter {
    fn default() -> Self {
        Fingerprinter {
            state: std::hash::RandomState::new(),
        }
    }
}

/// Token kinds as hashed. Every token is `kind [varint length, bytes]`, so the encoding
/// is prefix-free and token boundaries are unambiguous.
const FP_LITERAL: u8 = 1;
const FP_WORD: u8 = 2;
const FP_QUOTED_IDENT: u8 = 3;
const FP_PARAM: u8 = 4;
const FP_OP: u8 = 5;
const FP_PUNCT: u8 = 6;
const FP_OTHER: u8 = 7;
/// Leads the stream when `standard_conforming_strings` is off.
const FP_NONSTANDARD_STRINGS: u8 = 8;
/// A literal or block comment running to the end of the text: sqlparser cannot tokenize
/// such a statement, so it is classified by the crude token path, unlike the same text
/// with the literal or comment closed (or absent).
const FP_UNTERMINATED: u8 = 9;

impl Fingerprinter {
    /// Fingerprint of a statement: same for texts that differ only in literals,
    /// whitespace, comments and the case of unquoted words.
    ///
    /// Hashed: unquoted words ASCII-lowercased, quoted identifiers, parameters, operators
    /// (maximal runs of operator characters, so `@-` and `@ -` differ) and punctuation
    /// exactly as written; every literal (string of any kind, dollar quote, number) as
    /// one placeholder. Equal fingerprints thus mean equal token sequences up to literal
    /// values and word case (barring a keyed 64-bit hash collision).
    pub fn fingerprint(&self, sql: &str) -> u64 {
        self.fingerprint_with(sql, true)
    }

    /// [`Fingerprinter::fingerprint`] for a session whose `standard_conforming_strings`
    /// may be off. The setting is part of the key: it changes where strings end.
    pub fn fingerprint_with(&self, sql: &str, standard_conforming_strings: bool) -> u64 {
        let lx = Lexer::new(sql, standard_conforming_strings);
        let bytes = sql.as_bytes();
        let mut sink = self.sink(standard_conforming_strings);
        let mut pos = 0;
        // Whitespace is most tokens; skipping it here saves a dispatch per token.
        while let Some(t) = lx.token(lx.skip_spaces(pos)) {
            if t.end <= pos {
                break;
            }
            pos = t.end;
            sink.token(
                t.kind,
                t.terminated,
                bytes.get(t.start..t.end).unwrap_or(&[]),
            );
        }
        sink.finish()
    }

    /// [`split_with`] and each piece's [`Fingerprinter::fingerprint_with`] (the same
    /// values), in one pass over the text instead of one to split and one per piece.
    pub fn split_with(
        &self,
        sql: &str,
        standard_conforming_strings: bool,
    ) -> Vec<(Range<usize>, u64)> {
        struct Hashed<'a> {
            fingerprinter: &'a Fingerprinter,
            sql: &'a str,
            scs: bool,
            sink: Sink,
            last_end: usize,
            out: Vec<(Range<usize>, u64)>,
        }
        impl Pieces for Hashed<'_> {
            fn token(&mut self, kind: Kind, terminated: bool, text: &[u8], end: usize) {
                self.sink.token(kind, terminated, text);
                self.last_end = end;
            }
            fn end(&mut self, piece: Option<Range<usize>>) {
                let sink = std::mem::replace(&mut self.sink, self.fingerprinter.sink(self.scs));
                let Some(range) = piece else {
                    return;
                };
                // A token left open at the end of the text (`U&"...`) also holds the
                // trailing whitespace the piece's range leaves out: lexed on its own the
                // piece ends that token sooner, so hash the piece on its own.
                let fingerprint = if self.last_end > range.end {
                    let text = self.sql.get(range.clone()).unwrap_or_default();
                    self.fingerprinter.fingerprint_with(text, self.scs)
                } else {
                    sink.finish()
                };
                self.out.push((range, fingerprint));
            }
        }
        let mut hashed = Hashed {
            fingerprinter: self,
            sql,
            scs: standard_conforming_strings,
            sink: self.sink(standard_conforming_strings),
            last_end: 0,
            out: Vec::new(),
        };
        split_into(sql, standard_conforming_strings, &mut hashed);
        hashed.out
    }

    /// A fresh token stream's hash state.
    fn sink(&self, standard_conforming_strings: bool) -> Sink {
        let mut sink = Sink {
            hasher: self.state.build_hasher(),
            buf: [0; SINK_BUF],
            n: 0,
        };
        if !standard_conforming_strings {
            sink.byte(FP_NONSTANDARD_STRINGS);
        }
        sink
    }
}

const SINK_BUF: usize = 128;

/// Buffers the encoded token stream so the hasher sees few, large writes.
struct Sink {
    hasher: DefaultHasher,
    buf: [u8; SINK_BUF],
    n: usize,
}

impl Sink {
    #[inline]
    fn flush(&mut self) {
        self.hasher.write(self.buf.get(..self.n).unwrap_or(&[]));
        self.n = 0;
    }

    #[inline]
    fn byte(&mut self, b: u8) {
        if self.n >= SINK_BUF {
            self.flush();
        }
        if let Some(slot) = self.buf.get_mut(self.n) {
            *slot = b;
            self.n += 1;
        }
    }

    #[inline]
    fn varint(&mut self, mut v: usize) {
        loop {
            let low = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                self.byte(low);
                return;
            }
            self.byte(low | 0x80);
        }
    }

    #[inline]
    fn bytes(&mut self, data: &[u8], lowercase: bool) {
        for chunk in data.chunks(SINK_BUF) {
            if self.n + chunk.len() > SINK_BUF {
                self.flush();
            }
            if let Some(dst) = self.buf.get_mut(self.n..self.n + chunk.len()) {
                // Tokens are short: a loop beats a call to memcpy.
                if lowercase {
                    for (d, s) in dst.iter_mut().zip(chunk) {
                        *d = s.to_ascii_lowercase();
                    }
                } else {
                    for (d, s) in dst.iter_mut().zip(chunk) {
                        *d = *s;
                    }
                }
                self.n += chunk.len();
            }
        }
    }

    /// Adds one token as the fingerprint hashes it (whitespace and closed comments not
    /// at all; literals as a placeholder; unquoted words lowercased).
    fn token(&mut self, kind: Kind, terminated: bool, text: &[u8]) {
        let kind = match kind {
            Kind::BlockComment if !terminated => {
                self.byte(FP_UNTERMINATED);
                return;
            }
            Kind::Space | Kind::LineComment | Kind::BlockComment => return,
            Kind::Str(_) | Kind::Dollar | Kind::Number => {
                self.byte(if terminated {
                    FP_LITERAL
                } else {
                    FP_UNTERMINATED
                });
                return;
            }
            Kind::Word => {
                self.byte(FP_WORD);
                self.varint(text.len());
                self.bytes(text, true);
                return;
            }
            Kind::QuotedIdent => FP_QUOTED_IDENT,
            Kind::Param => FP_PARAM,
            Kind::Op => FP_OP,
            Kind::Punct => FP_PUNCT,
            Kind::Other => FP_OTHER,
        };
        self.byte(kind);
        self.varint(text.len());
        self.bytes(text, false);
    }

    fn finish(mut self) -> u64 {
        self.flush();
        self.hasher.finish()
    }
}

/// The statement as it may be logged: passwords always removed; with
/// [`Redact::Literals`] every literal replaced by `?`.
///
/// Returns `Cow::Borrowed` when nothing changes; in [`Redact::Passwords`] mode a text
/// without `password` (any case) or `://` is returned without being lexed. See
/// `redact.rs` for the rules.
pub fn redact(sql: &str, mode: Redact) -> Cow<'_, str> {
    redact_impl::redact(sql, mode, true)
}

/// The numbers of the parameters (`$n`) a statement binds where a password goes
/// (`PASSWORD $1`, `set_config('app.password', $1, false)`): their values are secrets.
pub fn secret_params(sql: &str, standard_conforming_strings: bool) -> Vec<u32> {
    redact_impl::secret_params(sql, standard_conforming_strings)
}

/// A Bind parameter's value as it may be logged: `password=...` inside it (a dblink
/// connection string, JSON, options) and a URI's password become `***`.
pub fn redact_parameter(value: &str) -> Cow<'_, str> {
    redact_impl::redact_value(value)
}

/// [`redact`] for a session whose `standard_conforming_strings` may be off.
pub fn redact_with(sql: &str, mode: Redact, standard_conforming_strings: bool) -> Cow<'_, str> {
    redact_impl::redact(sql, mode, standard_conforming_strings)
}

/// The statement as a lexer assuming `standard_conforming_strings` on (sqlparser's, which
/// the token classifier uses) must see it when the session has the setting off: there,
/// `'...'` and `N'...'` strings take backslash escapes exactly as `E'...'` strings do, so
/// each becomes an `E'...'` string, after a space so it cannot join a preceding word.
/// Without this, `'a\''` would end at the backslash and the rest of the statement (its
/// tables) would read as a string. Every other byte is kept.
pub fn with_escape_strings(sql: &str) -> Cow<'_, str> {
    let lx = Lexer::new(sql, false);
    let mut out = String::new();
    let mut copied = 0;
    let mut pos = 0;
    while let Some(t) = lx.token(lx.skip_spaces(pos)) {
        if t.end <= pos {
            break;
        }
        pos = t.end;
        if t.kind != Kind::Str(scan::StrKind::Escape)
            || sql
                .as_bytes()
                .get(t.start)
                .is_some_and(|c| matches!(c, b'E' | b'e'))
        {
            continue;
        }
        // A string token starts at its prefix and `inner_start` is past the quote: both are
        // ASCII positions, so the slices below are on character boundaries.
        let (Some(before), Some(_)) = (sql.get(copied..t.start), sql.get(t.start..t.inner_start))
        else {
            continue;
        };
        out.push_str(before);
        out.push_str(" E'");
        copied = t.inner_start;
    }
    if copied == 0 {
        return Cow::Borrowed(sql);
    }
    out.push_str(sql.get(copied..).unwrap_or_default());
    Cow::Owned(out)
}

/// Whether `hay` contains `needle`, ignoring ASCII case. O(len(hay) * len(needle)) at
/// worst; meant for short needles.
pub fn contains_ignore_ascii_case(hay: &str, needle: &str) -> bool {
    find_ignore_ascii_case(hay.as_bytes(), 0, needle.as_bytes()).is_some()
}

/// The first index at or after `from` where `needle` occurs in `hay`, ignoring ASCII case.
pub(crate) fn find_ignore_ascii_case(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let Some(&first) = needle.first() else {
        return (from <= hay.len()).then_some(from);
    };
    let last_start = hay.len().checked_sub(needle.len())?;
    let first = first.to_ascii_lowercase();
    let mut i = from;
    while i <= last_start {
        let off = hay
            .get(i..=last_start)?
            .iter()
            .position(|c| c.to_ascii_lowercase() == first)?;
        i += off;
        if hay
            .get(i..i + needle.len())
            .is_some_and(|w| w.eq_ignore_ascii_case(needle))
        {
            return Some(i);
        }
        i += 1;
    }
    None
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod redact_tests;
