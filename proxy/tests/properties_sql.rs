//! Property tests of the SQL layer and the audit tracker, run on every CI build (the fuzz
//! targets in `fuzz/` cover the same code for longer): a password literal never survives
//! redaction in either mode, wherever it sits in a multi-statement query and however it is
//! quoted, also through the tracker into the serialized audit event; splitting follows its
//! contract (statements come back as written, gaps hold nothing runnable); nothing panics
//! on arbitrary text or frame sequences. Pure functions only: no PostgreSQL involved.

use pgvigil::audit::{write_pgaudit, SessionInfo, Tracker};
use pgvigil::metrics::Metrics;
use pgvigil::snapshot::load_str;
use pgvigil::sql::lex::{redact_with, split_with};
use pgvigil::sql::{Classifier, ClassifierOptions, Redact};
use proptest::prelude::*;
use std::path::Path;
use std::sync::Arc;

/// Statements without a top-level `;` (some with one inside a literal, comment, quoted
/// identifier, dollar quote, parentheses or an atomic body), and without `password`.
const STATEMENTS: &[&str] = &[
    "select 1",
    "insert into t values ('a;b', $$c;d$$, \"e;f\")",
    "select 2 /* ; */ from t -- ;\n where x = 1",
    "update t set a = E'x\\';' where b = 1",
    "create rule r as on insert to t do (insert into u values (1); insert into v values (2))",
    "create function f() returns int language sql begin atomic select 1; select 2; end",
    "begin",
    "set application_name = 'app;x'",
    "SELECT $tag$ ; $$ ; $tag$",
    "copy t to stdout",
];

/// How statements are separated: semicolons and whitespace only, so each piece comes
/// back as written (a comment after a `;` would belong to the next piece).
const SEPARATORS: &[&str] = &[";", " ; ", ";\n\t", "; ;", ";;\r\n"];

/// A password's distinctive head, then random characters (quotes and `;` included).
fn secret() -> impl Strategy<Value = String> {
    "[A-Za-z0-9 !#%&()*+,./:;<=>?@^_{|}~'-]{6,24}".prop_map(|s| format!("Zq9{s}"))
}

/// A role statement carrying `x` in one of the ways SQL writes a password literal, and
/// whether it is also valid with standard_conforming_strings off (no backslash issue).
fn role_statement(x: &str, form: usize, name: &str) -> String {
    let sq = x.replace('\'', "''");
    match form % 8 {
        0 => format!("CREATE ROLE {name} PASSWORD '{sq}'"),
        1 => format!("ALTER ROLE {name} WITH LOGIN PASSWORD '{sq}' VALID UNTIL 'infinity'"),
        2 => format!("create user {name} with encrypted password '{sq}' createdb"),
        3 => format!("ALTER USER {name} PASSWORD $$ {x} $$"),
        4 => format!("ALTER ROLE {name} PASSWORD E'{}'", x.replace('\'', "\\'")),
        5 => format!("ALTER ROLE {name} /* why */ PASSWORD /* not */ '{sq}'"),
        6 => format!("alter role \"{name}\" password $pw${x}$pw$ login"),
        _ => format!("CREATE ROLE {name} LOGIN PASSWORD\n'{sq}'"),
    }
}

fn join(pieces: &[String], seps: &[usize]) -> String {
    let mut out = String::new();
    for (i, p) in pieces.iter().enumerate() {
        if i > 0 {
            out.push_str(SEPARATORS[seps.get(i).copied().unwrap_or(0) % SEPARATORS.len()]);
        }
        out.push_str(p);
    }
    out
}

fn statements() -> impl Strategy<Value = Vec<String>> {
    prop::collection::vec(
        prop::sample::select(STATEMENTS).prop_map(str::to_string),
        0..5,
    )
}

fn classifier(redact: Redact) -> Classifier {
    Classifier::new(ClassifierOptions {
        redact,
        ..ClassifierOptions::default()
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// The password is gone from the redacted text in both modes, with the statement
    /// anywhere among others, for both settings of standard_conforming_strings where the
    /// literal means the same; statements around it are untouched in `passwords` mode.
    #[test]
    fn redaction_never_leaves_a_password(
        x in secret(),
        form in 0usize..8,
        name in "[a-z][a-z0-9_]{0,8}",
        before in statements(),
        after in statements(),
        at in any::<prop::sample::Index>(),
        seps in prop::collection::vec(0usize..SEPARATORS.len(), 12),
    ) {
        let mut pieces = before.clone();
        pieces.push(role_statement(&x, form, &name));
        pieces.extend(after.iter().cloned());
        // Move the role statement to a random position.
        let last = pieces.len() - 1;
        let to = at.index(pieces.len());
        pieces.swap(last, to);
        let sql = join(&pieces, &seps);
        // E'' strings read the same either way; plain '' strings differ only on backslashes,
        // which the secret never holds.
        for scs in [true, false] {
            for mode in [Redact::Passwords, Redact::Literals] {
                let red = redact_with(&sql, mode, scs);
                prop_assert!(!red.contains(&x), "{mode:?} scs={scs}: {red}");
                let texts: Vec<String> = classifier(mode)
                    .classify_query_with(&sql, scs)
                    .iter()
                    .map(|s| s.text.to_string())
                    .collect();
                prop_assert!(!texts.iter().any(|t| t.contains(&x)), "{texts:?}");
                if mode == Redact::Passwords && scs {
                    for other in before.iter().chain(&after) {
                        prop_assert!(red.contains(other.as_str()), "over-redacted: {red}");
                    }
                }
            }
        }
    }

    /// Statements joined with semicolons split back into exactly those statements.
    #[test]
    fn split_then_join_gives_the_statements(
        pieces in statements(),
        seps in prop::collection::vec(0usize..SEPARATORS.len(), 8),
        lead in "[ \t\n;]{0,4}",
        trail in "[ \t\n;]{0,4}",
    ) {
        let sql = format!("{lead}{}{trail}", join(&pieces, &seps));
        let got: Vec<&str> = split_with(&sql, true).into_iter().map(|r| &sql[r]).collect();
        prop_assert_eq!(got, pieces.iter().map(String::as_str).collect::<Vec<_>>());
    }

    /// On any text: ranges in order, on character boundaries; each statement splits to
    /// itself again; what lies between statements holds nothing runnable. So the
    /// statements and the gaps, rejoined, are the input, and no statement is lost in a gap.
    #[test]
    fn split_contract_on_any_text(
        sql in prop_oneof![
            any::<String>(),
            "[a-z ;'\"$()/*\\-\n\\\\]{0,80}",
            "(begin|atomic|end|create|function|select|;|\\(|\\)|'|\\$\\$|/\\*|\\*/| ){0,30}",
        ],
        scs in any::<bool>(),
    ) {
        let ranges = split_with(&sql, scs);
        let mut last = 0;
        for r in &ranges {
            prop_assert!(last <= r.start && r.start < r.end && r.end <= sql.len());
            let piece = sql.get(r.clone());
            prop_assert!(piece.is_some(), "range off a char boundary");
            let piece = piece.unwrap_or_default();
            prop_assert_eq!(split_with(piece, scs), vec![0..piece.len()], "{:?}", piece);
            prop_assert!(split_with(&sql[last..r.start], scs).is_empty());
            last = r.end;
        }
        prop_assert!(split_with(&sql[last..], scs).is_empty());
        for mode in [Redact::Passwords, Redact::Literals] {
            let _ = redact_with(&sql, mode, scs);
        }
    }
}

proptest! {
    // The classifier runs sqlparser: fewer cases keep this file within seconds.
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Any text classifies without panicking, one statement per split range, with a cache
    /// that answers as a fresh classification would.
    #[test]
    fn classifier_never_panics(
        sql in prop_oneof![
            any::<String>(),
            "(select|insert|update|delete|create|alter|role|password|table|from|where|set|\
              ;|\\(|\\)|'x'|\\$\\$|\\$1| ){0,24}",
        ],
        scs in any::<bool>(),
        literals in any::<bool>(),
        max_parse_bytes in prop_oneof![Just(65536usize), 1usize..40],
    ) {
        let redact = if literals { Redact::Literals } else { Redact::Passwords };
        let c = Classifier::new(ClassifierOptions { max_parse_bytes, cache_bytes: 4096, redact });
        let first = c.classify_query_with(&sql, scs);
        let ranges = split_with(&sql, scs);
        prop_assert_eq!(first.len(), ranges.len());
        let again = c.classify_query_with(&sql, scs);
        for ((a, b), r) in first.iter().zip(&again).zip(ranges) {
            prop_assert_eq!(&a.class, &b.class);
            prop_assert_eq!(&a.text, &b.text);
            // The cache is literal-blind: what it answers is what a fresh classification
            // of this very statement gives.
            if !a.class.literal_dependent {
                prop_assert_eq!(&*a.class, &c.classify_uncached(&sql[r], scs));
            }
        }
    }
}

fn tracker() -> Tracker {
    let text = "[listen.tls]\nmode = \"disable\"\n[audit]\nlog_parameters = true\n";
    let config = load_str(text, Path::new("/tmp/t.toml")).unwrap_or_else(|e| panic!("{e}"));
    let session = Arc::new(SessionInfo {
        session_id: "s-1".into(),
        user: Some("alice".into()),
        database: Some("app".into()),
        client_addr: std::net::IpAddr::from([127, 0, 0, 1]),
        client_port: 1,
        application_name: None,
        tls: false,
        auth_method: None,
        upstream_auth_method: None,
        service: false,
    });
    Tracker::new(Arc::new(config), Arc::new(Metrics::new()), session)
}

/// Feeds one frame as the relay does: the tracker says how much of the body it wants.
fn feed(t: &mut Tracker, client: bool, tag: u8, body: &[u8]) {
    let want = if client {
        t.client_wants(tag, body.len())
    } else {
        t.server_wants(tag, body.len())
    };
    if want > 0 && !body.is_empty() {
        let head = &body[..want.min(body.len())];
        if client {
            t.client_frame(tag, head);
        } else {
            t.server_frame(tag, head);
        }
    }
}

fn cstr(s: &str) -> Vec<u8> {
    let mut b = s.as_bytes().to_vec();
    b.push(0);
    b
}

/// Tags the tracker reacts to, in both directions, and a few it ignores.
const CLIENT_TAGS: &[u8] = b"QPBEDCFSHdcfX";
const SERVER_TAGS: &[u8] = b"CEZ123nTIsVSDGHN";

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A simple query setting a password, answered by the server, is audited without it:
    /// the serialized event (what reaches the audit file) has no trace of the secret, in
    /// the statement text or anywhere else.
    #[test]
    fn audit_event_never_carries_the_password(
        x in secret(), form in 0usize..8, before in statements(),
        seps in prop::collection::vec(0usize..SEPARATORS.len(), 8),
        error in any::<bool>(),
    ) {
        let mut pieces = before;
        pieces.push(role_statement(&x, form, "bob"));
        let sql = join(&pieces, &seps);
        let mut t = tracker();
        feed(&mut t, true, b'Q', &cstr(&sql));
        for _ in 0..pieces.len() - 1 {
            feed(&mut t, false, b'C', &cstr("SELECT 1"));
        }
        if error {
            // The server quotes nothing here, but the event carries its message.
            let mut e = b"SERROR\0C42601\0Msyntax error\0".to_vec();
            e.push(0);
            feed(&mut t, false, b'E', &e);
        } else {
            feed(&mut t, false, b'C', &cstr("ALTER ROLE"));
        }
        feed(&mut t, false, b'Z', b"I");
        t.abandon();
        let events = t.take_events();
        prop_assert!(!events.is_empty());
        for e in &events {
            let mut out = Vec::new();
            prop_assert!(e.write_json(&mut out).is_ok());
            prop_assert!(write_pgaudit(e, &mut out).is_ok());
            let text = String::from_utf8_lossy(&out);
            prop_assert!(!text.contains(&x), "{text}");
        }
    }

    /// Arbitrary interleavings of client and server frames, well-formed or not, never
    /// panic the tracker, and every event serializes.
    #[test]
    fn tracker_never_panics(
        frames in prop::collection::vec(
            (any::<bool>(), any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 0..24)),
            0..40,
        ),
        sql in prop::sample::select(STATEMENTS),
    ) {
        let mut t = tracker();
        for (client, tag, mut body) in frames {
            let tags = if client { CLIENT_TAGS } else { SERVER_TAGS };
            let tag = tags[tag.index(tags.len())];
            if client && (tag == b'Q' || tag == b'P') {
                // Real statement text now and then, so classification runs.
                let mut b = if tag == b'P' { vec![0] } else { Vec::new() };
                b.extend_from_slice(&cstr(sql));
                b.extend_from_slice(&body);
                body = b;
            }
            feed(&mut t, client, tag, &body);
            for e in t.take_events() {
                prop_assert!(e.write_json(&mut Vec::new()).is_ok());
            }
        }
        t.abandon();
        for e in t.take_events() {
            prop_assert!(e.write_json(&mut Vec::new()).is_ok());
            prop_assert!(write_pgaudit(&e, &mut Vec::new()).is_ok());
        }
    }
}
