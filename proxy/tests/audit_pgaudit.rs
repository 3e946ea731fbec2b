//! pgvigil's statement events judged against the real pgAudit extension.
//!
//! A cluster runs pgAudit (`pgaudit.log = 'all'`, one line per relation, catalogs
//! included, `CREATE EXTENSION pgaudit` so DDL lines name their objects). The corpus
//! `tests/corpus/pgaudit.sql` (~330 statements of every class, with the shapes
//! PostgreSQL's regression SQL exercises: role keywords, user mappings, DROP OWNED, column
//! DDL, triggers, policies, MERGE variants, COPY options, prepared EXECUTE; its header
//! gives the format) goes through the proxy in one session as the superuser, one statement per
//! simple Query; each statement's event is paired with pgAudit's lines for it and class,
//! command and objects are compared. Rates are printed with every disagreement and its
//! reason from `tests/corpus/known_disagreements.toml` (or UNLISTED). Class must always
//! agree; command and objects on at least 95%, listed disagreements excused; and the
//! objects of DDL and ROLE statements (pgAudit's class) on at least 95% on their own,
//! listed ones counted as disagreements (issue 14).
//!
//! pgAudit's side of a statement: its lines (attributed by `application_name` in the log
//! prefix) with the statement's pgAudit statement_id and the statement's own text. Lines
//! from inside functions, DO blocks and prepared statements carry their own text and are
//! left out, as are `???` lines (relations met without a command: inheritance children,
//! relations behind a view, listed again with their command). Function executions
//! (FUNCTION,EXECUTE) are substatements of their own. The statement itself is logged last
//! (after what EXPLAIN or CREATE TABLE AS runs); of several commands on that line level
//! (a DDL statement logs each object under the command that created it) the one that is
//! the server's CommandComplete tag counts, otherwise the first (a write's target comes
//! before the relations it reads). Lines without text are no client statement (the
//! planner running a SQL function's body) and are skipped.
//!
//! Classes: pgAudit prints MISC for SET and RESET but files them under MISC_SET too
//! (`pgaudit.log = 'misc_set'` logs them); a statement for which pgAudit logs a function
//! execution under its own text (CALL, SELECT f()) may be FUNCTION. pgvigil logs an
//! `EXECUTE` as the statement it runs (`prepared_statement`): pgAudit logs that one too,
//! under the EXECUTE's text, before its MISC,EXECUTE line, and that line is compared. A
//! `FETCH`/`MOVE` pgvigil logs as its cursor's query (`cursor_query`), where pgAudit has
//! only MISC: its class is the query's by design (commands are listed disagreements).
//!
//! Objects (sets of type and name):
//! - pgAudit qualifies names (`public.t`), the proxy keeps them as written: the proxy's
//!   name must be pgAudit's or a suffix of it; quotes are removed;
//! - for READ and WRITE statements TABLE, VIEW, SEQUENCE, MATERIALIZED VIEW, ... are one
//!   kind: a query's text cannot tell them apart. COMPOSITE TYPE and DOMAIN are TYPE; a
//!   TABLE COLUMN is the proxy's COLUMN or TABLE COLUMN, or the column's TABLE;
//!   routines lose arguments;
//! - for DDL, DDL or ROLE lines under another command are sub-commands (a serial
//!   column's sequence, DROP OWNED's REVOKEs) and left out;
//! - a pgAudit object with a type and no name (GRANT logs `TABLE,,`) matches any name;
//! - pgAudit's `trg on public.t` (TRIGGER, POLICY, RULE) is two objects, as the proxy
//!   gives them: `TRIGGER trg` and `TABLE public.t`; a TABLE COLUMN of the proxy's
//!   matches pgAudit's TABLE of its table (pgAudit names only the table for ADD COLUMN
//!   and ALTER COLUMN);
//! - the proxy prints role keywords as written (`CURRENT_USER on server s`); they are
//!   resolved with the event's `user` and `role` fields, which say who they were, before
//!   comparing with pgAudit (which prints the role the server resolved);
//! - the proxy's ROLE and DATABASE objects are dropped (pgAudit never names these shared
//!   objects), and so are functions a non-DDL statement calls (pgAudit logs only those
//!   outside pg_catalog it did not inline);
//! - a utility command for which pgAudit names no object at all (VACUUM, LOCK, TRUNCATE,
//!   ALTER SYSTEM, ...) is not compared: pgAudit has no source for its objects.
//!
//! Statements that fail are excluded from the rates (pgAudit logs nothing for them); the
//! proxy must log them with outcome "error" and the server's SQLSTATE.

mod common;
use common::*;

use pgvigil::demo::cluster::{Cluster, ClusterOptions};
use serde_json::Value;
use std::collections::{BTreeSet, HashMap};
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const CORPUS_APP: &str = "pgaudit_corpus";

/// The file's cluster, with pgAudit. Never dropped: the harness's watchdog stops it.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(|| {
        let conf = [
            "shared_preload_libraries = 'pgaudit'",
            "pgaudit.log = 'all'",
            "pgaudit.log_relation = on",
            "pgaudit.log_catalog = on",
            "pgaudit.log_statement_once = off",
            "pgaudit.log_parameter = off",
            "pgaudit.log_level = 'log'",
            // application_name attributes lines to a session.
            "log_line_prefix = '%m [%p] %e %q%u@%d app=%a '",
        ];
        Cluster::start(ClusterOptions {
            extra_conf: conf.map(String::from).to_vec(),
            ..ClusterOptions::default()
        })
        .unwrap_or_else(|e| panic!("cannot start PostgreSQL with pgAudit: {e}"))
    })
}

fn start_proxy() -> Proxy {
    let audit = "log_noise = true\n".to_string();
    Proxy::start(
        pg(),
        ProxyOptions {
            audit,
            ..Default::default()
        },
    )
}

// ---- The corpus ----

/// One corpus statement.
#[derive(Debug, Default)]
struct Block {
    /// Line of the statement's first line in the file.
    line: usize,
    text: String,
    /// SQLSTATE the statement must fail with.
    error: Option<String>,
    /// COPY FROM STDIN data lines.
    stdin: Vec<String>,
    /// Why pgAudit logs nothing for this statement although it succeeds.
    silent: Option<String>,
}

/// The setup script and the statements of `tests/corpus/pgaudit.sql`.
fn load_corpus(data_dir: &Path) -> (String, Vec<Block>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/pgaudit.sql");
    let text = std::fs::read_to_string(path).expect("read the corpus");
    let text = text.replace("@DATA_DIR@", &data_dir.display().to_string());
    // (kind, line of the separator, lines)
    let mut raw: Vec<(&str, usize, Vec<&str>)> = Vec::new();
    for (i, l) in text.lines().enumerate() {
        if let Some(sep) = l.strip_prefix("--- ") {
            let kind = sep.split([':', ' ']).next().unwrap_or("");
            raw.push((kind, i + 1, Vec::new()));
        } else if let Some((_, _, lines)) = raw.last_mut() {
            lines.push(l);
        }
    }
    let (mut setup, mut blocks) = (String::new(), Vec::new());
    for (kind, line, lines) in raw {
        let mut b = Block {
            line: line + 1,
            ..Block::default()
        };
        let mut body = Vec::new();
        for l in lines {
            match l
                .strip_prefix("--@ ")
                .map(|d| d.split_once(' ').unwrap_or((d, "")))
            {
                Some(("error", s)) => b.error = Some(s.trim().to_string()),
                Some(("stdin", s)) => b.stdin.push(s.to_string()),
                Some(("silent", s)) => b.silent = Some(s.to_string()),
                Some(_) => panic!("corpus line {line}: unknown directive {l:?}"),
                None => body.push(l),
            }
        }
        b.text = body.join("\n").trim().to_string();
        match kind {
            "setup" => setup.push_str(&(b.text + "\n")),
            "next" if !b.text.is_empty() => blocks.push(b),
            _ => panic!("corpus line {line}: bad block {kind:?} (or empty statement)"),
        }
    }
    (setup, blocks)
}

// ---- A raw simple-query session (COPY both ways, errors, notices) ----

/// What the server answered to one Query.
#[derive(Debug, Default)]
struct Reply {
    /// CommandComplete tag without its row counts (`INSERT 0 1` gives `INSERT`).
    tag: Option<String>,
    sqlstate: Option<String>,
    message: Option<String>,
}

/// Opens a plaintext session on `port` as `user` on `app`, tagged `app_name`.
fn open_session(port: u16, user: &str, password: &str, app_name: &str) -> TcpStream {
    let mut s = raw_connect(port);
    let _ = s.set_read_timeout(Some(Duration::from_secs(30)));
    let params = [
        ("user", user),
        ("database", "app"),
        ("application_name", app_name),
    ];
    s.write_all(&startup_packet(&params)).expect("send startup");
    if let Err(e) = finish_raw_login(&mut s, password) {
        panic!("login as {user} failed: {e:?}");
    }
    s
}

/// Sends one simple Query and reads up to ReadyForQuery, feeding COPY FROM STDIN.
fn simple_query(s: &mut TcpStream, sql: &str, stdin: &[String]) -> Reply {
    let mut q = sql.as_bytes().to_vec();
    q.push(0);
    s.write_all(&frontend_msg(b'Q', &q)).expect("send query");
    let mut reply = Reply::default();
    loop {
        let (tag, body) = read_msg(s).unwrap_or_else(|e| panic!("reply to {sql:?}: {e}"));
        match tag {
            b'G' => {
                let data: String = stdin.iter().map(|l| format!("{l}\n")).collect();
                s.write_all(&frontend_msg(b'd', data.as_bytes()))
                    .expect("CopyData");
                s.write_all(&frontend_msg(b'c', &[])).expect("CopyDone");
            }
            b'C' => {
                let t =
                    String::from_utf8_lossy(body.strip_suffix(&[0]).unwrap_or(&body)).into_owned();
                let words: Vec<&str> = t
                    .split(' ')
                    .filter(|w| !w.chars().all(|c| c.is_ascii_digit()))
                    .collect();
                reply.tag = Some(words.join(" "));
            }
            b'E' => {
                let f = error_fields(&body);
                reply.sqlstate = f.get(&'C').cloned();
                reply.message = f.get(&'M').cloned();
            }
            b'Z' => return reply,
            _ => {}
        }
    }
}

// ---- pgAudit's log ----

#[path = "pgaudit/compare.rs"]
mod compare;
use compare::*;

/// One entry of known_disagreements.toml.
#[derive(Debug, serde::Deserialize)]
struct Known {
    statement: String,
    field: String,
    pgaudit: String,
    pgvigil: String,
    reason: String,
}

fn known_disagreements(data_dir: &Path) -> Vec<Known> {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        disagreement: Vec<Known>,
    }
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus/known_disagreements.toml");
    let text = std::fs::read_to_string(&path).expect("read known_disagreements.toml");
    let text = text.replace("@DATA_DIR@", &data_dir.display().to_string());
    toml::from_str::<File>(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .disagreement
}

/// Waits (bounded) for `n` statement events of sessions tagged `app`; returns them in
/// log order.
fn wait_statements(proxy: &Proxy, app: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let events: Vec<Value> = proxy
            .audit_events()
            .into_iter()
            .filter(|e| e["type"] == "statement" && e["application_name"] == app)
            .collect();
        if events.len() >= n {
            return events;
        }
        if Instant::now() > deadline {
            let all: Vec<String> = proxy.audit_events().iter().map(|e| e.to_string()).collect();
            panic!(
                "{} of {n} statement events for {app}; audit log:\n{}",
                events.len(),
                all.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn corpus_agrees_with_pgaudit() {
    let pg = pg();
    let (setup, blocks) = load_corpus(pg.data_dir());
    assert!(
        blocks.len() >= 150,
        "the corpus has {} statements",
        blocks.len()
    );
    pg.psql("postgres", "app", &setup)
        .unwrap_or_else(|e| panic!("corpus setup: {e}"));
    let proxy = start_proxy();

    // 1. The corpus through the proxy, one statement per Query, in one session.
    let mut s = open_session(proxy.port, "postgres", "unused", CORPUS_APP);
    let mut replies = Vec::new();
    for b in &blocks {
        let r = simple_query(&mut s, &b.text, &b.stdin);
        assert_eq!(
            r.sqlstate, b.error,
            "corpus line {}: {:?}: {:?}",
            b.line, b.text, r.message
        );
        replies.push(r);
    }
    let _ = s.write_all(&frontend_msg(b'X', &[]));
    drop(s);

    // 2. pgAudit's side: every successful statement has its lines.
    let log = std::fs::read_to_string(pg.log_file()).unwrap_or_default();
    if let Some(copy) = std::env::var_os("PGVIGIL_PGAUDIT_LOG_COPY") {
        let _ = std::fs::write(copy, &log); // for studying pgAudit's output afterwards
    }
    let views = pair_pgaudit(&blocks, &replies, &pgaudit_lines(&log, CORPUS_APP));
    for ((b, r), v) in blocks.iter().zip(&replies).zip(&views) {
        let expected = r.sqlstate.is_none() && b.silent.is_none();
        assert_eq!(
            v.is_some(),
            expected,
            "line {}: pgAudit lines for {:?}: {v:?}",
            b.line,
            b.text
        );
    }

    // 3. The proxy's side: one event per Query; statement_id is the Query's position.
    let events = wait_statements(&proxy, CORPUS_APP, blocks.len());
    let by_id: HashMap<u64, &Value> = events
        .iter()
        .filter_map(|e| Some((e["statement_id"].as_u64()?, e)))
        .collect();
    let known = known_disagreements(pg.data_dir());
    // Per field: statements compared, and agreeing.
    let (mut compared, mut agree, mut excused) = ([0usize; 3], [0usize; 3], [0usize; 3]);
    // Objects of DDL and ROLE statements (pgAudit's class): compared, agreeing.
    let mut ddl_role = [0usize; 2];
    let (mut report, mut errors, mut seen) = (Vec::new(), Vec::new(), BTreeSet::new());
    for (i, ((b, r), v)) in blocks.iter().zip(&replies).zip(&views).enumerate() {
        let Some(e) = by_id.get(&(i as u64 + 1)) else {
            errors.push(format!(
                "line {}: no event with statement_id {}: {:?}",
                b.line,
                i + 1,
                b.text
            ));
            continue;
        };
        if e["substatement_id"] != 1 || e["protocol"] != "simple" {
            errors.push(format!("line {}: substatement_id or protocol: {e}", b.line));
        }
        let want_outcome = if r.sqlstate.is_some() { "error" } else { "ok" };
        let want_state = r.sqlstate.as_deref().map_or(Value::Null, Value::from);
        if e["outcome"] != want_outcome || e["sqlstate"] != want_state {
            errors.push(format!(
                "line {}: {:?}: server said {want_state}; event outcome {} sqlstate {}",
                b.line, b.text, e["outcome"], e["sqlstate"]
            ));
        }
        // Issue 14: a role keyword (CURRENT_USER, ALTER ROLE ALL) is never logged as a
        // role of that name; only a quoted name in the text is one.
        for o in e["objects"].as_array().into_iter().flatten() {
            let name = o["name"].as_str().unwrap_or("");
            for k in ["current_user", "session_user", "current_role", "all"] {
                let quoted = format!("\"{k}\"");
                if name.contains(&quoted) && !b.text.contains(&quoted) {
                    errors.push(format!("line {}: keyword logged as role: {o}", b.line));
                }
            }
        }
        // ... and a keyword form (bare upper-case) appears only where the text has the
        // keyword unquoted: a role named "CURRENT_USER" stays quoted.
        let unquoted: String = b
            .text
            .split('"')
            .step_by(2)
            .collect::<Vec<_>>()
            .join(" ")
            .to_uppercase();
        for o in e["objects"].as_array().into_iter().flatten() {
            let name = o["name"].as_str().unwrap_or("");
            let head = name.split(' ').next().unwrap_or("");
            let keyword = ["CURRENT_USER", "SESSION_USER", "CURRENT_ROLE", "ALL"].contains(&head);
            let written = unquoted.contains(head)
                || (head == "CURRENT_USER" && unquoted.contains("FOR USER SERVER"));
            if keyword && !written {
                errors.push(format!("line {}: keyword not in the text: {o}", b.line));
            }
        }
        let Some(v) = v else { continue };
        // A plain EXPLAIN EXECUTE runs nothing: pgvigil logs it as MISC/EXPLAIN, and the
        // line to compare is pgAudit's EXPLAIN line, not the prepared statement pgAudit
        // also logs from the planner.
        let plain_explain = e["command"] == "EXPLAIN" && e["class"] == "MISC";
        let ran = (e["prepared_statement"].is_string() && !plain_explain)
            .then(|| ran_by_execute(v))
            .flatten();
        let v = ran.as_ref().unwrap_or(v);
        // A FETCH/MOVE is the cursor's query by design; pgAudit has MISC for it.
        let cursor =
            e["cursor_query"].is_string() && matches!(v.command.as_str(), "FETCH" | "MOVE");
        let class = e["class"].as_str().unwrap_or("?").to_string();
        let command = e["command"].as_str().unwrap_or("?").to_string();
        let (objects_agree, pa, px) = compare_objects(&v.class, &v.objects, e);
        if objects_comparable(v) && matches!(v.class.as_str(), "DDL" | "ROLE") {
            ddl_role[0] += 1;
            ddl_role[1] += usize::from(objects_agree);
        }
        let fields = [
            Some((
                "class",
                cursor || same_class(v, &class),
                v.class.clone(),
                class,
            )),
            Some(("command", v.command == command, v.command.clone(), command)),
            objects_comparable(v).then_some(("objects", objects_agree, pa, px)),
        ];
        for (k, (field, same, want, got)) in fields
            .into_iter()
            .enumerate()
            .filter_map(|(k, f)| Some((k, f?)))
        {
            compared[k] += 1;
            if same {
                agree[k] += 1;
                continue;
            }
            let listed = known
                .iter()
                .position(|d| d.field == field && d.statement.trim() == b.text);
            if let Some(n) = listed {
                seen.insert(n);
                excused[k] += 1;
            }
            let reason = match listed.map(|n| &known[n]) {
                Some(d) if d.pgaudit == want && d.pgvigil == got => d.reason.clone(),
                Some(d) => format!("{} (listed with other values)", d.reason),
                None => "UNLISTED".to_string(),
            };
            let text = b.text.replace('\n', "\n    ");
            report.push(format!(
                "line {} {field}: pgaudit {want} / pgvigil {got} [{reason}]\n    {text}",
                b.line
            ));
            if listed.is_none() {
                let raw: Vec<String> = v
                    .lines
                    .iter()
                    .map(|l| {
                        format!(
                            "{},{},{},{},{}",
                            l.substatement_id, l.class, l.command, l.object_type, l.object_name
                        )
                    })
                    .collect();
                report.push(format!("    pgAudit's lines: {}", raw.join(" | ")));
            }
        }
    }
    for (n, d) in known.iter().enumerate().filter(|(n, _)| !seen.contains(n)) {
        report.push(format!(
            "listed #{n} ({}) agrees now: {:?}",
            d.field, d.statement
        ));
    }
    let pct = |n: usize, k: usize| 100.0 * n as f64 / compared[k].max(1) as f64;
    let rate = |k: usize| pct(agree[k], k);
    let rate_excused = |k: usize| pct(agree[k] + excused[k], k);
    println!("\n{} disagreements:\n{}", report.len(), report.join("\n"));
    println!(
        "\npgAudit agreement: class {:.1}% ({}/{}), command {:.1}% ({}/{}), objects {:.1}% ({}/{}; \
         {} utility statements without pgAudit objects not compared)\n\
         with the listed disagreements excused: command {:.1}%, objects {:.1}%",
        rate(0), agree[0], compared[0], rate(1), agree[1], compared[1], rate(2), agree[2], compared[2],
        compared[0] - compared[2], rate_excused(1), rate_excused(2)
    );
    let ddl_role_rate = 100.0 * ddl_role[1] as f64 / ddl_role[0].max(1) as f64;
    println!(
        "objects of DDL and ROLE statements: {ddl_role_rate:.1}% ({}/{})",
        ddl_role[1], ddl_role[0]
    );
    assert!(
        errors.is_empty(),
        "event mismatches:\n{}",
        errors.join("\n")
    );
    assert_eq!(
        agree[0], compared[0],
        "class must always agree with pgAudit"
    );
    // Issue 14: object agreement on DDL and ROLE statements, raw (listed ones count).
    assert!(
        ddl_role[0] >= 60 && ddl_role_rate >= 95.0,
        "DDL and ROLE objects: {ddl_role_rate:.1}% of {} < 95%",
        ddl_role[0]
    );
    // Raw: every disagreement counts, listed or not. The command floor is lower: the corpus
    // deliberately holds the shapes pgAudit 1.7 names wrongly (MERGE as INSERT/UPDATE, COPY
    // of a table as SELECT/INSERT: 15 statements) and the FETCH/MOVE that pgvigil logs as
    // its cursor's query by design; each is listed with its reason.
    for (k, field, floor) in [(1, "command", 94.0), (2, "objects", 95.0)] {
        assert!(
            rate(k) >= floor,
            "{field} agreement {:.1}% < {floor}%",
            rate(k)
        );
        // Every disagreement beyond the listed ones is a regression.
        assert!(
            rate_excused(k) >= 100.0,
            "{field}: unlisted disagreements ({:.1}% with the listed excused)",
            rate_excused(k)
        );
    }
}

#[test]
fn multi_statement_query_has_one_event_per_statement() {
    let proxy = start_proxy();
    let app = "pgaudit_multi";
    let mut s = open_session(proxy.port, "app_user", "app_pass", app);
    let r = simple_query(&mut s, "select 1; select * from missing_t; select 2", &[]);
    assert_eq!(r.sqlstate.as_deref(), Some("42P01"));
    assert_eq!(simple_query(&mut s, "select 3", &[]).sqlstate, None);
    let mut events = wait_statements(&proxy, app, 4);
    events.sort_by_key(|e| (e["statement_id"].as_u64(), e["substatement_id"].as_u64()));
    let got: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{} {} {} {}",
                e["statement_id"], e["substatement_id"], e["outcome"], e["statement"]
            )
        })
        .collect();
    let want = [
        r#"1 1 "ok" "select 1""#,
        r#"1 2 "error" "select * from missing_t""#,
        r#"1 3 "skipped" "select 2""#,
        r#"2 1 "ok" "select 3""#,
    ];
    assert_eq!(got, want, "events: {events:#?}");
    assert_eq!(events[1]["sqlstate"], "42P01", "{:#}", events[1]);
    for e in &events {
        assert_eq!(
            (&e["class"], &e["command"]),
            (&"READ".into(), &"SELECT".into()),
            "{e}"
        );
        assert_eq!(
            (&e["user"], &e["database"], &e["user_kind"]),
            (&"app_user".into(), &"app".into(), &"human".into()),
            "{e}"
        );
        assert_eq!(e["protocol"], "simple", "{e}");
    }
}
