//! Which slice of a listing a client asks for.

use super::validation::Violations;

/// How deep any listing or search may page: `skip + limit` at most this. A page deeper down
/// costs as much as every row above it; a client that needs them narrows its query instead.
pub const MAX_DEPTH: i64 = 10_000;

/// `skip ≥ 0`, `1 ≤ limit ≤ max` and `skip + limit ≤` [`MAX_DEPTH`] of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    skip: i64,
    limit: i64,
}

/// The default and the largest page size of one listing.
#[derive(Debug, Clone, Copy)]
pub struct PageLimits {
    pub default: i64,
    pub max: i64,
}

impl PageRequest {
    /// Checks `skip` and `limit` (defaults: 0 and `limits.default`), recording failures at
    /// the `skip` and `limit` fields.
    pub fn parse(
        violations: &mut Violations,
        skip: Option<i64>,
        limit: Option<i64>,
        limits: PageLimits,
    ) -> Option<Self> {
        let skip = skip.unwrap_or(0);
        let limit = limit.unwrap_or(limits.default);
        let mut valid = true;
        if skip < 0 {
            violations.push(&["skip"], "must be greater than or equal to 0");
            valid = false;
        }
        if !(1..=limits.max).contains(&limit) {
            violations.push(&["limit"], format!("must be between 1 and {}", limits.max));
            valid = false;
        }
        if valid && skip.saturating_add(limit) > MAX_DEPTH {
            let message = format!("skip + limit must be at most {MAX_DEPTH}; narrow the query");
            violations.push(&["skip"], message);
            valid = false;
        }
        valid.then_some(Self { skip, limit })
    }

    pub fn skip(self) -> i64 {
        self.skip
    }

    pub fn limit(self) -> i64 {
        self.limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked_and_defaults_applied() {
        let limits = PageLimits {
            default: 20,
            max: 100,
        };
        let mut violations = Violations::new();
        let page = PageRequest::parse(&mut violations, None, None, limits).unwrap();
        assert_eq!((page.skip(), page.limit()), (0, 20));
        assert!(PageRequest::parse(&mut violations, Some(-1), Some(101), limits).is_none());
        assert_eq!(violations.iter().count(), 2);
        let deepest = PageRequest::parse(&mut violations, Some(MAX_DEPTH - 20), Some(20), limits);
        assert!(deepest.is_some());
        let beyond = PageRequest::parse(&mut violations, Some(MAX_DEPTH - 19), Some(20), limits);
        assert!(beyond.is_none());
        assert_eq!(violations.iter().count(), 3);
    }
}
