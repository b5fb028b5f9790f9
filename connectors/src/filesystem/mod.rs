//! The `filesystem` connector: JSON lines, CSV and Parquet files (see
//! [`FilesystemOptions`] for the options).
//!
//! ```sql
//! CREATE TABLE bids (auction BIGINT, price BIGINT, dateTime TIMESTAMP(3))
//! WITH ('connector' = 'filesystem', 'path' = 'data/bids', 'format' = 'json');
//! ```
//!
//! **Source** (bounded): each file is a split; file `i` (in name order) is
//! read by subtask `i % parallelism`. Records are decoded for the declared
//! columns (see [`crate::format`]); a malformed record is counted, logged
//! with its `file:line` and skipped, or fails the job with
//! `'format.on-error' = 'fail'`. A split's position is the byte offset of
//! its next record (rows read for Parquet). The source ends at the end of
//! its files.
//!
//! **Sink**: `'path'` is a directory (created when missing); subtask `s`
//! writes `part-<s>.jsonl`, `part-<s>.csv` or `part-<s>.parquet`, replacing
//! an existing file (subtask 0 also removes `part-<k>` files of an earlier
//! run with more subtasks). JSON lines: one object per row, timestamps as
//! `2026-01-01 00:00:10.000`, NULL as `null`, decimals as numbers. CSV: no
//! header (unless `'csv.ignore-first-line' = 'true'`), NULL as an empty
//! field. Parquet: Snappy-compressed, columns as declared (values cast to
//! the declared types). Data is flushed on every checkpoint barrier and
//! flushed, finalized and synced by `finish`. One file per subtask: the
//! `'sink.rolling-policy.*'` options are accepted and ignored.

pub mod options;
pub mod sink;
pub mod source;

use std::sync::Arc;

use weir_engine::sink::SinkFactory;
use weir_engine::source::SourceFactory;
use weir_engine::Result;

pub use options::{FileFormat, FilesystemOptions};
pub use sink::FileSinkFactory;
pub use source::FileSourceFactory;

use crate::{Connector, TableDescriptor};

/// The `filesystem` connector (source and sink).
#[derive(Debug, Clone, Copy, Default)]
pub struct FilesystemConnector;

impl FilesystemConnector {
    /// The typed source factory for `table`.
    pub fn source_factory(table: &TableDescriptor) -> Result<FileSourceFactory> {
        FileSourceFactory::new(table, FilesystemOptions::parse(table)?)
    }

    /// The typed sink factory for `table`.
    pub fn sink_factory(table: &TableDescriptor) -> Result<FileSinkFactory> {
        FileSinkFactory::new(table, FilesystemOptions::parse(table)?)
    }
}

impl Connector for FilesystemConnector {
    fn name(&self) -> &str {
        "filesystem"
    }

    fn source(&self, table: &TableDescriptor) -> Result<Arc<dyn SourceFactory>> {
        Ok(Arc::new(Self::source_factory(table)?))
    }

    fn sink(&self, table: &TableDescriptor) -> Result<Arc<dyn SinkFactory>> {
        Ok(Arc::new(Self::sink_factory(table)?))
    }
}
