//! Free text as the product accepts it: trimmed, within a length counted in characters, and
//! never holding a NUL (PostgreSQL cannot store one, and no client means one).

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextError {
    Empty,
    TooShort(usize),
    TooLong(usize),
    Nul,
}

impl fmt::Display for TextError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TextError::Empty => f.write_str("must not be empty"),
            TextError::TooShort(min) => write!(f, "must be at least {min} characters"),
            TextError::TooLong(max) => write!(f, "must be at most {max} characters"),
            TextError::Nul => f.write_str("must not contain NUL characters"),
        }
    }
}

/// `raw` trimmed, when its length lies within `min..=max` characters.
pub fn bounded(raw: &str, min: usize, max: usize) -> Result<String, TextError> {
    let trimmed = raw.trim();
    let chars = trimmed.chars().count();
    if trimmed.contains('\0') {
        Err(TextError::Nul)
    } else if chars < min {
        Err(if min == 1 {
            TextError::Empty
        } else {
            TextError::TooShort(min)
        })
    } else if chars > max {
        Err(TextError::TooLong(max))
    } else {
        Ok(trimmed.to_owned())
    }
}

/// Optional text: absent or blank is `None`, otherwise at most `max` characters.
pub fn optional(raw: Option<&str>, max: usize) -> Result<Option<String>, TextError> {
    match raw.map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => bounded(text, 0, max).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_trimmed_and_counted_in_characters() {
        assert_eq!(bounded("  é  ", 1, 1), Ok("é".to_owned()));
        assert_eq!(bounded("   ", 1, 5), Err(TextError::Empty));
        assert_eq!(bounded("abc", 4, 9), Err(TextError::TooShort(4)));
        assert_eq!(bounded("abcdef", 1, 5), Err(TextError::TooLong(5)));
        assert_eq!(bounded("a\0b", 1, 5), Err(TextError::Nul));
    }

    #[test]
    fn blank_optional_text_is_absent() {
        assert_eq!(optional(None, 3), Ok(None));
        assert_eq!(optional(Some("  "), 3), Ok(None));
        assert_eq!(optional(Some(" ab "), 3), Ok(Some("ab".to_owned())));
        assert_eq!(optional(Some("abcd"), 3), Err(TextError::TooLong(3)));
    }
}
