//! The filesystem sink: subtask `s` writes `<path>/part-<s>.<ext>`
//! (replacing what was there), on tokio's blocking pool.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::ArrayRef;
use arrow::datatypes::{Schema, SchemaRef};
use arrow::record_batch::{RecordBatch, RecordBatchOptions};
use async_trait::async_trait;
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use weir_engine::sink::{Sink, SinkFactory};
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
        let file = File::create(&path).map_err(|e| WeirError::io(format!("creating {name}"), e))?;
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
        Ok(Box::new(FileSink {
            name,
            writer: Some(state),
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
    /// `None` while a blocking task holds it, or after a failure.
    writer: Option<Writer>,
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
        self.blocking(move |w, name| w.write(&batch, name)).await
    }

    async fn on_barrier(&mut self, _checkpoint_id: u64) -> Result<()> {
        self.blocking(|w, name| w.flush(name)).await
    }

    async fn finish(&mut self) -> Result<()> {
        self.blocking(|w, name| w.close(name)).await?;
        self.writer = None;
        Ok(())
    }
}
