//! Configuration, described: the shapes of the TOML file with their defaults
//! ([`ConfigFile`]), [`parse`] with line numbers, the checks config owns ([`check`]), and
//! the [`Checker`] collector every owner checks its part with.
//!
//! Config only describes. What a setting means is decided by the module that owns it
//! (detect, sinks, enforce, auth, tls, backend), which also checks and builds it; the
//! validated snapshot sessions use is assembled above all of them, in `snapshot`. So config
//! names nothing of the crate but the leaves `matching` and `sql` (`tests/layout.rs`
//! keeps that promise).

mod access;
mod admin;
mod alerts;
mod auth;
mod check;
mod cluster;
mod file;
pub(crate) mod locate;
mod severity;
mod size;

pub use access::*;
pub use admin::*;
pub use alerts::*;
pub use auth::*;
pub use check::{check, Checker};
pub use cluster::Cluster;
pub use file::*;
pub use severity::Severity;
pub use size::ByteSize;

use std::path::{Path, PathBuf};

/// One problem in a configuration file.
#[derive(Debug, Clone)]
pub struct ConfigIssue {
    /// The file the problem is in when it is not the config file itself (a rule file).
    pub file: Option<PathBuf>,
    /// 1-based line in the file, when the problem belongs to a line.
    pub line: Option<usize>,
    /// Dotted key path, e.g. `listen.tls.cert_file`.
    pub key: String,
    /// What is wrong and what to change.
    pub message: String,
}

impl std::fmt::Display for ConfigIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(file) = &self.file {
            write!(f, "{}: ", file.display())?;
        }
        match (self.line, self.key.is_empty()) {
            (Some(line), false) => write!(f, "line {line}: {}: {}", self.key, self.message),
            (Some(line), true) => write!(f, "line {line}: {}", self.message),
            (None, false) => write!(f, "{}: {}", self.key, self.message),
            (None, true) => write!(f, "{}", self.message),
        }
    }
}

/// Errors of the config layer.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {} problem(s):\n{}", .issues.len(), render(.issues))]
    Invalid {
        path: PathBuf,
        issues: Vec<ConfigIssue>,
    },
}

fn render(issues: &[ConfigIssue]) -> String {
    issues
        .iter()
        .map(|i| format!("  {i}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Parses config text into its described shape; `path` names it in errors. A syntax
/// error, an unknown key or a value of the wrong type is one issue with its line.
pub fn parse(text: &str, path: &Path) -> Result<ConfigFile, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        issues: vec![ConfigIssue {
            file: None,
            line: e.span().map(|s| locate::line_of(text, s.start)),
            key: String::new(),
            message: e.message().trim().to_string(),
        }],
    })
}
