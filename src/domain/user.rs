//! Accounts: validated registration input and the stored user.

use chrono::{DateTime, Utc};
use unicode_normalization::UnicodeNormalization;
use uuid::Uuid;

use super::geo::GeoPoint;
use super::text;
use super::validation::Violations;

pub const PASSWORD_MIN_CHARS: usize = 8;
pub const PASSWORD_MAX_CHARS: usize = 128;
pub const NAME_MAX_CHARS: usize = 255;
const EMAIL_MAX_CHARS: usize = 254;

/// A syntactically valid e-mail address, trimmed and lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Trims, applies Unicode NFKC (full-width `ａ` becomes `a`) and lower-cases before any
    /// rule, so one address has one spelling; a part that mixes ASCII letters with other
    /// letters (a Cyrillic `а` among Latin ones) is refused as a look-alike.
    pub fn parse(raw: &str) -> Result<Self, &'static str> {
        let email = raw.trim().nfkc().collect::<String>().to_lowercase();
        if email.is_empty() {
            return Err("must not be empty");
        }
        if email.chars().count() > EMAIL_MAX_CHARS {
            return Err("must be at most 254 characters");
        }
        let Some((local, domain)) = email.split_once('@') else {
            return Err("value is not a valid email address: it must contain an @-sign");
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
        if !local_ok {
            return Err(
                "value is not a valid email address: the part before the @-sign is invalid",
            );
        }
        let labels: Vec<&str> = domain.split('.').collect();
        let domain_ok = labels.len() >= 2
            && labels.iter().all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        if !domain_ok {
            return Err("value is not a valid email address: the part after the @-sign is invalid");
        }
        if mixes_scripts(local) || labels.iter().any(|label| mixes_scripts(label)) {
            return Err("value is not a valid email address: it mixes ASCII and other letters");
        }
        Ok(Self(email))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `part` has both ASCII letters and letters from outside ASCII.
fn mixes_scripts(part: &str) -> bool {
    let ascii = part.chars().any(|c| c.is_ascii_alphabetic());
    let other = part.chars().any(|c| c.is_alphabetic() && !c.is_ascii());
    ascii && other
}

/// A password within the length rules. Never printed: `Debug` hides it.
#[derive(Clone)]
pub struct Password(String);

impl Password {
    pub fn parse(raw: String) -> Result<Self, &'static str> {
        let chars = raw.chars().count();
        if chars < PASSWORD_MIN_CHARS {
            Err("must be at least 8 characters")
        } else if chars > PASSWORD_MAX_CHARS {
            Err("must be at most 128 characters")
        } else {
            Ok(Self(raw))
        }
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(***)")
    }
}

/// A stored account, as the rest of the service sees it (no credentials).
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    pub id: Uuid,
    pub name: String,
    pub email: String,
    pub location: Option<GeoPoint>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A registration as a client gives it, not yet checked.
#[derive(Debug, Clone)]
pub struct RegistrationFields {
    pub name: String,
    pub email: String,
    pub password: String,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// A registration with every rule checked.
#[derive(Debug)]
pub struct Registration {
    pub name: String,
    pub email: Email,
    pub password: Password,
    pub location: Option<GeoPoint>,
}

impl Registration {
    pub fn parse(fields: RegistrationFields) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let name = violations.check(&["name"], text::bounded(&fields.name, 1, NAME_MAX_CHARS));
        let email = violations.check(&["email"], Email::parse(&fields.email));
        let password = violations.check(&["password"], Password::parse(fields.password));
        let location = optional_location(&mut violations, fields.latitude, fields.longitude);
        violations.finish(|| {
            Some(Registration {
                name: name?,
                email: email?,
                password: password?,
                location: location?,
            })
        })
    }
}

/// Both coordinates or neither; `None` when the pair is invalid (the failure is recorded).
fn optional_location(
    violations: &mut Violations,
    latitude: Option<f64>,
    longitude: Option<f64>,
) -> Option<Option<GeoPoint>> {
    const TOGETHER: &str = "latitude and longitude must be given together";
    match (latitude, longitude) {
        (None, None) => Some(None),
        (Some(_), None) => {
            violations.push(&["longitude"], TOGETHER);
            None
        }
        (None, Some(_)) => {
            violations.push(&["latitude"], TOGETHER);
            None
        }
        (Some(latitude), Some(longitude)) => {
            GeoPoint::parse(violations, &[], latitude, longitude).map(Some)
        }
    }
}

/// What a login presents: a well-formed e-mail (normalised as on registration) and a password.
#[derive(Debug)]
pub struct Credentials {
    pub email: Email,
    pub password: String,
}

impl Credentials {
    pub fn parse(email: &str, password: String) -> Result<Self, Violations> {
        let mut violations = Violations::new();
        let email = violations.check(&["email"], Email::parse(email));
        violations.finish(|| {
            Some(Credentials {
                email: email?,
                password,
            })
        })
    }
}

/// A new account ready to be stored: every field already validated, the password hashed.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub id: Uuid,
    pub name: String,
    pub email: Email,
    pub password_hash: String,
    pub location: Option<GeoPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_is_trimmed_and_lower_cased() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
    }

    #[test]
    fn email_spellings_of_one_address_are_one_email() {
        let plain = Email::parse("admin@example.com").unwrap();
        assert_eq!(Email::parse("ａｄｍｉｎ@example.com").unwrap(), plain);
        assert_eq!(Email::parse(" ADMIN@Example.COM").unwrap(), plain);
        assert!(
            Email::parse("\u{430}dmin@example.com").is_err(),
            "Cyrillic а among Latin"
        );
        assert!(Email::parse("admin@ex\u{430}mple.com").is_err());
        assert!(
            Email::parse("почта@пример.рф").is_ok(),
            "one script is fine"
        );
        assert!(Email::parse("ad\0min@example.com").is_err());
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in [
            "",
            "plainaddress",
            "@example.com",
            "ada@",
            "ada@example",
            "ada@@example.com",
            "ada@exa mple.com",
            "ada..b@example.com",
            "ada@-example.com",
            "ada@example..com",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn password_length_is_counted_in_characters() {
        assert!(Password::parse("short".into()).is_err());
        assert!(Password::parse("ééééééé".into()).is_err());
        assert!(Password::parse("éééééééé".into()).is_ok());
        assert!(Password::parse("x".repeat(129)).is_err());
        assert!(Password::parse("x".repeat(128)).is_ok());
    }

    #[test]
    fn registration_needs_both_coordinates_or_neither() {
        let fields = |latitude, longitude| RegistrationFields {
            name: "Ada".into(),
            email: "ada@example.com".into(),
            password: "long enough".into(),
            latitude,
            longitude,
        };
        assert!(Registration::parse(fields(None, None)).is_ok());
        assert!(Registration::parse(fields(Some(1.0), Some(2.0))).is_ok());
        let errors = Registration::parse(fields(Some(1.0), None)).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "longitude: latitude and longitude must be given together"
        );
        let errors = Registration::parse(fields(Some(95.0), Some(200.0))).unwrap_err();
        assert_eq!(errors.iter().count(), 2);
    }

    #[test]
    fn password_debug_hides_the_secret() {
        let password = Password::parse("hunter22hunter22".into()).unwrap();
        assert!(!format!("{password:?}").contains("hunter"));
    }
}
