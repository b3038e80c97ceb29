//! Where the token signing secret comes from.

use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::Context;
use argon2::password_hash::rand_core::{OsRng, RngCore};
use secrecy::{ExposeSecret, SecretString};

use super::jwt::MIN_SECRET_BYTES;

/// `JWT_SECRET_KEY` when set. Otherwise PostgreSQL refuses to start (several processes must
/// share one secret), and SQLite uses a secret generated once and kept beside the database
/// file, so tokens survive restarts.
pub fn resolve_jwt_secret(
    configured: Option<&SecretString>,
    database_file: Option<&Path>,
) -> anyhow::Result<SecretString> {
    if let Some(secret) = configured {
        anyhow::ensure!(
            secret.expose_secret().len() >= MIN_SECRET_BYTES,
            "JWT_SECRET_KEY must be at least {MIN_SECRET_BYTES} bytes long \
             (for example: openssl rand -hex 32)"
        );
        return Ok(secret.clone());
    }
    match database_file {
        Some(database) => load_or_create(&secret_path(database)),
        None => anyhow::bail!(
            "JWT_SECRET_KEY is required with PostgreSQL: set it to at least {MIN_SECRET_BYTES} \
             random bytes (for example: openssl rand -hex 32), the same in every process"
        ),
    }
}

/// `nearbytix.db` keeps its secret in `nearbytix.db.jwt-secret`.
fn secret_path(database: &Path) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".jwt-secret");
    database.with_file_name(name)
}

fn load_or_create(path: &Path) -> anyhow::Result<SecretString> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let mut bytes = [0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            let secret: String = bytes.iter().map(|byte| format!("{byte:02x}")).collect();
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing the token secret to {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated a new token signing secret");
            Ok(SecretString::from(secret))
        }
        // Another process created it first (or an earlier run did): use theirs.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let mut secret = String::new();
            std::fs::File::open(path)
                .and_then(|mut file| file.read_to_string(&mut secret))
                .with_context(|| format!("reading the token secret from {}", path.display()))?;
            let secret = secret.trim().to_owned();
            anyhow::ensure!(
                secret.len() >= MIN_SECRET_BYTES,
                "the token secret in {} is too short; delete the file to generate a new one",
                path.display()
            );
            Ok(SecretString::from(secret))
        }
        Err(error) => {
            Err(error).with_context(|| format!("creating the token secret {}", path.display()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_secret_is_generated_once_and_private() {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("tix.db");
        let first = resolve_jwt_secret(None, Some(&database)).unwrap();
        let second = resolve_jwt_secret(None, Some(&database)).unwrap();
        assert_eq!(first.expose_secret(), second.expose_secret());
        assert_eq!(first.expose_secret().len(), 64);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join("tix.db.jwt-secret"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn postgres_requires_a_long_enough_secret() {
        assert!(resolve_jwt_secret(None, None).is_err());
        let short = SecretString::from("too short".to_owned());
        assert!(resolve_jwt_secret(Some(&short), None).is_err());
        let long = SecretString::from("s".repeat(32));
        assert!(resolve_jwt_secret(Some(&long), None).is_ok());
    }
}
