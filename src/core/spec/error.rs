//! What validation reports: located issues (errors) and warnings.

use std::fmt;

/// Something in the spec that is allowed but worth saying.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecWarning {
    pub field: String,
    pub message: String,
}

/// One problem with a spec, located in its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SpecIssue {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub message: String,
}

impl fmt::Display for SpecIssue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file, self.line, self.column, self.field, self.message
        )
    }
}

/// Every problem found in a spec.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct SpecError {
    pub issues: Vec<SpecIssue>,
}

impl fmt::Display for SpecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.issues.len();
        write!(
            f,
            "invalid cluster spec ({n} problem{})",
            if n == 1 { "" } else { "s" }
        )?;
        for issue in &self.issues {
            write!(f, "\n  {issue}")?;
        }
        Ok(())
    }
}

impl SpecError {
    /// The fields named by the issues, in order (for tests and JSON output).
    pub fn fields(&self) -> Vec<&str> {
        self.issues.iter().map(|i| i.field.as_str()).collect()
    }
}
