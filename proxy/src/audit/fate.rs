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
        /// What the server did with the part past the capture (only when `truncated`):
        /// summed into one event, not one placeholder per statement.
        beyond: Box<Beyond>,
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

/// The part of a simple query past the capture limit, summed up from the server's replies
/// to it. Logged as one event when the query ends, so a query of a million statements
/// costs the audit log one line for what the proxy could not read, not a million.
#[derive(Default)]
pub(super) struct Beyond {
    /// Bytes of the query text past the capture.
    pub(super) bytes: u64,
    /// Statements seen in the captured part, and the captured text's length: the
    /// estimate of how many statements the rest holds is made from them.
    pub(super) captured_statements: u64,
    pub(super) captured_bytes: u64,
    /// Replies (CommandComplete or ErrorResponse) to statements past the capture.
    pub(super) replies: u64,
    pub(super) rows: u64,
    /// The first reply to a statement past the capture: that part's start.
    pub(super) started: Option<Instant>,
    /// The error that ended the query, when it came from a statement past the capture.
    pub(super) error: Option<(Option<String>, String)>,
    /// A captured statement failed: the part past the capture never ran.
    pub(super) never_ran: bool,
}

impl Beyond {
    /// Statements the uncaptured bytes are estimated to hold, at the captured part's
    /// average length per statement.
    pub(super) fn estimate(&self) -> u64 {
        if self.captured_bytes == 0 {
            return 0;
        }
        let per = u128::from(self.captured_statements.max(1));
        let est = u128::from(self.bytes) * per / u128::from(self.captured_bytes);
        u64::try_from(est).unwrap_or(u64::MAX)
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
    /// For the summary of a query's uncaptured part.
    pub(super) uncaptured: Option<super::statement::Uncaptured>,
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

/// A reply to a statement the proxy did not see (more replies than statements split:
/// the splitter and the server disagree).
pub(super) fn unseen() -> Statement {
    placeholder("<statement the proxy did not see>", unknown_class())
}

/// The statement of the event that sums up the part of a query past the capture.
pub(super) fn beyond_capture(b: &Beyond) -> Statement {
    let text = format!(
        "<{} bytes past the captured part of the query: {} statements run, about {} in all>",
        b.bytes,
        b.replies,
        b.estimate()
    );
    placeholder(&text, unknown_class())
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
