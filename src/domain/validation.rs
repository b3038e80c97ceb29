//! Broken rules of an input, collected so that one answer can list them all. A violation names
//! the offending value by its path inside the input (`["venue", "latitude"]`); where the input
//! came from (a body, a query) is the caller's business.

use std::fmt;

/// One step of the path to an offending value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSegment {
    Field(String),
    Index(usize),
}

impl From<&str> for PathSegment {
    fn from(field: &str) -> Self {
        PathSegment::Field(field.to_owned())
    }
}

impl From<usize> for PathSegment {
    fn from(index: usize) -> Self {
        PathSegment::Index(index)
    }
}

/// What kind of rule a value broke.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ViolationKind {
    /// Present but not acceptable (out of range, too long, malformed).
    Invalid,
    /// A required value is absent.
    Missing,
    /// Not a timestamp of the accepted form.
    DateTime,
    /// Not one of a closed set of words.
    Choice,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    pub path: Vec<PathSegment>,
    pub message: String,
    pub kind: ViolationKind,
}

/// Every broken rule of one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Violations(Vec<Violation>);

impl Violations {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn push(&mut self, path: &[&str], message: impl Into<String>) {
        self.push_kind(path, message, ViolationKind::Invalid);
    }

    /// Records a broken rule at a path that may hold list indexes (`items[1].quantity`).
    pub fn push_at(&mut self, path: Vec<PathSegment>, message: impl Into<String>) {
        self.0.push(Violation {
            path,
            message: message.into(),
            kind: ViolationKind::Invalid,
        });
    }

    pub fn push_kind(&mut self, path: &[&str], message: impl Into<String>, kind: ViolationKind) {
        self.0.push(Violation {
            path: path.iter().map(|field| PathSegment::from(*field)).collect(),
            message: message.into(),
            kind,
        });
    }

    /// The value of `result`, or `None` with its error recorded at `path`.
    pub fn check<T, E: fmt::Display>(&mut self, path: &[&str], result: Result<T, E>) -> Option<T> {
        result
            .map_err(|error| self.push(path, error.to_string()))
            .ok()
    }

    /// Takes over the violations of a nested value, under `prefix`.
    pub fn absorb(&mut self, prefix: &[&str], nested: Violations) {
        let prefix = prefix
            .iter()
            .map(|field| PathSegment::from(*field))
            .collect();
        self.absorb_at(prefix, nested);
    }

    /// Takes in the violations of a nested input found at `prefix` (say `tiers[2]`).
    pub fn absorb_at(&mut self, prefix: Vec<PathSegment>, nested: Violations) {
        for mut violation in nested.0 {
            let mut path = prefix.clone();
            path.append(&mut violation.path);
            violation.path = path;
            self.0.push(violation);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &Violation> {
        self.0.iter()
    }

    /// `Ok` with the value `build` makes when no rule failed (and it can make one).
    pub fn finish<T>(self, build: impl FnOnce() -> Option<T>) -> Result<T, Violations> {
        match build() {
            Some(value) if self.is_empty() => Ok(value),
            _ => Err(self),
        }
    }
}

impl From<Violation> for Violations {
    fn from(violation: Violation) -> Self {
        Violations(vec![violation])
    }
}

impl fmt::Display for Violations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rules: Vec<String> = self
            .0
            .iter()
            .map(|violation| {
                let path: Vec<String> = violation
                    .path
                    .iter()
                    .map(|segment| match segment {
                        PathSegment::Field(field) => field.clone(),
                        PathSegment::Index(index) => index.to_string(),
                    })
                    .collect();
                format!("{}: {}", path.join("."), violation.message)
            })
            .collect();
        f.write_str(&rules.join("; "))
    }
}

impl std::error::Error for Violations {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_violations_keep_their_path_under_the_prefix() {
        let mut venue = Violations::new();
        venue.push(&["latitude"], "must be between -90 and 90");
        let mut event = Violations::new();
        event.absorb(&["venue"], venue);
        let violation = event.iter().next().unwrap();
        assert_eq!(
            violation.path,
            vec![PathSegment::from("venue"), PathSegment::from("latitude")]
        );
        assert_eq!(
            event.to_string(),
            "venue.latitude: must be between -90 and 90"
        );
    }

    #[test]
    fn finish_needs_both_no_violation_and_a_value() {
        assert_eq!(Violations::new().finish(|| Some(1)), Ok(1));
        assert!(Violations::new().finish(|| None::<i32>).is_err());
        let mut broken = Violations::new();
        broken.push(&["x"], "bad");
        assert!(broken.finish(|| Some(1)).is_err());
    }
}
