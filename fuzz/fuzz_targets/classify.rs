//! Fuzzes the statement classifier and redaction on arbitrary text (non-UTF-8 input is
//! decoded lossily, as the proxy decodes queries): splitting, fingerprints, both redaction
//! modes, with and without standard_conforming_strings, and the classification cache.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pgvigil::sql::lex::{self, Fingerprinter};
use pgvigil::sql::{Classifier, ClassifierOptions, Redact};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, text)) = data.split_first() else {
        return;
    };
    // Query and Parse texts end at their NUL terminator (the tracker cuts there), so the
    // classifier never sees one; sqlparser refuses a backslash before a NUL in an E''
    // string, which would only test that unreachable case.
    let text = text.split(|&b| b == 0).next().unwrap_or_default();
    let sql = String::from_utf8_lossy(text);
    let sql = sql.as_ref();
    let scs = flags & 1 == 0;
    let redact = if flags & 2 == 0 {
        Redact::Passwords
    } else {
        Redact::Literals
    };
    // A small parse limit cuts statements mid-token, mid-literal, mid-character.
    let max_parse_bytes = if flags & 4 == 0 {
        64 * 1024
    } else {
        usize::from(flags >> 3)
    };

    // Splitting: in order, disjoint, non-empty, trimmed, on character boundaries (a range
    // that is not would be dropped by the classifier: a statement never audited).
    let ranges = lex::split_with(sql, scs);
    let mut last_end = 0;
    for r in &ranges {
        assert!(r.start >= last_end && r.start < r.end && r.end <= sql.len());
        let piece = sql
            .get(r.clone())
            .expect("statement range off a char boundary");
        let space = |b: Option<&u8>| b.is_some_and(|b| b" \t\n\r".contains(b));
        assert!(!space(piece.as_bytes().first()) && !space(piece.as_bytes().last()));
        // A statement is split again to itself: nothing in it ends a statement.
        let again = lex::split_with(piece, scs);
        let whole = matches!(&again[..], [r] if *r == (0..piece.len()));
        assert!(whole, "piece splits again: {again:?}");
        // Between statements lies nothing the server would run.
        let gap = &sql[last_end..r.start];
        assert!(lex::split_with(gap, scs).is_empty(), "statement in a gap");
        last_end = r.end;
    }
    assert!(
        lex::split_with(&sql[last_end..], scs).is_empty(),
        "statement after the last"
    );

    for mode in [Redact::Passwords, Redact::Literals] {
        let _ = lex::redact_with(sql, mode, scs);
    }
    let fp = Fingerprinter::default();
    assert_eq!(fp.fingerprint_with(sql, scs), fp.fingerprint_with(sql, scs));

    let classifier = Classifier::new(ClassifierOptions {
        max_parse_bytes,
        cache_bytes: 4096,
        redact,
    });
    let statements = classifier.classify_query_with(sql, scs);
    assert_eq!(
        statements.len(),
        ranges.len(),
        "a statement went unclassified"
    );
    for (s, r) in statements.iter().zip(&ranges) {
        let own = &sql[r.clone()];
        assert_eq!(s.redacted, &*s.text != own);
        if !s.class.literal_dependent {
            // Cached under a literal-blind fingerprint: the statement's own classification
            // must be what any statement with the same fingerprint gets.
            let fresh = classifier.classify_uncached(own, scs);
            assert_eq!(
                *s.class, fresh,
                "cache gave another statement's classification"
            );
        }
    }
});
