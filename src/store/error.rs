//! Why a store call failed, sorted by what the caller should do about it.

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unique constraint violated")]
    UniqueViolation,
    #[error("foreign key constraint violated")]
    ForeignKeyViolation,
    #[error("check constraint {0:?} violated")]
    CheckViolation(Option<String>),
    /// The database is away (or refuses work for now); the caller may retry later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Database(#[source] sqlx::Error),
    /// A keyed write found its `Idempotency-Key` taken over (its lease had passed): it was
    /// rolled back, and the request now holding the key answers it.
    #[error("the idempotency key is held by another request")]
    ClaimLost,
    /// The store sheds this write for now (its order queue is full); the caller may retry soon.
    #[error("the order queue is full")]
    Busy,
    /// A write that was to claim a new `Idempotency-Key` found it in use (or the user's quota
    /// reached): nothing was done; the key must be claimed the long way.
    #[error("the idempotency key is in use")]
    KeyInUse,
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error),
            sqlx::Error::Database(db) => {
                let sqlite = db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some();
                let code = db.code();
                if code.is_some_and(|code| means_unavailable(sqlite, &code)) {
                    return StoreError::Unavailable(error);
                }
                match db.kind() {
                    sqlx::error::ErrorKind::UniqueViolation => StoreError::UniqueViolation,
                    sqlx::error::ErrorKind::ForeignKeyViolation => StoreError::ForeignKeyViolation,
                    sqlx::error::ErrorKind::CheckViolation => {
                        StoreError::CheckViolation(constraint_name(db.as_ref()))
                    }
                    _ => StoreError::Database(error),
                }
            }
            _ => StoreError::Database(error),
        }
    }
}

impl StoreError {
    /// Whether `error` says a PostgreSQL connection itself is gone (not the pool, nor the
    /// request): a broken socket, SQLSTATE class 08 (connection) or 57P (operator intervention).
    pub fn connection_lost(error: &sqlx::Error) -> bool {
        match error {
            sqlx::Error::Io(_) => true,
            sqlx::Error::Database(db) => db
                .code()
                .is_some_and(|code| CONNECTION_LOST.iter().any(|class| code.starts_with(class))),
            _ => false,
        }
    }

    /// Whether the database undid the transaction to break a deadlock or a serialization
    /// conflict (PostgreSQL SQLSTATE class 40): the work may be done again at once.
    pub fn rolled_back_by_conflict(&self) -> bool {
        match self {
            StoreError::Unavailable(sqlx::Error::Database(db)) => {
                db.code().is_some_and(|code| code.starts_with("40"))
            }
            _ => false,
        }
    }

    /// Whether this is a violation of the named CHECK constraint (named alike on both backends).
    pub fn is_check(&self, constraint: &str) -> bool {
        matches!(self, StoreError::CheckViolation(Some(name)) if name == constraint)
    }
}

/// PostgreSQL SQLSTATE classes of a lost connection: 08 connection, 57P operator intervention
/// (shutdown, cannot connect now).
const CONNECTION_LOST: [&str; 2] = ["08", "57P"];

/// Whether a database error code says the database cannot do the work now (it is away, out
/// of space, or cannot write), rather than that the request was wrong.
fn means_unavailable(sqlite: bool, code: &str) -> bool {
    if sqlite {
        // Extended result codes, whose low byte is the primary one: READONLY 8, IOERR 10,
        // FULL 13, CANTOPEN 14.
        code.parse::<u32>()
            .is_ok_and(|code| matches!(code & 0xff, 8 | 10 | 13 | 14))
    } else {
        // SQLSTATE classes 08 connection, 40 transaction rollback (a deadlock or serialization
        // failure: the work is undone and may be retried), 53 insufficient resources (disk
        // full, out of memory), 57P operator intervention (shutdown, cannot connect now).
        CONNECTION_LOST
            .iter()
            .chain(&["40", "53"])
            .any(|class| code.starts_with(class))
    }
}

/// PostgreSQL names the constraint; SQLite only mentions it in the message.
fn constraint_name(db: &dyn sqlx::error::DatabaseError) -> Option<String> {
    db.constraint().map(str::to_owned).or_else(|| {
        db.message()
            .split_once("constraint failed: ")
            .map(|(_, name)| name.trim().to_owned())
    })
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error;
    use std::fmt;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A PostgreSQL error with SQLSTATE `code`, as sqlx reports one.
    #[derive(Debug)]
    struct Failed(&'static str);

    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl Error for Failed {}

    impl DatabaseError for Failed {
        fn message(&self) -> &str {
            "failed"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn from_code(code: &'static str) -> StoreError {
        StoreError::from(sqlx::Error::Database(Box::new(Failed(code))))
    }

    #[test]
    fn a_deadlock_or_serialization_failure_may_be_done_again_at_once() {
        for code in ["40P01", "40001"] {
            let error = from_code(code);
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{code}: {error:?}"
            );
            assert!(error.rolled_back_by_conflict(), "{code}");
        }
        // The database away, or out of room: waiting is the answer, not doing it again now.
        for code in ["08006", "53100", "57P01"] {
            let error = from_code(code);
            assert!(
                matches!(error, StoreError::Unavailable(_)),
                "{code}: {error:?}"
            );
            assert!(!error.rolled_back_by_conflict(), "{code}");
        }
        assert!(!StoreError::Unavailable(sqlx::Error::PoolTimedOut).rolled_back_by_conflict());
    }
}
