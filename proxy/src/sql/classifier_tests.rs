//! Unit tests of `classifier.rs`: sessions with standard_conforming_strings off.

use super::*;
use crate::sql::lex;
use crate::sql::test_support::objects;

fn classifier() -> Classifier {
    Classifier::new(ClassifierOptions::default())
}

/// With standard_conforming_strings off, `'a\''` is one string to the server (`\'` is an
/// escaped quote). Read with the setting on it ends at the backslash, and the rest of the
/// statement (the table read) would look like a string: found by the `classify` fuzz
/// target as a cache disagreement, it let a read of any table pass as tool noise.
#[test]
fn backslash_quotes_do_not_hide_objects_when_scs_is_off() {
    let c = classifier();
    let s = c.classify_statement_with(r"select 'a\'', card from customers --'", false);
    assert_eq!(objects(&s.class), ["TABLE customers"]);
    assert!(!s.class.noise, "a read of a user table is not noise");

    let s = c.classify_statement_with(r"select 'x\\' from orders", false);
    assert_eq!(objects(&s.class), ["TABLE orders"]);
}

/// With the setting on the backslash is an ordinary character: the string ends at the
/// second quote and the table is read. With it off the whole statement is one string.
#[test]
fn backslashes_are_ordinary_when_scs_is_on() {
    let c = classifier();
    let sql = r"select 'a\', 1 from t --'";
    let s = c.classify_statement_with(sql, true);
    assert_eq!(objects(&s.class), ["TABLE t"]);
    let s = c.classify_statement_with(sql, false);
    assert!(objects(&s.class).is_empty(), "one string to the server");
}

/// Plain and national strings become escape strings; escape strings, dollar quotes and
/// everything else keep their bytes.
#[test]
fn escape_strings_rewrite() {
    use crate::sql::lex::with_escape_strings;
    assert_eq!(
        with_escape_strings(r"select 'a\'', n'b'"),
        r"select  E'a\'',  E'b'"
    );
    assert!(matches!(
        with_escape_strings("select E'x', $$'y'$$, 1"),
        Cow::Borrowed(_)
    ));
    assert_eq!(with_escape_strings("select é'x'"), "select é E'x'");
}

/// Statements whose fingerprints agree (the literal is all that differs) get the
/// classification each would get alone: the cache is literal-blind, so classification
/// must be too.
#[test]
fn cached_classification_matches_a_fresh_one_when_scs_is_off() {
    let c = classifier();
    for sql in [r"select 'a\' , '", "select 1 -- '", "select 'plain'"] {
        let s = c.classify_statement_with(sql, false);
        assert_eq!(*s.class, c.classify_uncached(sql, false), "{sql}");
    }
}

/// A statement cut at `max_parse_bytes` right after a padded literal: the prefix alone
/// reads no table, but what follows the cut may, so it can never prove to be tool noise
/// (which is not logged by default).
#[test]
fn a_cut_statement_is_never_noise() {
    let c = Classifier::new(ClassifierOptions {
        max_parse_bytes: 40,
        ..ClassifierOptions::default()
    });
    let pad = "x".repeat(40 - "select ''".len());
    let sql = format!("select '{pad}', * from secrets");
    let s = c.classify_statement_with(&sql, true);
    assert!(!s.class.noise, "{:?}", s.class);
}

/// Statements differing only in a literal share a fingerprint; when one is cut at
/// `max_parse_bytes` and the other is not, neither may get the other's classification.
#[test]
fn cut_statements_do_not_share_the_cache() {
    let c = Classifier::new(ClassifierOptions {
        max_parse_bytes: 40,
        ..ClassifierOptions::default()
    });
    let long = format!("select '{}', * from secrets", "x".repeat(40));
    let short = "select 'x', * from secrets";
    let _ = c.classify_statement_with(&long, true);
    let s = c.classify_statement_with(short, true);
    assert_eq!(objects(&s.class), ["TABLE secrets"]);
    assert_eq!(*s.class, c.classify_uncached(short, true));
}

/// Found by the `classify` fuzz target: an unterminated dollar quote lexes as a literal,
/// so `select $rome$1` shared the fingerprint of `select 2` and got its cached (parsed,
/// noise) classification, though sqlparser cannot tokenize it.
#[test]
fn unterminated_literal_does_not_take_a_cached_classification() {
    let c = classifier();
    let sql = "grelect 0; select 2; en1; select $rome$1";
    for s in lex::split(sql).into_iter().filter_map(|r| sql.get(r)) {
        let got = c.classify_statement_with(s, true);
        assert_eq!(*got.class, c.classify_uncached(s, true), "{s}");
    }
}
