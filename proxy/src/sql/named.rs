//! Statements that create, use or drop a session's named objects: SQL-level prepared
//! statements (`PREPARE`, `EXECUTE`, `DEALLOCATE`), cursors (`DECLARE`, `FETCH`, `MOVE`,
//! `CLOSE`) and `DISCARD ALL`.
//!
//! The layer stays pure: this only reads the names (and, for PREPARE and DECLARE, where
//! the inner statement starts) out of the text. Remembering them per session is the audit
//! tracker's business (`audit/registry.rs`). Names are folded as PostgreSQL folds
//! identifiers. Reading stops at the first token that does not fit the grammar: then the
//! statement is `None` here and is audited as classified, without a name.

use super::lex::scan::{Kind, Lexer};
use super::names;

/// A statement acting on a named session object, as read from its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NamedCommand {
    /// `PREPARE name [(types)] AS body`: `body` is the byte offset where the prepared
    /// statement starts.
    Prepare { name: String, body: usize },
    /// `EXECUTE name [(params)]`.
    Execute { name: String },
    /// `EXPLAIN [options] EXECUTE name`: with `ANALYZE` it runs the prepared statement.
    ExplainExecute { name: String, analyze: bool },
    /// `DEALLOCATE [PREPARE] name` (`None`: `ALL`).
    Deallocate { name: Option<String> },
    /// `DECLARE name ... CURSOR [WITH HOLD] FOR body`.
    Declare {
        name: String,
        hold: bool,
        body: usize,
    },
    /// `FETCH ... name` (`moves: false`) or `MOVE ... name` (`moves: true`).
    Fetch { name: String, moves: bool },
    /// `CLOSE name` (`None`: `ALL`).
    Close { name: Option<String> },
    /// `DISCARD ALL`: every prepared statement and cursor is dropped.
    DiscardAll,
}

/// The significant tokens of a text: no spaces or comments.
struct Words<'a> {
    lx: Lexer<'a>,
    s: &'a str,
    pos: usize,
}

/// One significant token.
struct Word<'a> {
    kind: Kind,
    start: usize,
    /// The token's text (a quoted identifier's content, quotes doubled).
    text: &'a str,
}

impl Word<'_> {
    fn is(&self, kw: &str) -> bool {
        self.kind == Kind::Word && self.text.eq_ignore_ascii_case(kw)
    }

    fn is_punct(&self, p: &str) -> bool {
        self.kind == Kind::Punct && self.text == p
    }

    /// The folded identifier, when the token is one.
    fn ident(&self) -> Option<String> {
        match self.kind {
            Kind::Word => Some(names::fold(self.text, false)),
            Kind::QuotedIdent => Some(self.text.replace("\"\"", "\"")),
            _ => None,
        }
    }
}

impl<'a> Iterator for Words<'a> {
    type Item = Word<'a>;
    fn next(&mut self) -> Option<Word<'a>> {
        loop {
            let t = self.lx.token(self.pos)?;
            self.pos = t.end;
            match t.kind {
                Kind::Space | Kind::LineComment | Kind::BlockComment => continue,
                kind => {
                    let text = self.s.get(t.inner_start..t.inner_end)?;
                    return Some(Word {
                        kind,
                        start: t.start,
                        text,
                    });
                }
            }
        }
    }
}

/// Reads the named-object command `command` (the classifier's command name) from `sql`.
/// `None` for other commands and for text that does not fit the grammar.
pub fn read(command: &str, sql: &str, scs: bool) -> Option<NamedCommand> {
    let mut w = Words {
        lx: Lexer::new(sql, scs),
        s: sql,
        pos: 0,
    };
    match command {
        "PREPARE" => {
            w.next().filter(|t| t.is("prepare"))?;
            let name = w.next()?.ident()?;
            let body = after_depth0_as(&mut w)?;
            Some(NamedCommand::Prepare { name, body })
        }
        "EXECUTE" => {
            w.next().filter(|t| t.is("execute"))?;
            let name = w.next()?.ident()?;
            Some(NamedCommand::Execute { name })
        }
        "EXPLAIN" => {
            w.next().filter(|t| t.is("explain"))?;
            let (analyze, next) = explain_options(&mut w)?;
            if !next.is("execute") {
                return None;
            }
            let name = w.next()?.ident()?;
            Some(NamedCommand::ExplainExecute { name, analyze })
        }
        "DEALLOCATE" | "DEALLOCATE ALL" => {
            w.next().filter(|t| t.is("deallocate"))?;
            let mut t = w.next()?;
            if t.is("prepare") {
                t = w.next()?;
            }
            let name = if t.is("all") { None } else { Some(t.ident()?) };
            Some(NamedCommand::Deallocate { name })
        }
        "DECLARE CURSOR" => {
            w.next().filter(|t| t.is("declare"))?;
            let name = w.next()?.ident()?;
            // Options (BINARY, [NO] SCROLL, ...) up to CURSOR, then [WITH|WITHOUT HOLD] FOR.
            w.by_ref().take(8).find(|t| t.is("cursor"))?;
            let mut t = w.next()?;
            let mut hold = false;
            if t.is("with") || t.is("without") {
                hold = t.is("with");
                w.next().filter(|t| t.is("hold"))?;
                t = w.next()?;
            }
            if !t.is("for") {
                return None;
            }
            let body = w.next()?.start;
            Some(NamedCommand::Declare { name, hold, body })
        }
        "FETCH" | "MOVE" => {
            let first = w.next()?;
            let moves = first.is("move");
            if !moves && !first.is("fetch") {
                return None;
            }
            // The cursor's name is the last token: `FETCH [direction] [FROM|IN] name`.
            let last = w.filter(|t| !t.is_punct(";")).last()?;
            let name = last.ident()?;
            Some(NamedCommand::Fetch { name, moves })
        }
        "CLOSE CURSOR" | "CLOSE CURSOR ALL" => {
            w.next().filter(|t| t.is("close"))?;
            let t = w.next()?;
            let name = if t.is("all") { None } else { Some(t.ident()?) };
            Some(NamedCommand::Close { name })
        }
        "DISCARD ALL" => Some(NamedCommand::DiscardAll),
        _ => None,
    }
}

/// EXPLAIN's options, `(ANALYZE, ...)` or the legacy `ANALYZE VERBOSE` words: whether
/// they ask for ANALYZE, and the first token of the explained statement.
fn explain_options<'a>(w: &mut Words<'a>) -> Option<(bool, Word<'a>)> {
    let mut analyze = false;
    let mut t = w.next()?;
    if t.is_punct("(") {
        // `(option [value], ...)`: ANALYZE without a value, or with a true one.
        let mut prev_analyze = false;
        loop {
            t = w.next()?;
            if prev_analyze {
                analyze = t.is_punct(",")
                    || t.is_punct(")")
                    || t.is("true")
                    || t.is("on")
                    || (t.kind == Kind::Number && t.text == "1");
                prev_analyze = false;
            }
            if t.is_punct(")") {
                break;
            }
            if t.is("analyze") || t.is("analyse") {
                prev_analyze = true;
            }
        }
        return Some((analyze, w.next()?));
    }
    while t.is("analyze") || t.is("analyse") || t.is("verbose") {
        analyze |= !t.is("verbose");
        t = w.next()?;
    }
    Some((analyze, t))
}

/// The offset of the token after the first `AS` outside parentheses (PREPARE's parameter
/// types come in parentheses before it).
fn after_depth0_as(w: &mut Words<'_>) -> Option<usize> {
    let mut depth = 0usize;
    while let Some(t) = w.next() {
        if t.is_punct("(") {
            depth = depth.saturating_add(1);
        } else if t.is_punct(")") {
            depth = depth.checked_sub(1)?;
        } else if depth == 0 && t.is("as") {
            return w.next().map(|t| t.start);
        } else if t.is_punct(";") {
            return None;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::NamedCommand::*;
    use super::*;

    fn r(command: &str, sql: &str) -> Option<NamedCommand> {
        read(command, sql, true)
    }

    #[test]
    fn prepared_statements() {
        let sql = "PREPARE d2 (int, \"as\") AS DELETE FROM orders";
        let Some(Prepare { name, body }) = r("PREPARE", sql) else {
            panic!("not read");
        };
        assert_eq!(name, "d2");
        assert_eq!(&sql[body..], "DELETE FROM orders");
        let sql = "prepare \"Q\"\n/* as */ as select 1";
        let Some(Prepare { name, body }) = r("PREPARE", sql) else {
            panic!("not read");
        };
        assert_eq!((name.as_str(), &sql[body..]), ("Q", "select 1"));
        assert_eq!(r("PREPARE", "PREPARE x"), None);
        assert_eq!(
            r("EXECUTE", "EXECUTE D2(1, 'a')"),
            Some(Execute { name: "d2".into() })
        );
        assert_eq!(
            r("DEALLOCATE", "DEALLOCATE PREPARE \"x\"\"y\""),
            Some(Deallocate {
                name: Some("x\"y".into())
            })
        );
        assert_eq!(
            r("DEALLOCATE ALL", "deallocate all"),
            Some(Deallocate { name: None })
        );
    }

    #[test]
    fn cursors() {
        let sql = "DECLARE c BINARY NO SCROLL CURSOR WITH HOLD FOR SELECT * FROM big";
        let Some(Declare { name, hold, body }) = r("DECLARE CURSOR", sql) else {
            panic!("not read");
        };
        assert_eq!((name.as_str(), hold), ("c", true));
        assert_eq!(&sql[body..], "SELECT * FROM big");
        let sql = "declare C cursor without hold for table t";
        let Some(Declare { hold: false, .. }) = r("DECLARE CURSOR", sql) else {
            panic!("not read");
        };
        for (sql, moves) in [
            ("FETCH 6000 FROM c", false),
            ("fetch forward all in c;", false),
            ("FETCH c", false),
            ("MOVE ABSOLUTE -1 IN c", true),
        ] {
            let cmd = if moves { "MOVE" } else { "FETCH" };
            assert_eq!(
                r(cmd, sql),
                Some(Fetch {
                    name: "c".into(),
                    moves
                }),
                "{sql}"
            );
        }
        assert_eq!(r("FETCH", "FETCH 10 FROM 'x'"), None);
        assert_eq!(
            r("CLOSE CURSOR ALL", "CLOSE ALL"),
            Some(Close { name: None })
        );
        assert_eq!(
            r("CLOSE CURSOR", "close \"C\""),
            Some(Close {
                name: Some("C".into())
            })
        );
        assert_eq!(r("DISCARD ALL", "DISCARD ALL"), Some(DiscardAll));
        for (sql, analyze) in [
            ("EXPLAIN ANALYZE EXECUTE d", true),
            ("explain analyse verbose execute D(1)", true),
            ("EXPLAIN (ANALYZE) EXECUTE d", true),
            (
                "EXPLAIN (FORMAT json, ANALYZE true, BUFFERS) EXECUTE d",
                true,
            ),
            ("EXPLAIN (ANALYZE off) EXECUTE d", false),
            ("EXPLAIN VERBOSE EXECUTE d", false),
            ("EXPLAIN EXECUTE d", false),
        ] {
            assert_eq!(
                r("EXPLAIN", sql),
                Some(ExplainExecute {
                    name: "d".into(),
                    analyze
                }),
                "{sql}"
            );
        }
        assert_eq!(r("EXPLAIN", "EXPLAIN ANALYZE DELETE FROM t"), None);
        assert_eq!(r("EXPLAIN", "EXPLAIN (ANALYZE"), None);
        assert_eq!(r("SELECT", "SELECT 1"), None);
    }

    #[test]
    fn hostile_text_never_panics() {
        let commands = [
            "PREPARE",
            "EXECUTE",
            "EXPLAIN",
            "DEALLOCATE",
            "DECLARE CURSOR",
            "FETCH",
            "MOVE",
            "CLOSE CURSOR",
            "DISCARD ALL",
        ];
        let texts = [
            "",
            ";",
            "prepare",
            "prepare \"",
            "prepare x (",
            "prepare x ((((as",
            "prepare x ) as y",
            "execute 'x'",
            "explain (",
            "explain (analyze",
            "declare",
            "declare c cursor with",
            "declare c cursor for",
            "fetch",
            "fetch 10 from",
            "move $$",
            "close",
            "\u{e9}\u{e9}",
            "deallocate prepare",
            "explain analyze",
            "fetch \"unterminated",
            "close /* x",
        ];
        for c in commands {
            for t in texts {
                let _ = read(c, t, true);
                let _ = read(c, t, false);
            }
        }
        // A prepared statement that is itself a PREPARE is read one level only.
        let deep = "PREPARE a AS ".repeat(10_000) + "SELECT 1";
        let Some(Prepare { body, .. }) = r("PREPARE", &deep) else {
            panic!("not read");
        };
        assert!(deep[body..].starts_with("PREPARE a AS"));
        let c = crate::sql::Classifier::new(crate::sql::ClassifierOptions::default());
        let st = c.classify_statement(&deep);
        let named = st.named.expect("read");
        let inner = named.query.as_ref().expect("the prepared statement");
        assert!(inner.named.is_none(), "the classifier reads one level only");
    }
}
