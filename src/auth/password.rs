//! Argon2id password hashing, run on the blocking pool so it never stalls the async executor.

use std::sync::OnceLock;

use anyhow::Context;
use argon2::Argon2;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};

use crate::domain::Password;

/// Hashes with Argon2id and the crate's defaults (19 MiB, 2 passes: the OWASP baseline).
pub async fn hash_password(password: Password) -> anyhow::Result<String> {
    tokio::task::spawn_blocking(move || hash_blocking(password.expose()))
        .await
        .context("password hashing task failed")?
}

fn hash_blocking(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|error| anyhow::anyhow!("hashing password: {error}"))
}

/// Checks `password` against `stored_hash`; with no stored hash (unknown account) it checks a
/// dummy hash instead, so both answers take about the same time.
pub async fn verify_password(
    password: String,
    stored_hash: Option<String>,
) -> anyhow::Result<bool> {
    tokio::task::spawn_blocking(move || {
        let hash = match &stored_hash {
            Some(hash) => hash.as_str(),
            None => dummy_hash(),
        };
        let parsed = PasswordHash::new(hash)
            .map_err(|error| anyhow::anyhow!("stored password hash is malformed: {error}"))?;
        let matches = Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok();
        Ok(matches && stored_hash.is_some())
    })
    .await
    .context("password verification task failed")?
}

fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        hash_blocking("a password nobody has, used to even out login timing")
            .expect("hashing a constant password cannot fail")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn hashes_verify_and_are_argon2id() {
        let password = Password::parse("correct horse battery".into()).unwrap();
        let hash = hash_password(password).await.unwrap();
        assert!(hash.starts_with("$argon2id$"));
        assert!(
            verify_password("correct horse battery".into(), Some(hash.clone()))
                .await
                .unwrap()
        );
        assert!(
            !verify_password("wrong horse battery".into(), Some(hash))
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn unknown_account_never_verifies() {
        let attempt = "a password nobody has, used to even out login timing".to_owned();
        assert!(!verify_password(attempt, None).await.unwrap());
    }
}
