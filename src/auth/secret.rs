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
/// none, readable by the owner only (0600). It is written whole under a name of its own and
/// then linked into place, which fails if another process linked theirs first: processes
/// racing to make it all read the one that won, and nobody reads a half-written file.
pub(crate) fn load_or_create(
    path: &Path,
    what: &str,
    generate: impl FnOnce() -> String,
) -> anyhow::Result<String> {
    if let Some(secret) = read_existing(path, what)? {
        return Ok(secret);
    }
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}.tmp", uuid::Uuid::new_v4().simple()));
    let temporary = path.with_file_name(name);
    let secret = generate();
    let written = write_private(&temporary, &secret);
    let linked = written.and_then(|()| std::fs::hard_link(&temporary, path));
    let _ = std::fs::remove_file(&temporary);
    match linked {
        Ok(()) => {
            // The new name survives a crash only once its directory is on disk.
            if let Some(directory) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
                std::fs::File::open(directory).and_then(|dir| dir.sync_all())?;
            }
            tracing::info!(path = %path.display(), "generated {what}");
            Ok(secret)
        }
        Err(error) if error.kind() == ErrorKind::AlreadyExists => read_existing(path, what)?
            .ok_or_else(|| anyhow::anyhow!("{} vanished while it was made", path.display())),
        Err(error) => Err(error).with_context(|| format!("creating {what} {}", path.display())),
    }
}

/// The trimmed text of `path`, if there is such a file. One others may read is used, with a
/// warning: it holds a secret.
fn read_existing(path: &Path, what: &str) -> anyhow::Result<Option<String>> {
    let mut file = match std::fs::File::open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(None),
        Err(error) => {
            return Err(error).with_context(|| format!("reading {what} from {}", path.display()));
        }
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = file.metadata()?.permissions().mode();
        if mode & 0o077 != 0 {
            tracing::warn!(path = %path.display(), mode = format!("{:o}", mode & 0o777),
                "{what} is readable by others; chmod 600 it");
        }
    }
    let mut secret = String::new();
    file.read_to_string(&mut secret)
        .with_context(|| format!("reading {what} from {}", path.display()))?;
    Ok(Some(secret.trim().to_owned()))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
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
    fn processes_racing_to_make_the_file_all_read_the_one_that_won() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tix.db.secret");
        let made: Vec<String> = std::thread::scope(|scope| {
            let racers: Vec<_> = (0..16)
                .map(|racer| {
                    let path = &path;
                    scope.spawn(move || {
                        load_or_create(path, "a test secret", || format!("secret-{racer}")).unwrap()
                    })
                })
                .collect();
            racers
                .into_iter()
                .map(|racer| racer.join().unwrap())
                .collect()
        });
        assert!(made.iter().all(|secret| *secret == made[0]), "{made:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), made[0]);
        let files = std::fs::read_dir(dir.path()).unwrap().count();
        assert_eq!(files, 1, "no temporary file is left");
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
