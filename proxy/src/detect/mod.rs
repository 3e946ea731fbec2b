//! Detection: rules evaluated over the audit events as they happen, producing findings
//! and blocks.
//!
//! - [`rule`]: the rule file's shape and its checks; [`load`]: the built-in set,
//!   `[rules] dir` and `disable`, with file and line in every problem.
//! - [`matcher`]: whether an event satisfies a rule's `match` tables.
//! - [`window`]: per-group sliding windows, cooldowns and episodes, bounded in memory.
//! - [`block`]: client addresses refused by `action = "block"`.
//! - [`check`]: the rule set `[rules]` describes, checked for config validation.
//! - [`engine`]: the [`Detector`] tying these together on the sessions' tasks.
//! - [`finding`]: what a firing rule produces.

pub mod block;
pub mod check;
pub mod engine;
pub mod finding;
pub mod load;
pub mod matcher;
pub mod rule;
pub mod window;

pub use engine::{Detector, Replicas};
pub use finding::{Finding, Severity};
pub use rule::Rule;
