//! What the tracker keeps between a client message and its reply ([`Pending`]), what became
//! of a statement ([`Fate`], [`Extra`]), and the placeholder statements for what the proxy
//! could not see.

use super::registry::{placeholder, unknown_class, Portal};
use super::statement::Outcome;
use crate::sql::{Class, Classification, Object, ParsePath, Statement};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

/// A client message still waiting for the server's reply.
pub(super) enum Pending {
    Query {
        id: u64,
        pieces: Vec<Statement>,
        /// Statements settled so far.
        done: usize,
        /// The text was cut at the capture limit: more statements may follow.
        truncated: bool,
        started: Instant,
    },
    /// The statement being prepared (for a Parse that fails with no Execute after it).
    Parse(Arc<Statement>),
    Bind,
    Describe,
    Close,
    Execute {
        id: u64,
        portal: Option<Arc<Portal>>,
        /// The portal's name, to find it at completion when it was not known at Execute
        /// (the client pipelined it after the PREPARE or DECLARE that creates it).
        name: String,
        started: Instant,
        /// The row limit (0: none); PortalSuspended means exactly this many rows came.
        max_rows: u32,
    },
    Function {
        id: u64,
        oid: Option<u32>,
        started: Instant,
    },
    Sync,
    /// A refused message (`enforce`): its events are already out; it stands where the
    /// server answers its stand-in. `simple`: a Query or FunctionCall (ReadyForQuery
    /// follows the error); otherwise a Parse or Execute (the server skips to Sync), whose
    /// stand-in's error is replaced with `denial`'s.
    Denied {
        simple: bool,
        denial: Arc<crate::enforce::Denial>,
    },
}

impl Pending {
    /// Memory held for this entry, estimated: the entry and the statement texts it holds.
    pub(super) fn cost(&self) -> usize {
        let texts = match self {
            Pending::Query { pieces, .. } => pieces
                .iter()
                .map(|p| p.text.len() + std::mem::size_of::<Statement>())
                .sum(),
            Pending::Parse(st) => st.text.len(),
            _ => 0,
        };
        std::mem::size_of::<Pending>() + texts
    }
}

/// How a statement ended.
pub(super) struct Fate {
    pub(super) outcome: Outcome,
    pub(super) sqlstate: Option<String>,
    pub(super) error: Option<String>,
    pub(super) rows: Option<u64>,
    pub(super) started: Option<Instant>,
    /// For a batch read through a cursor or portal: rows returned through it before this
    /// statement, and including it.
    pub(super) batch: Option<(u64, u64)>,
    /// What refused the statement (with `Outcome::Denied`).
    pub(super) denied_by: Option<Arc<str>>,
}

/// What an event carries beyond its statement.
#[derive(Default)]
pub(super) struct Extra {
    /// Objects the classification did not know (FunctionCall's function oid).
    pub(super) objects: Vec<Object>,
    /// The text an EXECUTE ran.
    pub(super) prepared_statement: Option<Arc<str>>,
    /// The query of the cursor a FETCH or MOVE read.
    pub(super) cursor_query: Option<Arc<str>>,
}

impl Fate {
    pub(super) fn ok(rows: Option<u64>, started: Instant) -> Fate {
        Fate {
            outcome: Outcome::Ok,
            sqlstate: None,
            error: None,
            rows,
            started: Some(started),
            batch: None,
            denied_by: None,
        }
    }
    pub(super) fn skipped() -> Fate {
        Fate {
            outcome: Outcome::Skipped,
            sqlstate: None,
            error: None,
            rows: None,
            started: None,
            batch: None,
            denied_by: None,
        }
    }
    /// Refused by `d` before the server saw it.
    pub(super) fn denied(d: &crate::enforce::Denial) -> Fate {
        Fate {
            outcome: Outcome::Denied,
            sqlstate: Some(d.sqlstate.to_string()),
            error: Some(d.message.clone()),
            rows: None,
            started: None,
            batch: None,
            denied_by: Some(d.by.clone()),
        }
    }
}

/// A statement the capture cut, however short the part seen (`...; select 'x'` cut
/// before `, * from secrets`): what follows is unseen, so nothing proves it only reads
/// catalog state, and noise is not written by default.
pub(super) fn seen_in_part(mut s: Statement) -> Statement {
    if s.class.noise {
        let mut class = (*s.class).clone();
        class.noise = false;
        s.class = Arc::new(class);
    }
    s
}

/// A statement past the captured part of a very long simple query.
pub(super) fn beyond_capture(truncated: bool) -> Statement {
    let text = if truncated {
        "<statement beyond the captured part of the query>"
    } else {
        "<statement the proxy did not see>"
    };
    placeholder(text, unknown_class())
}

pub(super) fn function_call_class() -> Arc<Classification> {
    static FUNCTION: OnceLock<Arc<Classification>> = OnceLock::new();
    FUNCTION
        .get_or_init(|| {
            Arc::new(Classification {
                class: Class::Function,
                command: "FUNCTION CALL".to_string(),
                ..Classification::unknown(ParsePath::Tokens)
            })
        })
        .clone()
}
