//! The entry point: split, look up the cache, classify (AST first, tokens when it cannot),
//! redact.

use super::cache::Cache;
use super::lex::{self, Fingerprinter};
use super::named::{self, NamedCommand};
use super::{ast, names, tokens, Classification, Redact};
use std::borrow::Cow;
use std::sync::Arc;

/// How the classifier behaves; from `[audit]`.
#[derive(Debug, Clone, Copy)]
pub struct ClassifierOptions {
    /// Statements longer than this are classified from the tokens of their prefix.
    pub max_parse_bytes: usize,
    /// Budget of the classification cache (0 disables it).
    pub cache_bytes: usize,
    pub redact: Redact,
}

impl Default for ClassifierOptions {
    fn default() -> Self {
        ClassifierOptions {
            max_parse_bytes: 64 * 1024,
            cache_bytes: 16 * 1024 * 1024,
            redact: Redact::Passwords,
        }
    }
}

/// One classified statement, ready to be logged.
#[derive(Debug, Clone)]
pub struct Statement {
    /// The statement text after redaction.
    pub text: Arc<str>,
    /// Whether redaction changed the text (a password or, with `redact = "literals"`, a
    /// literal was removed): messages about the statement may quote what was removed.
    pub redacted: bool,
    pub class: Arc<Classification>,
    /// Whether the classification came from the cache.
    pub cache_hit: bool,
    /// For statements acting on a named prepared statement or cursor: the name, and the
    /// statement a PREPARE prepares or a DECLARE's query.
    pub named: Option<Arc<Named>>,
}

/// What a statement does to a session's named prepared statements and cursors.
#[derive(Debug, Clone)]
pub struct Named {
    pub command: NamedCommand,
    /// The PREPAREd statement or the cursor's query, classified and redacted on its own.
    pub query: Option<Statement>,
}

/// Shared by all sessions.
pub struct Classifier {
    opts: ClassifierOptions,
    cache: Cache,
    fingerprints: Fingerprinter,
}

impl std::fmt::Debug for Classifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Classifier")
            .field("opts", &self.opts)
            .field("cached", &self.cache.len())
            .finish()
    }
}

impl Classifier {
    pub fn new(opts: ClassifierOptions) -> Classifier {
        Classifier {
            opts,
            cache: Cache::new(opts.cache_bytes),
            fingerprints: Fingerprinter::default(),
        }
    }

    /// The options this classifier was built with.
    pub fn options(&self) -> ClassifierOptions {
        self.opts
    }

    /// Splits a simple query and classifies each statement. An empty query gives none.
    pub fn classify_query(&self, sql: &str) -> Vec<Statement> {
        self.classify_query_with(sql, true)
    }

    /// [`Classifier::classify_query`] for a session's `standard_conforming_strings`
    /// setting: with it off, backslashes escape quotes in ordinary strings, which moves
    /// where statements and literals end.
    pub fn classify_query_with(&self, sql: &str, scs: bool) -> Vec<Statement> {
        // One pass splits and fingerprints every piece.
        self.fingerprints
            .split_with(sql, scs)
            .into_iter()
            .filter_map(|(r, fingerprint)| Some((sql.get(r)?, fingerprint)))
            .map(|(s, fingerprint)| self.classify_fingerprinted(s, scs, Some(fingerprint)))
            .collect()
    }

    /// Classifies one statement (no splitting).
    pub fn classify_statement(&self, sql: &str) -> Statement {
        self.classify_statement_with(sql, true)
    }

    /// [`Classifier::classify_statement`] for a session's `standard_conforming_strings`.
    pub fn classify_statement_with(&self, sql: &str, scs: bool) -> Statement {
        self.classify_fingerprinted(sql, scs, None)
    }

    /// [`Classifier::classify_statement_with`] given the text's fingerprint when it is
    /// known already (`None`: computed here).
    fn classify_fingerprinted(&self, sql: &str, scs: bool, fingerprint: Option<u64>) -> Statement {
        let mut st = self.classify_one(sql, scs, fingerprint);
        st.named = named::read(&st.class.command, sql, scs).map(|command| {
            // One level only: the inner statement's own PREPARE or DECLARE (which the
            // server refuses anyway) is not read, so no text can make this recurse.
            let query = match &command {
                NamedCommand::Prepare { body, .. } | NamedCommand::Declare { body, .. } => {
                    sql.get(*body..).map(|q| {
                        self.classify_one(
                            q.trim_end_matches([';', ' ', '\n', '\t', '\r']),
                            scs,
                            None,
                        )
                    })
                }
                _ => None,
            };
            Arc::new(Named { command, query })
        });
        st
    }

    /// Classifies and redacts one statement, without reading names.
    fn classify_one(&self, sql: &str, scs: bool, fingerprint: Option<u64>) -> Statement {
        // A statement cut at max_parse_bytes is classified from a prefix whose end depends
        // on the length of its literals, which the literal-blind fingerprint does not see:
        // it neither reads nor fills the cache.
        let cut = scs && sql.len() > self.opts.max_parse_bytes;
        let key = (!cut)
            .then(|| fingerprint.unwrap_or_else(|| self.fingerprints.fingerprint_with(sql, scs)));
        let (class, cache_hit) = match key.and_then(|k| self.cache.get(k)) {
            Some(c) => (c, true),
            None => {
                let c = Arc::new(self.classify_uncached(sql, scs));
                if let (Some(key), false) = (key, c.literal_dependent) {
                    self.cache.insert(key, c.clone());
                }
                (c, false)
            }
        };
        let (text, redacted) = match lex::redact_with(sql, self.opts.redact, scs) {
            Cow::Borrowed(t) => (Arc::from(t), false),
            Cow::Owned(t) => {
                let changed = t != sql;
                (Arc::from(t), changed)
            }
        };
        Statement {
            text,
            redacted,
            class,
            cache_hit,
            named: None,
        }
    }

    /// AST first, tokens when the parser cannot (or the statement is too long to parse).
    /// Without standard-conforming strings sqlparser would misread backslash escapes, so
    /// such sessions get the token path, on the text with their strings made `E'...'`.
    pub fn classify_uncached(&self, sql: &str, scs: bool) -> Classification {
        if !scs {
            return tokens::classify(&lex::with_escape_strings(sql));
        }
        if sql.len() > self.opts.max_parse_bytes {
            let mut end = self.opts.max_parse_bytes;
            while !sql.is_char_boundary(end) {
                end -= 1;
            }
            let mut c = tokens::classify(&sql[..end]);
            // What lies past the cut is not seen, so nothing proves the statement only
            // reads catalog state: `select '<padding>', * from secrets` cut after the
            // literal must not pass as tool noise (which is not logged by default).
            c.noise = false;
            return c;
        }
        let mut c = ast::classify(sql).unwrap_or_else(|| tokens::classify(sql));
        renamed_object(sql, &mut c);
        c
    }
}

/// `ALTER <kind> name RENAME TO new`: the object is reported under its new name, as
/// pgAudit does (its event trigger sees the object after the statement). Only the object's
/// own rename matches `RENAME TO new` at the very end; columns and constraints are renamed
/// with `RENAME [COLUMN|CONSTRAINT] a TO b`. A renamed role is not replaced: both paths
/// name the old role and the new one.
fn renamed_object(sql: &str, c: &mut Classification) {
    use sqlparser::dialect::PostgreSqlDialect;
    use sqlparser::tokenizer::{Token, Tokenizer};
    if !c.command.starts_with("ALTER ") || c.command == "ALTER ROLE" || c.objects.is_empty() {
        return;
    }
    let Ok(tokens) = Tokenizer::new(&PostgreSqlDialect {}, sql).tokenize() else {
        return;
    };
    let mut words = tokens
        .iter()
        .rev()
        .filter(|t| !matches!(t, Token::Whitespace(_) | Token::SemiColon));
    let (Some(Token::Word(new)), Some(Token::Word(to)), Some(Token::Word(rename))) =
        (words.next(), words.next(), words.next())
    else {
        return;
    };
    if !to.value.eq_ignore_ascii_case("to") || !rename.value.eq_ignore_ascii_case("rename") {
        return;
    }
    let Some(first) = c.objects.first_mut() else {
        return;
    };
    let mut parts = names::split(&first.name);
    let new = names::fold(&new.value, new.quote_style.is_some());
    match parts.last_mut() {
        Some(last) => *last = new,
        None => parts.push(new),
    }
    first.name = names::render(&parts);
}

#[cfg(test)]
#[path = "classifier_tests.rs"]
mod tests;
