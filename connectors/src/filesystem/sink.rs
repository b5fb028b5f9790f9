//! The filesystem sink: subtask `s` writes `<path>/part-<s>.<ext>`
//! (replacing what was there), on tokio's blocking pool.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, UInt64Array};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use weir_engine::sink::{Sink, SinkFactory, SinkRecovery};
use weir_engine::state::OperatorState;
use weir_engine::{Result, WeirError};

use super::options::{FileFormat, FilesystemOptions};
use crate::format::encode::{CsvEncoder, JsonEncoder};
use crate::TableDescriptor;

/// Creates filesystem sink subtasks for one table.
pub struct FileSinkFactory {
    options: Arc<FilesystemOptions>,
    schema: SchemaRef,
}

impl FileSinkFactory {
    pub(crate) fn new(table: &TableDescriptor, options: FilesystemOptions) -> Result<Self> {
        if options.path.is_file() {
            return Err(WeirError::Config(format!(
                "table {}: 'path' = '{}' is a file; a filesystem sink writes into a directory",
                table.name,
                options.path.display()
            )));
        }
        Ok(Self {
            options: Arc::new(options),
            schema: table.schema.clone(),
        })
    }

    /// The file subtask `subtask` writes.
    pub fn part_path(&self, subtask: usize) -> PathBuf {
        part_path(&self.options.path, subtask, self.options.format)
    }
}

fn part_path(dir: &Path, subtask: usize, format: FileFormat) -> PathBuf {
    dir.join(format!("part-{subtask}.{}", format.extension()))
}

impl SinkFactory for FileSinkFactory {
    fn create(&self, subtask: usize, parallelism: usize) -> Result<Box<dyn Sink>> {
        let dir = &self.options.path;
        std::fs::create_dir_all(dir)
            .map_err(|e| WeirError::io(format!("creating directory {}", dir.display()), e))?;
        if subtask == 0 {
            remove_stale_parts(dir, parallelism, self.options.format)?;
        }
        let path = self.part_path(subtask);
        let name = path.display().to_string();
        let state = self.open_writer(&path)?;
        Ok(Box::new(FileSink {
            name,
            writer: Some(state),
            txn: None,
        }))
    }

    fn describe(&self) -> String {
        format!(
            "filesystem {} {}/part-<subtask>.{}",
            self.options.format.name(),
            self.options.path.display(),
            self.options.format.extension()
        )
    }

    fn create_checkpointed(
        &self,
        subtask: usize,
        _parallelism: usize,
        recovery: Option<SinkRecovery>,
    ) -> Result<Box<dyn Sink>> {
        let dir = &self.options.path;
        std::fs::create_dir_all(dir)
            .map_err(|e| WeirError::io(format!("creating directory {}", dir.display()), e))?;
        let ext = self.options.format.extension();
        let mut txn = Transaction {
            dir: dir.clone(),
            subtask,
            ext,
            epoch: 1,
            pending: Vec::new(),
        };
        match recovery {
            Some(r) => {
                // Publish what the restored checkpoint pre-committed (the
                // crash may have come between its manifest and the renames).
                if let Some(t) = r.state.get(PENDING_TABLE) {
                    txn.pending = decode_pending(t)?;
                }
                txn.commit(u64::MAX)?;
                txn.epoch = r.checkpoint_id + 1;
            }
            None => {
                // A fresh start replaces earlier output, as without checkpoints.
                if subtask == 0 {
                    remove_stale_parts(dir, 0, self.options.format)?;
                }
                txn.remove_files(true)?;
            }
        }
        // Whatever is still in progress came after the restored checkpoint.
        txn.remove_files(false)?;
        Ok(Box::new(FileSink {
            name: format!("{}/part-{subtask}-*.{ext}", dir.display()),
            writer: None,
            txn: Some(TxnSink {
                txn,
                factory: FileSinkFactory {
                    options: self.options.clone(),
                    schema: self.schema.clone(),
                },
            }),
        }))
    }

    fn exactly_once(&self) -> bool {
        true
    }
}

/// The name of the sink state table listing pre-committed files.
const PENDING_TABLE: &str = "pending";

fn decode_pending(t: &RecordBatch) -> Result<Vec<(u64, u64)>> {
    let col = |i: usize| {
        t.column(i)
            .as_any()
            .downcast_ref::<UInt64Array>()
            .ok_or_else(|| WeirError::State("filesystem sink state: bad 'pending' table".into()))
    };
    let (e, c) = (col(0)?, col(1)?);
    Ok(e.values()
        .iter()
        .copied()
        .zip(c.values().iter().copied())
        .collect())
}

/// The two-phase commit bookkeeping of one sink subtask with checkpoints.
///
/// Rows between two checkpoints go to one file per subtask and *epoch*:
/// written as `.part-<s>-<epoch>.<ext>.inprogress`, closed and synced at
/// the next barrier (pre-commit), and renamed to `part-<s>-<epoch>.<ext>`
/// once that checkpoint is complete (commit).
#[derive(Debug)]
struct Transaction {
    dir: PathBuf,
    subtask: usize,
    ext: &'static str,
    /// The epoch of the file being written.
    epoch: u64,
    /// Pre-committed files: (epoch, checkpoint that closed it).
    pending: Vec<(u64, u64)>,
}

impl Transaction {
    fn in_progress(&self, epoch: u64) -> PathBuf {
        self.dir.join(format!(
            ".part-{}-{epoch:010}.{}.inprogress",
            self.subtask, self.ext
        ))
    }

    fn committed(&self, epoch: u64) -> PathBuf {
        self.dir
            .join(format!("part-{}-{epoch:010}.{}", self.subtask, self.ext))
    }

    /// Publishes pre-committed files closed by checkpoints up to `upto`.
    fn commit(&mut self, upto: u64) -> Result<()> {
        let mut any = false;
        let mut keep = Vec::new();
        for &(epoch, closed) in &self.pending {
            if closed > upto {
                keep.push((epoch, closed));
                continue;
            }
            let from = self.in_progress(epoch);
            if from.exists() {
                std::fs::rename(&from, self.committed(epoch))
                    .map_err(|e| WeirError::io(format!("publishing {}", from.display()), e))?;
                any = true;
            }
        }
        self.pending = keep;
        if any {
            if let Ok(d) = File::open(&self.dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }

    /// Removes this subtask's in-progress files not pending, and with
    /// `committed` also its published files.
    fn remove_files(&self, committed: bool) -> Result<()> {
        let entries = std::fs::read_dir(&self.dir)
            .map_err(|e| WeirError::io(format!("listing {}", self.dir.display()), e))?;
        let hidden = format!(".part-{}-", self.subtask);
        let shown = format!("part-{}-", self.subtask);
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = if let Some(rest) = name.strip_prefix(&hidden) {
                let epoch = rest.split('.').next().and_then(|n| n.parse::<u64>().ok());
                epoch.is_some_and(|e| !self.pending.iter().any(|(p, _)| *p == e))
            } else {
                committed && name.starts_with(&shown)
            };
            if stale {
                std::fs::remove_file(entry.path()).map_err(|e| {
                    WeirError::io(format!("removing {}", entry.path().display()), e)
                })?;
            }
        }
        Ok(())
    }

    fn state(&self) -> Result<OperatorState> {
        let mut state = OperatorState::empty();
        if self.pending.is_empty() {
            return Ok(state);
        }
        let schema = Arc::new(Schema::new(vec![
            Field::new("epoch", DataType::UInt64, false),
            Field::new("closed_at", DataType::UInt64, false),
        ]));
        let batch = RecordBatch::try_new(
            schema,
            vec![
                Arc::new(UInt64Array::from_iter_values(
                    self.pending.iter().map(|p| p.0),
                )),
                Arc::new(UInt64Array::from_iter_values(
                    self.pending.iter().map(|p| p.1),
                )),
            ],
        )?;
        state.put(PENDING_TABLE, batch)?;
        Ok(state)
    }
}

/// The exactly-once part of a sink subtask.
struct TxnSink {
    txn: Transaction,
    factory: FileSinkFactory,
}

impl FileSinkFactory {
    /// Opens a writer on a new file at `path`.
    fn open_writer(&self, path: &Path) -> Result<Writer> {
        let name = path.display().to_string();
        let file = File::create(path).map_err(|e| WeirError::io(format!("creating {name}"), e))?;
        let state = match self.options.format {
            FileFormat::Json => Writer::Text {
                out: BufWriter::with_capacity(1 << 16, file),
                buf: Vec::new(),
                encoder: TextEncoder::Json(JsonEncoder::new(&self.schema, &self.options.json)),
            },
            FileFormat::Csv => {
                let encoder = CsvEncoder::new(&self.options.csv);
                let mut buf = Vec::new();
                if self.options.csv.ignore_first_line {
                    encoder.encode_header(&self.schema, &mut buf);
                }
                Writer::Text {
                    out: BufWriter::with_capacity(1 << 16, file),
                    buf,
                    encoder: TextEncoder::Csv(encoder),
                }
            }
            FileFormat::Parquet => {
                let props = WriterProperties::builder()
                    .set_compression(Compression::SNAPPY)
                    .build();
                let writer = ArrowWriter::try_new(file, self.schema.clone(), Some(props))
                    .map_err(|e| WeirError::Sink(format!("{name}: {e}")))?;
                Writer::Parquet {
                    writer: Box::new(writer),
                    schema: self.schema.clone(),
                }
            }
        };
        Ok(state)
    }
}

/// Removes `part-<k>.<ext>` files left by an earlier run with more subtasks.
fn remove_stale_parts(dir: &Path, parallelism: usize, format: FileFormat) -> Result<()> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| WeirError::io(format!("listing {}", dir.display()), e))?;
    let suffix = format!(".{}", format.extension());
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        let index = name
            .strip_prefix("part-")
            .and_then(|r| r.strip_suffix(&suffix))
            .and_then(|n| n.parse::<usize>().ok());
        if index.is_some_and(|k| k >= parallelism) {
            std::fs::remove_file(entry.path())
                .map_err(|e| WeirError::io(format!("removing {}", entry.path().display()), e))?;
        }
    }
    Ok(())
}

enum TextEncoder {
    Json(JsonEncoder),
    Csv(CsvEncoder),
}

enum Writer {
    Text {
        out: BufWriter<File>,
        /// Encoded bytes not yet handed to `out`.
        buf: Vec<u8>,
        encoder: TextEncoder,
    },
    Parquet {
        writer: Box<ArrowWriter<File>>,
        schema: SchemaRef,
    },
}

impl Writer {
    fn write(&mut self, batch: &RecordBatch, name: &str) -> Result<()> {
        match self {
            Writer::Text { out, buf, encoder } => {
                match encoder {
                    TextEncoder::Json(e) => e.encode(batch, buf)?,
                    TextEncoder::Csv(e) => e.encode(batch, buf)?,
                }
                out.write_all(buf)
                    .map_err(|e| WeirError::io(format!("writing {name}"), e))?;
                buf.clear();
            }
            Writer::Parquet { writer, schema } => {
                let batch =
                    conform(batch, schema).map_err(|m| WeirError::Sink(format!("{name}: {m}")))?;
                writer
                    .write(&batch)
                    .map_err(|e| WeirError::Sink(format!("{name}: {e}")))?;
            }
        }
        Ok(())
    }

    fn flush(&mut self, name: &str) -> Result<()> {
        match self {
            Writer::Text { out, buf, .. } => {
                out.write_all(buf)
                    .and_then(|_| out.flush())
                    .map_err(|e| WeirError::io(format!("writing {name}"), e))?;
                buf.clear();
            }
            Writer::Parquet { writer, .. } => {
                writer
                    .flush()
                    .map_err(|e| WeirError::Sink(format!("{name}: {e}")))?;
            }
        }
        Ok(())
    }

    fn close(&mut self, name: &str) -> Result<()> {
        self.flush(name)?;
        let file = match self {
            Writer::Text { out, .. } => out.get_ref(),
            Writer::Parquet { writer, .. } => {
                writer
                    .finish()
                    .map_err(|e| WeirError::Sink(format!("{name}: {e}")))?;
                writer.inner()
            }
        };
        file.sync_all()
            .map_err(|e| WeirError::io(format!("syncing {name}"), e))
    }
}

/// The batch with the declared schema: columns cast to the declared types
/// where they differ.
fn conform(batch: &RecordBatch, schema: &Schema) -> std::result::Result<RecordBatch, String> {
    if batch.num_columns() != schema.fields().len() {
        return Err(format!(
            "the table declares {} columns but the query produces {}",
            schema.fields().len(),
            batch.num_columns()
        ));
    }
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (col, field) in batch.columns().iter().zip(schema.fields()) {
        if col.data_type() == field.data_type() {
            columns.push(col.clone());
        } else {
            columns.push(arrow::compute::cast(col, field.data_type()).map_err(|e| {
                format!(
                    "column '{}' ({}) cannot be written as {}: {e}",
                    field.name(),
                    col.data_type(),
                    field.data_type()
                )
            })?);
        }
    }
    let opts = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    RecordBatch::try_new_with_options(Arc::new(schema.clone()), columns, &opts)
        .map_err(|e| e.to_string())
}

/// One subtask of a filesystem sink.
struct FileSink {
    name: String,
    /// `None` while a blocking task holds it, or after a failure (with
    /// checkpoints: also while no file of the current epoch is open).
    writer: Option<Writer>,
    /// Two-phase commit state, with checkpoints.
    txn: Option<TxnSink>,
}

impl FileSink {
    async fn blocking<F>(&mut self, f: F) -> Result<()>
    where
        F: FnOnce(&mut Writer, &str) -> Result<()> + Send + 'static,
    {
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| WeirError::Sink(format!("{}: the sink is closed", self.name)))?;
        let name = self.name.clone();
        let (writer, result) = tokio::task::spawn_blocking(move || {
            let r = f(&mut writer, &name);
            (writer, r)
        })
        .await
        .map_err(|e| WeirError::Internal(format!("file writer task failed: {e}")))?;
        self.writer = Some(writer);
        result
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn write_batch(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        if let (None, Some(t)) = (&self.writer, &self.txn) {
            let path = t.txn.in_progress(t.txn.epoch);
            self.writer = Some(t.factory.open_writer(&path)?);
        }
        self.blocking(move |w, name| w.write(&batch, name)).await
    }

    async fn on_barrier(&mut self, _checkpoint_id: u64) -> Result<()> {
        self.blocking(|w, name| w.flush(name)).await
    }

    async fn pre_commit(&mut self, checkpoint_id: u64) -> Result<OperatorState> {
        if self.txn.is_none() {
            self.on_barrier(checkpoint_id).await?;
            return Ok(OperatorState::empty());
        }
        if self.writer.is_some() {
            self.blocking(|w, name| w.close(name)).await?;
            self.writer = None;
            if let Some(t) = self.txn.as_mut() {
                let epoch = t.txn.epoch;
                t.txn.pending.push((epoch, checkpoint_id));
            }
        }
        match self.txn.as_mut() {
            Some(t) => {
                t.txn.epoch = checkpoint_id + 1;
                t.txn.state()
            }
            None => Ok(OperatorState::empty()),
        }
    }

    async fn commit(&mut self, checkpoint_id: u64) -> Result<()> {
        match self.txn.as_mut() {
            Some(t) => t.txn.commit(checkpoint_id),
            None => Ok(()),
        }
    }

    async fn finish(&mut self) -> Result<()> {
        if self.writer.is_some() {
            self.blocking(|w, name| w.close(name)).await?;
        }
        self.writer = None;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::Int64Array;
    use std::collections::BTreeMap;

    fn factory(dir: &Path) -> FileSinkFactory {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        let mut options = BTreeMap::new();
        options.insert("connector".to_string(), "filesystem".to_string());
        options.insert("path".to_string(), dir.display().to_string());
        options.insert("format".to_string(), "csv".to_string());
        let table = TableDescriptor::new("t", schema, options);
        super::super::FilesystemConnector::sink_factory(&table).expect("factory")
    }

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))])
            .expect("batch")
    }

    fn published(dir: &Path) -> Vec<String> {
        let mut rows: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with("part-"))
            .flat_map(|e| {
                std::fs::read_to_string(e.path())
                    .expect("read")
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect();
        rows.sort();
        rows
    }

    #[tokio::test]
    async fn files_are_published_on_commit_and_uncommitted_ones_discarded_on_recovery() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = factory(dir.path());
        let mut sink = f.create_checkpointed(0, 1, None).expect("sink");
        sink.write_batch(batch(&[1, 2])).await.expect("write");
        let state1 = sink.pre_commit(1).await.expect("pre-commit 1");
        assert!(published(dir.path()).is_empty(), "visible before commit");
        sink.write_batch(batch(&[3])).await.expect("write");
        let state2 = sink.pre_commit(2).await.expect("pre-commit 2");
        sink.commit(1).await.expect("commit 1");
        assert_eq!(published(dir.path()), vec!["1", "2"]);
        sink.write_batch(batch(&[4])).await.expect("write");
        drop(sink); // crash: checkpoint 2 pre-committed, never completed; 4 in progress

        // Recovery from checkpoint 1: [3] (pre-committed for 2) and [4] are discarded.
        let recovery = SinkRecovery {
            checkpoint_id: 1,
            state: state1,
        };
        let mut sink = f
            .create_checkpointed(0, 1, Some(recovery))
            .expect("recovered");
        assert_eq!(published(dir.path()), vec!["1", "2"]);
        let hidden = std::fs::read_dir(dir.path())
            .expect("list")
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
            .count();
        assert_eq!(hidden, 0, "in-progress files left after recovery");
        sink.write_batch(batch(&[3, 4])).await.expect("write");
        sink.pre_commit(2).await.expect("pre-commit 2");
        sink.commit(2).await.expect("commit 2");
        assert_eq!(published(dir.path()), vec!["1", "2", "3", "4"]);
        drop(sink);

        // Recovery from a checkpoint whose commit did not happen publishes it.
        let dir2 = tempfile::tempdir().expect("tempdir");
        let f2 = factory(dir2.path());
        let mut sink = f2.create_checkpointed(0, 1, None).expect("sink");
        sink.write_batch(batch(&[7])).await.expect("write");
        let state = sink.pre_commit(5).await.expect("pre-commit");
        drop(sink); // crash after the manifest, before the rename
        let _ = state2;
        let recovery = SinkRecovery {
            checkpoint_id: 5,
            state,
        };
        drop(
            f2.create_checkpointed(0, 1, Some(recovery))
                .expect("recovered"),
        );
        assert_eq!(published(dir2.path()), vec!["7"]);
    }
}
