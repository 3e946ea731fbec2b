//! The `statement` event: one executed (or failed, or skipped) statement with its
//! classification and the server's verdict.

use crate::sql::{Classification, Object, ParsePath};
use serde::Serialize;
use std::sync::Arc;

/// How the server answered a statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    Ok,
    Error,
    /// Never ran: an earlier statement of the same simple query, or an earlier message of
    /// the same extended-protocol batch, failed.
    Skipped,
    /// Never reached the server: pgvigil refused it (a deny rule, a read-only policy, an
    /// audit log that cannot be written); `denied_by` says which.
    Denied,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Error => "error",
            Outcome::Skipped => "skipped",
            Outcome::Denied => "denied",
        }
    }
}

/// A `statement` event's own fields.
#[derive(Debug, Clone)]
pub struct StatementEvent {
    pub statement_id: u64,
    pub substatement_id: u32,
    pub class: Arc<Classification>,
    /// Objects the classification did not know (FunctionCall's function oid).
    pub extra_objects: Vec<Object>,
    /// Redacted text.
    pub statement: Arc<str>,
    /// For an `EXECUTE name`: the redacted text of the prepared statement it ran (whose
    /// classification the event carries).
    pub prepared_statement: Option<Arc<str>>,
    /// For a `FETCH` or `MOVE`: the redacted query of its cursor (whose classification
    /// the event carries).
    pub cursor_query: Option<Arc<str>>,
    /// For the one event summing up the part of a simple query past the capture limit.
    pub uncaptured: Option<Uncaptured>,
    /// Catalog noise: the classification says so and the statement did not fail.
    pub noise: bool,
    /// `simple`, `extended` or `function_call`.
    pub protocol: &'static str,
    pub service: bool,
    /// Whether the event goes to the audit log (noise and service accounts' statements
    /// may exist for detection only; those carry an empty `ts`).
    pub logged: bool,
    /// The effective role when it differs from the authenticated user.
    pub role: Option<Arc<str>>,
    pub outcome: Outcome,
    pub sqlstate: Option<String>,
    pub error: Option<String>,
    pub rows: Option<u64>,
    /// For a batch read through a cursor (FETCH) or a protocol portal run in batches
    /// (Execute with a row limit): the rows returned through it so far, this batch
    /// included. `None` for a statement run in one go.
    pub rows_total: Option<u64>,
    /// `rows_total` before this batch (0 for a statement run in one go): rules'
    /// `rows_over` fires on the batch that crosses the limit, once per cursor or portal.
    pub rows_before: u64,
    pub duration_ms: Option<f64>,
    /// Bind parameters, when `log_parameters` is on.
    pub parameters: Option<Arc<[String]>>,
    /// For a denied statement: the rule id (or `pgvigil:<reason>` for a built-in refusal).
    pub denied_by: Option<Arc<str>>,
    /// The session's fields as JSON (`SessionInfo::json_fields` of the event's session),
    /// when its session made them once for all its lines; written afresh when `None`.
    pub session_json: Option<Arc<[u8]>>,
}

/// The part of a simple query past the capture limit, summed up in one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Uncaptured {
    /// Bytes of query text the proxy did not read into its capture.
    pub bytes: u64,
    /// Statements there the server answered (CommandComplete or an error): exact.
    pub statements_run: u64,
    /// Statements the bytes are estimated to hold, at the captured part's average length
    /// (never fewer than `statements_run`).
    pub statements_estimate: u64,
}

/// The event's own fields as serde would write them: the reference the hand-written
/// [`StatementEvent::write_json_fields`] is tested against.
#[cfg(test)]
#[derive(Serialize)]
pub(super) struct Fields<'a> {
    statement_id: u64,
    substatement_id: u32,
    class: crate::sql::Class,
    command: &'a str,
    objects: Objects<'a>,
    statement: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    prepared_statement: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor_query: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    uncaptured: Option<Uncaptured>,
    protocol: &'static str,
    parse: ParsePath,
    user_kind: &'static str,
    noise: bool,
    role: Option<&'a str>,
    outcome: Outcome,
    sqlstate: Option<&'a str>,
    error: Option<&'a str>,
    rows: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    rows_total: Option<u64>,
    duration_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    parameters: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    denied_by: Option<&'a str>,
}

/// The classification's objects followed by the event's own, as one JSON array.
#[cfg(test)]
struct Objects<'a>(&'a [Object], &'a [Object]);

#[cfg(test)]
impl Serialize for Objects<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter().chain(self.1.iter()))
    }
}

impl StatementEvent {
    /// Every object: the classification's, then the event's own.
    pub fn objects(&self) -> impl Iterator<Item = &Object> {
        self.class.objects.iter().chain(self.extra_objects.iter())
    }

    /// `human` or `service`.
    pub fn user_kind(&self) -> &'static str {
        if self.service {
            "service"
        } else {
            "human"
        }
    }

    /// The serialisable view of the event's own fields.
    #[cfg(test)]
    pub(super) fn fields(&self) -> Fields<'_> {
        Fields {
            statement_id: self.statement_id,
            substatement_id: self.substatement_id,
            class: self.class.class,
            command: &self.class.command,
            objects: Objects(&self.class.objects, &self.extra_objects),
            statement: &self.statement,
            prepared_statement: self.prepared_statement.as_deref(),
            cursor_query: self.cursor_query.as_deref(),
            uncaptured: self.uncaptured,
            protocol: self.protocol,
            parse: self.class.parse,
            user_kind: self.user_kind(),
            noise: self.noise,
            role: self.role.as_deref(),
            outcome: self.outcome,
            sqlstate: self.sqlstate.as_deref(),
            error: self.error.as_deref(),
            rows: self.rows,
            rows_total: self.rows_total,
            duration_ms: self.duration_ms,
            parameters: self.parameters.as_deref(),
            denied_by: self.denied_by.as_deref(),
        }
    }
}

impl StatementEvent {
    /// Appends the event's own fields (without braces) as serde wrote [`Fields`]: same
    /// order, same bytes; absent optional fields are left out where `Fields` skips them.
    pub(super) fn write_json_fields(&self, out: &mut Vec<u8>) {
        use super::json;
        out.extend_from_slice(b"\"statement_id\":");
        json::u64(out, self.statement_id);
        out.extend_from_slice(b",\"substatement_id\":");
        json::u64(out, u64::from(self.substatement_id));
        out.extend_from_slice(b",\"class\":\"");
        out.extend_from_slice(self.class.class.as_str().as_bytes());
        out.extend_from_slice(b"\",\"command\":");
        json::string(out, &self.class.command);
        out.extend_from_slice(b",\"objects\":[");
        for (i, o) in self.objects().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(b"{\"type\":");
            json::string(out, &o.kind);
            out.extend_from_slice(b",\"name\":");
            json::string(out, &o.name);
            out.push(b'}');
        }
        out.extend_from_slice(b"],\"statement\":");
        json::string(out, &self.statement);
        if let Some(text) = &self.prepared_statement {
            out.extend_from_slice(b",\"prepared_statement\":");
            json::string(out, text);
        }
        if let Some(text) = &self.cursor_query {
            out.extend_from_slice(b",\"cursor_query\":");
            json::string(out, text);
        }
        if let Some(u) = &self.uncaptured {
            out.extend_from_slice(b",\"uncaptured\":{\"bytes\":");
            json::u64(out, u.bytes);
            out.extend_from_slice(b",\"statements_run\":");
            json::u64(out, u.statements_run);
            out.extend_from_slice(b",\"statements_estimate\":");
            json::u64(out, u.statements_estimate);
            out.push(b'}');
        }
        out.extend_from_slice(b",\"protocol\":");
        json::string(out, self.protocol);
        out.extend_from_slice(match self.class.parse {
            ParsePath::Ast => b",\"parse\":\"ast\"",
            ParsePath::Tokens => b",\"parse\":\"tokens\"",
        });
        out.extend_from_slice(b",\"user_kind\":\"");
        out.extend_from_slice(self.user_kind().as_bytes());
        out.extend_from_slice(b"\",\"noise\":");
        json::boolean(out, self.noise);
        out.extend_from_slice(b",\"role\":");
        json::opt_string(out, self.role.as_deref());
        out.extend_from_slice(b",\"outcome\":\"");
        out.extend_from_slice(self.outcome.as_str().as_bytes());
        out.extend_from_slice(b"\",\"sqlstate\":");
        json::opt_string(out, self.sqlstate.as_deref());
        out.extend_from_slice(b",\"error\":");
        json::opt_string(out, self.error.as_deref());
        out.extend_from_slice(b",\"rows\":");
        json::opt_u64(out, self.rows);
        if let Some(total) = self.rows_total {
            out.extend_from_slice(b",\"rows_total\":");
            json::u64(out, total);
        }
        out.extend_from_slice(b",\"duration_ms\":");
        json::opt_f64(out, self.duration_ms);
        if let Some(parameters) = &self.parameters {
            out.extend_from_slice(b",\"parameters\":[");
            for (i, p) in parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::string(out, p);
            }
            out.push(b']');
        }
        if let Some(rule) = &self.denied_by {
            out.extend_from_slice(b",\"denied_by\":");
            json::string(out, rule);
        }
    }
}
