//! `Severity`: how bad a finding is. A described value: rule files give it to each rule
//! (`detect`), and `[alerts.*] min_severity` filters on it, so it lives here where config
//! can name it without importing detect; `detect` re-exports it.

use serde::{Deserialize, Serialize};

/// How bad a finding is. Ordered: `info < low < medium < high < critical`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    #[default]
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    /// The name rule files, configs and findings use.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Severity;

    #[test]
    fn names_and_order_are_the_documented_ones() {
        let all = [
            Severity::Info,
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ];
        for (s, name) in all
            .iter()
            .zip(["info", "low", "medium", "high", "critical"])
        {
            assert_eq!(s.as_str(), name);
            assert_eq!(
                serde_json::to_string(s).expect("json"),
                format!("\"{name}\"")
            );
            let back: Severity = serde_json::from_str(&format!("\"{name}\"")).expect("parse");
            assert_eq!(back, *s);
        }
        assert!(all.windows(2).all(|w| w[0] < w[1]));
        assert!(serde_json::from_str::<Severity>("\"High\"").is_err());
        assert_eq!(Severity::default(), Severity::Info);
    }
}
