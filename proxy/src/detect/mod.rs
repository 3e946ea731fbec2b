//! Detection: rules evaluated over the audit events as they happen, producing findings.

pub mod finding;

pub use finding::{Finding, Severity};
