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
        Some(database) => {
            let path = beside(database, "jwt-secret");
            let secret = load_or_create(&path, "the token secret", || {
                let mut bytes = [0u8; 32];
                OsRng.fill_bytes(&mut bytes);
                bytes.iter().map(|byte| format!("{byte:02x}")).collect()
            })?;
            anyhow::ensure!(
                secret.len() >= MIN_SECRET_BYTES,
                "the token secret in {} is too short; delete the file to generate a new one",
                path.display()
            );
            Ok(SecretString::from(secret))
        }
        None => anyhow::bail!(
            "JWT_SECRET_KEY is required with PostgreSQL: set it to at least {MIN_SECRET_BYTES} \
             random bytes (for example: openssl rand -hex 32), the same in every process"
        ),
    }
}

/// The file beside `database` named for `what`: `nearbytix.db` keeps its token secret in
/// `nearbytix.db.jwt-secret`.
pub(crate) fn beside(database: &Path, what: &str) -> PathBuf {
    let mut name = database.file_name().unwrap_or_default().to_os_string();
    name.push(".");
    name.push(what);
    database.with_file_name(name)
}

/// The text of the secret file at `path` (trimmed), made once with `generate` when there is
/// none, readable by the owner only (0600). Processes racing to make it all end up reading
/// the one that was written first.
pub(crate) fn load_or_create(
    path: &Path,
    what: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    match options.open(path) {
        Ok(mut file) => {
            let secret = generate();
            file.write_all(secret.as_bytes())
                .and_then(|()| file.sync_all())
                .with_context(|| format!("writing {what} to {}", path.display()))?;
            tracing::info!(path = %path.display(), "generated {what}");
            Ok(secret)
        }
        // Another process created it first (or an earlier run did): use theirs.
        Err(error) if error.kind() == ErrorKind::AlreadyExists => {
            let mut secret = String::new();
            std::fs::File::open(path)
                .and_then(|mut file| file.read_to_string(&mut secret))
                .with_context(|| format!("reading {what} from {}", path.display()))?;
            Ok(secret.trim().to_owned())
        }
        Err(error) => Err(error).with_context(|| format!("creating {what} {}", path.display())),
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
