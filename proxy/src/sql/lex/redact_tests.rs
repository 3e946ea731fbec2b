//! Unit tests of redaction (`lex/redact.rs` through `lex::redact`).

use super::*;

// ---------------------------------------------------------------- redact

pub(super) fn pw(sql: &str) -> String {
    redact(sql, Redact::Passwords).into_owned()
}

pub(super) fn lit(sql: &str) -> String {
    redact(sql, Redact::Literals).into_owned()
}

#[track_caller]
pub(super) fn hides(sql: &str, secret: &str) -> String {
    let out = pw(sql);
    assert!(!out.contains(secret), "{secret:?} left in {out:?}");
    let out2 = lit(sql);
    assert!(!out2.contains(secret), "{secret:?} left in {out2:?}");
    out
}

#[test]
fn leaves_text_without_passwords_borrowed() {
    for sql in [
        "select 1",
        "select * from t where a = 'x'",
        "select password from users",
        "alter role x password null",
        "select 'http://example.com'",
        "",
    ] {
        assert!(
            matches!(redact(sql, Redact::Passwords), Cow::Borrowed(_)),
            "{sql}"
        );
    }
    assert!(matches!(
        redact("select a from t", Redact::Literals),
        Cow::Borrowed(_)
    ));
}

#[test]
fn redacts_role_passwords() {
    assert_eq!(
        hides("CREATE ROLE a LOGIN PASSWORD 'secret'", "secret"),
        "CREATE ROLE a LOGIN PASSWORD '***'"
    );
    assert_eq!(
        hides(
            "ALTER USER a WITH ENCRYPTED PASSWORD 'secret' VALID UNTIL 'infinity'",
            "secret"
        ),
        "ALTER USER a WITH ENCRYPTED PASSWORD '***' VALID UNTIL 'infinity'"
    );
    assert_eq!(
        hides("create user a password $$secret$$", "secret"),
        "create user a password '***'"
    );
    assert_eq!(
        hides("create user a password $x$se$cret$x$ login", "cret"),
        "create user a password '***' login"
    );
    assert_eq!(
        hides(r"alter role a password E'se\'cret'", "cret"),
        "alter role a password '***'"
    );
    assert_eq!(
        hides("ALTER ROLE x PASSWORD 'sec", "sec"),
        "ALTER ROLE x PASSWORD '***'"
    );
    assert_eq!(
        hides("alter role a password /* c */ 'secret'", "secret"),
        "alter role a password /* c */ '***'"
    );
    assert_eq!(
        hides(
            "ALTER USER x PASSWORD 'SCRAM-SHA-256$4096:abc=$def=:ghi='",
            "SCRAM"
        ),
        "ALTER USER x PASSWORD '***'"
    );
    assert_eq!(
        hides("alter role a password U&'secret'", "secret"),
        "alter role a password '***'"
    );
    assert_eq!(
        pw("ALTER ROLE a PASSWORD NULL"),
        "ALTER ROLE a PASSWORD NULL"
    );
    // A mistaken double quote still hides the secret.
    assert_eq!(
        hides("alter role a password \"secret\"", "secret"),
        "alter role a password \"***\""
    );
}

#[test]
fn redacts_backslash_strings_as_if_nonstandard() {
    // With standard_conforming_strings off, the string runs on past `\'`.
    assert_eq!(
        hides(r"alter role a password 'sec\'ret' valid until 'x'", "ret"),
        "alter role a password '***' valid until 'x'"
    );
}

#[test]
fn redacts_fdw_options() {
    assert_eq!(
        hides(
            "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password 'secret')",
            "secret"
        ),
        "CREATE USER MAPPING FOR bob SERVER s OPTIONS (user 'bob', password '***')"
    );
    assert_eq!(
        hides("ALTER SERVER s OPTIONS (SET password 'secret')", "secret"),
        "ALTER SERVER s OPTIONS (SET password '***')"
    );
    assert_eq!(
        hides("alter user mapping for bob server s options (add \"password\" 'secret', sslpassword 'k3y')", "k3y"),
        "alter user mapping for bob server s options (add \"password\" '***', sslpassword '***')"
    );
    assert_eq!(
        pw("ALTER SERVER s OPTIONS (DROP password)"),
        "ALTER SERVER s OPTIONS (DROP password)"
    );
}

#[test]
fn redacts_assignments_to_password_columns_and_settings() {
    assert_eq!(
        hides(
            "update users set password = 'secret' where id = 1",
            "secret"
        ),
        "update users set password = '***' where id = 1"
    );
    assert_eq!(
        hides(
            "update users set password = md5('secret') where id = 1",
            "secret"
        ),
        "update users set password = *** where id = 1"
    );
    assert_eq!(
        hides("set app.db_password to 'secret'", "secret"),
        "set app.db_password to '***'"
    );
    assert_eq!(
        hides(
            "select set_config('app.password', 'secret', false)",
            "secret"
        ),
        "select set_config('app.password', '***', false)"
    );
    assert_eq!(
        pw("select * from u where password = $1"),
        "select * from u where password = $1"
    );
    assert_eq!(
        pw("select password, email from u"),
        "select password, email from u"
    );
}

#[test]
fn redacts_conninfo_in_strings() {
    assert_eq!(
        hides(
            "select dblink_connect('host=h password=secret dbname=d')",
            "secret"
        ),
        "select dblink_connect('host=h password=*** dbname=d')"
    );
    assert_eq!(
        hides(
            "select dblink_connect('c', 'password=''se cret'' host=x')",
            "cret"
        ),
        "select dblink_connect('c', 'password=''***'' host=x')"
    );
    assert_eq!(
        hides(
            r"select dblink('password = ''a\''b c'' host=x', 'q')",
            "b c"
        ),
        "select dblink('password = ''***'' host=x', 'q')"
    );
    assert_eq!(
        hides(
            r"select dblink_connect(E'password=\'se cret\' host=x')",
            "cret"
        ),
        r"select dblink_connect(E'password=\'***\' host=x')"
    );
    assert_eq!(
        hides("CREATE SUBSCRIPTION s CONNECTION 'host=h sslpassword=k3y password=secret' PUBLICATION p", "secret"),
        "CREATE SUBSCRIPTION s CONNECTION 'host=h sslpassword=*** password=***' PUBLICATION p"
    );
    assert_eq!(
        hides(
            "select dblink_connect($$host=h password=secret$$)",
            "secret"
        ),
        "select dblink_connect($$host=h password=***$$)"
    );
    assert_eq!(
        hides(
            "insert into t values ('{\"password\": \"se cret\"}')",
            "cret"
        ),
        "insert into t values ('{\"password\": \"***\"}')"
    );
    assert_eq!(pw("select 'password'"), "select 'password'");
    assert_eq!(
        pw("select 'reset password now'"),
        "select 'reset password now'"
    );
}

#[test]
fn redacts_uri_passwords() {
    assert_eq!(
        hides(
            "select dblink_connect('postgresql://u:secret@h/db')",
            "secret"
        ),
        "select dblink_connect('postgresql://u:***@h/db')"
    );
    assert_eq!(
        hides("create subscription s connection 'postgres://u:se@cret@h:5432/db?sslmode=require' publication p", "cret"),
        "create subscription s connection 'postgres://u:***@h:5432/db?sslmode=require' publication p"
    );
    assert_eq!(
        pw("select 'postgresql://u@h/db'"),
        "select 'postgresql://u@h/db'"
    );
    assert_eq!(
        pw("select 'postgresql://h:5432/db'"),
        "select 'postgresql://h:5432/db'"
    );
}

#[test]
fn redacts_inside_function_bodies() {
    assert_eq!(
        hides(
            "DO $$ BEGIN CREATE ROLE app LOGIN PASSWORD 'secret'; END $$",
            "secret"
        ),
        "DO $$ BEGIN CREATE ROLE app LOGIN PASSWORD '***'; END $$"
    );
    assert_eq!(
        hides(
            "DO $$ BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''secret'''; END $$",
            "secret"
        ),
        "DO $$ BEGIN EXECUTE 'ALTER ROLE app PASSWORD ''***'''; END $$"
    );
    assert_eq!(
        hides(
            "DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD $c$secret$c$$b$; END $a$",
            "secret"
        ),
        "DO $a$ BEGIN EXECUTE $b$ALTER ROLE x PASSWORD '***'$b$; END $a$"
    );
}

#[test]
fn redacts_comments_mentioning_passwords() {
    assert_eq!(pw("select 1 -- password is hunter2\n"), "select 1 -- ***\n");
    assert_eq!(pw("select /* the password: x */ 1"), "select /* *** */ 1");
    assert_eq!(pw("select 1 /* password x"), "select 1 /* ***");
    assert_eq!(lit("select 1 /* password x */"), "select ? /* *** */");
    assert_eq!(pw("select 1 /* nothing */"), "select 1 /* nothing */");
}

#[test]
fn literals_mode_replaces_every_literal() {
    assert_eq!(
        lit(r"select * from t where a = 'x' and b = 42 and c = E'\\n'"),
        "select * from t where a = ? and b = ? and c = ?"
    );
    assert_eq!(
        lit("SELECT  x'1F', b'01', $$a$$, $t$b$t$, 1.5e3, -2, $1 -- keep 'me'\nFROM \"T\""),
        "SELECT  ?, ?, ?, ?, ?, -?, $1 -- keep 'me'\nFROM \"T\""
    );
    assert_eq!(
        lit("ALTER ROLE a PASSWORD 'secret'"),
        "ALTER ROLE a PASSWORD ?"
    );
    assert_eq!(lit("select 'unterminated"), "select ?");
    assert_eq!(lit("select t1.c2 from t3"), "select t1.c2 from t3");
}

#[test]
fn parameters_in_password_positions_are_found() {
    let cases: [(&str, &[u32]); 7] = [
        ("ALTER ROLE r PASSWORD $1", &[1]),
        (
            "select set_config('app.password', $2, false) where x = $1",
            &[2],
        ),
        (
            "CREATE USER MAPPING FOR u SERVER s OPTIONS (user $1, password $2)",
            &[2],
        ),
        ("select f(password => $3)", &[3]),
        ("select $1::text, $2", &[]),
        ("update t set v = $1 where id = $2", &[]),
        ("select dblink_connect($1)", &[]),
    ];
    for (sql, want) in cases {
        assert_eq!(super::secret_params(sql, true), want, "{sql}");
    }
}

#[test]
fn parameter_values_lose_their_passwords() {
    let r = |v: &str| super::redact_parameter(v).into_owned();
    assert_eq!(
        r("host=h password=s3 dbname=d"),
        "host=h password=*** dbname=d"
    );
    assert_eq!(r("postgresql://u:s3@h/d"), "postgresql://u:***@h/d");
    assert_eq!(r("{\"password\": \"s3\"}"), "{\"password\": \"***\"}");
    assert_eq!(r("plain value"), "plain value");
}
