//! tokio-postgres through the proxy (plaintext client leg from loopback, TLS upstream):
//! COPY both ways, LISTEN/NOTIFY, cancel, pipelining, an error inside a pipeline, a
//! 100 MB result, a long transaction, a client that hangs up mid-statement and a server
//! backend that is terminated.
//!
//! One cluster serves the whole file; each test starts its own proxy and tags its
//! connections with its own application_name so server-side checks see only its own.

mod common;
use common::*;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use pgvigil::demo::Cluster;
use std::sync::OnceLock;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use tokio_postgres::error::SqlState;
use tokio_postgres::{AsyncMessage, Client, NoTls};

/// The file's cluster. Never dropped: the harness's watchdog stops it at exit.
fn pg() -> &'static Cluster {
    static PG: OnceLock<Cluster> = OnceLock::new();
    PG.get_or_init(cluster)
}

/// Starts a proxy with the defaults (TLS allowed, password mode, upstream TLS preferred).
/// Blocking work (cluster, proxy process) runs off the async workers.
async fn start_proxy() -> Proxy {
    tokio::task::spawn_blocking(|| Proxy::start(pg(), ProxyOptions::default()))
        .await
        .expect("proxy start task")
}

fn conninfo(proxy: &Proxy, app: &str) -> String {
    format!(
        "host=127.0.0.1 port={} user=app_user password=app_pass dbname=app sslmode=disable \
         application_name={app} connect_timeout=20",
        proxy.port
    )
}

/// The first column of a one-row query; `what` names it when it fails.
async fn one<T>(client: &Client, sql: &str, what: &str) -> T
where
    T: for<'a> tokio_postgres::types::FromSql<'a>,
{
    client.query_one(sql, &[]).await.expect(what).get(0)
}

/// Connects through the proxy; the connection runs in its own task.
async fn connect(
    proxy: &Proxy,
    app: &str,
) -> (Client, JoinHandle<Result<(), tokio_postgres::Error>>) {
    let (client, conn) = tokio_postgres::connect(&conninfo(proxy, app), NoTls)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "connect through the proxy: {e}\nproxy log:\n{}",
                proxy.log()
            )
        });
    (client, tokio::spawn(conn))
}

/// Runs SQL as the superuser directly on the cluster (not through the proxy).
async fn direct(sql: &str) -> String {
    let sql = sql.to_owned();
    tokio::task::spawn_blocking(move || pg().psql("postgres", "app", &sql))
        .await
        .expect("psql task")
        .unwrap_or_else(|e| panic!("direct psql: {e}"))
        .trim()
        .to_string()
}

/// Polls a direct query until it prints `want`, for at most `limit`.
async fn wait_direct(sql: &str, want: &str, limit: Duration) -> Result<(), String> {
    let deadline = Instant::now() + limit;
    loop {
        let got = direct(sql).await;
        if got == want {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "after {limit:?}, {sql:?} gives {got:?}, want {want:?}"
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits until a statement of the session tagged `app` is running on the server.
async fn wait_running(app: &str, needle: &str) {
    let sql = format!(
        "select count(*) from pg_stat_activity where application_name = '{app}' \
         and state = 'active' and query like '%{needle}%'"
    );
    wait_direct(&sql, "1", Duration::from_secs(15))
        .await
        .unwrap_or_else(|e| panic!("the statement never started: {e}"));
}

/// Waits (bounded) until a proxy metric reaches `n`: the proxy counts a forwarded cancel
/// only once the server has closed the cancel connection, which can be after the client
/// already saw its effect.
async fn wait_metric_at_least(proxy: &Proxy, name: &str, n: f64) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let v = proxy.metric(name);
        if v >= n {
            return;
        }
        if Instant::now() > deadline {
            panic!("{name} is {v}, want at least {n}:\n{}", proxy.metrics());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn copy_in_and_copy_out() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_copy").await;
    client
        .batch_execute("create table tp_copy (id int primary key, v text)")
        .await
        .expect("create table");

    // 10k rows in 1000-row chunks: CopyData frames of ~30 KB, split and joined by TCP.
    let mut expected = Vec::new();
    for i in 0..10_000 {
        expected
            .extend_from_slice(format!("{i}\tvalue number {i} \\\\ with a backslash\n").as_bytes());
    }
    let sink = client
        .copy_in::<_, bytes::Bytes>("copy tp_copy from stdin")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    for chunk in expected.chunks(30_000) {
        sink.send(bytes::Bytes::copy_from_slice(chunk))
            .await
            .expect("send copy data");
    }
    let rows = sink.finish().await.expect("finish copy");
    assert_eq!(rows, 10_000);

    let stream = client
        .copy_out("copy (select * from tp_copy order by id) to stdout")
        .await
        .expect("copy out");
    let chunks: Vec<bytes::Bytes> = stream.try_collect().await.expect("copy out data");
    let got: Vec<u8> = chunks.concat();
    assert_eq!(got.len(), expected.len(), "COPY OUT byte count");
    assert_eq!(got.iter().filter(|&&b| b == b'\n').count(), 10_000);
    assert!(got == expected, "COPY OUT returns what COPY IN sent");

    // A COPY IN the server rejects (duplicate key) surfaces as the server's error, and
    // the connection is usable afterwards.
    let sink = client
        .copy_in::<_, bytes::Bytes>("copy tp_copy from stdin")
        .await
        .expect("copy in");
    futures_util::pin_mut!(sink);
    sink.send(bytes::Bytes::from_static(b"5\tdup\n"))
        .await
        .expect("send");
    let err = sink
        .finish()
        .await
        .expect_err("duplicate key must fail the COPY");
    assert_eq!(err.code(), Some(&SqlState::UNIQUE_VIOLATION), "{err}");
    let n: i64 = one(&client, "select count(*) from tp_copy", "count").await;
    assert_eq!(n, 10_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_notify_across_connections() {
    let proxy = start_proxy().await;
    let (listener, mut conn) = tokio_postgres::connect(&conninfo(&proxy, "tp_listen"), NoTls)
        .await
        .expect("connect listener");
    // Drive the listener's connection ourselves to see its asynchronous messages.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut messages = futures_util::stream::poll_fn(move |cx| conn.poll_message(cx));
        while let Some(m) = messages.next().await {
            match m {
                Ok(AsyncMessage::Notification(n)) => {
                    let _ = tx.send(n);
                }
                Ok(_) => {}
                Err(e) => panic!("listener connection failed: {e}"),
            }
        }
    });
    listener
        .batch_execute("LISTEN tp_channel")
        .await
        .expect("listen");

    let (notifier, _conn) = connect(&proxy, "tp_notify").await;
    let notifier_pid: i32 = one(&notifier, "select pg_backend_pid()", "pid").await;
    notifier
        .batch_execute("NOTIFY tp_channel, 'hello'")
        .await
        .expect("notify");
    // Near the 8000-byte payload limit: a NotificationResponse split across reads.
    let big = "n".repeat(7_900);
    notifier
        .execute("select pg_notify('tp_channel', $1)", &[&big])
        .await
        .expect("pg_notify");
    // Two notifications committed in one transaction arrive together, in order.
    notifier
        .batch_execute("BEGIN; NOTIFY tp_channel, 'one'; NOTIFY tp_channel, 'two'; COMMIT")
        .await
        .expect("notify in a transaction");

    let mut got = Vec::new();
    for _ in 0..4 {
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "notification not delivered; got {got:?}\nproxy log:\n{}",
                    proxy.log()
                )
            })
            .expect("listener connection ended");
        assert_eq!(n.channel(), "tp_channel");
        // The pid in the notification is the one the notifier sees in SQL.
        assert_eq!(n.process_id(), notifier_pid);
        got.push(n.payload().to_string());
    }
    assert_eq!(
        got,
        vec!["hello".to_string(), big, "one".into(), "two".into()]
    );
    // The listener still answers queries after the asynchronous traffic.
    let v: i32 = one(&listener, "select 7", "query").await;
    assert_eq!(v, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_request_stops_a_running_query() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_cancel").await;
    let client = std::sync::Arc::new(client);
    let running = {
        let client = client.clone();
        tokio::spawn(async move {
            let started = Instant::now();
            let r = client.simple_query("select pg_sleep(30)").await;
            (r, started.elapsed())
        })
    };
    wait_running("tp_cancel", "pg_sleep(30)").await;
    client
        .cancel_token()
        .cancel_query(NoTls)
        .await
        .expect("send the cancel request");
    let (result, took) = tokio::time::timeout(Duration::from_secs(20), running)
        .await
        .expect("the cancelled query must end")
        .expect("query task");
    let err = result.expect_err("a cancelled query fails");
    assert_eq!(err.code(), Some(&SqlState::QUERY_CANCELED), "{err}");
    assert!(took < Duration::from_secs(20), "cancel took {took:?}");
    // The session survives its cancelled statement.
    let v: i32 = one(&client, "select 1", "after cancel").await;
    assert_eq!(v, 1);
    wait_metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"forwarded\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_queries_answer_in_order() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_pipeline").await;
    // All 50 are written before the first answer is read (tokio-postgres pipelines
    // requests that are polled together).
    let futures: Vec<_> = (0..50i32)
        .map(|i| {
            let client = &client;
            async move {
                let rows = client
                    .query("select $1::int * 2, repeat('p', $1::int * 100)", &[&i])
                    .await?;
                Ok::<_, tokio_postgres::Error>((
                    rows[0].get::<_, i32>(0),
                    rows[0].get::<_, String>(1).len(),
                ))
            }
        })
        .collect();
    let results = futures_util::future::join_all(futures).await;
    for (i, r) in results.into_iter().enumerate() {
        let (doubled, len) = r.unwrap_or_else(|e| panic!("query {i}: {e}"));
        assert_eq!(doubled, i as i32 * 2, "answer {i} belongs to query {i}");
        assert_eq!(len, i * 100);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_inside_a_pipeline_spares_the_next_query() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_pipeerr").await;
    let divisor_ok = 1i32;
    let divisor_zero = 0i32;
    let (a, b, c) = futures_util::join!(
        async {
            client
                .query_one("select 10 / $1::int", &[&divisor_ok])
                .await
        },
        async {
            client
                .query_one("select 20 / $1::int", &[&divisor_zero])
                .await
        },
        async {
            client
                .query_one("select 30 / $1::int", &[&divisor_ok])
                .await
        },
    );
    assert_eq!(a.expect("first query").get::<_, i32>(0), 10);
    let err = b.expect_err("division by zero");
    assert_eq!(err.code(), Some(&SqlState::DIVISION_BY_ZERO), "{err}");
    assert_eq!(
        c.expect("the query after the failed one, after its Sync")
            .get::<_, i32>(0),
        30
    );

    // Inside a transaction the error aborts it, exactly as on a direct connection.
    client.batch_execute("BEGIN").await.expect("begin");
    let (x, y) = futures_util::join!(
        async {
            client
                .query_one("select 1 / $1::int", &[&divisor_zero])
                .await
        },
        async { client.query_one("select 2", &[]).await },
    );
    assert!(x.is_err());
    let err = y.expect_err("statement in an aborted transaction");
    assert_eq!(
        err.code(),
        Some(&SqlState::IN_FAILED_SQL_TRANSACTION),
        "{err}"
    );
    client.batch_execute("ROLLBACK").await.expect("rollback");
    let v: i32 = one(&client, "select 5", "after rollback").await;
    assert_eq!(v, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_megabyte_result_streams_through() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_big").await;
    let started = Instant::now();
    let stream = client
        .query_raw(
            "select repeat('x', 1000) from generate_series(1, 100000)",
            Vec::<i32>::new(),
        )
        .await
        .expect("query_raw");
    futures_util::pin_mut!(stream);
    let (mut rows, mut bytes) = (0u64, 0u64);
    let result = tokio::time::timeout(Duration::from_secs(120), async {
        while let Some(row) = stream.try_next().await? {
            let v: &str = row.get(0);
            rows += 1;
            bytes += v.len() as u64;
        }
        Ok::<_, tokio_postgres::Error>(())
    })
    .await;
    result
        .unwrap_or_else(|_| panic!("100 MB result not done after 120 s ({rows} rows)"))
        .unwrap_or_else(|e| {
            panic!(
                "streaming failed after {rows} rows: {e}\nproxy log:\n{}",
                proxy.log()
            )
        });
    assert_eq!(rows, 100_000);
    assert_eq!(bytes, 100_000_000);
    eprintln!("100 MB through the proxy in {:?}", started.elapsed());

    // The proxy is still healthy: same session, a new session, the metrics.
    let v: i32 = one(&client, "select 1", "same session").await;
    assert_eq!(v, 1);
    let (fresh, _c) = connect(&proxy, "tp_big2").await;
    let v: i32 = one(&fresh, "select 2", "new session").await;
    assert_eq!(v, 2);
    let out = proxy.metric("pgvigil_bytes_total{direction=\"out\"}");
    assert!(out >= 100_000_000.0, "bytes out counted: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_transaction_keeps_its_backend() {
    let proxy = start_proxy().await;
    let (client, _conn) = connect(&proxy, "tp_longtx").await;
    client
        .batch_execute("create table tp_longtx (id int, at timestamptz default clock_timestamp())")
        .await
        .expect("create");
    client.batch_execute("BEGIN").await.expect("begin");
    let txid: i64 = one(&client, "select txid_current()", "txid").await;
    for i in 0..5i32 {
        client
            .execute("insert into tp_longtx (id) values ($1)", &[&i])
            .await
            .expect("insert");
        // A client that thinks between statements; the transaction stays open upstream.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let same: i64 = one(&client, "select txid_current()", "txid").await;
        assert_eq!(same, txid, "still the same transaction after statement {i}");
    }
    // Uncommitted: invisible to others, and the server reports the session in a transaction.
    assert_eq!(direct("select count(*) from tp_longtx").await, "0");
    assert_eq!(
        direct("select state from pg_stat_activity where application_name = 'tp_longtx'").await,
        "idle in transaction"
    );
    client.batch_execute("COMMIT").await.expect("commit");
    assert_eq!(direct("select count(*) from tp_longtx").await, "5");
}

/// Drops the client's connection task, which closes the socket without a Terminate message
/// (the client process died, or its network went away), and waits until the server no
/// longer runs the statement matching `statement`.
async fn hang_up_and_expect_cancel(
    proxy: &Proxy,
    conn: JoinHandle<Result<(), tokio_postgres::Error>>,
    statement: &str,
) {
    conn.abort();
    let _ = conn.await;
    let gone = wait_direct(
        &format!(
            "select count(*) from pg_stat_activity where query like '%{statement}%' \
             and pid <> pg_backend_pid()"
        ),
        "0",
        Duration::from_secs(15),
    )
    .await;
    if let Err(e) = gone {
        panic!(
            "the server still runs the abandoned statement: {e}\nproxy log:\n{}",
            proxy.log()
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hangup_cancels_the_running_statement() {
    let proxy = start_proxy().await;
    let (client, conn) = connect(&proxy, "tp_hangup").await;
    let query = tokio::spawn(async move { client.simple_query("select pg_sleep(60)").await });
    wait_running("tp_hangup", "pg_sleep(60)").await;
    hang_up_and_expect_cancel(&proxy, conn, "pg_sleep(60)").await;
    assert!(query.await.expect("query task").is_err());
    // The proxy's own cancel went to the server.
    wait_metric_at_least(
        &proxy,
        "pgvigil_cancel_requests_total{result=\"forwarded\"}",
        1.0,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_hangup_mid_pipeline_cancels_the_queued_statement() {
    // Two simple queries written back to back: the server's ReadyForQuery for the first
    // arrives while the second is already running. A proxy that takes any ReadyForQuery
    // for "idle" would not cancel the second when the client goes away.
    let proxy = start_proxy().await;
    let (client, conn) = connect(&proxy, "tp_hangup_pipe").await;
    let (first_done, first_result) = tokio::sync::oneshot::channel();
    // join! polls in order, so "select 1" is queued before the sleep.
    let second = tokio::spawn(async move {
        let first = async {
            let r = client.simple_query("select 1").await;
            let _ = first_done.send(r.is_ok());
        };
        let (_, second) = futures_util::join!(first, client.simple_query("select pg_sleep(61)"));
        second
    });
    let first_ok = tokio::time::timeout(Duration::from_secs(15), first_result)
        .await
        .expect("first query answered in time")
        .expect("first query task");
    assert!(first_ok, "first query succeeded");
    wait_running("tp_hangup_pipe", "pg_sleep(61)").await;
    hang_up_and_expect_cancel(&proxy, conn, "pg_sleep(61)").await;
    assert!(second.await.expect("second query task").is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn terminated_backend_reaches_the_client_and_proxy_recovers() {
    let proxy = start_proxy().await;
    let (client, conn) = connect(&proxy, "tp_kill").await;
    let pid: i32 = one(&client, "select pg_backend_pid()", "pid").await;
    assert_eq!(
        direct(&format!("select pg_terminate_backend({pid})")).await,
        "t",
        "terminate the session's backend"
    );
    // The server sends FATAL 57P01 and closes; the idle client's connection task sees it.
    let end = tokio::time::timeout(Duration::from_secs(15), conn)
        .await
        .expect("the connection must end after its backend is terminated")
        .expect("connection task");
    let err = end.expect_err("connection ends with an error");
    assert_eq!(
        err.code(),
        Some(&SqlState::ADMIN_SHUTDOWN),
        "want the server's FATAL 57P01, got: {err}"
    );
    assert!(client.is_closed());
    let after = client.simple_query("select 1").await;
    assert!(after.is_err(), "a query on the dead session must fail");

    // The proxy itself is fine: a fresh session works.
    let (fresh, _c) = connect(&proxy, "tp_kill2").await;
    let v: i32 = one(&fresh, "select 3", "fresh session").await;
    assert_eq!(v, 3);
}
