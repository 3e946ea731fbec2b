//! The effective role of a session, as `SET ROLE` and friends change it.
//!
//! `user` in the audit log is always who authenticated; `role` is who the server treats
//! the session as. Changes apply when the statement succeeds. SET is transactional, so a
//! `ROLLBACK` of the block undoes a `SET ROLE` made inside it, and `SET LOCAL ROLE` lasts
//! until the transaction ends.

use crate::sql::{Classification, RoleChange};
use std::sync::Arc;

/// Role state of one session.
#[derive(Debug, Default)]
pub struct Roles {
    /// Set with SET ROLE / SET SESSION AUTHORIZATION (`None`: the login user).
    role: Option<Arc<str>>,
    /// SET LOCAL ROLE, until the transaction ends.
    local: Option<Option<Arc<str>>>,
    /// The role when the open transaction block began, restored by ROLLBACK.
    tx_start: Option<Option<Arc<str>>>,
}

impl Roles {
    /// A statement completed with command tag word `tag` (`BEGIN`, `COMMIT`, ...) and
    /// classification `class`; `user` is the login user.
    pub fn completed(&mut self, tag: Option<&[u8]>, class: &Classification, user: Option<&str>) {
        match tag {
            Some(b"BEGIN" | b"START") if self.tx_start.is_none() => {
                self.tx_start = Some(self.role.clone());
            }
            // `ROLLBACK TO SAVEPOINT` has the tag ROLLBACK too, but a different command.
            Some(b"ROLLBACK") if class.command == "ROLLBACK" => {
                if let Some(r) = self.tx_start.take() {
                    self.role = r;
                }
                self.local = None;
            }
            Some(b"COMMIT") => self.tx_start = None,
            _ => {}
        }
        match &class.role_change {
            Some(RoleChange::Set { role, local: false }) => {
                self.role = (Some(role.as_str()) != user).then(|| Arc::from(role.as_str()));
            }
            Some(RoleChange::Set { role, local: true }) => {
                self.local = Some(Some(Arc::from(role.as_str())));
            }
            Some(RoleChange::Reset) => {
                self.role = None;
                self.local = None;
            }
            None => {}
        }
    }

    /// ReadyForQuery with status idle: no transaction is open any more.
    pub fn idle(&mut self) {
        self.local = None;
        self.tx_start = None;
    }

    /// The effective role when it differs from the login user.
    pub fn effective(&self) -> Option<Arc<str>> {
        match &self.local {
            Some(r) => r.clone(),
            None => self.role.clone(),
        }
    }
}
