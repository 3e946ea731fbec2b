//! The admin console: a virtual database (`[admin] database`, default `pgvigil`) that
//! pgvigil serves itself, PgBouncer-style, to the users in `[admin] users`.
//!
//! The login is the ordinary one (the session layer authenticates the user against the
//! server, in `password` mode with the password the client gives, against
//! `[admin] auth_database`), then the server connection is closed and this module answers
//! the client's simple queries: `SHOW SESSIONS`, `KILL '<id>'`, `BLOCK '<addr>'`... The
//! messages are encoded with the `pgwire` crate's message types (the server API of the
//! crate is not used: its own startup and authentication would bypass pgvigil's); client
//! bytes are read with pgvigil's bounded frame reader.
//!
//! - [`command`]: the command language (hostile text gets an error, never a panic).
//! - [`show`]: running a command against the live state, as typed result sets.

pub mod command;
pub mod show;

use crate::audit::SessionInfo;
use crate::frontend::registry::{Entry, KillReason};
use crate::frontend::Shared;
use crate::tls::MaybeTls;
use crate::wire::messages::{error_response, Severity};
use crate::wire::{FramedReader, WireError};
use bytes::BytesMut;
use pgwire::messages::response::{CommandComplete, EmptyQueryResponse, ReadyForQuery};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use tokio::io::AsyncWriteExt;

/// Errors of the admin console.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("client protocol error: {0}")]
    Wire(#[from] WireError),
    #[error("cannot encode a reply: {0}")]
    Encode(String),
    #[error("unexpected message {0:?} from the client")]
    Unexpected(char),
}

/// The largest message the console reads: commands are short.
const MAX_MESSAGE: usize = 64 * 1024;

/// How a console session ended.
pub enum Ended {
    /// The client said Terminate or went away.
    Client,
    /// KILL or a block.
    Killed(KillReason),
    /// The shutdown's drain period is over.
    Shutdown,
}

/// Encodes one pgwire message into `out`.
pub(crate) fn put<M: pgwire::messages::Message>(
    out: &mut BytesMut,
    m: &M,
) -> Result<(), AdminError> {
    m.encode(out).map_err(|e| AdminError::Encode(e.to_string()))
}

/// Serves the console to an authenticated administrator until the client leaves or the
/// session is killed. `leftover`: bytes the client sent after its login.
pub async fn serve(
    shared: &Arc<Shared>,
    client: &mut MaybeTls,
    leftover: BytesMut,
    who: &Arc<SessionInfo>,
    entry: &Entry,
) -> Result<Ended, AdminError> {
    let mut reader = FramedReader::with_leftover(leftover);
    let mut kill = entry.killed();
    // After an extended-protocol message, one error per batch, then ReadyForQuery at Sync.
    let mut refused_batch = false;
    loop {
        let msg = tokio::select! {
            m = reader.next(client, MAX_MESSAGE) => match m {
                Ok(m) => m,
                Err(e) if e.is_disconnect() => return Ok(Ended::Client),
                Err(e) => return Err(e.into()),
            },
            r = kill.wait_for(Option::is_some) => {
                let reason = r.ok().and_then(|r| r.clone()).unwrap_or_else(|| KillReason {
                    message: "terminating connection due to administrator command".into(),
                    by: "administrator".into(),
                });
                return Ok(Ended::Killed(reason));
            }
        };
        let len = u64::try_from(msg.raw.len()).unwrap_or(u64::MAX);
        entry.bytes_in.fetch_add(len, Ordering::Relaxed);
        let mut out = BytesMut::new();
        match msg.tag {
            b'Q' => {
                let text = msg.body.split(|&b| b == 0).next().unwrap_or_default();
                let text = String::from_utf8_lossy(text);
                match command::parse(&text) {
                    Ok(command::Command::Empty) => put(&mut out, &EmptyQueryResponse::new())?,
                    Ok(cmd) => match show::run(shared, &cmd, who).await {
                        Ok(reply) => reply.encode(&mut out)?,
                        Err(message) => out.extend_from_slice(&error_response(
                            Severity::Error,
                            "55000",
                            &message,
                            None,
                        )),
                    },
                    Err(message) => out.extend_from_slice(&error_response(
                        Severity::Error,
                        "42601",
                        &message,
                        Some(command::USAGE),
                    )),
                }
                put(&mut out, &ready())?;
            }
            b'X' => return Ok(Ended::Client),
            b'S' => {
                refused_batch = false;
                put(&mut out, &ready())?;
            }
            b'H' => {}
            b'P' | b'B' | b'D' | b'E' | b'C' | b'F' => {
                if !refused_batch {
                    refused_batch = true;
                    out.extend_from_slice(&error_response(
                        Severity::Error,
                        "0A000",
                        "the pgvigil admin console supports only the simple query protocol",
                        Some("use psql, or a driver's simple query mode"),
                    ));
                }
            }
            other => {
                let _ = write(
                    client,
                    &error_response(
                        Severity::Fatal,
                        "08P01",
                        &format!("invalid frontend message type {}", other),
                        None,
                    ),
                )
                .await;
                return Err(AdminError::Unexpected(other as char));
            }
        }
        if !out.is_empty() {
            let len = u64::try_from(out.len()).unwrap_or(u64::MAX);
            entry.bytes_out.fetch_add(len, Ordering::Relaxed);
            write(client, &out).await?;
        }
    }
}

fn ready() -> ReadyForQuery {
    ReadyForQuery::new(pgwire::messages::response::TransactionStatus::Idle)
}

/// A command's reply: a result set, or only a command tag.
pub struct Reply {
    pub columns: Vec<show::Column>,
    pub rows: Vec<Vec<Option<String>>>,
    /// The CommandComplete tag; with columns, `SHOW` or `SELECT n` style.
    pub tag: String,
}

impl Reply {
    fn encode(&self, out: &mut BytesMut) -> Result<(), AdminError> {
        if !self.columns.is_empty() {
            put(out, &show::row_description(&self.columns))?;
            for row in &self.rows {
                put(out, &show::data_row(row))?;
            }
        }
        put(out, &CommandComplete::new(self.tag.clone()))
    }
}

async fn write(s: &mut MaybeTls, bytes: &[u8]) -> Result<(), WireError> {
    s.write_all(bytes).await?;
    s.flush().await?;
    Ok(())
}
