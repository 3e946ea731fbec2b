//! `auth_query`: verifiers of users missing from the auth file, looked up upstream as
//! `auth_user` (PgBouncer's convention: a SECURITY DEFINER function over pg_authid, granted
//! to that user only), and kept for `auth_cache`.
//!
//! Only the user name reaches the query, as a bound parameter: no other client-chosen
//! startup parameter ever does (the class of bug of CVE-2025-12819). One connection, opened
//! lazily and reopened after a failure; every step is bounded by the upstream's
//! connect_timeout so a stuck server delays a login, never hangs it.

use super::userlist::StoredSecret;
use super::AuthError;
use crate::backend::UpstreamTarget;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// Cached answers at most; beyond this, new answers are not cached (a spray of made-up
/// names must not grow memory without bound).
const MAX_CACHED: usize = 10_000;

/// The settings and state of the lookups.
pub struct AuthQuery {
    user: String,
    password: Zeroizing<String>,
    query: String,
    dbname: String,
    ttl: Duration,
    target: UpstreamTarget,
    conn: tokio::sync::Mutex<Option<tokio_postgres::Client>>,
    /// user → (when looked up, what was found; `None` for no such user).
    cache: Mutex<HashMap<String, (Instant, Option<StoredSecret>)>>,
}

impl std::fmt::Debug for AuthQuery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuthQuery")
            .field("user", &self.user)
            .field("dbname", &self.dbname)
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

impl AuthQuery {
    /// Lookups as `user` (with `password`) on `target`'s server, database `dbname`.
    pub fn new(
        user: String,
        password: Zeroizing<String>,
        query: String,
        dbname: String,
        ttl: Duration,
        target: UpstreamTarget,
    ) -> AuthQuery {
        AuthQuery {
            user,
            password,
            query,
            dbname,
            ttl,
            target,
            conn: tokio::sync::Mutex::new(None),
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The stored secret of `user`, `None` when the server knows no such user (or it has
    /// no usable verifier). Errors are the auth connection's.
    pub async fn lookup(&self, user: &str) -> Result<Option<StoredSecret>, AuthError> {
        if let Some(hit) = self.cached(user) {
            return Ok(hit);
        }
        let passwd = self.query(user).await?;
        let found = passwd.and_then(|p| match StoredSecret::parse(&p) {
            Ok(s) => Some(s),
            Err(why) => {
                tracing::warn!(user, "auth_query returned an unusable secret: {why}");
                None
            }
        });
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MAX_CACHED {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
        }
        if cache.len() < MAX_CACHED && !self.ttl.is_zero() {
            cache.insert(user.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }

    /// Drops what is cached for `user` (its verifier changed on the server).
    pub fn forget(&self, user: &str) {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.remove(user);
    }

    fn cached(&self, user: &str) -> Option<Option<StoredSecret>> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let (at, found) = cache.get(user)?;
        (at.elapsed() < self.ttl).then(|| found.clone())
    }

    /// Runs the query, reconnecting once when the kept connection has gone.
    async fn query(&self, user: &str) -> Result<Option<String>, AuthError> {
        let limit = self.target.connect_timeout;
        let mut conn = self.conn.lock().await;
        for attempt in 0..2 {
            if conn.as_ref().is_none_or(|c| c.is_closed()) {
                *conn = Some(self.connect().await?);
            }
            let Some(client) = conn.as_ref() else {
                continue;
            };
            let params: [&(dyn tokio_postgres::types::ToSql + Sync); 1] = [&user];
            let run = client.query_opt(self.query.as_str(), &params);
            match tokio::time::timeout(limit, run).await {
                Ok(Ok(row)) => {
                    return row
                        .map(|r| r.try_get::<_, Option<String>>(1))
                        .transpose()
                        .map(Option::flatten)
                        .map_err(|e| AuthError::Lookup(format!("auth_query's second column: {e}")))
                }
                // A server error (missing function, permission) will not fix itself.
                Ok(Err(e)) if e.as_db_error().is_some() => {
                    return Err(AuthError::Lookup(e.to_string()))
                }
                Ok(Err(e)) if attempt == 1 => return Err(AuthError::Lookup(e.to_string())),
                Ok(Err(_)) => *conn = None,
                Err(_) => {
                    *conn = None;
                    return Err(AuthError::Lookup(format!(
                        "auth_query did not answer within {}",
                        humantime::format_duration(limit)
                    )));
                }
            }
        }
        Err(AuthError::Lookup("auth connection failed".into()))
    }

    async fn connect(&self) -> Result<tokio_postgres::Client, AuthError> {
        let t = &self.target;
        let mut cfg = tokio_postgres::Config::new();
        cfg.host(&t.host)
            .port(t.port)
            .user(&self.user)
            .password(self.password.as_bytes())
            .dbname(&self.dbname)
            .application_name("pgvigil auth_query")
            .connect_timeout(t.connect_timeout);
        let fail = |e: tokio_postgres::Error| {
            AuthError::Lookup(format!(
                "cannot connect as auth_user \"{}\" to {}:{}/{}: {e}",
                self.user, t.host, t.port, self.dbname
            ))
        };
        let timed_out = || {
            AuthError::Lookup(format!(
                "connecting as auth_user \"{}\" to {}:{} timed out",
                self.user, t.host, t.port
            ))
        };
        let client = match &t.tls {
            Some(tls) => {
                use tokio_postgres::config::SslMode;
                cfg.ssl_mode(match t.sslmode {
                    crate::config::SslMode::Allow | crate::config::SslMode::Prefer => {
                        SslMode::Prefer
                    }
                    _ => SslMode::Require,
                });
                let config = (**tls.connector.config()).clone();
                let make = tokio_postgres_rustls::MakeRustlsConnect::new(config);
                let (client, connection) =
                    tokio::time::timeout(t.connect_timeout, cfg.connect(make))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(fail)?;
                tokio::spawn(watch(connection));
                client
            }
            None => {
                let (client, connection) =
                    tokio::time::timeout(t.connect_timeout, cfg.connect(tokio_postgres::NoTls))
                        .await
                        .map_err(|_| timed_out())?
                        .map_err(fail)?;
                tokio::spawn(watch(connection));
                client
            }
        };
        Ok(client)
    }
}

/// Drives the auth connection; its end is logged, and the next lookup reconnects.
async fn watch<F>(connection: F)
where
    F: std::future::Future<Output = Result<(), tokio_postgres::Error>>,
{
    if let Err(e) = connection.await {
        tracing::warn!(error = %e, "the auth_query connection ended");
    }
}
