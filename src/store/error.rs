//! Storage failures. The daemon treats any of them as "not durable".

use std::path::PathBuf;

use super::row::RowError;

/// Why the store could not open, read or commit.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot open database {path}: {source}")]
    Open {
        path: PathBuf,
        source: Box<redb::DatabaseError>,
    },
    /// redb's own error, boxed: it is large, and errors are the rare path.
    #[error("database: {0}")]
    Db(#[source] Box<redb::Error>),
    #[error("a thread restoring the live state panicked")]
    RestorePanicked,
    #[error("database file {path} is empty (0 bytes): refusing to start over it as a new, empty database; restore it from a backup, or move it away to start afresh")]
    Empty { path: PathBuf },
    #[error("database file is damaged at {path}: {message}; check it with `incidentd db check`, restore it from a backup, or move it away to start afresh")]
    Damaged { path: PathBuf, message: String },
    #[error("cannot upgrade database {path} written by an earlier release: {message}")]
    Upgrade { path: PathBuf, message: String },
    #[error("{path} was written by a release before redb 4 (file format v{version}); `incidentd serve` upgrades it in place on start, keeping a copy")]
    NeedsUpgrade { path: PathBuf, version: u8 },
    #[error("no database at {path}")]
    Missing { path: PathBuf },
    #[error("backup to {path}: {message}")]
    BackupTarget { path: PathBuf, message: String },
    #[error("the database is being reopened after a failed write; retry shortly")]
    Unavailable,
    #[error("the database cannot commit ({reason}); it is being reopened, retry shortly")]
    Failing { reason: String },
    #[error("the database is still in use by readers; it was not reopened")]
    Busy,
    #[error("corrupt record in table {table}: {source}")]
    Corrupt {
        table: &'static str,
        source: RowError,
    },
}

macro_rules! db_err {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Db(Box::new(e.into()))
            }
        }
    )*};
}
db_err!(
    redb::Error,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);
