//! Access tokens: JWT signed with HS256, claims `sub` (user id), `iat`, `exp`.

use chrono::Utc;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub const MIN_SECRET_BYTES: usize = 32;

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

pub struct TokenKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    lifetime_seconds: i64,
}

#[derive(Debug, Clone)]
pub struct IssuedToken {
    pub access_token: String,
    pub expires_in: i64,
}

impl TokenKeys {
    pub fn new(secret: &SecretString, lifetime_minutes: u32) -> anyhow::Result<Self> {
        let bytes = secret.expose_secret().as_bytes();
        anyhow::ensure!(
            bytes.len() >= MIN_SECRET_BYTES,
            "JWT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes long"
        );
        // Only HS256 is accepted: `alg: none` and other algorithms fail validation.
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_required_spec_claims(&["exp", "iat", "sub"]);
        validation.leeway = 5;
        Ok(Self {
            encoding: EncodingKey::from_secret(bytes),
            decoding: DecodingKey::from_secret(bytes),
            validation,
            lifetime_seconds: i64::from(lifetime_minutes) * 60,
        })
    }

    pub fn issue(&self, user_id: Uuid) -> anyhow::Result<IssuedToken> {
        let now = Utc::now().timestamp();
        let claims = Claims {
            sub: user_id.to_string(),
            iat: now,
            exp: now + self.lifetime_seconds,
        };
        let access_token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)?;
        Ok(IssuedToken {
            access_token,
            expires_in: self.lifetime_seconds,
        })
    }

    /// The user id of a valid, unexpired token; `None` for anything else.
    pub fn verify(&self, token: &str) -> Option<Uuid> {
        let data = jsonwebtoken::decode::<Claims>(token, &self.decoding, &self.validation).ok()?;
        Uuid::parse_str(&data.claims.sub).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys() -> TokenKeys {
        TokenKeys::new(&SecretString::from("k".repeat(32)), 30).unwrap()
    }

    #[test]
    fn issued_tokens_verify() {
        let user = Uuid::new_v4();
        let token = keys().issue(user).unwrap();
        assert_eq!(token.expires_in, 1800);
        assert_eq!(keys().verify(&token.access_token), Some(user));
    }

    #[test]
    fn short_secrets_are_refused() {
        assert!(TokenKeys::new(&SecretString::from("short".to_owned()), 30).is_err());
    }

    #[test]
    fn other_keys_and_tampering_fail() {
        let token = keys().issue(Uuid::new_v4()).unwrap().access_token;
        let other = TokenKeys::new(&SecretString::from("x".repeat(32)), 30).unwrap();
        assert_eq!(other.verify(&token), None);
        let mut tampered = token.clone();
        tampered.pop();
        tampered.push(if token.ends_with('A') { 'B' } else { 'A' });
        assert_eq!(keys().verify(&tampered), None);
    }

    #[test]
    fn expired_tokens_fail() {
        let keys = keys();
        let claims = Claims {
            sub: Uuid::new_v4().to_string(),
            iat: Utc::now().timestamp() - 7200,
            exp: Utc::now().timestamp() - 3600,
        };
        let token =
            jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &keys.encoding).unwrap();
        assert_eq!(keys.verify(&token), None);
    }
}
