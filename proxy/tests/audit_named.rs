//! Statements keep their meaning however they are run: SQL-level PREPARE/EXECUTE, SQL
//! cursors (DECLARE/FETCH/MOVE), protocol portals read in batches (tokio-postgres
//! `query_portal`, pgJDBC `setFetchSize`) and CALL, through the real proxy against a real
//! server, with the built-in rules watching. Also: a failing statement is never noise,
//! driver housekeeping is, and the pgAudit format prints MISC for MISC_SET.
//!
//! Each scenario starts its own proxy: rules have cooldowns, so a finding counted here is
//! the scenario's own.

mod common;
use common::*;

use pgvigil::demo::Cluster;
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;
use tokio_postgres::NoTls;

/// Rows in `big`: more than bulk-export's 10,000.
const BIG: u64 = 15_000;

fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let pg = cluster();
        pg.psql(
            "postgres",
            "app",
            &format!(
                "CREATE TABLE big AS SELECT g AS id, md5(g::text) AS v FROM generate_series(1, {BIG}) g;
                 CREATE TABLE small AS SELECT g AS id FROM generate_series(1, 9000) g;
                 CREATE TABLE victims (id int);
                 CREATE SCHEMA sales;
                 CREATE PROCEDURE sales.archive_old() LANGUAGE sql AS $$ DELETE FROM victims WHERE id < 0 $$;
                 CREATE PROCEDURE sales.purge(VARIADIC ids int[]) LANGUAGE sql AS $$ DELETE FROM victims WHERE id = ANY(ids) $$;
                 CREATE FUNCTION open_big() RETURNS refcursor LANGUAGE plpgsql AS $$
                   DECLARE c refcursor := 'fc'; BEGIN OPEN c FOR SELECT * FROM big; RETURN c; END $$;
                 GRANT ALL ON big, small, victims TO PUBLIC;
                 GRANT USAGE ON SCHEMA sales TO PUBLIC;"
            ),
        )
        .unwrap_or_else(|e| panic!("setup: {e}"));
        pg
    })
}

fn start(audit: &str) -> Proxy {
    Proxy::start(
        pg(),
        ProxyOptions {
            audit: audit.to_string(),
            ..ProxyOptions::default()
        },
    )
}

/// Runs SQL through the proxy as the superuser (a human; trusted on 127.0.0.1).
fn human(proxy: &Proxy, app: &str, sql: &str) -> (bool, String, String) {
    psql(
        &proxy.conninfo(
            "postgres",
            "x",
            "app",
            &format!("sslmode=disable connect_timeout=20 application_name={app}"),
        ),
        sql,
    )
}

fn ok(r: (bool, String, String)) {
    assert!(r.0, "psql failed: {}", r.2);
}

/// Statement events of one application, once `pred` holds for them (bounded wait).
fn wait_statements(proxy: &Proxy, app: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::time::Instant::now() < deadline {
        got = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement" && e["application_name"] == app)
            .collect();
        if pred(&got) {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!(
        "statement events of {app} never matched:\n{}",
        got.iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    );
}

/// The events whose text is `text`.
fn with_text<'a>(events: &'a [Value], text: &str) -> Vec<&'a Value> {
    events
        .iter()
        .filter(|e| e["statement"].as_str().map(str::trim) == Some(text))
        .collect()
}

fn objects(e: &Value) -> Vec<String> {
    e["objects"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|o| {
                    format!(
                        "{} {}",
                        o["type"].as_str().unwrap_or(""),
                        o["name"].as_str().unwrap_or("")
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn execute_is_logged_and_matched_as_the_statement_it_runs() {
    let proxy = start("");
    // The attacker's attempt: prepare a DELETE, then fail to re-prepare the name as a
    // harmless SELECT (the server keeps the DELETE), then execute it.
    let (good, _, err) = human(
        &proxy,
        "prep",
        "PREPARE d AS DELETE FROM victims; PREPARE d AS SELECT 1",
    );
    assert!(!good && err.contains("already exists"), "{err}");
    ok(human(
        &proxy,
        "prep",
        "PREPARE d AS DELETE FROM victims; EXECUTE d",
    ));
    assert_eq!(proxy.fired("unbounded-write"), 1.0);
    let f = proxy.wait_finding("unbounded-write", |_| true);
    assert_eq!(f["statement"], "EXECUTE d");
    let events = wait_statements(&proxy, "prep", |e| !with_text(e, "EXECUTE d").is_empty());
    let exec = with_text(&events, "EXECUTE d")[0];
    assert_eq!(exec["class"], "WRITE");
    assert_eq!(exec["command"], "DELETE");
    assert_eq!(objects(exec), ["TABLE victims"]);
    assert_eq!(exec["prepared_statement"], "DELETE FROM victims");
    assert_eq!(exec["outcome"], "ok");

    // DEALLOCATE, then the name reused for a bounded DELETE: no new finding, and the
    // EXECUTE carries the new statement.
    ok(human(
        &proxy,
        "prep2",
        "PREPARE d AS DELETE FROM victims; DEALLOCATE d; \
         PREPARE d AS DELETE FROM victims WHERE id = 1; EXECUTE d",
    ));
    let events = wait_statements(&proxy, "prep2", |e| !with_text(e, "EXECUTE d").is_empty());
    let exec = with_text(&events, "EXECUTE d")[0];
    assert_eq!(exec["command"], "DELETE");
    assert_eq!(
        exec["prepared_statement"],
        "DELETE FROM victims WHERE id = 1"
    );
    // Same user and database: a second unbounded write would be counted (quietly, inside
    // the cooldown) but never fired; check that the bounded one did not match at all by
    // the statement of the only finding.
    assert_eq!(proxy.fired("unbounded-write"), 1.0);

    // EXPLAIN ANALYZE runs the prepared statement: logged as EXPLAIN ANALYZE DELETE is.
    ok(human(
        &proxy,
        "prep_explain",
        "PREPARE e AS DELETE FROM victims WHERE id = 2; EXPLAIN (ANALYZE, COSTS off) EXECUTE e",
    ));
    let events = wait_statements(&proxy, "prep_explain", |e| e.len() == 2);
    assert_eq!(events[1]["class"], "WRITE", "{}", events[1]);
    assert_eq!(events[1]["command"], "EXPLAIN");
    assert_eq!(objects(&events[1]), ["TABLE victims"]);
    assert_eq!(
        events[1]["prepared_statement"],
        "DELETE FROM victims WHERE id = 2"
    );

    // An EXECUTE of a name the proxy never saw prepared stays MISC/EXECUTE, audited.
    let (good, _, _) = human(&proxy, "prep3", "EXECUTE nope");
    assert!(!good);
    let events = wait_statements(&proxy, "prep3", |e| !e.is_empty());
    assert_eq!(events[0]["command"], "EXECUTE");
    assert_eq!(events[0]["outcome"], "error");
}

#[test]
fn a_sql_cursor_read_in_batches_fires_bulk_export_once() {
    let proxy = start("");
    // Below the limit through a cursor, and MOVE (which returns nothing) does not count.
    ok(human(
        &proxy,
        "cur_small",
        "BEGIN; DECLARE s CURSOR FOR SELECT * FROM small; \
         FETCH 5000 FROM s; FETCH 5000 FROM s; COMMIT; \
         BEGIN; DECLARE b CURSOR FOR SELECT * FROM big; MOVE 14000 IN b; \
         FETCH ALL FROM b; COMMIT",
    ));
    assert_eq!(proxy.fired("bulk-export"), 0.0);
    ok(human(
        &proxy,
        "cur_big",
        "BEGIN; DECLARE c CURSOR FOR SELECT * FROM big; \
         FETCH 6000 FROM c; FETCH 6000 FROM c; FETCH 6000 FROM c; COMMIT",
    ));
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "cur_big", |e| {
        with_text(e, "FETCH 6000 FROM c").len() == 3
    });
    let fetches = with_text(&events, "FETCH 6000 FROM c");
    let totals: Vec<_> = fetches.iter().map(|e| e["rows_total"].clone()).collect();
    assert_eq!(totals, [6000, 12000, 15000]);
    for f in &fetches {
        assert_eq!(f["class"], "READ");
        assert_eq!(f["command"], "SELECT");
        assert_eq!(objects(f), ["TABLE big"]);
        assert_eq!(f["cursor_query"], "SELECT * FROM big");
    }
    assert_eq!(fetches[2]["rows"], 3000);
    let f = proxy.wait_finding("bulk-export", |_| true);
    assert_eq!(f["statement"], "FETCH 6000 FROM c");
    assert_eq!(f["table_name"], "big");

    // A WITH HOLD cursor outlives its transaction and keeps adding up; a cursor closed
    // and declared again starts from zero.
    let events = wait_statements(&proxy, "cur_small", |e| {
        !with_text(e, "FETCH ALL FROM b").is_empty()
    });
    let all = with_text(&events, "FETCH ALL FROM b")[0];
    assert_eq!(all["rows"], 1000);
    assert_eq!(all["rows_total"], 1000);
    let mv = with_text(&events, "MOVE 14000 IN b")[0];
    assert_eq!(mv["command"], "SELECT");
    assert_eq!(mv["rows"], 14000);
}

#[test]
fn a_cursor_opened_by_a_function_still_adds_up() {
    let proxy = start("");
    // The proxy never sees this cursor declared: a plpgsql function opens it.
    ok(human(
        &proxy,
        "refcursor",
        "BEGIN; SELECT open_big(); FETCH 6000 FROM fc; FETCH 6000 FROM fc; \
         FETCH 6000 FROM fc; COMMIT",
    ));
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "refcursor", |e| {
        with_text(e, "FETCH 6000 FROM fc").len() == 3
    });
    let fetches = with_text(&events, "FETCH 6000 FROM fc");
    let totals: Vec<_> = fetches.iter().map(|e| e["rows_total"].clone()).collect();
    assert_eq!(totals, [6000, 12000, 15000]);
    assert!(fetches
        .iter()
        .all(|e| e["command"] == "FETCH" && e["cursor_query"].is_null()));
}

#[test]
fn a_sql_cursor_read_with_protocol_executes_still_adds_up() {
    // Cursors and protocol portals share one namespace in the server: a raw client can
    // DECLARE a cursor and read it with Execute messages (no Bind the proxy could see).
    let proxy = start("");
    let mut s = raw_login(proxy.port, "postgres", "x", "app");
    raw_query(&mut s, "SET application_name = 'raw_cursor'").expect("set");
    raw_query(&mut s, "BEGIN; DECLARE rc CURSOR FOR SELECT * FROM big").expect("declare");
    let mut batch = Vec::new();
    for _ in 0..3 {
        let mut body = b"rc\0".to_vec();
        body.extend_from_slice(&6000i32.to_be_bytes());
        batch.extend_from_slice(&frontend_msg(b'E', &body));
    }
    batch.extend_from_slice(&frontend_msg(b'S', b""));
    std::io::Write::write_all(&mut s, &batch).expect("send executes");
    let mut data_rows = 0;
    loop {
        let (tag, body) = read_msg(&mut s).expect("read");
        match tag {
            b'D' => data_rows += 1,
            b'E' => panic!("{:?}", error_fields(&body)),
            b'Z' => break,
            _ => {}
        }
    }
    assert_eq!(data_rows, BIG);
    raw_query(&mut s, "COMMIT").expect("commit");
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "raw_cursor", |e| {
        e.iter().filter(|e| e["protocol"] == "extended").count() == 3
    });
    let executes: Vec<&Value> = events
        .iter()
        .filter(|e| e["protocol"] == "extended")
        .collect();
    let totals: Vec<_> = executes.iter().map(|e| e["rows_total"].clone()).collect();
    assert_eq!(totals, [6000, 12000, 15000], "{executes:#?}");
    assert!(executes
        .iter()
        .all(|e| e["command"] == "SELECT" && objects(e) == ["TABLE big"]));
}

/// Sends `bytes` and reads until `readies` ReadyForQuery; returns the DataRows read and
/// the SQLSTATEs of the errors.
fn pipeline(s: &mut std::net::TcpStream, bytes: &[u8], readies: usize) -> (u64, Vec<String>) {
    std::io::Write::write_all(s, bytes).expect("send");
    let (mut rows, mut errors, mut seen) = (0, Vec::new(), 0);
    while seen < readies {
        let (tag, body) = read_msg(s).expect("read");
        match tag {
            b'D' => rows += 1,
            b'E' => errors.push(error_fields(&body).get(&'C').cloned().unwrap_or_default()),
            b'Z' => seen += 1,
            _ => {}
        }
    }
    (rows, errors)
}

fn query_msg(sql: &str) -> Vec<u8> {
    frontend_msg(b'Q', format!("{sql}\0").as_bytes())
}

fn execute_msg(portal: &str, max_rows: i32) -> Vec<u8> {
    let mut body = format!("{portal}\0").into_bytes();
    body.extend_from_slice(&max_rows.to_be_bytes());
    frontend_msg(b'E', &body)
}

#[test]
fn protocol_messages_pipelined_after_prepare_or_declare_keep_their_meaning() {
    // The client does not wait for the server's answer to a SQL PREPARE or DECLARE before
    // binding or executing what it creates: the proxy learns the name only when the
    // server accepts it, after it saw the Bind and Execute.
    let proxy = start("");
    let mut s = raw_login(proxy.port, "postgres", "x", "app");
    raw_query(&mut s, "SET application_name = 'pipelined'").expect("set");
    let mut bytes = query_msg("PREPARE pd AS DELETE FROM victims");
    // Bind: unnamed portal to statement "pd", no formats, no parameters, no result formats.
    bytes.extend_from_slice(&frontend_msg(b'B', b"\0pd\0\0\0\0\0\0\0"));
    bytes.extend_from_slice(&execute_msg("", 0));
    bytes.extend_from_slice(&frontend_msg(b'S', b""));
    let (_, errors) = pipeline(&mut s, &bytes, 2);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(proxy.fired("unbounded-write"), 1.0);

    let mut bytes = query_msg("BEGIN; DECLARE pc CURSOR FOR SELECT * FROM big");
    for _ in 0..3 {
        bytes.extend_from_slice(&execute_msg("pc", 6000));
    }
    bytes.extend_from_slice(&frontend_msg(b'S', b""));
    bytes.extend_from_slice(&query_msg("COMMIT"));
    let (rows, errors) = pipeline(&mut s, &bytes, 3);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(rows, BIG);
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "pipelined", |e| {
        e.iter().filter(|e| e["protocol"] == "extended").count() == 4
    });
    let extended: Vec<&Value> = events
        .iter()
        .filter(|e| e["protocol"] == "extended")
        .collect();
    assert_eq!(extended[0]["command"], "DELETE", "{}", extended[0]);
    assert_eq!(extended[0]["statement"], "DELETE FROM victims");
    let totals: Vec<_> = extended[1..]
        .iter()
        .map(|e| e["rows_total"].clone())
        .collect();
    assert_eq!(totals, [6000, 12000, 15000], "{extended:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tokio_postgres_portal_read_in_batches_fires_bulk_export_once() {
    let proxy = start("");
    let (mut client, conn) = tokio_postgres::connect(
        &proxy.conninfo(
            "postgres",
            "x",
            "app",
            "sslmode=disable connect_timeout=20 application_name=tp_portal",
        ),
        NoTls,
    )
    .await
    .expect("connect through the proxy");
    tokio::spawn(conn);
    // Below the limit first: 9000 rows in batches of 4000.
    let tx = client.transaction().await.unwrap();
    let portal = tx.bind("SELECT * FROM small", &[]).await.unwrap();
    let mut n = 0;
    loop {
        let rows = tx.query_portal(&portal, 4000).await.unwrap();
        if rows.is_empty() {
            break;
        }
        n += rows.len();
    }
    assert_eq!(n, 9000);
    tx.commit().await.unwrap();
    assert_eq!(proxy.fired("bulk-export"), 0.0);

    let tx = client.transaction().await.unwrap();
    let portal = tx.bind("SELECT * FROM big", &[]).await.unwrap();
    let mut n = 0;
    loop {
        let rows = tx.query_portal(&portal, 6000).await.unwrap();
        if rows.is_empty() {
            break;
        }
        n += rows.len();
    }
    assert_eq!(n as u64, BIG);
    tx.commit().await.unwrap();
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "tp_portal", |e| {
        with_text(e, "SELECT * FROM big").len() >= 3
    });
    let batches = with_text(&events, "SELECT * FROM big");
    let rows: Vec<_> = batches.iter().map(|e| e["rows"].clone()).collect();
    let totals: Vec<_> = batches.iter().map(|e| e["rows_total"].clone()).collect();
    // The last Execute finds the portal empty (query_portal's loop ends on no rows).
    assert_eq!(&rows[..3], [6000, 6000, 3000], "{batches:#?}");
    assert_eq!(&totals[..3], [6000, 12000, 15000], "{batches:#?}");
    assert!(batches.iter().all(|e| e["command"] == "SELECT"));
}

#[test]
fn jdbc_fetch_size_read_fires_bulk_export_once() {
    let Some((javac, java, jar)) = java::java_tools_or_skip("jdbc fetch size test") else {
        return;
    };
    let classes = tempfile::tempdir().expect("temp dir");
    java::compile(&javac, &jar, classes.path(), "FetchSize.java");
    let proxy = start("");
    let classpath = format!("{}:{}", jar.display(), classes.path().display());
    let url = format!(
        "jdbc:postgresql://127.0.0.1:{}/app?sslmode=disable",
        proxy.port
    );
    let run = |table: &str| {
        let (ok, out) = java::run_bounded(
            Command::new(&java)
                .arg("-cp")
                .arg(&classpath)
                .arg("FetchSize")
                .args([url.as_str(), "postgres", "x", table, "1000"]),
            Duration::from_secs(120),
        );
        assert!(
            ok,
            "FetchSize {table} failed:\n{out}\nproxy log:\n{}",
            proxy.log()
        );
        out
    };
    assert!(run("small").contains("OK rows=9000"));
    assert_eq!(proxy.fired("bulk-export"), 0.0);
    assert!(run("big").contains("OK rows=15000"));
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "pgvigil-jdbc-fetchsize", |e| {
        e.iter()
            .any(|e| e["rows_total"] == 15000 && e["statement"] == "select * from big")
    });
    let batches = with_text(&events, "select * from big");
    assert!(
        batches.len() >= 15,
        "one event per batch of 1000: {}",
        batches.len()
    );
    assert!(batches
        .iter()
        .all(|e| e["class"] == "READ" && objects(e) == ["TABLE big"]));
}

/// psycopg 3's server-side cursor: DECLARE, then `FETCH FORWARD itersize FROM "name"`,
/// each through the extended protocol.
const PSYCOPG_CURSOR: &str = r#"
import sys, psycopg
with psycopg.connect(sys.argv[1]) as conn:
    with conn.cursor(name="psy_big") as cur:
        cur.itersize = 4000
        cur.execute("SELECT * FROM " + sys.argv[2])
        n = sum(1 for _ in cur)
    print("OK rows=%d" % n)
"#;

#[test]
fn a_psycopg_server_side_cursor_read_fires_bulk_export_once() {
    let have = Command::new("python3")
        .args(["-c", "import psycopg"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !have {
        eprintln!("SKIPPED psycopg cursor test: python3 with psycopg 3 not found");
        return;
    }
    let proxy = start("");
    let conninfo = proxy.conninfo(
        "postgres",
        "x",
        "app",
        "sslmode=disable connect_timeout=20 application_name=psycopg_cursor",
    );
    let run = |table: &str| {
        let out = Command::new("python3")
            .args(["-c", PSYCOPG_CURSOR, &conninfo, table])
            .output()
            .expect("run python3");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };
    assert!(run("small").contains("OK rows=9000"));
    assert_eq!(proxy.fired("bulk-export"), 0.0);
    assert!(run("big").contains("OK rows=15000"));
    assert_eq!(proxy.fired("bulk-export"), 1.0);
    let events = wait_statements(&proxy, "psycopg_cursor", |e| {
        e.iter().any(|e| e["rows_total"] == 15000)
    });
    let fetches: Vec<&Value> = events
        .iter()
        .filter(|e| e["cursor_query"] == "SELECT * FROM big")
        .collect();
    assert!(fetches.len() >= 4, "{events:#?}");
    assert!(fetches
        .iter()
        .all(|e| e["class"] == "READ" && objects(e) == ["TABLE big"]));
}

#[test]
fn call_names_the_procedure_on_both_classifier_paths() {
    let proxy = start("");
    // sqlparser parses the first; it cannot parse VARIADIC, so the second goes down the
    // token path.
    ok(human(
        &proxy,
        "call",
        "CALL sales.archive_old(); CALL sales.purge(VARIADIC ARRAY[1, 2])",
    ));
    let events = wait_statements(&proxy, "call", |e| e.len() == 2);
    for (e, (procedure, parse)) in events
        .iter()
        .zip([("sales.archive_old", "ast"), ("sales.purge", "tokens")])
    {
        assert_eq!(e["class"], "FUNCTION", "{e}");
        assert_eq!(e["command"], "CALL", "{e}");
        assert_eq!(e["parse"], parse, "{e}");
        assert_eq!(e["outcome"], "ok", "{e}");
        assert_eq!(objects(e), [format!("FUNCTION {procedure}")], "{e}");
    }
}

#[test]
fn failures_are_never_noise_and_housekeeping_is() {
    let proxy = start("");
    let (good, _, _) = human(&proxy, "noise", "SELECT 1/0");
    assert!(!good);
    // error-burst (noise = false, more than 3 errors) sees a human's failing catalog-shaped
    // statements.
    for _ in 0..3 {
        let (good, _, _) = human(&proxy, "noise_burst", "SELECT 1/0");
        assert!(!good);
    }
    assert_eq!(proxy.fired("error-burst"), 1.0);
    // What pools send on checkout (DISCARD ALL may not run inside the implicit
    // transaction of a multi-statement query: its own).
    ok(human(&proxy, "noise", "DISCARD ALL"));
    ok(human(
        &proxy,
        "noise",
        "SELECT 1; DEALLOCATE ALL; UNLISTEN *; CLOSE ALL; RESET ALL; \
         SELECT CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END; SELECT * FROM small LIMIT 1",
    ));
    // Only the failure and the user's read are written (log_noise is off).
    let events = wait_statements(&proxy, "noise", |e| {
        !with_text(e, "SELECT * FROM small LIMIT 1").is_empty()
    });
    let texts: Vec<_> = events
        .iter()
        .map(|e| e["statement"].as_str().unwrap_or(""))
        .collect();
    assert_eq!(texts, ["SELECT 1/0", "SELECT * FROM small LIMIT 1"]);
    assert_eq!(events[0]["noise"], false);
    assert_eq!(events[0]["sqlstate"], "22012");
    // The housekeeping was seen and counted as noise (DISCARD ALL, DEALLOCATE ALL,
    // UNLISTEN *, CLOSE ALL are MISC; RESET ALL is MISC_SET).
    assert!(
        proxy.metric("pgvigil_statements_total{class=\"MISC\",user_kind=\"human\",noise=\"true\"}")
            >= 4.0,
        "{}",
        proxy.metrics()
    );
}

#[test]
fn pgaudit_format_prints_misc_for_misc_set() {
    let proxy = start("format = \"pgaudit\"");
    ok(human(
        &proxy,
        "fmt",
        "SET work_mem = '64MB'; SELECT * FROM small LIMIT 1",
    ));
    let mut text = String::new();
    common::wait_until("pgaudit lines", Duration::from_secs(10), || {
        text = std::fs::read_to_string(&proxy.audit_path).unwrap_or_default();
        text.contains("small LIMIT 1")
    });
    let set = text
        .lines()
        .find(|l| l.contains("SET work_mem"))
        .unwrap_or_else(|| panic!("no SET line:\n{text}"));
    assert!(set.contains(" AUDIT: SESSION,1,1,MISC,SET,"), "{set}");
}
