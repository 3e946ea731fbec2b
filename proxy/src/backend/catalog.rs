//! pgvigil's own catalog query, run on a freshly logged-in server connection before the
//! relay starts: the session's search path (the setting, and `current_schemas(true)`; both
//! see `ALTER ROLE ... SET`, `ALTER DATABASE ... SET` and startup options alike), and, when the
//! database's knowledge is missing or old, the names of the functions outside
//! `pg_catalog`. The noise filter trusts an unqualified name only on these facts
//! (`audit::shadow`).
//!
//! Cost, measured on a loaded 2-core machine: the search path alone is one round trip (as
//! long as `SELECT 1`); the function names add about 1.3 ms (a scan of `pg_proc`), paid
//! once per database per refresh. Listing the allow-list in the query (`proname = ANY`
//! of ~240 names) was 4 to 6 ms, most of it planning.
//!
//! The reply is consumed here, up to ReadyForQuery, and never reaches the client; server
//! messages that are not about the query (ParameterStatus, NotificationResponse) are kept
//! for the client. Every name in the query is `pg_catalog`-qualified, operators included,
//! so the session's own search path cannot redirect pgvigil's question.

use super::{BackendError, ServerConn};
use crate::wire::WireError;
use bytes::{BufMut, BytesMut};
use tokio::io::AsyncWriteExt;

/// Largest message the reply may hold (a row is a short name; an error a few hundred
/// bytes).
const MAX_REPLY_MESSAGE: usize = 64 * 1024;
/// Rows accepted: one per distinct function name outside `pg_catalog`, plus the search
/// path. Past it the reply is not trusted (nothing unqualified is then noise).
const MAX_ROWS: usize = 1_000_000;

/// What the query found.
pub struct CatalogReply {
    /// Names of the functions outside `pg_catalog` (`None`: not asked, or the query
    /// failed).
    pub functions: Option<Vec<String>>,
    /// `current_schemas(true)`, in order (`None`: the query failed).
    pub schemas: Option<Vec<String>>,
    /// `current_setting('search_path')` (`None`: the query failed).
    pub search_path: Option<String>,
    /// Server messages meant for the client, in order.
    pub for_client: BytesMut,
}

/// The query text: the search path, and the function names when `functions` is true.
pub fn query_text(functions: bool) -> String {
    let schemas = "SELECT 'p', 0, pg_catalog.current_setting('search_path') UNION ALL \
         SELECT 's', s.n, s.name::pg_catalog.text \
         FROM pg_catalog.unnest(pg_catalog.current_schemas(true)) WITH ORDINALITY AS s(name, n)";
    let head = "/* pgvigil: noise filter catalog check */ ";
    if !functions {
        return format!("{head}{schemas}");
    }
    format!(
        "{head}SELECT 'f', 0, p.proname::pg_catalog.text FROM pg_catalog.pg_proc p \
         WHERE p.pronamespace OPERATOR(pg_catalog.<>) 'pg_catalog'::pg_catalog.regnamespace \
         GROUP BY p.proname UNION ALL {schemas}"
    )
}

/// Sends the query ([`query_text`]) as a simple Query and reads its reply up to
/// ReadyForQuery. An error reply is not an error here: the facts are then unknown. The
/// connection must be idle (just after the login's ReadyForQuery).
pub async fn query(server: &mut ServerConn, functions: bool) -> Result<CatalogReply, BackendError> {
    let sql = query_text(functions);
    let mut msg = BytesMut::with_capacity(sql.len() + 6);
    msg.put_u8(b'Q');
    let len =
        i32::try_from(sql.len() + 5).map_err(|_| WireError::Malformed("catalog query too long"))?;
    msg.put_i32(len);
    msg.put_slice(sql.as_bytes());
    msg.put_u8(0);
    server
        .stream
        .write_all(&msg)
        .await
        .map_err(WireError::from)?;
    server.stream.flush().await.map_err(WireError::from)?;
    let mut failed = false;
    let mut rows = 0usize;
    let mut names = Vec::new();
    let mut schemas: Vec<(i64, String)> = Vec::new();
    let mut search_path = None;
    let mut for_client = BytesMut::new();
    loop {
        let m = server
            .reader
            .next(&mut server.stream, MAX_REPLY_MESSAGE)
            .await?;
        match m.tag {
            b'T' | b'C' | b'N' => {}
            b'D' => {
                rows += 1;
                if rows > MAX_ROWS {
                    failed = true;
                    continue;
                }
                match row(&m.body) {
                    Some((kind, _, name)) if kind == "f" => names.push(name),
                    Some((kind, n, name)) if kind == "s" => schemas.push((n, name)),
                    Some((kind, _, path)) if kind == "p" => search_path = Some(path),
                    _ => failed = true,
                }
            }
            b'E' => failed = true,
            b'S' | b'A' => for_client.extend_from_slice(&m.raw),
            b'Z' => break,
            other => {
                return Err(BackendError::Unexpected {
                    tag: other as char,
                    phase: "the catalog check",
                })
            }
        }
    }
    if failed || search_path.is_none() {
        return Ok(CatalogReply {
            functions: None,
            schemas: None,
            search_path: None,
            for_client,
        });
    }
    schemas.sort_by_key(|(n, _)| *n);
    Ok(CatalogReply {
        functions: functions.then_some(names),
        schemas: Some(schemas.into_iter().map(|(_, s)| s).collect()),
        search_path,
        for_client,
    })
}

/// One DataRow of three text columns: kind, ordinal, name. Bounds-checked: `None` for
/// anything else.
fn row(body: &[u8]) -> Option<(String, i64, String)> {
    let (count, mut rest) = body.split_first_chunk::<2>()?;
    if i16::from_be_bytes(*count) != 3 {
        return None;
    }
    let mut field = || -> Option<&[u8]> {
        let (len, after) = rest.split_first_chunk::<4>()?;
        let len = usize::try_from(i32::from_be_bytes(*len)).ok()?;
        let value = after.get(..len)?;
        rest = after.get(len..)?;
        Some(value)
    };
    let kind = String::from_utf8(field()?.to_vec()).ok()?;
    let n = std::str::from_utf8(field()?).ok()?.parse().ok()?;
    let name = String::from_utf8(field()?.to_vec()).ok()?;
    Some((kind, n, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    use bytes::Bytes;

    fn data_row(fields: &[&str]) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(fields.len() as i16);
        for f in fields {
            b.put_i32(f.len() as i32);
            b.put_slice(f.as_bytes());
        }
        b.freeze()
    }

    #[test]
    fn rows_parse_and_bad_rows_do_not() {
        assert_eq!(
            row(&data_row(&["f", "0", "format_type"])),
            Some(("f".into(), 0, "format_type".into()))
        );
        assert_eq!(row(&data_row(&["f", "0"])), None);
        assert_eq!(row(&data_row(&["s", "x", "public"])), None);
        // A length past the end, a negative (NULL) length, a truncated count.
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i32(1000);
        assert_eq!(row(&b.freeze()), None);
        let mut b = BytesMut::new();
        b.put_i16(3);
        b.put_i32(-1);
        assert_eq!(row(&b.freeze()), None);
        assert_eq!(row(&Bytes::from_static(&[0])), None);
    }

    #[test]
    fn function_names_only_when_asked() {
        assert!(query_text(true).contains("pg_proc"));
        assert!(!query_text(false).contains("pg_proc"));
        assert!(query_text(false).contains("current_schemas(true)"));
    }
}
