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
