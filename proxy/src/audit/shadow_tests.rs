//! Unit tests of `shadow.rs`: which noise verdicts a session keeps, statement by statement.

use super::*;
use crate::sql::{Classifier, ClassifierOptions};

fn classifier() -> Classifier {
    Classifier::new(ClassifierOptions::default())
}

fn st(c: &Classifier, sql: &str) -> Statement {
    c.classify_statement(sql)
}

/// A session of a database whose catalog check found `shadowed`, with a good path.
fn session(shadowed: &[&str]) -> (Arc<Slot>, SessionShadow) {
    let slot: Arc<Slot> = Arc::default();
    slot.store(slot.ticket(), shadowed.iter().map(|s| s.to_string()));
    let facts = LoginFacts {
        schemas: Some(vec!["pg_catalog".into(), "public".into()]),
        search_path: Some("\"$user\", public".into()),
    };
    let s = SessionShadow::new(slot.clone(), &facts);
    (slot, s)
}

fn noise(s: &SessionShadow, st: &Statement) -> bool {
    s.judge(st.class.clone()).noise
}

/// Runs one statement to completion, as the tracker would, and returns its noise.
fn run(s: &mut SessionShadow, st: &Statement, ok: bool) -> bool {
    s.sent(st);
    let n = noise(s, st);
    s.settled(st, ok);
    s.ready(b'I');
    n
}

#[test]
fn trusted_when_the_catalog_has_no_such_function() {
    let c = classifier();
    let (_, mut s) = session(&[]);
    assert!(run(&mut s, &st(&c, "SELECT format_type(1, 2)"), true));
    assert!(run(&mut s, &st(&c, "SELECT relname FROM pg_class"), true));
}

#[test]
fn a_shadowed_name_is_never_noise_but_qualified_calls_are() {
    let c = classifier();
    let (_, mut s) = session(&["format_type"]);
    assert!(!run(&mut s, &st(&c, "SELECT format_type(1, 2)"), true));
    assert!(run(
        &mut s,
        &st(&c, "SELECT pg_catalog.format_type(1, 2)"),
        true
    ));
    assert!(run(&mut s, &st(&c, "SELECT version()"), true));
    // Quoted and cased the way the name is stored: the same function.
    assert!(!run(&mut s, &st(&c, "SELECT \"format_type\"(1, 2)"), true));
}

#[test]
fn nothing_unqualified_is_trusted_before_the_catalog_is_known() {
    let c = classifier();
    let s = SessionShadow::unknown();
    assert!(!noise(&s, &st(&c, "SELECT version()")));
    assert!(!noise(&s, &st(&c, "SELECT relname FROM pg_class")));
    // Nothing unqualified: still noise.
    assert!(noise(&s, &st(&c, "SELECT pg_catalog.version()")));
    assert!(noise(&s, &st(&c, "SHOW search_path")));
}

#[test]
fn creating_a_watched_function_makes_the_knowledge_stale_for_every_session() {
    let c = classifier();
    let (slot, mut a) = session(&[]);
    let mut b = SessionShadow::new(
        slot.clone(),
        &LoginFacts {
            schemas: Some(vec!["pg_catalog".into()]),
            search_path: Some("pg_catalog".into()),
        },
    );
    let create = st(
        &c,
        "CREATE FUNCTION public.format_type(a int, b int) RETURNS text LANGUAGE sql AS 'select 1'",
    );
    a.sent(&create);
    let q = st(&c, "SELECT format_type(1, 2)");
    assert!(!noise(&a, &q), "the creator's own calls");
    assert!(!noise(&b, &q), "another session's calls");
    // A catalog check that started before the CREATE stores nothing.
    let old_ticket = 0;
    slot.store(old_ticket, Vec::new());
    assert!(!noise(&b, &q));
    // One that started after it does, but the creating transaction's end invalidates
    // again (it may have run before the commit).
    slot.store(slot.ticket(), Vec::new());
    a.settled(&create, true);
    a.ready(b'T');
    assert!(!noise(&a, &q), "still inside the creating transaction");
    a.ready(b'I');
    assert!(!noise(&b, &q), "stale again once the creator committed");
    slot.store(slot.ticket(), ["format_type".to_string()]);
    assert!(!noise(&b, &q));
    assert!(run(&mut b, &st(&c, "SELECT version()"), true));
}

#[test]
fn unrelated_functions_do_not_invalidate_but_renames_and_do_blocks_do() {
    let c = classifier();
    let (slot, mut s) = session(&[]);
    let t = slot.ticket();
    s.sent(&st(
        &c,
        "CREATE FUNCTION app_fn(i int) RETURNS int LANGUAGE sql AS 'select i'",
    ));
    assert_eq!(slot.ticket(), t, "not an allow-listed name");
    s.sent(&st(&c, "ALTER FUNCTION app_fn(int) OWNER TO alice"));
    s.sent(&st(
        &c,
        "ALTER FUNCTION app_fn(int) SET search_path = public",
    ));
    s.sent(&st(&c, "SELEC 1"));
    assert_eq!(slot.ticket(), t, "not a rename");
    s.sent(&st(&c, "ALTER FUNCTION app_fn(int) RENAME TO version"));
    assert_ne!(slot.ticket(), t);
    let t = slot.ticket();
    s.sent(&st(&c, "DO $$ BEGIN END $$"));
    assert_ne!(slot.ticket(), t);
    for sql in [
        "CREATE AGGREGATE count(int) (sfunc = int4pl, stype = int)",
        "CREATE EXTENSION hstore",
        "create or replace procedure lower() language sql as 'select 1'",
    ] {
        let t = slot.ticket();
        s.sent(&st(&c, sql));
        assert_ne!(slot.ticket(), t, "{sql}");
    }
}

#[test]
fn a_search_path_without_pg_catalog_first_withdraws_unqualified_noise() {
    let c = classifier();
    let (_, mut s) = session(&[]);
    let version = st(&c, "SELECT version()");
    let pg_class = st(&c, "SELECT relname FROM pg_class");
    let qualified = st(&c, "SELECT pg_catalog.version()");
    for bad in [
        "SET search_path = public, pg_catalog",
        "set session search_path to public,pg_catalog",
        "SET \"Search_Path\" = public, pg_catalog",
        "SET /* hidden */ search_path = public, pg_catalog",
        "/* hidden */ SET search_path = public, pg_catalog",
        "SET LOCAL search_path = public, pg_catalog",
        "SELECT set_config('search_path', 'public, pg_catalog', false)",
        "SELECT set_config('search' || '_path', 'public, pg_catalog', false)",
    ] {
        let (_, mut s) = session(&[]);
        run(&mut s, &st(&c, bad), true);
        assert!(!noise(&s, &version), "{bad}");
        assert!(!noise(&s, &pg_class), "{bad}");
        assert!(noise(&s, &qualified), "{bad}");
    }
    // Settings that are not the search path change nothing.
    run(
        &mut s,
        &st(&c, "SET application_name = 'search_path'"),
        true,
    );
    run(
        &mut s,
        &st(&c, "SELECT set_config('application_name', 'x', false)"),
        true,
    );
    assert!(noise(&s, &version));
}

#[test]
fn trust_comes_back_only_with_a_committed_good_path() {
    let c = classifier();
    let version = st(&c, "SELECT version()");
    let bad = st(&c, "SET search_path = public, pg_catalog");
    let good = st(&c, "SET search_path = pg_catalog, public");
    let (_, mut s) = session(&[]);
    run(&mut s, &bad, true);
    // A good SET that fails, or is rolled back, or is LOCAL, restores nothing.
    run(&mut s, &good, false);
    assert!(!noise(&s, &version));
    s.sent(&good);
    s.settled(&good, true);
    s.ready(b'T');
    assert!(!noise(&s, &version), "not until the transaction ends");
    run(&mut s, &st(&c, "ROLLBACK"), true);
    assert!(!noise(&s, &version), "rolled back");
    run(&mut s, &st(&c, "SET LOCAL search_path = pg_catalog"), true);
    assert!(!noise(&s, &version));
    // A bad SET pipelined after the good one wins.
    s.sent(&good);
    s.sent(&bad);
    s.settled(&good, true);
    s.settled(&bad, true);
    s.ready(b'I');
    assert!(!noise(&s, &version));
    run(&mut s, &good, true);
    assert!(noise(&s, &version));
    for reset in [
        "RESET search_path",
        "RESET ALL",
        "DISCARD ALL",
        "SET search_path TO DEFAULT",
    ] {
        run(&mut s, &bad, true);
        run(&mut s, &st(&c, reset), true);
        assert!(noise(&s, &version), "{reset}");
    }
}

#[test]
fn a_bad_login_path_is_not_restored_by_reset() {
    let c = classifier();
    let slot: Arc<Slot> = Arc::default();
    slot.store(slot.ticket(), Vec::new());
    let facts = LoginFacts {
        schemas: Some(vec!["public".into(), "pg_catalog".into()]),
        search_path: Some("public, pg_catalog".into()),
    };
    let mut s = SessionShadow::new(slot, &facts);
    let version = st(&c, "SELECT version()");
    assert!(!noise(&s, &version));
    run(&mut s, &st(&c, "RESET search_path"), true);
    assert!(!noise(&s, &version));
    run(
        &mut s,
        &st(&c, "SET search_path = pg_catalog, public"),
        true,
    );
    assert!(noise(&s, &version));
}

#[test]
fn catalog_first_skips_only_the_temporary_schema() {
    let v = |s: &[&str]| catalog_first(&s.iter().map(|x| x.to_string()).collect::<Vec<_>>());
    assert!(v(&["pg_catalog", "public"]));
    assert!(v(&["pg_temp_3", "pg_catalog", "public"]));
    assert!(!v(&["public", "pg_catalog"]));
    assert!(!v(&[]));
}

#[test]
fn a_temporary_relation_named_like_a_catalog_withdraws_relation_noise() {
    let c = classifier();
    let (_, mut s) = session(&[]);
    let q = st(&c, "SELECT relname FROM pg_class");
    assert!(noise(&s, &q));
    run(
        &mut s,
        &st(&c, "CREATE TEMP VIEW pg_class AS SELECT 1 AS relname"),
        true,
    );
    assert!(!noise(&s, &q));
    assert!(noise(
        &s,
        &st(&c, "SELECT relname FROM pg_catalog.pg_class")
    ));
    assert!(noise(&s, &st(&c, "SELECT version()")));
}

#[test]
fn only_watched_names_are_kept_and_old_knowledge_is_learned_again() {
    let slot: Arc<Slot> = Arc::default();
    let minute = std::time::Duration::from_secs(60);
    assert!(slot.needs_learning(minute));
    slot.store(slot.ticket(), ["app_fn".to_string(), "version".to_string()]);
    assert!(!slot.needs_learning(minute));
    assert!(slot.needs_learning(std::time::Duration::ZERO));
    let known = slot.shadowed().unwrap();
    assert_eq!(known.len(), 1);
    assert!(known.contains("version"));
    slot.invalidate();
    assert!(slot.needs_learning(minute));
}

#[test]
fn a_user_schema_listed_before_pg_catalog_is_refused_even_when_absent_now() {
    let c = classifier();
    let slot: Arc<Slot> = Arc::default();
    slot.store(slot.ticket(), Vec::new());
    // `"$user"` resolves to nothing for this user, but to a schema after SET ROLE.
    let facts = LoginFacts {
        schemas: Some(vec!["pg_catalog".into(), "public".into()]),
        search_path: Some("\"$user\", pg_catalog, public".into()),
    };
    let s = SessionShadow::new(slot, &facts);
    assert!(!noise(&s, &st(&c, "SELECT relname FROM pg_class")));
}
