//! The PostgreSQL channel (`[alerts.postgres]`): each finding becomes one row of a table,
//! with the keys, defaults and table of pgsense's PostgreSQL alert channel.
//!
//! - One connection at most, opened lazily on the first delivery and kept across
//!   deliveries; any connection-level failure drops it and the next attempt reconnects.
//!   After connecting, `search_path` is set to the schema (as pgsense does on checkout);
//!   statements still name the table schema-qualified and double-quoted.
//! - On the sink's first successful connection the schema and table are created when
//!   missing. Existence is looked up in the catalogs first, so once the table exists the
//!   role needs no CREATE privilege (the seed allows revoking it after the first run); a
//!   missing schema or table later (3F000, 42P01) makes the next attempt create it again.
//!   Ongoing operation needs INSERT on the table, USAGE on its `id` sequence, and SELECT
//!   on `finding_id` (a column privilege is enough): PostgreSQL requires it for the
//!   `ON CONFLICT (finding_id)` arbiter. pgsense's "INSERT only" is not quite enough here.
//! - The table has exactly pgsense's columns plus the finding fields pgsense lacks
//!   (`CREATE_TABLE` below). Rows are inserted with `ON CONFLICT (finding_id) DO NOTHING`:
//!   the outbox delivers at least once, the table keeps exactly one row per finding.
//! - Verdicts: connection, I/O and timeout failures and the transient SQLSTATEs (see
//!   [`classify`]) are [`Delivery::Retry`]; so is anything that goes wrong before the
//!   insert (setup does not depend on the finding, so it is never the finding's fault).
//!   Other errors of the insert itself (data errors, constraint violations) are
//!   [`Delivery::Reject`], with the SQLSTATE and the server's message only.
//!
//! The password never appears in `Debug`, logs or verdict reasons, and the finding's
//! statement text is never logged.

use std::path::Path;
use std::time::Duration;

use tokio_postgres::config::SslMode;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;
use zeroize::Zeroizing;

use super::{Delivery, SinkError};
use crate::config::{PostgresAlerts, PostgresTls};
use crate::detect::Finding;

/// Upper bound on the statements of one attempt after connecting (session setup, table
/// creation, the insert). A statement that takes longer leaves the connection in an
/// unknown state: it is dropped and the attempt retried (the insert is idempotent).
const QUERY_TIMEOUT: Duration = Duration::from_secs(30);

/// `application_name` of the channel's connection, so a DBA can tell it apart.
pub const APPLICATION_NAME: &str = "pgvigil-alerts";

/// The table, `{schema}` and `{table}` replaced by the quoted identifiers. pgsense's
/// columns come first, unchanged; then the finding fields it has no column for.
const CREATE_TABLE: &str = r#"CREATE TABLE IF NOT EXISTS "{schema}"."{table}" (
    id               BIGSERIAL PRIMARY KEY,
    database         TEXT NOT NULL,
    rule_id          TEXT NOT NULL,
    description      TEXT NOT NULL,
    category         TEXT NOT NULL,
    severity         TEXT NOT NULL,
    schema_name      TEXT NOT NULL,
    table_name       TEXT NOT NULL,
    column_name      TEXT NOT NULL,
    masked_sample    TEXT NOT NULL,
    primary_key      JSONB NOT NULL DEFAULT '{}',
    lsn              BIGINT NOT NULL,
    detected_at      TIMESTAMPTZ NOT NULL DEFAULT now(),
    finding_id       TEXT NOT NULL UNIQUE,
    mitre_tactic     TEXT,
    mitre_technique  TEXT,
    user_name        TEXT,
    client_addr      TEXT,
    application_name TEXT,
    session_id       TEXT,
    statement        TEXT,
    count            BIGINT,
    window_text      TEXT,
    first_seen       TIMESTAMPTZ,
    last_seen        TIMESTAMPTZ,
    dedup_key        TEXT NOT NULL,
    action           TEXT,
    blocked_until    TIMESTAMPTZ
)"#;

/// The insert. Timestamps travel as text and are parsed by the server; empty optional
/// ones become NULL. pgsense's columns a finding has no value for get `''` and `0`.
const INSERT: &str = r#"INSERT INTO "{schema}"."{table}" (
    finding_id, detected_at, database, rule_id, description, category, severity,
    schema_name, table_name, column_name, masked_sample, lsn,
    mitre_tactic, mitre_technique, user_name, client_addr, application_name, session_id,
    statement, count, window_text, first_seen, last_seen, dedup_key, action, blocked_until
) VALUES (
    $1, $2::text::timestamptz, $3, $4, $5, $6, $7,
    $8, $9, '', '', 0,
    $10, $11, $12, $13, $14, $15,
    $16, $17, $18, NULLIF($19::text, '')::timestamptz, NULLIF($20::text, '')::timestamptz,
    $21, $22, NULLIF($23::text, '')::timestamptz
) ON CONFLICT (finding_id) DO NOTHING"#;

/// Whether the schema and the table exist (catalog lookups need no privileges).
const EXISTS: &str = "SELECT \
    EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1), \
    EXISTS (SELECT 1 FROM pg_catalog.pg_class c \
            JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
            WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p'))";

/// Whether `s` is a schema or table name this channel accepts: ASCII letters, digits
/// and underscores, not starting with a digit, 1 to 63 bytes (PostgreSQL's limit).
/// Such a name is safe to put between double quotes in SQL.
pub fn valid_identifier(s: &str) -> bool {
    let Some(first) = s.bytes().next() else {
        return false;
    };
    s.len() <= 63
        && !first.is_ascii_digit()
        && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The `[alerts.postgres]` channel: one lazily opened connection and the target table.
pub struct PostgresSink {
    name: String,
    /// `host:port`, for verdict reasons and logs.
    endpoint: String,
    dbname: String,
    username: String,
    schema: String,
    table: String,
    /// Connection settings, password included.
    config: tokio_postgres::Config,
    /// Kept to scrub it from any message that might echo it.
    password: Option<Zeroizing<String>>,
    /// `None` when `[alerts.postgres.tls] enabled = false`.
    tls: Option<MakeRustlsConnect>,
    connect_timeout: Duration,
    create_table_sql: String,
    insert_sql: String,
    /// The open connection, when there is one.
    conn: Option<Conn>,
    /// The schema and table are known to exist (checked on a connection of this sink).
    table_ready: bool,
}

/// An open connection with the insert prepared on it.
struct Conn {
    client: Client,
    insert: Statement,
}

impl std::fmt::Debug for PostgresSink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresSink")
            .field("name", &self.name)
            .field("endpoint", &self.endpoint)
            .field("dbname", &self.dbname)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("schema", &self.schema)
            .field("table", &self.table)
            .field("tls", &self.tls.is_some())
            .field("connect_timeout", &self.connect_timeout)
            .field("connected", &self.conn.is_some())
            .field("table_ready", &self.table_ready)
            .finish()
    }
}

/// How an error of the server or the connection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// The connection is gone or unusable: drop it, retry.
    Connection,
    /// The schema or table is missing: drop the connection, create them next time, retry.
    Missing,
    /// Worth another try on the same connection (resources, rollback, privileges, ...).
    Transient,
    /// The server refused this row for good.
    Permanent,
}

/// Sorts an error: no SQLSTATE (I/O, protocol, closed), classes 08/57 and 25006 (a
/// read-only standby, e.g. after a failover: reconnecting may reach the new primary) are
/// the connection; 3F000/42P01 a missing schema or table; classes 53, 40, 58, 42501 and
/// 55P03/55006 (locks) are transient; only data errors (class 22: this finding's values)
/// are permanent. Anything else (a column dropped or made NOT NULL by a DBA, an internal
/// error) is the table's or the server's state, not the finding's: the connection and
/// its prepared insert are dropped and the finding waits in the outbox until it is fixed.
fn classify(err: &tokio_postgres::Error) -> Class {
    let Some(db) = err.as_db_error() else {
        return Class::Connection;
    };
    let code = db.code().code();
    let class = code.get(..2).unwrap_or("");
    match (class, code) {
        ("08" | "57", _) => Class::Connection,
        (_, "3F000" | "42P01") => Class::Missing,
        // A read-only server will not become writable on this connection.
        (_, "25006") => Class::Connection,
        ("53" | "40" | "58", _) | (_, "42501" | "55P03" | "55006") => Class::Transient,
        ("22", _) => Class::Permanent,
        _ => Class::Connection,
    }
}

/// An error in a few words: the SQLSTATE and primary message for a server error (no
/// detail, which may quote row values), the client's own text otherwise.
fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("SQLSTATE {}: {}", db.code().code(), db.message()),
        None => err.to_string(),
    }
}

/// `{schema}` and `{table}` in `template` replaced.
fn fill(template: &str, schema: &str, table: &str) -> String {
    template
        .replace("{schema}", schema)
        .replace("{table}", table)
}

/// The rustls settings: the roots of `ca_file` when set (relative to `base`), the
/// platform verifier otherwise. The host name is always checked.
fn tls_connector(tls: &PostgresTls, base: &Path) -> Result<MakeRustlsConnect, String> {
    let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS settings rejected: {e}"))?;
    let config = match &tls.ca_file {
        Some(ca) => {
            let path = if ca.is_absolute() {
                ca.clone()
            } else {
                base.join(ca)
            };
            let roots = crate::tls::load_roots(&path).map_err(|e| format!("tls.ca_file: {e}"))?;
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        None => {
            use rustls_platform_verifier::BuilderVerifierExt;
            builder
                .with_platform_verifier()
                .map_err(|e| format!("system certificate verifier: {e}"))?
                .with_no_client_auth()
        }
    };
    Ok(MakeRustlsConnect::new(config))
}

impl PostgresSink {
    /// Builds the channel from its settings: checks the schema and table names, resolves
    /// the password (a relative secret file against `base`, the config file's folder)
    /// and loads the TLS settings. Does not connect.
    pub fn new(cfg: &PostgresAlerts, base: &Path) -> Result<PostgresSink, SinkError> {
        let config_error = |message: String| SinkError::Config {
            channel: "postgres".to_string(),
            message,
        };
        for (key, value) in [("schema", &cfg.schema), ("table", &cfg.table)] {
            if !valid_identifier(value) {
                return Err(config_error(format!(
                    "{key} = {value:?} is not a valid identifier (ASCII letters, digits and \
                     underscores, not starting with a digit, at most 63 bytes)"
                )));
            }
        }
        let password = match &cfg.password {
            Some(secret) => Some(
                secret
                    .resolve(base)
                    .map_err(|e| config_error(format!("password: {e}")))?,
            ),
            None => None,
        };
        let tls = if cfg.tls.enabled {
            Some(tls_connector(&cfg.tls, base).map_err(config_error)?)
        } else {
            None
        };
        let mut config = tokio_postgres::Config::new();
        config
            .host(&cfg.host)
            .port(cfg.port)
            .dbname(&cfg.dbname)
            .user(&cfg.username)
            .application_name(APPLICATION_NAME)
            .connect_timeout(cfg.connect_timeout)
            .ssl_mode(if tls.is_some() {
                SslMode::Require
            } else {
                SslMode::Disable
            });
        if let Some(pw) = &password {
            config.password(pw.as_bytes());
        }
        Ok(PostgresSink {
            name: cfg.name.clone(),
            endpoint: format!("{}:{}", cfg.host, cfg.port),
            dbname: cfg.dbname.clone(),
            username: cfg.username.clone(),
            create_table_sql: fill(CREATE_TABLE, &cfg.schema, &cfg.table),
            insert_sql: fill(INSERT, &cfg.schema, &cfg.table),
            schema: cfg.schema.clone(),
            table: cfg.table.clone(),
            config,
            password,
            tls,
            connect_timeout: cfg.connect_timeout,
            conn: None,
            table_ready: false,
        })
    }

    /// The channel's name (metrics, outbox folder).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// One delivery attempt: connects when there is no open connection (bounded by
    /// `connect_timeout`), creates the schema and table on the sink's first successful
    /// connection (or after they went missing), then inserts the finding. A finding whose
    /// `id` is already in the table counts as sent.
    pub async fn deliver(&mut self, finding: &Finding) -> Delivery {
        if self.conn.as_ref().is_some_and(|c| c.client.is_closed()) {
            tracing::debug!(channel = %self.name, "alerts connection closed; reconnecting");
            self.conn = None;
        }
        let conn = match self.conn.take() {
            Some(conn) => conn,
            None => match self.connect().await {
                Ok(conn) => conn,
                Err(verdict) => return verdict,
            },
        };

        let count = i64::try_from(finding.count).unwrap_or(i64::MAX);
        let severity = finding.severity.as_str();
        let params: [&(dyn ToSql + Sync); 23] = [
            &finding.id,
            &finding.ts,
            &finding.database.as_deref().unwrap_or(""),
            &finding.rule_id,
            &finding.description,
            &finding.category,
            &severity,
            &finding.schema_name.as_deref().unwrap_or(""),
            &finding.table_name.as_deref().unwrap_or(""),
            &finding.mitre_tactic,
            &finding.mitre_technique,
            &finding.user,
            &finding.client_addr,
            &finding.application_name,
            &finding.session_id,
            &finding.statement,
            &count,
            &finding.window,
            &finding.first_seen,
            &finding.last_seen,
            &finding.dedup_key,
            &finding.action,
            &finding.blocked_until,
        ];
        let result =
            tokio::time::timeout(QUERY_TIMEOUT, conn.client.execute(&conn.insert, &params)).await;
        match result {
            Ok(Ok(rows)) => {
                if rows == 0 {
                    tracing::debug!(channel = %self.name, finding = %finding.id, "finding already in the table");
                }
                self.conn = Some(conn);
                Delivery::Sent
            }
            Ok(Err(e)) => {
                let class = classify(&e);
                let reason = self.scrub(format!("insert: {}", describe(&e)));
                match class {
                    Class::Permanent => {
                        self.conn = Some(conn);
                        Delivery::Reject { reason }
                    }
                    Class::Transient if !conn.client.is_closed() => {
                        self.conn = Some(conn);
                        Self::retry(reason)
                    }
                    Class::Missing => {
                        self.table_ready = false;
                        Self::retry(reason)
                    }
                    Class::Transient | Class::Connection => Self::retry(reason),
                }
            }
            // The insert may or may not have happened: the retry finds out (idempotent).
            Err(_) => Self::retry(format!("insert: no answer within {QUERY_TIMEOUT:?}")),
        }
    }

    /// Opens the connection, sets `search_path`, creates the table when needed and
    /// prepares the insert. Every failure is a retry: none depends on the finding.
    async fn connect(&mut self) -> Result<Conn, Delivery> {
        let connecting = async {
            match &self.tls {
                Some(tls) => {
                    let (client, connection) = self.config.connect(tls.clone()).await?;
                    tokio::spawn(drive(connection, self.name.clone()));
                    Ok::<_, tokio_postgres::Error>(client)
                }
                None => {
                    let (client, connection) = self.config.connect(NoTls).await?;
                    tokio::spawn(drive(connection, self.name.clone()));
                    Ok(client)
                }
            }
        };
        let client = match tokio::time::timeout(self.connect_timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let reason = format!("connect to {}: {}", self.endpoint, describe(&e));
                return Err(Self::retry(self.scrub(reason)));
            }
            Err(_) => {
                return Err(Self::retry(format!(
                    "connect to {}: no connection within {:?}",
                    self.endpoint, self.connect_timeout
                )))
            }
        };
        tracing::debug!(channel = %self.name, endpoint = %self.endpoint, "connected to the alerts database");

        let ensure = !self.table_ready;
        let setup = tokio::time::timeout(QUERY_TIMEOUT, self.setup(&client, ensure)).await;
        match setup {
            Ok(Ok(insert)) => {
                self.table_ready = true;
                Ok(Conn { client, insert })
            }
            Ok(Err((step, e))) => {
                if classify(&e) == Class::Missing {
                    self.table_ready = false;
                }
                Err(Self::retry(self.scrub(format!("{step}: {}", describe(&e)))))
            }
            Err(_) => Err(Self::retry(format!(
                "session setup: no answer within {QUERY_TIMEOUT:?}"
            ))),
        }
    }

    /// Session setup on a fresh connection; `ensure` also creates what is missing.
    /// Returns the prepared insert, or the failed step and its error.
    async fn setup(
        &self,
        client: &Client,
        ensure: bool,
    ) -> Result<Statement, (&'static str, tokio_postgres::Error)> {
        let schema = &self.schema;
        client
            .batch_execute(&format!("SET search_path TO \"{schema}\""))
            .await
            .map_err(|e| ("set search_path", e))?;
        if ensure {
            let row = client
                .query_one(EXISTS, &[&self.schema, &self.table])
                .await
                .map_err(|e| ("look up the table", e))?;
            let schema_exists: bool = row.try_get(0).map_err(|e| ("look up the table", e))?;
            let table_exists: bool = row.try_get(1).map_err(|e| ("look up the table", e))?;
            if !table_exists {
                if !schema_exists {
                    client
                        .batch_execute(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\""))
                        .await
                        .map_err(|e| ("create schema", e))?;
                }
                client
                    .batch_execute(&self.create_table_sql)
                    .await
                    .map_err(|e| ("create table", e))?;
                tracing::info!(channel = %self.name, schema = %self.schema, table = %self.table, "created the findings table");
            }
        }
        client
            .prepare(&self.insert_sql)
            .await
            .map_err(|e| ("prepare insert", e))
    }

    fn retry(reason: String) -> Delivery {
        Delivery::Retry {
            after: None,
            reason,
        }
    }

    /// `text` with the password, should anything have echoed it, masked.
    fn scrub(&self, text: String) -> String {
        match &self.password {
            Some(pw) if !pw.is_empty() && text.contains(pw.as_str()) => {
                text.replace(pw.as_str(), "***")
            }
            _ => text,
        }
    }
}

/// Runs a connection until the client is dropped or the connection fails.
async fn drive<S, T>(connection: tokio_postgres::Connection<S, T>, channel: String)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    if let Err(e) = connection.await {
        tracing::debug!(channel = %channel, error = %describe(&e), "alerts connection ended");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Secret;

    #[test]
    fn identifiers() {
        for bad in [
            "",
            "a-b",
            "a.b",
            "a b",
            "\"x\"",
            "1abc",
            &"a".repeat(64),
            "é",
            "a;b",
        ] {
            assert!(!valid_identifier(bad), "{bad:?} accepted");
        }
        for good in [
            "pgvigil",
            "_x1",
            "Findings",
            &"a".repeat(63),
            "_",
            "findings",
        ] {
            assert!(valid_identifier(good), "{good:?} rejected");
        }
    }

    fn settings(toml_text: &str) -> PostgresAlerts {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn new_checks_identifiers() {
        let dir = tempfile::tempdir().unwrap();
        let err = PostgresSink::new(&settings("table = \"a-b\""), dir.path()).unwrap_err();
        assert!(err.to_string().contains("table"), "{err}");
        let err = PostgresSink::new(&settings("schema = \"x.y\""), dir.path()).unwrap_err();
        assert!(err.to_string().contains("schema"), "{err}");
    }

    #[test]
    fn password_file_is_relative_to_base_and_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("pw"), "s3cr3t-pw\n").unwrap();
        let mut cfg = settings("");
        cfg.password = Some(Secret::File { file: "pw".into() });
        let sink = PostgresSink::new(&cfg, dir.path()).unwrap();
        assert_eq!(
            sink.password.as_deref().map(String::as_str),
            Some("s3cr3t-pw")
        );
        let shown = format!("{sink:?}");
        assert!(!shown.contains("s3cr3t"), "{shown}");
        assert!(shown.contains("***"), "{shown}");
        assert_eq!(sink.scrub("x s3cr3t-pw y".into()), "x *** y");

        cfg.password = Some(Secret::File {
            file: "missing".into(),
        });
        let err = PostgresSink::new(&cfg, dir.path()).unwrap_err();
        assert!(err.to_string().contains("password"), "{err}");
    }

    #[test]
    fn tls_ca_file_must_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = settings("[tls]\nenabled = true\nca_file = \"nope.crt\"");
        let err = PostgresSink::new(&cfg, dir.path()).unwrap_err();
        assert!(err.to_string().contains("nope.crt"), "{err}");
        cfg.tls.ca_file = None;
        let sink = PostgresSink::new(&cfg, dir.path()).unwrap();
        assert!(sink.tls.is_some());
    }

    #[test]
    fn sql_names_the_quoted_table() {
        let sql = fill(INSERT, "pgvigil", "Findings");
        assert!(sql.contains(r#"INSERT INTO "pgvigil"."Findings""#));
        assert!(sql.contains("ON CONFLICT (finding_id) DO NOTHING"));
        // 23 parameters, each used once.
        for n in 1..=23 {
            assert!(sql.contains(&format!("${n}")), "${n} missing");
        }
        assert!(!sql.contains("$24"));
        let create = fill(CREATE_TABLE, "s", "t");
        assert!(create.starts_with(r#"CREATE TABLE IF NOT EXISTS "s"."t""#));
        assert!(create.contains("primary_key      JSONB NOT NULL DEFAULT '{}'"));
    }
}
