//! Field-level validation failures, collected so one 422 answer can list every broken rule.

use serde::Serialize;

/// One step of the path to the offending value, as FastAPI clients expect it in `loc`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum LocSegment {
    Key(String),
    Index(usize),
}

impl From<&str> for LocSegment {
    fn from(key: &str) -> Self {
        LocSegment::Key(key.to_owned())
    }
}

impl From<usize> for LocSegment {
    fn from(index: usize) -> Self {
        LocSegment::Index(index)
    }
}

/// One broken rule: where (`loc`), what (`msg`) and a machine-readable `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FieldError {
    pub loc: Vec<LocSegment>,
    pub msg: String,
    #[serde(rename = "type")]
    pub kind: String,
}

impl FieldError {
    pub fn new(loc: Vec<LocSegment>, msg: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            loc,
            msg: msg.into(),
            kind: kind.into(),
        }
    }
}

/// Collects failures under a root (`body`, `query`, `path`) and nested prefixes (`venue`).
#[derive(Debug, Default)]
pub struct Violations {
    errors: Vec<FieldError>,
}

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, loc: &[&str], msg: impl Into<String>) {
        self.push_kind(loc, msg, "value_error");
    }

    pub fn missing(&mut self, loc: &[&str]) {
        self.push_kind(loc, "Field required", "missing");
    }

    pub fn push_kind(&mut self, loc: &[&str], msg: impl Into<String>, kind: &str) {
        let loc = loc
            .iter()
            .map(|segment| LocSegment::from(*segment))
            .collect();
        self.errors.push(FieldError::new(loc, msg, kind));
    }

    /// Takes a field that must be present; records `missing` and returns `None` otherwise.
    pub fn required<T>(&mut self, loc: &[&str], value: Option<T>) -> Option<T> {
        if value.is_none() {
            self.missing(loc);
        }
        value
    }

    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// `Ok(value)` when no rule failed, else every failure.
    pub fn finish<T>(self, value: impl FnOnce() -> T) -> Result<T, Vec<FieldError>> {
        if self.errors.is_empty() {
            Ok(value())
        } else {
            Err(self.errors)
        }
    }

    pub fn into_errors(self) -> Vec<FieldError> {
        self.errors
    }
}

/// Trims `value` and checks its length in characters; records a failure and returns `None` when out of bounds.
pub fn bounded_text(
    violations: &mut Violations,
    loc: &[&str],
    value: &str,
    min: usize,
    max: usize,
) -> Option<String> {
    let trimmed = value.trim();
    let chars = trimmed.chars().count();
    if chars < min {
        if min == 1 {
            violations.push(loc, "must not be empty");
        } else {
            violations.push(loc, format!("must be at least {min} characters"));
        }
        None
    } else if chars > max {
        violations.push(loc, format!("must be at most {max} characters"));
        None
    } else {
        Some(trimmed.to_owned())
    }
}
