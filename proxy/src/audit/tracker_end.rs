//! How statements end without a reply of their own: at ReadyForQuery the statements of a
//! query or batch the server skipped, and at the end of the session those still waiting
//! (their fate unknown).

use super::Tracker;
use crate::audit::fate::{Fate, Pending};
use crate::audit::statement::Outcome;
use std::time::Instant;

impl Tracker {
    pub(super) fn on_ready(&mut self, status: u8) {
        while let Some(p) = self.queue.pop_front() {
            match p {
                Pending::Sync | Pending::Function { .. } | Pending::Denied { simple: true, .. } => {
                    break
                }
                Pending::Denied { simple: false, .. } => {
                    self.denials_pending = self.denials_pending.saturating_sub(1);
                }
                Pending::Query {
                    id,
                    pieces,
                    done,
                    truncated,
                    beyond,
                    ..
                } => {
                    let n = pieces.len();
                    for (i, st) in pieces.into_iter().enumerate().skip(done) {
                        self.finish(id, i + 1, st, "simple", None, Fate::skipped());
                    }
                    if truncated {
                        self.finish_beyond(id, n + 1, &beyond, false);
                    }
                    break;
                }
                Pending::Execute {
                    id, portal, name, ..
                } => {
                    let (_, st, params) = self.executed(portal, &name);
                    self.finish(id, 1, st, "extended", params, Fate::skipped());
                }
                Pending::Parse(_) | Pending::Bind | Pending::Describe | Pending::Close => {}
            }
        }
        self.console.status = status;
        if self.queue.is_empty() {
            self.console.current = None;
        }
        if status == b'I' {
            self.roles.idle();
            self.registry.idle();
        }
        self.shadow.ready(status);
    }

    /// The session is over: statements still waiting for the server's answer are logged
    /// as errors without a SQLSTATE (their fate is unknown: the server may have run them).
    pub fn abandon(&mut self) {
        let fate = |started: Option<Instant>| Fate {
            outcome: Outcome::Error,
            sqlstate: None,
            error: Some("no reply: the session ended first".to_string()),
            rows: None,
            started,
            batch: None,
            denied_by: None,
        };
        while let Some(p) = self.queue.pop_front() {
            match p {
                Pending::Query {
                    id,
                    pieces,
                    done,
                    started,
                    truncated,
                    mut beyond,
                } => {
                    let n = pieces.len();
                    for (i, st) in pieces.into_iter().enumerate().skip(done) {
                        let f = if i == done {
                            fate(Some(started))
                        } else {
                            Fate::skipped()
                        };
                        self.finish(id, i + 1, st, "simple", None, f);
                    }
                    if truncated {
                        // The part past the capture never started if a captured statement
                        // was still waiting.
                        beyond.never_ran |= done < n;
                        self.finish_beyond(id, n + 1, &beyond, done >= n);
                    }
                }
                Pending::Execute {
                    id,
                    portal,
                    name,
                    started,
                    ..
                } => {
                    let (_, st, params) = self.executed(portal, &name);
                    self.finish(id, 1, st, "extended", params, fate(Some(started)));
                }
                Pending::Function { id, oid, started } => {
                    self.finish_function(id, oid, fate(Some(started)));
                }
                _ => {}
            }
        }
    }
}
