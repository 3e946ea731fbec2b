//! Configuration: reading the TOML file, validating it, and the resolved snapshot that
//! sessions use.
//!
//! Loading is all-or-nothing: every problem found is reported with the line it is on, and
//! nothing is used until the whole file is valid (the TLS material included). Sessions hold
//! an `Arc<Config>` snapshot, so a later reload never changes a session mid-flight.

mod access;
mod admin;
mod alerts;
mod auth;
mod cluster;
mod file;
pub(crate) mod locate;
mod size;
mod validate;
mod validate_auth;

pub use access::*;
pub use admin::*;
pub use alerts::*;
pub use auth::*;
pub use cluster::Cluster;
pub use file::*;
pub use size::ByteSize;
pub use validate::Checker;

use crate::sql::Classifier;
use crate::tls::{ClientTls, UpstreamTls};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

/// Where one database's sessions go, with everything resolved.
#[derive(Debug, Clone)]
pub struct UpstreamTarget {
    pub host: String,
    pub port: u16,
    pub sslmode: SslMode,
    pub connect_timeout: Duration,
    /// Database name to send upstream; `None` keeps the client's.
    pub dbname: Option<String>,
    /// rustls client settings for this target (absent with sslmode=disable).
    pub tls: Option<Arc<UpstreamTls>>,
}

/// A validated configuration, ready for use.
#[derive(Debug)]
pub struct Config {
    pub file: ConfigFile,
    /// The path the config was read from (relative paths inside resolve against its folder).
    pub path: PathBuf,
    /// Client-side TLS (absent with mode=disable).
    pub client_tls: Option<Arc<ClientTls>>,
    pub default_upstream: UpstreamTarget,
    /// `[databases.NAME]` routes.
    pub routes: std::collections::HashMap<String, UpstreamTarget>,
    /// The statement classifier built from `[audit]` (its cache lives as long as this
    /// snapshot).
    pub classifier: Arc<Classifier>,
    /// The detection rules (`[rules]`), validated.
    pub rules: Vec<Arc<crate::detect::Rule>>,
    /// What `[auth]` loaded: auth file, auth_query lookups, cert map, upstream CA.
    pub auth: crate::auth::AuthSetup,
}

impl Config {
    /// Whether `user` is a service account (`[audit] service_accounts`).
    pub fn is_service_account(&self, user: &str) -> bool {
        self.file
            .audit
            .service_accounts
            .iter()
            .any(|p| glob_match(p, user))
    }

    /// The upstream for a client's requested database name.
    pub fn route(&self, database: &str) -> &UpstreamTarget {
        self.routes.get(database).unwrap_or(&self.default_upstream)
    }
}

/// Reads, parses and validates a config file.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    load_str(&text, path)
}

/// Parses and validates config text; `path` names it in errors and anchors relative paths.
pub fn load_str(text: &str, path: &Path) -> Result<Config, ConfigError> {
    let file: ConfigFile = toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: path.to_path_buf(),
        issues: vec![ConfigIssue {
            file: None,
            line: e.span().map(|s| locate::line_of(text, s.start)),
            key: String::new(),
            message: e.message().trim().to_string(),
        }],
    })?;
    let base = path
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    validate::validate(file, text, &base)
        .map_err(|issues| ConfigError::Invalid {
            path: path.to_path_buf(),
            issues,
        })
        .map(|mut c| {
            c.path = path.to_path_buf();
            c
        })
}

pub use crate::matching::glob_match;
