//! PostgreSQL's lexical rules (`src/backend/parser/scan.l`), one token at a time.
//!
//! Never fails and never allocates: every byte of any `&str` belongs to exactly one token,
//! an unterminated string, quoted identifier, dollar quote or comment runs to the end of
//! the text. Every token boundary is at an ASCII byte or the end of the text (bytes >= 0x80
//! are identifier characters, as in PostgreSQL), hence on a char boundary. Work is linear
//! in the token's length (the dollar-quote search is `str::find`, which is linear).

/// How the content of a quoted string literal is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrKind {
    /// `'...'`, `N'...'` with `standard_conforming_strings` on: only `''` is special.
    Standard,
    /// `E'...'` (and `'...'` with `standard_conforming_strings` off): `\x` and `''`.
    Escape,
    /// `B'...'`, `X'...'`.
    Bits,
    /// `U&'...'`.
    Unicode,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Spaces, tabs, newlines, carriage returns, form and vertical feeds.
    Space,
    /// `-- ...` up to (not including) the end of the line.
    LineComment,
    /// `/* ... */`, nesting.
    BlockComment,
    /// An unquoted identifier or keyword.
    Word,
    /// `"..."` or `U&"..."`.
    QuotedIdent,
    Str(StrKind),
    /// `$tag$...$tag$`.
    Dollar,
    Number,
    /// `$1`.
    Param,
    /// A maximal run of operator characters (not crossing `--` or `/*`).
    Op,
    /// `( ) [ ] , ; . .. : :: :=`.
    Punct,
    /// Anything else (one ASCII byte: `\`, `{`, a stray `$`, control characters).
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Token {
    pub kind: Kind,
    pub start: usize,
    pub end: usize,
    /// For strings, quoted identifiers and dollar quotes: the content between the
    /// delimiters (to the end of the text when unterminated). Otherwise `start..end`.
    pub inner_start: usize,
    pub inner_end: usize,
    /// False for a string, quoted identifier, dollar quote or block comment that runs to
    /// the end of the text without its closing delimiter.
    pub terminated: bool,
}

impl Token {
    #[inline(always)]
    fn simple(kind: Kind, start: usize, end: usize) -> Token {
        Token {
            kind,
            start,
            end,
            inner_start: start,
            inner_end: end,
            terminated: true,
        }
    }
}

const SPACE: u8 = 1;
const IDENT_START: u8 = 2;
const IDENT_CONT: u8 = 4;
const OP_CHAR: u8 = 8;

/// Character classes by byte, as in scan.l: `space`, `ident_start` (letters, `_`, and
/// every byte >= 0x80), `ident_cont` (those, digits and `$`), `op_chars`.
static CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        let mut k = 0;
        if matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c) {
            k |= SPACE;
        }
        if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 {
            k |= IDENT_START | IDENT_CONT;
        }
        if c.is_ascii_digit() || c == b'$' {
            k |= IDENT_CONT;
        }
        if matches!(
            c,
            b'~' | b'!'
                | b'@'
                | b'#'
                | b'^'
                | b'&'
                | b'|'
                | b'`'
                | b'?'
                | b'+'
                | b'-'
                | b'*'
                | b'/'
                | b'%'
                | b'<'
                | b'>'
                | b'='
        ) {
            k |= OP_CHAR;
        }
        t[i] = k;
        i += 1;
    }
    t
};

#[inline]
fn class(c: u8) -> u8 {
    // A u8 index into a 256-entry table cannot be out of bounds.
    CLASS[c as usize]
}

#[inline]
pub(crate) fn is_space(c: u8) -> bool {
    class(c) & SPACE != 0
}

#[inline]
fn is_ident_start(c: u8) -> bool {
    class(c) & IDENT_START != 0
}

#[inline]
fn is_ident_cont(c: u8) -> bool {
    class(c) & IDENT_CONT != 0
}

#[inline]
fn is_op_char(c: u8) -> bool {
    class(c) & OP_CHAR != 0
}

/// A lexer over one text; `token(pos)` gives the token starting at `pos`.
#[derive(Clone, Copy)]
pub(crate) struct Lexer<'a> {
    s: &'a str,
    b: &'a [u8],
    /// `standard_conforming_strings`: whether backslashes are literal in `'...'`.
    scs: bool,
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(s: &'a str, standard_conforming_strings: bool) -> Lexer<'a> {
        Lexer {
            s,
            b: s.as_bytes(),
            scs: standard_conforming_strings,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.b.len()
    }

    /// The byte at `i`, or 0 past the end (0 is in no character class that matters).
    #[inline]
    fn at(&self, i: usize) -> u8 {
        self.b.get(i).copied().unwrap_or(0)
    }

    #[inline]
    fn skip_while(&self, mut i: usize, f: impl Fn(u8) -> bool) -> usize {
        while let Some(&c) = self.b.get(i) {
            if !f(c) {
                break;
            }
            i += 1;
        }
        i
    }

    /// The first index at or after `i` whose byte satisfies `f`.
    #[inline]
    fn find_from(&self, i: usize, f: impl Fn(u8) -> bool) -> Option<usize> {
        self.b
            .get(i..)
            .and_then(|rest| rest.iter().position(|&c| f(c)))
            .map(|off| i + off)
    }

    /// The first index at or after `pos` that is not whitespace.
    #[inline(always)]
    pub(crate) fn skip_spaces(&self, pos: usize) -> usize {
        self.skip_while(pos, is_space)
    }

    /// The token starting at `pos`; `None` at (or past) the end. The token is never
    /// empty: `end > start == pos`.
    #[inline(always)]
    pub(crate) fn token(&self, pos: usize) -> Option<Token> {
        let c = *self.b.get(pos)?;
        let next = self.at(pos + 1);
        let t = match c {
            _ if is_space(c) => Token::simple(Kind::Space, pos, self.skip_while(pos + 1, is_space)),
            b'-' if next == b'-' => {
                let end = self
                    .find_from(pos + 2, |c| c == b'\n' || c == b'\r')
                    .unwrap_or(self.len());
                Token::simple(Kind::LineComment, pos, end)
            }
            b'/' if next == b'*' => self.block_comment(pos),
            b'\'' => self.quoted(self.plain_kind(), pos, pos),
            b'"' => self.quoted(Kind::QuotedIdent, pos, pos),
            b'$' => self.dollar(pos),
            b'0'..=b'9' => self.number(pos),
            b'.' if next.is_ascii_digit() => self.number(pos),
            b'.' if next == b'.' => Token::simple(Kind::Punct, pos, pos + 2),
            b':' if next == b':' || next == b'=' => Token::simple(Kind::Punct, pos, pos + 2),
            b'(' | b')' | b'[' | b']' | b',' | b';' | b'.' | b':' => {
                Token::simple(Kind::Punct, pos, pos + 1)
            }
            _ if is_ident_start(c) => self.word(pos),
            _ if is_op_char(c) => self.operator(pos),
            _ => Token::simple(Kind::Other, pos, pos + 1),
        };
        Some(t)
    }

    #[inline]
    fn plain_kind(&self) -> Kind {
        if self.scs {
            Kind::Str(StrKind::Standard)
        } else {
            Kind::Str(StrKind::Escape)
        }
    }

    #[inline]
    fn block_comment(&self, pos: usize) -> Token {
        let mut depth: usize = 1;
        let mut i = pos + 2;
        while let Some(j) = self.find_from(i, |c| c == b'*' || c == b'/') {
            let (c, d) = (self.at(j), self.at(j + 1));
            if c == b'/' && d == b'*' {
                depth = depth.saturating_add(1);
                i = j + 2;
            } else if c == b'*' && d == b'/' {
                depth -= 1;
                i = j + 2;
                if depth == 0 {
                    return Token {
                        kind: Kind::BlockComment,
                        start: pos,
                        end: i,
                        inner_start: pos + 2,
                        inner_end: j,
                        terminated: true,
                    };
                }
            } else {
                i = j + 1;
            }
        }
        Token {
            kind: Kind::BlockComment,
            start: pos,
            end: self.len(),
            inner_start: pos + 2,
            inner_end: self.len(),
            terminated: false,
        }
    }

    /// A quoted token of `kind` starting at `start` whose opening quote is at `quote`.
    #[inline]
    fn quoted(&self, kind: Kind, start: usize, quote: usize) -> Token {
        let escapes = kind == Kind::Str(StrKind::Escape);
        let (end, inner_end, terminated) = self.quote_end(quote, escapes);
        Token {
            kind,
            start,
            end,
            inner_start: quote + 1,
            inner_end,
            terminated,
        }
    }

    /// Where the quoted text opened at `quote` ends: (end, content end, terminated).
    /// The quote character is the byte at `quote`; it is doubled to stand for itself, and
    /// with `escapes` a backslash also escapes the next byte.
    #[inline]
    pub(crate) fn quote_end(&self, quote: usize, escapes: bool) -> (usize, usize, bool) {
        let q = self.at(quote);
        let mut i = quote + 1;
        while let Some(j) = self.find_from(i, |c| c == q || (escapes && c == b'\\')) {
            // `\x` (with escapes) or a doubled quote: skip both bytes.
            if (escapes && self.at(j) == b'\\') || self.at(j + 1) == q {
                i = j + 2;
            } else {
                return (j + 1, j, true);
            }
        }
        (self.len(), self.len(), false)
    }

    #[inline]
    fn dollar(&self, pos: usize) -> Token {
        let n = self.at(pos + 1);
        if n.is_ascii_digit() {
            return Token::simple(Kind::Param, pos, self.decimal(pos + 1));
        }
        let tag_end = if n == b'$' {
            pos + 1
        } else if is_ident_start(n) {
            self.skip_while(pos + 2, |c| is_ident_start(c) || c.is_ascii_digit())
        } else {
            return Token::simple(Kind::Other, pos, pos + 1);
        };
        if self.at(tag_end) != b'$' {
            return Token::simple(Kind::Other, pos, pos + 1);
        }
        let body = tag_end + 1;
        let Some(delim) = self.s.get(pos..body) else {
            return Token::simple(Kind::Other, pos, pos + 1);
        };
        match self.s.get(body..).and_then(|rest| rest.find(delim)) {
            Some(off) => Token {
                kind: Kind::Dollar,
                start: pos,
                end: body + off + delim.len(),
                inner_start: body,
                inner_end: body + off,
                terminated: true,
            },
            None => Token {
                kind: Kind::Dollar,
                start: pos,
                end: self.len(),
                inner_start: body,
                inner_end: self.len(),
                terminated: false,
            },
        }
    }

    /// `digit (_? digit)*` from `i`, where the byte at `i` is a digit.
    #[inline]
    fn decimal(&self, i: usize) -> usize {
        self.radix_digits(i, |c| c.is_ascii_digit())
    }

    #[inline]
    fn radix_digits(&self, mut i: usize, digit: fn(u8) -> bool) -> usize {
        loop {
            if digit(self.at(i)) {
                i += 1;
            } else if self.at(i) == b'_' && digit(self.at(i + 1)) {
                i += 2;
            } else {
                return i;
            }
        }
    }

    #[inline]
    fn number(&self, pos: usize) -> Token {
        if self.at(pos) == b'0' {
            let digit: Option<fn(u8) -> bool> = match self.at(pos + 1) | 0x20 {
                b'x' => Some(|c: u8| c.is_ascii_hexdigit()),
                b'o' => Some(|c: u8| (b'0'..=b'7').contains(&c)),
                b'b' => Some(|c: u8| c == b'0' || c == b'1'),
                _ => None,
            };
            if let Some(digit) = digit {
                let end = self.radix_digits(pos + 2, digit);
                if end > pos + 2 {
                    return Token::simple(Kind::Number, pos, end);
                }
            }
        }
        let mut i = if self.at(pos) == b'.' {
            self.decimal(pos + 1)
        } else {
            let mut i = self.decimal(pos);
            // `1..2` is `1` `..` `2`.
            if self.at(i) == b'.' && self.at(i + 1) != b'.' {
                i += 1;
                if self.at(i).is_ascii_digit() {
                    i = self.decimal(i);
                }
            }
            i
        };
        if (self.at(i) | 0x20) == b'e' {
            let mut j = i + 1;
            if self.at(j) == b'+' || self.at(j) == b'-' {
                j += 1;
            }
            if self.at(j).is_ascii_digit() {
                i = self.decimal(j);
            }
        }
        Token::simple(Kind::Number, pos, i)
    }

    #[inline(always)]
    fn word(&self, pos: usize) -> Token {
        let end = self.skip_while(pos + 1, is_ident_cont);
        if end == pos + 1 {
            let q = self.at(end);
            match self.at(pos) | 0x20 {
                b'e' if q == b'\'' => return self.quoted(Kind::Str(StrKind::Escape), pos, end),
                b'b' | b'x' if q == b'\'' => {
                    return self.quoted(Kind::Str(StrKind::Bits), pos, end)
                }
                b'n' if q == b'\'' => return self.quoted(self.plain_kind(), pos, end),
                b'u' if q == b'&' => match self.at(end + 1) {
                    b'\'' => return self.quoted(Kind::Str(StrKind::Unicode), pos, end + 1),
                    b'"' => return self.quoted(Kind::QuotedIdent, pos, end + 1),
                    _ => {}
                },
                _ => {}
            }
        }
        Token::simple(Kind::Word, pos, end)
    }

    #[inline(always)]
    fn operator(&self, pos: usize) -> Token {
        let mut i = pos + 1;
        while is_op_char(self.at(i)) {
            let (c, d) = (self.at(i), self.at(i + 1));
            if (c == b'-' && d == b'-') || (c == b'/' && d == b'*') {
                break;
            }
            i += 1;
        }
        Token::simple(Kind::Op, pos, i)
    }
}
