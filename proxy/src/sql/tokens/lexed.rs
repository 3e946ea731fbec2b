//! Tokens for the token path: sqlparser's tokenizer, reduced to what the scan needs
//! (kind, text, quoting, whether whitespace came before), with each parenthesis matched.
//! When the tokenizer fails (an unterminated quote, often a statement cut at the parse
//! limit), a crude quote-aware split stands in. Both are linear and never fail.

use crate::sql::names;
use sqlparser::dialect::PostgreSqlDialect;
use sqlparser::tokenizer::{Token, Tokenizer};

/// A token as the scan sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tk {
    Word,
    Str,
    Num,
    LParen,
    RParen,
    Comma,
    Period,
    Semi,
    /// `::`
    Cast,
    Op,
    Other,
}

/// One token: kind, text (word or string value), whether a word was quoted, and whether
/// whitespace or a comment came before it.
#[derive(Debug, Clone)]
pub struct T {
    /// What the token is.
    pub kind: Tk,
    /// A word's value, a string literal's content, an operator's or number's text.
    pub text: String,
    /// A double-quoted identifier.
    pub quoted: bool,
    /// Whitespace or a comment came before it.
    pub gap: bool,
}

impl T {
    /// An unquoted word spelled `kw` (ASCII case-insensitive).
    pub fn is(&self, kw: &str) -> bool {
        self.kind == Tk::Word && !self.quoted && self.text.eq_ignore_ascii_case(kw)
    }

    /// An unquoted word spelled as one of `kws`.
    pub fn is_any(&self, kws: &[&str]) -> bool {
        kws.iter().any(|k| self.is(k))
    }

    /// The folded identifier.
    pub fn folded(&self) -> String {
        names::fold(&self.text, self.quoted)
    }
}

/// Tokens plus the index of each parenthesis's match (`len` when unmatched).
pub struct Lexed {
    /// The tokens, whitespace and comments dropped.
    pub toks: Vec<T>,
    /// For each `(`, the index of its `)` (`toks.len()` when unmatched).
    pub close: Vec<usize>,
    /// True when the tokenizer failed and a crude split stood in.
    pub crude: bool,
}

impl Lexed {
    /// Builds the parenthesis map, iteratively.
    pub fn new(toks: Vec<T>, crude: bool) -> Lexed {
        let n = toks.len();
        let mut close = vec![n; n];
        let mut stack = Vec::new();
        for (i, t) in toks.iter().enumerate() {
            match t.kind {
                Tk::LParen => stack.push(i),
                Tk::RParen => {
                    if let Some(o) = stack.pop() {
                        if let Some(c) = close.get_mut(o) {
                            *c = i;
                        }
                    }
                }
                _ => {}
            }
        }
        Lexed { toks, close, crude }
    }

    /// Token `i`, if any.
    pub fn get(&self, i: usize) -> Option<&T> {
        self.toks.get(i)
    }

    /// Whether token `i` is the unquoted word `kw`.
    pub fn is(&self, i: usize, kw: &str) -> bool {
        self.get(i).is_some_and(|t| t.is(kw))
    }

    /// Whether token `i` has kind `k`.
    pub fn kind_is(&self, i: usize, k: Tk) -> bool {
        self.get(i).is_some_and(|t| t.kind == k)
    }

    /// The index just past the group opened at `i` (or `i + 1` if `i` is no group).
    pub fn past_group(&self, i: usize) -> usize {
        match self.get(i) {
            Some(t) if t.kind == Tk::LParen => {
                self.close.get(i).copied().unwrap_or(i).saturating_add(1)
            }
            _ => i + 1,
        }
    }

    /// A qualified name starting at `i` (`a`, `a.b`, `"A".b`): folded parts and the index
    /// after it. Empty parts when `i` is not a word.
    pub fn name_at(&self, i: usize) -> (Vec<String>, usize) {
        let mut parts = Vec::new();
        let mut j = i;
        while let Some(t) = self.get(j) {
            if t.kind != Tk::Word {
                break;
            }
            parts.push(t.folded());
            j += 1;
            if self.kind_is(j, Tk::Period) && self.kind_is(j + 1, Tk::Word) {
                j += 1;
            } else {
                break;
            }
        }
        (parts, j)
    }
}

/// Tokens from sqlparser's tokenizer, or from a crude split when it fails.
pub fn lex(sql: &str) -> Lexed {
    let dialect = PostgreSqlDialect {};
    let Ok(tokens) = Tokenizer::new(&dialect, sql).tokenize() else {
        return Lexed::new(crude(sql), true);
    };
    let mut out = Vec::with_capacity(tokens.len());
    let mut gap = false;
    for t in tokens {
        let (kind, text, quoted) = match t {
            Token::Whitespace(_) => {
                gap = true;
                continue;
            }
            Token::EOF => continue,
            Token::Word(w) => (Tk::Word, w.value, w.quote_style.is_some()),
            Token::SingleQuotedString(s)
            | Token::EscapedStringLiteral(s)
            | Token::NationalStringLiteral(s)
            | Token::UnicodeStringLiteral(s)
            | Token::HexStringLiteral(s)
            | Token::SingleQuotedByteStringLiteral(s) => (Tk::Str, s, false),
            Token::DollarQuotedString(d) => (Tk::Str, d.value, false),
            Token::Number(n, _) => (Tk::Num, n, false),
            Token::LParen => (Tk::LParen, String::new(), false),
            Token::RParen => (Tk::RParen, String::new(), false),
            Token::Comma => (Tk::Comma, String::new(), false),
            Token::Period => (Tk::Period, String::new(), false),
            Token::SemiColon => (Tk::Semi, String::new(), false),
            Token::DoubleColon => (Tk::Cast, String::new(), false),
            Token::Placeholder(_) | Token::LBracket | Token::RBracket | Token::Colon => {
                (Tk::Other, String::new(), false)
            }
            other => (Tk::Op, other.to_string(), false),
        };
        out.push(T {
            kind,
            text,
            quoted,
            gap,
        });
        gap = false;
    }
    Lexed::new(out, false)
}

/// A quote-aware split for text the tokenizer rejects: strings, quoted identifiers,
/// dollar quotes and comments run to their end or to the end of the text.
fn crude(sql: &str) -> Vec<T> {
    let c: Vec<char> = sql.chars().collect();
    let n = c.len();
    let at = |i: usize| c.get(i).copied().unwrap_or('\0');
    let mut out = Vec::new();
    let mut gap = false;
    let mut i = 0;
    while i < n {
        let ch = at(i);
        let start = i;
        let (kind, text, quoted) = if ch.is_whitespace() {
            gap = true;
            i += 1;
            continue;
        } else if ch == '-' && at(i + 1) == '-' {
            while i < n && at(i) != '\n' {
                i += 1;
            }
            gap = true;
            continue;
        } else if ch == '/' && at(i + 1) == '*' {
            i += 2;
            while i < n && !(at(i) == '*' && at(i + 1) == '/') {
                i += 1;
            }
            i = (i + 2).min(n);
            gap = true;
            continue;
        } else if ch == '\'' || ch == '"' {
            let mut s = String::new();
            i += 1;
            while i < n {
                if at(i) == ch {
                    if at(i + 1) == ch {
                        s.push(ch);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                s.push(at(i));
                i += 1;
            }
            if ch == '"' {
                (Tk::Word, s, true)
            } else {
                (Tk::Str, s, false)
            }
        } else if ch == '$' && (at(i + 1) == '$' || at(i + 1).is_alphabetic() || at(i + 1) == '_') {
            let mut j = i + 1;
            while j < n && (at(j).is_alphanumeric() || at(j) == '_') {
                j += 1;
            }
            // A tag is an identifier (at most 63 bytes); bounding it bounds the search.
            if at(j) == '$' && j - i <= 64 {
                let tag: Vec<char> = c.get(i..=j).map(|s| s.to_vec()).unwrap_or_default();
                let body_start = j + 1;
                let mut k = body_start;
                while k < n && c.get(k..k + tag.len()) != Some(tag.as_slice()) {
                    k += 1;
                }
                let body: String = c
                    .get(body_start..k.min(n))
                    .map(|s| s.iter().collect())
                    .unwrap_or_default();
                i = (k + tag.len()).min(n);
                (Tk::Str, body, false)
            } else {
                i = j;
                (Tk::Other, String::new(), false)
            }
        } else if ch.is_alphabetic() || ch == '_' {
            while i < n && (at(i).is_alphanumeric() || at(i) == '_' || at(i) == '$') {
                i += 1;
            }
            (
                Tk::Word,
                c.get(start..i)
                    .map(|s| s.iter().collect())
                    .unwrap_or_default(),
                false,
            )
        } else if ch.is_ascii_digit() {
            while i < n && (at(i).is_ascii_alphanumeric() || at(i) == '.') {
                i += 1;
            }
            let digits = c
                .get(start..i)
                .map(|s| s.iter().collect())
                .unwrap_or_default();
            (Tk::Num, digits, false)
        } else {
            i += 1;
            let kind = match ch {
                '(' => Tk::LParen,
                ')' => Tk::RParen,
                ',' => Tk::Comma,
                '.' => Tk::Period,
                ';' => Tk::Semi,
                ':' if at(i) == ':' => {
                    i += 1;
                    Tk::Cast
                }
                '[' | ']' | ':' => Tk::Other,
                _ => Tk::Op,
            };
            let text = if kind == Tk::Op {
                ch.to_string()
            } else {
                String::new()
            };
            (kind, text, false)
        };
        out.push(T {
            kind,
            text,
            quoted,
            gap,
        });
        gap = false;
    }
    out
}

/// Whether PostgreSQL splits a run of touching operator tokens (their texts, in order)
/// the way the tokenizer did. PostgreSQL reads the whole run of operator characters as
/// one operator, then gives back trailing `+`/`-` unless the operator holds one of
/// `~!@#^&|`?%` (so `=-1` is `=` and `-1`, but `@@@` is one operator, possibly
/// user-defined). `<>` is ambiguous (the tokenizer prints `!=` as `<>`): a run holding
/// it counts as split differently.
pub fn pg_splits_same(texts: &[&str]) -> bool {
    if texts.len() < 2 {
        return true;
    }
    if texts.contains(&"<>") {
        return false;
    }
    let chars: Vec<char> = texts.iter().flat_map(|t| t.chars()).collect();
    let mut pg = Vec::new();
    let mut pos = 0;
    while pos < chars.len() {
        let rest = chars.get(pos..).unwrap_or(&[]);
        let mut len = rest.len();
        if !rest.iter().any(|c| "~!@#^&|`?%".contains(*c)) {
            while len > 1 && matches!(rest.get(len - 1), Some('+' | '-')) {
                len -= 1;
            }
        }
        pg.push(len);
        pos += len;
    }
    let ours: Vec<usize> = texts.iter().map(|t| t.chars().count()).collect();
    pg == ours
}
