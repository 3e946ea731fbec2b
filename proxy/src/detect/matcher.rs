//! Whether one audit event satisfies a rule's `match` tables.

use super::rule::{any_glob, function_matches, CopyMatch, Match, On, OutcomeMatch, UserKind};
use crate::audit::{AuditEvent, Outcome, SessionInfo, StatementEvent};
use crate::sql::{Classification, CopyDirection, Object};

/// The fields of an event that rules look at.
pub struct View<'a> {
    pub on: On,
    pub session: &'a SessionInfo,
    pub statement: Option<&'a StatementEvent>,
    pub sqlstate: Option<&'a str>,
    /// Whether the session's user is a service account.
    pub service: bool,
}

impl<'a> View<'a> {
    /// The views of an event: a failed statement is both a `statement` and an `error`
    /// event. `service` says whether the session's user is a service account (statement
    /// events know it themselves). Skipped statements never ran and are not seen; refusals
    /// of blocked addresses are not auth failures for rules.
    pub fn of(event: &'a AuditEvent, service: bool) -> [Option<View<'a>>; 2] {
        match event {
            AuditEvent::AuthFailure {
                session, failure, ..
            } if failure.blocked_until.is_none() => [
                Some(View {
                    on: On::AuthFailure,
                    session,
                    statement: None,
                    sqlstate: failure.sqlstate.as_deref(),
                    service,
                }),
                None,
            ],
            AuditEvent::SessionStart { session, .. } => [
                Some(View {
                    on: On::SessionStart,
                    session,
                    statement: None,
                    sqlstate: None,
                    service,
                }),
                None,
            ],
            AuditEvent::Statement {
                session, statement, ..
            } => {
                let view = |on| View {
                    on,
                    session,
                    statement: Some(statement),
                    sqlstate: statement.sqlstate.as_deref(),
                    service: statement.service,
                };
                match statement.outcome {
                    Outcome::Ok => [Some(view(On::Statement)), None],
                    Outcome::Error => [Some(view(On::Statement)), Some(view(On::Error))],
                    // A denied statement never ran: only the rule that denied it sees it
                    // (the detector makes sure), as a statement.
                    Outcome::Denied => [Some(view(On::Statement)), None],
                    Outcome::Skipped => [None, None],
                }
            }
            _ => [None, None],
        }
    }
}

/// All conditions of one `match` table.
pub fn matches(m: &Match, v: &View<'_>) -> bool {
    // The command first: most rules name commands and most statements are none of them, so
    // this one check settles nearly every rule (the order of the conditions changes no
    // result; `class_matches` checks the command again when it gets there).
    if let Some(st) = v.statement {
        if !any_glob(&m.command, Some(&st.class.command)) {
            return false;
        }
    }
    let s = v.session;
    if !session_matches(m, s, v.service) || !any_glob(&m.sqlstate, v.sqlstate) {
        return false;
    }
    let Some(st) = v.statement else {
        // Statement conditions on non-statement events are refused when the rule loads.
        return true;
    };
    statement_matches(m, st)
}

/// The conditions on who runs a statement: user, user kind, database, application,
/// client address (CIDR ranges or globs).
pub fn session_matches(m: &Match, s: &SessionInfo, service: bool) -> bool {
    if let Some(kind) = m.user_kind {
        if (kind == UserKind::Service) != service {
            return false;
        }
    }
    if !any_glob(&m.user, s.user.as_deref())
        || !any_glob(&m.database, s.database.as_deref())
        || !any_glob(&m.application_name, s.application_name.as_deref())
    {
        return false;
    }
    m.client_addr.is_empty() || crate::matching::any_addr(&m.client_addr, s.client_addr)
}

fn statement_matches(m: &Match, st: &StatementEvent) -> bool {
    if !m.outcome.is_empty() {
        let o = match st.outcome {
            Outcome::Ok => OutcomeMatch::Ok,
            _ => OutcomeMatch::Error,
        };
        if !m.outcome.contains(&o) {
            return false;
        }
    }
    if !class_matches(m, &st.class, st.noise, &st.extra_objects) {
        return false;
    }
    // Rows read in batches (a cursor's FETCHes, a portal's Executes) count as one read:
    // the batch whose running total crosses the limit matches, once.
    if let Some(n) = m.rows_over {
        let total = st.rows_total.or(st.rows);
        if total.is_none_or(|r| r <= n) || st.rows_before > n {
            return false;
        }
    }
    true
}

/// The conditions on what a statement is (known before it runs): class, command, noise,
/// objects, functions and facts. Deny rules are decided on these alone.
pub fn class_matches(m: &Match, c: &Classification, noise: bool, extra: &[Object]) -> bool {
    if !m.class.is_empty() && !m.class.iter().any(|x| x == c.class.as_str()) {
        return false;
    }
    if !any_glob(&m.command, Some(&c.command)) {
        return false;
    }
    if m.noise.is_some_and(|n| n != noise) {
        return false;
    }
    if !m.object.is_empty()
        && !c.objects.iter().chain(extra.iter()).any(|o| {
            m.object
                .iter()
                .any(|p| crate::matching::glob_match(p, &o.name))
        })
    {
        return false;
    }
    if !m.function.is_empty()
        && !c
            .functions
            .iter()
            .any(|f| m.function.iter().any(|p| function_matches(p, f)))
    {
        return false;
    }
    let f = &c.facts;
    if let Some(want) = m.has_where {
        if f.has_where != Some(want) {
            return false;
        }
    }
    if let Some(dir) = m.copy_direction {
        let want = match dir {
            CopyMatch::To => CopyDirection::To,
            CopyMatch::From => CopyDirection::From,
        };
        if f.copy_direction != Some(want) {
            return false;
        }
    }
    if m.copy_program.is_some_and(|p| p != f.copy_program) {
        return false;
    }
    if !m.role_attributes.is_empty()
        && !f
            .role_attributes
            .iter()
            .any(|a| m.role_attributes.contains(a))
    {
        return false;
    }
    if m.grants_role.is_some_and(|g| g != f.grants_role) {
        return false;
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sql::{Classifier, ClassifierOptions};

    /// A READ event with `rows` of its own and, for a batch, `(before, total)`.
    fn read(rows: u64, batch: Option<(u64, u64)>) -> StatementEvent {
        let st =
            Classifier::new(ClassifierOptions::default()).classify_statement("SELECT * FROM big");
        StatementEvent {
            statement_id: 1,
            substatement_id: 1,
            class: st.class,
            extra_objects: Vec::new(),
            statement: st.text,
            prepared_statement: None,
            cursor_query: None,
            uncaptured: None,
            noise: false,
            protocol: "simple",
            service: false,
            logged: true,
            role: None,
            outcome: Outcome::Ok,
            sqlstate: None,
            error: None,
            rows: Some(rows),
            rows_total: batch.map(|b| b.1),
            rows_before: batch.map_or(0, |b| b.0),
            duration_ms: None,
            parameters: None,
            denied_by: None,
            session_json: None,
        }
    }

    #[test]
    fn rows_over_matches_the_batch_that_crosses_once() {
        let m = Match {
            rows_over: Some(10_000),
            ..Match::default()
        };
        assert!(statement_matches(&m, &read(15_000, None)));
        assert!(!statement_matches(&m, &read(10_000, None)));
        let batches = [
            (6000, (0, 6000)),
            (6000, (6000, 12_000)),
            (3000, (12_000, 15_000)),
        ];
        let hits: Vec<bool> = batches
            .iter()
            .map(|&(rows, b)| statement_matches(&m, &read(rows, Some(b))))
            .collect();
        assert_eq!(hits, [false, true, false]);
        // A MOVE past the limit returns nothing: its total does not move.
        assert!(!statement_matches(&m, &read(14_000, Some((0, 0)))));
    }
}
